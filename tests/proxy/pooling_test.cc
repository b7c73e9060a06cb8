// Transaction pooling with a tiny pool (2 servers, 4 clients): a client's named prepared
// statements and SET state follow it onto whichever server serves its next transaction, and
// never leak to other clients. And SHOW POOLS while a client waits for one of them.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

// Clients that keep the pool's servers busy with short transactions until stopped, so that a
// client's consecutive transactions land on different servers. Each checks what it sees.
class BackgroundTraffic {
 public:
  // `check` runs on each row of "select <probe>"; it returns "" when fine, else a complaint.
  BackgroundTraffic(const std::string& conninfo, int clients, std::string probe,
                    std::function<std::string(const std::vector<std::string>&)> check)
      : probe_(std::move(probe)), check_(std::move(check)) {
    for (int i = 0; i < clients; ++i) {
      threads_.emplace_back([this, conninfo] { Run(conninfo); });
    }
  }
  ~BackgroundTraffic() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int transactions() const { return transactions_; }
  std::vector<std::string> problems() {
    std::lock_guard<std::mutex> lock(mu_);
    return problems_;
  }

 private:
  void Run(const std::string& conninfo) {
    auto conn = PgConn::Connect(conninfo);
    if (!conn.ok()) return Complain(std::string(conn.status().message()));
    // Bounded: the test stops us long before 5000 rounds.
    for (int i = 0; i < 5000 && !stop_; ++i) {
      // Three round trips: the server stays checked out across messages, as in real use.
      if (auto st = conn->Exec("begin"); !st.ok()) return Complain(std::string(st.message()));
      auto rows = conn->Rows(absl::StrCat("select ", probe_));
      if (!rows.ok()) return Complain(std::string(rows.status().message()));
      if (auto st = conn->Exec("commit"); !st.ok()) return Complain(std::string(st.message()));
      ++transactions_;
      for (const auto& row : *rows) {
        if (std::string p = check_(row); !p.empty()) return Complain(p);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  void Complain(std::string p) {
    std::lock_guard<std::mutex> lock(mu_);
    problems_.push_back(std::move(p));
  }

  std::string probe_;
  std::function<std::string(const std::vector<std::string>&)> check_;
  std::atomic<bool> stop_{false};
  std::atomic<int> transactions_{0};
  std::mutex mu_;
  std::vector<std::string> problems_;
  std::vector<std::thread> threads_;
};

ProxyEnvOptions TinyPool() {
  ProxyEnvOptions o;
  o.pool_size = 2;
  o.workers = 1;  // one worker: one pool of 2 servers for everyone
  return o;
}

std::string PidOnly(const std::vector<std::string>& row) {
  return row.size() == 1 ? "" : "unexpected row shape";
}

// SELECT shardgate.next_id(): answered by the proxy (a server would say schema "shardgate"
// does not exist), increasing per
// connection, unique across concurrent clients, int8 named as the alias; inside a transaction too.
TEST_F(QueryTest, NextIdIsAnsweredByTheProxyAndNeverRepeats) {
  std::vector<std::vector<int64_t>> got(4);
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      auto conn = env().Connect();
      if (!conn.ok()) return;
      for (int i = 0; i < 200; ++i) {
        auto v = conn->Scalar("SELECT shardgate.next_id()");
        if (!v.ok()) return;
        got[c].push_back(std::stoll(*v));
      }
    });
  }
  for (auto& t : clients) t.join();
  std::set<int64_t> all;
  for (const auto& g : got) {
    ASSERT_EQ(g.size(), 200u) << "a client's next_id failed";
    for (size_t i = 1; i < g.size(); ++i) ASSERT_GT(g[i], g[i - 1]);
    all.insert(g.begin(), g.end());
  }
  EXPECT_EQ(all.size(), 800u) << "an id was handed out twice";

  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("BEGIN"));
  PgResult res(PQexec(conn.get(), "select shardgate.next_id() as order_id;"));
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
  EXPECT_STREQ(PQfname(res.get(), 0), "order_id");
  EXPECT_EQ(PQftype(res.get(), 0), 20u);  // int8
  EXPECT_EQ(PQtransactionStatus(conn.get()), PQTRANS_INTRANS);
  ASSERT_OK(conn.Exec("COMMIT"));
}

