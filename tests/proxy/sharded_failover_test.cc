// Issue 4, servers failing under the sharded proxy: a replica killed under a read load loses
// only the queries in flight on it and is re-admitted when back; a lagging replica gets no reads
// until it catches up; a dead primary fails its own shard's queries only (08001/08006 naming
// it); a promoted replica takes the writes without a restart of shardgate.
// Cluster: s0 with two replicas (the kill), s1 with one (the lag), s2 with one (the promotion).
#include <atomic>
#include <map>
#include <mutex>

#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;

constexpr int kKeysPerShard = 20;
constexpr char kSelects[] = "%from probe where%";

class ShardedFailoverTest : public ShardedSuite<ShardedFailoverTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {2, 1, 1};
    o.extra_database_yaml =
        "    health_check_interval: 300ms\n"
        "    max_replica_lag: 1s\n"
        "    routers:\n"
        "      r_mod: {type: modulo, hash: postgres, shards: [s0, s1, s2]}\n"
        "    tables:\n"
        "      probe: {key: id, router: r_mod}\n";
    o.extra_top_yaml = "timeouts:\n  connect: 2s\n";
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    ShardedSuite::SetUpTestSuite();
    if (env_ == nullptr) return;
    absl::Status st = env_->ExecOnPrimaries(
        "CREATE TABLE probe (id bigint PRIMARY KEY, v text);"
        "CREATE TABLE lag_filler (id bigserial PRIMARY KEY, at timestamptz DEFAULT now());");
    // Each shard's primary gets its own keys directly, so that reads have rows to find.
    for (int s = 0; st.ok() && s < env_->shard_count(); ++s) {
      const std::vector<int64_t> keys = env_->KeysOn("probe", s, kKeysPerShard);
      st = env_->primary(s)
               .Query(absl::StrCat("INSERT INTO probe SELECT k, 'p' || k FROM unnest('{",
                                   absl::StrJoin(keys, ","), "}'::bigint[]) k"))
               .status();
    }
    if (st.ok()) st = env_->CatchUp();
    if (!st.ok()) FailSetUp(st, "schema");
  }

  static std::vector<int64_t> Keys(int shard) {
    return env().KeysOn("probe", shard, kKeysPerShard);
  }

  // `n` keyed reads of `shard`'s rows through a fresh connection; the number answered right.
  static int ReadBatch(int shard, int n) {
    auto conn = env().Connect();
    if (!conn.ok()) return 0;
    const std::vector<int64_t> keys = Keys(shard);
    int good = 0;
    for (int i = 0; i < n; ++i) {
      const int64_t k = keys[i % keys.size()];
      const Outcome o = RunSql(*conn, absl::StrCat("SELECT v FROM probe WHERE id = ", k));
      if (o.ok && o.Scalar() == absl::StrCat("p", k)) ++good;
    }
    return good;
  }
};

// ---------------------------------------------------------------------------------------------
// 3. A replica killed under a read load

struct Failure {
  Clock::time_point at;
  std::string what;
};

// Shared by the readers and the test thread.
struct LoadStats {
  std::mutex mu;
  std::vector<Failure> failures;
  std::atomic<int> ok{0};
};

