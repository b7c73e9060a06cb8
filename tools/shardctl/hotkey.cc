// `shardctl hotkey move`: the new map (PinKey) and the reshard steps run on it.
#include "tools/shardctl/hotkey.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "conf/config.h"
#include "conf/yaml_edit.h"
#include "protocol/status.h"
#include "routing/shard_map.h"
#include "tools/shardctl/pg.h"
#include "tools/shardctl/reshard.h"
#include "tools/shardctl/reshard_steps.h"

namespace shardgate::tools {
namespace {

using absl::StrCat;

// The map node of `name` under `parent` whose key, lower-cased, is `lower` (table names are
// case-insensitive in the config, as written in the file).
const conf::Node* FindLower(const conf::Node* parent, const std::string& lower) {
  if (parent == nullptr) return nullptr;
  for (const auto& [name, node] : parent->map) {
    if (absl::AsciiStrToLower(name) == lower) return &node;
  }
  return nullptr;
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return PgStatus("58P01", StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<PinnedMap> PinKey(std::string_view yaml, const std::string& file,
                                 const std::string& database, const std::string& table,
                                 const std::string& key, const std::string& shard) {
  ASSIGN_OR_RETURN(std::shared_ptr<const conf::Config> config, conf::LoadString(yaml, file));
  const conf::DatabaseConfig* db = nullptr;
  for (const auto& [name, d] : config->databases) {
    if (database.empty() ? db == nullptr && d.Sharded() : name == database) db = &d;
  }
  if (db == nullptr)
    return PgStatus("3D000", StrCat("no sharded database '", database, "' in ", file));
  ASSIGN_OR_RETURN(std::shared_ptr<const routing::ShardMap> map, routing::ShardMap::Build(*db));
  const std::string lower = absl::AsciiStrToLower(table);
  auto tc = db->tables.find(lower);
  if (tc == db->tables.end() || tc->second.reference) {
    return PgStatus("42P01",
                    StrCat("table ", table, " is not a sharded table of database ", db->name),
                    "Name a table listed under tables: with a key: and a router:.");
  }
  const std::string& old_router = tc->second.router;
  const routing::Router* router = map->router(old_router);
  if (router == nullptr) return PgStatus("XX000", "router " + old_router + " was not built");
  auto kv = routing::ParseKeyText(key, router->key_type());
  if (!kv.ok()) {
    return PgStatus("22P02", StrCat("'", key, "' is not a valid ",
                                    std::string(routing::KeyTypeName(router->key_type())),
                                    " key of router ", old_router));
  }
  const std::optional<int> target = map->FindShard(shard);
  if (!target) {
    return PgStatus("42704", StrCat("no shard '", shard, "' in database ", db->name),
                    "Add it under shards: (its primary and replicas running, the tables created "
                    "or left to shardctl), then run this again.");
  }
  // The directory that will hold the entry: the table's own router when it is one, else a
  // directory in front of it.
  const conf::RouterConfig& rc = db->routers.at(old_router);
  std::string dir = old_router;
  if (rc.type == "directory") {
    if (rc.settings.Find("store") != nullptr) {
      return PgStatus("0A000",
                      StrCat("router ", old_router, " keeps its directory in a table (store:)"),
                      "Its keys move by updating that table (README \"Directory routers with a "
                      "table\").");
    }
  } else {
    dir = old_router + "_pinned";
    if (auto it = db->routers.find(dir); it != db->routers.end()) {
      const conf::Node* fallback = it->second.settings.Find("fallback");
      if (it->second.type != "directory" || fallback == nullptr || fallback->scalar != old_router ||
          it->second.settings.Find("entries") == nullptr) {
        return PgStatus("42710",
                        StrCat("router ", dir,
                               " exists and is not a directory with entries: in "
                               "front of ",
                               old_router, " (fallback: ", old_router, ")"),
                        "Rename that router, or point the table at it yourself.");
      }
    }
  }
  ASSIGN_OR_RETURN(int from, router->Route(*kv));
  PinnedMap result;
  result.database = db->name;
  result.from = map->shard_name(from);
  if (result.from == shard) {
    result.moves = false;
    result.yaml = std::string(yaml);
    result.router = dir;
    return result;
  }

  ASSIGN_OR_RETURN(conf::Node root, conf::ParseYaml(yaml, file));
  const conf::Node* db_node =
      root.Find("databases") ? root.Find("databases")->Find(db->name) : nullptr;
  const conf::Node* routers = db_node ? db_node->Find("routers") : nullptr;
  const conf::Node* tables = db_node ? db_node->Find("tables") : nullptr;
  if (routers == nullptr || tables == nullptr) {
    return PgStatus("XX000", StrCat(file, ": routers: or tables: of ", db->name, " not found"));
  }
  conf::YamlEditor editor{std::string(yaml)};
  const std::string entry_key = conf::YamlScalar(kv->ToString());
  const std::string entry_shard = conf::YamlScalar(shard);
  if (db->routers.count(dir) == 0) {
    RETURN_IF_ERROR(
        editor.AddEntry(*routers, conf::YamlScalar(dir),
                        StrCat("{type: directory, fallback: ", conf::YamlScalar(old_router),
                               ", entries: {", entry_key, ": ", entry_shard, "}}")));
    result.created = true;
  } else {
    const conf::Node* entries = routers->Find(dir) ? routers->Find(dir)->Find("entries") : nullptr;
    if (entries == nullptr || entries->kind != conf::Node::Kind::kMap) {
      return PgStatus("0A000", StrCat("router ", dir, " has no entries: map to add the key to"));
    }
    bool replaced = false;
    for (const auto& [k, value] : entries->map) {
      auto listed = routing::ParseKeyText(k, router->key_type());
      if (listed.ok() && *listed == *kv) {
        RETURN_IF_ERROR(editor.ReplaceScalar(value, entry_shard));
        replaced = true;
      }
    }
    if (!replaced) RETURN_IF_ERROR(editor.AddEntry(*entries, entry_key, entry_shard));
  }
  if (dir != old_router) {
    for (const auto& [name, t] : db->tables) {
      if (t.reference || t.router != old_router) continue;
      const conf::Node* t_node = FindLower(tables, name);
      const conf::Node* r_node = t_node ? t_node->Find("router") : nullptr;
      if (r_node == nullptr)
        return PgStatus("XX000", StrCat(file, ": router of table ", name, " not found"));
      RETURN_IF_ERROR(editor.ReplaceScalar(*r_node, conf::YamlScalar(dir)));
      result.repointed.push_back(t.name);
    }
  }
  ASSIGN_OR_RETURN(result.yaml, editor.Result());
  result.router = dir;

  // The edit, read back: the table's router is the directory and sends the key to the shard.
  auto again = conf::LoadString(result.yaml, file);
  if (!again.ok()) {
    return PgStatus("XX000", StrCat("the edited map does not load: ", again.status().message()),
                    "Edit the map by hand (see README \"Hot keys\").");
  }
  const conf::DatabaseConfig* new_db = (*again)->FindDatabase(db->name);
  for (const auto& [name, t] : db->tables) {
    auto now = new_db->tables.find(name);
    const std::string expected = t.router == old_router ? dir : t.router;
    if (now == new_db->tables.end() || now->second.router != expected) {
      // An edit reached something else (a router named through a YAML alias, say).
      return PgStatus("XX000", StrCat("the edited map changes table ", t.name, " unexpectedly"),
                      "Edit the map by hand (see README \"Hot keys\").");
    }
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const routing::ShardMap> new_map,
                   routing::ShardMap::Build(*new_db));
  const TableName tn = SplitTable(table);
  const routing::ShardMap::Table* nt = new_map->FindTable(tn.schema, tn.name);
  absl::StatusOr<int> routed = nt != nullptr && nt->router != nullptr
                                   ? nt->router->Route(*kv)
                                   : absl::StatusOr<int>(absl::InternalError("no router"));
  if (nt == nullptr || nt->router == nullptr || nt->router->name() != dir || !routed.ok() ||
      new_map->shard_name(*routed) != shard) {
    return PgStatus("XX000", "the edited map does not route the key to " + shard,
                    "Edit the map by hand (see README \"Hot keys\").");
  }
  // The router the other keys follow: the table's, or the fallback of its directory.
  const routing::Router* base = router;
  if (rc.type == "directory") {
    const conf::Node* f = rc.settings.Find("fallback");
    base = f != nullptr ? map->router(f->scalar) : nullptr;
  }
  if (base != nullptr &&
      std::find(base->Shards().begin(), base->Shards().end(), *target) != base->Shards().end()) {
    result.notes.push_back(StrCat(shard, " also holds other keys of router ", base->name(),
                                  ": the key moves there, but not to a shard of its own"));
  }
  return result;
}

int HotkeyMoveCommand(const HotkeyOptions& o, std::ostream& out, std::ostream& err) {
  steps::Report r(o.common.json, out, err);
  ReshardOptions rs;
  rs.common = o.common;
  rs.state = o.state;
  rs.jobs = o.jobs;
  rs.timeout_seconds = o.timeout_seconds;
  rs.keep_old_rows = o.keep_old_rows;
  rs.to = o.out.empty() ? o.common.config_path + ".hotkey.yaml" : o.out;
  auto config = conf::LoadFile(o.common.config_path);
  if (!config.ok()) return r.Fail(config.status());
  auto state = reshard::State::Load(steps::StatePath(rs, **config));
  if (!state.ok()) return r.Fail(state.status());
  const bool live = state->Exists() && state->phase != "done" && state->phase != "aborted";
  const std::string to_abs = std::filesystem::absolute(rs.to).string();
  if (to_abs == std::filesystem::absolute(o.common.config_path).string()) {
    return r.Fail(PgStatus("42601", "--out must not be the running config",
                           "The cutover replaces the config with the new map; until then the "
                           "old one must stay."));
  }
  if (live && state->to != to_abs) {
    return r.Fail(PgStatus(
        "55000", StrCat("a reshard to ", state->to, " is in progress (state in ", state->path, ")"),
        "Finish it (shardctl reshard cutover) or abort it first."));
  }
  if (live) {
    // A run that was stopped: its map is written and the state says where it got to.
    r.Event("resumed", {{"map", JsonString(to_abs)}, {"phase", JsonString(state->phase)}},
            StrCat("resuming the move to ", to_abs, " (", state->phase, ")"));
  } else {
    auto text = ReadText(o.common.config_path);
    if (!text.ok()) return r.Fail(text.status());
    auto pinned = PinKey(*text, o.common.config_path, o.common.database, o.table, o.key, o.shard);
    if (!pinned.ok()) return r.Fail(pinned.status());
    if (!pinned->moves) {
      r.Event("nothing_to_do", {{"key", JsonString(o.key)}, {"shard", JsonString(o.shard)}},
              StrCat("key ", o.key, " of ", o.table, " already routes to ", o.shard,
                     ": nothing to move"));
      return 0;
    }
    if (absl::Status st = WriteFileAtomically(rs.to, pinned->yaml, 0644); !st.ok())
      return r.Fail(st);
    std::vector<std::string> quoted;
    for (const auto& t : pinned->repointed) quoted.push_back(JsonString(t));
    r.Event("map",
            {{"path", JsonString(to_abs)},
             {"router", JsonString(pinned->router)},
             {"created", pinned->created ? "true" : "false"},
             {"from", JsonString(pinned->from)},
             {"to", JsonString(o.shard)},
             {"repointed", "[" + absl::StrJoin(quoted, ", ") + "]"}},
            StrCat("new map ", to_abs, ": key ", o.key, " of ", o.table, " ", pinned->from, " -> ",
                   o.shard, " through directory router ", pinned->router,
                   pinned->created ? " (new)" : "",
                   pinned->repointed.empty()
                       ? ""
                       : "; tables now on it: " + absl::StrJoin(pinned->repointed, ", ")));
    for (const auto& note : pinned->notes) {
      r.Event("note", {{"text", JsonString(note)}}, "NOTE: " + note);
    }
    if (int rc = ReshardCommand("plan", rs, out, err); rc != 0) return rc;
    if (o.dry_run) {
      r.Event("dry_run", {{"map", JsonString(to_abs)}},
              "dry run: nothing copied; run again without --dry-run to move the key");
      return 0;
    }
  }
  if (o.dry_run) return 0;
  if (!live || state->phase == "copying" || state->phase == "catching_up") {
    if (int rc = ReshardCommand("start", rs, out, err); rc != 0) return rc;
  }
  if (int rc = ReshardCommand("cutover", rs, out, err); rc != 0) return rc;
  if (o.keep_old_rows) return 0;  // verify's placement check waits for cleanup
  if (int rc = ReshardCommand("verify", rs, out, err); rc != 0) return rc;
  r.Event("moved", {{"key", JsonString(o.key)}, {"shard", JsonString(o.shard)}},
          StrCat("key ", o.key, " of ", o.table, " moved to ", o.shard, "; ", o.common.config_path,
                 " holds the new map"));
  return 0;
}

}  // namespace shardgate::tools
