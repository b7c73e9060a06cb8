// One logical database from YAML: pool settings, shards with their servers, routers (kept as
// Nodes for routing/ to validate) and table rules, with the checks that span them.
#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "conf/reader.h"

namespace shardgate::conf::internal {
namespace {

const Mark& KeyMark(const Node& map, const std::string& key, const Node& value) {
  auto it = map.key_marks.find(key);
  return it != map.key_marks.end() ? it->second : value.mark;
}

Endpoint ReadEndpoint(const Node& node, const std::string& db_name, std::string_view what,
                      Problems& problems) {
  Endpoint endpoint;
  endpoint.mark = node.mark;
  MapReader r(node, problems, what);
  if (r.String("host", &endpoint.host) && endpoint.host.empty()) {
    problems.Add(r.Get("host")->mark, "'host' must not be empty");
  }
  r.Int("port", &endpoint.port, 1, 65535);
  r.String("dbname", &endpoint.dbname);
  r.String("user", &endpoint.user);
  r.String("password", &endpoint.password);
  r.String("zone", &endpoint.zone);
  // The common layout is one server database per logical database with the same name.
  if (endpoint.dbname.empty()) endpoint.dbname = db_name;
  return endpoint;
}

ShardConfig ReadShard(const Node& node, const std::string& db_name, Problems& problems) {
  ShardConfig shard;
  shard.mark = node.mark;
  MapReader r(node, problems, "shard");
  r.String("name", &shard.name, /*required=*/true);
  if (const Node* primary = r.Map("primary", /*required=*/true); primary != nullptr) {
    shard.primary = ReadEndpoint(*primary, db_name, "primary", problems);
  }
  if (const Node* replicas = r.List("replicas"); replicas != nullptr) {
    for (const Node& item : replicas->list) {
      shard.replicas.push_back(ReadEndpoint(item, db_name, "replica", problems));
    }
  }
  return shard;
}

void ReadShards(const Node& list, DatabaseConfig& db, Problems& problems) {
  for (const Node& item : list.list) {
    ShardConfig shard = ReadShard(item, db.name, problems);
    if (shard.name.empty()) continue;
    if (const ShardConfig* first = db.FindShard(shard.name); first != nullptr) {
      problems.Add(shard.mark, absl::StrCat("duplicate shard '", shard.name, "' in database '",
                                            db.name, "' (first at line ", first->mark.line, ")"));
      continue;
    }
    db.shards.push_back(std::move(shard));
  }
}

// Only `type` is checked here: each router validates its own settings (routing/), so a new
// router needs no change in conf/.
void ReadRouters(const Node& map, DatabaseConfig& db, Problems& problems) {
  for (const auto& [name, value] : map.map) {
    const Mark& mark = KeyMark(map, name, value);
    if (name.empty()) {
      problems.Add(mark, "a router name must not be empty");
      continue;
    }
    if (value.kind != Node::Kind::kMap) {
      problems.Add(value.IsNull() ? mark : value.mark,
                   absl::StrCat("router '", name, "': expected a map with a 'type'"));
      continue;
    }
    const Node* type = value.Find("type");
    if (type == nullptr || type->IsNull()) {
      problems.Add(value.mark, absl::StrCat("router '", name, "': missing required key 'type'"));
      continue;
    }
    if (type->kind != Node::Kind::kScalar || type->scalar.empty()) {
      problems.Add(type->mark, absl::StrCat("router '", name, "': 'type' must be a router name"));
      continue;
    }
    RouterConfig router;
    router.name = name;
    router.type = type->scalar;
    router.settings = value;
    router.mark = mark;
    db.routers.emplace(name, std::move(router));
  }
}

// `routers` is the database's routers: map as written (a null node when there is none).
void ReadTables(const Node& map, const Node& routers, DatabaseConfig& db, Problems& problems) {
  std::vector<std::string_view> router_names;
  for (const auto& [name, router] : routers.map) router_names.push_back(name);
  // In file order, so that of two names differing only in case the later one is the duplicate.
  std::vector<const std::pair<const std::string, Node>*> entries;
  for (const auto& entry : map.map) entries.push_back(&entry);
  std::stable_sort(entries.begin(), entries.end(), [&map](const auto* a, const auto* b) {
    const Mark& ma = KeyMark(map, a->first, a->second);
    const Mark& mb = KeyMark(map, b->first, b->second);
    return std::tie(ma.line, ma.column) < std::tie(mb.line, mb.column);
  });
  for (const auto* entry : entries) {
    const std::string& name = entry->first;
    const Node& value = entry->second;
    const Mark& mark = KeyMark(map, name, value);
    if (name.empty()) {
      problems.Add(mark, "a table name must not be empty");
      continue;
    }
    TableConfig table;
    table.name = name;
    table.mark = mark;
    std::string what = absl::StrCat("table '", name, "'");
    MapReader r(value, problems, what);
    r.String("key", &table.key);
    r.String("router", &table.router);
    r.Bool("reference", &table.reference);
    r.Bool("generated_key", &table.generated_key);
    if (r.Dur("cache", &table.cache) && table.cache.count() == 0) {
      problems.Add(r.Get("cache")->mark, absl::StrCat(what, ": cache must be greater than 0 "
                                                            "(leave it out to not cache)"));
    }
    r.Finish();
    if (!r.IsMap()) continue;
    if (table.reference) {
      if (!table.key.empty()) {
        problems.Add(mark, absl::StrCat(what, " has both a key and reference: true"));
      }
      if (!table.router.empty()) {
        problems.Add(mark, absl::StrCat(what, " has both a router and reference: true"));
      }
      if (table.generated_key) {
        problems.Add(r.Get("generated_key")->mark,
                     absl::StrCat(what, ": generated_key needs a sharded table (a key and a "
                                        "router), not reference: true"));
      }
    } else {
      if (table.key.empty()) {
        problems.Add(mark, absl::StrCat(what,
                                        " is sharded but has no key (or set reference: "
                                        "true for a copy on every shard)"));
      }
      if (table.router.empty()) {
        problems.Add(mark, absl::StrCat(what, " is sharded but names no router"));
      }
    }
    // A router that failed its own checks was reported already; only names never defined here.
    if (!table.router.empty() && routers.Find(table.router) == nullptr) {
      std::string message = absl::StrCat(what, " names unknown router '", table.router, "'");
      if (std::string close = ClosestMatch(table.router, router_names); !close.empty()) {
        absl::StrAppend(&message, "; did you mean '", close, "'?");
      }
      problems.Add(r.Get("router")->mark, std::move(message));
    }
    std::string lower = absl::AsciiStrToLower(name);
    if (auto it = db.tables.find(lower); it != db.tables.end()) {
      problems.Add(mark, absl::StrCat("duplicate table '", name, "' (same as '", it->second.name,
                                      "' at line ", it->second.mark.line, ")"));
      continue;
    }
    db.tables.emplace(std::move(lower), std::move(table));
  }
}

}  // namespace

DatabaseConfig ReadDatabase(const std::string& name, const Mark& name_mark, const Node& node,
                            Problems& problems) {
  DatabaseConfig db;
  db.name = name;
  db.mark = name_mark;
  std::string what = absl::StrCat("database '", name, "'");
  MapReader r(node, problems, what);
  r.Int("pool_size", &db.pool_size, 1);
  r.Enum("read_from", &db.read_from,
         {{"replicas", ReadFrom::kReplicas},
          {"primary", ReadFrom::kPrimary},
          {"any", ReadFrom::kAny}});
  r.Enum("replica_balance", &db.replica_balance,
         {{"round_robin", ReplicaBalance::kRoundRobin},
          {"least_outstanding", ReplicaBalance::kLeastOutstanding}});
  r.Dur("max_replica_lag", &db.max_replica_lag);
  r.Bool("prepare_reads", &db.prepare_reads);
  r.Int("max_prepared_statements", &db.max_prepared_statements, 0);
  r.Int("pipeline_reads", &db.pipeline_reads, 0, 64);
  if (r.Dur("health_check_interval", &db.health_check_interval) &&
      db.health_check_interval.count() == 0) {
    problems.Add(r.Get("health_check_interval")->mark,
                 "'health_check_interval' must be greater than 0");
  }
  if (r.Dur("health_check_timeout", &db.health_check_timeout) &&
      db.health_check_timeout.count() == 0) {
    problems.Add(r.Get("health_check_timeout")->mark,
                 "'health_check_timeout' must be greater than 0");
  }
  std::string default_shard;
  bool has_default = r.String("default_shard", &default_shard);
  if (const Node* shards = r.List("shards"); shards != nullptr) ReadShards(*shards, db, problems);
  const Node no_routers;
  const Node* routers = r.Map("routers");
  if (routers != nullptr) ReadRouters(*routers, db, problems);
  if (const Node* tables = r.Map("tables"); tables != nullptr) {
    ReadTables(*tables, routers != nullptr ? *routers : no_routers, db, problems);
  }
  if (const Node* cache = r.Get("query_cache"); cache != nullptr) {
    MapReader c(*cache, problems, absl::StrCat(what, " query_cache"));
    int64_t memory = static_cast<int64_t>(db.query_cache.memory);
    if (c.Int("memory", &memory, 1 << 16, int64_t{1} << 40)) {
      db.query_cache.memory = static_cast<uint64_t>(memory);
    }
    int64_t max_entry = static_cast<int64_t>(db.query_cache.max_entry);
    if (c.Int("max_entry", &max_entry, 1, int64_t{1} << 40)) {
      db.query_cache.max_entry = static_cast<uint64_t>(max_entry);
    }
    c.Finish();
    db.query_cache.enabled = c.IsMap();
  }
  for (const auto& [table_name, table] : db.tables) {
    if (table.cache.count() > 0) db.query_cache.enabled = true;
  }
  if (const Node* limit = r.Get("rate_limit"); limit != nullptr) {
    db.rate_limit = ReadRateLimit(*limit, problems, absl::StrCat(what, " rate_limit"));
  }
  r.Finish();
  if (!r.IsMap() && !node.IsNull()) return db;

  const Node* shards = r.Get("shards");
  if (db.shards.empty() &&
      (shards == nullptr || shards->kind != Node::Kind::kList || shards->list.empty())) {
    problems.Add(name_mark, absl::StrCat(what, " has no shards"));
  }
  if (has_default) {
    if (db.FindShard(default_shard) != nullptr) {
      db.default_shard = default_shard;
    } else {
      std::vector<std::string_view> names;
      for (const ShardConfig& shard : db.shards) names.push_back(shard.name);
      std::string message =
          absl::StrCat("'default_shard' names unknown shard '", default_shard, "' in ", what);
      if (std::string close = ClosestMatch(default_shard, names); !close.empty()) {
        absl::StrAppend(&message, "; did you mean '", close, "'?");
      }
      problems.Add(r.Get("default_shard")->mark, std::move(message));
    }
  }
  return db;
}

}  // namespace shardgate::conf::internal
