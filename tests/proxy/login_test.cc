// Login through shardgate: SCRAM and md5 users, wrong password, unknown user and database, and
// TLS (offered only when `tls:` is configured).
//
// libpq does not expose the SQLSTATE of a failed connection, so the libpq tests match the
// message text PostgreSQL uses for each SQLSTATE, and the *Raw* tests read the ErrorResponse's
// C field off the wire for the exact code.
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "tests/proxy/proxy_fixture.h"

#include "absl/strings/str_join.h"
#include "protocol/auth.h"

namespace shardgate::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

class LoginTest : public ProxySuite<LoginTest> {};

TEST_F(LoginTest, ScramUserLogsIn) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  EXPECT_THAT(conn.Scalar("select current_user"), IsOk());
  EXPECT_EQ(Text(conn.Scalar("select current_user")), kScramUser);
  EXPECT_TRUE(PQconnectionUsedPassword(conn.get())) << "the proxy must have asked for a password";
}

// The first login with a set of startup settings replays them on a server; later ones with the
// same settings are answered from the pool's memory (issue 8) and replay with their first
// transaction. Either way the client sees its settings, in ParameterStatus and in the session.
TEST_F(LoginTest, RepeatedLoginsWithStartupSettingsSeeThem) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(PgConn conn,
                         env().Connect("application_name=known_login options='-c work_mem=7MB'"));
    EXPECT_STREQ(PQparameterStatus(conn.get(), "application_name"), "known_login") << i;
    EXPECT_NE(PQparameterStatus(conn.get(), "server_version"), nullptr) << i;
    EXPECT_EQ(Text(conn.Scalar("show work_mem")), "7MB") << i;
    EXPECT_EQ(Text(conn.Scalar("show application_name")), "known_login") << i;
  }
  // Other settings are a login of their own, with their own values.
  ASSERT_OK_AND_ASSIGN(PgConn other,
                       env().Connect("application_name=known_login options='-c work_mem=9MB'"));
  EXPECT_EQ(Text(other.Scalar("show work_mem")), "9MB");
  // ParameterStatus too is per set of settings: a login without DateStyle after logins with
  // one reports the server's default.
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(PgConn german, env().Connect("options='-c DateStyle=German'"));
    // PostgreSQL's own spelling, whether this login went to a server or was known.
    EXPECT_STREQ(PQparameterStatus(german.get(), "DateStyle"), "German, DMY") << i;
  }
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(PgConn plain, env().Connect());
    EXPECT_STREQ(PQparameterStatus(plain.get(), "DateStyle"), "ISO, MDY") << i;
    EXPECT_EQ(Text(plain.Scalar("show DateStyle")), "ISO, MDY") << i;
  }
}

// A startup setting the server refuses fails the login as PostgreSQL does (FATAL with the
// server's message), every time; the proxy goes on serving others.
TEST_F(LoginTest, StartupSettingTheServerRefusesFailsTheLogin) {
  for (int i = 0; i < 2; ++i) {
    auto conn = env().Connect("options='-c work_mem=nonsense'");
    ASSERT_FALSE(conn.ok()) << "logged in with a work_mem the server refuses, try " << i;
    EXPECT_THAT(std::string(conn.status().message()),
                HasSubstr("invalid value for parameter \"work_mem\""))
        << i;
  }
  auto unknown = env().Connect("options='-c no_such.setting_x=1 -c nonexistent_guc=2'");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("nonexistent_guc"));
  ASSERT_OK_AND_ASSIGN(PgConn fine, env().Connect("options='-c work_mem=8MB'"));
  EXPECT_EQ(Text(fine.Scalar("show work_mem")), "8MB");
}

TEST_F(LoginTest, Md5UserLogsIn) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(env().ConnString("", kMd5User, kMd5Password)));
  EXPECT_EQ(Text(conn.Scalar("select current_user")), kMd5User);
  EXPECT_TRUE(PQconnectionUsedPassword(conn.get()));
}