TEST_F(QueryTest, PreparedStatementFollowsClientAcrossServers) {
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(TinyPool()));
  const std::string conninfo = proxy->ConnString();
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(conninfo));
  PgResult prep(PQprepare(a.get(), "s1", "select pg_backend_pid(), $1::int + 1", 1, nullptr));
  ASSERT_OK(ResultStatus(prep.get()));
  std::set<std::string> servers_seen;

  // A deterministic server change first (background traffic alone may never cause one on a
  // loaded machine): the pool hands out its most recently released server, so B's transaction
  // holds the server A prepared "s1" on, and A's next execution must run on the other one.
  {
    const char* zero = "0";
    PgResult first(PQexecPrepared(a.get(), "s1", 1, &zero, nullptr, nullptr, 0));
    ASSERT_OK(ResultStatus(first.get()));
    const std::string prepared_on = Cell(first.get(), 0, 0);
    ASSERT_OK_AND_ASSIGN(PgConn b, PgConn::Connect(conninfo));
    ASSERT_OK(b.Exec("BEGIN"));
    ASSERT_OK_AND_ASSIGN(std::string held, b.Scalar("select pg_backend_pid()::text"));
    ASSERT_EQ(held, prepared_on) << "the pool did not hand out its most recently used server";
    PgResult moved(PQexecPrepared(a.get(), "s1", 1, &zero, nullptr, nullptr, 0));
    ASSERT_OK(ResultStatus(moved.get())) << proxy->Log();
    EXPECT_NE(Cell(moved.get(), 0, 0), prepared_on);
    servers_seen.insert(prepared_on);
    servers_seen.insert(Cell(moved.get(), 0, 0));
    ASSERT_OK(b.Exec("COMMIT"));
  }

  BackgroundTraffic others(conninfo, 3, "pg_backend_pid()", PidOnly);
  for (int i = 0; i < 50; ++i) {
    const std::string param = std::to_string(i);
    const char* value = param.c_str();
    PgResult res(PQexecPrepared(a.get(), "s1", 1, &value, nullptr, nullptr, 0));
    ASSERT_OK(ResultStatus(res.get())) << "execution " << i << "\n" << proxy->Log();
    EXPECT_EQ(Cell(res.get(), 0, 1), std::to_string(i + 1));
    servers_seen.insert(Cell(res.get(), 0, 0));
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  others.Stop();
  EXPECT_THAT(others.problems(), ::testing::IsEmpty());
  EXPECT_GT(others.transactions(), 0);
  // Otherwise the test proved nothing: the statement must have met a server it was not
  // prepared on by the client itself.
  EXPECT_GE(servers_seen.size(), 2u) << "client A always got the same server";
}

TEST_F(QueryTest, DeallocateForgetsTheStatementOnEveryServer) {
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(TinyPool()));
  const std::string conninfo = proxy->ConnString();
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(conninfo));
  BackgroundTraffic others(conninfo, 3, "pg_backend_pid()", PidOnly);
  for (int round = 0; round < 10; ++round) {
    PgResult prep(PQprepare(a.get(), "s2", round % 2 == 0 ? "select 'even'" : "select 'odd'", 0,
                            nullptr));
    ASSERT_OK(ResultStatus(prep.get())) << "round " << round;
    PgResult run(PQexecPrepared(a.get(), "s2", 0, nullptr, nullptr, nullptr, 0));
    ASSERT_OK(ResultStatus(run.get()));
    // The text prepared this round, not a stale copy left on some server.
    EXPECT_EQ(Cell(run.get(), 0, 0), round % 2 == 0 ? "even" : "odd");
    ASSERT_OK(a.Exec("deallocate s2"));
    PgResult gone(PQexecPrepared(a.get(), "s2", 0, nullptr, nullptr, nullptr, 0));
    EXPECT_THAT(ResultStatus(gone.get()), HasSqlState("26000"));  // invalid_sql_statement_name
  }
  others.Stop();
  EXPECT_THAT(others.problems(), ::testing::IsEmpty());
}

