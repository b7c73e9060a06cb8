// Edits of a YAML text at the positions its parse reported, so that everything not edited
// (comments, order, quoting, layout) stays as the operator wrote it. Used by tools that write a
// new shard map from the running one (`shardctl hotkey move`).
//
// API: YamlEditor(text) over the Node tree ParseYaml(text) gave; ReplaceScalar(node, value) and
// AddEntry(map, key, value) record edits; Result() applies them. YamlScalar(s) is `s` as a YAML
// scalar that reads back as `s`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "conf/node.h"

namespace shardgate::conf {

// `s` as a YAML scalar: plain when that reads back as the same string, else double-quoted.
std::string YamlScalar(std::string_view s);

// Records edits against the positions of a parse of `text` (ParseYaml of the same text) and
// applies them together. An edit whose position does not hold what the node says (a value
// reached through an alias, a multi-line scalar, a file changed meanwhile) fails with
// kFailedPrecondition instead of writing somewhere else.
class YamlEditor {
 public:
  explicit YamlEditor(std::string text);

  // Replaces a one-line scalar (plain or quoted) by `yaml_value` (already YAML: YamlScalar).
  absl::Status ReplaceScalar(const Node& scalar, std::string_view yaml_value);
  // Adds `key: value` as the first entry of `map`: after the `{` of a flow map, or as a line of
  // its own, indented like the map's first key, before a block map.
  absl::Status AddEntry(const Node& map, std::string_view yaml_key, std::string_view yaml_value);
  // The text with every edit applied. Edits must not overlap (kFailedPrecondition).
  absl::StatusOr<std::string> Result() const;

 private:
  struct Edit {
    size_t offset;
    size_t erase;
    std::string insert;
  };
  // Byte offset of a 1-based line and column; npos when outside the text.
  size_t OffsetOf(const Mark& mark) const;

  std::string text_;
  std::vector<size_t> line_starts_;
  std::string newline_;  // "\n", or "\r\n" when the file uses it
  std::vector<Edit> edits_;
};

}  // namespace shardgate::conf
