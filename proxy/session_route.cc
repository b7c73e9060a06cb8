// ClientSession, routing half (sharded databases): which shard and role each statement goes to,
// BEGIN held until the first statement that routes, refusals in PostgreSQL's own form, and
// switching servers between transactions.
#include <boost/asio/post.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "routing/prepared_reads.h"
#include "proxy/client_session.h"
#include "proxy/pool.h"
#include "proxy/strings.h"
#include "proxy/worker.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {

namespace p = protocol;

namespace {

constexpr char kCrossShardHint[] =
    "Keep a transaction's statements on one shard (same shard key, or co-located tables), or "
    "route them with /* shardgate: shard=NAME */.";

std::string QuoteDollar(std::string_view s) {
  // A dollar-quoted literal that cannot be closed early by the text itself.
  std::string tag = "$sg$";
  while (s.find(tag) != std::string_view::npos) tag.insert(tag.size() - 1, "x");
  return absl::StrCat(tag, Av(s), tag);
}

// True when every table `analysis` touches is a reference table (a copy on every shard).
bool OnlyReferenceTables(const routing::Analysis& analysis, const routing::ShardMap& map) {
  bool any = false;
  for (const auto& info : analysis.statements) {
    for (const auto& table : info.tables) {
      const auto* t = map.FindTable(table.schema, table.name);
      if (t == nullptr || !t->reference) return false;
      any = true;
    }
  }
  return any;
}

std::string ToCommandComplete(std::string_view tag) {
  std::string out;
  p::AppendCommandComplete(out, tag);
  return out;
}

absl::Status TransactionAborted() {
  return PgStatus("25P02",
                  "current transaction is aborted, commands ignored until end of transaction "
                  "block");
}

absl::Status SeveralStatementsAcrossShards() {
  return PgStatus("0A000", "a query string with several statements cannot span shards",
                  "Send the statements one at a time.");
}

absl::Status SetInDistributed() {
  return PgStatus("0A000", "SET inside a transaction that spans shards is not supported",
                  "SET before BEGIN, or keep the transaction on one shard.");
}

// In a distributed transaction, what the proxy does with `txn` (null: not a transaction
// statement): "" run it on the shards, "BEGIN" nothing, "COMMIT" or "ROLLBACK" end it.
// SAVEPOINT and the two-phase commands are refused.
absl::StatusOr<std::string> DistributedTransactionTag(const routing::QueryInfo* txn) {
  if (txn == nullptr) return std::string();
  switch (txn->txn) {
    case routing::TxnOp::kBegin:
      return std::string("BEGIN");
    case routing::TxnOp::kCommit:
      return std::string("COMMIT");
    case routing::TxnOp::kRollback:
      return std::string("ROLLBACK");
    default:
      return PgStatus("0A000",
                      absl::StrCat(txn->command, " inside a transaction that spans shards is "
                                                 "not supported"),
                      "Savepoints and PREPARE TRANSACTION need the transaction on one shard.");
  }
}

}  // namespace

bool ClientSession::InTransaction() const {
  return !held_begin_.empty() || held_failed_ || dist_ != nullptr ||
         (server_ && server_->tx_status() != 'I');
}

void ClientSession::LocalAnswer(std::string messages) {
  Push(Expect::kInjectRaw, std::move(messages));
}

void ClientSession::LocalCommand(std::string_view tag) {
  std::string out;
  p::AppendCommandComplete(out, tag);
  LocalAnswer(std::move(out));
  Push(Expect::kInjectReady);
}

// An error the proxy answers itself when no server is involved. Extended protocol: like a
// server, drop what follows up to Sync. Returns false (not forwarded).
bool ClientSession::RefuseStatement(const absl::Status& status, bool extended) {
  if (server_ && InTransaction()) {
    RaiseOnServer(status, extended);
    return false;
  }
  return LocalError(status, extended);
}

bool ClientSession::LocalError(const absl::Status& status, bool extended) {
  CountError(SqlState(status));
  std::string out;
  p::AppendError(out, ToPgError(status));
  LocalAnswer(std::move(out));
  if (!held_begin_.empty()) held_failed_ = true;  // the client's transaction is now failed
  if (dist_) dist_->failed = true;
  if (extended) {
    drop_until_sync_ = true;
  } else {
    Push(Expect::kInjectReady);
  }
  return false;
}

// A refusal inside a transaction that already runs on a server: the server itself raises the
// error, so its transaction is aborted exactly as PostgreSQL would abort it (25P02 afterwards).
void ClientSession::RaiseOnServer(const absl::Status& status, bool extended) {
  const PgError e = ToPgError(status);
  std::string sql = absl::StrCat("DO ", QuoteDollar(absl::StrCat(
      "BEGIN RAISE EXCEPTION USING ERRCODE = '", Av(e.sqlstate), "', MESSAGE = ",
      QuoteDollar(e.message), e.hint.empty() ? "" : ", HINT = " + QuoteDollar(e.hint),
      "; END")));
  p::AppendQuery(server_out_, sql);
  if (extended) {
    Push(Expect::kRaise);
    drop_until_sync_ = true;
  } else {
    Push(Expect::kQuery);
  }
}

