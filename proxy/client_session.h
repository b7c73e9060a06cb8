// One client connection: startup, TLS, authentication, then the pooled forwarding loop.
//
// Two coroutines serve an authenticated client: the client loop reads the client's messages,
// attaches a server when a transaction starts and forwards (rewriting prepared-statement names);
// the server pump reads the attached server's answers and forwards them. Both run on the
// worker's thread. Every message forwarded to the server pushes what the proxy expects back
// onto `expected_`, so the pump knows when a request is answered, can inject answers the proxy
// makes up (ParseComplete for a statement the server already has) and swallow answers to
// requests the proxy added (replayed Parse, replayed SET).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/types/span.h"
#include "conf/config.h"
#include "routing/analysis_cache.h"
#include "routing/directory_store.h"
#include "routing/hints.h"
#include "routing/hot_keys.h"
#include "routing/planner.h"
#include "proxy/topology.h"
#include "protocol/frame_reader.h"
#include "protocol/messages.h"
#include "proxy/buffer.h"
#include "proxy/client_stream.h"
#include "proxy/server_connection.h"
#include "proxy/copy_split.h"
#include "proxy/fanout.h"
#include "proxy/query_cache.h"
#include "proxy/write_gate.h"

namespace shardgate::proxy {

class CancelSlot;
class Worker;
class Pool;
class RateBucket;

// "sg_<hash of SQL and parameter types>": a client's prepared statement's name on servers.
std::string ServerStatementNameFor(const protocol::Parse& parse);

class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  ClientSession(Worker& worker, tcp::socket socket);
  ~ClientSession();

  // The whole life of the connection; never throws.
  asio::awaitable<void> Run();
  // Called on the worker's thread at SIGTERM: an idle client is told 57P01 and closed now, a
  // busy one after its transaction.
  void OnShutdown();
  // The worker's half-close sweep (every Worker::kHalfCloseSweep): a client read that has waited
  // on a quiet socket (ClientSocket: its last read emptied it) since the previous sweep gets one
  // peek; EOF there is a FIN that came with the bytes of that read, which no event reports, and
  // closes the client as the read would have.
  void CheckHalfClosedClient();

  // What the admin console shows of a client (SHOW CLIENTS) and of the server it holds (SHOW
  // SERVERS). Called on the worker's thread.
  struct Info {
    std::string user, database, state;  // state: "active" (holds a server) | "idle"
    std::string addr;
    int port = 0;
    int64_t connect_time = 0, request_time = 0;  // unix seconds
    bool tls = false;
    std::string application_name;
    bool admin = false;
    // The servers it holds: shard, "host:port", backend pid.
    struct Server {
      std::string shard, address, user, dbname;
      int32_t pid = 0;
    };
    std::vector<Server> servers;
  };
  Info Describe() const;

 private:
  // What the proxy expects from the server for each message it sent (in order).
  enum class Expect : uint8_t {
    kQuery,           // forwarded Query or FunctionCall: answers up to ReadyForQuery
    kSync,            // forwarded Sync: ReadyForQuery
    kParse,           // forwarded Parse: ParseComplete (`name` = server statement to record)
    kBind,            // BindComplete
    kDescribe,        // [ParameterDescription] RowDescription | NoData
    kExecute,         // CommandComplete | EmptyQueryResponse | PortalSuspended
    kClose,           // CloseComplete
    kSwallowParse,    // a Parse the proxy added: ParseComplete is not forwarded
    kSwallowQuery,    // a Query the proxy added (SET replay): nothing is forwarded
    kInjectParseComplete,  // answered by the proxy, no server round trip
    kInjectCloseComplete,
    kInjectTag,            // CommandComplete with `name` as the tag
    kInjectReady,          // ReadyForQuery with the server's (or idle) transaction status
    kInjectRaw,            // `name` holds whole messages made by the proxy (errors, notices)
    kRaise,  // a Query the proxy sent to fail the server's transaction: only its error is forwarded
    kSwallowBind,  // a Bind the proxy made (prepare_reads): BindComplete is not forwarded
    kSwallowClose,   // a Close the proxy made: CloseComplete is not forwarded
    kRetrySync,      // the Sync of a prepared read being run again: its ReadyForQuery is not
                     // forwarded (the retry's is)
  };
  struct Item {
    Expect kind;
    std::string name;  // kParse/kSwallowParse: the server statement name
    std::chrono::steady_clock::time_point at{};  // kQuery/kSync: when sent (latency metric)
    bool fill = false;  // its answer goes to the query cache too (fill_)
    uint32_t read = 0;  // kSwallowBind: PreparedRead::seq of the read it binds (0: a retry)
    bool renamed = false;  // kBind/kDescribe: of a client's statement, by its sg_ name
    uint32_t batch = 0;    // kBind renamed: the RenamedBatch::id it starts (0: none)
  };
  // A client's named prepared statement, and how to recreate it on any server.
  struct Prepared {
    std::string server_name;  // "sg_<hash>"
    std::string parse_msg;    // a whole Parse message naming server_name
    // A routing::PreparableRead: its batches may be sent behind others' reads (pipeline_reads;
    // unsharded databases analyse a named statement for it only with pipeline_reads on).
    bool read = false;
    // Sharded databases: the statement's analysis (null when it does not parse: any shard then
    // reports the error) and Parse's parameter types, for routing each Bind.
    std::shared_ptr<const routing::Analysis> analysis;
    std::vector<routing::Literal> literals;
    std::vector<uint32_t> param_types;
    std::string sql;
    // Its /* shardgate: ... */ comment hints (cache= included), or why they are malformed.
    routing::Hints hints;
    absl::Status hint_error;
  };
  // A session setting changed by the client: the statement that sets it on a server.
  using Settings = std::map<std::string, std::string, std::less<>>;

