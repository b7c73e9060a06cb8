// Issue 5, distributed writes: a statement that writes on several shards commits with two-phase
// commit. Killing the proxy between the phases (SHARDGATE_TEST_FAULT, a crash at that exact
// point) and starting it again leaves no prepared transaction behind and every shard agreeing:
// committed everywhere when the decision was logged, rolled back everywhere when it was not. A
// failure on one shard before the decision rolls back all of them.
#include <cstdlib>

#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

constexpr int kRowsPerShard = 5;

std::string DecisionLogFile() {
  return absl::StrCat(::testing::TempDir(), "/sg-2pc-", getpid(), ".log");
}

class TwoPhaseTest : public ShardedSuite<TwoPhaseTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {0, 0, 0};
    o.extra_database_yaml =
        "    routers:\n"
        "      r_mod: {type: modulo, hash: postgres, shards: [s0, s1, s2]}\n"
        "    tables:\n"
        "      accounts: {key: id, router: r_mod}\n";
    o.extra_top_yaml = absl::StrCat("cross_shard:\n  decision_log: ", DecisionLogFile(),
                                    "\n  node: test_node\n");
    return o;
  }

 protected:
  static void TearDownTestSuite() {
    ShardedSuite::TearDownTestSuite();  // the proxy stops first: then its log can go
    std::remove(DecisionLogFile().c_str());
  }
  static void SetUpTestSuite() {
    std::remove(DecisionLogFile().c_str());
    ShardedSuite::SetUpTestSuite();
    if (env_ == nullptr) return;
    absl::Status st = env_->ExecOnPrimaries(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL CHECK (balance < "
        "1000))");
    for (int s = 0; st.ok() && s < env_->shard_count(); ++s) {
      const std::vector<int64_t> keys = env_->KeysOn("accounts", s, kRowsPerShard);
      st = env_->primary(s)
               .Query(absl::StrCat("INSERT INTO accounts SELECT k, 100 FROM unnest('{",
                                   absl::StrJoin(keys, ","), "}'::bigint[]) k"))
               .status();
    }
    if (!st.ok()) FailSetUp(st, "schema");
  }

  // Per shard: "sum of balances/prepared transactions", read on the primaries directly.
  static std::vector<std::string> ShardState() {
    std::vector<std::string> out;
    for (int s = 0; s < env().shard_count(); ++s) {
      auto sum = env().primary(s).Query("SELECT sum(balance) FROM accounts");
      auto prepared = env().primary(s).Query("SELECT count(*) FROM pg_prepared_xacts");
      out.push_back(absl::StrCat(sum.ok() ? *sum : sum.status().ToString(), "/",
                                 prepared.ok() ? *prepared
                                               : prepared.status().ToString()));
    }
    return out;
  }
  static std::vector<std::string> Uniform(const std::string& sum, const std::string& prepared) {
    return std::vector<std::string>(env().shard_count(), absl::StrCat(sum, "/", prepared));
  }

  // Restarts shardgate with SHARDGATE_TEST_FAULT=`fault`, runs a write on every shard (the
  // proxy dies in the middle of it) and checks what was left between the phases. `explicit_txn`:
  // the write is BEGIN, one UPDATE per shard by key, COMMIT.
  void CrashDuringCommit(const std::string& fault, int before, int after_restart,
                         bool explicit_txn = false) {
    ASSERT_EQ(ShardState(), Uniform(absl::StrCat(before), "0"));
    setenv("SHARDGATE_TEST_FAULT", fault.c_str(), 1);
    absl::Status started = env().StartProxy();
    unsetenv("SHARDGATE_TEST_FAULT");
    ASSERT_OK(started);
    {
      ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
      Outcome r;
      if (explicit_txn) {
        ASSERT_OK(conn.Exec("BEGIN"));
        for (int shard = 0; shard < env().shard_count(); ++shard) {
          for (int64_t key : env().KeysOn("accounts", shard, kRowsPerShard)) {
            ASSERT_OK(conn.Exec(
                absl::StrCat("UPDATE accounts SET balance = balance + 1 WHERE id = ", key)));
          }
        }
        r = RunSql(conn, "COMMIT");
      } else {
        r = RunSql(conn, "UPDATE accounts SET balance = balance + 1");
      }
      EXPECT_FALSE(r.ok) << "the proxy was to die before answering";
    }
    ASSERT_OK_AND_ASSIGN(int code, env().proxy->Wait(10000));
    EXPECT_EQ(code, 70) << env().ProxyLogTail();
    // Between the phases: every shard holds the prepared transaction, nothing visible yet.
    EXPECT_EQ(ShardState(), Uniform(absl::StrCat(before), "1"));

    ASSERT_OK(env().StartProxy());  // recovery runs before the proxy serves
    EXPECT_EQ(ShardState(), Uniform(absl::StrCat(after_restart), "0")) << env().ProxyLogTail();
    ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
    Outcome total = RunSql(conn, "SELECT sum(balance) FROM accounts");
    ASSERT_TRUE(total.ok) << total.Describe();
    EXPECT_EQ(total.Scalar(), absl::StrCat(after_restart * env().shard_count()));
  }
};

