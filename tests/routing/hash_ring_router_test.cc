// The consistent-hash ring: the properties the issue states (minimal movement when a shard is
// added, balance with 256 virtual nodes), weights, and YAML checks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "tests/routing/test_util.h"

namespace shardgate::routing {
namespace {

using testing::LoadMap;

// A database of `n` shards s0..s{n-1} with one hash_ring router `ring` over all of them.
std::string RingYaml(int n, const std::string& extra = "") {
  std::string y = "    shards:\n";
  for (int i = 0; i < n; ++i) {
    y += "      - {name: s" + std::to_string(i) + ", primary: {host: 127.0.0.1, port: " +
         std::to_string(5432 + i) + "}}\n";
  }
  return y + "    routers:\n      ring: {type: hash_ring" + extra + "}\n";
}

constexpr int kKeys = 1000000;

std::vector<int> Assign(const Router& r) {
  std::vector<int> out(kKeys);
  for (int k = 0; k < kKeys; ++k) out[k] = *r.Route(KeyValue::Int(k));
  return out;
}

class RingGrowth : public ::testing::TestWithParam<int> {};

TEST_P(RingGrowth, AddingAShardMovesAboutOneNthAllToTheNewShard) {
  const int n = GetParam();
  auto before = LoadMap(RingYaml(n));
  auto after = LoadMap(RingYaml(n + 1));
  ASSERT_TRUE(before.ok() && after.ok());
  std::vector<int> a = Assign(*before->map->router("ring"));
  std::vector<int> b = Assign(*after->map->router("ring"));
  int moved = 0;
  for (int k = 0; k < kKeys; ++k) {
    if (a[k] != b[k]) {
      ++moved;
      ASSERT_EQ(b[k], n) << "key " << k << " moved between old shards";
    }
  }
  double fraction = static_cast<double>(moved) / kKeys;
  double ideal = 1.0 / (n + 1);
  EXPECT_NEAR(fraction, ideal, 0.1 * ideal) << n << " -> " << n + 1 << " shards";
}

INSTANTIATE_TEST_SUITE_P(Sizes, RingGrowth, ::testing::Values(2, 3, 4, 8));

class RingBalance : public ::testing::TestWithParam<int> {};

TEST_P(RingBalance, LargestShardWithin15PercentOfTheMean) {
  const int n = GetParam();
  auto l = LoadMap(RingYaml(n, ", vnodes: 256"));
  ASSERT_TRUE(l.ok()) << l.status();
  std::vector<int> counts(n);
  for (int s : Assign(*l->map->router("ring"))) ++counts[s];
  double mean = static_cast<double>(kKeys) / n;
  int largest = *std::max_element(counts.begin(), counts.end());
  EXPECT_LE(largest, 1.15 * mean) << n << " shards";
}

INSTANTIATE_TEST_SUITE_P(Sizes, RingBalance, ::testing::Values(2, 3, 5, 8, 16));

TEST(HashRing, WeightsScaleTheShare) {
  auto l = LoadMap(RingYaml(2, ", vnodes: 256, weights: {s0: 3, s1: 1}"));
  ASSERT_TRUE(l.ok()) << l.status();
  std::vector<int> counts(2);
  for (int s : Assign(*l->map->router("ring"))) ++counts[s];
  double share = static_cast<double>(counts[0]) / kKeys;
  EXPECT_NEAR(share, 0.75, 0.04);
}

TEST(HashRing, TextKeysAndDeterminism) {
  auto a = LoadMap(RingYaml(3, ", key_type: text"));
  auto b = LoadMap(RingYaml(3, ", key_type: text"));
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<int> counts(3);
  for (int i = 0; i < 3000; ++i) {
    KeyValue k = KeyValue::Text("tenant-" + std::to_string(i));
    int s = *a->map->router("ring")->Route(k);
    EXPECT_EQ(s, *b->map->router("ring")->Route(k));
    ++counts[s];
  }
  for (int c : counts) EXPECT_GT(c, 500);
}

TEST(HashRing, RejectsBadSettings) {
  for (const char* extra : {", vnodes: 0", ", vnodes: many", ", weights: {s9: 2}",
                            ", weights: {s0: 0}", ", weights: [s0]", ", vnodes: 100000000"}) {
    auto l = LoadMap(RingYaml(2, extra));
    ASSERT_FALSE(l.ok()) << extra;
    EXPECT_THAT(std::string(l.status().message()),
                ::testing::ContainsRegex("test\\.yaml:[0-9]+:[0-9]+: "))
        << extra;
  }
}

TEST(HashRing, OwnerSqlSearchesTheSortedPoints) {
  auto l = LoadMap(RingYaml(2, ", vnodes: 2"));
  ASSERT_TRUE(l.ok()) << l.status();
  std::vector<std::pair<uint64_t, std::string>> ring;
  for (const char* s : {"s0", "s1"}) {
    for (int i = 0; i < 2; ++i) ring.emplace_back(HashRingPoint(s, i), s);
  }
  std::sort(ring.begin(), ring.end());
  std::string points = "'{", names = "ARRAY[";
  for (size_t i = 0; i < ring.size(); ++i) {
    points += (i ? "," : "") + std::to_string(ring[i].first);
    names += (i ? ", '" : "'") + ring[i].second + "'";
  }
  auto sql = l->map->router("ring")->OwnerSql("\"id\"", testing::ShardNames(*l->map));
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_THAT(*sql, ::testing::StartsWith("(" + names + "]::text[])[width_bucket(mod("));
  EXPECT_THAT(*sql, ::testing::HasSubstr("hashint8extended(((\"id\")::int8), "
                                         "8816678312871386365)::numeric + 18446744073709551616"
                                         " + 5305509591434766563, 18446744073709551616) - 1, "));
  EXPECT_THAT(*sql, ::testing::EndsWith(points + "}'::numeric[]) % 4 + 1]"));
}

TEST(HashRing, OwnerSqlHashesTextAndUuidKeysAsTheServerDoes) {
  auto text = LoadMap(RingYaml(2, ", vnodes: 1, key_type: text"));
  auto uuid = LoadMap(RingYaml(2, ", vnodes: 1, key_type: uuid"));
  ASSERT_TRUE(text.ok() && uuid.ok());
  auto t = text->map->router("ring")->OwnerSql("k", testing::ShardNames(*text->map));
  auto u = uuid->map->router("ring")->OwnerSql("k", testing::ShardNames(*uuid->map));
  ASSERT_TRUE(t.ok() && u.ok());
  EXPECT_THAT(*t, ::testing::HasSubstr("hashtextextended(((k)::text COLLATE \"C\"), "));
  EXPECT_THAT(*u, ::testing::HasSubstr("uuid_hash_extended(((k)::uuid), "));
}

}  // namespace
}  // namespace shardgate::routing
