// Keeps the caches of `store:` directory routers honest: LISTEN shardgate_directory on the
// primary of each store's shard. NOTIFY shardgate_directory, '<router>' drops every cached key
// of that router; '<router> <key>' drops one key. Every (re)connection drops all the cached keys
// of the routers stored there, since notifications sent while nobody listened are lost.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "proxy/topology.h"

namespace shardgate::proxy {

class Runtime;

// One listener per shard holding a store; returns at once when the map has none. Each runs
// until `runtime` no longer serves `topology` (a reload replaced it) or shutdown.
boost::asio::awaitable<void> RunDirectoryListeners(Runtime& runtime, std::string database,
                                                   std::shared_ptr<Topology> topology);

}  // namespace shardgate::proxy
