// users[].rate_limit and databases.<db>.rate_limit through a real shardgate and PostgreSQL:
// 53400 beyond the burst (simple, extended and pipelined) with the connection still usable, a
// database limit shared by two users, queue mode delivering everything, the limit inside a
// transaction, reload. Assertions count (successes <= burst + rate * elapsed + 1), never time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "tests/proxy/http_get.h"
#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

class RateLimitTest : public ProxySuite<RateLimitTest> {};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The fixture's YAML with `limit` (a flow map) as rate_limit of user `user`.
std::string WithUserLimit(std::string yaml, const std::string& user, const std::string& limit) {
  const std::string entry = "  - {name: " + user + ", ";
  const size_t at = yaml.find(entry);
  const size_t end = yaml.find("}\n", at);
  if (at == std::string::npos || end == std::string::npos) return "no user " + user;
  yaml.insert(end, ", rate_limit: " + limit);
  return yaml;
}

std::string Yaml(const PgCluster& cluster, int port, const std::string& db_limit = "",
                 const std::string& extra_top = "") {
  ProxyEnvOptions o;
  if (!db_limit.empty()) o.extra_database_yaml = "    rate_limit: " + db_limit + "\n";
  o.extra_top_yaml = extra_top;
  return ProxyYaml(cluster, port, o);
}

// SHOW RATE LIMITS as rows keyed by "kind name".
std::map<std::string, std::map<std::string, std::string>> ShowLimits(ShardgateProcess& proxy) {
  std::map<std::string, std::map<std::string, std::string>> out;
  auto admin = PgConn::Connect(proxy.ConnString("shardgate", "admin", "admin"));
  if (!admin.ok()) return out;
  PgResult res(PQexec(admin->get(), "SHOW RATE LIMITS"));
  if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) return out;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    auto& row = out[Cell(res.get(), r, 0) + " " + Cell(res.get(), r, 1)];
    for (int c = 0; c < PQnfields(res.get()); ++c)
      row[PQfname(res.get(), c)] = Cell(res.get(), r, c);
  }
  return out;
}

// Runs `n` statements; counts successes and 53400s (anything else fails the test).
struct Tally {
  int ok = 0, refused = 0;
  double elapsed = 0;
};
Tally RunCounted(const std::function<absl::Status(int)>& statement, int n) {
  Tally t;
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    absl::Status st = statement(i);
    if (st.ok()) {
      ++t.ok;
    } else {
      EXPECT_EQ(SqlState(st), "53400") << st;
      ++t.refused;
    }
  }
  t.elapsed = Seconds(start);
  return t;
}

