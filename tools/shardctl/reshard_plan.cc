// `shardctl reshard`: the plan (which tables and shards, by comparing the two maps' ownership
// expressions) and the state file.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "protocol/status.h"
#include "tools/shardctl/reshard.h"

namespace shardgate::tools::reshard {
namespace {

std::vector<std::string> ShardNames(const routing::ShardMap& map) {
  std::vector<std::string> names;
  for (int i = 0; i < map.shard_count(); ++i) names.push_back(map.shard_name(i));
  return names;
}

const conf::DatabaseConfig* PickDatabase(const conf::Config& config, const std::string& name) {
  if (!name.empty()) return config.FindDatabase(name);
  for (const auto& [n, db] : config.databases) {
    if (db.Sharded()) return &db;
  }
  return config.databases.empty() ? nullptr : &config.databases.begin()->second;
}

const conf::ShardConfig* FindShard(const conf::DatabaseConfig& db, std::string_view name) {
  for (const auto& s : db.shards) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

absl::Status CompareShards(const conf::DatabaseConfig& from, const conf::DatabaseConfig& to) {
  for (const auto& s : from.shards) {
    const conf::ShardConfig* t = FindShard(to, s.name);
    if (t == nullptr) continue;
    if (t->primary.host != s.primary.host || t->primary.port != s.primary.port ||
        t->primary.dbname != s.primary.dbname) {
      return PgStatus("22023",
                      absl::StrCat("shard '", s.name,
                                   "' has another primary in the new map: shards keep their "
                                   "servers during a reshard"),
                      "Give the new server a new shard name.");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string MovingTable::QuotedName() const { return QuoteIdent(schema) + "." + QuoteIdent(relname); }

std::vector<std::string> Plan::Sources() const {
  std::set<std::string> s;
  for (const auto& t : tables) s.insert(t.sources.begin(), t.sources.end());
  return {s.begin(), s.end()};
}

std::vector<std::string> Plan::Targets() const {
  std::set<std::string> s;
  for (const auto& t : tables) s.insert(t.targets.begin(), t.targets.end());
  return {s.begin(), s.end()};
}

const MovingTable* Plan::Find(std::string_view schema, std::string_view relname) const {
  for (const auto& t : tables) {
    if (t.schema == schema && t.relname == relname) return &t;
  }
  return nullptr;
}

absl::StatusOr<PgConn::Params> Plan::ShardParams(const std::string& shard) const {
  const conf::ShardConfig* s = FindShard(*new_config->FindDatabase(database), shard);
  if (s == nullptr) s = FindShard(*old_config->FindDatabase(database), shard);
  if (s == nullptr) return PgStatus("42704", absl::StrCat("no shard '", shard, "'"));
  return PrimaryParams(*old_config, *s, database);
}

absl::StatusOr<Plan> BuildPlan(const std::string& old_path, const std::string& new_path,
                               const std::string& database) {
  Plan plan;
  ASSIGN_OR_RETURN(plan.old_config, conf::LoadFile(old_path));
  ASSIGN_OR_RETURN(plan.new_config, conf::LoadFile(new_path));
  const conf::DatabaseConfig* old_db = PickDatabase(*plan.old_config, database);
  if (old_db == nullptr) return PgStatus("3D000", "no such database in " + old_path);
  plan.database = old_db->name;
  const conf::DatabaseConfig* new_db = plan.new_config->FindDatabase(plan.database);
  if (new_db == nullptr) {
    return PgStatus("3D000", absl::StrCat(new_path, " has no database '", plan.database, "'"));
  }
  RETURN_IF_ERROR(CompareShards(*old_db, *new_db));
  ASSIGN_OR_RETURN(plan.old_map, routing::ShardMap::Build(*old_db));
  ASSIGN_OR_RETURN(plan.new_map, routing::ShardMap::Build(*new_db));
  const std::vector<std::string> old_names = ShardNames(*plan.old_map);
  const std::vector<std::string> new_names = ShardNames(*plan.new_map);
  for (const auto& n : new_names) {
    if (!plan.old_map->FindShard(n)) plan.new_shards.push_back(n);
  }
  for (const auto& [name, rule] : plan.new_map->tables()) {
    MovingTable t;
    t.name = name;
    const size_t dot = name.find('.');
    t.schema = dot == std::string::npos ? "public" : name.substr(0, dot);
    t.relname = dot == std::string::npos ? name : name.substr(dot + 1);
    const routing::ShardMap::Table* old_rule = plan.old_map->FindTable(
        t.schema == "public" ? "" : t.schema, t.relname);
    if (old_rule == nullptr) continue;  // a new table: nothing to move yet
    if (rule.reference != old_rule->reference || rule.key != old_rule->key) {
      return PgStatus("0A000",
                      absl::StrCat("table '", name,
                                   "' changes its kind or shard key between the maps"),
                      "A reshard moves rows between shards; change keys in a separate step.");
    }
    if (rule.reference) {
      // A copy for every new shard, from the first shard of the old map.
      if (plan.new_shards.empty()) continue;
      t.reference = true;
      t.sources = {old_names.front()};
      t.targets = plan.new_shards;
      t.old_owner = "NULL::text";
      t.new_owner = "NULL::text";
      plan.tables.push_back(std::move(t));
      continue;
    }
    t.key = rule.key;
    ASSIGN_OR_RETURN(t.old_owner, old_rule->router->OwnerSql(QuoteIdent(rule.key), old_names));
    ASSIGN_OR_RETURN(t.new_owner, rule.router->OwnerSql(QuoteIdent(rule.key), new_names));
    if (t.old_owner == t.new_owner) continue;  // same ownership: nothing moves
    t.new_router = rule.router;
    ASSIGN_OR_RETURN(std::string old_by_text, old_rule->router->OwnerSql("k", old_names));
    t.old_owner_function = absl::StrCat(
        "CREATE OR REPLACE FUNCTION pg_temp.sg_old_owner_", plan.tables.size(),
        "(k text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $sg$ BEGIN RETURN ", old_by_text,
        "; END $sg$;\n");
    for (int s : old_rule->router->Shards()) t.sources.push_back(old_names[s]);
    for (int s : rule.router->Shards()) t.targets.push_back(new_names[s]);
    if (old_rule->router->type() == "modulo" && rule.router->type() == "modulo" &&
        old_rule->router->Shards().size() != rule.router->Shards().size()) {
      plan.notes.push_back(absl::StrCat(
          "table '", name, "': modulo ", old_rule->router->Shards().size(), " -> ",
          rule.router->Shards().size(),
          " moves almost every row (a hash_ring router would move about 1/N of them)"));
    }
    plan.tables.push_back(std::move(t));
  }
  // Tables the old map shards but the new one drops would be left behind: refuse.
  for (const auto& [name, rule] : plan.old_map->tables()) {
    const size_t dot = name.find('.');
    if (plan.new_map->FindTable(dot == std::string::npos ? "" : name.substr(0, dot),
                                dot == std::string::npos ? name : name.substr(dot + 1)) ==
        nullptr) {
      return PgStatus("0A000", absl::StrCat("table '", name, "' is missing from the new map"),
                      "Keep every table in the new map; drop tables separately.");
    }
  }
  return plan;
}

// ---- state file

std::string State::SlotFor(const std::string& shard) const {
  std::string slot = "sg_rs_" + id + "_";
  for (char c : shard) slot += std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '_';
  return slot.substr(0, 63);
}

absl::StatusOr<State> State::Load(const std::string& path) {
  State s;
  s.path = path;
  std::ifstream in(path);
  if (!in) return s;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> w = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (w.empty()) continue;
    auto num = [&](size_t i) {
      int64_t v = 0;
      if (i < w.size()) (void)absl::SimpleAtoi(w[i], &v);
      return v;
    };
    if (w[0] == "to" && w.size() >= 2) {
      s.to = line.substr(3);
    } else if (w[0] == "database" && w.size() == 2) {
      s.database = w[1];
    } else if (w[0] == "id" && w.size() == 2) {
      s.id = w[1];
    } else if (w[0] == "phase" && w.size() == 2) {
      s.phase = w[1];
    } else if (w[0] == "copied" && w.size() == 5) {
      s.copied[absl::StrCat(w[1], " ", w[2], " ", w[3])] = num(4);
    } else if (w[0] == "estimate" && w.size() == 4) {
      s.estimates[absl::StrCat(w[1], " ", w[2])] = num(3);
    } else if (w[0] == "slot" && w.size() == 3) {
      s.slots[w[1]] = w[2];
    } else if (w[0] == "applied" && w.size() == 5) {
      s.applied_lsn[w[1]] = ParseLsn(w[2]);
      s.changes[w[1]] = num(3);
      s.last_commit_us[w[1]] = num(4);
    } else if (w[0] == "fact" && w.size() >= 3) {
      s.facts[w[1]] = line.substr(6 + w[1].size());
    } else {
      return PgStatus("XX000", absl::StrCat(path, ": unreadable state line: ", line));
    }
  }
  return s;
}

absl::Status State::Save() const {
  std::ostringstream o;
  o << "to " << to << "\ndatabase " << database << "\nid " << id << "\nphase " << phase << "\n";
  for (const auto& [k, v] : copied) o << "copied " << k << " " << v << "\n";
  for (const auto& [k, v] : estimates) o << "estimate " << k << " " << v << "\n";
  for (const auto& [k, v] : slots) o << "slot " << k << " " << v << "\n";
  for (const auto& [k, v] : applied_lsn) {
    o << "applied " << k << " " << FormatLsn(v) << " " << changes.at(k) << " "
      << (last_commit_us.count(k) ? last_commit_us.at(k) : 0) << "\n";
  }
  for (const auto& [k, v] : facts) o << "fact " << k << " " << v << "\n";
  return WriteFileAtomically(path, o.str(), 0600);
}

uint64_t ParseLsn(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return 0;
  uint64_t hi = std::strtoull(std::string(text.substr(0, slash)).c_str(), nullptr, 16);
  uint64_t lo = std::strtoull(std::string(text.substr(slash + 1)).c_str(), nullptr, 16);
  return (hi << 32) | lo;
}

std::string FormatLsn(uint64_t lsn) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
                static_cast<unsigned>(lsn & 0xffffffffu));
  return buf;
}

void MaybeFault(std::string_view point, int64_t count) {
  static const char* fault = std::getenv("SHARDCTL_TEST_FAULT");
  if (fault == nullptr) return;
  std::string_view f(fault);
  if (f.substr(0, point.size()) != point || f.size() <= point.size() + 1 ||
      f[point.size()] != '=') {
    return;
  }
  int64_t at = 0;
  if (absl::SimpleAtoi(AbslView(f.substr(point.size() + 1)), &at) && count >= at) {
    std::fprintf(stderr, "shardctl: test fault %s reached\n", fault);
    std::_Exit(70);
  }
}

}  // namespace shardgate::tools::reshard
