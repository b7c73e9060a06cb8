// The space-saving hot-key sketch: exact counts on small streams, the error guarantee against
// exact frequencies, merging per-worker sketches, decay, a Zipf stream, and no allocation per
// Add of integer keys once the sketch is full.
#include "routing/hot_keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>
#include <new>
#include <random>

namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

// Counts allocations of this test binary (the no-allocation test reads the difference).
void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace shardgate::routing {
namespace {

using ::testing::ElementsAre;

std::vector<std::pair<std::string, uint64_t>> Counts(const std::vector<HotKey>& top) {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const HotKey& k : top) out.emplace_back(k.key.ToString(), k.count);
  return out;
}

TEST(HotKeySketchTest, ExactWhileKeysFitTheCapacity) {
  HotKeySketch sketch(4);
  for (int64_t k : {1, 2, 2, 3, 3, 3, 2, 3}) sketch.Add(KeyValue::Int(k));
  EXPECT_EQ(sketch.total(), 8u);
  EXPECT_EQ(sketch.min_count(), 0u);  // not full
  auto top = sketch.Top(10);
  EXPECT_THAT(Counts(top), ElementsAre(std::pair<std::string, uint64_t>{"3", 4},
                                       std::pair<std::string, uint64_t>{"2", 3},
                                       std::pair<std::string, uint64_t>{"1", 1}));
  for (const HotKey& k : top) EXPECT_EQ(k.error, 0u);
  EXPECT_EQ(sketch.Top(1).size(), 1u);
}

TEST(HotKeySketchTest, ReplacesTheSmallestCounterAndCarriesItsCountAsError) {
  HotKeySketch sketch(2);
  sketch.Add(KeyValue::Text("a"));
  sketch.Add(KeyValue::Text("a"));
  sketch.Add(KeyValue::Text("b"));
  sketch.Add(KeyValue::Text("c"));  // replaces b (count 1): c = 2, error 1
  auto top = sketch.Top(10);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].key.ToString(), "a");
  EXPECT_EQ(top[0].count, 2u);
  EXPECT_EQ(top[0].error, 0u);
  EXPECT_EQ(top[1].key.ToString(), "c");
  EXPECT_EQ(top[1].count, 2u);
  EXPECT_EQ(top[1].error, 1u);
  EXPECT_FALSE(sketch.Contains(KeyValue::Text("b")));
  EXPECT_EQ(sketch.min_count(), 2u);
}

// Every key with frequency > N/k is present; count - error <= true <= count; error <= N/k.
TEST(HotKeySketchTest, GuaranteeHoldsOnARandomStream) {
  constexpr uint32_t kCapacity = 16;
  HotKeySketch sketch(kCapacity);
  std::map<int64_t, uint64_t> exact;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    // A few heavy keys over a broad uniform background.
    int64_t key = (rng() % 4 == 0) ? static_cast<int64_t>(rng() % 5) : 100 + rng() % 500;
    sketch.Add(KeyValue::Int(key));
    ++exact[key];
  }
  const uint64_t n = sketch.total();
  ASSERT_EQ(n, 20000u);
  auto top = sketch.Top(kCapacity);
  for (const auto& [key, freq] : exact) {
    bool present = sketch.Contains(KeyValue::Int(key));
    if (freq > n / kCapacity) {
      EXPECT_TRUE(present) << key << " occurred " << freq;
    }
    if (!present) EXPECT_LE(freq, sketch.min_count()) << key;
  }
  for (const HotKey& hk : top) {
    uint64_t freq = exact[hk.key.int_value()];
    EXPECT_LE(hk.count - hk.error, freq) << hk.key.ToString();
    EXPECT_GE(hk.count, freq) << hk.key.ToString();
    EXPECT_LE(hk.error, n / kCapacity) << hk.key.ToString();
  }
}

TEST(HotKeySketchTest, ZipfStreamFindsTheTopKeysInOrder) {
  // Zipf(s = 1.2) over 10000 keys by inverse CDF.
  constexpr int kKeys = 10000;
  std::vector<double> cdf(kKeys);
  double sum = 0;
  for (int i = 0; i < kKeys; ++i) cdf[i] = (sum += 1.0 / std::pow(i + 1, 1.2));
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0, sum);
  HotKeySketch sketch(64);
  for (int i = 0; i < 100000; ++i) {
    auto rank = std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin();
    sketch.Add(KeyValue::Int(rank + 1));
  }
  auto top = sketch.Top(5);
  ASSERT_EQ(top.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(top[i].key.int_value(), i + 1) << "rank " << i;
}

