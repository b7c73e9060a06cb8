// Hint comments and shardgate.* session variables, recognised with a tiny lexer (no parser).
#include "routing/hints.h"

#include <vector>

#include "protocol/status.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

// One comment's body (without the delimiters).
struct Comment {
  std::string_view body;
};

// Leading comments: whitespace and comments before the first token.
std::vector<Comment> LeadingComments(std::string_view sql) {
  std::vector<Comment> out;
  size_t i = 0;
  while (i < sql.size()) {
    if (IsSpace(sql[i])) {
      ++i;
    } else if (sql.substr(i, 2) == "/*") {
      size_t end = sql.find("*/", i + 2);
      if (end == std::string_view::npos) break;
      out.push_back({sql.substr(i + 2, end - i - 2)});
      i = end + 2;
    } else if (sql.substr(i, 2) == "--") {
      size_t end = sql.find('\n', i);
      if (end == std::string_view::npos) end = sql.size();
      out.push_back({sql.substr(i + 2, end - i - 2)});
      i = end;
    } else {
      break;
    }
  }
  return out;
}

// Trailing block comments (after the last token and an optional ';').
std::vector<Comment> TrailingComments(std::string_view sql) {
  std::vector<Comment> out;
  std::string_view s = sql;
  for (int guard = 0; guard < 16; ++guard) {
    while (!s.empty() && (IsSpace(s.back()) || s.back() == ';')) s.remove_suffix(1);
    if (s.size() < 4 || s.substr(s.size() - 2) != "*/") break;
    size_t start = s.rfind("/*", s.size() - 3);
    if (start == std::string_view::npos) break;
    out.push_back({s.substr(start + 2, s.size() - start - 4)});
    s = s.substr(0, start);
  }
  return out;
}

// "30s", "250ms", "2m", "1h", "45" (seconds), "off" or "0" (0: never cache); nullopt when
// malformed or longer than a day.
std::optional<std::chrono::milliseconds> ParseCacheTtl(std::string_view text) {
  const std::string value = Lower(text);
  if (value == "off" || value == "no" || value == "false") return std::chrono::milliseconds(0);
  size_t digits = 0;
  while (digits < value.size() && digits < 9 && value[digits] >= '0' && value[digits] <= '9') {
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  const int64_t n = std::stoll(value.substr(0, digits));
  const std::string unit = value.substr(digits);
  int64_t ms = 0;
  if (unit == "ms") {
    ms = n;
  } else if (unit.empty() || unit == "s") {
    ms = n * 1000;
  } else if (unit == "m" || unit == "min") {
    ms = n * 60000;
  } else if (unit == "h") {
    ms = n * 3600000;
  } else {
    return std::nullopt;
  }
  if (ms > 86400000) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

absl::Status ApplyHintWords(std::string_view body, Hints& hints) {
  // body is "shardgate: shard=s1, primary"
  std::string_view rest = Strip(body);
  rest.remove_prefix(std::string_view("shardgate:").size());
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && (IsSpace(rest[i]) || rest[i] == ',')) ++i;
    if (i >= rest.size()) break;
    size_t start = i;
    while (i < rest.size() && !IsSpace(rest[i]) && rest[i] != ',' && rest[i] != '=') ++i;
    std::string word = Lower(rest.substr(start, i - start));
    while (i < rest.size() && IsSpace(rest[i])) ++i;
    if (i < rest.size() && rest[i] == '=') {
      ++i;
      while (i < rest.size() && IsSpace(rest[i])) ++i;
      std::string value;
      if (i < rest.size() && (rest[i] == '\'' || rest[i] == '"')) {
        char q = rest[i++];
        size_t end = rest.find(q, i);
        if (end == std::string_view::npos) {
          return PgStatus("42601", "unterminated quoted value in a shardgate hint");
        }
        value = std::string(rest.substr(i, end - i));
        i = end + 1;
      } else {
        size_t vs = i;
        while (i < rest.size() && !IsSpace(rest[i]) && rest[i] != ',') ++i;
        value = std::string(rest.substr(vs, i - vs));
      }
      if (value.empty()) return PgStatus("42601", Cat("empty value for shardgate hint ", word));
      if (word == "shard") {
        hints.shard = std::move(value);
      } else if (word == "key") {
        hints.key = std::move(value);
      } else if (word == "cache") {
        std::optional<std::chrono::milliseconds> ttl = ParseCacheTtl(value);
        if (!ttl) {
          return PgStatus("42601", Cat("invalid shardgate hint cache=", value),
                          "write cache=30s (ms, s, m or h) or cache=off");
        }
        hints.cache = *ttl;
      } else {
        return PgStatus("42601", Cat("unknown shardgate hint \"", word, "\""),
                        "hints are shard=NAME, key=VALUE, cache=TTL, primary, replica, any");
      }
    } else if (word == "primary") {
      hints.role = Role::kPrimary;
    } else if (word == "replica") {
      hints.role = Role::kReplica;
    } else if (word == "any") {
      hints.role = Role::kAny;
    } else {
      return PgStatus("42601", Cat("unknown shardgate hint \"", word, "\""),
                      "hints are shard=NAME, key=VALUE, cache=TTL, primary, replica, any");
    }
  }
  return absl::OkStatus();
}

