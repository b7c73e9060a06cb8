// Shared helpers for the proxy's integration tests: a real PostgreSQL shard with shardgate in
// front, a libpq connection wrapper whose errors carry the server's SQLSTATE, and raw sockets
// for the bytes libpq would never send.
#pragma once

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "protocol/status.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/status_matchers.h"

namespace shardgate::testing {

// The "SQLSTATE" of an error libpq made up itself (connection lost, protocol confusion): the
// server or proxy sent no ErrorResponse, so there is no code to compare with.
inline constexpr char kNoSqlState[] = "(none)";

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// libpq

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

// OK for results that succeeded, else a PgStatus carrying the result's SQLSTATE (kNoSqlState
// when libpq generated the error).
inline absl::Status ResultStatus(const PGresult* res, PGconn* conn = nullptr) {
  if (res == nullptr) {
    return PgStatus(kNoSqlState,
                    absl::StrCat("no result: ", conn != nullptr ? PQerrorMessage(conn) : ""));
  }
  switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_EMPTY_QUERY:
    case PGRES_PIPELINE_SYNC:
      return absl::OkStatus();
    default:
      break;
  }
  const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  return PgStatus(state != nullptr ? state : kNoSqlState,
                  absl::StrCat(PQresStatus(PQresultStatus(res)), ": ", PQresultErrorMessage(res)));
}

// One libpq connection, closed on destruction. Contract: used by one thread at a time.
class PgConn {
 public:
  PgConn() = default;
  explicit PgConn(PGconn* conn) : conn_(conn) {}
  PgConn(PgConn&& o) noexcept : conn_(std::exchange(o.conn_, nullptr)) {}
  PgConn& operator=(PgConn&& o) noexcept {
    if (this != &o) {
      Close();
      conn_ = std::exchange(o.conn_, nullptr);
    }
    return *this;
  }
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;
  ~PgConn() { Close(); }

  // Connects; a failure is kUnavailable with libpq's message (libpq does not expose the
  // SQLSTATE of a failed connection: callers match the text, or use RawStartup below).
  static absl::StatusOr<PgConn> Connect(const std::string& conninfo) {
    PGconn* c = PQconnectdb(conninfo.c_str());
    if (c == nullptr) return absl::UnavailableError("PQconnectdb returned null");
    if (PQstatus(c) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(c);
      PQfinish(c);
      return absl::UnavailableError(absl::StrCat("connect failed: ", msg));
    }
    // Notices ("table does not exist, skipping") would clutter the test log; tests that check
    // notices install their own processor.
    PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
    return PgConn(c);
  }

  PGconn* get() const { return conn_; }
  void Close() {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
  }

  // Simple-protocol query; all rows as text (NULL as "<null>").
  absl::StatusOr<std::vector<std::vector<std::string>>> Rows(const std::string& sql) const {
    PgResult res(PQexec(conn_, sql.c_str()));
    absl::Status st = ResultStatus(res.get(), conn_);
    if (!st.ok()) return st;
    return RowsOf(res.get());
  }
  // First column of the first row ("" when no rows).
  absl::StatusOr<std::string> Scalar(const std::string& sql) const {
    auto rows = Rows(sql);
    if (!rows.ok()) return rows.status();
    if (rows->empty() || rows->front().empty()) return std::string();
    return rows->front().front();
  }
  absl::Status Exec(const std::string& sql) const { return Rows(sql).status(); }

