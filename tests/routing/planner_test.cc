// The planner over a three-shard map with every router type: which shards, which role, and the
// refusals (0A000) for what cannot run correctly across shards.
#include "routing/planner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "routing/analysis_cache.h"
#include "routing/hints.h"
#include "tests/routing/test_util.h"
#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::HasSqlState;

const char kMap[] =
    "    read_from: replicas\n"
    "    routers:\n"
    "      by_user: {type: hash_ring, shards: [s0, s1, s2], vnodes: 64}\n"
    "      legacy: {type: modulo, shards: [s0, s1, s2]}\n"
    "      by_range: {type: range, ranges: [{to: 100, shard: s0}, {to: 200, shard: s1}, "
    "{shard: s2}]}\n"
    "      tenants: {type: directory, entries: {acme: s0, globex: s1}}\n"
    "      pair: {type: modulo, shards: [s1, s2]}\n"
    "    tables:\n"
    "      users: {key: id, router: by_user}\n"
    "      orders: {key: user_id, router: by_user}\n"
    "      invoices: {key: id, router: legacy}\n"
    "      events: {key: id, router: by_range}\n"
    "      event_notes: {key: event_id, router: by_range}\n"
    "      accounts: {key: tenant, router: tenants}\n"
    "      countries: {reference: true}\n"
    "      tickets: {key: id, router: pair, generated_key: true}\n";

class PlannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = testing::LoadMap(testing::ThreeShards(kMap));
    ASSERT_TRUE(l.ok()) << l.status();
    loaded_ = *l;
    planner_ = std::make_unique<Planner>(loaded_.map);
  }

  absl::StatusOr<RoutePlan> Plan(const std::string& sql, const ParamValues& params = {},
                                 bool in_transaction = false) {
    auto hints = ParseCommentHints(sql);
    if (!hints.ok()) return hints.status();
    auto a = cache_.Analyze(sql);
    if (!a.ok()) return a.status();
    PlanInput in;
    in.literals = a->literals;
    in.params = params;
    in.hints = *hints;
    in.in_transaction = in_transaction;
    return planner_->Plan(*a->analysis, in);
  }

  // "one s1 replica", "some s0,s1 replica merge", or "error 0A000".
  std::string Render(const std::string& sql) {
    auto p = Plan(sql);
    if (!p.ok()) return "error " + shardgate::SqlState(p.status());
    std::string s(SpreadName(p->spread));
    s += " ";
    for (size_t i = 0; i < p->shards.size(); ++i) {
      s += (i ? "," : "") + loaded_.map->shard_name(p->shards[i]);
    }
    s += " " + std::string(RoleName(p->role));
    if (p->merge) s += " merge";
    return s;
  }

  std::string UserShard(int64_t id) {
    return loaded_.map->shard_name(*loaded_.map->router("by_user")->Route(KeyValue::Int(id)));
  }

  testing::Loaded loaded_;
  std::unique_ptr<Planner> planner_;
  AnalysisCache cache_;
};

struct Case {
  std::string sql;
  std::string expected;
};

class PlanTable : public PlannerTest, public ::testing::WithParamInterface<Case> {};

TEST_P(PlanTable, Routes) { EXPECT_EQ(Render(GetParam().sql), GetParam().expected); }

INSTANTIATE_TEST_SUITE_P(
    Keys, PlanTable,
    ::testing::Values(
        Case{"SELECT * FROM events WHERE id = 5", "one s0 replica"},
        Case{"SELECT * FROM events WHERE id = 150", "one s1 replica"},
        Case{"SELECT * FROM events WHERE id = -5", "one s0 replica"},
        Case{"SELECT * FROM events WHERE id = '150'", "one s1 replica"},
        Case{"SELECT * FROM events WHERE id IN (5, 150)", "some s0,s1 replica merge"},
        Case{"SELECT * FROM events WHERE id = ANY('{5,500}')", "some s0,s2 replica merge"},
        Case{"SELECT * FROM events WHERE id = ANY(ARRAY[150, 151])", "one s1 replica"},
        Case{"SELECT * FROM events WHERE id = 5 OR id = 150", "some s0,s1 replica merge"},
        Case{"SELECT * FROM events WHERE (id = 5 OR id = 6) AND x = 1", "one s0 replica"},
        Case{"SELECT * FROM events WHERE id = 5 AND id = 150", "one s0 replica"},
        Case{"SELECT * FROM events WHERE id = NULL", "one s0 replica"},
        Case{"SELECT * FROM invoices WHERE id = 0", "one s2 replica"},
        Case{"SELECT * FROM invoices WHERE id = 3", "one s1 replica"},
        Case{"SELECT * FROM accounts WHERE tenant = 'globex'", "one s1 replica"},
        Case{"SELECT * FROM events e WHERE e.id = 500", "one s2 replica"},
        Case{"SELECT * FROM (SELECT * FROM events WHERE id = 150) x", "one s1 replica"},
        Case{"WITH x AS (SELECT * FROM events WHERE id = 500) SELECT * FROM x",
             "one s2 replica"}));