TEST(HotKeySketchTest, HalvingDecaysOldTraffic) {
  HotKeySketch sketch(2);
  for (int i = 0; i < 100; ++i) sketch.Add(KeyValue::Int(1));
  for (int i = 0; i < 7; ++i) sketch.Halve();  // 100 -> 0
  EXPECT_EQ(sketch.total(), 0u);
  for (int i = 0; i < 3; ++i) sketch.Add(KeyValue::Int(2));
  auto top = sketch.Top(1);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].key.int_value(), 2);
  EXPECT_EQ(top[0].count, 3u);
  sketch.Clear();
  EXPECT_EQ(sketch.size(), 0u);
  EXPECT_EQ(sketch.total(), 0u);
}

TEST(HotKeySketchTest, MergeSumsWorkersAndBoundsMissingKeys) {
  HotKeySketch a(2), b(2);
  for (int i = 0; i < 5; ++i) a.Add(KeyValue::Int(1));
  for (int i = 0; i < 3; ++i) a.Add(KeyValue::Int(2));
  for (int i = 0; i < 4; ++i) b.Add(KeyValue::Int(1));
  b.Add(KeyValue::Int(3));
  const HotKeySketch* both[] = {&a, &b};
  auto merged = MergeHotKeys(both, 10);
  ASSERT_EQ(merged.size(), 3u);
  EXPECT_EQ(merged[0].key.int_value(), 1);
  EXPECT_EQ(merged[0].count, 9u);
  EXPECT_EQ(merged[0].error, 0u);
  // 2 is absent from b, which is full with min count 1: counted as up to 1 there.
  EXPECT_EQ(merged[1].key.int_value(), 2);
  EXPECT_EQ(merged[1].count, 4u);
  EXPECT_EQ(merged[1].error, 1u);
  // 3 is absent from a (min count 3).
  EXPECT_EQ(merged[2].key.int_value(), 3);
  EXPECT_EQ(merged[2].count, 4u);
  EXPECT_EQ(merged[2].error, 3u);
  EXPECT_EQ(MergeHotKeys(both, 1).size(), 1u);
  EXPECT_TRUE(MergeHotKeys({}, 5).empty());
}

TEST(HotKeySketchTest, MergedCountsNeverUnderestimate) {
  std::map<int64_t, uint64_t> exact;
  std::vector<HotKeySketch> workers(3, HotKeySketch(8));
  std::mt19937_64 rng(3);
  for (int i = 0; i < 30000; ++i) {
    int64_t key = (rng() % 3 == 0) ? static_cast<int64_t>(rng() % 3) : 10 + rng() % 200;
    workers[i % 3].Add(KeyValue::Int(key));
    ++exact[key];
  }
  const HotKeySketch* ptrs[] = {&workers[0], &workers[1], &workers[2]};
  auto merged = MergeHotKeys(ptrs, 3);
  ASSERT_EQ(merged.size(), 3u);
  for (const HotKey& hk : merged) {
    uint64_t freq = exact[hk.key.int_value()];
    EXPECT_GE(hk.count, freq);
    EXPECT_LE(hk.count - hk.error, freq);
    EXPECT_LT(hk.key.int_value(), 3) << "a heavy key ranks first";
  }
}

TEST(HotKeySketchTest, FullSketchAddsIntegerKeysWithoutAllocating) {
  HotKeySketch sketch(64);
  for (int64_t k = 0; k < 1000; ++k) sketch.Add(KeyValue::Int(k));  // fills and churns
  std::vector<KeyValue> keys;
  for (int64_t k = 0; k < 5000; ++k) keys.push_back(KeyValue::Int(k * 7919 % 100000));
  uint64_t probe = g_allocations.load();
  sketch.Add(KeyValue::Text(std::string(64, 'x')));  // a new long text key allocates
  ASSERT_GT(g_allocations.load(), probe) << "the counter must see allocations";
  uint64_t before = g_allocations.load();
  for (const KeyValue& k : keys) sketch.Add(k);
  for (int i = 0; i < 1000; ++i) sketch.Add(keys[i % 3]);
  EXPECT_EQ(g_allocations.load() - before, 0u);
  EXPECT_EQ(sketch.size(), 64u);
}

}  // namespace
}  // namespace shardgate::routing
