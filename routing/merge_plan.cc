// PlanMerge and InsertWithRows: read the statement with libpg_query, edit its protobuf-c tree in
// place (hidden columns, avg -> sum + count, LIMIT n + m, HAVING lifted out) and deparse it.
#include "routing/merge_plan.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <utility>

#include "protocol/status.h"
#include "routing/analyzer_internal.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

using internal::ForEachChild;
using internal::IsAggregateName;
using internal::kMaxDepth;
using internal::LastName;
using internal::StringValue;

constexpr std::string_view kAggregateHint =
    "count, sum, min, max and avg are merged across shards; add a shard key condition so that "
    "the query runs on one shard, or compute this in the application";
constexpr std::string_view kExpressionHint =
    "select the aggregate as a column of its own and compute the expression in the application, "
    "or add a shard key condition so that the query runs on one shard";
constexpr std::string_view kOneShardHint =
    "add a shard key condition so that the query runs on one shard";

bool IsCase(const PgQuery__Node* n, PgQuery__Node__NodeCase c) {
  return n != nullptr && n->node_case == c;
}

bool Empty(const char* s) { return s == nullptr || s[0] == '\0'; }

absl::Status Unsupported(std::string_view what, std::string_view hint = kOneShardHint) {
  return PgStatus("0A000", Cat(what, " is not supported across shards"), hint);
}

// A subquery computed on each shard separately is right only for row-level work (filters,
// joins on the co-located key): an aggregate, GROUP BY, DISTINCT, LIMIT/OFFSET or window in it
// would see one shard's rows, so such subqueries are refused. `top` itself is the merge's job.
absl::Status CheckSubqueries(const ProtobufCMessage* m, const ProtobufCMessage* top,
                             int depth = 0) {
  if (m == nullptr) return absl::OkStatus();
  if (depth > kMaxDepth) return PgStatus("54001", "statement too complex to merge across shards");
  absl::Status st;
  if (m != top && m->descriptor == &pg_query__select_stmt__descriptor) {
    const auto* s = reinterpret_cast<const PgQuery__SelectStmt*>(m);
    std::string_view what;
    if (s->n_group_clause > 0 || s->having_clause != nullptr) what = "GROUP BY";
    if (s->limit_count != nullptr || s->limit_offset != nullptr) what = "LIMIT/OFFSET";
    if (s->n_distinct_clause > 0) what = "DISTINCT";
    if (s->n_window_clause > 0) what = "a window";
    if (!what.empty()) {
      return Unsupported(Cat("a subquery with ", what),
                         "Each shard would compute it over its own rows only; restrict the "
                         "statement to one shard (a key condition or a hint).");
    }
  }
  if (m->descriptor == &pg_query__func_call__descriptor && m != top) {
    const auto* f = reinterpret_cast<const PgQuery__FuncCall*>(m);
    if (f->over != nullptr || f->agg_star || f->agg_distinct || f->agg_within_group ||
        IsAggregateName(Lower(LastName(f->funcname, f->n_funcname)))) {
      // Aggregates of the top query level are the merge's; the caller skips them by walking
      // only nested SELECTs' subtrees (see PlanMerge).
      return Unsupported(Cat("an aggregate or window function in a subquery (",
                             LastName(f->funcname, f->n_funcname), "())"),
                         "Each shard would compute it over its own rows only; restrict the "
                         "statement to one shard (a key condition or a hint).");
    }
  }
  internal::ForEachChild(m, [&](const ProtobufCMessage* child) {
    if (st.ok()) st = CheckSubqueries(child, top, depth + 1);
  });
  return st;
}

void CollectParams(const ProtobufCMessage* m, std::vector<int>& out, int depth = 0) {
  if (m == nullptr || depth > kMaxDepth) return;
  if (m->descriptor == &pg_query__param_ref__descriptor) {
    out.push_back(reinterpret_cast<const PgQuery__ParamRef*>(m)->number);
  }
  internal::ForEachChild(m, [&](const ProtobufCMessage* child) {
    CollectParams(child, out, depth + 1);
  });
}

// The top SELECT and, for a set operation, its branches: the merge handles those itself.
void CollectBranches(const PgQuery__SelectStmt* s, std::vector<const ProtobufCMessage*>& out) {
  if (s == nullptr) return;
  out.push_back(&s->base);
  if (s->op != PG_QUERY__SET_OPERATION__SETOP_NONE &&
      s->op != PG_QUERY__SET_OPERATION__SET_OPERATION_UNDEFINED) {
    CollectBranches(s->larg, out);
    CollectBranches(s->rarg, out);
  }
}

// Walks the statement looking for nested SELECTs; only inside those are aggregates a problem.
absl::Status CheckNestedSelects(const ProtobufCMessage* m,
                                const std::vector<const ProtobufCMessage*>& branches,
                                int depth = 0) {
  if (m == nullptr) return absl::OkStatus();
  if (depth > kMaxDepth) return PgStatus("54001", "statement too complex to merge across shards");
  if (m->descriptor == &pg_query__select_stmt__descriptor &&
      std::find(branches.begin(), branches.end(), m) == branches.end()) {
    return CheckSubqueries(m, nullptr, depth);
  }
  absl::Status st;
  internal::ForEachChild(m, [&](const ProtobufCMessage* child) {
    if (st.ok()) st = CheckNestedSelects(child, branches, depth + 1);
  });
  return st;
}

absl::Status TooDeep() {
  return PgStatus("54001", "statement too complex to merge across shards",
                  "split long chains of operators or nested expressions");
}

// A parsed statement whose tree we may edit. Every change goes through Set(), which remembers
// the old value; nodes we add are owned here. Before libpg_query's tree is freed every replaced
// pointer and count is put back, so that protobuf-c frees exactly what it allocated and never a
// node of ours (ours may point at its nodes; it never points at ours once restored).
class EditableTree {
 public:
  static absl::StatusOr<std::unique_ptr<EditableTree>> Parse(std::string_view sql) {
    std::string text(sql);  // the parser wants a NUL-terminated string
    PgQueryProtobufParseResult result = pg_query_parse_protobuf(text.c_str());
    if (result.error != nullptr) {
      std::string message = result.error->message != nullptr ? result.error->message : "error";
      pg_query_free_protobuf_parse_result(result);
      return PgStatus("42601", message);
    }
    PgQuery__ParseResult* tree = pg_query__parse_result__unpack(
        nullptr, result.parse_tree.len, reinterpret_cast<const uint8_t*>(result.parse_tree.data));
    pg_query_free_protobuf_parse_result(result);
    if (tree == nullptr) return PgStatus("XX000", "could not decode the parse tree");
    return std::unique_ptr<EditableTree>(new EditableTree(tree));
  }

