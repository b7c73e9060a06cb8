// State shared by all workers of one shardgate process: the config snapshot, TLS, counters.
#pragma once

#include <atomic>
#include <memory>
#include <map>
#include <mutex>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "conf/config.h"
#include "proxy/topology.h"
#include "proxy/two_phase.h"

namespace shardgate::proxy {

// Contract: thread-safe. The config is an immutable snapshot; readers take a copy of the
// shared_ptr and keep using it for a whole transaction.
class Runtime {
 public:
  explicit Runtime(std::shared_ptr<const conf::Config> config) : config_(std::move(config)) {}

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
  }

  // The TLS context offered to clients; null when `tls:` is not configured.
  boost::asio::ssl::context* tls() const { return tls_.get(); }
  void set_tls(std::unique_ptr<boost::asio::ssl::context> tls) { tls_ = std::move(tls); }

  // The two-phase commit decision log; null when cross_shard.two_phase is off. Set once at
  // start, before the workers run.
  DecisionLog* decision_log() const { return decision_log_.get(); }
  void set_decision_log(std::unique_ptr<DecisionLog> log) { decision_log_ = std::move(log); }

  std::atomic<int> clients{0};
  std::atomic<bool> shutting_down{false};

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const conf::Config> config_;
  std::map<std::string, std::shared_ptr<Topology>> topologies_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  std::unique_ptr<DecisionLog> decision_log_;
};

}  // namespace shardgate::proxy
