// `shardctl reshard`: the catch-up. A source shard's logical slot is read with
// pg_logical_slot_peek_binary_changes (pgoutput), its committed transactions are turned into
// idempotent statements for the new owners (upsert by primary key, delete by primary key
// limited to rows that came from this source), applied in one transaction per target and
// batch, and only then is the slot advanced. A crash between the two re-applies the batch,
// which changes nothing.
#include <chrono>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "protocol/status.h"
#include "routing/key_value.h"
#include "tools/shardctl/pgoutput.h"
#include "tools/shardctl/reshard.h"

namespace shardgate::tools::reshard {
namespace {

constexpr int kBatchChanges = 5000;

// What the stream says about a relation, and where its rows go.
struct Relation {
  const MovingTable* table = nullptr;  // null: not moving (ignored)
  std::vector<PgoutputColumn> columns;
  std::vector<int> key_columns;  // replica identity
  int shard_key = -1;            // column index of the shard key
};

class Applier {
 public:
  Applier(const Plan& plan, const std::string& source) : plan_(plan), source_(source) {}

  absl::Status Message(const PgoutputMessage& m);
  // Statements per target shard for the complete transactions seen so far.
  std::map<std::string, std::string>& batch() { return batch_; }
  int64_t changes() const { return changes_; }
  uint64_t last_end() const { return last_end_; }
  int64_t last_commit_us() const { return last_commit_us_; }
  void Clear() {
    batch_.clear();
    changes_ = 0;
  }

 private:
  absl::StatusOr<std::vector<std::string>> TargetsOf(const Relation& rel,
                                                     const PgoutputTuple& tuple) const;
  std::string Upsert(const Relation& rel, const PgoutputTuple& row) const;
  std::string Delete(const Relation& rel, const PgoutputTuple& key) const;
  void Add(const std::vector<std::string>& targets, const std::string& sql);

