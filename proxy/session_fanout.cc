// ClientSession, cross-shard half: a statement that spans shards runs on all of them at once
// (fan-out) and their answers are merged into the one a single server would give; writes on
// several shards commit with two-phase commit.
#include <cstdlib>

#include <boost/asio/write.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/copy_split.h"
#include "proxy/fanout.h"
#include "proxy/merge.h"
#include "proxy/pool.h"
#include "proxy/runtime.h"
#include "proxy/strings.h"
#include "proxy/two_phase.h"
#include "proxy/worker.h"
#include "routing/merge_plan.h"
#include "routing/router.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {

namespace p = protocol;

namespace {

constexpr std::chrono::milliseconds kLegPoolWait{30000};

bool IsDml(routing::StatementKind kind) {
  using K = routing::StatementKind;
  return kind == K::kInsert || kind == K::kUpdate || kind == K::kDelete || kind == K::kMerge;
}

// Test hook: SHARDGATE_TEST_FAULT=after_prepare|after_decision makes the proxy die at that
// point of a two-phase commit, as a crash would (the 2PC recovery test uses it).
void MaybeCrash(std::string_view point) {
  static const char* fault = std::getenv("SHARDGATE_TEST_FAULT");
  if (fault != nullptr && point == fault) {
    spdlog::critical("SHARDGATE_TEST_FAULT={}: exiting", point);
    spdlog::default_logger()->flush();
    std::_Exit(70);
  }
}

// LIMIT/OFFSET values: a constant of the statement or a Bind parameter (text format).
absl::StatusOr<std::optional<int64_t>> ResolveCount(
    const std::optional<routing::MergeValue>& value,
    std::span<const std::optional<std::string>> params, std::string_view what,
    std::string_view sqlstate) {
  if (!value.has_value()) return std::nullopt;
  std::optional<std::string_view> text;
  if (value->param > 0) {
    if (static_cast<size_t>(value->param) > params.size()) {
      return PgStatus("08P01", absl::StrCat("no value for parameter $", value->param));
    }
    if (params[value->param - 1].has_value()) text = *params[value->param - 1];
  } else if (!value->null) {
    text = value->text;
  }
  if (!text.has_value()) return std::nullopt;  // NULL: no limit
  int64_t n = 0;
  if (!absl::SimpleAtoi(AbslView(*text), &n)) {
    return PgStatus("22P02", absl::StrCat("invalid input syntax for type bigint: \"",
                                          Av(*text), "\""));
  }
  if (n < 0) return PgStatus(sqlstate, absl::StrCat(Av(what), " must not be negative"));
  return n;
}

// A rollback that fails leaves the connection broken (the pool closes it) or a prepared
// transaction without a decision (recovery rolls it back at the next start): worth a log line.
void WarnIfFailed(const absl::Status& st) {
  if (!st.ok()) spdlog::warn("cross-shard rollback: {}", std::string(st.message()));
}

// A reference table has the same rows on every shard: in a UNION branch run on each shard they
// would come back once per shard.
absl::Status CheckSetOperation(const routing::QueryInfo& info, const routing::ShardMap& map) {
  if (!info.merge.set_operation) return absl::OkStatus();
  for (const auto& table : info.tables) {
    if (const auto* t = map.FindTable(table.schema, table.name); t != nullptr && t->reference) {
      return PgStatus("0A000",
                      absl::StrCat("a UNION across shards that reads reference table \"",
                                   table.name, "\" is not supported"),
                      "Each shard holds a copy of it: query it separately, or restrict the "
                      "statement to one shard.");
    }
  }
  return absl::OkStatus();
}

// What a merged read needs before it runs: the plan, and its LIMIT/OFFSET values resolved.
struct MergeSetup {
  MergeSetup() { plan.visible_columns = -1; }  // plain concatenation until planned
  routing::MergePlan plan;
  std::optional<int64_t> limit, offset;
};

absl::Status PlanFanOutMerge(std::string_view sql,
                             std::span<const std::optional<std::string>> params,
                             MergeSetup& out) {
  ASSIGN_OR_RETURN(out.plan, routing::PlanMerge(sql));
  ASSIGN_OR_RETURN(out.limit, ResolveCount(out.plan.limit, params, "LIMIT", "2201W"));
  ASSIGN_OR_RETURN(out.offset, ResolveCount(out.plan.offset, params, "OFFSET", "2201X"));
  return absl::OkStatus();
}

}  // namespace

