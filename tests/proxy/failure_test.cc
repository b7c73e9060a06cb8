// Things going away under shardgate: a client leaving mid-query or mid-transaction (its server
// is cancelled/reset, never handed on dirty), the primary killed mid-query (a clean 08006 for
// that client, others fine after a restart), a pooled connection the server closed, and SIGTERM
// or the admin console's SHUTDOWN draining a transaction in flight.
#include <future>

#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

// How many backends on `server` run a query containing `marker` (the marker is split in the
// probe itself so that the probe does not count itself).
std::string ActiveWithMarker(const PgServer& server, const std::string& marker) {
  const size_t half = marker.size() / 2;
  auto r = server.Query(absl::StrCat(
      "select count(*) from pg_stat_activity where state <> 'idle' and query like '%",
      marker.substr(0, half), "' || '", marker.substr(half), "%'"));
  return r.ok() ? *r : std::string(r.status().message());
}

class FailureTest : public ProxySuite<FailureTest> {
 protected:
  // A proxy of its own (it is stopped by the test) with timeouts.shutdown = `shutdown`.
  static absl::StatusOr<std::unique_ptr<ShardgateProcess>> StartWithShutdown(
      const std::string& shutdown) {
    ProxyEnvOptions options;
    options.extra_top_yaml = absl::StrCat("timeouts: {shutdown: ", shutdown, "}\n");
    return env().StartExtraProxy(options);
  }
};

// The SQLSTATE of the FATAL a server (or the proxy) sends `conn` between queries, waiting up to
// 5 s; "" when none came. libpq hands such an error to the notice receiver, as it does for
// PostgreSQL's own 57P01.
std::string FatalBetweenQueries(PgConn& conn) {
  std::string told;
  PQsetNoticeReceiver(
      conn.get(),
      [](void* arg, const PGresult* r) {
        const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        *static_cast<std::string*>(arg) += state != nullptr ? state : "?";
      },
      &told);
  for (int i = 0; i < 100 && told.empty(); ++i) {
    PQconsumeInput(conn.get());
    PQisBusy(conn.get());  // parses what was read
    if (told.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  PQsetNoticeReceiver(conn.get(), [](void*, const PGresult*) {}, nullptr);
  return told;
}

TEST_F(FailureTest, ClientDisconnectMidQueryStopsItsServerQuery) {
  ASSERT_OK_AND_ASSIGN(PgConn client, env().Connect());
  ASSERT_EQ(PQsendQuery(client.get(), "select pg_sleep(20) /* sg_disconnect_probe */"), 1);
  ASSERT_TRUE(WaitFor([&] { return ActiveWithMarker(env().primary(), "sg_disconnect_probe") == "1"; }))
      << "the query never started on the server";
  client.Close();  // PQfinish: Terminate and close, while the query runs
  EXPECT_TRUE(WaitFor([&] { return ActiveWithMarker(env().primary(), "sg_disconnect_probe") == "0"; },
                      std::chrono::seconds(5)))
      << "pg_sleep still running 5 s after its client left";
  ASSERT_OK_AND_ASSIGN(PgConn next, env().Connect());
  EXPECT_EQ(Text(next.Scalar("select 'next client'")), "next client");
}

TEST_F(FailureTest, ClientDisconnectMidTransactionIsRolledBack) {
  // One server only, so the next client would get the very server the first one left dirty.
  ProxyEnvOptions one;
  one.pool_size = 1;
  one.workers = 1;
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(one));
  {
    ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(proxy->ConnString()));
    ASSERT_OK(a.Exec("begin"));
    ASSERT_OK(a.Exec("create table left_behind (v int)"));
    ASSERT_OK(a.Exec("set local application_name = 'dirty'"));
  }  // gone without COMMIT
  ASSERT_OK_AND_ASSIGN(PgConn b, PgConn::Connect(proxy->ConnString()));
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(b.Exec("select * from left_behind"), HasSqlState("42P01"));
    EXPECT_NE(Text(b.Scalar("show application_name")), "dirty");
    // In a fresh transaction, now() is this statement's start; in an inherited one, older.
    EXPECT_EQ(Text(b.Scalar("select now() = statement_timestamp()")), "t");
    EXPECT_EQ(PQtransactionStatus(b.get()), PQTRANS_IDLE);
  }
}

