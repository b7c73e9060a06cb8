// MergePlan: how the proxy turns the results of one read run on several shards into the answer a
// single PostgreSQL holding all the rows would give, and the SQL each shard runs for it.
//
// API: PlanMerge(sql) parses the statement (libpg_query), rewrites it for the shards with
// pg_query_deparse_protobuf (hidden columns, avg -> sum + count, LIMIT n OFFSET m -> LIMIT n+m,
// HAVING/LIMIT/OFFSET lifted out of aggregate queries) and returns the plan; errors are 0A000 with
// a hint naming the construct that cannot be merged exactly. InsertWithRows() keeps a subset of a
// multi-row INSERT's VALUES rows (the split of an INSERT across shards). No I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardgate::routing {

// A value the merge needs at execution time: a Bind parameter or a constant from the SQL text.
struct MergeValue {
  int param = 0;      // > 0: Bind parameter $param (1-based)
  std::string text;   // param == 0: the constant as text ("10", "abc", "1.5")
  bool null = false;  // param == 0: NULL
};

// The role of one column of the shard rows (visible columns first, hidden ones after them).
struct MergeColumn {
  enum class Role : uint8_t {
    kPlain,  // passed through: a group key, or every column of a non-aggregate query
    kCount,  // count(...) partials: summed (int8)
    kSum,    // sum(...) partials: summed in the column's type
    kMin,
    kMax,
    kAvg,  // avg(x), sent to the shards as sum(x) under avg's output name; `count_column`
           // is the hidden count(x); the merge reports avg's type (numeric, or float8)
  };
  Role role = Role::kPlain;
  int count_column = -1;  // kAvg only: index of the hidden count(x) column
};

struct MergeSortKey {
  int column = 0;  // 0-based index into the shard row; with SELECT * a hidden column
                   // is -1 - k (the k-th hidden one) until ResolveColumns()
  bool descending = false;
  bool nulls_first = false;  // resolved: PostgreSQL's default is LAST for ASC, FIRST for DESC
};

// A HAVING clause evaluated by the proxy on merged groups (SQL three-valued logic: a NULL
// comparison is unknown, and a group is kept only when the whole expression is true).
struct HavingExpr {
  enum class Kind : uint8_t {
    kAnd,        // args: all true
    kOr,         // args: any true
    kNot,        // args[0]
    kCompare,    // operands[0] op operands[1]
    kIsNull,     // operands[0] IS NULL
    kIsNotNull,  // operands[0] IS NOT NULL
  };
  struct Operand {
    int column = -1;   // >= 0: index into the merged shard row (a group key or aggregate)
    MergeValue value;  // column < 0: a constant or parameter
  };
  Kind kind = Kind::kAnd;
  std::string op;  // kCompare: "=", "<>", "<", "<=", ">", ">="
  std::vector<HavingExpr> args;
  std::vector<Operand> operands;
};

struct MergePlan {
  std::string shard_sql;  // what every shard runs (the original text when unchanged)
  // The client sees the first `visible_columns` columns of each shard row; the rest are hidden
  // (ORDER BY / GROUP BY / HAVING expressions and avg's counts that only the proxy needs).
  int visible_columns = 0;
  // Hidden columns, appended after the visible ones in the order they were added. With SELECT *
  // the visible count is unknown before the shards describe their rows: visible_columns is then
  // -1 and the client sees every column but the last `hidden_columns`. A plain concatenation
  // plan (writes with RETURNING) is visible_columns = -1, hidden_columns = 0.
  int hidden_columns = 0;
  bool aggregate = false;            // shard rows are partial aggregates, combined per group
  std::vector<int> group_columns;    // aggregate: the group key columns (empty: one group)
  std::vector<MergeColumn> columns;  // aggregate: one per shard column, visible and hidden
                                     // (never with SELECT *: aggregate queries refuse it)
  std::vector<MergeSortKey> order_by;
  std::optional<MergeValue> limit;  // applied by the proxy after the merge (absent = all)
  std::optional<MergeValue> offset;
  bool distinct = false;             // SELECT DISTINCT or UNION: duplicates removed after merge
  std::optional<HavingExpr> having;  // aggregate only; an operand column is the merged value
                                     // (for a kAvg column, the average)
};

// The plan for a read that spans several shards. `sql` is the statement as the client sent it
// (one statement; literals and $n parameters as written). Errors: 0A000 for what cannot be merged
// exactly (with a hint), 42601 when the text does not parse, 42P10 for an ORDER BY / GROUP BY
// position outside the select list, 54001 for a statement nested too deeply to inspect.
absl::StatusOr<MergePlan> PlanMerge(std::string_view sql);

// Completes a SELECT * plan once the shards have described their rows (`shard_columns` fields):
// visible_columns becomes shard_columns - hidden_columns and the sort keys on hidden columns
// (-1 - k) become row indexes. A plan whose visible_columns is known is left as it is. Error
// 0A000 when the rows have fewer columns than the plan needs.
absl::Status ResolveColumns(MergePlan& plan, int shard_columns);

// `sql` (an INSERT ... VALUES with several rows) keeping only the VALUES rows `rows` (0-based,
// ascending), everything else (columns, ON CONFLICT, RETURNING, $n) unchanged.
absl::StatusOr<std::string> InsertWithRows(std::string_view sql, std::span<const int> rows);

}  // namespace shardgate::routing
