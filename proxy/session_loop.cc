// ClientSession, second half: the forwarding loop, server attach/release for transaction
// pooling, prepared-statement renaming, session-setting replay and the server pump.
#include <ctime>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "routing/prepared_reads.h"
#include "proxy/cancel_registry.h"
#include "proxy/client_session.h"
#include "proxy/pool.h"
#include "proxy/rate_limit.h"
#include "proxy/strings.h"
#include "proxy/worker.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {

namespace p = protocol;

namespace {

// How long a client waits for a free server connection before 53300.
constexpr std::chrono::milliseconds kPoolWait{30000};

// kInjectParseComplete .. kInjectRaw: answered by the proxy, in order.
bool IsInject(uint8_t kind) { return kind >= 9 && kind <= 13; }

}  // namespace

// The server-side name of a client's prepared statement: the same SQL and parameter types give
// the same name on every server, so a statement prepared once is reused by every client.
void AppendServerStatementName(std::string& out, std::string_view sql,
                               std::span<const uint32_t> param_types) {
  size_t h = absl::HashOf(Av(sql), absl::string_view(
                                       reinterpret_cast<const char*>(param_types.data()),
                                       param_types.size() * sizeof(uint32_t)));
  absl::StrAppend(&out, "sg_", absl::Hex(h, absl::kZeroPad16));
}

std::string ServerStatementNameFor(const p::Parse& parse) {
  std::string name;
  AppendServerStatementName(name, parse.sql, parse.param_types);
  return name;
}

bool ClientSession::SameParse(const Prepared& prepared, const p::Parse& parse) {
  return prepared.sql == parse.sql &&
         std::equal(prepared.param_types.begin(), prepared.param_types.end(),
                    parse.param_types.begin(), parse.param_types.end());
}

namespace {

// A client's Bind or Describe ('S') of a statement it names, for the server: `head` (the
// Bind's portal) and `rest` (what follows the statement's name) as the client sent them.
void AppendRenamed(std::string& out, char type, std::string_view head,
                   std::string_view server_name, std::string_view rest) {
  p::MessageWriter w(out);
  w.Begin(type);
  if (type == p::fe::kBind) {
    w.CString(head);
  } else {
    w.Int8('S');
  }
  w.CString(server_name).Bytes(rest);
  w.End();
}

// The first two NUL-terminated strings of a Bind/Describe/Close-like body.
bool SplitCString(std::string_view body, std::string_view& first, std::string_view& rest) {
  size_t nul = body.find('\0');
  if (nul == std::string_view::npos) return false;
  first = body.substr(0, nul);
  rest = body.substr(nul + 1);
  return true;
}

std::string_view FirstWord(std::string_view& s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  size_t end = 0;
  while (end < s.size() && !IsSpace(s[end]) &&
         s[end] != '=' && s[end] != ';') {
    ++end;
  }
  std::string_view word = s.substr(0, end);
  s.remove_prefix(end);
  return word;
}

}  // namespace

void ClientSession::Push(Expect kind, std::string name) {
  Item& item = expected_.emplace_back();  // filled in place: an Item is not small
  item.kind = kind;
  if (!name.empty()) item.name = std::move(name);
  if (kind == Expect::kQuery || kind == Expect::kSync) item.at = std::chrono::steady_clock::now();
  if (IsInject(static_cast<uint8_t>(kind))) {
    DrainInjected();
  } else if (fill_ && fill_->open && kind != Expect::kSwallowQuery &&
             kind != Expect::kSwallowParse && kind != Expect::kSwallowClose) {
    // The items of a cache fill's request: its answer is captured as it is forwarded (what the
    // proxy adds, a settings replay or a Parse, is not part of it). Anything else in the
    // request (a second Bind or Execute, a Parse) makes it not cacheable.
    CacheFill& fill = *fill_;
    if (!fill.extended) {
      item.fill = kind == Expect::kQuery;
      fill.failed |= !item.fill;
      fill.open = !item.fill;
    } else if (kind == Expect::kDescribe || kind == Expect::kSync ||
               (kind == Expect::kExecute && ++fill.executes == 1)) {
      item.fill = true;
      fill.open = kind != Expect::kSync;
    } else if (kind != Expect::kBind || ++fill.binds > 1) {
      fill.failed = true;
    }
  }
}

void ClientSession::CountError(std::string_view sqlstate) {
  auto& errors = worker_.errors();
  auto it = errors.find(sqlstate);
  if (it == errors.end()) it = errors.emplace(std::string(sqlstate), 0).first;
  ++it->second;
}

void ClientSession::DrainInjected() {
  while (!expected_.empty() && IsInject(static_cast<uint8_t>(expected_.front().kind))) {
    const Item& item = expected_.front();
    switch (item.kind) {
      case Expect::kInjectParseComplete: p::AppendParseComplete(client_out_); break;
      case Expect::kInjectCloseComplete: p::AppendCloseComplete(client_out_); break;
      case Expect::kInjectTag: p::AppendCommandComplete(client_out_, item.name); break;
      case Expect::kInjectReady:
        p::AppendReadyForQuery(client_out_, TxStatus());
        break;
      case Expect::kInjectRaw: client_out_.append(item.name); break;
      default: break;
    }
    expected_.pop_front();
  }
}

bool ClientSession::NeedsServer(char type) const {
  switch (type) {
    case p::fe::kFlush:
    case p::fe::kCopyData:
    case p::fe::kCopyDone:
    case p::fe::kCopyFail:
      return false;  // meaningful only while a server is attached
    default:
      return !attach_failed_;
  }
}

bool ClientSession::CanRelease() const {
  return pool_mode_ == conf::PoolMode::kTransaction && server_ && expected_.empty() &&
         !skip_until_sync_ && server_writes_ == 0 && server_out_.empty() && !detaching_ &&
         server_->tx_status() == 'I';
}

asio::awaitable<void> ClientSession::WaitWhileSuspended() {
  // PAUSE <db>: a transaction that has no server yet waits for RESUME (polled: pauses are rare
  // and short, and a waiting client costs a timer). A distributed transaction adding a shard
  // already holds servers: it goes on, as PAUSE waits for it to end.
  if (dist_) co_return;
  while (gate_ != nullptr && gate_->Suspended() && !closing_ &&
         !worker_.runtime().shutting_down.load()) {
    asio::steady_timer tick(worker_.io(), std::chrono::milliseconds(5));
    co_await tick.async_wait(kTuple);
  }
}

asio::awaitable<absl::Status> ClientSession::Attach(Pool& pool) {
  if (MaySuspend()) co_await WaitWhileSuspended();
  if (follow_read_) {
    follow_read_ = false;
    if (ServerConnection* lane = MayFollow() ? SendBehind(pool) : nullptr) {
      // Waits here, not in a coroutine of its own: a waiting client's frames are what Asio's
      // recycling cache must hold (AllocPipelineTest).
      Follower follower(co_await asio::this_coro::executor);
      Pool::Follow(*lane, follower);
      co_await follower.timer.async_wait(kTuple);
      if (follower.conn) {
        Followed(pool, std::move(follower.conn));
        co_return absl::OkStatus();
      }
      // Lost before the answers ahead of this read came in: PostgreSQL had stopped (or was
      // stopped by a cancel) before it, so it is sent anew on another connection. A read
      // only: running it a second time changes nothing.
      if (stats_) ++stats_->pipeline_reruns;
    }
  }
  auto conn = co_await pool.Acquire(kPoolWait);
  if (!conn.ok()) co_return conn.status();
  Attached(pool, *std::move(conn));
  co_return absl::OkStatus();
}

bool ClientSession::AttachNow(Pool& pool) {
  if (MaySuspend()) return false;
  std::unique_ptr<ServerConnection> conn = pool.TryAcquire();
  if (!conn) return false;
  Attached(pool, std::move(conn));
  return true;
}

void ClientSession::Attached(Pool& pool, std::unique_ptr<ServerConnection> conn, bool replay) {
  pool_ = &pool;
  server_ = std::move(conn);
  skip_until_sync_ = false;
  if (cancel_slot_) {
    cancel_slot_->Set(server_->target().host, server_->target().port, server_->pid(),
                      server_->secret());
  }
  if (replay) AppendReplay(*server_);
  StartPump();
}

bool ClientSession::MayFollow() const {
  // A read on its own: no transaction, nothing else owed or to be sent first, no NOTICE of
  // the proxy's to go before its answer.
  return db_->pipeline_reads > 0 && pool_mode_ == conf::PoolMode::kTransaction && !server_ &&
         !dist_ && expected_.empty() && server_out_.empty() && !skip_until_sync_ &&
         held_begin_.empty() && !explain_ && !fill_pending_ &&
         (extended_read_.armed || (prepared_read_.armed && !prepared_read_.name.empty()));
}

