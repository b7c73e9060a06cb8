#include "proxy/write_gate.h"

#include <string_view>

#include "protocol/status.h"

namespace shardgate::proxy {

uint64_t WriteGate::Enter() {
  // Counted in the epoch read, or retried: a Pause() between the read and the increment must
  // not miss this transaction nor count it in the epoch it already closed.
  for (;;) {
    const uint64_t e = epoch_.load();
    open_[e & 1].fetch_add(1);
    if (epoch_.load() == e) return e;
    open_[e & 1].fetch_sub(1);
  }
}

void WriteGate::Leave(uint64_t epoch) { open_[epoch & 1].fetch_sub(1); }

bool WriteGate::Writes(const std::set<std::string, std::less<>>& names,
                       const std::vector<routing::TableRef>& tables) {
  for (const routing::TableRef& t : tables) {
    if (!t.written) continue;
    const bool public_schema = t.schema.empty() || t.schema == "public";
    if (names.count(public_schema ? t.name : t.QualifiedName()) != 0) return true;
  }
  return false;
}

bool WriteGate::Blocks(uint64_t epoch, const std::vector<routing::TableRef>& tables) const {
  if (!paused_.load()) return false;
  std::lock_guard lock(mu_);
  if (Clock::now() >= until_) return false;  // the deadline passed: writes go on
  return epoch >= pause_epoch_ && Writes(tables_, tables);
}

absl::Status WriteGate::Pause(std::set<std::string> tables, Clock::time_point until) {
  std::lock_guard lock(mu_);
  if (paused_.load() && Clock::now() < until_) {
    return PgStatus("55000", "writes are already paused for a cutover",
                    "RESHARD RESUME ends the pause.");
  }
  const uint64_t next = epoch_.load() + 1;
  if (open_[next & 1].load() != 0) {
    return PgStatus("55000",
                    "transactions that wrote before the previous pause are still open",
                    "Wait for them to end (SHOW CLIENTS), then pause again.");
  }
  tables_.clear();
  for (const std::string& t : tables) {
    // "public.t" is t (the map may name it either way; Writes looks public tables up bare).
    constexpr std::string_view kPublic = "public.";
    tables_.insert(t.rfind(kPublic, 0) == 0 ? t.substr(kPublic.size()) : t);
  }
  until_ = until;
  length_ = until - Clock::now();
  pause_epoch_ = next;
  paused_.store(true);
  epoch_.store(next);
  return absl::OkStatus();
}

int WriteGate::Draining() const {
  std::lock_guard lock(mu_);
  if (!paused_.load()) return 0;
  return open_[(pause_epoch_ - 1) & 1].load();
}

bool WriteGate::Hold() {
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  if (!paused_.load() || now >= until_) return false;
  until_ = now + length_;
  return true;
}

bool WriteGate::Paused() const {
  if (!paused_.load()) return false;
  std::lock_guard lock(mu_);
  return Clock::now() < until_;
}

void WriteGate::Resume() {
  std::lock_guard lock(mu_);
  paused_.store(false);
  tables_.clear();
}

std::set<std::string> WriteGate::Tables() const {
  std::lock_guard lock(mu_);
  return {tables_.begin(), tables_.end()};
}

void WriteGate::NoteSwitch(uint64_t version) {
  std::lock_guard lock(mu_);
  switches_.emplace_back(version, tables_);
  if (switches_.size() > 64) switches_.erase(switches_.begin());  // old maps are long gone
  last_switch_.store(version);
}

bool WriteGate::MovedSince(uint64_t version,
                           const std::vector<routing::TableRef>& tables) const {
  if (last_switch_.load() <= version) return false;
  std::lock_guard lock(mu_);
  for (const auto& [v, names] : switches_) {
    if (v > version && Writes(names, tables)) return true;
  }
  return false;
}

}  // namespace shardgate::proxy
