// Parsing and conversion of shard-key values from SQL literals and Bind parameters.
#include "routing/key_value.h"

#include <charconv>
#include <cstring>

#include "protocol/status.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

absl::Status BadText(std::string_view type, std::string_view text) {
  return PgStatus("22P02",
                  Cat("invalid input syntax for shard key of type ", type, ": \"",
                               text.substr(0, 64), "\""));
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// PostgreSQL's string_to_uuid: optional braces, 32 hex digits, a hyphen allowed after each
// group of four digits.
absl::StatusOr<std::string> ParseUuid(std::string_view text) {
  std::string_view s = text;
  bool braces = !s.empty() && s.front() == '{';
  if (braces) {
    if (s.size() < 2 || s.back() != '}') return BadText("uuid", text);
    s = s.substr(1, s.size() - 2);
  }
  std::string out(16, '\0');
  size_t pos = 0;
  for (int i = 0; i < 16; ++i) {
    if (pos + 2 > s.size()) return BadText("uuid", text);
    int hi = HexDigit(s[pos]), lo = HexDigit(s[pos + 1]);
    if (hi < 0 || lo < 0) return BadText("uuid", text);
    out[i] = static_cast<char>(hi * 16 + lo);
    pos += 2;
    if (i % 2 == 1 && i < 15 && pos < s.size() && s[pos] == '-') ++pos;
  }
  if (pos != s.size()) return BadText("uuid", text);
  return out;
}

std::string FormatUuid(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    auto b = static_cast<unsigned char>(bytes[i]);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

uint64_t ReadBigEndian(std::string_view b, size_t pos, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b[pos + i]);
  return v;
}

// Decodes one binary value of type `type_oid` (0 = read it as `wanted`).
absl::StatusOr<KeyValue> DecodeBinary(std::string_view b, uint32_t type_oid, KeyType wanted) {
  std::optional<KeyType> type = type_oid == oid::kUnspecified ? wanted : KeyTypeForOid(type_oid);
  if (!type) return PgStatus("22023", Cat("type oid ", type_oid, " cannot be a shard key"));
  switch (*type) {
    case KeyType::kInt:
      if (b.size() == 2) return KeyValue::Int(static_cast<int16_t>(ReadBigEndian(b, 0, 2)));
      if (b.size() == 4) return KeyValue::Int(static_cast<int32_t>(ReadBigEndian(b, 0, 4)));
      if (b.size() == 8) return KeyValue::Int(static_cast<int64_t>(ReadBigEndian(b, 0, 8)));
      return PgStatus("22P02", Cat("binary integer key of ", b.size(), " bytes"));
    case KeyType::kUuid:
      if (b.size() != 16) return PgStatus("22P02", "binary uuid key is not 16 bytes");
      return KeyValue::Uuid(b);
    case KeyType::kText:
      return KeyValue::Text(b);
  }
  return PgStatus("XX000", "unreachable key type");
}

}  // namespace

std::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kInt: return "integer";
    case KeyType::kText: return "text";
    case KeyType::kUuid: return "uuid";
  }
  return "?";
}

std::optional<KeyType> KeyTypeFromName(std::string_view name) {
  std::string n = Lower(name);
  if (n == "integer" || n == "int" || n == "int2" || n == "int4" || n == "int8" ||
      n == "bigint" || n == "smallint")
    return KeyType::kInt;
  if (n == "text" || n == "varchar" || n == "character varying" || n == "name") {
    return KeyType::kText;
  }
  if (n == "uuid") return KeyType::kUuid;
  return std::nullopt;
}

std::optional<KeyType> KeyTypeForOid(uint32_t type_oid) {
  switch (type_oid) {
    case oid::kInt2: case oid::kInt4: case oid::kInt8: return KeyType::kInt;
    case oid::kText: case oid::kVarchar: case oid::kName: case oid::kUnknown:
      return KeyType::kText;
    case oid::kUuid: return KeyType::kUuid;
    default: return std::nullopt;
  }
}

uint32_t ArrayElementOid(uint32_t array_oid) {
  switch (array_oid) {
    case oid::kInt2Array: return oid::kInt2;
    case oid::kInt4Array: return oid::kInt4;
    case oid::kInt8Array: return oid::kInt8;
    case oid::kTextArray: return oid::kText;
    case oid::kVarcharArray: return oid::kVarchar;
    case oid::kUuidArray: return oid::kUuid;
    default: return 0;
  }
}

std::string KeyValue::ToString() const {
  switch (type_) {
    case KeyType::kInt: return Cat(int_);
    case KeyType::kText: return bytes_;
    case KeyType::kUuid: return FormatUuid(bytes_);
  }
  return {};
}

bool operator<(const KeyValue& a, const KeyValue& b) {
  if (a.type_ != b.type_) return a.type_ < b.type_;
  if (a.type_ == KeyType::kInt) return a.int_ < b.int_;
  // Bytewise unsigned comparison: std::string compares with char_traits<char>, which is
  // unsigned (memcmp) for the ordering we need.
  return a.bytes_ < b.bytes_;
}

