// The modulo router: PostgreSQL-hash remainders in `shards:` order, raw integer modulo, and its
// YAML checks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "routing/pg_hash.h"
#include "tests/routing/test_util.h"
#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using testing::LoadMap;
using testing::ThreeShards;

const Router& Get(const testing::Loaded& l, const char* name) { return *l.map->router(name); }

TEST(ModuloRouter, PostgresHashMatchesPartitionRemainders) {
  auto l = LoadMap(ThreeShards("    routers:\n      m: {type: modulo, shards: [s0, s1, s2]}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const Router& r = Get(*l, "m");
  EXPECT_EQ(r.key_type(), KeyType::kInt);
  // Remainders of 0..9 mod 3 are 2,2,0,1,0,2,0,1,0,2 (PostgreSQL): shard index = remainder.
  const int expected[] = {2, 2, 0, 1, 0, 2, 0, 1, 0, 2};
  for (int v = 0; v < 10; ++v) {
    auto s = r.Route(KeyValue::Int(v));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, expected[v]) << v;
  }
  EXPECT_THAT(r.Shards(), ::testing::ElementsAre(0, 1, 2));
}

TEST(ModuloRouter, ShardOrderIsTheListOrder) {
  auto l = LoadMap(ThreeShards("    routers:\n      m: {type: modulo, shards: [s2, s0]}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const Router& r = Get(*l, "m");
  for (int v = 0; v < 50; ++v) {
    auto s = r.Route(KeyValue::Int(v));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, PartitionRemainder(KeyValue::Int(v), 2) == 0 ? 2 : 0) << v;
  }
  EXPECT_THAT(r.Shards(), ::testing::ElementsAre(0, 2));
}

struct RawCase {
  int64_t key;
  int shard;
};

class RawModulo : public ::testing::TestWithParam<RawCase> {};

TEST_P(RawModulo, Routes) {
  auto l = LoadMap(ThreeShards("    routers:\n      m: {type: modulo, hash: none}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto s = Get(*l, "m").Route(KeyValue::Int(GetParam().key));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, GetParam().shard);
}

INSTANTIATE_TEST_SUITE_P(Table, RawModulo,
                         ::testing::Values(RawCase{0, 0}, RawCase{1, 1}, RawCase{2, 2},
                                           RawCase{3, 0}, RawCase{-1, 2}, RawCase{-3, 0},
                                           RawCase{INT64_MAX, 1}, RawCase{INT64_MIN, 1}));

TEST(ModuloRouter, TextKeysWithPostgresHash) {
  auto l = LoadMap(ThreeShards("    routers:\n      m: {type: modulo, key_type: text}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const Router& r = Get(*l, "m");
  EXPECT_EQ(r.key_type(), KeyType::kText);
  auto s = r.Route(KeyValue::Text("acme"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, static_cast<int>(PartitionRemainder(KeyValue::Text("acme"), 3)));
}

struct BadCase {
  std::string routers;
  std::string message;  // a substring, after "test.yaml:LINE:COL: "
};

class BadModulo : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadModulo, IsRejectedWithPosition) {
  auto l = LoadMap(ThreeShards("    routers:\n" + GetParam().routers));
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()),
              ::testing::ContainsRegex("test\\.yaml:[0-9]+:[0-9]+: "));
  EXPECT_THAT(std::string(l.status().message()), ::testing::HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadModulo,
    ::testing::Values(
        BadCase{"      m: {type: modulo, shards: [s0, s9]}\n", "unknown shard 's9'"},
        BadCase{"      m: {type: modulo, shards: [s0, s0]}\n", "listed twice"},
        BadCase{"      m: {type: modulo, shards: []}\n", "non-empty list"},
        BadCase{"      m: {type: modulo, hash: md5}\n", "hash must be"},
        BadCase{"      m: {type: modulo, hash: none, key_type: text}\n", "integer key_type"},
        BadCase{"      m: {type: modulo, key_type: float}\n", "key_type must be"},
        BadCase{"      m: {type: modulo, shardz: [s0]}\n", "unknown key 'shardz'"},
        BadCase{"      m: {type: modulus}\n", "unknown type 'modulus'"}));

TEST(ModuloRouter, ErrorPointsAtTheOffendingValue) {
  // Line 11 of the generated file is the router line; column 38 is the bad shard name.
  auto l = LoadMap(ThreeShards("    routers:\n      m: {type: modulo, shards: [s0, s9]}\n"));
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()),
              ::testing::StartsWith("test.yaml:11:38: "));
}

// OwnerSql: the same remainder on the server (checked against PostgreSQL in
// owner_sql_live_test); here its shape.
TEST(ModuloRouter, OwnerSqlIndexesTheListOrder) {
  auto l = LoadMap(ThreeShards("    routers:\n      m: {type: modulo, shards: [s2, s0]}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto sql = Get(*l, "m").OwnerSql("\"id\"", testing::ShardNames(*l->map));
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_THAT(*sql, ::testing::StartsWith("(ARRAY['s2', 's0']::text[])[(mod(mod("));
  EXPECT_THAT(*sql, ::testing::HasSubstr("hashint8extended(((\"id\")::int8), "
                                         "8816678312871386365)::numeric"));
  EXPECT_THAT(*sql, ::testing::EndsWith(", 2))::int4 + 1]"));
}

TEST(ModuloRouter, OwnerSqlOfRawModuloIsTheNonNegativeRemainder) {
  auto l = LoadMap(ThreeShards("    routers:\n      m: {type: modulo, hash: none}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto sql = Get(*l, "m").OwnerSql("k", testing::ShardNames(*l->map));
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql, "(ARRAY['s0', 's1', 's2']::text[])[((((k)::int8) % 3 + 3) % 3)::int4 + 1]");
}

TEST(ModuloRouter, OwnerSqlNeedsEveryShardName) {
  auto l = LoadMap(ThreeShards("    routers:\n      m: {type: modulo}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_THAT(Get(*l, "m").OwnerSql("k", {"s0", "s1"}),
              shardgate::testing::HasSqlState("22023"));
}

}  // namespace
}  // namespace shardgate::routing
