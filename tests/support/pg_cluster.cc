// Real PostgreSQL 15 servers and shardgate processes for integration tests (see pg_cluster.h).
// Processes are started with fork+execve (no shell), as the `postgres` OS user when we are root.
#include "tests/support/pg_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "protocol/status.h"

extern char** environ;

namespace shardgate::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Who the servers run as: ourselves, or `postgres` when we are root (initdb refuses root).
struct RunAs {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

const RunAs& ServerUser() {
  static const RunAs run_as = [] {
    RunAs r;
    if (geteuid() != 0) return r;
    if (const passwd* pw = getpwnam("postgres"); pw != nullptr) {
      r.drop = true;
      r.uid = pw->pw_uid;
      r.gid = pw->pw_gid;
    }
    return r;
  }();
  return run_as;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status WriteFile(const std::string& path, std::string_view text, bool append = false) {
  std::ofstream out(path, append ? std::ios::app | std::ios::binary : std::ios::binary);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// The last `n` bytes of a log, for error messages that must stay readable.
std::string Tail(const std::string& text, size_t n = 4000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

void ChownToServerUser(const std::string& path) {
  const RunAs& ru = ServerUser();
  if (ru.drop && chown(path.c_str(), ru.uid, ru.gid) != 0) {
    // Reported later by the server that cannot write there; nothing to do here.
  }
}

// True when every directory on the way to `dir` can be traversed by "others" (the postgres
// user when we are root and $TMPDIR is e.g. under /root).
bool TraversableByOthers(const fs::path& dir) {
  for (fs::path p = fs::absolute(dir); !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
    if (p == p.parent_path()) break;
  }
  return true;
}

absl::StatusOr<std::string> MakeTempRoot(const std::string& prefix, bool for_server) {
  std::string base = "/tmp";
  if (const char* t = getenv("TMPDIR"); t != nullptr && *t != '\0') base = t;
  // Unix socket paths are limited to 107 bytes; keep the root short and reachable.
  if (base.size() > 60 || (for_server && ServerUser().drop && !TraversableByOthers(base))) {
    base = "/tmp";
  }
  std::string templ = absl::StrCat(base, "/", prefix, "XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", templ, ": ", strerror(errno)));
  }
  if (for_server) ChownToServerUser(templ);
  return templ;
}

bool PidAlive(int pid) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  // A killed process whose parent has not reaped it yet is a zombie: dead for our purposes.
  std::string stat = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
  size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z';
}

// Pids whose parent is `pid` (postgres backends are the postmaster's children).
std::vector<int> ChildrenOf(int pid) {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = ReadFileOrEmpty(entry.path().string() + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 4 >= stat.size()) continue;
    // After ") S " comes the ppid.
    if (std::atoi(stat.c_str() + close + 4) == pid) out.push_back(std::atoi(name.c_str()));
  }
  return out;
}

bool WaitPidsGone(const std::vector<int>& pids, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    bool any = false;
    for (int p : pids) any = any || PidAlive(p);
    if (!any) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Runs argv to completion (no shell), stdout+stderr appended to `log_path`, as the server user
// when `as_server_user`. Fails with the log's tail when the command fails or runs too long.
absl::Status RunCommand(const std::vector<std::string>& argv, const std::string& log_path,
                        bool as_server_user, const std::string& cwd,
                        const std::vector<std::string>& extra_env = {}, int timeout_ms = 120000) {
  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed (other test threads may hold malloc's lock).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings = extra_env;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const RunAs ru = as_server_user ? ServerUser() : RunAs{};

  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int devnull = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (devnull >= 0) dup2(devnull, 0);
    if (ru.drop) {
      if (setgroups(0, nullptr) != 0 || setgid(ru.gid) != 0 || setuid(ru.uid) != 0) _exit(126);
    }
    if (chdir(cwd.c_str()) != 0) _exit(126);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR)
      return absl::InternalError(absl::StrCat("waitpid: ", strerror(errno)));
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return absl::DeadlineExceededError(
          absl::StrCat(absl::StrJoin(argv, " "), " timed out:\n", Tail(ReadFileOrEmpty(log_path))));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(absl::StrJoin(argv, " "), " failed (status ", status,
                                          "):\n", Tail(ReadFileOrEmpty(log_path))));
}

