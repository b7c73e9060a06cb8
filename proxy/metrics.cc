#include "proxy/metrics.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"
#include "protocol/status.h"
#include "proxy/client_session.h"
#include "proxy/hot_key_report.h"
#include "proxy/io.h"
#include "proxy/pool.h"
#include "proxy/worker.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {
namespace {

namespace http = boost::beast::http;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// A family being filled: one metric per label set.
struct Family {
  MetricFamily f;
  Family(std::string name, std::string help, MetricType type) {
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
  }
  void Add(std::vector<ClientMetric::Label> labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    f.metric.push_back(std::move(m));
  }
};

// Everything summed over the workers.
struct Snapshot {
  std::map<Worker::StatsKey, DatabaseStats> stats;  // (database, user)
  std::map<std::string, int64_t, std::less<>> errors;
  // (database, user) -> client connections active (holding a server), idle
  std::map<std::pair<std::string, std::string>, std::array<int64_t, 2>> clients;
  struct PoolCounts {
    int64_t active = 0, idle = 0, login = 0, waiting = 0;
    double max_wait_s = 0;
  };
  // (database, user, shard, server) of the pools
  std::map<std::tuple<std::string, std::string, std::string, std::string>, PoolCounts> pools;
};

void AddHealth(Runtime& runtime, std::vector<MetricFamily>& out) {
  Family up("shardgate_server_up",
            "1 when the health checker sees the server usable (replicas: and within max lag)",
            MetricType::Gauge);
  Family lag_bytes("shardgate_replica_lag_bytes",
                   "Primary WAL the replica has not replayed (last health check)",
                   MetricType::Gauge);
  Family lag_seconds("shardgate_replica_lag_seconds",
                     "Since when the replica misses WAL the primary had (last health check)",
                     MetricType::Gauge);
  auto config = runtime.config();
  for (const auto& [name, db] : config->databases) {
    auto topology = runtime.topology(name);
    for (size_t s = 0; s < db.shards.size(); ++s) {
      const auto& shard = db.shards[s];
      const int i = static_cast<int>(s);
      up.Add({{"database", name}, {"shard", shard.name}, {"role", "primary"},
              {"server", absl::StrCat(shard.primary.host, ":", shard.primary.port)}},
             !topology || topology->PrimaryHealthy(i) ? 1 : 0);
      for (size_t r = 0; r < shard.replicas.size(); ++r) {
        const std::string server =
            absl::StrCat(shard.replicas[r].host, ":", shard.replicas[r].port);
        up.Add({{"database", name}, {"shard", shard.name}, {"role", "replica"},
                {"server", server}},
               !topology || topology->ReplicaHealthy(i, static_cast<int>(r)) ? 1 : 0);
        if (!topology || topology->ReplicaLagBytes(i, static_cast<int>(r)) < 0) continue;
        lag_bytes.Add({{"database", name}, {"shard", shard.name}, {"server", server}},
                      static_cast<double>(topology->ReplicaLagBytes(i, static_cast<int>(r))));
        lag_seconds.Add({{"database", name}, {"shard", shard.name}, {"server", server}},
                        topology->ReplicaLagMs(i, static_cast<int>(r)) / 1000.0);
      }
    }
  }
  out.push_back(std::move(up.f));
  out.push_back(std::move(lag_bytes.f));
  out.push_back(std::move(lag_seconds.f));
}

// As shardctl last reported them (RESHARD PROGRESS); no series before a reshard reports.
void AddReshardProgress(Runtime& runtime, std::vector<MetricFamily>& out) {
  Family phase("shardgate_reshard_phase",
               "1 for the phase a database's reshard is in, as shardctl last reported it",
               MetricType::Gauge);
  Family copied("shardgate_reshard_rows_copied",
                "Rows the reshard's copy has written to their new owners", MetricType::Gauge);
  Family source_rows("shardgate_reshard_source_rows",
                     "The planner's estimate of the rows the reshard's copy scans",
                     MetricType::Gauge);
  Family changes("shardgate_reshard_changes_applied",
                 "Changes the reshard's catch-up has applied from the sources' WAL",
                 MetricType::Gauge);
  Family age("shardgate_reshard_report_age_seconds", "Since shardctl last reported progress",
             MetricType::Gauge);
  const auto now = std::chrono::system_clock::now();
  for (const auto& [db, pr] : runtime.reshard_progress()) {
    phase.Add({{"database", db}, {"phase", pr.phase}}, 1);
    copied.Add({{"database", db}}, static_cast<double>(pr.rows_copied));
    source_rows.Add({{"database", db}}, static_cast<double>(pr.source_rows));
    changes.Add({{"database", db}}, static_cast<double>(pr.changes_applied));
    age.Add({{"database", db}}, std::chrono::duration<double>(now - pr.reported).count());
  }
  for (Family* f : {&phase, &copied, &source_rows, &changes, &age}) out.push_back(std::move(f->f));
}

// The query caches of the databases that have used one.
void AddQueryCache(Runtime& runtime, std::vector<MetricFamily>& out) {
  Family lookups("shardgate_query_cache_lookups_total",
                 "Cacheable reads looked up in the query cache, by result (hit or miss)",
                 MetricType::Counter);
  Family stores("shardgate_query_cache_stores_total", "Answers stored in the query cache",
                MetricType::Counter);
  Family dropped("shardgate_query_cache_dropped_total",
                 "Query cache entries removed by a write (invalidated), for memory (evicted), "
                 "or not stored because a write overlapped the read (raced)",
                 MetricType::Counter);
  Family entries("shardgate_query_cache_entries", "Entries in the query cache", MetricType::Gauge);
  Family bytes("shardgate_query_cache_bytes", "Bytes the query cache holds", MetricType::Gauge);
  for (const auto& [db, cache] : runtime.query_caches()) {
    const QueryCache::Stats st = cache->stats();
    lookups.Add({{"database", db}, {"result", "hit"}}, static_cast<double>(st.hits));
    lookups.Add({{"database", db}, {"result", "miss"}}, static_cast<double>(st.misses));
    stores.Add({{"database", db}}, static_cast<double>(st.stores));
    dropped.Add({{"database", db}, {"reason", "invalidated"}}, static_cast<double>(st.invalidated));
    dropped.Add({{"database", db}, {"reason", "evicted"}}, static_cast<double>(st.evicted));
    dropped.Add({{"database", db}, {"reason", "raced"}}, static_cast<double>(st.raced));
    entries.Add({{"database", db}}, static_cast<double>(st.entries));
    bytes.Add({{"database", db}}, static_cast<double>(st.bytes));
  }
  for (Family* f : {&lookups, &stores, &dropped, &entries, &bytes}) out.push_back(std::move(f->f));
}

}  // namespace

