// Statement-level analysis: parse with libpg_query, then walk SELECT/INSERT/UPDATE/DELETE/MERGE/
// COPY and utility statements into QueryInfo.
#include "routing/analyzer.h"

#include <pg_query.h>

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

void CollectRangeVars(const ProtobufCMessage* m, std::vector<const PgQuery__RangeVar*>& out,
                      int depth = 0) {
  if (m == nullptr || depth > kMaxDepth) return;
  if (m->descriptor == &pg_query__range_var__descriptor) {
    out.push_back(reinterpret_cast<const PgQuery__RangeVar*>(m));
    return;
  }
  ForEachChild(m, [&](const ProtobufCMessage* c) { CollectRangeVars(c, out, depth + 1); });
}

// "create_stmt" -> "CREATE"; a few get PostgreSQL's own command tag.
std::string CommandName(const PgQuery__Node* n) {
  switch (n->node_case) {
    case PG_QUERY__NODE__NODE_CREATE_STMT: return "CREATE TABLE";
    case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT: return "ALTER TABLE";
    case PG_QUERY__NODE__NODE_INDEX_STMT: return "CREATE INDEX";
    case PG_QUERY__NODE__NODE_DROP_STMT: return "DROP";
    case PG_QUERY__NODE__NODE_TRUNCATE_STMT: return "TRUNCATE";
    case PG_QUERY__NODE__NODE_VACUUM_STMT: return "VACUUM";
    case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT: return "CREATE TABLE AS";
    case PG_QUERY__NODE__NODE_VIEW_STMT: return "CREATE VIEW";
    default: break;
  }
  const ProtobufCFieldDescriptor* f =
      protobuf_c_message_descriptor_get_field(&pg_query__node__descriptor, n->node_case);
  std::string name = f != nullptr ? f->name : "utility";
  if (name.ends_with("_stmt")) name.resize(name.size() - 5);
  for (char& c : name) c = c == '_' ? ' ' : static_cast<char>(std::toupper(c));
  return name;
}

std::string DefElemValue(const PgQuery__DefElem* d) {
  const PgQuery__Node* a = d->arg;
  if (a == nullptr) return "true";
  if (IsCase(a, PG_QUERY__NODE__NODE_STRING)) return std::string(StringValue(a));
  if (IsCase(a, PG_QUERY__NODE__NODE_BOOLEAN)) return a->boolean->boolval ? "true" : "false";
  if (IsCase(a, PG_QUERY__NODE__NODE_INTEGER)) return std::to_string(a->integer->ival);
  if (IsCase(a, PG_QUERY__NODE__NODE_A_CONST)) {
    const PgQuery__AConst* c = a->a_const;
    if (c->val_case == PG_QUERY__A__CONST__VAL_SVAL && c->sval->sval) return c->sval->sval;
    if (c->val_case == PG_QUERY__A__CONST__VAL_IVAL) return std::to_string(c->ival->ival);
    if (c->val_case == PG_QUERY__A__CONST__VAL_BOOLVAL) {
      return c->boolval->boolval ? "true" : "false";
    }
  }
  return "";
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
    if (k.position == 0 && (k.column.empty() || !info_.merge.star)) {
      info_.fanout_blockers.push_back("ORDER BY an expression that is not in the select list");
    }
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
    if (k.position == 0) {
      info_.fanout_blockers.push_back("GROUP BY an expression that is not in the select list");
    }
    info_.merge.group_by.push_back(std::move(k));
  }
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
  if (s->where_clause != nullptr) {
    Walk(&s->where_clause->base, scope);  // sub-selects first: Extract uses their outputs
    Extracted x = Extract(s->where_clause, scope);
    conj.restrictions.insert(conj.restrictions.end(), x.restrictions.begin(),
                             x.restrictions.end());
    conj.equalities.insert(conj.equalities.end(), x.equalities.begin(), x.equalities.end());
  }
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
      info_.fanout_blockers.push_back("HAVING across shards");
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

