// `shardctl reshard`: the catch-up. A source shard's logical slot is read with
// pg_logical_slot_peek_binary_changes (pgoutput), its committed transactions are turned into
// idempotent statements for the new owners (upsert by primary key, delete by primary key
// limited to rows that came from this source), applied in one transaction per target and
// batch, and only then is the slot advanced. A crash between the two re-applies the batch,
// which changes nothing.
#include <poll.h>

#include <chrono>
#include <optional>
#include <set>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "protocol/status.h"
#include "routing/key_value.h"
#include "routing/router.h"
#include "tools/shardctl/pgoutput.h"
#include "tools/shardctl/reshard.h"

namespace shardgate::tools::reshard {
namespace {

constexpr int kBatchChanges = 5000;

// What the stream says about a relation, and where its rows go.
struct Relation {
  const MovingTable* table = nullptr;  // null: not moving (ignored)
  size_t table_index = 0;              // in Plan::tables
  std::vector<PgoutputColumn> columns;
  std::vector<int> key_columns;  // replica identity
  int shard_key = -1;            // column index of the shard key
};

// The last change the batch makes to one row (by primary key) at one target.
struct RowOp {
  bool remove = false;
  PgoutputTuple tuple;  // the new row, or the old key
  uint64_t seq = 0;     // order of the change in the stream
};

// The changes of one relation (as described by one Relation message) at one target.
struct RelationBatch {
  Relation rel;
  std::map<std::string, RowOp> rows;  // primary key (as literals) -> last change
};

// Turns decoded pgoutput messages into idempotent statements per target shard. Changes are
// compacted per row while a batch lasts (only a row's last change matters when every change
// is a whole-row upsert or a delete), so that a batch is a few multi-row statements.
class Applier {
 public:
  Applier(const Plan& plan, const std::string& source) : plan_(plan), source_(source) {}

  absl::Status Message(const PgoutputMessage& m);
  // Statements per target shard for the batch (complete transactions only: the stream sends
  // a transaction whole at its commit, and statements are only taken between transactions).
  std::map<std::string, std::string> Statements() const;
  bool empty() const { return batch_.empty() && truncates_.empty(); }
  int64_t changes() const { return changes_; }
  uint64_t last_end() const { return last_end_; }
  int64_t last_commit_us() const { return last_commit_us_; }
  void Clear() {
    batch_.clear();
    truncates_.clear();
    changes_ = 0;
  }
  // Between a Begin and its Commit.
  bool in_transaction() const { return in_txn_; }
  // Set when the transaction carrying logical message `marker` has committed.
  void Expect(std::string marker) {
    marker_ = std::move(marker);
    marker_in_txn_ = marker_committed_ = false;
  }
  bool marker_committed() const { return marker_committed_; }

 private:
  absl::StatusOr<std::vector<std::string>> TargetsOf(const Relation& rel,
                                                     const PgoutputTuple& tuple) const;
  std::string DeleteSql(const RelationBatch& b, const std::vector<const RowOp*>& rows) const;
  std::string UpsertSql(const RelationBatch& b, const std::vector<const RowOp*>& rows) const;
  void Add(const std::vector<std::string>& targets, uint32_t relation, bool remove,
           const PgoutputTuple& tuple);
  std::string KeyOf(const Relation& rel, const PgoutputTuple& tuple) const;

