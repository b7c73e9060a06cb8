// Unit tests of proxy/pg_value: ordering per type in both formats, sums, avg and float output.
// Every expected string marked "PG15" was produced by a real PostgreSQL 15.18 (psql, default
// settings: extra_float_digits = 1, DateStyle ISO), so these tables pin PostgreSQL's behaviour,
// not our reading of it.
#include "proxy/pg_value.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/status.h"
#include "tests/support/status_matchers.h"

namespace shardgate::proxy {
namespace {

using ::shardgate::testing::HasSqlState;

// Bytes from a hex string as psql prints bytea ("0002000040000003000c0d48").
std::string Hex(std::string_view hex) {
  std::string out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
  }
  return out;
}

std::string BigEndian(uint64_t v, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return out;
}

std::string Int8(int64_t v) { return BigEndian(static_cast<uint64_t>(v), 8); }

// ---------------------------------------------------------------------------------------------
// Ordering.

struct OrderCase {
  const char* name;
  uint32_t type;
  int16_t format;
  std::string a, b;
  int want;  // sign of compare(a, b)
};

class OrderTest : public ::testing::TestWithParam<OrderCase> {};

TEST_P(OrderTest, ComparesAsPostgres) {
  const OrderCase& c = GetParam();
  ASSERT_OK_AND_ASSIGN(int got, CompareValues(c.type, c.format, c.a, c.b));
  EXPECT_EQ(got, c.want);
  // Antisymmetric: the merge's heap relies on it.
  ASSERT_OK_AND_ASSIGN(int back, CompareValues(c.type, c.format, c.b, c.a));
  EXPECT_EQ(back, -c.want);
  EXPECT_TRUE(HasKnownOrder(c.type));
}

INSTANTIATE_TEST_SUITE_P(
    PgValue, OrderTest,
    ::testing::Values(
        OrderCase{"int8_text", oid::kInt8, 0, "-5", "3", -1},
        OrderCase{"int8_text_lengths", oid::kInt8, 0, "10", "9", 1},
        OrderCase{"int8_text_extremes", oid::kInt8, 0, "-9223372036854775808",
                  "9223372036854775807", -1},
        OrderCase{"int8_text_equal_spaces", oid::kInt8, 0, " +7", "7", 0},
        OrderCase{"int8_binary", oid::kInt8, 1, Int8(-1), Int8(1), -1},
        OrderCase{"int4_text", oid::kInt4, 0, "-2147483648", "2147483647", -1},
        OrderCase{"int4_binary", oid::kInt4, 1, BigEndian(0xFFFFFFFF, 4), BigEndian(0, 4), -1},
        OrderCase{"int2_binary", oid::kInt2, 1, BigEndian(0x8000, 2), BigEndian(0x7FFF, 2), -1},
        OrderCase{"oid_binary_unsigned", oid::kOid, 1, BigEndian(0xFFFFFFFF, 4), BigEndian(1, 4),
                  1},
        OrderCase{"oid_text", oid::kOid, 0, "4294967295", "16384", 1},
        OrderCase{"float8_nan_above_infinity", oid::kFloat8, 0, "NaN", "Infinity", 1},
        OrderCase{"float8_nan_equal", oid::kFloat8, 0, "NaN", "NaN", 0},
        OrderCase{"float8_negative_zero", oid::kFloat8, 0, "-0", "0", 0},
        OrderCase{"float8_exponent", oid::kFloat8, 0, "1e+15", "999999999999999", 1},
        OrderCase{"float8_minus_infinity", oid::kFloat8, 0, "-Infinity", "-1e+308", -1},
        OrderCase{"float8_binary", oid::kFloat8, 1, Hex("3ff8000000000000") /*1.5*/,
                  Hex("4000000000000000") /*2*/, -1},
        OrderCase{"float8_binary_nan", oid::kFloat8, 1, Hex("7ff8000000000000"),
                  Hex("7ff0000000000000") /*inf*/, 1},
        OrderCase{"float4_text", oid::kFloat4, 0, "1.5", "1e+06", -1},
        OrderCase{"float4_binary", oid::kFloat4, 1, Hex("3fc00000") /*1.5*/, Hex("bf800000") /*-1*/,
                  1},
        OrderCase{"numeric_text_scale", oid::kNumeric, 0, "1.10", "1.1", 0},
        OrderCase{"numeric_text_lengths", oid::kNumeric, 0, "10", "9.99", 1},
        OrderCase{"numeric_text_negative", oid::kNumeric, 0, "-12.340", "-12.34001", 1},
        OrderCase{"numeric_text_zero_signs", oid::kNumeric, 0, "-0.00", "0", 0},
        OrderCase{"numeric_text_fraction", oid::kNumeric, 0, "0.5", "0.49999", 1},
        OrderCase{"numeric_text_nan", oid::kNumeric, 0, "NaN", "Infinity", 1},
        OrderCase{"numeric_text_infinity", oid::kNumeric, 0, "Infinity", "1e1000", 1},
        OrderCase{"numeric_text_minus_infinity", oid::kNumeric, 0, "-Infinity", "-99999", -1},
        OrderCase{"numeric_text_exponent", oid::kNumeric, 0, "1.5e3", "1500.0", 0},
        // numeric_send bytes of -12.340 and 123456789.0001 (PG15).
        OrderCase{"numeric_binary", oid::kNumeric, 1, Hex("0002000040000003000c0d48"),
                  Hex("0004000200000004000109291a850001"), -1},
        OrderCase{"numeric_binary_small", oid::kNumeric, 1, Hex("0001fffe0000000804d2"),
                  Hex("0000000000000002") /*0.00*/, 1},
        OrderCase{"numeric_binary_nan", oid::kNumeric, 1, Hex("00000000c0000000"),
                  Hex("00000000d0000020"), 1},
        OrderCase{"numeric_binary_minus_inf", oid::kNumeric, 1, Hex("00000000f0000020"),
                  Hex("0002000040000003000c0d48"), -1},
        OrderCase{"text_bytewise", oid::kText, 0, "B", "a", -1},
        OrderCase{"text_prefix", oid::kText, 0, "ab", "abc", -1},
        OrderCase{"text_high_bytes", oid::kText, 0, "\xc3\xa9", "z", 1},
        OrderCase{"varchar", oid::kVarchar, 1, "abc", "abd", -1},
        OrderCase{"name", oid::kName, 0, "pg_class", "pg_attribute", 1},
        OrderCase{"bpchar_trailing_spaces", oid::kBpchar, 0, "a  ", "a", 0},
        OrderCase{"bpchar", oid::kBpchar, 0, "a ", "a\x01", -1},
        OrderCase{"char_unsigned", oid::kChar, 0, "\\377", "a", 1},
        OrderCase{"bool_text", oid::kBool, 0, "f", "t", -1},
        OrderCase{"bool_binary", oid::kBool, 1, std::string(1, '\1'), std::string(1, '\0'), 1},
        OrderCase{"bytea_hex_length", oid::kBytea, 0, "\\x00", "\\x0000", -1},
        OrderCase{"bytea_hex_unsigned", oid::kBytea, 0, "\\xff", "\\x7f", 1},
        OrderCase{"bytea_escape_vs_hex", oid::kBytea, 0, "abc\\001", "\\x61626301", 0},
        OrderCase{"bytea_binary", oid::kBytea, 1, std::string("\x00\x01", 2), "\x01", -1},
        OrderCase{"date_text", oid::kDate, 0, "2024-01-31", "2024-02-01", -1},
        OrderCase{"date_text_infinity", oid::kDate, 0, "infinity", "294276-12-31", 1},
        OrderCase{"date_text_minus_infinity", oid::kDate, 0, "-infinity", "4713-01-01 BC", -1},
        OrderCase{"date_text_bc", oid::kDate, 0, "0044-03-15 BC", "0001-01-01", -1},
        OrderCase{"date_text_bc_order", oid::kDate, 0, "0044-03-15 BC", "0043-03-15 BC", -1},
        OrderCase{"date_text_five_digit_year", oid::kDate, 0, "12345-01-01", "9999-12-31", 1},
        OrderCase{"date_binary", oid::kDate, 1, Hex("0000225c"), Hex("7fffffff"), -1},
        OrderCase{"timestamp_text", oid::kTimestamp, 0, "2024-01-31 10:00:00.5",
                  "2024-01-31 10:00:00", 1},
        OrderCase{"timestamp_text_fraction", oid::kTimestamp, 0, "2024-01-31 10:00:00.05",
                  "2024-01-31 10:00:00.5", -1},
        OrderCase{"timestamp_text_infinity", oid::kTimestamp, 0, "infinity", "12345-01-01 01:02:03",
                  1},
        OrderCase{"timestamptz_offsets", oid::kTimestampTz, 0, "2024-01-31 15:30:00.5+05:30",
                  "2024-01-31 10:00:00.5+00", 0},
        OrderCase{"timestamptz_offsets_order", oid::kTimestampTz, 0, "2024-01-31 11:00:00+05",
                  "2024-01-31 10:00:00+00", -1},
        OrderCase{"timestamptz_bc", oid::kTimestampTz, 0, "0044-03-15 10:00:00+00 BC",
                  "0001-01-01 00:00:00+00", -1},
        OrderCase{"timestamp_binary", oid::kTimestamp, 1, Hex("0002b339b5f28920"),
                  Hex("8000000000000000"), 1},
        OrderCase{"time_text", oid::kTime, 0, "09:59:59.999999", "10:00:00", -1},
        OrderCase{"time_text_24", oid::kTime, 0, "24:00:00", "23:59:59.999999", 1},
        OrderCase{"time_binary", oid::kTime, 1, Hex("0000000861cc0920"), Int8(0), 1},
        OrderCase{"uuid_text", oid::kUuid, 0, "00000000-0000-0000-0000-000000000001",
                  "ffffffff-0000-0000-0000-000000000000", -1},
        OrderCase{"uuid_text_case_and_braces", oid::kUuid, 0,
                  "{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11", 0},
        OrderCase{"uuid_binary", oid::kUuid, 1, std::string(16, '\x80'), std::string(16, '\x7f'),
                  1}),
    [](const ::testing::TestParamInfo<OrderCase>& info) { return std::string(info.param.name); });

TEST(PgValueOrder, UnknownTypesAreRefused) {
  for (uint32_t type : {oid::kMoney, oid::kInterval, uint32_t{114} /*json*/}) {
    EXPECT_FALSE(HasKnownOrder(type));
    EXPECT_THAT(CompareValues(type, 0, "1", "2"), HasSqlState("0A000"));
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed input: an error, never a crash.

struct MalformedCase {
  const char* name;
  uint32_t type;
  int16_t format;
  std::string value;
  const char* sqlstate;
};

class MalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedTest, IsAnError) {
  const MalformedCase& c = GetParam();
  // A well-formed partner in the same format, so that only `value` can be at fault.
  const char* good_text = c.type == oid::kUuid        ? "00000000-0000-0000-0000-000000000001"
                          : c.type == oid::kDate      ? "2024-01-01"
                          : c.type == oid::kTimestamp ? "2024-01-01 00:00:00"
                          : c.type == oid::kTime      ? "10:00:00"
                                                      : "1";
  ASSERT_OK_AND_ASSIGN(std::string good, EncodeConstant(c.type, c.format, good_text));
  EXPECT_THAT(CompareValues(c.type, c.format, c.value, good), HasSqlState(c.sqlstate));
  EXPECT_THAT(CompareValues(c.type, c.format, good, c.value), HasSqlState(c.sqlstate));
}

INSTANTIATE_TEST_SUITE_P(
    PgValue, MalformedTest,
    ::testing::Values(
        MalformedCase{"int8_empty", oid::kInt8, 0, "", "22P02"},
        MalformedCase{"int8_letters", oid::kInt8, 0, "12a", "22P02"},
        MalformedCase{"int8_double_sign", oid::kInt8, 0, "+-1", "22P02"},
        MalformedCase{"int8_overflow", oid::kInt8, 0, "9223372036854775808", "22003"},
        MalformedCase{"int4_overflow", oid::kInt4, 0, "2147483648", "22003"},
        MalformedCase{"int8_binary_short", oid::kInt8, 1, "\x01\x02\x03", "08P01"},
        MalformedCase{"int4_binary_long", oid::kInt4, 1, Int8(1), "08P01"},
        MalformedCase{"float8_text", oid::kFloat8, 0, "1.2.3", "22P02"},
        MalformedCase{"float8_range", oid::kFloat8, 0, "1e400", "22003"},
        MalformedCase{"float4_binary", oid::kFloat4, 1, Int8(1), "08P01"},
        MalformedCase{"numeric_text", oid::kNumeric, 0, "1..2", "22P02"},
        MalformedCase{"numeric_text_dot", oid::kNumeric, 0, ".", "22P02"},
        MalformedCase{"numeric_text_exponent", oid::kNumeric, 0, "1e", "22P02"},
        MalformedCase{"numeric_binary_short", oid::kNumeric, 1, std::string("\x00\x01", 2),
                      "08P01"},
        MalformedCase{"numeric_binary_ndigits", oid::kNumeric, 1, Hex("0002000000000000"), "08P01"},
        MalformedCase{"numeric_binary_sign", oid::kNumeric, 1, Hex("0000000012340000"), "22P03"},
        MalformedCase{"numeric_binary_digit", oid::kNumeric, 1, Hex("00010000000000002710"),
                      "22P03"},
        MalformedCase{"bool_text", oid::kBool, 0, "maybe", "22P02"},
        MalformedCase{"bytea_hex", oid::kBytea, 0, "\\x0g", "22P02"},
        MalformedCase{"bytea_hex_odd", oid::kBytea, 0, "\\x012", "22P02"},
        MalformedCase{"date_text", oid::kDate, 0, "31/01/2024", "22P02"},
        MalformedCase{"date_text_month", oid::kDate, 0, "2024-13-01", "22P02"},
        MalformedCase{"date_text_leap", oid::kDate, 0, "2023-02-29", "22P02"},
        MalformedCase{"date_binary", oid::kDate, 1, Int8(1), "08P01"},
        MalformedCase{"timestamp_text_postgres_style", oid::kTimestamp, 0,
                      "Wed Jan 31 10:00:00 2024", "22P02"},
        MalformedCase{"timestamp_text_no_time", oid::kTimestamp, 0, "2024-01-31 ", "22P02"},
        MalformedCase{"time_text", oid::kTime, 0, "25:00:00", "22P02"},
        MalformedCase{"uuid_text_short", oid::kUuid, 0, "1234", "22P02"},
        MalformedCase{"uuid_binary", oid::kUuid, 1, "abc", "08P01"}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) {
      return std::string(info.param.name);
    });

TEST(PgValueMalformed, BadFormatCode) {
  EXPECT_THAT(CompareValues(oid::kInt8, 2, "1", "2"), HasSqlState("08P01"));
  std::string acc = "1";
  EXPECT_THAT(AddValue(oid::kInt8, -1, acc, "1"), HasSqlState("08P01"));
}

TEST(PgValueMalformed, HugeValuesAreCappedInMessages) {
  std::string huge(100000, 'x');
  absl::StatusOr<int> r = CompareValues(oid::kInt8, 0, huge, "1");
  ASSERT_THAT(r, HasSqlState("22P02"));
  EXPECT_LT(r.status().message().size(), 200u);
}

// Random bytes through every type and format: errors are fine, crashes and sanitizer reports are
// not. Deterministic (a fixed LCG), so a failure reproduces.
TEST(PgValueMalformed, RandomBytes) {
  uint64_t state = 12345;
  auto next = [&]() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  const uint32_t types[] = {
      oid::kBool, oid::kBytea,     oid::kChar,        oid::kInt8,    oid::kInt2,   oid::kInt4,
      oid::kText, oid::kOid,       oid::kFloat4,      oid::kFloat8,  oid::kBpchar, oid::kDate,
      oid::kTime, oid::kTimestamp, oid::kTimestampTz, oid::kNumeric, oid::kUuid};
  for (int i = 0; i < 20000; ++i) {
    std::string a, b;
    size_t len_a = next() % 24, len_b = next() % 24;
    // Bias towards the characters that numbers and dates are made of.
    static constexpr char kAlphabet[] = "0123456789.-+eE: BCxNaInfity\\";
    for (size_t j = 0; j < len_a; ++j) {
      a.push_back(next() % 2 ? static_cast<char>(next())
                             : kAlphabet[next() % (sizeof(kAlphabet) - 1)]);
    }
    for (size_t j = 0; j < len_b; ++j) b.push_back(static_cast<char>(next()));
    uint32_t type = types[next() % (sizeof(types) / sizeof(types[0]))];
    int16_t format = static_cast<int16_t>(next() % 2);
    (void)CompareValues(type, format, a, b);
    (void)CompareMixed(type, format, a, oid::kNumeric, format, b);
    (void)EncodeConstant(type, format, a);
    std::string acc = b;
    (void)AddValue(type, format, acc, a);
    (void)AverageValue(type, format, a, b);
  }
}

// ---------------------------------------------------------------------------------------------
// Float output (float8out / float4out, extra_float_digits = 1). PG15: SELECT 'x'::float8::text.

struct FloatCase {
  uint32_t type;
  const char* input;
  const char* want;
};

class FloatPrintTest : public ::testing::TestWithParam<FloatCase> {};

TEST_P(FloatPrintTest, PrintsAsPostgres) {
  const FloatCase& c = GetParam();
  ASSERT_OK_AND_ASSIGN(std::string text, EncodeConstant(c.type, 0, c.input));
  EXPECT_EQ(text, c.want);
  // The printed text reads back to the same value (shortest, yet exact).
  ASSERT_OK_AND_ASSIGN(std::string binary, EncodeConstant(c.type, 1, c.input));
  ASSERT_OK_AND_ASSIGN(std::string reread, EncodeConstant(c.type, 1, text));
  EXPECT_EQ(binary, reread);
}

INSTANTIATE_TEST_SUITE_P(
    PgValue, FloatPrintTest,
    ::testing::Values(
        FloatCase{oid::kFloat8, "1e15", "1e+15"},
        FloatCase{oid::kFloat8, "123456789012345", "123456789012345"},
        FloatCase{oid::kFloat8, "1e14", "100000000000000"},
        FloatCase{oid::kFloat8, "1e-5", "1e-05"}, FloatCase{oid::kFloat8, "0.0001", "0.0001"},
        FloatCase{oid::kFloat8, "9.5e-5", "9.5e-05"}, FloatCase{oid::kFloat8, "100000", "100000"},
        FloatCase{oid::kFloat8, "1.5", "1.5"}, FloatCase{oid::kFloat8, "-0", "-0"},
        FloatCase{oid::kFloat8, "NaN", "NaN"}, FloatCase{oid::kFloat8, "Infinity", "Infinity"},
        FloatCase{oid::kFloat8, "-Infinity", "-Infinity"},
        FloatCase{oid::kFloat8, "1e100", "1e+100"}, FloatCase{oid::kFloat8, "1e22", "1e+22"},
        FloatCase{oid::kFloat8, "2.5e-10", "2.5e-10"},
        FloatCase{oid::kFloat8, "1.7976931348623157e308", "1.7976931348623157e+308"},
        FloatCase{oid::kFloat8, "5e-324", "5e-324"}, FloatCase{oid::kFloat8, "0.1", "0.1"},
        FloatCase{oid::kFloat8, "0.30000000000000004", "0.30000000000000004"},
        FloatCase{oid::kFloat8, "123456789.125", "123456789.125"},
        FloatCase{oid::kFloat4, "100000", "100000"}, FloatCase{oid::kFloat4, "999999", "999999"},
        FloatCase{oid::kFloat4, "1e6", "1e+06"}, FloatCase{oid::kFloat4, "1234567", "1.234567e+06"},
        FloatCase{oid::kFloat4, "1e-5", "1e-05"}, FloatCase{oid::kFloat4, "0.0001", "0.0001"},
        FloatCase{oid::kFloat4, "0.1", "0.1"}, FloatCase{oid::kFloat4, "-0", "-0"},
        FloatCase{oid::kFloat4, "3.4028235e38", "3.4028235e+38"},
        FloatCase{oid::kFloat4, "1e-45", "1e-45"},
        FloatCase{oid::kFloat4, "12345.678", "12345.678"},
        // Shortest forms that lie exactly on a rounding bound: strtod would read them back (ties
        // to even) but PostgreSQL's ryu excludes the bounds and prints one digit more.
        FloatCase{oid::kFloat8, "5.46362500896177e+16", "5.4636250089617696e+16"},
        FloatCase{oid::kFloat8, "1.52212937237346e+17", "1.5221293723734598e+17"},
        FloatCase{oid::kFloat4, "75861581.83813307", "7.5861584e+07"},
        FloatCase{oid::kFloat4, "70991984.00255798", "7.0991984e+07"}));

// ---------------------------------------------------------------------------------------------
// Sums (AddValue).

struct SumCase {
  const char* name;
  uint32_t type;
  int16_t format;
  std::string acc, value, want;
};

class SumTest : public ::testing::TestWithParam<SumCase> {};

TEST_P(SumTest, AddsAsPostgres) {
  const SumCase& c = GetParam();
  std::string acc = c.acc;
  ASSERT_OK(AddValue(c.type, c.format, acc, c.value));
  EXPECT_EQ(acc, c.want);
}

INSTANTIATE_TEST_SUITE_P(
    PgValue, SumTest,
    ::testing::Values(
        SumCase{"int8_text", oid::kInt8, 0, "40", "2", "42"},
        SumCase{"int8_text_negative", oid::kInt8, 0, "-40", "2", "-38"},
        SumCase{"int8_empty_acc_takes_value", oid::kInt8, 0, "", "7", "7"},
        SumCase{"int8_binary", oid::kInt8, 1, Int8(-5), Int8(3), Int8(-2)},
        SumCase{"int8_extreme", oid::kInt8, 0, "9223372036854775806", "1", "9223372036854775807"},
        SumCase{"int4_own_type", oid::kInt4, 1, BigEndian(2147483640, 4), BigEndian(7, 4),
                BigEndian(2147483647, 4)},
        SumCase{"int2_own_type", oid::kInt2, 0, "32000", "767", "32767"},
        // PG15: 1.5 + 2.25 = 3.75; 1.50 + -1.5 = 0.00; the larger display scale wins.
        SumCase{"numeric_text", oid::kNumeric, 0, "1.5", "2.25", "3.75"},
        SumCase{"numeric_text_zero_keeps_scale", oid::kNumeric, 0, "1.50", "-1.5", "0.00"},
        SumCase{"numeric_text_sign_change", oid::kNumeric, 0, "-10.001", "3", "-7.001"},
        SumCase{"numeric_text_carry", oid::kNumeric, 0, "9999999999999999999.99", "0.01",
                "10000000000000000000.00"},
        // PG15: sum of 9223372036854775807, 9223372036854775807, 9223372036854775806 (int8).
        SumCase{"numeric_beyond_int8", oid::kNumeric, 0, "18446744073709551614",
                "9223372036854775806", "27670116110564327420"},
        SumCase{"numeric_nan", oid::kNumeric, 0, "NaN", "1", "NaN"},
        SumCase{"numeric_infinity", oid::kNumeric, 0, "Infinity", "5", "Infinity"},
        SumCase{"numeric_infinities", oid::kNumeric, 0, "-Infinity", "-Infinity", "-Infinity"},
        SumCase{"numeric_opposite_infinities", oid::kNumeric, 0, "Infinity", "-Infinity", "NaN"},
        SumCase{"numeric_binary", oid::kNumeric, 1, Hex("0002000040000003000c0d48") /*-12.340*/,
                Hex("00010000000000000014") /*20*/, Hex("0002000000000003000719c8") /*7.660*/},
        SumCase{"numeric_binary_zero", oid::kNumeric, 1, Hex("00010000000000000001") /*1*/,
                Hex("00010000400000000001") /*-1*/, Hex("0000000000000000")},
        // PG15: sum(float8) of 0.1, 0.2 = 0.30000000000000004; sum(float4) = 0.3.
        SumCase{"float8_text", oid::kFloat8, 0, "0.1", "0.2", "0.30000000000000004"},
        SumCase{"float4_text", oid::kFloat4, 0, "0.1", "0.2", "0.3"},
        SumCase{"float8_nan", oid::kFloat8, 0, "NaN", "1", "NaN"},
        SumCase{"float8_infinity", oid::kFloat8, 0, "Infinity", "-1e+308", "Infinity"},
        SumCase{"float8_exponent_output", oid::kFloat8, 0, "5e+14", "5e+14", "1e+15"},
        SumCase{"float8_binary", oid::kFloat8, 1, Hex("3ff8000000000000"), Hex("3ff8000000000000"),
                Hex("4008000000000000") /*3*/}),
    [](const ::testing::TestParamInfo<SumCase>& info) { return std::string(info.param.name); });

struct OverflowCase {
  uint32_t type;
  int16_t format;
  std::string acc, value;
  const char* message;
};

class OverflowTest : public ::testing::TestWithParam<OverflowCase> {};

TEST_P(OverflowTest, Is22003) {
  const OverflowCase& c = GetParam();
  std::string acc = c.acc;
  absl::Status st = AddValue(c.type, c.format, acc, c.value);
  EXPECT_THAT(st, HasSqlState("22003"));
  EXPECT_EQ(st.message(), c.message);
  EXPECT_EQ(acc, c.acc) << "the accumulator is left as it was";
}

INSTANTIATE_TEST_SUITE_P(
    PgValue, OverflowTest,
    ::testing::Values(
        OverflowCase{oid::kInt8, 0, "9223372036854775807", "1", "bigint out of range"},
        OverflowCase{oid::kInt8, 0, "-9223372036854775808", "-1", "bigint out of range"},
        OverflowCase{oid::kInt8, 1, Int8(INT64_MAX), Int8(INT64_MAX), "bigint out of range"},
        OverflowCase{oid::kInt4, 0, "2147483647", "1", "integer out of range"},
        OverflowCase{oid::kInt4, 1, BigEndian(0x80000000, 4), BigEndian(0xFFFFFFFF, 4),
                     "integer out of range"},
        OverflowCase{oid::kInt2, 0, "32767", "1", "smallint out of range"},
        OverflowCase{oid::kFloat8, 0, "1.7976931348623157e+308", "1.7976931348623157e+308",
                     "value out of range: overflow"},
        OverflowCase{oid::kFloat4, 0, "3.4028235e+38", "3.4028235e+38",
                     "value out of range: overflow"}));

TEST(PgValueSum, UnsupportedTypes) {
  for (uint32_t type : {oid::kMoney, oid::kInterval, oid::kText, oid::kOid}) {
    std::string acc = "1";
    EXPECT_THAT(AddValue(type, 0, acc, "2"), HasSqlState("0A000"));
  }
}

TEST(PgValueSum, MalformedOperands) {
  std::string acc = "1";
  EXPECT_THAT(AddValue(oid::kInt8, 0, acc, "x"), HasSqlState("22P02"));
  acc = "x";
  EXPECT_THAT(AddValue(oid::kInt8, 0, acc, "1"), HasSqlState("22P02"));
  acc = "";
  EXPECT_THAT(AddValue(oid::kNumeric, 1, acc, "\x01"), HasSqlState("08P01"));
}

// ---------------------------------------------------------------------------------------------
// avg = sum / count.

struct AvgCase {
  const char* name;
  uint32_t sum_type;
  const char* sum;
  int64_t count;
  const char* want;
};

class AvgTest : public ::testing::TestWithParam<AvgCase> {};

TEST_P(AvgTest, DividesAsPostgres) {
  const AvgCase& c = GetParam();
  ASSERT_OK_AND_ASSIGN(std::string got,
                       AverageValue(c.sum_type, 0, c.sum, std::to_string(c.count)));
  EXPECT_EQ(got, c.want);
  // The binary path agrees with the text path.
  uint32_t avg_type = AverageType(c.sum_type);
  ASSERT_OK_AND_ASSIGN(std::string sum_bin, EncodeConstant(c.sum_type, 1, c.sum));
  ASSERT_OK_AND_ASSIGN(std::string got_bin, AverageValue(c.sum_type, 1, sum_bin, Int8(c.count)));
  ASSERT_OK_AND_ASSIGN(std::string want_bin, EncodeConstant(avg_type, 1, c.want));
  EXPECT_EQ(got_bin, want_bin);
}

// Each row: the sum and count the shards' partials add up to, and what PG15's avg() printed for
// the same rows (the rows are in the comment).
INSTANTIATE_TEST_SUITE_P(
    PgValue, AvgTest,
    ::testing::Values(
        AvgCase{"int_1_2", oid::kInt8, "3", 2, "1.5000000000000000"},               // 1,2
        AvgCase{"int_10_20_30", oid::kInt8, "60", 3, "20.0000000000000000"},        // 10,20,30
        AvgCase{"int_1_2_2", oid::kInt8, "5", 3, "1.6666666666666667"},             // 1,2,2
        AvgCase{"int_negative", oid::kInt8, "-3", 2, "-1.5000000000000000"},        // -1,-2
        AvgCase{"int_negative_round", oid::kInt8, "-5", 3, "-1.6666666666666667"},  // -1,-2,-2
        AvgCase{"int_zero", oid::kInt8, "0", 2, "0.00000000000000000000"},          // 0,0
        AvgCase{"int_single", oid::kInt4, "5", 1, "5.0000000000000000"},            // 5
        AvgCase{"int2_sum", oid::kInt2, "3", 2, "1.5000000000000000"},              // 1,2
        // int8 max, max, max-1: the sum (numeric) is beyond int8.
        AvgCase{"int8_large", oid::kNumeric, "27670116110564327420", 3, "9223372036854775807"},
        AvgCase{"numeric_1_25_2_50", oid::kNumeric, "3.75", 2, "1.8750000000000000"},
        AvgCase{"numeric_tiny", oid::kNumeric, "0.000000000000000000003", 2,
                "0.0000000000000000000015000000000000000000"},
        AvgCase{"numeric_tiny3", oid::kNumeric, "0.0000004", 3, "0.000000133333333333333333"},
        AvgCase{"numeric_high_scale", oid::kNumeric, "3.123456789012345678901234567890", 2,
                "1.561728394506172839450617283945"},
        AvgCase{"numeric_high_scale3", oid::kNumeric, "5.00000000000000000000000000001", 3,
                "1.66666666666666666666666666667"},
        AvgCase{"numeric_large", oid::kNumeric, "123456789012345678901234567891", 2,
                "61728394506172839450617283946"},
        AvgCase{"numeric_large3", oid::kNumeric, "100000000000000000001", 3,
                "33333333333333333334"},
        AvgCase{"numeric_eighth", oid::kNumeric, "1", 8, "0.12500000000000000000"},
        AvgCase{"numeric_negative_thirds", oid::kNumeric, "-2", 3, "-0.66666666666666666667"},
        AvgCase{"numeric_99999", oid::kNumeric, "699993", 7, "99999.000000000000"},
        AvgCase{"numeric_half", oid::kNumeric, "1.5", 3, "0.50000000000000000000"},
        AvgCase{"numeric_9999_9", oid::kNumeric, "10000.9", 2, "5000.4500000000000000"},
        AvgCase{"numeric_negative_small", oid::kNumeric, "-0.5", 2, "-0.25000000000000000000"},
        AvgCase{"numeric_nan", oid::kNumeric, "NaN", 2, "NaN"},
        AvgCase{"numeric_infinity", oid::kNumeric, "Infinity", 2, "Infinity"},
        AvgCase{"numeric_minus_infinity", oid::kNumeric, "-Infinity", 2, "-Infinity"},
        AvgCase{"float8_1_2_2", oid::kFloat8, "5", 3, "1.6666666666666667"},
        AvgCase{"float8_tenths", oid::kFloat8, "0.30000000000000004", 2, "0.15000000000000002"}),
    [](const ::testing::TestParamInfo<AvgCase>& info) { return std::string(info.param.name); });

TEST(PgValueAvg, Types) {
  EXPECT_EQ(AverageType(oid::kInt8), oid::kNumeric);
  EXPECT_EQ(AverageType(oid::kInt4), oid::kNumeric);
  EXPECT_EQ(AverageType(oid::kNumeric), oid::kNumeric);
  EXPECT_EQ(AverageType(oid::kFloat4), oid::kFloat8);
  EXPECT_EQ(AverageType(oid::kFloat8), oid::kFloat8);
  EXPECT_EQ(AverageType(oid::kInterval), 0u);
  EXPECT_EQ(AverageType(oid::kMoney), 0u);
  EXPECT_THAT(AverageValue(oid::kInterval, 0, "1 day", "2"), HasSqlState("0A000"));
}

TEST(PgValueAvg, BinaryBytesMatchNumericSend) {
  // PG15: numeric_send(20.0000000000000000) and numeric_send(0.0/2).
  ASSERT_OK_AND_ASSIGN(std::string avg, AverageValue(oid::kInt8, 1, Int8(60), Int8(3)));
  EXPECT_EQ(avg, Hex("00010000000000100014"));
  ASSERT_OK_AND_ASSIGN(std::string zero, AverageValue(oid::kInt8, 1, Int8(0), Int8(2)));
  EXPECT_EQ(zero, Hex("0000000000000014"));
}

// PG15's avg(float4) of 0.1, 0.2 is 0.15000000223517418: it accumulates float4 values in float8.
// A float4 partial sum (sum(float4) is real) has already lost that precision, so avg over real
// columns differs unless the shards are asked for sum(x::float8). This pins what we do with a
// real sum: the float8 quotient, printed as float8.
TEST(PgValueAvg, Float4SumIsDividedInFloat8) {
  ASSERT_OK_AND_ASSIGN(std::string got, AverageValue(oid::kFloat4, 0, "0.3", "2"));
  EXPECT_EQ(got, "0.15000000596046448");
  ASSERT_OK_AND_ASSIGN(std::string exact,
                       AverageValue(oid::kFloat8, 0, "0.30000000447034836", "2"));
  EXPECT_EQ(exact, "0.15000000223517418");
}

TEST(PgValueAvg, ZeroCountIsAnErrorNotACrash) {
  EXPECT_THAT(AverageValue(oid::kInt8, 0, "1", "0"), HasSqlState("22012"));
  EXPECT_THAT(AverageValue(oid::kInt8, 0, "1", "x"), HasSqlState("22P02"));
  EXPECT_THAT(AverageValue(oid::kInt8, 1, Int8(1), "\x01"), HasSqlState("08P01"));
}

// ---------------------------------------------------------------------------------------------
// Constants and mixed comparisons.

struct ConstantCase {
  const char* name;
  uint32_t type;
  int16_t format;
  const char* text;
  std::string want;
};

class ConstantTest : public ::testing::TestWithParam<ConstantCase> {};

TEST_P(ConstantTest, Encodes) {
  const ConstantCase& c = GetParam();
  ASSERT_OK_AND_ASSIGN(std::string got, EncodeConstant(c.type, c.format, c.text));
  EXPECT_EQ(got, c.want);
}

INSTANTIATE_TEST_SUITE_P(
    PgValue, ConstantTest,
    ::testing::Values(
        ConstantCase{"int8_binary", oid::kInt8, 1, "10", Int8(10)},
        ConstantCase{"int8_text", oid::kInt8, 0, " +10 ", "10"},
        ConstantCase{"int4_binary", oid::kInt4, 1, "-1", BigEndian(0xFFFFFFFF, 4)},
        ConstantCase{"int2_binary", oid::kInt2, 1, "300", BigEndian(300, 2)},
        ConstantCase{"oid_negative", oid::kOid, 0, "-1", "4294967295"},
        ConstantCase{"float8_binary", oid::kFloat8, 1, "1.5", Hex("3ff8000000000000")},
        ConstantCase{"float4_binary", oid::kFloat4, 1, "1.5", Hex("3fc00000")},
        // PG15: numeric_send of each.
        ConstantCase{"numeric_binary", oid::kNumeric, 1, "-12.340",
                     Hex("0002000040000003000c0d48")},
        ConstantCase{"numeric_binary_zero", oid::kNumeric, 1, "0.00", Hex("0000000000000002")},
        ConstantCase{"numeric_binary_nan", oid::kNumeric, 1, "NaN", Hex("00000000c0000000")},
        ConstantCase{"numeric_binary_inf", oid::kNumeric, 1, "Infinity", Hex("00000000d0000020")},
        ConstantCase{"numeric_binary_minf", oid::kNumeric, 1, "-Infinity", Hex("00000000f0000020")},
        ConstantCase{"numeric_binary_mixed", oid::kNumeric, 1, "123456789.0001",
                     Hex("0004000200000004000109291a850001")},
        ConstantCase{"numeric_binary_small", oid::kNumeric, 1, "0.00001234",
                     Hex("0001fffe0000000804d2")},
        ConstantCase{"numeric_binary_10000", oid::kNumeric, 1, "10000",
                     Hex("00010001000000000001")},
        ConstantCase{"numeric_binary_1e20", oid::kNumeric, 1, "1e20", Hex("00010005000000000001")},
        // PG15: '1e5'::numeric, '1.5e-3', ' +12.5 ', '.5', '5.'.
        ConstantCase{"numeric_text_exp", oid::kNumeric, 0, "1e5", "100000"},
        ConstantCase{"numeric_text_negative_exp", oid::kNumeric, 0, "1.5e-3", "0.0015"},
        ConstantCase{"numeric_text_spaces", oid::kNumeric, 0, " +12.5 ", "12.5"},
        ConstantCase{"numeric_text_leading_dot", oid::kNumeric, 0, ".5", "0.5"},
        ConstantCase{"numeric_text_trailing_dot", oid::kNumeric, 0, "5.", "5"},
        ConstantCase{"numeric_text_nan", oid::kNumeric, 0, "nan", "NaN"},
        ConstantCase{"numeric_text_inf", oid::kNumeric, 0, "-inf", "-Infinity"},
        ConstantCase{"bool_text", oid::kBool, 0, "yes", "t"},
        ConstantCase{"bool_binary", oid::kBool, 1, "off", std::string(1, '\0')},
        ConstantCase{"text", oid::kText, 1, "abc", "abc"},
        ConstantCase{"bytea_text", oid::kBytea, 0, "\\x0A0b", "\\x0a0b"},
        ConstantCase{"bytea_escape", oid::kBytea, 0, "abc\\001", "\\x61626301"},
        ConstantCase{"bytea_binary", oid::kBytea, 1, "\\x0a0b", "\x0a\x0b"},
        ConstantCase{"uuid_text", oid::kUuid, 0, "A0EEBC999C0B4EF8BB6D6BB9BD380A11",
                     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
        // PG15: date_send, timestamp_send, timestamptz_send, time_send.
        ConstantCase{"date_binary", oid::kDate, 1, "2024-01-31", Hex("0000225c")},
        ConstantCase{"date_binary_epoch", oid::kDate, 1, "2000-01-01", Hex("00000000")},
        ConstantCase{"date_binary_bc", oid::kDate, 1, "0044-03-15 BC", Hex("fff49d7b")},
        ConstantCase{"date_binary_infinity", oid::kDate, 1, "infinity", Hex("7fffffff")},
        ConstantCase{"date_binary_minus_infinity", oid::kDate, 1, "-infinity", Hex("80000000")},
        ConstantCase{"timestamp_binary", oid::kTimestamp, 1, "2024-01-31 10:00:00.5",
                     Hex("0002b339b5f28920")},
        ConstantCase{"timestamptz_binary", oid::kTimestampTz, 1, "2024-01-31 15:30:00.5+05:30",
                     Hex("0002b339b5f28920")},
        ConstantCase{"time_binary", oid::kTime, 1, "10:00:00.5", Hex("0000000861cc0920")},
        ConstantCase{"timestamp_binary_before_epoch", oid::kTimestamp, 1,
                     "1999-12-31 23:59:59.999999", Hex("ffffffffffffffff")},
        ConstantCase{"timestamp_binary_bc", oid::kTimestamp, 1, "0001-01-01 00:00:00 BC",
                     Hex("ff1fc63d1bb12000")},
        ConstantCase{"timestamp_binary_max", oid::kTimestamp, 1, "294276-12-31 23:59:59.999999",
                     Hex("7fffff5bb3b29fff")},
        ConstantCase{"timestamp_binary_min", oid::kTimestamp, 1, "4713-11-24 00:00:00 BC",
                     Hex("fd0f9983eb0ae000")},
        ConstantCase{"timestamp_binary_rounds_like_rint", oid::kTimestamp, 1,
                     "2024-01-31 10:00:00.1234565", Hex("0002b339b5ecca40")},
        ConstantCase{"timestamptz_binary_negative_offset", oid::kTimestampTz, 1,
                     "2024-06-30 23:00:00-07", Hex("0002bf28137d5800")},
        ConstantCase{"timestamptz_binary_lmt_offset", oid::kTimestampTz, 1,
                     "1900-01-01 00:00:00+00:53:28", Hex("fff4c9edbcd54e00")},
        ConstantCase{"date_binary_leap", oid::kDate, 1, "2000-02-29", Hex("0000003b")},
        ConstantCase{"date_binary_1600", oid::kDate, 1, "1600-03-01", Hex("fffdc58b")},
        ConstantCase{"time_binary_24", oid::kTime, 1, "24:00:00", Hex("000000141dd76000")},
        ConstantCase{"time_binary_half_micro", oid::kTime, 1, "00:00:00.0000005", Int8(0)},
        ConstantCase{"date_text", oid::kDate, 0, " 2024-01-31 ", "2024-01-31"}),
    [](const ::testing::TestParamInfo<ConstantCase>& info) {
      return std::string(info.param.name);
    });

TEST(PgValueConstant, Errors) {
  EXPECT_THAT(EncodeConstant(oid::kInt8, 1, "ten"), HasSqlState("22P02"));
  EXPECT_THAT(EncodeConstant(oid::kInt2, 1, "40000"), HasSqlState("22003"));
  EXPECT_THAT(EncodeConstant(oid::kInt4, 0, "2147483648"), HasSqlState("22003"));
  EXPECT_THAT(EncodeConstant(oid::kNumeric, 0, "1e1001"), HasSqlState("22P02"));
  EXPECT_THAT(EncodeConstant(oid::kDate, 1, "2024-02-30"), HasSqlState("22P02"));
  EXPECT_THAT(EncodeConstant(oid::kMoney, 0, "$1.00"), HasSqlState("0A000"));
}

struct MixedCase {
  const char* name;
  uint32_t type_a;
  int16_t format_a;
  std::string a;
  uint32_t type_b;
  int16_t format_b;
  std::string b;
  int want;
};

class MixedTest : public ::testing::TestWithParam<MixedCase> {};

TEST_P(MixedTest, ComparesAcrossTypes) {
  const MixedCase& c = GetParam();
  ASSERT_OK_AND_ASSIGN(int got, CompareMixed(c.type_a, c.format_a, c.a, c.type_b, c.format_b, c.b));
  EXPECT_EQ(got, c.want);
  ASSERT_OK_AND_ASSIGN(int back,
                       CompareMixed(c.type_b, c.format_b, c.b, c.type_a, c.format_a, c.a));
  EXPECT_EQ(back, -c.want);
}

INSTANTIATE_TEST_SUITE_P(
    PgValue, MixedTest,
    ::testing::Values(
        MixedCase{"int8_int4", oid::kInt8, 0, "5", oid::kInt4, 1, BigEndian(5, 4), 0},
        MixedCase{"int2_int8", oid::kInt2, 0, "-1", oid::kInt8, 0, "9223372036854775807", -1},
        // PG15: 9223372036854775807::int8 > 9223372036854775806.5::numeric is true (exact).
        MixedCase{"int8_numeric_exact", oid::kInt8, 0, "9223372036854775807", oid::kNumeric, 0,
                  "9223372036854775806.5", 1},
        MixedCase{"numeric_int8_binary", oid::kNumeric, 1, Hex("0002000040000003000c0d48"),
                  oid::kInt8, 1, Int8(-12), -1},
        // PG15: 9007199254740993::int8 = 9007199254740992::float8 is true (int8 cast to float8).
        MixedCase{"int8_float8_as_double", oid::kInt8, 0, "9007199254740993", oid::kFloat8, 0,
                  "9007199254740992", 0},
        MixedCase{"numeric_float8", oid::kNumeric, 0, "1.5", oid::kFloat8, 0, "1.25", 1},
        MixedCase{"numeric_nan_float8_nan", oid::kNumeric, 0, "NaN", oid::kFloat8, 0, "NaN", 0},
        MixedCase{"float4_float8", oid::kFloat4, 0, "0.5", oid::kFloat8, 0, "0.5", 0},
        MixedCase{"numeric_text_binary", oid::kNumeric, 0, "-12.34", oid::kNumeric, 1,
                  Hex("0002000040000003000c0d48"), 0},
        MixedCase{"oid_int4", oid::kOid, 0, "4294967295", oid::kInt4, 0, "-1", 1}),
    [](const ::testing::TestParamInfo<MixedCase>& info) { return std::string(info.param.name); });

TEST(PgValueMixed, NonNumbersAreRefused) {
  EXPECT_THAT(CompareMixed(oid::kText, 0, "1", oid::kInt8, 0, "1"), HasSqlState("0A000"));
}

}  // namespace
}  // namespace shardgate::proxy
