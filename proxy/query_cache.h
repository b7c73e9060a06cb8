// The query result cache of a database (issue 10): the answers of cacheable reads, kept with a
// TTL under a memory bound (LRU), and invalidated by the writes that pass through the proxy.
//
// Entries depend on tags: a table and one of its shard keys, or the whole table when the read
// named no key. A write tags what it touches the same way. Correctness rests on two rules:
//   - a write invalidates its tags' entries when it is planned and again when its transaction
//     ends, and while it is under way no entry it could make stale is stored;
//   - a fill (a miss being read from a server) remembers when it began, and its answer is
//     dropped if a write on its tags began or ended since.
// So once a write's transaction is over (before the writer hears so), no entry older than it
// can be found or stored. Fills must read the primary: a replica could still lag behind a
// write whose transaction is over.
//
// Shared by every worker of the process: one mutex, taken only for cacheable statements and
// for writes of a database that has the cache on.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace shardgate::proxy {

// What an entry depends on, or what a write touches.
struct CacheTag {
  std::string table;               // as in the shard map (lower case)
  std::optional<std::string> key;  // one shard key ("i42", "tacme"...); none = every row
  friend bool operator==(const CacheTag&, const CacheTag&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const CacheTag& tag) {
    return H::combine(std::move(h), tag.table, tag.key);
  }
};

class QueryCache {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    size_t memory = 64u << 20;    // bytes of answers and keys held, at most
    size_t max_entry = 1u << 20;  // a larger answer is not cached
  };
  struct Stats {
    uint64_t hits = 0, misses = 0, stores = 0;
    uint64_t raced = 0;        // fills dropped because a write overlapped them
    uint64_t invalidated = 0;  // entries removed by writes
    uint64_t evicted = 0;      // entries removed for memory
    uint64_t entries = 0, bytes = 0;
  };

  explicit QueryCache(Limits limits) : limits_(limits) {}
  QueryCache(const QueryCache&) = delete;
  QueryCache& operator=(const QueryCache&) = delete;

  Limits limits() const {
    std::lock_guard lock(mutex_);
    return limits_;
  }
  // New limits (a reload): entries beyond the new memory bound are evicted.
  void Configure(Limits limits);

  // The answer stored under `key` and not expired at `now`, or null (counted as a miss).
  std::shared_ptr<const std::string> Lookup(std::string_view key, Clock::time_point now);
  // A miss is about to be read from a server: the token to hand to Store.
  uint64_t BeginFill();
  // Stores `answer` unless a write on `tags` began or ended after BeginFill returned `token`, or
  // one is under way, or the answer is larger than max_entry. true when stored.
  bool Store(std::string key, std::string answer, std::vector<CacheTag> tags,
             std::chrono::milliseconds ttl, uint64_t token, Clock::time_point now);
  // A write on `tags` begins (planned, not yet sent) / ends (its transaction is over). Every
  // BeginWrite must be followed by one EndWrite with the same tags.
  void BeginWrite(const std::vector<CacheTag>& tags);
  void EndWrite(const std::vector<CacheTag>& tags);

  Stats stats() const;

 private:
  struct Entry {
    std::shared_ptr<const std::string> answer;
    Clock::time_point expires;
    std::vector<CacheTag> tags;
    std::list<std::string>::iterator lru;  // position in lru_ (front: most recent)
    size_t bytes = 0;
  };
  // The writes on one tag (or on a whole table): how many are under way, and the clock value of
  // the last one that began or ended.
  struct Slot {
    int running = 0;
    uint64_t last = 0;
  };

  // The *Locked functions run with mutex_ held.
  void WriteLocked(const std::vector<CacheTag>& tags, int delta);
  void InvalidateLocked(const CacheTag& tag);
  void EraseLocked(const std::string& key);
  bool RacedLocked(const std::vector<CacheTag>& tags, uint64_t token) const;

  mutable std::mutex mutex_;  // guards everything below
  Limits limits_;
  absl::flat_hash_map<std::string, Entry> entries_;
  std::list<std::string> lru_;
  // "table\0key", "table\0*" (keyless entries) and "table" (every entry of the table) -> keys.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> index_;
  // "table\0key" (writes of that key), "table\0#all" (keyless writes), "table\0#any" (every
  // write of the table).
  absl::flat_hash_map<std::string, Slot> slots_;
  uint64_t clock_ = 0;
  // Slots with nothing running are forgotten when there are too many; fills that began before
  // that are then refused (they cannot be checked any more).
  uint64_t floor_ = 0;
  Stats stats_;
};

}  // namespace shardgate::proxy