  EditableTree(const EditableTree&) = delete;
  EditableTree& operator=(const EditableTree&) = delete;
  ~EditableTree() {
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
    pg_query__parse_result__free_unpacked(tree_, nullptr);
  }

  // The only statement, or nullptr when there is not exactly one.
  PgQuery__Node* SingleStatement() const {
    if (tree_->n_stmts != 1 || tree_->stmts[0] == nullptr) return nullptr;
    return tree_->stmts[0]->stmt;
  }

  bool changed() const { return !undo_.empty(); }

  template <typename T>
  void Set(T& field, T value) {
    undo_.emplace_back([&field, old = field] { field = old; });
    field = value;
  }

  // A new message of ours, initialised by protobuf-c's init function (empty strings, defaults).
  template <typename T>
  T* New(void (*init)(T*)) {
    auto p = std::make_shared<T>();
    init(p.get());
    owned_.push_back(p);
    return p.get();
  }
  // A shallow copy of `m`: it shares m's children, which stay owned by whoever owns them.
  template <typename T>
  T* Copy(const T& m) {
    auto p = std::make_shared<T>(m);
    owned_.push_back(p);
    return p.get();
  }

  char* Text(std::string_view s) { return strings_.emplace_back(s).data(); }

  PgQuery__Node** Array(std::vector<PgQuery__Node*> items) {
    return arrays_.emplace_back(std::move(items)).data();
  }

  // Replaces the array (items, n) by a copy of ours with `item` appended.
  void Append(PgQuery__Node**& items, size_t& n, PgQuery__Node* item) {
    std::vector<PgQuery__Node*> copy(items, items + n);
    copy.push_back(item);
    Set(n, copy.size());
    Set(items, Array(std::move(copy)));
  }

  // Node wrappers.
  PgQuery__Node* StringNode(std::string_view s) {
    auto* str = New(pg_query__string__init);
    str->sval = Text(s);
    auto* n = New(pg_query__node__init);
    n->node_case = PG_QUERY__NODE__NODE_STRING;
    n->string = str;
    return n;
  }
  PgQuery__Node* FuncCallNode(PgQuery__FuncCall* f) {
    auto* n = New(pg_query__node__init);
    n->node_case = PG_QUERY__NODE__NODE_FUNC_CALL;
    n->func_call = f;
    return n;
  }
  PgQuery__Node* ResTargetNode(std::string_view name, PgQuery__Node* val) {
    auto* rt = New(pg_query__res_target__init);
    rt->name = Text(name);
    rt->val = val;
    rt->location = -1;
    auto* n = New(pg_query__node__init);
    n->node_case = PG_QUERY__NODE__NODE_RES_TARGET;
    n->res_target = rt;
    return n;
  }
  PgQuery__Node* PlusNode(PgQuery__Node* l, PgQuery__Node* r) {
    auto* e = New(pg_query__a__expr__init);
    e->kind = PG_QUERY__A__EXPR__KIND__AEXPR_OP;
    e->n_name = 1;
    e->name = Array({StringNode("+")});
    e->lexpr = l;
    e->rexpr = r;
    e->location = -1;
    auto* n = New(pg_query__node__init);
    n->node_case = PG_QUERY__NODE__NODE_A_EXPR;
    n->a_expr = e;
    return n;
  }
  PgQuery__Node* BigintCast(PgQuery__Node* arg) { return Cast(arg, "int8"); }
  // $number::text: keeps a parameter the shards no longer use referenced (see KeepParams).
  PgQuery__Node* TextParam(int number) {
    auto* pr = New(pg_query__param_ref__init);
    pr->number = number;
    pr->location = -1;
    auto* n = New(pg_query__node__init);
    n->node_case = PG_QUERY__NODE__NODE_PARAM_REF;
    n->param_ref = pr;
    return Cast(n, "text");
  }
  PgQuery__Node* Cast(PgQuery__Node* arg, std::string_view type) {
    auto* tn = New(pg_query__type_name__init);
    tn->n_names = 2;
    tn->names = Array({StringNode("pg_catalog"), StringNode(type)});
    tn->typemod = -1;
    tn->location = -1;
    auto* c = New(pg_query__type_cast__init);
    c->arg = arg;
    c->type_name = tn;
    c->location = -1;
    auto* n = New(pg_query__node__init);
    n->node_case = PG_QUERY__NODE__NODE_TYPE_CAST;
    n->type_cast = c;
    return n;
  }

  // The SQL text of the (edited) tree.
  absl::StatusOr<std::string> Deparse() const {
    size_t len = pg_query__parse_result__get_packed_size(tree_);
    std::string buf(len, '\0');
    pg_query__parse_result__pack(tree_, reinterpret_cast<uint8_t*>(buf.data()));
    PgQueryDeparseResult r = pg_query_deparse_protobuf(PgQueryProtobuf{len, buf.data()});
    absl::StatusOr<std::string> out;
    if (r.error != nullptr || r.query == nullptr) {
      out = PgStatus("XX000",
                     Cat("could not write the shard query: ",
                         r.error != nullptr && r.error->message != nullptr ? r.error->message
                                                                           : "deparse failed"));
    } else {
      out = std::string(r.query);
    }
    pg_query_free_deparse_result(r);
    return out;
  }

 private:
  explicit EditableTree(PgQuery__ParseResult* tree) : tree_(tree) {}

  PgQuery__ParseResult* tree_;
  std::vector<std::function<void()>> undo_;
  std::vector<std::shared_ptr<void>> owned_;
  std::deque<std::string> strings_;  // deque: elements never move, so data() stays valid
  std::deque<std::vector<PgQuery__Node*>> arrays_;
};