  // Extended protocol with text parameters; first column of the first row.
  absl::StatusOr<std::string> ScalarParams(const std::string& sql,
                                           const std::vector<std::string>& params) const {
    std::vector<const char*> values;
    std::vector<int> lengths;
    for (const auto& p : params) {
      values.push_back(p.data());
      lengths.push_back(static_cast<int>(p.size()));
    }
    PgResult res(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                              values.data(), lengths.data(), nullptr, 0));
    absl::Status st = ResultStatus(res.get(), conn_);
    if (!st.ok()) return st;
    if (PQntuples(res.get()) == 0 || PQnfields(res.get()) == 0) return std::string();
    return std::string(PQgetvalue(res.get(), 0, 0), PQgetlength(res.get(), 0, 0));
  }

  static std::vector<std::vector<std::string>> RowsOf(const PGresult* res) {
    std::vector<std::vector<std::string>> rows;
    for (int r = 0; r < PQntuples(res); ++r) {
      auto& row = rows.emplace_back();
      for (int c = 0; c < PQnfields(res); ++c) {
        row.push_back(PQgetisnull(res, r, c)
                          ? std::string("<null>")
                          : std::string(PQgetvalue(res, r, c), PQgetlength(res, r, c)));
      }
    }
    return rows;
  }

 private:
  PGconn* conn_ = nullptr;
};

// The value, or "ERROR: <status>" so that a failed query shows up in an EXPECT_EQ's message
// instead of aborting the test binary.
inline std::string Text(const absl::StatusOr<std::string>& s) {
  return s.ok() ? *s : absl::StrCat("ERROR: ", s.status().ToString());
}

// A result's cell as text, or a marker when the result has no such cell (PQgetvalue would
// return null).
inline std::string Cell(const PGresult* res, int row, int col) {
  if (res == nullptr || row >= PQntuples(res) || col >= PQnfields(res)) return "<no such cell>";
  return std::string(PQgetvalue(res, row, col), PQgetlength(res, row, col));
}

