// Topology: endpoint choice for reads (round robin over healthy replicas) and writes.
#include "proxy/topology.h"

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "protocol/status.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {

absl::StatusOr<std::shared_ptr<Topology>> Topology::Build(const conf::DatabaseConfig& db,
                                                         std::string zone) {
  auto topology = std::make_shared<Topology>();
  topology->db_ = db;
  topology->zone_ = std::move(zone);
  auto map = routing::ShardMap::Build(topology->db_);
  if (!map.ok()) return map.status();
  topology->map_ = *map;
  for (const auto& shard : topology->db_.shards) {
    topology->shards_.push_back(std::make_unique<ShardState>(shard.replicas.size()));
  }
  return topology;
}

const conf::Endpoint& Topology::Primary(int shard) const {
  const int promoted = shards_[shard]->promoted.load(std::memory_order_relaxed);
  if (promoted >= 0) return db_.shards[shard].replicas[promoted];
  return db_.shards[shard].primary;
}

const conf::Endpoint& Topology::ForRead(int shard, bool* replica) {
  // One step of the rotation per read, whichever pass picks.
  const uint32_t start = shards_[shard]->next.fetch_add(1, std::memory_order_relaxed);
  if (!zone_.empty()) {
    if (const conf::Endpoint* ep = Pick(shard, /*local_only=*/true, start, replica)) return *ep;
  }
  if (const conf::Endpoint* ep = Pick(shard, /*local_only=*/false, start, replica)) return *ep;
  *replica = false;
  return Primary(shard);
}

const conf::Endpoint* Topology::Pick(int shard, bool local_only, uint32_t start,
                                     bool* replica) {
  const conf::ShardConfig& config = db_.shards[shard];
  ShardState& state = *shards_[shard];
  const size_t n = config.replicas.size();
  if (db_.read_from == conf::ReadFrom::kPrimary || n == 0) return nullptr;
  const int promoted = state.promoted.load(std::memory_order_relaxed);
  auto usable = [&](size_t r) {
    return static_cast<int>(r) != promoted &&  // a promoted replica is the primary now
           state.replica_ok[r].load(std::memory_order_relaxed) &&
           (!local_only || config.replicas[r].zone == zone_);
  };
  if (db_.replica_balance == conf::ReplicaBalance::kLeastOutstanding &&
      db_.read_from == conf::ReadFrom::kReplicas) {
    // The usable replica with the fewest sessions on it; ties rotate from `start`.
    int best = -1, best_load = 0;
    for (size_t i = 0; i < n; ++i) {
      const size_t pick = (start + i) % n;
      if (!usable(pick)) continue;
      const int load = state.outstanding[pick].load(std::memory_order_relaxed);
      if (best < 0 || load < best_load) {
        best = static_cast<int>(pick);
        best_load = load;
      }
    }
    if (best < 0) return nullptr;
    *replica = true;
    return &config.replicas[best];
  }
  // Round robin over the usable candidates (so that a subset, one zone's or the healthy ones,
  // shares the reads evenly); `read_from: any` counts the primary as one more (-1).
  absl::InlinedVector<int, 8> candidates;
  for (size_t r = 0; r < n; ++r) {
    if (usable(r)) candidates.push_back(static_cast<int>(r));
  }
  if (db_.read_from == conf::ReadFrom::kAny && (!local_only || Primary(shard).zone == zone_)) {
    candidates.push_back(-1);
  }
  if (candidates.empty()) return nullptr;
  const int pick = candidates[start % candidates.size()];
  *replica = pick >= 0;
  return pick >= 0 ? &config.replicas[pick] : &Primary(shard);
}

void Topology::SetReplicaHealthy(int shard, int replica, bool healthy) {
  shards_[shard]->replica_ok[replica].store(healthy, std::memory_order_relaxed);
}
bool Topology::ReplicaHealthy(int shard, int replica) const {
  return shards_[shard]->replica_ok[replica].load(std::memory_order_relaxed);
}
void Topology::SetPrimaryHealthy(int shard, bool healthy) {
  ShardState& state = *shards_[shard];
  if (healthy) {
    state.primary_down_since.store(0, std::memory_order_relaxed);
  } else {
    int64_t up = 0;
    state.primary_down_since.compare_exchange_strong(
        up, std::chrono::steady_clock::now().time_since_epoch().count(),
        std::memory_order_relaxed);
  }
  state.primary_ok.store(healthy, std::memory_order_relaxed);
}

absl::Status Topology::WriteServerAvailable(int shard) const {
  const ShardState& state = *shards_[shard];
  if (state.primary_ok.load(std::memory_order_relaxed) ||
      state.promoted.load(std::memory_order_relaxed) >= 0) {
    return absl::OkStatus();
  }
  const conf::ShardConfig& config = db_.shards[shard];
  const int64_t since = state.primary_down_since.load(std::memory_order_relaxed);
  const auto down_for = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now().time_since_epoch() -
      std::chrono::steady_clock::duration(since));
  return PgStatus(
      "08001",
      absl::StrCat("shard \"", config.name, "\" is unavailable: its primary ", config.primary.host,
                   ":", config.primary.port, " has been down for ",
                   since == 0 ? 0 : down_for.count(), " ms"),
      absl::StrCat("shardgate stops sending to a server that failed its health check; it is "
                   "checked again every ",
                   db_.health_check_interval.count(), " ms (health_check_interval)."));
}

void Topology::PrimaryFailed(int shard, std::string_view why) {
  if (!shards_[shard]->primary_ok.load(std::memory_order_relaxed)) return;
  const conf::ShardConfig& config = db_.shards[shard];
  spdlog::warn("shard \"{}\": primary {}:{} is down ({}); its statements fail until a health "
               "check passes",
               config.name, config.primary.host, config.primary.port, why);
  SetPrimaryHealthy(shard, false);
}
bool Topology::PrimaryHealthy(int shard) const {
  return shards_[shard]->primary_ok.load(std::memory_order_relaxed);
}
void Topology::SetPromoted(int shard, int replica) {
  shards_[shard]->promoted.store(replica, std::memory_order_relaxed);
}
int Topology::Promoted(int shard) const {
  return shards_[shard]->promoted.load(std::memory_order_relaxed);
}

int Topology::ReplicaIndex(int shard, const conf::Endpoint& endpoint) const {
  const auto& replicas = db_.shards[shard].replicas;
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (&replicas[i] == &endpoint) return static_cast<int>(i);
  }
  return -1;
}

void Topology::ReplicaFailed(int shard, const conf::Endpoint& endpoint) {
  const auto& replicas = db_.shards[shard].replicas;
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (&replicas[i] == &endpoint) SetReplicaHealthy(shard, static_cast<int>(i), false);
  }
}

}  // namespace shardgate::proxy
