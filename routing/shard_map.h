// ShardMap: one logical database's shards, routers (built and validated from conf/) and table
// rules, as an immutable snapshot shared between threads.
//
// API: ShardMap::Build(database_config, directory_stores) -> shared_ptr<const ShardMap> or every
// router/table problem as "FILE:LINE:COLUMN: message" lines; FindTable(schema, name);
// FindShard(name); router(name).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "conf/config.h"
#include "routing/router.h"

namespace shardgate::routing {

class ShardMap {
 public:
  struct Table {
    std::string name;  // as configured (lower-case)
    std::string key;   // lower-case key column; empty for reference tables
    const Router* router = nullptr;
    bool reference = false;
    bool generated_key = false;  // an INSERT may leave the key to the shard (any one)
    std::chrono::milliseconds cache{0};  // the query cache's TTL for reads of it (0: none)
  };

  static absl::StatusOr<std::shared_ptr<const ShardMap>> Build(
      const conf::DatabaseConfig& database, const DirectoryStoreFactory& stores = {});

  const std::string& database() const { return database_; }
  int shard_count() const { return static_cast<int>(shard_names_.size()); }
  const std::string& shard_name(int index) const { return shard_names_.at(index); }
  std::optional<int> FindShard(std::string_view name) const;
  const Router* router(std::string_view name) const;
  const std::vector<std::unique_ptr<Router>>& routers() const { return routers_; }
  const std::map<std::string, Table, std::less<>>& tables() const { return tables_; }

  // The rule for a table as written in SQL: "schema.name", or "name" for the default schema
  // (public). nullptr when the table is not listed.
  const Table* FindTable(std::string_view schema, std::string_view name) const;

  // More than one shard or any router: statements are analysed and routed. Otherwise every
  // statement goes to shard 0.
  bool sharded() const { return sharded_; }
  std::optional<int> default_shard() const { return default_shard_; }
  conf::ReadFrom read_from() const { return read_from_; }
  const std::vector<int>& all_shards() const { return all_shards_; }

 private:
  ShardMap() = default;
  // by_name_ views tables_' keys: a ShardMap stays where Build made it.
  ShardMap(const ShardMap&) = delete;
  ShardMap& operator=(const ShardMap&) = delete;

  std::string database_;
  std::vector<std::string> shard_names_;
  std::vector<int> all_shards_;
  std::vector<std::unique_ptr<Router>> routers_;
  std::map<std::string, const Router*, std::less<>> routers_by_name_;
  std::map<std::string, Table, std::less<>> tables_;
  // FindTable's one hash lookup for a name without a schema or in public: "x" -> the rule of
  // "public.x", else of "x" (a rule for "public.x" wins over one for "x").
  absl::flat_hash_map<std::string_view, const Table*> by_name_;
  bool sharded_ = false;
  std::optional<int> default_shard_;
  conf::ReadFrom read_from_ = conf::ReadFrom::kReplicas;
};

}  // namespace shardgate::routing
