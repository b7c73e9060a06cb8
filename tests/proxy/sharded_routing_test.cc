// Issue 4, routing through the proxy: for every router type each row written through shardgate
// lands on exactly the shard its router names (checked on the shards directly, and for the
// PostgreSQL-hash modulo router with satisfies_hash_partition), keyed reads find every row,
// a transaction reaching a second shard commits on both (an error aborts all of it), keyless
// statements run on every shard, reference tables are
// written everywhere, and $1 keys in text and binary route like literals.
#include <map>
#include <set>

#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// ---------------------------------------------------------------------------------------------
// 1. Every row on the shard its router names

struct RouterCase {
  std::string name;   // test-name suffix
  std::string table;  // the table routed by this router
  bool text_key;      // directory: tenant names; others: bigint ids
};

// gtest prints parameters of failed tests: a name instead of the struct's bytes.
void PrintTo(const RouterCase& c, std::ostream* os) { *os << c.name << " (" << c.table << ")"; }

// 200 keys per router: bigint ids spread over negatives and thousands, or tenant names.
std::vector<std::string> KeysFor(const RouterCase& c) {
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) {
    keys.push_back(c.text_key ? TenantName(i % kDirectoryTenants) : std::to_string(i * 37 - 500));
  }
  return keys;
}

// A key as the SQL literal it is written as.
std::string Literal(const RouterCase& c, const std::string& key) {
  return c.text_key ? absl::StrCat("'", key, "'") : key;
}

// An oracle that does not use the routing library, where the router's rule is simple enough.
std::optional<int> IndependentShard(const RouterCase& c, const std::string& key) {
  if (c.table == "t_range") {
    const int64_t k = std::stoll(key);
    return k < kRangeBound1 ? 0 : (k < kRangeBound2 ? 1 : 2);
  }
  if (c.table == "t_dir") {
    const int i = std::stoi(key.substr(std::string("tenant_").size()));
    return i < kDirectoryListed ? TenantEntryShard(i) : 2;  // unlisted: `default: s2`
  }
  return std::nullopt;
}

class RowsLandOnTheirShard : public ShardedRoutingTest,
                             public ::testing::WithParamInterface<RouterCase> {};