// Polls `pred` every 20 ms until it is true or `timeout` passes; returns the last answer.
inline bool WaitFor(const std::function<bool()>& pred,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// ---------------------------------------------------------------------------------------------
// A cluster with shardgate in front

struct ProxyEnvOptions {
  int replicas = 0;
  std::string pool_mode = "transaction";
  int pool_size = 0;  // 0 = the fixture's default (20)
  int workers = 0;    // 0 = the fixture's default (2)
  std::string extra_database_yaml;
  std::string extra_top_yaml;
  std::vector<std::string> args;  // shardgate's command line after --config FILE
  int admin_http_port = 0;  // > 0: admin.http (/metrics, /healthz) on this port
};

// The YAML for `cluster` with the options applied. ShardgateYaml fixes pool_size and workers,
// and duplicate YAML keys are errors, so those two are rewritten in the text.
inline std::string ProxyYaml(const PgCluster& cluster, int port, const ProxyEnvOptions& o) {
  std::string yaml = cluster.ShardgateYaml(port, o.pool_mode, o.extra_database_yaml,
                                           o.extra_top_yaml);
  if (o.pool_size > 0) {
    yaml = absl::StrReplaceAll(yaml, {{"pool_size: 20\n", absl::StrCat("pool_size: ", o.pool_size,
                                                                      "\n")}});
  }
  if (o.workers > 0) {
    yaml = absl::StrReplaceAll(yaml, {{"workers: 2\n", absl::StrCat("workers: ", o.workers,
                                                                   "\n")}});
  }
  if (o.admin_http_port > 0) {
    yaml = absl::StrReplaceAll(
        yaml, {{"admin:\n  users: [admin]\n",
                absl::StrCat("admin:\n  users: [admin]\n  http: {host: 127.0.0.1, port: ",
                             o.admin_http_port, "}\n")}});
  }
  return yaml;
}

// The next result of a pipeline, checking the null that ends each query's results.
inline PgResult NextQueryResult(PGconn* conn) {
  PgResult res(PQgetResult(conn));
  if (res != nullptr && PQresultStatus(res.get()) != PGRES_PIPELINE_SYNC) {
    PgResult end(PQgetResult(conn));
    EXPECT_EQ(end, nullptr) << "more than one result for one query";
  }
  return res;
}

// One shard (primary + optional replica) and one shardgate process in front of it.
struct ProxyEnv {
  std::unique_ptr<PgCluster> cluster;
  std::unique_ptr<ShardgateProcess> proxy;

  PgServer& primary() { return *cluster->shard(0).primary; }
  // Through shardgate as app/app_pw unless told otherwise.
  std::string ConnString(const std::string& extra = "", const std::string& user = kScramUser,
                         const std::string& password = kScramPassword,
                         const std::string& dbname = "app") const {
    std::string s = proxy->ConnString(dbname, user, password);
    if (!extra.empty()) absl::StrAppend(&s, " ", extra);
    return s;
  }
  // Straight to the primary, bypassing shardgate, as app.
  std::string DirectConnString() {
    return primary().ConnString("app", kScramUser, kScramPassword);
  }
  absl::StatusOr<PgConn> Connect(const std::string& extra = "") const {
    return PgConn::Connect(ConnString(extra));
  }

  static absl::StatusOr<std::unique_ptr<ProxyEnv>> Start(const ProxyEnvOptions& o = {}) {
    auto env = std::make_unique<ProxyEnv>();
    ASSIGN_OR_RETURN(env->cluster, PgCluster::Start(1, o.replicas));
    RETURN_IF_ERROR(env->StartProxy(o));
    return env;
  }

  // (Re)starts shardgate on a fresh port against the same cluster.
  absl::Status StartProxy(const ProxyEnvOptions& o) {
    proxy.reset();
    const int port = FreePort();
    ASSIGN_OR_RETURN(proxy, ShardgateProcess::Start(ProxyYaml(*cluster, port, o), port));
    return absl::OkStatus();
  }

  // Another shardgate in front of the same cluster (e.g. session mode, a tiny pool, TLS).
  absl::StatusOr<std::unique_ptr<ShardgateProcess>> StartExtraProxy(
      const ProxyEnvOptions& o) const {
    const int port = FreePort();
    return ShardgateProcess::Start(ProxyYaml(*cluster, port, o), port, o.args);
  }

  // True while the shardgate process has not exited (a crash reaps it here: Wait(0) returns
  // its exit code only once it is gone).
  bool ProxyAlive() {
    if (proxy->pid() <= 0) return false;
    auto r = proxy->Wait(0);
    if (r.ok()) exit_code = *r;
    return !r.ok() && r.status().code() == absl::StatusCode::kDeadlineExceeded;
  }
  // How the process ended when ProxyAlive() found it gone (128+N: killed by signal N).
  std::optional<int> exit_code;
  std::string ProxyLogTail(size_t n = 6000) const {
    std::string log = proxy->Log();
    return log.size() <= n ? log : "..." + log.substr(log.size() - n);
  }
};

// Base of a test suite whose tests share one environment (servers + shardgate) of type `Env`,
// started once in SetUpTestSuite from `Derived::Options()` (an `Options`). A test during which
// shardgate died fails with the log's tail, and the next test gets a fresh shardgate on the
// same cluster. `Env` has Start(options), StartProxy(options), ProxyAlive(), ProxyLogTail().
template <typename Derived, typename Env, typename Options>
class EnvSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    options_ = Derived::Options();
    auto env = Env::Start(options_);
    if (env.ok()) {
      env_ = std::move(*env);
    } else {
      start_status_ = env.status();
    }
  }
  static void TearDownTestSuite() { env_.reset(); }

  void SetUp() override {
    ASSERT_NE(env_, nullptr) << "cluster or shardgate did not start: " << start_status_;
    if (env_->proxy == nullptr || !env_->ProxyAlive()) {
      ASSERT_OK(env_->StartProxy(options_));
    }
  }
  void TearDown() override {
    if (env_ == nullptr || env_->proxy == nullptr) return;
    if (!env_->ProxyAlive()) {
      ADD_FAILURE() << "shardgate exited during this test with status "
                    << env_->exit_code.value_or(-1) << " (128+N = signal N); log:\n"
                    << env_->ProxyLogTail();
    } else if (HasFailure()) {
      std::cerr << "---- shardgate log (tail) ----\n" << env_->ProxyLogTail() << "\n";
    }
  }

  static Env& env() { return *env_; }
  // A suite's own set-up step (`what`) failed: every TEST then fails in SetUp with the reason.
  static void FailSetUp(const absl::Status& st, const std::string& what) {
    start_status_ = absl::Status(st.code(), absl::StrCat(what, ": ", st.message()));
    env_.reset();
  }

  static inline std::unique_ptr<Env> env_;
  static inline absl::Status start_status_;
  static inline Options options_;
};