  // ---- startup and auth (client_session.cc)
  asio::awaitable<absl::StatusOr<bool>> Startup();
  asio::awaitable<absl::Status> Authenticate(const conf::UserConfig& user);
  // Counts the login against users[].max_connections: 53300 when the user has them all.
  absl::Status CountUserConnection();
  // A Query or Execute takes a token from the user's and the database's rate_limit buckets,
  // waiting on a timer when it may (queue mode, or inside a transaction). Not OK: the 53400
  // to answer instead (nothing taken).
  asio::awaitable<absl::Status> TakeRateToken();
  asio::awaitable<absl::StatusOr<protocol::Frame>> ReadClientFrame(uint32_t max_size);
  asio::awaitable<void> Fatal(const absl::Status& status);
  asio::awaitable<bool> FlushClient();
  // The hot path's way round FlushClient's coroutine frame: sends client_out_ to the kernel at
  // once when no FlushClient is writing (plain TCP only). true: all of it went and the client
  // is fine, so FlushClient has nothing to do; false: what is left (after the bytes the kernel
  // took) is FlushClient's. Callers: `if (!FlushClientNow() && !co_await FlushClient())`.
  bool FlushClientNow();

  // ---- serving (session_loop.cc)
  asio::awaitable<void> Serve();
  // A server from `pool` for this client: waits while the database is paused, for a connect
  // or for a free slot. AttachNow is the same without waiting, and false when it would have
  // to (hot paths try it first: `AttachNow(pool) ? OkStatus() : co_await Attach(pool)`).
  // With follow_read_ set (a prepare_reads read of the frame at hand), Attach first tries to
  // send it behind another client's read (SendBehind).
  asio::awaitable<absl::Status> Attach(Pool& pool);
  bool AttachNow(Pool& pool);
  // `replay`: the session's settings are brought onto the server first (not for a follower,
  // which only follows a server that has them).
  void Attached(Pool& pool, std::unique_ptr<ServerConnection> conn, bool replay = true);
  // Read pipelining (databases.<db>.pipeline_reads): SendBehind sends the armed read on a
  // lane of `pool` (Pool::LaneFor) and returns it (null when there is none for it, or the read
  // could not be sent there); Attach then waits as its Follower for the connection to come
  // with the answer next, and Followed takes it. A connection lost before its turn: Attach
  // waits for one as usual, and the read is sent anew.
  ServerConnection* SendBehind(Pool& pool);
  void Followed(Pool& pool, std::unique_ptr<ServerConnection> conn);
  bool MayFollow() const;
  // Before the holder of a lane sends anything more on it: closes the lane, or, when reads of
  // others follow its own, gives the connection to them once its answers are in.
  asio::awaitable<void> LeaveLane();
  asio::awaitable<void> WaitWhileSuspended();  // PAUSE <db> until RESUME
  // False when WaitWhileSuspended would return at once (callers skip its coroutine frame).
  bool MaySuspend() const { return !dist_ && gate_ != nullptr && gate_->Suspended(); }
  BackendTarget MakeTarget(const conf::ShardConfig& shard, const conf::Endpoint& endpoint,
                           absl::Status* error) const;
  Pool& PoolOf(const BackendTarget& target);
  // The pool of `endpoint` of `shard` for this session's user and database. Remembered per
  // endpoint (a topology's endpoints never change and pools are never removed; RefreshMap
  // forgets them): no target or pool key is built per transaction.
  absl::StatusOr<Pool*> PoolFor(const conf::ShardConfig& shard, const conf::Endpoint& endpoint);

