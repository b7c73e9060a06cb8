// `shardctl hotkey move`: one shard key (a "celebrity" tenant) to a shard of its own, online.
//
// Writes a new map where a directory router lists the key in front of the table's router
// (`<router>_pinned`, `fallback: <router>`, created or extended; every table of the router is
// pointed at it so co-located rows move together), then runs the reshard steps on it: plan,
// start (copy + catch-up), cutover (pause, drain, switch, cleanup) and verify. The new map is
// the old file with a few edits (conf/yaml_edit.h), comments and layout kept. A killed run
// resumes from the reshard's state file when started again with the same arguments.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/shardctl/commands.h"

namespace shardgate::tools {

struct HotkeyOptions {
  CommonOptions common;
  std::string table;     // as in the map ("users" or "schema.users")
  std::string key;       // the key's text ("42", "acme")
  std::string shard;     // where it goes
  std::string out;       // the new map (default: <config>.hotkey.yaml)
  std::string state;     // the reshard's state file (default as for reshard)
  bool dry_run = false;  // write the map and show the plan only
  int jobs = 2;
  double timeout_seconds = 120;
  bool keep_old_rows = false;
};

int HotkeyMoveCommand(const HotkeyOptions& options, std::ostream& out, std::ostream& err);

// The new map's text: `key` of `table` pinned to `shard`. `moves` is false when the key is
// already there (nothing to do; `yaml` is then the old text).
struct PinnedMap {
  std::string yaml;
  std::string database;
  std::string router;                  // the directory holding the entry
  bool created = false;                // ... written by this edit
  std::vector<std::string> repointed;  // tables switched from the old router to it
  std::string from;                    // the shard the key is on now
  bool moves = true;
  std::vector<std::string> notes;  // said to the operator
};
absl::StatusOr<PinnedMap> PinKey(std::string_view yaml, const std::string& file,
                                 const std::string& database, const std::string& table,
                                 const std::string& key, const std::string& shard);

}  // namespace shardgate::tools
