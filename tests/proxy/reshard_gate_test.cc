// The resharding cutover hooks of the admin console, seen by clients of a real shardgate over
// two shards: RESHARD PAUSE holds writes to the paused table only (reads and other tables go
// on), waits for transactions that wrote before it, gives up after its maximum; the pause's
// deadline lets held writes go on by themselves; RESHARD SWITCH needs a pause and a valid file;
// a real switch sends the held write to the shard the new map names, and a transaction begun on
// the old map that writes a moved table gets 40001; SHOW RESHARD reports the state.
//
// Waiting is bounded everywhere: statements that may be held are sent with PQsendQuery and
// polled. The only timed assertions are "not answered yet after N ms".
#include <poll.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

using std::chrono::milliseconds;

// t moves in the switch test: keys in [kNewBound, kOldBound) go from s0 to s1. u never moves.
constexpr int64_t kOldBound = 1000, kNewBound = 100;
constexpr milliseconds kNotYet{300};    // "still held after this long"
constexpr milliseconds kAnswer{15000};  // a bound on any answer that should come
constexpr int kPauseMs = 20000;         // long enough never to expire by itself in a test

std::string DatabaseYaml(int64_t bound) {
  return absl::StrCat(
      "    routers:\n"
      "      r_range: {type: range, ranges: [{to: ",
      bound,
      ", shard: s0}, {shard: s1}]}\n"
      "      r_mod: {type: modulo, hash: postgres, shards: [s0, s1]}\n"
      "    tables:\n"
      "      t: {key: id, router: r_range}\n"
      "      u: {key: id, router: r_mod}\n");
}

// A statement sent without waiting for its answer (PQsendQuery), on its own connection.
class Pending {
 public:
  Pending(const PgConn& conn, const std::string& sql) : conn_(conn.get()) {
    sent_ = PQsendQuery(conn_, sql.c_str()) == 1;
  }
  // The extended protocol, text parameters.
  Pending(const PgConn& conn, const std::string& sql, const std::vector<std::string>& params)
      : conn_(conn.get()) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    sent_ = PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0) == 1;
  }
  // Whether the answer (every result up to ReadyForQuery) arrived within `timeout`.
  bool Answered(milliseconds timeout) {
    if (!sent_) return true;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (PQconsumeInput(conn_) == 0 || PQisBusy(conn_) == 0) return true;
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{PQsocket(conn_), POLLIN, 0};
      poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 50)));
    }
  }
  // The outcome, waiting at most kAnswer: the first error if any, else the last result.
  Outcome Result() {
    if (!sent_) return Outcome{false, kNoSqlState, PQerrorMessage(conn_), "", {}};
    if (!Answered(kAnswer)) return Outcome{false, "(timeout)", "no answer", "", {}};
    Outcome out;
    bool have = false;
    while (PGresult* r = PQgetResult(conn_)) {
      Outcome o = OutcomeOf(conn_, r);
      if (!have || (out.ok && !o.ok)) out = std::move(o);
      have = true;
    }
    return out;
  }

 private:
  PGconn* conn_;
  bool sent_ = false;
};

// Every statement through shardgate here is bounded: a held one fails the test, not hangs it.
Outcome Ask(const PgConn& conn, const std::string& sql) { return Pending(conn, sql).Result(); }