void StatementAnalyzer::Insert(const PgQuery__InsertStmt* s, Scope* parent, bool top) {
  Scope scope;
  scope.id = NewScopeId();
  scope.parent = parent;
  With(s->with_clause, scope);
  MarkWrite("INSERT");
  if (s->relation == nullptr) return;
  InsertInfo ins;
  ins.table = AddTable(s->relation, scope, true);
  for (size_t i = 0; i < s->n_cols; ++i) {
    if (IsCase(s->cols[i], PG_QUERY__NODE__NODE_RES_TARGET) &&
        !Empty(s->cols[i]->res_target->name)) {
      ins.columns.emplace_back(s->cols[i]->res_target->name);
    }
  }
  if (s->select_stmt == nullptr) {
    ins.default_values = true;
  } else if (IsCase(s->select_stmt, PG_QUERY__NODE__NODE_SELECT_STMT)) {
    const PgQuery__SelectStmt* sel = s->select_stmt->select_stmt;
    if (sel->n_values_lists > 0 && sel->n_from_clause == 0 && sel->with_clause == nullptr) {
      for (size_t r = 0; r < sel->n_values_lists; ++r) {
        const PgQuery__Node* row = sel->values_lists[r];
        Walk(&row->base, scope);
        std::vector<ValueRef> values;
        if (IsCase(row, PG_QUERY__NODE__NODE_LIST)) {
          for (size_t c = 0; c < row->list->n_items; ++c) values.push_back(Value(row->list->items[c]));
        }
        ins.rows.push_back(std::move(values));
      }
    } else {
      ins.from_select = true;
      Select(sel, &scope, false);
    }
  }
  if (s->on_conflict_clause != nullptr) {
    ins.on_conflict = true;
    Walk(&s->on_conflict_clause->base, scope);
  }
  for (size_t i = 0; i < s->n_returning_list; ++i) Walk(&s->returning_list[i]->base, scope);
  ins.returning = s->n_returning_list > 0;
  if (top) info_.insert = std::move(ins);
}

void StatementAnalyzer::Update(const PgQuery__UpdateStmt* s, Scope* parent) {
  Scope scope;
  scope.id = NewScopeId();
  scope.parent = parent;
  With(s->with_clause, scope);
  MarkWrite("UPDATE");
  if (s->relation == nullptr) return;
  AddTable(s->relation, scope, true);
  Extracted conj;
  for (size_t i = 0; i < s->n_from_clause; ++i) From(s->from_clause[i], scope, conj);
  if (s->where_clause != nullptr) {
    Walk(&s->where_clause->base, scope);
    Extracted x = Extract(s->where_clause, scope);
    conj.restrictions.insert(conj.restrictions.end(), x.restrictions.begin(),
                             x.restrictions.end());
    conj.equalities.insert(conj.equalities.end(), x.equalities.begin(), x.equalities.end());
  }
  Apply(conj, scope, true);
  for (size_t i = 0; i < s->n_target_list; ++i) {
    const PgQuery__Node* t = s->target_list[i];
    Walk(&t->base, scope);
    if (IsCase(t, PG_QUERY__NODE__NODE_RES_TARGET) && !Empty(t->res_target->name) &&
        parent == nullptr) {
      info_.updated_columns.emplace_back(t->res_target->name);
    }
  }
  for (size_t i = 0; i < s->n_returning_list; ++i) Walk(&s->returning_list[i]->base, scope);
}

void StatementAnalyzer::Delete(const PgQuery__DeleteStmt* s, Scope* parent) {
  Scope scope;
  scope.id = NewScopeId();
  scope.parent = parent;
  With(s->with_clause, scope);
  MarkWrite("DELETE");
  if (s->relation == nullptr) return;
  AddTable(s->relation, scope, true);
  Extracted conj;
  for (size_t i = 0; i < s->n_using_clause; ++i) From(s->using_clause[i], scope, conj);
  if (s->where_clause != nullptr) {
    Walk(&s->where_clause->base, scope);
    Extracted x = Extract(s->where_clause, scope);
    conj.restrictions.insert(conj.restrictions.end(), x.restrictions.begin(),
                             x.restrictions.end());
    conj.equalities.insert(conj.equalities.end(), x.equalities.begin(), x.equalities.end());
  }
  Apply(conj, scope, true);
  for (size_t i = 0; i < s->n_returning_list; ++i) Walk(&s->returning_list[i]->base, scope);
}

