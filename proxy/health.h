// Health checks of every server of a sharded database: replicas that fail or lag beyond
// max_replica_lag stop getting reads; a replica found promoted while the primary is down takes
// the writes.
#pragma once

#include <memory>

#include <boost/asio/awaitable.hpp>

#include "conf/config.h"
#include "proxy/server_connection.h"
#include "proxy/topology.h"

namespace shardgate::proxy {

class Runtime;

// Runs until `runtime` no longer serves `topology` (a reload replaced it) or shutdown.
boost::asio::awaitable<void> RunHealthChecks(Runtime& runtime, std::string database,
                                             std::shared_ptr<Topology> topology);

// Where the proxy's own maintenance connections (health checks, two-phase recovery) log in: as
// the endpoint's user, else the first configured non-admin user with a plain password.
BackendTarget HealthTarget(const conf::Config& config, const std::string& database,
                           const std::string& shard, const conf::Endpoint& ep);

// "16/B374D848" -> 0x16B374D848; 0 when malformed.
uint64_t ParseLsn(std::string_view lsn);

}  // namespace shardgate::proxy