// Structural equality of two subtrees, ignoring `location` fields (so `lower(b)` in ORDER BY
// equals `lower(b)` in the select list). Too deep counts as different: the caller then adds a
// hidden column, which is correct, only wasteful.
bool SameTree(const ProtobufCMessage* a, const ProtobufCMessage* b, int depth = 0) {
  if (a == nullptr || b == nullptr) return a == b;
  if (a->descriptor != b->descriptor || depth > kMaxDepth) return false;
  const ProtobufCMessageDescriptor* d = a->descriptor;
  const char* pa = reinterpret_cast<const char*>(a);
  const char* pb = reinterpret_cast<const char*>(b);
  for (unsigned i = 0; i < d->n_fields; ++i) {
    const ProtobufCFieldDescriptor& f = d->fields[i];
    if (std::strcmp(f.name, "location") == 0) continue;
    if (f.flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t ca = *reinterpret_cast<const uint32_t*>(pa + f.quantifier_offset);
      uint32_t cb = *reinterpret_cast<const uint32_t*>(pb + f.quantifier_offset);
      if (ca != cb) return false;
      if (ca != f.id) continue;
    }
    size_t count = 1;
    const char* va = pa + f.offset;
    const char* vb = pb + f.offset;
    if (f.label == PROTOBUF_C_LABEL_REPEATED) {
      count = *reinterpret_cast<const size_t*>(pa + f.quantifier_offset);
      if (count != *reinterpret_cast<const size_t*>(pb + f.quantifier_offset)) return false;
      va = *reinterpret_cast<const char* const*>(va);
      vb = *reinterpret_cast<const char* const*>(vb);
      if (count == 0) continue;
    }
    for (size_t k = 0; k < count; ++k) {
      switch (f.type) {
        case PROTOBUF_C_TYPE_MESSAGE: {
          const auto* ma = reinterpret_cast<const ProtobufCMessage* const*>(va)[k];
          const auto* mb = reinterpret_cast<const ProtobufCMessage* const*>(vb)[k];
          if (!SameTree(ma, mb, depth + 1)) return false;
          break;
        }
        case PROTOBUF_C_TYPE_STRING: {
          const char* sa = reinterpret_cast<const char* const*>(va)[k];
          const char* sb = reinterpret_cast<const char* const*>(vb)[k];
          if (std::strcmp(sa != nullptr ? sa : "", sb != nullptr ? sb : "") != 0) return false;
          break;
        }
        case PROTOBUF_C_TYPE_BYTES: {
          const auto& ba = reinterpret_cast<const ProtobufCBinaryData*>(va)[k];
          const auto& bb = reinterpret_cast<const ProtobufCBinaryData*>(vb)[k];
          if (ba.len != bb.len || (ba.len > 0 && std::memcmp(ba.data, bb.data, ba.len) != 0)) {
            return false;
          }
          break;
        }
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
          if (std::memcmp(va + 8 * k, vb + 8 * k, 8) != 0) return false;
          break;
        case PROTOBUF_C_TYPE_BOOL:
          if (reinterpret_cast<const protobuf_c_boolean*>(va)[k] !=
              reinterpret_cast<const protobuf_c_boolean*>(vb)[k]) {
            return false;
          }
          break;
        default:  // 32-bit scalars and enums
          if (std::memcmp(va + 4 * k, vb + 4 * k, 4) != 0) return false;
          break;
      }
    }
  }
  return true;
}

bool SameNode(const PgQuery__Node* a, const PgQuery__Node* b) {
  return SameTree(a != nullptr ? &a->base : nullptr, b != nullptr ? &b->base : nullptr);
}

std::string FunctionName(const PgQuery__FuncCall* f) {
  return Lower(LastName(f->funcname, f->n_funcname));
}

bool IsAggregateCall(const PgQuery__FuncCall* f) {
  if (f->over != nullptr) return false;
  return f->agg_star || f->agg_distinct || f->agg_within_group || f->n_agg_order > 0 ||
         f->agg_filter != nullptr || IsAggregateName(FunctionName(f));
}

// What a search below one query level found (sub-selects are their own level and not searched).
struct Found {
  bool aggregate = false;
  std::string window;  // name of a window function, "" = none
  bool too_deep = false;
};

void Search(const ProtobufCMessage* m, Found& found, int depth = 0) {
  if (m == nullptr) return;
  if (depth > kMaxDepth) {
    found.too_deep = true;
    return;
  }
  if (m->descriptor == &pg_query__node__descriptor) {
    const auto* n = reinterpret_cast<const PgQuery__Node*>(m);
    if (n->node_case == PG_QUERY__NODE__NODE_SUB_LINK) return;
    if (n->node_case == PG_QUERY__NODE__NODE_FUNC_CALL) {
      const PgQuery__FuncCall* f = n->func_call;
      if (f->over != nullptr && found.window.empty()) found.window = FunctionName(f);
      if (IsAggregateCall(f)) found.aggregate = true;
    }
  }
  ForEachChild(m, [&](const ProtobufCMessage* c) { Search(c, found, depth + 1); });
}

Found SearchNode(const PgQuery__Node* n) {
  Found f;
  if (n != nullptr) Search(&n->base, f);
  return f;
}

const PgQuery__Node* UnwrapCast(const PgQuery__Node* n) {
  while (IsCase(n, PG_QUERY__NODE__NODE_TYPE_CAST)) n = n->type_cast->arg;
  return n;
}

// A constant or parameter as a MergeValue: A_Const (under casts, negative numbers spelled either
// way) or ParamRef. nullopt when `n` is something else.
std::optional<MergeValue> ConstantValue(const PgQuery__Node* n) {
  n = UnwrapCast(n);
  MergeValue v;
  if (IsCase(n, PG_QUERY__NODE__NODE_PARAM_REF)) {
    v.param = n->param_ref->number;
    return v;
  }
  if (IsCase(n, PG_QUERY__NODE__NODE_A_EXPR) &&
      n->a_expr->kind == PG_QUERY__A__EXPR__KIND__AEXPR_OP && n->a_expr->lexpr == nullptr &&
      LastName(n->a_expr->name, n->a_expr->n_name) == "-") {
    const PgQuery__Node* arg = UnwrapCast(n->a_expr->rexpr);
    if (!IsCase(arg, PG_QUERY__NODE__NODE_A_CONST)) return std::nullopt;
    std::optional<MergeValue> inner = ConstantValue(arg);
    if (!inner || inner->null) return inner;
    if (arg->a_const->val_case != PG_QUERY__A__CONST__VAL_IVAL &&
        arg->a_const->val_case != PG_QUERY__A__CONST__VAL_FVAL) {
      return std::nullopt;
    }
    inner->text = inner->text.starts_with('-') ? inner->text.substr(1) : "-" + inner->text;
    return inner;
  }
  if (!IsCase(n, PG_QUERY__NODE__NODE_A_CONST)) return std::nullopt;
  const PgQuery__AConst* c = n->a_const;
  if (c->isnull) {
    v.null = true;
    return v;
  }
  switch (c->val_case) {
    case PG_QUERY__A__CONST__VAL_IVAL:
      v.text = std::to_string(c->ival->ival);
      return v;
    case PG_QUERY__A__CONST__VAL_FVAL:
      v.text = c->fval->fval != nullptr ? c->fval->fval : "";
      return v;
    case PG_QUERY__A__CONST__VAL_SVAL:
      v.text = c->sval->sval != nullptr ? c->sval->sval : "";
      return v;
    case PG_QUERY__A__CONST__VAL_BOOLVAL:
      v.text = c->boolval->boolval ? "true" : "false";
      return v;
    case PG_QUERY__A__CONST__VAL_BSVAL:
      v.text = c->bsval->bsval != nullptr ? c->bsval->bsval : "";
      return v;
    default:
      v.null = true;
      return v;
  }
}

