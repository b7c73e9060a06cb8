// A YAML-free tree of configuration values with source positions, so that modules above conf/
// (routers) can validate their own settings and report FILE:LINE:COLUMN without yaml-cpp.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace shardgate::conf {

struct Mark {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  std::string ToString() const;  // "file:line:column"
};

// An error at `mark`: message "file:line:column: what", code kInvalidArgument.
absl::Status ErrorAt(const Mark& mark, std::string_view what);

class Node {
 public:
  enum class Kind { kNull, kScalar, kList, kMap };

  Kind kind = Kind::kNull;
  Mark mark;
  std::string scalar;                // kScalar
  std::vector<Node> list;            // kList
  std::map<std::string, Node> map;   // kMap (keys in sorted order)
  std::map<std::string, Mark> key_marks;  // kMap: where each key was written

  bool IsNull() const { return kind == Kind::kNull; }
  const Node* Find(std::string_view key) const;  // nullptr when absent or not a map
};

}  // namespace shardgate::conf