  // ---- routing for sharded databases (session_route.cc)
  // Decides where a client message goes and attaches that server. false: the proxy answered
  // it itself (or refused it), do not forward.
  asio::awaitable<absl::StatusOr<bool>> RouteFrame(const protocol::Frame& frame);
  asio::awaitable<absl::StatusOr<bool>> RouteQuery(std::string_view sql);
  // Parts of RouteQuery kept out of its coroutine frame (a frame over Asio's recycled block
  // size, about 1 KB, is allocated per statement): the planner's input (comment and session
  // hints) and its directory lookups, the statements of a transaction spanning shards (nullopt:
  // not such a statement), entering one, and a statement fanned out across shards.
  absl::StatusOr<routing::PlanInput> QueryPlanInput(std::string_view sql,
                                                    std::span<const routing::Literal> literals);
  // (In place: a plan returned by value would be a second StatusOr<RoutePlan> in the caller's
  // frame.)
  asio::awaitable<void> PlanQueryWithLookups(std::string_view sql,
                                             const routing::Analysis& analysis,
                                             std::span<const routing::Literal> literals,
                                             absl::StatusOr<routing::RoutePlan>& plan);
  asio::awaitable<std::optional<bool>> DistributedTransactionStatement(
      const routing::Analysis& analysis);
  asio::awaitable<std::optional<absl::StatusOr<bool>>> RouteDistributed(
      std::string_view sql, const routing::Analysis& analysis, const routing::RoutePlan& plan);
  asio::awaitable<absl::StatusOr<bool>> RouteAcrossShards(std::string_view sql,
                                                         const routing::Analysis& analysis,
                                                         const routing::RoutePlan& plan);
  asio::awaitable<absl::StatusOr<bool>> RouteBind(const protocol::Frame& frame);
  // RouteBind's planner input, and its directory lookups (see QueryPlanInput).
  routing::PlanInput BindPlanInput(const Prepared& prepared, const protocol::Bind& bind);
  asio::awaitable<void> PlanBindWithLookups(const Prepared& prepared,
                                            const protocol::Bind& bind,
                                            absl::StatusOr<routing::RoutePlan>& plan);
  asio::awaitable<absl::StatusOr<bool>> Target(const routing::RoutePlan& plan, bool extended);
  asio::awaitable<absl::StatusOr<bool>> AttachAnyShard(bool begin);
  asio::awaitable<void> DrainAndRelease();
  bool InTransaction() const;
  void LocalAnswer(std::string messages);  // queued in order with what is in flight
  void LocalCommand(std::string_view tag);
  bool LocalError(const absl::Status& status, bool extended);
  // A statement the proxy refuses: inside a server transaction the server raises it (so the
  // transaction fails as PostgreSQL's would), else the proxy answers. Returns false.
  bool RefuseStatement(const absl::Status& status, bool extended);
  void RaiseOnServer(const absl::Status& status, bool extended);
  void NoteParseSharded(const protocol::Parse& parse);
  // `parse` is the statement noted as `prepared` again (same text and parameter types).
  static bool SameParse(const Prepared& prepared, const protocol::Parse& parse);
  // ---- directory routers with a `store:` table (session_directory.cc)
  // After planner_->Plan missed a directory entry (MissedDirectory): every key of a store
  // directory that its router has not cached is read from the store's table on its shard's
  // primary, then the statement is planned again. Plans that miss nothing never wait, and do
  // not go through here (no coroutine frame per statement).
  asio::awaitable<absl::StatusOr<routing::RoutePlan>> PlanStatement(
      const routing::Analysis& analysis, const routing::PlanInput& input,
      absl::StatusOr<routing::RoutePlan> plan);
  static bool MissedDirectory(const absl::StatusOr<routing::RoutePlan>& plan);
  asio::awaitable<absl::Status> FetchDirectoryEntry(const routing::DirectoryMiss& miss);
  // ---- statements across shards (session_fanout.cc)
  using Legs = std::vector<std::unique_ptr<FanOutLeg>>;
  asio::awaitable<absl::StatusOr<bool>> FanOutQuery(std::string_view sql,
                                                    const routing::QueryInfo& info,
                                                    const routing::RoutePlan& plan,
                                                    bool reference);
  // Extended protocol: a Bind that spans shards makes a portal the proxy runs at Execute.
  struct FanOutPortal {
    std::string name;
    std::string sql;
    std::vector<uint32_t> param_types;
    std::string bind_body;  // the client's Bind (re-encoded per shard at Execute)
    routing::RoutePlan plan;
    std::shared_ptr<const routing::Analysis> analysis;  // one statement
    routing::StatementKind kind = routing::StatementKind::kSelect;
    bool reference = false;
    bool described = false;
    // In a distributed transaction, the portal of a transaction statement the proxy runs
    // itself: "BEGIN" (nothing to do), "COMMIT" or "ROLLBACK".
    std::string transaction;
  };
  asio::awaitable<absl::StatusOr<bool>> FanOutExecute(bool execute);
  // COPY FROM STDIN into a sharded table: every row to the shard owning its key.
  struct CopyIn {
    explicit CopyIn(CopyFormat format) : splitter(std::move(format)) {}
    Legs legs;
    std::vector<FanOutLeg*> ptrs;
    std::vector<std::string> out;   // CopyData waiting to be written, per leg
    std::vector<int> leg_of_shard;  // shard index -> leg index (-1: not a target)
    CopySplitter splitter;
    const routing::Router* router = nullptr;
    bool two_phase = false;
    absl::Status error;  // a row that cannot be routed: the COPY fails
    // Rows whose key a `store:` directory has not cached: routed once the keys are read.
    std::vector<std::pair<std::string, routing::KeyValue>> unresolved;
  };
  asio::awaitable<absl::StatusOr<bool>> StartCopyIn(std::string_view sql,
                                                    const routing::QueryInfo& info,
                                                    const routing::RoutePlan& plan);
  asio::awaitable<absl::StatusOr<bool>> CopyInFrame(const protocol::Frame& frame);
  asio::awaitable<bool> FlushCopyLegs(size_t threshold);
  // Shared by the simple and extended paths: runs `statement_for(leg index)` (requests built
  // by `build`) on the plan's shards and appends the merged answer (not ReadyForQuery).
  asio::awaitable<void> RunCrossShard(
      const routing::RoutePlan& plan, routing::StatementKind kind, bool reference,
      const routing::MergePlan& merge, std::optional<int64_t> limit,
      std::optional<int64_t> offset, bool row_description,
      const std::function<absl::StatusOr<std::string>(size_t leg)>& statement_for,
      const std::vector<std::optional<std::string>>& params, bool* failed);
  // A transaction whose statements reached several shards: one leg per shard, each inside the
  // client's transaction since its first statement there; COMMIT is a two-phase commit over
  // them. While it lasts the session has no single server (server_ is null).
  struct Distributed {
    Legs legs;
    std::string begin;    // the client's BEGIN, run first on every shard that joins
    bool failed = false;  // a statement failed: 25P02 until ROLLBACK, COMMIT rolls back
  };
  // Whether `plan` inside the current transaction needs a second shard.
  bool NeedsDistributed(const routing::RoutePlan& plan) const;
  // Turns the current transaction into a distributed one (the attached server, if any, becomes
  // its first leg). Errors: 0A000 when that cannot be (two-phase commit off, a replica).
  asio::awaitable<absl::Status> EnterDistributed();
  // A statement of a distributed transaction (plan.shards as planned; any-one plans stay on a
  // shard already in the transaction).
  asio::awaitable<absl::StatusOr<bool>> DistributedStatement(std::string_view sql,
                                                             const routing::QueryInfo& info,
                                                             routing::RoutePlan plan,
                                                             bool reference);
  // An any-one plan in a distributed transaction goes to a shard the transaction holds.
  void PinToTransactionShard(routing::RoutePlan& plan) const;
  // COMMIT (two-phase when several shards took part) or ROLLBACK; appends the tag or error.
  asio::awaitable<void> EndDistributed(bool commit);
  // What ReadyForQuery reports when the proxy answers: 'I', 'T' or 'E'.
  char TxStatus() const;
  asio::awaitable<absl::Status> AcquireLegs(absl::Span<const int> shards, bool read,
                                            Legs& legs);
  void ReleaseLegs(Legs& legs);
  asio::awaitable<absl::Status> RunOnLegs(std::span<FanOutLeg* const> legs,
                                          std::string_view sql);
  asio::awaitable<absl::Status> CommitTwoPhase(std::span<FanOutLeg* const> legs);
  // The SET/RESET statements that give `conn` this client's settings (and records them).
  std::string ReplaySql(ServerConnection& conn) const;
  // ---- the query cache (session_cache.cc)
  // A cacheable read's answer on its way from the primary: captured as it is forwarded.
  struct CacheFill {
    std::string key;
    std::vector<CacheTag> tags;
    std::chrono::milliseconds ttl{0};
    uint64_t token = 0;  // QueryCache::BeginFill
    bool extended = false;
    bool open = true;    // items of its request are still being pushed (Push marks them)
    bool failed = false;  // something not cacheable came back (an error, a notice, too big)
    bool complete = false;  // CommandComplete seen
    int binds = 0, executes = 0;
    std::string answer;  // [RowDescription] DataRow... CommandComplete
  };
  // The answer of a Bind that hit the cache: its Describe and Execute are answered from it.
  struct CachedPortal {
    std::string name;
    std::shared_ptr<const std::string> answer;
    size_t offset = 0;  // where Execute goes on (after RowDescription, after rows sent)
  };
  // The TTL a read planned as `plan` may be cached for (0: not cacheable here): `hint`, else
  // the shortest of its tables' `cache:` (every table must have one).
  // `fan_out`: a read across shards may be cached too (simple protocol: its merged answer).
  std::chrono::milliseconds CacheTtl(const routing::Analysis& analysis,
                                     const routing::RoutePlan& plan,
                                     std::optional<std::chrono::milliseconds> hint,
                                     bool fan_out) const;
  // A fan-out read's merged answer, appended to client_out_ since `start` while the client was
  // flushed `flushes` times, goes to the cache.
  void StoreFanOutAnswer(CacheFill fill, size_t start, uint64_t flushes);
  std::vector<CacheTag> CacheTags(const routing::Analysis& analysis,
                                  const routing::RoutePlan& plan, bool write) const;
  std::string CacheKey(char kind, std::string_view sql, std::string_view extra) const;
  // A cacheable read: a hit is answered now (true, nothing to forward); a miss prepares the
  // fill (armed by ArmCacheFill once the read is routed) and sends the plan to the primary.
  bool CacheLookup(std::string key, const routing::Analysis& analysis,
                   routing::RoutePlan& plan, std::chrono::milliseconds ttl, bool extended,
                   std::string_view portal);
  void ArmCacheFill();
  // At login and with each new shard map: whether the cache is on, and its limits.
  void UpdateCache(const conf::DatabaseConfig& db);
  // A write planned as `plan`: invalidates what it touches now and when its transaction ends.
  void NoteCacheWrite(const routing::Analysis& analysis, const routing::RoutePlan& plan);
  // Ends the writes of the transaction that just ended (or of a session that leaves: `force`).
  void EndCacheWrites(bool force);
  // The pump's half: the frame answers `head`, an item of the fill.
  void CaptureForCache(const Item& head, const protocol::Frame& frame);
  // Extended protocol: Describe/Execute/Close of the cached portal. false: not that portal.
  bool AnswerCachedPortal(const protocol::Frame& frame);

