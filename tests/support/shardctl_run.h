// Runs the shardctl binary (SHARDCTL_BINARY, defined by the test's CMake target) as a user
// would: a shell command line, stdout and stderr together, and its exit code.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace shardgate::testing {

struct Shell {
  int code = -1;      // exit code; 128 when killed by a signal
  std::string out;    // stdout and stderr together
};

// `args` shell-quoted already; `env` prepended ("VAR=x ").
inline Shell Shardctl(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + SHARDCTL_BINARY + " " + args + " 2>&1";
  Shell r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return r;
}

}  // namespace shardgate::testing