  const Plan& plan_;
  std::string source_;
  absl::flat_hash_map<uint32_t, Relation> relations_;
  std::map<std::string, std::string> txn_;    // the open transaction's statements
  std::map<std::string, std::string> batch_;  // complete transactions
  int64_t txn_changes_ = 0, changes_ = 0;
  uint64_t last_end_ = 0;
  int64_t last_commit_us_ = 0;
};

std::string Literal(const PgoutputValue& v) {
  if (v.kind != PgoutputValue::Kind::kText) return "NULL";
  std::string out = "'";
  for (char c : v.text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string Ident(std::string_view s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

absl::StatusOr<std::vector<std::string>> Applier::TargetsOf(const Relation& rel,
                                                            const PgoutputTuple& tuple) const {
  const MovingTable& t = *rel.table;
  if (t.reference) return t.targets;
  if (rel.shard_key < 0 || rel.shard_key >= static_cast<int>(tuple.size()) ||
      tuple[rel.shard_key].kind != PgoutputValue::Kind::kText) {
    return std::vector<std::string>{};  // NULL key: the row stays where it is
  }
  auto key = routing::ParseKeyText(tuple[rel.shard_key].text, t.new_router->key_type());
  if (!key.ok()) return key.status();
  auto shard = t.new_router->Route(*key);
  if (!shard.ok()) return shard.status();
  const std::string& owner = plan_.new_map->shard_name(*shard);
  if (owner == source_) return std::vector<std::string>{};  // stays
  return std::vector<std::string>{owner};
}

std::string Applier::Upsert(const Relation& rel, const PgoutputTuple& row) const {
  std::vector<std::string> cols, values, sets, keys;
  for (size_t i = 0; i < rel.columns.size() && i < row.size(); ++i) {
    if (row[i].kind == PgoutputValue::Kind::kUnchanged) continue;  // TOAST value not resent
    const std::string c = Ident(rel.columns[i].name);
    cols.push_back(c);
    values.push_back(Literal(row[i]));
    if (!rel.columns[i].key) sets.push_back(absl::StrCat(c, " = EXCLUDED.", c));
  }
  for (int k : rel.key_columns) keys.push_back(Ident(rel.columns[k].name));
  return absl::StrCat("INSERT INTO ", rel.table->QuotedName(), " (", absl::StrJoin(cols, ", "),
                      ") VALUES (", absl::StrJoin(values, ", "), ") ON CONFLICT (",
                      absl::StrJoin(keys, ", "), ") DO ",
                      sets.empty() ? "NOTHING" : "UPDATE SET " + absl::StrJoin(sets, ", "),
                      ";\n");
}

std::string Applier::Delete(const Relation& rel, const PgoutputTuple& key) const {
  std::vector<std::string> conds;
  for (int k : rel.key_columns) {
    if (k >= static_cast<int>(key.size())) continue;
    conds.push_back(absl::StrCat(Ident(rel.columns[k].name), " = ", Literal(key[k])));
  }
  // Only a row this source's copy brought: a target may own another row with the same key.
  if (!rel.table->reference) {
    conds.push_back(absl::StrCat("(", rel.table->old_owner, ") = '", source_, "'"));
  }
  return absl::StrCat("DELETE FROM ", rel.table->QuotedName(), " WHERE ",
                      absl::StrJoin(conds, " AND "), ";\n");
}

void Applier::Add(const std::vector<std::string>& targets, const std::string& sql) {
  for (const auto& t : targets) txn_[t] += sql;
  ++txn_changes_;
}

absl::Status Applier::Message(const PgoutputMessage& m) {
  using T = PgoutputMessage::Type;
  switch (m.type) {
    case T::kBegin:
      txn_.clear();
      txn_changes_ = 0;
      return absl::OkStatus();
    case T::kCommit:
      for (auto& [target, sql] : txn_) batch_[target] += sql;
      txn_.clear();
      changes_ += txn_changes_;
      txn_changes_ = 0;
      last_end_ = m.end_lsn;
      last_commit_us_ = m.timestamp;
      return absl::OkStatus();
    case T::kRelation: {
      Relation rel;
      rel.table = plan_.Find(m.schema, m.name);
      rel.columns = m.columns;
      for (size_t i = 0; i < m.columns.size(); ++i) {
        if (m.columns[i].key) rel.key_columns.push_back(static_cast<int>(i));
        if (rel.table && m.columns[i].name == rel.table->key) rel.shard_key = static_cast<int>(i);
      }
      if (rel.table && rel.key_columns.empty()) {
        return PgStatus("55000", absl::StrCat("table ", m.schema, ".", m.name,
                                              " has no replica identity: rows cannot be matched"),
                        "Give it a primary key.");
      }
      if (rel.table && !rel.table->reference && rel.shard_key < 0) {
        return PgStatus("55006", absl::StrCat("table ", m.schema, ".", m.name,
                                              " lost its shard key column during the reshard"),
                        "Schema changes on moving tables are not supported during a reshard: "
                        "run shardctl reshard abort.");
      }
      relations_[m.relation] = std::move(rel);
      return absl::OkStatus();
    }
    case T::kInsert:
    case T::kUpdate:
    case T::kDelete: {
      auto it = relations_.find(m.relation);
      if (it == relations_.end()) {
        return PgStatus("08P01", "pgoutput: a change for a relation never described");
      }
      const Relation& rel = it->second;
      if (rel.table == nullptr) return absl::OkStatus();
      if (m.type == T::kDelete) {
        // The old owner is not known from a key-only tuple: every target of this source.
        Add(rel.table->reference ? rel.table->targets : rel.table->targets,
            Delete(rel, *m.old_tuple));
        return absl::OkStatus();
      }
      if (m.type == T::kUpdate && m.old_tuple) {
        // The primary key changed: the old row goes wherever it was.
        Add(rel.table->targets, Delete(rel, *m.old_tuple));
      }
      ASSIGN_OR_RETURN(std::vector<std::string> targets, TargetsOf(rel, m.new_tuple));
      if (!targets.empty()) Add(targets, Upsert(rel, m.new_tuple));
      return absl::OkStatus();
    }
    case T::kTruncate:
      for (uint32_t oid : m.relations) {
        auto it = relations_.find(oid);
        if (it == relations_.end() || it->second.table == nullptr) continue;
        const MovingTable& t = *it->second.table;
        Add(t.targets, t.reference ? absl::StrCat("DELETE FROM ", t.QuotedName(), ";\n")
                                   : absl::StrCat("DELETE FROM ", t.QuotedName(), " WHERE (",
                                                  t.old_owner, ") = '", source_, "';\n"));
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

}  // namespace

absl::StatusOr<CatchUpResult> CatchUp(const Plan& plan, State& state, const std::string& shard,
                                      uint64_t until_lsn, int64_t deadline_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
  ASSIGN_OR_RETURN(PgConn::Params params, plan.ShardParams(shard));
  ASSIGN_OR_RETURN(PgConn source, PgConn::Connect(params));
  std::map<std::string, PgConn> targets;
  const std::string slot = state.SlotFor(shard);
  Applier applier(plan, shard);
  CatchUpResult result;
  int64_t batches = 0;
  for (;;) {
    ASSIGN_OR_RETURN(std::string flushed, source.Value("SELECT pg_current_wal_flush_lsn()"));
    ASSIGN_OR_RETURN(PgResult confirmed,
                     source.ExecParams("SELECT confirmed_flush_lsn FROM pg_replication_slots "
                                       "WHERE slot_name = $1",
                                       {slot}));
    if (confirmed.rows() == 0) {
      return PgStatus("55000", absl::StrCat("the replication slot ", slot, " on ", shard,
                                            " is gone"),
                      "Run shardctl reshard abort, then start again.");
    }
    const uint64_t at = ParseLsn(confirmed.get(0, 0));
    ASSIGN_OR_RETURN(PgResult rows,
                     source.ExecParams("SELECT data FROM pg_logical_slot_peek_binary_changes("
                                       "$1, NULL, $2, 'proto_version', '1', "
                                       "'publication_names', $3)",
                                       {slot, std::to_string(kBatchChanges),
                                        state.Publication()},
                                       /*binary=*/true));
    applier.Clear();
    for (int i = 0; i < rows.rows(); ++i) {
      ASSIGN_OR_RETURN(PgoutputMessage m, DecodePgoutput(rows.view(i, 0)));
      RETURN_IF_ERROR(applier.Message(m));
    }
    for (auto& [target, sql] : applier.batch()) {
      auto conn = targets.find(target);
      if (conn == targets.end()) {
        ASSIGN_OR_RETURN(PgConn::Params tp, plan.ShardParams(target));
        ASSIGN_OR_RETURN(PgConn c, PgConn::Connect(tp));
        conn = targets.emplace(target, std::move(c)).first;
      }
      RETURN_IF_ERROR(conn->second.Exec("BEGIN;\n" + sql + "COMMIT;").status());
    }
    ++batches;
    if (applier.changes() > 0) MaybeFault("apply_batches", batches);
    const bool exhausted = rows.rows() < kBatchChanges;
    uint64_t to = applier.last_end();
    if (exhausted) to = std::max(to, ParseLsn(flushed));
    if (to > at) {
      RETURN_IF_ERROR(source.ExecParams("SELECT pg_replication_slot_advance($1, $2::pg_lsn)",
                                        {slot, FormatLsn(to)})
                          .status());
    }
    result.position = std::max(to, at);
    result.changes += applier.changes();
    state.applied_lsn[shard] = result.position;
    state.changes[shard] += applier.changes();
    if (applier.last_commit_us() != 0) state.last_commit_us[shard] = applier.last_commit_us();
    RETURN_IF_ERROR(state.Save());
    if (exhausted && result.position >= until_lsn) {
      result.reached = true;
      return result;
    }
    if (std::chrono::steady_clock::now() >= deadline) return result;
    if (exhausted) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace shardgate::tools::reshard
