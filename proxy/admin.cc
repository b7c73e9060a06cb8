// The admin console: the virtual database "shardgate", answered by the proxy itself over the
// simple protocol: SHOW VERSION/SHARDS/POOLS/CLIENTS/SERVERS/STATS/CONFIG/ROUTE <sql>/RESHARD/
// RATE LIMITS/HOT KEYS [db],
// RELOAD, SHUTDOWN, PAUSE/RESUME [db] and the resharding hooks (RESHARD PAUSE/SWITCH/RESUME/
// PROGRESS).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/hot_key_report.h"
#include "proxy/io.h"
#include "proxy/pool.h"
#include "proxy/runtime.h"
#include "proxy/strings.h"
#include "proxy/worker.h"
#include "routing/planner.h"

namespace shardgate::proxy {

namespace p = protocol;

namespace {

void AppendTable(std::string& out, const std::vector<std::string>& columns,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<p::FieldDescription> fields;
  for (const auto& c : columns) {
    p::FieldDescription f;
    f.name = c;
    f.type_oid = 25;  // text
    f.type_size = -1;
    f.type_modifier = -1;
    fields.push_back(f);
  }
  p::AppendRowDescription(out, fields);
  for (const auto& row : rows) {
    std::vector<std::optional<std::string_view>> values(row.begin(), row.end());
    p::AppendDataRow(out, values);
  }
  p::AppendCommandComplete(out, absl::StrCat("SHOW ", rows.size()));
}

// SHOW ROUTE <sql>: the plan for `sql` in `database` as rows (shard, role, reason).
absl::Status ShowRoute(Runtime& runtime, routing::AnalysisCache& cache, std::string_view sql,
                       std::string& out) {
  auto config = runtime.config();
  if (config->databases.empty()) return PgStatus("3D000", "no databases configured");
  const std::string& database = config->databases.begin()->first;
  auto topology = runtime.topology(database);
  std::shared_ptr<const routing::ShardMap> map;
  if (topology) {
    map = topology->map();
  } else {
    auto built = routing::ShardMap::Build(config->databases.begin()->second);
    if (!built.ok()) return built.status();
    map = *built;
  }
  auto analyzed = cache.Analyze(sql);
  if (!analyzed.ok()) return analyzed.status();
  routing::PlanInput input;
  input.literals = analyzed->literals;
  auto hints = routing::ParseCommentHints(sql);
  if (!hints.ok()) return hints.status();
  input.hints = *hints;
  routing::Planner planner(map);
  auto plan = planner.Plan(*analyzed->analysis, input);
  if (!plan.ok()) return plan.status();
  std::vector<std::vector<std::string>> rows;
  for (int s : plan->shards) {
    rows.push_back({map->shard_name(s), std::string(routing::RoleName(plan->role)),
                    std::string(routing::SpreadName(plan->spread)), plan->reason});
  }
  AppendTable(out, {"shard", "role", "spread", "reason"}, rows);
  return absl::OkStatus();
}

void ShowShards(Runtime& runtime, std::string& out) {
  auto config = runtime.config();
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, db] : config->databases) {
    auto topology = runtime.topology(name);
    for (size_t s = 0; s < db.shards.size(); ++s) {
      const auto& shard = db.shards[s];
      const int promoted = topology ? topology->Promoted(static_cast<int>(s)) : -1;
      rows.push_back({name, shard.name, "primary",
                      absl::StrCat(shard.primary.host, ":", shard.primary.port),
                      topology && !topology->PrimaryHealthy(static_cast<int>(s)) ? "down" : "up",
                      promoted < 0 ? "yes" : "no", "", "", shard.primary.zone});
      for (size_t r = 0; r < shard.replicas.size(); ++r) {
        const int si = static_cast<int>(s), ri = static_cast<int>(r);
        const bool ok = !topology || topology->ReplicaHealthy(si, ri);
        const int64_t bytes = topology ? topology->ReplicaLagBytes(si, ri) : -1;
        const int64_t ms = topology ? topology->ReplicaLagMs(si, ri) : -1;
        rows.push_back({name, shard.name, "replica",
                        absl::StrCat(shard.replicas[r].host, ":", shard.replicas[r].port),
                        ok ? "up" : "skipped", promoted == ri ? "yes" : "no",
                        bytes < 0 ? "" : absl::StrCat(bytes), ms < 0 ? "" : absl::StrCat(ms),
                        shard.replicas[r].zone});
      }
    }
  }
  AppendTable(out, {"database", "shard", "role", "address", "state", "takes_writes",
                    "lag_bytes", "lag_ms", "zone"},
              rows);
}