class ReshardGateTest : public ShardedSuite<ReshardGateTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {0, 0};
    o.extra_database_yaml = DatabaseYaml(kOldBound);
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    ShardedSuite::SetUpTestSuite();
    if (env_ == nullptr) return;
    absl::Status st = env_->ExecOnPrimaries(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text);"
        "CREATE TABLE u (id bigint PRIMARY KEY, v text);");
    if (!st.ok()) FailSetUp(st, "schema");
  }

  void SetUp() override {
    ShardedSuite::SetUp();
    if (HasFatalFailure()) return;
    auto admin = env().ConnectAdmin();
    ASSERT_OK(admin.status());
    admin_ = std::move(*admin);
  }
  void TearDown() override {
    // Never leave a pause on for the next test (on a new connection: admin_ may be busy).
    admin_.Close();
    if (env_ != nullptr && env_->proxy != nullptr && env_->ProxyAlive()) {
      if (auto admin = env().ConnectAdmin(); admin.ok()) Ask(*admin, "RESHARD RESUME app");
    }
    ShardedSuite::TearDown();
  }

  // Which primaries hold row `id` of `table` ("s0", "s1", "s0,s1" or "").
  static std::string Holders(const std::string& table, int64_t id) {
    std::vector<std::string> out;
    for (int s = 0; s < env().shard_count(); ++s) {
      auto n =
          env().primary(s).Query(absl::StrCat("SELECT count(*) FROM ", table, " WHERE id = ", id));
      if (!n.ok()) return n.status().ToString();
      if (*n != "0") out.push_back(ShardedEnv::ShardName(s));
    }
    return absl::StrJoin(out, ",");
  }
  static std::string Insert(const std::string& table, int64_t id, const std::string& v = "x") {
    return absl::StrCat("INSERT INTO ", table, " (id, v) VALUES (", id, ", '", v, "')");
  }
  // SHOW RESHARD's row for app: database, map_version, paused, tables, draining.
  std::vector<std::string> ShowReshard(const PgConn& admin) {
    Outcome r = Ask(admin, "SHOW RESHARD");
    EXPECT_TRUE(r.ok) << r.Describe();
    for (const auto& row : r.rows) {
      if (!row.empty() && row[0] == "app") return row;
    }
    return {};
  }

  PgConn admin_;
};

// a) A paused table's autocommit write waits; reads of it and writes elsewhere do not; RESUME
// lets it complete.
TEST_F(ReshardGateTest, PauseHoldsWritesOfThePausedTableOnly) {
  ASSERT_OK_AND_ASSIGN(PgConn writer, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn other, env().Connect());
  ASSERT_EQ(env().ShardOf("t", 11), 0);
  Outcome setup = Ask(other, Insert("t", 12, "before"));
  ASSERT_TRUE(setup.ok) << setup.Describe();

  Outcome pause = Ask(admin_, absl::StrCat("RESHARD PAUSE app t ", kPauseMs));
  ASSERT_TRUE(pause.ok) << pause.Describe();
  ASSERT_EQ(pause.rows.size(), 1u);
  EXPECT_EQ(pause.rows[0][0], "app");
  EXPECT_EQ(pause.rows[0][1], "t");

  Pending held(writer, Insert("t", 11));
  EXPECT_FALSE(held.Answered(kNotYet))
      << "the write to t was answered during the pause: " << held.Result().Describe();
  // Reads of t, with and without a key, and writes to u are answered meanwhile.
  Outcome read = Ask(other, "SELECT v FROM t WHERE id = 12");
  EXPECT_TRUE(read.ok) << read.Describe();
  EXPECT_EQ(read.Scalar(), "before");
  Outcome scan = Ask(other, "SELECT id FROM t WHERE id IN (11, 12, 2012) ORDER BY id");
  EXPECT_TRUE(scan.ok) << scan.Describe();
  EXPECT_EQ(scan.rows, (std::vector<std::vector<std::string>>{{"12"}}))
      << "a read across both shards is answered, without the held row";
  Outcome write_u = Ask(other, Insert("u", 11));
  EXPECT_TRUE(write_u.ok) << write_u.Describe();
  EXPECT_FALSE(held.Answered(milliseconds(0))) << "still held after the other statements";
  EXPECT_EQ(Holders("t", 11), "");

  Outcome resume = Ask(admin_, "RESHARD RESUME app");
  ASSERT_TRUE(resume.ok) << resume.Describe();
  Outcome done = held.Result();
  EXPECT_TRUE(done.ok) << done.Describe();
  EXPECT_EQ(Holders("t", 11), "s0");
  // The writer's connection is usable afterwards.
  EXPECT_EQ(Ask(writer, "SELECT v FROM t WHERE id = 11").Scalar(), "x");
}