TEST_F(FailureTest, ClientDisconnectDuringCopyLeavesNoDirtyServer) {
  ProxyEnvOptions one;
  one.pool_size = 1;
  one.workers = 1;
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(one));
  ASSERT_OK_AND_ASSIGN(PgConn setup, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK(setup.Exec("drop table if exists copy_left; create table copy_left (v int)"));
  setup.Close();
  {
    ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(proxy->ConnString()));
    PgResult start(PQexec(a.get(), "copy copy_left from stdin"));
    ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN);
    ASSERT_EQ(PQputCopyData(a.get(), "1\n2\n3\n", 6), 1);
    ASSERT_EQ(PQflush(a.get()), 0);
  }  // gone in the middle of COPY IN
  ASSERT_OK_AND_ASSIGN(PgConn b, PgConn::Connect(proxy->ConnString()));
  EXPECT_EQ(Text(b.Scalar("select count(*) from copy_left")), "0");
  EXPECT_EQ(Text(b.Scalar("select 'clean'")), "clean");
}

// A server that closes an idle pooled connection (pg_terminate_backend, idle_session_timeout, a
// restart) leaves FATAL bytes and EOF on it: the next client to take it from the pool must get
// another, not an error. Each round asks right after the termination, well inside the pool's
// once-a-second sweep, so the checkout itself has to notice (Pool::Acquire's peek).
TEST_F(FailureTest, PooledConnectionClosedByTheServerIsNotHandedOut) {
  ProxyEnvOptions one;
  one.workers = 1;
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(one));
  ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK_AND_ASSIGN(std::string pid, c.Scalar("select pg_backend_pid()::text"));
  for (int round = 0; round < 5; ++round) {
    ASSERT_OK(env().primary().Query(absl::StrCat("select pg_terminate_backend(", pid, ")")));
    ASSERT_TRUE(WaitFor([&] {
      auto n = env().primary().Query(
          absl::StrCat("select count(*) from pg_stat_activity where pid = ", pid));
      return n.ok() && *n == "0";
    })) << "backend " << pid << " did not go away";
    auto next = c.Scalar("select pg_backend_pid()::text");
    ASSERT_OK(next.status()) << "round " << round << "\n" << proxy->Log();
    EXPECT_NE(*next, pid) << "round " << round;
    pid = *next;
  }
}

TEST_F(FailureTest, SigtermDrainsTransactionThenExitsZero) {
  ASSERT_OK_AND_ASSIGN(auto proxy, StartWithShutdown("10s"));
  ASSERT_OK_AND_ASSIGN(PgConn busy, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn idle, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK(busy.Exec("begin"));
  ASSERT_OK(busy.Exec("create temp table drained (v int) on commit drop"));
  ASSERT_EQ(PQsendQuery(busy.get(), "select pg_sleep(1), 'finished'"), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_OK(proxy->Signal(SIGTERM));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));

  // Draining: no new clients, and the idle one is told why it goes.
  EXPECT_FALSE(PgConn::Connect(proxy->ConnString()).ok()) << "a new client was let in";
  EXPECT_EQ(FatalBetweenQueries(idle), "57P01");

  PgResult res(PQgetResult(busy.get()));
  ASSERT_OK(ResultStatus(res.get(), busy.get())) << proxy->Log();
  EXPECT_EQ(Cell(res.get(), 0, 1), "finished");
  EXPECT_EQ(PgResult(PQgetResult(busy.get())), nullptr);
  // The transaction in flight may still finish.
  EXPECT_OK(busy.Exec("commit"));

  auto code = proxy->Wait(10000);
  ASSERT_OK(code.status()) << proxy->Log();
  EXPECT_EQ(*code, 0) << proxy->Log();
}

TEST_F(FailureTest, AdminShutdownDrainsLikeSigterm) {
  ASSERT_OK_AND_ASSIGN(auto proxy, StartWithShutdown("10s"));
  ASSERT_OK_AND_ASSIGN(PgConn busy, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn idle, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn admin,
                       PgConn::Connect(proxy->ConnString("shardgate", "admin", "admin")));
  ASSERT_OK(busy.Exec("begin"));
  ASSERT_OK(busy.Exec("select 1"));
  PgResult shutdown(PQexec(admin.get(), "SHUTDOWN"));
  ASSERT_EQ(PQresultStatus(shutdown.get()), PGRES_COMMAND_OK) << PQerrorMessage(admin.get());
  EXPECT_STREQ(PQcmdStatus(shutdown.get()), "SHUTDOWN");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(PgConn::Connect(proxy->ConnString()).ok()) << "a new client was let in";
  EXPECT_EQ(FatalBetweenQueries(idle), "57P01") << "the idle client is told why it goes";
  EXPECT_FALSE(idle.Exec("select 1").ok());
  // The open transaction may still commit.
  EXPECT_OK(busy.Exec("commit"));
  auto code = proxy->Wait(10000);
  ASSERT_OK(code.status()) << proxy->Log();
  EXPECT_EQ(*code, 0) << proxy->Log();
}