std::string Num(int64_t v) { return absl::StrCat(v); }

// SHOW POOLS, with PgBouncer's columns: one row per logical database and server user, summed
// over its servers (every shard and replica) and workers; `servers` says how many servers.
// maxwait/maxwait_us: the longest current wait for a server (seconds, and the microseconds
// beyond). Always 0 here: the cancel-request columns (cancels are forwarded at once) and
// sv_used/sv_tested (a pooled connection is checked on checkout, it has no such state).
asio::awaitable<void> ShowPools(Runtime& runtime, std::string& out) {
  struct Row {
    int64_t cl_active = 0, cl_waiting = 0, sv_active = 0, sv_idle = 0, sv_login = 0;
    std::chrono::microseconds maxwait{0};
    std::set<std::string> servers;
    std::string pool_mode;
  };
  std::map<std::pair<std::string, std::string>, Row> rows;
  auto config = runtime.config();
  co_await VisitWorkers(runtime.workers, [&](Worker& w) {
    w.pools().ForEach([&](const Pool& pool) {
      const BackendTarget& t = pool.target();
      Row& r = rows[{t.database, t.user}];
      r.cl_waiting += pool.waiting();
      r.sv_idle += pool.idle();
      r.sv_login += pool.connecting();
      r.sv_active += pool.open() - pool.idle() - pool.connecting();
      r.maxwait = std::max(r.maxwait, pool.max_wait());
      r.servers.insert(t.Key());
    });
    for (ClientSession* s : w.sessions()) {
      ClientSession::Info info = s->Describe();
      if (info.admin || info.database.empty()) continue;
      Row& r = rows[{info.database, info.servers.empty() ? info.user : info.servers[0].user}];
      if (info.state == "active") ++r.cl_active;
      if (const conf::UserConfig* u = config->FindUser(info.user)) {
        r.pool_mode = u->pool_mode == conf::PoolMode::kSession ? "session" : "transaction";
      }
    }
  });
  std::vector<std::vector<std::string>> table;
  for (const auto& [key, r] : rows) {
    const int64_t us = r.maxwait.count();
    table.push_back({key.first, key.second, Num(r.cl_active), Num(r.cl_waiting), "0", "0",
                     Num(r.sv_active), "0", "0", Num(r.sv_idle), "0", "0", Num(r.sv_login),
                     Num(us / 1000000), Num(us % 1000000),
                     r.pool_mode.empty() ? "transaction" : r.pool_mode,
                     Num(static_cast<int64_t>(r.servers.size()))});
  }
  AppendTable(out, {"database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
                    "cl_waiting_cancel_req", "sv_active", "sv_active_cancel", "sv_being_canceled",
                    "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us",
                    "pool_mode", "servers"},
              table);
}