TEST_P(RowsLandOnTheirShard, EveryRowIsOnExactlyTheShardItsRouterNames) {
  const RouterCase& c = GetParam();
  const std::string key_col = c.text_key ? "tenant" : "id";
  ASSERT_OK(env().ExecOnPrimaries(absl::StrCat("TRUNCATE ", c.table)));

  // The oracle: the routing library, built from the same YAML as shardgate's.
  std::map<std::string, int> expected;
  for (const std::string& key : KeysFor(c)) {
    std::string why;
    const int shard = c.text_key ? env().ShardOf(c.table, routing::KeyValue::Text(key), &why)
                                 : env().ShardOf(c.table, std::stoll(key));
    ASSERT_GE(shard, 0) << c.table << " key " << key << ": " << why;
    if (auto independent = IndependentShard(c, key)) {
      ASSERT_EQ(shard, *independent) << "routing library disagrees with the rule for " << key;
    }
    expected[key] = shard;
  }
  std::set<int> used;
  for (const auto& [key, shard] : expected) used.insert(shard);
  ASSERT_EQ(used.size(), 3u) << "the keys should cover every shard";

  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  for (const auto& [key, shard] : expected) {
    const Outcome o =
        RunSql(conn, absl::StrCat("INSERT INTO ", c.table, " (", key_col, ", v) VALUES (",
                                  Literal(c, key), ", 'row ", key, "')"));
    ASSERT_TRUE(o.ok) << "insert " << key << ": " << o.Describe();
  }

  // Each shard's primary, read directly: every row where the router said, nowhere else.
  std::map<std::string, std::vector<int>> found;
  for (int s = 0; s < env().shard_count(); ++s) {
    ASSERT_OK_AND_ASSIGN(PgConn direct, env().ConnectDirect({s, -1}));
    ASSERT_OK_AND_ASSIGN(auto rows,
                         direct.Rows(absl::StrCat("SELECT ", key_col, "::text, v FROM ", c.table)));
    for (const auto& row : rows) {
      found[row[0]].push_back(s);
      EXPECT_EQ(row[1], absl::StrCat("row ", row[0]));
    }
    if (c.table == "t_modulo") {
      // PostgreSQL's own partition hash: remainder s of 3 for every row of shard s.
      ASSERT_OK_AND_ASSIGN(
          std::string wrong,
          direct.Scalar(absl::StrCat("SELECT count(*) FROM t_modulo WHERE NOT "
                                     "satisfies_hash_partition('hp_check'::regclass, 3, ",
                                     s, ", id)")));
      EXPECT_EQ(wrong, "0") << "rows on s" << s << " that PostgreSQL hashes elsewhere";
    }
  }
  int misplaced = 0;
  for (const auto& [key, shard] : expected) {
    const std::vector<int>& on = found[key];
    if (on.size() != 1 || on[0] != shard) {
      if (++misplaced <= 10) {
        ADD_FAILURE() << c.table << " key " << key << ": expected on s" << shard << ", found on "
                      << (on.empty() ? "no shard" : absl::StrCat("s", absl::StrJoin(on, ", s")));
      }
    }
  }
  EXPECT_EQ(misplaced, 0) << "of " << expected.size() << " rows";
  EXPECT_EQ(found.size(), expected.size()) << "rows that were never inserted appeared";

  // Keyed reads through shardgate find every row (from replicas, once they have it).
  ASSERT_OK(env().CatchUp());
  int missing = 0;
  for (const auto& [key, shard] : expected) {
    const Outcome o = RunSql(
        conn, absl::StrCat("SELECT v FROM ", c.table, " WHERE ", key_col, " = ", Literal(c, key)));
    if (!o.ok || o.Scalar() != absl::StrCat("row ", key)) {
      if (++missing <= 10) ADD_FAILURE() << "select " << key << ": " << o.Describe();
    }
  }
  EXPECT_EQ(missing, 0);
}

INSTANTIATE_TEST_SUITE_P(Routers, RowsLandOnTheirShard,
                         ::testing::Values(RouterCase{"modulo_postgres", "t_modulo", false},
                                           RouterCase{"range", "t_range", false},
                                           RouterCase{"directory_inline", "t_dir", true},
                                           RouterCase{"hash_ring", "t_ring", false}),
                         [](const ::testing::TestParamInfo<RouterCase>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------------------------
// 5. Statements across shards, keyless statements, reference and unlisted tables

// Whether `table` on the primary of `shard` has a row with id `key` (read directly).
bool HasRow(ShardedEnv& env, int shard, const std::string& table, int64_t key) {
  auto v =
      env.primary(shard).Query(absl::StrCat("SELECT count(*) FROM ", table, " WHERE id = ", key));
  return v.ok() && *v == "1";
}

TEST_F(ShardedRoutingTest, BeginIsHeldUntilTheFirstStatementThatRoutes) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE tx_probe"));
  const int64_t key = env().KeysOn("tx_probe", 2, 1).at(0);  // s2: not the first shard
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("BEGIN"));
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO tx_probe (id, v) VALUES (", key, ", 'in tx')")));
  ASSERT_OK(conn.Exec("COMMIT"));
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(HasRow(env(), s, "tx_probe", key), s == 2) << "shard s" << s;
  }
}

