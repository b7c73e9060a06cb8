// Statement-level analysis: INSERT/UPDATE/DELETE/MERGE, COPY, utility and transaction
// statements, and the entry points that parse with libpg_query and run the walker.
#include <pg_query.h>

#include "protocol/status.h"
#include "routing/analyzer.h"
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
  Where(s->where_clause, scope, conj);
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
  Where(s->where_clause, scope, conj);
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
  // DROP TABLE/VIEW/INDEX/SEQUENCE names its objects as lists of strings, not RangeVars: take
  // them as tables, so that dropping unlisted tables goes to default_shard like creating them.
  if (stmt->node_case == PG_QUERY__NODE__NODE_DROP_STMT && stmt->drop_stmt != nullptr) {
    const PgQuery__DropStmt* drop = stmt->drop_stmt;
    const bool relation = drop->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE ||
                          drop->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_VIEW ||
                          drop->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW ||
                          drop->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE;
    for (size_t i = 0; relation && i < drop->n_objects; ++i) {
      const PgQuery__Node* object = drop->objects[i];
      if (object == nullptr || object->node_case != PG_QUERY__NODE__NODE_LIST) continue;
      const PgQuery__List* names = object->list;
      std::vector<const char*> parts;
      for (size_t k = 0; k < names->n_items; ++k) {
        const PgQuery__Node* part = names->items[k];
        if (part != nullptr && part->node_case == PG_QUERY__NODE__NODE_STRING) {
          parts.push_back(part->string->sval);
        }
      }
      if (parts.empty()) continue;
      PgQuery__RangeVar rv = PG_QUERY__RANGE_VAR__INIT;
      rv.relname = const_cast<char*>(parts.back());
      if (parts.size() >= 2) rv.schemaname = const_cast<char*>(parts[parts.size() - 2]);
      AddTable(&rv, scope, true);
    }
  }
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