ServerConnection* ClientSession::SendBehind(Pool& pool) {
  // (The extended batch is armed for the frame at hand only: when it is, it is the read.)
  const bool extended = extended_read_.armed;
  const std::string& name = extended ? extended_read_.name : prepared_read_.name;
  const std::string& run = extended ? extended_read_.run : prepared_read_.run;
  ServerConnection* lane = pool.LaneFor(db_->pipeline_reads, [&](ServerConnection& conn) {
    // Nothing to replay first (the same settings), and the statement is there already.
    return !conn.tls() && conn.settings() == settings_ && conn.UsePrepared(name);
  });
  if (lane == nullptr) return nullptr;
  boost::system::error_code ec;
  const size_t sent = TrySend(lane->stream(), asio::buffer(run), ec);
  if (sent != run.size() || ec) {
    // Part of a message cannot be taken back: the connection carries nothing after it (the
    // reads before it still get their answers; it is closed after the last of them).
    if (sent > 0 || ec) lane->MarkBroken();
    return nullptr;
  }
  if (stats_) ++stats_->pipelined_reads;
  return lane;
}

void ClientSession::Followed(Pool& pool, std::unique_ptr<ServerConnection> conn) {
  // (A routed database's extended reads are the client's statements, not prepare_reads'.)
  if (stats_ && (!extended_read_.armed || !topology_)) ++stats_->prepared_reads;
  if (!extended_read_.armed) {
    prepared_read_.queued = true;
    ExpectPreparedRun(prepared_read_.seq);
  } else {
    // The client's batch, answered as sent: its Parse's ParseComplete (the statement is there
    // already), then the server's answers to the rest.
    extended_read_.queued = true;
    if (extended_read_.from_parse) Push(Expect::kInjectParseComplete);
    Push(Expect::kBind);
    expected_.back().renamed = true;  // (not run again on 0A000/26000: reads follow it)
    if (extended_read_.describe) Push(Expect::kDescribe);
    Push(Expect::kExecute);
    Push(Expect::kSync);
  }
  Attached(pool, std::move(conn), /*replay=*/false);  // the pump reads what is there first
  ArmQueryTimer();
}

asio::awaitable<void> ClientSession::LeaveLane() {
  if (!server_->has_followers()) {
    Pool::CloseLane(*server_);
    co_return;
  }
  // Reads of other clients were sent after this session's: it sends nothing more on the
  // connection, which goes to them once its own answers are in.
  co_await DrainAndRelease();
  if (server_) {
    // Not answered (the pump ended): what follows would come after the others' reads.
    server_->MarkLost();
    pool_->Release(TakeServer());
    expected_.clear();
  }
}

void ClientSession::AppendReplay(ServerConnection& conn) {
  std::string sql = ReplaySql(conn);
  if (sql.empty()) return;
  p::AppendQuery(server_out_, sql);
  Push(Expect::kSwallowQuery);
}

bool ClientSession::FlushServerNow() {
  if (server_out_.empty() || !server_) return true;
  if (server_writes_ > 0) return false;
  boost::system::error_code ec;
  const size_t sent = TrySend(server_->stream(), asio::buffer(server_out_), ec);
  if (ec || sent < server_out_.size()) {
    server_out_.erase(0, sent);  // FlushServer sends the rest, or reports the error
    return false;
  }
  server_out_.clear();
  if (server_out_.capacity() > (1u << 20)) std::string().swap(server_out_);
  ArmQueryTimer();
  return true;
}

asio::awaitable<bool> ClientSession::FlushServer() {
  if (server_out_.empty() || !server_) co_return true;
  ServerConnection* conn = server_.get();
  ++server_writes_;
  boost::system::error_code ec;
  const size_t sent = TrySend(conn->stream(), asio::buffer(server_out_), ec);
  if (!ec && sent < server_out_.size()) {
    auto [wec, n] = co_await asio::async_write(conn->stream(), asio::buffer(server_out_) + sent,
                                               kTuple);
    ec = wec;
  }
  --server_writes_;
  server_out_.clear();
  if (server_out_.capacity() > (1u << 20)) std::string().swap(server_out_);
  if (!ec) ArmQueryTimer();
  if (ec && server_.get() == conn) {
    ServerLost(LostConnection(*conn, ec.message()));
    co_return false;
  }
  co_return !ec;
}

asio::awaitable<void> ClientSession::StopPump() {
  if (pumps_running_ == 0) co_return;
  detaching_ = true;
  boost::system::error_code ignored;
  if (server_) server_->socket().cancel(ignored);
  while (pumps_running_ > 0) co_await pump_done_.async_wait(kTuple);
  detaching_ = false;
}

asio::awaitable<void> ClientSession::ReleaseIfIdle() {
  if (!CanRelease()) co_return;
  co_await StopPump();
  if (CanRelease()) ReleaseServer();
}

std::unique_ptr<ServerConnection> ClientSession::TakeServer() {
  if (topology_ && attached_replica_index_ >= 0 && attached_shard_ >= 0) {
    topology_->Detached(attached_shard_, attached_replica_index_);
  }
  attached_replica_index_ = -1;
  attached_shard_ = -1;
  if (query_timer_armed_) {
    query_timer_.cancel();
    query_timer_armed_ = false;
  }
  if (cancel_slot_) cancel_slot_->Clear();
  fill_.reset();  // a fill's answer comes from this server or not at all
  return std::move(server_);
}

void ClientSession::ReleaseServer() {
  if (!server_) return;
  pool_->Release(TakeServer());
  if (shutdown_requested_ && !closing_) {
    p::AppendError(client_out_, PgError{"FATAL", "57P01",
                                        "terminating connection due to administrator command",
                                        "", ""});
    closing_ = true;
  }
}

void ClientSession::ServerLost(const absl::Status& why) {
  if (!server_) return;
  spdlog::warn("client {}@{}: {}", user_name_, db_name_, std::string(why.message()));
  server_->MarkLost();
  pool_->Release(TakeServer());
  expected_.clear();
  if (!closing_) p::AppendError(client_out_, ToPgError(why, "FATAL"));
  closing_ = true;
}

void ClientSession::StartPump() {
  // The first read starts at once, before the client loop has queued anything for the server:
  // no CanRelease check before it (the server would look idle). A server that gets nothing is
  // released by the client loop (ReleaseIfIdle), which cancels this read.
  ++pumps_running_;
  ServerConnection* conn = server_.get();
  const uint64_t generation = ++attach_generation_;
  if (!conn->in().Empty()) {
    // Handed over by the session whose reads went before this one's (read pipelining): what
    // it read past its own answers is this session's, and comes first.
    asio::post(worker_.io(), [this, self = shared_from_this(), conn, generation] {
      OnPumpRead(conn, generation, {}, 0);
    });
    return;
  }
  PumpRead(conn, generation, 0);
}

void ClientSession::PumpRead(ServerConnection* conn, uint64_t generation, size_t need) {
  conn->stream().async_read_some(
      conn->in().Prepare(need),
      [this, self = shared_from_this(), conn, generation](const boost::system::error_code& ec,
                                                           size_t n) {
        OnPumpRead(conn, generation, ec, n);
      });
}

void ClientSession::OnPumpRead(ServerConnection* conn, uint64_t generation,
                               const boost::system::error_code& ec, size_t n) {
  size_t need = 0;
  switch (AfterServerRead(*conn, generation, ec, n, need)) {
    case PumpStep::kRead:
      if (PumpDone(conn, generation)) {
        EndPump();
      } else {
        PumpRead(conn, generation, need);
      }
      return;
    case PumpStep::kFlushClient:
      // The client is slow to take the answer: the rest of this attachment runs as a
      // coroutine, which can wait for it.
      asio::co_spawn(worker_.io(), Pump(conn, generation, need),
                     [self = shared_from_this()](std::exception_ptr e) {
                       if (e) spdlog::error("server pump ended with an exception");
                     });
      return;
    case PumpStep::kEnd:
      EndPump();
      return;
  }
}

bool ClientSession::PumpDone(const ServerConnection* conn, uint64_t generation) {
  // `generation` tells this attachment from a later one that got the same connection back
  // from the pool; a server lost meanwhile is no longer server_.
  if (detaching_ || generation != attach_generation_ || server_.get() != conn) return true;
  if (CanRelease()) {
    ReleaseServer();
    return true;
  }
  return false;
}