// Settings every server gets; speed over durability since these are throw-away test servers.
constexpr char kServerConf[] = R"(
# --- added by the shardgate test fixture ---
listen_addresses = '127.0.0.1'
wal_level = logical
max_prepared_transactions = 20
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 200
dynamic_shared_memory_type = posix
log_min_messages = warning
log_line_prefix = '%m [%p] %u@%d '
)";

constexpr char kHba[] = R"(# shardgate test fixture
local all         all                    trust
local replication all                    trust
host  all         app_md5  127.0.0.1/32  md5
host  all         all      127.0.0.1/32  scram-sha-256
host  replication postgres 127.0.0.1/32  scram-sha-256
)";

// Port settings go last so that they win over anything copied from a primary.
std::string PortConf(int port, const std::string& socket_dir) {
  return absl::StrCat("port = ", port, "\nunix_socket_directories = '", socket_dir, "'\n");
}

bool LooksLikePortClash(const std::string& log) {
  return absl::StrContains(log, "could not bind") ||
         absl::StrContains(log, "Address already in use") ||
         absl::StrContains(log, "could not create any TCP/IP sockets");
}

// Binds 127.0.0.1:`port` (0 = any) and closes again: the port bound, or -1. With `reuse`
// (SO_REUSEADDR, as servers set it) only a listener makes it fail, not TIME_WAIT leftovers.
int TryBindLoopback(int port, bool reuse = false) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int result = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      result = ntohs(addr.sin_port);
    }
  }
  close(fd);
  return result;
}

}  // namespace

int FreePort() {
  // ctest runs several test binaries at once, each with this static set: the pid-based start
  // keeps processes apart, the set keeps one process from handing out a port twice, and the
  // bind proves the port is free right now. The range stays below the kernel's ephemeral range
  // (32768+) so an outgoing connection cannot grab the port before the server binds it.
  static std::mutex mu;
  static std::set<int> handed_out;
  static int next = 15000 + static_cast<int>((getpid() * 631L) % 16000);
  std::lock_guard<std::mutex> lock(mu);
  for (int i = 0; i < 2000; ++i) {
    int candidate = next;
    next = next + 1 >= 31000 ? 15000 : next + 1;
    if (handed_out.count(candidate) != 0) continue;
    if (TryBindLoopback(candidate) == candidate) {
      handed_out.insert(candidate);
      return candidate;
    }
  }
  for (int i = 0; i < 100; ++i) {  // fallback: let the kernel choose
    int port = TryBindLoopback(0);
    if (port > 0 && handed_out.insert(port).second) return port;
  }
  return 0;
}

std::string PgBinDir() {
  if (const char* b = getenv("PG_BIN"); b != nullptr && *b != '\0') return b;
  return "/usr/lib/postgresql/15/bin";
}

// ---------------------------------------------------------------------------------------------
// PgServer

namespace {

absl::Status StartPostmaster(const std::string& data_dir, const std::string& temp_root) {
  return RunCommand({PgBinDir() + "/pg_ctl", "-D", data_dir, "-w", "-t", "60", "-l",
                     temp_root + "/postgres.log", "start"},
                    temp_root + "/commands.log", /*as_server_user=*/true, temp_root);
}

}  // namespace

PgServer::~PgServer() {
  if (!temp_root_.empty()) {
    if (frozen_) (void)Thaw();  // a stopped postmaster would not stop
    if (pid() != 0) {
      // Immediate: the data dir is deleted next, a clean checkpoint is wasted time.
      (void)RunCommand(
          {PgBinDir() + "/pg_ctl", "-D", data_dir_, "-m", "immediate", "-w", "-t", "20", "stop"},
          temp_root_ + "/commands.log", true, temp_root_, {}, 30000);
      if (pid() != 0) (void)Kill();
    }
    std::error_code ec;
    fs::remove_all(temp_root_, ec);
  }
}

int PgServer::pid() const {
  if (data_dir_.empty()) return 0;
  std::string text = ReadFileOrEmpty(data_dir_ + "/postmaster.pid");
  int pid = std::atoi(text.c_str());
  return PidAlive(pid) ? pid : 0;
}

std::string PgServer::ConnString(const std::string& dbname, const std::string& user,
                                 const std::string& password) const {
  return absl::StrCat("host=", host_, " port=", port_, " dbname=", dbname, " user=", user,
                      " password=", password, " connect_timeout=5");
}

