// Expressions: values ($n, literals, constants), column references resolved through the
// scope chain, the filter extraction (AND/OR/=/IN/= ANY) and the generic tree walk.
#include <algorithm>

#include "routing/analyzer_internal.h"
#include "routing/text_util.h"

namespace shardgate::routing::internal {
namespace {

using NodeCase = PgQuery__Node__NodeCase;

bool IsCase(const PgQuery__Node* n, NodeCase c) { return n != nullptr && n->node_case == c; }

// Functions that write or take locks, so a SELECT calling them must run on a primary.
bool IsWriteFunction(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "nextval", "setval", "currval", "lastval", "pg_advisory_lock",
      "pg_advisory_lock_shared", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
      "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
      "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock",
      "pg_try_advisory_xact_lock_shared", "lo_create", "lo_creat", "lo_import", "lo_unlink",
      "lo_put", "lo_from_bytea", "lo_truncate", "lo_open", "lowrite", "pg_notify", "set_config",
      "txid_current", "pg_current_xact_id", "pg_logical_emit_message",
      "pg_create_logical_replication_slot", "pg_create_physical_replication_slot",
      "pg_drop_replication_slot", "pg_switch_wal", "dblink_exec", "pg_terminate_backend",
      "pg_cancel_backend", "pg_reload_conf", "pg_export_snapshot"};
  for (std::string_view k : kNames) {
    if (name == k) return true;
  }
  return false;
}

}  // namespace

bool IsAggregateName(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "count", "sum", "min", "max", "avg", "array_agg", "string_agg", "bool_and", "bool_or",
      "every", "bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg", "json_object_agg",
      "jsonb_object_agg", "xmlagg", "stddev", "stddev_pop", "stddev_samp", "variance",
      "var_pop", "var_samp", "corr", "covar_pop", "covar_samp", "regr_count", "mode",
      "percentile_cont", "percentile_disc", "range_agg", "range_intersect_agg"};
  for (std::string_view k : kNames) {
    if (name == k) return true;
  }
  return false;
}

std::string_view StringValue(const PgQuery__Node* n) {
  if (IsCase(n, PG_QUERY__NODE__NODE_STRING) && n->string->sval != nullptr) {
    return n->string->sval;
  }
  return {};
}

std::string_view LastName(PgQuery__Node** names, size_t n) {
  return n == 0 ? std::string_view() : StringValue(names[n - 1]);
}