INSTANTIATE_TEST_SUITE_P(
    NotNarrowed, PlanTable,
    ::testing::Values(
        Case{"SELECT * FROM events", "all s0,s1,s2 replica merge"},
        Case{"SELECT * FROM events WHERE id = 5 OR x = 1", "all s0,s1,s2 replica merge"},
        Case{"SELECT * FROM events WHERE abs(id) = 5", "all s0,s1,s2 replica merge"},
        Case{"SELECT * FROM events WHERE id + 0 = 5", "all s0,s1,s2 replica merge"},
        Case{"SELECT * FROM events WHERE NOT id = 5", "all s0,s1,s2 replica merge"},
        Case{"SELECT * FROM events WHERE id > 5", "all s0,s1,s2 replica merge"},
        Case{"SELECT count(*) FROM events", "all s0,s1,s2 replica merge"},
        Case{"SELECT a, count(*) FROM events GROUP BY a HAVING count(*) > 2",
             "all s0,s1,s2 replica merge"},
        Case{"SELECT a FROM events ORDER BY lower(b)", "all s0,s1,s2 replica merge"}));

INSTANTIATE_TEST_SUITE_P(
    Writes, PlanTable,
    ::testing::Values(
        Case{"UPDATE events SET x = 1 WHERE id = 150", "one s1 primary"},
        Case{"DELETE FROM events", "all s0,s1,s2 primary"},
        Case{"DELETE FROM events WHERE id IN (1, 2)", "one s0 primary"},
        Case{"INSERT INTO events (id, x) VALUES (5, 1)", "one s0 primary"},
        Case{"INSERT INTO events (x, id) VALUES (1, 500), (2, 150)", "some s1,s2 primary"},
        Case{"SELECT * FROM events WHERE id = 5 FOR UPDATE", "one s0 primary"},
        Case{"INSERT INTO countries (code) VALUES ('fr')", "all s0,s1,s2 primary"},
        Case{"CREATE TABLE foo (a int)", "all s0,s1,s2 primary"},
        Case{"CREATE INDEX ON events (x)", "all s0,s1,s2 primary"},
        Case{"SELECT nextval('seq')", "one s0 primary"},
        Case{"WITH d AS (DELETE FROM events WHERE id = 500 RETURNING *) SELECT * FROM d",
             "one s2 primary"},
        Case{"COPY events TO STDOUT", "all s0,s1,s2 replica merge"}));

INSTANTIATE_TEST_SUITE_P(
    Refused, PlanTable,
    ::testing::Values(
        Case{"INSERT INTO events (x) VALUES (1)", "error 0A000"},
        Case{"INSERT INTO events (id) VALUES (NULL)", "error 23502"},
        Case{"INSERT INTO events (id) VALUES (DEFAULT)", "error 23502"},
        Case{"INSERT INTO events (id) VALUES (abs(-1))", "error 0A000"},
        Case{"INSERT INTO events (id) SELECT 1", "error 0A000"},
        Case{"INSERT INTO events DEFAULT VALUES", "error 0A000"},
        Case{"UPDATE events SET id = 7 WHERE id = 5", "error 0A000"},
        Case{"SELECT * FROM nowhere", "error 0A000"},
        Case{"SELECT DISTINCT ON (a) a FROM events", "error 0A000"},
        Case{"SELECT string_agg(a, ',') FROM events", "error 0A000"},
        Case{"SELECT * FROM users u JOIN invoices i ON i.id = u.id", "error 0A000"},
        Case{"SELECT * FROM events a JOIN events b ON a.id = b.other", "error 0A000"},
        Case{"SELECT * FROM accounts WHERE tenant = 'nobody'", "error 22023"},
        Case{"SELECT * FROM events WHERE id = 'abc'", "error 22P02"},
        Case{"SELECT * FROM events WHERE id = 99999999999999999999", "error 22003"},
        Case{"SELECT * FROM events WHERE id = 1.5", "error 22P02"},
        Case{"UPDATE countries SET name = 'x' FROM events WHERE events.id = 1", "error 0A000"},
        Case{"SELECT * FROM events WHERE id = 5; SELECT * FROM events WHERE id = 150",
             "error 0A000"},
        Case{"COPY events FROM STDIN", "error 0A000"},
        Case{"DO $$ BEGIN END $$", "error 0A000"},
        Case{"SELEKT 1", "error 42601"}));

