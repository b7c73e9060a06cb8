// Byte builders for protocol tests: Msg('Q', Body().CStr("select 1")), Startup({{"user", "u"}}).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace shardgate::testing {

// Big-endian scalars and NUL-terminated strings as standalone byte strings.
inline std::string Int8(int8_t v) { return std::string(1, static_cast<char>(v)); }
inline std::string Int16(int16_t v) {
  const auto u = static_cast<uint16_t>(v);
  return {static_cast<char>(u >> 8), static_cast<char>(u)};
}
inline std::string Int32(int32_t v) {
  const auto u = static_cast<uint32_t>(v);
  return {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
          static_cast<char>(u)};
}
inline std::string CString(std::string_view s) {
  std::string out(s);
  out.push_back('\0');
  return out;
}
inline std::string Bytes(std::string_view s) { return std::string(s); }

// A message body built field by field. Deliberately independent of protocol/encoder.h, so that
// tests of the encoder compare against bytes written a second, simpler way.
class Body {
 public:
  Body& Int8(int8_t v) { return Raw(testing::Int8(v)); }
  Body& Int16(int16_t v) { return Raw(testing::Int16(v)); }
  Body& Int32(int32_t v) { return Raw(testing::Int32(v)); }
  Body& UInt32(uint32_t v) { return Raw(testing::Int32(static_cast<int32_t>(v))); }
  Body& Char(char c) { return Raw(std::string(1, c)); }
  Body& CStr(std::string_view s) { return Raw(testing::CString(s)); }
  Body& Raw(std::string_view s) {
    bytes_.append(s);
    return *this;
  }
  // A length-prefixed value as in Bind/DataRow; `Null()` writes length -1.
  Body& Value(std::string_view s) { return Int32(static_cast<int32_t>(s.size())).Raw(s); }
  Body& Null() { return Int32(-1); }

  const std::string& str() const { return bytes_; }
  operator std::string() const { return bytes_; }  // NOLINT: implicit by design, for brevity

 private:
  std::string bytes_;
};

// A typed message: type byte, int32 length (counting itself), body.
inline std::string Msg(char type, std::string_view body) {
  return std::string(1, type) + Int32(static_cast<int32_t>(body.size() + 4)) + std::string(body);
}
inline std::string Msg(char type, const Body& body) { return Msg(type, body.str()); }

// An untyped startup-phase packet: int32 length (counting itself), body.
inline std::string Untyped(std::string_view body) {
  return Int32(static_cast<int32_t>(body.size() + 4)) + std::string(body);
}
inline std::string Untyped(const Body& body) { return Untyped(body.str()); }

// A StartupMessage with protocol `version` (3.0 by default) and the given parameters.
inline std::string Startup(
    std::initializer_list<std::pair<std::string_view, std::string_view>> params,
    uint32_t version = 196608) {
  Body b;
  b.UInt32(version);
  for (const auto& [name, value] : params) b.CStr(name).CStr(value);
  b.Int8(0);
  return Untyped(b);
}

}  // namespace shardgate::testing
