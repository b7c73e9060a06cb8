// The write gate of one logical database: how a resharding cutover stops writes to the tables
// being moved, on every worker, without stopping reads or other tables.
//
// Every transaction that writes enters the gate once, at its first write, and leaves when it
// ends; entries are counted per epoch. Pause() starts a new epoch: from then on a write to a
// paused table waits unless its transaction entered in an earlier epoch (those may finish, and
// the pause waits for them: Draining() == 0 means no transaction that wrote before the pause is
// still open, so the sources' WAL holds every write the old map accepted). Resume() or the
// pause's deadline (a shardctl that died) lets the waiting writes go on.
//
// Contract: thread-safe; Enter/Leave/Blocks are lock-free unless a pause is on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "routing/query_info.h"

namespace shardgate::proxy {

class WriteGate {
 public:
  using Clock = std::chrono::steady_clock;

  // The first write of a transaction: returns the epoch it is counted in.
  uint64_t Enter();
  // The transaction that entered at `epoch` ended (committed, rolled back or lost).
  void Leave(uint64_t epoch);
  // Whether a statement writing `tables`, in a transaction that entered at `epoch`, must wait.
  bool Blocks(uint64_t epoch, const std::vector<routing::TableRef>& tables) const;

  // Pauses writes to `tables` ("name" or "schema.name", lower-case) until Resume or `until`.
  // 55000 when a pause is already on or transactions from before the previous one are still
  // open.
  absl::Status Pause(std::set<std::string> tables, Clock::time_point until);
  // Open transactions that wrote before the current pause (0 when not paused).
  int Draining() const;
  // Whether a pause is on and has not passed its deadline.
  bool Paused() const;
  // Whether a pause is on, and if so it is given its whole length again from now: a switch
  // installs the new map while writes still wait, even when the pause was about to expire.
  bool Hold();
  void Resume();
  // The paused tables, for SHOW RESHARD.
  std::set<std::string> Tables() const;

  // PAUSE <db> (PgBouncer's meaning): no new transaction gets a server until RESUME. Whole-
  // database, unlike Pause(), which holds writes of some tables.
  void Suspend() { suspended_.store(true); }
  void Unsuspend() { suspended_.store(false); }
  bool Suspended() const { return suspended_.load(std::memory_order_relaxed); }

  // A cutover installed map `version`, moving keys of the paused tables: recorded so that a
  // transaction begun on an older map cannot write them any more (MovedSince).
  void NoteSwitch(uint64_t version);
  // Whether a switch after map `version` moved a table that `tables` writes.
  bool MovedSince(uint64_t version, const std::vector<routing::TableRef>& tables) const;

 private:
  static bool Writes(const std::set<std::string, std::less<>>& names,
                     const std::vector<routing::TableRef>& tables);

  std::atomic<uint64_t> epoch_{0};
  std::atomic<int> open_[2] = {0, 0};  // open writing transactions per epoch parity
  std::atomic<bool> paused_{false};
  std::atomic<bool> suspended_{false};
  mutable std::mutex mu_;  // guards the rest, taken only while paused
  uint64_t pause_epoch_ = 0;
  Clock::time_point until_;
  Clock::duration length_{};
  std::set<std::string, std::less<>> tables_;
  std::vector<std::pair<uint64_t, std::set<std::string, std::less<>>>> switches_;
  std::atomic<uint64_t> last_switch_{0};
};

}  // namespace shardgate::proxy
