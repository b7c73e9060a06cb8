// Per-worker pools of idle server connections, one pool per (server, database, user).
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "proxy/server_connection.h"

namespace shardgate::proxy {

class Runtime;

// Contract: used only from its worker's thread. At most `max_size` connections exist at once
// (idle + checked out + connecting); callers beyond that wait in FIFO order up to a deadline.
class Pool {
 public:
  // New connections use `runtime`'s server_tls context of the moment (none when null).
  Pool(BackendTarget target, int max_size, std::chrono::milliseconds connect_timeout,
       const Runtime* runtime = nullptr)
      : target_(std::move(target)),
        max_size_(max_size),
        connect_timeout_(connect_timeout),
        runtime_(runtime) {}

  // An idle connection, a new one, or one released by another client within `wait`. Errors:
  // 08001 (cannot connect), 53300 (pool exhausted for `wait`).
  asio::awaitable<absl::StatusOr<std::unique_ptr<ServerConnection>>> Acquire(
      std::chrono::milliseconds wait);
  // An idle connection that is still usable, at once; null when there is none (Acquire then
  // connects or waits). Idle connections found unusable on the way are closed.
  std::unique_ptr<ServerConnection> TryAcquire();
  // Takes a connection back: kept when Idle(), closed otherwise. One with followers goes to
  // the first of them instead, unless it was lost: then each is woken to run its read
  // elsewhere.
  void Release(std::unique_ptr<ServerConnection> conn);

  // Read pipelining (databases.<db>.pipeline_reads). `conn`, checked out, becomes a lane (its
  // holder sent one read alone and sends nothing more) or stops being one.
  void OpenLane(ServerConnection& conn) {
    if (!conn.lane()) lanes_.push_back(conn);
  }
  static void CloseLane(ServerConnection& conn) { conn.lane_hook.unlink(); }
  // A lane to send a read on, behind the reads already there: only when Acquire would wait (no
  // idle connection, no room for a new one) and nobody waits in it (a transaction or write
  // must not wait behind an endless stream of reads); with fewer than `depth` followers, the
  // fewest first, not broken, and accepted by `fits`.
  template <typename Fits>
  ServerConnection* LaneFor(int depth, Fits&& fits) {
    if (depth <= 0 || !idle_.empty() || open_ < max_size_ || !waiters_.empty()) return nullptr;
    ServerConnection* best = nullptr;
    int fewest = depth;
    for (ServerConnection& conn : lanes_) {
      const int n = conn.following();
      if (n < fewest && !conn.broken() && fits(conn)) {
        best = &conn;
        fewest = n;
      }
    }
    return best;
  }
  // Queues `follower`, whose read the caller has sent on `conn`, for the connection: the
  // caller then waits on its timer, which Release cancels once the reads ahead are answered,
  // with the connection in `follower.conn`, or with none when it was lost before (or dropped:
  // see ~ServerConnection).
  static void Follow(ServerConnection& conn, Follower& follower) {
    follower.timer.expires_at(asio::steady_timer::time_point::max());
    conn.followers().push_back(follower);
  }
  // Closes idle connections unused for longer than `max_idle`; all of them when 0.
  void CloseIdle(std::chrono::milliseconds max_idle);

  const BackendTarget& target() const { return target_; }
  int open() const { return open_; }  // idle + checked out + connecting
  int idle() const { return static_cast<int>(idle_.size()); }
  int connecting() const { return connecting_; }  // logging in to the server
  // Clients waiting for a server: in Acquire's queue, and followers whose reads are sent on a
  // lane (SHOW POOLS cl_waiting, shardgate_pool_waiting_clients).
  int waiting() const {
    int n = static_cast<int>(waiters_.size());
    for (const ServerConnection& conn : lanes_) n += conn.following();
    return n;
  }
  // How long the longest-waiting client has waited for a server (0 when none waits).
  std::chrono::microseconds max_wait() const;
  int max_size() const { return max_size_; }
  template <typename F>
  void ForEachIdle(F&& f) const {
    for (const auto& c : idle_) f(*c);
  }

  // Logins without a server round trip (ClientSession::Startup): the startup settings (as one
  // "name=value;..." key, ClientSession::startup_key_) that this pool's servers accepted, and the
  // ParameterStatus set a server reported then. A login with known settings is answered from
  // here while the pool has a connection open.
  using Parameters = std::map<std::string, std::string, std::less<>>;
  const Parameters* KnownLogin(const std::string& settings_key) const;
  void NoteLogin(const std::string& settings_key, const Parameters& parameters);

 private:
  // Linked into waiters_ while it waits; it lives in its Acquire's frame, so queueing allocates
  // nothing (a waiting client is the steady state of a pool smaller than its clients), and it
  // unlinks itself if that frame goes first.
  using WaiterHook =
      boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;
  struct Waiter : WaiterHook {
    explicit Waiter(asio::any_io_executor ex) : timer(ex) {}
    asio::steady_timer timer;
    Clock::time_point since;  // when its Acquire began
    std::unique_ptr<ServerConnection> conn;  // handed over by Release
    bool slot = false;                       // a slot freed up: connect anew
  };
  void WakeOne();

  BackendTarget target_;
  int max_size_;
  std::chrono::milliseconds connect_timeout_;
  const Runtime* runtime_;
  int open_ = 0;
  int connecting_ = 0;
  std::deque<std::unique_ptr<ServerConnection>> idle_;  // most recently used at the back
  boost::intrusive::list<Waiter, boost::intrusive::constant_time_size<false>> waiters_;
  // Checked-out connections that are lanes (a connection unlinks itself when it goes).
  boost::intrusive::list<
      ServerConnection,
      boost::intrusive::member_hook<ServerConnection, decltype(ServerConnection::lane_hook),
                                    &ServerConnection::lane_hook>,
      boost::intrusive::constant_time_size<false>>
      lanes_;
  // Startup-settings key -> the ParameterStatus set a server reported after applying them.
  absl::flat_hash_map<std::string, Parameters> known_logins_;
};

// All pools of one worker, by BackendTarget::Key().
class PoolSet {
 public:
  explicit PoolSet(const Runtime* runtime = nullptr) : runtime_(runtime) {}
  Pool& Get(const BackendTarget& target, int max_size, std::chrono::milliseconds connect_timeout);
  void CloseIdle(std::chrono::milliseconds max_idle);
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [key, pool] : pools_) f(*pool);
  }

 private:
  const Runtime* runtime_;
  absl::flat_hash_map<std::string, std::unique_ptr<Pool>> pools_;
  std::string key_;  // Get's lookup key, reused: no allocation per transaction
};

}  // namespace shardgate::proxy
