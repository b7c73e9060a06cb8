// The planner: QueryInfo (analysis) + ShardMap + hints + Bind parameters -> RoutePlan: which
// shards (one, some, all, or any one), on which server role, and why.
//
// API: Planner(map).Plan(analysis, input) -> RoutePlan | error. Errors a client sees: 0A000
// (not possible across shards, with a hint), 22023/22P02/22003 (bad key values or unknown
// keys), 08P01 (a missing parameter). Planning does no I/O except a directory router's store
// on a cache miss, and costs well under a microsecond for a typical cached statement.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "routing/hints.h"
#include "routing/query_info.h"
#include "routing/shard_map.h"

namespace shardgate::routing {

// Bind parameter values as views (valid during Plan), with Parse's declared types.
struct ParamValues {
  std::span<const std::optional<std::string_view>> values;  // nullopt = NULL
  std::span<const int16_t> formats;  // Bind's codes: none (all text), one (for all) or one each
  std::span<const uint32_t> types;   // Parse's type oids; missing = 0 (unspecified)

  int16_t Format(size_t i) const {
    if (formats.empty()) return 0;
    return formats.size() == 1 ? formats[0] : (i < formats.size() ? formats[i] : 0);
  }
  uint32_t Type(size_t i) const { return i < types.size() ? types[i] : 0; }
};

struct PlanInput {
  // The literals of the statement being routed, when `analysis` came from a normalized one.
  std::span<const Literal> literals;
  ParamValues params;
  Hints hints;                  // statement hints merged with the session's
  bool in_transaction = false;  // inside an explicit transaction: everything on the primary
  // Build RoutePlan::reason in full (key values, shard names). The proxy's hot path turns it off
  // and gets a short fixed reason; shardctl and SHOW ROUTE keep it on.
  bool explain = true;
};

// A shard-key value a plan routed by, and the sharded table it belongs to (owned by the map).
struct RoutedKey {
  const ShardMap::Table* table = nullptr;
  KeyValue key;
};

struct RoutePlan {
  // At most this many keys are kept in `keys` (an IN list of thousands is not copied).
  static constexpr size_t kMaxKeys = 16;

  enum class Spread {
    kOne,     // exactly one shard (the key decided, or a hint)
    kSome,    // several, not all
    kAll,     // every shard of the database
    kAnyOne,  // any single shard will do (no sharded table: reference tables, SELECT 1, SET)
  };
  Spread spread = Spread::kAnyOne;
  // Ascending; for kAnyOne every candidate (pick one). Inline: planning a one-shard statement
  // allocates nothing for it.
  absl::InlinedVector<int, 4> shards;
  Role role = Role::kPrimary;
  bool write = false;
  bool merge = false;  // several shards answer a read: results are merged per QueryInfo::merge
  std::string reason;  // "users.id = 42 -> s1 (hash_ring by_user)"
  // The keys it routed by (key conditions, INSERT rows, a key= hint), in statement order, for
  // the hot-key sketch and the query cache. `keys_complete` is false when some were left out
  // (more than kMaxKeys) or when a sharded table was reached without a key condition.
  absl::InlinedVector<RoutedKey, 1> keys;
  bool keys_complete = true;

  // Multi-row INSERT spanning shards: for shards[i], the VALUES rows (0-based) it receives.
  std::vector<std::vector<int>> insert_rows;
  // COPY FROM into a sharded table: each row is routed by column `copy_key_column` (0-based in
  // the COPY column list) with `copy_router`.
  const Router* copy_router = nullptr;
  int copy_key_column = -1;
};
std::string_view SpreadName(RoutePlan::Spread spread);  // "one" | "some" | "all" | "any"

class Planner {
 public:
  explicit Planner(std::shared_ptr<const ShardMap> map) : map_(std::move(map)) {}

  // Plans every statement of `analysis`; several statements must agree on one shard set.
  absl::StatusOr<RoutePlan> Plan(const Analysis& analysis, const PlanInput& input) const;
  absl::StatusOr<RoutePlan> PlanStatement(const QueryInfo& info, const PlanInput& input) const;

  const ShardMap& map() const { return *map_; }

 private:
  std::shared_ptr<const ShardMap> map_;
};

// Key values of one condition: inline, planning a statement allocates nothing for them.
using KeyList = absl::InlinedVector<KeyValue, 2>;

// The key values a ValueRef stands for, converted to `type` (arrays expand; NULL gives none).
absl::Status ResolveKeys(const ValueRef& ref, const QueryInfo& info, const PlanInput& input,
                         KeyType type, KeyList& out);

}  // namespace shardgate::routing
