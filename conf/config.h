// The immutable configuration of a shardgate process, loaded and validated from YAML.
// Shared read-only between threads as std::shared_ptr<const Config>; a reload builds a new one.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "conf/node.h"

namespace shardgate::conf {

using Duration = std::chrono::milliseconds;

struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 5432;
  std::string dbname;  // server database name; empty = the logical database's name
  std::string user;    // server login; empty = the client's user
  std::string password;  // server password; empty = the client's user's password
  std::string zone;
  Mark mark;
};

struct ListenConfig {
  std::string host = "127.0.0.1";
  int port = 6432;
};

struct TlsConfig {
  std::string cert;  // PEM paths
  std::string key;
  bool Enabled() const { return !cert.empty() && !key.empty(); }
};

// How the proxy secures its connections to the servers, with libpq's sslmode meanings.
enum class SslMode {
  kDisable,     // plain TCP (the default)
  kPrefer,      // TLS when the server accepts the SSLRequest, else plain; no certificate check
  kRequire,     // TLS or fail; the certificate is not checked
  kVerifyCa,    // TLS, the server's chain checked against root_cert
  kVerifyFull,  // verify-ca, and the endpoint's host matched against the certificate's SAN/CN
};

// `server_tls:`: one setting for every server connection (pools, health checks, recovery).
struct ServerTlsConfig {
  SslMode sslmode = SslMode::kDisable;
  std::string root_cert;  // PEM CA certificate(s); required for verify-ca and verify-full
  std::string cert;       // optional client certificate (PEM) and its key
  std::string key;
  bool Enabled() const { return sslmode != SslMode::kDisable; }
  bool Verifies() const { return sslmode == SslMode::kVerifyCa || sslmode == SslMode::kVerifyFull; }
};

// The YAML spelling of a mode ("verify-full").
std::string_view SslModeName(SslMode mode);

enum class PoolMode { kTransaction, kSession };

// `rate_limit:` of a user or a database: a token bucket over the Query and Execute messages
// of its clients, shared by every worker of the proxy. Absent = no limit.
struct RateLimitConfig {
  enum class Mode { kError, kQueue };  // over the limit: 53400 at once | wait up to max_wait
  int64_t queries_per_second = 0;
  int64_t burst = 0;  // tokens the bucket holds; defaults to queries_per_second
  Mode mode = Mode::kError;
  Duration max_wait{1000};  // queue mode (and inside transactions): the longest wait
  Mark mark;
};
enum class AuthMethod { kScram, kMd5, kTrust };  // how the proxy asks a client to prove itself

struct UserConfig {
  std::string name;
  std::string password;  // plain, "md5..." or "SCRAM-SHA-256$..." verifier
  PoolMode pool_mode = PoolMode::kTransaction;
  AuthMethod auth = AuthMethod::kScram;  // key `auth: scram-sha-256 | md5 | trust`
  int max_connections = 0;               // 0 = no per-user limit
  std::optional<RateLimitConfig> rate_limit;
  Mark mark;
};

enum class ReadFrom { kReplicas, kPrimary, kAny };
enum class ReplicaBalance { kRoundRobin, kLeastOutstanding };

struct ShardConfig {
  std::string name;
  Endpoint primary;
  std::vector<Endpoint> replicas;
  Mark mark;
};

// A router's settings are kept as a Node: routing/ validates them per router type.
struct RouterConfig {
  std::string name;
  std::string type;  // modulo | range | directory | hash_ring | ...
  Node settings;     // the whole map, including `type`
  Mark mark;
};

struct TableConfig {
  std::string name;    // as written; may be schema-qualified
  std::string key;     // shard-key column; empty for reference tables
  std::string router;  // router name; empty for reference tables
  bool reference = false;
  // The shards generate the key (`shardctl sequence install`): an INSERT without the key column
  // (or with DEFAULT for it) goes to one of the router's shards, round robin per session.
  bool generated_key = false;
  // Query cache: reads of this table (alone or with other cached tables) are cached this long;
  // 0 = not cached unless a /* shardgate: cache=30s */ hint asks.
  Duration cache{0};
  Mark mark;
};

// `query_cache:` of a database: the result cache's memory bound. The cache is on when the
// section is present or a table sets `cache:`.
struct QueryCacheConfig {
  bool enabled = false;
  uint64_t memory = 64u << 20;    // bytes of cached answers, at most (LRU beyond)
  uint64_t max_entry = 1u << 20;  // a larger answer is not cached
};

struct Timeouts {
  Duration connect{5000};       // to a server
  Duration query{0};            // 0 = none
  Duration client_idle{0};      // idle client between transactions, 0 = none
  Duration idle_in_transaction{0};
  Duration server_idle{600000};  // pooled server closed after this idle time
  Duration client_login{15000};  // startup + auth must finish within this
  // A client that stops in the middle of a message (no byte for this long while part of one is
  // here) is disconnected with 08P01; 0 = never.
  Duration client_message{30000};
  Duration shutdown{30000};      // SIGTERM drain deadline
};

