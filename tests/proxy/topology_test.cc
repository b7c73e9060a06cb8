// Topology: replica choice (round robin, least outstanding), health, promotion. No servers.
#include "proxy/topology.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "conf/config.h"

namespace shardgate::proxy {
namespace {

std::shared_ptr<Topology> Make(const std::string& balance, const std::string& read_from) {
  const std::string yaml = R"(
users: [{name: app, password: pw}]
databases:
  app:
    read_from: )" + read_from + R"(
    replica_balance: )" + balance + R"(
    shards:
      - name: s0
        primary: {host: 127.0.0.1, port: 5000}
        replicas: [{host: 127.0.0.1, port: 5001}, {host: 127.0.0.1, port: 5002}]
      - name: s1
        primary: {host: 127.0.0.1, port: 6000}
    routers:
      r: {type: modulo, shards: [s0, s1]}
    tables:
      t: {key: id, router: r}
)";
  auto config = conf::LoadString(yaml, "topology_test.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  auto topology = Topology::Build((*config)->databases.at("app"));
  EXPECT_TRUE(topology.ok()) << topology.status();
  return *topology;
}

int ReadPort(Topology& t, int shard, bool* replica) { return t.ForRead(shard, replica).port; }

TEST(TopologyTest, RoundRobinOverHealthyReplicasThenPrimary) {
  auto t = Make("round_robin", "replicas");
  std::map<int, int> seen;
  bool replica = false;
  for (int i = 0; i < 10; ++i) ++seen[ReadPort(*t, 0, &replica)];
  EXPECT_EQ(seen[5001], 5);
  EXPECT_EQ(seen[5002], 5);
  t->SetReplicaHealthy(0, 0, false);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ReadPort(*t, 0, &replica), 5002);
  t->SetReplicaHealthy(0, 1, false);
  EXPECT_EQ(ReadPort(*t, 0, &replica), 5000);
  EXPECT_FALSE(replica);
  EXPECT_EQ(ReadPort(*t, 1, &replica), 6000);  // no replicas at all
  EXPECT_FALSE(replica);
}

TEST(TopologyTest, LeastOutstandingPicksTheLeastLoadedReplica) {
  auto t = Make("least_outstanding", "replicas");
  t->Attached(0, 0);
  t->Attached(0, 0);
  bool replica = false;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ReadPort(*t, 0, &replica), 5002);
  t->Attached(0, 1);
  t->Attached(0, 1);
  t->Attached(0, 1);
  EXPECT_EQ(ReadPort(*t, 0, &replica), 5001);
  EXPECT_TRUE(replica);
  t->Detached(0, 1);
  t->Detached(0, 1);
  t->Detached(0, 1);
  t->SetReplicaHealthy(0, 1, false);
  EXPECT_EQ(ReadPort(*t, 0, &replica), 5001);  // loaded but the only healthy one
}

TEST(TopologyTest, ReadFromPrimaryAndPromotion) {
  auto t = Make("round_robin", "primary");
  bool replica = true;
  EXPECT_EQ(ReadPort(*t, 0, &replica), 5000);
  EXPECT_FALSE(replica);
  EXPECT_EQ(t->Primary(0).port, 5000);
  t->SetPromoted(0, 1);
  EXPECT_EQ(t->Primary(0).port, 5002);
  EXPECT_EQ(t->ReplicaIndex(0, t->shard(0).replicas[1]), 1);
  EXPECT_EQ(t->ReplicaIndex(0, t->shard(0).primary), -1);
}

}  // namespace
}  // namespace shardgate::proxy
