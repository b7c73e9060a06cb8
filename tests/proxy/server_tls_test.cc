// TLS from shardgate to the servers (`server_tls:`): verify-full against servers with
// certificates from a throwaway CA made at run time, a wrong CA, a certificate for another
// name, and require/prefer against a server without TLS. The servers see the proxy's
// connections encrypted (pg_stat_ssl), health checks and cross-shard statements included.
#include <poll.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// libpq reports a refused login only as text; with verbose errors (set before the server's
// answer arrives) that text carries the SQLSTATE: "FATAL:  08001: could not connect ...".
// Returns the error text, or "" when the login succeeded.
std::string LoginError(const std::string& conninfo) {
  PGconn* conn = PQconnectStart(conninfo.c_str());
  if (conn == nullptr) return "PQconnectStart returned null";
  PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (state != PGRES_POLLING_OK && state != PGRES_POLLING_FAILED) {
    pollfd p{PQsocket(conn), static_cast<short>(state == PGRES_POLLING_READING ? POLLIN : POLLOUT),
             0};
    if (poll(&p, 1, 30000) <= 0) {
      PQfinish(conn);
      return "login did not finish within 30 s";
    }
    state = PQconnectPoll(conn);
  }
  std::string error = state == PGRES_POLLING_OK ? "" : PQerrorMessage(conn);
  PQfinish(conn);
  return error;
}

class ServerTlsTest : public ::testing::Test {
 protected:
  // Three servers: `tls_` (ssl on, certificate for 127.0.0.1 and localhost), `elsewhere_` (ssl
  // on, a certificate for other.example only, same CA) and `plain_` (ssl off).
  static void SetUpTestSuite() { start_status_ = Start(); }
  static absl::Status Start() {
    ASSIGN_OR_RETURN(ca_, TestCa::Create("shardgate test CA"));
    ASSIGN_OR_RETURN(other_ca_, TestCa::Create("some other CA"));
    ASSIGN_OR_RETURN(auto good, ca_->Issue("localhost", "IP:127.0.0.1,DNS:localhost"));
    ASSIGN_OR_RETURN(auto other, ca_->Issue("other.example", "DNS:other.example"));
    ServerOptions tls_options;
    tls_options.ssl_cert_pem = good.cert_pem;
    tls_options.ssl_key_pem = good.key_pem;
    ASSIGN_OR_RETURN(tls_, PgServer::StartPrimary("app", tls_options));
    ServerOptions elsewhere_options;
    elsewhere_options.ssl_cert_pem = other.cert_pem;
    elsewhere_options.ssl_key_pem = other.key_pem;
    ASSIGN_OR_RETURN(elsewhere_, PgServer::StartPrimary("app", elsewhere_options));
    ASSIGN_OR_RETURN(plain_, PgServer::StartPrimary("app"));
    // A second database on the TLS server is the second shard: fan-out crosses TLS twice.
    RETURN_IF_ERROR(tls_->Query("CREATE DATABASE app2 OWNER app", "postgres").status());
    for (const char* db : {"app", "app2"}) {
      RETURN_IF_ERROR(
          tls_->Query("CREATE TABLE t (id int PRIMARY KEY, v text); ALTER TABLE t OWNER TO app", db)
              .status());
    }
    return absl::OkStatus();
  }
  static void TearDownTestSuite() {
    tls_.reset();
    elsewhere_.reset();
    plain_.reset();
    ca_.reset();
    other_ca_.reset();
  }
  void SetUp() override { ASSERT_OK(start_status_); }

  // shardgate in front of `server` reached as `host`: database `app` with one shard, or (when
  // `sharded`) two shards (databases app and app2 of the server) with a table `t` spread by id.
  static absl::StatusOr<std::unique_ptr<ShardgateProcess>> StartProxy(
      const PgServer& server, const std::string& host, const std::string& server_tls,
      bool sharded = false, const std::string& timeouts = "{connect: 5s}") {
    const int port = FreePort();
    std::string y = absl::StrCat(
        "listen: {host: 127.0.0.1, port: ", port, "}\n", "workers: 2\n",
        "admin: {users: [admin]}\n", "users:\n", "  - {name: app, password: app_pw}\n",
        "  - {name: admin, password: admin}\n", "databases:\n  app:\n    pool_size: 4\n",
        "    health_check_interval: 200ms\n    shards:\n",
        "      - {name: s0, primary: {host: ", host, ", port: ", server.port(),
        ", dbname: app}}\n");
    if (sharded) {
      absl::StrAppend(&y, "      - {name: s1, primary: {host: ", host, ", port: ", server.port(),
                      ", dbname: app2}}\n", "    routers: {r: {type: modulo, shards: [s0, s1]}}\n",
                      "    tables: {t: {key: id, router: r}}\n", "    default_shard: s0\n");
    }
    absl::StrAppend(&y, "server_tls: ", server_tls, "\n", "timeouts: ", timeouts, "\n");
    return ShardgateProcess::Start(y, port);
  }