// A short name of an expression for "HAVING with <construct>" errors.
std::string Describe(const PgQuery__Node* n) {
  if (n == nullptr) return "an empty expression";
  switch (n->node_case) {
    case PG_QUERY__NODE__NODE_FUNC_CALL:
      return Cat("function ", FunctionName(n->func_call), "()");
    case PG_QUERY__NODE__NODE_SUB_LINK:
      return "a subquery";
    case PG_QUERY__NODE__NODE_CASE_EXPR:
      return "CASE";
    case PG_QUERY__NODE__NODE_COALESCE_EXPR:
      return "COALESCE";
    case PG_QUERY__NODE__NODE_BOOLEAN_TEST:
      return "IS TRUE/FALSE/UNKNOWN";
    case PG_QUERY__NODE__NODE_TYPE_CAST:
      return "a type cast";
    case PG_QUERY__NODE__NODE_A_EXPR:
      switch (n->a_expr->kind) {
        case PG_QUERY__A__EXPR__KIND__AEXPR_IN:
          return "IN (...)";
        case PG_QUERY__A__EXPR__KIND__AEXPR_LIKE:
          return "LIKE";
        case PG_QUERY__A__EXPR__KIND__AEXPR_ILIKE:
          return "ILIKE";
        case PG_QUERY__A__EXPR__KIND__AEXPR_SIMILAR:
          return "SIMILAR TO";
        case PG_QUERY__A__EXPR__KIND__AEXPR_DISTINCT:
        case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_DISTINCT:
          return "IS [NOT] DISTINCT FROM";
        case PG_QUERY__A__EXPR__KIND__AEXPR_OP_ANY:
        case PG_QUERY__A__EXPR__KIND__AEXPR_OP_ALL:
          return "ANY/ALL";
        case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN_SYM:
        case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN_SYM:
          return "BETWEEN SYMMETRIC";
        default:
          return Cat("operator ", LastName(n->a_expr->name, n->a_expr->n_name));
      }
    default:
      return "this expression";
  }
}

// One column of the shard rows as far as matching is concerned.
struct ShardColumn {
  const PgQuery__Node* expr = nullptr;  // as the client wrote it (avg, not the sum sent)
  std::string name;                     // output name ("" when PostgreSQL's is not obvious)
  MergeColumn::Role role = MergeColumn::Role::kPlain;
  int column = 0;  // index in the shard row; -1 - k: hidden k after a *
};

// Fills one MergePlan from one top-level SELECT, editing the statement through `tree` into the
// shard query. Single use: Plan() once, then read the plan and deparse the tree.
class MergePlanner {
 public:
  // Parameters only the lifted HAVING/LIMIT/OFFSET used: the client's Bind still sends them,
  // and PostgreSQL refuses a Bind with more parameters than the statement has, so each one is
  // kept referenced by a hidden `$n::text` column the merge drops.
  void KeepParams(const std::vector<int>& numbers) {
    for (int n : numbers) AddHidden("sg_p", tree_.TextParam(n), MergeColumn::Role::kPlain);
  }
  MergePlanner(EditableTree& tree, MergePlan& plan) : tree_(tree), plan_(plan) {}

  absl::Status Plan(PgQuery__SelectStmt* s);

 private:
  absl::Status CheckCommon(const PgQuery__SelectStmt* s);
  absl::Status CheckSetOperation(const PgQuery__SelectStmt* s, bool distinct_top, int depth);
  absl::Status Targets(PgQuery__SelectStmt* s);
  absl::Status GroupBy(PgQuery__SelectStmt* s);
  absl::Status OrderBy(PgQuery__SelectStmt* s);
  absl::Status LimitOffset(PgQuery__SelectStmt* s);
  absl::StatusOr<HavingExpr> Having(const PgQuery__Node* n, int depth);
  absl::StatusOr<HavingExpr::Operand> HavingOperand(const PgQuery__Node* n);

  // The merge role of an expression in an aggregate query; 0A000 for what cannot be combined.
  absl::StatusOr<MergeColumn::Role> RoleOf(const PgQuery__Node* n);
  // Appends `expr` to the shard's select list under `prefix`N (with its avg count when kAvg)
  // and returns its column.
  int AddHidden(std::string_view prefix, PgQuery__Node* expr, MergeColumn::Role role);
  // Rewrites avg(x) into sum(x) (same arguments, FILTER...) and appends the hidden count(x).
  PgQuery__Node* AvgAsSum(const PgQuery__FuncCall* avg);
  void AddCount(const PgQuery__FuncCall* avg, int avg_column);
  // The column whose expression equals `n` (and whose role is `role`, when given), or -1.
  int FindColumn(const PgQuery__Node* n, std::optional<MergeColumn::Role> role = {}) const;
  int FindName(std::string_view name) const;

  EditableTree& tree_;
  MergePlan& plan_;
  PgQuery__SelectStmt* top_ = nullptr;
  // The columns whose place is known: the select list up to a *, then the hidden ones.
  std::vector<ShardColumn> columns_;
  bool star_ = false;    // a * in the select list: visible count unknown
  bool can_add_ = true;  // false for UNION / VALUES: no hidden columns possible
  int hidden_seq_ = 0;   // sg_xN suffixes
};

absl::StatusOr<MergeColumn::Role> MergePlanner::RoleOf(const PgQuery__Node* n) {
  using Role = MergeColumn::Role;
  const PgQuery__Node* v = n;
  if (IsCase(v, PG_QUERY__NODE__NODE_FUNC_CALL) && IsAggregateCall(v->func_call)) {
    const PgQuery__FuncCall* f = v->func_call;
    std::string name = FunctionName(f);
    std::optional<Role> role;
    if (name == "count") role = Role::kCount;
    if (name == "sum") role = Role::kSum;
    if (name == "min") role = Role::kMin;
    if (name == "max") role = Role::kMax;
    if (name == "avg") role = Role::kAvg;
    if (!role) return Unsupported(Cat("aggregate ", name, "()"), kAggregateHint);
    if (f->agg_within_group || f->n_agg_order > 0) {
      return Unsupported(Cat("aggregate ", name, "() with ORDER BY"), kAggregateHint);
    }
    // DISTINCT changes nothing for min/max; the others would count a value once per shard.
    if (f->agg_distinct && *role != Role::kMin && *role != Role::kMax) {
      return Unsupported(Cat("aggregate ", name, "(DISTINCT ...)"), kAggregateHint);
    }
    for (size_t i = 0; i < f->n_args; ++i) {
      if (SearchNode(f->args[i]).aggregate) {
        return Unsupported("an aggregate inside an aggregate", kExpressionHint);
      }
    }
    return *role;
  }
  Found found = SearchNode(n);
  if (found.too_deep) return TooDeep();
  if (found.aggregate) return Unsupported("an aggregate inside an expression", kExpressionHint);
  return Role::kPlain;
}