  // ---- resharding (session_route.cc)
  // Before a write: waits while a cutover pauses the tables it writes, and checks that the
  // shard map is the one the transaction started with (40001 otherwise). true: the map was
  // refreshed between transactions, plan again.
  asio::awaitable<absl::StatusOr<bool>> PassWriteGate(const routing::Analysis& analysis);
  // The transaction that entered the write gate ended (called whenever the session may be
  // idle; does nothing while a transaction or a request is still open).
  void LeaveWriteGate();
  // Between transactions: the latest shard map (after a reload or a cutover).
  void RefreshMap();
  asio::awaitable<void> ServeAdmin();
  // The pump: reads the attached server's answers and passes them on, until the server can go
  // back to the pool (transaction mode) or is taken away. It starts as a chain of read
  // callbacks (StartPump, PumpRead: no coroutine frame per transaction) and continues as the
  // coroutine Pump once a write to the client has to wait (large answers, TLS clients).
  enum class PumpStep { kRead, kFlushClient, kEnd };
  void StartPump();
  void PumpRead(ServerConnection* conn, uint64_t generation, size_t need);
  void OnPumpRead(ServerConnection* conn, uint64_t generation, const boost::system::error_code& ec,
                  size_t n);
  // One read's worth: errors, frames, timers, the client write. `need`: bytes still missing
  // of a partial frame.
  PumpStep AfterServerRead(ServerConnection& conn, uint64_t generation,
                           const boost::system::error_code& ec, size_t n, size_t& need);
  // Before each read but the first: true when the pump is done (taken away, or released).
  bool PumpDone(const ServerConnection* conn, uint64_t generation);
  asio::awaitable<void> Pump(ServerConnection* conn, uint64_t generation, size_t need);
  // The pump's end: what is left for the client goes, then pump_done_/progress_ wake waiters.
  void EndPump();
  void PumpEnded();
  // `SELECT shardgate.next_id()` (simple protocol): answered here with the next cluster-unique
  // id, in order with whatever else is in flight. False for any other Query.
  bool AnswerNextId(const protocol::Frame& query);
  // The same in the extended protocol: Parse of that statement, then its Bind, Describe,
  // Execute and Close, and the Sync of a batch answered here. True when answered here.
  bool AnswerNextIdExtended(const protocol::Frame& frame);
  // (Re)starts timeouts.query's clock while the attached server owes an answer; stops it when
  // it owes none. Nothing happens without timeouts.query.
  void ArmQueryTimer();
  // After timeouts.query cancelled a request: when the attached server has sent nothing for
  // health_check_timeout more, it is hung; the pump's read is cancelled and the server lost.
  asio::awaitable<void> GiveUpIfHung(uint64_t generation, uint64_t reads);
  asio::awaitable<void> Detach();
  asio::awaitable<void> StopPump();
  asio::awaitable<bool> FlushServer();
  // As FlushClientNow, for server_out_: true when it all went (or there is nothing to send).
  // Callers: `if (!FlushServerNow() && !co_await FlushServer())`.
  bool FlushServerNow();
  asio::awaitable<void> ReleaseIfIdle();
  absl::Status HandleClientFrame(const protocol::Frame& frame);
  // prepare_reads (session_loop.cc): fills prepared_read_ when the analysed simple Query
  // qualifies (copying what it needs: the analysis cache's views end at its next call) and says
  // whether it does; the caller arms it. SendPreparedRead sends the armed read.
  bool BuildPreparedRead(std::string_view sql, const routing::AnalysisCache::Result& analyzed);
  void SendPreparedRead(ServerConnection& conn);
  // Unsharded databases (not analysed for routing): BuildPreparedRead for a Query before it has
  // a server, armed as RouteQuery arms a routed one. False when it does not qualify.
  bool ArmUnshardedRead(const protocol::Frame& query);
  // prepare_reads for the extended protocol (unsharded databases): a Parse of the unnamed
  // statement that is a read (routing::PreparableRead) is kept in prepared_[""] and runs as the
  // sg_ statement of its text, as a client's named statement does; null (and prepared_[""]
  // forgotten) when it is not one, or prepare_reads is off. A Parse that repeats the noted one
  // is not analysed again.
  const Prepared* NoteUnnamedRead(const protocol::Parse& parse);
  // Read pipelining for the extended protocol: `first`, the client's frame at hand (the head of
  // client_in_), starts a whole batch already read from the client: a Parse of the unnamed
  // statement (unsharded: a read, see NoteUnnamedRead), or else a Bind of a statement of the
  // client's that is a read (Prepared::read), then the Bind to the unnamed portal, a Describe
  // of it or none, Execute and Sync. It is armed as extended_read_, for Attach to send behind
  // another client's read; the Serve loop takes the batch whole when it was. False otherwise,
  // and while a cache fill is pending or a rate limit must see the batch's Execute.
  bool ArmExtendedRead(const protocol::Frame& first);
  // The client's frames from `first` on, when `first` is the head of client_in_, as far as they
  // have been read: at most out.size() of them, the last a Sync if one comes before that. Their
  // count (0 when `first` is not the head); `bytes`, when given, gets their size.
  size_t PeekBatch(const protocol::Frame& first, absl::Span<protocol::Frame> out,
                   size_t* bytes = nullptr) const;
  // Whether `sql` is a read that prepare_reads and pipeline_reads may take
  // (routing::PreparableRead, from the analysis cache); never while a cache fill is pending.
  bool IsPreparableRead(std::string_view sql);
  // No rate limit looks at this client's Executes (a batch taken whole skips that look).
  bool MayTakeBatch() const;
  // A read about to be sent on `conn` goes alone (nothing before it, outside a transaction):
  // once it is sent, reads of others may follow it there (a lane; pipeline_reads).
  bool MayOpenLane(const ServerConnection& conn) const;
  // True when the statement `name` is prepared on `conn` already (it then counts as just used).
  // Else sends its Parse (`append_parse` appends it) and expects its ParseComplete as `kind`;
  // first, while the connection holds databases.<db>.max_prepared_statements of them, closes
  // the least recently used one (a Close ahead of the Parse, its CloseComplete swallowed). Any
  // statement closed so is prepared again here when it is next needed.
  bool PrepareOnServer(ServerConnection& conn, const std::string& name, Expect kind,
                       absl::FunctionRef<void(std::string&)> append_parse);
  // The read's Bind, Describe, Execute and Sync, and what the proxy expects back (`read`:
  // PreparedRead::seq, 0 for a retry).
  void AppendPreparedRun(std::string& out) const;
  void ExpectPreparedRun(uint32_t read);
  // A prepared read failed at Bind with 0A000 (an ALTER changed its result type) or 26000 (its
  // statement was deallocated behind the proxy's back): outside a transaction, and when it is
  // the last request, it is prepared anew and run again, and the client never sees the error.
  // False: the error goes to the client as it is.
  bool RetryPreparedRead(ServerConnection& conn, const Item& failed);
  // The client's batch that `failed` (a Bind of a client's statement by its sg_ name) starts,
  // run again after the statement is closed and prepared anew, when the server refused it
  // (0A000, 26000) outside a transaction with nothing before it in the batch. False when it
  // cannot be (see renamed_batch_).
  bool RetryRenamedBatch(ServerConnection& conn, const Item& failed);
  // Where the failed batch's Sync is in expected_ when the batch can be run again now: outside
  // a transaction, nothing being written or waiting to be, not skipping to a Sync, and its Sync
  // the last thing expected (the failed request is the last one sent); 0 otherwise (a Sync at 0
  // has nothing to run again).
  size_t FailedBatchSync(const ServerConnection& conn) const;
  // Sends Close `name` and what `append_parse_and_run` appends at once, and expects the Close
  // and the Parse in place of the failed batch's items up to its Sync (at `sync`), whose
  // ReadyForQuery is not forwarded. False when the send fails (nothing changed here; the caller
  // closes the connection).
  bool SendRetry(ServerConnection& conn, const std::string& name, size_t sync,
                 absl::FunctionRef<void(std::string&)> append_parse_and_run);
  // Keeps renamed_batch_ in step with the client's Bind and Describe messages (`describe_kind`:
  // a Describe's 'S' or 'P'; `prepared`: the client's statement it names, renamed); `start` is
  // where the message, as the server gets it, begins in server_out_.
  void NoteRenamedBatch(ServerConnection& conn, const protocol::Frame& frame, char describe_kind,
                        const Prepared* prepared, size_t start);
  void Push(Expect kind, std::string name = {});
  void ProcessServerFrame(ServerConnection& conn, const protocol::Frame& frame);
  void DrainInjected();
  void AfterReadyForQuery(ServerConnection& conn, char status);
  bool CanRelease() const;
  void ReleaseServer();
  // The server leaves this session, by any path (released, lost, detached, handed to a
  // distributed transaction): replica accounting and the cancel target are cleared with it.
  std::unique_ptr<ServerConnection> TakeServer();
  void ServerLost(const absl::Status& why);
  // An error on its way to the client, counted by SQLSTATE for the metrics.
  void CountError(std::string_view sqlstate);
  void AppendReplay(ServerConnection& conn);
  std::string NoteSessionCommand(std::string_view sql) const;
  void CommitSettings(ServerConnection& conn);
  bool NeedsServer(char type) const;

