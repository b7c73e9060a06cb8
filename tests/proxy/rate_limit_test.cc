// RateBucket (GCRA) driven by an injected clock, RateLimits across reloads, and the bucket
// shared by threads (no token is handed out twice).
#include "proxy/rate_limit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace shardgate::proxy {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

conf::RateLimitConfig Limit(int64_t qps, int64_t burst,
                            conf::RateLimitConfig::Mode mode = conf::RateLimitConfig::Mode::kError,
                            std::chrono::milliseconds max_wait = std::chrono::milliseconds(1000)) {
  conf::RateLimitConfig c;
  c.queries_per_second = qps;
  c.burst = burst;
  c.mode = mode;
  c.max_wait = max_wait;
  return c;
}

TEST(RateBucketTest, UnlimitedGrantsEverything) {
  RateBucket bucket;
  EXPECT_FALSE(bucket.Limited());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(bucket.Reserve(0, 0), 0);
}

TEST(RateBucketTest, BurstThenOnePerInterval) {
  RateBucket bucket;
  bucket.Configure(Limit(10, 3));  // a token every 100 ms, 3 at once
  const int64_t t0 = 5 * kSecond;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bucket.Reserve(t0, 0), 0) << i;
  EXPECT_EQ(bucket.Reserve(t0, 0), -1);
  EXPECT_EQ(bucket.Reserve(t0 + kSecond / 20, 0), -1);  // 50 ms: not yet
  EXPECT_EQ(bucket.Reserve(t0 + kSecond / 10, 0), 0);   // 100 ms: one more
  EXPECT_EQ(bucket.Reserve(t0 + kSecond / 10, 0), -1);
  // Idle for long: the bucket refills to the burst, not beyond.
  const int64_t t1 = t0 + 60 * kSecond;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bucket.Reserve(t1, 0), 0) << i;
  EXPECT_EQ(bucket.Reserve(t1, 0), -1);
}

TEST(RateBucketTest, ReservationsQueueInOrder) {
  RateBucket bucket;
  bucket.Configure(Limit(10, 1, conf::RateLimitConfig::Mode::kQueue));
  EXPECT_EQ(bucket.MaxWaitNs(false), kSecond);
  const int64_t t0 = kSecond;
  EXPECT_EQ(bucket.Reserve(t0, kSecond), 0);
  EXPECT_EQ(bucket.Reserve(t0, kSecond), kSecond / 10);
  EXPECT_EQ(bucket.Reserve(t0, kSecond), 2 * kSecond / 10);
  // A wait beyond max_wait is refused and reserves nothing.
  EXPECT_EQ(bucket.Reserve(t0, kSecond / 10), -1);
  EXPECT_EQ(bucket.Reserve(t0, kSecond), 3 * kSecond / 10);
}

TEST(RateBucketTest, RefundGivesTheTokenBack) {
  RateBucket bucket;
  bucket.Configure(Limit(1, 1));
  EXPECT_EQ(bucket.Reserve(kSecond, 0), 0);
  EXPECT_EQ(bucket.Reserve(kSecond, 0), -1);
  bucket.Refund();
  EXPECT_EQ(bucket.Reserve(kSecond, 0), 0);
}

TEST(RateBucketTest, ErrorModeWaitsOnlyInsideTransactions) {
  RateBucket bucket;
  bucket.Configure(
      Limit(1, 1, conf::RateLimitConfig::Mode::kError, std::chrono::milliseconds(300)));
  EXPECT_EQ(bucket.MaxWaitNs(false), 0);
  EXPECT_EQ(bucket.MaxWaitNs(true), 300'000'000);
}

TEST(RateBucketTest, ReconfigureAndRemove) {
  RateBucket bucket;
  bucket.Configure(Limit(1, 1));
  EXPECT_EQ(bucket.Reserve(kSecond, 0), 0);
  EXPECT_EQ(bucket.Reserve(kSecond, 0), -1);
  bucket.Configure(Limit(1000, 100));  // a faster rate applies to the next token
  EXPECT_EQ(bucket.Reserve(2 * kSecond, 0), 0);
  EXPECT_EQ(bucket.settings().queries_per_second, 1000);
  bucket.Configure(std::nullopt);
  EXPECT_FALSE(bucket.Limited());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(bucket.Reserve(2 * kSecond, 0), 0);
}

TEST(RateLimitsTest, ApplyKeepsBucketsAcrossReloads) {
  conf::Config config;
  conf::UserConfig app;
  app.name = "app";
  app.rate_limit = Limit(5, 5);
  config.users.push_back(app);
  conf::DatabaseConfig db;
  db.name = "shop";
  db.rate_limit = Limit(7, 2);
  config.databases["shop"] = db;
  RateLimits limits;
  limits.Apply(config);
  RateBucket* user = &limits.user("app");
  EXPECT_EQ(user->settings().queries_per_second, 5);
  EXPECT_EQ(limits.database("shop").settings().burst, 2);
  EXPECT_FALSE(limits.user("other").Limited());
  EXPECT_EQ(limits.Rows().size(), 2u);

  config.users[0].rate_limit = Limit(50, 10);  // a reload changes the numbers
  limits.Apply(config);
  EXPECT_EQ(&limits.user("app"), user);  // the same bucket: sessions keep their pointer
  EXPECT_EQ(user->settings().queries_per_second, 50);

  config.users[0].rate_limit.reset();  // and removes the limit
  config.databases.clear();
  limits.Apply(config);
  EXPECT_FALSE(user->Limited());
  EXPECT_FALSE(limits.database("shop").Limited());
  EXPECT_TRUE(limits.Rows().empty());
}

TEST(RateBucketTest, ThreadsShareTheBurst) {
  RateBucket bucket;
  bucket.Configure(Limit(1, 1000));  // 1000 tokens now, the next one a second later
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (bucket.Reserve(kSecond, 0) == 0) granted.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 1000);
}

}  // namespace
}  // namespace shardgate::proxy