// Issue 5: a transaction reaching a second shard becomes distributed (two-phase commit at
// COMMIT); an error in it aborts the whole of it, as PostgreSQL does (25P02 until ROLLBACK).
TEST_F(ShardedRoutingTest, TransactionOnTwoShardsCommitsOnBothAndAnErrorAbortsIt) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE tx_probe"));
  const std::vector<int64_t> on_s0 = env().KeysOn("tx_probe", 0, 2);
  const std::vector<int64_t> on_s1 = env().KeysOn("tx_probe", 1, 2);
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("BEGIN"));
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO tx_probe (id, v) VALUES (", on_s0[0], ", 'a')")));
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO tx_probe (id, v) VALUES (", on_s1[0], ", 'b')")));
  EXPECT_FALSE(HasRow(env(), 0, "tx_probe", on_s0[0])) << "visible before COMMIT";
  ASSERT_OK(conn.Exec("COMMIT"));
  EXPECT_TRUE(HasRow(env(), 0, "tx_probe", on_s0[0]));
  EXPECT_TRUE(HasRow(env(), 1, "tx_probe", on_s1[0]));

  ASSERT_OK(conn.Exec("BEGIN"));
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO tx_probe (id, v) VALUES (", on_s0[1], ", 'c')")));
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO tx_probe (id, v) VALUES (", on_s1[1], ", 'd')")));
  const Outcome dup =
      RunSql(conn, absl::StrCat("INSERT INTO tx_probe (id, v) VALUES (", on_s1[0], ", 'dup')"));
  EXPECT_EQ(dup.sqlstate, "23505") << dup.Describe();
  // The transaction is aborted, as PostgreSQL does after any error, on every shard.
  const Outcome after = RunSql(conn, absl::StrCat("SELECT v FROM tx_probe WHERE id = ", on_s0[0]));
  EXPECT_EQ(after.sqlstate, "25P02") << after.Describe();
  const Outcome keyless = RunSql(conn, "SELECT count(*) FROM tx_probe");
  EXPECT_EQ(keyless.sqlstate, "25P02") << keyless.Describe();
  ASSERT_OK(conn.Exec("ROLLBACK"));
  EXPECT_FALSE(HasRow(env(), 0, "tx_probe", on_s0[1])) << "the rolled-back insert was committed";
  EXPECT_FALSE(HasRow(env(), 1, "tx_probe", on_s1[1]));
  // The connection is usable again, for either shard.
  EXPECT_OK(conn.Exec(absl::StrCat("INSERT INTO tx_probe (id, v) VALUES (", on_s1[1], ", 'e')")));
  EXPECT_TRUE(HasRow(env(), 1, "tx_probe", on_s1[1]));
  for (int s = 0; s < env().shard_count(); ++s) {
    EXPECT_EQ(Text(env().primary(s).Query("SELECT count(*) FROM pg_prepared_xacts")), "0");
  }
}

TEST_F(ShardedRoutingTest, KeylessStatementRunsOnEveryShardOrIs0A000WithHint) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  // Issue 5: a statement without a key runs on every shard and the answers are merged.
  int64_t total = 0;
  for (int s = 0; s < env().shard_count(); ++s) {
    total += std::stoll(Text(env().primary(s).Query("SELECT count(*) FROM t_modulo")));
  }
  ASSERT_OK(env().CatchUp());
  const Outcome count = RunSql(conn, "SELECT count(*) FROM t_modulo");
  EXPECT_EQ(count.Scalar(), absl::StrCat(total)) << count.Describe();
  // What cannot be merged exactly is refused, never answered per shard.
  for (const char* sql : {"SELECT string_agg(v, ',') FROM t_modulo",
                          "SELECT row_number() OVER () FROM t_ring",
                          "SELECT id FROM t_modulo WHERE id IN (SELECT id FROM t_modulo LIMIT 1)"}) {
    const Outcome o = RunSql(conn, sql);
    EXPECT_EQ(o.sqlstate, "0A000") << sql << ": " << o.Describe();
    EXPECT_THAT(o.hint, Not(IsEmpty())) << sql << ": " << o.Describe();
  }
  // Still usable afterwards (the refusal is a statement error, not a disconnect).
  EXPECT_EQ(Text(conn.Scalar("SELECT 1")), "1");
}