  Worker& worker_;
  ClientStream stream_;
  struct DatabaseStats* stats_ = nullptr;  // the worker's counters for db_name_
  // stats_->routed's counter for (shard, role), the last one counted: a session usually stays
  // on one shard and role, and the map's key is two strings. Keyed by the shard's name (not
  // its index, which a reload may give another shard).
  int64_t& RoutedCounter(int shard, bool replica);
  std::pair<const std::pair<std::string, std::string>, int64_t>* routed_counter_ = nullptr;
  // The worker's hot-key sketches for db_name_ (set on the first routed key).
  std::map<std::string, routing::HotKeySketch, std::less<>>* hot_keys_ = nullptr;
  void NoteHotKeys(const routing::RoutePlan& plan);
  int64_t connect_time_ = 0, request_time_ = 0;
  bool admin_ = false;
  std::shared_ptr<const conf::Config> config_;
  const conf::DatabaseConfig* db_ = nullptr;
  const conf::UserConfig* user_ = nullptr;
  conf::PoolMode pool_mode_ = conf::PoolMode::kTransaction;
  std::string user_name_, db_name_;
  BackendTarget target_;
  Pool* target_pool_ = nullptr;  // target_'s
  Pool* pool_ = nullptr;
  absl::InlinedVector<std::pair<const conf::Endpoint*, Pool*>, 4> endpoint_pools_;  // PoolFor
  int32_t cancel_pid_ = 0, cancel_secret_ = 0;
  std::shared_ptr<CancelSlot> cancel_slot_;  // set at login, with cancel_pid_
  bool counted_ = false;       // in Runtime::clients
  bool user_counted_ = false;  // in Runtime's per-user count (users[].max_connections)
  RateBucket* user_rate_ = nullptr;  // Runtime::rate_limits' buckets, set at login
  RateBucket* db_rate_ = nullptr;

