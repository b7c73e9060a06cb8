// Issue 4, the read/write split and what the proxy tells about routing: writes reach the
// primaries and plain reads the replicas (round robin; the primary when a shard has none),
// transactions and `/* shardgate: primary */` keep reads on the primary; SHOW ROUTE in the admin
// console and `SET shardgate.explain = on` name the shards. Where a statement ran is counted
// with pg_stat_statements on each server.
#include <numeric>

#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kInserts[] = "%insert into rw_probe%";
constexpr char kSelects[] = "%from rw_probe where%";

int64_t Sum(const std::vector<int64_t>& v, size_t from = 0) {
  return from >= v.size() ? 0 : std::accumulate(v.begin() + from, v.end(), int64_t{0});
}

// Fills rw_probe through shardgate with `per_shard` keys of each shard; returns them by shard
// (all of them, also when an insert failed: that is a test failure already).
std::vector<std::vector<int64_t>> FillProbe(ShardedEnv& env, const PgConn& conn, int per_shard,
                                            int64_t from) {
  std::vector<std::vector<int64_t>> keys;
  for (int s = 0; s < env.shard_count(); ++s)
    keys.push_back(env.KeysOn("rw_probe", s, per_shard, from));
  for (const auto& shard_keys : keys) {
    for (int64_t k : shard_keys) {
      const absl::Status st =
          conn.Exec(absl::StrCat("INSERT INTO rw_probe (id, v) VALUES (", k, ", 'rw", k, "')"));
      if (!st.ok()) {
        ADD_FAILURE() << "insert " << k << ": " << st;
        return keys;
      }
    }
  }
  return keys;
}

TEST_F(ShardedRoutingTest, WritesGoToPrimariesAndReadsToReplicas) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE rw_probe"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  constexpr int kPerShard = 12;
  std::vector<std::vector<int64_t>> ins_before, sel_before;
  for (int s = 0; s < 3; ++s) ins_before.push_back(env().ShardCalls(s, kInserts));
  const auto keys = FillProbe(env(), conn, kPerShard, 1);
  for (int s = 0; s < 3; ++s) {
    const auto d = Delta(ins_before[s], env().ShardCalls(s, kInserts));
    EXPECT_EQ(d[0], kPerShard) << "inserts on the primary of s" << s << ": " << Show(d);
  }

  ASSERT_OK(env().CatchUp());
  for (int s = 0; s < 3; ++s) sel_before.push_back(env().ShardCalls(s, kSelects));
  for (int s = 0; s < 3; ++s) {
    for (int64_t k : keys[s]) {
      EXPECT_EQ(Text(conn.Scalar(absl::StrCat("SELECT v FROM rw_probe WHERE id = ", k))),
                absl::StrCat("rw", k));
    }
  }
  for (int s = 0; s < 3; ++s) {
    const auto d = Delta(sel_before[s], env().ShardCalls(s, kSelects));
    SCOPED_TRACE(absl::StrCat("selects on s", s, " [primary, replicas...]: ", Show(d)));
    if (env().replica_count(s) == 0) {
      EXPECT_EQ(d[0], kPerShard) << "a shard without replicas reads from its primary";
      continue;
    }
    EXPECT_EQ(d[0], 0) << "reads outside transactions must not reach the primary";
    EXPECT_EQ(Sum(d, 1), kPerShard);
    for (size_t r = 1; r < d.size(); ++r) {
      EXPECT_GT(d[r], 0) << "round robin should reach replica " << r - 1;
    }
  }
}

TEST_F(ShardedRoutingTest, ReadsInsideATransactionGoToThePrimary) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE rw_probe"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  const auto keys = FillProbe(env(), conn, 4, 100);
  ASSERT_OK(env().CatchUp());
  for (int s = 0; s < 2; ++s) {  // the shards with replicas
    const auto before = env().ShardCalls(s, kSelects);
    ASSERT_OK(conn.Exec("BEGIN"));
    for (int64_t k : keys[s]) {
      EXPECT_EQ(Text(conn.Scalar(absl::StrCat("SELECT v FROM rw_probe WHERE id = ", k))),
                absl::StrCat("rw", k));
    }
    ASSERT_OK(conn.Exec("COMMIT"));
    const auto d = Delta(before, env().ShardCalls(s, kSelects));
    EXPECT_EQ(d[0], 4) << "s" << s << " [primary, replicas...]: " << Show(d);
    EXPECT_EQ(Sum(d, 1), 0) << "s" << s << " [primary, replicas...]: " << Show(d);
  }
}

TEST_F(ShardedRoutingTest, PrimaryHintSendsAReadToThePrimary) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE rw_probe"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  const auto keys = FillProbe(env(), conn, 3, 200);
  ASSERT_OK(env().CatchUp());
  const auto before = env().ShardCalls(0, kSelects);
  for (int64_t k : keys[0]) {
    EXPECT_EQ(Text(conn.Scalar(absl::StrCat("/* shardgate: primary */ SELECT v FROM rw_probe "
                                            "WHERE id = ",
                                            k))),
              absl::StrCat("rw", k));
  }
  const auto d = Delta(before, env().ShardCalls(0, kSelects));
  EXPECT_EQ(d[0], 3) << "[primary, replicas...]: " << Show(d);
  EXPECT_EQ(Sum(d, 1), 0) << "[primary, replicas...]: " << Show(d);
}

