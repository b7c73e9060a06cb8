// A space-saving top-k sketch (Metwally, Agrawal, El Abbadi 2005) of the shard keys a table is
// routed by: the hot keys, with counts that overestimate by at most a stated error.
//
// API: HotKeySketch(capacity).Add(key), Top(n), Halve(), total(); MergeHotKeys(sketches, n) sums
// several sketches (one per worker thread) into one ranking. Pure: no I/O, no locking (a sketch
// belongs to one thread; readers merge copies).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "routing/key_value.h"

namespace shardgate::routing {

// One ranked key: `count` overestimates the key's true frequency by at most `error`
// (count - error <= true frequency <= count).
struct HotKey {
  KeyValue key;
  uint64_t count = 0;
  uint64_t error = 0;
};

// Contract: at most `capacity` counters. Every key whose frequency in the stream exceeds
// total()/capacity is present, and each count overestimates by at most its error, which is at
// most total()/capacity. Add is O(log capacity); once the sketch is full, Add of an integer key
// allocates nothing (the counter replaced reuses its slot; text keys reuse the string's storage
// when it is large enough).
class HotKeySketch {
 public:
  static constexpr uint32_t kDefaultCapacity = 64;

  explicit HotKeySketch(uint32_t capacity = kDefaultCapacity);

  void Add(const KeyValue& key, uint64_t weight = 1);
  // The n highest counts, highest first (ties by key, so the order is stable).
  std::vector<HotKey> Top(size_t n) const;
  // Halves every count and error and the total: older traffic weighs half as much, so "hot"
  // means recent. The guarantees hold for the halved stream (up to rounding).
  void Halve();
  void Clear();

  bool Contains(const KeyValue& key) const;
  uint64_t total() const { return total_; }
  uint32_t capacity() const { return capacity_; }
  size_t size() const { return slots_.size(); }
  // The smallest count once full (0 before): any key absent from the sketch occurred at most
  // this often.
  uint64_t min_count() const;

 private:
  struct Slot {
    KeyValue key;
    uint64_t count = 0;
    uint64_t error = 0;
    uint32_t heap_pos = 0;
  };
  // Min-heap of slot indices ordered by count.
  void SiftUp(uint32_t pos);
  void SiftDown(uint32_t pos);
  void Swap(uint32_t a, uint32_t b);

  uint32_t capacity_;
  uint64_t total_ = 0;
  std::vector<Slot> slots_;
  std::vector<uint32_t> heap_;
  absl::flat_hash_map<KeyValue, uint32_t> index_;
};

// Sums sketches (e.g. one per worker) into the n hottest keys. A key absent from a full sketch
// is counted as that sketch's min_count() and the same amount added to its error, so the merged
// counts keep the sketch's guarantee (Agarwal et al., "Mergeable summaries").
std::vector<HotKey> MergeHotKeys(absl::Span<const HotKeySketch* const> sketches, size_t n);

}  // namespace shardgate::routing
