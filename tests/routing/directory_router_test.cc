// The directory router: inline entries, default or error for unknown keys, and the store with
// its bounded LRU cache and invalidation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "routing/directory_store.h"
#include "tests/routing/test_util.h"
#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::HasSqlState;
using testing::LoadMap;
using testing::ThreeShards;

TEST(DirectoryRouter, InlineEntriesAndDefault) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      d: {type: directory, entries: {acme: s0, globex: s1, initech: s2}, default: s1}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const Router& r = *l->map->router("d");
  EXPECT_EQ(r.key_type(), KeyType::kText);
  for (auto [key, shard] : std::vector<std::pair<std::string, int>>{
           {"acme", 0}, {"globex", 1}, {"initech", 2}, {"unknown", 1}, {"", 1}}) {
    auto s = r.Route(KeyValue::Text(key));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, shard) << key;
  }
}

TEST(DirectoryRouter, UnknownKeyWithoutDefaultIsAnError) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n      d: {type: directory, entries: {1: s0, 2: s2}}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const Router& r = *l->map->router("d");
  EXPECT_EQ(r.key_type(), KeyType::kInt);  // every entry is an integer
  auto two = r.Route(KeyValue::Int(2));
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(*two, 2);
  EXPECT_THAT(r.Route(KeyValue::Int(3)), HasSqlState("22023"));
  EXPECT_THAT(r.Shards(), ::testing::ElementsAre(0, 2));
}

TEST(DirectoryRouter, StoreLookupsAreCachedAndBounded) {
  auto store = std::make_shared<MemoryDirectoryStore>();
  for (int i = 0; i < 10; ++i) store->Set(KeyValue::Text("k" + std::to_string(i)), "s" + std::to_string(i % 3));
  DirectoryStoreSpec seen;
  auto l = LoadMap(
      ThreeShards("    routers:\n"
                  "      d: {type: directory, cache_size: 4,\n"
                  "          store: {shard: s0, table: dir, key_column: k, shard_column: s}}\n"),
      [&](const DirectoryStoreSpec& spec) -> absl::StatusOr<std::shared_ptr<DirectoryStore>> {
        seen = spec;
        return std::shared_ptr<DirectoryStore>(store);
      });
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(seen.table, "dir");
  EXPECT_EQ(seen.key_column, "k");
  EXPECT_EQ(seen.shard_index, 0);
  const Router& r = *l->map->router("d");
  EXPECT_THAT(r.Shards(), ::testing::ElementsAre(0, 1, 2));
  auto s = r.Route(KeyValue::Text("k4"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 1);
  ASSERT_TRUE(r.Route(KeyValue::Text("k4")).ok());
  EXPECT_EQ(store->lookups(), 1);  // the second one came from the cache
  // Four more distinct keys push k4 out of a cache of 4.
  for (int i = 5; i < 9; ++i) ASSERT_TRUE(r.Route(KeyValue::Text("k" + std::to_string(i))).ok());
  EXPECT_EQ(store->lookups(), 5);
  ASSERT_TRUE(r.Route(KeyValue::Text("k4")).ok());
  EXPECT_EQ(store->lookups(), 6);
  // A moved key is seen after invalidation, not before.
  store->Set(KeyValue::Text("k4"), "s2");
  EXPECT_EQ(*r.Route(KeyValue::Text("k4")), 1);
  EXPECT_TRUE(InvalidateDirectory(r, KeyValue::Text("k4")));
  EXPECT_EQ(*r.Route(KeyValue::Text("k4")), 2);
  // Unknown key, no default: an error, also when repeated (negative entries are cached).
  EXPECT_THAT(r.Route(KeyValue::Text("nope")), HasSqlState("22023"));
  int before = store->lookups();
  EXPECT_THAT(r.Route(KeyValue::Text("nope")), HasSqlState("22023"));
  EXPECT_EQ(store->lookups(), before);
  EXPECT_TRUE(InvalidateDirectory(r));
  store->Set(KeyValue::Text("bad"), "s9");
  EXPECT_THAT(r.Route(KeyValue::Text("bad")), HasSqlState("22023"));
}

TEST(DirectoryRouter, StoreWithoutImplementationFailsAtRouteTime) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n      d: {type: directory, store: {shard: s0}, default: s2}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_THAT(l->map->router("d")->Route(KeyValue::Text("x")), HasSqlState("55000"));
  EXPECT_TRUE(InvalidateDirectory(*l->map->router("d")));
}

struct BadCase {
  std::string router;
  std::string message;
};