// b) PAUSE answers only once a transaction that wrote t before it has ended; that transaction
// may go on writing t meanwhile. With a small maximum and the transaction left open, PAUSE
// answers 55000 and writes go on.
TEST_F(ReshardGateTest, PauseWaitsForTransactionsThatWroteBefore) {
  ASSERT_OK_AND_ASSIGN(PgConn txn, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn other, env().Connect());
  ASSERT_TRUE(Ask(txn, "BEGIN").ok);
  Outcome first = Ask(txn, Insert("t", 21));
  ASSERT_TRUE(first.ok) << first.Describe();

  Pending pause(admin_, absl::StrCat("RESHARD PAUSE app t ", kPauseMs));
  EXPECT_FALSE(pause.Answered(kNotYet))
      << "PAUSE answered with a transaction that wrote t still open: " << pause.Result().Describe();
  // The open transaction is not held: it entered before the pause.
  Outcome second = Ask(txn, Insert("t", 22));
  EXPECT_TRUE(second.ok) << second.Describe();
  EXPECT_FALSE(pause.Answered(milliseconds(0)));
  Outcome commit = Ask(txn, "COMMIT");
  ASSERT_TRUE(commit.ok) << commit.Describe();
  Outcome paused = pause.Result();
  ASSERT_TRUE(paused.ok) << paused.Describe();
  EXPECT_EQ(Holders("t", 21), "s0");
  EXPECT_EQ(Holders("t", 22), "s0");
  // Now paused: a new write waits.
  Pending held(other, Insert("t", 23));
  EXPECT_FALSE(held.Answered(kNotYet));
  ASSERT_TRUE(Ask(admin_, "RESHARD RESUME app").ok);
  EXPECT_TRUE(held.Result().ok);

  // The transaction stays open past the maximum: 55000, and writes are not held.
  ASSERT_TRUE(Ask(txn, "BEGIN").ok);
  ASSERT_TRUE(Ask(txn, Insert("t", 24)).ok);
  Outcome refused = Ask(admin_, "RESHARD PAUSE app t 300");
  EXPECT_EQ(refused.sqlstate, "55000") << refused.Describe();
  EXPECT_THAT(refused.message, ::testing::HasSubstr("still open"));
  EXPECT_EQ(ShowReshard(admin_).at(2), "no");
  Pending after(other, Insert("t", 25));
  EXPECT_TRUE(after.Answered(kAnswer));
  EXPECT_TRUE(after.Result().ok);
  // While that transaction (from before the failed pause) is open, a new pause is refused at
  // once; once it ends, pausing works again.
  Outcome again = Ask(admin_, absl::StrCat("RESHARD PAUSE app t ", kPauseMs));
  EXPECT_EQ(again.sqlstate, "55000") << again.Describe();
  ASSERT_TRUE(Ask(txn, "COMMIT").ok);
  EXPECT_EQ(Holders("t", 24), "s0");
  Outcome works = Ask(admin_, absl::StrCat("RESHARD PAUSE app t ", kPauseMs));
  EXPECT_TRUE(works.ok) << works.Describe();
  ASSERT_TRUE(Ask(admin_, "RESHARD RESUME app").ok);
}

// c) A pause nobody resumes (a shardctl that died) ends at its maximum: the held write goes on.
TEST_F(ReshardGateTest, HeldWriteProceedsAtThePauseDeadline) {
  ASSERT_OK_AND_ASSIGN(PgConn writer, env().Connect());
  Outcome pause = Ask(admin_, "RESHARD PAUSE app t 1500");
  ASSERT_TRUE(pause.ok) << pause.Describe();
  Pending held(writer, Insert("t", 31));
  EXPECT_FALSE(held.Answered(kNotYet));
  // No RESUME: bounded by kAnswer, the deadline lets it go.
  Outcome done = held.Result();
  EXPECT_TRUE(done.ok) << done.Describe();
  EXPECT_EQ(Holders("t", 31), "s0");
  const std::vector<std::string> row = ShowReshard(admin_);
  ASSERT_EQ(row.size(), 10u);
  EXPECT_EQ(row[2], "no") << "an expired pause is not shown as on";
  // ... and SWITCH is refused after it.
  Outcome sw = Ask(admin_, absl::StrCat("RESHARD SWITCH app ", env().proxy->config_path()));
  EXPECT_EQ(sw.sqlstate, "55000") << sw.Describe();
}