ClientSession::PumpStep ClientSession::AfterServerRead(ServerConnection& conn,
                                                       uint64_t generation,
                                                       const boost::system::error_code& ec,
                                                       size_t n, size_t& need) {
  // Taken away, or lost by the client loop (which may have closed and freed `conn`).
  if (detaching_ || generation != attach_generation_ || server_.get() != &conn) {
    return PumpStep::kEnd;
  }
  if (ec && server_hung_) {
    server_hung_ = false;
    const std::string why = absl::StrCat(
        "no answer for ", (config_->timeouts.query + db_->health_check_timeout).count(),
        " ms, not even to the cancel after timeouts.query");
    if (topology_ && attached_shard_ >= 0) {
      if (!attached_replica_) {
        topology_->PrimaryFailed(attached_shard_, why);
      } else if (attached_replica_index_ >= 0) {
        topology_->SetReplicaHealthy(attached_shard_, attached_replica_index_, false);
      }
    }
    ServerLost(PgStatus("08006", absl::StrCat("server of shard \"", conn.target().shard,
                                              "\" stopped answering (", why,
                                              "); the connection to it was closed")));
    return PumpStep::kEnd;
  }
  if (ec) {
    ServerLost(PgStatus("08006", absl::StrCat("server connection to shard \"",
                                              conn.target().shard, "\" was lost: ",
                                              ec == asio::error::eof
                                                  ? "server closed the connection"
                                                  : ec.message())));
    return PumpStep::kEnd;
  }
  ++server_reads_;
  conn.in().Commit(n);
  need = 0;
  const uint32_t max_size = config_->limits.max_message_size;
  for (;;) {
    // What follows this session's answers belongs to the sessions whose reads followed.
    if (expected_.empty() && conn.has_followers()) break;
    p::FrameResult r = p::ReadFrame(conn.in().Data(), max_size);
    if (r.status == p::FrameStatus::kNeedMore) {
      need = r.need;
      break;
    }
    if (r.status == p::FrameStatus::kError) {
      ServerLost(PgStatus("08P01", absl::StrCat("shard \"", conn.target().shard,
                                                "\" sent a malformed message")));
      break;
    }
    ProcessServerFrame(conn, r.frame);
    conn.in().Consume(r.frame.whole.size());
  }
  if (generation != attach_generation_ || !server_) return PumpStep::kEnd;  // lost
  ArmQueryTimer();  // the answer is progressing: the timeout counts from here
  conn.in().ShrinkIfIdle();
  progress_.cancel();  // wake a client loop waiting for this server to become idle
  progress_.expires_at(asio::steady_timer::time_point::max());
  if (!client_out_.empty() && !FlushClientNow()) return PumpStep::kFlushClient;
  return PumpStep::kRead;
}

asio::awaitable<void> ClientSession::Pump(ServerConnection* conn, uint64_t generation,
                                          size_t need) {
  // Entered after a read whose answer did not all go to the client at once: that comes first.
  bool client_gone = !co_await FlushClient();
  while (!client_gone && !PumpDone(conn, generation)) {
    auto [ec, n] = co_await conn->stream().async_read_some(conn->in().Prepare(need), kTuple);
    const PumpStep step = AfterServerRead(*conn, generation, ec, n, need);
    if (step == PumpStep::kEnd) break;
    if (step == PumpStep::kFlushClient) client_gone = !co_await FlushClient();
  }
  if (client_gone) {
    // The client is gone: wake the client loop (blocked reading) so that it cleans up.
    closing_ = true;
    stream_.Close();
  }
  if (!client_out_.empty() && !FlushClientNow()) co_await FlushClient();
  PumpEnded();
}

void ClientSession::EndPump() {
  if (!client_out_.empty() && !FlushClientNow()) {
    asio::co_spawn(
        worker_.io(),
        [](std::shared_ptr<ClientSession> self) -> asio::awaitable<void> {
          co_await self->FlushClient();
          self->PumpEnded();
        }(shared_from_this()),
        [](std::exception_ptr e) {
          if (e) spdlog::error("server pump ended with an exception");
        });
    return;
  }
  PumpEnded();
}

void ClientSession::PumpEnded() {
  if (closing_ && !server_) stream_.Close();
  --pumps_running_;
  progress_.cancel();
  progress_.expires_at(asio::steady_timer::time_point::max());
  pump_done_.cancel();
  pump_done_.expires_at(asio::steady_timer::time_point::max());
}