  static std::string VerifyFull(const TestCa& ca) {
    return absl::StrCat("{sslmode: verify-full, root_cert: ", ca.cert_path(), "}");
  }

  // Whether the backend serving this connection (through shardgate) is encrypted.
  static std::string BackendSsl(const PgConn& conn) {
    return Text(conn.Scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"));
  }

  static inline absl::Status start_status_;
  static inline std::unique_ptr<TestCa> ca_, other_ca_;
  static inline std::unique_ptr<PgServer> tls_, elsewhere_, plain_;
};

TEST_F(ServerTlsTest, VerifyFullEncryptsQueriesFanOutAndHealthChecks) {
  ASSERT_OK_AND_ASSIGN(auto proxy,
                       StartProxy(*tls_, "127.0.0.1", VerifyFull(*ca_), /*sharded=*/true));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(proxy->ConnString()));
  EXPECT_EQ(BackendSsl(conn), "t") << proxy->Log();
  // Both protocols, writes routed to each shard, a fan-out over both TLS connections, and a
  // result spanning many TLS records.
  for (int id = 1; id <= 20; ++id) {
    EXPECT_EQ(Text(conn.ScalarParams("INSERT INTO t (id, v) VALUES ($1, 'row') RETURNING id",
                                     {std::to_string(id)})),
              std::to_string(id));
  }
  EXPECT_EQ(Text(conn.Scalar("SELECT count(*) FROM t")), "20");
  EXPECT_EQ(Text(tls_->Query("SELECT count(*) FROM t", "app2")) != "0", true)
      << "modulo over 20 keys left shard s1 empty";
  EXPECT_EQ(Text(conn.Scalar("SELECT length(string_agg(md5(i::text), '')) "
                             "FROM generate_series(1, 20000) i")),
            "640000");
  ASSERT_OK_AND_ASSIGN(auto big,
                       conn.Rows("SELECT repeat('x', 100000) FROM generate_series(1, 30)"));
  ASSERT_EQ(big.size(), 30u);
  EXPECT_EQ(big.back().front().size(), 100000u);
  ASSERT_OK(conn.Exec("BEGIN"));
  EXPECT_EQ(BackendSsl(conn), "t");
  ASSERT_OK(conn.Exec("COMMIT"));

  // Every connection of the proxy's user on the server is encrypted, the health checker's too
  // (its last statement asks pg_is_in_recovery()).
  EXPECT_TRUE(WaitFor([&] {
    return Text(tls_->Query("SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s "
                            "USING (pid) WHERE a.query LIKE '%pg_is_in_recovery()%' AND s.ssl "
                            "AND a.pid <> pg_backend_pid()")) != "0";
  })) << proxy->Log();
  EXPECT_EQ(Text(tls_->Query("SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s "
                             "USING (pid) WHERE a.usename = 'app' AND NOT s.ssl")),
            "0");
  ASSERT_OK_AND_ASSIGN(PgConn admin,
                       PgConn::Connect(proxy->ConnString("shardgate", "admin", "admin")));
  ASSERT_OK_AND_ASSIGN(auto shards, admin.Rows("SHOW SHARDS"));
  for (const auto& row : shards) {
    EXPECT_THAT(absl::StrJoin(row, "|"), Not(HasSubstr("down"))) << "SHOW SHARDS";
  }
  ASSERT_OK_AND_ASSIGN(auto config, admin.Rows("SHOW CONFIG"));
  bool shown = false;
  for (const auto& row : config) {
    if (row.size() > 1 && row[0] == "server_tls.sslmode") {
      EXPECT_EQ(row[1], "verify-full");
      shown = true;
    }
  }
  EXPECT_TRUE(shown) << "SHOW CONFIG has no server_tls.sslmode";
}