// d) SWITCH needs a pause; an invalid file is refused and the old map keeps serving.
TEST_F(ReshardGateTest, SwitchNeedsAPauseAndAValidFile) {
  const std::string version = ShowReshard(admin_).at(1);
  Outcome unpaused = Ask(admin_, absl::StrCat("RESHARD SWITCH app ", env().proxy->config_path()));
  EXPECT_EQ(unpaused.sqlstate, "55000") << unpaused.Describe();

  const std::string bad = absl::StrCat(::testing::TempDir(), "/reshard-bad-", getpid(), ".yaml");
  {
    std::ofstream f(bad);
    f << "listen: {host: 127.0.0.1, port: [not a port\ndatabases: {app: 1}\n";
  }
  ASSERT_TRUE(Ask(admin_, absl::StrCat("RESHARD PAUSE app t ", kPauseMs)).ok);
  Outcome invalid = Ask(admin_, absl::StrCat("RESHARD SWITCH app ", bad));
  EXPECT_FALSE(invalid.ok) << invalid.Describe();
  EXPECT_NE(invalid.sqlstate, kNoSqlState) << invalid.Describe();
  Outcome missing = Ask(admin_, absl::StrCat("RESHARD SWITCH app ", bad, ".missing"));
  EXPECT_FALSE(missing.ok) << missing.Describe();
  EXPECT_EQ(ShowReshard(admin_).at(1), version) << "a refused switch installed a map";
  EXPECT_EQ(ShowReshard(admin_).at(2), "yes") << "a refused switch ended the pause";
  ASSERT_TRUE(Ask(admin_, "RESHARD RESUME app").ok);
  std::remove(bad.c_str());

  // The old map serves: 541 is below the old bound, on s0 (the new map would say s1).
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  Outcome w = Ask(conn, Insert("t", 541));
  ASSERT_TRUE(w.ok) << w.Describe();
  EXPECT_EQ(Holders("t", 541), "s0");
  EXPECT_EQ(ShowReshard(admin_).at(1), version);
}

