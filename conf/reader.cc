// Problem collection and typed, positioned reading of configuration maps.
#include "conf/reader.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shardgate::conf::internal {

void Problems::Add(const Mark& mark, std::string message) {
  items_.push_back(Item{mark, std::move(message)});
}

absl::Status Problems::ToStatus() const {
  if (items_.empty()) return absl::OkStatus();
  std::vector<const Item*> sorted;
  sorted.reserve(items_.size());
  for (const Item& item : items_) sorted.push_back(&item);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Item* a, const Item* b) {
    return std::tie(a->mark.file, a->mark.line, a->mark.column) <
           std::tie(b->mark.file, b->mark.line, b->mark.column);
  });
  std::string text;
  for (const Item* item : sorted) {
    std::string line = absl::StrCat(item->mark.ToString(), ": ", item->message);
    if (!text.empty() && line == text.substr(text.rfind('\n') + 1)) continue;  // exact repeat
    absl::StrAppend(&text, text.empty() ? "" : "\n", line);
  }
  return absl::InvalidArgumentError(text);
}

namespace {

std::string_view Strip(std::string_view text) {
  absl::string_view stripped = absl::StripAsciiWhitespace(Av(text));
  return std::string_view(stripped.data(), stripped.size());
}

void ViewFormatter(std::string* out, std::string_view s) { out->append(s); }

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string ClosestMatch(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string lower = absl::AsciiStrToLower(Av(word));
  std::string_view best;
  size_t best_distance = 0;
  for (std::string_view candidate : candidates) {
    size_t d = EditDistance(lower, candidate);
    if (best.empty() || d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  // A typo changes a few letters; beyond a third of the word it is a different word.
  size_t allowed = std::max<size_t>(1, std::min<size_t>(3, (best.size() + 2) / 3));
  if (best.empty() || best_distance > allowed) return "";
  return std::string(best);
}

bool ParseInt(std::string_view text, int64_t* out) {
  text = Strip(text);
  if (text.empty()) return false;
  size_t start = (text[0] == '-' || text[0] == '+') ? 1 : 0;
  if (start == text.size()) return false;
  for (size_t i = start; i < text.size(); ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return absl::SimpleAtoi(Av(text), out);
}

bool ParseDuration(std::string_view text, Duration* out) {
  text = Strip(text);
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  if (digits == 0 || digits > 12) return false;  // 12 digits of hours still fits in int64 ms
  int64_t value = 0;
  if (!absl::SimpleAtoi(Av(text.substr(0, digits)), &value)) return false;
  std::string_view unit = text.substr(digits);
  int64_t scale = 0;
  if (unit.empty() || unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m" || unit == "min") {
    scale = 60 * 1000;
  } else if (unit == "h") {
    scale = 60 * 60 * 1000;
  } else {
    return false;
  }
  *out = Duration(value * scale);
  return true;
}

MapReader::MapReader(const Node& node, Problems& problems, std::string_view what)
    : node_(node), problems_(problems), what_(what) {
  is_map_ = node.kind == Node::Kind::kMap;
  if (!is_map_ && !node.IsNull()) {
    problems_.Add(node.mark, absl::StrCat("expected a map for ", what_));
  }
}

const Node* MapReader::Get(std::string_view key) {
  known_.emplace(key);
  if (!is_map_) return nullptr;
  const Node* value = node_.Find(key);
  if (value == nullptr || value->IsNull()) return nullptr;
  return value;
}

const Node* MapReader::Require(std::string_view key) {
  const Node* value = Get(key);
  if (value == nullptr && (is_map_ || node_.IsNull())) {
    problems_.Add(node_.mark, absl::StrCat(what_, ": missing required key '", Av(key), "'"));
  }
  return value;
}

bool MapReader::ScalarOf(const Node& value, std::string_view key, std::string* out) {
  if (value.kind != Node::Kind::kScalar) {
    problems_.Add(value.mark, absl::StrCat("'", Av(key), "': expected a string"));
    return false;
  }
  *out = value.scalar;
  return true;
}

bool MapReader::String(std::string_view key, std::string* out, bool required) {
  const Node* value = required ? Require(key) : Get(key);
  if (value == nullptr) return false;
  if (value->kind != Node::Kind::kScalar) {
    problems_.Add(value->mark, absl::StrCat("'", Av(key), "': expected a string"));
    return false;
  }
  if (required && value->scalar.empty()) {
    problems_.Add(value->mark, absl::StrCat("'", Av(key), "' must not be empty"));
    return false;
  }
  *out = value->scalar;
  return true;
}

bool MapReader::Int(std::string_view key, int64_t* out, int64_t min, int64_t max, bool required) {
  const Node* value = required ? Require(key) : Get(key);
  if (value == nullptr) return false;
  int64_t parsed = 0;
  if (value->kind != Node::Kind::kScalar || !ParseInt(value->scalar, &parsed)) {
    problems_.Add(value->mark, absl::StrCat("'", Av(key), "': expected an integer"));
    return false;
  }
  if (parsed < min || parsed > max) {
    std::string range =
        max == std::numeric_limits<int64_t>::max() || max == std::numeric_limits<int>::max()
            ? absl::StrCat("at least ", min)
            : absl::StrCat("between ", min, " and ", max);
    problems_.Add(value->mark, absl::StrCat("'", Av(key), "' must be ", range, ", got ", parsed));
    return false;
  }
  *out = parsed;
  return true;
}

bool MapReader::Int(std::string_view key, int* out, int64_t min, int64_t max, bool required) {
  int64_t wide = 0;
  min = std::max<int64_t>(min, std::numeric_limits<int>::min());
  max = std::min<int64_t>(max, std::numeric_limits<int>::max());
  if (!Int(key, &wide, min, max, required)) return false;
  *out = static_cast<int>(wide);
  return true;
}

bool MapReader::Bool(std::string_view key, bool* out) {
  const Node* value = Get(key);
  if (value == nullptr) return false;
  std::string text = value->kind == Node::Kind::kScalar ? absl::AsciiStrToLower(value->scalar) : "";
  if (text == "true") {
    *out = true;
    return true;
  }
  if (text == "false") {
    *out = false;
    return true;
  }
  problems_.Add(value->mark, absl::StrCat("'", Av(key), "': expected true or false"));
  return false;
}

bool MapReader::Dur(std::string_view key, Duration* out) {
  const Node* value = Get(key);
  if (value == nullptr) return false;
  if (value->kind != Node::Kind::kScalar || !ParseDuration(value->scalar, out)) {
    problems_.Add(value->mark,
                  absl::StrCat("'", Av(key),
                               "': expected a duration such as 250ms, 5s, 2m, 1h or a number of "
                               "milliseconds"));
    return false;
  }
  return true;
}

const Node* MapReader::Map(std::string_view key, bool required) {
  const Node* value = required ? Require(key) : Get(key);
  if (value == nullptr) return nullptr;
  if (value->kind != Node::Kind::kMap) {
    problems_.Add(value->mark, absl::StrCat("'", Av(key), "': expected a map"));
    return nullptr;
  }
  return value;
}

const Node* MapReader::List(std::string_view key, bool required) {
  const Node* value = required ? Require(key) : Get(key);
  if (value == nullptr) return nullptr;
  if (value->kind != Node::Kind::kList) {
    problems_.Add(value->mark, absl::StrCat("'", Av(key), "': expected a list"));
    return nullptr;
  }
  return value;
}

void MapReader::ReportBadEnum(const Node& value, std::string_view key, std::string_view text,
                              const std::vector<std::string_view>& names) {
  std::string message = absl::StrCat("unknown ", Av(key), " '", Av(text), "' (expected ",
                                     absl::StrJoin(names, ", ", ViewFormatter), ")");
  if (std::string close = ClosestMatch(text, names); !close.empty()) {
    absl::StrAppend(&message, "; did you mean '", close, "'?");
  }
  problems_.Add(value.mark, std::move(message));
}

void MapReader::Finish() {
  if (finished_) return;
  finished_ = true;
  if (!is_map_) return;
  std::vector<std::string_view> known(known_.begin(), known_.end());
  for (const auto& [key, value] : node_.map) {
    if (known_.contains(key)) continue;
    auto mark_it = node_.key_marks.find(key);
    const Mark& mark = mark_it != node_.key_marks.end() ? mark_it->second : value.mark;
    std::string message = absl::StrCat("unknown key '", key, "' in ", what_);
    if (std::string close = ClosestMatch(key, known); !close.empty()) {
      absl::StrAppend(&message, "; did you mean '", close, "'?");
    }
    problems_.Add(mark, std::move(message));
  }
}

}  // namespace shardgate::conf::internal
