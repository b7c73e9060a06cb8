// The store behind a `directory` router whose key -> shard entries live in a table on a
// metadata server. routing/ does no I/O: the proxy implements DirectoryStore with a real
// connection; tests use MemoryDirectoryStore.
//
// API: DirectoryStore::Lookup(key) -> shard name | nullopt; DirectoryStoreSpec (from YAML);
// InvalidateDirectory(router, key) / InvalidateDirectory(router) for LISTEN/NOTIFY. Without a
// DirectoryStore (the proxy, whose I/O is asynchronous), a key not cached fails Route with a
// DirectoryMiss status; the caller reads the row itself (DirectoryLookupSql on the spec's
// shard), caches it with PrimeDirectory and routes again.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "routing/key_value.h"

namespace shardgate::routing {

class Router;

// `store: {shard: s0, table: shard_directory, key_column: key, shard_column: shard}`.
struct DirectoryStoreSpec {
  std::string router;      // the router's name
  std::string shard;       // the shard whose primary holds the table
  int shard_index = 0;
  std::string table = "shard_directory";
  std::string key_column = "key";
  std::string shard_column = "shard";
  KeyType key_type = KeyType::kText;
};

class DirectoryStore {
 public:
  virtual ~DirectoryStore() = default;
  // The shard name stored for `key`, nullopt when the table has no row for it. Called only on
  // a cache miss of the router; may block, and may be called from several threads.
  virtual absl::StatusOr<std::optional<std::string>> Lookup(const KeyValue& key) = 0;
};

// A thread-safe in-memory store; counts lookups so tests can see the cache working.
class MemoryDirectoryStore final : public DirectoryStore {
 public:
  void Set(const KeyValue& key, std::string shard);
  void Erase(const KeyValue& key);
  absl::StatusOr<std::optional<std::string>> Lookup(const KeyValue& key) override;
  int lookups() const;

 private:
  mutable std::mutex mu_;
  std::map<KeyValue, std::string> entries_;
  int lookups_ = 0;
};

// Drops cached entries of a directory router (all of them, or one key) so the next Route asks
// the store again. Returns false when `router` is not a directory router with a store.
bool InvalidateDirectory(const Router& router);
bool InvalidateDirectory(const Router& router, const KeyValue& key);

// A key of a `store:` directory that is not cached (no DirectoryStore to ask): SQLSTATE 55000,
// with the router and key in a payload, so that it reaches the planner's caller unchanged.
struct DirectoryMiss {
  std::string router;
  KeyValue key;
};
absl::Status DirectoryMissStatus(const DirectoryStoreSpec& spec, const KeyValue& key);
std::optional<DirectoryMiss> AsDirectoryMiss(const absl::Status& status);
// The store of a directory router; nullptr for any other router.
const DirectoryStoreSpec* DirectorySpecOf(const Router& router);
// The statement that reads `key`'s shard from the store's table (one text column, no row when
// the table does not list the key). The key is compared as a literal of the column's own type,
// so an index on the key column serves it.
std::string DirectoryLookupSql(const DirectoryStoreSpec& spec, const KeyValue& key);
// Caches what the store said of `key` (nullopt: not listed, the router's default applies).
// `read_at`: DirectoryGeneration() taken before the read; when an invalidation (a NOTIFY) came
// since, the answer may be older than the change and is not cached (the caller's next Route
// misses and reads again). 22023 when the table names a shard the map does not have; 55000
// when `router` has no store.
uint64_t DirectoryGeneration(const Router& router);
absl::Status PrimeDirectory(const Router& router, const KeyValue& key,
                            const std::optional<std::string>& shard,
                            std::optional<uint64_t> read_at = std::nullopt);

}  // namespace shardgate::routing
