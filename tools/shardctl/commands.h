// shardctl's commands as functions (main.cc only parses the command line), so they can be
// reused and tested: each writes its report to `out`, problems to `err`, and returns the exit
// code (0 ok, 1 error).
//
// API: RouteCommand(options) prints the shards a statement goes to and why (text or JSON);
// CheckCommand(options) validates the config including every router.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace shardgate::tools {

struct CommonOptions {
  std::string config_path;
  std::string database;  // empty = the only database, or the first sharded one
  bool json = false;
};

struct RouteOptions {
  CommonOptions common;
  std::string sql;
  std::vector<std::string> params;  // text values of $1, $2, ... ("NULL" = SQL NULL)
  bool in_transaction = false;
};

int RouteCommand(const RouteOptions& options, std::ostream& out, std::ostream& err);
int CheckCommand(const CommonOptions& options, std::ostream& out, std::ostream& err);

// JSON string literal for `s` (quotes included).
std::string JsonString(const std::string& s);

}  // namespace shardgate::tools
