// The admin console (`psql -d shardgate -U admin`) on a real proxy over three real shards: what
// SHOW POOLS/CLIENTS/SERVERS/STATS/CONFIG report after a known workload, and RELOAD (and
// SIGHUP): a broken file keeps the old config serving without dropping anyone, and a reload
// that adds a shard is used by the next transaction. And /metrics and /healthz over HTTP
// (admin.http) after a known workload.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <fstream>
#include <sstream>

#include "tests/proxy/http_get.h"
#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

constexpr char kDatabaseYaml[] =
    "    routers:\n"
    "      dir: {type: directory, key_type: bigint, entries: {1: s0, 2: s1, 3: s2}, default: s0}\n"
    "    tables:\n"
    "      t: {key: id, router: dir}\n";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
}

// The rows of an admin command, each as column name -> value.
std::vector<std::map<std::string, std::string>> Show(const PgConn& admin, const std::string& sql) {
  PgResult res(PQexec(admin.get(), sql.c_str()));
  std::vector<std::map<std::string, std::string>> rows;
  EXPECT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << sql << ": "
                                                        << PQerrorMessage(admin.get());
  if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) return rows;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    std::map<std::string, std::string> row;
    for (int c = 0; c < PQnfields(res.get()); ++c) {
      row[PQfname(res.get(), c)] = PQgetvalue(res.get(), r, c);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::map<std::string, std::string> RowWhere(
    const std::vector<std::map<std::string, std::string>>& rows, const std::string& column,
    const std::string& value) {
  for (const auto& row : rows) {
    auto it = row.find(column);
    if (it != row.end() && it->second == value) return row;
  }
  return {};
}

class AdminConsoleTest : public ShardedSuite<AdminConsoleTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {1, 0, 0};  // s0 has a streaming replica: reads of s0 go there
    o.extra_database_yaml = kDatabaseYaml;
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    ShardedSuite::SetUpTestSuite();
    if (env_ == nullptr) return;
    absl::Status st = env_->ExecOnPrimaries("CREATE TABLE t (id bigint, v text);");
    if (st.ok()) st = env_->CatchUp();  // s0's replica has the table before reads go there
    if (!st.ok()) FailSetUp(st, "schema");
  }

  // Which primaries hold a row of t with `id` ("s0", "s0,s2", ...).
  static std::string Holders(int64_t id) {
    std::vector<std::string> out;
    for (int s = 0; s < env().shard_count(); ++s) {
      auto n = env().primary(s).Query(absl::StrCat("SELECT count(*) FROM t WHERE id = ", id));
      if (!n.ok()) return n.status().ToString();
      if (*n != "0") out.push_back(ShardedEnv::ShardName(s));
    }
    return absl::StrJoin(out, ",");
  }
};

