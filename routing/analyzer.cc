// Query blocks: SELECT (FROM, WHERE, target list, GROUP BY, ORDER BY, LIMIT), WITH and the
// merge needs of the top-level SELECT. Statements are in analyzer_statements.cc.
#include <charconv>

#include "protocol/status.h"
#include "routing/analyzer_internal.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace internal {
namespace {

bool IsCase(const PgQuery__Node* n, PgQuery__Node__NodeCase c) {
  return n != nullptr && n->node_case == c;
}

// proto3 strings are "" (never null) when absent; both mean "none" here.
bool Empty(const char* s) { return s == nullptr || s[0] == '\0'; }

const PgQuery__Node* UnwrapCast(const PgQuery__Node* n) {
  while (IsCase(n, PG_QUERY__NODE__NODE_TYPE_CAST)) n = n->type_cast->arg;
  return n;
}

// Aggregates a merge can combine from per-shard partial results.
bool MergeableAggregate(std::string_view name) {
  return name == "count" || name == "sum" || name == "min" || name == "max" || name == "avg" ||
         name == "bool_and" || name == "bool_or" || name == "every";
}

bool IsAggregateCall(const PgQuery__FuncCall* f) {
  if (f->over != nullptr) return false;
  return f->agg_star || f->agg_distinct || f->agg_within_group ||
         IsAggregateName(Lower(LastName(f->funcname, f->n_funcname)));
}

bool ContainsAggregate(const ProtobufCMessage* m, int depth = 0) {
  if (m == nullptr || depth > kMaxDepth) return false;
  if (m->descriptor == &pg_query__node__descriptor) {
    const auto* n = reinterpret_cast<const PgQuery__Node*>(m);
    if (n->node_case == PG_QUERY__NODE__NODE_SUB_LINK) return false;  // its own query level
    if (n->node_case == PG_QUERY__NODE__NODE_FUNC_CALL && IsAggregateCall(n->func_call)) {
      return true;
    }
  }
  bool found = false;
  ForEachChild(m, [&](const ProtobufCMessage* c) {
    if (!found) found = ContainsAggregate(c, depth + 1);
  });
  return found;
}

}  // namespace

void StatementAnalyzer::MarkWrite(std::string_view reason) {
  if (!info_.write) {
    info_.write = true;
    info_.write_reason = std::string(reason);
  }
}

int StatementAnalyzer::AddTable(const PgQuery__RangeVar* rv, Scope& scope, bool written) {
  TableRef t;
  if (rv->schemaname != nullptr) t.schema = rv->schemaname;
  if (rv->relname != nullptr) t.name = rv->relname;
  if (rv->alias != nullptr && !Empty(rv->alias->aliasname)) t.alias = rv->alias->aliasname;
  t.scope = scope.id;
  t.written = written;
  int idx = static_cast<int>(info_.tables.size());
  info_.tables.push_back(std::move(t));
  scope.tables.push_back(idx);
  return idx;
}

void StatementAnalyzer::With(const PgQuery__WithClause* with, Scope& scope) {
  if (with == nullptr) return;
  // Names first, so that (recursive) CTE bodies and the main query see them as non-tables.
  for (size_t i = 0; i < with->n_ctes; ++i) {
    if (IsCase(with->ctes[i], PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR)) {
      const char* name = with->ctes[i]->common_table_expr->ctename;
      if (!Empty(name)) scope.cte_names.emplace_back(name);
    }
  }
  for (size_t i = 0; i < with->n_ctes; ++i) {
    if (!IsCase(with->ctes[i], PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR)) continue;
    const PgQuery__Node* q = with->ctes[i]->common_table_expr->ctequery;
    if (IsCase(q, PG_QUERY__NODE__NODE_SELECT_STMT)) {
      Select(q->select_stmt, &scope, false);
    } else if (q != nullptr) {
      MarkWrite("data-modifying WITH");
      Dml(q, &scope, false);
    }
  }
}