asio::awaitable<void> ClientSession::DrainAndRelease() {
  if (!FlushServerNow() && !co_await FlushServer()) co_return;
  while (server_ && !CanRelease() && pumps_running_ > 0 && !closing_) {
    co_await progress_.async_wait(kTuple);
  }
  co_await ReleaseIfIdle();
}

// For messages that do not route (a statement that does not parse, Execute of an unknown
// portal, Describe): the default shard's primary. `begin`: a held BEGIN goes first, so that an
// error there fails the client's transaction as it would on PostgreSQL; a Describe leaves the
// held BEGIN for the statement that routes.
asio::awaitable<absl::StatusOr<bool>> ClientSession::AttachAnyShard(bool begin) {
  if (server_) co_return true;
  absl::Status st = co_await Attach(*target_pool_);
  if (!st.ok()) co_return st;
  attached_shard_ = topology_->map()->FindShard(target_.shard).value_or(0);
  attached_replica_ = false;
  if (begin && !held_begin_.empty()) {
    p::AppendQuery(server_out_, held_begin_);
    Push(Expect::kSwallowQuery);
    held_begin_.clear();
  }
  co_return true;
}

// Feeds the worker's hot-key sketch of each table the plan routed by (a map lookup by table name
// and an O(log k) Add: well under a microsecond).
void ClientSession::NoteHotKeys(const routing::RoutePlan& plan) {
  if (plan.keys.empty()) return;
  if (hot_keys_ == nullptr) hot_keys_ = &worker_.hot_keys(db_name_);
  for (const routing::RoutedKey& routed : plan.keys) {
    if (routed.table == nullptr) continue;
    auto it = hot_keys_->find(routed.table->name);
    if (it == hot_keys_->end()) it = hot_keys_->try_emplace(routed.table->name).first;
    it->second.Add(routed.key);
  }
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::Target(const routing::RoutePlan& plan,
                                                            bool extended) {
  using Spread = routing::RoutePlan::Spread;
  if (plan.spread == Spread::kSome || plan.spread == Spread::kAll) {
    std::vector<std::string> names;
    for (int s : plan.shards) names.push_back(topology_->map()->shard_name(s));
    absl::Status refusal = PgStatus(
        "0A000",
        absl::StrCat("statement spans ", plan.shards.size(), " shards (",
                     absl::StrJoin(names, ", "),
                     "); inside a transaction statements must stay on one shard"),
        "Run it outside the transaction block (it then runs on every shard at once), add a "
        "condition on the shard key, or route it with /* shardgate: shard=NAME */.");
    if (server_ && InTransaction()) {
      RaiseOnServer(refusal, extended);
      co_return false;
    }
    co_return LocalError(refusal, extended);
  }
  int shard = plan.shards.empty() ? 0 : plan.shards[0];
  if (plan.spread == Spread::kAnyOne && !plan.shards.empty()) {
    // Any one will do: stay where the session is, else spread the load.
    bool here = false;
    for (int s : plan.shards) here |= s == attached_shard_;
    shard = here ? attached_shard_ : plan.shards[any_shard_next_++ % plan.shards.size()];
  }
  const bool in_txn = InTransaction();
  const bool read_only_txn = !held_begin_.empty() && held_read_only_;
  const bool want_replica =
      (!in_txn || read_only_txn) && !plan.write && plan.role != routing::Role::kPrimary;

  if (server_) {
    // Inside a transaction that already runs on a server, stay; a held BEGIN has not reached
    // one yet, so the server must also have the right role (a write must not start on a
    // replica that an autocommit read left attached).
    const bool started = in_txn && held_begin_.empty();
    if (shard == attached_shard_ && (started || attached_replica_ == want_replica)) {
      // Stay on the attached server.
    } else if (server_->tx_status() != 'I' || (in_txn && held_begin_.empty())) {
      absl::Status refusal = PgStatus(
          "0A000",
          absl::StrCat("statement routes to shard \"", topology_->map()->shard_name(shard),
                       "\" but this transaction runs on shard \"",
                       attached_shard_ >= 0 ? topology_->map()->shard_name(attached_shard_)
                                            : std::string("?"),
                       "\"; transactions spanning shards are not supported yet"),
          kCrossShardHint);
      RaiseOnServer(refusal, extended);
      co_return false;
    } else {
      co_await DrainAndRelease();
      if (server_) {
        co_return PgStatus("08006", "could not switch shards: the server is still busy");
      }
    }
  }
  if (!server_) {
    const conf::ShardConfig& config = topology_->shard(shard);
    absl::Status st;
    for (int attempt = 0; attempt < 4; ++attempt) {
      bool replica = false;
      const conf::Endpoint& ep =
          want_replica ? topology_->ForRead(shard, &replica) : topology_->Primary(shard);
      if (!replica) {
        // The breaker: a primary known to be down fails the statement now.
        st = topology_->WriteServerAvailable(shard);
        if (!st.ok()) break;
      }
      absl::StatusOr<Pool*> pool = PoolFor(config, ep);
      if (!pool.ok()) co_return pool.status();
      st = AttachNow(**pool) ? absl::OkStatus() : co_await Attach(**pool);
      if (st.ok()) {
        attached_shard_ = shard;
        attached_replica_ = replica;
        attached_replica_index_ = replica ? topology_->ReplicaIndex(shard, ep) : -1;
        if (attached_replica_index_ >= 0) topology_->Attached(shard, attached_replica_index_);
        break;
      }
      if (!replica) {
        topology_->PrimaryConnectFailed(shard, st);
        break;
      }
      // A replica that cannot be reached gets no more reads until the checker sees it healthy.
      spdlog::warn("shard \"{}\": replica {}:{} unreachable, trying another server", config.name,
                   ep.host, ep.port);
      topology_->ReplicaFailed(shard, ep);
    }
    if (!st.ok()) co_return LocalError(st, extended);
  }
  if (!held_begin_.empty()) {
    p::AppendQuery(server_out_, held_begin_);
    Push(Expect::kSwallowQuery);
    held_begin_.clear();
  }
  if (explain_) {
    std::string notice;
    p::AppendNotice(notice, PgError{"NOTICE", "00000",
                                    absl::StrCat("shardgate: ", plan.reason, " [",
                                                 attached_replica_ ? "replica" : "primary", "]"),
                                    "", ""});
    LocalAnswer(std::move(notice));
  }
  if (stats_ && attached_shard_ >= 0) {
    ++stats_->direct;
    ++RoutedCounter(attached_shard_, attached_replica_);
  }
  co_return true;
}

int64_t& ClientSession::RoutedCounter(int shard, bool replica) {
  const std::string& name = topology_->map()->shard_name(shard);
  const std::string_view role = replica ? "replica" : "primary";
  if (routed_counter_ == nullptr || routed_counter_->first.first != name ||
      routed_counter_->first.second != role) {
    // std::map: the node, and so the pointer, stays while the worker lives.
    routed_counter_ = &*stats_->routed.try_emplace({name, std::string(role)}).first;
  }
  return routed_counter_->second;
}

absl::StatusOr<routing::PlanInput> ClientSession::QueryPlanInput(
    std::string_view sql, std::span<const routing::Literal> literals) {
  routing::PlanInput input;
  input.literals = literals;
  absl::StatusOr<routing::Hints> hints = routing::ParseCommentHints(sql);
  if (!hints.ok()) return hints.status();
  input.hints = *std::move(hints);
  input.hints.MergeFrom(session_hints_);
  input.in_transaction = InTransaction();
  input.explain = explain_;
  return input;
}

asio::awaitable<void> ClientSession::PlanQueryWithLookups(
    std::string_view sql, const routing::Analysis& analysis,
    std::span<const routing::Literal> literals, absl::StatusOr<routing::RoutePlan>& plan) {
  absl::StatusOr<routing::PlanInput> input = QueryPlanInput(sql, literals);
  if (!input.ok()) {
    plan = input.status();
    co_return;
  }
  plan = co_await PlanStatement(analysis, *input, std::move(plan));
}

asio::awaitable<std::optional<bool>> ClientSession::DistributedTransactionStatement(
    const routing::Analysis& analysis) {
  // Transaction statements of a transaction spanning shards are the proxy's.
  const routing::QueryInfo* txn =
      analysis.statements.size() == 1 &&
              analysis.statements[0].kind == routing::StatementKind::kTransaction
          ? &analysis.statements[0]
          : nullptr;
  if (absl::StatusOr<std::string> tag = DistributedTransactionTag(txn); !tag.ok()) {
    co_return LocalError(tag.status(), false);
  } else if (*tag == "BEGIN") {
    LocalCommand("BEGIN");  // PostgreSQL only warns about a BEGIN inside a transaction
    co_return false;
  } else if (!tag->empty()) {
    co_await EndDistributed(*tag == "COMMIT");
    p::AppendReadyForQuery(client_out_, TxStatus());
    co_return false;
  }
  if (dist_->failed) co_return LocalError(TransactionAborted(), false);
  co_return std::nullopt;
}

asio::awaitable<std::optional<absl::StatusOr<bool>>> ClientSession::RouteDistributed(
    std::string_view sql, const routing::Analysis& analysis, const routing::RoutePlan& plan) {
  absl::Status entered = dist_ ? absl::OkStatus() : co_await EnterDistributed();
  if (!entered.ok()) co_return std::nullopt;
  if (analysis.statements.size() != 1) {
    co_return LocalError(SeveralStatementsAcrossShards(), false);
  }
  if (analysis.statements[0].kind == routing::StatementKind::kSet) {
    co_return LocalError(SetInDistributed(), false);
  }
  co_return co_await DistributedStatement(
      sql, analysis.statements[0], plan,
      plan.write && OnlyReferenceTables(analysis, *topology_->map()));
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::RouteAcrossShards(
    std::string_view sql, const routing::Analysis& analysis, const routing::RoutePlan& plan) {
  if (analysis.statements.size() != 1) {
    co_return LocalError(SeveralStatementsAcrossShards(), false);
  }
  std::optional<CacheFill> fill = std::move(fill_pending_);
  fill_pending_.reset();
  const size_t start = client_out_.size();
  const uint64_t flushes = client_flushes_;
  absl::StatusOr<bool> done = co_await FanOutQuery(
      sql, analysis.statements[0], plan,
      plan.write && OnlyReferenceTables(analysis, *topology_->map()));
  if (fill && done.ok()) StoreFanOutAnswer(std::move(*fill), start, flushes);
  co_return done;
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::RouteQuery(std::string_view sql) {
  prepared_read_.armed = false;
  // Session hints and settings of the proxy itself never reach a server.
  {
    std::string_view rest = StripSpace(sql);
    while (!rest.empty() && rest.back() == ';') rest = StripSpace(rest.substr(0, rest.size() - 1));
    if (absl::StartsWithIgnoreCase(Av(rest), "set shardgate.explain")) {
      // Only the head matters here; lowering a whole statement would copy it.
      const std::string lower = Lower(rest.substr(0, 64));
      std::string_view value = std::string_view(lower).substr(21);
      while (!value.empty() && (IsSpace(value.front()) || value.front() == '=' ||
                                value.front() == '\'')) {
        value.remove_prefix(1);
      }
      if (value.rfind("to", 0) == 0) value = StripSpace(value.substr(2));
      if (!value.empty() && value.front() == '\'') value.remove_prefix(1);
      explain_ = value.rfind("on", 0) == 0 || value.rfind("true", 0) == 0 ||
                 value.rfind("1", 0) == 0 || value.rfind("yes", 0) == 0;
      LocalCommand("SET");
      co_return false;
    }
  }
  if (auto hint = routing::ParseSessionHint(sql)) {
    if (!hint->ok()) co_return LocalError(hint->status(), false);
    routing::ApplySessionHint(**hint, session_hints_);
    if ((*hint)->op != routing::SessionHint::Op::kResetAll) {
      LocalCommand((*hint)->op == routing::SessionHint::Op::kSet ? "SET" : "RESET");
      co_return false;
    }
    // RESET ALL also resets the server's settings: forward it as well.
  }
  if (held_failed_) {
    std::string lower = Lower(StripSpace(sql));
    if (lower.rfind("rollback", 0) == 0 || lower.rfind("commit", 0) == 0 ||
        lower.rfind("end", 0) == 0 || lower.rfind("abort", 0) == 0) {
      held_failed_ = false;
      held_begin_.clear();
      LocalCommand("ROLLBACK");
      co_return false;
    }
    std::string out;
    p::AppendError(out, ToPgError(TransactionAborted()));
    LocalAnswer(std::move(out));
    Push(Expect::kInjectReady);
    co_return false;
  }

  if (map_version_ != worker_.runtime().map_version() && !InTransaction() && !server_) {
    RefreshMap();
  }
  auto analyzed = worker_.analysis_cache().Analyze(sql);
  if (!analyzed.ok()) {
    // A distributed transaction has no one server to report it: the parser's error fails it.
    if (dist_) co_return LocalError(analyzed.status(), false);
    // The server reports its own syntax error, in its own words.
    co_return co_await AttachAnyShard(true);
  }
  const routing::Analysis& analysis = *analyzed->analysis;
  // prepare_reads: what the read needs is copied now, while the analysis cache's views still
  // hold this statement's literals (planning may wait for a directory entry and Target for a
  // server; other sessions use the cache meanwhile). It is armed at the end, once routed.
  const bool prepare = db_->prepare_reads && BuildPreparedRead(sql, *analyzed);
  if (dist_) {
    if (std::optional<bool> done = co_await DistributedTransactionStatement(analysis)) {
      co_return *done;
    }
  }
  if (analysis.statements.size() == 1) {
    const routing::QueryInfo& info = analysis.statements[0];
    if (info.kind == routing::StatementKind::kTransaction) {
      if (info.txn == routing::TxnOp::kBegin && !InTransaction()) {
        held_begin_ = std::string(sql);
        held_read_only_ = info.read_only_txn;
        LocalCommand("BEGIN");
        co_return false;
      }
      if ((info.txn == routing::TxnOp::kCommit || info.txn == routing::TxnOp::kRollback) &&
          !server_ && !held_begin_.empty()) {
        held_begin_.clear();
        LocalCommand(info.txn == routing::TxnOp::kCommit ? "COMMIT" : "ROLLBACK");
        co_return false;
      }
      if (server_) co_return true;
    }
    if (info.kind == routing::StatementKind::kEmpty && server_) co_return true;
  }
  // The planner's input lives in this block only (and so not in this coroutine's frame, which
  // would then outgrow Asio's recycled blocks).
  std::optional<std::chrono::milliseconds> cache_hint;
  absl::StatusOr<routing::RoutePlan> plan;
  {
    absl::StatusOr<routing::PlanInput> input = QueryPlanInput(sql, analyzed->literals);
    if (!input.ok()) co_return LocalError(input.status(), false);
    cache_hint = input->hints.cache;
    plan = planner_->Plan(analysis, *input);
  }
  if (MissedDirectory(plan)) {
    co_await PlanQueryWithLookups(sql, analysis, analyzed->literals, plan);
  }
  if (!plan.ok()) co_return RefuseStatement(plan.status(), false);
  if (plan->write) {
    absl::StatusOr<bool> again = co_await PassWriteGate(analysis);
    if (!again.ok()) co_return RefuseStatement(again.status(), false);
    // Planned again on the new map (and its keys counted there).
    if (*again) co_return co_await RouteQuery(sql);
  }
  NoteHotKeys(*plan);
  if (plan->write) {
    if (cache_on_) NoteCacheWrite(analysis, *plan);
  } else if (cache_on_ && !InTransaction() && !dist_) {
    const std::chrono::milliseconds ttl = CacheTtl(analysis, *plan, cache_hint, true);
    if (ttl.count() > 0 && CacheLookup(CacheKey('Q', sql, {}), analysis, *plan, ttl, false, {})) {
      co_return false;
    }
  }
  const bool spans = plan->spread == routing::RoutePlan::Spread::kSome ||
                     plan->spread == routing::RoutePlan::Spread::kAll;
  if (dist_ || NeedsDistributed(*plan)) {
    // A transaction on several shards (when it cannot be one, Target refuses as before).
    std::optional<absl::StatusOr<bool>> done = co_await RouteDistributed(sql, analysis, *plan);
    if (done) co_return *std::move(done);
  }
  if (spans && !InTransaction()) co_return co_await RouteAcrossShards(sql, analysis, *plan);
  // Read pipelining: armed before Target, so that waiting for a server it may follow another
  // client's read (Attach).
  follow_read_ = prepare && !fill_pending_ && !plan->write && db_->pipeline_reads > 0;
  prepared_read_.armed = follow_read_;
  absl::StatusOr<bool> routed = co_await Target(*plan, false);
  follow_read_ = false;
  // Armed only for a read forwarded to one server that is not a cache fill.
  prepared_read_.armed =
      prepare && !fill_pending_ && !plan->write && routed.ok() && *routed;
  if (fill_pending_ && routed.ok() && *routed) ArmCacheFill();
  fill_pending_.reset();
  co_return routed;
}

void ClientSession::NoteParseSharded(const p::Parse& parse) {
  // Drivers re-send the same Parse (the unnamed statement before every Bind in pgbench -M
  // extended, JDBC, asyncpg): the statement already noted under that name is kept as it is.
  if (auto it = prepared_.find(Av(parse.name));
      it != prepared_.end() && SameParse(it->second, parse)) {
    return;
  }
  Prepared prepared;
  prepared.param_types.assign(parse.param_types.begin(), parse.param_types.end());
  auto analysis = worker_.analysis_cache().Prepare(parse.sql);
  if (analysis.ok()) {
    prepared.analysis = analysis->analysis;
    prepared.literals = std::move(analysis->literals);
  }
  prepared.sql = std::string(parse.sql);
  if (parse.sql.find("shardgate") != std::string_view::npos) {
    if (auto hints = routing::ParseCommentHints(parse.sql); hints.ok()) {
      prepared.hints = *std::move(hints);
    } else {
      prepared.hint_error = hints.status();  // the Bind gets it, as a Query would at once
    }
  }
  prepared.server_name = ServerStatementNameFor(parse);
  p::AppendParse(prepared.parse_msg, prepared.server_name, parse.sql, parse.param_types);
  prepared.read = prepared.analysis && routing::PreparableRead(*prepared.analysis);
  prepared_[std::string(parse.name)] = std::move(prepared);
}

routing::PlanInput ClientSession::BindPlanInput(const Prepared& prepared, const p::Bind& bind) {
  routing::PlanInput input;
  input.literals = prepared.literals;
  input.params.values = bind.params;
  input.params.formats = bind.param_formats;
  input.params.types = prepared.param_types;
  input.hints = prepared.hints;
  input.hints.MergeFrom(session_hints_);
  input.in_transaction = InTransaction();
  input.explain = explain_;
  return input;
}

asio::awaitable<void> ClientSession::PlanBindWithLookups(const Prepared& prepared,
                                                        const p::Bind& bind,
                                                        absl::StatusOr<routing::RoutePlan>& plan) {
  const routing::PlanInput input = BindPlanInput(prepared, bind);
  plan = co_await PlanStatement(*prepared.analysis, input, std::move(plan));
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::RouteBind(const p::Frame& frame) {
  auto bind = p::ParseBind(frame.body);
  if (!bind.ok()) co_return bind.status();
  // A new portal of that name replaces the one the cache answered.
  if (cached_portal_ && cached_portal_->name == bind->portal) cached_portal_.reset();
  auto it = prepared_.find(Av(bind->statement));
  if (it == prepared_.end() || !it->second.analysis) {
    // Unknown statement or one that does not parse: a server says so, in its own words.
    if (server_) co_return true;
    co_return co_await AttachAnyShard(true);
  }
  const Prepared& prepared = it->second;
  // The portal the proxy runs itself at Execute (see FanOutPortal). By pointer (null: an
  // empty plan): a plan passed by value would be one more RoutePlan in this coroutine's frame.
  auto fanout_portal = [&](routing::RoutePlan* plan) {
    FanOutPortal portal;
    portal.name = std::string(bind->portal);
    portal.sql = prepared.sql;
    portal.param_types = prepared.param_types;
    portal.bind_body = std::string(frame.body);
    portal.kind = prepared.analysis->statements[0].kind;
    portal.analysis = prepared.analysis;
    portal.reference = plan != nullptr && plan->write &&
                       OnlyReferenceTables(*prepared.analysis, *topology_->map());
    portal.plan = plan != nullptr ? std::move(*plan) : routing::RoutePlan();
    fanout_portal_ = std::move(portal);
    std::string out;
    p::AppendBindComplete(out);
    LocalAnswer(std::move(out));
  };
  if (dist_) {
    const routing::QueryInfo* txn = prepared.analysis->statements.size() == 1 &&
                                            prepared.analysis->statements[0].kind ==
                                                routing::StatementKind::kTransaction
                                        ? &prepared.analysis->statements[0]
                                        : nullptr;
    absl::StatusOr<std::string> tag = DistributedTransactionTag(txn);
    if (!tag.ok()) co_return LocalError(tag.status(), true);
    if (!tag->empty()) {
      fanout_portal(nullptr);
      fanout_portal_->transaction = *tag;
      co_return false;
    }
    if (dist_->failed) co_return LocalError(TransactionAborted(), true);
  }
  if (prepared.analysis->statements.size() == 1) {
    // BEGIN is held and COMMIT/ROLLBACK of a held BEGIN answered here, as in RouteQuery.
    const routing::QueryInfo& info = prepared.analysis->statements[0];
    const bool begin = info.txn == routing::TxnOp::kBegin && !InTransaction();
    const bool end = (info.txn == routing::TxnOp::kCommit ||
                      info.txn == routing::TxnOp::kRollback) &&
                     !server_ && (!held_begin_.empty() || held_failed_);
    if (info.kind == routing::StatementKind::kTransaction && (begin || end)) {
      local_portal_tag_ = begin ? "BEGIN"
                          : info.txn == routing::TxnOp::kCommit && !held_failed_ ? "COMMIT"
                                                                                 : "ROLLBACK";
      local_portal_sql_ = prepared.sql;
      local_portal_read_only_ = info.read_only_txn;
      std::string out;
      p::AppendBindComplete(out);
      LocalAnswer(std::move(out));
      co_return false;
    }
    if (info.kind == routing::StatementKind::kTransaction && server_) co_return true;
  }
  if (map_version_ != worker_.runtime().map_version() && !InTransaction() && !server_) {
    RefreshMap();
  }
  if (!prepared.hint_error.ok()) co_return RefuseStatement(prepared.hint_error, true);
  // As in RouteQuery, the planner's input stays out of this coroutine's frame.
  absl::StatusOr<routing::RoutePlan> plan = planner_->Plan(*prepared.analysis,
                                                           BindPlanInput(prepared, *bind));
  if (MissedDirectory(plan)) {
    co_await PlanBindWithLookups(prepared, *bind, plan);
  }
  if (!plan.ok()) co_return RefuseStatement(plan.status(), true);
  if (plan->write) {
    absl::StatusOr<bool> again = co_await PassWriteGate(*prepared.analysis);
    if (!again.ok()) co_return RefuseStatement(again.status(), true);
    // Planned again on the new map (and its keys counted there).
    if (*again) co_return co_await RouteBind(frame);
  }
  NoteHotKeys(*plan);
  if (plan->write) {
    if (cache_on_) NoteCacheWrite(*prepared.analysis, *plan);
  } else if (cache_on_ && !InTransaction() && !dist_ && !cached_portal_) {
    const std::chrono::milliseconds ttl =
        CacheTtl(*prepared.analysis, *plan, prepared.hints.cache, false);
    if (ttl.count() > 0) {
      // Keyed by the statement, its parameter types and the Bind past the names: parameter
      // values and formats, result formats.
      const std::string_view rest =
          frame.body.substr(bind->portal.size() + 1 + bind->statement.size() + 1);
      std::string extra(reinterpret_cast<const char*>(prepared.param_types.data()),
                        prepared.param_types.size() * sizeof(uint32_t));
      extra.append(rest);
      // Whether the client describes the portal (libpq does; JDBC and pgx skip it for
      // statements they know): an answer is cached with or without its RowDescription, as
      // asked, so the Describe that follows a hit can always be answered.
      p::Frame next[2];
      const bool describes = PeekBatch(frame, next) == 2 && next[1].type == p::fe::kDescribe &&
                             next[1].body.size() == bind->portal.size() + 2 &&
                             next[1].body[0] == 'P' && next[1].body.back() == '\0' &&
                             next[1].body.substr(1, bind->portal.size()) == bind->portal;
      extra.push_back(describes ? 'D' : 'N');
      if (CacheLookup(CacheKey('B', prepared.sql, extra), *prepared.analysis, *plan, ttl, true,
                      bind->portal)) {
        co_return false;
      }
    }
  }
  if (dist_ || NeedsDistributed(*plan)) {
    absl::Status entered = dist_ ? absl::OkStatus() : co_await EnterDistributed();
    if (entered.ok()) {
      if (prepared.analysis->statements.size() != 1) {
        co_return LocalError(PgStatus("0A000", "a statement list cannot span shards"), true);
      }
      if (prepared.analysis->statements[0].kind == routing::StatementKind::kSet) {
        co_return LocalError(SetInDistributed(), true);
      }
      PinToTransactionShard(*plan);
      fanout_portal(&*plan);
      co_return false;
    }
  }
  if ((plan->spread == routing::RoutePlan::Spread::kSome ||
       plan->spread == routing::RoutePlan::Spread::kAll) &&
      !InTransaction()) {
    if (prepared.analysis->statements.size() != 1) {
      co_return LocalError(PgStatus("0A000", "a statement list cannot span shards"), true);
    }
    fanout_portal(&*plan);
    co_return false;
  }
  // Read pipelining: a read's whole batch, armed before Target, so that waiting for a server
  // it may follow another client's read (Attach; the Serve loop then takes the batch whole).
  follow_read_ = db_->pipeline_reads > 0 && !server_ && !plan->write && ArmExtendedRead(frame);
  absl::StatusOr<bool> routed = co_await Target(*plan, true);
  follow_read_ = false;
  if (fill_pending_ && routed.ok() && *routed) ArmCacheFill();
  fill_pending_.reset();
  co_return routed;
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::PassWriteGate(
    const routing::Analysis& analysis) {
  if (gate_ == nullptr) co_return false;
  if (!gate_epoch_) gate_epoch_ = gate_->Enter();
  for (const routing::QueryInfo& info : analysis.statements) {
    // Paused for a cutover: wait (the pause has a deadline, so this ends).
    while (gate_->Blocks(*gate_epoch_, info.tables)) {
      asio::steady_timer tick(worker_.io(), std::chrono::milliseconds(1));
      co_await tick.async_wait(kTuple);
    }
  }
  if (map_version_ == worker_.runtime().map_version()) co_return false;
  const bool started = dist_ || held_failed_ || (server_ && server_->tx_status() != 'I');
  if (!started) {
    // Between transactions: take the new map and plan again (a held BEGIN has run nothing).
    co_await DrainAndRelease();
    if (!server_) {
      RefreshMap();
      co_return true;
    }
  }
  for (const routing::QueryInfo& info : analysis.statements) {
    if (gate_->MovedSince(map_version_, info.tables)) {
      co_return PgStatus("40001",
                         "the shard map changed during this transaction (resharding cutover)",
                         "Retry the transaction: it runs on the new map.");
    }
  }
  co_return false;
}

void ClientSession::LeaveWriteGate() {
  if (!gate_epoch_ || InTransaction() || (server_ && !expected_.empty()) || copy_in_) return;
  gate_->Leave(*gate_epoch_);
  gate_epoch_.reset();
}

void ClientSession::RefreshMap() {
  const uint64_t version = worker_.runtime().map_version();
  std::shared_ptr<Topology> topology = worker_.runtime().topology(db_name_);
  if (!topology) return;  // the database left the config: keep serving the old map
  topology_ = std::move(topology);
  endpoint_pools_.clear();  // the endpoints were the old topology's
  planner_.emplace(topology_->map());
  map_version_ = version;
  const std::shared_ptr<const conf::Config> config = worker_.runtime().config();
  if (const conf::DatabaseConfig* db = config->FindDatabase(db_name_); db != nullptr) {
    UpdateCache(*db);
  }
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::RouteFrame(const p::Frame& frame) {
  const char type = frame.type;
  if (copy_in_) co_return co_await CopyInFrame(frame);
  if (drop_until_sync_ && type != p::fe::kSync) co_return false;
  switch (type) {
    case p::fe::kQuery: {
      auto q = p::ParseQuery(frame.body);
      if (!q.ok()) co_return q.status();
      co_return co_await RouteQuery(q->sql);
    }
    case p::fe::kParse: {
      // Parse goes to a server only with the Bind that says which shard: remember it.
      auto parse = p::ParseParse(frame.body);
      if (!parse.ok()) co_return parse.status();
      NoteParseSharded(*parse);
      Push(Expect::kInjectParseComplete);
      co_return false;
    }
    case p::fe::kBind:
      co_return co_await RouteBind(frame);
    case p::fe::kClose: {
      auto close = p::ParseClose(frame.body);
      if (!close.ok()) co_return close.status();
      if (close->kind == 'S') {
        prepared_.erase(Av(close->name));
        Push(Expect::kInjectCloseComplete);
        co_return false;
      }
      if (cached_portal_ && cached_portal_->name == close->name) {
        cached_portal_.reset();
        Push(Expect::kInjectCloseComplete);
        co_return false;
      }
      if (fanout_portal_ && fanout_portal_->name == close->name) {
        fanout_portal_.reset();
        Push(Expect::kInjectCloseComplete);
        co_return false;
      }
      if (server_) co_return true;
      Push(Expect::kInjectCloseComplete);  // a portal of a finished transaction: already gone
      co_return false;
    }
    case p::fe::kSync:
      drop_until_sync_ = false;
      if (fanout_portal_ && fanout_portal_->described) {
        // Described but never executed: the shards describe it.
        auto described = co_await FanOutExecute(false);
        if (!described.ok()) co_return described.status();
      }
      fanout_portal_.reset();
      cached_portal_.reset();
      if (server_) co_return true;
      Push(Expect::kInjectReady);
      co_return false;
    case p::fe::kFlush:
    case p::fe::kCopyData:
    case p::fe::kCopyDone:
    case p::fe::kCopyFail:
      co_return server_ != nullptr;
    default:  // Describe, Execute, FunctionCall: the attached server, else the default shard
      if (cached_portal_ && (type == p::fe::kDescribe || type == p::fe::kExecute) &&
          AnswerCachedPortal(frame)) {
        co_return false;
      }
      if (fanout_portal_ && (type == p::fe::kDescribe || type == p::fe::kExecute)) {
        if (type == p::fe::kDescribe) {
          auto d = p::ParseDescribe(frame.body);
          if (!d.ok()) co_return d.status();
          if (d->kind == 'P' && d->name == fanout_portal_->name) {
            if (!fanout_portal_->transaction.empty()) {
              std::string out;
              p::AppendNoData(out);
              LocalAnswer(std::move(out));
            } else {
              fanout_portal_->described = true;
            }
            co_return false;
          }
        } else {
          auto e = p::ParseExecute(frame.body);
          if (!e.ok()) co_return e.status();
          if (e->portal == fanout_portal_->name && !fanout_portal_->transaction.empty()) {
            const std::string tag = std::move(fanout_portal_->transaction);
            fanout_portal_.reset();
            if (tag != "BEGIN" && dist_) {
              co_await EndDistributed(tag == "COMMIT");
            } else {
              LocalAnswer(ToCommandComplete(tag));
            }
            co_return false;
          }
          if (e->portal == fanout_portal_->name) {
            if (e->max_rows > 0) {
              fanout_portal_.reset();
              co_return LocalError(
                  PgStatus("0A000", "fetching a cross-shard result in parts is not supported",
                           "Execute the portal without a row limit, or add a LIMIT."),
                  true);
            }
            co_return co_await FanOutExecute(true);
          }
        }
      }
      if (!local_portal_tag_.empty() &&
          (type == p::fe::kDescribe || type == p::fe::kExecute)) {
        std::string out;
        if (type == p::fe::kDescribe) {
          p::AppendNoData(out);
        } else {
          p::AppendCommandComplete(out, local_portal_tag_);
          if (local_portal_tag_ == "BEGIN") {
            held_begin_ = local_portal_sql_;
            held_read_only_ = local_portal_read_only_;
          } else {
            held_begin_.clear();
            held_failed_ = false;
          }
          local_portal_tag_.clear();
        }
        LocalAnswer(std::move(out));
        co_return false;
      }
      if (server_) co_return true;
      co_return co_await AttachAnyShard(type != p::fe::kDescribe);
  }
}

}  // namespace shardgate::proxy
