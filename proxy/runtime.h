// State shared by all workers of one shardgate process: the config snapshot, TLS, counters.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include <boost/asio/ssl/context.hpp>

#include "conf/config.h"

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

  // The TLS context offered to clients; null when `tls:` is not configured.
  boost::asio::ssl::context* tls() const { return tls_.get(); }
  void set_tls(std::unique_ptr<boost::asio::ssl::context> tls) { tls_ = std::move(tls); }

  std::atomic<int> clients{0};
  std::atomic<bool> shutting_down{false};

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const conf::Config> config_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
};

}  // namespace shardgate::proxy