// SHOW CLIENTS and SHOW SERVERS, with PgBouncer's columns where the concept is the same.
asio::awaitable<void> ShowClients(Runtime& runtime, bool servers, std::string& out) {
  std::vector<std::vector<std::string>> table;
  co_await VisitWorkers(runtime.workers, [&](Worker& w) {
    for (ClientSession* s : w.sessions()) {
      ClientSession::Info info = s->Describe();
      if (!servers) {
        table.push_back({"C", info.user, info.admin ? "shardgate" : info.database, info.state,
                         info.addr, Num(info.port), Num(info.connect_time),
                         Num(info.request_time), info.tls ? "yes" : "no",
                         info.application_name,
                         info.servers.empty() ? "" : info.servers[0].shard});
        continue;
      }
      for (const auto& sv : info.servers) {
        table.push_back({"S", sv.user, info.database, "active", sv.address, sv.shard,
                         Num(sv.pid), info.user});
      }
    }
    if (!servers) return;
    w.pools().ForEach([&](const Pool& pool) {
      const BackendTarget& t = pool.target();
      pool.ForEachIdle([&](const ServerConnection& c) {
        table.push_back({"S", t.user, t.database, "idle", absl::StrCat(t.host, ":", t.port),
                         t.shard, Num(c.pid()), ""});
      });
    });
  });
  if (servers) {
    AppendTable(out, {"type", "user", "database", "state", "addr", "shard", "remote_pid",
                      "client_user"},
                table);
  } else {
    AppendTable(out, {"type", "user", "database", "state", "addr", "port", "connect_time",
                      "request_time", "tls", "application_name", "shard"},
                table);
  }
}

// SHOW STATS: totals per logical database since start, PgBouncer's total_* columns.
asio::awaitable<void> ShowStats(Runtime& runtime, std::string& out) {
  std::map<std::string, DatabaseStats> totals;
  co_await VisitWorkers(runtime.workers, [&](Worker& w) {
    for (const auto& [key, st] : w.all_stats()) totals[key.first].Add(st);
  });
  std::vector<std::vector<std::string>> table;
  for (const auto& [db, t] : totals) {
    table.push_back({db, Num(t.xacts), Num(t.queries), Num(t.received), Num(t.sent)});
  }
  AppendTable(out, {"database", "total_xact_count", "total_query_count", "total_received",
                    "total_sent"},
              table);
}

// SHOW HOT KEYS [db]: the ten hottest shard keys of each sharded table, summed over workers;
// share is the percent of the table's routed keys (both halved every minute).
asio::awaitable<void> ShowHotKeys(Runtime& runtime, std::string_view database, std::string& out) {
  std::vector<HotKeyRow> rows = co_await CollectHotKeys(runtime, 10, database);
  std::vector<std::vector<std::string>> table;
  for (const HotKeyRow& r : rows) {
    // Percent with one decimal; merged counts may overestimate past the total.
    const uint64_t tenths =
        r.table_total ? std::min<uint64_t>(1000, r.queries * 1000 / r.table_total) : 0;
    table.push_back({r.database, r.table, r.key, r.shard, absl::StrCat(r.queries),
                     absl::StrCat(r.error), absl::StrCat(tenths / 10, ".", tenths % 10)});
  }
  AppendTable(out, {"database", "table", "key", "shard", "queries", "error", "share"}, table);
}