absl::StatusOr<std::string> PgServer::Query(const std::string& sql,
                                            const std::string& dbname) const {
  PGconn* conn = PQconnectdb(ConnString(dbname).c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("connect to port ", port_, ": ", msg));
  }
  PGresult* res = PQexec(conn, sql.c_str());
  absl::StatusOr<std::string> out;
  const ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
    out = (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0)
              ? std::string(PQgetvalue(res, 0, 0))
              : std::string();
  } else {
    const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    out = absl::UnknownError(
        absl::StrCat(state != nullptr ? state : "?????", ": ", PQresultErrorMessage(res)));
  }
  PQclear(res);
  PQfinish(conn);
  return out;
}

namespace {

// initdb into data_dir. initdb costs ~1.3 s of CPU, and a test run starts many primaries, all
// with the same superuser, password and settings: the first primary of a run makes a template
// data dir under $TMPDIR (a dir per run under tools/test.sh, removed with it), the others copy
// it (~0.1 s). A file lock serializes the test processes making it; a template without its
// "done" mark (its maker died) is made again. Without $TMPDIR every primary runs initdb, as
// nothing would remove a template from /tmp.
absl::Status InitDataDir(const std::string& data_dir, const std::string& temp_root) {
  const std::string log = temp_root + "/commands.log";
  auto initdb = [&](const std::string& dir, const std::string& in) -> absl::Status {
    const std::string pwfile = in + "/pwfile";
    RETURN_IF_ERROR(WriteFile(pwfile, absl::StrCat(kSuperPassword, "\n")));
    ChownToServerUser(pwfile);
    return RunCommand({PgBinDir() + "/initdb", "-D", dir, "-U", kSuperUser, "--pwfile", pwfile,
                       "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                       "--locale=C", "--no-sync", "--no-instructions"},
                      log, true, in);
  };
  const char* tmp = getenv("TMPDIR");
  if (tmp == nullptr || *tmp == '\0' || fs::path(temp_root).parent_path() != fs::path(tmp)) {
    return initdb(data_dir, temp_root);
  }
  // Named after the binaries' dir too: a template from another PostgreSQL is never copied.
  const std::string templ = absl::StrCat(tmp, "/sg-initdb-template-",
                                         absl::Hex(std::hash<std::string>{}(PgBinDir())));
  const int lock = open((templ + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (lock < 0) return initdb(data_dir, temp_root);
  absl::Status made = absl::OkStatus();
  if (flock(lock, LOCK_EX) == 0) {
    if (!fs::exists(templ + "/done")) {
      std::error_code ec;
      fs::remove_all(templ, ec);
      fs::create_directory(templ, ec);
      ChownToServerUser(templ);
      made = initdb(templ + "/data", templ);
      if (made.ok()) made = WriteFile(templ + "/done", "");
    }
    flock(lock, LOCK_UN);
  } else {
    made = absl::InternalError(absl::StrCat("flock ", templ, ".lock: ", strerror(errno)));
  }
  close(lock);
  if (!made.ok()) return made;
  // cp -a as the server user: the copy is the server's, mode 0700 like initdb's.
  return RunCommand({"/bin/cp", "-a", templ + "/data", data_dir}, log, true, temp_root);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgServer>> PgServer::StartPrimary(const std::string& dbname,
                                                                 const ServerOptions& options) {
  std::unique_ptr<PgServer> s(new PgServer());
  ASSIGN_OR_RETURN(s->temp_root_, MakeTempRoot("sg-pg-", /*for_server=*/true));
  s->data_dir_ = s->temp_root_ + "/data";
  RETURN_IF_ERROR(InitDataDir(s->data_dir_, s->temp_root_));
  std::string conf = kServerConf;
  for (const auto& line : options.extra_conf) absl::StrAppend(&conf, line, "\n");
  RETURN_IF_ERROR(WriteFile(s->data_dir_ + "/postgresql.conf", conf, /*append=*/true));
  RETURN_IF_ERROR(WriteFile(s->data_dir_ + "/pg_hba.conf", kHba));
  if (!options.ssl_cert_pem.empty() && !options.ssl_key_pem.empty()) {
    // postgres refuses a key that others can read, or that its user does not own.
    for (const auto& [name, pem] : {std::pair{"server.crt", &options.ssl_cert_pem},
                                    std::pair{"server.key", &options.ssl_key_pem}}) {
      const std::string path = s->data_dir_ + "/" + name;
      RETURN_IF_ERROR(WriteFile(path, *pem));
      if (chmod(path.c_str(), 0600) != 0) {
        return absl::InternalError(absl::StrCat("chmod ", path, ": ", strerror(errno)));
      }
      ChownToServerUser(path);
    }
    RETURN_IF_ERROR(WriteFile(s->data_dir_ + "/postgresql.conf",
                              "ssl = on\nssl_cert_file = 'server.crt'\n"
                              "ssl_key_file = 'server.key'\n",
                              /*append=*/true));
  }

  absl::Status started;
  for (int attempt = 0; attempt < 4; ++attempt) {
    s->port_ = FreePort();
    RETURN_IF_ERROR(WriteFile(s->data_dir_ + "/postgresql.conf", PortConf(s->port_, s->temp_root_),
                              /*append=*/true));
    started = StartPostmaster(s->data_dir_, s->temp_root_);
    if (started.ok()) break;
    if (!LooksLikePortClash(ReadFileOrEmpty(s->temp_root_ + "/postgres.log"))) break;
  }
  if (!started.ok()) {
    return absl::Status(started.code(),
                        absl::StrCat(started.message(), "\nserver log:\n",
                                     Tail(ReadFileOrEmpty(s->temp_root_ + "/postgres.log"))));
  }
  s->running_ = true;

  auto exec = [&](const std::string& sql, const std::string& db) -> absl::Status {
    auto r = s->Query(sql, db);
    return r.ok() ? absl::OkStatus() : r.status();
  };
  RETURN_IF_ERROR(exec(
      absl::StrCat("CREATE ROLE ", kScramUser, " LOGIN CREATEDB PASSWORD '", kScramPassword, "'"),
      "postgres"));
  // One simple-query string runs in one session, so the SET applies to the CREATE ROLE.
  RETURN_IF_ERROR(exec(absl::StrCat("SET password_encryption = 'md5'; CREATE ROLE ", kMd5User,
                                    " LOGIN PASSWORD '", kMd5Password, "'"),
                       "postgres"));
  if (dbname != "postgres") {
    RETURN_IF_ERROR(
        exec(absl::StrCat("CREATE DATABASE \"", dbname, "\" OWNER ", kScramUser), "postgres"));
  }
  RETURN_IF_ERROR(
      exec(absl::StrCat("GRANT ALL ON SCHEMA public TO ", kScramUser, ", ", kMd5User), dbname));
  return s;
}

TestCa::~TestCa() {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

absl::Status TestCa::Openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/openssl"};
  if (!fs::exists(argv[0])) {
    return absl::FailedPreconditionError(
        "/usr/bin/openssl not found (Debian package openssl, see tools/install_deps.sh)");
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, dir_ + "/openssl.log", /*as_server_user=*/false, dir_, {}, 30000);
}

absl::StatusOr<std::unique_ptr<TestCa>> TestCa::Create(const std::string& name) {
  std::unique_ptr<TestCa> ca(new TestCa());
  ASSIGN_OR_RETURN(ca->dir_, MakeTempRoot("sg-ca-", /*for_server=*/false));
  ca->cert_path_ = ca->dir_ + "/ca.crt";
  RETURN_IF_ERROR(ca->Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt",
                               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
                               "-out", "ca.crt", "-days", "2", "-subj", "/CN=" + name}));
  return ca;
}

absl::StatusOr<TestCa::Issued> TestCa::Issue(const std::string& common_name,
                                             const std::string& san) {
  const std::string base = absl::StrCat("server", ++issued_);
  std::string ext = "basicConstraints=CA:FALSE\n";
  if (!san.empty()) absl::StrAppend(&ext, "subjectAltName=", san, "\n");
  RETURN_IF_ERROR(WriteFile(dir_ + "/" + base + ".ext", ext));
  RETURN_IF_ERROR(Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt",
                           "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", base + ".key",
                           "-out", base + ".csr", "-subj", "/CN=" + common_name}));
  RETURN_IF_ERROR(Openssl({"x509", "-req", "-in", base + ".csr", "-CA", "ca.crt", "-CAkey",
                           "ca.key", "-CAcreateserial", "-days", "2", "-out", base + ".crt",
                           "-extfile", base + ".ext"}));
  Issued issued{ReadFileOrEmpty(dir_ + "/" + base + ".crt"),
                ReadFileOrEmpty(dir_ + "/" + base + ".key")};
  if (issued.cert_pem.empty() || issued.key_pem.empty()) {
    return absl::InternalError("openssl wrote no certificate or key in " + dir_);
  }
  return issued;
}

absl::StatusOr<std::unique_ptr<PgServer>> PgServer::StartReplica(const PgServer& primary) {
  std::unique_ptr<PgServer> s(new PgServer());
  ASSIGN_OR_RETURN(s->temp_root_, MakeTempRoot("sg-pg-", /*for_server=*/true));
  s->data_dir_ = s->temp_root_ + "/data";
  const std::string log = s->temp_root_ + "/commands.log";
  // -R writes standby.signal and primary_conninfo (with the password libpq used).
  RETURN_IF_ERROR(RunCommand(
      {PgBinDir() + "/pg_basebackup", "-h", primary.host(), "-p", std::to_string(primary.port()),
       "-U", kSuperUser, "-D", s->data_dir_, "-R", "-X", "stream", "-c", "fast", "--no-sync"},
      log, true, s->temp_root_, {absl::StrCat("PGPASSWORD=", kSuperPassword)}));

  absl::Status started;
  for (int attempt = 0; attempt < 4; ++attempt) {
    s->port_ = FreePort();
    // cluster_name becomes the walreceiver's application_name: how we find it on the primary.
    RETURN_IF_ERROR(WriteFile(s->data_dir_ + "/postgresql.conf",
                              absl::StrCat(PortConf(s->port_, s->temp_root_),
                                           "cluster_name = 'replica_", s->port_, "'\n"),
                              /*append=*/true));
    started = StartPostmaster(s->data_dir_, s->temp_root_);
    if (started.ok()) break;
    if (!LooksLikePortClash(ReadFileOrEmpty(s->temp_root_ + "/postgres.log"))) break;
  }
  if (!started.ok()) {
    return absl::Status(started.code(),
                        absl::StrCat(started.message(), "\nserver log:\n",
                                     Tail(ReadFileOrEmpty(s->temp_root_ + "/postgres.log"))));
  }
  s->running_ = true;

  const std::string probe = absl::StrCat(
      "SELECT state FROM pg_stat_replication WHERE application_name = 'replica_", s->port_, "'");
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (true) {
    auto state = primary.Query(probe, "postgres");
    if (state.ok() && *state == "streaming") break;
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("replica on port ", s->port_, " did not start streaming; replica log:\n",
                       Tail(ReadFileOrEmpty(s->temp_root_ + "/postgres.log"))));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return s;
}

absl::Status PgServer::Stop() {
  RETURN_IF_ERROR(
      RunCommand({PgBinDir() + "/pg_ctl", "-D", data_dir_, "-m", "fast", "-w", "-t", "60", "stop"},
                 temp_root_ + "/commands.log", true, temp_root_));
  running_ = false;
  return absl::OkStatus();
}

absl::Status PgServer::Restart() {
  if (pid() != 0) return absl::FailedPreconditionError("server is still running");
  // After Kill the postmaster may linger as a zombie until init reaps it (slowly, in some
  // containers); postgres would take the zombie's pid for a live postmaster, so the stale lock
  // files go (pid() said: dead or zombie).
  std::error_code ec;
  fs::remove(data_dir_ + "/postmaster.pid", ec);
  fs::remove(absl::StrCat(temp_root_, "/.s.PGSQL.", port_, ".lock"), ec);
  absl::Status st = StartPostmaster(data_dir_, temp_root_);
  if (!st.ok()) {
    return absl::Status(st.code(),
                        absl::StrCat(st.message(), "\nserver log:\n",
                                     Tail(ReadFileOrEmpty(temp_root_ + "/postgres.log"))));
  }
  running_ = true;
  return absl::OkStatus();
}

absl::Status PgServer::Kill() {
  const int pm = pid();
  if (pm == 0) return absl::FailedPreconditionError("server is not running");
  // Children first collected, then the postmaster killed so it cannot fork new ones, then the
  // children: a restart refuses to start while old backends still hold the shared memory.
  std::vector<int> victims = ChildrenOf(pm);
  kill(pm, SIGKILL);
  if (getpgid(pm) == pm) kill(-pm, SIGKILL);
  for (int c : victims) kill(c, SIGKILL);
  for (int c : ChildrenOf(pm)) {  // forked in the meantime
    kill(c, SIGKILL);
    victims.push_back(c);
  }
  victims.push_back(pm);
  running_ = false;
  if (!WaitPidsGone(victims, 10000)) {
    return absl::InternalError(absl::StrCat("postgres pid ", pm, " survived SIGKILL"));
  }
  return absl::OkStatus();
}

absl::Status PgServer::Freeze() { return SignalAll(SIGSTOP); }

absl::Status PgServer::Thaw() { return SignalAll(SIGCONT); }

absl::Status PgServer::SignalAll(int sig) {
  const int pm = pid();
  if (pm == 0) return absl::FailedPreconditionError("server is not running");
  // The postmaster first (it forks no new child while stopped), then every child.
  if (kill(pm, sig) != 0) return absl::ErrnoToStatus(errno, "kill postmaster");
  for (int c : ChildrenOf(pm)) kill(c, sig);
  frozen_ = sig == SIGSTOP;
  return absl::OkStatus();
}

absl::Status PgServer::Promote() {
  return RunCommand({PgBinDir() + "/pg_ctl", "-D", data_dir_, "-w", "-t", "60", "promote"},
                    temp_root_ + "/commands.log", true, temp_root_);
}

// ---------------------------------------------------------------------------------------------
// PgCluster

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start(int shards, int replicas_per_shard,
                                                            const std::string& dbname) {
  if (shards < 1 || shards > 16 || replicas_per_shard < 0 || replicas_per_shard > 4) {
    return absl::InvalidArgumentError("PgCluster: 1-16 shards, 0-4 replicas per shard");
  }
  auto cluster = std::unique_ptr<PgCluster>(new PgCluster());
  cluster->dbname_ = dbname;
  cluster->shards_.resize(shards);
  std::vector<absl::Status> results(shards);
  // Shards start in parallel (initdb dominates); each thread fills only its own slot.
  std::vector<std::thread> threads;
  for (int i = 0; i < shards; ++i) {
    threads.emplace_back([&, i] {
      auto primary = PgServer::StartPrimary(dbname);
      if (!primary.ok()) {
        results[i] = primary.status();
        return;
      }
      cluster->shards_[i].primary = std::move(*primary);
      for (int r = 0; r < replicas_per_shard; ++r) {
        auto replica = PgServer::StartReplica(*cluster->shards_[i].primary);
        if (!replica.ok()) {
          results[i] = replica.status();
          return;
        }
        cluster->shards_[i].replicas.push_back(std::move(*replica));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < shards; ++i) {
    if (!results[i].ok()) {
      return absl::Status(results[i].code(),
                          absl::StrCat("shard s", i, ": ", results[i].message()));
    }
  }
  return cluster;
}

std::string PgCluster::ShardgateYaml(int listen_port, const std::string& pool_mode,
                                     const std::string& extra_database_yaml,
                                     const std::string& extra_top_yaml) const {
  std::string y = absl::StrCat("listen: {host: 127.0.0.1, port: ", listen_port, "}\n",
                               "workers: 2\n", "admin:\n  users: [admin]\n", "users:\n");
  auto user = [&](const char* name, const char* password, const char* extra) {
    absl::StrAppend(&y, "  - {name: ", name, ", password: ", password, ", pool_mode: ", pool_mode,
                    extra, "}\n");
  };
  user(kSuperUser, kSuperPassword, "");
  user(kScramUser, kScramPassword, "");
  user(kMd5User, kMd5Password, ", auth: md5");
  user("admin", "admin", "");
  absl::StrAppend(&y, "databases:\n  ", dbname_, ":\n    pool_size: 20\n    shards:\n");
  for (size_t i = 0; i < shards_.size(); ++i) {
    const ShardServers& s = shards_[i];
    absl::StrAppend(&y, "      - name: s", i, "\n");
    if (s.primary) {
      absl::StrAppend(&y, "        primary: {host: ", s.primary->host(),
                      ", port: ", s.primary->port(), ", dbname: ", dbname_, "}\n");
    }
    if (!s.replicas.empty()) {
      absl::StrAppend(&y, "        replicas:\n");
      for (const auto& r : s.replicas) {
        absl::StrAppend(&y, "          - {host: ", r->host(), ", port: ", r->port(),
                        ", dbname: ", dbname_, "}\n");
      }
    }
  }
  if (!extra_database_yaml.empty()) {
    absl::StrAppend(&y, extra_database_yaml);
    if (extra_database_yaml.back() != '\n') y += '\n';
  }
  if (!extra_top_yaml.empty()) {
    absl::StrAppend(&y, extra_top_yaml);
    if (extra_top_yaml.back() != '\n') y += '\n';
  }
  return y;
}

// ---------------------------------------------------------------------------------------------
// ShardgateProcess

ShardgateProcess::~ShardgateProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    if (!Wait(10000).ok() && pid_ > 0) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = 0;
    }
  }
  // In a sanitizer build the daemon reports into its log, which is deleted below: a report there
  // (a leak at exit included) fails the test that ran the daemon.
  if (!log_path_.empty()) {
    const std::string log = Log();
    for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                               "WARNING: ThreadSanitizer"}) {
      if (const size_t at = log.find(marker); at != std::string::npos) {
        const size_t from = log.rfind('\n', at);  // the start of the report's line
        ADD_FAILURE() << "sanitizer report in the shardgate log:\n"
                      << log.substr(from == std::string::npos ? 0 : from + 1, 16000);
        break;
      }
    }
  }
  if (!temp_root_.empty()) {
    std::error_code ec;
    fs::remove_all(temp_root_, ec);
  }
}

