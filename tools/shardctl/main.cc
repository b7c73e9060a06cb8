// shardctl: the operator's command line. `route "<sql>"` shows which shards a statement goes to
// and why; `check` validates a config (routers included); the resharding commands of CONFIG.md
// are placeholders until their issue lands.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "tools/shardctl/commands.h"

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
    CLI::App* reshard = app.add_subcommand("reshard", "resharding (not implemented yet)");
    reshard->require_subcommand(1);
    for (const char* step : {"plan", "start", "status", "verify", "cutover", "cleanup", "abort"}) {
      CLI::App* s = reshard->add_subcommand(step, std::string("reshard ") + step);
      s->allow_extras();
    }

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    if (route_cmd->parsed()) return shardgate::tools::RouteCommand(route, std::cout, std::cerr);
    if (check_cmd->parsed()) return shardgate::tools::CheckCommand(common, std::cout, std::cerr);
    for (CLI::App* s : reshard->get_subcommands()) {
      if (s->parsed()) return shardgate::tools::NotImplemented("reshard " + s->get_name(), std::cerr);
    }
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "shardctl: " << e.what() << "\n";
    return 1;
  }
}