// e) A real switch: the held write runs on the new map; a transaction begun on the old map
// that writes the moved table gets 40001 and succeeds when retried; one writing an unmoved table
// goes on.
TEST_F(ReshardGateTest, SwitchMovesHeldWritesAndFailsOldTransactionsWithSerializationError) {
  constexpr int64_t kMoved = 500, kRetried = 501, kMovedExtended = 502, kReadKey = 50;
  const std::string new_yaml_text = env().Yaml(env().proxy->port(), DatabaseYaml(kNewBound));
  ASSERT_OK_AND_ASSIGN(auto new_config, conf::LoadString(new_yaml_text, "new.yaml"));
  ASSERT_OK_AND_ASSIGN(auto new_map, routing::ShardMap::Build(*new_config->FindDatabase("app")));
  const auto new_shard = [&](int64_t key) {
    auto s = new_map->FindTable("", "t")->router->Route(routing::KeyValue::Int(key));
    return s.ok() ? *s : -1;
  };
  ASSERT_EQ(env().ShardOf("t", kMoved), 0);
  ASSERT_EQ(new_shard(kMoved), 1);
  ASSERT_EQ(env().ShardOf("t", kRetried), 0);
  ASSERT_EQ(new_shard(kRetried), 1);
  ASSERT_EQ(env().ShardOf("t", kMovedExtended), 0);
  ASSERT_EQ(new_shard(kMovedExtended), 1);
  ASSERT_EQ(new_shard(kReadKey), 0);
  const std::string new_yaml =
      absl::StrCat(::testing::TempDir(), "/reshard-new-", getpid(), ".yaml");
  {
    std::ofstream f(new_yaml);
    f << new_yaml_text;
  }
  const int64_t u_key = 60;

  ASSERT_OK_AND_ASSIGN(PgConn writer, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn writer_ext, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn old_txn, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn old_txn_u, env().Connect());
  // Transactions that began and read before the pause (they wrote nothing: PAUSE does not wait).
  ASSERT_TRUE(Ask(old_txn, "BEGIN").ok);
  ASSERT_TRUE(Ask(old_txn, absl::StrCat("SELECT v FROM t WHERE id = ", kReadKey)).ok);
  ASSERT_TRUE(Ask(old_txn_u, "BEGIN").ok);
  ASSERT_TRUE(Ask(old_txn_u, absl::StrCat("SELECT v FROM u WHERE id = ", u_key)).ok);
  const int64_t version = std::stoll(ShowReshard(admin_).at(1));

  Outcome pause = Ask(admin_, absl::StrCat("RESHARD PAUSE app t ", kPauseMs));
  ASSERT_TRUE(pause.ok) << pause.Describe();
  Pending held(writer, Insert("t", kMoved, "moved"));
  Pending held_ext(writer_ext, "INSERT INTO t (id, v) VALUES ($1, 'ext')",
                   {absl::StrCat(kMovedExtended)});
  EXPECT_FALSE(held.Answered(kNotYet));
  EXPECT_FALSE(held_ext.Answered(milliseconds(0)));
  Outcome sw = Ask(admin_, absl::StrCat("RESHARD SWITCH app ", new_yaml));
  ASSERT_TRUE(sw.ok) << sw.Describe();
  ASSERT_EQ(sw.rows.size(), 1u);
  EXPECT_GT(std::stoll(sw.rows[0][1]), version);
  EXPECT_FALSE(held.Answered(milliseconds(0))) << "SWITCH alone must not release the writes";
  Outcome resume = Ask(admin_, "RESHARD RESUME app");
  ASSERT_TRUE(resume.ok) << resume.Describe();

  Outcome done = held.Result();
  EXPECT_TRUE(done.ok) << done.Describe();
  EXPECT_EQ(Holders("t", kMoved), "s1") << "the held write must run on the new map";
  Outcome done_ext = held_ext.Result();
  EXPECT_TRUE(done_ext.ok) << done_ext.Describe();
  EXPECT_EQ(Holders("t", kMovedExtended), "s1") << "the same through Parse/Bind/Execute";

  // Began on the old map, writes the moved table: 40001; after ROLLBACK the retry runs on the
  // new map.
  Outcome stale = Ask(old_txn, Insert("t", kRetried));
  EXPECT_EQ(stale.sqlstate, "40001") << stale.Describe();
  EXPECT_EQ(Holders("t", kRetried), "");
  ASSERT_TRUE(Ask(old_txn, "ROLLBACK").ok);
  ASSERT_TRUE(Ask(old_txn, "BEGIN").ok);
  Outcome retried = Ask(old_txn, Insert("t", kRetried));
  EXPECT_TRUE(retried.ok) << retried.Describe();
  ASSERT_TRUE(Ask(old_txn, "COMMIT").ok);
  EXPECT_EQ(Holders("t", kRetried), "s1");
  // Began on the old map, writes a table the switch did not move: goes on.
  Outcome unmoved = Ask(old_txn_u, Insert("u", u_key));
  EXPECT_TRUE(unmoved.ok) << unmoved.Describe();
  EXPECT_TRUE(Ask(old_txn_u, "COMMIT").ok);
  EXPECT_EQ(Holders("u", u_key), ShardedEnv::ShardName(env().ShardOf("u", u_key)));
  // A new connection reads the moved row through the new map.
  ASSERT_OK_AND_ASSIGN(PgConn fresh, env().Connect());
  EXPECT_EQ(Ask(fresh, absl::StrCat("SELECT v FROM t WHERE id = ", kMoved)).Scalar(), "moved");

  // Back to the suite's map for the other tests.
  ASSERT_TRUE(Ask(admin_, absl::StrCat("RESHARD PAUSE app t ", kPauseMs)).ok);
  Outcome back = Ask(admin_, absl::StrCat("RESHARD SWITCH app ", env().proxy->config_path()));
  EXPECT_TRUE(back.ok) << back.Describe();
  ASSERT_TRUE(Ask(admin_, "RESHARD RESUME app").ok);
  std::remove(new_yaml.c_str());
}

// The map may name a table "public.t" (shardctl pauses the map's names): writes to t and to
// public.t are held all the same.
TEST_F(ReshardGateTest, PauseOfPublicQualifiedNameHoldsWrites) {
  ASSERT_OK_AND_ASSIGN(PgConn bare, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn qualified, env().Connect());
  Outcome pause = Ask(admin_, absl::StrCat("RESHARD PAUSE app public.t ", kPauseMs));
  ASSERT_TRUE(pause.ok) << pause.Describe();
  Pending held_bare(bare, Insert("t", 81));
  Pending held_qualified(qualified, "INSERT INTO public.t (id, v) VALUES (82, 'x')");
  EXPECT_FALSE(held_bare.Answered(kNotYet));
  EXPECT_FALSE(held_qualified.Answered(milliseconds(0)));
  ASSERT_TRUE(Ask(admin_, "RESHARD RESUME app").ok);
  EXPECT_TRUE(held_bare.Result().ok);
  EXPECT_TRUE(held_qualified.Result().ok);
  EXPECT_EQ(Holders("t", 81), "s0");
  EXPECT_EQ(Holders("t", 82), "s0");
}

