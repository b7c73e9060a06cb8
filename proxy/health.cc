// Health checker: one coroutine per sharded database, on worker 0. Keeps one connection per
// server, runs a one-row query per interval, and updates the Topology atomics.
#include "proxy/health.h"

#include <deque>
#include <map>

#include <boost/asio/steady_timer.hpp>

#include "absl/strings/str_cat.h"
#include "protocol/auth.h"
#include "proxy/io.h"
#include "proxy/runtime.h"
#include "proxy/server_connection.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {

uint64_t ParseLsn(std::string_view lsn) {
  const size_t slash = lsn.find('/');
  if (slash == std::string_view::npos) return 0;
  uint64_t hi = 0, lo = 0;
  for (char c : lsn.substr(0, slash)) {
    hi = hi * 16 + (c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
  }
  for (char c : lsn.substr(slash + 1)) {
    lo = lo * 16 + (c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
  }
  return (hi << 32) | lo;
}

// Logs in as the endpoint's user, else the first configured user with a usable password.
BackendTarget HealthTarget(const conf::Config& config, const std::string& database,
                           const std::string& shard, const conf::Endpoint& ep) {
  BackendTarget t;
  t.shard = shard;
  t.host = ep.host;
  t.port = ep.port;
  t.dbname = ep.dbname.empty() ? database : ep.dbname;
  t.user = ep.user;
  t.password = ep.password;
  if (t.user.empty()) {
    for (const auto& user : config.users) {
      if (!protocol::IsScramVerifier(user.password) && !config.IsAdmin(user.name)) {
        t.user = user.name;
        t.password = user.password;
        break;
      }
    }
  }
  return t;
}

namespace {

struct Probe {
  bool ok = false;
  bool in_recovery = false;
  uint64_t lsn = 0;
  std::string error;       // why not ok
  bool timed_out = false;  // not ok because no answer came within health_check_timeout
};

class Checker {
 public:
  Checker(Runtime& runtime, std::string database, std::shared_ptr<Topology> topology)
      : runtime_(runtime), database_(std::move(database)), topology_(std::move(topology)) {}

  asio::awaitable<void> Run() {
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor);
    const auto interval = topology_->db().health_check_interval;
    while (!runtime_.shutting_down.load() && runtime_.topology(database_) == topology_) {
      co_await CheckAll();
      timer.expires_after(interval);
      co_await timer.async_wait(kTuple);
    }
    for (auto& [key, conn] : conns_) {
      if (conn) conn->Close();
    }
  }

 private:
  asio::awaitable<Probe> Check(const std::string& shard, const conf::Endpoint& ep,
                               bool replica_query) {
    auto config = runtime_.config();
    BackendTarget target = HealthTarget(*config, database_, shard, ep);
    // A server that accepts the connection but never answers (stopped, hung) must not stall
    // the checker: the connection and the query each get health_check_timeout.
    const std::chrono::milliseconds timeout = topology_->db().health_check_timeout;
    auto& conn = conns_[target.Key()];
    if (!conn || conn->broken()) {
      const auto connect_timeout =
          std::min<std::chrono::milliseconds>(config->timeouts.connect, timeout);
      const auto start = Clock::now();
      auto fresh =
          co_await ServerConnection::Connect(target, connect_timeout, runtime_.server_tls());
      if (!fresh.ok()) {
        co_return Probe{.error = std::string(fresh.status().message()),
                        .timed_out = Clock::now() - start >= connect_timeout};
      }
      conn = std::move(*fresh);
    }
    Deadline deadline(co_await asio::this_coro::executor, timeout, [&conn] {
      boost::system::error_code ignored;
      conn->socket().cancel(ignored);
    });
    // Works on both roles: a promoted replica answers the primary's question.
    auto row = co_await conn->SimpleQuery(
        "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() "
        "THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END");
    deadline.Disarm();
    if (!row.ok() || row->size() < 2) {
      conn.reset();
      co_return Probe{.error = deadline.expired()
                                   ? absl::StrCat("no answer within ", timeout.count(), " ms")
                                   : row.ok() ? std::string("unexpected answer")
                                              : std::string(row.status().message()),
                      .timed_out = deadline.expired()};
    }
    Probe probe;
    probe.ok = true;
    probe.in_recovery = (*row)[0] && *(*row)[0] == "t";
    probe.lsn = (*row)[1] ? ParseLsn(*(*row)[1]) : 0;
    co_return probe;
  }

  asio::awaitable<void> CheckAll() {
    const auto& db = topology_->db();
    const auto now = Clock::now();
    for (int s = 0; s < topology_->shard_count(); ++s) {
      const conf::ShardConfig& shard = topology_->shard(s);
      Probe primary = co_await Check(shard.name, shard.primary, false);
      const bool forgiven = FirstTimeout(shard.primary, primary) && topology_->PrimaryHealthy(s);
      if (forgiven) {
        spdlog::info("shard \"{}\": primary {}:{}: {}; it is marked down if the next check "
                     "gets no answer either",
                     shard.name, shard.primary.host, shard.primary.port, primary.error);
      }
      const bool up = primary.ok || forgiven;
      if (up != topology_->PrimaryHealthy(s)) {
        spdlog::warn("shard \"{}\": primary {}:{} is {}{}", shard.name, shard.primary.host,
                     shard.primary.port, up ? "back" : "down: ", primary.error);
      }
      topology_->SetPrimaryHealthy(s, up);
      // The primary's LSN over time: a replica lags when it has not replayed what the primary
      // had written max_replica_lag ago.
      auto& history = history_[s];
      uint64_t current_primary_lsn = primary.ok && !primary.in_recovery ? primary.lsn : 0;
      std::vector<Probe> replicas;
      for (size_t r = 0; r < shard.replicas.size(); ++r) {
        replicas.push_back(co_await Check(shard.name, shard.replicas[r], true));
        if (replicas.back().ok && !replicas.back().in_recovery) {
          current_primary_lsn = std::max(current_primary_lsn, replicas.back().lsn);
        }
      }
      if (current_primary_lsn != 0) history.emplace_back(now, current_primary_lsn);
      uint64_t must_have = 0;
      while (!history.empty() && now - history.front().first > db.max_replica_lag) {
        must_have = history.front().second;
        history.pop_front();
      }
      if (must_have != 0) history.emplace_front(now - db.max_replica_lag, must_have);

      for (size_t r = 0; r < shard.replicas.size(); ++r) {
        const Probe& p = replicas[r];
        int promoted = topology_->Promoted(s);
        if (p.ok && !p.in_recovery) {
          // Promoted. It takes the writes once the configured primary is down (or already did).
          if (promoted != static_cast<int>(r) && !up) {
            spdlog::warn("shard \"{}\": replica {}:{} was promoted; writes go to it now",
                         shard.name, shard.replicas[r].host, shard.replicas[r].port);
            topology_->SetPromoted(s, static_cast<int>(r));
          }
          topology_->SetReplicaHealthy(s, static_cast<int>(r), false);  // not a replica now
          continue;
        }
        // Lag: the WAL the replica misses, and since when the primary had WAL it still misses.
        int64_t lag_bytes = -1, lag_ms = -1;
        if (p.ok && current_primary_lsn != 0) {
          lag_bytes = p.lsn >= current_primary_lsn
                          ? 0
                          : static_cast<int64_t>(current_primary_lsn - p.lsn);
          lag_ms = 0;
          for (const auto& [at, lsn] : history) {
            if (lsn > p.lsn) {
              lag_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - at).count();
              break;
            }
          }
        }
        topology_->SetReplicaLag(s, static_cast<int>(r), lag_bytes, lag_ms);
        const bool lagging = p.ok && must_have != 0 && p.lsn < must_have;
        const bool forgiven = FirstTimeout(shard.replicas[r], p) &&
                              topology_->ReplicaHealthy(s, static_cast<int>(r));
        const bool healthy = (p.ok && !lagging) || forgiven;
        if (healthy != topology_->ReplicaHealthy(s, static_cast<int>(r))) {
          spdlog::warn("shard \"{}\": replica {}:{} {}", shard.name, shard.replicas[r].host,
                       shard.replicas[r].port,
                       healthy ? "is healthy again" : (p.ok ? "lags" : "is down"));
        }
        topology_->SetReplicaHealthy(s, static_cast<int>(r), healthy);
      }
    }
  }

  // True when `probe` timed out and the check of `ep` before it did not: on a saturated
  // machine a healthy server's answer can miss health_check_timeout once (a scheduling stall
  // of a second or more), a hung or stopped one misses every check. Such a first timeout
  // leaves the server's state as it was; the next one (or any other failure) counts.
  bool FirstTimeout(const conf::Endpoint& ep, const Probe& probe) {
    int& late = late_[absl::StrCat(ep.host, ":", ep.port)];
    if (!probe.timed_out) {
      late = 0;
      return false;
    }
    return ++late == 1;
  }

  Runtime& runtime_;
  std::string database_;
  std::shared_ptr<Topology> topology_;
  std::map<std::string, int> late_;  // consecutive timed-out checks per endpoint
  std::map<std::string, std::unique_ptr<ServerConnection>> conns_;
  std::map<int, std::deque<std::pair<Clock::time_point, uint64_t>>> history_;
};

}  // namespace

asio::awaitable<void> RunHealthChecks(Runtime& runtime, std::string database,
                                      std::shared_ptr<Topology> topology) {
  Checker checker(runtime, std::move(database), std::move(topology));
  co_await checker.Run();
}

}  // namespace shardgate::proxy
