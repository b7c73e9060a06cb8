// The Router interface (a shard-key value -> a shard), the context routers are built in, and the
// registry that finds a router's factory by its YAML `type`.
//
// API: Router::Route(key) -> shard index | error; Router::Shards() -> the shards it spans;
// MakeRouter(config, context) builds and validates one (FILE:LINE:COLUMN errors);
// RouterTypes() lists the registered names; Router::OwnerSql(column, shard_names) -> the same
// routing as an SQL expression. A new router is one file defining its factory and one line in
// router_registry.cc.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "conf/config.h"
#include "conf/node.h"
#include "routing/key_value.h"

namespace shardgate::routing {

class DirectoryStore;
struct DirectoryStoreSpec;

// Routers are immutable after construction and shared between threads (a ShardMap snapshot);
// Route() is thread-safe. Shard indexes are positions in the database's `shards:` list.
class Router {
 public:
  virtual ~Router() = default;

  const std::string& name() const { return name_; }
  const std::string& type() const { return type_; }
  // The type every key is converted to before Route (`key_type:` or the router's default).
  KeyType key_type() const { return key_type_; }

  // The shard owning `key` (of key_type()). An unknown key is an error or the configured
  // default, never "every shard".
  virtual absl::StatusOr<int> Route(const KeyValue& key) const = 0;
  // Every shard this router can return, ascending: where an unrestricted statement goes.
  virtual const std::vector<int>& Shards() const = 0;
  // One line for `shardctl route` and SHOW ROUTE: "hash_ring(3 shards, 256 vnodes)".
  virtual std::string Describe() const = 0;

  // An SQL expression (PostgreSQL 15) that evaluates, for a row whose shard-key column is
  // `key_sql` (an already-quoted column reference such as "\"user_id\""), to the NAME (text) of
  // the shard Route() returns for that key, exactly, so that resharding tools can select, count
  // and checksum a shard's rows on the server. A NULL key yields NULL (the proxy rejects NULL
  // shard keys before Route). `shard_names[i]` is the name of shard index i. Errors (0A000)
  // for what cannot be expressed (a directory router with a `store:` table): the caller then
  // says so.
  virtual absl::StatusOr<std::string> OwnerSql(
      std::string_view key_sql, const std::vector<std::string>& shard_names) const = 0;

 protected:
  Router(std::string name, std::string type, KeyType key_type)
      : name_(std::move(name)), type_(std::move(type)), key_type_(key_type) {}

 private:
  std::string name_, type_;
  KeyType key_type_;
};

// Opens the store of a `directory` router whose keys live in a table on a metadata server.
// Provided by the proxy (which owns the I/O); absent in tools that only validate.
using DirectoryStoreFactory =
    std::function<absl::StatusOr<std::shared_ptr<DirectoryStore>>(const DirectoryStoreSpec&)>;

// What a router factory gets besides its own settings.
struct RouterContext {
  const conf::DatabaseConfig* database = nullptr;
  std::map<std::string, int, std::less<>> shard_index;  // shard name -> index
  DirectoryStoreFactory directory_stores;                // may be empty
  // The routers of the database built so far, by name (a directory's `fallback:`); may be empty.
  std::function<const Router*(std::string_view name)> find_router;

  // The index of shard `name` given at `mark`, or a FILE:LINE:COLUMN error naming the shards.
  absl::StatusOr<int> ShardAt(const conf::Node& name_node, std::string_view what) const;
};

using RouterFactory = absl::StatusOr<std::unique_ptr<Router>> (*)(const conf::RouterConfig&,
                                                                    const RouterContext&);

struct RouterType {
  std::string_view name;
  RouterFactory factory;
};

// The registered router types (router_registry.cc).
const std::vector<RouterType>& RouterTypes();

// Builds router `config` with the factory registered for config.type; unknown types are a
// FILE:LINE:COLUMN error listing the known ones.
absl::StatusOr<std::unique_ptr<Router>> MakeRouter(const conf::RouterConfig& config,
                                                   const RouterContext& context);

// Helpers for router factories validating their YAML.
namespace router_settings {
// Errors for keys of `settings` not in `allowed` ("type" is always allowed).
absl::Status CheckKeys(const conf::Node& settings, std::string_view router,
                       std::initializer_list<std::string_view> allowed);
// `key_type:` if present (integer | bigint | int | text | varchar | uuid), else `fallback`.
absl::StatusOr<KeyType> KeyTypeSetting(const conf::Node& settings, KeyType fallback);
// The `shards:` list as indexes (at least one, no duplicates); absent = every shard.
absl::StatusOr<std::vector<int>> ShardList(const conf::Node& settings, const RouterContext& ctx,
                                           std::string_view router);
// A non-negative integer scalar.
absl::StatusOr<int64_t> IntValue(const conf::Node& node, std::string_view what);
}  // namespace router_settings

// Helpers for the routers' OwnerSql (router.cc).
namespace owner_sql {
// `key_sql` converted as Route's keys are: "((k)::int8)", "((k)::text COLLATE \"C\")" (text
// compares and hashes bytewise, as KeyValue does), "((k)::uuid)".
std::string Key(std::string_view key_sql, KeyType type);
// A string literal that reads back as `text` whatever standard_conforming_strings says.
std::string Literal(std::string_view text);
// `key` as a constant of its SQL type: 42, 'acme', 'a0ee...'::uuid.
std::string Literal(const KeyValue& key);
// The quoted name of shard `shard`; 22023 when `shard_names` has no such index.
absl::StatusOr<std::string> ShardName(const std::vector<std::string>& shard_names, int shard);
// ARRAY['s0', 's2', ...]::text[] of the names of `shards`, in that order.
absl::StatusOr<std::string> NameArray(const std::vector<std::string>& shard_names,
                                      const std::vector<int>& shards);
// `value` for a non-NULL `key`, else NULL: what a catch-all (default: shard) becomes.
std::string UnlessNull(std::string_view key, std::string_view value);
}  // namespace owner_sql

// The ring position of point `i` of shard `shard_name` (hash_ring_router.cc).
uint64_t HashRingPoint(std::string_view shard_name, int64_t i);

// Factories of the built-in routers (one file each).
absl::StatusOr<std::unique_ptr<Router>> MakeModuloRouter(const conf::RouterConfig&,
                                                         const RouterContext&);
absl::StatusOr<std::unique_ptr<Router>> MakeRangeRouter(const conf::RouterConfig&,
                                                        const RouterContext&);
absl::StatusOr<std::unique_ptr<Router>> MakeDirectoryRouter(const conf::RouterConfig&,
                                                            const RouterContext&);
absl::StatusOr<std::unique_ptr<Router>> MakeHashRingRouter(const conf::RouterConfig&,
                                                           const RouterContext&);

}  // namespace shardgate::routing
