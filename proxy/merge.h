// Merger: turns the result streams of one fan-out read (one per shard) into the rows one server
// would have returned, following a routing::MergePlan.
//
// Three modes, chosen by the plan:
//  - concatenation (no ORDER BY, no aggregates): rows pass through as they arrive;
//  - ORDER BY: a streaming k-way merge of the shards' sorted streams; memory is bounded by
//    shards x batch rows, because a shard's queue accepts rows only while it is below `batch`
//    (CanAccept) and the executor stops reading that shard's socket until Emit drains it;
//  - aggregate (aggregates or GROUP BY): partial rows are combined per group in a hash table
//    bounded by `max_memory` (54000 when over), then HAVING, DISTINCT, ORDER BY, OFFSET/LIMIT
//    are applied and the rows emitted once every shard is done.
// DISTINCT (any mode) keeps a hash set of the visible rows, also bounded by `max_memory`.
// LIMIT/OFFSET are applied in every mode. Hidden columns are dropped from what the client sees.
// No I/O: the executor feeds messages in and sends what Emit appends.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "routing/merge_plan.h"

namespace shardgate::proxy {

struct MergeOptions {
  size_t max_memory = 256u << 20;  // bytes of rows held for GROUP BY / DISTINCT / sorting
  size_t batch = 512;              // rows queued per shard before its reader must wait
};

class Merger {
 public:
  // `limit`/`offset`: the plan's values resolved by the caller (nullopt = none; the caller
  // turns a NULL LIMIT into nullopt and rejects negative ones as PostgreSQL does).
  Merger(const routing::MergePlan& plan, int shard_count, std::optional<int64_t> limit,
         std::optional<int64_t> offset, MergeOptions options = {});

  // The Bind parameters of the statement as text (nullopt = NULL; index 0 is $1), for HAVING
  // operands that are parameters. The caller converts binary-format parameters to text. Call
  // before the first Emit; a HAVING naming a parameter that is not given fails with 08P01.
  void SetParams(std::vector<std::optional<std::string>> text_values);

  // A RowDescription body from `shard`. Every shard must describe the same columns (names,
  // types, formats); a mismatch is 0A000 naming the column. Also checks that the plan's
  // columns exist and that ORDER BY / min / max / sum columns have types the merge knows
  // (0A000 naming the type otherwise).
  absl::Status OnRowDescription(int shard, std::string_view body);
  bool described() const;
  // The RowDescription message (whole: type byte and length) the client gets: hidden columns
  // dropped, avg columns typed as AverageType(). Valid once described().
  std::string ClientRowDescription() const;

  // A DataRow body from `shard` (after its RowDescription). Errors: 08P01 (malformed), 54000
  // (over max_memory), 22003 (sum overflow), and CompareValues' errors.
  absl::Status OnDataRow(int shard, std::string_view body);
  // `shard` sent its CommandComplete: it has no more rows.
  void OnShardDone(int shard);

  // Appends the whole DataRow messages that are ready to `out`: in ORDER BY mode while every
  // shard that is not done has a queued row; in aggregate mode only after every shard is done.
  absl::Status Emit(std::string& out);

  // Flow control: false while `shard`'s queue is full (stop reading its socket until Emit).
  bool CanAccept(int shard) const;
  // LIMIT reached: the remaining rows of every shard can be read and discarded.
  bool LimitReached() const;
  // Every shard done and every row emitted.
  bool Finished() const;

  int64_t rows_emitted() const;
  size_t peak_memory() const;  // high-water mark of bytes held, for metrics and the benchmark

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace shardgate::proxy
