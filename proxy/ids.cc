// MatchNextIdCall: recognizes the one statement the proxy answers with an id.
#include "proxy/ids.h"

#include <cctype>

#include "proxy/strings.h"

namespace shardgate::proxy {
namespace {

// Consumes `word` (case-insensitive) at the front of `s`, after spaces.
bool Eat(std::string_view& s, std::string_view word) {
  s = StripSpace(s);
  if (s.size() < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != word[i]) return false;
  }
  s.remove_prefix(word.size());
  return true;
}

bool IdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

}  // namespace

std::optional<std::string> MatchNextIdCall(std::string_view sql) {
  std::string_view s = sql;
  if (!Eat(s, "select")) return std::nullopt;
  if (!s.empty() && IdentChar(s.front())) return std::nullopt;  // "selectx"
  if (!Eat(s, "shardgate") || !Eat(s, ".") || !Eat(s, "next_id") || !Eat(s, "(") ||
      !Eat(s, ")")) {
    return std::nullopt;
  }
  s = StripSpace(s);
  while (!s.empty() && s.back() == ';') s = StripSpace(s.substr(0, s.size() - 1));
  if (s.empty()) return std::string("next_id");
  // [AS] name: a plain identifier (folded to lower case) or a double-quoted one.
  std::string_view rest = s;
  if (Eat(rest, "as") && !rest.empty() && !IdentChar(rest.front())) s = StripSpace(rest);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"' &&
      s.substr(1, s.size() - 2).find('"') == std::string_view::npos) {
    return std::string(s.substr(1, s.size() - 2));
  }
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s.front()))) return std::nullopt;
  std::string name;
  for (char c : s) {
    if (!IdentChar(c)) return std::nullopt;
    name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return name;
}

}  // namespace shardgate::proxy