// Error mode, simple and extended protocol: no more than the burst plus what the rate refills
// succeeds, the rest is 53400 with the limit named, and the connection goes on working.
TEST_F(RateLimitTest, ErrorModeRefusesBeyondTheBurst) {
  const int port = FreePort();
  ASSERT_OK_AND_ASSIGN(auto proxy,
                       ShardgateProcess::Start(WithUserLimit(Yaml(*env().cluster, port), kScramUser,
                                                             "{queries_per_second: 1, burst: 3}"),
                                               port));
  ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(proxy->ConnString()));
  const Tally simple = RunCounted([&](int) { return c.Exec("select 1"); }, 12);
  EXPECT_GE(simple.ok, 3);
  EXPECT_LE(simple.ok, 3 + simple.elapsed + 1);
  if (simple.elapsed < 8) EXPECT_GE(simple.refused, 1);
  auto err = c.Exec("select 1");
  if (!err.ok()) {
    EXPECT_THAT(std::string(err.message()),
                HasSubstr("rate limit exceeded for user \"app\": 1 queries/s (burst 3)"));
  }
  // Extended protocol (Parse/Bind/Describe/Execute/Sync).
  const Tally extended = RunCounted(
      [&](int i) { return c.ScalarParams("select $1::int", {std::to_string(i)}).status(); }, 12);
  EXPECT_LE(extended.ok, simple.elapsed + extended.elapsed + 3);  // the bucket is the same
  if (extended.elapsed < 8) EXPECT_GE(extended.refused, 1);
  // Still usable: a token comes back within a second.
  std::string value;
  int waited = 0;  // refusals while waiting
  EXPECT_TRUE(WaitFor(
      [&] {
        auto v = c.ScalarParams("select $1::int + 1", {"41"});
        if (v.ok()) value = *v;
        waited += v.ok() ? 0 : 1;
        return v.ok();
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(value, "42");
  // The proxy's count is the client's.
  auto rows = ShowLimits(*proxy);
  EXPECT_EQ(rows["user app"]["refused"],
            std::to_string(simple.refused + extended.refused + (err.ok() ? 0 : 1) + waited));
  EXPECT_EQ(rows["user app"]["mode"], "error");
  EXPECT_EQ(rows["user app"]["burst"], "3");
  // Other users are not limited.
  ASSERT_OK_AND_ASSIGN(PgConn md5,
                       PgConn::Connect(proxy->ConnString("app", kMd5User, kMd5Password)));
  for (int i = 0; i < 10; ++i) EXPECT_OK(md5.Exec("select 1"));
}

// A pipeline: the refused Execute gets 53400, what follows up to Sync is skipped as after any
// error, and the next pipeline works.
TEST_F(RateLimitTest, PipelineStopsAtTheRefusal) {
  const int port = FreePort();
  ASSERT_OK_AND_ASSIGN(auto proxy,
                       ShardgateProcess::Start(WithUserLimit(Yaml(*env().cluster, port), kScramUser,
                                                             "{queries_per_second: 1, burst: 3}"),
                                               port));
  ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(proxy->ConnString()));
  PGconn* conn = c.get();
  ASSERT_EQ(PQenterPipelineMode(conn), 1);
  const auto start = Clock::now();
  constexpr int kN = 10;
  for (int i = 0; i < kN; ++i) {
    const std::string v = std::to_string(i);
    const char* values[] = {v.c_str()};
    ASSERT_EQ(PQsendQueryParams(conn, "select $1::int", 1, nullptr, values, nullptr, nullptr, 0),
              1);
  }
  ASSERT_EQ(PQpipelineSync(conn), 1);
  int ok = 0, refused = 0, aborted = 0;
  for (int i = 0; i < kN; ++i) {
    PgResult res(PQgetResult(conn));
    ASSERT_NE(res, nullptr) << i;
    const ExecStatusType status = PQresultStatus(res.get());
    if (status == PGRES_TUPLES_OK) {
      EXPECT_EQ(refused + aborted, 0) << "a success after the refusal";
      EXPECT_EQ(Cell(res.get(), 0, 0), std::to_string(i));
      ++ok;
    } else if (status == PGRES_PIPELINE_ABORTED) {
      EXPECT_EQ(refused, 1);
      ++aborted;
    } else {
      EXPECT_EQ(SqlState(ResultStatus(res.get())), "53400");
      ++refused;
    }
    PgResult end(PQgetResult(conn));  // each query's results end with a null
    EXPECT_EQ(end, nullptr);
  }
  PgResult sync(PQgetResult(conn));
  EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  const double elapsed = Seconds(start);
  EXPECT_EQ(ok + refused + aborted, kN);
  EXPECT_GE(ok, 3);
  EXPECT_LE(ok, 3 + elapsed + 1);
  if (elapsed < 5) EXPECT_EQ(refused, 1);
  ASSERT_EQ(PQexitPipelineMode(conn), 1);
  EXPECT_TRUE(WaitFor([&] { return c.Exec("select 1").ok(); }, std::chrono::seconds(10)));
}

// A database's limit is one bucket for all its users.
TEST_F(RateLimitTest, DatabaseLimitIsSharedByUsers) {
  const int port = FreePort();
  ASSERT_OK_AND_ASSIGN(auto proxy,
                       ShardgateProcess::Start(
                           Yaml(*env().cluster, port, "{queries_per_second: 1, burst: 4}"), port));
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn b, PgConn::Connect(proxy->ConnString("app", kMd5User, kMd5Password)));
  int a_refused = 0, b_refused = 0;
  const Tally t = RunCounted(
      [&](int i) {
        absl::Status st = (i % 2 == 0 ? a : b).Exec("select 1");
        if (!st.ok()) {
          ++(i % 2 == 0 ? a_refused : b_refused);
          EXPECT_THAT(std::string(st.message()),
                      HasSubstr("rate limit exceeded for database \"app\": 1 queries/s (burst 4)"));
        }
        return st;
      },
      16);
  EXPECT_GE(t.ok, 4);
  EXPECT_LE(t.ok, 4 + t.elapsed + 1);
  if (t.elapsed < 8) EXPECT_GE(t.refused, 4);
  if (t.elapsed < 4) {  // both users hit the one bucket
    EXPECT_GE(a_refused, 1);
    EXPECT_GE(b_refused, 1);
  }
  EXPECT_EQ(ShowLimits(*proxy)["database app"]["refused"], std::to_string(t.refused));
}