// The single-shard proxy suites: `Derived` may define `static ProxyEnvOptions Options()`.
template <typename Derived>
class ProxySuite : public EnvSuite<Derived, ProxyEnv, ProxyEnvOptions> {
 public:
  static ProxyEnvOptions Options() { return {}; }
};

// A single-shard suite run through two shardgates in front of the one server, each with one
// worker and one server connection, for features whose unsharded and routed paths differ: the
// suite's own, with `Derived::kUnshardedYaml` as the database's YAML and its /metrics on
// `http_port_`, and `routed_`, with `Derived::kRoutedYaml` and `routed_http_port_`.
// `Derived::Tables()`, SQL, is run on the server once both are up.
template <typename Derived>
class ProxyPairSuite : public ProxySuite<Derived> {
  using Base = ProxySuite<Derived>;

 public:
  static ProxyEnvOptions Options() {
    ProxyEnvOptions o;
    o.pool_size = 1;
    o.workers = 1;
    o.extra_database_yaml = Derived::kUnshardedYaml;
    o.admin_http_port = http_port_;
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    Base::SetUpTestSuite();
    if (!Base::start_status_.ok()) return;
    ProxyEnvOptions routed = Derived::Options();
    routed.extra_database_yaml = Derived::kRoutedYaml;
    routed.admin_http_port = routed_http_port_;
    auto proxy = Base::env().StartExtraProxy(routed);
    if (!proxy.ok()) return Base::FailSetUp(proxy.status(), "the routed shardgate");
    routed_ = std::move(*proxy);
    auto direct = PgConn::Connect(Base::env().DirectConnString());
    if (!direct.ok()) return Base::FailSetUp(direct.status(), "connecting to PostgreSQL");
    absl::Status loaded = direct->Exec(Derived::Tables());
    if (!loaded.ok()) Base::FailSetUp(loaded, "loading the tables");
  }
  static void TearDownTestSuite() {
    routed_.reset();
    Base::TearDownTestSuite();
  }
  // Through the routed shardgate, as app/app_pw.
  static std::string RoutedConnString() {
    return routed_->ConnString("app", kScramUser, kScramPassword);
  }

  static inline std::unique_ptr<ShardgateProcess> routed_;
  static inline const int http_port_ = FreePort();
  static inline const int routed_http_port_ = FreePort();
};

// The suite of the query tests (several files share its cluster and shardgate).
class QueryTest : public ProxySuite<QueryTest> {};

// ---------------------------------------------------------------------------------------------
// Raw protocol bytes

inline void PutInt32(std::string& out, uint32_t v) {
  const uint32_t be = htonl(v);
  out.append(reinterpret_cast<const char*>(&be), 4);
}
inline uint32_t GetInt32(std::string_view in, size_t at) {
  uint32_t be = 0;
  std::memcpy(&be, in.data() + at, 4);
  return ntohl(be);
}

// A StartupMessage (protocol 3.0) with the given key/value pairs.
inline std::string StartupPacket(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string body;
  PutInt32(body, 196608);
  for (const auto& [k, v] : params) {
    body.append(k).push_back('\0');
    body.append(v).push_back('\0');
  }
  body.push_back('\0');
  std::string out;
  PutInt32(out, static_cast<uint32_t>(body.size() + 4));
  return out + body;
}