PgQuery__Node* MergePlanner::AvgAsSum(const PgQuery__FuncCall* avg) {
  PgQuery__FuncCall* sum = tree_.Copy(*avg);
  std::vector<PgQuery__Node*> names(avg->funcname, avg->funcname + avg->n_funcname);
  names.back() = tree_.StringNode("sum");
  sum->funcname = tree_.Array(std::move(names));
  return tree_.FuncCallNode(sum);
}

void MergePlanner::AddCount(const PgQuery__FuncCall* avg, int avg_column) {
  PgQuery__FuncCall* count = tree_.Copy(*avg);
  std::vector<PgQuery__Node*> names(avg->funcname, avg->funcname + avg->n_funcname);
  names.back() = tree_.StringNode("count");
  count->funcname = tree_.Array(std::move(names));
  int column = AddHidden("sg_c", tree_.FuncCallNode(count), MergeColumn::Role::kCount);
  plan_.columns[avg_column].count_column = column;
}

int MergePlanner::AddHidden(std::string_view prefix, PgQuery__Node* expr, MergeColumn::Role role) {
  int column = star_ ? -1 - plan_.hidden_columns : plan_.visible_columns + plan_.hidden_columns;
  std::string name = Cat(prefix, ++hidden_seq_);
  PgQuery__Node* sent = expr;
  if (role == MergeColumn::Role::kAvg) sent = AvgAsSum(expr->func_call);
  tree_.Append(top_->target_list, top_->n_target_list, tree_.ResTargetNode(name, sent));
  columns_.push_back({expr, name, role, column});
  ++plan_.hidden_columns;
  if (plan_.aggregate) {
    plan_.columns.push_back({role, -1});
    if (role == MergeColumn::Role::kAvg) AddCount(expr->func_call, column);
  }
  return column;
}

int MergePlanner::FindColumn(const PgQuery__Node* n, std::optional<MergeColumn::Role> role) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (role && columns_[i].role != *role) continue;
    if (columns_[i].expr != nullptr && SameNode(columns_[i].expr, n)) return columns_[i].column;
  }
  return -1;
}

int MergePlanner::FindName(std::string_view name) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (!columns_[i].name.empty() && columns_[i].name == name) return columns_[i].column;
  }
  return -1;
}

absl::Status MergePlanner::CheckCommon(const PgQuery__SelectStmt* s) {
  if (s->into_clause != nullptr) return Unsupported("SELECT INTO");
  if (s->n_locking_clause > 0) return Unsupported("FOR UPDATE/SHARE");
  if (s->n_window_clause > 0) return Unsupported("WINDOW");
  if (s->n_distinct_clause > 0) {
    bool plain = s->n_distinct_clause == 1 &&
                 (s->distinct_clause[0] == nullptr ||
                  s->distinct_clause[0]->node_case == PG_QUERY__NODE__NODE__NOT_SET);
    if (!plain) return Unsupported("SELECT DISTINCT ON");
  }
  for (size_t i = 0; i < s->n_group_clause; ++i) {
    if (IsCase(s->group_clause[i], PG_QUERY__NODE__NODE_GROUPING_SET)) {
      return Unsupported("GROUPING SETS/ROLLUP/CUBE");
    }
  }
  auto check = [](const PgQuery__Node* n) -> absl::Status {
    Found f = SearchNode(n);
    if (f.too_deep) return TooDeep();
    if (!f.window.empty()) return Unsupported(Cat("window function ", f.window, "()"));
    return absl::OkStatus();
  };
  for (size_t i = 0; i < s->n_target_list; ++i) RETURN_IF_ERROR(check(s->target_list[i]));
  for (size_t i = 0; i < s->n_sort_clause; ++i) RETURN_IF_ERROR(check(s->sort_clause[i]));
  RETURN_IF_ERROR(check(s->having_clause));
  if (s->limit_option == PG_QUERY__LIMIT_OPTION__LIMIT_OPTION_WITH_TIES) {
    return Unsupported("FETCH ... WITH TIES");
  }
  return absl::OkStatus();
}

// The branches of a UNION each run on every shard and are concatenated (UNION ALL) or merged
// without duplicates (UNION): anything a branch computes over all its rows would be per shard.
absl::Status MergePlanner::CheckSetOperation(const PgQuery__SelectStmt* s, bool distinct_top,
                                             int depth) {
  if (depth > kMaxDepth) return TooDeep();
  RETURN_IF_ERROR(CheckCommon(s));
  if (depth > 0 && (s->limit_count != nullptr || s->limit_offset != nullptr)) {
    return Unsupported("LIMIT/OFFSET inside a UNION branch");
  }
  if (s->op != PG_QUERY__SET_OPERATION__SETOP_NONE &&
      s->op != PG_QUERY__SET_OPERATION__SET_OPERATION_UNDEFINED) {
    if (s->op != PG_QUERY__SET_OPERATION__SETOP_UNION) return Unsupported("INTERSECT/EXCEPT");
    if (!s->all && !distinct_top) {
      return Unsupported("UNION (without ALL) inside UNION ALL",
                         "write UNION for the whole statement, or UNION ALL for every branch");
    }
    RETURN_IF_ERROR(CheckSetOperation(s->larg, distinct_top, depth + 1));
    return CheckSetOperation(s->rarg, distinct_top, depth + 1);
  }
  if (s->n_distinct_clause > 0 && !distinct_top) {
    return Unsupported("SELECT DISTINCT inside UNION ALL",
                       "write UNION for the whole statement, or remove DISTINCT");
  }
  bool aggregate = s->n_group_clause > 0 || s->having_clause != nullptr;
  for (size_t i = 0; i < s->n_target_list && !aggregate; ++i) {
    aggregate = SearchNode(s->target_list[i]).aggregate;
  }
  if (aggregate) {
    return Unsupported("an aggregate inside a UNION branch",
                       "aggregate over the UNION in a subquery on one shard, or in the "
                       "application");
  }
  return absl::OkStatus();
}

