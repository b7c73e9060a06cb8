// Helpers for the sharded proxy's integration tests (issue 4): a cluster of several shards with
// a chosen number of replicas each and pg_stat_statements loaded everywhere (to count where
// statements ran), shardgate in front, and the routing library's own ShardMap built from the same
// YAML as the oracle for "which shard owns this key".
#pragma once

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "conf/config.h"
#include "routing/key_value.h"
#include "routing/shard_map.h"
#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {

// ---------------------------------------------------------------------------------------------
// libpq outcomes with every field a test may want to compare (SQLSTATE, message, hint, rows).

struct Outcome {
  bool ok = false;
  std::string sqlstate;  // "" when ok; kNoSqlState when libpq made the error up
  std::string message, hint;
  std::vector<std::vector<std::string>> rows;

  std::string Describe() const {
    if (ok) return absl::StrCat("OK, ", rows.size(), " row(s)");
    return absl::StrCat(sqlstate, ": ", message, hint.empty() ? "" : " HINT: ", hint);
  }
  // First cell, or "" when there is none.
  std::string Scalar() const {
    return rows.empty() || rows.front().empty() ? std::string() : rows.front().front();
  }
};

inline Outcome OutcomeOf(PGconn* conn, PGresult* raw) {
  PgResult res(raw);
  Outcome out;
  const absl::Status st = ResultStatus(res.get(), conn);
  if (st.ok()) {
    out.ok = true;
    if (res != nullptr) out.rows = PgConn::RowsOf(res.get());
    return out;
  }
  out.sqlstate = SqlState(st);
  out.message = std::string(st.message());
  if (res != nullptr) {
    if (const char* h = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_HINT); h != nullptr) {
      out.hint = h;
    }
    if (const char* m = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY); m != nullptr) {
      out.message = m;
    }
  }
  return out;
}

// Simple protocol.
inline Outcome RunSql(const PgConn& conn, const std::string& sql) {
  return OutcomeOf(conn.get(), PQexec(conn.get(), sql.c_str()));
}

// Extended protocol, text parameters.
inline Outcome RunParams(const PgConn& conn, const std::string& sql,
                         const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  return OutcomeOf(conn.get(),
                   PQexecParams(conn.get(), sql.c_str(), static_cast<int>(params.size()), nullptr,
                                values.data(), nullptr, nullptr, 0));
}