void StatementAnalyzer::Merge(const PgQuery__MergeStmt* s, Scope* parent) {
  Scope scope;
  scope.id = NewScopeId();
  scope.parent = parent;
  With(s->with_clause, scope);
  MarkWrite("MERGE");
  if (s->relation == nullptr) return;
  AddTable(s->relation, scope, true);
  Extracted conj;
  From(s->source_relation, scope, conj);
  if (s->join_condition != nullptr) {
    Walk(&s->join_condition->base, scope);
    // MERGE is an outer join of target and source: only its equalities carry over.
    Extracted x = Extract(s->join_condition, scope);
    conj.equalities.insert(conj.equalities.end(), x.equalities.begin(), x.equalities.end());
  }
  Apply(conj, scope, true);
  for (size_t i = 0; i < s->n_merge_when_clauses; ++i) {
    Walk(&s->merge_when_clauses[i]->base, scope);
  }
}

void StatementAnalyzer::Dml(const PgQuery__Node* stmt, Scope* parent, bool top) {
  switch (stmt->node_case) {
    case PG_QUERY__NODE__NODE_INSERT_STMT: Insert(stmt->insert_stmt, parent, top); break;
    case PG_QUERY__NODE__NODE_UPDATE_STMT: Update(stmt->update_stmt, parent); break;
    case PG_QUERY__NODE__NODE_DELETE_STMT: Delete(stmt->delete_stmt, parent); break;
    case PG_QUERY__NODE__NODE_MERGE_STMT: Merge(stmt->merge_stmt, parent); break;
    default: break;
  }
}

void StatementAnalyzer::Copy(const PgQuery__CopyStmt* s) {
  Scope scope;
  scope.id = NewScopeId();
  CopyInfo copy;
  copy.from = s->is_from;
  copy.stdio = Empty(s->filename) && !s->is_program;
  info_.kind = s->is_from ? StatementKind::kCopyFrom : StatementKind::kCopyTo;
  info_.command = "COPY";
  if (s->is_from) MarkWrite("COPY FROM");
  if (s->relation != nullptr) copy.table = AddTable(s->relation, scope, s->is_from);
  for (size_t i = 0; i < s->n_attlist; ++i) {
    std::string_view col = StringValue(s->attlist[i]);
    if (!col.empty()) copy.columns.emplace_back(col);
  }
  if (s->query != nullptr) {
    copy.has_query = true;
    if (IsCase(s->query, PG_QUERY__NODE__NODE_SELECT_STMT)) {
      Select(s->query->select_stmt, &scope, false);
    } else {
      Dml(s->query, &scope, false);
    }
  }
  for (size_t i = 0; i < s->n_options; ++i) {
    if (!IsCase(s->options[i], PG_QUERY__NODE__NODE_DEF_ELEM)) continue;
    const PgQuery__DefElem* d = s->options[i]->def_elem;
    std::string name = d->defname != nullptr ? Lower(d->defname) : "";
    std::string value = DefElemValue(d);
    if (name == "format") {
      copy.format = Lower(value);
    } else if (name == "delimiter") {
      copy.delimiter = value;
    } else if (name == "header") {
      copy.header = Lower(value) != "false" && value != "0" && Lower(value) != "off";
    } else if (name == "null") {
      copy.null_string = value;
    }
  }
  if (s->where_clause != nullptr) Walk(&s->where_clause->base, scope);
  info_.copy = std::move(copy);
}

void StatementAnalyzer::Utility(const PgQuery__Node* stmt) {
  std::vector<const PgQuery__RangeVar*> rels;
  CollectRangeVars(&stmt->base, rels);
  Scope scope;
  scope.id = NewScopeId();
  for (const PgQuery__RangeVar* rv : rels) AddTable(rv, scope, true);
}