bool ClientSession::AnswerNextId(const protocol::Frame& query) {
  // A cheap test first: most statements do not mention the function at all.
  if (query.body.find("next_id") == std::string_view::npos) return false;
  auto q = p::ParseQuery(query.body);
  if (!q.ok()) return false;
  std::optional<std::string> column = MatchNextIdCall(q->sql);
  if (!column) return false;
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const int64_t id = worker_.runtime().ids.Next(
      config_->node_id, std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  std::string out;
  const p::FieldDescription field{.name = *column, .type_oid = 20, .type_size = 8,
                                  .type_modifier = -1};
  p::AppendRowDescription(out, std::span(&field, 1));
  const std::string text = absl::StrCat(id);
  const std::optional<std::string_view> value = text;
  p::AppendDataRow(out, std::span(&value, 1));
  p::AppendCommandComplete(out, "SELECT 1");
  LocalAnswer(std::move(out));
  Push(Expect::kInjectReady);
  return true;
}

bool ClientSession::AnswerNextIdExtended(const protocol::Frame& frame) {
  // Messages after an error the proxy raised are dropped up to Sync: by RouteFrame for a
  // sharded database, here for a single-shard one (its server never saw the batch's start).
  if (drop_until_sync_ && frame.type != p::fe::kSync) return !topology_;
  switch (frame.type) {
    case p::fe::kParse: {
      if (next_id_statements_.empty() && frame.body.find("next_id") == std::string_view::npos) {
        return false;
      }
      auto parse = p::ParseParse(frame.body);
      if (!parse.ok()) return false;
      std::optional<std::string> column;
      if (parse->param_types.empty()) column = MatchNextIdCall(parse->sql);
      if (!column) {
        next_id_statements_.erase(Av(parse->name));  // the name now means another statement
        return false;
      }
      next_id_statements_[std::string(parse->name)] = *std::move(column);
      Push(Expect::kInjectParseComplete);
      break;
    }
    case p::fe::kBind: {
      if (next_id_statements_.empty() && !next_id_portal_) return false;
      auto bind = p::ParseBind(frame.body);
      if (!bind.ok()) return false;
      auto it = next_id_statements_.find(Av(bind->statement));
      if (it == next_id_statements_.end()) {
        if (next_id_portal_ && next_id_portal_->name == bind->portal) next_id_portal_.reset();
        return false;
      }
      if (!bind->params.empty() || bind->result_formats.size() > 1) {
        next_id_batch_ = true;
        LocalError(PgStatus("08P01", !bind->params.empty()
                                         ? absl::StrCat("bind message supplies ",
                                                        bind->params.size(),
                                                        " parameters, but prepared statement \"",
                                                        Av(bind->statement), "\" requires 0")
                                         : absl::StrCat("bind message has ",
                                                        bind->result_formats.size(),
                                                        " result formats but query has 1 "
                                                        "columns")),
                   true);
        return true;
      }
      next_id_portal_ = NextIdPortal{.name = std::string(bind->portal),
                                     .column = it->second,
                                     .binary = !bind->result_formats.empty() &&
                                               bind->result_formats[0] == 1};
      std::string out;
      p::AppendBindComplete(out);
      LocalAnswer(std::move(out));
      break;
    }
    case p::fe::kDescribe: {
      if (next_id_statements_.empty() && !next_id_portal_) return false;
      auto d = p::ParseDescribe(frame.body);
      if (!d.ok()) return false;
      p::FieldDescription field{.type_oid = 20, .type_size = 8, .type_modifier = -1};
      std::string out;
      if (d->kind == 'S') {
        auto it = next_id_statements_.find(Av(d->name));
        if (it == next_id_statements_.end()) return false;
        p::MessageWriter(out).Begin(p::be::kParameterDescription).Int16(0).End();
        field.name = it->second;
      } else {
        if (!next_id_portal_ || next_id_portal_->name != d->name) return false;
        field.name = next_id_portal_->column;
        field.format = next_id_portal_->binary ? 1 : 0;
      }
      p::AppendRowDescription(out, std::span(&field, 1));
      LocalAnswer(std::move(out));
      break;
    }
    case p::fe::kExecute: {
      if (!next_id_portal_) return false;
      auto e = p::ParseExecute(frame.body);
      if (!e.ok() || e->portal != next_id_portal_->name) return false;
      std::string out;
      const bool row = !next_id_portal_->executed;
      if (row) {
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        const int64_t id = worker_.runtime().ids.Next(
            config_->node_id, std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
        std::string value;
        if (next_id_portal_->binary) {
          for (int shift = 56; shift >= 0; shift -= 8) {
            value.push_back(static_cast<char>((static_cast<uint64_t>(id) >> shift) & 0xff));
          }
        } else {
          value = absl::StrCat(id);
        }
        const std::optional<std::string_view> cell = value;
        p::AppendDataRow(out, std::span(&cell, 1));
        next_id_portal_->executed = true;
      }
      p::AppendCommandComplete(out, row ? "SELECT 1" : "SELECT 0");
      LocalAnswer(std::move(out));
      break;
    }
    case p::fe::kClose: {
      if (next_id_statements_.empty() && !next_id_portal_) return false;
      auto c = p::ParseClose(frame.body);
      if (!c.ok()) return false;
      if (c->kind == 'S') {
        if (next_id_statements_.erase(Av(c->name)) == 0) return false;
      } else {
        if (!next_id_portal_ || next_id_portal_->name != c->name) return false;
        next_id_portal_.reset();
      }
      Push(Expect::kInjectCloseComplete);
      break;
    }
    case p::fe::kSync:
      if (!next_id_batch_) return false;
      next_id_batch_ = false;
      // Portals end with the transaction; outside one that is now (named ones included).
      if (next_id_portal_ && (next_id_portal_->name.empty() || !InTransaction())) {
        next_id_portal_.reset();
      }
      if (topology_) return false;  // RouteFrame answers the Sync
      drop_until_sync_ = false;
      if (server_) return false;  // the server answers it, after what it still owes
      Push(Expect::kInjectReady);
      return true;
    default:
      return false;
  }
  next_id_batch_ = true;
  return true;
}

void ClientSession::ArmQueryTimer() {
  // timeouts.query: a request that gets no answer for that long is cancelled on the server,
  // which then answers 57014 like for a client's own cancel. A server that does not answer
  // the cancel either is hung and given up (GiveUpIfHung).
  const std::chrono::milliseconds timeout = config_->timeouts.query;
  if (timeout.count() <= 0) return;
  if (expected_.empty() || !server_) {
    if (query_timer_armed_) query_timer_.cancel();
    query_timer_armed_ = false;
    return;
  }
  query_timer_armed_ = true;
  query_timer_.expires_after(timeout);
  query_timer_.async_wait([this, self = shared_from_this(), generation = attach_generation_](
                              const boost::system::error_code& ec) {
    if (ec) return;  // re-armed or cancelled
    query_timer_armed_ = false;
    if (generation != attach_generation_ || !server_ || expected_.empty()) return;
    spdlog::info("client {}@{}: query timeout, cancelling", user_name_, db_name_);
    const BackendTarget& t = server_->target();
    asio::co_spawn(worker_.io(), SendCancel(t.host, t.port, server_->pid(), server_->secret()),
                   asio::detached);
    asio::co_spawn(worker_.io(), GiveUpIfHung(generation, server_reads_),
                   [self](std::exception_ptr) {});
  });
}

asio::awaitable<void> ClientSession::GiveUpIfHung(uint64_t generation, uint64_t reads) {
  asio::steady_timer timer(worker_.io(), db_->health_check_timeout);
  co_await timer.async_wait(kTuple);
  // Anything read since, or another attachment: the server is alive.
  if (generation != attach_generation_ || !server_ || server_reads_ != reads) co_return;
  spdlog::warn("client {}@{}: shard \"{}\" did not answer the cancel either, giving it up",
               user_name_, db_name_, server_->target().shard);
  server_hung_ = true;
  boost::system::error_code ignored;
  server_->socket().cancel(ignored);  // wakes the pump
}

void ClientSession::ProcessServerFrame(ServerConnection& conn, const protocol::Frame& frame) {
  const char type = frame.type;
  auto forward = [&] { client_out_.append(frame.whole); };
  if (type == p::be::kParameterStatus) {
    if (auto ps = p::ParseParameterStatus(frame.body); ps.ok()) {
      conn.parameters()[std::string(ps->name)] = std::string(ps->value);
    }
  }
  if (expected_.empty()) {
    forward();  // asynchronous: NotificationResponse, NoticeResponse, ParameterStatus
    return;
  }
  Item& head = expected_.front();
  if (head.fill && fill_) CaptureForCache(head, frame);
  const bool swallow_all = head.kind == Expect::kSwallowQuery || head.kind == Expect::kRaise;
  switch (type) {
    case p::be::kErrorResponse: {
      if (head.kind == Expect::kRaise) {
        forward();
        break;
      }
      if (swallow_all && login_check_pending_) {
        // The login's own startup settings (options=-c name=value, DateStyle...) were refused:
        // PostgreSQL fails such a login with FATAL and the same SQLSTATE (22023, 42704...), so
        // does the proxy, in place of the ReadyForQuery the client waits for.
        login_check_pending_ = false;
        const absl::Status refused = p::ErrorResponseStatus(frame.body);
        p::AppendError(client_out_, ToPgError(refused, "FATAL"));
        CountError(SqlState(refused));
        closing_ = true;
        login_failed_ = true;
        conn.MarkBroken();
        break;
      }
      if (swallow_all) {
        spdlog::warn("replaying session settings failed on shard \"{}\"; the server will be closed",
                     conn.target().shard);
        conn.MarkBroken();
        break;
      }
      if (auto fields = p::ParseErrorFields(frame.body); fields.ok()) {
        const std::string_view state = fields->SqlState();
        if (head.kind == Expect::kSwallowBind && (state == "0A000" || state == "26000")) {
          if (RetryPreparedRead(conn, head)) return;
          // Not run again: the error goes to the client, and the connection, closed at its
          // release, takes the stale statement with it.
          conn.MarkBroken();
        } else if (head.renamed && (state == "26000" || state == "0A000")) {
          // A client's statement run under its sg_ name that the server no longer runs: gone
          // (26000, a client's DEALLOCATE of an sg_ name), or prepared before an ALTER that
          // changed its result type (0A000 "cached plan must not change result type", which
          // the server would repeat at every Bind of it). Its batch is run again after the
          // statement is prepared anew where nothing is lost by that; else the error goes to
          // the client and the connection, closed at its release, takes the stale statement
          // with it, so that the next Bind prepares it anew.
          if (RetryRenamedBatch(conn, head)) return;
          conn.MarkBroken();
        }
        CountError(fields->SqlState());
      }
      forward();
      if (head.kind == Expect::kQuery) break;  // ReadyForQuery ends it
      // Extended protocol: the server now discards everything up to Sync. What the proxy noted
      // of the failed and discarded Parses and Closes is undone, latest first (one batch may
      // close a statement and prepare it again): a Parse's statement is not there, a Close's
      // still is.
      size_t skipped = 0;
      while (skipped < expected_.size() && expected_.at(skipped).kind != Expect::kSync) ++skipped;
      for (size_t i = skipped; i-- > 0;) {
        const Item& item = expected_.at(i);
        if (item.kind == Expect::kParse || item.kind == Expect::kSwallowParse) {
          conn.ForgetPrepared(item.name);
        } else if (item.kind == Expect::kSwallowClose && !item.name.empty()) {
          conn.AddPrepared(item.name, /*oldest=*/true);
        }
      }
      if (skipped == expected_.size()) skip_until_sync_ = true;
      for (; skipped > 0; --skipped) expected_.pop_front();
      return;  // what was skipped must not be injected
    }
    case p::be::kReadyForQuery: {
      const char status = frame.body.empty() ? 'I' : frame.body[0];
      conn.set_tx_status(status);
      if (stats_ && (head.kind == Expect::kQuery || head.kind == Expect::kSync) &&
          head.at != std::chrono::steady_clock::time_point{}) {
        stats_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - head.at)
                            .count());
      }
      if (head.kind == Expect::kRetrySync) {
        expected_.pop_front();  // the failed read's end: its retry follows
        break;
      }
      if (!swallow_all) forward();
      if (login_check_pending_ && head.kind == Expect::kSwallowQuery) {
        login_check_pending_ = false;
        if (!conn.broken() && pool_ != nullptr) pool_->NoteLogin(startup_key_, conn.parameters());
      }
      expected_.pop_front();
      if (login_failed_) expected_.clear();  // no ReadyForQuery after the FATAL
      AfterReadyForQuery(conn, status);
      if (status == 'I') {
        LeaveWriteGate();
        EndCacheWrites(false);
      }
      break;
    }
    case p::be::kCommandComplete: {
      std::string_view tag = frame.body.empty() ? "" : frame.body.substr(0, frame.body.size() - 1);
      last_tag_.assign(tag);
      if (tag == "DISCARD ALL") {
        conn.ClearPrepared();
        conn.settings().clear();
        prepared_.clear();
        next_id_statements_.clear();
        settings_ = startup_settings_;
        pending_settings_.clear();
      } else if (tag == "DEALLOCATE ALL") {
        conn.ClearPrepared();
        prepared_.clear();
      } else if ((tag == "SET" || tag == "RESET") && head.kind == Expect::kQuery &&
                 !head.name.empty()) {
        if (head.name == "\x01") {
          pending_reset_all_ = true;
          pending_settings_.clear();
        } else {
          const size_t nul = head.name.find('\0');
          pending_settings_[head.name.substr(0, nul)] =
              nul == std::string::npos ? "" : head.name.substr(nul + 1);
        }
      }
      if (!swallow_all) forward();
      if (head.kind == Expect::kExecute) expected_.pop_front();
      break;
    }
    case p::be::kEmptyQuery:
    case p::be::kPortalSuspended:
      forward();
      if (head.kind == Expect::kExecute) expected_.pop_front();
      break;
    case p::be::kParseComplete:
      if (head.kind != Expect::kSwallowParse) forward();
      if (head.kind == Expect::kParse || head.kind == Expect::kSwallowParse) expected_.pop_front();
      break;
    case p::be::kBindComplete:
      if (head.kind != Expect::kSwallowBind) forward();
      if (head.kind == Expect::kBind || head.kind == Expect::kSwallowBind) expected_.pop_front();
      break;
    case p::be::kCloseComplete:
      if (head.kind != Expect::kSwallowClose) forward();
      if (head.kind == Expect::kClose || head.kind == Expect::kSwallowClose) expected_.pop_front();
      break;
    case p::be::kRowDescription:
    case p::be::kNoData:
      if (!swallow_all) forward();
      if (head.kind == Expect::kDescribe) expected_.pop_front();
      break;
    default:
      // ParameterStatus goes to the client even from a replay the client did not ask for: the
      // replay moved the server to the client's settings, and the client's view of reported
      // settings (DateStyle, TimeZone, ...) must follow, e.g. after a server that carried
      // another client's DateStyle was reset for this one.
      if (!swallow_all || type == p::be::kParameterStatus) forward();
      break;
  }
  DrainInjected();
}

