// Health checks of every server of a sharded database: replicas that fail or lag beyond
// max_replica_lag stop getting reads; a replica found promoted while the primary is down takes
// the writes.
#pragma once

#include <memory>

#include <boost/asio/awaitable.hpp>

#include "conf/config.h"
#include "proxy/topology.h"

namespace shardgate::proxy {

class Runtime;

// Runs until `runtime` no longer serves `topology` (a reload replaced it) or shutdown.
boost::asio::awaitable<void> RunHealthChecks(Runtime& runtime, std::string database,
                                             std::shared_ptr<Topology> topology);

// "16/B374D848" -> 0x16B374D848; 0 when malformed.
uint64_t ParseLsn(std::string_view lsn);

}  // namespace shardgate::proxy