absl::StatusOr<KeyValue> ParseKeyText(std::string_view text, KeyType type) {
  switch (type) {
    case KeyType::kInt: {
      std::string_view s = Strip(text);
      if (!s.empty() && s.front() == '+') s.remove_prefix(1);
      int64_t v = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec == std::errc::result_out_of_range) {
        return PgStatus("22003", Cat("value \"", text.substr(0, 64),
                                              "\" is out of range for a bigint shard key"));
      }
      if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
        return BadText("integer", text);
      }
      return KeyValue::Int(v);
    }
    case KeyType::kText:
      return KeyValue::Text(text);
    case KeyType::kUuid: {
      auto bytes = ParseUuid(Strip(text));
      if (!bytes.ok()) return bytes.status();
      return KeyValue::Uuid(*bytes);
    }
  }
  return BadText("?", text);
}

absl::StatusOr<KeyValue> ConvertKey(const KeyValue& value, KeyType wanted) {
  if (value.type() == wanted) return value;
  if (wanted == KeyType::kText) return KeyValue::Text(value.ToString());
  if (value.type() == KeyType::kText) return ParseKeyText(value.bytes(), wanted);
  return PgStatus("22P02", Cat("a ", KeyTypeName(value.type()),
                                        " value cannot be a ", KeyTypeName(wanted), " shard key"));
}

absl::StatusOr<KeyValue> ParseKeyParam(std::string_view bytes, int format, uint32_t type_oid,
                                       KeyType wanted) {
  if (format == 0) return ParseKeyText(bytes, wanted);
  if (format != 1) return PgStatus("08P01", Cat("unknown parameter format ", format));
  auto v = DecodeBinary(bytes, type_oid, wanted);
  if (!v.ok()) return v.status();
  return ConvertKey(*v, wanted);
}

absl::StatusOr<std::vector<std::string>> ParseArrayText(std::string_view text) {
  std::string_view s = Strip(text);
  auto bad = [&] { return PgStatus("22P02", Cat("malformed array literal: \"",
                                                         text.substr(0, 64), "\"")); };
  // An optional dimension decoration "[1:3]=" is allowed by PostgreSQL; skip it.
  if (!s.empty() && s.front() == '[') {
    size_t eq = s.find('=');
    if (eq == std::string_view::npos) return bad();
    s = Strip(s.substr(eq + 1));
  }
  if (s.size() < 2 || s.front() != '{' || s.back() != '}') return bad();
  s = s.substr(1, s.size() - 2);
  std::vector<std::string> out;
  size_t i = 0;
  if (Strip(s).empty()) return out;
  while (i <= s.size()) {
    while (i < s.size() && IsSpace(s[i])) ++i;
    std::string elem;
    bool quoted = false;
    if (i < s.size() && s[i] == '"') {
      quoted = true;
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        elem.push_back(s[i++]);
      }
      if (i >= s.size()) return bad();
      ++i;  // closing quote
      while (i < s.size() && IsSpace(s[i])) ++i;
    } else {
      while (i < s.size() && s[i] != ',') {
        if (s[i] == '{' || s[i] == '}' || s[i] == '"') return bad();  // nested: not a key list
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        elem.push_back(s[i++]);
      }
      elem = std::string(Strip(elem));
      if (elem.empty()) return bad();
      if (EqualsNoCase(elem, "NULL")) {
        return PgStatus("22004", "a NULL shard key in an array matches no shard");
      }
    }
    (void)quoted;
    out.push_back(std::move(elem));
    if (i >= s.size()) break;
    if (s[i] != ',') return bad();
    ++i;
    if (i >= s.size()) return bad();  // trailing comma
  }
  return out;
}

absl::StatusOr<std::vector<KeyValue>> ParseArrayBinary(std::string_view b, KeyType wanted) {
  auto bad = [] { return PgStatus("22P02", "malformed binary array parameter"); };
  if (b.size() < 12) return bad();
  auto ndim = static_cast<int32_t>(ReadBigEndian(b, 0, 4));
  auto elem_oid = static_cast<uint32_t>(ReadBigEndian(b, 8, 4));
  std::vector<KeyValue> out;
  if (ndim == 0) return out;
  if (ndim != 1 || b.size() < 20) return bad();
  auto count = static_cast<int32_t>(ReadBigEndian(b, 12, 4));
  if (count < 0 || static_cast<size_t>(count) > (b.size() - 20) / 4) return bad();
  size_t pos = 20;
  out.reserve(count);
  for (int32_t i = 0; i < count; ++i) {
    if (pos + 4 > b.size()) return bad();
    auto len = static_cast<int32_t>(ReadBigEndian(b, pos, 4));
    pos += 4;
    if (len < 0) return PgStatus("22004", "a NULL shard key in an array matches no shard");
    if (static_cast<size_t>(len) > b.size() - pos) return bad();
    auto v = DecodeBinary(b.substr(pos, len), elem_oid, wanted);
    if (!v.ok()) return v.status();
    auto c = ConvertKey(*v, wanted);
    if (!c.ok()) return c.status();
    out.push_back(std::move(*c));
    pos += len;
  }
  if (pos != b.size()) return bad();
  return out;
}

}  // namespace shardgate::routing