void ForEachChild(const ProtobufCMessage* m,
                  const std::function<void(const ProtobufCMessage*)>& fn) {
  const ProtobufCMessageDescriptor* d = m->descriptor;
  const char* base = reinterpret_cast<const char*>(m);
  for (unsigned i = 0; i < d->n_fields; ++i) {
    const ProtobufCFieldDescriptor& f = d->fields[i];
    if (f.type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (f.flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      if (*reinterpret_cast<const uint32_t*>(base + f.quantifier_offset) != f.id) continue;
    }
    if (f.label == PROTOBUF_C_LABEL_REPEATED) {
      size_t count = *reinterpret_cast<const size_t*>(base + f.quantifier_offset);
      auto* items = *reinterpret_cast<ProtobufCMessage* const* const*>(base + f.offset);
      for (size_t k = 0; k < count; ++k) {
        if (items[k] != nullptr) fn(items[k]);
      }
    } else if (auto* child = *reinterpret_cast<ProtobufCMessage* const*>(base + f.offset)) {
      fn(child);
    }
  }
}

bool Scope::IsCte(std::string_view name) const {
  for (const Scope* s = this; s != nullptr; s = s->parent) {
    for (const std::string& c : s->cte_names) {
      if (c == name) return true;
    }
  }
  return false;
}

ValueRef StatementAnalyzer::Value(const PgQuery__Node* n) {
  ValueRef v;
  if (n == nullptr) return v;
  switch (n->node_case) {
    case PG_QUERY__NODE__NODE_PARAM_REF: {
      int number = n->param_ref->number;
      if (normalized_ && number > max_param_) {
        v.source = ValueRef::Source::kLiteral;
        v.index = number - max_param_ - 1;
      } else {
        v.source = ValueRef::Source::kParam;
        v.index = number;
      }
      return v;
    }
    case PG_QUERY__NODE__NODE_A_CONST: {
      const PgQuery__AConst* c = n->a_const;
      if (c->isnull) {
        v.source = ValueRef::Source::kNull;
        return v;
      }
      Literal lit;
      switch (c->val_case) {
        case PG_QUERY__A__CONST__VAL_IVAL:
          lit.kind = Literal::Kind::kInteger;
          lit.value = std::to_string(c->ival->ival);
          break;
        case PG_QUERY__A__CONST__VAL_FVAL:
          // Integers beyond int32 arrive as Float; the key parser decides what they are.
          lit.kind = Literal::Kind::kFloat;
          lit.value = c->fval->fval != nullptr ? c->fval->fval : "";
          if (lit.value.find_first_of(".eE") == std::string::npos) {
            lit.kind = Literal::Kind::kInteger;
          }
          break;
        case PG_QUERY__A__CONST__VAL_SVAL:
          lit.kind = Literal::Kind::kString;
          lit.value = c->sval->sval != nullptr ? c->sval->sval : "";
          break;
        default:
          return v;  // booleans and bit strings are not keys
      }
      v.source = ValueRef::Source::kConst;
      v.index = static_cast<int>(info_.constants.size());
      info_.constants.push_back(std::move(lit));
      return v;
    }
    case PG_QUERY__NODE__NODE_TYPE_CAST: {
      ValueRef inner = Value(n->type_cast->arg);
      const PgQuery__TypeName* t = n->type_cast->type_name;
      if (t != nullptr && t->n_array_bounds > 0) inner.array = true;
      return inner;
    }
    case PG_QUERY__NODE__NODE_COLLATE_CLAUSE:
      return Value(n->collate_clause->arg);
    case PG_QUERY__NODE__NODE_SET_TO_DEFAULT:
      v.source = ValueRef::Source::kDefault;
      return v;
    case PG_QUERY__NODE__NODE_A_EXPR: {
      const PgQuery__AExpr* a = n->a_expr;
      std::string_view op = LastName(a->name, a->n_name);
      if (a->kind == PG_QUERY__A__EXPR__KIND__AEXPR_OP && a->lexpr == nullptr &&
          (op == "-" || op == "+")) {
        ValueRef inner = Value(a->rexpr);
        if (!inner.known()) return v;
        if (op == "-") inner.negate = !inner.negate;
        return inner;
      }
      return v;
    }
    default:
      return v;
  }
}

std::vector<ValueRef> StatementAnalyzer::ArrayValues(const PgQuery__Node* n) {
  std::vector<ValueRef> out;
  if (n == nullptr) return out;
  if (n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST) {
    if (IsCase(n->type_cast->arg, PG_QUERY__NODE__NODE_A_ARRAY_EXPR)) {
      return ArrayValues(n->type_cast->arg);
    }
  }
  if (n->node_case == PG_QUERY__NODE__NODE_A_ARRAY_EXPR) {
    const PgQuery__AArrayExpr* arr = n->a_array_expr;
    for (size_t i = 0; i < arr->n_elements; ++i) {
      ValueRef v = Value(arr->elements[i]);
      if (!v.known() || v.array) return {};
      out.push_back(v);
    }
    return out;
  }
  ValueRef v = Value(n);
  if (!v.known()) return out;
  v.array = true;  // '{1,2}', '{1,2}'::int[] or $1 (an array parameter)
  out.push_back(v);
  return out;
}

bool StatementAnalyzer::Column(const PgQuery__Node* n, const Scope& scope,
                               std::vector<int>& tables, std::string& column) {
  while (IsCase(n, PG_QUERY__NODE__NODE_TYPE_CAST)) n = n->type_cast->arg;  // id::bigint
  if (IsCase(n, PG_QUERY__NODE__NODE_COLLATE_CLAUSE)) n = n->collate_clause->arg;
  if (!IsCase(n, PG_QUERY__NODE__NODE_COLUMN_REF)) return false;
  const PgQuery__ColumnRef* c = n->column_ref;
  size_t nf = c->n_fields;
  if (nf == 0 || nf > 3) return false;
  for (size_t i = 0; i < nf; ++i) {
    if (!IsCase(c->fields[i], PG_QUERY__NODE__NODE_STRING)) return false;  // t.*
  }
  column = std::string(StringValue(c->fields[nf - 1]));
  tables.clear();
  if (nf == 1) {
    tables = scope.tables;  // the planner keeps those whose key is `column`
    return !tables.empty();
  }
  std::string_view qual = StringValue(c->fields[nf - 2]);
  std::string_view schema = nf == 3 ? StringValue(c->fields[0]) : std::string_view();
  for (const Scope* s = &scope; s != nullptr; s = s->parent) {
    for (int t : s->tables) {
      const TableRef& ref = info_.tables[t];
      bool match = !ref.alias.empty() ? (schema.empty() && ref.alias == qual)
                                      : (ref.name == qual &&
                                         (schema.empty() || ref.schema == schema));
      if (match) {
        tables.push_back(t);
        return true;
      }
    }
  }
  return false;  // a CTE, a sub-select alias or an unknown name
}

Extracted StatementAnalyzer::Comparison(const PgQuery__AExpr* a, Scope& scope) {
  Extracted out;
  std::string_view op = LastName(a->name, a->n_name);
  if (op != "=") return out;
  std::vector<int> lt, rt;
  std::string lc, rc;
  bool lcol = Column(a->lexpr, scope, lt, lc);
  switch (a->kind) {
    case PG_QUERY__A__EXPR__KIND__AEXPR_OP: {
      bool rcol = Column(a->rexpr, scope, rt, rc);
      if (lcol && rcol) {
        if (lt.size() == 1 && rt.size() == 1) {
          out.equalities.push_back({lt[0], lc, rt[0], rc});
        }
        return out;
      }
      const PgQuery__Node* value = lcol ? a->rexpr : a->lexpr;
      if (!lcol && !rcol) return out;
      ValueRef v = Value(value);
      // `= NULL` matches nothing: a restriction to no value (any one shard answers).
      if ((!v.known() && v.source != ValueRef::Source::kNull) || v.array) return out;
      out.restrictions.push_back({lcol ? lt : rt, lcol ? lc : rc, {v}});
      return out;
    }
    case PG_QUERY__A__EXPR__KIND__AEXPR_IN: {
      if (!lcol || !IsCase(a->rexpr, PG_QUERY__NODE__NODE_LIST)) return out;
      const PgQuery__List* list = a->rexpr->list;
      Restriction r{lt, lc, {}};
      for (size_t i = 0; i < list->n_items; ++i) {
        ValueRef v = Value(list->items[i]);
        if ((!v.known() && v.source != ValueRef::Source::kNull) || v.array) {
          return out;  // one unknown element: not narrowed
        }
        r.values.push_back(v);
      }
      if (!r.values.empty()) out.restrictions.push_back(std::move(r));
      return out;
    }
    case PG_QUERY__A__EXPR__KIND__AEXPR_OP_ANY: {
      if (!lcol) return out;
      std::vector<ValueRef> values = ArrayValues(a->rexpr);
      if (!values.empty()) out.restrictions.push_back({lt, lc, std::move(values)});
      return out;
    }
    default:
      return out;
  }
}

Extracted StatementAnalyzer::ExtractOr(const PgQuery__BoolExpr* b, Scope& scope) {
  // (a OR b) restricts a column only when every branch restricts it; the union of one
  // restriction per branch is then a superset of the truth. Equalities do not survive an OR.
  Extracted out;
  std::vector<Extracted> branches;
  for (size_t i = 0; i < b->n_args; ++i) {
    branches.push_back(Extract(b->args[i], scope));
    if (branches.back().restrictions.empty()) return out;
  }
  if (branches.empty()) return out;
  for (const Restriction& first : branches[0].restrictions) {
    Restriction merged = first;
    bool everywhere = true;
    for (size_t i = 1; i < branches.size() && everywhere; ++i) {
      auto it = std::find_if(branches[i].restrictions.begin(), branches[i].restrictions.end(),
                             [&](const Restriction& r) {
                               return r.column == first.column && r.tables == first.tables;
                             });
      if (it == branches[i].restrictions.end()) {
        everywhere = false;
      } else {
        merged.values.insert(merged.values.end(), it->values.begin(), it->values.end());
      }
    }
    if (everywhere) out.restrictions.push_back(std::move(merged));
  }
  return out;
}

Extracted StatementAnalyzer::Extract(const PgQuery__Node* e, Scope& scope) {
  Extracted out;
  if (e == nullptr || ++depth_ > kMaxDepth) {
    if (depth_ > kMaxDepth) too_deep_ = true;
    --depth_;
    return out;
  }
  switch (e->node_case) {
    case PG_QUERY__NODE__NODE_BOOL_EXPR: {
      const PgQuery__BoolExpr* b = e->bool_expr;
      if (b->boolop == PG_QUERY__BOOL_EXPR_TYPE__AND_EXPR) {
        for (size_t i = 0; i < b->n_args; ++i) {
          Extracted x = Extract(b->args[i], scope);
          out.restrictions.insert(out.restrictions.end(), x.restrictions.begin(),
                                  x.restrictions.end());
          out.equalities.insert(out.equalities.end(), x.equalities.begin(), x.equalities.end());
        }
      } else if (b->boolop == PG_QUERY__BOOL_EXPR_TYPE__OR_EXPR) {
        out = ExtractOr(b, scope);
      }
      break;  // NOT: nothing can be concluded
    }
    case PG_QUERY__NODE__NODE_A_EXPR:
      out = Comparison(e->a_expr, scope);
      break;
    case PG_QUERY__NODE__NODE_SUB_LINK: {
      // col IN (SELECT c FROM t ...): co-located with t.c when the sub-select exposes it.
      const PgQuery__SubLink* sl = e->sub_link;
      std::string_view op = LastName(sl->oper_name, sl->n_oper_name);
      if (sl->sub_link_type != PG_QUERY__SUB_LINK_TYPE__ANY_SUBLINK || !(op.empty() || op == "=")) {
        break;
      }
      auto it = sublink_outputs_.find(sl);
      std::vector<int> lt;
      std::string lc;
      if (it != sublink_outputs_.end() && it->second.table >= 0 &&
          Column(sl->testexpr, scope, lt, lc) && lt.size() == 1) {
        out.equalities.push_back({lt[0], lc, it->second.table, it->second.column});
      }
      break;
    }
    default:
      break;
  }
  --depth_;
  return out;
}

void StatementAnalyzer::Apply(const Extracted& x, const Scope& scope, bool restrictions) {
  if (restrictions) {
    for (const Restriction& r : x.restrictions) {
      // Only restrictions on this block's own tables: a filter on an outer table seen inside a
      // sub-select need not hold for the outer query.
      bool own = std::all_of(r.tables.begin(), r.tables.end(), [&](int t) {
        return std::find(scope.tables.begin(), scope.tables.end(), t) != scope.tables.end();
      });
      if (own) info_.keys.push_back({r.tables, r.column, r.values});
    }
  }
  info_.joins.insert(info_.joins.end(), x.equalities.begin(), x.equalities.end());
}

void StatementAnalyzer::FuncCall(const PgQuery__FuncCall* f) {
  std::string name = Lower(LastName(f->funcname, f->n_funcname));
  if (IsWriteFunction(name)) MarkWrite(name + "()");
  if (f->over != nullptr) {
    info_.merge.window = true;
    info_.fanout_blockers.push_back("window function " + name + "()");
  }
}

void StatementAnalyzer::Walk(const ProtobufCMessage* m, Scope& scope) {
  if (m == nullptr) return;
  if (++depth_ > kMaxDepth) {
    too_deep_ = true;
    --depth_;
    return;
  }
  const ProtobufCMessageDescriptor* d = m->descriptor;
  if (d == &pg_query__node__descriptor) {
    const auto* n = reinterpret_cast<const PgQuery__Node*>(m);
    switch (n->node_case) {
      case PG_QUERY__NODE__NODE_SUB_LINK: {
        const PgQuery__SubLink* sl = n->sub_link;
        if (sl->testexpr != nullptr) Walk(&sl->testexpr->base, scope);
        if (IsCase(sl->subselect, PG_QUERY__NODE__NODE_SELECT_STMT)) {
          sublink_outputs_[sl] = Select(sl->subselect->select_stmt, &scope, false);
        }
        --depth_;
        return;
      }
      case PG_QUERY__NODE__NODE_SELECT_STMT:
        Select(n->select_stmt, &scope, false);
        --depth_;
        return;
      case PG_QUERY__NODE__NODE_INSERT_STMT:
      case PG_QUERY__NODE__NODE_UPDATE_STMT:
      case PG_QUERY__NODE__NODE_DELETE_STMT:
      case PG_QUERY__NODE__NODE_MERGE_STMT:
        Dml(n, &scope, false);
        --depth_;
        return;
      case PG_QUERY__NODE__NODE_FUNC_CALL:
        FuncCall(n->func_call);
        break;
      default:
        break;
    }
  }
  ForEachChild(m, [&](const ProtobufCMessage* child) { Walk(child, scope); });
  --depth_;
}

}  // namespace shardgate::routing::internal