TEST_F(AdminConsoleTest, ShowCommandsReportAKnownWorkload) {
  ASSERT_OK_AND_ASSIGN(PgConn admin, env().ConnectAdmin());
  auto before = RowWhere(Show(admin, "SHOW STATS"), "database", "app");
  const int64_t queries_before = before.empty() ? 0 : std::stoll(before["total_query_count"]);
  const int64_t received_before = before.empty() ? 0 : std::stoll(before["total_received"]);

  // A known workload: 7 simple queries, then a transaction left open on s1.
  ASSERT_OK_AND_ASSIGN(PgConn app, env().Connect());
  const std::vector<std::string> sql = {
      "INSERT INTO t (id, v) VALUES (1, 'a')", "INSERT INTO t (id, v) VALUES (2, 'b')",
      "SELECT v FROM t WHERE id = 1",          "SELECT v FROM t WHERE id = 2",
      "SELECT count(*) FROM t",                "BEGIN",
      "UPDATE t SET v = 'c' WHERE id = 2"};
  int64_t bytes = 0;
  for (const auto& q : sql) {
    ASSERT_OK(app.Exec(q)) << q;
    bytes += 1 + 4 + static_cast<int64_t>(q.size()) + 1;  // a Query message
  }

  auto stats = RowWhere(Show(admin, "SHOW STATS"), "database", "app");
  ASSERT_FALSE(stats.empty());
  EXPECT_EQ(std::stoll(stats["total_query_count"]) - queries_before, 7);
  EXPECT_EQ(std::stoll(stats["total_received"]) - received_before, bytes);
  EXPECT_GT(std::stoll(stats["total_sent"]), 0);
  EXPECT_GT(std::stoll(stats["total_xact_count"]), 0);

  auto clients = Show(admin, "SHOW CLIENTS");
  auto app_client = RowWhere(clients, "user", "app");
  ASSERT_FALSE(app_client.empty()) << "no client row for app";
  EXPECT_EQ(app_client["type"], "C");
  EXPECT_EQ(app_client["database"], "app");
  EXPECT_EQ(app_client["state"], "active") << "it holds s1 inside its transaction";
  EXPECT_EQ(app_client["shard"], "s1");
  EXPECT_EQ(app_client["addr"], "127.0.0.1");
  EXPECT_EQ(app_client["tls"], "no");
  EXPECT_FALSE(RowWhere(clients, "user", "admin").empty()) << "the admin console itself";

  auto servers = Show(admin, "SHOW SERVERS");
  auto active = RowWhere(servers, "state", "active");
  ASSERT_FALSE(active.empty()) << "the transaction's server";
  EXPECT_EQ(active["shard"], "s1");
  EXPECT_EQ(active["client_user"], "app");
  EXPECT_EQ(active["database"], "app");
  EXPECT_EQ(active["addr"], absl::StrCat("127.0.0.1:", env().primary(1).port()));
  // Its backend pid is the one the server itself reports for the transaction's connection.
  ASSERT_OK_AND_ASSIGN(std::string pid, app.Scalar("SELECT pg_backend_pid()"));
  EXPECT_EQ(active["remote_pid"], pid);

  auto pools = RowWhere(Show(admin, "SHOW POOLS"), "database", "app");
  ASSERT_FALSE(pools.empty());
  EXPECT_EQ(pools["user"], "app");
  EXPECT_EQ(pools["cl_active"], "1");
  EXPECT_GE(std::stoi(pools["sv_active"]), 1);
  EXPECT_EQ(pools["cl_waiting"], "0");
  EXPECT_EQ(pools["sv_login"], "0");
  EXPECT_EQ(pools["maxwait"], "0");
  EXPECT_EQ(pools["maxwait_us"], "0");  // a waiting client: QueryTest.ShowPoolsReports...
  EXPECT_EQ(pools["pool_mode"], "transaction");
  EXPECT_GE(std::stoi(pools["servers"]), 2) << "s0 and s1 were used";
  ASSERT_OK(app.Exec("ROLLBACK"));

  auto config = Show(admin, "SHOW CONFIG");
  EXPECT_EQ(RowWhere(config, "key", "listen")["value"],
            absl::StrCat("127.0.0.1:", env().proxy->port()));
  EXPECT_EQ(RowWhere(config, "key", "config_file")["value"], env().proxy->config_path());
  EXPECT_EQ(RowWhere(config, "key", "databases.app.shards")["value"], "3");
}

TEST_F(AdminConsoleTest, ReloadKeepsServingOnABrokenFileAndUsesAnAddedShard) {
  const std::string path = env().proxy->config_path();
  const std::string full = ReadFile(path);
  ASSERT_NE(full.find("      - name: s2\n"), std::string::npos) << full;
  // The same config without shard s2 (its block and its directory entry).
  std::string without = full;
  const size_t s2 = without.find("      - name: s2\n");
  const size_t next = without.find("    routers:", s2);
  ASSERT_NE(next, std::string::npos);
  without.erase(s2, next - s2);
  without.replace(without.find(", 3: s2"), 7, "");

  ASSERT_OK_AND_ASSIGN(PgConn admin, env().ConnectAdmin());
  ASSERT_OK_AND_ASSIGN(PgConn app, env().Connect());  // connected before every reload
  WriteFile(path, without);
  ASSERT_OK(admin.Exec("RELOAD"));
  EXPECT_EQ(RowWhere(Show(admin, "SHOW CONFIG"), "key", "databases.app.shards")["value"], "2");
  ASSERT_OK(app.Exec("INSERT INTO t (id, v) VALUES (3, 'two shards')"));
  EXPECT_EQ(Holders(3), "s0") << "key 3 has no entry any more: the default shard";

  // A broken file: refused, with the reason, and nothing changes.
  WriteFile(path, "listen: {host: 127.0.0.1, port: [oops\n");
  absl::Status broken = admin.Exec("RELOAD");
  EXPECT_FALSE(broken.ok());
  EXPECT_THAT(std::string(broken.message()), ::testing::HasSubstr(path));
  ASSERT_OK(env().proxy->Signal(SIGHUP));  // the same through SIGHUP
  ASSERT_OK(app.Exec("INSERT INTO t (id, v) VALUES (3, 'still two')"));
  EXPECT_EQ(Holders(3), "s0");
  EXPECT_EQ(RowWhere(Show(admin, "SHOW CONFIG"), "key", "databases.app.shards")["value"], "2");

  // Shard s2 comes (back): the next transaction of the same client uses it.
  WriteFile(path, full);
  ASSERT_OK(admin.Exec("RELOAD"));
  ASSERT_OK(app.Exec("INSERT INTO t (id, v) VALUES (3, 'three shards')"));
  EXPECT_EQ(Holders(3), "s0,s2");
  ASSERT_OK_AND_ASSIGN(std::string v, app.Scalar("SELECT v FROM t WHERE id = 3"));
  EXPECT_EQ(v, "three shards");
  ASSERT_OK(app.Exec("DELETE FROM t WHERE id = 3"));
  for (int s = 0; s < env().shard_count(); ++s) {
    ASSERT_OK(env().primary(s).Query("DELETE FROM t WHERE id = 3").status());
  }
}

