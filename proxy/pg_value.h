// PostgreSQL values as they travel on the wire (text or binary format), for the merge: ordering
// as PostgreSQL's default btree operator classes order them, exact sums, and avg's final division.
//
// Everything works on one column value at a time (non-NULL; NULL handling is the caller's) and
// keeps values in the wire format they arrived in, so merged rows are forwarded without
// re-encoding. Text types compare bytewise (collation "C"; bpchar without trailing spaces).
// Date/time text is parsed, not compared bytewise, and must be in DateStyle ISO (PostgreSQL's
// default): BC dates, 5-digit years and timestamptz values printed with different UTC offsets
// order correctly; other DateStyles are 22P02. No I/O.
//
// Errors for malformed values: 22P02 for text that does not parse, 22003 for text out of the
// type's range, 08P01 for a binary value of the wrong length or an unknown format code, 22P03
// for binary contents PostgreSQL's recv function would refuse (a numeric digit >= 10000).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shardgate::proxy {

// Type OIDs (pg_type.oid) the merge knows.
namespace oid {
inline constexpr uint32_t kBool = 16, kBytea = 17, kChar = 18, kName = 19, kInt8 = 20, kInt2 = 21,
                          kInt4 = 23, kText = 25, kOid = 26, kFloat4 = 700, kFloat8 = 701,
                          kMoney = 790, kBpchar = 1042, kVarchar = 1043, kDate = 1082, kTime = 1083,
                          kTimestamp = 1114, kTimestampTz = 1184, kInterval = 1186, kNumeric = 1700,
                          kUuid = 2950;
}  // namespace oid

// The type's name as PostgreSQL prints it in messages ("double precision"), else "with OID N"
// (so that "type " + TypeName(t) reads right either way).
std::string TypeName(uint32_t type_oid);

// int2/int4/int8/oid, float4/float8, numeric: the types CompareMixed compares with each other.
bool IsNumberType(uint32_t type_oid);

// The types AddValue adds (the partials of count() and sum()): integers, numeric, floats.
bool CanAdd(uint32_t type_oid);

// True when CompareValues knows how `type_oid` orders (in both formats).
bool HasKnownOrder(uint32_t type_oid);

// <0, 0, >0 as PostgreSQL orders two non-NULL values of `type_oid` in `format` (0 text,
// 1 binary). NaN sorts above every number, as in PostgreSQL. Errors: 0A000 for a type with no
// known order, and the malformed-value errors above. Allocation-free for integer, text and
// numeric text values (the ORDER BY merge's hot path).
absl::StatusOr<int> CompareValues(uint32_t type_oid, int16_t format, std::string_view a,
                                  std::string_view b);

// Compares values of two different types when both are numbers (int2/4/8, oid, float4/8,
// numeric), e.g. sum(x) > count(*) in a HAVING; same-type pairs go to CompareValues. Integers
// and numeric compare exactly; when either side is float4/float8 both compare as float8, as
// PostgreSQL casts them (9007199254740993::int8 = 9007199254740992::float8 is true).
// Errors: 0A000 when either type is not a number.
absl::StatusOr<int> CompareMixed(uint32_t type_a, int16_t format_a, std::string_view a,
                                 uint32_t type_b, int16_t format_b, std::string_view b);

// A constant written in SQL (text) as a value of `type_oid` in `format`, to compare with column
// values: "10" for an int8 column in binary format becomes 8 bytes. Text-format results are
// PostgreSQL's output form for numbers, bool, bytea and uuid, the trimmed input for date/time.
// A timestamptz constant without an offset is taken as UTC (the session's TimeZone is not known
// here). Errors: 22P02, 22003 (out of range), 0A000 (money, interval, unknown types).
absl::StatusOr<std::string> EncodeConstant(uint32_t type_oid, int16_t format,
                                           std::string_view text);

// acc += value for the partial results of count() and sum(): int2/int4/int8 in their own type
// (overflow is 22003 "bigint out of range" / "integer out of range" / "smallint out of range"
// like PostgreSQL), numeric (exact, the larger display scale; NaN and infinities as
// numeric_add), float4/8 (IEEE in the type's precision, 22003 when finite values overflow;
// printed as PostgreSQL prints with extra_float_digits = 1, the shortest exact form). An empty
// `acc` takes `value` as it is (after checking it decodes). On error `acc` is unchanged.
// Errors: 0A000 for other types, money and interval included (money's text form depends on
// lc_monetary).
absl::Status AddValue(uint32_t type_oid, int16_t format, std::string& acc, std::string_view value);

// The type avg() reports when its shards sent sum() as `sum_type`: numeric (1700) for integer
// and numeric sums, float8 (701) for float4/float8 sums, 0 when avg cannot be finished
// (interval..).
uint32_t AverageType(uint32_t sum_type);

// avg = sum / count, as PostgreSQL computes it: numeric division with numeric_div's result
// scale (select_div_scale) and rounding for integer/numeric sums; float8 division for float sums.
// `count` is an int8 value in `format`; a zero count is the caller's (avg is NULL then; here it
// is 22012). The result is in AverageType(sum_type), in `format`. Caveat: PostgreSQL's
// avg(float4) accumulates in float8, so a float4 sum (sum(real) is real) gives a slightly
// different avg than one server would; ask the shards for sum(x::float8) to match exactly.
absl::StatusOr<std::string> AverageValue(uint32_t sum_type, int16_t format, std::string_view sum,
                                         std::string_view count);

}  // namespace shardgate::proxy