TEST_F(FailureTest, SigtermDeadlineEndsStuckTransaction) {
  ASSERT_OK_AND_ASSIGN(auto proxy, StartWithShutdown("2s"));
  ASSERT_OK_AND_ASSIGN(PgConn stuck, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK(stuck.Exec("begin"));
  ASSERT_OK(stuck.Exec("select 1"));
  const auto start = Clock::now();
  ASSERT_OK(proxy->Signal(SIGTERM));
  auto code = proxy->Wait(8000);
  ASSERT_OK(code.status()) << "still running long after the 2 s shutdown deadline\n"
                           << proxy->Log();
  EXPECT_EQ(*code, 0) << proxy->Log();
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(1500))
      << "the open transaction was not given its deadline";
  // The server side of the stuck transaction is gone (rolled back), not left idle in it.
  EXPECT_TRUE(WaitFor([&] {
    auto n = env().primary().Query(
        "select count(*) from pg_stat_activity where state like 'idle in transaction%'");
    return n.ok() && *n == "0";
  }));
}

// ---------------------------------------------------------------------------------------------
// A server killed mid-query: its own cluster, since the primary goes down.

class ServerKillTest : public ProxySuite<ServerKillTest> {};

TEST_F(ServerKillTest, KilledPrimaryGivesClean08006AndRecovers) {
  ASSERT_OK_AND_ASSIGN(PgConn sleeper, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn bystander, env().Connect());
  ASSERT_EQ(Text(bystander.Scalar("select 1")), "1");

  auto result = std::async(std::launch::async, [&] {
    return sleeper.Exec("select pg_sleep(10) /* sg_kill_probe */");
  });
  ASSERT_TRUE(WaitFor([&] { return ActiveWithMarker(env().primary(), "sg_kill_probe") == "1"; }))
      << "the query never started on the server";
  const auto killed_at = Clock::now();
  ASSERT_OK(env().primary().Kill());
  ASSERT_EQ(result.wait_for(std::chrono::seconds(8)), std::future_status::ready)
      << "the client was left hanging after its server died";
  const absl::Status st = result.get();
  EXPECT_LT(Clock::now() - killed_at, std::chrono::seconds(5));
  ASSERT_FALSE(st.ok());
  // A clean error from the proxy: FATAL naming the shard before the close (not a bare closed
  // socket). libpq >= 14 drops the fields of an error that is followed by the connection closing
  // (pqSaveErrorResult clears the async result), so the SQLSTATE cannot be read off the PGresult;
  // the connection's error message still carries the proxy's FATAL text. The SQLSTATE (08006)
  // is the one ServerLost sends; startup_test checks proxy errors on the wire.
  EXPECT_THAT(std::string(PQerrorMessage(sleeper.get())),
              HasSubstr("server connection to shard \"s0\" was lost"));

  // While the shard is down, a query gets an error promptly rather than hanging.
  {
    const auto start = Clock::now();
    auto conn = env().Connect();
    if (conn.ok()) {
      absl::Status down = conn->Exec("select 1");
      EXPECT_FALSE(down.ok());
      EXPECT_THAT(SqlState(down), ::testing::AnyOf("08001", "08006", "57P03")) << down;
    }
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  }

  ASSERT_OK(env().primary().Restart());
  // Others are fine: the bystander (which held no server) and new clients work again.
  // Its first query after the restart must work: a pooled connection that died with the server
  // must not be handed to it.
  EXPECT_OK(bystander.Exec("select 1"));
  ASSERT_OK_AND_ASSIGN(PgConn fresh, env().Connect());
  EXPECT_EQ(Text(fresh.Scalar("select 'back'")), "back");
  // No stale pooled connection from before the kill is handed out: ten clients in a row work.
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK_AND_ASSIGN(PgConn c, env().Connect());
    EXPECT_OK(c.Exec("select 1")) << "client " << i;
  }
}

}  // namespace
}  // namespace shardgate::testing
