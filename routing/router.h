// The Router interface (a shard-key value -> a shard), the context routers are built in, and the
// registry that finds a router's factory by its YAML `type`.
//
// API: Router::Route(key) -> shard index | error; Router::Shards() -> the shards it spans;
// MakeRouter(config, context) builds and validates one (FILE:LINE:COLUMN errors);
// RouterTypes() lists the registered names. A new router is one file defining its factory and
// one line in router_registry.cc.
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