// ---------------------------------------------------------------------------------------------
// 7. SHOW ROUTE and explain NOTICEs

struct Route {
  std::string shard, role, reason;
};

// SHOW ROUTE <sql> in the admin console: the rows, checked to have the documented columns.
absl::StatusOr<std::vector<Route>> ShowRoute(const PgConn& admin, const std::string& sql) {
  PgResult res(PQexec(admin.get(), absl::StrCat("SHOW ROUTE ", sql).c_str()));
  RETURN_IF_ERROR(ResultStatus(res.get(), admin.get()));
  const int shard = PQfnumber(res.get(), "shard"), role = PQfnumber(res.get(), "role"),
            reason = PQfnumber(res.get(), "reason");
  if (shard < 0 || role < 0 || reason < 0) {
    return absl::InternalError("SHOW ROUTE lacks a shard, role or reason column");
  }
  std::vector<Route> out;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    out.push_back(
        {Cell(res.get(), r, shard), Cell(res.get(), r, role), Cell(res.get(), r, reason)});
  }
  return out;
}

TEST_F(ShardedRoutingTest, AdminShowRouteNamesTheShardRoleAndReason) {
  ASSERT_OK_AND_ASSIGN(PgConn admin, env().ConnectAdmin());
  const int64_t key = 42;
  const std::string shard = ShardedEnv::ShardName(env().ShardOf("t_modulo", key));

  ASSERT_OK_AND_ASSIGN(auto read, ShowRoute(admin, "SELECT v FROM t_modulo WHERE id = 42"));
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].shard, shard);
  EXPECT_EQ(read[0].role, "replica");
  EXPECT_THAT(read[0].reason, HasSubstr("t_modulo"));

  ASSERT_OK_AND_ASSIGN(auto write,
                       ShowRoute(admin, "INSERT INTO t_modulo (id, v) VALUES (42, 'x')"));
  ASSERT_EQ(write.size(), 1u);
  EXPECT_EQ(write[0].shard, shard);
  EXPECT_EQ(write[0].role, "primary");

  ASSERT_OK_AND_ASSIGN(
      auto reference,
      ShowRoute(admin, "INSERT INTO countries (code, name) VALUES ('de', 'Germany')"));
  std::vector<std::string> shards;
  for (const Route& r : reference) shards.push_back(r.shard);
  EXPECT_THAT(shards, ::testing::UnorderedElementsAre("s0", "s1", "s2"))
      << "a reference-table write goes to every shard";

  ASSERT_OK_AND_ASSIGN(std::string version, admin.Scalar("SHOW VERSION"));
  EXPECT_THAT(version, HasSubstr("shardgate"));
  // SHOW ROUTE only explains: nothing was inserted.
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(Text(env().primary(s).Query("SELECT count(*) FROM countries WHERE code = 'de'")),
              "0");
  }
}

TEST_F(ShardedRoutingTest, ExplainOnAddsANoticeNamingTheShard) {
  ASSERT_OK(env().ExecOnPrimaries("TRUNCATE rw_probe"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  const auto keys = FillProbe(env(), conn, 1, 300);
  ASSERT_OK(env().CatchUp());
  NoticeLog notices;
  notices.Attach(conn);
  // Nothing extra unless asked for.
  ASSERT_OK(conn.Exec(absl::StrCat("SELECT v FROM rw_probe WHERE id = ", keys[1][0])));
  EXPECT_THAT(notices.messages(), IsEmpty());

  ASSERT_OK(conn.Exec("SET shardgate.explain = on"));
  for (int s = 0; s < 3; ++s) {
    notices.Clear();
    ASSERT_OK(conn.Exec(absl::StrCat("SELECT v FROM rw_probe WHERE id = ", keys[s][0])));
    ASSERT_EQ(notices.messages().size(), 1u) << "one NOTICE per statement";
    EXPECT_THAT(notices.messages()[0], HasSubstr(ShardedEnv::ShardName(s)));
  }
  // Writes are explained too, on the primary's side of the split.
  notices.Clear();
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO rw_probe (id, v) VALUES (", keys[2][0],
                                   ", 'x') ON CONFLICT DO NOTHING")));
  ASSERT_EQ(notices.messages().size(), 1u);
  EXPECT_THAT(notices.messages()[0], HasSubstr("s2"));
  // A statement across shards: one NOTICE naming all of them, simple and extended protocol.
  for (bool extended : {false, true}) {
    notices.Clear();
    const char* sql = "SELECT count(*) FROM rw_probe";
    PgResult res(extended ? PQexecParams(conn.get(), sql, 0, nullptr, nullptr, nullptr, nullptr, 0)
                          : PQexec(conn.get(), sql));
    ASSERT_OK(ResultStatus(res.get())) << "extended " << extended;
    ASSERT_EQ(notices.messages().size(), 1u) << "extended " << extended;
    // s0 and s1 have replicas, s2 has none.
    EXPECT_THAT(notices.messages()[0],
                HasSubstr("-> s0 [replica], s1 [replica], s2 [primary]"));
  }

  ASSERT_OK(conn.Exec("SET shardgate.explain = off"));
  notices.Clear();
  ASSERT_OK(conn.Exec(absl::StrCat("SELECT v FROM rw_probe WHERE id = ", keys[0][0])));
  EXPECT_THAT(notices.messages(), IsEmpty());
}

}  // namespace
}  // namespace shardgate::testing
