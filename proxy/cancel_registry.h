// Process-wide map from the BackendKeyData the proxy gave a client to the server serving it,
// so that a CancelRequest arriving on any worker reaches the right PostgreSQL backend.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace shardgate::proxy {

struct CancelTarget {
  std::string host;
  int port = 0;
  int32_t pid = 0;
  int32_t secret = 0;
};

// Contract: thread-safe (one mutex; updates happen once per transaction, lookups are rare).
class CancelRegistry {
 public:
  static CancelRegistry& Global();

  // A fresh (pid, secret) pair for a client; unique among registered clients.
  std::pair<int32_t, int32_t> Register();
  void Unregister(int32_t pid);
  void SetTarget(int32_t pid, std::optional<CancelTarget> target);
  // The server to cancel when (pid, secret) match a registered client that has one.
  std::optional<CancelTarget> Lookup(int32_t pid, int32_t secret) const;

 private:
  struct Entry {
    int32_t secret = 0;
    std::optional<CancelTarget> target;
  };
  mutable std::mutex mu_;
  absl::flat_hash_map<int32_t, Entry> entries_;
};

}  // namespace shardgate::proxy
