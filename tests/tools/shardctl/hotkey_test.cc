// PinKey: the map `shardctl hotkey move` writes, read back through conf/ and routing/ (no
// server: the reshard run on it is tested in integration.tools.reshard).
#include "tools/shardctl/hotkey.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "conf/config.h"
#include "protocol/status.h"
#include "routing/shard_map.h"

namespace shardgate::tools {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Map(const std::string& routers, const std::string& tables) {
  return "users: [{name: app, password: pw}]\n"
         "databases:\n"
         "  app:\n"
         "    shards:\n"
         "      - {name: s0, primary: {host: 127.0.0.1, port: 5432, dbname: a0}}\n"
         "      - {name: s1, primary: {host: 127.0.0.1, port: 5433, dbname: a1}}\n"
         "      - {name: s2, primary: {host: 127.0.0.1, port: 5434, dbname: a2}}\n"
         "    routers:\n" +
         routers + "    tables:\n" + tables;
}

const std::string kRing =
    "      # users and their orders\n"
    "      by_user: {type: hash_ring, shards: [s0, s1]}\n"
    "      other: {type: modulo, shards: [s0, s1]}\n";
const std::string kTables =
    "      users: {key: id, router: by_user}  # co-located\n"
    "      Orders:\n"
    "        key: user_id\n"
    "        router: by_user\n"
    "      events: {key: id, router: other}\n"
    "      countries: {reference: true}\n";

// The shard the map gives `key` of `table`, and the table's router.
std::pair<std::string, std::string> RouteOf(const std::string& yaml, const std::string& table,
                                            int64_t key) {
  auto config = conf::LoadString(yaml);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return {};
  auto map = routing::ShardMap::Build(*(*config)->FindDatabase("app"));
  EXPECT_TRUE(map.ok()) << map.status();
  const routing::Router* r = (*map)->FindTable("", table)->router;
  auto shard = r->Route(routing::KeyValue::Int(key));
  EXPECT_TRUE(shard.ok());
  return {(*map)->shard_name(*shard), r->name()};
}

std::string SqlState(const absl::Status& st) { return ToPgError(st).sqlstate; }

int64_t KeyOn(const std::string& yaml, const std::string& shard) {
  for (int64_t k = 1;; ++k) {
    if (RouteOf(yaml, "users", k).first == shard) return k;
  }
}

TEST(PinKeyTest, NewDirectoryInFrontOfTheRouterForEveryTableOfIt) {
  const std::string yaml = Map(kRing, kTables);
  const int64_t key = KeyOn(yaml, "s0");
  auto pinned = PinKey(yaml, "map.yaml", "", "users", std::to_string(key), "s2");
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_TRUE(pinned->moves);
  EXPECT_TRUE(pinned->created);
  EXPECT_EQ(pinned->database, "app");
  EXPECT_EQ(pinned->router, "by_user_pinned");
  EXPECT_EQ(pinned->from, "s0");
  EXPECT_THAT(pinned->repointed, ElementsAre("Orders", "users"));
  EXPECT_TRUE(pinned->notes.empty());
  // The old text with three edits: comments, layout and the other tables as they were.
  EXPECT_EQ(pinned->yaml,
            Map("      # users and their orders\n"
                "      by_user_pinned: {type: directory, fallback: by_user, entries: {" +
                    std::to_string(key) +
                    ": s2}}\n"
                    "      by_user: {type: hash_ring, shards: [s0, s1]}\n"
                    "      other: {type: modulo, shards: [s0, s1]}\n",
                "      users: {key: id, router: by_user_pinned}  # co-located\n"
                "      Orders:\n"
                "        key: user_id\n"
                "        router: by_user_pinned\n"
                "      events: {key: id, router: other}\n"
                "      countries: {reference: true}\n"));
  EXPECT_EQ(RouteOf(pinned->yaml, "users", key),
            std::make_pair(std::string("s2"), std::string("by_user_pinned")));
  EXPECT_EQ(RouteOf(pinned->yaml, "orders", key).first, "s2");
  // Every other key stays where the ring had it.
  for (int64_t k = 1; k < 200; ++k) {
    if (k != key)
      EXPECT_EQ(RouteOf(pinned->yaml, "users", k),
                std::make_pair(RouteOf(yaml, "users", k).first, std::string("by_user_pinned")))
          << k;
  }
  EXPECT_EQ(RouteOf(pinned->yaml, "events", key).second, "other");
}

TEST(PinKeyTest, ASecondKeyJoinsTheDirectoryAndAMovedKeyMovesAgain) {
  const std::string yaml = Map(kRing, kTables);
  const int64_t a = KeyOn(yaml, "s0");
  const int64_t b = KeyOn(yaml, "s1");
  auto first = PinKey(yaml, "map.yaml", "app", "users", std::to_string(a), "s2");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = PinKey(first->yaml, "map.yaml", "app", "orders", std::to_string(b), "s2");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->created);
  EXPECT_TRUE(second->repointed.empty());
  EXPECT_EQ(second->from, "s1");
  EXPECT_TRUE(second->notes.empty()) << "s2 holds only pinned keys";
  EXPECT_THAT(second->yaml, HasSubstr(absl::StrCat("entries: {", b, ": s2, ", a, ": s2}")));
  EXPECT_EQ(RouteOf(second->yaml, "users", a).first, "s2");
  EXPECT_EQ(RouteOf(second->yaml, "users", b).first, "s2");
  // Key a to s1: its entry's shard is replaced, not listed twice.
  auto third = PinKey(second->yaml, "map.yaml", "app", "users", std::to_string(a), "s1");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->from, "s2");
  EXPECT_THAT(third->yaml, HasSubstr(absl::StrCat("entries: {", b, ": s2, ", a, ": s1}")));
  EXPECT_EQ(RouteOf(third->yaml, "users", a).first, "s1");
  ASSERT_EQ(third->notes.size(), 1u) << "s1 is a shard of the ring: not one of its own";
  EXPECT_THAT(third->notes[0], HasSubstr("other keys of router by_user"));
  // Where it already is: nothing to do.
  auto again = PinKey(third->yaml, "map.yaml", "app", "users", std::to_string(a), "s1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->moves);
  EXPECT_EQ(again->yaml, third->yaml);
}