void StatementAnalyzer::From(const PgQuery__Node* item, Scope& scope, Extracted& conj) {
  if (item == nullptr) return;
  switch (item->node_case) {
    case PG_QUERY__NODE__NODE_RANGE_VAR: {
      const PgQuery__RangeVar* rv = item->range_var;
      if (Empty(rv->schemaname) && !Empty(rv->relname) && scope.IsCte(rv->relname)) return;
      AddTable(rv, scope, false);
      return;
    }
    case PG_QUERY__NODE__NODE_JOIN_EXPR: {
      const PgQuery__JoinExpr* j = item->join_expr;
      size_t before = scope.tables.size();
      From(j->larg, scope, conj);
      size_t middle = scope.tables.size();
      From(j->rarg, scope, conj);
      if (j->quals != nullptr) {
        Walk(&j->quals->base, scope);
        Extracted x = Extract(j->quals, scope);
        bool inner = j->jointype == PG_QUERY__JOIN_TYPE__JOIN_INNER ||
                     j->jointype == PG_QUERY__JOIN_TYPE__JOIN_TYPE_UNDEFINED;
        // ON of an outer join filters only the joined side, never the preserved one: its
        // equalities still say where matching rows live, its restrictions say nothing.
        if (inner) {
          conj.restrictions.insert(conj.restrictions.end(), x.restrictions.begin(),
                                   x.restrictions.end());
        }
        conj.equalities.insert(conj.equalities.end(), x.equalities.begin(), x.equalities.end());
      }
      // USING (col) between two plain tables.
      if (j->n_using_clause > 0 && middle - before == 1 && scope.tables.size() - middle == 1) {
        int a = scope.tables[before], b = scope.tables[middle];
        for (size_t i = 0; i < j->n_using_clause; ++i) {
          std::string col(StringValue(j->using_clause[i]));
          if (!col.empty()) conj.equalities.push_back({a, col, b, col});
        }
      }
      return;
    }
    case PG_QUERY__NODE__NODE_RANGE_SUBSELECT:
      if (IsCase(item->range_subselect->subquery, PG_QUERY__NODE__NODE_SELECT_STMT)) {
        Select(item->range_subselect->subquery->select_stmt, &scope, false);
      }
      return;
    case PG_QUERY__NODE__NODE_RANGE_TABLE_SAMPLE:
      From(item->range_table_sample->relation, scope, conj);
      for (size_t i = 0; i < item->range_table_sample->n_args; ++i) {
        Walk(&item->range_table_sample->args[i]->base, scope);
      }
      return;
    default:
      Walk(&item->base, scope);  // functions, XMLTABLE...
      return;
  }
}

OrderKey StatementAnalyzer::SortKey(const PgQuery__Node* expr, const PgQuery__SelectStmt* s) {
  OrderKey k;
  expr = UnwrapCast(expr);
  if (expr == nullptr) return k;
  if (IsCase(expr, PG_QUERY__NODE__NODE_A_CONST) &&
      expr->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL) {
    k.position = expr->a_const->ival->ival;
    return k;
  }
  if (IsCase(expr, PG_QUERY__NODE__NODE_PARAM_REF)) {
    ValueRef v = Value(expr);
    if (v.source == ValueRef::Source::kLiteral && literals_ != nullptr &&
        v.index < static_cast<int>(literals_->size())) {
      const Literal& lit = (*literals_)[v.index];
      info_.pinned_literals.emplace_back(v.index, lit.value);
      int pos = 0;
      if (lit.kind == Literal::Kind::kInteger) {
        std::from_chars(lit.value.data(), lit.value.data() + lit.value.size(), pos);
      }
      k.position = pos;
      if (pos == 0) k.position = -1;  // ORDER BY 'constant': sorts nothing
    }
    return k;
  }
  if (IsCase(expr, PG_QUERY__NODE__NODE_COLUMN_REF)) {
    const PgQuery__ColumnRef* c = expr->column_ref;
    k.column = std::string(StringValue(c->fields[c->n_fields - 1]));
    for (size_t i = 0; i < s->n_target_list; ++i) {
      const PgQuery__ResTarget* rt = s->target_list[i]->res_target;
      if (rt == nullptr) continue;
      std::string_view out_name;
      if (rt->name != nullptr && rt->name[0] != '\0') {
        out_name = rt->name;
      } else if (const PgQuery__Node* v = UnwrapCast(rt->val);
                 IsCase(v, PG_QUERY__NODE__NODE_COLUMN_REF) && v->column_ref->n_fields > 0) {
        out_name = StringValue(v->column_ref->fields[v->column_ref->n_fields - 1]);
      }
      if (out_name == k.column) {
        k.position = static_cast<int>(i) + 1;
        break;
      }
    }
  }
  return k;
}

