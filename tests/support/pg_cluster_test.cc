// Integration tests of the real-server fixture: primaries, replicas, auth methods, settings,
// Kill/Restart/Promote, and that nothing (process or data dir) outlives the fixture objects.
#include "tests/support/pg_cluster.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"

namespace shardgate::testing {
namespace {

// True while `pid` exists and is not a zombie.
bool Alive(int pid) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z';
}

// A query's value, or its error text: a failing query fails the comparison, never the binary.
std::string Val(const absl::StatusOr<std::string>& r) {
  return r.ok() ? *r : absl::StrCat("ERROR: ", r.status().message());
}

// Connects with libpq; returns "" on success or the error message.
std::string TryLogin(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  std::string err = PQstatus(conn) == CONNECTION_OK ? "" : PQerrorMessage(conn);
  PQfinish(conn);
  return err;
}

// Polls `server` until `sql` returns `want` (replication is asynchronous), bounded to 30 s.
std::string WaitFor(const PgServer& server, const std::string& sql, const std::string& want,
                    const std::string& dbname = "app") {
  std::string last;
  for (int i = 0; i < 600; ++i) {
    auto r = server.Query(sql, dbname);
    last = r.ok() ? *r : std::string(r.status().message());
    if (last == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

TEST(FreePortTest, NeverTheSamePortTwice) {
  std::set<int> ports;
  for (int i = 0; i < 50; ++i) {
    int p = FreePort();
    ASSERT_GT(p, 0);
    EXPECT_TRUE(ports.insert(p).second) << "port " << p << " handed out twice";
  }
}

// One primary with one replica serves most of the checks: starting servers is the slow part.
class PgClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto c = PgCluster::Start(1, 1);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = c->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (cluster_ == nullptr) GTEST_SKIP() << "cluster did not start";
  }
  static PgServer& primary() { return *cluster_->shard(0).primary; }
  static PgServer& replica() { return *cluster_->shard(0).replicas.at(0); }
  static PgCluster* cluster_;
};
PgCluster* PgClusterTest::cluster_ = nullptr;

TEST_F(PgClusterTest, RowWrittenOnPrimaryIsVisibleOnReplica) {
  ASSERT_TRUE(primary().Query("CREATE TABLE IF NOT EXISTS t(id int primary key, v text)").ok());
  ASSERT_TRUE(primary().Query("INSERT INTO t VALUES (1, 'hello') ON CONFLICT DO NOTHING").ok());
  EXPECT_EQ(WaitFor(replica(), "SELECT v FROM t WHERE id = 1", "hello"), "hello");
  EXPECT_EQ(Val(replica().Query("SELECT pg_is_in_recovery()")), "t");
  EXPECT_EQ(Val(primary().Query("SELECT pg_is_in_recovery()")), "f");
  // The replica refuses writes: it really is a standby, not a copy.
  EXPECT_FALSE(replica().Query("INSERT INTO t VALUES (2, 'x')").ok());
}

TEST_F(PgClusterTest, ServerSettingsAreThoseShardgateNeeds) {
  EXPECT_EQ(Val(primary().Query("SHOW wal_level")), "logical");
  EXPECT_GT(std::atoi(Val(primary().Query("SHOW max_prepared_transactions")).c_str()), 0);
  EXPECT_EQ(Val(primary().Query("SHOW listen_addresses")), "127.0.0.1");
  EXPECT_EQ(Val(replica().Query("SHOW wal_level")), "logical");
  EXPECT_EQ(Val(primary().Query("SHOW port")), std::to_string(primary().port()));
  EXPECT_EQ(Val(replica().Query("SHOW port")), std::to_string(replica().port()));
  EXPECT_NE(primary().port(), replica().port());
}

TEST_F(PgClusterTest, RolesAndDatabaseExist) {
  EXPECT_EQ(
      Val(primary().Query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname='app'")),
      "app");
  EXPECT_EQ(Val(primary().Query("SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname='app'")),
            "SCRAM-SHA-256$");
  EXPECT_EQ(
      Val(primary().Query("SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname='app_md5'")),
      "md5");
}

struct LoginCase {
  const char* name;
  const char* user;
  const char* password;
  bool ok;
};

// Names the case in ctest's test list instead of gtest's byte dump.
void PrintTo(const LoginCase& c, std::ostream* os) { *os << c.name; }

class LoginTest : public PgClusterTest, public ::testing::WithParamInterface<LoginCase> {};

TEST_P(LoginTest, LibpqLogin) {
  const LoginCase& c = GetParam();
  for (PgServer* s : {&primary(), &replica()}) {
    std::string err = TryLogin(s->ConnString("app", c.user, c.password));
    if (c.ok) {
      EXPECT_EQ(err, "") << c.user << " on port " << s->port();
    } else {
      EXPECT_NE(err.find("password authentication failed"), std::string::npos)
          << c.user << " on port " << s->port() << ": " << err;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Auth, LoginTest,
    ::testing::Values(LoginCase{"scram_app", kScramUser, kScramPassword, true},
                      LoginCase{"scram_superuser", kSuperUser, kSuperPassword, true},
                      LoginCase{"md5_app", kMd5User, kMd5Password, true},
                      LoginCase{"scram_wrong_password", kScramUser, "wrong", false},
                      LoginCase{"md5_wrong_password", kMd5User, "wrong", false},
                      LoginCase{"superuser_wrong_password", kSuperUser, "nope", false}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(PgClusterTest, Md5UserReallyUsesMd5) {
  // app_md5's stored password is an md5 hash, which SCRAM cannot use: its successful login
  // (LoginTest) plus this rule prove the md5 hba line is the one applied.
  EXPECT_EQ(Val(primary().Query("SELECT auth_method FROM pg_hba_file_rules "
                                "WHERE 'app_md5' = ANY(user_name) AND type = 'host'")),
            "md5");
}

TEST_F(PgClusterTest, AppUserCanCreateTables) {
  PGconn* conn = PQconnectdb(primary().ConnString("app", kMd5User, kMd5Password).c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* r =
      PQexec(conn, "CREATE TABLE IF NOT EXISTS md5_owned(x int); INSERT INTO md5_owned VALUES (1)");
  EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
}

TEST_F(PgClusterTest, ShardgateYamlNamesEveryServer) {
  std::string y =
      cluster_->ShardgateYaml(7777, "session", "    default_shard: s0\n", "workers_extra: 1");
  EXPECT_NE(y.find("port: 7777"), std::string::npos) << y;
  EXPECT_NE(y.find(absl::StrCat("port: ", primary().port(), ", dbname: app")), std::string::npos)
      << y;
  EXPECT_NE(y.find(absl::StrCat("port: ", replica().port(), ", dbname: app")), std::string::npos)
      << y;
  EXPECT_NE(y.find("name: app_md5, password: md5_pw, pool_mode: session, auth: md5"),
            std::string::npos)
      << y;
  EXPECT_NE(y.find("- name: s0\n"), std::string::npos) << y;
  EXPECT_NE(y.find("    default_shard: s0\nworkers_extra: 1\n"), std::string::npos) << y;
}

// The fixture's daemon side, against the real proxy when it has been built.
TEST_F(PgClusterTest, ShardgateProcessServesLibpqAndDrainsOnSigterm) {
  const char* env = getenv("SHARDGATE_BIN");
  const std::string bin = env != nullptr && *env != '\0' ? env : SHARDGATE_BINARY;
  if (access(bin.c_str(), X_OK) != 0) GTEST_SKIP() << "no shardgate binary at " << bin;
  const int port = FreePort();
  auto proxy = ShardgateProcess::Start(cluster_->ShardgateYaml(port), port);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  PGconn* conn = PQconnectdb((*proxy)->ConnString().c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn) << (*proxy)->Log();
  PGresult* r = PQexec(conn, "SELECT current_user, current_setting('port')");
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
  EXPECT_STREQ(PQgetvalue(r, 0, 0), "app");
  EXPECT_EQ(std::atoi(PQgetvalue(r, 0, 1)), primary().port());  // served by shard s0's primary
  PQclear(r);
  PQfinish(conn);
  const int pid = (*proxy)->pid();
  ASSERT_TRUE((*proxy)->Signal(SIGTERM).ok());
  auto code = (*proxy)->Wait(15000);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*proxy)->Log();
  EXPECT_FALSE(Alive(pid));
}

// Kill, Restart, Promote and the destructors use their own servers so that the shared cluster
// above stays healthy.
TEST(PgServerLifecycleTest, KillRestartPromoteAndCleanTeardown) {
  auto primary = PgServer::StartPrimary("other_db");
  ASSERT_TRUE(primary.ok()) << primary.status();
  PgServer& p = **primary;
  EXPECT_EQ(Val(p.Query("SELECT current_database()", "other_db")), "other_db");
  ASSERT_TRUE(p.Query("CREATE TABLE k(v int); INSERT INTO k VALUES (42)", "other_db").ok());

  auto replica = PgServer::StartReplica(p);
  ASSERT_TRUE(replica.ok()) << replica.status();
  PgServer& r = **replica;
  EXPECT_EQ(WaitFor(r, "SELECT sum(v) FROM k", "42", "other_db"), "42");

  // Kill: the postmaster and its backends are gone at once, no clean shutdown.
  const int old_pid = p.pid();
  ASSERT_GT(old_pid, 0);
  ASSERT_TRUE(p.Kill().ok());
  EXPECT_FALSE(Alive(old_pid));
  EXPECT_EQ(p.pid(), 0);
  EXPECT_FALSE(p.Query("SELECT 1").ok());

  // Restart on the same port and data dir: crash recovery keeps the committed row.
  absl::Status restarted = p.Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_NE(p.pid(), 0);
  EXPECT_EQ(Val(p.Query("SELECT sum(v) FROM k", "other_db")), "42");

  // Stop then Restart (clean path).
  ASSERT_TRUE(p.Stop().ok());
  EXPECT_EQ(p.pid(), 0);
  ASSERT_TRUE(p.Restart().ok());

  // Promote: the replica becomes writable.
  EXPECT_EQ(Val(r.Query("SELECT pg_is_in_recovery()", "other_db")), "t");
  absl::Status promoted = r.Promote();
  ASSERT_TRUE(promoted.ok()) << promoted;
  EXPECT_EQ(WaitFor(r, "SELECT pg_is_in_recovery()", "f", "other_db"), "f");
  EXPECT_TRUE(r.Query("INSERT INTO k VALUES (1)", "other_db").ok());

  // Destructors: no process and no directory left behind.
  const int primary_pid = p.pid(), replica_pid = r.pid();
  const std::string primary_dir = p.data_dir(), replica_dir = r.data_dir();
  ASSERT_GT(primary_pid, 0);
  ASSERT_GT(replica_pid, 0);
  replica->reset();
  primary->reset();
  EXPECT_FALSE(Alive(primary_pid));
  EXPECT_FALSE(Alive(replica_pid));
  EXPECT_FALSE(std::filesystem::exists(primary_dir));
  EXPECT_FALSE(std::filesystem::exists(replica_dir));
}

TEST(PgServerLifecycleTest, DestructorCleansUpAKilledServer) {
  std::string dir;
  {
    auto s = PgServer::StartPrimary();
    ASSERT_TRUE(s.ok()) << s.status();
    dir = (*s)->data_dir();
    ASSERT_TRUE((*s)->Kill().ok());
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(ShardgateProcessTest, MissingBinaryIsAClearError) {
  setenv("SHARDGATE_BIN", "/nonexistent/shardgate", 1);
  auto p = ShardgateProcess::Start("listen: {host: 127.0.0.1, port: 1}\n", FreePort());
  unsetenv("SHARDGATE_BIN");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("/nonexistent/shardgate"), std::string::npos);
}

TEST(ShardgateProcessTest, PortAlreadyListenedOnIsRefused) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  setenv("SHARDGATE_BIN", "/bin/true", 1);
  auto p = ShardgateProcess::Start("listen: {}\n", ntohs(addr.sin_port));
  unsetenv("SHARDGATE_BIN");
  close(fd);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("already in use"), std::string::npos)
      << p.status();
}

// A binary that exits at once stands for a proxy refusing its config: reported early, not
// after the 15 s readiness deadline.
TEST(ShardgateProcessTest, ExitDuringStartupIsReportedWithItsLog) {
  setenv("SHARDGATE_BIN", "/bin/false", 1);
  const auto t0 = std::chrono::steady_clock::now();
  auto p = ShardgateProcess::Start("listen: {}\n", FreePort());
  unsetenv("SHARDGATE_BIN");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("exited during start-up"), std::string::npos)
      << p.status();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

}  // namespace
}  // namespace shardgate::testing