// f) SHOW RESHARD: paused yes/no, the tables, and the transactions being drained.
TEST_F(ReshardGateTest, ShowReshardReportsThePause) {
  std::vector<std::string> row = ShowReshard(admin_);
  ASSERT_EQ(row.size(), 10u);
  EXPECT_EQ(row[2], "no");
  EXPECT_EQ(row[3], "");
  EXPECT_EQ(row[4], "0");

  ASSERT_OK_AND_ASSIGN(PgConn txn, env().Connect());
  ASSERT_TRUE(Ask(txn, "BEGIN").ok);
  ASSERT_TRUE(Ask(txn, Insert("u", 71)).ok);
  Pending pause(admin_, absl::StrCat("RESHARD PAUSE app U,t ", kPauseMs));
  EXPECT_FALSE(pause.Answered(kNotYet));
  ASSERT_OK_AND_ASSIGN(PgConn admin2, env().ConnectAdmin());
  row = ShowReshard(admin2);
  ASSERT_EQ(row.size(), 10u);
  EXPECT_EQ(row[2], "yes");
  EXPECT_EQ(row[3], "t,u") << "lower-cased and sorted";
  EXPECT_EQ(row[4], "1") << "the open transaction that wrote before the pause";
  ASSERT_TRUE(Ask(txn, "COMMIT").ok);
  Outcome paused = pause.Result();
  ASSERT_TRUE(paused.ok) << paused.Describe();
  row = ShowReshard(admin2);
  EXPECT_EQ(row[2], "yes");
  EXPECT_EQ(row[4], "0");

  ASSERT_TRUE(Ask(admin_, "RESHARD RESUME app").ok);
  row = ShowReshard(admin2);
  EXPECT_EQ(row[2], "no");
  EXPECT_EQ(row[3], "");
}

TEST_F(ReshardGateTest, MalformedCommandsAreRefused) {
  EXPECT_EQ(Ask(admin_, "RESHARD PAUSE app").sqlstate, "42601");
  EXPECT_EQ(Ask(admin_, "RESHARD PAUSE app t 0").sqlstate, "22023");
  EXPECT_EQ(Ask(admin_, "RESHARD PAUSE app t soon").sqlstate, "22023");
  EXPECT_EQ(Ask(admin_, "RESHARD PAUSE nodb t").sqlstate, "3D000");
  EXPECT_EQ(Ask(admin_, "RESHARD JUMP app").sqlstate, "42601");
  EXPECT_EQ(ShowReshard(admin_).at(2), "no");
}

// g) RESHARD PROGRESS (what shardctl reports while it copies): shown by SHOW RESHARD and
// /metrics' source; bad phases and counts are refused.
TEST_F(ReshardGateTest, ProgressReportsAreShownAndChecked) {
  EXPECT_EQ(Ask(admin_, "RESHARD PROGRESS app sleeping 1 2 3").sqlstate, "22023");
  EXPECT_EQ(Ask(admin_, "RESHARD PROGRESS app copying -1 2 3").sqlstate, "22023");
  EXPECT_EQ(Ask(admin_, "RESHARD PROGRESS app copying 1 2").sqlstate, "42601");
  EXPECT_EQ(Ask(admin_, "RESHARD PROGRESS nodb copying 1 2 3").sqlstate, "3D000");
  std::vector<std::string> row = ShowReshard(admin_);
  ASSERT_EQ(row.size(), 10u);
  EXPECT_EQ(row[5], "") << "no report yet";
  Outcome ok = Ask(admin_, "RESHARD PROGRESS app copying 1200 5000 0");
  ASSERT_TRUE(ok.ok) << ok.Describe();
  ASSERT_TRUE(Ask(admin_, "RESHARD PROGRESS app catching_up 4800 5000 17").ok);
  row = ShowReshard(admin_);
  ASSERT_EQ(row.size(), 10u);
  EXPECT_EQ(row[5], "catching_up");
  EXPECT_EQ(row[6], "4800");
  EXPECT_EQ(row[7], "5000");
  EXPECT_EQ(row[8], "17");
  EXPECT_EQ(row[9], "0");
  EXPECT_EQ(row[2], "no") << "a report pauses nothing";
}

}  // namespace
}  // namespace shardgate::testing
