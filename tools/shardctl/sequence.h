// `shardctl sequence install|status|remove TABLE`: sharded sequences. On every shard's primary
// of a sharded table, a sequence and a function that returns only key values that route to
// that shard, made the key column's default; values from different shards never collide
// because each value has exactly one owner.
//
// API: SequenceCommand(options, out, err) -> exit code (0 ok, 1 error); SequencePlanFor (the
// per-shard numbers, no server needed; for tests).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/shardctl/commands.h"

namespace shardgate::conf {
struct DatabaseConfig;
}

namespace shardgate::tools {

struct SequenceOptions {
  CommonOptions common;
  std::string action;  // install | status | remove
  std::string table;   // as in the config (may be schema-qualified)
  std::string column;  // empty: the table's key
};

int SequenceCommand(const SequenceOptions& options, std::ostream& out, std::ostream& err);

// What one shard's generator is: its sequence's numbers and the check of each value.
struct ShardSequence {
  std::string shard;
  std::string column;  // the table's key column (lower-case)
  int64_t start = 1;
  int64_t increment = 1;
  std::optional<int64_t> max;  // a range shard's last key
  std::string owner_sql;       // the shard name of key `v`, as SQL (Router::OwnerSql)
};

// The generators of `table`'s shards (errors: unknown or reference table, a router that does
// not fit: text keys, directory, a shard holding several ranges).
absl::StatusOr<std::vector<ShardSequence>> SequencePlanFor(const conf::DatabaseConfig& db,
                                                           const std::string& table,
                                                           const std::string& column);

}  // namespace shardgate::tools
