// The store behind a `directory` router whose key -> shard entries live in a table on a
// metadata server. routing/ does no I/O: the proxy implements DirectoryStore with a real
// connection; tests use MemoryDirectoryStore.
//
// API: DirectoryStore::Lookup(key) -> shard name | nullopt; DirectoryStoreSpec (from YAML);
// InvalidateDirectory(router, key) / InvalidateDirectory(router) for LISTEN/NOTIFY.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

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

}  // namespace shardgate::routing
