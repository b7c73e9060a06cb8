// `shardctl reshard`: online resharding from the running map (--config) to a new one.
//
// plan -> start (publication + logical slot per source shard, consistent COPY of the moving
// rows from the slot's exported snapshot, then the slot's pgoutput stream applied to the new
// owners as idempotent upserts/deletes) -> status / verify -> cutover (every proxy pauses
// writes to the moving tables, the stream drains to the sources' current WAL, every proxy
// switches to the new map, writes resume) -> cleanup (moved rows deleted from the old owners,
// slots and publications dropped). abort before cutover undoes the copy.
//
// Which rows move is decided by SQL on the servers: each router's OwnerSql() is the shard a
// row's key belongs to, under the old and the new map. Progress is kept in a state file so a
// killed shardctl resumes: a table copy that did not finish is deleted and copied again, and
// the stream is re-applied from the slot's confirmed position (upserts and deletes by primary
// key converge whatever the starting point, as long as every change after the slot's start is
// applied in order).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "conf/config.h"
#include "routing/shard_map.h"
#include "tools/shardctl/commands.h"
#include "tools/shardctl/pg.h"

namespace shardgate::tools {

struct ReshardOptions {
  CommonOptions common;
  std::string to;             // plan/start: the new YAML map
  std::string state;          // the state file (default: reshard.state or <config>.reshard)
  int jobs = 2;               // table copies in parallel
  double follow_seconds = 0;  // start: keep applying the stream this long after catching up
  double timeout_seconds = 120;  // cutover: longest catch-up before pausing
  bool keep_old_rows = false;    // cutover: leave the moved rows on the old owners (cleanup later)
};

int ReshardCommand(const std::string& step, const ReshardOptions& options, std::ostream& out,
                   std::ostream& err);

namespace reshard {

// One table whose rows move.
struct MovingTable {
  std::string name;       // as in the map: "users" or "schema.users"
  std::string schema;     // "public" unless qualified
  std::string relname;
  std::string key;        // shard key column (empty for reference tables)
  bool reference = false;
  std::string old_owner;  // SQL: the shard name owning a row under the old map
  std::string new_owner;  // ... under the new map
  std::vector<std::string> sources;  // shards rows leave from
  std::vector<std::string> targets;  // shards rows may arrive at
  const routing::Router* new_router = nullptr;
  // The old ownership as a PL/pgSQL function of the key as text, for statements the stream
  // repeats (parsed once per connection instead of once per statement).
  std::string old_owner_function;
  std::string QuotedName() const;  // "schema"."relname"
};

struct Plan {
  std::string database;
  std::shared_ptr<const conf::Config> old_config, new_config;
  std::shared_ptr<const routing::ShardMap> old_map, new_map;
  std::vector<MovingTable> tables;
  std::vector<std::string> new_shards;  // in the new map only
  std::vector<std::string> notes;       // said to the operator (modulo N -> M...)

  std::vector<std::string> Sources() const;  // every shard some rows leave
  std::vector<std::string> Targets() const;
  const MovingTable* Find(std::string_view schema, std::string_view relname) const;
  // libpq parameters of a shard's primary (new config first, then old), as shardctl's role.
  absl::StatusOr<PgConn::Params> ShardParams(const std::string& shard) const;
};

absl::StatusOr<Plan> BuildPlan(const std::string& old_path, const std::string& new_path,
                               const std::string& database);

// Progress, one "key value..." line each, rewritten atomically after every step.
struct State {
  std::string path;
  std::string to;        // the new map's absolute path
  std::string database;
  std::string id;        // names slots and publications: sg_rs_<id>
  std::string phase;     // copying | catching_up | switched | done | aborted
  std::map<std::string, int64_t> copied;        // "table S T" -> rows, when finished
  std::map<std::string, int64_t> estimates;     // "table S" -> the planner's rows, when finished
  std::map<std::string, std::string> slots;     // source shard -> slot name
  std::map<std::string, uint64_t> applied_lsn;  // source -> slot position applied up to
  std::map<std::string, int64_t> changes;       // source -> changes applied
  std::map<std::string, int64_t> last_commit_us;  // source -> commit time of the last applied
  std::map<std::string, std::string> facts;     // cutover figures and the like
  // Guards the maps and Save() when sources catch up in parallel.
  std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();

  static absl::StatusOr<State> Load(const std::string& path);  // missing file: empty state
  absl::Status Save() const;
  bool Exists() const { return !id.empty(); }
  std::string Publication() const { return "sg_rs_" + id; }
  std::string SlotFor(const std::string& shard) const;
};

// What a catch-up did.
struct CatchUpResult {
  int64_t changes = 0;
  uint64_t position = 0;  // where the slot now stands
  bool reached = false;
};

// A source's stream kept open across calls (a new connection decodes again from the slot's
// restart point, which can be seconds of WAL back).
class Catcher {
 public:
  static absl::StatusOr<std::unique_ptr<Catcher>> Open(const Plan& plan, State& state,
                                                       const std::string& shard);
  ~Catcher();
  // Commits a marker on the source and applies the stream until the marker comes out of it
  // (everything committed before is then applied), or `deadline_ms` passed (reached false).
  absl::StatusOr<CatchUpResult> Run(int64_t deadline_ms);

 private:
  struct Impl;
  explicit Catcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};


uint64_t ParseLsn(std::string_view text);  // "16/B374D848" -> 0x16B374D848
std::string FormatLsn(uint64_t lsn);

// Test hooks (SHARDCTL_TEST_FAULT): "copy_rows=N" exits (70) after N rows of a table copy,
// "apply_batches=N" after N stream batches applied but before the slot advances.
void MaybeFault(std::string_view point, int64_t count);

}  // namespace reshard
}  // namespace shardgate::tools