  ReadBuffer client_in_;
  std::string client_out_, client_sending_;
  bool client_writing_ = false;
  uint64_t client_flushes_ = 0;  // writes of client_out_ begun (StoreFanOutAnswer)
  uint64_t client_reads_ = 0;    // reads of the client begun (CheckHalfClosedClient)
  bool client_read_pending_ = false;
  uint64_t half_close_seen_ = 0, half_close_peeked_ = 0;  // the client_reads_ they were at
  bool client_ok_ = true;
  asio::steady_timer writer_done_;

  std::unique_ptr<ServerConnection> server_;
  std::string server_out_;
  int server_writes_ = 0;   // client-loop writes to the server in flight
  int pumps_running_ = 0;
  uint64_t attach_generation_ = 0;
  uint64_t server_reads_ = 0;  // reads that got bytes from the attached server (GiveUpIfHung)
  bool server_hung_ = false;   // GiveUpIfHung cancelled the pump's read
  bool detaching_ = false;  // the client loop is taking the server away from the pump
  asio::steady_timer pump_done_;
  asio::steady_timer query_timer_;  // timeouts.query (ArmQueryTimer)
  bool query_timer_armed_ = false;
  RingQueue<Item> expected_;
  bool skip_until_sync_ = false;  // the server discards messages until Sync after an error
  bool closing_ = false;          // the client is being disconnected
  bool shutdown_requested_ = false;
  std::string startup_key_;           // startup_settings_ as one string (Pool::KnownLogin)
  bool login_check_pending_ = false;  // the login's settings replay has not answered yet
  bool login_failed_ = false;         // ... and it failed: the client got FATAL
  bool attach_failed_ = false;    // attaching failed mid-batch: answer locally until Sync