INSTANTIATE_TEST_SUITE_P(
    Others, PlanTable,
    ::testing::Values(
        Case{"SELECT 1", "any s0,s1,s2 replica"},
        Case{"SELECT * FROM countries", "any s0,s1,s2 replica"},
        Case{"SELECT * FROM pg_catalog.pg_class", "any s0,s1,s2 replica"},
        Case{"SELECT * FROM events e JOIN countries c ON c.code = e.country WHERE e.id = 150",
             "one s1 replica"},
        Case{"SELECT DISTINCT ON (a) a FROM events WHERE id = 5", "one s0 replica"},
        Case{"SELECT * FROM events e JOIN event_notes n ON n.event_id = e.id WHERE e.id = 150",
             "one s1 replica"},
        Case{"SELECT * FROM events e JOIN event_notes n ON n.event_id = e.id",
             "all s0,s1,s2 replica merge"},
        Case{"SELECT * FROM events a, event_notes b WHERE a.id = 5 AND b.event_id = 6",
             "one s0 replica"},
        Case{"SELECT * FROM events WHERE id IN (SELECT event_id FROM event_notes WHERE "
             "event_id = 150)",
             "one s1 replica"},
        Case{"BEGIN", "any s0,s1,s2 primary"},
        Case{"SET search_path = public", "any s0,s1,s2 replica"},
        Case{"SELECT 1; SELECT 2", "any s0,s1,s2 replica"},
        Case{"SELECT * FROM events WHERE id = 5; UPDATE events SET x = 1 WHERE id = 6",
             "one s0 primary"},
        Case{"/* shardgate: shard=s2 */ SELECT * FROM events", "one s2 replica"},
        Case{"SELECT * FROM events /* shardgate: key=150 */", "one s1 replica"},
        Case{"/* shardgate: primary */ SELECT * FROM events WHERE id = 5", "one s0 primary"},
        Case{"/* shardgate: shard=s9 */ SELECT 1", "error 22023"},
        Case{"/* shardgate: key=abc */ SELECT * FROM events", "error 22P02"}));

// generated_key: true (shardctl sequence install): an INSERT or COPY that leaves the key to
// the shard goes to any one shard of the table's router, as a write; without the flag it is
// refused as before.
INSTANTIATE_TEST_SUITE_P(
    GeneratedKey, PlanTable,
    ::testing::Values(
        Case{"INSERT INTO tickets (v) VALUES ('a')", "any s1,s2 primary"},
        Case{"INSERT INTO tickets (id, v) VALUES (DEFAULT, 'a'), (DEFAULT, 'b') RETURNING id",
             "any s1,s2 primary"},
        Case{"INSERT INTO tickets DEFAULT VALUES RETURNING id", "any s1,s2 primary"},
        Case{"INSERT INTO tickets (v, c) VALUES ('a', (SELECT code FROM countries LIMIT 1))",
             "any s1,s2 primary"},
        Case{"INSERT INTO tickets (id, v) VALUES (DEFAULT, 'a'), (5, 'b')", "error 23502"},
        Case{"INSERT INTO tickets (v) VALUES ((SELECT max(x) FROM events))", "error 0A000"},
        Case{"INSERT INTO tickets (v) SELECT name FROM countries", "error 0A000"},
        Case{"INSERT INTO invoices (x) VALUES (1)", "error 0A000"},
        Case{"INSERT INTO invoices DEFAULT VALUES", "error 0A000"},
        Case{"COPY tickets (v) FROM STDIN", "any s1,s2 primary"},
        Case{"COPY tickets FROM STDIN", "error 0A000"},
        Case{"COPY invoices (x) FROM STDIN", "error 0A000"}));