absl::Status MergePlanner::Targets(PgQuery__SelectStmt* s) {
  const PgQuery__SelectStmt* first = s;  // the leftmost branch names the output columns
  while (first->larg != nullptr) first = first->larg;
  if (first->n_values_lists > 0) {
    can_add_ = false;
    const PgQuery__Node* row = first->values_lists[0];
    size_t n = IsCase(row, PG_QUERY__NODE__NODE_LIST) ? row->list->n_items : 0;
    for (size_t i = 0; i < n; ++i) {
      columns_.push_back({row->list->items[i], Cat("column", i + 1), MergeColumn::Role::kPlain,
                          static_cast<int>(i)});
    }
    plan_.visible_columns = static_cast<int>(n);
    return absl::OkStatus();
  }
  for (size_t i = 0; i < first->n_target_list; ++i) {
    const PgQuery__Node* item = first->target_list[i];
    if (!IsCase(item, PG_QUERY__NODE__NODE_RES_TARGET)) continue;
    PgQuery__ResTarget* rt = item->res_target;
    const PgQuery__Node* v = rt->val;
    if (IsCase(v, PG_QUERY__NODE__NODE_COLUMN_REF) && v->column_ref->n_fields > 0 &&
        IsCase(v->column_ref->fields[v->column_ref->n_fields - 1], PG_QUERY__NODE__NODE_A_STAR)) {
      star_ = true;  // columns from here on have unknown positions
      continue;
    }
    if (star_) continue;
    ShardColumn c;
    c.expr = v;
    c.column = static_cast<int>(i);
    if (!Empty(rt->name)) {
      c.name = rt->name;
    } else if (const PgQuery__Node* u = UnwrapCast(v);
               IsCase(u, PG_QUERY__NODE__NODE_COLUMN_REF) && u->column_ref->n_fields > 0) {
      c.name = StringValue(u->column_ref->fields[u->column_ref->n_fields - 1]);
    } else if (IsCase(v, PG_QUERY__NODE__NODE_FUNC_CALL)) {
      c.name = FunctionName(v->func_call);
    }
    columns_.push_back(std::move(c));
  }
  plan_.visible_columns = star_ ? -1 : static_cast<int>(first->n_target_list);
  if (!plan_.aggregate) return absl::OkStatus();
  if (star_) return Unsupported("SELECT * in an aggregate query", "name the columns");
  for (size_t i = 0; i < columns_.size(); ++i) {
    ASSIGN_OR_RETURN(MergeColumn::Role role, RoleOf(columns_[i].expr));
    columns_[i].role = role;
    plan_.columns.push_back({role, -1});
  }
  // avg(x) -> sum(x) AS <avg's output name>, count(x) appended after every visible column.
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (columns_[i].role != MergeColumn::Role::kAvg) continue;
    PgQuery__ResTarget* rt = s->target_list[i]->res_target;
    if (Empty(rt->name)) tree_.Set(rt->name, tree_.Text(columns_[i].name));
    tree_.Set(rt->val, AvgAsSum(rt->val->func_call));
    AddCount(columns_[i].expr->func_call, static_cast<int>(i));
  }
  return absl::OkStatus();
}

absl::Status MergePlanner::GroupBy(PgQuery__SelectStmt* s) {
  for (size_t i = 0; i < s->n_group_clause; ++i) {
    PgQuery__Node* g = s->group_clause[i];
    int column = -1;
    const PgQuery__Node* u = UnwrapCast(g);
    if (IsCase(g, PG_QUERY__NODE__NODE_A_CONST) &&
        g->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL) {
      int pos = g->a_const->ival->ival;
      if (pos < 1 || pos > plan_.visible_columns) {
        return PgStatus("42P10", Cat("GROUP BY position ", pos, " is not in select list"));
      }
      column = pos - 1;
    } else {
      // GROUP BY name means an input column first, an output name only when there is none:
      // an equal expression in the select list first, then the output names.
      column = FindColumn(g);
      if (column < 0 && IsCase(u, PG_QUERY__NODE__NODE_COLUMN_REF) &&
          u->column_ref->n_fields == 1) {
        column = FindName(StringValue(u->column_ref->fields[0]));
      }
      if (column < 0) {
        ASSIGN_OR_RETURN(MergeColumn::Role role, RoleOf(g));
        if (role != MergeColumn::Role::kPlain) return Unsupported("GROUP BY an aggregate");
        column = AddHidden("sg_g", g, role);
      }
    }
    bool seen = false;
    for (int c : plan_.group_columns) seen = seen || c == column;
    if (!seen) plan_.group_columns.push_back(column);
  }
  return absl::OkStatus();
}

absl::Status MergePlanner::OrderBy(PgQuery__SelectStmt* s) {
  for (size_t i = 0; i < s->n_sort_clause; ++i) {
    if (!IsCase(s->sort_clause[i], PG_QUERY__NODE__NODE_SORT_BY)) continue;
    const PgQuery__SortBy* sb = s->sort_clause[i]->sort_by;
    if (sb->sortby_dir == PG_QUERY__SORT_BY_DIR__SORTBY_USING) {
      return Unsupported("ORDER BY ... USING", "use ASC or DESC");
    }
    MergeSortKey key;
    key.descending = sb->sortby_dir == PG_QUERY__SORT_BY_DIR__SORTBY_DESC;
    key.nulls_first = key.descending;
    if (sb->sortby_nulls == PG_QUERY__SORT_BY_NULLS__SORTBY_NULLS_FIRST) key.nulls_first = true;
    if (sb->sortby_nulls == PG_QUERY__SORT_BY_NULLS__SORTBY_NULLS_LAST) key.nulls_first = false;
    PgQuery__Node* e = sb->node;
    key.column = -1;
    if (IsCase(e, PG_QUERY__NODE__NODE_A_CONST) &&
        e->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL) {
      int pos = e->a_const->ival->ival;
      if (pos < 1 || (!star_ && pos > plan_.visible_columns)) {
        return PgStatus("42P10", Cat("ORDER BY position ", pos, " is not in select list"));
      }
      key.column = pos - 1;  // hidden columns come after every visible one, * included
    } else if (IsCase(e, PG_QUERY__NODE__NODE_A_CONST) ||
               IsCase(e, PG_QUERY__NODE__NODE_PARAM_REF)) {
      continue;  // a constant sorts nothing (PostgreSQL rejects the non-integer ones itself)
    } else {
      // ORDER BY name means an output name first, then an input column.
      if (IsCase(e, PG_QUERY__NODE__NODE_COLUMN_REF) && e->column_ref->n_fields == 1) {
        key.column = FindName(StringValue(e->column_ref->fields[0]));
      }
      if (key.column < 0) key.column = FindColumn(e);
      if (key.column < 0) {
        if (!can_add_) {
          return Unsupported("ORDER BY an expression or a column of * on a UNION or VALUES",
                             "order by a column named in the select list, or its position");
        }
        MergeColumn::Role role = MergeColumn::Role::kPlain;
        if (plan_.aggregate) {
          ASSIGN_OR_RETURN(role, RoleOf(e));
        }
        key.column = AddHidden("sg_o", e, role);
      }
    }
    plan_.order_by.push_back(key);
  }
  return absl::OkStatus();
}