absl::Status StatementAnalyzer::Statement(const PgQuery__Node* stmt) {
  if (stmt == nullptr) {
    info_.kind = StatementKind::kEmpty;
    return absl::OkStatus();
  }
  switch (stmt->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
      info_.kind = StatementKind::kSelect;
      info_.command = "SELECT";
      Select(stmt->select_stmt, nullptr, true);
      break;
    case PG_QUERY__NODE__NODE_INSERT_STMT:
      info_.kind = StatementKind::kInsert;
      info_.command = "INSERT";
      Dml(stmt, nullptr, true);
      break;
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
      info_.kind = StatementKind::kUpdate;
      info_.command = "UPDATE";
      Dml(stmt, nullptr, true);
      break;
    case PG_QUERY__NODE__NODE_DELETE_STMT:
      info_.kind = StatementKind::kDelete;
      info_.command = "DELETE";
      Dml(stmt, nullptr, true);
      break;
    case PG_QUERY__NODE__NODE_MERGE_STMT:
      info_.kind = StatementKind::kMerge;
      info_.command = "MERGE";
      Dml(stmt, nullptr, true);
      break;
    case PG_QUERY__NODE__NODE_COPY_STMT:
      Copy(stmt->copy_stmt);
      break;
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT: {
      const PgQuery__TransactionStmt* t = stmt->transaction_stmt;
      info_.kind = StatementKind::kTransaction;
      switch (t->kind) {
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
          info_.txn = TxnOp::kBegin;
          info_.command = "BEGIN";
          break;
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
          info_.txn = TxnOp::kCommit; info_.command = "COMMIT"; break;
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
          info_.txn = TxnOp::kRollback; info_.command = "ROLLBACK"; break;
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
          info_.txn = TxnOp::kSavepoint; info_.command = "SAVEPOINT"; break;
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
          info_.txn = TxnOp::kRelease; info_.command = "RELEASE"; break;
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
          info_.txn = TxnOp::kRollbackTo; info_.command = "ROLLBACK"; break;
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
          info_.txn = TxnOp::kPrepare; info_.command = "PREPARE TRANSACTION"; break;
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED:
          info_.txn = TxnOp::kCommitPrepared; info_.command = "COMMIT PREPARED"; break;
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED:
          info_.txn = TxnOp::kRollbackPrepared; info_.command = "ROLLBACK PREPARED"; break;
        default: break;
      }
      for (size_t i = 0; i < t->n_options; ++i) {
        if (!IsCase(t->options[i], PG_QUERY__NODE__NODE_DEF_ELEM)) continue;
        const PgQuery__DefElem* d = t->options[i]->def_elem;
        if (d->defname != nullptr && std::string_view(d->defname) == "transaction_read_only") {
          std::string v = DefElemValue(d);
          info_.read_only_txn = v == "1" || v == "true";
        }
      }
      break;
    }
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
      info_.kind = StatementKind::kSet;
      info_.command = stmt->variable_set_stmt->kind ==
                              PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ||
                              stmt->variable_set_stmt->kind ==
                                  PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL
                          ? "RESET"
                          : "SET";
      break;
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
      info_.kind = StatementKind::kSet;
      info_.command = "DISCARD";
      break;
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
      info_.kind = StatementKind::kShow;
      info_.command = "SHOW";
      break;
    case PG_QUERY__NODE__NODE_EXPLAIN_STMT: {
      const PgQuery__ExplainStmt* e = stmt->explain_stmt;
      bool analyze = false;
      for (size_t i = 0; i < e->n_options; ++i) {
        if (!IsCase(e->options[i], PG_QUERY__NODE__NODE_DEF_ELEM)) continue;
        const PgQuery__DefElem* d = e->options[i]->def_elem;
        if (d->defname != nullptr && std::string_view(d->defname) == "analyze") {
          std::string v = Lower(DefElemValue(d));
          analyze = v != "false" && v != "off" && v != "0";
        }
      }
      RETURN_IF_ERROR(Statement(e->query));
      info_.kind = StatementKind::kExplain;
      info_.command = "EXPLAIN";
      if (!analyze) {  // plain EXPLAIN runs nothing
        info_.write = false;
        info_.write_reason.clear();
      }
      break;
    }
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
      RETURN_IF_ERROR(Statement(stmt->declare_cursor_stmt->query));
      info_.command = "DECLARE CURSOR";
      break;
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
      RETURN_IF_ERROR(Statement(stmt->prepare_stmt->query));
      info_.kind = StatementKind::kUtility;
      info_.command = "PREPARE";
      break;
    case PG_QUERY__NODE__NODE_EXECUTE_STMT:
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
    case PG_QUERY__NODE__NODE_FETCH_STMT:
    case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
    case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
      info_.kind = StatementKind::kUtility;
      info_.command = CommandName(stmt);
      break;
    case PG_QUERY__NODE__NODE_NOTIFY_STMT:
    case PG_QUERY__NODE__NODE_LOCK_STMT:
    case PG_QUERY__NODE__NODE_CALL_STMT:
    case PG_QUERY__NODE__NODE_DO_STMT:
    case PG_QUERY__NODE__NODE_VACUUM_STMT:
    case PG_QUERY__NODE__NODE_CHECK_POINT_STMT:
    case PG_QUERY__NODE__NODE_CLUSTER_STMT:
    case PG_QUERY__NODE__NODE_REINDEX_STMT:
    case PG_QUERY__NODE__NODE_LOAD_STMT:
      info_.kind = StatementKind::kUtility;
      info_.command = CommandName(stmt);
      MarkWrite(info_.command);
      Utility(stmt);
      break;
    default:
      info_.kind = StatementKind::kDdl;
      info_.command = CommandName(stmt);
      MarkWrite(info_.command);
      Utility(stmt);
      break;
  }
  if (too_deep_) return PgStatus("54001", "statement too complex to route (nesting too deep)");
  return absl::OkStatus();
}

}  // namespace internal