TEST_F(PlannerTest, GeneratedKeyInsertIsAWriteToAnyShardOfItsRouter) {
  auto p = Plan("INSERT INTO tickets (v) VALUES ($1) RETURNING id", {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->spread, RoutePlan::Spread::kAnyOne);
  EXPECT_TRUE(p->write);
  EXPECT_EQ(p->role, Role::kPrimary);
  EXPECT_THAT(p->shards, ::testing::ElementsAre(1, 2));
  EXPECT_EQ(p->copy_router, nullptr);
  // With the key named, it routes by the key as usual.
  auto keyed = Plan("INSERT INTO tickets (id, v) VALUES (4, 'a')");
  ASSERT_TRUE(keyed.ok()) << keyed.status();
  EXPECT_EQ(keyed->spread, RoutePlan::Spread::kOne);
}

TEST_F(PlannerTest, CoLocatedJoinFollowsTheKey) {
  EXPECT_EQ(Render("SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 42"),
            "one " + UserShard(42) + " replica");
  EXPECT_EQ(Render("SELECT * FROM users u, orders o WHERE o.user_id = u.id AND o.user_id = 7"),
            "one " + UserShard(7) + " replica");
  EXPECT_EQ(Render("SELECT * FROM users u JOIN orders o ON o.user_id = u.id"),
            "all s0,s1,s2 replica merge");
  EXPECT_EQ(Render("SELECT * FROM users u WHERE u.id = 9 AND EXISTS (SELECT 1 FROM orders o "
                   "WHERE o.user_id = u.id)"),
            "one " + UserShard(9) + " replica");
}

std::string BigEndian(uint64_t v, int n) {
  std::string out;
  for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

TEST_F(PlannerTest, BindParameters) {
  std::vector<std::optional<std::string_view>> values = {std::string_view("150")};
  ParamValues text{values, {}, {}};
  auto p = Plan("SELECT * FROM events WHERE id = $1", text);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->shards, ::testing::ElementsAre(1));

  std::string b500 = BigEndian(500, 8);
  std::vector<std::optional<std::string_view>> bvalues = {std::string_view(b500)};
  std::vector<int16_t> binary = {1};
  std::vector<uint32_t> types = {oid::kInt8};
  p = Plan("SELECT * FROM events WHERE id = $1", ParamValues{bvalues, binary, types});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->shards, ::testing::ElementsAre(2));

  std::vector<std::optional<std::string_view>> null_value = {std::nullopt};
  p = Plan("SELECT * FROM events WHERE id = $1", ParamValues{null_value, {}, {}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->spread, RoutePlan::Spread::kOne);

  EXPECT_THAT(Plan("SELECT * FROM events WHERE id = $2", text), HasSqlState("08P01"));

  std::vector<std::optional<std::string_view>> array = {std::string_view("{5,150}")};
  p = Plan("SELECT * FROM events WHERE id = ANY($1)", ParamValues{array, {}, {}});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->shards, ::testing::ElementsAre(0, 1));

  // The same prepared shape with other values: the cached analysis is re-used.
  std::vector<std::optional<std::string_view>> two = {std::string_view("5"),
                                                      std::string_view("x")};
  p = Plan("UPDATE events SET x = $2 WHERE id = $1", ParamValues{two, {}, {}});
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->shards, ::testing::ElementsAre(0));
  EXPECT_EQ(p->role, Role::kPrimary);
}

TEST_F(PlannerTest, MultiRowInsertIsSplitPerShard) {
  auto p = Plan("INSERT INTO events (id, x) VALUES (5, 1), (500, 2), (6, 3), (150, 4)");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->shards, ::testing::ElementsAre(0, 1, 2));
  ASSERT_EQ(p->insert_rows.size(), 3u);
  EXPECT_THAT(p->insert_rows[0], ::testing::ElementsAre(0, 2));
  EXPECT_THAT(p->insert_rows[1], ::testing::ElementsAre(3));
  EXPECT_THAT(p->insert_rows[2], ::testing::ElementsAre(1));
}

TEST_F(PlannerTest, CopyFromIsSplitByTheKeyColumn) {
  auto p = Plan("COPY events (x, id) FROM STDIN WITH (FORMAT csv)");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->spread, RoutePlan::Spread::kAll);
  EXPECT_EQ(p->copy_key_column, 1);
  ASSERT_NE(p->copy_router, nullptr);
  EXPECT_EQ(p->copy_router->name(), "by_range");
  EXPECT_TRUE(p->write);
}

TEST_F(PlannerTest, TransactionsAndReasons) {
  auto p = Plan("SELECT * FROM events WHERE id = 5", {}, /*in_transaction=*/true);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->role, Role::kPrimary);
  p = Plan("SELECT * FROM events WHERE id IN (5, 150)");
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->reason, ::testing::HasSubstr("events.id in (5, 150) -> s0, s1"));
  p = Plan("SELECT * FROM events");
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->reason, ::testing::HasSubstr("no key condition on events"));
  auto refused = Plan("SELECT * FROM events a JOIN events b ON a.id = b.other");
  EXPECT_FALSE(shardgate::Hint(refused.status()).empty());
}