// Reads one SQL word (ASCII letters, digits, '_', '.' and '"') at `i`. (Not std::isalnum: a
// call into the C library per character, and every Query's first word is read here.)
std::string_view Word(std::string_view s, size_t& i) {
  auto word_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '"';
  };
  while (i < s.size() && IsSpace(s[i])) ++i;
  size_t start = i;
  while (i < s.size() && word_char(s[i])) ++i;
  return s.substr(start, i - start);
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kPrimary: return "primary";
    case Role::kReplica: return "replica";
    case Role::kAny: return "any";
  }
  return "?";
}

void Hints::MergeFrom(const Hints& fallback) {
  if (!shard && !key) {
    shard = fallback.shard;
    key = fallback.key;
  }
  if (!role) role = fallback.role;
}

absl::StatusOr<Hints> ParseCommentHints(std::string_view sql) {
  Hints hints;
  // Fast exits: hints live in comments, and no hint can be present without the word.
  if (sql.find("/*") == std::string_view::npos && sql.find("--") == std::string_view::npos) {
    return hints;
  }
  bool mentioned = false;
  for (size_t i = 0; i + 9 <= sql.size() && !mentioned; ++i) {
    mentioned = (sql[i] == 's' || sql[i] == 'S') && EqualsNoCase(sql.substr(i, 9), "shardgate");
  }
  if (!mentioned) return hints;
  std::vector<Comment> comments = LeadingComments(sql);
  std::vector<Comment> trailing = TrailingComments(sql);
  comments.insert(comments.end(), trailing.begin(), trailing.end());
  for (const Comment& c : comments) {
    if (!StartsWithNoCase(Strip(c.body), "shardgate:")) continue;
    RETURN_IF_ERROR(ApplyHintWords(c.body, hints));
  }
  if (hints.shard && hints.key) {
    return PgStatus("42601", "a statement may carry shard= or key=, not both");
  }
  return hints;
}