namespace {

absl::StatusOr<std::shared_ptr<const Analysis>> ParseAndAnalyze(const char* sql,
                                                                const NormalizedStatement* norm,
                                                                int nesting) {
  if (nesting > kMaxNesting) {
    return PgStatus("54001", Cat("statement too complex to route (nesting deeper than ",
                                 kMaxNesting, ")"),
                    "split long chains of operators or nested expressions");
  }
  PgQueryProtobufParseResult result = pg_query_parse_protobuf(sql);
  if (result.error != nullptr) {
    std::string message = result.error->message != nullptr ? result.error->message : "error";
    int cursor = result.error->cursorpos;
    pg_query_free_protobuf_parse_result(result);
    return PgStatus("42601", message, {},
                    cursor > 0 ? Cat("at character ", cursor) : std::string());
  }
  PgQuery__ParseResult* tree = pg_query__parse_result__unpack(
      nullptr, result.parse_tree.len, reinterpret_cast<const uint8_t*>(result.parse_tree.data));
  pg_query_free_protobuf_parse_result(result);
  if (tree == nullptr) return PgStatus("XX000", "could not decode the parse tree");
  auto analysis = std::make_shared<Analysis>();
  analysis->normalized = norm != nullptr;
  analysis->max_param = norm != nullptr ? norm->max_param : 0;
  analysis->literal_count = norm != nullptr ? static_cast<int>(norm->literals.size()) : 0;
  absl::Status status;
  for (size_t i = 0; i < tree->n_stmts && status.ok(); ++i) {
    QueryInfo info;
    info.max_param = analysis->max_param;
    internal::StatementAnalyzer analyzer(info, norm != nullptr ? &norm->literals : nullptr,
                                         analysis->max_param, norm != nullptr);
    status = analyzer.Statement(tree->stmts[i]->stmt);
    analysis->statements.push_back(std::move(info));
  }
  pg_query__parse_result__free_unpacked(tree, nullptr);
  if (!status.ok()) return status;
  return std::shared_ptr<const Analysis>(std::move(analysis));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Analysis>> Analyze(std::string_view sql) {
  std::string text(sql);  // the parser wants a NUL-terminated string
  thread_local NormalizedStatement scratch;  // for the nesting estimate only
  NormalizeInto(sql, scratch);
  return ParseAndAnalyze(text.c_str(), nullptr, scratch.nesting);
}

absl::StatusOr<std::shared_ptr<const Analysis>> AnalyzeNormalized(
    const NormalizedStatement& norm) {
  return ParseAndAnalyze(norm.text.c_str(), &norm, norm.nesting);
}

std::string_view StatementKindName(StatementKind kind) {
  switch (kind) {
    case StatementKind::kSelect: return "select";
    case StatementKind::kInsert: return "insert";
    case StatementKind::kUpdate: return "update";
    case StatementKind::kDelete: return "delete";
    case StatementKind::kMerge: return "merge";
    case StatementKind::kCopyFrom: return "copy_from";
    case StatementKind::kCopyTo: return "copy_to";
    case StatementKind::kDdl: return "ddl";
    case StatementKind::kTransaction: return "transaction";
    case StatementKind::kSet: return "set";
    case StatementKind::kShow: return "show";
    case StatementKind::kExplain: return "explain";
    case StatementKind::kUtility: return "utility";
    case StatementKind::kEmpty: return "empty";
  }
  return "?";
}

}  // namespace shardgate::routing
