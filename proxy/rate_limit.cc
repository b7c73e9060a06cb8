// GCRA token buckets for users[].rate_limit and databases.<db>.rate_limit (see rate_limit.h).
#include "proxy/rate_limit.h"

#include <algorithm>

namespace shardgate::proxy {

void RateBucket::Configure(const std::optional<conf::RateLimitConfig>& limit) {
  Settings s;
  if (limit && limit->queries_per_second > 0) {
    s.queries_per_second = limit->queries_per_second;
    s.burst = std::max<int64_t>(limit->burst, 1);
    s.mode = limit->mode;
    s.max_wait = limit->max_wait;
  }
  const int64_t interval = s.queries_per_second > 0 ? 1'000'000'000 / s.queries_per_second : 0;
  const int64_t tolerance = interval * (s.burst > 0 ? s.burst - 1 : 0);
  // New numbers start from a full bucket (the old debt was owed at the old rate); the same
  // numbers (a reload that changed something else) keep the state.
  if (interval != interval_ns_.load(std::memory_order_relaxed) ||
      tolerance != tolerance_ns_.load(std::memory_order_relaxed)) {
    tat_ns_.store(0, std::memory_order_relaxed);
  }
  tolerance_ns_.store(tolerance, std::memory_order_relaxed);
  max_wait_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(s.max_wait).count(),
                     std::memory_order_relaxed);
  queue_.store(s.mode == conf::RateLimitConfig::Mode::kQueue, std::memory_order_relaxed);
  interval_ns_.store(interval, std::memory_order_relaxed);
  std::lock_guard lock(settings_mu_);
  settings_ = s;
}

RateBucket::Settings RateBucket::settings() const {
  std::lock_guard lock(settings_mu_);
  return settings_;
}

int64_t RateBucket::Reserve(int64_t now_ns, int64_t max_wait_ns) {
  const int64_t interval = interval_ns_.load(std::memory_order_relaxed);
  if (interval <= 0) return 0;
  const int64_t tolerance = tolerance_ns_.load(std::memory_order_relaxed);
  int64_t tat = tat_ns_.load(std::memory_order_relaxed);
  for (;;) {
    // The token is due when the bucket, after taking it, would hold no more than it can.
    const int64_t start = std::max(tat, now_ns);
    const int64_t wait = start - tolerance - now_ns;
    if (wait > max_wait_ns) return -1;
    if (tat_ns_.compare_exchange_weak(tat, start + interval, std::memory_order_relaxed)) {
      return std::max<int64_t>(wait, 0);
    }
  }
}

void RateBucket::Refund() {
  const int64_t interval = interval_ns_.load(std::memory_order_relaxed);
  if (interval > 0) tat_ns_.fetch_sub(interval, std::memory_order_relaxed);
}

RateBucket& RateLimits::Get(Map& map, const std::string& name) {
  std::lock_guard lock(mu_);
  auto& bucket = map[name];
  if (!bucket) bucket = std::make_unique<RateBucket>();
  return *bucket;
}

void RateLimits::Apply(const conf::Config& config) {
  std::lock_guard lock(mu_);
  for (auto& [name, bucket] : users_) {
    const conf::UserConfig* user = config.FindUser(name);
    bucket->Configure(user != nullptr ? user->rate_limit : std::nullopt);
  }
  for (const conf::UserConfig& user : config.users) {
    if (user.rate_limit && !users_.contains(user.name)) {
      users_.emplace(user.name, std::make_unique<RateBucket>())
          .first->second->Configure(user.rate_limit);
    }
  }
  for (auto& [name, bucket] : databases_) {
    const conf::DatabaseConfig* db = config.FindDatabase(name);
    bucket->Configure(db != nullptr ? db->rate_limit : std::nullopt);
  }
  for (const auto& [name, db] : config.databases) {
    if (db.rate_limit && !databases_.contains(name)) {
      databases_.emplace(name, std::make_unique<RateBucket>())
          .first->second->Configure(db.rate_limit);
    }
  }
}

std::vector<RateLimits::Row> RateLimits::Rows() const {
  std::lock_guard lock(mu_);
  std::vector<Row> rows;
  for (const auto* map : {&users_, &databases_}) {
    for (const auto& [name, bucket] : *map) {
      if (!bucket->Limited()) continue;
      rows.push_back(Row{map == &users_ ? "user" : "database", name, bucket->settings(),
                         bucket->refused.load(), bucket->queued.load()});
    }
  }
  return rows;
}

int64_t RateNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace shardgate::proxy
