// One connection from the proxy to a PostgreSQL server: TCP connect, TLS when `server_tls:`
// asks for it, startup and password authentication (SCRAM-SHA-256, md5, cleartext, trust), and
// the state the proxy tracks on it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxy/buffer.h"
#include "proxy/io.h"
#include "proxy/server_stream.h"
#include "proxy/server_tls.h"

namespace shardgate::proxy {

using tcp = asio::ip::tcp;

// Where and as whom to log in. Also the pool key (see Pool).
struct BackendTarget {
  std::string shard;  // shard name, for error messages
  std::string database;  // the logical database it serves (SHOW POOLS); not part of Key()
  std::string host;
  int port = 5432;
  std::string dbname;
  std::string user;
  std::string password;
  std::string Key() const;  // "user@host:port/dbname"
  void AppendKey(std::string& out) const;  // Key() appended to `out`
};

class ServerConnection;

// A session whose read was sent on a busy connection behind its holder's (databases.<db>.
// pipeline_reads, Pool::Follow). It lives in the waiting session's frame and unlinks itself if
// that frame goes first.
using FollowerHook =
    boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;
struct Follower : FollowerHook {
  explicit Follower(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  std::unique_ptr<ServerConnection> conn;  // handed over once the reads ahead are answered
};

// Contract: owned by one pool or one session at a time, used from one thread. The session
// returns it to its pool only when `Idle()`; anything else closes it, except that a connection
// with followers goes to the first of them (Pool::Release).
class ServerConnection {
 public:
  // Connects, negotiates TLS per `tls` (null: plain TCP) and logs in within `timeout`. Errors:
  // 08001 (unreachable, or TLS refused or failed: naming the shard and the reason) or the
  // server's own ErrorResponse (e.g. 28P01, 3D000) passed through.
  static asio::awaitable<absl::StatusOr<std::unique_ptr<ServerConnection>>> Connect(
      const BackendTarget& target, std::chrono::milliseconds timeout,
      std::shared_ptr<const ServerTls> tls = nullptr);

  // All reads and writes go through the stream (plain or TLS).
  ServerStream& stream() { return stream_; }
  // The TCP socket under the stream: cancel/close it to bound an operation (a pending TLS
  // operation fails too), peek at it, read its fd.
  tcp::socket& socket() { return stream_.socket(); }
  bool tls() const { return stream_.IsTls(); }
  // Runtime::server_tls_version() when the pool opened it (see Pool).
  uint64_t tls_version() const { return tls_version_; }
  void set_tls_version(uint64_t v) { tls_version_ = v; }
  ReadBuffer& in() { return in_; }
  const BackendTarget& target() const { return target_; }
  int32_t pid() const { return pid_; }
  int32_t secret() const { return secret_; }
  // ParameterStatus values the server reported at startup and since (server_version, ...).
  std::map<std::string, std::string, std::less<>>& parameters() { return parameters_; }

  // The statements the proxy prepared on this server ("sg_<hash>"), each with when it was last
  // used, so that the least recently used one can be closed to make room
  // (databases.<db>.max_prepared_statements).
  // True when `name` is prepared here; it then counts as just used.
  bool UsePrepared(absl::string_view name) {
    auto it = prepared_.find(name);
    if (it == prepared_.end()) return false;
    it->second = ++prepared_clock_;
    return true;
  }
  // `oldest`: as if never used since (a statement whose Close the server skipped).
  void AddPrepared(absl::string_view name, bool oldest = false) {
    prepared_.insert_or_assign(std::string(name), oldest ? 0 : ++prepared_clock_);
  }
  void ForgetPrepared(absl::string_view name) {
    if (auto it = prepared_.find(name); it != prepared_.end()) prepared_.erase(it);
  }
  void ClearPrepared() { prepared_.clear(); }
  size_t prepared_count() const { return prepared_.size(); }
  // Removes the least recently used statement from the set and returns its name (the caller
  // closes it on the server); empty when there is none.
  std::string EvictPrepared();
  // Session settings applied on this server beyond its startup defaults (name -> value text).
  std::map<std::string, std::string, std::less<>>& settings() { return settings_; }

