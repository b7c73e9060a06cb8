// YamlEditor: text edits at parse positions, checked against what the parse saw there.
#include "conf/yaml_edit.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "conf/reader.h"

namespace shardgate::conf {
namespace {

using internal::Av;

bool IsPlainSafe(std::string_view s) {
  if (s.empty()) return false;
  // Scalars yaml-cpp reads as null; everything else keeps its text (conf/ reads scalars as text).
  if (s == "~" || s == "null" || s == "Null" || s == "NULL") return false;
  const auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(s[0]) && !(s[0] == '-' && s.size() > 1 && s[1] >= '0' && s[1] <= '9')) return false;
  return std::all_of(s.begin(), s.end(),
                     [&](char c) { return word(c) || c == '-' || c == '.' || c == '/'; });
}

absl::Status Mismatch(const Mark& mark, std::string_view expected) {
  return absl::FailedPreconditionError(absl::StrCat(mark.ToString(), ": expected ", Av(expected),
                                                    " here; edit this part of the file by hand"));
}

}  // namespace

std::string YamlScalar(std::string_view s) {
  if (IsPlainSafe(s)) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += absl::StrCat("\\x", std::string(1, kHex[(c >> 4) & 0xf]),
                              std::string(1, kHex[c & 0xf]));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

YamlEditor::YamlEditor(std::string text) : text_(std::move(text)), newline_("\n") {
  line_starts_.push_back(0);
  for (size_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }
  const size_t first = text_.find('\n');
  if (first != std::string::npos && first > 0 && text_[first - 1] == '\r') newline_ = "\r\n";
}

size_t YamlEditor::OffsetOf(const Mark& mark) const {
  if (mark.line < 1 || mark.column < 1 || static_cast<size_t>(mark.line) > line_starts_.size()) {
    return std::string::npos;
  }
  const size_t start = line_starts_[mark.line - 1];
  const size_t end =
      static_cast<size_t>(mark.line) < line_starts_.size() ? line_starts_[mark.line] : text_.size();
  // yaml-cpp counts columns in bytes of its UTF-8 input.
  const size_t offset = start + static_cast<size_t>(mark.column - 1);
  return offset < end ? offset : std::string::npos;
}

absl::Status YamlEditor::ReplaceScalar(const Node& scalar, std::string_view yaml_value) {
  if (scalar.kind != Node::Kind::kScalar) return Mismatch(scalar.mark, "a scalar");
  const size_t at = OffsetOf(scalar.mark);
  if (at == std::string::npos) return Mismatch(scalar.mark, "'" + scalar.scalar + "'");
  const std::string_view rest = std::string_view(text_).substr(at);
  size_t length = 0;
  if (rest.substr(0, scalar.scalar.size()) == scalar.scalar && !rest.empty() && rest[0] != '"' &&
      rest[0] != '\'') {
    length = scalar.scalar.size();
  } else if (!rest.empty() && (rest[0] == '"' || rest[0] == '\'')) {
    // A quoted scalar without escapes: the quotes around the same text.
    const std::string quoted =
        absl::StrCat(std::string(1, rest[0]), scalar.scalar, std::string(1, rest[0]));
    if (rest.substr(0, quoted.size()) == quoted) length = quoted.size();
  }
  if (length == 0) return Mismatch(scalar.mark, "'" + scalar.scalar + "'");
  edits_.push_back(Edit{at, length, std::string(yaml_value)});
  return absl::OkStatus();
}

absl::Status YamlEditor::AddEntry(const Node& map, std::string_view yaml_key,
                                  std::string_view yaml_value) {
  if (map.kind != Node::Kind::kMap) return Mismatch(map.mark, "a map");
  const std::string entry = absl::StrCat(Av(yaml_key), ": ", Av(yaml_value));
  const size_t at = OffsetOf(map.mark);
  if (at != std::string::npos && text_[at] == '{') {
    // Flow map: before its first entry, or alone in an empty one.
    const size_t first = text_.find_first_not_of(" \t\r\n", at + 1);
    if (first == std::string::npos) return Mismatch(map.mark, "a flow map");
    edits_.push_back(Edit{first, 0, text_[first] == '}' ? entry : entry + ", "});
    return absl::OkStatus();
  }
  // Block map: a line of its own before the first key, at the same indentation.
  if (map.key_marks.empty()) return Mismatch(map.mark, "a map with keys");
  const Mark* first = nullptr;
  for (const auto& [name, mark] : map.key_marks) {
    if (first == nullptr || mark.line < first->line ||
        (mark.line == first->line && mark.column < first->column)) {
      first = &mark;
    }
  }
  const size_t key_at = OffsetOf(*first);
  if (key_at == std::string::npos) return Mismatch(*first, "a map key");
  const size_t line_start = line_starts_[first->line - 1];
  const std::string_view indent = std::string_view(text_).substr(line_start, key_at - line_start);
  if (indent.find_first_not_of(' ') != std::string_view::npos) {
    return Mismatch(*first, "a key at the start of its line");
  }
  edits_.push_back(Edit{line_start, 0, absl::StrCat(Av(indent), entry, newline_)});
  return absl::OkStatus();
}

absl::StatusOr<std::string> YamlEditor::Result() const {
  std::vector<Edit> edits = edits_;
  std::stable_sort(edits.begin(), edits.end(),
                   [](const Edit& a, const Edit& b) { return a.offset > b.offset; });
  std::string out = text_;
  size_t limit = std::string::npos;  // edits apply from the end, each before the previous one
  for (const Edit& e : edits) {
    if (limit != std::string::npos && e.offset + e.erase > limit) {
      return absl::FailedPreconditionError("two edits of the same part of the file");
    }
    out.replace(e.offset, e.erase, e.insert);
    limit = e.offset;
  }
  return out;
}

}  // namespace shardgate::conf