// Queue mode: every query is delivered (late, never refused), and the waits are counted, in
// SHOW RATE LIMITS and in /metrics.
TEST_F(RateLimitTest, QueueModeDeliversEverything) {
  const int port = FreePort();
  const int http = FreePort();
  std::string yaml = WithUserLimit(Yaml(*env().cluster, port), kScramUser,
                                   "{queries_per_second: 5, burst: 2, mode: queue, max_wait: 30s}");
  yaml = absl::StrReplaceAll(
      yaml, {{"admin:\n  users: [admin]\n", absl::StrCat("admin:\n  users: [admin]\n  http: {host: "
                                                         "127.0.0.1, port: ",
                                                         http, "}\n")}});
  ASSERT_OK_AND_ASSIGN(auto proxy, ShardgateProcess::Start(yaml, port));
  ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(proxy->ConnString()));
  // One pipeline of 8: the proxy reads them together, so from the third on they wait.
  PGconn* conn = c.get();
  ASSERT_EQ(PQenterPipelineMode(conn), 1);
  constexpr int kN = 8;
  const auto start = Clock::now();
  for (int i = 0; i < kN; ++i) {
    const std::string v = std::to_string(i);
    const char* values[] = {v.c_str()};
    ASSERT_EQ(PQsendQueryParams(conn, "select $1::int", 1, nullptr, values, nullptr, nullptr, 0),
              1);
  }
  ASSERT_EQ(PQpipelineSync(conn), 1);
  double first_answer = -1;
  for (int i = 0; i < kN; ++i) {
    PgResult res(PQgetResult(conn));
    if (first_answer < 0) first_answer = Seconds(start);
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << i << ": " << ResultStatus(res.get());
    EXPECT_EQ(Cell(res.get(), 0, 0), std::to_string(i));
    PgResult end(PQgetResult(conn));
    EXPECT_EQ(end, nullptr);
  }
  PgResult sync(PQgetResult(conn));
  EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  ASSERT_EQ(PQexitPipelineMode(conn), 1);
  // And one at a time, simple protocol: never refused.
  for (int i = 0; i < 6; ++i) EXPECT_OK(c.Exec("select 1"));

  auto rows = ShowLimits(*proxy);
  const int queued =
      std::stoi(rows["user app"]["queued"].empty() ? "-1" : rows["user app"]["queued"]);
  EXPECT_EQ(rows["user app"]["refused"], "0");
  EXPECT_EQ(rows["user app"]["mode"], "queue");
  EXPECT_LE(queued, kN - 2 + 6);
  // The third query was reserved before the first answer left the proxy: when that answer
  // came within 200 ms (one token's interval), the third had to wait.
  if (first_answer < 0.2) EXPECT_GE(queued, 1);
  EXPECT_GE(queued, 0);
  const std::string metrics = HttpGet(http, "/metrics").second;
  EXPECT_THAT(metrics,
              HasSubstr(absl::StrCat("shardgate_rate_limited_total{database=\"app\",user=\"app\","
                                     "action=\"queued\"} ",
                                     queued)));
}