// SHOW CONFIG: the settings in force (key, value, default, changeable by RELOAD).
void ShowConfig(Runtime& runtime, std::string& out) {
  auto c = runtime.config();
  const conf::Config d;
  auto ms = [](std::chrono::milliseconds v) { return absl::StrCat(v.count(), "ms"); };
  std::vector<std::vector<std::string>> rows = {
      {"config_file", runtime.config_path, "", "no"},
      {"listen", absl::StrCat(c->listen.host, ":", c->listen.port),
       absl::StrCat(d.listen.host, ":", d.listen.port), "no"},
      {"workers", Num(c->workers), Num(d.workers), "no"},
      {"admin.users", absl::StrJoin(c->admin.users, ","), "", "yes"},
      {"tls", c->tls.Enabled() ? "on" : "off", "off", "no"},
      // Paths only (never file contents); the key's path is not shown either.
      {"server_tls.sslmode", std::string(conf::SslModeName(c->server_tls.sslmode)), "disable",
       "yes"},
      {"server_tls.root_cert", c->server_tls.root_cert, "", "yes"},
      {"server_tls.cert", c->server_tls.cert, "", "yes"},
      {"server_tls.key", c->server_tls.key.empty() ? "" : "(set)", "", "yes"},
      {"timeouts.connect", ms(c->timeouts.connect), ms(d.timeouts.connect), "yes"},
      {"timeouts.query", ms(c->timeouts.query), ms(d.timeouts.query), "yes"},
      {"timeouts.server_idle", ms(c->timeouts.server_idle), ms(d.timeouts.server_idle), "yes"},
      {"timeouts.client_message", ms(c->timeouts.client_message), ms(d.timeouts.client_message),
       "yes"},
      {"timeouts.shutdown", ms(c->timeouts.shutdown), ms(d.timeouts.shutdown), "yes"},
      {"limits.max_client_conn", Num(c->limits.max_client_conn), Num(d.limits.max_client_conn),
       "yes"},
      {"limits.max_message_size", Num(c->limits.max_message_size),
       Num(d.limits.max_message_size), "yes"},
      {"cross_shard.two_phase", c->cross_shard.two_phase ? "on" : "off",
       d.cross_shard.two_phase ? "on" : "off", "yes"},
      {"map_version", Num(static_cast<int64_t>(runtime.map_version())), "", "no"},
  };
  const conf::DatabaseConfig defaults;
  for (const auto& [name, db] : c->databases) {
    rows.push_back({absl::StrCat("databases.", name, ".pool_size"), Num(db.pool_size),
                    Num(defaults.pool_size), "yes"});
    rows.push_back({absl::StrCat("databases.", name, ".shards"), Num(db.shards.size()), "",
                    "yes"});
    rows.push_back({absl::StrCat("databases.", name, ".prepare_reads"),
                    db.prepare_reads ? "on" : "off", defaults.prepare_reads ? "on" : "off",
                    "yes"});
    rows.push_back({absl::StrCat("databases.", name, ".max_prepared_statements"),
                    Num(db.max_prepared_statements), Num(defaults.max_prepared_statements), "yes"});
    rows.push_back({absl::StrCat("databases.", name, ".pipeline_reads"),
                    Num(db.pipeline_reads), Num(defaults.pipeline_reads), "yes"});
  }
  AppendTable(out, {"key", "value", "default", "changeable"}, rows);
}

// PAUSE [db]: new transactions wait; answers once no client of the database(s) holds a
// server. RESUME [db] lets them go. As PgBouncer's, except that idle servers stay open.
asio::awaitable<absl::Status> PauseDatabases(Runtime& runtime, const std::vector<std::string>& words,
                                             bool pause, std::string& out) {
  std::vector<std::string> dbs;
  if (words.size() == 2) {
    if (runtime.config()->FindDatabase(words[1]) == nullptr) {
      co_return PgStatus("3D000", absl::StrCat("database \"", words[1], "\" does not exist"));
    }
    dbs.push_back(words[1]);
  } else if (words.size() == 1) {
    for (const auto& [name, db] : runtime.config()->databases) dbs.push_back(name);
  } else {
    co_return PgStatus("42601", pause ? "usage: PAUSE [db]" : "usage: RESUME [db]");
  }
  for (const auto& db : dbs) {
    if (pause) {
      runtime.gate(db).Suspend();
    } else {
      runtime.gate(db).Unsuspend();
    }
  }
  if (pause) {
    asio::steady_timer tick(co_await asio::this_coro::executor);
    for (;;) {
      int busy = 0;
      co_await VisitWorkers(runtime.workers, [&](Worker& w) {
        for (ClientSession* s : w.sessions()) {
          ClientSession::Info info = s->Describe();
          if (!info.admin && info.state == "active" &&
              std::find(dbs.begin(), dbs.end(), info.database) != dbs.end()) {
            ++busy;
          }
        }
      });
      if (busy == 0 || runtime.shutting_down.load()) break;
      tick.expires_after(std::chrono::milliseconds(5));
      co_await tick.async_wait(kTuple);
    }
  }
  p::AppendCommandComplete(out, pause ? "PAUSE" : "RESUME");
  co_return absl::OkStatus();
}

std::vector<std::string> Words(std::string_view sql) {
  std::vector<std::string> words;
  for (absl::string_view w : absl::StrSplit(AbslView(sql), absl::ByAnyChar(" \t\r\n"),
                                            absl::SkipEmpty())) {
    words.emplace_back(w);
  }
  return words;
}

