// IdGenerator and MatchNextIdCall (SELECT shardgate.next_id()). No servers.
#include "proxy/ids.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace shardgate::proxy {
namespace {

constexpr int64_t kNow = 1796000000000;  // 2026-11-30, unix ms

TEST(IdGeneratorTest, IdsCarryTimeAndNodeAndIncreaseWithinAMillisecond) {
  IdGenerator ids;
  const int64_t a = ids.Next(7, kNow);
  const int64_t b = ids.Next(7, kNow);
  EXPECT_GT(a, 0);
  EXPECT_EQ(b, a + 1);
  EXPECT_EQ(IdGenerator::UnixMs(a), kNow);
  EXPECT_EQ(IdGenerator::Node(a), 7);
  EXPECT_GT(ids.Next(7, kNow + 1), b);
}

TEST(IdGeneratorTest, StaysMonotonicWhenTheClockStepsBackOrTheSequenceRunsOut) {
  IdGenerator ids;
  int64_t last = ids.Next(1, kNow);
  for (int i = 0; i < 5000; ++i) {  // more than 4096 in one millisecond
    const int64_t id = ids.Next(1, kNow);
    ASSERT_GT(id, last);
    last = id;
  }
  EXPECT_EQ(IdGenerator::UnixMs(last), kNow + 1) << "the 4097th id borrows the next millisecond";
  const int64_t after_step_back = ids.Next(1, kNow - 60000);
  EXPECT_GT(after_step_back, last);
  EXPECT_EQ(IdGenerator::Node(after_step_back), 1);
}

TEST(IdGeneratorTest, NodesNeverCollideAndThreadsNeverRepeat) {
  IdGenerator node0, node1;
  std::set<int64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(seen.insert(node0.Next(0, kNow + i / 10)).second);
    EXPECT_TRUE(seen.insert(node1.Next(1, kNow + i / 10)).second);
  }
  IdGenerator shared;
  std::vector<std::vector<int64_t>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) got[t].push_back(shared.Next(3, kNow));
    });
  }
  for (auto& th : threads) th.join();
  std::set<int64_t> all;
  for (const auto& g : got) {
    for (size_t i = 1; i < g.size(); ++i) ASSERT_GT(g[i], g[i - 1]) << "not increasing per thread";
    all.insert(g.begin(), g.end());
  }
  EXPECT_EQ(all.size(), 80000u);
}

TEST(MatchNextIdCallTest, RecognizesTheCallAndItsAlias) {
  EXPECT_EQ(MatchNextIdCall("SELECT shardgate.next_id()"), "next_id");
  EXPECT_EQ(MatchNextIdCall("  select  Shardgate . NEXT_ID ( ) ; "), "next_id");
  EXPECT_EQ(MatchNextIdCall("SELECT shardgate.next_id() AS Id"), "id");
  EXPECT_EQ(MatchNextIdCall("SELECT shardgate.next_id() order_id;"), "order_id");
  EXPECT_EQ(MatchNextIdCall("SELECT shardgate.next_id() AS \"Order Id\""), "Order Id");
  EXPECT_EQ(MatchNextIdCall("SELECT shardgate.next_id() asid"), "asid");
  for (const char* other : {"SELECT next_id()", "SELECT shardgate.next_id(1)",
                            "SELECT shardgate.next_id() + 1", "SELECT shardgate.next_id(), 2",
                            "selectshardgate.next_id()", "SELECT shardgate.next_ids()",
                            "SELECT shardgate.next_id() FROM t", "INSERT INTO t VALUES (1)",
                            "SELECT shardgate.next_id() AS 1x", ""}) {
    EXPECT_EQ(MatchNextIdCall(other), std::nullopt) << other;
  }
}

}  // namespace
}  // namespace shardgate::proxy
