// The statement walker shared by analyzer.cc (statements, FROM, target lists) and
// analyzer_expr.cc (values, filters, the generic tree walk). Not part of the public API.
#pragma once

#include <pg_query/pg_query.pb-c.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "routing/query_info.h"

namespace shardgate::routing::internal {

// One query block (SELECT level): the tables of its FROM and the CTE names it can see.
struct Scope {
  int id = 0;
  Scope* parent = nullptr;
  std::vector<int> tables;                  // QueryInfo::tables indexes
  std::vector<std::string> cte_names;       // visible WITH names (not tables)
  bool IsCte(std::string_view name) const;  // searches the chain
};

// A restriction before it becomes a KeyConstraint.
struct Restriction {
  std::vector<int> tables;
  std::string column;
  std::vector<ValueRef> values;
};

struct Extracted {
  std::vector<Restriction> restrictions;  // conjuncts
  std::vector<ColumnEquality> equalities;
};

// What a sub-select exposes to the query around it: its first output column when that is a
// plain column of one of its tables (for `x IN (SELECT col FROM t ...)`).
struct SelectOutput {
  int table = -1;
  std::string column;
};

class StatementAnalyzer {
 public:
  StatementAnalyzer(QueryInfo& info, const std::vector<Literal>* literals, int max_param,
                    bool normalized)
      : info_(info), literals_(literals), max_param_(max_param), normalized_(normalized) {}

  absl::Status Statement(const PgQuery__Node* stmt);

 private:
  // analyzer.cc
  SelectOutput Select(const PgQuery__SelectStmt* s, Scope* parent, bool top);
  void With(const PgQuery__WithClause* with, Scope& scope);
  void From(const PgQuery__Node* item, Scope& scope, Extracted& conj);
  int AddTable(const PgQuery__RangeVar* rv, Scope& scope, bool written);
  void Insert(const PgQuery__InsertStmt* s, Scope* parent, bool top);
  void Update(const PgQuery__UpdateStmt* s, Scope* parent);
  void Delete(const PgQuery__DeleteStmt* s, Scope* parent);
  void Merge(const PgQuery__MergeStmt* s, Scope* parent);
  void Copy(const PgQuery__CopyStmt* s);
  void TargetList(const PgQuery__SelectStmt* s, Scope& scope, bool top);
  void GroupBy(const PgQuery__SelectStmt* s, Scope& scope);
  void OrderAndLimit(const PgQuery__SelectStmt* s, Scope& scope);
  OrderKey SortKey(const PgQuery__Node* expr, const PgQuery__SelectStmt* s);
  void Dml(const PgQuery__Node* stmt, Scope* parent, bool top);  // INSERT/UPDATE/DELETE/MERGE
  void MarkWrite(std::string_view reason);
  void Utility(const PgQuery__Node* stmt);

  // analyzer_expr.cc
 public:
  ValueRef Value(const PgQuery__Node* n);
 private:
  std::vector<ValueRef> ArrayValues(const PgQuery__Node* n);
  bool Column(const PgQuery__Node* n, const Scope& scope, std::vector<int>& tables,
              std::string& column);
  Extracted Extract(const PgQuery__Node* e, Scope& scope);
  // A WHERE clause: its sub-selects walked first (Extract uses their outputs), then its
  // conjuncts added to `conj`.
  void Where(const PgQuery__Node* where, Scope& scope, Extracted& conj);
  Extracted ExtractOr(const PgQuery__BoolExpr* b, Scope& scope);
  Extracted Comparison(const PgQuery__AExpr* a, Scope& scope);
  void Apply(const Extracted& x, const Scope& scope, bool restrictions);
  // Visits every node under `n`: sub-selects are analysed in a child scope of `scope`, function
  // calls are checked for writes, aggregates and window functions.
  void Walk(const ProtobufCMessage* n, Scope& scope);
  void FuncCall(const PgQuery__FuncCall* f);
  int NewScopeId() { return next_scope_++; }

  QueryInfo& info_;
  const std::vector<Literal>* literals_;
  int max_param_;
  bool normalized_;
  int next_scope_ = 0;
  int depth_ = 0;
  bool too_deep_ = false;
  absl::flat_hash_map<const void*, SelectOutput> sublink_outputs_;
};

// Helpers over the protobuf tree.
std::string_view StringValue(const PgQuery__Node* n);  // String node, else ""
// The last name of a qualified operator/function name ("=" of OPERATOR(pg_catalog.=)).
std::string_view LastName(PgQuery__Node** names, size_t n);
// Calls `fn` on every message directly under `m` (fields of message type, repeated or not, the
// active member of a oneof), through protobuf-c's reflection so that no node type is missed.
void ForEachChild(const ProtobufCMessage* m,
                  const std::function<void(const ProtobufCMessage*)>& fn);
// Known aggregate function names (count, sum, array_agg, ...).
bool IsAggregateName(std::string_view name);

inline constexpr int kMaxDepth = 500;

}  // namespace shardgate::routing::internal