// A cancelled query (timeouts.query: the CancelRequest goes in plain TCP, as libpq sends it)
// leaves the TLS connection usable; a server connection killed mid-query gives that client
// 08006 and nothing else (the session drops it while its pump waits on a TLS read). The kill
// goes through a second proxy without a query timeout: under one, a victim not killed in time
// (two cores busy with the other suites) is cancelled first and answers 57014.
TEST_F(ServerTlsTest, CancelAndLostServerUnderTls) {
  ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*tls_, "127.0.0.1", VerifyFull(*ca_), false,
                                              "{connect: 5s, query: 1s}"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(proxy->ConnString()));
  absl::Status timed_out = conn.Exec("SELECT pg_sleep(5)");
  EXPECT_EQ(SqlState(timed_out), "57014") << timed_out;
  EXPECT_EQ(Text(conn.Scalar("SELECT 'after the cancel'")), "after the cancel");
  EXPECT_EQ(BackendSsl(conn), "t");

  ASSERT_OK_AND_ASSIGN(auto untimed, StartProxy(*tls_, "127.0.0.1", VerifyFull(*ca_)));
  ASSERT_OK_AND_ASSIGN(PgConn victim, PgConn::Connect(untimed->ConnString()));
  ASSERT_EQ(
      PQsendQuery(victim.get(), "SELECT 'victim', pg_sleep(0.25) FROM generate_series(1, 40)"), 1);
  ASSERT_TRUE(WaitFor([&] {
    return Text(tls_->Query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE query LIKE '%''victim''%' AND pid <> pg_backend_pid()")) == "t";
  }));
  PgResult res(PQgetResult(victim.get()));
  EXPECT_THAT(SqlState(ResultStatus(res.get(), victim.get())),
              ::testing::AnyOf("08006", "57P01", kNoSqlState));
  while (PGresult* more = PQgetResult(victim.get())) PQclear(more);
  // The proxy is alive and serves others over TLS.
  ASSERT_OK_AND_ASSIGN(PgConn after, PgConn::Connect(untimed->ConnString()));
  EXPECT_EQ(BackendSsl(after), "t") << untimed->Log();
  EXPECT_EQ(Text(conn.Scalar("SELECT 1")), "1");
}

// SIGHUP: an unchanged server_tls keeps the pooled connections (a reload or a resharding
// cutover must not empty the pools); a switch from disable to verify-full drops the plain ones,
// so that no statement runs on an unencrypted connection after it.
TEST_F(ServerTlsTest, ReloadKeepsOrDropsPooledConnections) {
  ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*tls_, "127.0.0.1", "{sslmode: disable}"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(proxy->ConnString()));
  EXPECT_EQ(BackendSsl(conn), "f");
  const std::string pid = Text(conn.Scalar("SELECT pg_backend_pid()"));
  ASSERT_OK_AND_ASSIGN(PgConn admin,
                       PgConn::Connect(proxy->ConnString("shardgate", "admin", "admin")));
  auto sslmode = [&] {
    auto rows = admin.Rows("SHOW CONFIG");
    if (!rows.ok()) return std::string("error");
    for (const auto& row : *rows) {
      if (row.size() > 1 && row[0] == "server_tls.sslmode") return row[1];
    }
    return std::string("none");
  };
  auto rewrite = [&](const std::string& from, const std::string& to) {
    std::ifstream in(proxy->config_path());
    std::stringstream text;
    text << in.rdbuf();
    std::ofstream out(proxy->config_path(), std::ios::trunc);
    out << absl::StrReplaceAll(text.str(), {{from, to}});
  };

  // Same settings (one more comment line): the same server connection serves on.
  rewrite("server_tls: {sslmode: disable}", "# reloaded\nserver_tls: {sslmode: disable}");
  ASSERT_OK(admin.Exec("RELOAD"));
  EXPECT_EQ(Text(conn.Scalar("SELECT pg_backend_pid()")), pid);

  rewrite("server_tls: {sslmode: disable}", VerifyFull(*ca_).insert(0, "server_tls: "));
  ASSERT_OK(proxy->Signal(SIGHUP));
  ASSERT_TRUE(WaitFor([&] { return sslmode() == "verify-full"; })) << proxy->Log();
  EXPECT_EQ(BackendSsl(conn), "t");
  EXPECT_NE(Text(conn.Scalar("SELECT pg_backend_pid()")), pid);
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK_AND_ASSIGN(PgConn other, PgConn::Connect(proxy->ConnString()));
    EXPECT_EQ(BackendSsl(other), "t") << i;
  }
}

TEST_F(ServerTlsTest, VerifyFullByDnsName) {
  ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*tls_, "localhost", VerifyFull(*ca_)));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(proxy->ConnString()));
  EXPECT_EQ(BackendSsl(conn), "t") << proxy->Log();
}

