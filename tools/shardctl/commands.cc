// `shardctl route` and `shardctl check`.
#include "tools/shardctl/commands.h"

#include <memory>
#include <optional>
#include <string_view>

#include "conf/config.h"
#include "protocol/status.h"
#include "routing/analysis_cache.h"
#include "routing/directory_store.h"
#include "routing/hints.h"
#include "routing/planner.h"
#include "routing/shard_map.h"
#include "tools/shardctl/pg.h"

namespace shardgate::tools {
namespace {

// A directory's table read with libpq, one connection for the command's life.
class TableStore final : public routing::DirectoryStore {
 public:
  TableStore(routing::DirectoryStoreSpec spec, absl::StatusOr<PgConn::Params> params)
      : spec_(std::move(spec)), params_(std::move(params)) {}
  absl::StatusOr<std::optional<std::string>> Lookup(const routing::KeyValue& key) override {
    if (!params_.ok()) return params_.status();
    if (!conn_) {
      ASSIGN_OR_RETURN(PgConn conn, PgConn::Connect(*params_));
      conn_.emplace(std::move(conn));
    }
    ASSIGN_OR_RETURN(PgResult rows, conn_->Exec(routing::DirectoryLookupSql(spec_, key)));
    if (rows.rows() == 0 || rows.null(0, 0)) return std::optional<std::string>();
    return std::optional<std::string>(rows.get(0, 0));
  }