std::string ClientSession::ReplaySql(ServerConnection& conn) const {
  std::string sql;
  auto& have = conn.settings();
  // The usual case, once per transaction: the server already has exactly these settings (one
  // pass over both sorted maps, no lookups).
  if (have == settings_) return sql;
  for (const auto& [name, stmt] : settings_) {
    auto it = have.find(name);
    if (it != have.end() && it->second == stmt) continue;
    absl::StrAppend(&sql, stmt, ";");
    have[name] = stmt;
  }
  for (auto it = have.begin(); it != have.end();) {
    if (settings_.contains(it->first)) {
      ++it;
      continue;
    }
    absl::StrAppend(&sql, "RESET ", it->first, ";");
    it = have.erase(it);
  }
  return sql;
}

asio::awaitable<absl::Status> ClientSession::AcquireLegs(absl::Span<const int> shards,
                                                         bool read, Legs& legs) {
  co_await WaitWhileSuspended();
  // Ascending shard order: sessions that wait for pools never wait on each other in a cycle.
  for (int shard : shards) {
    auto leg = std::make_unique<FanOutLeg>();
    leg->shard = shard;
    bool replica = false;
    const conf::Endpoint& ep =
        read ? topology_->ForRead(shard, &replica) : topology_->Primary(shard);
    if (!replica) {
      if (absl::Status open = topology_->WriteServerAvailable(shard); !open.ok()) co_return open;
    }
    absl::StatusOr<Pool*> pool = PoolFor(topology_->shard(shard), ep);
    if (!pool.ok()) co_return pool.status();
    leg->pool = *pool;
    auto conn = co_await leg->pool->Acquire(kLegPoolWait);
    if (!conn.ok() && replica) {
      topology_->ReplicaFailed(shard, ep);
      replica = false;
      if (absl::Status open = topology_->WriteServerAvailable(shard); !open.ok()) co_return open;
      pool = PoolFor(topology_->shard(shard), topology_->Primary(shard));
      if (!pool.ok()) co_return pool.status();
      leg->pool = *pool;
      conn = co_await leg->pool->Acquire(kLegPoolWait);
    }
    if (!conn.ok()) {
      if (!replica) topology_->PrimaryConnectFailed(shard, conn.status());
      co_return conn.status();
    }
    leg->conn = std::move(*conn);
    if (stats_) {
      ++RoutedCounter(shard, replica);
    }
    legs.push_back(std::move(leg));
  }
  co_return absl::OkStatus();
}

void ClientSession::ReleaseLegs(Legs& legs) {
  for (auto& leg : legs) {
    if (leg->conn) leg->pool->Release(std::move(leg->conn));  // closed when not idle
  }
  legs.clear();
}

// Runs `sql` on every leg, nothing forwarded to the client; the first error.
asio::awaitable<absl::Status> ClientSession::RunOnLegs(std::span<FanOutLeg* const> legs,
                                                       std::string_view sql) {
  for (FanOutLeg* leg : legs) {
    leg->requests.clear();
    leg->requests.push_back({});
    p::AppendQuery(leg->requests.back().messages, sql);
  }
  FanOutResult result = co_await RunFanOutQuietly(legs, config_->timeouts.query);
  co_return result.error;  // the first leg's error, if any
}

