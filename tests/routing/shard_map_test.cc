// Building a ShardMap from configuration: routers, table rules, lookups, and every problem
// reported with its position.
#include "routing/shard_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/routing/test_util.h"

namespace shardgate::routing {
namespace {

using testing::LoadMap;
using testing::ThreeShards;

TEST(ShardMap, BuildsTheExampleShape) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      by_user: {type: hash_ring, shards: [s0, s1, s2], vnodes: 16}\n"
      "      legacy: {type: modulo, hash: postgres, shards: [s0, s1, s2]}\n"
      "    tables:\n"
      "      users: {key: id, router: by_user}\n"
      "      orders: {key: User_Id, router: by_user}\n"
      "      public.items: {key: id, router: legacy}\n"
      "      countries: {reference: true}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const ShardMap& m = *l->map;
  EXPECT_TRUE(m.sharded());
  EXPECT_EQ(m.shard_count(), 3);
  EXPECT_EQ(m.FindShard("s2"), 2);
  EXPECT_EQ(m.FindShard("s9"), std::nullopt);
  ASSERT_NE(m.router("by_user"), nullptr);
  EXPECT_EQ(m.router("nope"), nullptr);
  const ShardMap::Table* orders = m.FindTable("", "orders");
  ASSERT_NE(orders, nullptr);
  EXPECT_EQ(orders->key, "user_id");  // keys compare with the parser's lower-case names
  EXPECT_EQ(orders->router, m.router("by_user"));
  EXPECT_NE(m.FindTable("public", "users"), nullptr);
  EXPECT_NE(m.FindTable("", "items"), nullptr);
  EXPECT_NE(m.FindTable("public", "items"), nullptr);
  EXPECT_EQ(m.FindTable("other", "users"), nullptr);
  EXPECT_TRUE(m.FindTable("", "countries")->reference);
  EXPECT_EQ(m.FindTable("", "missing"), nullptr);
}

TEST(ShardMap, FindTableLooksInPublicFirstThenTheBareNameAndOtherSchemasExactly) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      r: {type: modulo, hash: postgres, shards: [s0, s1, s2]}\n"
      "    tables:\n"
      "      events: {key: a, router: r}\n"
      "      public.events: {key: b, router: r}\n"
      "      logs: {key: c, router: r}\n"
      "      audit.logs: {key: d, router: r}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const ShardMap& m = *l->map;
  // A rule for public.x wins over one for x, with or without the schema in the statement.
  ASSERT_NE(m.FindTable("", "events"), nullptr);
  EXPECT_EQ(m.FindTable("", "events")->key, "b");
  EXPECT_EQ(m.FindTable("public", "events")->key, "b");
  // Another schema's rule applies only to that schema; the bare rule to public.
  EXPECT_EQ(m.FindTable("", "logs")->key, "c");
  EXPECT_EQ(m.FindTable("public", "logs")->key, "c");
  ASSERT_NE(m.FindTable("audit", "logs"), nullptr);
  EXPECT_EQ(m.FindTable("audit", "logs")->key, "d");
  EXPECT_EQ(m.FindTable("audit", "events"), nullptr);
  EXPECT_EQ(m.FindTable("", "audit.logs"), nullptr);  // a name, not a schema and a name
  EXPECT_EQ(m.FindTable(std::string(100, 's'), std::string(100, 't')), nullptr);  // long names
}

TEST(ShardMap, OneShardWithoutRoutersIsNotSharded) {
  auto l = LoadMap("    shards:\n      - {name: only, primary: {host: 127.0.0.1, port: 5432}}\n");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_FALSE(l->map->sharded());
  EXPECT_EQ(l->map->all_shards(), std::vector<int>{0});
}

TEST(ShardMap, ReportsEveryRouterProblemWithItsPosition) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      a: {type: modulo, shards: [s0, s5]}\n"
      "      b: {type: range, ranges: [{to: 10, shard: s0}, {from: 5, shard: s1}]}\n"
      "      c: {type: hash_ring, vnodes: 0}\n"));
  ASSERT_FALSE(l.ok());
  std::string message(l.status().message());
  EXPECT_THAT(message, ::testing::HasSubstr("test.yaml:11:"));
  EXPECT_THAT(message, ::testing::HasSubstr("test.yaml:12:"));
  EXPECT_THAT(message, ::testing::HasSubstr("test.yaml:13:"));
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 2);
}

TEST(ShardMap, EveryRegisteredTypeBuilds) {
  std::vector<std::string> names;
  for (const RouterType& t : RouterTypes()) names.emplace_back(t.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("modulo", "range", "directory",
                                                     "hash_ring"));
}

}  // namespace
}  // namespace shardgate::routing
