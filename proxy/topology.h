// Where each shard's statements go right now: the shard map of a database plus the live state
// of its servers (which replicas are healthy, which server is the primary after a promotion).
// Shared by all workers; the health checker writes it, sessions read it.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "conf/config.h"
#include "protocol/status.h"
#include "routing/shard_map.h"

namespace shardgate::proxy {

// Contract: thread-safe; every field a session reads is atomic. Built once per config snapshot.
class Topology {
 public:
  // `zone`: the proxy's own (conf::Config::zone); empty = no zone preference.
  static absl::StatusOr<std::shared_ptr<Topology>> Build(const conf::DatabaseConfig& db,
                                                         std::string zone = {});

  const conf::DatabaseConfig& db() const { return db_; }
  const std::shared_ptr<const routing::ShardMap>& map() const { return map_; }
  int shard_count() const { return static_cast<int>(shards_.size()); }
  const conf::ShardConfig& shard(int i) const { return db_.shards[i]; }

  // The endpoint writes go to: the configured primary, or the replica the health checker saw
  // promoted while the configured primary was down.
  const conf::Endpoint& Primary(int shard) const;
  // A healthy replica (round robin), or the primary when there is none or reads must not use
  // replicas (`read_from: primary`). `*replica` tells which. Replicas in the proxy's zone come
  // first: another zone's only while none of them is healthy.
  const conf::Endpoint& ForRead(int shard, bool* replica);
  const std::string& zone() const { return zone_; }

  // Health state, written by the checker and by sessions that fail to reach a replica.
  void SetReplicaHealthy(int shard, int replica, bool healthy);
  bool ReplicaHealthy(int shard, int replica) const;
  void SetPrimaryHealthy(int shard, bool healthy);
  bool PrimaryHealthy(int shard) const;
  void SetPromoted(int shard, int replica);  // -1: the configured primary
  // The circuit breaker of a shard's write server: open while the configured primary is marked
  // down (a failed or timed-out health check, or a session that could not reach it) and no
  // replica took over; the next good health check closes it. While open, statements that need
  // the server fail at once with 08001 instead of piling up on a hung or dead server.
  absl::Status WriteServerAvailable(int shard) const;
  // A session could not connect to the primary, or it stopped answering: opens the breaker.
  void PrimaryFailed(int shard, std::string_view why);
  // Connecting to the primary failed with `status`: opens the breaker when the server could not
  // be reached (08001), not for refusals such as a wrong password or too many connections.
  void PrimaryConnectFailed(int shard, const absl::Status& status) {
    if (SqlState(status) == "08001") PrimaryFailed(shard, std::string(status.message()));
  }
  int Promoted(int shard) const;
  // What the checker last measured of a replica: bytes of the primary's WAL it has not
  // replayed, and for how long it has been missing some (ms); -1 when unknown (down).
  void SetReplicaLag(int shard, int replica, int64_t bytes, int64_t ms) {
    shards_[shard]->lag_bytes[replica].store(bytes);
    shards_[shard]->lag_ms[replica].store(ms);
  }
  int64_t ReplicaLagBytes(int shard, int replica) const {
    return shards_[shard]->lag_bytes[replica].load();
  }
  int64_t ReplicaLagMs(int shard, int replica) const {
    return shards_[shard]->lag_ms[replica].load();
  }
  // Marks the replica at `endpoint` unhealthy (a session could not reach it).
  void ReplicaFailed(int shard, const conf::Endpoint& endpoint);
  // Sessions currently attached to each replica, for `replica_balance: least_outstanding`.
  // ReplicaIndex is -1 when `endpoint` is not one of the shard's replicas.
  int ReplicaIndex(int shard, const conf::Endpoint& endpoint) const;
  void Attached(int shard, int replica) { shards_[shard]->outstanding[replica].fetch_add(1); }
  void Detached(int shard, int replica) { shards_[shard]->outstanding[replica].fetch_sub(1); }

 private:
  struct ShardState {
    explicit ShardState(size_t replicas)
        : replica_ok(replicas), outstanding(replicas), lag_bytes(replicas), lag_ms(replicas) {
      for (auto& ok : replica_ok) ok.store(true);
      for (auto& n : outstanding) n.store(0);
      for (auto& n : lag_bytes) n.store(-1);
      for (auto& n : lag_ms) n.store(-1);
    }
    std::vector<std::atomic<bool>> replica_ok;
    std::vector<std::atomic<int>> outstanding;
    std::vector<std::atomic<int64_t>> lag_bytes, lag_ms;
    std::atomic<bool> primary_ok{true};
    std::atomic<int64_t> primary_down_since{0};  // steady_clock ticks; 0 while up
    std::atomic<int> promoted{-1};
    std::atomic<uint32_t> next{0};
  };

  // ForRead's choice among the replicas (and the primary for `read_from: any`) of `shard`,
  // only those in the proxy's zone when `local_only`; nullptr when there is no candidate.
  // `start`: the read's step of the round robin.
  const conf::Endpoint* Pick(int shard, bool local_only, uint32_t start, bool* replica);

  conf::DatabaseConfig db_;  // a copy: endpoints stay valid as long as the topology
  std::string zone_;
  std::shared_ptr<const routing::ShardMap> map_;
  std::vector<std::unique_ptr<ShardState>> shards_;
};

}  // namespace shardgate::proxy