absl::Status MergePlanner::LimitOffset(PgQuery__SelectStmt* s) {
  auto value = [](const PgQuery__Node* n,
                  const char* what) -> absl::StatusOr<std::optional<MergeValue>> {
    if (n == nullptr) return std::optional<MergeValue>();
    std::optional<MergeValue> v = ConstantValue(n);
    if (!v)
      return Unsupported(Cat(what, " with an expression"), "use a constant or a $n parameter");
    if (v->null) return std::optional<MergeValue>();  // LIMIT ALL / NULL, OFFSET NULL
    return v;
  };
  ASSIGN_OR_RETURN(plan_.limit, value(s->limit_count, "LIMIT"));
  ASSIGN_OR_RETURN(plan_.offset, value(s->limit_offset, "OFFSET"));
  if (plan_.aggregate) {
    // Groups are complete only after the merge: every shard returns every group.
    if (s->limit_count != nullptr) tree_.Set(s->limit_count, static_cast<PgQuery__Node*>(nullptr));
    if (s->limit_offset != nullptr) {
      tree_.Set(s->limit_offset, static_cast<PgQuery__Node*>(nullptr));
    }
    if (s->limit_option == PG_QUERY__LIMIT_OPTION__LIMIT_OPTION_COUNT) {
      tree_.Set(s->limit_option, PG_QUERY__LIMIT_OPTION__LIMIT_OPTION_DEFAULT);
    }
    return absl::OkStatus();
  }
  if (s->limit_offset == nullptr) return absl::OkStatus();
  // The first n rows after m of the merge are among the first n + m of every shard. Without a
  // type, `$1 + $2` is ambiguous to PostgreSQL ("operator is not unique: unknown + unknown"):
  // anything but an integer constant is cast to bigint, the type LIMIT wants anyway.
  auto operand = [this](PgQuery__Node* n) {
    bool integer = IsCase(n, PG_QUERY__NODE__NODE_A_CONST) &&
                   n->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL;
    return integer ? n : tree_.BigintCast(n);
  };
  if (plan_.limit && plan_.offset) {
    tree_.Set(s->limit_count, tree_.PlusNode(operand(s->limit_count), operand(s->limit_offset)));
  }
  tree_.Set(s->limit_offset, static_cast<PgQuery__Node*>(nullptr));
  return absl::OkStatus();
}

absl::StatusOr<HavingExpr::Operand> MergePlanner::HavingOperand(const PgQuery__Node* n) {
  HavingExpr::Operand op;
  if (std::optional<MergeValue> v = ConstantValue(n)) {
    op.value = std::move(*v);
    return op;
  }
  if (IsCase(n, PG_QUERY__NODE__NODE_FUNC_CALL) && IsAggregateCall(n->func_call)) {
    ASSIGN_OR_RETURN(MergeColumn::Role role, RoleOf(n));
    op.column = FindColumn(n, role);
    if (op.column < 0) op.column = AddHidden("sg_h", const_cast<PgQuery__Node*>(n), role);
    return op;
  }
  Found found = SearchNode(n);
  if (found.too_deep) return TooDeep();
  if (found.aggregate) {
    return Unsupported("HAVING with an aggregate inside an expression", kExpressionHint);
  }
  op.column = FindColumn(n, MergeColumn::Role::kPlain);
  if (op.column >= 0) return op;
  if (IsCase(n, PG_QUERY__NODE__NODE_COLUMN_REF)) {
    // A group key spelled differently (t.a for a): PostgreSQL checks that it is grouped.
    op.column = AddHidden("sg_h", const_cast<PgQuery__Node*>(n), MergeColumn::Role::kPlain);
    return op;
  }
  return Unsupported(Cat("HAVING with ", Describe(n)),
                     "compare aggregates and group keys with constants or parameters");
}

absl::StatusOr<HavingExpr> MergePlanner::Having(const PgQuery__Node* n, int depth) {
  if (depth > kMaxDepth) return TooDeep();
  HavingExpr h;
  if (IsCase(n, PG_QUERY__NODE__NODE_BOOL_EXPR)) {
    const PgQuery__BoolExpr* b = n->bool_expr;
    switch (b->boolop) {
      case PG_QUERY__BOOL_EXPR_TYPE__AND_EXPR:
        h.kind = HavingExpr::Kind::kAnd;
        break;
      case PG_QUERY__BOOL_EXPR_TYPE__OR_EXPR:
        h.kind = HavingExpr::Kind::kOr;
        break;
      default:
        h.kind = HavingExpr::Kind::kNot;
        break;
    }
    for (size_t i = 0; i < b->n_args; ++i) {
      ASSIGN_OR_RETURN(HavingExpr arg, Having(b->args[i], depth + 1));
      h.args.push_back(std::move(arg));
    }
    return h;
  }
  if (IsCase(n, PG_QUERY__NODE__NODE_NULL_TEST)) {
    h.kind = n->null_test->nulltesttype == PG_QUERY__NULL_TEST_TYPE__IS_NULL
                 ? HavingExpr::Kind::kIsNull
                 : HavingExpr::Kind::kIsNotNull;
    ASSIGN_OR_RETURN(HavingExpr::Operand op, HavingOperand(n->null_test->arg));
    h.operands.push_back(std::move(op));
    return h;
  }
  if (IsCase(n, PG_QUERY__NODE__NODE_A_EXPR)) {
    const PgQuery__AExpr* a = n->a_expr;
    std::string_view op = LastName(a->name, a->n_name);
    if (a->kind == PG_QUERY__A__EXPR__KIND__AEXPR_OP && a->lexpr != nullptr &&
        a->rexpr != nullptr &&
        (op == "=" || op == "<>" || op == "!=" || op == "<" || op == "<=" || op == ">" ||
         op == ">=")) {
      h.kind = HavingExpr::Kind::kCompare;
      h.op = op == "!=" ? "<>" : std::string(op);
      ASSIGN_OR_RETURN(HavingExpr::Operand l, HavingOperand(a->lexpr));
      ASSIGN_OR_RETURN(HavingExpr::Operand r, HavingOperand(a->rexpr));
      h.operands = {std::move(l), std::move(r)};
      return h;
    }
    // x BETWEEN a AND b is x >= a AND x <= b; NOT BETWEEN is x < a OR x > b.
    bool between = a->kind == PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN;
    if ((between || a->kind == PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN) &&
        IsCase(a->rexpr, PG_QUERY__NODE__NODE_LIST) && a->rexpr->list->n_items == 2) {
      ASSIGN_OR_RETURN(HavingExpr::Operand x, HavingOperand(a->lexpr));
      h.kind = between ? HavingExpr::Kind::kAnd : HavingExpr::Kind::kOr;
      for (size_t i = 0; i < 2; ++i) {
        ASSIGN_OR_RETURN(HavingExpr::Operand bound, HavingOperand(a->rexpr->list->items[i]));
        HavingExpr cmp;
        cmp.kind = HavingExpr::Kind::kCompare;
        cmp.op = between ? (i == 0 ? ">=" : "<=") : (i == 0 ? "<" : ">");
        cmp.operands = {x, std::move(bound)};
        h.args.push_back(std::move(cmp));
      }
      return h;
    }
  }
  return Unsupported(Cat("HAVING with ", Describe(n)),
                     "HAVING may use AND, OR, NOT, comparisons, IS [NOT] NULL and BETWEEN of "
                     "aggregates, group keys, constants and parameters");
}