class BadDirectory : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadDirectory, IsRejected) {
  auto l = LoadMap(ThreeShards("    routers:\n      d: {type: directory, " + GetParam().router +
                               "}\n"));
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()),
              ::testing::ContainsRegex("test\\.yaml:[0-9]+:[0-9]+: "));
  EXPECT_THAT(std::string(l.status().message()), ::testing::HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadDirectory,
    ::testing::Values(BadCase{"entries: {a: s5}", "unknown shard 's5'"},
                      BadCase{"default: s0", "needs entries: or store:"},
                      BadCase{"entries: {a: s0}, default: nowhere", "unknown shard 'nowhere'"},
                      BadCase{"entries: [a, b]", "entries must be a map"},
                      BadCase{"store: {table: t}", "store needs a shard"},
                      BadCase{"store: {shard: s0, host: x}", "unknown store key 'host'"},
                      BadCase{"key_type: integer, entries: {abc: s0}", "not a valid integer"},
                      BadCase{"key_type: integer, entries: {1: s0, 01: s1}", "listed twice"}));

// A directory of exceptions in front of another router: listed keys go where the entries say,
// the others where the fallback routes them (how a hot key is given a shard of its own).
TEST(DirectoryRouter, FallbackRoutesTheKeysItDoesNotList) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      ring: {type: hash_ring, shards: [s0, s1], vnodes: 64}\n"
      "      pinned: {type: directory, fallback: ring, entries: {42: s2}}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const Router& ring = *l->map->router("ring");
  const Router& pinned = *l->map->router("pinned");
  EXPECT_EQ(pinned.key_type(), KeyType::kInt) << "the fallback's key type";
  EXPECT_THAT(pinned.Shards(), ::testing::ElementsAre(0, 1, 2));
  auto hot = pinned.Route(KeyValue::Int(42));
  ASSERT_TRUE(hot.ok());
  EXPECT_EQ(*hot, 2);
  for (int64_t k = 0; k < 200; ++k) {
    if (k == 42) continue;
    auto a = pinned.Route(KeyValue::Int(k));
    auto b = ring.Route(KeyValue::Int(k));
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b) << k;
  }
  EXPECT_THAT(pinned.Describe(), ::testing::HasSubstr("fallback ring"));
  auto sql = pinned.OwnerSql("\"id\"", {"s0", "s1", "s2"});
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_THAT(*sql, ::testing::StartsWith("CASE "));
  EXPECT_THAT(*sql, ::testing::HasSubstr("WHEN 42 THEN 's2'"));
  EXPECT_THAT(*sql, ::testing::HasSubstr(*ring.OwnerSql("\"id\"", {"s0", "s1", "s2"})));
}

TEST(DirectoryRouter, FallbackErrors) {
  auto error_of = [](const std::string& routers) {
    auto l = LoadMap(ThreeShards("    routers:\n" + routers));
    return l.ok() ? std::string("ok") : std::string(l.status().message());
  };
  EXPECT_THAT(error_of("      d: {type: directory, fallback: nope, entries: {1: s0}}\n"),
              ::testing::HasSubstr("fallback 'nope' is not a router"));
  EXPECT_THAT(error_of("      r: {type: modulo}\n"
                       "      d: {type: directory, fallback: r, default: s1, entries: {1: s0}}\n"),
              ::testing::HasSubstr("not with default"));
  EXPECT_THAT(error_of("      r: {type: modulo}\n"
                       "      d: {type: directory, fallback: r, entries: {abc: s0}}\n"),
              ::testing::HasSubstr("not a valid integer key"));
  EXPECT_THAT(error_of("      r: {type: modulo}\n"
                       "      d: {type: directory, fallback: r, key_type: text, entries: {a: s0}}\n"),
              ::testing::HasSubstr("differs from fallback"));
  EXPECT_THAT(error_of("      r: {type: modulo}\n"
                       "      a: {type: directory, fallback: r, entries: {1: s0}}\n"
                       "      b: {type: directory, fallback: a, entries: {2: s1}}\n"),
              ::testing::HasSubstr("without a fallback of its own"));
  EXPECT_EQ(error_of("      r: {type: modulo}\n"
                     "      d: {type: directory, fallback: r, entries: {7: s2}}\n"),
            "ok");
}

TEST(DirectoryRouter, OwnerSqlListsTheEntriesInKeyOrder) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n      d: {type: directory, entries: {2: s2, -1: s0, 10: s1}}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto sql = l->map->router("d")->OwnerSql("k", testing::ShardNames(*l->map));
  ASSERT_TRUE(sql.ok()) << sql.status();
  // No default: an unknown key is Route's error, NULL here.
  EXPECT_EQ(*sql, "CASE ((k)::int8) WHEN -1 THEN 's0' WHEN 2 THEN 's2' WHEN 10 THEN 's1' "
                  "ELSE NULL::text END");
}