  char tx_status() const { return tx_status_; }
  void set_tx_status(char s) { tx_status_ = s; }
  bool broken() const { return broken_; }
  void MarkBroken() { broken_ = true; }
  // Broken with its answers unread or cut off: what followers sent on it will never be
  // answered to them (Pool::Release sends them elsewhere).
  bool lost() const { return lost_; }
  void MarkLost() { broken_ = lost_ = true; }

  // Read pipelining (Pool::Follow). A lane: the holder sent one read alone and will send
  // nothing more, so other sessions' reads may be sent behind it, each answered in turn.
  // Linked into its pool's lanes while it is one.
  bool lane() const { return lane_hook.is_linked(); }
  boost::intrusive::list_member_hook<
      boost::intrusive::link_mode<boost::intrusive::auto_unlink>>
      lane_hook;
  using Followers = boost::intrusive::list<Follower, boost::intrusive::constant_time_size<false>>;
  Followers& followers() { return followers_; }
  bool has_followers() const { return !followers_.empty(); }
  int following() const { return static_cast<int>(followers_.size()); }  // a few: counted
  bool Idle() const { return !broken_ && tx_status_ == 'I' && in_.Empty(); }
  Clock::time_point last_used() const { return last_used_; }
  void Touch() { last_used_ = Clock::now(); }

  // Sends "DISCARD ALL" and waits for ReadyForQuery (session pooling release). On failure the
  // connection is marked broken.
  asio::awaitable<absl::Status> Reset(std::chrono::milliseconds timeout);

  // Runs one simple-protocol statement and returns the first row's values (empty when there
  // are no rows); the server's error as a status. For health checks, not for client traffic.
  // NotificationResponses read meanwhile (LISTEN) go to `on_notify` (channel, payload).
  using NotifyFn = std::function<void(std::string_view channel, std::string_view payload)>;
  asio::awaitable<absl::StatusOr<std::vector<std::optional<std::string>>>> SimpleQuery(
      std::string_view sql, const NotifyFn& on_notify = {});

  void Close();
  // A connection dropped with followers (not through Pool::Release, which hands it on) wakes
  // them with nothing: each runs its read elsewhere.
  ~ServerConnection();

 private:
  explicit ServerConnection(tcp::socket socket, BackendTarget target,
                            std::shared_ptr<const ServerTls> tls)
      : stream_(std::move(socket)), target_(std::move(target)), tls_config_(std::move(tls)) {}
  asio::awaitable<absl::Status> Login();
  asio::awaitable<absl::Status> ConnectAndLogin();

  ServerStream stream_;
  BackendTarget target_;
  std::shared_ptr<const ServerTls> tls_config_;  // keeps the SSL_CTX alive while we use it
  ReadBuffer in_;
  int32_t pid_ = 0, secret_ = 0;
  std::map<std::string, std::string, std::less<>> parameters_;
  absl::flat_hash_map<std::string, uint64_t> prepared_;  // name -> prepared_clock_ at last use
  uint64_t prepared_clock_ = 0;
  std::map<std::string, std::string, std::less<>> settings_;
  char tx_status_ = 'I';
  uint64_t tls_version_ = 0;
  bool broken_ = false;
  bool lost_ = false;
  Followers followers_;
  Clock::time_point last_used_ = Clock::now();
};

// 08006 for a connection to `conn`'s shard that failed: "lost connection to shard "s": why".
absl::Status LostConnection(const ServerConnection& conn, std::string_view why);

// Sends a CancelRequest for (pid, secret) to host:port on a new connection (fire and forget,
// bounded by a short timeout).
asio::awaitable<void> SendCancel(std::string host, int port, int32_t pid, int32_t secret);

}  // namespace shardgate::proxy