// The keys a plan routed by feed the hot-key sketch and the query cache's invalidation.
TEST_F(PlannerTest, PlansCarryTheKeysTheyRoutedBy) {
  auto keys_of = [&](const std::string& sql) {
    auto p = Plan(sql);
    EXPECT_TRUE(p.ok()) << sql << ": " << p.status();
    std::string s;
    if (!p.ok()) return s;
    for (const RoutedKey& k : p->keys) s += k.table->name + "=" + k.key.ToString() + " ";
    return s + (p->keys_complete ? "complete" : "partial");
  };
  EXPECT_EQ(keys_of("SELECT * FROM users WHERE id = 42"), "users=42 complete");
  EXPECT_EQ(keys_of("SELECT * FROM accounts WHERE tenant IN ('acme', 'globex')"),
            "accounts=acme accounts=globex complete");
  EXPECT_EQ(keys_of("INSERT INTO users (id, name) VALUES (7, 'a'), (8, 'b')"),
            "users=7 users=8 complete");
  EXPECT_EQ(keys_of("UPDATE users SET name = 'x' WHERE id = 9; DELETE FROM users WHERE id = 9"),
            "users=9 users=9 complete");
  EXPECT_EQ(keys_of("/* shardgate: key=5 */ SELECT count(*) FROM orders"), "orders=5 complete");
  EXPECT_EQ(keys_of("SELECT * FROM users"), "partial");
  EXPECT_EQ(keys_of("SELECT * FROM countries"), "complete");
  std::string many = "SELECT * FROM users WHERE id IN (0";
  for (int i = 1; i < 40; ++i) many += ", " + std::to_string(i);
  auto p = Plan(many + ")");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->keys.size(), RoutePlan::kMaxKeys);
  EXPECT_FALSE(p->keys_complete);
}

TEST(PlannerMaps, SingleShardAndDefaultShard) {
  auto single = testing::LoadMap(
      "    shards:\n      - {name: only, primary: {host: 127.0.0.1, port: 5432}}\n");
  ASSERT_TRUE(single.ok()) << single.status();
  Planner planner(single->map);
  AnalysisCache cache;
  auto a = cache.Analyze("SELECT * FROM anything WHERE x = 1");
  ASSERT_TRUE(a.ok());
  PlanInput in;
  in.literals = a->literals;
  auto p = planner.Plan(*a->analysis, in);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->shards, ::testing::ElementsAre(0));
  EXPECT_EQ(p->spread, RoutePlan::Spread::kOne);

  auto with_default = testing::LoadMap(testing::ThreeShards(
      "    default_shard: s1\n    read_from: primary\n"
      "    routers:\n      r: {type: modulo}\n    tables:\n      t: {key: id, router: r}\n"));
  ASSERT_TRUE(with_default.ok()) << with_default.status();
  Planner p2(with_default->map);
  a = cache.Analyze("SELECT * FROM unlisted");
  ASSERT_TRUE(a.ok());
  in.literals = a->literals;
  p = p2.Plan(*a->analysis, in);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->shards, ::testing::ElementsAre(1));
  EXPECT_EQ(p->role, Role::kPrimary);  // read_from: primary
  a = cache.Analyze("SELECT * FROM unlisted u JOIN t ON t.id = u.id");
  ASSERT_TRUE(a.ok());
  EXPECT_THAT(p2.Plan(*a->analysis, in), HasSqlState("0A000"));

  // DDL on unlisted tables goes to the default shard, DROP included (pgbench -i drops its
  // tables first: DROP names them as strings, not RangeVars); DDL on a listed table everywhere.
  for (const char* ddl : {"CREATE TABLE unlisted (a int)",
                          "DROP TABLE IF EXISTS unlisted, other_unlisted",
                          "DROP TABLE public.unlisted"}) {
    a = cache.Analyze(ddl);
    ASSERT_TRUE(a.ok()) << ddl;
    in.literals = a->literals;
    p = p2.Plan(*a->analysis, in);
    ASSERT_TRUE(p.ok()) << ddl << ": " << p.status();
    EXPECT_THAT(p->shards, ::testing::ElementsAre(1)) << ddl;
  }
  for (const char* ddl : {"DROP TABLE t", "DROP TABLE IF EXISTS unlisted, t"}) {
    a = cache.Analyze(ddl);
    ASSERT_TRUE(a.ok()) << ddl;
    in.literals = a->literals;
    p = p2.Plan(*a->analysis, in);
    ASSERT_TRUE(p.ok()) << ddl << ": " << p.status();
    EXPECT_EQ(p->spread, RoutePlan::Spread::kAll) << ddl;
  }
}

}  // namespace
}  // namespace shardgate::routing