  absl::flat_hash_map<std::string, Prepared> prepared_;
  // next_id in the extended protocol: statement name -> result column, the one portal.
  struct NextIdPortal {
    std::string name, column;
    bool binary = false;    // result format 1: the 8-byte big-endian value
    bool executed = false;  // a second Execute gets no row, as from a server
  };
  absl::flat_hash_map<std::string, std::string> next_id_statements_;
  std::optional<NextIdPortal> next_id_portal_;
  bool next_id_batch_ = false;  // answered a message since the last Sync

  // The query cache (databases with it on): the cache, the writes of the open transaction, the
  // fill in flight (one at a time) and the Bind answered from the cache.
  QueryCache* cache_ = nullptr;  // kept when a reload turns the cache off: writes end there
  bool cache_on_ = false;
  absl::flat_hash_set<CacheTag> cache_writes_;
  std::optional<CacheFill> fill_;
  std::optional<CacheFill> fill_pending_;  // made by CacheLookup, armed once routed
  // prepare_reads: the simple Query that RouteQuery (or HandleClientFrame, unsharded) chose to
  // send as Parse (once per server connection) + Bind/Describe/Execute/Sync of a server
  // statement. The buffers are reused: nothing is allocated per statement.
  struct PreparedRead {
    bool armed = false;
    uint32_t seq = 0;       // counts the reads armed (from 1): a failed Bind names its read
    size_t query_size = 0;  // the Query's SQL length, to be sure HandleClientFrame has the same
    std::string sql;        // the normalized statement (literal i = $(i + 1))
    absl::InlinedVector<uint32_t, 8> types;
    std::string name;  // sg_<hash of sql and types>, as a client's Parse of it would be named
    std::string bind_head;  // the Bind's type, length, portal, name, formats and count
    std::string run;        // the whole Bind, then Describe (portal), Execute, Sync
    // Sent by SendBehind behind another client's read; HandleClientFrame sends nothing for it.
    bool queued = false;
  };
  // Read pipelining for the extended protocol: the client's batch that ArmExtendedRead armed
  // for the frame at hand (and for it only: the Serve loop disarms it before the next frame),
  // `batch_size` bytes from its Parse or Bind to its Sync. Attach may send `run` behind another
  // client's read (SendBehind, which then sets `queued`); the Serve loop then takes the batch
  // whole. The buffers are reused, as PreparedRead's.
  struct ExtendedRead {
    bool armed = false;
    bool queued = false;
    bool from_parse = false;  // the batch starts with a Parse (answered with ParseComplete)
    bool describe = false;    // it has a Describe of the portal
    size_t batch_size = 0;
    std::string name;  // the statement's sg_ name, which the lane must hold
    std::string run;   // its Bind (renamed), [Describe,] Execute and Sync, as the server gets them
  };
  // Attach may send the armed read behind another (SendBehind); set around the attach.
  bool follow_read_ = false;
  // A read was sent alone (SendPreparedRead, or an extended batch at its Sync): a lane once it
  // is sent.
  bool lane_candidate_ = false;
  // An extended batch that began alone on the connection outside a transaction with a read (a
  // Parse of NoteUnnamedRead's, a Bind of a Prepared::read statement), and has sent only Binds
  // of it, Describes and Executes since: at its Sync, a lane candidate.
  bool read_batch_ = false;
  PreparedRead prepared_read_;
  ExtendedRead extended_read_;
  // The client's last extended batch that began, outside a transaction and with nothing
  // executed before it in the batch, with a Bind of a client's statement by its sg_ name (the
  // unnamed statement of a routed database, PQexecParams), as sent to the server up to its
  // Sync: if the server refuses that statement at the Bind (prepared before an ALTER changed its
  // result type: 0A000; deallocated: 26000), the proxy closes and prepares it anew and runs the
  // batch again, unseen, as PostgreSQL would have parsed it anew. Only a batch whose Bind has
  // its parameters in text (the statement prepared anew may type them differently) and that
  // describes its portal (the client learns the result's new types with the rows, instead of
  // decoding them by a description it got earlier). Another Bind, a Parse, a Close or a Query
  // before the Sync ends the recording (nothing is run again then).
  struct RenamedBatch {
    uint32_t id = 0;        // counts the batches recorded; the Bind's Item::batch
    bool open = false;      // recording, up to the Sync
    bool complete = false;  // recorded up to the Sync, not yet run again
    bool described = false;  // the batch describes its portal
    bool ran = false;       // since the last Sync or Query, a Bind, Execute or FunctionCall
                            // was sent: a Bind after it is not the batch's first
    std::string name;       // the sg_ statement
    std::string parse;      // its whole Parse message
    std::string messages;   // the Bind and what followed it, up to and including the Sync
  };
  RenamedBatch renamed_batch_;
  std::optional<CachedPortal> cached_portal_;