// Extended protocol, one int8 parameter sent in binary (type oid 20, big-endian).
inline Outcome RunBinaryInt8(const PgConn& conn, const std::string& sql, int64_t key) {
  uint64_t v = static_cast<uint64_t>(key);
  char be[8];
  for (int i = 7; i >= 0; --i) {
    be[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  const Oid types[1] = {20};
  const char* values[1] = {be};
  const int lengths[1] = {8};
  const int formats[1] = {1};
  return OutcomeOf(conn.get(),
                   PQexecParams(conn.get(), sql.c_str(), 1, types, values, lengths, formats, 0));
}

// Collects the NOTICE messages a connection receives (replaces PgConn's silent processor).
class NoticeLog {
 public:
  void Attach(const PgConn& conn) { PQsetNoticeReceiver(conn.get(), &NoticeLog::Receive, this); }
  const std::vector<std::string>& messages() const { return messages_; }
  void Clear() { messages_.clear(); }

 private:
  static void Receive(void* self, const PGresult* res) {
    const char* m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    static_cast<NoticeLog*>(self)->messages_.push_back(m != nullptr ? m : "");
  }
  std::vector<std::string> messages_;
};

// ---------------------------------------------------------------------------------------------
// The cluster

struct ShardedEnvOptions {
  // Replicas per shard; the size is the number of shards.
  std::vector<int> replicas = {2, 1, 0};
  // Inside the database map, indented by 4 spaces (routers:, tables:, health settings...).
  std::string extra_database_yaml;
  std::string extra_top_yaml;
  int workers = 0;  // 0 = ShardgateYaml's 2
};

// Which server of a shard: the primary or replica i.
struct ServerRef {
  int shard = 0;
  int replica = -1;  // -1 = the primary
};

// A multi-shard cluster and shardgate in front. Contract: one test thread drives it; reader
// threads only use their own PgConn.
class ShardedEnv {
 public:
  std::unique_ptr<PgCluster> cluster;
  std::unique_ptr<ShardgateProcess> proxy;
  std::shared_ptr<const conf::Config> config;
  std::shared_ptr<const routing::ShardMap> map;
  ShardedEnvOptions options;
  std::optional<int> exit_code;

  static absl::StatusOr<std::unique_ptr<ShardedEnv>> Start(const ShardedEnvOptions& o) {
    auto env = std::make_unique<ShardedEnv>();
    env->options = o;
    const int n = static_cast<int>(o.replicas.size());
    ASSIGN_OR_RETURN(env->cluster, PgCluster::Start(n, 0));
    // pg_stat_statements needs shared_preload_libraries, so each primary restarts once before
    // its replicas are cloned from it (they inherit postgresql.auto.conf and the extension).
    std::vector<absl::Status> results(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back(
          [&env, &results, &o, i] { results[i] = env->PrepareShard(i, o.replicas[i]); });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < n; ++i) {
      if (!results[i].ok()) {
        return absl::Status(results[i].code(),
                            absl::StrCat("shard s", i, ": ", results[i].message()));
      }
    }
    RETURN_IF_ERROR(env->StartProxy());
    return env;
  }

  // The YAML shardgate runs with (listening on `port`), optionally with another database body.
  std::string Yaml(int port) const { return Yaml(port, options.extra_database_yaml); }
  std::string Yaml(int port, const std::string& extra_database_yaml,
                   int admin_http_port = 0) const {
    ProxyEnvOptions p;
    p.admin_http_port = admin_http_port;
    p.workers = options.workers;
    p.extra_database_yaml = extra_database_yaml;
    p.extra_top_yaml = options.extra_top_yaml;
    return ProxyYaml(*cluster, port, p);
  }

  // (Re)starts shardgate on a fresh port; the oracle ShardMap is rebuilt from the same text.
  absl::Status StartProxy(const ShardedEnvOptions& o) {
    options = o;
    return StartProxy();
  }
  absl::Status StartProxy() {
    proxy.reset();
    exit_code.reset();
    const int port = FreePort();
    const std::string yaml = Yaml(port);
    ASSIGN_OR_RETURN(config, conf::LoadString(yaml, "sharded-test.yaml"));
    const conf::DatabaseConfig* db = config->FindDatabase("app");
    if (db == nullptr) return absl::InternalError("no database app in the test YAML");
    ASSIGN_OR_RETURN(map, routing::ShardMap::Build(*db));
    ASSIGN_OR_RETURN(proxy, ShardgateProcess::Start(yaml, port));
    return absl::OkStatus();
  }

  bool ProxyAlive() {
    if (proxy == nullptr || proxy->pid() <= 0) return false;
    auto r = proxy->Wait(0);
    if (r.ok()) exit_code = *r;
    return !r.ok() && r.status().code() == absl::StatusCode::kDeadlineExceeded;
  }
  std::string ProxyLogTail(size_t n = 8000) const {
    if (proxy == nullptr) return "(no shardgate)";
    std::string log = proxy->Log();
    return log.size() <= n ? log : "..." + log.substr(log.size() - n);
  }

  int shard_count() const { return static_cast<int>(options.replicas.size()); }
  static std::string ShardName(int shard) { return absl::StrCat("s", shard); }

  PgServer& Server(ServerRef ref) {
    ShardServers& s = cluster->shard(ref.shard);
    return ref.replica < 0 ? *s.primary : *s.replicas.at(ref.replica);
  }
  PgServer& primary(int shard) { return *cluster->shard(shard).primary; }
  int replica_count(int shard) { return static_cast<int>(cluster->shard(shard).replicas.size()); }

  // Through shardgate as app/app_pw.
  std::string ConnString(const std::string& extra = "") const {
    std::string s = proxy->ConnString("app", kScramUser, kScramPassword);
    if (!extra.empty()) absl::StrAppend(&s, " ", extra);
    return s;
  }
  absl::StatusOr<PgConn> Connect(const std::string& extra = "") const {
    return PgConn::Connect(ConnString(extra));
  }
  // The admin console (virtual database "shardgate").
  absl::StatusOr<PgConn> ConnectAdmin() const {
    return PgConn::Connect(proxy->ConnString("shardgate", "admin", "admin"));
  }
  // Straight to one server, bypassing shardgate, as app.
  absl::StatusOr<PgConn> ConnectDirect(ServerRef ref) {
    return PgConn::Connect(Server(ref).ConnString("app", kScramUser, kScramPassword));
  }

  // Runs `sql` as app on every shard's primary directly (schema set-up: DDL is not what these
  // tests are about, and a keyless CREATE TABLE through shardgate is a multi-shard statement).
  absl::Status ExecOnPrimaries(const std::string& sql) {
    for (int i = 0; i < shard_count(); ++i) {
      ASSIGN_OR_RETURN(PgConn c, ConnectDirect({i, -1}));
      absl::Status st = c.Exec(sql);
      if (!st.ok()) return absl::Status(st.code(), absl::StrCat("s", i, ": ", st.message()));
    }
    return absl::OkStatus();
  }

  // Waits until every running replica has replayed its primary's current WAL position.
  absl::Status CatchUp(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    for (int i = 0; i < shard_count(); ++i) {
      if (primary(i).pid() == 0) continue;
      // The insert position, not pg_current_wal_lsn(): with synchronous_commit = off (the test
      // servers) a commit just made may not be written yet, and a replica that reached the
      // write position could still miss it (the cause of a flaky stale read).
      auto lsn = primary(i).Query("SELECT pg_current_wal_insert_lsn()");
      if (!lsn.ok()) return lsn.status();
      for (int r = 0; r < replica_count(i); ++r) {
        PgServer& rep = Server({i, r});
        if (rep.pid() == 0) continue;
        const std::string probe =
            absl::StrCat("SELECT pg_is_in_recovery() = false OR pg_last_wal_replay_lsn() >= '",
                         *lsn, "'::pg_lsn");
        if (!WaitFor(
                [&] {
                  auto v = rep.Query(probe);
                  return v.ok() && *v == "t";
                },
                timeout)) {
          return absl::DeadlineExceededError(
              absl::StrCat("replica ", r, " of s", i, " did not reach ", *lsn));
        }
      }
    }
    return absl::OkStatus();
  }

  // The shard the routing library says owns `key` of `table` (-1 with an error message in
  // *why when the table is unknown or the router refuses the key).
  int ShardOf(const std::string& table, const routing::KeyValue& key, std::string* why = nullptr) {
    const routing::ShardMap::Table* t = map->FindTable("", table);
    if (t == nullptr || t->router == nullptr) {
      if (why != nullptr) *why = absl::StrCat("no sharded table ", table);
      return -1;
    }
    auto s = t->router->Route(key);
    if (!s.ok()) {
      if (why != nullptr) *why = s.status().ToString();
      return -1;
    }
    return *s;
  }
  int ShardOf(const std::string& table, int64_t key) {
    return ShardOf(table, routing::KeyValue::Int(key));
  }

  // The first `count` integer keys >= `from` that `table`'s router puts on `shard` (bounded
  // search: 100000 candidates).
  std::vector<int64_t> KeysOn(const std::string& table, int shard, int count, int64_t from = 1) {
    std::vector<int64_t> keys;
    for (int64_t k = from; k < from + 100000 && static_cast<int>(keys.size()) < count; ++k) {
      if (ShardOf(table, k) == shard) keys.push_back(k);
    }
    return keys;
  }

  // pg_stat_statements: calls of statements in database app whose text matches the ILIKE
  // `pattern`, on one server (0 when none ran). -1 when the server cannot be asked.
  int64_t Calls(ServerRef ref, const std::string& pattern) {
    auto v =
        Server(ref).Query(absl::StrCat("SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
                                       "JOIN pg_database d ON d.oid = s.dbid "
                                       "WHERE d.datname = 'app' AND s.query ILIKE '",
                                       pattern, "'"),
                          "postgres");
    if (!v.ok() || v->empty()) return -1;
    return std::stoll(*v);
  }
  // Calls() of every server of `shard`: [primary, replica 0, replica 1, ...].
  std::vector<int64_t> ShardCalls(int shard, const std::string& pattern) {
    std::vector<int64_t> out{Calls({shard, -1}, pattern)};
    for (int r = 0; r < replica_count(shard); ++r) out.push_back(Calls({shard, r}, pattern));
    return out;
  }

 private:
  absl::Status PrepareShard(int shard, int replicas) {
    PgServer& p = primary(shard);
    RETURN_IF_ERROR(
        p.Query("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'", "postgres")
            .status());
    RETURN_IF_ERROR(p.Stop());
    RETURN_IF_ERROR(p.Restart());
    RETURN_IF_ERROR(
        p.Query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "postgres").status());
    for (int r = 0; r < replicas; ++r) {
      ASSIGN_OR_RETURN(auto replica, PgServer::StartReplica(p));
      cluster->shard(shard).replicas.push_back(std::move(replica));
    }
    return absl::OkStatus();
  }
};

// Element-wise b - a (for before/after counters).
inline std::vector<int64_t> Delta(const std::vector<int64_t>& before,
                                  const std::vector<int64_t>& after) {
  std::vector<int64_t> d;
  for (size_t i = 0; i < after.size(); ++i)
    d.push_back(after[i] - (i < before.size() ? before[i] : 0));
  return d;
}
inline std::string Show(const std::vector<int64_t>& v) {
  return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
}

// The sharded suites: `Derived` defines `static ShardedEnvOptions Options()` (see EnvSuite).
template <typename Derived>
class ShardedSuite : public EnvSuite<Derived, ShardedEnv, ShardedEnvOptions> {
  using Base = EnvSuite<Derived, ShardedEnv, ShardedEnvOptions>;

 protected:
  // SetUpTestSuite of a suite that needs only its tables: the cluster and shardgate, `sql` on
  // every primary, the replicas caught up.
  static void SetUpWithSchema(const std::string& sql) {
    Base::SetUpTestSuite();
    if (Base::env_ == nullptr) return;
    absl::Status st = Base::env_->ExecOnPrimaries(sql);
    if (st.ok()) st = Base::env_->CatchUp();
    if (!st.ok()) Base::FailSetUp(st, "schema");
  }
};

// ---------------------------------------------------------------------------------------------
// The routing suite (sharded_routing_test.cc, sharded_readwrite_test.cc): three shards, s0 with
// two replicas, s1 with one, s2 with none (its reads fall back to the primary); one table per
// router type, probes for the read/write split and transactions, a reference table and an
// unlisted table that goes to default_shard s1.

inline constexpr int kDirectoryTenants = 200;  // tenant_000..tenant_199
inline constexpr int kDirectoryListed = 180;   // the rest fall to the router's default (s2)
inline constexpr int64_t kRangeBound1 = 1500, kRangeBound2 = 4000;

inline std::string TenantName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "tenant_%03d", i);
  return buf;
}
// The shard the directory's inline entries give tenant i (unlisted ones: -1).
inline int TenantEntryShard(int i) { return i < kDirectoryListed ? (i + i / 7) % 3 : -1; }