TEST_F(AdminConsoleTest, MetricsMatchAKnownWorkload) {
  // A proxy of its own (fresh counters) with admin.http.
  const int port = FreePort(), http = FreePort();
  const std::string yaml = env().Yaml(port, kDatabaseYaml, http);
  ASSERT_NE(yaml.find("http: {host: 127.0.0.1"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto proxy, ShardgateProcess::Start(yaml, port));
  ASSERT_OK_AND_ASSIGN(PgConn app, PgConn::Connect(proxy->ConnString()));
  // 1 -> s0, 2 -> s1 (directory entries); one error from a server; one statement on every shard.
  for (const char* q : {"INSERT INTO t (id, v) VALUES (1, 'm')", "INSERT INTO t (id, v) VALUES (2, 'm')",
                        "SELECT v FROM t WHERE id = 1", "SELECT v FROM t WHERE id = 2",
                        "SELECT count(*) FROM t"}) {
    ASSERT_OK(app.Exec(q)) << q;
  }
  EXPECT_FALSE(app.Exec("SELECT no_such_column FROM t WHERE id = 1").ok());
  // Another user's two statements on s1, counted in its own series.
  ASSERT_OK(env().ExecOnPrimaries("GRANT SELECT ON t TO app_md5"));
  ASSERT_OK_AND_ASSIGN(PgConn md5,
                       PgConn::Connect(proxy->ConnString("app", kMd5User, kMd5Password)));
  ASSERT_OK(md5.Exec("SELECT 1 FROM t WHERE id = 2"));
  ASSERT_OK(md5.Exec("SELECT 2 FROM t WHERE id = 2"));

  auto [status, text] = HttpGet(http, "/metrics");
  ASSERT_EQ(status, 200) << text;
  text = "\n" + text;
  EXPECT_EQ(Sample(text, R"(shardgate_queries_total{database="app",user="app"})"), 6) << text;
  EXPECT_EQ(Sample(text, R"(shardgate_queries_total{database="app",user="app_md5"})"), 2);
  EXPECT_EQ(Sample(text, R"(shardgate_transactions_total{database="app",user="app_md5"})"), 2);
  // app_md5's server connection to s1's primary, idle in its own pool; nobody waits.
  const std::string s1_pool = absl::StrCat(R"({database="app",user="app_md5",shard="s1",)",
                                           R"(server="127.0.0.1:)", env().primary(1).port());
  EXPECT_EQ(Sample(text, "shardgate_pool_servers" + s1_pool + R"(",state="idle"})"), 1);
  EXPECT_EQ(Sample(text, "shardgate_pool_servers" + s1_pool + R"(",state="active"})"), 0);
  EXPECT_EQ(Sample(text, "shardgate_pool_servers" + s1_pool + R"(",state="login"})"), 0);
  EXPECT_EQ(Sample(text, "shardgate_pool_waiting_clients" + s1_pool + R"("})"), 0);
  EXPECT_EQ(Sample(text, "shardgate_pool_maxwait_seconds" + s1_pool + R"("})"), 0);
  // Per database: both users' statements.
  EXPECT_EQ(Sample(text, R"(shardgate_statements_total{database="app",spread="direct"})"), 5 + 2);
  EXPECT_EQ(Sample(text, R"(shardgate_statements_total{database="app",spread="cross_shard"})"),
            1);
  // Direct statements plus one leg per shard of the count; s0's reads on its replica; s1 has
  // none: app_md5's reads on its primary.
  EXPECT_EQ(Sample(text, R"(shardgate_routed_total{database="app",shard="s0",role="primary"})"),
            1);
  EXPECT_EQ(Sample(text, R"(shardgate_routed_total{database="app",shard="s0",role="replica"})"),
            3);
  EXPECT_EQ(Sample(text, R"(shardgate_routed_total{database="app",shard="s1",role="primary"})"),
            3 + 2);
  EXPECT_EQ(Sample(text, R"(shardgate_routed_total{database="app",shard="s2",role="primary"})"),
            1);
  EXPECT_EQ(Sample(text, R"(shardgate_errors_total{sqlstate="42703"})"), 1);
  // One client per user (active for the moment it takes the proxy to release the server after
  // the answer it already forwarded, idle otherwise).
  EXPECT_EQ(Sample(text, R"(shardgate_clients{database="app",user="app",state="idle"})") +
                Sample(text, R"(shardgate_clients{database="app",user="app",state="active"})"),
            1);
  EXPECT_EQ(Sample(text, R"(shardgate_clients{database="app",user="app_md5",state="idle"})") +
                Sample(text, R"(shardgate_clients{database="app",user="app_md5",state="active"})"),
            1);
  EXPECT_EQ(Sample(text, R"(shardgate_server_round_trip_seconds_count{database="app"})"), 5 + 2)
      << "the seven statements that went to one server (the count ran on legs)";
  EXPECT_EQ(Sample(text, R"(shardgate_server_round_trip_seconds_bucket{database="app",le="+Inf"})"),
            5 + 2);
  EXPECT_EQ(Sample(text, "shardgate_reloads_total"), 0);
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(Sample(text, absl::StrCat(R"(shardgate_server_up{database="app",shard="s)", s,
                                        R"(",role="primary",server="127.0.0.1:)",
                                        env().primary(s).port(), R"("})")),
              1);
  }
  // The replica's lag, once the health checker has looked (bounded wait).
  const std::string replica = absl::StrCat(R"({database="app",shard="s0",server="127.0.0.1:)",
                                           env().Server({0, 0}).port(), R"("})");
  for (int i = 0; i < 100 && Sample(text, "shardgate_replica_lag_bytes" + replica) < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    text = "\n" + HttpGet(http, "/metrics").second;
  }
  EXPECT_GE(Sample(text, "shardgate_replica_lag_bytes" + replica), 0) << text;
  EXPECT_GE(Sample(text, "shardgate_replica_lag_seconds" + replica), 0);
  ASSERT_OK_AND_ASSIGN(PgConn console,
                       PgConn::Connect(proxy->ConnString("shardgate", "admin", "admin")));
  auto shards = Show(console, "SHOW SHARDS");
  auto replica_row = RowWhere(shards, "role", "replica");
  ASSERT_FALSE(replica_row.empty());
  EXPECT_FALSE(replica_row["lag_bytes"].empty()) << "SHOW SHARDS reports the replica's lag";
  EXPECT_FALSE(replica_row["lag_ms"].empty());
  auto [hs, hbody] = HttpGet(http, "/healthz");
  EXPECT_EQ(hs, 200);
  EXPECT_EQ(hbody, "ok\n");
  EXPECT_EQ(HttpGet(http, "/nope").first, 404);
  for (int s = 0; s < env().shard_count(); ++s) {
    ASSERT_OK(env().primary(s).Query("DELETE FROM t WHERE v = 'm'").status());
  }
}

