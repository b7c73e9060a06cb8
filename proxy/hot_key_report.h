// The hot keys of the sharded databases, summed over the workers' sketches: SHOW HOT KEYS and
// the shardgate_hot_key_queries metric read this.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/runtime.h"

namespace shardgate::proxy {

struct HotKeyRow {
  std::string database, table, key;
  std::string shard;         // the shard the current map routes the key to ("" when unknown)
  uint64_t queries = 0;      // routed statements with this key (recent: halved every minute)
  uint64_t error = 0;        // queries overestimates by at most this
  uint64_t table_total = 0;  // routed keys of the table in the same window
};

// The `top` hottest keys of each table of each sharded database (of `database` only when not
// empty), ordered by database, table, then queries descending. Runs on the workers' threads in
// turn (VisitWorkers), from a coroutine on any worker.
boost::asio::awaitable<std::vector<HotKeyRow>> CollectHotKeys(Runtime& runtime, size_t top,
                                                              std::string_view database);

}  // namespace shardgate::proxy