TEST_F(ServerTlsTest, WrongCaIsRefusedWith08001) {
  ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*tls_, "127.0.0.1", VerifyFull(*other_ca_)));
  const auto start = Clock::now();
  const std::string error = LoginError(proxy->ConnString());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10)) << "the refusal took too long";
  EXPECT_THAT(error, HasSubstr("08001"));
  EXPECT_THAT(error, HasSubstr("shard \"s0\""));
  EXPECT_THAT(error, HasSubstr("certificate verify failed"));
  EXPECT_THAT(error, HasSubstr("unable to get local issuer certificate"));
  // Not even the login went through in plain.
  EXPECT_EQ(Text(tls_->Query("SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s "
                             "USING (pid) WHERE a.usename = 'app' AND NOT s.ssl")),
            "0");
}

TEST_F(ServerTlsTest, VerifyFullChecksTheName) {
  // The certificate names only other.example: neither the IP address nor "localhost" match.
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*elsewhere_, host, VerifyFull(*ca_)));
    const std::string error = LoginError(proxy->ConnString());
    EXPECT_THAT(error, HasSubstr("08001")) << host;
    EXPECT_THAT(error, HasSubstr("certificate verify failed")) << host;
    EXPECT_THAT(error, HasSubstr("mismatch")) << host;
  }
  // verify-ca checks the chain only: the same server is accepted.
  ASSERT_OK_AND_ASSIGN(
      auto proxy,
      StartProxy(*elsewhere_, "127.0.0.1",
                 absl::StrCat("{sslmode: verify-ca, root_cert: ", ca_->cert_path(), "}")));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(proxy->ConnString()));
  EXPECT_EQ(BackendSsl(conn), "t");
}

TEST_F(ServerTlsTest, RequireEncryptsWithoutChecking) {
  // A CA that signed nothing of the server's: require does not look.
  ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*elsewhere_, "127.0.0.1", "{sslmode: require}"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(proxy->ConnString()));
  EXPECT_EQ(BackendSsl(conn), "t");
}

TEST_F(ServerTlsTest, RequireAgainstAPlainServerIs08001AndPreferFallsBack) {
  {
    ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*plain_, "127.0.0.1", "{sslmode: require}"));
    const std::string error = LoginError(proxy->ConnString());
    EXPECT_THAT(error, HasSubstr("08001"));
    EXPECT_THAT(error, HasSubstr("server does not support SSL"));
  }
  {
    ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*plain_, "127.0.0.1", VerifyFull(*ca_)));
    EXPECT_THAT(LoginError(proxy->ConnString()), HasSubstr("server does not support SSL"));
  }
  ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*plain_, "127.0.0.1", "{sslmode: prefer}"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(proxy->ConnString()));
  EXPECT_EQ(BackendSsl(conn), "f");
  // prefer against a TLS server encrypts.
  ASSERT_OK_AND_ASSIGN(auto to_tls, StartProxy(*tls_, "127.0.0.1", "{sslmode: prefer}"));
  ASSERT_OK_AND_ASSIGN(PgConn tls_conn, PgConn::Connect(to_tls->ConnString()));
  EXPECT_EQ(BackendSsl(tls_conn), "t");
}

TEST_F(ServerTlsTest, DisableStaysPlainAgainstATlsServer) {
  ASSERT_OK_AND_ASSIGN(auto proxy, StartProxy(*tls_, "127.0.0.1", "{sslmode: disable}"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(proxy->ConnString()));
  EXPECT_EQ(BackendSsl(conn), "f");
}

TEST_F(ServerTlsTest, CheckRejectsARootCertThatIsNotPem) {
  // Readable (conf/ accepts it) but not a certificate: --check and the daemon refuse it.
  const std::string yaml = absl::StrCat(
      "users: [{name: app, password: pw}]\n"
      "databases: {app: {shards: [{name: s0, primary: {port: ",
      plain_->port(),
      "}}]}}\n"
      "server_tls: {sslmode: verify-ca, root_cert: /etc/passwd}\n");
  char path[] = "/tmp/sg-tls-check-XXXXXX.yaml";
  const int fd = mkstemps(path, 5);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, yaml.data(), yaml.size()), static_cast<ssize_t>(yaml.size()));
  close(fd);
  const char* bin = getenv("SHARDGATE_BIN");
  auto [code, out] = RunShell(
      absl::StrCat(bin != nullptr ? bin : SHARDGATE_BINARY, " --config ", path, " --check"));
  unlink(path);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("server_tls: cannot load root_cert /etc/passwd")) << out;
}

}  // namespace
}  // namespace shardgate::testing
