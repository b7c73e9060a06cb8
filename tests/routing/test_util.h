// Helpers for routing tests: a ShardMap from the `databases.app` part of a YAML config.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "conf/config.h"
#include "routing/shard_map.h"

namespace shardgate::routing::testing {

// A full config around `database_yaml` (the body of databases.app, indented by 4 spaces).
inline std::string ConfigYaml(const std::string& database_yaml) {
  return "listen: {host: 127.0.0.1, port: 6432}\n"
         "users:\n  - {name: app, password: secret}\n"
         "databases:\n  app:\n" + database_yaml;
}

// Three shards s0..s2 and `extra` (routers:, tables:, ... indented by 4 spaces).
inline std::string ThreeShards(const std::string& extra) {
  return "    shards:\n"
         "      - {name: s0, primary: {host: 127.0.0.1, port: 5432}}\n"
         "      - {name: s1, primary: {host: 127.0.0.1, port: 5433}}\n"
         "      - {name: s2, primary: {host: 127.0.0.1, port: 5434}}\n" + extra;
}

// The loaded config (kept alive by the caller) and the map built from it.
struct Loaded {
  std::shared_ptr<const conf::Config> config;
  std::shared_ptr<const ShardMap> map;
};

inline absl::StatusOr<Loaded> LoadMap(const std::string& database_yaml,
                                      const DirectoryStoreFactory& stores = {}) {
  auto config = conf::LoadString(ConfigYaml(database_yaml), "test.yaml");
  if (!config.ok()) return config.status();
  const conf::DatabaseConfig* db = (*config)->FindDatabase("app");
  if (db == nullptr) return absl::NotFoundError("no database app");
  auto map = ShardMap::Build(*db, stores);
  if (!map.ok()) return map.status();
  return Loaded{*config, *map};
}

// The shard names of `map` by index: the `shard_names` argument of Router::OwnerSql.
inline std::vector<std::string> ShardNames(const ShardMap& map) {
  std::vector<std::string> names;
  for (int i = 0; i < map.shard_count(); ++i) names.push_back(map.shard_name(i));
  return names;
}

}  // namespace shardgate::routing::testing
