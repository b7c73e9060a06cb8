// CancelRegistry: random keys from OpenSSL's RNG so that a client cannot guess another's key.
#include "proxy/cancel_registry.h"

#include <openssl/rand.h>

#include <cstring>

namespace shardgate::proxy {

CancelRegistry& CancelRegistry::Global() {
  static CancelRegistry* registry = new CancelRegistry();
  return *registry;
}

void CancelSlot::Set(const std::string& host, int port, int32_t pid, int32_t secret) {
  std::lock_guard lock(mu_);
  host_ = &host;
  port_ = port;
  pid_ = pid;
  secret_ = secret;
}

void CancelSlot::Clear() {
  std::lock_guard lock(mu_);
  host_ = nullptr;
}

std::optional<CancelTarget> CancelSlot::Get() const {
  std::lock_guard lock(mu_);
  if (host_ == nullptr) return std::nullopt;
  return CancelTarget{*host_, port_, pid_, secret_};
}

std::pair<int32_t, int32_t> CancelRegistry::Register(std::shared_ptr<const CancelSlot> slot) {
  std::lock_guard lock(mu_);
  for (;;) {
    uint32_t words[2];
    if (RAND_bytes(reinterpret_cast<unsigned char*>(words), sizeof(words)) != 1) {
      words[0] = static_cast<uint32_t>(entries_.size() + 1) * 2654435761u;
      words[1] = words[0] ^ 0x5bd1e995u;
    }
    int32_t pid = static_cast<int32_t>(words[0] & 0x7fffffff);
    if (pid == 0 || entries_.contains(pid)) continue;
    int32_t secret = static_cast<int32_t>(words[1]);
    entries_[pid] = Entry{secret, std::move(slot)};
    return {pid, secret};
  }
}

void CancelRegistry::Unregister(int32_t pid) {
  std::lock_guard lock(mu_);
  entries_.erase(pid);
}

std::optional<CancelTarget> CancelRegistry::Lookup(int32_t pid, int32_t secret) const {
  std::shared_ptr<const CancelSlot> slot;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(pid);
    if (it == entries_.end() || it->second.secret != secret) return std::nullopt;
    slot = it->second.slot;
  }
  return slot->Get();
}

}  // namespace shardgate::proxy