TEST_F(LoginTest, WrongPasswordIsRejected) {
  for (const char* user : {kScramUser, kMd5User}) {
    auto conn = PgConn::Connect(env().ConnString("", user, "not-the-password"));
    ASSERT_FALSE(conn.ok()) << user << " logged in with a wrong password";
    // 28P01 invalid_password: PostgreSQL's text for it.
    EXPECT_THAT(std::string(conn.status().message()),
                HasSubstr(absl::StrCat("password authentication failed for user \"", user)))
        << user;
  }
}

TEST_F(LoginTest, UnknownUserIsRejected) {
  auto conn = PgConn::Connect(env().ConnString("", "no_such_user", "whatever"));
  ASSERT_FALSE(conn.ok());
  // 28000 per ARCHITECTURE.md ("role ... does not exist"); a proxy hiding which users exist
  // would say "password authentication failed" (28P01), which is acceptable too.
  EXPECT_THAT(std::string(conn.status().message()),
              AnyOf(HasSubstr("does not exist"), HasSubstr("password authentication failed"),
                    HasSubstr("not allowed")));
}

TEST_F(LoginTest, UnknownDatabaseIsRejected) {
  auto conn = PgConn::Connect(env().ConnString("", kScramUser, kScramPassword, "no_such_db"));
  ASSERT_FALSE(conn.ok());
  // 3D000 invalid_catalog_name: "database \"no_such_db\" does not exist".
  EXPECT_THAT(std::string(conn.status().message()),
              AllOf(HasSubstr("no_such_db"), HasSubstr("does not exist")));
}

// Speaks the startup and md5 exchange itself and returns the SQLSTATE the proxy answers with
// ("OK" at ReadyForQuery, "SASL" when it asks for SCRAM, which this client does not do).
std::string RawLogin(int port, const std::string& user, const std::string& db,
                     const std::string& password) {
  auto sock = RawSocket::Connect(port);
  if (!sock.ok()) return "connect failed";
  (*sock)->Send(StartupPacket({{"user", user}, {"database", db}}));
  // A challenge, its answer, AuthenticationOk, ParameterStatus x ~15, BackendKeyData, then
  // ReadyForQuery: 64 messages is plenty.
  for (int i = 0; i < 64; ++i) {
    auto msg = (*sock)->ReadMessage();
    if (!msg) return "no answer";
    if (msg->first == 'E') return ErrorField(msg->second, 'C');
    if (msg->first == 'Z') return "OK";
    if (msg->first == 'S' || msg->first == 'K' || msg->first == 'N') continue;
    if (msg->first != 'R' || msg->second.size() < 4) {
      return absl::StrCat("unexpected ", std::string(1, msg->first));
    }
    const uint32_t code = GetInt32(msg->second, 0);
    if (code == 0) continue;  // AuthenticationOk; the database may still be refused after it
    if (code == 10) return "SASL";
    if (code != 5 || msg->second.size() < 8) return absl::StrCat("auth request ", code);
    const std::string answer =
        protocol::Md5Response(user, password, std::string_view(msg->second).substr(4, 4));
    std::string reply = "p";
    PutInt32(reply, static_cast<uint32_t>(answer.size() + 5));
    reply.append(answer).push_back('\0');
    (*sock)->Send(reply);
  }
  return "too many messages";
}

TEST_F(LoginTest, RawLoginErrorsCarryTheDocumentedSqlStates) {
  // The md5 user lets the raw client finish the exchange, so each verdict is on the wire.
  EXPECT_EQ(RawLogin(env().proxy->port(), kMd5User, "app", kMd5Password), "OK");
  EXPECT_EQ(RawLogin(env().proxy->port(), kMd5User, "app", "wrong"), "28P01");
  EXPECT_EQ(RawLogin(env().proxy->port(), "no_such_user", "app", "x"), "28000");
  EXPECT_EQ(RawLogin(env().proxy->port(), kMd5User, "no_such_db", kMd5Password), "3D000");
}

