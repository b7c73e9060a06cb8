// The range router: binary search over sorted [from, to) ranges, open ends, gaps, text keys,
// and overlap/order errors with positions.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/routing/test_util.h"
#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::HasSqlState;
using testing::LoadMap;
using testing::ThreeShards;

struct Case {
  std::string key;
  int shard;  // -1 = error
};

class IntegerRanges : public ::testing::TestWithParam<Case> {};

TEST_P(IntegerRanges, Routes) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      r: {type: range, ranges: [{to: 100, shard: s0}, {to: 200, shard: s1},\n"
      "                                {from: 300, shard: s2}]}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const Router& r = *l->map->router("r");
  EXPECT_EQ(r.key_type(), KeyType::kInt);
  auto key = ParseKeyText(GetParam().key, KeyType::kInt);
  ASSERT_TRUE(key.ok());
  auto s = r.Route(*key);
  if (GetParam().shard < 0) {
    EXPECT_THAT(s, HasSqlState("22023"));
  } else {
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(*s, GetParam().shard) << GetParam().key;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, IntegerRanges,
    ::testing::Values(Case{"-9223372036854775808", 0}, Case{"-1", 0}, Case{"0", 0},
                      Case{"99", 0}, Case{"100", 1}, Case{"199", 1}, Case{"200", -1},
                      Case{"299", -1}, Case{"300", 2}, Case{"9223372036854775807", 2}));

TEST(RangeRouter, GapGoesToDefault) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      r: {type: range, default: s1, ranges: [{to: 10, shard: s0}, {from: 20, shard: "
      "s2}]}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto s = l->map->router("r")->Route(KeyValue::Int(15));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 1);
}

TEST(RangeRouter, TextRangesCompareBytewise) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      r: {type: range, ranges: [{to: g, shard: s0}, {to: p, shard: s1}, {shard: s2}]}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const Router& r = *l->map->router("r");
  EXPECT_EQ(r.key_type(), KeyType::kText);
  for (auto [key, shard] : std::vector<std::pair<std::string, int>>{
           {"", 0}, {"apple", 0}, {"g", 1}, {"orange", 1}, {"p", 2}, {"zebra", 2}, {"Zebra", 0},
           {"é", 2}}) {
    auto s = r.Route(KeyValue::Text(key));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, shard) << key;
  }
}

struct BadCase {
  std::string ranges;
  std::string message;
};

class BadRanges : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadRanges, AreRejected) {
  auto l = LoadMap(ThreeShards("    routers:\n      r: {type: range, " + GetParam().ranges +
                               "}\n"));
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()),
              ::testing::ContainsRegex("test\\.yaml:[0-9]+:[0-9]+: "));
  EXPECT_THAT(std::string(l.status().message()), ::testing::HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadRanges,
    ::testing::Values(
        BadCase{"ranges: [{to: 100, shard: s0}, {from: 50, to: 200, shard: s1}]", "overlaps"},
        BadCase{"ranges: [{to: 100, shard: s0}, {to: 50, shard: s1}]", "below"},
        BadCase{"ranges: [{shard: s0}, {to: 50, shard: s1}]", "open above"},
        BadCase{"ranges: [{to: 100, shard: s7}]", "unknown shard 's7'"},
        BadCase{"ranges: [{to: 100}]", "missing 'shard'"},
        BadCase{"ranges: [{to: 100, shard: s0, weight: 2}]", "unknown key 'weight'"},
        BadCase{"ranges: []", "non-empty"},
        BadCase{"key_type: integer, ranges: [{to: abc, shard: s0}]", "not a valid integer"},
        BadCase{"ranges: [{from: 5, to: 5, shard: s0}]", "below"}));

TEST(RangeRouter, OwnerSqlIsACaseOverTheRanges) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      r: {type: range, default: s1, ranges: [{to: -10, shard: s0}, {from: 20, to: 30, "
      "shard: s2}, {from: 40, shard: s0}]}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto sql = l->map->router("r")->OwnerSql("k", testing::ShardNames(*l->map));
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql,
            "CASE WHEN ((k)::int8) < -10 THEN 's0'"
            " WHEN ((k)::int8) >= 20 AND ((k)::int8) < 30 THEN 's2'"
            " WHEN ((k)::int8) >= 40 THEN 's0'"
            " ELSE CASE WHEN ((k)::int8) IS NOT NULL THEN 's1' END END");
}

TEST(RangeRouter, OwnerSqlComparesTextBytewiseAndQuotesBounds) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      r: {type: range, ranges: [{to: \"o'neil\", shard: s0}, {shard: s1}]}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto sql = l->map->router("r")->OwnerSql("\"name\"", testing::ShardNames(*l->map));
  ASSERT_TRUE(sql.ok()) << sql.status();
  // No default: a key in no range is Route's error, so the CASE has no ELSE (NULL).
  EXPECT_EQ(*sql,
            "CASE WHEN ((\"name\")::text COLLATE \"C\") < 'o''neil' THEN 's0'"
            " WHEN ((\"name\")::text COLLATE \"C\") >= 'o''neil' THEN 's1' END");
}

TEST(RangeRouter, OwnerSqlOfTheSmallestIntegerIsAnInt8) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      r: {type: range, ranges: [{from: -9223372036854775808, to: 0, shard: s0}]}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto sql = l->map->router("r")->OwnerSql("k", testing::ShardNames(*l->map));
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_THAT(*sql, ::testing::HasSubstr(">= (-9223372036854775807 - 1) AND"));
}

}  // namespace
}  // namespace shardgate::routing