TEST_F(TwoPhaseTest, WriteOnEveryShardCommitsEverywhere) {
  const std::vector<std::string> before = ShardState();
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  Outcome r = RunSql(conn, "UPDATE accounts SET balance = balance + 10");
  ASSERT_TRUE(r.ok) << r.Describe();
  const int base = std::stoi(before[0].substr(0, before[0].find('/')));
  EXPECT_EQ(ShardState(), Uniform(absl::StrCat(base + 10 * kRowsPerShard), "0"));
  r = RunSql(conn, "UPDATE accounts SET balance = balance - 10 RETURNING id");
  ASSERT_TRUE(r.ok) << r.Describe();
  EXPECT_EQ(r.rows.size(), static_cast<size_t>(kRowsPerShard * env().shard_count()));
  EXPECT_EQ(ShardState(), before);
}

TEST_F(TwoPhaseTest, FailureOnOneShardRollsBackAll) {
  const std::vector<std::string> before = ShardState();
  // Only the row set to 990 on shard 1 breaks the CHECK when every balance grows by 20.
  const int64_t key = env().KeysOn("accounts", 1, 1).front();
  ASSERT_OK(env().primary(1).Query(absl::StrCat("UPDATE accounts SET balance = 990 WHERE id = ",
                                                key)).status());
  const std::vector<std::string> prepared = ShardState();
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  Outcome r = RunSql(conn, "UPDATE accounts SET balance = balance + 20");
  EXPECT_EQ(r.sqlstate, "23514") << r.Describe();
  EXPECT_EQ(ShardState(), prepared) << "a shard kept a write of a failed statement";
  ASSERT_OK(env().primary(1).Query(absl::StrCat("UPDATE accounts SET balance = 100 WHERE id = ",
                                                key)).status());
  EXPECT_EQ(ShardState(), before);
}

TEST_F(TwoPhaseTest, CrashAfterDecisionCommitsOnRestart) {
  CrashDuringCommit("after_decision", 100 * kRowsPerShard, 101 * kRowsPerShard);
}

TEST_F(TwoPhaseTest, CrashBeforeDecisionRollsBackOnRestart) {
  CrashDuringCommit("after_prepare", 101 * kRowsPerShard, 101 * kRowsPerShard);
}

// Explicit transactions: BEGIN, statements on several shards, COMMIT or ROLLBACK.
TEST_F(TwoPhaseTest, ExplicitTransactionOnEveryShardCommitsOrRollsBackEverywhere) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_TRUE(RunSql(conn, "UPDATE accounts SET balance = 100").ok);  // earlier tests add 1
  const std::vector<std::string> before = ShardState();
  ASSERT_EQ(before, Uniform(absl::StrCat(100 * kRowsPerShard), "0"));
  const int base = 100 * kRowsPerShard;
  for (const char* end : {"ROLLBACK", "COMMIT"}) {
    ASSERT_OK(conn.Exec("BEGIN"));
    for (int shard = 0; shard < env().shard_count(); ++shard) {
      const int64_t key = env().KeysOn("accounts", shard, 1).front();
      // Extended protocol with the key as a parameter, and the simple protocol.
      const Outcome r = RunParams(conn, "UPDATE accounts SET balance = balance + 5 WHERE id = $1",
                                  {absl::StrCat(key)});
      ASSERT_TRUE(r.ok) << r.Describe();
    }
    const Outcome keyless = RunSql(conn, "UPDATE accounts SET balance = balance + 1");
    ASSERT_TRUE(keyless.ok) << keyless.Describe();
    // Inside the transaction its own writes are visible, on every shard.
    const Outcome sum = RunSql(conn, "SELECT sum(balance) FROM accounts");
    EXPECT_EQ(sum.Scalar(), absl::StrCat((base + 5 + kRowsPerShard) * env().shard_count()));
    EXPECT_EQ(ShardState(), before) << "visible before " << end;
    ASSERT_OK(conn.Exec(end));
  }
  EXPECT_EQ(ShardState(), Uniform(absl::StrCat(base + 5 + kRowsPerShard), "0"));
  ASSERT_TRUE(RunSql(conn, "UPDATE accounts SET balance = 100").ok);
  EXPECT_EQ(ShardState(), before);
}

TEST_F(TwoPhaseTest, ExplicitTransactionWithAFailedStatementRollsBackAtCommit) {
  const std::vector<std::string> before = ShardState();
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("BEGIN"));
  ASSERT_OK(conn.Exec(absl::StrCat("UPDATE accounts SET balance = 1 WHERE id = ",
                                   env().KeysOn("accounts", 0, 1).front())));
  const Outcome bad = RunSql(conn, absl::StrCat("UPDATE accounts SET balance = 5000 WHERE id = ",
                                                env().KeysOn("accounts", 1, 1).front()));
  EXPECT_EQ(bad.sqlstate, "23514") << bad.Describe();
  EXPECT_EQ(RunSql(conn, "SELECT 1 FROM accounts").sqlstate, "25P02");
  PgResult commit(PQexec(conn.get(), "COMMIT"));
  EXPECT_EQ(PQresultStatus(commit.get()), PGRES_COMMAND_OK);
  EXPECT_STREQ(PQcmdStatus(commit.get()), "ROLLBACK");
  EXPECT_EQ(ShardState(), before);
}

TEST_F(TwoPhaseTest, CrashAfterDecisionCommitsExplicitTransactionOnRestart) {
  CrashDuringCommit("after_decision", 100 * kRowsPerShard, 101 * kRowsPerShard,
                    /*explicit_txn=*/true);
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_TRUE(RunSql(conn, "UPDATE accounts SET balance = 100").ok);
}

}  // namespace
}  // namespace shardgate::testing
