// Cancel through shardgate (the proxy's BackendKeyData must reach the right server), and
// LISTEN/NOTIFY in session mode.
#include <future>

#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

// Cancels `conn`'s running query from another thread after `delay`; returns PQcancel's verdict.
std::future<std::string> CancelLater(PGconn* conn, std::chrono::milliseconds delay) {
  PGcancel* cancel = PQgetCancel(conn);  // made on this thread, used on the other
  return std::async(std::launch::async, [cancel, delay] {
    std::this_thread::sleep_for(delay);
    char err[256] = {0};
    const int ok = PQcancel(cancel, err, sizeof(err));
    PQfreeCancel(cancel);
    return ok == 1 ? std::string() : std::string(err);
  });
}

TEST_F(QueryTest, CancelStopsPgSleep) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  for (int round = 0; round < 2; ++round) {  // twice: the key must stay valid on a new server
    auto cancelled = CancelLater(conn.get(), std::chrono::milliseconds(300));
    const auto start = Clock::now();
    absl::Status st = conn.Exec("select pg_sleep(30)");
    const auto took = Clock::now() - start;
    EXPECT_EQ(cancelled.get(), "") << "PQcancel failed";
    EXPECT_THAT(st, HasSqlState("57014")) << "round " << round;
    EXPECT_LT(took, std::chrono::seconds(5)) << "cancel took too long";
    EXPECT_EQ(Text(conn.Scalar("select 'usable'")), "usable");
  }
}

TEST_F(QueryTest, CancelInsideTransactionAbortsOnlyThatTransaction) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("begin"));
  auto cancelled = CancelLater(conn.get(), std::chrono::milliseconds(300));
  EXPECT_THAT(conn.Exec("select pg_sleep(30)"), HasSqlState("57014"));
  EXPECT_EQ(cancelled.get(), "");
  EXPECT_EQ(PQtransactionStatus(conn.get()), PQTRANS_INERROR);
  EXPECT_THAT(conn.Exec("select 1"), HasSqlState("25P02"));  // in_failed_sql_transaction
  ASSERT_OK(conn.Exec("rollback"));
  EXPECT_EQ(Text(conn.Scalar("select 'usable'")), "usable");
}

TEST_F(QueryTest, CancelWithWrongKeyDoesNothing) {
  ASSERT_OK_AND_ASSIGN(PgConn victim, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn other, env().Connect());
  // A cancel with `other`'s key must not stop `victim`'s query.
  auto cancelled = CancelLater(other.get(), std::chrono::milliseconds(200));
  EXPECT_OK(victim.Exec("select pg_sleep(1)"));
  cancelled.get();
}

// Waits up to `timeout` for a notification on `conn`.
std::optional<std::pair<std::string, std::string>> WaitNotify(PGconn* conn,
                                                              std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (PQconsumeInput(conn) != 1) return std::nullopt;
    if (PGnotify* n = PQnotifies(conn); n != nullptr) {
      std::pair<std::string, std::string> out{n->relname, n->extra};
      PQfreemem(n);
      return out;
    }
    pollfd p{PQsocket(conn), POLLIN, 0};
    poll(&p, 1, 100);
  }
  return std::nullopt;
}

TEST_F(QueryTest, ListenNotifyInSessionMode) {
  ProxyEnvOptions session;
  session.pool_mode = "session";
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(session));
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn b, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK(a.Exec("LISTEN ch"));
  ASSERT_OK(b.Exec("NOTIFY ch, 'hello'"));
  auto got = WaitNotify(a.get(), std::chrono::seconds(5));
  ASSERT_TRUE(got.has_value()) << "no notification within 5 s\n" << proxy->Log();
  EXPECT_EQ(got->first, "ch");
  EXPECT_EQ(got->second, "hello");

  // Notifications sent while A is busy arrive with A's next result.
  ASSERT_OK(b.Exec("select pg_notify('ch', 'second')"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_OK(a.Exec("select 1"));
  PGnotify* n = PQnotifies(a.get());
  ASSERT_NE(n, nullptr);
  EXPECT_STREQ(n->extra, "second");
  PQfreemem(n);

  ASSERT_OK(a.Exec("UNLISTEN ch"));
  ASSERT_OK(b.Exec("NOTIFY ch, 'nobody'"));
  EXPECT_FALSE(WaitNotify(a.get(), std::chrono::milliseconds(500)).has_value());
}

TEST_F(QueryTest, SessionModeKeepsOneServer) {
  ProxyEnvOptions session;
  session.pool_mode = "session";
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(session));
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK_AND_ASSIGN(std::string pid, a.Scalar("select pg_backend_pid()"));
  ASSERT_OK(a.Exec("create temp table session_tmp (v int); insert into session_tmp values (7)"));
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(PgConn other, PgConn::Connect(proxy->ConnString()));
    EXPECT_NE(Text(other.Scalar("select pg_backend_pid()")), pid);
    EXPECT_EQ(Text(a.Scalar("select pg_backend_pid()")), pid);
  }
  EXPECT_EQ(Text(a.Scalar("select v from session_tmp")), "7");
}

}  // namespace
}  // namespace shardgate::testing