TEST(DirectoryRouter, OwnerSqlQuotesTextKeysAndKeepsNullKeysNull) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      d: {type: directory, entries: {\"o'hara\": s0, 'back\\slash': s2}, default: s1}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto sql = l->map->router("d")->OwnerSql("t", testing::ShardNames(*l->map));
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql, "CASE ((t)::text COLLATE \"C\") WHEN E'back\\\\slash' THEN 's2' "
                  "WHEN 'o''hara' THEN 's0' "
                  "ELSE CASE WHEN ((t)::text COLLATE \"C\") IS NOT NULL THEN 's1' END END");
}

TEST(DirectoryRouter, OwnerSqlOfAStoreIsNotSupported) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n      d: {type: directory, store: {shard: s0}, default: s2}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  auto sql = l->map->router("d")->OwnerSql("k", testing::ShardNames(*l->map));
  EXPECT_THAT(sql, HasSqlState("0A000"));
  EXPECT_THAT(std::string(sql.status().message()), ::testing::HasSubstr("not expressible"));
}

// Without a DirectoryStore (the proxy): a key not cached is a DirectoryMiss the caller reads
// with DirectoryLookupSql and primes; then Route answers from the cache.
TEST(DirectoryRouter, MissesWithoutAStoreArePrimedByTheCaller) {
  auto l = LoadMap(ThreeShards(
      "    routers:\n"
      "      d: {type: directory, default: s2,\n"
      "          store: {shard: s1, table: meta.dir, key_column: Tenant, shard_column: s}}\n"
      "      n: {type: directory, key_type: bigint, store: {shard: s0, table: dir}}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  const Router& d = *l->map->router("d");
  const DirectoryStoreSpec* spec = DirectorySpecOf(d);
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(DirectorySpecOf(*l->map->router("n"))->table, "dir");
  const KeyValue key = KeyValue::Text("o'brien\\ 1");
  auto miss = d.Route(key);
  EXPECT_THAT(miss, HasSqlState("55000"));
  std::optional<DirectoryMiss> m = AsDirectoryMiss(miss.status());
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->router, "d");
  EXPECT_EQ(m->key, key);
  EXPECT_FALSE(AsDirectoryMiss(absl::InternalError("x")).has_value());
  EXPECT_EQ(
      DirectoryLookupSql(*spec, key),
      "SELECT (\"s\")::text FROM \"meta\".\"dir\" WHERE \"Tenant\" = E'o''brien\\\\ 1' LIMIT 1");
  const Router& n = *l->map->router("n");
  EXPECT_EQ(DirectoryLookupSql(*DirectorySpecOf(n), KeyValue::Int(-42)),
            "SELECT (\"shard\")::text FROM \"dir\" WHERE \"key\" = -42 LIMIT 1");
  auto int_miss = AsDirectoryMiss(n.Route(KeyValue::Int(-42)).status());
  ASSERT_TRUE(int_miss.has_value());
  EXPECT_EQ(int_miss->key, KeyValue::Int(-42));
  // Primed: listed, not listed (the default), a shard the map does not have.
  ASSERT_TRUE(PrimeDirectory(d, key, std::string("s0")).ok());
  EXPECT_EQ(*d.Route(key), 0);
  ASSERT_TRUE(PrimeDirectory(d, KeyValue::Text("x"), std::nullopt).ok());
  EXPECT_EQ(*d.Route(KeyValue::Text("x")), 2);
  EXPECT_THAT(PrimeDirectory(d, KeyValue::Text("y"), std::string("s7")), HasSqlState("22023"));
  EXPECT_THAT(d.Route(KeyValue::Text("y")), HasSqlState("55000"));
  EXPECT_THAT(PrimeDirectory(*l->map->router("n"), KeyValue::Int(1), std::string("s9")),
              HasSqlState("22023"));
  // Dropped by a NOTIFY: a miss again.
  EXPECT_TRUE(InvalidateDirectory(d, key));
  EXPECT_TRUE(AsDirectoryMiss(d.Route(key).status()).has_value());
  // An answer read before an invalidation is not cached; one read after it is.
  const uint64_t read_at = DirectoryGeneration(d);
  EXPECT_TRUE(InvalidateDirectory(d, KeyValue::Text("other")));
  ASSERT_TRUE(PrimeDirectory(d, key, std::string("s1"), read_at).ok());
  EXPECT_TRUE(AsDirectoryMiss(d.Route(key).status()).has_value());
  ASSERT_TRUE(PrimeDirectory(d, key, std::string("s1"), DirectoryGeneration(d)).ok());
  EXPECT_EQ(*d.Route(key), 1);
}

}  // namespace
}  // namespace shardgate::routing