inline ShardedEnvOptions RoutingSuiteOptions() {
  ShardedEnvOptions o;
  o.replicas = {2, 1, 0};
  std::string entries;
  for (int i = 0; i < kDirectoryListed; ++i) {
    absl::StrAppend(&entries, i == 0 ? "" : ", ", TenantName(i), ": s", TenantEntryShard(i));
  }
  o.extra_database_yaml = absl::StrCat(
      "    health_check_interval: 500ms\n"
      "    default_shard: s1\n"
      "    routers:\n"
      "      r_modulo: {type: modulo, hash: postgres, shards: [s0, s1, s2]}\n"
      "      r_range: {type: range, ranges: [{to: ",
      kRangeBound1, ", shard: s0}, {to: ", kRangeBound2,
      ", shard: s1}, {shard: s2}]}\n"
      "      r_dir: {type: directory, entries: {",
      entries,
      "}, default: s2}\n"
      "      r_ring: {type: hash_ring, shards: [s0, s1, s2], vnodes: 64}\n"
      "    tables:\n"
      "      t_modulo: {key: id, router: r_modulo}\n"
      "      t_range: {key: id, router: r_range}\n"
      "      t_dir: {key: tenant, router: r_dir}\n"
      "      t_ring: {key: id, router: r_ring}\n"
      "      rw_probe: {key: id, router: r_modulo}\n"
      "      tx_probe: {key: id, router: r_modulo}\n"
      "      ext_probe: {key: id, router: r_ring}\n"
      "      countries: {reference: true}\n");
  return o;
}

