// QueryInfo: what routing needs to know about one SQL statement, independent of any shard map
// (so it can be cached per normalized statement and re-applied with new literal values).
//
// Values are referenced, not copied: a ValueRef names a Bind parameter ($n), a literal slot of
// the normalized statement (filled from the current statement's literals at plan time), or a
// constant kept in QueryInfo::constants (statements analysed without normalization).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "routing/normalize.h"

namespace shardgate::routing {

enum class StatementKind : uint8_t {
  kSelect,       // SELECT, VALUES, TABLE, SHOW-like reads
  kInsert,
  kUpdate,
  kDelete,
  kMerge,
  kCopyFrom,     // COPY t FROM STDIN
  kCopyTo,       // COPY t|(query) TO STDOUT
  kDdl,          // CREATE/ALTER/DROP/TRUNCATE/GRANT/COMMENT...: every shard
  kTransaction,  // BEGIN/COMMIT/ROLLBACK/SAVEPOINT/PREPARE TRANSACTION...
  kSet,          // SET/RESET/SET LOCAL/DISCARD: session state
  kShow,         // SHOW
  kExplain,      // EXPLAIN (the inner statement's routing applies)
  kUtility,      // VACUUM, ANALYZE, LISTEN, NOTIFY, LOCK, PREPARE/EXECUTE, CALL, DO ...
  kEmpty,        // only comments/whitespace
};
std::string_view StatementKindName(StatementKind kind);

enum class TxnOp : uint8_t {
  kNone, kBegin, kCommit, kRollback, kSavepoint, kRelease, kRollbackTo, kPrepare,
  kCommitPrepared, kRollbackPrepared,
};

struct ValueRef {
  enum class Source : uint8_t {
    kParam,    // Bind parameter number `index` (1-based)
    kLiteral,  // literal slot `index` (0-based) of the normalized statement
    kConst,    // QueryInfo::constants[index]
    kNull,     // NULL
    kDefault,  // DEFAULT in INSERT ... VALUES
    kExpr,     // anything else: not known before execution
  };
  Source source = Source::kExpr;
  bool negate = false;  // -$1 (the parser folds -5 only when it is a constant)
  bool array = false;   // an array whose elements are the values (= ANY('{1,2}'), = ANY($1))
  int index = 0;

  bool known() const { return source == Source::kParam || source == Source::kLiteral ||
                              source == Source::kConst; }
};

struct TableRef {
  std::string schema;  // empty when not qualified
  std::string name;    // as PostgreSQL folds it (lower-case unless quoted)
  std::string alias;   // empty when none
  int scope = 0;       // the SELECT level (query block) it appears in
  bool written = false;  // target of INSERT/UPDATE/DELETE/MERGE/COPY FROM, or locked FOR UPDATE
  std::string QualifiedName() const { return schema.empty() ? name : schema + "." + name; }
};

// A conjunct of the statement's filters: `column` equals one of `values`. When the column was
// not qualified and its query block has several tables, `tables` lists them all and the planner
// applies it to those whose shard key is `column`.
struct KeyConstraint {
  std::vector<int> tables;  // indexes into QueryInfo::tables
  std::string column;
  std::vector<ValueRef> values;  // OR-ed
};

// `a.col_a = b.col_b` in a conjunctive position (WHERE/ON/USING/IN (SELECT ...)): rows that
// meet are co-located when both columns are their tables' keys on one router.
struct ColumnEquality {
  int table_a = -1;
  std::string column_a;
  int table_b = -1;
  std::string column_b;
};

struct InsertInfo {
  int table = -1;                    // QueryInfo::tables index of the target
  std::vector<std::string> columns;  // the column list (empty = none written)
  std::vector<std::vector<ValueRef>> rows;  // VALUES rows, one ValueRef per column
  bool from_select = false;          // INSERT ... SELECT
  bool default_values = false;       // INSERT ... DEFAULT VALUES
  bool on_conflict = false;
  bool returning = false;
};

struct CopyInfo {
  int table = -1;
  std::vector<std::string> columns;
  bool from = true;           // FROM (load) or TO (dump)
  bool has_query = false;     // COPY (SELECT ...) TO
  std::string format = "text";  // text | csv | binary
  std::string delimiter;        // empty = the format's default
  bool header = false;
  std::string null_string;      // empty = the format's default
  bool stdio = true;            // STDIN/STDOUT (not a server-side file or program)
};

struct OrderKey {
  int position = 0;         // 1-based target-list position; 0 when sorting by another expression
  std::string column;       // the column or output name when simple
  bool descending = false;
  std::optional<bool> nulls_first;  // nullopt = PostgreSQL's default for the direction
};

struct Aggregate {
  std::string function;  // lower-case: count, sum, min, max, avg, ...
  int position = 0;      // 1-based target-list position (0 when nested in an expression)
  bool star = false;     // count(*)
  bool distinct = false;
};

// What merging the results of several shards needs.
struct MergeSpec {
  std::vector<OrderKey> order_by;
  std::optional<ValueRef> limit;   // absent = none (LIMIT ALL is absent too)
  std::optional<ValueRef> offset;
  std::vector<Aggregate> aggregates;
  std::vector<OrderKey> group_by;  // position/column only
  bool distinct = false;
  bool distinct_on = false;
  bool having = false;
  bool window = false;
  bool set_operation = false;  // UNION/INTERSECT/EXCEPT at the top
  int target_count = 0;
  bool star = false;  // SELECT * (positions of ORDER BY columns are then unknown)
};

struct QueryInfo {
  StatementKind kind = StatementKind::kEmpty;
  TxnOp txn = TxnOp::kNone;
  std::string command;  // "SELECT", "INSERT", "CREATE TABLE", ... (for messages)
  bool write = false;
  std::string write_reason;  // why it is a write ("INSERT", "FOR UPDATE", "nextval()"...)
  bool read_only_txn = false;  // BEGIN READ ONLY / START TRANSACTION READ ONLY

  std::vector<TableRef> tables;
  std::vector<KeyConstraint> keys;
  std::vector<ColumnEquality> joins;
  std::vector<std::string> updated_columns;  // UPDATE SET targets of the top statement
  std::optional<InsertInfo> insert;
  std::optional<CopyInfo> copy;
  MergeSpec merge;
  // Why a fan-out read cannot be merged correctly (DISTINCT ON, window functions, ...); the
  // planner refuses such a statement with 0A000 when it spans several shards.
  std::vector<std::string> fanout_blockers;

  std::vector<Literal> constants;  // ValueRef::Source::kConst values
  int max_param = 0;  // highest client $n; ParamRefs above it were literals
  // Literal slots whose values shaped this analysis (ORDER BY 1): a cached entry applies only
  // to statements with the same values there.
  std::vector<std::pair<int, std::string>> pinned_literals;
};

// All statements of one query string (a simple Query may hold several).
struct Analysis {
  std::vector<QueryInfo> statements;
  int max_param = 0;
  int literal_count = 0;  // literals replaced by normalization (0 when analysed as written)
  bool normalized = false;
};

}  // namespace shardgate::routing