TEST(PinKeyTest, ADirectoryRouterGetsTheEntryItself) {
  const std::string yaml =
      Map("      tenants:\n"
          "        type: directory\n"
          "        default: s0\n"
          "        entries:\n"
          "          acme: s1   # big\n",
          "      accounts: {key: tenant, router: tenants}\n");
  auto pinned = PinKey(yaml, "map.yaml", "app", "accounts", "globex corp", "s2");
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_FALSE(pinned->created);
  EXPECT_EQ(pinned->router, "tenants");
  EXPECT_EQ(pinned->from, "s0");
  EXPECT_THAT(pinned->yaml, HasSubstr("        entries:\n"
                                      "          \"globex corp\": s2\n"
                                      "          acme: s1   # big\n"));
  auto config = conf::LoadString(pinned->yaml);
  ASSERT_TRUE(config.ok()) << config.status();
  auto map = routing::ShardMap::Build(*(*config)->FindDatabase("app"));
  ASSERT_TRUE(map.ok()) << map.status();
  auto shard = (*map)->router("tenants")->Route(routing::KeyValue::Text("globex corp"));
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ((*map)->shard_name(*shard), "s2");
}

TEST(PinKeyTest, ClearErrors) {
  const std::string yaml = Map(kRing, kTables);
  struct Case {
    std::string table, key, shard, sqlstate, message;
  } cases[] = {
      {"users", "42", "s9", "42704", "no shard 's9'"},
      {"users", "forty-two", "s2", "22P02", "not a valid integer key of router by_user"},
      {"nope", "42", "s2", "42P01", "table nope is not a sharded table"},
      {"countries", "42", "s2", "42P01", "not a sharded table"},
  };
  for (const Case& c : cases) {
    auto pinned = PinKey(yaml, "map.yaml", "app", c.table, c.key, c.shard);
    ASSERT_FALSE(pinned.ok()) << c.table;
    EXPECT_EQ(SqlState(pinned.status()), c.sqlstate) << pinned.status();
    EXPECT_THAT(std::string(pinned.status().message()), HasSubstr(c.message));
  }
  EXPECT_EQ(SqlState(PinKey(yaml, "map.yaml", "nodb", "users", "1", "s2").status()), "3D000");
  // A router already named <router>_pinned that is something else.
  const std::string taken =
      Map(kRing + "      by_user_pinned: {type: modulo, shards: [s2]}\n", kTables);
  EXPECT_EQ(SqlState(PinKey(taken, "map.yaml", "app", "users", "1", "s2").status()), "42710");
  // A directory kept in a table.
  const std::string stored =
      Map("      d: {type: directory, store: {shard: s0, table: dir, key_column: k, shard_column: "
          "s}}\n",
          "      t: {key: id, router: d}\n");
  EXPECT_EQ(SqlState(PinKey(stored, "map.yaml", "app", "t", "1", "s2").status()), "0A000");
  // A map that does not load is reported as such.
  EXPECT_FALSE(PinKey("databases: [", "map.yaml", "app", "t", "1", "s2").ok());
}

}  // namespace
}  // namespace shardgate::tools