void StatementAnalyzer::OrderAndLimit(const PgQuery__SelectStmt* s, Scope& scope) {
  for (size_t i = 0; i < s->n_sort_clause; ++i) {
    if (!IsCase(s->sort_clause[i], PG_QUERY__NODE__NODE_SORT_BY)) continue;
    const PgQuery__SortBy* sb = s->sort_clause[i]->sort_by;
    Walk(&s->sort_clause[i]->base, scope);
    OrderKey k = SortKey(sb->node, s);
    if (k.position < 0) continue;
    k.descending = sb->sortby_dir == PG_QUERY__SORT_BY_DIR__SORTBY_DESC;
    if (sb->sortby_dir == PG_QUERY__SORT_BY_DIR__SORTBY_USING) {
      info_.fanout_blockers.push_back("ORDER BY ... USING");
    }
    if (sb->sortby_nulls == PG_QUERY__SORT_BY_NULLS__SORTBY_NULLS_FIRST) k.nulls_first = true;
    if (sb->sortby_nulls == PG_QUERY__SORT_BY_NULLS__SORTBY_NULLS_LAST) k.nulls_first = false;
    info_.merge.order_by.push_back(std::move(k));
  }
  auto limit_value = [&](const PgQuery__Node* n, std::optional<ValueRef>& out, const char* what) {
    if (n == nullptr) return;
    Walk(&n->base, scope);
    ValueRef v = Value(n);
    if (v.source == ValueRef::Source::kNull) return;  // LIMIT ALL / LIMIT NULL
    if (!v.known() || v.array) {
      info_.fanout_blockers.push_back(std::string(what) + " with an expression");
      return;
    }
    out = v;
  };
  limit_value(s->limit_count, info_.merge.limit, "LIMIT");
  limit_value(s->limit_offset, info_.merge.offset, "OFFSET");
  if (s->limit_option == PG_QUERY__LIMIT_OPTION__LIMIT_OPTION_WITH_TIES) {
    info_.fanout_blockers.push_back("FETCH ... WITH TIES");
  }
}

void StatementAnalyzer::TargetList(const PgQuery__SelectStmt* s, Scope& scope, bool top) {
  if (top) info_.merge.target_count = static_cast<int>(s->n_target_list);
  for (size_t i = 0; i < s->n_target_list; ++i) {
    const PgQuery__Node* item = s->target_list[i];
    Walk(&item->base, scope);
    if (!top || !IsCase(item, PG_QUERY__NODE__NODE_RES_TARGET)) continue;
    const PgQuery__Node* val = UnwrapCast(item->res_target->val);
    if (IsCase(val, PG_QUERY__NODE__NODE_COLUMN_REF) && val->column_ref->n_fields > 0 &&
        IsCase(val->column_ref->fields[val->column_ref->n_fields - 1],
               PG_QUERY__NODE__NODE_A_STAR)) {
      info_.merge.star = true;
    }
    if (IsCase(val, PG_QUERY__NODE__NODE_FUNC_CALL) && IsAggregateCall(val->func_call)) {
      const PgQuery__FuncCall* f = val->func_call;
      Aggregate a;
      a.function = Lower(LastName(f->funcname, f->n_funcname));
      a.position = static_cast<int>(i) + 1;
      a.star = f->agg_star;
      a.distinct = f->agg_distinct;
      if (!MergeableAggregate(a.function) || f->agg_within_group || f->n_agg_order > 0) {
        info_.fanout_blockers.push_back("aggregate " + a.function + "() across shards");
      } else if (a.distinct) {
        info_.fanout_blockers.push_back(a.function + "(DISTINCT ...) across shards");
      } else if (f->agg_filter != nullptr || ContainsAggregate(&f->base)) {
        // FILTER is applied per shard, which is correct; nested aggregates are not.
        for (size_t k = 0; k < f->n_args; ++k) {
          if (ContainsAggregate(&f->args[k]->base)) {
            info_.fanout_blockers.push_back("nested aggregates across shards");
          }
        }
      }
      info_.merge.aggregates.push_back(std::move(a));
    } else if (val != nullptr && ContainsAggregate(&val->base)) {
      info_.merge.aggregates.push_back({"expression", static_cast<int>(i) + 1, false, false});
      info_.fanout_blockers.push_back("an aggregate inside an expression across shards");
    }
  }
}

void StatementAnalyzer::GroupBy(const PgQuery__SelectStmt* s, Scope& scope) {
  for (size_t i = 0; i < s->n_group_clause; ++i) {
    Walk(&s->group_clause[i]->base, scope);
    const PgQuery__Node* g = s->group_clause[i];
    if (IsCase(g, PG_QUERY__NODE__NODE_GROUPING_SET)) {
      info_.fanout_blockers.push_back("GROUPING SETS/ROLLUP/CUBE across shards");
      continue;
    }
    OrderKey k = SortKey(g, s);
    if (k.position < 0) continue;
    info_.merge.group_by.push_back(std::move(k));
  }
}

void StatementAnalyzer::Where(const PgQuery__Node* where, Scope& scope, Extracted& conj) {
  if (where == nullptr) return;
  Walk(&where->base, scope);  // sub-selects first: Extract uses their outputs
  Extracted x = Extract(where, scope);
  conj.restrictions.insert(conj.restrictions.end(), x.restrictions.begin(), x.restrictions.end());
  conj.equalities.insert(conj.equalities.end(), x.equalities.begin(), x.equalities.end());
}