void ClientSession::AfterReadyForQuery(ServerConnection& conn, char status) {
  if (status != 'I') return;
  if (stats_) ++stats_->xacts;
  if (last_tag_ == "ROLLBACK") {
    pending_settings_.clear();
    pending_reset_all_ = false;
    return;
  }
  CommitSettings(conn);
}

void ClientSession::CommitSettings(ServerConnection& conn) {
  if (pending_reset_all_) {
    settings_ = startup_settings_;
    conn.settings().clear();
    pending_reset_all_ = false;
  }
  for (auto& [name, stmt] : pending_settings_) {
    if (stmt.empty()) {
      settings_.erase(name);
      conn.settings().erase(name);
    } else {
      settings_[name] = stmt;
      conn.settings()[name] = stmt;
    }
  }
  pending_settings_.clear();
}

// Recognises a single SET/RESET statement that changes session state; returns what the
// Query item carries: "name\0statement", "name\0" for RESET name, "\x01" for RESET ALL, or "".
std::string ClientSession::NoteSessionCommand(std::string_view sql) const {
  std::string_view s = StripSpace(sql);
  while (!s.empty() && s.back() == ';') s = StripSpace(s.substr(0, s.size() - 1));
  if (s.find(';') != std::string_view::npos) return "";  // several statements: not tracked
  std::string_view rest = s;
  std::string first = Lower(FirstWord(rest));
  if (first != "set" && first != "reset") return "";
  std::string name = Lower(FirstWord(rest));
  if (first == "set") {
    if (name == "local" || name == "transaction" || name == "constraints") return "";
    if (name == "session") {
      name = Lower(FirstWord(rest));
      if (name == "characteristics") return "";
      if (name == "authorization") name = "session_authorization";
    }
    if (name == "time") name = "timezone";  // SET TIME ZONE
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
    }
    if (name.empty()) return "";
    return name + std::string(1, '\0') + std::string(s);
  }
  if (name == "all") return "\x01";
  if (name == "session") name = "session_authorization";
  if (name == "time") name = "timezone";
  if (name.empty()) return "";
  return name + std::string(1, '\0');
}

absl::Status ClientSession::HandleClientFrame(const protocol::Frame& frame) {
  const char type = frame.type;
  if (!server_) {
    // Attaching failed earlier in this batch (the error was sent): behave like a server that
    // discards messages until Sync.
    if (type == p::fe::kSync || type == p::fe::kQuery) {
      attach_failed_ = false;
      if (type == p::fe::kSync) p::AppendReadyForQuery(client_out_, 'I');
    }
    return absl::OkStatus();
  }
  ServerConnection& conn = *server_;
  if (skip_until_sync_ && type != p::fe::kSync) {
    server_out_.append(frame.whole);  // the server ignores it, as PostgreSQL does
    return absl::OkStatus();
  }
  if (renamed_batch_.open && type != p::fe::kBind && type != p::fe::kDescribe &&
      type != p::fe::kExecute && type != p::fe::kSync) {
    renamed_batch_.open = false;  // not a batch that can be run again as it was
  }
  // (A Bind notes it in NoteRenamedBatch, after looking at it.)
  if (type == p::fe::kExecute || type == p::fe::kFunctionCall) renamed_batch_.ran = true;
  if (type == p::fe::kSync || type == p::fe::kQuery) renamed_batch_.ran = false;
  if (read_batch_ && type != p::fe::kBind && type != p::fe::kDescribe &&
      type != p::fe::kExecute && type != p::fe::kSync) {
    read_batch_ = false;  // more than the read
  }
  switch (type) {
    case p::fe::kQuery: {
      // A read RouteQuery armed from this very Query (its SQL, then the NUL ending the body).
      if (prepared_read_.armed && prepared_read_.query_size + 1 == frame.body.size()) {
        prepared_read_.armed = false;
        if (prepared_read_.queued) {
          prepared_read_.queued = false;  // SendBehind sent it
          lane_candidate_ = true;
          return absl::OkStatus();
        }
        SendPreparedRead(conn);
        return absl::OkStatus();
      }
      prepared_read_.armed = false;
      ASSIGN_OR_RETURN(p::Query q, p::ParseQuery(frame.body));
      if (!topology_ && db_->prepare_reads && !fill_pending_) {
        // Unsharded databases are not analysed for routing; prepare_reads analyses here.
        if (auto analyzed = worker_.analysis_cache().Analyze(q.sql);
            analyzed.ok() && BuildPreparedRead(q.sql, *analyzed)) {
          SendPreparedRead(conn);
          return absl::OkStatus();
        }
      }
      std::string_view rest = q.sql;
      std::string word = Lower(FirstWord(rest));
      if (word == "deallocate") {
        std::string_view name_rest = rest;
        std::string name(FirstWord(name_rest));
        if (Lower(name) == "prepare") name = std::string(FirstWord(name_rest));
        if (name.size() >= 2 && name.front() == '"') name = name.substr(1, name.size() - 2);
        if (Lower(name) != "all" && prepared_.erase(name) > 0) {
          // The server keeps sg_<hash> for other clients; for this client it is gone.
          Push(Expect::kInjectTag, "DEALLOCATE");
          Push(Expect::kInjectReady);
          return absl::OkStatus();
        }
      }
      server_out_.append(frame.whole);
      Push(Expect::kQuery, word == "set" || word == "reset" ? NoteSessionCommand(q.sql) : "");
      return absl::OkStatus();
    }
    case p::fe::kParse: {
      ASSIGN_OR_RETURN(p::Parse parse, p::ParseParse(frame.body));
      if (parse.name.empty()) {
        const Prepared* read = NoteUnnamedRead(parse);
        if (read == nullptr) {
          server_out_.append(frame.whole);
          Push(Expect::kParse);
          return absl::OkStatus();
        }
        read_batch_ = MayOpenLane(conn);  // reads of others may follow its batch
        if (PrepareOnServer(conn, read->server_name, Expect::kParse,
                            [&](std::string& out) { out.append(read->parse_msg); })) {
          Push(Expect::kInjectParseComplete);
        }
        return absl::OkStatus();
      }
      Prepared prepared;
      prepared.server_name = ServerStatementNameFor(parse);
      p::AppendParse(prepared.parse_msg, prepared.server_name, parse.sql, parse.param_types);
      prepared.read = db_->pipeline_reads > 0 && IsPreparableRead(parse.sql);
      if (PrepareOnServer(conn, prepared.server_name, Expect::kParse,
                          [&](std::string& out) { out.append(prepared.parse_msg); })) {
        Push(Expect::kInjectParseComplete);
      }
      prepared_[std::string(parse.name)] = std::move(prepared);
      return absl::OkStatus();
    }
    case p::fe::kBind:
    case p::fe::kDescribe: {
      std::string_view head, statement, rest;
      char kind = 'S';
      if (type == p::fe::kBind) {
        std::string_view after_portal;
        if (!SplitCString(frame.body, head, after_portal) ||
            !SplitCString(after_portal, statement, rest)) {
          return PgStatus("08P01", "invalid Bind message");
        }
      } else {
        if (frame.body.empty()) return PgStatus("08P01", "invalid Describe message");
        kind = frame.body[0];
        if (!SplitCString(frame.body.substr(1), statement, rest)) {
          return PgStatus("08P01", "invalid Describe message");
        }
      }
      const Prepared* prepared = nullptr;
      // Sharded sessions keep the unnamed statement too (under ""), to re-prepare it on
      // whichever shard the Bind routes to; unsharded ones when it is a read (NoteUnnamedRead).
      if (kind == 'S' && (!statement.empty() || !prepared_.empty())) {
        auto it = prepared_.find(Av(statement));
        if (it != prepared_.end()) prepared = &it->second;
      }
      if (type == p::fe::kBind && (topology_ || !statement.empty())) {
        // A read may start a batch that reads of others follow (an unsharded database's unnamed
        // statement starts it at its Parse).
        read_batch_ = prepared != nullptr && prepared->read && MayOpenLane(conn);
      }
      size_t start = server_out_.size();
      if (prepared == nullptr) {
        server_out_.append(frame.whole);
      } else {
        PrepareOnServer(conn, prepared->server_name, Expect::kSwallowParse,
                        [&](std::string& out) { out.append(prepared->parse_msg); });
        start = server_out_.size();
        AppendRenamed(server_out_, type, head, prepared->server_name, rest);
        if (type == p::fe::kBind && statement.empty() && !topology_ && stats_) {
          ++stats_->prepared_reads;  // an unnamed read of NoteUnnamedRead's
        }
      }
      Push(type == p::fe::kBind ? Expect::kBind : Expect::kDescribe);
      expected_.back().renamed = prepared != nullptr;
      NoteRenamedBatch(conn, frame, kind, prepared, start);
      return absl::OkStatus();
    }
    case p::fe::kClose: {
      ASSIGN_OR_RETURN(p::Close close, p::ParseClose(frame.body));
      // (The unnamed statement only when NoteUnnamedRead kept it: else the server has it.)
      if (close.kind == 'S' && (!close.name.empty() || prepared_.contains(Av(close.name)))) {
        prepared_.erase(Av(close.name));
        Push(Expect::kInjectCloseComplete);
        return absl::OkStatus();
      }
      server_out_.append(frame.whole);
      Push(Expect::kClose);
      return absl::OkStatus();
    }
    case p::fe::kExecute:
      server_out_.append(frame.whole);
      Push(Expect::kExecute);
      if (renamed_batch_.open) renamed_batch_.messages.append(frame.whole);
      return absl::OkStatus();
    case p::fe::kSync:
      server_out_.append(frame.whole);
      skip_until_sync_ = false;
      Push(Expect::kSync);
      if (read_batch_) {
        read_batch_ = false;
        lane_candidate_ = true;  // the batch was a read alone
      }
      if (renamed_batch_.open) {
        renamed_batch_.messages.append(frame.whole);
        renamed_batch_.open = false;
        renamed_batch_.complete = renamed_batch_.described;
      }
      return absl::OkStatus();
    case p::fe::kFunctionCall:
      server_out_.append(frame.whole);
      Push(Expect::kQuery);
      return absl::OkStatus();
    case p::fe::kFlush:
    case p::fe::kCopyData:
    case p::fe::kCopyDone:
    case p::fe::kCopyFail:
      server_out_.append(frame.whole);
      return absl::OkStatus();
    default:
      return PgStatus("08P01", absl::StrCat("invalid frontend message type ",
                                            static_cast<int>(static_cast<unsigned char>(type))));
  }
}