absl::StatusOr<std::unique_ptr<ShardgateProcess>> ShardgateProcess::Start(
    const std::string& yaml, int port, const std::vector<std::string>& extra_args) {
  std::string binary = SHARDGATE_BINARY;
  if (const char* b = getenv("SHARDGATE_BIN"); b != nullptr && *b != '\0') binary = b;
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no shardgate binary at ", binary, " (build it or set $SHARDGATE_BIN)"));
  }
  // Someone else listening there would pass the readiness probe below for our process.
  if (TryBindLoopback(port, /*reuse=*/true) != port) {
    return absl::FailedPreconditionError(absl::StrCat("port ", port, " is already in use"));
  }
  std::unique_ptr<ShardgateProcess> p(new ShardgateProcess());
  ASSIGN_OR_RETURN(p->temp_root_, MakeTempRoot("sg-proxy-", /*for_server=*/false));
  p->port_ = port;
  p->config_path_ = p->temp_root_ + "/shardgate.yaml";
  p->log_path_ = p->temp_root_ + "/shardgate.log";
  RETURN_IF_ERROR(WriteFile(p->config_path_, yaml));

  std::vector<std::string> argv = {binary, "--config", p->config_path_};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const std::string log_path = p->log_path_;
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    setpgid(0, 0);  // its own group, so a leftover child of it can be killed with it
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int devnull = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (devnull >= 0) dup2(devnull, 0);
    execv(args[0], args.data());
    _exit(127);
  }
  p->pid_ = pid;

  const auto deadline = Clock::now() + std::chrono::seconds(15);
  while (true) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      p->pid_ = 0;
      return absl::InternalError(absl::StrCat("shardgate exited during start-up (status ", status,
                                              "):\n", Tail(p->Log())));
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool up = fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (fd >= 0) close(fd);
    if (up) return p;
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("shardgate did not accept on port ", port,
                                                      " within 15 s:\n", Tail(p->Log())));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string ShardgateProcess::ConnString(const std::string& dbname, const std::string& user,
                                         const std::string& password) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " dbname=", dbname, " user=", user,
                      " password=", password, " connect_timeout=5");
}

absl::Status ShardgateProcess::Signal(int signo) {
  if (pid_ <= 0) return absl::FailedPreconditionError("shardgate is not running");
  if (kill(pid_, signo) != 0) return absl::InternalError(absl::StrCat("kill: ", strerror(errno)));
  return absl::OkStatus();
}

absl::StatusOr<int> ShardgateProcess::Wait(int timeout_ms) {
  if (pid_ <= 0) return absl::FailedPreconditionError("shardgate is not running (already waited)");
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = 0;  // reaped: the pid may be reused, never signal it again
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return status;
    }
    if (r < 0 && errno != EINTR)
      return absl::InternalError(absl::StrCat("waitpid: ", strerror(errno)));
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("shardgate still running after ", timeout_ms, " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string ShardgateProcess::Log() const { return ReadFileOrEmpty(log_path_); }

}  // namespace shardgate::testing
