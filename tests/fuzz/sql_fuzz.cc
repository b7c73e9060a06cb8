// libFuzzer target: a statement as a client sends it, through what the proxy does with it:
// normalizing, the analysis cache (libpg_query behind it), comment hints, planning against a
// sharded map (every router type) and the cross-shard merge planner.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "conf/config.h"
#include "routing/analysis_cache.h"
#include "routing/hints.h"
#include "routing/merge_plan.h"
#include "routing/normalize.h"
#include "routing/planner.h"
#include "routing/shard_map.h"

namespace r = shardgate::routing;

namespace {

constexpr char kYaml[] = R"(listen: {host: 127.0.0.1, port: 6432}
users: [{name: app, password: pw}]
databases:
  app:
    shards:
      - {name: s0, primary: {host: 127.0.0.1, port: 5432, dbname: app}}
      - {name: s1, primary: {host: 127.0.0.1, port: 5433, dbname: app}}
      - {name: s2, primary: {host: 127.0.0.1, port: 5434, dbname: app}}
    default_shard: s0
    routers:
      ring: {type: hash_ring, shards: [s0, s1, s2], vnodes: 16}
      mod: {type: modulo, hash: postgres, shards: [s0, s1]}
      rng: {type: range, ranges: [{to: 100, shard: s0}, {to: 1000, shard: s1}, {shard: s2}]}
      dir: {type: directory, key_type: text, entries: {acme: s1, globex: s2}, default: s0}
    tables:
      users: {key: id, router: ring}
      orders: {key: user_id, router: ring}
      events: {key: id, router: mod}
      logs: {key: at, router: rng}
      tenants: {key: name, router: dir}
      countries: {reference: true}
)";

const r::Planner& TestPlanner() {
  static const r::Planner* planner = [] {
    auto config = shardgate::conf::LoadString(kYaml, "fuzz.yaml");
    if (!config.ok()) std::abort();
    auto map = r::ShardMap::Build(*(*config)->FindDatabase("app"));
    if (!map.ok()) std::abort();
    return new r::Planner(*map);
  }();
  return *planner;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static r::AnalysisCache cache(64);  // small: hits, misses and evictions all happen
  const std::string_view sql(reinterpret_cast<const char*>(data), size);
  r::NormalizedStatement norm;
  r::NormalizeInto(sql, norm);
  auto hints = r::ParseCommentHints(sql);
  auto analyzed = cache.Analyze(sql);
  if (analyzed.ok()) {
    r::PlanInput input;
    input.literals = analyzed->literals;
    if (hints.ok()) input.hints = *hints;
    input.explain = (size & 1) != 0;
    auto plan = TestPlanner().Plan(*analyzed->analysis, input);
    if (plan.ok() && plan->merge) (void)r::PlanMerge(sql);
  }
  return 0;
}