 private:
  routing::DirectoryStoreSpec spec_;
  absl::StatusOr<PgConn::Params> params_;
  std::optional<PgConn> conn_;
};

std::string Str(const absl::Status& s) { return std::string(s.message()); }

// Prints a FILE:LINE:COLUMN report, one problem per line.
void PrintProblems(const absl::Status& status, std::ostream& err) {
  err << Str(status) << "\n";
}

const conf::DatabaseConfig* PickDatabase(const conf::Config& config, const std::string& name,
                                         std::ostream& err) {
  if (!name.empty()) {
    const conf::DatabaseConfig* db = config.FindDatabase(name);
    if (db == nullptr) err << config.path << ": no database '" << name << "'\n";
    return db;
  }
  if (config.databases.empty()) {
    err << config.path << ": no databases\n";
    return nullptr;
  }
  for (const auto& [db_name, db] : config.databases) {
    if (db.Sharded()) return &db;
  }
  return &config.databases.begin()->second;
}

void PrintError(const absl::Status& status, bool json, std::ostream& out, std::ostream& err) {
  PgError e = ToPgError(status);
  if (json) {
    out << "{\"error\": {\"sqlstate\": " << JsonString(e.sqlstate)
        << ", \"message\": " << JsonString(e.message) << ", \"hint\": " << JsonString(e.hint)
        << "}}\n";
    return;
  }
  err << "ERROR " << e.sqlstate << ": " << e.message << "\n";
  if (!e.detail.empty()) err << "DETAIL: " << e.detail << "\n";
  if (!e.hint.empty()) err << "HINT: " << e.hint << "\n";
}

}  // namespace

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static const char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

int RouteCommand(const RouteOptions& options, std::ostream& out, std::ostream& err) {
  auto config = conf::LoadFile(options.common.config_path);
  if (!config.ok()) {
    PrintProblems(config.status(), err);
    return 1;
  }
  const conf::DatabaseConfig* db = PickDatabase(**config, options.common.database, err);
  if (db == nullptr) return 1;
  // A `store:` directory is read as the proxy reads it (on the store shard's primary), as the
  // reshard: user.
  const conf::Config& cfg = **config;
  auto map = routing::ShardMap::Build(
      *db, [&cfg, db](const routing::DirectoryStoreSpec& spec)
               -> absl::StatusOr<std::shared_ptr<routing::DirectoryStore>> {
        return std::shared_ptr<routing::DirectoryStore>(
            std::make_shared<TableStore>(spec, ShardPrimaryParams(cfg, *db, spec.shard)));
      });
  if (!map.ok()) {
    PrintProblems(map.status(), err);
    return 1;
  }
  routing::Planner planner(*map);
  routing::AnalysisCache cache(16);
  auto hints = routing::ParseCommentHints(options.sql);
  if (!hints.ok()) {
    PrintError(hints.status(), options.common.json, out, err);
    return 1;
  }
  auto analysis = cache.Analyze(options.sql);
  if (!analysis.ok()) {
    PrintError(analysis.status(), options.common.json, out, err);
    return 1;
  }
  std::vector<std::optional<std::string_view>> values;
  for (const std::string& p : options.params) {
    values.push_back(p == "NULL" ? std::nullopt : std::optional<std::string_view>(p));
  }
  routing::PlanInput input;
  input.literals = analysis->literals;
  input.params.values = values;
  input.hints = *hints;
  input.in_transaction = options.in_transaction;
  auto plan = planner.Plan(*analysis->analysis, input);
  if (!plan.ok()) {
    PrintError(plan.status(), options.common.json, out, err);
    return 1;
  }
  const routing::ShardMap& m = **map;
  std::string kinds, tables;
  for (const routing::QueryInfo& q : analysis->analysis->statements) {
    kinds += (kinds.empty() ? "" : ", ") + q.command;
    for (const routing::TableRef& t : q.tables) {
      tables += (tables.empty() ? "" : ", ") + t.QualifiedName();
    }
  }
  if (options.common.json) {
    out << "{\"database\": " << JsonString(db->name) << ", \"shards\": [";
    for (size_t i = 0; i < plan->shards.size(); ++i) {
      out << (i ? ", " : "") << JsonString(m.shard_name(plan->shards[i]));
    }
    out << "], \"spread\": " << JsonString(std::string(routing::SpreadName(plan->spread)))
        << ", \"role\": " << JsonString(std::string(routing::RoleName(plan->role)))
        << ", \"write\": " << (plan->write ? "true" : "false")
        << ", \"merge\": " << (plan->merge ? "true" : "false")
        << ", \"statement\": " << JsonString(kinds) << ", \"reason\": " << JsonString(plan->reason)
        << "}\n";
    return 0;
  }
  out << "database: " << db->name << "\n";
  out << "shards:   ";
  for (size_t i = 0; i < plan->shards.size(); ++i) {
    out << (i ? ", " : "") << m.shard_name(plan->shards[i]);
  }
  if (plan->spread == routing::RoutePlan::Spread::kAnyOne) out << " (any one of them)";
  out << "\n";
  out << "spread:   " << routing::SpreadName(plan->spread) << "\n";
  out << "role:     " << routing::RoleName(plan->role) << "\n";
  out << "write:    " << (plan->write ? "yes" : "no") << "\n";
  if (plan->merge) out << "merge:    results of " << plan->shards.size() << " shards merged\n";
  out << "command:  " << kinds << (tables.empty() ? "" : " on " + tables) << "\n";
  out << "why:      " << plan->reason << "\n";
  return 0;
}

int CheckCommand(const CommonOptions& options, std::ostream& out, std::ostream& err) {
  auto config = conf::LoadFile(options.config_path);
  if (!config.ok()) {
    PrintProblems(config.status(), err);
    return 1;
  }
  int status = 0;
  size_t routers = 0, tables = 0;
  for (const auto& [name, db] : (*config)->databases) {
    auto map = routing::ShardMap::Build(db);
    if (!map.ok()) {
      PrintProblems(map.status(), err);
      status = 1;
      continue;
    }
    routers += (*map)->routers().size();
    tables += (*map)->tables().size();
  }
  if (status != 0) return status;
  if (options.json) {
    out << "{\"ok\": true, \"databases\": " << (*config)->databases.size()
        << ", \"routers\": " << routers << ", \"tables\": " << tables << "}\n";
  } else {
    out << options.config_path << ": OK (" << (*config)->databases.size() << " databases, "
        << routers << " routers, " << tables << " tables)\n";
  }
  return 0;
}

}  // namespace shardgate::tools
