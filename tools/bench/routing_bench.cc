// Microbenchmarks of the routing hot path: analysis + planning of a cached statement (a repeat
// with new literals), of an uncached one (a parse), and the pieces (normalize, hash, route).
// Run: build/<preset>/tools/bench/routing_bench
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "conf/config.h"
#include "routing/analysis_cache.h"
#include "routing/analyzer.h"
#include "routing/normalize.h"
#include "routing/pg_hash.h"
#include "routing/planner.h"

namespace shardgate::routing {
namespace {

const char kYaml[] = R"(
listen: {host: 127.0.0.1, port: 6432}
users:
  - {name: app, password: secret}
databases:
  app:
    shards:
      - {name: s0, primary: {host: 127.0.0.1, port: 5432}}
      - {name: s1, primary: {host: 127.0.0.1, port: 5433}}
      - {name: s2, primary: {host: 127.0.0.1, port: 5434}}
      - {name: s3, primary: {host: 127.0.0.1, port: 5435}}
    routers:
      by_user: {type: hash_ring, vnodes: 256}
      legacy: {type: modulo}
    tables:
      users: {key: id, router: by_user}
      orders: {key: user_id, router: by_user}
      invoices: {key: id, router: legacy}
)";

struct Fixture {
  std::shared_ptr<const conf::Config> config;
  std::unique_ptr<Planner> planner;

  static Fixture& Get() {
    static Fixture* f = [] {
      auto* fx = new Fixture();
      auto c = conf::LoadString(kYaml, "bench.yaml");
      if (!c.ok()) {
        std::cerr << c.status() << "\n";
        std::abort();
      }
      fx->config = *c;
      auto map = ShardMap::Build(*fx->config->FindDatabase("app"));
      if (!map.ok()) {
        std::cerr << map.status() << "\n";
        std::abort();
      }
      fx->planner = std::make_unique<Planner>(*map);
      return fx;
    }();
    return *f;
  }
};

// `explain` = false is the proxy's hot path (no reason text); true is what shardctl shows.
void Route(benchmark::State& state, AnalysisCache& cache, const std::string& sql,
           bool explain = false) {
  auto a = cache.Analyze(sql);
  if (!a.ok()) {
    state.SkipWithError("analysis failed");
    return;
  }
  PlanInput in;
  in.literals = a->literals;
  in.explain = explain;
  auto p = Fixture::Get().planner->Plan(*a->analysis, in);
  if (!p.ok()) state.SkipWithError("plan failed");
  benchmark::DoNotOptimize(p);
}

// A repeated statement with a new key each time: lexer pass + cache hit + plan.
void BM_PointSelectCached(benchmark::State& state) {
  AnalysisCache cache;
  std::string sqls[16];
  for (int i = 0; i < 16; ++i) {
    sqls[i] = "SELECT id, name, email FROM users WHERE id = " + std::to_string(1000 + i * 7919);
  }
  size_t i = 0;
  for (auto _ : state) Route(state, cache, sqls[i++ & 15]);
  state.counters["hit_ratio"] = static_cast<double>(cache.hits()) / (cache.hits() + cache.misses());
}
BENCHMARK(BM_PointSelectCached);

void BM_PointSelectCachedExplained(benchmark::State& state) {
  AnalysisCache cache;
  std::string sqls[16];
  for (int i = 0; i < 16; ++i) {
    sqls[i] = "SELECT id, name, email FROM users WHERE id = " + std::to_string(1000 + i * 7919);
  }
  size_t i = 0;
  for (auto _ : state) Route(state, cache, sqls[i++ & 15], /*explain=*/true);
}
BENCHMARK(BM_PointSelectCachedExplained);

void BM_JoinCached(benchmark::State& state) {
  AnalysisCache cache;
  std::string sqls[16];
  for (int i = 0; i < 16; ++i) {
    sqls[i] =
        "SELECT u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id "
        "WHERE u.id = " + std::to_string(i * 31) + " AND o.status = 'open' ORDER BY o.total DESC "
        "LIMIT 10";
  }
  size_t i = 0;
  for (auto _ : state) Route(state, cache, sqls[i++ & 15]);
}
BENCHMARK(BM_JoinCached);

// A statement never seen before: lexer pass + parse + analysis + plan.
void BM_PointSelectUncached(benchmark::State& state) {
  AnalysisCache cache(0);  // capacity 0: every call misses
  std::string sql = "SELECT id, name, email FROM users WHERE id = 42";
  for (auto _ : state) Route(state, cache, sql);
}
BENCHMARK(BM_PointSelectUncached);

void BM_JoinUncached(benchmark::State& state) {
  AnalysisCache cache(0);
  std::string sql =
      "SELECT u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id "
      "WHERE u.id = 42 AND o.status = 'open' ORDER BY o.total DESC LIMIT 10";
  for (auto _ : state) Route(state, cache, sql);
}
BENCHMARK(BM_JoinUncached);

// The pieces.
void BM_Normalize(benchmark::State& state) {
  NormalizedStatement n;
  for (auto _ : state) {
    NormalizeInto("SELECT id, name, email FROM users WHERE id = 42", n);
    benchmark::DoNotOptimize(n.text.data());
  }
}
BENCHMARK(BM_Normalize);

void BM_PartitionHashInt(benchmark::State& state) {
  int64_t k = 0;
  for (auto _ : state) benchmark::DoNotOptimize(PartitionHash(KeyValue::Int(++k)));
}
BENCHMARK(BM_PartitionHashInt);

void BM_HashRingRoute(benchmark::State& state) {
  const Router* r = Fixture::Get().planner->map().router("by_user");
  int64_t k = 0;
  for (auto _ : state) benchmark::DoNotOptimize(r->Route(KeyValue::Int(++k)));
}
BENCHMARK(BM_HashRingRoute);

}  // namespace
}  // namespace shardgate::routing

BENCHMARK_MAIN();