bool ClientSession::ArmUnshardedRead(const protocol::Frame& query) {
  if (!db_->prepare_reads || fill_pending_) return false;
  auto q = p::ParseQuery(query.body);
  if (!q.ok()) return false;
  auto analyzed = worker_.analysis_cache().Analyze(q->sql);
  if (!analyzed.ok() || !BuildPreparedRead(q->sql, *analyzed)) return false;
  prepared_read_.armed = true;  // HandleClientFrame sends it, or finds it sent (queued)
  return true;
}

const ClientSession::Prepared* ClientSession::NoteUnnamedRead(const p::Parse& parse) {
  auto it = prepared_.find(absl::string_view());
  // Drivers send the same Parse before every Bind (pgbench -M extended, PQexecParams).
  if (it != prepared_.end() && SameParse(it->second, parse)) return &it->second;
  if (topology_ != nullptr || !db_->prepare_reads || !IsPreparableRead(parse.sql)) {
    if (it != prepared_.end()) prepared_.erase(it);  // the server's unnamed statement is the one
    return nullptr;
  }
  if (it == prepared_.end()) it = prepared_.try_emplace(std::string()).first;
  Prepared& prepared = it->second;
  prepared.read = true;
  prepared.sql.assign(parse.sql);
  prepared.param_types.assign(parse.param_types.begin(), parse.param_types.end());
  prepared.server_name = ServerStatementNameFor(parse);
  prepared.parse_msg.clear();
  p::AppendParse(prepared.parse_msg, prepared.server_name, parse.sql, parse.param_types);
  return &prepared;
}

bool ClientSession::IsPreparableRead(std::string_view sql) {
  if (fill_pending_) return false;
  auto analyzed = worker_.analysis_cache().Analyze(sql);
  return analyzed.ok() && routing::PreparableRead(*analyzed->analysis);
}

bool ClientSession::MayOpenLane(const ServerConnection& conn) const {
  return db_->pipeline_reads > 0 && pool_mode_ == conf::PoolMode::kTransaction &&
         expected_.empty() && server_out_.empty() && conn.tx_status() == 'I' && !conn.tls();
}

bool ClientSession::MayTakeBatch() const {
  return user_rate_ == nullptr || !(user_rate_->Limited() || db_rate_->Limited());
}

size_t ClientSession::PeekBatch(const p::Frame& first, absl::Span<p::Frame> out,
                                size_t* bytes) const {
  const std::string_view in = client_in_.Data();
  size_t count = 0;
  size_t at = 0;
  if (in.data() == first.whole.data()) {
    while (count < out.size()) {
      const p::FrameResult r = p::ReadFrame(in.substr(at), config_->limits.max_message_size);
      if (r.status != p::FrameStatus::kFrame) break;
      out[count++] = r.frame;
      at += r.frame.whole.size();
      if (r.frame.type == p::fe::kSync) break;
    }
  }
  if (bytes != nullptr) *bytes = at;
  return count;
}

bool ClientSession::ArmExtendedRead(const p::Frame& first) {
  // Not a cache fill; nothing of the proxy's own about the unnamed portal (its messages are not
  // looked at); no rate limit that must see the batch's Execute.
  if (fill_pending_ || cached_portal_ || fanout_portal_ || next_id_portal_ ||
      !local_portal_tag_.empty() || !MayTakeBatch()) {
    return false;
  }
  // The whole batch, read already: [Parse,] Bind, [Describe,] Execute, Sync.
  p::Frame batch[5];
  size_t batch_size = 0;
  const size_t count = PeekBatch(first, batch, &batch_size);
  const bool from_parse = first.type == p::fe::kParse;
  const p::Frame* f = batch + (from_parse ? 1 : 0);
  const size_t n = count - (from_parse && count > 0 ? 1 : 0);
  std::string_view portal, statement, rest;
  if (n < 3 || f[0].type != p::fe::kBind || f[n - 1].type != p::fe::kSync ||
      !SplitCString(f[0].body, portal, rest) || !SplitCString(rest, statement, rest) ||
      !portal.empty() || (from_parse && !statement.empty())) {
    return false;
  }
  const bool describe = n == 4;
  const p::Frame& execute = f[n - 2];
  if (execute.type != p::fe::kExecute || execute.body.size() != 5 || execute.body[0] != '\0') {
    return false;
  }
  if (describe && (f[1].type != p::fe::kDescribe || f[1].body != std::string_view("P\0", 2))) {
    return false;  // (libpq, JDBC: a Describe of the portal)
  }
  const Prepared* prepared = nullptr;
  if (from_parse) {
    auto parse = p::ParseParse(first.body);
    if (!parse.ok() || !parse->name.empty()) return false;
    prepared = NoteUnnamedRead(*parse);
  } else if (auto it = prepared_.find(Av(statement)); it != prepared_.end()) {
    prepared = &it->second;
  }
  if (prepared == nullptr || !prepared->read) return false;
  ExtendedRead& r = extended_read_;
  r.name = prepared->server_name;
  r.run.clear();
  AppendRenamed(r.run, p::fe::kBind, {}, r.name, rest);
  if (describe) r.run.append(f[1].whole);
  r.run.append(execute.whole);
  r.run.append(f[n - 1].whole);
  r.from_parse = from_parse;
  r.describe = describe;
  r.batch_size = batch_size;
  r.queued = false;
  r.armed = true;  // Attach sends it behind another read, or the batch goes as usual
  return true;
}

bool ClientSession::BuildPreparedRead(std::string_view sql,
                                      const routing::AnalysisCache::Result& analyzed) {
  PreparedRead& r = prepared_read_;
  // Not in the middle of the client's own extended-protocol batch: a Query there must not end
  // it with a Sync of the proxy's (nor replace its unnamed portal).
  if (skip_until_sync_ ||
      (!expected_.empty() && expected_.back().kind != Expect::kQuery &&
       expected_.back().kind != Expect::kSync)) {
    return false;
  }
  absl::InlinedVector<uint32_t, 8> types;
  if (analyzed.normalized.empty() ||
      !routing::ReadParameterTypes(*analyzed.analysis, analyzed.literals, analyzed.max_param,
                                   types)) {
    return false;
  }
  r.query_size = sql.size();
  ++r.seq;
  if (r.seq == 0) r.seq = 1;  // 0 marks a retry
  // A session mostly repeats its statements: the name is hashed, and the Bind's head written,
  // only for a new one.
  if (r.name.empty() || r.sql != analyzed.normalized || r.types != types) {
    r.sql.assign(analyzed.normalized);
    r.types = types;
    r.name.clear();
    AppendServerStatementName(r.name, r.sql, r.types);
    r.bind_head.clear();
    p::MessageWriter(r.bind_head)
        .Begin(p::fe::kBind)
        .CString("")  // the unnamed portal
        .CString(r.name)
        .Int16(0)  // parameters all in text
        .Int16(static_cast<int16_t>(r.types.size()));
  }
  // What runs it: the Bind of its literals, a Describe of the portal, Execute and Sync.
  static const std::string kRunTail = [] {
    std::string tail;
    p::AppendDescribe(tail, 'P', "");
    p::AppendExecute(tail, "", 0);
    p::AppendSync(tail);
    return tail;
  }();
  r.run.assign(r.bind_head);
  p::MessageWriter w(r.run);
  w.Reopen(0);
  for (const routing::Literal& literal : analyzed.literals) {
    w.Int32(static_cast<int32_t>(literal.value.size())).Bytes(literal.value);
  }
  w.Int16(0);  // results in text, as a simple Query gets them
  w.End();
  r.run.append(kRunTail);
  return true;
}

