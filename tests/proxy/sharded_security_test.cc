// Issue 9, routing hints and permissions: a hint picks a shard of the client's own logical
// database only, and shardgate logs in to each shard as the client's user, so a hint never
// reaches a server database the user may not connect to; a statement across shards fails there
// rather than answering from the shards the user may read.
// Cluster: two shards, no replicas; app_md5 may not connect to s1's database.
#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

class HintPermissionTest : public ShardedSuite<HintPermissionTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {0, 0};
    o.extra_database_yaml =
        "    routers:\n"
        "      r_mod: {type: modulo, hash: postgres, shards: [s0, s1]}\n"
        "    tables:\n"
        "      t: {key: id, router: r_mod}\n";
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    ShardedSuite::SetUpTestSuite();
    if (env_ == nullptr) return;
    absl::Status st = env_->ExecOnPrimaries(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text);"
        "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 40) g;"
        "GRANT SELECT ON t TO app_md5");
    // Each shard keeps only its own rows, so that counts tell which shards answered.
    for (int s = 0; st.ok() && s < 2; ++s) {
      std::vector<std::string> others;
      for (int64_t k = 1; k <= 40; ++k) {
        if (env_->ShardOf("t", k) != s) others.push_back(absl::StrCat(k));
      }
      st = env_->primary(s)
               .Query(absl::StrCat("DELETE FROM t WHERE id IN (", absl::StrJoin(others, ","), ")"))
               .status();
    }
    if (st.ok()) {
      st = env_->primary(1).Query("REVOKE CONNECT ON DATABASE app FROM PUBLIC").status();
    }
    if (!st.ok()) FailSetUp(st, "set-up");
  }

  static absl::StatusOr<PgConn> ConnectMd5() {
    return PgConn::Connect(env().proxy->ConnString("app", kMd5User, kMd5Password));
  }
  static int OnShard(int shard) {
    int n = 0;
    for (int64_t k = 1; k <= 40; ++k) n += env().ShardOf("t", k) == shard;
    return n;
  }
};

TEST_F(HintPermissionTest, AHintReachesOnlyServersTheUserMayConnectTo) {
  ASSERT_OK_AND_ASSIGN(PgConn owner, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn limited, ConnectMd5());

  // Control: the owner reads both shards, the limited user its own one.
  EXPECT_EQ(Text(owner.Scalar("SELECT count(*) FROM t /* shardgate: shard=s1 */")),
            absl::StrCat(OnShard(1)));
  EXPECT_EQ(Text(owner.Scalar("SELECT count(*) FROM t")), "40");
  EXPECT_EQ(Text(limited.Scalar("SELECT count(*) FROM t /* shardgate: shard=s0 */")),
            absl::StrCat(OnShard(0)));

  // The hint to s1 as app_md5: PostgreSQL's own refusal, not s1's rows.
  Outcome o = RunSql(limited, "SELECT count(*) FROM t /* shardgate: shard=s1 */");
  EXPECT_FALSE(o.ok) << o.Describe();
  EXPECT_EQ(o.sqlstate, "42501") << o.Describe();
  EXPECT_THAT(o.message, HasSubstr("permission denied for database")) << o.Describe();

  // The same through the session setting, and through a key hint that lands on s1.
  ASSERT_OK_AND_ASSIGN(PgConn limited2, ConnectMd5());
  ASSERT_OK(limited2.Exec("SET shardgate.shard = 's1'"));
  o = RunSql(limited2, "SELECT count(*) FROM t");
  EXPECT_EQ(o.sqlstate, "42501") << o.Describe();
  const int64_t on_s1 = env().KeysOn("t", 1, 1).at(0);
  ASSERT_OK_AND_ASSIGN(PgConn limited3, ConnectMd5());
  o = RunSql(limited3, absl::StrCat("SELECT v FROM t /* shardgate: key=", on_s1, " */"));
  EXPECT_EQ(o.sqlstate, "42501") << o.Describe();

  // Across shards: an error, never the rows of s0 alone passed off as the whole table.
  ASSERT_OK_AND_ASSIGN(PgConn limited4, ConnectMd5());
  o = RunSql(limited4, "SELECT count(*) FROM t");
  EXPECT_FALSE(o.ok) << "a partial answer: " << o.Describe();
  EXPECT_EQ(o.sqlstate, "42501") << o.Describe();

  // A shard name that is not one of this database's: refused by the proxy, nothing sent.
  ASSERT_OK_AND_ASSIGN(PgConn limited5, ConnectMd5());
  o = RunSql(limited5, "SELECT 1 /* shardgate: shard=shardgate */");
  EXPECT_EQ(o.sqlstate, "22023") << o.Describe();
  EXPECT_THAT(o.message, HasSubstr("unknown shard")) << o.Describe();
}

// Regression: hints in a statement sent with the extended protocol (PQexecParams, prepared
// statements) were ignored; such a statement went where its key or the default sent it.
TEST_F(HintPermissionTest, HintsInPreparedStatementsRouteThemToo) {
  ASSERT_OK_AND_ASSIGN(PgConn owner, env().Connect());
  for (int shard : {0, 1}) {
    Outcome o = RunParams(
        owner, absl::StrCat("SELECT count(*) FROM t /* shardgate: shard=s", shard, " */"), {});
    ASSERT_TRUE(o.ok) << o.Describe();
    EXPECT_EQ(o.Scalar(), absl::StrCat(OnShard(shard))) << "shard s" << shard;
  }
  const int64_t on_s1 = env().KeysOn("t", 1, 1).at(0);
  Outcome o =
      RunParams(owner, absl::StrCat("/* shardgate: key=", on_s1, " */ SELECT count(*) FROM t"), {});
  EXPECT_EQ(o.Scalar(), absl::StrCat(OnShard(1))) << o.Describe();
  // A malformed hint is the client's error, and the session goes on.
  o = RunParams(owner, "SELECT 1 /* shardgate: shrad=s1 */", {});
  EXPECT_EQ(o.sqlstate, "42601") << o.Describe();
  EXPECT_EQ(RunParams(owner, "SELECT 2", {}).Scalar(), "2");
  // And the permission check holds for them as for a Query.
  ASSERT_OK_AND_ASSIGN(PgConn limited, ConnectMd5());
  o = RunParams(limited, "SELECT count(*) FROM t /* shardgate: shard=s1 */", {});
  EXPECT_EQ(o.sqlstate, "42501") << o.Describe();
}

}  // namespace
}  // namespace shardgate::testing
