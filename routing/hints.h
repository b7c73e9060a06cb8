// Routing hints of CONFIG.md, found without the SQL parser: comments at the start or end of a
// statement (`/* shardgate: shard=s1 */`, `key=42`, `primary`, `replica`, `any`, several
// separated by commas or spaces) and the session variables `SET shardgate.shard = 's1'`,
// `SET shardgate.key = '42'`, `RESET shardgate.shard`.
//
// API: ParseCommentHints(sql) -> Hints; ParseSessionHint(sql) -> nullopt | SessionHint | error.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shardgate::routing {

// Which server of a shard a statement goes to.
enum class Role {
  kPrimary,  // writes, transactions, `primary` hint
  kReplica,  // reads when replicas are healthy (falls back to the primary otherwise)
  kAny,      // reads that may go to either (read_from: any)
};
std::string_view RoleName(Role role);  // "primary" | "replica" | "any"

struct Hints {
  std::optional<std::string> shard;  // shard name, checked against the map by the planner
  std::optional<std::string> key;    // key text, converted to the router's key type
  std::optional<Role> role;
  // `cache=30s` (ms, s, m, h; a bare number is seconds): cache this read's answer that long;
  // `cache=off` (0): never cache it, even when its tables are cached. Statement hints only.
  std::optional<std::chrono::milliseconds> cache;

  bool empty() const { return !shard && !key && !role && !cache; }
  // Fills what `this` lacks from `fallback` (statement hints win over session hints).
  void MergeFrom(const Hints& fallback);
};

// Hints in `/* shardgate: ... */` or `-- shardgate: ...` comments leading or trailing the
// statement. A comment that starts with "shardgate:" but holds an unknown word is 42601 (a typo
// must not silently route elsewhere); other comments are ignored.
absl::StatusOr<Hints> ParseCommentHints(std::string_view sql);

// A `SET shardgate.X` / `RESET shardgate.X` / `RESET ALL` statement.
struct SessionHint {
  enum class Op { kSet, kReset, kResetAll };
  Op op = Op::kSet;
  std::string name;   // "shard" | "key" (empty for kResetAll)
  std::string value;  // for kSet
};

// nullopt when `sql` is not a SET/RESET of a shardgate.* variable (nor RESET ALL); an error for
// a malformed one or an unknown shardgate.* name (42704, as PostgreSQL for unknown settings).
std::optional<absl::StatusOr<SessionHint>> ParseSessionHint(std::string_view sql);

// Applies `hint` to the session's hints.
void ApplySessionHint(const SessionHint& hint, Hints& session);

}  // namespace shardgate::routing
