// Topology: replica choice (round robin, least outstanding), health, promotion. No servers.
#include "proxy/topology.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "conf/config.h"
#include "protocol/status.h"

namespace shardgate::proxy {
namespace {

std::shared_ptr<Topology> Make(const std::string& balance, const std::string& read_from,
                               const std::string& zone = "") {
  const std::string yaml = R"(
users: [{name: app, password: pw}]
databases:
  app:
    read_from: )" + read_from + R"(
    replica_balance: )" + balance + R"(
    shards:
      - name: s0
        primary: {host: 127.0.0.1, port: 5000}
        replicas: [{host: 127.0.0.1, port: 5001, zone: a},
                   {host: 127.0.0.1, port: 5002, zone: b},
                   {host: 127.0.0.1, port: 5003, zone: b}]
      - name: s1
        primary: {host: 127.0.0.1, port: 6000}
    routers:
      r: {type: modulo, shards: [s0, s1]}
    tables:
      t: {key: id, router: r}
)";
  auto config = conf::LoadString(yaml, "topology_test.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  auto topology = Topology::Build((*config)->databases.at("app"), zone);
  EXPECT_TRUE(topology.ok()) << topology.status();
  return *topology;
}

int ReadPort(Topology& t, int shard, bool* replica) { return t.ForRead(shard, replica).port; }

TEST(TopologyTest, RoundRobinOverHealthyReplicasThenPrimary) {
  auto t = Make("round_robin", "replicas");
  std::map<int, int> seen;
  bool replica = false;
  for (int i = 0; i < 12; ++i) ++seen[ReadPort(*t, 0, &replica)];
  EXPECT_EQ(seen[5001], 4);
  EXPECT_EQ(seen[5002], 4);
  EXPECT_EQ(seen[5003], 4);
  t->SetReplicaHealthy(0, 0, false);
  t->SetReplicaHealthy(0, 2, false);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ReadPort(*t, 0, &replica), 5002);
  t->SetReplicaHealthy(0, 1, false);
  EXPECT_EQ(ReadPort(*t, 0, &replica), 5000);
  EXPECT_FALSE(replica);
  EXPECT_EQ(ReadPort(*t, 1, &replica), 6000);  // no replicas at all
  EXPECT_FALSE(replica);
}

TEST(TopologyTest, LeastOutstandingPicksTheLeastLoadedReplica) {
  auto t = Make("least_outstanding", "replicas");
  t->SetReplicaHealthy(0, 2, false);  // two replicas
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
  t->SetReplicaHealthy(0, 2, false);
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

TEST(TopologyTest, ReplicasInTheProxysZoneComeFirst) {
  for (const std::string balance : {"round_robin", "least_outstanding"}) {
    SCOPED_TRACE(balance);
    auto t = Make(balance, "replicas", "b");
    std::map<int, int> seen;
    bool replica = false;
    for (int i = 0; i < 10; ++i) ++seen[ReadPort(*t, 0, &replica)];
    EXPECT_EQ(seen[5001], 0) << "zone a's replica read while zone b has healthy ones";
    EXPECT_EQ(seen[5002] + seen[5003], 10);
    if (balance == "round_robin") EXPECT_EQ(seen[5002], 5);
    // Zone b down: zone a takes the reads; back: zone b again.
    t->SetReplicaHealthy(0, 1, false);
    t->SetReplicaHealthy(0, 2, false);
    EXPECT_EQ(ReadPort(*t, 0, &replica), 5001);
    EXPECT_TRUE(replica);
    t->SetReplicaHealthy(0, 0, false);
    EXPECT_EQ(ReadPort(*t, 0, &replica), 5000);
    EXPECT_FALSE(replica);
    t->SetReplicaHealthy(0, 2, true);
    EXPECT_EQ(ReadPort(*t, 0, &replica), 5003);
  }
  // A zone no server is in: every replica as without zones.
  auto t = Make("round_robin", "replicas", "c");
  std::map<int, int> seen;
  bool replica = false;
  for (int i = 0; i < 9; ++i) ++seen[ReadPort(*t, 0, &replica)];
  EXPECT_EQ(seen[5001], 3);
  EXPECT_EQ(seen[5002], 3);
  // Zone b down, two candidates elsewhere (read_from: any: zone a's replica and the primary,
  // which has no zone): they share the reads.
  t = Make("round_robin", "any", "b");
  t->SetReplicaHealthy(0, 1, false);
  t->SetReplicaHealthy(0, 2, false);
  seen.clear();
  for (int i = 0; i < 4; ++i) ++seen[ReadPort(*t, 0, &replica)];
  EXPECT_EQ(seen[5001], 2);
  EXPECT_EQ(seen[5000], 2);
}

TEST(TopologyTest, BreakerOpensOnAFailedPrimaryAndClosesOnAGoodCheck) {
  auto t = Make("round_robin", "replicas");
  EXPECT_TRUE(t->WriteServerAvailable(0).ok());
  t->PrimaryFailed(0, "connection refused");
  const absl::Status open = t->WriteServerAvailable(0);
  EXPECT_FALSE(open.ok());
  EXPECT_EQ(SqlState(open), "08001");
  EXPECT_NE(std::string(open.message()).find("shard \"s0\" is unavailable"), std::string::npos)
      << open;
  EXPECT_TRUE(t->WriteServerAvailable(1).ok()) << "the other shard is not affected";
  t->SetPromoted(0, 1);  // a replica took over: writes go there
  EXPECT_TRUE(t->WriteServerAvailable(0).ok());
  t->SetPromoted(0, -1);
  EXPECT_FALSE(t->WriteServerAvailable(0).ok());
  t->SetPrimaryHealthy(0, true);  // the health checker's next good probe
  EXPECT_TRUE(t->WriteServerAvailable(0).ok());
}

}  // namespace
}  // namespace shardgate::proxy