void ClientSession::SendPreparedRead(ServerConnection& conn) {
  PreparedRead& r = prepared_read_;
  // Alone on the connection outside a transaction: once sent, other clients' reads may follow
  // it there (a lane).
  lane_candidate_ = MayOpenLane(conn);
  if (stats_) ++stats_->prepared_reads;
  PrepareOnServer(conn, r.name, Expect::kSwallowParse,
                  [&](std::string& out) { p::AppendParse(out, r.name, r.sql, r.types); });
  AppendPreparedRun(server_out_);
  ExpectPreparedRun(r.seq);
}

bool ClientSession::PrepareOnServer(ServerConnection& conn, const std::string& name, Expect kind,
                                    absl::FunctionRef<void(std::string&)> append_parse) {
  if (conn.UsePrepared(name)) return true;
  const int limit = db_->max_prepared_statements;
  while (limit > 0 && conn.prepared_count() >= static_cast<size_t>(limit)) {
    std::string victim = conn.EvictPrepared();
    spdlog::debug("closing statement {} on shard \"{}\": {} statements prepared there", victim,
                  conn.target().shard, limit);
    p::AppendClose(server_out_, 'S', victim);
    Push(Expect::kSwallowClose, std::move(victim));
  }
  append_parse(server_out_);
  conn.AddPrepared(name);
  Push(kind, name);
  return false;
}

void ClientSession::AppendPreparedRun(std::string& out) const {
  out.append(prepared_read_.run);
}

void ClientSession::ExpectPreparedRun(uint32_t read) {
  // The client sees what a simple Query gets: RowDescription, DataRows, CommandComplete (or
  // ErrorResponse), ReadyForQuery.
  Push(Expect::kSwallowBind);
  expected_.back().read = read;
  Push(Expect::kDescribe);
  Push(Expect::kExecute);
  Push(Expect::kSync);
}

bool ClientSession::RetryPreparedRead(ServerConnection& conn, const Item& failed) {
  const PreparedRead& r = prepared_read_;
  // Once per read; only the read the buffers still hold.
  if (failed.read == 0 || failed.read != r.seq) return false;
  const size_t sync = FailedBatchSync(conn);
  if (sync == 0) return false;
  if (!SendRetry(conn, r.name, sync, [&](std::string& out) {
        p::AppendParse(out, r.name, r.sql, r.types);
        AppendPreparedRun(out);
      })) {
    return false;
  }
  spdlog::debug("prepared read {} prepared anew after an error at Bind (0A000: an ALTER changed "
                "its result type; 26000: the statement was deallocated)",
                r.name);
  ExpectPreparedRun(0);  // not run a third time
  return true;
}

size_t ClientSession::FailedBatchSync(const ServerConnection& conn) const {
  // Only where nothing is lost by failing (outside a transaction: the Sync ends the implicit
  // one) and nothing else is under way.
  if (conn.tx_status() != 'I' || server_writes_ != 0 || !server_out_.empty() || skip_until_sync_) {
    return 0;
  }
  size_t sync = 0;
  while (sync < expected_.size() && expected_.at(sync).kind != Expect::kSync) ++sync;
  return sync + 1 == expected_.size() ? sync : 0;
}

bool ClientSession::SendRetry(ServerConnection& conn, const std::string& name, size_t sync,
                              absl::FunctionRef<void(std::string&)> append_parse_and_run) {
  // The server skips to the failed batch's Sync, then runs this: the statement dropped and
  // prepared anew, and run again.
  // Not behind reads of others (their answers come first); no more of them behind this.
  if (conn.has_followers()) return false;
  Pool::CloseLane(conn);
  std::string retry;
  p::AppendClose(retry, 'S', name);
  append_parse_and_run(retry);
  boost::system::error_code ec;
  if (TrySend(conn.stream(), asio::buffer(retry), ec) != retry.size() || ec) {
    return false;  // (the caller closes the connection: a partial send cannot be taken back)
  }
  for (size_t i = 0; i < sync; ++i) expected_.pop_front();
  expected_.front().kind = Expect::kRetrySync;
  Push(Expect::kSwallowClose);
  Push(Expect::kSwallowParse, name);
  return true;
}

void ClientSession::NoteRenamedBatch(ServerConnection& conn, const protocol::Frame& frame,
                                     char describe_kind, const Prepared* prepared, size_t start) {
  RenamedBatch& b = renamed_batch_;
  if (frame.type == p::fe::kDescribe) {
    if (b.open) {
      b.messages.append(server_out_, start);
      if (describe_kind == 'P') b.described = true;
    }
    return;
  }
  b.open = false;  // a second Bind in the batch: not recorded
  const bool first = !b.ran;
  b.ran = true;
  // Not after something this batch ran (even if its answers are in: the Sync has not ended its
  // implicit transaction yet, and the error rolls it back).
  if (prepared == nullptr || !first || conn.tx_status() != 'I') return;
  // Parameters in text only.
  auto bind = p::ParseBind(frame.body);
  if (!bind.ok()) return;
  for (size_t i = 0; i < bind->params.size(); ++i) {
    if (bind->ParamFormat(i) != 0) return;
  }
  // Nothing in this batch ran before this Bind, nor is a batch before it still under way: what
  // the proxy waits for ahead of it only prepares or closes statements.
  for (size_t i = 0; i + 1 < expected_.size(); ++i) {
    switch (expected_.at(i).kind) {
      case Expect::kParse:
      case Expect::kSwallowParse:
      case Expect::kInjectParseComplete:
      case Expect::kSwallowClose:
      case Expect::kInjectCloseComplete:
        break;
      default:
        return;
    }
  }
  if (++b.id == 0) b.id = 1;
  b.open = true;
  b.complete = false;
  b.described = false;
  b.name.assign(prepared->server_name);
  b.parse.assign(prepared->parse_msg);
  b.messages.assign(server_out_, start);
  expected_.back().batch = b.id;
}

bool ClientSession::RetryRenamedBatch(ServerConnection& conn, const Item& failed) {
  RenamedBatch& b = renamed_batch_;
  // Once per batch; only the batch recorded, whole. The server was idle before the batch and
  // nothing of it ran before the Bind, so after the Sync it is idle again with nothing lost.
  if (failed.kind != Expect::kBind || failed.batch == 0 || failed.batch != b.id || !b.complete) {
    return false;
  }
  const size_t sync = FailedBatchSync(conn);
  if (sync == 0) return false;
  b.complete = false;
  // The batch's items again, after the Close and the Parse (the failed Sync's ReadyForQuery is
  // not forwarded: the retry's is).
  std::vector<Item> again;
  again.reserve(sync + 1);
  for (size_t i = 0; i <= sync; ++i) again.push_back(expected_.at(i));
  again.front().batch = 0;  // not run a third time
  if (!SendRetry(conn, b.name, sync, [&](std::string& out) {
        out.append(b.parse);
        out.append(b.messages);
      })) {
    return false;
  }
  spdlog::debug("statement {} prepared anew after an error at Bind (0A000: an ALTER changed its "
                "result type; 26000: it was deallocated); its batch runs again",
                b.name);
  for (Item& item : again) expected_.push_back(std::move(item));
  return true;
}

asio::awaitable<absl::Status> ClientSession::TakeRateToken() {
  const bool in_transaction = InTransaction();
  const int64_t now = RateNowNs();
  auto refuse = [&](RateBucket& bucket, std::string_view kind, const std::string& name) {
    bucket.refused.fetch_add(1, std::memory_order_relaxed);
    if (stats_) ++stats_->rate_refused;
    const RateBucket::Settings s = bucket.settings();
    return PgStatus(
        "53400",
        absl::StrCat("rate limit exceeded for ", Av(kind), " \"", name, "\": ",
                     s.queries_per_second, " queries/s (burst ", s.burst, ")"),
        absl::StrCat("Raise ", kind == "user" ? "users[].rate_limit" : "databases.<db>.rate_limit",
                     " in the shardgate config, or send fewer queries."));
  };
  const int64_t user_wait = user_rate_->Reserve(now, user_rate_->MaxWaitNs(in_transaction));
  if (user_wait < 0) co_return refuse(*user_rate_, "user", user_name_);
  const int64_t db_wait = db_rate_->Reserve(now, db_rate_->MaxWaitNs(in_transaction));
  if (db_wait < 0) {
    user_rate_->Refund();
    co_return refuse(*db_rate_, "database", db_name_);
  }
  const int64_t wait = std::max(user_wait, db_wait);
  if (wait <= 0) co_return absl::OkStatus();
  (user_wait >= db_wait ? user_rate_ : db_rate_)->queued.fetch_add(1, std::memory_order_relaxed);
  if (stats_) ++stats_->rate_queued;
  // What the batch forwarded before this query goes on while it waits; other sessions of the
  // worker run meanwhile (a timer, not a blocked thread).
  if (!FlushServerNow() && !co_await FlushServer()) co_return absl::OkStatus();
  asio::steady_timer timer(worker_.io(), std::chrono::nanoseconds(wait));
  co_await timer.async_wait(kTuple);
  co_return absl::OkStatus();
}

