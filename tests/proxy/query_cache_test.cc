// QueryCache: TTL, LRU under the memory bound, invalidation by tags, and the rule that keeps a
// fill overlapped by a write from storing a stale answer. No servers.
#include "proxy/query_cache.h"

#include <gtest/gtest.h>

#include <thread>

namespace shardgate::proxy {
namespace {

using std::chrono::milliseconds;
using Clock = QueryCache::Clock;

const CacheTag kUser42{"users", "i42"};
const CacheTag kUser7{"users", "i7"};
const CacheTag kUsers{"users", std::nullopt};
const CacheTag kOrders{"orders", std::nullopt};

class QueryCacheTest : public ::testing::Test {
 protected:
  bool Fill(const std::string& key, const std::string& answer, std::vector<CacheTag> tags,
            milliseconds ttl = milliseconds(30000)) {
    return cache_.Store(key, answer, std::move(tags), ttl, cache_.BeginFill(), now_);
  }
  std::string Get(const std::string& key) {
    auto answer = cache_.Lookup(key, now_);
    return answer ? *answer : "(miss)";
  }

  QueryCache cache_{QueryCache::Limits{}};
  Clock::time_point now_ = Clock::now();
};

TEST_F(QueryCacheTest, HitsUntilTheTtlRunsOut) {
  EXPECT_EQ(Get("q"), "(miss)");
  ASSERT_TRUE(Fill("q", "answer", {kUser42}, milliseconds(1000)));
  EXPECT_EQ(Get("q"), "answer");
  now_ += milliseconds(999);
  EXPECT_EQ(Get("q"), "answer");
  now_ += milliseconds(1);
  EXPECT_EQ(Get("q"), "(miss)");
  const QueryCache::Stats stats = cache_.stats();
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.stores, 1u);
  EXPECT_EQ(stats.entries, 0u) << "an expired entry is dropped when found";
  EXPECT_EQ(stats.bytes, 0u);
}

TEST_F(QueryCacheTest, AKeyedWriteDropsThatKeyAndTheTablesKeylessEntries) {
  ASSERT_TRUE(Fill("u42", "a", {kUser42}));
  ASSERT_TRUE(Fill("u7", "b", {kUser7}));
  ASSERT_TRUE(Fill("count", "c", {kUsers}));
  ASSERT_TRUE(Fill("orders", "d", {kOrders}));
  cache_.BeginWrite({kUser42});
  EXPECT_EQ(Get("u42"), "(miss)");
  EXPECT_EQ(Get("count"), "(miss)");
  EXPECT_EQ(Get("u7"), "b");
  EXPECT_EQ(Get("orders"), "d");
  cache_.EndWrite({kUser42});
  EXPECT_EQ(cache_.stats().invalidated, 2u);
}

TEST_F(QueryCacheTest, AKeylessWriteDropsTheWholeTable) {
  ASSERT_TRUE(Fill("u42", "a", {kUser42}));
  ASSERT_TRUE(Fill("join", "b", {kUser7, kOrders}));
  ASSERT_TRUE(Fill("orders", "c", {kOrders}));
  cache_.BeginWrite({kUsers});
  cache_.EndWrite({kUsers});
  EXPECT_EQ(Get("u42"), "(miss)");
  EXPECT_EQ(Get("join"), "(miss)");
  EXPECT_EQ(Get("orders"), "c");
}

// The race the cache must not lose: a read begins, a write commits and ends, then the read's
// (possibly older) answer arrives.
TEST_F(QueryCacheTest, AFillOverlappedByAWriteIsNotStored) {
  const uint64_t before = cache_.BeginFill();
  cache_.BeginWrite({kUser42});
  cache_.EndWrite({kUser42});
  EXPECT_FALSE(cache_.Store("u42", "old", {kUser42}, milliseconds(30000), before, now_));
  EXPECT_EQ(Get("u42"), "(miss)");
  EXPECT_EQ(cache_.stats().raced, 1u);

  // A fill that begins while a write is under way cannot store either, even after the fill
  // began later than the write: the write has not committed yet.
  cache_.BeginWrite({kUser42});
  const uint64_t during = cache_.BeginFill();
  EXPECT_FALSE(cache_.Store("u42", "old", {kUser42}, milliseconds(30000), during, now_));
  cache_.EndWrite({kUser42});
  EXPECT_FALSE(cache_.Store("u42", "old", {kUser42}, milliseconds(30000), during, now_));

  // After the write ended, a new fill stores; another key was never affected.
  EXPECT_TRUE(Fill("u42", "new", {kUser42}));
  EXPECT_EQ(Get("u42"), "new");
  const uint64_t other = cache_.BeginFill();
  cache_.BeginWrite({kUser42});
  EXPECT_TRUE(cache_.Store("u7", "b", {kUser7}, milliseconds(30000), other, now_));
  EXPECT_FALSE(cache_.Store("count", "n", {kUsers}, milliseconds(30000), other, now_))
      << "a keyless read of the table is made stale by any write of it";
  cache_.EndWrite({kUser42});
}

TEST_F(QueryCacheTest, AKeylessWriteOverlapsKeyedFills) {
  const uint64_t token = cache_.BeginFill();
  cache_.BeginWrite({kUsers});
  cache_.EndWrite({kUsers});
  EXPECT_FALSE(cache_.Store("u42", "old", {kUser42}, milliseconds(30000), token, now_));
}

TEST_F(QueryCacheTest, EvictsTheLeastRecentlyUsedWithinTheMemoryBound) {
  QueryCache small(QueryCache::Limits{.memory = 3 * (1000 + 160 + 2), .max_entry = 1000});
  const std::string answer(1000, 'x');
  auto fill = [&](const std::string& key) {
    return small.Store(key, answer, {kUser42}, milliseconds(30000), small.BeginFill(), now_);
  };
  ASSERT_TRUE(fill("k1"));
  ASSERT_TRUE(fill("k2"));
  ASSERT_TRUE(fill("k3"));
  ASSERT_NE(small.Lookup("k1", now_), nullptr);  // k2 is now the least recently used
  ASSERT_TRUE(fill("k4"));
  EXPECT_EQ(small.Lookup("k2", now_), nullptr);
  EXPECT_NE(small.Lookup("k1", now_), nullptr);
  EXPECT_NE(small.Lookup("k4", now_), nullptr);
  EXPECT_EQ(small.stats().evicted, 1u);
  EXPECT_LE(small.stats().bytes, small.limits().memory);
  EXPECT_FALSE(small.Store("huge", std::string(1001, 'y'), {kUser42}, milliseconds(30000),
                           small.BeginFill(), now_))
      << "an answer over max_entry is not cached";
}

TEST_F(QueryCacheTest, ThreadsShareItSafely) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const CacheTag tag{"users", "i" + std::to_string(i % 50)};
        const std::string key = "q" + std::to_string(i % 50);
        if ((i + t) % 5 == 0) {
          cache_.BeginWrite({tag});
          cache_.EndWrite({tag});
        } else if (!cache_.Lookup(key, now_)) {
          cache_.Store(key, "v", {tag}, milliseconds(30000), cache_.BeginFill(), now_);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const QueryCache::Stats stats = cache_.stats();
  EXPECT_GT(stats.hits + stats.misses, 0u);
  EXPECT_LE(stats.entries, 50u);
}

}  // namespace
}  // namespace shardgate::proxy