  // Sharded databases only (topology_ set).
  std::shared_ptr<Topology> topology_;
  uint64_t map_version_ = 0;     // Runtime::map_version() when topology_ was taken
  WriteGate* gate_ = nullptr;    // the database's write gate (resharding cutovers)
  std::optional<uint64_t> gate_epoch_;  // set while a transaction that wrote is open
  std::optional<routing::Planner> planner_;
  routing::Hints session_hints_;  // SET shardgate.shard / shardgate.key
  bool explain_ = false;          // SET shardgate.explain = on: a NOTICE per routed statement
  std::string held_begin_;        // BEGIN held until the first statement that routes
  bool held_read_only_ = false;
  bool held_failed_ = false;      // a statement failed before the held BEGIN reached a server
  int attached_shard_ = -1;
  bool attached_replica_ = false;
  int attached_replica_index_ = -1;  // counted in Topology's outstanding sessions
  bool drop_until_sync_ = false;  // the proxy refused a message: drop the rest up to Sync
  // Extended-protocol BEGIN/COMMIT/ROLLBACK answered by the proxy: the tag its Execute gets.
  std::optional<FanOutPortal> fanout_portal_;
  std::unique_ptr<CopyIn> copy_in_;
  std::unique_ptr<Distributed> dist_;
  std::string local_portal_tag_;
  std::string local_portal_sql_;
  bool local_portal_read_only_ = false;
  uint32_t any_shard_next_ = 0;
  asio::steady_timer progress_;   // woken by the pump after each batch it processed
  Settings settings_;          // what the client set (startup parameters and SET)
  Settings startup_settings_;  // from the startup packet (what RESET ALL returns to)
  Settings pending_settings_;  // set inside the current transaction ("" value = RESET)
  bool pending_reset_all_ = false;
  std::string last_tag_;       // last CommandComplete tag, to tell COMMIT from ROLLBACK
  std::map<std::string, std::string, std::less<>> startup_params_;
};

}  // namespace shardgate::proxy