asio::awaitable<void> ClientSession::Serve() {
  const uint32_t max_size = config_->limits.max_message_size;
  const conf::Timeouts& timeouts = config_->timeouts;
  while (!closing_ && client_ok_) {
    // Wait for the client, bounded by the idle timeouts that apply in this state.
    std::chrono::milliseconds idle{0};
    absl::Status idle_error;
    if (!server_ && !dist_) {
      idle = timeouts.client_idle;
      idle_error = PgStatus("57P05", "terminating connection due to idle-session timeout");
    } else if (dist_ || (server_->tx_status() != 'I' && expected_.empty())) {
      idle = timeouts.idle_in_transaction;
      idle_error =
          PgStatus("25P03", "terminating connection due to idle-in-transaction timeout");
    }
    absl::StatusOr<p::Frame> frame;
    {
      Deadline deadline(worker_.io().get_executor(), idle, [this] {
        boost::system::error_code ignored;
        stream_.Socket().cancel(ignored);
      });
      frame = co_await ReadClientFrame(max_size);
      if (deadline.expired()) frame = idle_error;
    }
    request_time_ = std::time(nullptr);
    if (!frame.ok()) {
      if (SqlState(frame.status()) != "08006") co_await Fatal(frame.status());
      break;
    }
    bool terminate = false;
    absl::Status error;
    p::FrameResult next{p::FrameStatus::kFrame, *frame, 0, {}};
    while (next.status == p::FrameStatus::kFrame) {
      const p::Frame& f = next.frame;
      if (f.type == p::fe::kTerminate) {
        terminate = true;
        break;
      }
      lane_candidate_ = false;  // for this frame's read, if it is one and sent alone
      extended_read_.armed = false;  // armed for this frame's batch only
      if (server_ && server_->lane()) co_await LeaveLane();
      if (stats_) {
        stats_->received += static_cast<int64_t>(f.whole.size());
        if (f.type == p::fe::kQuery || f.type == p::fe::kExecute) ++stats_->queries;
      }
      if (!topology_ && drop_until_sync_) {
        // A rate limit refused an Execute, or the proxy a next_id Bind (non-sharded databases;
        // RouteFrame does this for sharded ones): like a server, drop the rest up to Sync.
        if (f.type != p::fe::kSync || !server_) {
          if (f.type == p::fe::kSync) {
            drop_until_sync_ = false;
            next_id_batch_ = false;
            Push(Expect::kInjectReady);
          }
          client_in_.Consume(f.whole.size());
          next = p::ReadFrame(client_in_.Data(), max_size);
          continue;
        }
        drop_until_sync_ = false;  // the server answers the Sync
        next_id_batch_ = false;
      }
      if ((f.type == p::fe::kQuery || f.type == p::fe::kExecute) && user_rate_ != nullptr &&
          (user_rate_->Limited() || db_rate_->Limited()) && !drop_until_sync_ &&
          !skip_until_sync_ && !attach_failed_ && !copy_in_ && TxStatus() != 'E') {
        // (A failed transaction only waits for its ROLLBACK: not limited.)
        absl::Status limited = co_await TakeRateToken();
        if (!limited.ok()) {
          // Inside a transaction that runs on a server, the server raises it (the transaction
          // fails as PostgreSQL's would); else the proxy answers, in order.
          RefuseStatement(limited, f.type == p::fe::kExecute);
          if (f.type == p::fe::kExecute) {  // its portal goes with the rest of the batch
            fanout_portal_.reset();
            cached_portal_.reset();
          }
          client_in_.Consume(f.whole.size());
          next = p::ReadFrame(client_in_.Data(), max_size);
          continue;
        }
        if (closing_) break;
      }
      if (f.type == p::fe::kQuery ? AnswerNextId(f) : AnswerNextIdExtended(f)) {
        client_in_.Consume(f.whole.size());
        next = p::ReadFrame(client_in_.Data(), max_size);
        continue;
      }
      if (topology_) {
        auto forward = co_await RouteFrame(f);
        if (!forward.ok()) {
          error = forward.status();
          client_in_.Consume(f.whole.size());
          break;
        }
        if (!*forward) {
          client_in_.Consume(f.whole.size());
          next = p::ReadFrame(client_in_.Data(), max_size);
          continue;
        }
      }
      if (!server_ && NeedsServer(f.type)) {
        absl::Status st = absl::OkStatus();
        if (!AttachNow(*target_pool_)) {
          // Read pipelining: waiting for a server, a read may follow another client's instead.
          // (A batch taken whole skips the rate limits' look at its Execute: not when limited.)
          follow_read_ =
              !topology_ && db_->pipeline_reads > 0 &&
              (f.type == p::fe::kQuery
                   ? ArmUnshardedRead(f)
                   : (f.type == p::fe::kParse || f.type == p::fe::kBind) && ArmExtendedRead(f));
          st = co_await Attach(*target_pool_);
          follow_read_ = false;
        }
        if (!st.ok()) {
          prepared_read_.armed = false;
          extended_read_.armed = false;
          if (closing_) break;
          p::AppendError(client_out_, ToPgError(st));
          if (f.type == p::fe::kQuery) {
            p::AppendReadyForQuery(client_out_, 'I');
          } else if (f.type != p::fe::kSync) {
            attach_failed_ = true;
          } else {
            p::AppendReadyForQuery(client_out_, 'I');
          }
          client_in_.Consume(f.whole.size());
          next = p::ReadFrame(client_in_.Data(), max_size);
          continue;
        }
      }
      if (extended_read_.armed) {
        ExtendedRead& r = extended_read_;
        r.armed = false;
        if (r.queued) {
          // SendBehind sent the client's batch, up to its Sync, and Followed expects its
          // answers: it is taken whole.
          r.queued = false;
          lane_candidate_ = true;
          if (stats_) {
            stats_->received += static_cast<int64_t>(r.batch_size - f.whole.size());
            ++stats_->queries;
          }
          client_in_.Consume(r.batch_size);
          next = p::ReadFrame(client_in_.Data(), max_size);
          continue;
        }
      }
      error = HandleClientFrame(f);
      client_in_.Consume(f.whole.size());
      if (!error.ok()) break;
      next = p::ReadFrame(client_in_.Data(), max_size);
    }
    if (next.status == p::FrameStatus::kError) error = next.error;
    if (!FlushServerNow() && !co_await FlushServer()) break;
    if (lane_candidate_) {
      // The batch ended with a read sent alone, and is all sent: reads of others may follow.
      lane_candidate_ = false;
      if (server_ && !server_->broken() && server_out_.empty() && server_writes_ == 0 &&
          !expected_.empty()) {
        pool_->OpenLane(*server_);
      }
    }
    // What the proxy answered itself (a ParseComplete for a statement the server already has,
    // a NOTICE) goes out with the server's answer when one is coming: the pump flushes after
    // each read, in order. One send to the client per round trip, not two.
    const bool answer_coming = server_ && pumps_running_ > 0 && !expected_.empty();
    if (!client_out_.empty() && !answer_coming && !FlushClientNow() && !co_await FlushClient()) {
      break;
    }
    if (!error.ok()) {
      co_await Fatal(error);
      break;
    }
    if (terminate) break;
    if (CanRelease()) co_await ReleaseIfIdle();
    LeaveWriteGate();
    EndCacheWrites(false);
    client_in_.ShrinkIfIdle();
  }
  closing_ = true;
  co_await Detach();
  EndCacheWrites(true);
}

asio::awaitable<void> ClientSession::Detach() {
  if (dist_) {
    // The client left inside a transaction spanning shards: closing its legs rolls it back.
    for (auto& leg : dist_->legs) {
      if (leg->conn) leg->conn->MarkBroken();
    }
    ReleaseLegs(dist_->legs);
    dist_.reset();
  }
  if (copy_in_) {
    // The client left in the middle of a COPY into several shards: none of it commits.
    for (auto& leg : copy_in_->legs) {
      if (leg->conn) leg->conn->MarkBroken();
    }
    ReleaseLegs(copy_in_->legs);
    copy_in_.reset();
  }
  if (!server_) {
    co_await StopPump();
    co_return;
  }
  const bool busy = !expected_.empty() || skip_until_sync_ || server_->tx_status() != 'I';
  if (!expected_.empty()) {
    // A query is running for a client that left: stop it rather than let it run to the end.
    ServerConnection& conn = *server_;
    co_await SendCancel(conn.target().host, conn.target().port, conn.pid(), conn.secret());
  }
  co_await StopPump();
  if (!server_) co_return;
  if (busy) server_->MarkLost();  // (its answers unread: nothing after them can be passed on)
  if (!busy && pool_mode_ == conf::PoolMode::kSession) {
    // A failed reset marks the server broken; Release then closes it.
    absl::Status reset = co_await server_->Reset(config_->timeouts.connect);
    if (!reset.ok()) spdlog::info("server reset failed: {}", std::string(reset.message()));
  }
  if (server_) pool_->Release(TakeServer());
}

}  // namespace shardgate::proxy