TEST_F(ShardedRoutingTest, InListAndAnyOnOneShardRoute) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE tx_probe"));
  const std::vector<int64_t> keys = env().KeysOn("tx_probe", 1, 4);
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  for (int64_t k : keys) {
    ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO tx_probe (id, v) VALUES (", k, ", 'v')")));
  }
  ASSERT_OK(env().CatchUp());
  const std::string list = absl::StrJoin(keys, ", ");
  EXPECT_EQ(
      RunSql(conn, absl::StrCat("SELECT count(*) FROM tx_probe WHERE id IN (", list, ")")).Scalar(),
      "4");
  EXPECT_EQ(RunSql(conn, absl::StrCat("SELECT count(*) FROM tx_probe WHERE id = ANY('{", list,
                                      "}'::bigint[])"))
                .Scalar(),
            "4");
  const Outcome any = RunParams(conn, "SELECT count(*) FROM tx_probe WHERE id = ANY($1::bigint[])",
                                {absl::StrCat("{", list, "}")});
  EXPECT_EQ(any.Scalar(), "4") << any.Describe();
}

TEST_F(ShardedRoutingTest, ReferenceTableWriteLandsOnEveryShard) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE countries"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("INSERT INTO countries (code, name) VALUES ('fr', 'France')"));
  ASSERT_OK(conn.Exec("UPDATE countries SET name = 'République française' WHERE code = 'fr'"));
  for (int s = 0; s < env().shard_count(); ++s) {
    EXPECT_EQ(Text(env().primary(s).Query("SELECT name FROM countries WHERE code = 'fr'")),
              "République française")
        << "shard s" << s;
  }
  ASSERT_OK(env().CatchUp());
  EXPECT_EQ(Text(conn.Scalar("SELECT name FROM countries WHERE code = 'fr'")),
            "République française");
}

TEST_F(ShardedRoutingTest, UnlistedTableGoesToDefaultShard) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE plain_notes"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("INSERT INTO plain_notes (id, note) VALUES (7, 'default shard')"));
  for (int s = 0; s < env().shard_count(); ++s) {
    EXPECT_EQ(HasRow(env(), s, "plain_notes", 7), s == 1) << "default_shard is s1; shard s" << s;
  }
}

TEST_F(ShardedRoutingTest, UnlistedTableWithoutDefaultShardIsRefused) {
  // The same database without default_shard, in a second shardgate.
  std::string body = RoutingSuiteOptions().extra_database_yaml;
  body = absl::StrReplaceAll(body, {{"    default_shard: s1\n", ""}});
  const int port = FreePort();
  ASSERT_OK_AND_ASSIGN(auto proxy, ShardgateProcess::Start(env().Yaml(port, body), port));
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE plain_notes"));
  ASSERT_OK_AND_ASSIGN(PgConn conn,
                       PgConn::Connect(proxy->ConnString("app", kScramUser, kScramPassword)));
  const Outcome o = RunSql(conn, "INSERT INTO plain_notes (id, note) VALUES (8, 'nowhere')");
  EXPECT_FALSE(o.ok) << "a table not listed in a sharded database without default_shard";
  EXPECT_THAT(o.message, HasSubstr("plain_notes")) << o.Describe();
  for (int s = 0; s < env().shard_count(); ++s) {
    EXPECT_FALSE(HasRow(env(), s, "plain_notes", 8)) << "shard s" << s;
  }
}

// ---------------------------------------------------------------------------------------------
// 6. The extended protocol: keys from Bind values

// The shard holding ext_probe row `key`, read on each primary directly (-1: none, -2: several).
int WhereIs(ShardedEnv& env, int64_t key) {
  int at = -1;
  for (int s = 0; s < env.shard_count(); ++s) {
    if (HasRow(env, s, "ext_probe", key)) at = at == -1 ? s : -2;
  }
  return at;
}

