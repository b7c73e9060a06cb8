// shardctl: the operator's command line. `route "<sql>"` shows which shards a statement goes to
// and why; `check` validates a config (routers included); `reshard ...` moves rows to a new
// shard map while the application keeps writing (tools/shardctl/reshard.h); `sequence ...`
// installs per-shard key generators (tools/shardctl/sequence.h); `hotkey move` gives one key a
// shard of its own (tools/shardctl/hotkey.h).
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "tools/shardctl/commands.h"
#include "tools/shardctl/hotkey.h"
#include "tools/shardctl/reshard.h"
#include "tools/shardctl/sequence.h"

int main(int argc, char** argv) {
  // CLI11 reports usage errors with exceptions; they are caught here (our code throws none).
  try {
    CLI::App app{"shardctl: route statements, check configs, reshard (shardgate)"};
    app.require_subcommand(1);
    shardgate::tools::RouteOptions route;
    shardgate::tools::CommonOptions& common = route.common;
    app.add_option("-c,--config", common.config_path, "the shardgate YAML file")->required();
    app.add_option("-d,--database", common.database,
                   "the logical database (default: the only or first sharded one)");
    app.add_flag("--json", common.json, "machine-readable output");

    CLI::App* route_cmd = app.add_subcommand("route", "which shard(s) a statement goes to, why");
    route_cmd->add_option("sql", route.sql, "the statement")->required();
    route_cmd->add_option("-p,--param", route.params,
                          "value of $1, $2, ... in order (text; NULL for SQL NULL)");
    route_cmd->add_flag("--in-transaction", route.in_transaction,
                        "route as inside an explicit transaction");
    CLI::App* check_cmd = app.add_subcommand("check", "validate the config, routers included");
    CLI::App* reshard = app.add_subcommand("reshard", "move rows to a new shard map, online");
    reshard->require_subcommand(1);
    shardgate::tools::ReshardOptions rs;
    const char* steps[][2] = {
        {"plan", "which tables and keys move, row counts (by SQL on the shards)"},
        {"start", "slots, consistent copy of the moving rows, stream catch-up (resumes)"},
        {"status", "copy progress and stream lag per source shard"},
        {"verify", "row counts and checksums of every moved key set, source vs target"},
        {"cutover", "pause writes on every proxy, drain, switch maps, resume; then cleanup"},
        {"cleanup", "delete moved rows from their old owners, drop slots and publications"},
        {"abort", "before cutover: remove what was copied, the slots and publications"}};
    for (const auto& [step, help] : steps) {
      CLI::App* s = reshard->add_subcommand(step, help);
      s->add_option("--state", rs.state, "the state file (default: reshard.state or CONFIG.reshard)");
      if (std::string(step) == "plan" || std::string(step) == "start") {
        s->add_option("--to", rs.to, "the new YAML map")->check(CLI::ExistingFile);
      }
      if (std::string(step) == "start") {
        s->add_option("-j,--jobs", rs.jobs, "table copies in parallel (default 2)");
        s->add_option("--follow", rs.follow_seconds,
                      "keep applying the stream this many seconds after catching up");
      }
      if (std::string(step) == "cutover") {
        s->add_option("--timeout", rs.timeout_seconds,
                      "longest catch-up before pausing, in seconds (default 120)");
        s->add_flag("--keep-old-rows", rs.keep_old_rows,
                    "leave the moved rows on their old shards (run cleanup later)");
      }
    }

    CLI::App* sequence = app.add_subcommand(
        "sequence", "sharded sequences: each shard generates only keys it owns");
    sequence->require_subcommand(1);
    shardgate::tools::SequenceOptions seq;
    const char* seq_actions[][2] = {
        {"install", "sequence + function as the key's default on every shard (idempotent)"},
        {"status", "whether each shard has it, and its last value"},
        {"remove", "drop the default, the function and the sequence on every shard"}};
    for (const auto& [action, help] : seq_actions) {
      CLI::App* s = sequence->add_subcommand(action, help);
      s->add_option("table", seq.table, "the sharded table (as in the config)")->required();
      s->add_option("--column", seq.column, "the key column (default: the table's key)");
    }

    CLI::App* hotkey = app.add_subcommand("hotkey", "hot shard keys");
    hotkey->require_subcommand(1);
    shardgate::tools::HotkeyOptions hk;
    CLI::App* move = hotkey->add_subcommand(
        "move", "one key to a shard of its own: new map with a directory entry, then reshard");
    move->add_option("--table", hk.table, "the sharded table (as in the config)")->required();
    move->add_option("--key", hk.key, "the shard key's value")->required();
    move->add_option("--to", hk.shard, "the shard it goes to")->required();
    move->add_option("--out", hk.out, "where the new map is written (default CONFIG.hotkey.yaml)");
    move->add_option("--state", hk.state, "the reshard's state file (as for reshard)");
    move->add_flag("--dry-run", hk.dry_run, "write the new map and show the plan only");
    move->add_option("-j,--jobs", hk.jobs, "table copies in parallel (default 2)");
    move->add_option("--timeout", hk.timeout_seconds,
                     "longest catch-up before pausing, in seconds (default 120)");
    move->add_flag("--keep-old-rows", hk.keep_old_rows,
                   "leave the moved rows on their old shard (run reshard cleanup later)");

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    if (route_cmd->parsed()) return shardgate::tools::RouteCommand(route, std::cout, std::cerr);
    if (check_cmd->parsed()) return shardgate::tools::CheckCommand(common, std::cout, std::cerr);
    if (move->parsed()) {
      hk.common = common;
      return shardgate::tools::HotkeyMoveCommand(hk, std::cout, std::cerr);
    }
    for (CLI::App* s : sequence->get_subcommands()) {
      if (s->parsed()) {
        seq.common = common;
        seq.action = s->get_name();
        return shardgate::tools::SequenceCommand(seq, std::cout, std::cerr);
      }
    }
    for (CLI::App* s : reshard->get_subcommands()) {
      if (s->parsed()) {
        rs.common = common;
        return shardgate::tools::ReshardCommand(s->get_name(), rs, std::cout, std::cerr);
      }
    }
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "shardctl: " << e.what() << "\n";
    return 1;
  }
}
