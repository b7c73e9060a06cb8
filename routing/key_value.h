// A typed shard-key value (integer, text or uuid) and its parsing from SQL literals and from the
// text and binary formats of Bind parameters.
//
// API: KeyType, KeyValue::Int/Text/Uuid, ParseKeyText(text, type), ParseKeyParam(bytes, format,
// type_oid, wanted), ParseArrayText('{1,2}') and ParseArrayBinary for `= ANY($1)`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace shardgate::routing {

// The key types PostgreSQL hashes differently. int2/int4/int8 hash alike, so one kInt covers
// them; varchar/name hash as text.
enum class KeyType { kInt, kText, kUuid };

std::string_view KeyTypeName(KeyType type);  // "integer" | "text" | "uuid"
std::optional<KeyType> KeyTypeFromName(std::string_view name);  // bigint, int, text, uuid...

// PostgreSQL type oids the parameter decoders understand.
namespace oid {
inline constexpr uint32_t kUnspecified = 0, kBool = 16, kName = 19, kInt8 = 20, kInt2 = 21,
                          kInt4 = 23, kText = 25, kUnknown = 705, kBpchar = 1042,
                          kVarchar = 1043, kUuid = 2950, kInt2Array = 1005, kInt4Array = 1007,
                          kInt8Array = 1016, kTextArray = 1009, kVarcharArray = 1015,
                          kUuidArray = 2951;
}  // namespace oid

// The key type a type oid carries, or nullopt for types keys cannot have.
std::optional<KeyType> KeyTypeForOid(uint32_t type_oid);
// The element type oid of an array type oid (0 when not an array we decode).
uint32_t ArrayElementOid(uint32_t array_oid);

// A value-type key. Ordering (for range routers) is numeric for kInt and bytewise for text and
// uuid (as the C collation and uuid's own ordering do).
class KeyValue {
 public:
  KeyValue() = default;
  static KeyValue Int(int64_t v) { return KeyValue(KeyType::kInt, v, {}); }
  static KeyValue Text(std::string_view s) { return KeyValue(KeyType::kText, 0, std::string(s)); }
  // `bytes` are the 16 raw bytes of the uuid.
  static KeyValue Uuid(std::string_view bytes) {
    return KeyValue(KeyType::kUuid, 0, std::string(bytes));
  }

  KeyType type() const { return type_; }
  int64_t int_value() const { return int_; }
  // Text bytes, or the 16 raw uuid bytes.
  const std::string& bytes() const { return bytes_; }

  // "42", "acme", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".
  std::string ToString() const;

  friend bool operator==(const KeyValue& a, const KeyValue& b) {
    return a.type_ == b.type_ && a.int_ == b.int_ && a.bytes_ == b.bytes_;
  }
  // Compares values of the same type; values of different types order by type.
  friend bool operator<(const KeyValue& a, const KeyValue& b);
  template <typename H>
  friend H AbslHashValue(H h, const KeyValue& k) {
    return H::combine(std::move(h), k.type_, k.int_, k.bytes_);
  }

 private:
  KeyValue(KeyType t, int64_t i, std::string b) : type_(t), int_(i), bytes_(std::move(b)) {}
  KeyType type_ = KeyType::kInt;
  int64_t int_ = 0;
  std::string bytes_;
};

// Parses the text form of a value as `type` ("42", " -7 ", "acme", uuid in any of PostgreSQL's
// accepted spellings). Errors are 22P02 (invalid text representation) or 22003 (out of range).
absl::StatusOr<KeyValue> ParseKeyText(std::string_view text, KeyType type);

// A Bind parameter converted to the router's key type `wanted`: `format` 0 = text, 1 = binary;
// `type_oid` as declared by Parse (0 = unspecified: binary values are then read as `wanted`).
// A value that does not convert (text 'abc' for an integer key) is 22P02, never a guess.
absl::StatusOr<KeyValue> ParseKeyParam(std::string_view bytes, int format, uint32_t type_oid,
                                       KeyType wanted);
// A value of any type converted to `wanted` (integer 42 -> text "42", text "42" -> integer 42).
absl::StatusOr<KeyValue> ConvertKey(const KeyValue& value, KeyType wanted);

// The elements of an array literal in text form: '{1,2,3}', '{"a b",c}'. NULL elements are an
// error (a NULL key matches no shard). 22P02 on malformed input.
absl::StatusOr<std::vector<std::string>> ParseArrayText(std::string_view text);

// The elements of a one-dimensional array in binary form (array_send); each element is decoded
// as its element type. 22P02 on malformed input.
absl::StatusOr<std::vector<KeyValue>> ParseArrayBinary(std::string_view bytes, KeyType wanted);

}  // namespace shardgate::routing