SelectOutput StatementAnalyzer::Select(const PgQuery__SelectStmt* s, Scope* parent, bool top) {
  SelectOutput out;
  if (s == nullptr) return out;
  if (++depth_ > kMaxDepth) {
    too_deep_ = true;
    --depth_;
    return out;
  }
  Scope scope;
  scope.id = NewScopeId();
  scope.parent = parent;
  With(s->with_clause, scope);

  if (s->op != PG_QUERY__SET_OPERATION__SETOP_NONE &&
      s->op != PG_QUERY__SET_OPERATION__SET_OPERATION_UNDEFINED) {
    if (top) {
      info_.merge.set_operation = true;
      if (s->op != PG_QUERY__SET_OPERATION__SETOP_UNION) {
        info_.fanout_blockers.push_back("INTERSECT/EXCEPT across shards");
      } else if (!s->all) {
        info_.merge.distinct = true;  // UNION removes duplicates across shards too
      }
    }
    Select(s->larg, &scope, false);
    Select(s->rarg, &scope, false);
    if (top) {
      OrderAndLimit(s, scope);
    } else {
      for (size_t i = 0; i < s->n_sort_clause; ++i) Walk(&s->sort_clause[i]->base, scope);
    }
    --depth_;
    return out;
  }

  for (size_t i = 0; i < s->n_values_lists; ++i) Walk(&s->values_lists[i]->base, scope);
  Extracted conj;
  for (size_t i = 0; i < s->n_from_clause; ++i) From(s->from_clause[i], scope, conj);
  Where(s->where_clause, scope, conj);
  Apply(conj, scope, true);
  TargetList(s, scope, top);
  if (top) {
    GroupBy(s, scope);
  } else {
    for (size_t i = 0; i < s->n_group_clause; ++i) Walk(&s->group_clause[i]->base, scope);
  }
  if (s->having_clause != nullptr) {
    Walk(&s->having_clause->base, scope);
    if (top) {
      info_.merge.having = true;
    }
  }
  for (size_t i = 0; i < s->n_window_clause; ++i) Walk(&s->window_clause[i]->base, scope);
  if (s->n_distinct_clause > 0) {
    bool plain = s->n_distinct_clause == 1 &&
                 (s->distinct_clause[0] == nullptr ||
                  s->distinct_clause[0]->node_case == PG_QUERY__NODE__NODE__NOT_SET);
    if (top) {
      if (plain) {
        info_.merge.distinct = true;
      } else {
        info_.merge.distinct_on = true;
        info_.fanout_blockers.push_back("DISTINCT ON across shards");
      }
    }
    if (!plain) {
      for (size_t i = 0; i < s->n_distinct_clause; ++i) {
        if (s->distinct_clause[i] != nullptr) Walk(&s->distinct_clause[i]->base, scope);
      }
    }
  }
  if (s->n_locking_clause > 0) {
    const PgQuery__LockingClause* lc = IsCase(s->locking_clause[0],
                                              PG_QUERY__NODE__NODE_LOCKING_CLAUSE)
                                           ? s->locking_clause[0]->locking_clause
                                           : nullptr;
    bool share = lc != nullptr && (lc->strength == PG_QUERY__LOCK_CLAUSE_STRENGTH__LCS_FORSHARE ||
                                   lc->strength == PG_QUERY__LOCK_CLAUSE_STRENGTH__LCS_FORKEYSHARE);
    MarkWrite(share ? "FOR SHARE" : "FOR UPDATE");
    for (int t : scope.tables) info_.tables[t].written = true;
  }
  if (top) {
    OrderAndLimit(s, scope);
    if (s->into_clause != nullptr) {
      info_.kind = StatementKind::kDdl;
      info_.command = "SELECT INTO";
      MarkWrite("SELECT INTO");
    }
  } else {
    for (size_t i = 0; i < s->n_sort_clause; ++i) Walk(&s->sort_clause[i]->base, scope);
    if (s->limit_count != nullptr) Walk(&s->limit_count->base, scope);
    if (s->limit_offset != nullptr) Walk(&s->limit_offset->base, scope);
  }
  // The first output column, for `x IN (SELECT col ...)`.
  if (s->n_target_list >= 1 && IsCase(s->target_list[0], PG_QUERY__NODE__NODE_RES_TARGET)) {
    std::vector<int> tables;
    std::string column;
    if (Column(s->target_list[0]->res_target->val, scope, tables, column) &&
        tables.size() == 1) {
      out.table = tables[0];
      out.column = std::move(column);
    }
  }
  --depth_;
  return out;
}

}  // namespace internal
}  // namespace shardgate::routing