inline constexpr char kRoutingSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS t_modulo (id bigint PRIMARY KEY, v text);
CREATE TABLE IF NOT EXISTS t_range (id bigint PRIMARY KEY, v text);
CREATE TABLE IF NOT EXISTS t_dir (tenant text PRIMARY KEY, v text);
CREATE TABLE IF NOT EXISTS t_ring (id bigint PRIMARY KEY, v text);
CREATE TABLE IF NOT EXISTS rw_probe (id bigint PRIMARY KEY, v text);
CREATE TABLE IF NOT EXISTS tx_probe (id bigint PRIMARY KEY, v text);
CREATE TABLE IF NOT EXISTS ext_probe (id bigint PRIMARY KEY, v text);
CREATE TABLE IF NOT EXISTS countries (code text PRIMARY KEY, name text);
CREATE TABLE IF NOT EXISTS plain_notes (id bigint, note text);
CREATE TABLE IF NOT EXISTS hp_check (id bigint) PARTITION BY HASH (id);
)sql";

// The suite of the routing tests (two files share its cluster and shardgate).
class ShardedRoutingTest : public ShardedSuite<ShardedRoutingTest> {
 public:
  static ShardedEnvOptions Options() { return RoutingSuiteOptions(); }

 protected:
  static void SetUpTestSuite() { SetUpWithSchema(kRoutingSchema); }
};

}  // namespace shardgate::testing