// PREPARE TRANSACTION on every leg, the decision logged, COMMIT PREPARED on every leg. Before
// the decision a failure rolls every shard back; after it the commit stands (a shard that
// could not take COMMIT PREPARED now gets it from recovery at the next start).
asio::awaitable<absl::Status> ClientSession::CommitTwoPhase(std::span<FanOutLeg* const> legs) {
  DecisionLog* log = worker_.runtime().decision_log();
  const std::string gid = log->NextGid();
  absl::Status prepared = co_await RunOnLegs(legs, absl::StrCat("PREPARE TRANSACTION '", gid, "'"));
  if (!prepared.ok()) {
    // A failed PREPARE rolls its own transaction back; undo the shards that did prepare.
    std::vector<FanOutLeg*> ok_legs;
    for (FanOutLeg* leg : legs) {
      if (leg->error.ok()) ok_legs.push_back(leg);
    }
    if (!ok_legs.empty()) {
      WarnIfFailed(co_await RunOnLegs(ok_legs, absl::StrCat("ROLLBACK PREPARED '", gid, "'")));
    }
    co_return prepared;
  }
  MaybeCrash("after_prepare");
  std::vector<std::string> names;
  for (FanOutLeg* leg : legs) names.push_back(topology_->map()->shard_name(leg->shard));
  absl::Status decided = log->Commit(gid, names);
  if (!decided.ok()) {
    WarnIfFailed(co_await RunOnLegs(legs, absl::StrCat("ROLLBACK PREPARED '", gid, "'")));
    co_return decided;
  }
  MaybeCrash("after_decision");
  absl::Status committed = co_await RunOnLegs(legs, absl::StrCat("COMMIT PREPARED '", gid, "'"));
  if (committed.ok()) {
    log->Done(gid);
  } else {
    spdlog::error("two-phase commit {}: COMMIT PREPARED failed ({}); it is committed at the "
                  "next start by recovery", gid, std::string(committed.message()));
  }
  co_return absl::OkStatus();
}

