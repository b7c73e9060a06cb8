// Sums the per-worker hot-key sketches (copied on their threads, merged here) and names each
// key's shard with the database's current map.
#include "proxy/hot_key_report.h"

#include <map>
#include <utility>

#include "proxy/topology.h"
#include "proxy/worker.h"
#include "routing/hot_keys.h"
#include "routing/shard_map.h"

namespace shardgate::proxy {

boost::asio::awaitable<std::vector<HotKeyRow>> CollectHotKeys(Runtime& runtime, size_t top,
                                                              std::string_view database) {
  // (database, table) -> a copy of each worker's sketch.
  std::map<std::pair<std::string, std::string>, std::vector<routing::HotKeySketch>> copies;
  co_await VisitWorkers(runtime.workers, [&](Worker& w) {
    for (const auto& db : w.all_hot_keys()) {
      if (!database.empty() && db.first != database) continue;
      for (const auto& table : db.second) {
        copies[{db.first, table.first}].push_back(table.second);
      }
    }
  });
  std::vector<HotKeyRow> rows;
  for (const auto& entry : copies) {
    const std::string& db = entry.first.first;
    const std::string& table_name = entry.first.second;
    std::vector<const routing::HotKeySketch*> sketches;
    uint64_t total = 0;
    for (const auto& s : entry.second) {
      sketches.push_back(&s);
      total += s.total();
    }
    const routing::ShardMap::Table* table = nullptr;
    std::shared_ptr<Topology> topology = runtime.topology(db);
    std::shared_ptr<const routing::ShardMap> map = topology ? topology->map() : nullptr;
    if (map) {
      auto it = map->tables().find(table_name);
      if (it != map->tables().end()) table = &it->second;
    }
    for (routing::HotKey& hk : routing::MergeHotKeys(sketches, top)) {
      if (hk.count == 0) continue;  // decayed away
      HotKeyRow row{db, table_name, hk.key.ToString(), "", hk.count, hk.error, total};
      if (table && table->router) {
        auto shard = table->router->Route(hk.key);
        if (shard.ok()) row.shard = map->shard_name(*shard);
      }
      rows.push_back(std::move(row));
    }
  }
  co_return rows;
}

}  // namespace shardgate::proxy
