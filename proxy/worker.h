// One worker thread: its io_context, its server pools and the sessions living on it.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "proxy/pool.h"
#include "proxy/runtime.h"
#include "routing/analysis_cache.h"
#include "routing/hot_keys.h"

namespace shardgate::proxy {

class ClientSession;

// What a worker's sessions of one logical database and user did (SHOW STATS, /metrics).
// Written by the worker's thread only; read by the admin console and /metrics on that thread.
struct DatabaseStats {
  int64_t xacts = 0;     // transactions ended (ReadyForQuery 'I' after a server's answer)
  int64_t queries = 0;   // Query and Execute messages from clients
  int64_t received = 0;  // bytes from clients
  int64_t sent = 0;      // bytes to clients
  int64_t rate_refused = 0, rate_queued = 0;  // queries a rate_limit refused / delayed
  int64_t direct = 0, cross_shard = 0;  // sharded statements by spread
  int64_t prepared_reads = 0;  // simple Queries run as server-prepared statements (prepare_reads)
  int64_t pipelined_reads = 0;  // of those, sent behind another client's read (pipeline_reads)
  int64_t pipeline_reruns = 0;  // pipelined reads sent again elsewhere: their connection was lost
  std::map<std::pair<std::string, std::string>, int64_t> routed;  // (shard, role) -> statements
  // Server round trips (a Query or a Sync to its ReadyForQuery), seconds.
  static constexpr std::array<double, 14> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                      0.025,  0.05,  0.1,    0.25,  0.5,
                                                      1,      2.5,   5,      10};
  std::array<int64_t, kBuckets.size()> latency_buckets{};  // not cumulative
  int64_t latency_count = 0;
  double latency_sum = 0;
  // Sums `other` into this (SHOW STATS and /metrics add the workers up).
  void Add(const DatabaseStats& other) {
    xacts += other.xacts;
    queries += other.queries;
    received += other.received;
    sent += other.sent;
    rate_refused += other.rate_refused;
    rate_queued += other.rate_queued;
    direct += other.direct;
    cross_shard += other.cross_shard;
    prepared_reads += other.prepared_reads;
    pipelined_reads += other.pipelined_reads;
    pipeline_reruns += other.pipeline_reruns;
    for (const auto& [k, v] : other.routed) routed[k] += v;
    for (size_t i = 0; i < latency_buckets.size(); ++i) {
      latency_buckets[i] += other.latency_buckets[i];
    }
    latency_count += other.latency_count;
    latency_sum += other.latency_sum;
  }
  void Observe(double seconds) {
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      if (seconds <= kBuckets[i]) {
        ++latency_buckets[i];
        break;
      }
    }
    ++latency_count;
    latency_sum += seconds;
  }
};

// Contract: everything here is touched only from this worker's thread, except Start/Stop and
// BeginShutdown, which post onto it.
class Worker {
 public:
  Worker(int index, Runtime& runtime) : index_(index), runtime_(runtime), pools_(&runtime) {}

  // Opens this worker's acceptor on `endpoint` (SO_REUSEPORT, so every worker has its own and
  // the kernel spreads connections) and starts the accept and maintenance loops.
  absl::Status Listen(const boost::asio::ip::tcp::endpoint& endpoint);
  void Start();  // runs the io_context on a new thread
  // Stops accepting and asks every session to finish its transaction and leave (57P01).
  void BeginShutdown();
  void Stop();  // stops the io_context and joins the thread
  void Join();

  boost::asio::io_context& io() { return io_; }
  Runtime& runtime() { return runtime_; }
  PoolSet& pools() { return pools_; }
  // Per-thread, lock-free: statements analysed once per worker.
  routing::AnalysisCache& analysis_cache() { return analysis_cache_; }
  int index() const { return index_; }
  std::unordered_set<ClientSession*>& sessions() { return sessions_; }
  // Counters per (logical database, client user).
  using StatsKey = std::pair<std::string, std::string>;
  DatabaseStats& stats(const std::string& database, const std::string& user) {
    return stats_[{database, user}];
  }
  const std::map<StatsKey, DatabaseStats>& all_stats() const { return stats_; }
  // Hot-key sketches of a sharded database's tables, by table name (so a map switch keeps
  // them); fed by this worker's sessions, halved every kHotKeyHalfLife (SHOW HOT KEYS, /metrics).
  using HotKeyTables = std::map<std::string, routing::HotKeySketch, std::less<>>;
  static constexpr std::chrono::seconds kHotKeyHalfLife{60};
  // How often ClientSession::CheckHalfClosedClient runs over the sessions: a client that sent
  // its last message and a FIN together is closed 100-200 ms later.
  static constexpr std::chrono::milliseconds kHalfCloseSweep{100};
  HotKeyTables& hot_keys(const std::string& database) { return hot_keys_[database]; }
  const std::map<std::string, HotKeyTables>& all_hot_keys() const { return hot_keys_; }
  // Errors sent to clients, by SQLSTATE (the servers' and the proxy's own).
  std::map<std::string, int64_t, std::less<>>& errors() { return errors_; }
  int session_count() const { return session_count_.load(); }
  void SessionStarted(ClientSession* s);
  void SessionEnded(ClientSession* s);

 private:
  boost::asio::awaitable<void> AcceptLoop();
  boost::asio::awaitable<void> MaintenanceLoop();
  boost::asio::awaitable<void> HalfCloseSweep();

  int index_;
  Runtime& runtime_;
  // One thread runs it, and every socket and timer of the worker is used from that thread
  // (other threads only post to it): the reactor's per-socket locks are left out (two lock
  // pairs per read or write otherwise). The scheduler keeps its lock for those posts.
  boost::asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  PoolSet pools_;
  routing::AnalysisCache analysis_cache_;
  std::unordered_set<ClientSession*> sessions_;
  std::map<StatsKey, DatabaseStats> stats_;  // nodes are stable: sessions keep pointers
  std::map<std::string, int64_t, std::less<>> errors_;
  std::map<std::string, HotKeyTables> hot_keys_;  // nodes are stable: sessions keep pointers
  std::atomic<int> session_count_{0};
  std::thread thread_;
};

// Runs `f(worker)` on each worker's own thread in turn (sessions, pools and their counters are
// not shared), from a coroutine on any worker; used by the admin console and /metrics.
template <typename F>
boost::asio::awaitable<void> VisitWorkers(const std::vector<Worker*>& workers, F f) {
  for (Worker* w : workers) {
    co_await boost::asio::co_spawn(
        w->io(),
        [&f, w]() -> boost::asio::awaitable<void> {
          f(*w);
          co_return;
        },
        boost::asio::use_awaitable);
  }
}

}  // namespace shardgate::proxy
