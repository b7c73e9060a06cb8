// Building a ShardMap: routers through the registry, table rules checked against them. Every
// problem is collected so that `shardctl check` reports them all at once.
#include "routing/shard_map.h"

#include <cstring>

#include "routing/text_util.h"

namespace shardgate::routing {

absl::StatusOr<std::shared_ptr<const ShardMap>> ShardMap::Build(
    const conf::DatabaseConfig& db, const DirectoryStoreFactory& stores) {
  std::shared_ptr<ShardMap> map(new ShardMap());
  map->database_ = db.name;
  map->sharded_ = db.Sharded();
  map->read_from_ = db.read_from;
  RouterContext ctx;
  ctx.database = &db;
  ctx.directory_stores = stores;
  std::vector<std::string> problems;
  for (size_t i = 0; i < db.shards.size(); ++i) {
    map->shard_names_.push_back(db.shards[i].name);
    map->all_shards_.push_back(static_cast<int>(i));
    ctx.shard_index.emplace(db.shards[i].name, static_cast<int>(i));
  }
  if (map->shard_names_.empty()) {
    return conf::ErrorAt(db.mark, Cat("database '", db.name, "' has no shards"));
  }
  if (db.default_shard) {
    auto it = ctx.shard_index.find(*db.default_shard);
    if (it == ctx.shard_index.end()) {
      problems.push_back(Message(conf::ErrorAt(db.mark, Cat("default_shard '", *db.default_shard,
                                                    "' is not a shard of database '", db.name,
                                                    "'"))));
    } else {
      map->default_shard_ = it->second;
    }
  }
  ctx.find_router = [&map, &db](std::string_view name) -> const Router* {
    auto config = db.routers.find(std::string(name));
    if (config == db.routers.end() || config->second.settings.Find("fallback") != nullptr) {
      return nullptr;  // unknown, or a fallback router itself: no chains
    }
    auto it = map->routers_by_name_.find(name);
    return it == map->routers_by_name_.end() ? nullptr : it->second;
  };
  // Routers with a `fallback:` (directories in front of another router) after the others, so
  // that the router they fall back on exists; a fallback cannot have a fallback itself.
  for (bool with_fallback : {false, true}) {
    for (const auto& [name, config] : db.routers) {
      if ((config.settings.Find("fallback") != nullptr) != with_fallback) continue;
      auto router = MakeRouter(config, ctx);
      if (!router.ok()) {
        problems.push_back(Message(router.status()));
        continue;
      }
      map->routers_by_name_.emplace(name, router->get());
      map->routers_.push_back(std::move(*router));
    }
  }
  for (const auto& [name, t] : db.tables) {
    Table table;
    table.name = Lower(name);
    table.reference = t.reference;
    table.cache = t.cache;
    table.generated_key = t.generated_key;
    table.key = Lower(t.key);
    if (!t.reference) {
      auto it = map->routers_by_name_.find(t.router);
      if (it == map->routers_by_name_.end()) {
        // An unknown name is reported by conf/; a router that failed to build was reported above.
        if (!db.routers.count(t.router)) {
          problems.push_back(Message(conf::ErrorAt(t.mark, Cat("table '", name, "' names unknown router '",
                                                       t.router, "'"))));
        }
        continue;
      }
      if (table.key.empty()) {
        problems.push_back(Message(
            conf::ErrorAt(t.mark, Cat("table '", name, "' is sharded but has no key"))));
        continue;
      }
      table.router = it->second;
    }
    map->tables_.emplace(table.name, std::move(table));
  }
  for (const auto& [name, table] : map->tables_) {
    const std::string_view n = name;
    if (n.starts_with("public.")) {
      map->by_name_.insert_or_assign(n.substr(7), &table);
    } else if (n.find('.') == std::string_view::npos) {
      map->by_name_.try_emplace(n, &table);
    }
  }
  if (!problems.empty()) {
    std::string all;
    for (const std::string& p : problems) all += (all.empty() ? "" : "\n") + p;
    return absl::InvalidArgumentError(all);
  }
  return std::shared_ptr<const ShardMap>(std::move(map));
}

std::optional<int> ShardMap::FindShard(std::string_view name) const {
  for (size_t i = 0; i < shard_names_.size(); ++i) {
    if (shard_names_[i] == name) return static_cast<int>(i);
  }
  return std::nullopt;
}

const Router* ShardMap::router(std::string_view name) const {
  auto it = routers_by_name_.find(name);
  return it == routers_by_name_.end() ? nullptr : it->second;
}

const ShardMap::Table* ShardMap::FindTable(std::string_view schema, std::string_view name) const {
  if (schema.empty() || schema == "public") {  // "public.x", else "x": this runs per statement
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  // "schema.name" in a stack buffer (names are at most 63 bytes each in PostgreSQL; longer
  // ones are built on the heap).
  char buf[160];
  std::string heap;
  std::string_view qualified;
  if (schema.size() + 1 + name.size() > sizeof buf) {
    qualified = heap = Cat(schema, ".", name);
  } else {
    std::memcpy(buf, schema.data(), schema.size());
    buf[schema.size()] = '.';
    std::memcpy(buf + schema.size() + 1, name.data(), name.size());
    qualified = std::string_view(buf, schema.size() + 1 + name.size());
  }
  auto it = tables_.find(qualified);
  return it == tables_.end() ? nullptr : &it->second;
}

}  // namespace shardgate::routing
