// The admin console: the virtual database "shardgate", answered by the proxy itself over the
// simple protocol. Today: SHOW VERSION, SHOW SHARDS, SHOW ROUTE <sql>, SHOW RESHARD and the
// resharding hooks (RESHARD PAUSE/SWITCH/RESUME); the rest of CONFIG.md's commands come with
// the operations issue.
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/io.h"
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

std::vector<std::string> Words(std::string_view sql) {
  std::vector<std::string> words;
  for (absl::string_view w : absl::StrSplit(AbslView(sql), absl::ByAnyChar(" \t\r\n"),
                                            absl::SkipEmpty())) {
    words.emplace_back(w);
  }
  return words;
}

void ShowReshard(Runtime& runtime, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, db] : runtime.config()->databases) {
    WriteGate& gate = runtime.gate(name);
    const bool paused = gate.Paused();
    std::set<std::string> tables = paused ? gate.Tables() : std::set<std::string>{};
    rows.push_back({name, absl::StrCat(runtime.map_version()), paused ? "yes" : "no",
                    absl::StrJoin(tables, ","), absl::StrCat(gate.Draining())});
  }
  AppendTable(out, {"database", "map_version", "paused", "tables", "draining"}, rows);
}

// The resharding hooks shardctl drives on every proxy during a cutover:
//   RESHARD PAUSE <db> <table>[,<table>...] [<max_ms>]  writes to the tables wait (at most
//       max_ms, default 5000); answers once every transaction that wrote before is over
//   RESHARD SWITCH <db> <yaml path>   installs the new map (only while paused)
//   RESHARD RESUME <db>               writes go on (on the new map after a SWITCH)
asio::awaitable<absl::Status> Reshard(Runtime& runtime, const std::vector<std::string>& words,
                                      std::string& out) {
  const std::string usage =
      "RESHARD PAUSE <db> <table>[,<table>...] [<max_ms>] | RESHARD SWITCH <db> <yaml path> | "
      "RESHARD RESUME <db>";
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
      } else if (lower == "show reshard") {
        ShowReshard(runtime, client_out_);
      } else if (lower.rfind("reshard ", 0) == 0) {
        st = co_await Reshard(runtime, Words(sql), client_out_);
      } else if (lower.rfind("show route ", 0) == 0) {
        st = ShowRoute(runtime, worker_.analysis_cache(), std::string_view(sql).substr(11),
                       client_out_);
      } else {
        st = PgStatus("0A000", "unknown admin console command: " + sql,
                      "Try SHOW VERSION, SHOW SHARDS, SHOW ROUTE <sql>, SHOW RESHARD or RESHARD.");
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