// Logins of every kind at the most verbose log level: no password, right or wrong, client's or
// server's, ever reaches the log or the admin console.
TEST_F(LoginTest, PasswordsNeverReachTheLogOrTheConsole) {
  ProxyEnvOptions options;
  options.args = {"--log-level", "trace"};
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(options));
  constexpr char kWrong[] = "wr0ng-pa55word";
  for (int round = 0; round < 2; ++round) {  // the second round logs in from known logins
    for (const auto& [user, password] :
         {std::pair{kScramUser, kScramPassword}, std::pair{kMd5User, kMd5Password}}) {
      ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(proxy->ConnString("app", user, password)));
      EXPECT_OK(c.Exec("select 1"));
      EXPECT_FALSE(PgConn::Connect(proxy->ConnString("app", user, kWrong)).ok());
      EXPECT_FALSE(PgConn::Connect(proxy->ConnString("no_such_db", user, password)).ok());
    }
  }
  // A cleartext password where SCRAM's first message belongs: refused without echoing it.
  {
    ASSERT_OK_AND_ASSIGN(auto sock, RawSocket::Connect(proxy->port()));
    sock->Send(StartupPacket({{"user", kScramUser}, {"database", "app"}}));
    auto sasl = sock->ReadMessage();
    ASSERT_TRUE(sasl && sasl->first == 'R');
    std::string reply = "p";
    PutInt32(reply, static_cast<uint32_t>(sizeof(kWrong) + 4));
    reply.append(kWrong).push_back('\0');
    sock->Send(reply);
    auto error = sock->ReadMessage();
    ASSERT_TRUE(error && error->first == 'E');
    EXPECT_THAT(error->second, ::testing::Not(HasSubstr(kWrong)));
  }
  ASSERT_OK_AND_ASSIGN(PgConn admin, PgConn::Connect(proxy->ConnString("shardgate", "admin",
                                                                        "admin")));
  ASSERT_OK_AND_ASSIGN(auto config_rows, admin.Rows("SHOW CONFIG"));
  ASSERT_OK_AND_ASSIGN(auto client_rows, admin.Rows("SHOW CLIENTS"));
  ASSERT_OK_AND_ASSIGN(auto server_rows, admin.Rows("SHOW SERVERS"));
  std::string console;
  for (const auto* rows : {&config_rows, &client_rows, &server_rows}) {
    for (const auto& row : *rows) absl::StrAppend(&console, absl::StrJoin(row, "|"), "\n");
  }
  const std::string log = proxy->Log();
  // The log is not empty: the failures above were logged (so the check below means something).
  EXPECT_THAT(log, HasSubstr(kMd5User));
  for (const char* secret : {kScramPassword, kMd5Password, kWrong}) {
    EXPECT_THAT(log, ::testing::Not(HasSubstr(secret))) << "the log holds a password";
    EXPECT_THAT(console, ::testing::Not(HasSubstr(secret))) << "the console shows a password";
  }
}

// users[].max_connections and limits.max_client_conn: the connection beyond either gets 53300
// (PostgreSQL's texts), not a hang, and a slot comes back when a client leaves.
TEST_F(LoginTest, ConnectionLimitsAnswer53300) {
  const int port = FreePort();
  ProxyEnvOptions options;
  options.extra_top_yaml = "limits: {max_client_conn: 4}\n";
  std::string yaml = ProxyYaml(*env().cluster, port, options);
  const std::string md5 = "auth: md5}";
  ASSERT_NE(yaml.find(md5), std::string::npos) << yaml;
  yaml.replace(yaml.find(md5), md5.size(), "auth: md5, max_connections: 2}");
  ASSERT_OK_AND_ASSIGN(auto proxy, ShardgateProcess::Start(yaml, port));
  const std::string md5_conn = proxy->ConnString("app", kMd5User, kMd5Password);

  auto a = std::make_unique<PgConn>(*PgConn::Connect(md5_conn));
  ASSERT_OK_AND_ASSIGN(PgConn b, PgConn::Connect(md5_conn));
  EXPECT_EQ(RawLogin(port, kMd5User, "app", kMd5Password), "53300") << "a third app_md5";
  auto third = PgConn::Connect(md5_conn);
  ASSERT_FALSE(third.ok());
  EXPECT_THAT(std::string(third.status().message()),
              HasSubstr("too many connections for role \"app_md5\""));
  // Checked after authentication: a wrong password still hears only that.
  EXPECT_EQ(RawLogin(port, kMd5User, "app", "wrong"), "28P01");
  // Another user is not limited by app_md5's limit.
  ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(proxy->ConnString()));
  EXPECT_OK(c.Exec("select 1"));
  // One app_md5 client leaves: its slot is free again (the proxy sees the close a moment later).
  a.reset();
  EXPECT_TRUE(WaitFor([&] { return RawLogin(port, kMd5User, "app", kMd5Password) == "OK"; }));

  // max_client_conn 4: b, c and two more (once the refused and raw clients above are gone);
  // the fifth client is refused whoever it is.
  std::optional<PgConn> d, e;
  for (auto* slot : {&d, &e}) {
    ASSERT_TRUE(WaitFor([&] {
      auto conn = PgConn::Connect(proxy->ConnString());
      if (conn.ok()) slot->emplace(std::move(*conn));
      return slot->has_value();
    }));
  }
  auto fifth = PgConn::Connect(proxy->ConnString());
  ASSERT_FALSE(fifth.ok());
  EXPECT_THAT(std::string(fifth.status().message()), HasSubstr("sorry, too many clients already"));
  EXPECT_EQ(RawLogin(port, kMd5User, "app", kMd5Password), "53300");
  // Those that are in keep working.
  EXPECT_OK(b.Exec("select 1"));
  EXPECT_OK(e->Exec("select 1"));
}