asio::awaitable<std::string> RenderMetrics(Runtime& runtime) {
  Snapshot snap;
  co_await VisitWorkers(runtime.workers, [&](Worker& w) {
    for (const auto& [key, st] : w.all_stats()) snap.stats[key].Add(st);
    for (const auto& [state, n] : w.errors()) snap.errors[state] += n;
    for (ClientSession* s : w.sessions()) {
      ClientSession::Info info = s->Describe();
      ++snap.clients[{info.admin ? "shardgate" : info.database, info.user}]
                    [info.state == "active" ? 0 : 1];
    }
    w.pools().ForEach([&](const Pool& pool) {
      const BackendTarget& t = pool.target();
      auto& p = snap.pools[{t.database, t.user, t.shard, absl::StrCat(t.host, ":", t.port)}];
      p.active += pool.open() - pool.idle() - pool.connecting();
      p.idle += pool.idle();
      p.login += pool.connecting();
      p.waiting += pool.waiting();
      p.max_wait_s = std::max(p.max_wait_s, std::chrono::duration<double>(pool.max_wait()).count());
    });
  });

  std::vector<MetricFamily> out;
  Family clients("shardgate_clients", "Client connections by database, user and state",
                 MetricType::Gauge);
  for (const auto& [key, n] : snap.clients) {
    const auto& [db, user] = key;
    clients.Add({{"database", db}, {"user", user}, {"state", "active"}},
                static_cast<double>(n[0]));
    clients.Add({{"database", db}, {"user", user}, {"state", "idle"}}, static_cast<double>(n[1]));
  }
  out.push_back(std::move(clients.f));

  Family servers("shardgate_pool_servers",
                 "Server connections per pool, by state (active, idle, login: connecting)",
                 MetricType::Gauge);
  Family waiting("shardgate_pool_waiting_clients", "Clients waiting for a server of the pool",
                 MetricType::Gauge);
  Family max_wait("shardgate_pool_maxwait_seconds",
                  "How long the longest-waiting client of the pool has waited (0: none waits)",
                  MetricType::Gauge);
  for (const auto& pool : snap.pools) {
    const auto& [key, v] = pool;
    auto labels = [&key = pool.first](std::vector<ClientMetric::Label> more) {
      std::vector<ClientMetric::Label> l = {{"database", std::get<0>(key)},
                                            {"user", std::get<1>(key)},
                                            {"shard", std::get<2>(key)},
                                            {"server", std::get<3>(key)}};
      l.insert(l.end(), more.begin(), more.end());
      return l;
    };
    servers.Add(labels({{"state", "active"}}), static_cast<double>(v.active));
    servers.Add(labels({{"state", "idle"}}), static_cast<double>(v.idle));
    servers.Add(labels({{"state", "login"}}), static_cast<double>(v.login));
    waiting.Add(labels({}), static_cast<double>(v.waiting));
    max_wait.Add(labels({}), v.max_wait_s);
  }
  for (Family* f : {&servers, &waiting, &max_wait}) out.push_back(std::move(f->f));

  Family queries("shardgate_queries_total", "Query and Execute messages from clients",
                 MetricType::Counter);
  Family xacts("shardgate_transactions_total", "Transactions ended on a server",
               MetricType::Counter);
  Family received("shardgate_client_received_bytes_total", "Bytes read from clients",
                  MetricType::Counter);
  Family sent("shardgate_client_sent_bytes_total", "Bytes written to clients",
              MetricType::Counter);
  Family spread("shardgate_statements_total",
                "Statements of sharded databases: on one shard (direct) or across shards",
                MetricType::Counter);
  Family routed("shardgate_routed_total",
                "Statements (and cross-shard legs) sent to a shard, by server role",
                MetricType::Counter);
  Family prepared_reads("shardgate_prepared_reads_total",
                        "Simple-protocol reads run as statements prepared on the server "
                        "(prepare_reads)",
                        MetricType::Counter);
  Family pipelined_reads("shardgate_pipelined_reads_total",
                         "prepare_reads reads sent on a busy server connection behind another "
                         "client's read (pipeline_reads); outcome=rerun: sent again on another "
                         "connection after that one was lost",
                         MetricType::Counter);
  Family rate_limited("shardgate_rate_limited_total",
                      "Queries a rate_limit (of the user or of the database) refused or delayed",
                      MetricType::Counter);
  MetricFamily latency;
  latency.name = "shardgate_server_round_trip_seconds";
  latency.help = "From a Query or Sync sent to a server to its ReadyForQuery";
  latency.type = MetricType::Histogram;
  std::map<std::string, DatabaseStats> per_db;  // the histogram and statement spread
  for (const auto& [key, st] : snap.stats) {
    const auto& [db, user] = key;
    per_db[db].Add(st);
    queries.Add({{"database", db}, {"user", user}}, static_cast<double>(st.queries));
    xacts.Add({{"database", db}, {"user", user}}, static_cast<double>(st.xacts));
    received.Add({{"database", db}, {"user", user}}, static_cast<double>(st.received));
    sent.Add({{"database", db}, {"user", user}}, static_cast<double>(st.sent));
    prepared_reads.Add({{"database", db}, {"user", user}}, static_cast<double>(st.prepared_reads));
    if (st.pipelined_reads > 0) {
      pipelined_reads.Add({{"database", db}, {"user", user}, {"outcome", "sent"}},
                          static_cast<double>(st.pipelined_reads));
      pipelined_reads.Add({{"database", db}, {"user", user}, {"outcome", "rerun"}},
                          static_cast<double>(st.pipeline_reruns));
    }
    if (st.rate_refused > 0 || st.rate_queued > 0) {
      rate_limited.Add({{"database", db}, {"user", user}, {"action", "refused"}},
                       static_cast<double>(st.rate_refused));
      rate_limited.Add({{"database", db}, {"user", user}, {"action", "queued"}},
                       static_cast<double>(st.rate_queued));
    }
  }
  for (const auto& [db, st] : per_db) {
    spread.Add({{"database", db}, {"spread", "direct"}}, static_cast<double>(st.direct));
    spread.Add({{"database", db}, {"spread", "cross_shard"}}, static_cast<double>(st.cross_shard));
    for (const auto& [key, n] : st.routed) {
      routed.Add({{"database", db}, {"shard", key.first}, {"role", key.second}},
                 static_cast<double>(n));
    }
    ClientMetric h;
    h.label = {{"database", db}};
    h.histogram.sample_count = static_cast<uint64_t>(st.latency_count);
    h.histogram.sample_sum = st.latency_sum;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < DatabaseStats::kBuckets.size(); ++i) {
      cumulative += static_cast<uint64_t>(st.latency_buckets[i]);
      h.histogram.bucket.push_back({cumulative, DatabaseStats::kBuckets[i]});
    }
    h.histogram.bucket.push_back(
        {static_cast<uint64_t>(st.latency_count), std::numeric_limits<double>::infinity()});
    latency.metric.push_back(std::move(h));
  }
  for (Family* f :
       {&queries, &xacts, &received, &sent, &prepared_reads, &pipelined_reads, &spread, &routed,
        &rate_limited}) {
    out.push_back(std::move(f->f));
  }
  out.push_back(std::move(latency));

  Family errors("shardgate_errors_total", "Errors sent to clients, by SQLSTATE",
                MetricType::Counter);
  for (const auto& [state, n] : snap.errors) {
    errors.Add({{"sqlstate", state}}, static_cast<double>(n));
  }
  out.push_back(std::move(errors.f));

  AddHealth(runtime, out);
  Family reloads("shardgate_reloads_total", "Configurations installed after the first (SIGHUP, "
                 "RELOAD, RESHARD SWITCH)", MetricType::Counter);
  reloads.Add({}, static_cast<double>(runtime.reloads.load()));
  out.push_back(std::move(reloads.f));
  Family version("shardgate_map_version", "The shard map version in force", MetricType::Gauge);
  version.Add({}, static_cast<double>(runtime.map_version()));
  out.push_back(std::move(version.f));
  Family paused("shardgate_reshard_paused",
                "1 while a resharding cutover holds writes of the database", MetricType::Gauge);
  for (const auto& [name, db] : runtime.config()->databases) {
    paused.Add({{"database", name}}, runtime.gate(name).Paused() ? 1 : 0);
  }
  out.push_back(std::move(paused.f));
  AddReshardProgress(runtime, out);
  AddQueryCache(runtime, out);
  // The five hottest keys per sharded table (bounded cardinality), recent counts.
  Family hot("shardgate_hot_key_queries",
             "Routed statements of the hottest shard keys per table (top 5, halved every minute)",
             MetricType::Gauge);
  for (const HotKeyRow& r : co_await CollectHotKeys(runtime, 5, "")) {
    hot.Add({{"database", r.database}, {"table", r.table}, {"key", r.key}},
            static_cast<double>(r.queries));
  }
  out.push_back(std::move(hot.f));
  co_return prometheus::TextSerializer().Serialize(out);
}