// Keyed reads in a loop until `stop` (bounded by an iteration cap), reconnecting after a
// connection is lost.
void ReadLoop(const std::string& conninfo, const std::vector<int64_t>& keys, int seed,
              const std::atomic<bool>& stop, LoadStats& stats) {
  PgConn conn;
  auto fail = [&](std::string what) {
    std::lock_guard<std::mutex> lock(stats.mu);
    stats.failures.push_back({Clock::now(), std::move(what)});
  };
  for (int i = 0; i < 200000 && !stop.load(); ++i) {
    if (conn.get() == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
      auto c = PgConn::Connect(conninfo);
      if (!c.ok()) {
        fail(absl::StrCat("connect: ", c.status().message()));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      conn = std::move(*c);
    }
    const int64_t k = keys[(i + seed) % keys.size()];
    const Outcome o = RunSql(conn, absl::StrCat("SELECT v FROM probe WHERE id = ", k));
    if (o.ok && o.Scalar() == absl::StrCat("p", k)) {
      stats.ok.fetch_add(1);
    } else {
      fail(o.ok ? absl::StrCat("wrong answer for ", k, ": '", o.Scalar(), "'") : o.Describe());
    }
    // Paced: a steady load (hundreds of reads a second per reader), not a CPU burner.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST_F(ShardedFailoverTest, KillingAReplicaUnderReadLoadLosesOnlyQueriesInFlightOnIt) {
  constexpr int kReaders = 4;
  ASSERT_NE(env().Server({0, 0}).pid(), 0) << "replica 0 of s0 is not running";
  const std::vector<int64_t> keys = Keys(0);
  const auto before = env().ShardCalls(0, kSelects);

  LoadStats stats;
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back(ReadLoop, env().ConnString(), std::cref(keys), r * 5, std::cref(stop),
                         std::ref(stats));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const int ok_before_kill = stats.ok.load();
  const auto killed_at = Clock::now();
  const absl::Status killed = env().Server({0, 0}).Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  const int ok_at_grace_end = stats.ok.load();
  const auto grace_end = Clock::now();
  const auto mid = env().ShardCalls(0, kSelects);  // replica 0 answers -1 now
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  stop = true;
  for (auto& t : readers) t.join();
  ASSERT_OK(killed);
  const auto after = env().ShardCalls(0, kSelects);

  std::cout << "reads: " << ok_before_kill << " before the kill, " << stats.ok.load()
            << " in all; failures: " << stats.failures.size() << "\n";
  EXPECT_GT(ok_before_kill, 0) << "the read load did not run before the kill";
  EXPECT_GT(stats.ok.load(), ok_at_grace_end) << "reads stopped succeeding after the kill";
  std::string failures;
  int late = 0;
  for (const Failure& f : stats.failures) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(f.at - killed_at).count();
    absl::StrAppend(&failures, "  at kill", ms >= 0 ? "+" : "", ms, " ms: ", f.what, "\n");
    if (f.at < killed_at || f.at > grace_end) ++late;
  }
  EXPECT_LE(stats.failures.size(), static_cast<size_t>(kReaders))
      << "more failures than queries that can be in flight on the killed replica:\n"
      << failures;
  EXPECT_EQ(late, 0) << "failures outside the 3 s after the kill (queries that were not in "
                        "flight on it):\n"
                     << failures;
  // The surviving replica took the load; the primary took no reads.
  EXPECT_GT(after[2] - mid[2], 0) << "replica 1 calls before/mid/after: " << Show(before) << " "
                                  << Show(mid) << " " << Show(after);
  EXPECT_EQ(after[0] - before[0], 0) << "reads reached the primary while a replica was healthy";
}

TEST_F(ShardedFailoverTest, KilledReplicaIsReadmittedOnceItIsBack) {
  PgServer& replica = env().Server({0, 0});
  if (replica.pid() != 0) {  // run alone: kill it here, and let a health check notice
    ASSERT_OK(replica.Kill());
    EXPECT_EQ(ReadBatch(0, 20), 20) << "reads with one of two replicas dead";
  }
  ASSERT_OK(replica.Restart());
  ASSERT_OK(env().CatchUp());
  bool readmitted = false;
  int bad_reads = 0;
  for (int attempt = 0; attempt < 30 && !readmitted; ++attempt) {
    const int64_t before = env().Calls({0, 0}, kSelects);
    bad_reads += 10 - ReadBatch(0, 10);
    const int64_t after = env().Calls({0, 0}, kSelects);
    readmitted = before >= 0 && after > before;
    if (!readmitted) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_TRUE(readmitted) << "the restarted replica got no reads within ~20 s";
  EXPECT_EQ(bad_reads, 0);
}

// ---------------------------------------------------------------------------------------------
// A lagging replica

TEST_F(ShardedFailoverTest, LaggingReplicaGetsNoReadsUntilItCatchesUp) {
  PgServer& replica = env().Server({1, 0});
  // Baseline: reads of s1 reach its replica (otherwise the rest proves nothing).
  {
    const auto before = env().ShardCalls(1, kSelects);
    ASSERT_EQ(ReadBatch(1, 6), 6);
    const auto d = Delta(before, env().ShardCalls(1, kSelects));
    ASSERT_EQ(d[1], 6) << "s1 [primary, replica]: " << Show(d);
  }

  ASSERT_OK(replica.Query("SELECT pg_wal_replay_pause()").status());
  std::atomic<bool> stop{false};
  std::thread writer([&] {  // keeps the primary's WAL moving on (bounded: 400 x 100 ms)
    auto conn = env().ConnectDirect({1, -1});
    for (int i = 0; conn.ok() && i < 400 && !stop.load(); ++i) {
      (void)conn->Exec("INSERT INTO lag_filler DEFAULT VALUES");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  // max_replica_lag is 1 s and checks run every 300 ms: well within 15 s reads leave it.
  bool skipped = false;
  int bad_reads = 0;
  std::vector<int64_t> last;
  for (int attempt = 0; attempt < 30 && !skipped; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto before = env().ShardCalls(1, kSelects);
    bad_reads += 5 - ReadBatch(1, 5);
    last = Delta(before, env().ShardCalls(1, kSelects));
    skipped = last[1] == 0 && last[0] == 5;
  }
  EXPECT_TRUE(skipped) << "a replica lagging past max_replica_lag still gets reads; last batch "
                          "[primary, replica]: "
                       << Show(last);

  stop = true;
  writer.join();
  ASSERT_OK(replica.Query("SELECT pg_wal_replay_resume()").status());
  bool back = false;
  for (int attempt = 0; attempt < 30 && !back; ++attempt) {
    const auto before = env().ShardCalls(1, kSelects);
    bad_reads += 5 - ReadBatch(1, 5);
    last = Delta(before, env().ShardCalls(1, kSelects));
    back = last[1] > 0;
    if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_TRUE(back) << "the replica, caught up, got no reads within ~20 s; last batch: "
                    << Show(last);
  EXPECT_EQ(bad_reads, 0) << "reads failed or answered wrongly while the replica lagged";
}

// ---------------------------------------------------------------------------------------------
// 4. A dead primary, then its replica promoted

// Inserts probe row `key` through a fresh connection to shardgate.
Outcome InsertThroughProxy(ShardedEnv& env, int64_t key) {
  auto conn = env.Connect();
  if (!conn.ok()) {
    Outcome o;
    o.sqlstate = kNoSqlState;
    o.message = std::string(conn.status().message());
    return o;
  }
  return RunSql(*conn, absl::StrCat("INSERT INTO probe (id, v) VALUES (", key, ", 'w", key,
                                    "') ON CONFLICT (id) DO UPDATE SET v = excluded.v"));
}

TEST_F(ShardedFailoverTest, DeadPrimaryFailsOnlyItsOwnShardsQueries) {
  if (env().primary(2).pid() != 0) {
    ASSERT_OK(env().primary(2).Kill());
  }
  const int64_t on_s2 = env().KeysOn("probe", 2, 1, 50000).at(0);
  const auto started = Clock::now();
  const Outcome dead = InsertThroughProxy(env(), on_s2);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  EXPECT_FALSE(dead.ok);
  EXPECT_THAT(dead.sqlstate, AnyOf(Eq("08001"), Eq("08006"))) << dead.Describe();
  EXPECT_THAT(dead.message, HasSubstr("s2")) << "the error should name the shard";
  EXPECT_LT(took.count(), 10000) << "bounded by timeouts.connect (2 s)";
  for (int s = 0; s < 2; ++s) {
    const int64_t k = env().KeysOn("probe", s, 1, 50000).at(0);
    const Outcome o = InsertThroughProxy(env(), k);
    EXPECT_TRUE(o.ok) << "s" << s << " must not suffer from s2's primary: " << o.Describe();
  }
}

TEST_F(ShardedFailoverTest, PromotedReplicaTakesWrites) {
  if (env().primary(2).pid() != 0) {
    ASSERT_OK(env().primary(2).Kill());
  }
  PgServer& promoted = env().Server({2, 0});
  ASSERT_OK(promoted.Promote());
  ASSERT_EQ(Text(promoted.Query("SELECT pg_is_in_recovery()")), "f");

  const std::vector<int64_t> keys = env().KeysOn("probe", 2, 3, 60000);
  Outcome last;
  bool written = false;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (!written && Clock::now() < deadline) {
    last = InsertThroughProxy(env(), keys[0]);
    written = last.ok;
    if (!written) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(written) << "no write reached the promoted replica within 20 s; last: "
                       << last.Describe();
  for (size_t i = 1; i < keys.size(); ++i) {
    const Outcome o = InsertThroughProxy(env(), keys[i]);
    EXPECT_TRUE(o.ok) << o.Describe();
  }
  for (int64_t k : keys) {
    EXPECT_EQ(Text(promoted.Query(absl::StrCat("SELECT v FROM probe WHERE id = ", k))),
              absl::StrCat("w", k))
        << "key " << k << " should be on the promoted server";
  }
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  EXPECT_EQ(Text(conn.Scalar(absl::StrCat("SELECT v FROM probe WHERE id = ", keys[0]))),
            absl::StrCat("w", keys[0]));
}

// ---------------------------------------------------------------------------------------------
// Zone-aware reads (issue 10): a second proxy in zone "b" reads s0 from its replica 1 (zone b)
// only, from replica 0 (zone a) while replica 1 is down, and from replica 1 again once back.

TEST_F(ShardedFailoverTest, ReadsPreferTheProxysZoneAndFallBackToAnother) {
  PgServer& local = env().Server({0, 1});
  PgServer& remote = env().Server({0, 0});
  for (PgServer* server : {&local, &remote}) {
    if (server->pid() == 0) ASSERT_OK(server->Restart());
  }
  ASSERT_OK(env().CatchUp());
  const int port = FreePort();
  std::string yaml = absl::StrCat("zone: b\n", env().Yaml(port));
  for (const auto& [server, zone] : {std::pair{&remote, "a"}, std::pair{&local, "b"}}) {
    const std::string endpoint = absl::StrCat("port: ", server->port(), ", dbname: app}");
    const size_t at = yaml.find(endpoint);
    ASSERT_NE(at, std::string::npos) << yaml;
    yaml.replace(at, endpoint.size(),
                 absl::StrCat("port: ", server->port(), ", dbname: app, zone: ", zone, "}"));
  }
  ASSERT_OK_AND_ASSIGN(auto proxy, ShardgateProcess::Start(yaml, port));
  const std::vector<int64_t> keys = Keys(0);
  // The port of the server each keyed read of s0 ran on, over `n` reads.
  auto servers = [&](int n) {
    std::map<std::string, int> seen;
    auto conn = PgConn::Connect(proxy->ConnString("app", kScramUser, kScramPassword));
    if (!conn.ok()) return seen;
    for (int i = 0; i < n; ++i) {
      const Outcome o = RunSql(*conn, absl::StrCat("SELECT inet_server_port() FROM probe WHERE id = ",
                                                  keys[i % keys.size()]));
      ++seen[o.ok ? o.Scalar() : o.Describe()];
    }
    return seen;
  };
  const std::string local_port = absl::StrCat(local.port());
  const std::string remote_port = absl::StrCat(remote.port());
  // Both replicas healthy (the new proxy's first health checks may not have run yet).
  ASSERT_TRUE(WaitFor([&] { return servers(4)[local_port] == 4; }));
  auto seen = servers(20);
  EXPECT_EQ(seen[local_port], 20) << "reads left the proxy's zone with its replica healthy";

  ASSERT_OK(local.Kill());
  std::map<std::string, int> during;
  EXPECT_TRUE(WaitFor([&] {
    during = servers(10);
    return during[remote_port] == 10;
  })) << "the other zone's replica took no reads with the local one down";

  ASSERT_OK(local.Restart());
  ASSERT_OK(env().CatchUp());
  EXPECT_TRUE(WaitFor([&] { return servers(10)[local_port] == 10; }, std::chrono::seconds(20)))
      << "reads did not come back to the proxy's zone";
}

}  // namespace
}  // namespace shardgate::testing