// ---------------------------------------------------------------------------------------------
// TLS

// A self-signed certificate for CN=localhost in a fresh temp dir, removed on destruction.
class SelfSignedCert {
 public:
  SelfSignedCert() {
    char templ[] = "/tmp/sg-tls-XXXXXX";
    if (mkdtemp(templ) == nullptr) return;
    dir_ = templ;
    auto [code, out] = RunShell(absl::StrCat(
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 -keyout ", dir_,
        "/server.key -out ", dir_, "/server.crt"));
    status_ = code == 0 ? absl::OkStatus() : absl::InternalError(absl::StrCat("openssl: ", out));
  }
  ~SelfSignedCert() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  const absl::Status& status() const { return status_; }
  std::string TopYaml() const {
    return absl::StrCat("tls: {cert: ", dir_, "/server.crt, key: ", dir_, "/server.key}\n");
  }

 private:
  std::string dir_;
  absl::Status status_ = absl::InternalError("mkdtemp failed");
};

TEST_F(LoginTest, TlsIsUsedWhenConfigured) {
  SelfSignedCert cert;
  ASSERT_OK(cert.status());
  ProxyEnvOptions options;
  options.extra_top_yaml = cert.TopYaml();
  const int port = FreePort();
  ASSERT_OK_AND_ASSIGN(auto tls_proxy,
                       ShardgateProcess::Start(ProxyYaml(*env().cluster, port, options), port));
  for (const char* user : {kScramUser, kMd5User}) {
    const std::string password = user == std::string(kScramUser) ? kScramPassword : kMd5Password;
    auto conn = PgConn::Connect(tls_proxy->ConnString("app", user, password) +
                                " sslmode=require");
    ASSERT_OK(conn.status()) << tls_proxy->Log();
    EXPECT_EQ(PQsslInUse(conn->get()), 1);
    const char* protocol = PQsslAttribute(conn->get(), "protocol");
    EXPECT_NE(protocol, nullptr);
    EXPECT_EQ(Text(conn->Scalar("select current_user")), user);
    // Enough bytes to span many TLS records both ways.
    EXPECT_EQ(Text(conn->Scalar("select length(repeat('x', 1000000))")), "1000000");
  }
}

TEST_F(LoginTest, WithoutTlsRequireFailsAndPreferFallsBack) {
  auto required = PgConn::Connect(env().ConnString("sslmode=require"));
  ASSERT_FALSE(required.ok());
  EXPECT_THAT(std::string(required.status().message()), HasSubstr("does not support SSL"));

  ASSERT_OK_AND_ASSIGN(PgConn preferred, env().Connect("sslmode=prefer"));
  EXPECT_EQ(PQsslInUse(preferred.get()), 0);
  EXPECT_EQ(Text(preferred.Scalar("select 1")), "1");
}

}  // namespace
}  // namespace shardgate::testing
