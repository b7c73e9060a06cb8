// State shared by all workers of one shardgate process: the config snapshot, TLS, counters.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "conf/config.h"
#include "proxy/ids.h"
#include "proxy/query_cache.h"
#include "proxy/rate_limit.h"
#include "proxy/server_tls.h"
#include "proxy/topology.h"
#include "proxy/two_phase.h"
#include "proxy/write_gate.h"

namespace shardgate::proxy {

// Contract: thread-safe. The config is an immutable snapshot; readers take a copy of the
// shared_ptr and keep using it for a whole transaction.
class Runtime {
 public:
  explicit Runtime(std::shared_ptr<const conf::Config> config) : config_(std::move(config)) {}

  IdGenerator ids;  // SELECT shardgate.next_id()
  RateLimits rate_limits;  // users[] and databases.<db> rate_limit, applied by main per config

  std::shared_ptr<const conf::Config> config() const {
    std::lock_guard lock(mu_);
    return config_;
  }
  void set_config(std::shared_ptr<const conf::Config> config) {
    std::lock_guard lock(mu_);
    config_ = std::move(config);
  }

  // The live routing state of a database; null when it is not sharded or unknown.
  std::shared_ptr<Topology> topology(const std::string& database) const {
    std::lock_guard lock(mu_);
    auto it = topologies_.find(database);
    return it == topologies_.end() ? nullptr : it->second;
  }
  void set_topologies(std::map<std::string, std::shared_ptr<Topology>> topologies) {
    std::lock_guard lock(mu_);
    topologies_ = std::move(topologies);
    map_version_.fetch_add(1);
  }
  // Bumped by every set_topologies (reload, cutover). A session reads it before topology(), so
  // the snapshot it then holds is at least that version; it refreshes between transactions.
  uint64_t map_version() const { return map_version_.load(); }

  // The write gate of `database` (created on first use, never freed: sessions keep a pointer).
  WriteGate& gate(const std::string& database) {
    std::lock_guard lock(mu_);
    auto& g = gates_[database];
    if (!g) g = std::make_unique<WriteGate>();
    return *g;
  }

  // The query cache of `database` (created on first use, never freed: sessions keep a pointer,
  // and writes begun under one config must end on the same cache after a reload).
  QueryCache& query_cache(const std::string& database, const conf::QueryCacheConfig& config) {
    std::lock_guard lock(mu_);
    auto& cache = caches_[database];
    const QueryCache::Limits limits{config.memory, config.max_entry};
    if (!cache) {
      cache = std::make_unique<QueryCache>(limits);
    } else if (cache->limits().memory != limits.memory ||
               cache->limits().max_entry != limits.max_entry) {
      cache->Configure(limits);
    }
    return *cache;
  }
  // Every database's cache that was ever used (SHOW CACHE, /metrics).
  std::vector<std::pair<std::string, const QueryCache*>> query_caches() const {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, const QueryCache*>> out;
    for (const auto& [name, cache] : caches_) out.emplace_back(name, cache.get());
    return out;
  }

  // How a database's reshard goes, as shardctl last reported it (RESHARD PROGRESS): for SHOW
  // RESHARD and /metrics only, nothing routes by it.
  struct ReshardProgress {
    std::string phase;  // copying | catching_up | switched | done | aborted
    int64_t rows_copied = 0;
    int64_t source_rows = 0;  // the planner's estimate of the rows the copies scan
    int64_t changes_applied = 0;
    std::chrono::system_clock::time_point reported;
  };
  void set_reshard_progress(const std::string& database, ReshardProgress progress) {
    std::lock_guard lock(mu_);
    progress_[database] = std::move(progress);
  }
  std::map<std::string, ReshardProgress> reshard_progress() const {
    std::lock_guard lock(mu_);
    return progress_;
  }

  // Loads, validates and installs the config at a path (set by main: the reload of SIGHUP,
  // RELOAD and the cutover's RESHARD SWITCH). An invalid file leaves the old config serving.
  std::function<absl::Status(const std::string& path)> install_config;

  // The TLS context offered to clients; null when `tls:` is not configured.
  boost::asio::ssl::context* tls() const { return tls_.get(); }
  void set_tls(std::unique_ptr<boost::asio::ssl::context> tls) { tls_ = std::move(tls); }

  // The client context for connections to the servers (`server_tls:`), built with each config
  // snapshot; null when sslmode is disable. Read when a connection is opened.
  std::shared_ptr<const ServerTls> server_tls() const {
    std::lock_guard lock(mu_);
    return server_tls_;
  }
  // A new context (every reload: renewed files are read again). When its settings differ from
  // the previous ones (mode, paths) the version moves on and pools drop the connections opened
  // before: after a switch to verify-full no plain connection is handed out again. An unchanged
  // section keeps pooled connections (a reload or a resharding cutover must not empty pools).
  void set_server_tls(std::shared_ptr<const ServerTls> tls) {
    std::lock_guard lock(mu_);
    const conf::ServerTlsConfig none;
    const conf::ServerTlsConfig& before = server_tls_ ? server_tls_->config : none;
    const conf::ServerTlsConfig& after = tls ? tls->config : none;
    if (before.sslmode != after.sslmode || before.root_cert != after.root_cert ||
        before.cert != after.cert || before.key != after.key) {
      server_tls_version_.fetch_add(1);
    }
    server_tls_ = std::move(tls);
  }
  // Read it before server_tls() when opening a connection: a reload in between then makes the
  // connection look older than it is (dropped at its next checkout), never newer.
  uint64_t server_tls_version() const { return server_tls_version_.load(); }

  // The two-phase commit decision log; null when cross_shard.two_phase is off. Set once at
  // start, before the workers run.
  DecisionLog* decision_log() const { return decision_log_.get(); }
  void set_decision_log(std::unique_ptr<DecisionLog> log) { decision_log_ = std::move(log); }

  // Set by main before the workers start: the admin console visits every worker's sessions and
  // pools on that worker's thread, and RELOAD reads the file again.
  std::vector<class Worker*> workers;
  std::string config_path;

  std::atomic<int> clients{0};
  // Client connections per user (users[].max_connections), counted at login whatever the
  // limit, so that a reload setting one finds the true count. AddUserConnection counts one
  // more unless `limit` (> 0) is reached (then false, nothing counted).
  bool AddUserConnection(const std::string& user, int limit);
  void RemoveUserConnection(const std::string& user);
  std::atomic<int64_t> reloads{0};  // configurations installed after the first
  std::atomic<bool> shutting_down{false};

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const conf::Config> config_;
  std::map<std::string, std::shared_ptr<Topology>> topologies_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  std::shared_ptr<const ServerTls> server_tls_;  // under mu_
  std::atomic<uint64_t> server_tls_version_{0};
  std::unique_ptr<DecisionLog> decision_log_;
  std::atomic<uint64_t> map_version_{0};
  std::map<std::string, std::unique_ptr<WriteGate>> gates_;
  std::map<std::string, std::unique_ptr<QueryCache>> caches_;
  std::map<std::string, ReshardProgress> progress_;
  std::map<std::string, int, std::less<>> user_connections_;  // under mu_
};

inline bool Runtime::AddUserConnection(const std::string& user, int limit) {
  std::lock_guard lock(mu_);
  int& n = user_connections_[user];
  if (limit > 0 && n >= limit) return false;
  ++n;
  return true;
}

inline void Runtime::RemoveUserConnection(const std::string& user) {
  std::lock_guard lock(mu_);
  auto it = user_connections_.find(user);
  if (it != user_connections_.end() && --it->second <= 0) user_connections_.erase(it);
}

}  // namespace shardgate::proxy