namespace {

asio::awaitable<void> ServeHttp(Runtime& runtime, tcp::socket socket) {
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(socket, buffer, req, kTuple);
    if (ec) co_return;
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "shardgate");
    const std::string_view target(req.target().data(), req.target().size());
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.body() = "GET only\n";
    } else if (target == "/metrics") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4");
      res.body() = co_await RenderMetrics(runtime);
    } else if (target == "/healthz") {
      const bool draining = runtime.shutting_down.load();
      res.result(draining ? http::status::service_unavailable : http::status::ok);
      res.body() = draining ? "draining\n" : "ok\n";
    } else {
      res.result(http::status::not_found);
      res.body() = "try /metrics or /healthz\n";
    }
    res.prepare_payload();
    auto [wec, wn] = co_await http::async_write(socket, res, kTuple);
    if (wec || !res.keep_alive()) co_return;
  }
}

asio::awaitable<void> AcceptHttp(Runtime& runtime, std::shared_ptr<tcp::acceptor> acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor->async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      continue;
    }
    asio::co_spawn(acceptor->get_executor(), ServeHttp(runtime, std::move(socket)),
                   asio::detached);
  }
}

}  // namespace

absl::Status StartMetricsServer(Runtime& runtime, Worker& on, const conf::ListenConfig& address) {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(address.host, ec);
  if (ec) return PgStatus("22023", "admin.http.host is not an IP address: " + address.host);
  auto acceptor = std::make_shared<tcp::acceptor>(on.io());
  const tcp::endpoint endpoint(ip, static_cast<uint16_t>(address.port));
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return PgStatus("58000", absl::StrCat("cannot listen for /metrics on ", address.host, ":",
                                          address.port, ": ", ec.message()));
  }
  asio::co_spawn(on.io(), AcceptHttp(runtime, acceptor), asio::detached);
  spdlog::info("metrics on http://{}:{}/metrics, health on /healthz", address.host, address.port);
  return absl::OkStatus();
}

}  // namespace shardgate::proxy