// Inside a transaction a query waits for its token (up to max_wait) even in error mode; past
// max_wait the server fails the transaction (as PostgreSQL would), ROLLBACK still works.
TEST_F(RateLimitTest, InsideATransaction) {
  const int port = FreePort();
  ASSERT_OK_AND_ASSIGN(
      auto proxy,
      ShardgateProcess::Start(WithUserLimit(Yaml(*env().cluster, port), kScramUser,
                                            "{queries_per_second: 1, burst: 2, max_wait: 5s}"),
                              port));
  ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(proxy->ConnString()));
  // BEGIN and the insert take the burst; the next two wait about a second each.
  EXPECT_OK(c.Exec("begin"));
  EXPECT_OK(c.Exec("create temp table rl_t (v int)"));
  EXPECT_OK(c.Exec("insert into rl_t values (1)"));
  EXPECT_EQ(Text(c.Scalar("select count(*) from rl_t")), "1");
  EXPECT_OK(c.Exec("rollback"));
  EXPECT_EQ(ShowLimits(*proxy)["user app"]["refused"], "0");

  // max_wait shorter than a token's interval: the refusal fails the transaction.
  const int port2 = FreePort();
  ASSERT_OK_AND_ASSIGN(
      auto short_wait,
      ShardgateProcess::Start(WithUserLimit(Yaml(*env().cluster, port2), kScramUser,
                                            "{queries_per_second: 1, burst: 2, max_wait: 10ms}"),
                              port2));
  ASSERT_OK_AND_ASSIGN(PgConn d, PgConn::Connect(short_wait->ConnString()));
  const auto start = Clock::now();
  EXPECT_OK(d.Exec("begin"));
  EXPECT_OK(d.Exec("select 1"));
  absl::Status third = d.Exec("select 1");
  if (Seconds(start) < 0.9) {  // else a token came back meanwhile
    EXPECT_EQ(SqlState(third), "53400") << third;
    EXPECT_THAT(std::string(third.message()), HasSubstr("rate limit exceeded for user \"app\""));
    EXPECT_EQ(PQtransactionStatus(d.get()), PQTRANS_INERROR);
    EXPECT_EQ(SqlState(d.Exec("select 1")), "25P02");  // not limited: the server refuses it
  }
  EXPECT_OK(d.Exec("rollback"));
  EXPECT_EQ(PQtransactionStatus(d.get()), PQTRANS_IDLE);
  EXPECT_TRUE(WaitFor([&] { return d.Exec("select 1").ok(); }, std::chrono::seconds(10)));
}

// RELOAD applies new numbers to the live buckets, and a removed limit stops limiting.
TEST_F(RateLimitTest, ReloadChangesTheRate) {
  const int port = FreePort();
  const std::string base = Yaml(*env().cluster, port);
  ASSERT_OK_AND_ASSIGN(
      auto proxy, ShardgateProcess::Start(
                      WithUserLimit(base, kScramUser, "{queries_per_second: 1, burst: 2}"), port));
  ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn admin,
                       PgConn::Connect(proxy->ConnString("shardgate", "admin", "admin")));
  const Tally before = RunCounted([&](int) { return c.Exec("select 1"); }, 10);
  EXPECT_LE(before.ok, 2 + before.elapsed + 1);
  if (before.elapsed < 5) EXPECT_GE(before.refused, 1);

  auto reload = [&](const std::string& yaml) {
    std::ofstream(proxy->config_path(), std::ios::trunc) << yaml;
    return admin.Exec("RELOAD");
  };
  ASSERT_OK(reload(WithUserLimit(base, kScramUser, "{queries_per_second: 1, burst: 500}")));
  EXPECT_EQ(ShowLimits(*proxy)["user app"]["burst"], "500");
  const Tally raised = RunCounted([&](int) { return c.Exec("select 1"); }, 100);
  EXPECT_EQ(raised.ok, 100);  // the same session, the new burst

  ASSERT_OK(reload(base));
  EXPECT_TRUE(ShowLimits(*proxy).empty());
  const Tally removed = RunCounted([&](int) { return c.Exec("select 1"); }, 600);
  EXPECT_EQ(removed.ok, 600);
}

}  // namespace
}  // namespace shardgate::testing