void ShowReshard(Runtime& runtime, std::string& out) {
  const auto progress = runtime.reshard_progress();
  const auto now = std::chrono::system_clock::now();
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, db] : runtime.config()->databases) {
    WriteGate& gate = runtime.gate(name);
    const bool paused = gate.Paused();
    std::set<std::string> tables = paused ? gate.Tables() : std::set<std::string>{};
    std::vector<std::string> row = {name, absl::StrCat(runtime.map_version()),
                                    paused ? "yes" : "no", absl::StrJoin(tables, ","),
                                    absl::StrCat(gate.Draining())};
    auto it = progress.find(name);
    if (it == progress.end()) {
      row.insert(row.end(), {"", "", "", "", ""});
    } else {
      const auto& pr = it->second;
      row.insert(row.end(),
                 {pr.phase, absl::StrCat(pr.rows_copied), absl::StrCat(pr.source_rows),
                  absl::StrCat(pr.changes_applied),
                  absl::StrCat(std::chrono::duration_cast<std::chrono::seconds>(now - pr.reported)
                                   .count())});
    }
    rows.push_back(std::move(row));
  }
  AppendTable(out,
              {"database", "map_version", "paused", "tables", "draining", "phase", "rows_copied",
               "source_rows", "changes_applied", "reported_s_ago"},
              rows);
}

// SHOW CACHE: each database's query cache, as /metrics reports it.
void ShowCache(Runtime& runtime, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, cache] : runtime.query_caches()) {
    const QueryCache::Stats st = cache->stats();
    const QueryCache::Limits limits = cache->limits();
    rows.push_back({name, absl::StrCat(st.entries), absl::StrCat(st.bytes),
                    absl::StrCat(limits.memory), absl::StrCat(st.hits), absl::StrCat(st.misses),
                    absl::StrCat(st.stores), absl::StrCat(st.invalidated),
                    absl::StrCat(st.evicted), absl::StrCat(st.raced)});
  }
  AppendTable(out,
              {"database", "entries", "bytes", "max_bytes", "hits", "misses", "stores",
               "invalidated", "evicted", "raced"},
              rows);
}

// SHOW RATE LIMITS: each limited user and database, its numbers and what its bucket refused
// and delayed since start.
void ShowRateLimits(Runtime& runtime, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  for (const RateLimits::Row& r : runtime.rate_limits.Rows()) {
    const bool queue = r.settings.mode == conf::RateLimitConfig::Mode::kQueue;
    rows.push_back({r.kind, r.name, absl::StrCat(r.settings.queries_per_second),
                    absl::StrCat(r.settings.burst), queue ? "queue" : "error",
                    absl::StrCat(r.settings.max_wait.count()), absl::StrCat(r.refused),
                    absl::StrCat(r.queued)});
  }
  AppendTable(out,
              {"kind", "name", "queries_per_second", "burst", "mode", "max_wait_ms", "refused",
               "queued"},
              rows);
}