TEST_F(ShardedRoutingTest, TextAndBinaryParameterKeysRouteToTheirShard) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE ext_probe"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  std::vector<int64_t> keys;
  for (int s = 0; s < 3; ++s) {
    for (int64_t k : env().KeysOn("ext_probe", s, 4, 1000)) keys.push_back(k);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const int64_t k = keys[i];
    const Outcome o =
        i % 2 == 0
            ? RunParams(conn, "INSERT INTO ext_probe (id, v) VALUES ($1, $2)",
                        {std::to_string(k), absl::StrCat("v", k)})
            : RunBinaryInt8(
                  conn, absl::StrCat("INSERT INTO ext_probe (id, v) VALUES ($1, 'v", k, "')"), k);
    ASSERT_TRUE(o.ok) << k << (i % 2 == 0 ? " (text)" : " (binary)") << ": " << o.Describe();
    EXPECT_EQ(WhereIs(env(), k), env().ShardOf("ext_probe", k))
        << "key " << k << (i % 2 == 0 ? " sent as text" : " sent as binary int8");
  }
  ASSERT_OK(env().CatchUp());
  for (int64_t k : keys) {
    const Outcome text =
        RunParams(conn, "SELECT v FROM ext_probe WHERE id = $1", {std::to_string(k)});
    EXPECT_EQ(text.Scalar(), absl::StrCat("v", k)) << text.Describe();
    const Outcome binary = RunBinaryInt8(conn, "SELECT v FROM ext_probe WHERE id = $1", k);
    EXPECT_EQ(binary.Scalar(), absl::StrCat("v", k)) << binary.Describe();
  }
}

TEST_F(ShardedRoutingTest, PreparedStatementRunsOnEveryShardItsKeysReach) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE ext_probe"));
  std::vector<int64_t> keys;
  for (int s = 0; s < 3; ++s) {
    for (int64_t k : env().KeysOn("ext_probe", s, 10, 5000)) keys.push_back(k);
  }
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PgResult ins(
      PQprepare(conn.get(), "ins", "INSERT INTO ext_probe (id, v) VALUES ($1, $2)", 2, nullptr));
  ASSERT_OK(ResultStatus(ins.get(), conn.get()));
  PgResult sel(PQprepare(conn.get(), "sel", "SELECT v FROM ext_probe WHERE id = $1", 1, nullptr));
  ASSERT_OK(ResultStatus(sel.get(), conn.get()));
  // Interleaved over the shards, so each shard's servers prepare lazily, several times.
  std::vector<int64_t> order;
  for (size_t i = 0; i < 10; ++i) {
    for (int s = 0; s < 3; ++s) order.push_back(keys[s * 10 + i]);
  }
  for (int64_t k : order) {
    const std::string id = std::to_string(k), v = absl::StrCat("p", k);
    const char* values[2] = {id.c_str(), v.c_str()};
    const Outcome o =
        OutcomeOf(conn.get(), PQexecPrepared(conn.get(), "ins", 2, values, nullptr, nullptr, 0));
    ASSERT_TRUE(o.ok) << k << ": " << o.Describe();
  }
  for (int64_t k : order) {
    EXPECT_EQ(WhereIs(env(), k), env().ShardOf("ext_probe", k)) << "key " << k;
  }
  ASSERT_OK(env().CatchUp());
  for (int round = 0; round < 3; ++round) {
    for (int64_t k : order) {
      const std::string id = std::to_string(k);
      const char* values[1] = {id.c_str()};
      const Outcome o =
          OutcomeOf(conn.get(), PQexecPrepared(conn.get(), "sel", 1, values, nullptr, nullptr, 0));
      EXPECT_EQ(o.Scalar(), absl::StrCat("p", k)) << "round " << round << ": " << o.Describe();
    }
  }
}

}  // namespace
}  // namespace shardgate::testing