std::optional<absl::StatusOr<SessionHint>> ParseSessionHint(std::string_view sql) {
  // Skip leading comments and whitespace.
  size_t i = 0;
  for (;;) {
    while (i < sql.size() && IsSpace(sql[i])) ++i;
    if (i + 1 >= sql.size() || (sql[i] != '/' && sql[i] != '-')) break;  // no comment
    if (sql[i] == '/' && sql[i + 1] == '*') {
      size_t end = sql.find("*/", i + 2);
      if (end == std::string_view::npos) return std::nullopt;
      i = end + 2;
    } else if (sql[i] == '-' && sql[i + 1] == '-') {
      size_t end = sql.find('\n', i);
      if (end == std::string_view::npos) return std::nullopt;
      i = end + 1;
    } else {
      break;
    }
  }
  std::string_view verb = Word(sql, i);
  bool is_set = EqualsNoCase(verb, "set"), is_reset = EqualsNoCase(verb, "reset");
  if (!is_set && !is_reset) return std::nullopt;
  std::string_view name = Word(sql, i);
  if (is_set && (EqualsNoCase(name, "session") || EqualsNoCase(name, "local"))) {
    name = Word(sql, i);
  }
  auto tail_is_empty = [&](size_t pos) {
    while (pos < sql.size() && (IsSpace(sql[pos]) || sql[pos] == ';')) ++pos;
    return pos >= sql.size();
  };
  if (is_reset && EqualsNoCase(name, "all")) {
    if (!tail_is_empty(i)) return std::nullopt;
    return absl::StatusOr<SessionHint>(SessionHint{SessionHint::Op::kResetAll, "", ""});
  }
  std::string lname = Lower(name);
  if (!lname.starts_with("shardgate.")) return std::nullopt;
  std::string var = lname.substr(std::string_view("shardgate.").size());
  if (var != "shard" && var != "key") {
    return absl::StatusOr<SessionHint>(
        PgStatus("42704", Cat("unrecognized configuration parameter \"", name, "\""),
                 "shardgate's session variables are shardgate.shard and shardgate.key"));
  }
  SessionHint hint;
  hint.name = var;
  if (is_reset) {
    if (!tail_is_empty(i)) return absl::StatusOr<SessionHint>(PgStatus("42601", "syntax error"));
    hint.op = SessionHint::Op::kReset;
    return absl::StatusOr<SessionHint>(std::move(hint));
  }
  while (i < sql.size() && IsSpace(sql[i])) ++i;
  if (i < sql.size() && sql[i] == '=') {
    ++i;
  } else {
    std::string_view to = Word(sql, i);
    if (!EqualsNoCase(to, "to")) {
      return absl::StatusOr<SessionHint>(PgStatus("42601", Cat("syntax error in SET ", name)));
    }
  }
  while (i < sql.size() && IsSpace(sql[i])) ++i;
  std::string value;
  if (i < sql.size() && sql[i] == '\'') {
    ++i;
    for (;;) {  // '' is an escaped quote inside the literal
      if (i >= sql.size()) {
        return absl::StatusOr<SessionHint>(PgStatus("42601", "unterminated quoted string"));
      }
      if (sql[i] == '\'') {
        if (i + 1 < sql.size() && sql[i + 1] == '\'') {
          value.push_back('\'');
          i += 2;
          continue;
        }
        ++i;
        break;
      }
      value.push_back(sql[i++]);
    }
  } else {
    size_t start = i;
    while (i < sql.size() && !IsSpace(sql[i]) && sql[i] != ';') ++i;
    value = std::string(sql.substr(start, i - start));
    if (EqualsNoCase(value, "default")) {
      hint.op = SessionHint::Op::kReset;
      value.clear();
    }
  }
  if (!tail_is_empty(i)) {
    return absl::StatusOr<SessionHint>(PgStatus("42601", Cat("syntax error in SET ", name)));
  }
  if (hint.op == SessionHint::Op::kSet && value.empty()) {
    return absl::StatusOr<SessionHint>(PgStatus("22023", Cat("empty value for ", name)));
  }
  hint.value = std::move(value);
  return absl::StatusOr<SessionHint>(std::move(hint));
}

void ApplySessionHint(const SessionHint& hint, Hints& session) {
  switch (hint.op) {
    case SessionHint::Op::kResetAll:
      session = Hints{};
      return;
    case SessionHint::Op::kReset:
      (hint.name == "shard" ? session.shard : session.key).reset();
      return;
    case SessionHint::Op::kSet:
      // shard and key are alternatives: setting one clears the other.
      if (hint.name == "shard") {
        session.shard = hint.value;
        session.key.reset();
      } else {
        session.key = hint.value;
        session.shard.reset();
      }
      return;
  }
}

}  // namespace shardgate::routing