// An 8-byte special request: SSLRequest 80877103, GSSENCRequest 80877104.
inline std::string SpecialRequest(uint32_t code) {
  std::string out;
  PutInt32(out, 8);
  PutInt32(out, code);
  return out;
}

// A blocking loopback TCP socket with bounded reads. Contract: one thread.
class RawSocket {
 public:
  ~RawSocket() {
    if (fd_ >= 0) close(fd_);
  }
  RawSocket() = default;
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  static absl::StatusOr<std::unique_ptr<RawSocket>> Connect(int port) {
    auto s = std::make_unique<RawSocket>();
    s->fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd_ < 0) return absl::InternalError("socket()");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(s->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
    }
    return s;
  }
  // Adopts a descriptor owned by someone else (e.g. PQsocket): not closed here.
  static std::unique_ptr<RawSocket> Borrow(int fd) {
    auto s = std::make_unique<RawSocket>();
    s->fd_ = fd;
    s->borrowed_ = true;
    return s;
  }
  void Release() {
    if (borrowed_) fd_ = -1;
  }

  // Sends everything; false when the peer has gone (EPIPE/ECONNRESET are answers, not bugs).
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return false;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }

  // Appends what arrives to buffer() until `want` bytes are buffered, EOF, or the timeout.
  // Returns false only on timeout.
  bool ReadAtLeast(size_t want, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (buffer_.size() < want && !eof_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                               Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      int r = poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      char chunk[65536];
      ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // EOF, or a reset: both mean the peer closed
        eof_ = true;
        break;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
    return true;
  }
  // Reads until the peer closes; false when it is still open after `timeout`.
  bool ReadToEof(std::chrono::milliseconds timeout) {
    return ReadAtLeast(SIZE_MAX, timeout) && eof_;
  }

  // The next whole backend message (type byte + body), or nullopt on EOF/timeout.
  std::optional<std::pair<char, std::string>> ReadMessage(
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    if (!ReadAtLeast(5, timeout) || buffer_.size() < 5) return std::nullopt;
    const uint32_t len = GetInt32(buffer_, 1);
    if (len < 4 || len > (64u << 20)) return std::nullopt;
    if (!ReadAtLeast(1 + len, timeout) || buffer_.size() < 1 + len) return std::nullopt;
    std::pair<char, std::string> msg{buffer_[0], buffer_.substr(5, len - 4)};
    buffer_.erase(0, 1 + len);
    return msg;
  }

  std::string& buffer() { return buffer_; }
  bool eof() const { return eof_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool borrowed_ = false;
  bool eof_ = false;
  std::string buffer_;
};

// The field `code` ('C' = SQLSTATE, 'M' = message) of an ErrorResponse/NoticeResponse body.
inline std::string ErrorField(std::string_view body, char code) {
  size_t i = 0;
  while (i < body.size() && body[i] != '\0') {
    const char type = body[i++];
    size_t end = body.find('\0', i);
    if (end == std::string_view::npos) break;
    if (type == code) return std::string(body.substr(i, end - i));
    i = end + 1;
  }
  return "";
}

// The ErrorResponses' SQLSTATEs found in raw backend bytes (a sequence of whole messages).
inline std::vector<std::string> SqlStatesIn(std::string_view bytes) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i + 5 <= bytes.size()) {
    const uint32_t len = GetInt32(bytes, i + 1);
    if (len < 4 || i + 1 + len > bytes.size()) break;
    if (bytes[i] == 'E') out.push_back(ErrorField(bytes.substr(i + 5, len - 4), 'C'));
    i += 1 + len;
  }
  return out;
}

// Runs a command through the shell, returning (exit code, stdout+stderr). Test-only: the
// commands are built from paths we made.
inline std::pair<int, std::string> RunShell(const std::string& command) {
  std::string output;
  FILE* f = popen((command + " 2>&1").c_str(), "r");
  if (f == nullptr) return {-1, "popen failed"};
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) output.append(buf, n);
  const int status = pclose(f);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace shardgate::testing