TEST_F(QueryTest, SetFollowsClientAcrossServersAndDoesNotLeak) {
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(TinyPool()));
  const std::string conninfo = proxy->ConnString();
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(conninfo));
  ASSERT_OK(a.Exec("SET application_name = 'x1'"));
  ASSERT_OK(a.Exec("SET search_path = sg_private, public"));
  EXPECT_STREQ(PQparameterStatus(a.get(), "application_name"), "x1");

  // Others must never see A's settings on the servers A used.
  BackgroundTraffic others(
      conninfo, 3,
      "current_setting('application_name'), current_setting('search_path')",
      [](const std::vector<std::string>& row) -> std::string {
        if (row.size() != 2) return "unexpected row shape";
        if (row[0] == "x1" || row[1].find("sg_private") != std::string::npos) {
          return absl::StrCat("leaked session state: ", row[0], " / ", row[1]);
        }
        return "";
      });
  std::set<std::string> servers_seen;
  for (int i = 0; i < 40; ++i) {
    auto rows = a.Rows(
        "select current_setting('application_name'), current_setting('search_path'), "
        "pg_backend_pid()");
    ASSERT_OK(rows.status()) << i;
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0][0], "x1") << "round " << i;
    EXPECT_EQ((*rows)[0][1], "sg_private, public") << "round " << i;
    servers_seen.insert((*rows)[0][2]);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  EXPECT_EQ(Text(a.Scalar("SHOW application_name")), "x1");
  others.Stop();
  EXPECT_THAT(others.problems(), ::testing::IsEmpty());
  EXPECT_GE(servers_seen.size(), 2u) << "client A always got the same server";

  // A fresh client starts from the defaults.
  ASSERT_OK_AND_ASSIGN(PgConn b, PgConn::Connect(conninfo));
  for (int i = 0; i < 4; ++i) {
    EXPECT_NE(Text(b.Scalar("SHOW application_name")), "x1");
    EXPECT_THAT(Text(b.Scalar("SHOW search_path")), ::testing::Not(HasSubstr("sg_private")));
  }

  // RESET is session state too.
  ASSERT_OK(a.Exec("RESET application_name"));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Text(a.Scalar("SHOW application_name")), "");
}

TEST_F(QueryTest, StartupApplicationNameFollowsClientAcrossServers) {
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(TinyPool()));
  const std::string conninfo = proxy->ConnString();
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(conninfo + " application_name=from_startup"));
  BackgroundTraffic others(conninfo, 3, "current_setting('application_name')",
                           [](const std::vector<std::string>& row) -> std::string {
                             return row.size() == 1 && row[0] == "from_startup"
                                        ? "leaked startup application_name"
                                        : "";
                           });
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Text(a.Scalar("show application_name")), "from_startup") << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  others.Stop();
  EXPECT_THAT(others.problems(), ::testing::IsEmpty());
}

// libpq's `options` startup parameter ("-c name=value"), as PostgreSQL applies it per session.
TEST_F(QueryTest, StartupOptionsAreAppliedOnEveryServer) {
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(TinyPool()));
  const std::string conninfo = proxy->ConnString();
  ASSERT_OK_AND_ASSIGN(PgConn a,
                       PgConn::Connect(conninfo + " options='-c statement_timeout=12345'"));
  BackgroundTraffic others(conninfo, 3, "current_setting('statement_timeout')",
                           [](const std::vector<std::string>& row) -> std::string {
                             return row.size() == 1 && row[0] == "12345ms"
                                        ? "leaked startup options"
                                        : "";
                           });
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Text(a.Scalar("show statement_timeout")), "12345ms") << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  others.Stop();
  EXPECT_THAT(others.problems(), ::testing::IsEmpty());
}

