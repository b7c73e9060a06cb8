// Token-bucket rate limits (users[].rate_limit, databases.<db>.rate_limit): the bucket, lock-free
// and shared by every worker, and the registry that keeps buckets across reloads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"

namespace shardgate::proxy {

// A token bucket as GCRA (the generic cell rate algorithm): one atomic "theoretical arrival
// time" in nanoseconds, advanced by one interval per token with compare-and-swap. Tokens are
// reserved, possibly in the future: Reserve says how long the caller must wait for its own, so
// waiting callers are served in the order they reserved and nobody polls.
// Contract: thread-safe, allocation-free; times are nanoseconds of one monotonic clock
// (injected, for tests). Configure applies new numbers to a live bucket; an unlimited bucket
// (never configured, or configured with nullopt) grants everything at once.
class RateBucket {
 public:
  // The settings as Configure received them (for the error text and SHOW RATE LIMITS).
  struct Settings {
    int64_t queries_per_second = 0;  // 0 = unlimited
    int64_t burst = 0;
    conf::RateLimitConfig::Mode mode = conf::RateLimitConfig::Mode::kError;
    std::chrono::milliseconds max_wait{0};
  };

  void Configure(const std::optional<conf::RateLimitConfig>& limit);
  Settings settings() const;
  bool Limited() const { return interval_ns_.load(std::memory_order_relaxed) > 0; }
  // How long a query may wait for a token: max_wait in queue mode and, whatever the mode,
  // inside a transaction (a refusal there would fail the whole transaction); else 0.
  int64_t MaxWaitNs(bool in_transaction) const {
    return queue_.load(std::memory_order_relaxed) || in_transaction
               ? max_wait_ns_.load(std::memory_order_relaxed)
               : 0;
  }

  // Takes a token due at most `max_wait_ns` after `now_ns`: the wait (0: now), or -1 when the
  // next token is due later (then nothing is taken).
  int64_t Reserve(int64_t now_ns, int64_t max_wait_ns);
  // Gives back a token Reserve took (the other bucket a query needs refused it).
  void Refund();

  // Counters for SHOW RATE LIMITS (the metrics count per user and database in the workers).
  std::atomic<int64_t> refused{0}, queued{0};

 private:
  // The theoretical arrival time: when the bucket is full again (ns). The next token is due at
  // TAT - (burst - 1) * interval; taking it moves TAT one interval on.
  std::atomic<int64_t> tat_ns_{0};
  std::atomic<int64_t> interval_ns_{0};   // 1e9 / queries_per_second; 0 = unlimited
  std::atomic<int64_t> tolerance_ns_{0};  // (burst - 1) * interval
  std::atomic<int64_t> max_wait_ns_{0};
  std::atomic<bool> queue_{false};
  mutable std::mutex settings_mu_;  // guards settings_ only (not on the query path)
  Settings settings_;
};

// The buckets of one process by user and by database name, created on first use and never
// freed: sessions keep a pointer. Apply (at start and each reload) sets every bucket's numbers
// from a config; a limit that disappeared makes its bucket unlimited.
class RateLimits {
 public:
  RateBucket& user(const std::string& name) { return Get(users_, name); }
  RateBucket& database(const std::string& name) { return Get(databases_, name); }
  void Apply(const conf::Config& config);

  struct Row {
    std::string kind;  // "user" | "database"
    std::string name;
    RateBucket::Settings settings;
    int64_t refused = 0, queued = 0;
  };
  // The limited buckets (SHOW RATE LIMITS).
  std::vector<Row> Rows() const;

 private:
  using Map = std::map<std::string, std::unique_ptr<RateBucket>, std::less<>>;
  RateBucket& Get(Map& map, const std::string& name);
  mutable std::mutex mu_;
  Map users_, databases_;
};

// Monotonic nanoseconds (steady_clock), the clock the sessions give RateBucket.
int64_t RateNowNs();

}  // namespace shardgate::proxy
