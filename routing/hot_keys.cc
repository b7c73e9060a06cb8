// Space-saving top-k sketch: a hash index of key -> slot, and a min-heap of slots by count so the
// counter to replace is found in O(1) and restored in O(log k).
#include "routing/hot_keys.h"

#include <algorithm>
#include <utility>

namespace shardgate::routing {

HotKeySketch::HotKeySketch(uint32_t capacity) : capacity_(std::max<uint32_t>(capacity, 1)) {
  slots_.reserve(capacity_);
  heap_.reserve(capacity_);
  index_.reserve(capacity_);
}

void HotKeySketch::Swap(uint32_t a, uint32_t b) {
  std::swap(heap_[a], heap_[b]);
  slots_[heap_[a]].heap_pos = a;
  slots_[heap_[b]].heap_pos = b;
}

void HotKeySketch::SiftUp(uint32_t pos) {
  while (pos > 0) {
    uint32_t parent = (pos - 1) / 2;
    if (slots_[heap_[parent]].count <= slots_[heap_[pos]].count) return;
    Swap(parent, pos);
    pos = parent;
  }
}

void HotKeySketch::SiftDown(uint32_t pos) {
  const auto n = static_cast<uint32_t>(heap_.size());
  for (;;) {
    uint32_t smallest = pos;
    uint32_t l = 2 * pos + 1, r = l + 1;
    if (l < n && slots_[heap_[l]].count < slots_[heap_[smallest]].count) smallest = l;
    if (r < n && slots_[heap_[r]].count < slots_[heap_[smallest]].count) smallest = r;
    if (smallest == pos) return;
    Swap(pos, smallest);
    pos = smallest;
  }
}

void HotKeySketch::Add(const KeyValue& key, uint64_t weight) {
  total_ += weight;
  if (auto it = index_.find(key); it != index_.end()) {
    Slot& s = slots_[it->second];
    s.count += weight;
    SiftDown(s.heap_pos);  // a count only grows: it moves away from the root
    return;
  }
  if (slots_.size() < capacity_) {
    auto idx = static_cast<uint32_t>(slots_.size());
    slots_.push_back(Slot{key, weight, 0, static_cast<uint32_t>(heap_.size())});
    heap_.push_back(idx);
    index_.emplace(key, idx);
    SiftUp(slots_[idx].heap_pos);
    return;
  }
  // Replace the smallest counter: the newcomer inherits its count as the error bound.
  uint32_t idx = heap_[0];
  Slot& s = slots_[idx];
  index_.erase(s.key);
  s.error = s.count;
  s.count += weight;
  s.key = key;  // copy-assignment: an integer key has no string; a text key reuses the capacity
  index_.emplace(s.key, idx);
  SiftDown(0);
}

std::vector<HotKey> HotKeySketch::Top(size_t n) const {
  std::vector<HotKey> out;
  out.reserve(slots_.size());
  for (const Slot& s : slots_) out.push_back(HotKey{s.key, s.count, s.error});
  auto by_count = [](const HotKey& a, const HotKey& b) {
    if (a.count != b.count) return a.count > b.count;
    return a.key < b.key;
  };
  std::sort(out.begin(), out.end(), by_count);
  if (out.size() > n) out.resize(n);
  return out;
}

void HotKeySketch::Halve() {
  // Halving is monotone, so the heap order survives.
  for (Slot& s : slots_) {
    s.count /= 2;
    s.error /= 2;
  }
  total_ /= 2;
}

void HotKeySketch::Clear() {
  slots_.clear();
  heap_.clear();
  index_.clear();
  total_ = 0;
}

bool HotKeySketch::Contains(const KeyValue& key) const { return index_.contains(key); }

uint64_t HotKeySketch::min_count() const {
  if (slots_.size() < capacity_ || heap_.empty()) return 0;
  return slots_[heap_[0]].count;
}

std::vector<HotKey> MergeHotKeys(absl::Span<const HotKeySketch* const> sketches, size_t n) {
  absl::flat_hash_map<KeyValue, HotKey> merged;
  for (const HotKeySketch* sketch : sketches) {
    for (const HotKey& k : sketch->Top(sketch->size())) {
      auto [it, inserted] = merged.try_emplace(k.key, HotKey{k.key, 0, 0});
      it->second.count += k.count;
      it->second.error += k.error;
    }
  }
  // A key missing from a full sketch may have occurred up to that sketch's min_count there.
  for (const HotKeySketch* sketch : sketches) {
    uint64_t floor = sketch->min_count();
    if (floor == 0) continue;
    for (auto& entry : merged) {
      if (!sketch->Contains(entry.first)) {
        entry.second.count += floor;
        entry.second.error += floor;
      }
    }
  }
  std::vector<HotKey> out;
  out.reserve(merged.size());
  for (auto& entry : merged) out.push_back(std::move(entry.second));
  std::sort(out.begin(), out.end(), [](const HotKey& a, const HotKey& b) {
    if (a.count != b.count) return a.count > b.count;
    return a.key < b.key;
  });
  if (out.size() > n) out.resize(n);
  return out;
}

}  // namespace shardgate::routing
