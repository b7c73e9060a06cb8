// QueryCache: entries with TTL and LRU under a memory bound, tag indexes, and the write slots
// that keep fills from storing what a concurrent write made stale.
#include "proxy/query_cache.h"

#include "absl/strings/str_cat.h"
#include "proxy/strings.h"

namespace shardgate::proxy {
namespace {

// Bytes an entry is charged beyond its key and answer (map node, list node, index entries).
constexpr size_t kEntryOverhead = 160;
// Slots kept before the idle ones are forgotten.
constexpr size_t kMaxSlots = 100000;

std::string TagKey(const CacheTag& tag) {
  return absl::StrCat(Av(tag.table), absl::string_view("\0", 1),
                      tag.key ? Av(*tag.key) : absl::string_view("*"));
}

std::string SlotKey(std::string_view table, std::string_view what) {
  return absl::StrCat(Av(table), absl::string_view("\0", 1), Av(what));
}

}  // namespace

std::shared_ptr<const std::string> QueryCache::Lookup(std::string_view key, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(Av(key));
  if (it == entries_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  if (it->second.expires <= now) {
    EraseLocked(it->first);
    ++stats_.misses;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  ++stats_.hits;
  return it->second.answer;
}

void QueryCache::Configure(Limits limits) {
  std::lock_guard lock(mutex_);
  limits_ = limits;
  while (stats_.bytes > limits_.memory && !lru_.empty()) {
    EraseLocked(std::string(lru_.back()));
    ++stats_.evicted;
  }
}

uint64_t QueryCache::BeginFill() {
  std::lock_guard lock(mutex_);
  return clock_;
}

bool QueryCache::RacedLocked(const std::vector<CacheTag>& tags, uint64_t token) const {
  if (token < floor_) return true;
  auto overlapped = [&](const std::string& slot_key) {
    auto it = slots_.find(slot_key);
    return it != slots_.end() && (it->second.running > 0 || it->second.last > token);
  };
  for (const CacheTag& tag : tags) {
    if (tag.key) {
      // A keyed read is made stale by writes of its key and by writes without a key.
      if (overlapped(SlotKey(tag.table, *tag.key)) || overlapped(SlotKey(tag.table, "#all"))) {
        return true;
      }
    } else if (overlapped(SlotKey(tag.table, "#any"))) {
      return true;  // a read of the whole table: by any write of it
    }
  }
  return false;
}

bool QueryCache::Store(std::string key, std::string answer, std::vector<CacheTag> tags,
                       std::chrono::milliseconds ttl, uint64_t token, Clock::time_point now) {
  const size_t bytes = key.size() + answer.size() + kEntryOverhead;
  std::lock_guard lock(mutex_);
  if (answer.size() > limits_.max_entry || bytes > limits_.memory || ttl.count() <= 0) {
    return false;
  }
  if (RacedLocked(tags, token)) {
    ++stats_.raced;
    return false;
  }
  if (entries_.contains(key)) EraseLocked(key);
  while (stats_.bytes + bytes > limits_.memory && !lru_.empty()) {
    EraseLocked(std::string(lru_.back()));
    ++stats_.evicted;
  }
  for (const CacheTag& tag : tags) {
    index_[TagKey(tag)].insert(key);
    index_[tag.table].insert(key);
  }
  lru_.push_front(key);
  Entry entry;
  entry.answer = std::make_shared<const std::string>(std::move(answer));
  entry.expires = now + ttl;
  entry.tags = std::move(tags);
  entry.lru = lru_.begin();
  entry.bytes = bytes;
  entries_.emplace(std::move(key), std::move(entry));
  stats_.bytes += bytes;
  ++stats_.entries;
  ++stats_.stores;
  return true;
}

void QueryCache::EraseLocked(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& entry = it->second;
  for (const CacheTag& tag : entry.tags) {
    for (const std::string& index_key : {TagKey(tag), tag.table}) {
      auto idx = index_.find(index_key);
      if (idx == index_.end()) continue;
      idx->second.erase(key);
      if (idx->second.empty()) index_.erase(idx);
    }
  }
  lru_.erase(entry.lru);
  stats_.bytes -= entry.bytes;
  --stats_.entries;
  entries_.erase(it);
}

void QueryCache::InvalidateLocked(const CacheTag& tag) {
  // A keyed write: the entries of that key and the table's keyless ones. A keyless write: every
  // entry of the table.
  std::vector<std::string> doomed;
  auto collect = [&](const std::string& index_key) {
    auto idx = index_.find(index_key);
    if (idx == index_.end()) return;
    doomed.insert(doomed.end(), idx->second.begin(), idx->second.end());
  };
  if (tag.key) {
    collect(TagKey(tag));
    collect(TagKey(CacheTag{tag.table, std::nullopt}));
  } else {
    collect(tag.table);
  }
  for (const std::string& key : doomed) {
    if (entries_.contains(key)) {
      EraseLocked(key);
      ++stats_.invalidated;
    }
  }
}

void QueryCache::WriteLocked(const std::vector<CacheTag>& tags, int delta) {
  if (delta > 0 && slots_.size() > kMaxSlots) {
    // Forget the idle slots; fills that began before now cannot be checked against them.
    absl::erase_if(slots_, [](const auto& slot) { return slot.second.running == 0; });
    floor_ = ++clock_;
  }
  for (const CacheTag& tag : tags) {
    const uint64_t now = ++clock_;
    for (const std::string& slot_key :
         {tag.key ? SlotKey(tag.table, *tag.key) : SlotKey(tag.table, "#all"),
          SlotKey(tag.table, "#any")}) {
      Slot& slot = slots_[slot_key];
      slot.running += delta;
      slot.last = now;
    }
    InvalidateLocked(tag);
  }
}

void QueryCache::BeginWrite(const std::vector<CacheTag>& tags) {
  std::lock_guard lock(mutex_);
  WriteLocked(tags, 1);
}

void QueryCache::EndWrite(const std::vector<CacheTag>& tags) {
  std::lock_guard lock(mutex_);
  WriteLocked(tags, -1);
}

QueryCache::Stats QueryCache::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace shardgate::proxy