// The resharding hooks shardctl drives on every proxy during a cutover:
//   RESHARD PAUSE <db> <table>[,<table>...] [<max_ms>]  writes to the tables wait (at most
//       max_ms, default 5000); answers once every transaction that wrote before is over
//   RESHARD SWITCH <db> <yaml path>   installs the new map (only while paused)
//   RESHARD RESUME <db>               writes go on (on the new map after a SWITCH)
//   RESHARD PROGRESS <db> <phase> <rows_copied> <source_rows> <changes_applied>
//       what shardctl reports while it copies and catches up (SHOW RESHARD, /metrics)
asio::awaitable<absl::Status> Reshard(Runtime& runtime, const std::vector<std::string>& words,
                                      std::string& out) {
  const std::string usage =
      "RESHARD PAUSE <db> <table>[,<table>...] [<max_ms>] | RESHARD SWITCH <db> <yaml path> | "
      "RESHARD RESUME <db> | RESHARD PROGRESS <db> <phase> <rows_copied> <source_rows> "
      "<changes_applied>";
  if (words.size() < 3) co_return PgStatus("42601", "RESHARD needs a step and a database", usage);
  const std::string step = Lower(words[1]);
  const std::string& db = words[2];
  if (runtime.config()->FindDatabase(db) == nullptr) {
    co_return PgStatus("3D000", absl::StrCat("database \"", db, "\" does not exist"));
  }
  WriteGate& gate = runtime.gate(db);
  if (step == "pause" && (words.size() == 4 || words.size() == 5)) {
    int64_t max_ms = 5000;
    if (words.size() == 5 && (!absl::SimpleAtoi(words[4], &max_ms) || max_ms <= 0)) {
      co_return PgStatus("22023", "the pause's maximum must be a positive number of ms", usage);
    }
    std::set<std::string> tables;
    for (absl::string_view t : absl::StrSplit(words[3], ',', absl::SkipEmpty())) {
      tables.insert(Lower(StdView(t)));
    }
    const auto start = WriteGate::Clock::now();
    const auto until = start + std::chrono::milliseconds(max_ms);
    CO_RETURN_IF_ERROR(gate.Pause(tables, until));
    asio::steady_timer tick(co_await asio::this_coro::executor);
    while (gate.Draining() > 0) {
      if (WriteGate::Clock::now() >= until) {
        const int open = gate.Draining();
        gate.Resume();
        co_return PgStatus("55000",
                           absl::StrCat("could not pause writes: ", open,
                                        " transactions that wrote before the pause are still "
                                        "open after ", max_ms, " ms"),
                           "Writes were resumed on the current map. Retry when long "
                           "transactions have ended.");
      }
      tick.expires_after(std::chrono::milliseconds(1));
      co_await tick.async_wait(kTuple);
    }
    const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(
        WriteGate::Clock::now() - start);
    AppendTable(out, {"database", "tables", "drained_us"},
                {{db, absl::StrJoin(tables, ","), absl::StrCat(waited.count())}});
    co_return absl::OkStatus();
  }
  if (step == "switch" && words.size() >= 4) {
    // The path is the rest of the line (single spaces in it survive).
    const std::string path = absl::StrJoin(words.begin() + 3, words.end(), " ");
    if (!gate.Hold()) {
      co_return PgStatus("55000", "writes are not paused (never, resumed, or the pause expired)",
                         "RESHARD PAUSE first; a switch is only safe while writes wait.");
    }
    if (!runtime.install_config) co_return PgStatus("0A000", "this proxy cannot switch maps");
    CO_RETURN_IF_ERROR(runtime.install_config(path));
    if (runtime.config()->FindDatabase(db) == nullptr) {
      co_return PgStatus("XX000", absl::StrCat("the new config has no database \"", db, "\""));
    }
    gate.NoteSwitch(runtime.map_version());
    AppendTable(out, {"database", "map_version"}, {{db, absl::StrCat(runtime.map_version())}});
    co_return absl::OkStatus();
  }
  if (step == "resume" && words.size() == 3) {
    gate.Resume();
    AppendTable(out, {"database", "map_version"}, {{db, absl::StrCat(runtime.map_version())}});
    co_return absl::OkStatus();
  }
  if (step == "progress" && words.size() == 7) {
    static const std::set<std::string> kPhases = {"copying", "catching_up", "switched", "done",
                                                  "aborted"};
    Runtime::ReshardProgress pr;
    pr.phase = Lower(words[3]);
    if (!kPhases.count(pr.phase)) {
      co_return PgStatus("22023", "unknown reshard phase \"" + words[3] + "\"",
                         "One of copying, catching_up, switched, done, aborted.");
    }
    if (!absl::SimpleAtoi(words[4], &pr.rows_copied) ||
        !absl::SimpleAtoi(words[5], &pr.source_rows) ||
        !absl::SimpleAtoi(words[6], &pr.changes_applied) || pr.rows_copied < 0 ||
        pr.source_rows < 0 || pr.changes_applied < 0) {
      co_return PgStatus("22023", "reshard progress counts must be non-negative integers", usage);
    }
    pr.reported = std::chrono::system_clock::now();
    runtime.set_reshard_progress(db, std::move(pr));
    p::AppendCommandComplete(out, "RESHARD");
    co_return absl::OkStatus();
  }
  co_return PgStatus("42601", "malformed RESHARD command", usage);
}

}  // namespace