asio::awaitable<void> ClientSession::RunCrossShard(
    const routing::RoutePlan& plan, routing::StatementKind kind, bool reference,
    const routing::MergePlan& merge, std::optional<int64_t> limit, std::optional<int64_t> offset,
    bool row_description, const std::function<absl::StatusOr<std::string>(size_t)>& statement_for,
    const std::vector<std::optional<std::string>>& params, bool* failed) {
  if (stats_) ++stats_->cross_shard;
  *failed = true;
  auto fail = [this](const absl::Status& st) { p::AppendError(client_out_, ToPgError(st)); };
  // Autocommit: the statement's own legs, and its own two-phase commit when it writes on
  // several shards. In a distributed transaction: the transaction's legs (a shard joining now
  // starts the client's transaction first); COMMIT decides later.
  const bool transactional =
      plan.write && (IsDml(kind) || kind == routing::StatementKind::kDdl);
  const bool two_phase = !dist_ && transactional && plan.shards.size() > 1 &&
                         worker_.runtime().decision_log() != nullptr;
  if (!dist_ && plan.write && IsDml(kind) && plan.shards.size() > 1 && !two_phase) {
    fail(PgStatus("0A000", "a write on several shards needs two-phase commit, which is off",
                  "Set cross_shard.two_phase: true, or add a shard key condition."));
    co_return;
  }
  const bool on_replicas = !dist_ && !plan.write && plan.role != routing::Role::kPrimary;
  Legs own;
  std::vector<FanOutLeg*> ptrs;
  auto give_up = [&](const absl::Status& st) {
    ReleaseLegs(own);
    if (dist_) dist_->failed = true;
    fail(st);
  };
  for (int shard : plan.shards) {
    FanOutLeg* leg = nullptr;
    if (dist_) {
      for (auto& l : dist_->legs) {
        if (l->shard == shard) leg = l.get();
      }
    }
    if (leg != nullptr) {
      leg->requests.clear();
    } else {
      Legs acquired;
      absl::Status st = co_await AcquireLegs({shard}, on_replicas, acquired);
      if (!st.ok()) {
        ReleaseLegs(acquired);
        give_up(st);
        co_return;
      }
      leg = acquired.front().get();
      leg->requests.clear();
      if (std::string replay = ReplaySql(*leg->conn); !replay.empty()) {
        leg->requests.push_back({});
        p::AppendQuery(leg->requests.back().messages, replay);
      }
      if (two_phase || dist_) {
        leg->requests.push_back({});
        p::AppendQuery(leg->requests.back().messages, dist_ ? dist_->begin : "BEGIN");
      }
      (dist_ ? dist_->legs : own).push_back(std::move(acquired.front()));
    }
    ptrs.push_back(leg);
  }
  if (explain_) {  // as a one-shard statement's NOTICE: every shard, and the server role used
    std::string shards;
    for (const FanOutLeg* leg : ptrs) {
      const BackendTarget& t = leg->pool->target();
      const conf::Endpoint& primary = topology_->Primary(leg->shard);
      absl::StrAppend(&shards, shards.empty() ? "" : ", ", t.shard, " [",
                      t.host == primary.host && t.port == primary.port ? "primary" : "replica",
                      "]");
    }
    p::AppendNotice(client_out_, PgError{"NOTICE", "00000",
                                         absl::StrCat("shardgate: ", plan.reason, " -> ", shards),
                                         "", ""});
  }
  for (size_t i = 0; i < ptrs.size(); ++i) {
    FanOutLeg& leg = *ptrs[i];
    auto statement = statement_for(i);
    if (!statement.ok()) {
      give_up(statement.status());
      co_return;
    }
    // A reference table answers once (every shard holds the same rows).
    leg.requests.push_back({std::move(*statement), !reference || i == 0});
  }

  MergeOptions options;
  options.max_memory = config_->cross_shard.merge_memory;
  Merger merger(merge, static_cast<int>(ptrs.size()), limit, offset, options);
  if (!params.empty()) merger.SetParams(params);
  FanOutSink sink{&client_out_, [this]() { return FlushClient(); }, row_description};
  FanOutResult result = co_await RunFanOut(ptrs, merger, sink, config_->timeouts.query);
  if (dist_ && (result.any_leg_failed || !result.error.ok())) dist_->failed = true;
  if (two_phase) {
    if (result.any_leg_failed) {
      // result.error already names the failed leg (RunFanOut reports the first one).
      WarnIfFailed(co_await RunOnLegs(ptrs, "ROLLBACK"));
    } else if (absl::Status st = co_await CommitTwoPhase(ptrs); !st.ok()) {
      result.error = st;
      result.error_message.clear();
      p::AppendError(result.error_message, ToPgError(st));
    }
  }
  ReleaseLegs(own);
  if (result.client_gone) {
    closing_ = true;
    co_return;
  }
  if (!result.error.ok()) {
    client_out_.append(result.error_message);
    co_return;
  }
  if (row_description && result.no_data) p::AppendNoData(client_out_);  // described, no rows
  if (result.empty_query) {
    p::AppendEmptyQueryResponse(client_out_);
  } else if (!result.command.empty()) {
    p::AppendCommandComplete(client_out_, MergedTag(result));
  }
  *failed = false;
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::FanOutQuery(
    std::string_view sql, const routing::QueryInfo& info, const routing::RoutePlan& plan,
    bool reference) {
  if (server_) co_await DrainAndRelease();
  if (server_) co_return PgStatus("08006", "could not switch shards: the server is still busy");
  if (absl::Status st = CheckSetOperation(info, *topology_->map()); !st.ok()) {
    co_return LocalError(st, false);
  }
  MergeSetup merge;
  if (plan.merge) {
    if (absl::Status st = PlanFanOutMerge(sql, {}, merge); !st.ok()) {
      co_return LocalError(st, false);
    }
  }
  if (info.kind == routing::StatementKind::kCopyFrom && plan.copy_router != nullptr) {
    if (dist_) {
      dist_->failed = true;
      co_return LocalError(PgStatus("0A000",
                                    "COPY into a sharded table inside a transaction that spans "
                                    "shards is not supported",
                                    "Run the COPY outside the transaction block."),
                           false);
    }
    co_return co_await StartCopyIn(sql, info, plan);
  }
  bool failed = false;
  co_await RunCrossShard(
      plan, info.kind, reference, merge.plan, merge.limit, merge.offset, true,
      [&](size_t i) -> absl::StatusOr<std::string> {
        std::string statement;
        if (plan.merge) {
          statement = merge.plan.shard_sql;
        } else if (!plan.insert_rows.empty()) {
          auto split = routing::InsertWithRows(sql, plan.insert_rows[i]);
          if (!split.ok()) return split.status();
          statement = std::move(*split);
        } else {
          statement = std::string(sql);
        }
        std::string out;
        p::AppendQuery(out, statement);
        return out;
      },
      {}, &failed);
  if (!closing_) p::AppendReadyForQuery(client_out_, TxStatus());
  co_return false;
}

// Extended protocol: runs the portal a Bind left in fanout_portal_. `execute` false: only its
// description was asked for (Describe then Sync without Execute).
asio::awaitable<absl::StatusOr<bool>> ClientSession::FanOutExecute(bool execute) {
  FanOutPortal portal = std::move(*fanout_portal_);
  fanout_portal_.reset();
  if (server_) co_await DrainAndRelease();
  if (server_) co_return PgStatus("08006", "could not switch shards: the server is still busy");
  auto bind = p::ParseBind(portal.bind_body);
  if (!bind.ok()) co_return bind.status();
  // Parameters as text, for LIMIT/OFFSET values and HAVING constants.
  std::vector<std::optional<std::string>> params;
  for (size_t i = 0; i < bind->params.size(); ++i) {
    const auto& v = bind->params[i];
    if (!v.has_value()) {
      params.push_back(std::nullopt);
    } else if (bind->ParamFormat(i) == 0) {
      params.push_back(std::string(*v));
    } else if (v->size() == 8 || v->size() == 4 || v->size() == 2) {
      int64_t n = static_cast<int8_t>((*v)[0]);  // sign-extended big-endian integer
      for (size_t b = 1; b < v->size(); ++b) n = (n << 8) | static_cast<uint8_t>((*v)[b]);
      params.push_back(absl::StrCat(n));
    } else {
      params.push_back(std::string(*v));
    }
  }
  if (absl::Status st = CheckSetOperation(portal.analysis->statements[0], *topology_->map());
      !st.ok()) {
    co_return LocalError(st, true);
  }
  MergeSetup merge;
  if (portal.plan.merge) {
    if (absl::Status st = PlanFanOutMerge(portal.sql, params, merge); !st.ok()) {
      co_return LocalError(st, true);
    }
  }
  if (!portal.plan.insert_rows.empty()) {
    // Each shard would get only its VALUES rows but every parameter, and PostgreSQL cannot
    // type a parameter no row uses.
    co_return LocalError(
        PgStatus("0A000",
                 "a multi-row INSERT spanning shards is not supported with bound parameters",
                 "Send one row per statement, or the rows as literals (simple protocol)."),
        true);
  }
  p::Bind shard_bind = *bind;
  shard_bind.portal = "";
  shard_bind.statement = "";
  if (shard_bind.result_formats.size() > 1) {
    for (int i = 0; i < merge.plan.hidden_columns; ++i) shard_bind.result_formats.push_back(0);
  }
  bool failed = false;
  co_await RunCrossShard(
      portal.plan, portal.kind, portal.reference, merge.plan, merge.limit, merge.offset,
      portal.described,
      [&](size_t) -> absl::StatusOr<std::string> {
        std::string out;
        p::AppendParse(out, "", portal.plan.merge ? merge.plan.shard_sql : portal.sql,
                       portal.param_types);
        p::AppendBind(out, shard_bind);
        p::AppendDescribe(out, 'P', "");
        if (execute) p::AppendExecute(out, "", 0);
        p::AppendSync(out);
        return out;
      },
      params, &failed);
  if (failed) drop_until_sync_ = true;
  co_return false;
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::StartCopyIn(
    std::string_view sql, const routing::QueryInfo& info, const routing::RoutePlan& plan) {
  const routing::CopyInfo& copy = *info.copy;
  auto format = CopyFormatFor(copy.format, copy.delimiter, copy.null_string, copy.header,
                              plan.copy_key_column);
  if (!format.ok()) co_return LocalError(format.status(), false);
  auto in = std::make_unique<CopyIn>(*format);
  in->router = plan.copy_router;
  in->two_phase = plan.shards.size() > 1 && worker_.runtime().decision_log() != nullptr;
  if (plan.shards.size() > 1 && !in->two_phase) {
    co_return LocalError(
        PgStatus("0A000", "COPY into a sharded table needs two-phase commit, which is off",
                 "Set cross_shard.two_phase: true."),
        false);
  }
  absl::Status acquired = co_await AcquireLegs(plan.shards, false, in->legs);
  if (!acquired.ok()) {
    ReleaseLegs(in->legs);
    co_return LocalError(acquired, false);
  }
  in->leg_of_shard.assign(topology_->map()->shard_count(), -1);
  for (size_t i = 0; i < in->legs.size(); ++i) {
    FanOutLeg& leg = *in->legs[i];
    in->ptrs.push_back(&leg);
    in->leg_of_shard[leg.shard] = static_cast<int>(i);
    leg.requests.clear();
    std::string setup = ReplaySql(*leg.conn);
    if (in->two_phase) setup += "BEGIN;";
    if (!setup.empty()) {
      leg.requests.push_back({});
      p::AppendQuery(leg.requests.back().messages, setup);
    }
  }
  in->out.resize(in->legs.size());
  if (copy.header) {
    // The splitter consumes the client's header line; every shard still expects one to skip.
    for (std::string& out : in->out) p::AppendCopyData(out, "\n");
  }
  if (in->two_phase || std::any_of(in->ptrs.begin(), in->ptrs.end(), [](FanOutLeg* l) {
        return !l->requests.empty();
      })) {
    std::vector<FanOutLeg*> with_setup;
    for (FanOutLeg* leg : in->ptrs) {
      if (!leg->requests.empty()) with_setup.push_back(leg);
    }
    FanOutResult setup = co_await RunFanOutQuietly(with_setup, config_->timeouts.query);
    if (setup.any_leg_failed) {
      for (FanOutLeg* leg : with_setup) leg->conn->MarkBroken();
      ReleaseLegs(in->legs);
      co_return LocalError(setup.error.ok() ? PgStatus("08006", "COPY setup failed")
                                            : setup.error, false);
    }
  }
  // The COPY itself: every shard answers CopyInResponse (or an error, e.g. no such table).
  std::string copy_in_response;
  absl::Status failed;
  for (FanOutLeg* leg : in->ptrs) {
    std::string q;
    p::AppendQuery(q, sql);
    auto [ec, n] = co_await asio::async_write(leg->conn->stream(), asio::buffer(q), kTuple);
    if (ec) {
      failed = LostConnection(*leg->conn, ec.message());
      break;
    }
    for (;;) {
      auto f = co_await ReadTypedFrame(leg->conn->stream(), leg->conn->in(), 1u << 30);
      if (!f.ok()) {
        failed = f.status();
        break;
      }
      const char type = f->type;
      if (type == p::be::kCopyInResponse) {
        if (copy_in_response.empty()) copy_in_response.assign(f->whole);
        leg->conn->in().Consume(f->whole.size());
        break;
      }
      if (type == p::be::kErrorResponse && failed.ok()) {
        auto fields = p::ParseErrorFields(f->body);
        failed = fields.ok() ? PgStatus(fields->Get('C'), fields->Get('M'), fields->Get('H'))
                             : fields.status();
      }
      const bool ready = type == p::be::kReadyForQuery;
      leg->conn->in().Consume(f->whole.size());
      if (ready) break;
    }
    if (!failed.ok()) break;
  }
  if (!failed.ok()) {
    // Shards already in COPY mode are left there: their connections are closed, not pooled.
    for (FanOutLeg* leg : in->ptrs) leg->conn->MarkBroken();
    ReleaseLegs(in->legs);
    co_return LocalError(failed, false);
  }
  client_out_.append(copy_in_response);
  copy_in_ = std::move(in);
  co_return false;
}

asio::awaitable<bool> ClientSession::FlushCopyLegs(size_t threshold) {
  for (size_t i = 0; i < copy_in_->ptrs.size(); ++i) {
    std::string& out = copy_in_->out[i];
    if (out.size() < threshold || out.empty()) continue;
    ServerConnection& conn = *copy_in_->ptrs[i]->conn;
    auto [ec, n] = co_await asio::async_write(conn.stream(), asio::buffer(out), kTuple);
    out.clear();
    if (ec) {
      conn.MarkBroken();
      if (copy_in_->error.ok()) {
        copy_in_->error = LostConnection(conn, absl::StrCat(ec.message(), " (during COPY)"));
      }
      co_return false;
    }
  }
  co_return true;
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::CopyInFrame(const p::Frame& frame) {
  CopyIn& in = *copy_in_;
  auto append = [&](std::string_view row, int shard) -> absl::Status {
    const int leg = shard >= 0 && shard < static_cast<int>(in.leg_of_shard.size())
                        ? in.leg_of_shard[shard]
                        : -1;
    if (leg < 0) return PgStatus("XX000", "COPY row routed outside the statement's shards");
    p::AppendCopyData(in.out[leg], row);
    return absl::OkStatus();
  };
  auto route_row = [&](std::string_view row, std::optional<std::string_view> key) -> absl::Status {
    if (!key.has_value()) {
      return PgStatus("23502", "null value in the shard key column of a COPY row");
    }
    auto value = routing::ParseKeyText(*key, in.router->key_type());
    if (!value.ok()) return value.status();
    auto shard = in.router->Route(*value);
    if (!shard.ok() && routing::AsDirectoryMiss(shard.status()).has_value()) {
      in.unresolved.emplace_back(std::string(row), *std::move(value));
      return absl::OkStatus();
    }
    if (!shard.ok()) return shard.status();
    return append(row, *shard);
  };
  // Rows of keys a store directory had to read: read them (one lookup per key), route the rows.
  auto resolve = [&]() -> asio::awaitable<absl::Status> {
    std::vector<std::pair<std::string, routing::KeyValue>> rows = std::move(in.unresolved);
    in.unresolved.clear();
    for (auto& [row, key] : rows) {
      absl::StatusOr<int> shard = in.router->Route(key);
      for (int lookups = 0; !shard.ok() && lookups < 4; ++lookups) {
        std::optional<routing::DirectoryMiss> miss = routing::AsDirectoryMiss(shard.status());
        if (!miss) break;
        CO_RETURN_IF_ERROR(co_await FetchDirectoryEntry(*miss));
        shard = in.router->Route(key);
      }
      if (!shard.ok()) co_return shard.status();
      CO_RETURN_IF_ERROR(append(row, *shard));
    }
    co_return absl::OkStatus();
  };
  if (frame.type == p::fe::kCopyData) {
    if (in.error.ok()) in.error = in.splitter.Feed(frame.body, route_row);
    if (in.error.ok() && !in.unresolved.empty()) in.error = co_await resolve();
    if (in.error.ok()) co_await FlushCopyLegs(256 * 1024);
    co_return false;
  }
  if (frame.type != p::fe::kCopyDone && frame.type != p::fe::kCopyFail) {
    co_return false;  // Flush/Sync during COPY: ignored, as by PostgreSQL
  }
  if (frame.type == p::fe::kCopyDone && in.error.ok()) in.error = in.splitter.Finish(route_row);
  if (in.error.ok() && !in.unresolved.empty()) in.error = co_await resolve();
  const bool done = frame.type == p::fe::kCopyDone && in.error.ok();
  if (done) co_await FlushCopyLegs(0);
  absl::Status client_error = in.error;
  if (frame.type == p::fe::kCopyFail && client_error.ok()) {
    auto message = p::ParseQuery(frame.body);  // CopyFail's body is one string, like Query's
    client_error = PgStatus("57014", absl::StrCat("COPY from stdin failed: ",
                                                  message.ok() ? Av(message->sql) : ""));
  }
  const bool ok = done && in.error.ok();
  for (size_t i = 0; i < in.ptrs.size(); ++i) {
    FanOutLeg& leg = *in.ptrs[i];
    leg.requests.clear();
    leg.requests.push_back({});
    std::string& m = leg.requests.back().messages;
    if (ok) {
      m = std::move(in.out[i]);
      p::AppendCopyDone(m);
    } else {
      p::AppendCopyFail(m, "COPY abandoned by shardgate");
    }
    leg.requests.back().forward = ok;
  }
  FanOutResult result = co_await RunFanOutQuietly(in.ptrs, config_->timeouts.query);
  absl::Status st = !client_error.ok() ? client_error : result.error;
  std::string error_message = client_error.ok() ? result.error_message : std::string();
  if (in.two_phase) {
    if (!st.ok() || result.any_leg_failed) {
      WarnIfFailed(co_await RunOnLegs(in.ptrs, "ROLLBACK"));
    } else if (absl::Status c = co_await CommitTwoPhase(in.ptrs); !c.ok()) {
      st = c;
      error_message.clear();
    }
  }
  ReleaseLegs(in.legs);
  copy_in_.reset();
  if (!st.ok()) {
    if (error_message.empty()) p::AppendError(error_message, ToPgError(st));
    client_out_.append(error_message);
  } else {
    p::AppendCommandComplete(client_out_, MergedTag(result));
  }
  p::AppendReadyForQuery(client_out_, 'I');
  co_return false;
}

char ClientSession::TxStatus() const {
  if (server_) return server_->tx_status();
  if (dist_) return dist_->failed ? 'E' : 'T';
  if (held_failed_) return 'E';
  return held_begin_.empty() ? 'I' : 'T';
}

bool ClientSession::NeedsDistributed(const routing::RoutePlan& plan) const {
  if (!InTransaction()) return false;
  using Spread = routing::RoutePlan::Spread;
  if (plan.spread == Spread::kSome || plan.spread == Spread::kAll) return true;
  // A transaction already running on one server, and a statement for another shard.
  return server_ != nullptr && held_begin_.empty() && plan.spread == Spread::kOne &&
         plan.shards.front() != attached_shard_;
}

asio::awaitable<absl::Status> ClientSession::EnterDistributed() {
  if (worker_.runtime().decision_log() == nullptr) {
    co_return PgStatus("0A000", "a transaction on several shards needs two-phase commit, "
                                "which is off",
                       "Set cross_shard.two_phase: true, or keep the transaction on one shard.");
  }
  auto dist = std::make_unique<Distributed>();
  dist->begin = held_begin_.empty() ? std::string("BEGIN") : held_begin_;
  if (server_) {
    if (attached_replica_) {
      co_return PgStatus("0A000", "a read-only transaction on a replica cannot span shards",
                         "Use BEGIN (read-write) for transactions across shards.");
    }
    // The transaction's server becomes its first leg once everything sent to it is answered.
    if (!co_await FlushServer()) co_return PgStatus("08006", "lost the transaction's server");
    while (server_ && (!expected_.empty() || server_writes_ > 0) && pumps_running_ > 0 &&
           !closing_) {
      co_await progress_.async_wait(kTuple);
    }
    co_await StopPump();
    if (!server_ || closing_) co_return PgStatus("08006", "lost the transaction's server");
    auto leg = std::make_unique<FanOutLeg>();
    leg->shard = attached_shard_;
    leg->pool = pool_;
    dist->failed = server_->tx_status() == 'E';
    leg->conn = TakeServer();
    dist->legs.push_back(std::move(leg));
  }
  held_begin_.clear();
  dist_ = std::move(dist);
  co_return absl::OkStatus();
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::DistributedStatement(
    std::string_view sql, const routing::QueryInfo& info, routing::RoutePlan plan,
    bool reference) {
  PinToTransactionShard(plan);
  co_return co_await FanOutQuery(sql, info, plan, reference);
}

void ClientSession::PinToTransactionShard(routing::RoutePlan& plan) const {
  if (plan.spread != routing::RoutePlan::Spread::kAnyOne || plan.shards.empty()) return;
  // Any one will do: one the transaction already holds, if it can.
  int pick = plan.shards.front();
  for (const auto& leg : dist_->legs) {
    if (std::find(plan.shards.begin(), plan.shards.end(), leg->shard) != plan.shards.end()) {
      pick = leg->shard;
      break;
    }
  }
  plan.shards = {pick};
  plan.spread = routing::RoutePlan::Spread::kOne;
}

asio::awaitable<void> ClientSession::EndDistributed(bool commit) {
  std::vector<FanOutLeg*> ptrs;
  for (auto& leg : dist_->legs) ptrs.push_back(leg.get());
  absl::Status st;
  const bool committing = commit && !dist_->failed;
  if (!committing) {
    WarnIfFailed(co_await RunOnLegs(ptrs, "ROLLBACK"));
  } else if (ptrs.size() == 1) {
    st = co_await RunOnLegs(ptrs, "COMMIT");
  } else if (!ptrs.empty()) {
    st = co_await CommitTwoPhase(ptrs);
  }
  ReleaseLegs(dist_->legs);
  dist_.reset();
  if (!st.ok()) {
    p::AppendError(client_out_, ToPgError(st));
  } else {
    // COMMIT of a failed transaction rolls back, and says so, as PostgreSQL does.
    p::AppendCommandComplete(client_out_, committing ? "COMMIT" : "ROLLBACK");
  }
}

}  // namespace shardgate::proxy
