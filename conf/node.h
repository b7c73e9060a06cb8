// A YAML-free tree of configuration values with source positions, so that modules above conf/
// (routers) can validate their own settings and report FILE:LINE:COLUMN without yaml-cpp.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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

// Parses YAML text into a Node tree; `file` names the source in marks and errors. Every problem
// (syntax, duplicate or non-string map keys, nesting too deep) is reported as kInvalidArgument,
// one "file:line:column: message" per line. Exposed so that routing/ tests and tools can build
// router settings from YAML snippets without including yaml-cpp.
absl::StatusOr<Node> ParseYaml(std::string_view yaml, const std::string& file = "<string>");

}  // namespace shardgate::conf