struct DatabaseConfig {
  std::string name;  // the logical database clients connect to
  int pool_size = 20;  // per server, per worker
  ReadFrom read_from = ReadFrom::kReplicas;
  ReplicaBalance replica_balance = ReplicaBalance::kRoundRobin;
  Duration max_replica_lag{5000};
  Duration health_check_interval{1000};
  // A server that does not answer two health checks in a row within this is marked down
  // (one late answer is a stall of a saturated machine): its shard's statements then fail at
  // once (the circuit breaker) instead of waiting for it.
  Duration health_check_timeout{2000};
  std::optional<std::string> default_shard;
  std::vector<ShardConfig> shards;
  std::map<std::string, RouterConfig> routers;
  std::map<std::string, TableConfig> tables;  // key: table name, lower-cased
  QueryCacheConfig query_cache;
  std::optional<RateLimitConfig> rate_limit;
  // Simple-protocol reads on one shard whose literals are all compared with columns
  // (`WHERE id = 42`) run as statements prepared on the server (Parse once per connection,
  // then Bind/Execute), which saves the server's parse and plan; so does the extended
  // protocol's unnamed statement when it is a read (unsharded databases: routed ones run every
  // statement under its sg_ name). On by default (since
  // 2026-12-06), as drivers that prepare on their own (pgx, asyncpg, JDBC after 5 runs) do: it
  // changes what the server logs and plans (generic plans), and inside a transaction a read
  // whose result type an ALTER changed fails with 0A000 like any prepared statement (outside
  // one the proxy prepares it anew and runs it again).
  bool prepare_reads = true;
  // Statements the proxy keeps prepared on one server connection (clients' prepared statements
  // and prepare_reads' reads): beyond it the least recently used is closed, and prepared again
  // when next needed. 0 = no limit.
  int max_prepared_statements = 200;
  // Read pipelining: while every server connection of a pool is busy, up to this many
  // prepare_reads reads (and extended-protocol reads) of other clients are sent on a
  // connection behind the read it is running, outside transactions, each answered in turn (the
  // server runs them back to back instead of one per round trip through the pool). 0 = off: a
  // client waits for a free connection, as in PgBouncer.
  int pipeline_reads = 0;
  Mark mark;

  const ShardConfig* FindShard(std::string_view name) const;
  bool Sharded() const { return shards.size() > 1 || !routers.empty(); }
};

struct AdminConfig {
  std::vector<std::string> users;
  std::optional<ListenConfig> http;  // /metrics and /healthz
};

struct Limits {
  int max_client_conn = 10000;
  uint32_t max_message_size = 256u << 20;
};

// Statements and transactions that span shards (fan-out, two-phase commit).
struct CrossShardConfig {
  // Writes on several shards (one statement or a transaction) commit with two-phase commit;
  // false: they are refused with 0A000 instead.
  bool two_phase = true;
  // The durable decision log of two-phase commits (fsynced before COMMIT PREPARED). Empty: the
  // directory of $STATE_DIRECTORY (systemd) or of the config file, file "shardgate-2pc.log".
  std::string decision_log;
  // Names this proxy in prepared transactions' ids ("sg_<node>_..."): recovery at start only
  // touches its own. Proxies sharing shards must have distinct names. Empty: "<host>_<port>"
  // of `listen`.
  std::string node;
  uint64_t merge_memory = 256u << 20;  // bytes a merge may hold (GROUP BY, DISTINCT)
};

// What `shardctl reshard` needs besides the shard maps.
struct ReshardConfig {
  // The proxies a cutover pauses and switches (their admin consoles). Empty: `listen`.
  std::vector<ListenConfig> proxies;
  // The server role shardctl uses on the shards: it needs REPLICATION and must own the moving
  // tables (or be a superuser). Its password: `password`, else that user's entry in `users:`
  // (when plain), else libpq's PGPASSWORD or ~/.pgpass.
  std::string user = "postgres";
  std::string password;
  // Where progress is kept so that a killed shardctl resumes. Empty: "<config file>.reshard".
  std::string state;
  Duration pause_max{5000};  // the longest writes may wait during a cutover
};

struct Config {
  std::string path;  // the file it was loaded from
  ListenConfig listen;
  int workers = 0;  // 0 = one per core
  // This proxy's zone (availability zone, rack): replica reads prefer healthy replicas whose
  // endpoint has the same `zone:`, and use the others only when none of those is healthy.
  std::string zone;
  // Names this proxy in the ids `SELECT shardgate.next_id()` answers (0..1023): proxies that
  // must not hand out the same id need distinct node ids.
  int node_id = 0;
  AdminConfig admin;
  TlsConfig tls;
  ServerTlsConfig server_tls;
  std::vector<UserConfig> users;
  std::map<std::string, DatabaseConfig> databases;
  Timeouts timeouts;
  Limits limits;
  CrossShardConfig cross_shard;
  ReshardConfig reshard;

  const UserConfig* FindUser(std::string_view name) const;
  const DatabaseConfig* FindDatabase(std::string_view name) const;
  bool IsAdmin(std::string_view user) const;
};

// Loads and validates a file. Every problem is reported, one "FILE:LINE:COLUMN: message" per
// line, in the status message (kInvalidArgument); unknown keys are errors, not ignored.
absl::StatusOr<std::shared_ptr<const Config>> LoadFile(const std::string& path);
// The same from text; `name` is used as the file name in errors.
absl::StatusOr<std::shared_ptr<const Config>> LoadString(std::string_view yaml,
                                                         const std::string& name = "<string>");

}  // namespace shardgate::conf