  const Plan& plan_;
  std::string source_;
  absl::flat_hash_map<uint32_t, Relation> relations_;
  absl::flat_hash_map<uint32_t, uint64_t> generation_;  // bumped by each Relation message
  // target -> (relation oid, generation) -> its changes
  std::map<std::string, std::map<std::pair<uint32_t, uint64_t>, RelationBatch>> batch_;
  std::map<std::string, std::set<size_t>> truncates_;  // target -> tables emptied first
  uint64_t seq_ = 0;
  int64_t changes_ = 0;
  bool in_txn_ = false;
  std::string marker_;
  bool marker_in_txn_ = false, marker_committed_ = false;
  uint64_t last_end_ = 0;
  int64_t last_commit_us_ = 0;
};

std::string Literal(const PgoutputValue& v) {
  if (v.kind != PgoutputValue::Kind::kText) return "NULL";
  return routing::owner_sql::Literal(v.text);
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

// Whether a key tuple (replica identity columns only) carries the shard key.
bool HasShardKey(const Relation& rel, const PgoutputTuple& key) {
  return rel.shard_key >= 0 && rel.columns[rel.shard_key].key &&
         rel.shard_key < static_cast<int>(key.size()) &&
         key[rel.shard_key].kind == PgoutputValue::Kind::kText;
}

std::string Applier::KeyOf(const Relation& rel, const PgoutputTuple& tuple) const {
  std::string key;
  for (int k : rel.key_columns) {
    absl::StrAppend(&key, k < static_cast<int>(tuple.size()) ? Literal(tuple[k]) : "NULL", ",");
  }
  return key;
}

void Applier::Add(const std::vector<std::string>& targets, uint32_t relation, bool remove,
                  const PgoutputTuple& tuple) {
  const Relation& rel = relations_.at(relation);
  const std::string key = KeyOf(rel, tuple);
  for (const auto& target : targets) {
    RelationBatch& b = batch_[target][{relation, generation_[relation]}];
    if (b.rows.empty()) b.rel = rel;
    RowOp op{remove, tuple, ++seq_};
    auto it = b.rows.find(key);
    if (!remove && it != b.rows.end() && !it->second.remove) {
      // A TOAST value the update did not resend is the one the batch already has.
      for (size_t i = 0; i < op.tuple.size() && i < it->second.tuple.size(); ++i) {
        if (op.tuple[i].kind == PgoutputValue::Kind::kUnchanged) op.tuple[i] = it->second.tuple[i];
      }
    }
    b.rows[key] = std::move(op);
  }
  ++changes_;
}

std::string Applier::DeleteSql(const RelationBatch& b,
                               const std::vector<const RowOp*>& rows) const {
  const Relation& rel = b.rel;
  std::vector<std::string> cols, tuples;
  for (int k : rel.key_columns) cols.push_back(QuoteIdent(rel.columns[k].name));
  for (const RowOp* op : rows) {
    std::vector<std::string> values;
    for (int k : rel.key_columns) {
      values.push_back(k < static_cast<int>(op->tuple.size()) ? Literal(op->tuple[k]) : "NULL");
    }
    tuples.push_back("(" + absl::StrJoin(values, ", ") + ")");
  }
  std::string sql = absl::StrCat("DELETE FROM ", rel.table->QuotedName(), " WHERE (",
                                 absl::StrJoin(cols, ", "), ") IN (", absl::StrJoin(tuples, ", "),
                                 ")");
  // Only rows this source's copy brought: a target may own another row with the same key.
  // When the key holds the shard key, matching it is that test already (a key the old map
  // gives this source); otherwise the old map decides, through the connection's function.
  if (!rel.table->reference && !(rel.shard_key >= 0 && rel.columns[rel.shard_key].key)) {
    absl::StrAppend(&sql, " AND pg_temp.sg_old_owner_", rel.table_index, "(",
                    QuoteIdent(rel.table->key), "::text) = ", routing::owner_sql::Literal(source_));
  }
  return sql + ";\n";
}

std::string Applier::UpsertSql(const RelationBatch& b,
                               const std::vector<const RowOp*>& rows) const {
  const Relation& rel = b.rel;
  const PgoutputTuple& first = rows.front()->tuple;
  std::vector<std::string> cols, sets, keys, tuples;
  for (size_t i = 0; i < rel.columns.size() && i < first.size(); ++i) {
    if (first[i].kind == PgoutputValue::Kind::kUnchanged) continue;  // not resent: keep it
    const std::string c = QuoteIdent(rel.columns[i].name);
    cols.push_back(c);
    if (!rel.columns[i].key) sets.push_back(absl::StrCat(c, " = EXCLUDED.", c));
  }
  for (int k : rel.key_columns) keys.push_back(QuoteIdent(rel.columns[k].name));
  for (const RowOp* op : rows) {
    std::vector<std::string> values;
    for (size_t i = 0; i < rel.columns.size() && i < op->tuple.size(); ++i) {
      if (op->tuple[i].kind != PgoutputValue::Kind::kUnchanged) {
        values.push_back(Literal(op->tuple[i]));
      }
    }
    tuples.push_back("(" + absl::StrJoin(values, ", ") + ")");
  }
  return absl::StrCat("INSERT INTO ", rel.table->QuotedName(), " (", absl::StrJoin(cols, ", "),
                      ") VALUES ", absl::StrJoin(tuples, ", "), " ON CONFLICT (",
                      absl::StrJoin(keys, ", "), ") DO ",
                      sets.empty() ? "NOTHING" : "UPDATE SET " + absl::StrJoin(sets, ", "),
                      ";\n");
}

std::map<std::string, std::string> Applier::Statements() const {
  std::map<std::string, std::string> out;
  for (const auto& [target, tables] : truncates_) {
    for (size_t index : tables) {
      const MovingTable& t = plan_.tables[index];
      out[target] += t.reference ? absl::StrCat("DELETE FROM ", t.QuotedName(), ";\n")
                                 : absl::StrCat("DELETE FROM ", t.QuotedName(),
                                                " WHERE pg_temp.sg_old_owner_", index, "(",
                                                QuoteIdent(t.key), "::text) = ",
                                                routing::owner_sql::Literal(source_), ";\n");
    }
  }
  for (const auto& [target, relations] : batch_) {
    std::string& sql = out[target];
    for (const auto& [id, b] : relations) {
      // Deletes first (a row deleted and another inserted with the same unique value), then
      // upserts in stream order, one statement per set of resent columns.
      std::vector<const RowOp*> deletes;
      std::map<std::string, std::vector<const RowOp*>> upserts;  // by unchanged-column mask
      std::vector<const RowOp*> ordered;
      for (const auto& [key, op] : b.rows) ordered.push_back(&op);
      std::sort(ordered.begin(), ordered.end(),
                [](const RowOp* a, const RowOp* c) { return a->seq < c->seq; });
      for (const RowOp* op : ordered) {
        if (op->remove) {
          deletes.push_back(op);
          continue;
        }
        std::string mask;
        for (const auto& v : op->tuple) mask += v.kind == PgoutputValue::Kind::kUnchanged ? 'u' : 'v';
        upserts[mask].push_back(op);
      }
      if (!deletes.empty()) sql += DeleteSql(b, deletes);
      for (const auto& [mask, rows] : upserts) sql += UpsertSql(b, rows);
    }
  }
  return out;
}

absl::Status Applier::Message(const PgoutputMessage& m) {
  using T = PgoutputMessage::Type;
  switch (m.type) {
    case T::kBegin:
      in_txn_ = true;
      return absl::OkStatus();
    case T::kCommit:
      in_txn_ = false;
      if (marker_in_txn_) marker_committed_ = true;
      marker_in_txn_ = false;
      last_end_ = m.end_lsn;
      last_commit_us_ = m.timestamp;
      return absl::OkStatus();
    case T::kRelation: {
      Relation rel;
      rel.table = plan_.Find(m.schema, m.name);
      if (rel.table) rel.table_index = static_cast<size_t>(rel.table - plan_.tables.data());
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
      ++generation_[m.relation];
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
      if (m.old_tuple) {
        // A delete, or an update of the primary key (the old row goes). Without the shard key
        // in the key tuple the new owner is unknown: every target of this source.
        std::vector<std::string> from = rel.table->targets;
        if (!rel.table->reference && HasShardKey(rel, *m.old_tuple)) {
          ASSIGN_OR_RETURN(from, TargetsOf(rel, *m.old_tuple));
        }
        if (!from.empty()) Add(from, m.relation, true, *m.old_tuple);
        if (m.type == T::kDelete) return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(std::vector<std::string> targets, TargetsOf(rel, m.new_tuple));
      if (!targets.empty()) Add(targets, m.relation, false, m.new_tuple);
      return absl::OkStatus();
    }
    case T::kTruncate:
      // Whatever this source's copy brought goes: the batch's earlier changes to the table
      // are dropped and Statements() empties it first.
      for (uint32_t oid : m.relations) {
        auto it = relations_.find(oid);
        if (it == relations_.end() || it->second.table == nullptr) continue;
        const size_t index = it->second.table_index;
        for (const auto& target : it->second.table->targets) {
          auto& relations = batch_[target];
          for (auto r = relations.begin(); r != relations.end();) {
            r = r->second.rel.table_index == index ? relations.erase(r) : std::next(r);
          }
          truncates_[target].insert(index);
        }
        ++changes_;
      }
      return absl::OkStatus();
    case T::kMessage:
      if (m.prefix == "shardgate" && !marker_.empty() && m.content == marker_) {
        marker_in_txn_ = true;
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// The replication connection: START_REPLICATION of the slot, XLogData and keepalives in,
// standby status updates (the position applied) out.
class Stream {
 public:
  static absl::StatusOr<Stream> Start(PgConn::Params params, const std::string& slot,
                                      const std::string& publication, uint64_t from) {
    params["replication"] = "database";
    ASSIGN_OR_RETURN(PgConn conn, PgConn::Connect(params));
    PGresult* r = PQexec(conn.get(), absl::StrCat("START_REPLICATION SLOT ", slot, " LOGICAL ",
                                                  FormatLsn(from),
                                                  " (proto_version '1', messages 'true', "
                                                  "publication_names '", publication, "')")
                                          .c_str());
    const bool ok = r != nullptr && PQresultStatus(r) == PGRES_COPY_BOTH;
    PQclear(r);
    if (!ok) {
      return PgStatus("55000", absl::StrCat(conn.Describe(), ": START_REPLICATION failed: ",
                                            PQerrorMessage(conn.get())));
    }
    return Stream(std::move(conn));
  }

  // The next message within `timeout_ms`: 'w' (payload = the pgoutput message, start = its
  // WAL position) or 'k' (a keepalive: start = the server's sent position). nullopt: timeout.
  struct Message {
    char kind = 0;
    uint64_t start = 0;
    bool reply = false;
    std::string payload;
  };
  absl::StatusOr<std::optional<Message>> Next(int timeout_ms) {
    for (int round = 0; round < 2; ++round) {
      char* buf = nullptr;
      const int n = PQgetCopyData(conn_.get(), &buf, 1);
      if (n > 0) {
        std::string_view b(buf, static_cast<size_t>(n));
        Message m;
        m.kind = b[0];
        if (m.kind == 'w' && b.size() >= 25) {
          m.start = BigEndian(b.substr(1, 8));
          m.payload = std::string(b.substr(25));
        } else if (m.kind == 'k' && b.size() >= 18) {
          m.start = BigEndian(b.substr(1, 8));
          m.reply = b[17] != 0;
        }
        PQfreemem(buf);
        return std::optional<Message>(std::move(m));
      }
      if (n < 0) {
        return PgStatus("08006", absl::StrCat(conn_.Describe(), ": replication stream ended: ",
                                              PQerrorMessage(conn_.get())));
      }
      if (round == 1) break;
      pollfd pfd{PQsocket(conn_.get()), POLLIN, 0};
      if (::poll(&pfd, 1, timeout_ms) <= 0) return std::optional<Message>();
      if (PQconsumeInput(conn_.get()) == 0) {
        return PgStatus("08006", absl::StrCat(conn_.Describe(), ": ", PQerrorMessage(conn_.get())));
      }
    }
    return std::optional<Message>();
  }

  // Tells the server everything up to `applied` is applied (the slot may advance there).
  absl::Status Status(uint64_t applied, bool reply) {
    std::string m = "r";
    for (int i = 0; i < 3; ++i) PutBigEndian(m, applied);
    const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count() -
                           946684800000000LL;
    PutBigEndian(m, static_cast<uint64_t>(now_us));
    m += reply ? '\1' : '\0';
    if (PQputCopyData(conn_.get(), m.data(), static_cast<int>(m.size())) != 1 ||
        PQflush(conn_.get()) != 0) {
      return PgStatus("08006", absl::StrCat(conn_.Describe(), ": ", PQerrorMessage(conn_.get())));
    }
    return absl::OkStatus();
  }

 private:
  explicit Stream(PgConn conn) : conn_(std::move(conn)) {}
  static uint64_t BigEndian(std::string_view b) {
    uint64_t v = 0;
    for (char c : b) v = (v << 8) | static_cast<unsigned char>(c);
    return v;
  }
  static void PutBigEndian(std::string& out, uint64_t v) {
    for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  PgConn conn_;
};

}  // namespace

struct Catcher::Impl {
  Impl(const Plan& p, State& s, std::string sh) : plan(p), state(s), shard(std::move(sh)) {}
  const Plan& plan;
  State& state;
  std::string shard;
  std::optional<PgConn> source;
  std::optional<Stream> stream;
  std::map<std::string, PgConn> targets;
  std::unique_ptr<Applier> applier;
  uint64_t applied = 0;     // everything before this is applied and confirmed
  int64_t batches = 0;
  int64_t markers = 0;

  absl::Status Apply();
};

absl::Status Catcher::Impl::Apply() {
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& [target, sql] : applier->Statements()) {
    if (sql.empty()) continue;
    auto conn = targets.find(target);
    if (conn == targets.end()) {
      ASSIGN_OR_RETURN(PgConn::Params tp, plan.ShardParams(target));
      ASSIGN_OR_RETURN(PgConn c, PgConn::Connect(tp));
      std::string functions;
      for (const MovingTable& t : plan.tables) functions += t.old_owner_function;
      if (!functions.empty()) RETURN_IF_ERROR(c.Exec(functions).status());
      conn = targets.emplace(target, std::move(c)).first;
    }
    RETURN_IF_ERROR(conn->second.Exec("BEGIN;\n" + sql + "COMMIT;").status());
  }
  ++batches;
  if (applier->changes() > 0) MaybeFault("apply_batches", batches);
  applied = std::max(applied, applier->last_end());
  RETURN_IF_ERROR(stream->Status(applied, false));
  std::lock_guard lock(*state.mu);
  state.applied_lsn[shard] = applied;
  state.changes[shard] += applier->changes();
  if (applier->last_commit_us() != 0) state.last_commit_us[shard] = applier->last_commit_us();
  if (std::getenv("SHARDCTL_DEBUG")) {
    std::fprintf(stderr, "%s: applied %lld changes in %lld us\n", shard.c_str(),
                 (long long)applier->changes(),
                 (long long)std::chrono::duration_cast<std::chrono::microseconds>(
                     std::chrono::steady_clock::now() - t0).count());
  }
  applier->Clear();
  return state.Save();
}

Catcher::Catcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Catcher::~Catcher() = default;

absl::StatusOr<std::unique_ptr<Catcher>> Catcher::Open(const Plan& plan, State& state,
                                                       const std::string& shard) {
  auto impl = std::make_unique<Impl>(plan, state, shard);
  ASSIGN_OR_RETURN(PgConn::Params params, plan.ShardParams(shard));
  ASSIGN_OR_RETURN(PgConn source, PgConn::Connect(params));
  const std::string slot = state.SlotFor(shard);
  ASSIGN_OR_RETURN(PgResult confirmed,
                   source.ExecParams("SELECT confirmed_flush_lsn FROM pg_replication_slots "
                                     "WHERE slot_name = $1",
                                     {slot}));
  if (confirmed.rows() == 0) {
    return PgStatus("55000", absl::StrCat("the replication slot ", slot, " on ", shard,
                                          " is gone"),
                    "Run shardctl reshard abort, then start again.");
  }
  impl->applied = ParseLsn(confirmed.get(0, 0));
  impl->source.emplace(std::move(source));
  ASSIGN_OR_RETURN(Stream stream, Stream::Start(params, slot, state.Publication(), impl->applied));
  impl->stream.emplace(std::move(stream));
  impl->applier = std::make_unique<Applier>(plan, shard);
  return std::unique_ptr<Catcher>(new Catcher(std::move(impl)));
}

absl::StatusOr<CatchUpResult> Catcher::Run(int64_t deadline_ms) {
  Impl& c = *impl_;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::milliseconds(deadline_ms);
  // A marker committed now (flushed at once): once its transaction comes out of the stream,
  // every transaction the source committed before it has come too, in commit order.
  const std::string marker = absl::StrCat(c.state.id, "/", c.shard, "/", ++c.markers);
  c.applier->Expect(marker);
  RETURN_IF_ERROR(c.source
                      ->Exec(absl::StrCat("BEGIN; SET LOCAL synchronous_commit = on; SELECT "
                                          "pg_logical_emit_message(true, 'shardgate', ",
                                          c.source->Literal(marker), "); COMMIT"))
                      .status());
  CatchUpResult result;
  const int64_t before = c.state.changes[c.shard];
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<Stream::Message> m, c.stream->Next(5));
    if (m && m->kind == 'w') {
      ASSIGN_OR_RETURN(PgoutputMessage decoded, DecodePgoutput(m->payload));
      RETURN_IF_ERROR(c.applier->Message(decoded));
      if (decoded.type == PgoutputMessage::Type::kCommit &&
          (c.applier->changes() >= kBatchChanges || c.applier->marker_committed())) {
        RETURN_IF_ERROR(c.Apply());
      }
    } else if (m && m->kind == 'k') {
      if (m->reply) RETURN_IF_ERROR(c.stream->Status(c.applied, false));
    } else if (!m && !c.applier->in_transaction() &&
               !c.applier->empty()) {
      RETURN_IF_ERROR(c.Apply());  // idle: apply what is complete
    }
    if (c.applier->marker_committed()) {
      result.reached = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  result.position = c.applied;
  result.changes = c.state.changes[c.shard] - before;
  if (std::getenv("SHARDCTL_DEBUG")) {
    std::fprintf(stderr, "%s: run took %lld ms, reached %d\n", c.shard.c_str(),
                 (long long)std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - start).count(), result.reached);
  }
  return result;
}

}  // namespace shardgate::tools::reshard