TEST_F(QueryTest, SetLocalIsNotReplayedAfterItsTransaction) {
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(TinyPool()));
  const std::string conninfo = proxy->ConnString();
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(conninfo));
  ASSERT_OK(a.Exec("set statement_timeout = '12s'"));
  BackgroundTraffic others(conninfo, 3, "pg_backend_pid()", PidOnly);
  for (int i = 0; i < 20; ++i) {
    // SET LOCAL ends with its transaction; the session value comes back.
    ASSERT_OK(a.Exec("begin"));
    ASSERT_OK(a.Exec("set local statement_timeout = '7s'"));
    EXPECT_EQ(Text(a.Scalar("show statement_timeout")), "7s") << i;
    ASSERT_OK(a.Exec("commit"));
    EXPECT_EQ(Text(a.Scalar("show statement_timeout")), "12s") << i;
    // A SET in a transaction that rolls back is undone too.
    ASSERT_OK(a.Exec("begin"));
    ASSERT_OK(a.Exec("set statement_timeout = '9s'"));
    ASSERT_OK(a.Exec("rollback"));
    EXPECT_EQ(Text(a.Scalar("show statement_timeout")), "12s") << i;
  }
  others.Stop();
  EXPECT_THAT(others.problems(), ::testing::IsEmpty());
}

// The admin console's SHOW POOLS row of database "app" (column -> value).
std::map<std::string, std::string> PoolRow(PgConn& admin) {
  PgResult res(PQexec(admin.get(), "SHOW POOLS"));
  std::map<std::string, std::string> row;
  if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) return row;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    if (std::string(PQgetvalue(res.get(), r, PQfnumber(res.get(), "database"))) != "app") continue;
    for (int c = 0; c < PQnfields(res.get()); ++c) {
      row[PQfname(res.get(), c)] = PQgetvalue(res.get(), r, c);
    }
  }
  return row;
}

TEST_F(QueryTest, ShowPoolsReportsAWaitingClientAndHowLongItWaits) {
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(TinyPool()));
  const std::string conninfo = proxy->ConnString();
  ASSERT_OK_AND_ASSIGN(PgConn admin,
                       PgConn::Connect(proxy->ConnString("shardgate", "admin", "admin")));
  // Both servers of the pool held in transactions; a third client's query waits for one.
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(conninfo));
  ASSERT_OK_AND_ASSIGN(PgConn b, PgConn::Connect(conninfo));
  ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(conninfo));
  for (PgConn* holder : {&a, &b}) {
    ASSERT_OK(holder->Exec("begin"));
    ASSERT_OK(holder->Exec("select 1"));
  }
  // Before the send: the proxy may start the wait before PQsendQuery returns (a run saw maxwait
  // exceed a bound taken after it by 0.4 ms).
  const auto sent = std::chrono::steady_clock::now();
  ASSERT_EQ(PQsendQuery(c.get(), "select 42"), 1);
  std::map<std::string, std::string> row;
  for (int i = 0; i < 100; ++i) {  // until the proxy has queued it (bounded: 10 s)
    row = PoolRow(admin);
    if (row["cl_waiting"] == "1") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  row = PoolRow(admin);
  const int64_t waited_bound = std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - sent)
                                   .count();
  ASSERT_FALSE(row.empty()) << "no SHOW POOLS row for app";
  EXPECT_EQ(row["cl_waiting"], "1");
  EXPECT_EQ(row["sv_active"], "2");
  EXPECT_EQ(row["sv_idle"], "0");
  EXPECT_EQ(row["sv_login"], "0");
  const int64_t maxwait = std::stoll(row["maxwait"]) * 1000000 + std::stoll(row["maxwait_us"]);
  EXPECT_GE(maxwait, 300000) << "it has waited at least the 300 ms slept";
  EXPECT_LE(maxwait, waited_bound) << "and not longer than since it was sent";
  EXPECT_LT(std::stoll(row["maxwait_us"]), 1000000);

  // A transaction ends: the waiting client gets that server, and nobody waits any more.
  ASSERT_OK(a.Exec("commit"));
  PgResult answer(PQgetResult(c.get()));
  ASSERT_OK(ResultStatus(answer.get()));
  EXPECT_EQ(Cell(answer.get(), 0, 0), "42");
  while (PGresult* r = PQgetResult(c.get())) PQclear(r);
  row = PoolRow(admin);
  EXPECT_EQ(row["cl_waiting"], "0");
  EXPECT_EQ(row["maxwait"], "0");
  EXPECT_EQ(row["maxwait_us"], "0");
  ASSERT_OK(b.Exec("commit"));
}

}  // namespace
}  // namespace shardgate::testing
