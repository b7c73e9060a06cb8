// Cluster-unique ids answered by the proxy itself: `SELECT shardgate.next_id()`.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shardgate::proxy {

// 63-bit ids: milliseconds since 2024-01-01 UTC (41 bits, good until 2093), the proxy's node id
// (10 bits, `node_id:`), a sequence within the millisecond (12 bits). Strictly increasing per
// node, also across threads and when the clock steps back (the last timestamp is kept, and a
// 4097th id in one millisecond borrows the next one); unique across nodes with distinct ids.
// Contract: thread-safe, lock-free.
class IdGenerator {
 public:
  static constexpr int64_t kEpochMs = 1704067200000;  // 2024-01-01T00:00:00Z
  static constexpr int kNodeBits = 10, kSequenceBits = 12;
  static constexpr int kMaxNode = (1 << kNodeBits) - 1;

  int64_t Next(int node, int64_t unix_ms) {
    const int64_t now = std::max<int64_t>(unix_ms - kEpochMs, 0) << kSequenceBits;
    int64_t last = last_.load(std::memory_order_relaxed);
    int64_t next;
    do {
      next = std::max(now, last + 1);
    } while (!last_.compare_exchange_weak(last, next, std::memory_order_relaxed));
    const int64_t ms = next >> kSequenceBits;
    const int64_t sequence = next & ((1 << kSequenceBits) - 1);
    return (ms << (kNodeBits + kSequenceBits)) | (static_cast<int64_t>(node) << kSequenceBits) |
           sequence;
  }

  // The parts of an id, for tests and operators.
  static int64_t UnixMs(int64_t id) { return (id >> (kNodeBits + kSequenceBits)) + kEpochMs; }
  static int Node(int64_t id) { return static_cast<int>((id >> kSequenceBits) & kMaxNode); }

 private:
  std::atomic<int64_t> last_{0};  // (ms since the epoch) << kSequenceBits | sequence
};

// "SELECT shardgate.next_id()" with an optional "[AS] name" and ';' (case and spaces as SQL
// allows): the result column's name ("next_id" by default); nullopt for any other statement.
std::optional<std::string> MatchNextIdCall(std::string_view sql);

}  // namespace shardgate::proxy
