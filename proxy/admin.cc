// The admin console: the virtual database "shardgate", answered by the proxy itself over the
// simple protocol. Today: SHOW VERSION, SHOW SHARDS, SHOW ROUTE <sql>; the rest of CONFIG.md's
// commands come with the operations issue.
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "proxy/client_session.h"
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
                      promoted < 0 ? "yes" : "no"});
      for (size_t r = 0; r < shard.replicas.size(); ++r) {
        const bool ok = !topology || topology->ReplicaHealthy(static_cast<int>(s),
                                                              static_cast<int>(r));
        rows.push_back({name, shard.name, "replica",
                        absl::StrCat(shard.replicas[r].host, ":", shard.replicas[r].port),
                        ok ? "up" : "skipped",
                        promoted == static_cast<int>(r) ? "yes" : "no"});
      }
    }
  }
  AppendTable(out, {"database", "shard", "role", "address", "state", "takes_writes"}, rows);
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
      } else if (lower.rfind("show route ", 0) == 0) {
        st = ShowRoute(runtime, worker_.analysis_cache(), std::string_view(sql).substr(11),
                       client_out_);
      } else {
        st = PgStatus("0A000", "unknown admin console command: " + sql,
                      "Try SHOW VERSION, SHOW SHARDS or SHOW ROUTE <sql>.");
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
