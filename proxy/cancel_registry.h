// Process-wide map from the BackendKeyData the proxy gave a client to the server serving it,
// so that a CancelRequest arriving on any worker reaches the right PostgreSQL backend.
#pragma once

#include <cstdint>
#include <memory>
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

// The server one client's cancel reaches now, if any. Contract: written by the client's own
// thread at every attach and release of a server (its own mutex, uncontended but for a
// cancel: no process-wide lock per transaction); read by whichever worker gets the
// CancelRequest. `host` must stay valid until the next Set or Clear (the attached server's
// target: the session clears the slot before it lets go of the server).
class CancelSlot {
 public:
  void Set(const std::string& host, int port, int32_t pid, int32_t secret);
  void Clear();
  std::optional<CancelTarget> Get() const;

 private:
  mutable std::mutex mu_;
  const std::string* host_ = nullptr;  // null: no server
  int port_ = 0;
  int32_t pid_ = 0, secret_ = 0;
};

// Contract: thread-safe (one mutex, taken at login, logout and cancel only).
class CancelRegistry {
 public:
  static CancelRegistry& Global();

  // A fresh (pid, secret) pair for a client whose server `slot` tells; unique among registered
  // clients.
  std::pair<int32_t, int32_t> Register(std::shared_ptr<const CancelSlot> slot);
  void Unregister(int32_t pid);
  // The server to cancel when (pid, secret) match a registered client that has one.
  std::optional<CancelTarget> Lookup(int32_t pid, int32_t secret) const;

 private:
  struct Entry {
    int32_t secret = 0;
    std::shared_ptr<const CancelSlot> slot;
  };
  mutable std::mutex mu_;
  absl::flat_hash_map<int32_t, Entry> entries_;
};

}  // namespace shardgate::proxy
