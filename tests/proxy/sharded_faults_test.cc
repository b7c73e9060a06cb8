// Issue 9, servers failing under load: a hung primary (SIGSTOP) fails its shard's statements
// with a clear error, first by timeouts.query and then at once by the circuit breaker, while the
// other shard keeps serving; a primary killed (SIGKILL) under a write load loses no acknowledged
// write and takes writes again after its restart, without a restart of shardgate.
// Cluster: two shards, one replica each.
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <set>

#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kTimeoutQueryMs = 1000;

struct WriteLog {
  std::mutex mu;
  std::map<int64_t, bool> attempts;  // key -> acknowledged
  std::atomic<int> acked[2] = {0, 0};
  std::atomic<int> failed[2] = {0, 0};
};

class ShardedFaultsTest : public ShardedSuite<ShardedFaultsTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {1, 1};
    o.extra_database_yaml =
        "    health_check_interval: 200ms\n"
        "    health_check_timeout: 500ms\n"
        "    routers:\n"
        "      r_mod: {type: modulo, hash: postgres, shards: [s0, s1]}\n"
        "    tables:\n"
        "      acct: {key: id, router: r_mod}\n";
    o.extra_top_yaml = absl::StrCat("timeouts:\n  connect: 1s\n  query: ", kTimeoutQueryMs,
                                    "ms\n");
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    ShardedSuite::SetUpTestSuite();
    if (env_ == nullptr) return;
    absl::Status st = env_->ExecOnPrimaries("CREATE TABLE acct (id bigint PRIMARY KEY, v text)");
    // The test servers run with synchronous_commit = off, which acknowledges commits a killed
    // server may not have written: here an acknowledged commit must survive SIGKILL.
    for (int s = 0; st.ok() && s < env_->shard_count(); ++s) {
      st = env_->primary(s).Query("ALTER SYSTEM SET synchronous_commit = on").status();
      if (st.ok()) st = env_->primary(s).Query("SELECT pg_reload_conf()").status();
    }
    if (!st.ok()) FailSetUp(st, "schema");
  }

  static Outcome Write(int64_t key, const std::string& v) {
    auto conn = env().Connect();
    if (!conn.ok()) {
      Outcome o;
      o.sqlstate = kNoSqlState;
      o.message = std::string(conn.status().message());
      return o;
    }
    return RunSql(*conn, absl::StrCat("INSERT INTO acct (id, v) VALUES (", key, ", '", v,
                                      "') ON CONFLICT (id) DO UPDATE SET v = excluded.v"));
  }

  // The state SHOW SHARDS gives `shard`'s primary ("up" / "down").
  static std::string PrimaryState(const std::string& shard) {
    auto admin = env().ConnectAdmin();
    if (!admin.ok()) return "";
    auto rows = admin->Rows("SHOW SHARDS");
    if (!rows.ok()) return "";
    for (const auto& row : *rows) {
      if (row.size() > 4 && row[1] == shard && row[2] == "primary") return row[4];
    }
    return "";
  }

  // The ids of acct on `shard`'s primary, read directly.
  static std::set<int64_t> IdsOn(int shard) {
    std::set<int64_t> ids;
    auto conn = env().ConnectDirect({shard, -1});
    if (!conn.ok()) return ids;
    auto rows = conn->Rows("SELECT id FROM acct");
    if (!rows.ok()) return ids;
    for (const auto& row : *rows) ids.insert(std::stoll(row.at(0)));
    return ids;
  }

  // Inserts fresh keys (`base` + i) through the proxy until `stop`, bounded by a count,
  // reconnecting after an error; records each key and whether its commit was acknowledged.
  static void WriteLoop(const std::string& conninfo, int64_t base,
                        const std::atomic<bool>& stop, WriteLog& log) {
    PgConn conn;
    for (int64_t i = 0; i < 20000 && !stop.load(); ++i) {
      if (conn.get() == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
        auto c = PgConn::Connect(conninfo);
        if (!c.ok()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        conn = std::move(*c);
      }
      const int64_t key = base + i;
      const int shard = env().ShardOf("acct", key);
      {
        std::lock_guard<std::mutex> lock(log.mu);
        log.attempts[key] = false;
      }
      const Outcome o = RunSql(conn, absl::StrCat("INSERT INTO acct (id, v) VALUES (", key, ", 'load')"));
      if (o.ok) {
        std::lock_guard<std::mutex> lock(log.mu);
        log.attempts[key] = true;
        log.acked[shard].fetch_add(1);
      } else {
        log.failed[shard].fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// A primary that stalls for less than two health checks

// A machine so loaded that a healthy server's answer misses health_check_timeout once (a
// scheduling stall of a second or more, seen under pgbench on two cores) must not cut its shard
// off: a check that times out leaves the primary as it was, and only the next one, if it times
// out too, marks it down (the hung primary below misses every check). Here the primary stops
// for 700 ms: the check in flight then times out (500 ms), the next one, after the stall, is
// answered, and SHOW SHARDS never shows it down.
TEST_F(ShardedFaultsTest, OneHealthCheckWithoutAnAnswerLeavesThePrimaryUp) {
  ASSERT_TRUE(WaitFor([] { return PrimaryState("s0") == "up"; }));
  ASSERT_OK(env().primary(0).Freeze());
  bool down = false;
  const auto thaw_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
  while (std::chrono::steady_clock::now() < thaw_at) {
    down |= PrimaryState("s0") == "down";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_OK(env().primary(0).Thaw());
  for (int i = 0; i < 40; ++i) {  // the checks during and after the stall have ended by then
    down |= PrimaryState("s0") == "down";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(down) << env().ProxyLogTail();
  // The check did time out (else this tested nothing).
  EXPECT_THAT(env().ProxyLogTail(), HasSubstr("it is marked down if the next check gets no answer"));
  EXPECT_EQ(PrimaryState("s0"), "up");
}

// ---------------------------------------------------------------------------------------------
// A hung primary

TEST_F(ShardedFaultsTest, HungPrimaryTimesOutThenItsBreakerFailsFastWhileTheOtherShardServes) {
  const std::vector<int64_t> on_s0 = env().KeysOn("acct", 0, 20, 1000);
  const std::vector<int64_t> on_s1 = env().KeysOn("acct", 1, 20, 1000);
  // Acknowledged before the hang.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Write(on_s0[i], "before").ok);
    ASSERT_TRUE(Write(on_s1[i], "before").ok);
  }
  ASSERT_EQ(PrimaryState("s0"), "up");

  // A transaction holding s0's primary when it hangs.
  ASSERT_OK_AND_ASSIGN(PgConn in_txn, env().Connect());
  ASSERT_OK(in_txn.Exec("BEGIN"));
  ASSERT_OK(in_txn.Exec(absl::StrCat("INSERT INTO acct (id, v) VALUES (", on_s0[10], ", 'in flight')")));

  ASSERT_OK(env().primary(0).Freeze());
  // Its next statement: no answer, the cancel sent at timeouts.query gets none either, so the
  // proxy gives the server up and says so (FATAL: the transaction is gone with it).
  auto stuck = std::async(std::launch::async, [&] {
    return in_txn.Exec(absl::StrCat("UPDATE acct SET v = 'x' WHERE id = ", on_s0[10]));
  });
  // On a failure the server is let go first: the pending futures would block the test's end.
  const bool returned = stuck.wait_for(std::chrono::seconds(15)) == std::future_status::ready;
  if (!returned) EXPECT_OK(env().primary(0).Thaw());
  ASSERT_TRUE(returned) << "a statement on the hung primary never returned";
  const absl::Status stuck_status = stuck.get();
  EXPECT_FALSE(stuck_status.ok());
  EXPECT_THAT(std::string(PQerrorMessage(in_txn.get())), HasSubstr("stopped answering"))
      << stuck_status;

  // The breaker is open: the health check (500 ms timeout, the second one that gets no answer)
  // or that session marked it down.
  ASSERT_TRUE(WaitFor([] { return PrimaryState("s0") == "down"; }, std::chrono::seconds(10)))
      << "SHOW SHARDS never showed s0's primary down";

  // Clients no longer pile up on it: eight writers at once all get the breaker's error, none
  // waits for a connection to the hung server (timeouts.connect) or a pool slot.
  std::vector<std::future<Outcome>> writers;
  for (int i = 0; i < 8; ++i) {
    writers.push_back(std::async(std::launch::async, [&, i] { return Write(on_s0[11 + i], "w"); }));
  }
  for (auto& w : writers) {
    const bool answered = w.wait_for(std::chrono::seconds(15)) == std::future_status::ready;
    if (!answered) EXPECT_OK(env().primary(0).Thaw());
    ASSERT_TRUE(answered) << "a writer waited on the hung primary";
    const Outcome o = w.get();
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.sqlstate, "08001") << o.Describe();
    EXPECT_THAT(o.message, HasSubstr("shard \"s0\" is unavailable")) << o.Describe();
    EXPECT_THAT(o.hint, HasSubstr("health_check_interval")) << o.Describe();
  }
  {
    ASSERT_OK_AND_ASSIGN(PgConn admin, env().ConnectAdmin());
    ASSERT_OK_AND_ASSIGN(auto pools, admin.Rows("SHOW POOLS"));
    for (const auto& row : pools) {
      ASSERT_GT(row.size(), 4u);
      EXPECT_EQ(row[3], "0") << "cl_waiting of " << row[0] << "/" << row[1];
    }
  }
  // A statement across shards that writes needs s0's primary too: refused the same way.
  {
    ASSERT_OK_AND_ASSIGN(PgConn c, env().Connect());
    const Outcome o = RunSql(c, "UPDATE acct SET v = v");
    EXPECT_EQ(o.sqlstate, "08001") << o.Describe();
  }

  // The other shard keeps serving, reads and writes; s0's rows are still read from its replica.
  EXPECT_TRUE(Write(on_s1[5], "during").ok);
  {
    ASSERT_OK_AND_ASSIGN(PgConn c, env().Connect());
    const Outcome s1_read = RunSql(c, absl::StrCat("SELECT v FROM acct WHERE id = ", on_s1[5]));
    EXPECT_TRUE(s1_read.ok) << s1_read.Describe();
    EXPECT_EQ(s1_read.Scalar(), "during");
    const Outcome s0_read = RunSql(c, absl::StrCat("SELECT v FROM acct WHERE id = ", on_s0[0]));
    EXPECT_TRUE(s0_read.ok) << s0_read.Describe();
    EXPECT_EQ(s0_read.Scalar(), "before");
  }

  // Back: the next good health check closes the breaker; no restart of shardgate.
  ASSERT_OK(env().primary(0).Thaw());
  Outcome last;
  ASSERT_TRUE(WaitFor(
      [&] {
        last = Write(on_s0[5], "after");
        return last.ok;
      },
      std::chrono::seconds(20)))
      << "s0 took no write after it came back: " << last.Describe();
  EXPECT_EQ(PrimaryState("s0"), "up");
  ASSERT_TRUE(env().ProxyAlive());

  // Nothing acknowledged was lost, nothing refused was written, and the transaction that was
  // cut off was rolled back (its backend sees the closed connection once it runs again).
  ASSERT_TRUE(WaitFor([&] { return IdsOn(0).count(on_s0[10]) == 0; }))
      << "the cut-off transaction's row was committed";
  const std::set<int64_t> s0_ids = IdsOn(0);
  const std::set<int64_t> s1_ids = IdsOn(1);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(s0_ids.count(on_s0[i])) << on_s0[i];
    EXPECT_TRUE(s1_ids.count(on_s1[i])) << on_s1[i];
  }
  EXPECT_TRUE(s0_ids.count(on_s0[5]));
  EXPECT_TRUE(s1_ids.count(on_s1[5]));
  for (int i = 11; i < 19; ++i) EXPECT_FALSE(s0_ids.count(on_s0[i])) << on_s0[i];
}

// ---------------------------------------------------------------------------------------------
// A primary killed under a write load

TEST_F(ShardedFaultsTest, PrimaryKilledUnderWriteLoadLosesNoAcknowledgedWriteAndComesBack) {
  WriteLog log;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back(WriteLoop, env().ConnString(), 1000000 * (t + 1), std::cref(stop),
                         std::ref(log));
  }
  auto finish = [&] {
    stop.store(true);
    for (auto& w : writers) w.join();
    writers.clear();
  };
  auto acked = [&](int s) { return log.acked[s].load(); };

  const bool warmed = WaitFor([&] { return acked(0) >= 50 && acked(1) >= 50; });
  if (!warmed) finish();
  ASSERT_TRUE(warmed) << "the load did not start: " << acked(0) << "/" << acked(1);

  ASSERT_OK(env().primary(1).Kill());
  // s1's writes fail; s0's keep being acknowledged meanwhile.
  const int s1_failed_before = log.failed[1].load();
  const int s0_acked_at_kill = acked(0);
  const bool s1_failing = WaitFor([&] { return log.failed[1].load() >= s1_failed_before + 20; });
  const bool s0_serving = WaitFor([&] { return acked(0) >= s0_acked_at_kill + 100; });
  const int s1_acked_down = acked(1);

  absl::Status restarted = env().primary(1).Restart();
  const bool s1_back =
      restarted.ok() &&
      WaitFor([&] { return acked(1) >= s1_acked_down + 50; }, std::chrono::seconds(30));
  finish();
  ASSERT_OK(restarted);
  EXPECT_TRUE(s1_failing) << "s1's writes did not fail with its primary dead";
  EXPECT_TRUE(s0_serving) << "s0 stopped taking writes while s1 was down";
  EXPECT_TRUE(s1_back) << "s1 took no writes after its primary came back";
  EXPECT_TRUE(env().ProxyAlive());

  // Every acknowledged key is on its shard; every key there was attempted by the load (a
  // failed insert may have committed before the connection broke: its outcome is unknown).
  const std::set<int64_t> on[2] = {IdsOn(0), IdsOn(1)};
  int acknowledged = 0, lost = 0, stray = 0;
  for (const auto& [key, ok] : log.attempts) {
    if (!ok) continue;
    ++acknowledged;
    if (on[env().ShardOf("acct", key)].count(key) == 0) ++lost;
  }
  for (int s = 0; s < 2; ++s) {
    for (int64_t key : on[s]) {
      if (key < 1000000) continue;  // the other test's rows
      if (log.attempts.count(key) == 0 || env().ShardOf("acct", key) != s) ++stray;
    }
  }
  EXPECT_GT(acknowledged, 250);
  EXPECT_EQ(lost, 0) << "acknowledged writes missing after the primary's restart";
  EXPECT_EQ(stray, 0) << "rows no writer sent, or on the wrong shard";
  // The replica follows the restarted primary again.
  EXPECT_OK(env().CatchUp());
}

}  // namespace
}  // namespace shardgate::testing
