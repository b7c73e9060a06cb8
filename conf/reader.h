// Internal to conf/: collects validation problems, and reads typed fields out of Node maps so
// that every wrong type, bad value and unknown key is reported with its position.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "conf/config.h"
#include "conf/node.h"

namespace shardgate::conf::internal {

// Debian's abseil is built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0),
// which std::string_view does not convert to implicitly; this bridges the two for absl calls.
inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Collects problems so that one load reports all of them at once. ToStatus() sorts them by
// position (the tree is walked in key order, not file order) and joins them one per line.
class Problems {
 public:
  void Add(const Mark& mark, std::string message);
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  // OK when empty; otherwise kInvalidArgument with "file:line:column: message" lines.
  absl::Status ToStatus() const;

 private:
  struct Item {
    Mark mark;
    std::string message;
  };
  std::vector<Item> items_;
};

// "did you mean 'x'?" support: the candidate closest to `word` by edit distance, or empty when
// none is close enough to be a plausible typo.
std::string ClosestMatch(std::string_view word, const std::vector<std::string_view>& candidates);

// Parses "5s", "250ms", "2m", "1h" or a bare integer of milliseconds; false when malformed,
// negative or too large.
bool ParseDuration(std::string_view text, Duration* out);

// Reads the fields of one map node. Every key asked for is "known"; Finish() (or the
// destructor) reports the keys of the map that nobody asked for as unknown, with a suggestion.
// A null node reads as an empty map; any other non-map is reported once as "expected a map".
// Each reader returns true only when the key was present and its value valid, and leaves `out`
// untouched otherwise (so struct defaults stay in place). Null values count as absent.
class MapReader {
 public:
  MapReader(const Node& node, Problems& problems, std::string_view what);
  ~MapReader() { Finish(); }
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  bool IsMap() const { return is_map_; }
  const Node& node() const { return node_; }

  // The value node of `key`, or nullptr when absent or null. Marks the key known.
  const Node* Get(std::string_view key);
  // Like Get, but reports "missing required key" at the map when absent.
  const Node* Require(std::string_view key);

  bool String(std::string_view key, std::string* out, bool required = false);
  bool Int(std::string_view key, int64_t* out, int64_t min = std::numeric_limits<int64_t>::min(),
           int64_t max = std::numeric_limits<int64_t>::max(), bool required = false);
  bool Int(std::string_view key, int* out, int64_t min = std::numeric_limits<int>::min(),
           int64_t max = std::numeric_limits<int>::max(), bool required = false);
  bool Bool(std::string_view key, bool* out);
  bool Dur(std::string_view key, Duration* out);
  // A map value (kMap), or nullptr when absent or not a map (reported).
  const Node* Map(std::string_view key, bool required = false);
  // A list value (kList), or nullptr when absent or not a list (reported).
  const Node* List(std::string_view key, bool required = false);

  template <typename E>
  bool Enum(std::string_view key, E* out,
            std::initializer_list<std::pair<std::string_view, E>> values) {
    std::string text;
    const Node* value = Get(key);
    if (value == nullptr || !ScalarOf(*value, key, &text)) return false;
    std::vector<std::string_view> names;
    for (const auto& [name, e] : values) {
      if (text == name) {
        *out = e;
        return true;
      }
      names.push_back(name);
    }
    ReportBadEnum(*value, key, text, names);
    return false;
  }

  // Reports unknown keys; idempotent.
  void Finish();

 private:
  bool ScalarOf(const Node& value, std::string_view key, std::string* out);
  void ReportBadEnum(const Node& value, std::string_view key, std::string_view text,
                     const std::vector<std::string_view>& names);

  const Node& node_;
  Problems& problems_;
  std::string what_;
  bool is_map_ = false;
  bool finished_ = false;
  std::set<std::string, std::less<>> known_;
};

// A scalar as an integer; false when not a plain decimal integer.
bool ParseInt(std::string_view text, int64_t* out);

// Reads a `rate_limit:` map (of a user or a database); nullopt when it is not valid.
std::optional<RateLimitConfig> ReadRateLimit(const Node& node, Problems& problems,
                                             std::string_view what);

// Reads and validates one entry of `databases:` (database.cc). `name_mark` is where its name
// was written; problems go to `problems`, the result holds whatever was valid.
DatabaseConfig ReadDatabase(const std::string& name, const Mark& name_mark, const Node& node,
                            Problems& problems);

}  // namespace shardgate::conf::internal