// Whether an answer to what was sent on `conn` arrives within `ms` (then it is consumed).
bool AnsweredWithin(PGconn* conn, int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    if (PQconsumeInput(conn) == 0 || PQisBusy(conn) == 0) {
      while (PGresult* r = PQgetResult(conn)) PQclear(r);
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// PAUSE app waits for the transaction holding a server, then holds new ones until RESUME.
// Issue 10: a skewed workload (one key in every round, fifty others in turn) through a fresh
// proxy: SHOW HOT KEYS ranks the hot key first with its shard and share, and /metrics exports it
// among at most five series per table. Both protocols feed the sketch.
TEST_F(AdminConsoleTest, HotKeysRankASkewedWorkload) {
  const int port = FreePort(), http = FreePort();
  const std::string yaml = env().Yaml(port, kDatabaseYaml, http);
  ASSERT_NE(yaml.find("http: {host: 127.0.0.1"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto proxy, ShardgateProcess::Start(yaml, port));
  ASSERT_OK_AND_ASSIGN(PgConn app, PgConn::Connect(proxy->ConnString()));
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK(app.Exec("SELECT v FROM t WHERE id = 2")) << i;  // directory entry: s1
    ASSERT_OK(app.Exec(absl::StrCat("SELECT v FROM t WHERE id = ", 100 + i % 50))) << i;
  }
  for (int i = 0; i < 20; ++i) {  // the extended protocol: the key in a Bind parameter
    const char* values[] = {"2"};
    PgResult res(PQexecParams(app.get(), "SELECT v FROM t WHERE id = $1", 1, nullptr, values,
                              nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(app.get());
  }
  ASSERT_OK(app.Exec("SELECT count(*) FROM t"));  // no key: not counted

  ASSERT_OK_AND_ASSIGN(PgConn console, PgConn::Connect(proxy->ConnString("shardgate", "admin",
                                                                           "admin")));
  auto rows = Show(console, "SHOW HOT KEYS");
  ASSERT_FALSE(rows.empty());
  ASSERT_LE(rows.size(), 10u) << "ten per table by default";
  EXPECT_EQ(rows[0]["database"], "app");
  EXPECT_EQ(rows[0]["table"], "t");
  EXPECT_EQ(rows[0]["key"], "2");
  EXPECT_EQ(rows[0]["shard"], "s1");
  // 220 statements (halved at most once should the proxy's first minute end meanwhile), out of
  // 420 keyed ones: about 52%.
  const int64_t hot = std::stoll(rows[0]["queries"]);
  EXPECT_TRUE(hot == 220 || hot == 110) << hot;
  EXPECT_EQ(rows[0]["error"], "0");
  if (hot == 220) EXPECT_EQ(rows[0]["share"], "52.3");
  for (size_t i = 1; i < rows.size(); ++i) {
    EXPECT_LT(std::stoll(rows[i]["queries"]), hot) << rows[i]["key"];
    EXPECT_EQ(rows[i]["shard"], "s0") << rows[i]["key"];  // the default shard
  }
  EXPECT_EQ(Show(console, "SHOW HOT KEYS app").size(), rows.size());
  EXPECT_TRUE(Show(console, "SHOW HOT KEYS nosuchdb").empty());

  auto [status, text] = HttpGet(http, "/metrics");
  ASSERT_EQ(status, 200) << text;
  text = "\n" + text;
  EXPECT_EQ(Sample(text, R"(shardgate_hot_key_queries{database="app",table="t",key="2"})"),
            static_cast<double>(hot));
  size_t series = 0;
  for (size_t at = text.find("\nshardgate_hot_key_queries{"); at != std::string::npos;
       at = text.find("\nshardgate_hot_key_queries{", at + 1)) {
    ++series;
  }
  EXPECT_GE(series, 2u);
  EXPECT_LE(series, 5u) << "bounded cardinality";
}

TEST_F(AdminConsoleTest, PauseWaitsForTransactionsAndHoldsNewOnesUntilResume) {
  ASSERT_OK_AND_ASSIGN(PgConn admin, env().ConnectAdmin());
  ASSERT_OK_AND_ASSIGN(PgConn busy, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn later, env().Connect());
  ASSERT_OK(busy.Exec("BEGIN"));
  ASSERT_OK(busy.Exec("INSERT INTO t (id, v) VALUES (1, 'p')"));
  ASSERT_EQ(PQsendQuery(admin.get(), "PAUSE app"), 1);
  EXPECT_FALSE(AnsweredWithin(admin.get(), 300)) << "a transaction still holds a server";
  ASSERT_OK(busy.Exec("COMMIT"));
  EXPECT_TRUE(AnsweredWithin(admin.get(), 15000)) << "PAUSE did not end after the commit";
  ASSERT_EQ(PQsendQuery(later.get(), "SELECT v FROM t WHERE id = 1"), 1);
  EXPECT_FALSE(AnsweredWithin(later.get(), 300)) << "a new transaction ran while paused";
  ASSERT_OK(admin.Exec("RESUME app"));
  EXPECT_TRUE(AnsweredWithin(later.get(), 15000)) << "RESUME did not let it run";
  EXPECT_FALSE(admin.Exec("PAUSE nosuchdb").ok());
  ASSERT_OK(busy.Exec("DELETE FROM t WHERE id = 1 AND v = 'p'"));
}

TEST_F(AdminConsoleTest, UnknownCommandsSayWhatExists) {
  ASSERT_OK_AND_ASSIGN(PgConn admin, env().ConnectAdmin());
  absl::Status st = admin.Exec("SHOW NONSENSE");
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("SHOW POOLS"));
}

}  // namespace
}  // namespace shardgate::testing