absl::Status MergePlanner::Plan(PgQuery__SelectStmt* s) {
  top_ = s;
  bool set_operation = s->op != PG_QUERY__SET_OPERATION__SETOP_NONE &&
                       s->op != PG_QUERY__SET_OPERATION__SET_OPERATION_UNDEFINED;
  if (set_operation) {
    bool distinct_top = s->op == PG_QUERY__SET_OPERATION__SETOP_UNION && !s->all;
    RETURN_IF_ERROR(CheckSetOperation(s, distinct_top, 0));
    plan_.distinct = distinct_top;
    can_add_ = false;
  } else {
    RETURN_IF_ERROR(CheckCommon(s));
    plan_.distinct = s->n_distinct_clause > 0;
    bool aggregate = s->n_group_clause > 0 || s->having_clause != nullptr;
    for (size_t i = 0; i < s->n_target_list && !aggregate; ++i) {
      aggregate = SearchNode(s->target_list[i]).aggregate;
    }
    for (size_t i = 0; i < s->n_sort_clause && !aggregate; ++i) {
      aggregate = SearchNode(s->sort_clause[i]).aggregate;
    }
    plan_.aggregate = aggregate;
  }
  RETURN_IF_ERROR(Targets(s));
  if (plan_.aggregate) {
    RETURN_IF_ERROR(GroupBy(s));
    if (s->having_clause != nullptr) {
      ASSIGN_OR_RETURN(plan_.having, Having(s->having_clause, 0));
      // Each shard would filter its partial groups; the proxy filters the merged ones.
      tree_.Set(s->having_clause, static_cast<PgQuery__Node*>(nullptr));
    }
  }
  RETURN_IF_ERROR(OrderBy(s));
  return LimitOffset(s);
}

}  // namespace

absl::StatusOr<MergePlan> PlanMerge(std::string_view sql) {
  ASSIGN_OR_RETURN(std::unique_ptr<EditableTree> tree, EditableTree::Parse(sql));
  PgQuery__Node* stmt = tree->SingleStatement();
  if (stmt == nullptr) return Unsupported("more than one statement in a query spanning shards");
  if (!IsCase(stmt, PG_QUERY__NODE__NODE_SELECT_STMT)) {
    return Unsupported("merging the results of a statement other than SELECT");
  }
  // Parameters the client's statement uses, before the planner lifts clauses out of it.
  std::vector<int> before;
  CollectParams(&stmt->base, before);
  MergePlan plan;
  MergePlanner planner(*tree, plan);
  RETURN_IF_ERROR(planner.Plan(stmt->select_stmt));
  {
    // Those the shards' statement no longer uses.
    std::vector<int> after, lost;
    CollectParams(&stmt->base, after);
    for (int n : before) {
      if (std::find(after.begin(), after.end(), n) == after.end() &&
          std::find(lost.begin(), lost.end(), n) == lost.end()) {
        lost.push_back(n);
      }
    }
    std::sort(lost.begin(), lost.end());
    if (!lost.empty()) planner.KeepParams(lost);
  }
  std::vector<const ProtobufCMessage*> branches;
  CollectBranches(stmt->select_stmt, branches);
  RETURN_IF_ERROR(CheckNestedSelects(&stmt->select_stmt->base, branches));
  if (tree->changed()) {
    ASSIGN_OR_RETURN(plan.shard_sql, tree->Deparse());
  } else {
    plan.shard_sql = std::string(sql);  // deparse would respell an unchanged statement
  }
  return plan;
}

absl::Status ResolveColumns(MergePlan& plan, int shard_columns) {
  if (plan.visible_columns >= 0) return absl::OkStatus();
  if (shard_columns < plan.hidden_columns) {
    return PgStatus("0A000",
                    Cat("cannot merge the shards' results: they have ", shard_columns,
                        " columns, fewer than the ", plan.hidden_columns, " the merge adds"));
  }
  plan.visible_columns = shard_columns - plan.hidden_columns;
  for (MergeSortKey& k : plan.order_by) {
    if (k.column < 0) k.column = plan.visible_columns + (-1 - k.column);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> InsertWithRows(std::string_view sql, std::span<const int> rows) {
  ASSIGN_OR_RETURN(std::unique_ptr<EditableTree> tree, EditableTree::Parse(sql));
  PgQuery__Node* stmt = tree->SingleStatement();
  if (!IsCase(stmt, PG_QUERY__NODE__NODE_INSERT_STMT) ||
      !IsCase(stmt->insert_stmt->select_stmt, PG_QUERY__NODE__NODE_SELECT_STMT) ||
      stmt->insert_stmt->select_stmt->select_stmt->n_values_lists == 0) {
    return absl::InvalidArgumentError("InsertWithRows needs one INSERT ... VALUES statement");
  }
  PgQuery__SelectStmt* values = stmt->insert_stmt->select_stmt->select_stmt;
  if (rows.empty()) return absl::InvalidArgumentError("InsertWithRows needs at least one row");
  std::vector<PgQuery__Node*> kept;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || static_cast<size_t>(rows[i]) >= values->n_values_lists ||
        (i > 0 && rows[i] <= rows[i - 1])) {
      return absl::InvalidArgumentError(
          Cat("InsertWithRows: row ", rows[i], " is out of range or out of order"));
    }
    kept.push_back(values->values_lists[rows[i]]);
  }
  if (kept.size() == values->n_values_lists) return std::string(sql);
  tree->Set(values->n_values_lists, kept.size());
  tree->Set(values->values_lists, tree->Array(std::move(kept)));
  return tree->Deparse();
}

}  // namespace shardgate::routing