asio::awaitable<void> ClientSession::ServeAdmin() {
  Runtime& runtime = worker_.runtime();
  while (!closing_ && client_ok_) {
    auto frame = co_await ReadClientFrame(1u << 20);
    if (!frame.ok()) {
      if (SqlState(frame.status()) != "08006") co_await Fatal(frame.status());
      break;
    }
    const char type = frame->type;
    if (type == p::fe::kTerminate) break;
    absl::Status st;
    if (type == p::fe::kQuery) {
      auto q = p::ParseQuery(frame->body);
      std::string sql = q.ok() ? std::string(StripSpace(q->sql)) : "";
      while (!sql.empty() && sql.back() == ';') sql.pop_back();
      const std::string lower = Lower(sql);
      if (!q.ok()) {
        st = q.status();
      } else if (lower == "show version") {
        AppendTable(client_out_, {"version"}, {{"shardgate 0.1.0"}});
      } else if (lower == "show shards") {
        ShowShards(runtime, client_out_);
      } else if (lower == "show pools") {
        co_await ShowPools(runtime, client_out_);
      } else if (lower == "show clients" || lower == "show servers") {
        co_await ShowClients(runtime, lower == "show servers", client_out_);
      } else if (lower == "show stats") {
        co_await ShowStats(runtime, client_out_);
      } else if (lower == "show config") {
        ShowConfig(runtime, client_out_);
      } else if (lower == "reload") {
        st = runtime.install_config ? runtime.install_config(runtime.config_path)
                                    : PgStatus("0A000", "this proxy cannot reload");
        if (st.ok()) p::AppendCommandComplete(client_out_, "RELOAD");
      } else if (lower == "shutdown") {
        // As SIGTERM: stop accepting, drain clients to timeouts.shutdown, exit.
        p::AppendCommandComplete(client_out_, "SHUTDOWN");
        ::kill(::getpid(), SIGTERM);
      } else if (lower == "pause" || lower.rfind("pause ", 0) == 0 || lower == "resume" ||
                 lower.rfind("resume ", 0) == 0) {
        st = co_await PauseDatabases(runtime, Words(sql), lower[0] == 'p', client_out_);
      } else if (lower == "show cache") {
        ShowCache(runtime, client_out_);
      } else if (lower == "show hot keys" || lower.rfind("show hot keys ", 0) == 0) {
        co_await ShowHotKeys(runtime, StripSpace(std::string_view(sql).substr(13)), client_out_);
      } else if (lower == "show rate limits") {
        ShowRateLimits(runtime, client_out_);
      } else if (lower == "show reshard") {
        ShowReshard(runtime, client_out_);
      } else if (lower.rfind("reshard ", 0) == 0) {
        st = co_await Reshard(runtime, Words(sql), client_out_);
      } else if (lower.rfind("show route ", 0) == 0) {
        st = ShowRoute(runtime, worker_.analysis_cache(), std::string_view(sql).substr(11),
                       client_out_);
      } else {
        st = PgStatus("0A000", "unknown admin console command: " + sql,
                      "Try SHOW VERSION, SHOW SHARDS, SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, SHOW STATS, "
                      "SHOW CONFIG, SHOW ROUTE <sql>, SHOW RESHARD, SHOW CACHE, SHOW RATE LIMITS, SHOW HOT KEYS, RELOAD, PAUSE, RESUME, SHUTDOWN or "
                      "RESHARD.");
      }
      if (!st.ok()) p::AppendError(client_out_, ToPgError(st));
      p::AppendReadyForQuery(client_out_, 'I');
    } else if (type == p::fe::kSync) {
      p::AppendReadyForQuery(client_out_, 'I');
    } else if (type != p::fe::kFlush) {
      if (type == p::fe::kParse) {
        p::AppendError(client_out_, ToPgError(PgStatus(
                                        "0A000", "the admin console speaks the simple protocol only")));
      }
    }
    client_in_.Consume(frame->whole.size());
    if (!co_await FlushClient()) break;
  }
  closing_ = true;
}

}  // namespace shardgate::proxy
