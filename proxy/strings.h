// String helpers for the proxy. Debian's abseil is built with its own absl::string_view (not
// std::string_view), so views crossing into absl go through Av().
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace shardgate::proxy {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

inline bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

inline std::string_view StripSpace(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

inline std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace shardgate::proxy
