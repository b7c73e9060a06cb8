// PostgreSQL wire values for the merge: decoding (text and binary format), ordering as the default
// btree operator classes order, exact sums, avg's numeric division, and float output as
// PostgreSQL 15 prints it. See pg_value.h for the contract.
//
// numeric is held as a decimal digit string plus display scale (Decimal below) rather than
// PostgreSQL's base-10000 NumericVar: the text forms map onto it directly, the binary form is
// converted group by group, and select_div_scale's base-10000 weight is derived from it. Only the
// merge uses it (a handful of sums per group), so clarity wins over speed there; the ORDER BY hot
// path (integers, text, numeric text) never allocates.
#include "proxy/pg_value.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "protocol/status.h"

namespace shardgate::proxy {
namespace {

// PostgreSQL's numeric limits (numeric.h): digits before the point, and the display scale.
constexpr int64_t kNumericMaxIntegerDigits = 131072;
constexpr int64_t kNumericMaxDscale = 0x3FFF;
// select_div_scale's constants (numeric.c).
constexpr int kNumericMinSigDigits = 16;
constexpr int kNumericMaxDisplayScale = 1000;
constexpr int kDecDigits = 4;  // decimal digits per base-10000 digit

// numeric_send's sign words.
constexpr uint16_t kNumericPos = 0x0000, kNumericNeg = 0x4000, kNumericNaN = 0xC000,
                   kNumericPInf = 0xD000, kNumericNInf = 0xF000;

// ---------------------------------------------------------------------------------------------
// Errors, named as PostgreSQL names the types in its own messages.

std::string_view KnownTypeName(uint32_t type) {
  switch (type) {
    case oid::kBool:
      return "boolean";
    case oid::kBytea:
      return "bytea";
    case oid::kChar:
      return "\"char\"";
    case oid::kName:
      return "name";
    case oid::kInt8:
      return "bigint";
    case oid::kInt2:
      return "smallint";
    case oid::kInt4:
      return "integer";
    case oid::kText:
      return "text";
    case oid::kOid:
      return "oid";
    case oid::kFloat4:
      return "real";
    case oid::kFloat8:
      return "double precision";
    case oid::kMoney:
      return "money";
    case oid::kBpchar:
      return "character";
    case oid::kVarchar:
      return "character varying";
    case oid::kDate:
      return "date";
    case oid::kTime:
      return "time without time zone";
    case oid::kTimestamp:
      return "timestamp without time zone";
    case oid::kTimestampTz:
      return "timestamp with time zone";
    case oid::kInterval:
      return "interval";
    case oid::kNumeric:
      return "numeric";
    case oid::kUuid:
      return "uuid";
    default:
      return "";
  }
}

// A value quoted for a message, capped so that a huge malformed value does not make a huge error.
std::string Quoted(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = "\"";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out.append("...");
  out.push_back('"');
  return out;
}

absl::Status InvalidText(uint32_t type, std::string_view s) {
  return PgStatus(
      "22P02", "invalid input syntax for type " + TypeName(type) + ": " + Quoted(s));
}

absl::Status OutOfRangeText(uint32_t type, std::string_view s) {
  return PgStatus(
      "22003", "value " + Quoted(s) + " is out of range for type " + TypeName(type));
}

absl::Status BadBinaryLength(uint32_t type, size_t got) {
  return PgStatus("08P01", "invalid binary value of type " + TypeName(type) + ": " +
                               std::to_string(got) + " bytes");
}

absl::Status BadBinaryValue(uint32_t type, std::string_view what) {
  return PgStatus("22P03", "invalid " + std::string(what) + " in external " +
                               TypeName(type) + " value");
}

absl::Status CheckFormat(int16_t format) {
  if (format == 0 || format == 1) return absl::OkStatus();
  return PgStatus("08P01", "unsupported format code: " + std::to_string(format));
}

int Sign(int64_t v) { return (v > 0) - (v < 0); }
template <typename T>
int Compare3(T a, T b) {
  return (a > b) - (a < b);
}

// ---------------------------------------------------------------------------------------------
// Bytes and text helpers.

uint64_t LoadBigEndian(std::string_view s) {
  uint64_t v = 0;
  for (char c : s) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

void AppendBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Integers (int2, int4, int8, oid).

enum class ParseResult { kOk, kSyntax, kRange };

// Text integer as int{2,4,8}in accept it: surrounding whitespace and a leading '+' are allowed.
// The first from_chars covers what PostgreSQL's output functions send (the hot path).
ParseResult ParseInt64(std::string_view s, int64_t& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec == std::errc() && ptr == s.data() + s.size()) return ParseResult::kOk;
  s = Trim(s);
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    if (s.empty() || s.front() == '-') return ParseResult::kSyntax;
  }
  auto [ptr2, ec2] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (s.empty() || ptr2 != s.data() + s.size()) return ParseResult::kSyntax;
  if (ec2 == std::errc::result_out_of_range) return ParseResult::kRange;
  return ec2 == std::errc() ? ParseResult::kOk : ParseResult::kSyntax;
}

bool IsIntType(uint32_t t) {
  return t == oid::kInt2 || t == oid::kInt4 || t == oid::kInt8 || t == oid::kOid;
}

int IntWidth(uint32_t t) { return t == oid::kInt2 ? 2 : t == oid::kInt8 ? 8 : 4; }

bool IntInRange(uint32_t t, int64_t v) {
  switch (t) {
    case oid::kInt2:
      return v >= INT16_MIN && v <= INT16_MAX;
    case oid::kInt4:
      return v >= INT32_MIN && v <= INT32_MAX;
    case oid::kOid:
      return v >= 0 && v <= UINT32_MAX;
    default:
      return true;
  }
}

// An int2/int4/int8/oid value as int64 (oid values are unsigned, so they fit).
absl::StatusOr<int64_t> DecodeInt(uint32_t type, int16_t format, std::string_view v) {
  if (format == 1) {
    int width = IntWidth(type);
    if (v.size() != static_cast<size_t>(width)) return BadBinaryLength(type, v.size());
    uint64_t raw = LoadBigEndian(v);
    switch (type) {
      case oid::kInt2:
        return static_cast<int16_t>(raw);
      case oid::kInt4:
        return static_cast<int32_t>(raw);
      case oid::kOid:
        return static_cast<int64_t>(static_cast<uint32_t>(raw));
      default:
        return static_cast<int64_t>(raw);
    }
  }
  int64_t out = 0;
  ParseResult r = ParseInt64(v, out);
  if (r == ParseResult::kSyntax) return InvalidText(type, v);
  // oidin takes negative numbers as their unsigned 32-bit pattern.
  if (type == oid::kOid && r == ParseResult::kOk && out < 0 && out >= INT32_MIN) {
    out += int64_t{1} << 32;
  }
  if (r == ParseResult::kRange || !IntInRange(type, out)) return OutOfRangeText(type, v);
  return out;
}

std::string EncodeInt(uint32_t type, int16_t format, int64_t v) {
  std::string out;
  if (format == 1) {
    AppendBigEndian(out, static_cast<uint64_t>(v), IntWidth(type));
    return out;
  }
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.assign(buf, r.ptr);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Floats (float4, float8).

// Text float as float{4,8}in accepts it: NaN / Infinity / inf in any case, whitespace, '+'.
template <typename F>
absl::StatusOr<double> ParseFloatText(uint32_t type, std::string_view text) {
  std::string_view s = Trim(text);
  if (EqualsIgnoreCase(s, "nan")) return std::numeric_limits<double>::quiet_NaN();
  for (std::string_view inf : {"infinity", "+infinity", "inf", "+inf"}) {
    if (EqualsIgnoreCase(s, inf)) return std::numeric_limits<double>::infinity();
  }
  for (std::string_view inf : {"-infinity", "-inf"}) {
    if (EqualsIgnoreCase(s, inf)) return -std::numeric_limits<double>::infinity();
  }
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  F out{};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out, std::chars_format::general);
  if (s.empty() || s.front() == '+' || ptr != s.data() + s.size() ||
      ec == std::errc::invalid_argument) {
    return InvalidText(type, text);
  }
  if (ec == std::errc::result_out_of_range) return OutOfRangeText(type, text);
  return static_cast<double>(out);
}

// A float4/float8 value as double (float4 widens exactly).
absl::StatusOr<double> DecodeFloat(uint32_t type, int16_t format, std::string_view v) {
  if (format == 1) {
    if (type == oid::kFloat4) {
      if (v.size() != 4) return BadBinaryLength(type, v.size());
      return static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(LoadBigEndian(v))));
    }
    if (v.size() != 8) return BadBinaryLength(type, v.size());
    return std::bit_cast<double>(LoadBigEndian(v));
  }
  if (type == oid::kFloat4) return ParseFloatText<float>(type, v);
  return ParseFloatText<double>(type, v);
}

// A finite float in scientific form: significant digits without trailing zeros ("15" for 1.5e3)
// and the decimal exponent of the first one (3).
struct SciDigits {
  std::string digits;
  int exp = 0;
};

// Splits std::to_chars' scientific output "[-]d[.ddd]e(+|-)dd" (the sign is ignored).
SciDigits SplitScientific(std::string_view sci) {
  SciDigits out;
  if (!sci.empty() && sci.front() == '-') sci.remove_prefix(1);
  size_t e = sci.find('e');
  for (char c : sci.substr(0, e)) {
    if (c != '.') out.digits.push_back(c);
  }
  std::string_view exp_text = sci.substr(e + 1);
  std::from_chars(exp_text.data() + 1, exp_text.data() + exp_text.size(), out.exp);
  if (exp_text.front() == '-') out.exp = -out.exp;
  while (out.digits.size() > 1 && out.digits.back() == '0') out.digits.pop_back();
  return out;
}

// `v` with `precision` significant digits, correctly rounded; 0 = the shortest that reads back.
template <typename F>
SciDigits ScientificDigits(F v, int precision) {
  char buf[1024];
  std::to_chars_result r =
      precision == 0
          ? std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific)
          : std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific, precision - 1);
  return SplitScientific(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

// True when `d` is exactly halfway between `v` and one of its neighbours. std::to_chars counts
// such a decimal as reading back to `v` (strtod rounds ties to even), but PostgreSQL's ryu treats
// the rounding interval as open and prints one more digit: 5.4636250089617696e+16, not
// 5.46362500896177e+16. The midpoint of two floats of type F is exact in long double (64-bit
// significand on x86-64), and 800 significant digits print any such midpoint exactly (the
// smallest, 2^-1075, has about 750).
template <typename F>
bool OnRoundingBound(F v, const SciDigits& d) {
  static_assert(std::numeric_limits<long double>::digits >= std::numeric_limits<F>::digits + 1);
  for (F toward : {std::numeric_limits<F>::infinity(), -std::numeric_limits<F>::infinity()}) {
    F neighbour = std::nextafter(v, toward);
    if (std::isinf(neighbour)) continue;
    long double mid = (static_cast<long double>(v) + static_cast<long double>(neighbour)) / 2;
    SciDigits m = ScientificDigits(mid, 800);
    if (m.exp == d.exp && m.digits == d.digits) return true;
  }
  return false;
}

// The digits PostgreSQL's float8out / float4out print with extra_float_digits = 1: the shortest
// that read back exactly, strictly inside the rounding interval, closest to `v`.
template <typename F>
SciDigits ShortestDigits(F v) {
  SciDigits d = ScientificDigits(v, 0);
  if (v == 0 || !OnRoundingBound(v, d)) return d;
  for (int p = static_cast<int>(d.digits.size()) + 1; p <= std::numeric_limits<F>::max_digits10;
       ++p) {
    SciDigits longer = ScientificDigits(v, p);
    if (!OnRoundingBound(v, longer)) return longer;
  }
  return ScientificDigits(v, std::numeric_limits<F>::max_digits10);
}

// float8out / float4out with extra_float_digits = 1 (the default): ShortestDigits, in fixed
// notation when the decimal exponent is in [-4, 15) for float8 and [-4, 6) for float4 (printf's
// %g thresholds with DBL_DIG / FLT_DIG), else "1.5e+20" with at least two exponent digits.
std::string FormatFloat(double v, bool is_float4) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  SciDigits sd = is_float4 ? ShortestDigits(static_cast<float>(v)) : ShortestDigits(v);
  const std::string& digits = sd.digits;
  int exp = sd.exp;
  std::string out;
  if (std::signbit(v)) out.push_back('-');
  int fixed_limit = is_float4 ? 6 : 15;
  if (exp >= -4 && exp < fixed_limit) {
    if (exp >= 0) {
      size_t int_len = static_cast<size_t>(exp) + 1;
      if (digits.size() <= int_len) {
        out += digits;
        out.append(int_len - digits.size(), '0');
      } else {
        out.append(digits, 0, int_len);
        out.push_back('.');
        out.append(digits, int_len);
      }
    } else {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    }
    return out;
  }
  out.push_back(digits[0]);
  if (digits.size() > 1) {
    out.push_back('.');
    out.append(digits, 1);
  }
  out.push_back('e');
  out.push_back(exp < 0 ? '-' : '+');
  int abs_exp = exp < 0 ? -exp : exp;
  if (abs_exp < 10) out.push_back('0');
  out += std::to_string(abs_exp);
  return out;
}

std::string EncodeFloat(uint32_t type, int16_t format, double v) {
  std::string out;
  if (format == 1) {
    if (type == oid::kFloat4) {
      AppendBigEndian(out, std::bit_cast<uint32_t>(static_cast<float>(v)), 4);
    } else {
      AppendBigEndian(out, std::bit_cast<uint64_t>(v), 8);
    }
    return out;
  }
  return FormatFloat(v, type == oid::kFloat4);
}

// float8_cmp_internal: NaN equals NaN and sorts above everything; -0 equals 0.
int CompareDoubles(double a, double b) {
  if (std::isnan(a)) return std::isnan(b) ? 0 : 1;
  if (std::isnan(b)) return -1;
  return Compare3(a, b);
}

// ---------------------------------------------------------------------------------------------
// numeric.

// An exact decimal: value = (neg ? -1 : 1) * digits * 10^-scale. `digits` has no leading zeros
// (empty is zero, which is never negative); `scale` is PostgreSQL's dscale, so "1.50" keeps its
// trailing zero. Special values ignore digits and scale.
struct Decimal {
  enum class Kind { kFinite, kNaN, kPosInf, kNegInf };
  Kind kind = Kind::kFinite;
  bool neg = false;
  std::string digits;
  int scale = 0;
};

// Order rank of the kinds: -Infinity < finite < Infinity < NaN.
int KindRank(Decimal::Kind k) {
  switch (k) {
    case Decimal::Kind::kNegInf:
      return 0;
    case Decimal::Kind::kFinite:
      return 1;
    case Decimal::Kind::kPosInf:
      return 2;
    case Decimal::Kind::kNaN:
      return 3;
  }
  return 3;
}

Decimal SpecialDecimal(Decimal::Kind kind) {
  Decimal d;
  d.kind = kind;
  return d;
}

void StripLeadingZeros(std::string& s) {
  size_t i = s.find_first_not_of('0');
  s.erase(0, i == std::string::npos ? s.size() : i);
}

// Magnitudes of non-negative integers written without leading zeros.
int CompareMagnitudes(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  int c = a.compare(b);
  return (c > 0) - (c < 0);
}

std::string AddMagnitudes(std::string_view a, std::string_view b) {
  std::string out;
  out.reserve(std::max(a.size(), b.size()) + 1);
  int carry = 0;
  for (size_t i = 0; i < a.size() || i < b.size() || carry != 0; ++i) {
    int s = carry;
    if (i < a.size()) s += a[a.size() - 1 - i] - '0';
    if (i < b.size()) s += b[b.size() - 1 - i] - '0';
    out.push_back(static_cast<char>('0' + s % 10));
    carry = s / 10;
  }
  std::reverse(out.begin(), out.end());
  StripLeadingZeros(out);
  return out;
}

// a - b for a >= b.
std::string SubtractMagnitudes(std::string_view a, std::string_view b) {
  std::string out;
  out.reserve(a.size());
  int borrow = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int s = (a[a.size() - 1 - i] - '0') - borrow;
    if (i < b.size()) s -= b[b.size() - 1 - i] - '0';
    borrow = s < 0;
    out.push_back(static_cast<char>('0' + (s + 10) % 10));
  }
  std::reverse(out.begin(), out.end());
  StripLeadingZeros(out);
  return out;
}

// floor(n / d) for d > 0, by schoolbook long division in base 10. The operands are a few dozen
// digits in practice (sum / count), at most a few thousand.
std::string DivideMagnitudes(std::string_view n, std::string_view d) {
  std::string q, rem;
  q.reserve(n.size());
  for (char c : n) {
    if (!rem.empty() || c != '0') rem.push_back(c);
    int k = 0;
    while (CompareMagnitudes(rem, d) >= 0) {
      rem = SubtractMagnitudes(rem, d);
      ++k;
    }
    q.push_back(static_cast<char>('0' + k));
  }
  StripLeadingZeros(q);
  return q;
}

absl::Status CheckNumericBounds(const Decimal& d) {
  if (static_cast<int64_t>(d.digits.size()) - d.scale > kNumericMaxIntegerDigits ||
      d.scale > kNumericMaxDscale) {
    return PgStatus("22003", "value overflows numeric format");
  }
  return absl::OkStatus();
}

// numeric_in: whitespace, sign, digits with an optional point, an optional exponent; NaN,
// Infinity and inf in any case.
absl::StatusOr<Decimal> ParseDecimalText(std::string_view text) {
  std::string_view s = Trim(text);
  if (EqualsIgnoreCase(s, "nan")) return SpecialDecimal(Decimal::Kind::kNaN);
  for (std::string_view inf : {"infinity", "+infinity", "inf", "+inf"}) {
    if (EqualsIgnoreCase(s, inf)) return SpecialDecimal(Decimal::Kind::kPosInf);
  }
  for (std::string_view inf : {"-infinity", "-inf"}) {
    if (EqualsIgnoreCase(s, inf)) return SpecialDecimal(Decimal::Kind::kNegInf);
  }
  Decimal d;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) d.neg = s[i++] == '-';
  size_t int_begin = i;
  while (i < s.size() && IsDigit(s[i])) ++i;
  std::string_view int_part = s.substr(int_begin, i - int_begin);
  std::string_view frac_part;
  if (i < s.size() && s[i] == '.') {
    size_t frac_begin = ++i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    frac_part = s.substr(frac_begin, i - frac_begin);
  }
  if (int_part.empty() && frac_part.empty()) return InvalidText(oid::kNumeric, text);
  int64_t exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool exp_neg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) exp_neg = s[i++] == '-';
    size_t exp_begin = i;
    while (i < s.size() && IsDigit(s[i])) {
      exponent = exponent * 10 + (s[i] - '0');
      // numeric_in refuses exponents beyond NUMERIC_MAX_PRECISION as a syntax error.
      if (exponent > 1000) return InvalidText(oid::kNumeric, text);
      ++i;
    }
    if (i == exp_begin) return InvalidText(oid::kNumeric, text);
    if (exp_neg) exponent = -exponent;
  }
  if (i != s.size()) return InvalidText(oid::kNumeric, text);
  d.digits.reserve(int_part.size() + frac_part.size());
  d.digits.append(int_part);
  d.digits.append(frac_part);
  int64_t scale = static_cast<int64_t>(frac_part.size()) - exponent;
  if (scale < 0) {
    d.digits.append(static_cast<size_t>(-scale), '0');
    scale = 0;
  }
  if (scale > kNumericMaxDscale) return PgStatus("22003", "value overflows numeric format");
  d.scale = static_cast<int>(scale);
  StripLeadingZeros(d.digits);
  if (d.digits.empty()) d.neg = false;
  RETURN_IF_ERROR(CheckNumericBounds(d));
  return d;
}

// numeric_out.
std::string PrintDecimal(const Decimal& d) {
  switch (d.kind) {
    case Decimal::Kind::kNaN:
      return "NaN";
    case Decimal::Kind::kPosInf:
      return "Infinity";
    case Decimal::Kind::kNegInf:
      return "-Infinity";
    case Decimal::Kind::kFinite:
      break;
  }
  std::string out;
  if (d.neg && !d.digits.empty()) out.push_back('-');
  size_t len = d.digits.size(), scale = static_cast<size_t>(d.scale);
  if (len > scale) {
    out.append(d.digits, 0, len - scale);
  } else {
    out.push_back('0');
  }
  if (scale > 0) {
    out.push_back('.');
    if (len >= scale) {
      out.append(d.digits, len - scale);
    } else {
      out.append(scale - len, '0');
      out.append(d.digits);
    }
  }
  return out;
}

// The base-10000 digits of a finite Decimal as NumericVar holds them after make_result: leading
// and trailing zero digits stripped, weight = power of 10000 of the first digit (0 for zero).
struct Base10000 {
  int weight = 0;
  std::vector<int16_t> digits;
};

Base10000 ToBase10000(const Decimal& d) {
  size_t len = d.digits.size(), scale = static_cast<size_t>(d.scale);
  std::string int_part = len > scale ? d.digits.substr(0, len - scale) : std::string();
  std::string frac_part =
      len >= scale ? d.digits.substr(len - scale) : std::string(scale - len, '0') + d.digits;
  int_part.insert(0, (kDecDigits - int_part.size() % kDecDigits) % kDecDigits, '0');
  frac_part.append((kDecDigits - frac_part.size() % kDecDigits) % kDecDigits, '0');
  std::string all = int_part + frac_part;
  Base10000 out;
  out.weight = static_cast<int>(int_part.size() / kDecDigits) - 1;
  for (size_t i = 0; i < all.size(); i += kDecDigits) {
    int16_t g = 0;
    for (size_t j = 0; j < kDecDigits; ++j) g = static_cast<int16_t>(g * 10 + (all[i + j] - '0'));
    out.digits.push_back(g);
  }
  size_t lead = 0;
  while (lead < out.digits.size() && out.digits[lead] == 0) ++lead;
  out.digits.erase(out.digits.begin(), out.digits.begin() + static_cast<ptrdiff_t>(lead));
  out.weight -= static_cast<int>(lead);
  while (!out.digits.empty() && out.digits.back() == 0) out.digits.pop_back();
  if (out.digits.empty()) out.weight = 0;
  return out;
}

// numeric_send.
std::string EncodeDecimalBinary(const Decimal& d) {
  std::string out;
  // PostgreSQL sends the dscale bits of a special value's header: 0 for NaN, 32 for infinities.
  switch (d.kind) {
    case Decimal::Kind::kNaN:
      AppendBigEndian(out, 0, 4);
      AppendBigEndian(out, kNumericNaN, 2);
      AppendBigEndian(out, 0, 2);
      return out;
    case Decimal::Kind::kPosInf:
    case Decimal::Kind::kNegInf:
      AppendBigEndian(out, 0, 4);
      AppendBigEndian(out, d.kind == Decimal::Kind::kPosInf ? kNumericPInf : kNumericNInf, 2);
      AppendBigEndian(out, 0x20, 2);
      return out;
    case Decimal::Kind::kFinite:
      break;
  }
  Base10000 b = ToBase10000(d);
  AppendBigEndian(out, b.digits.size(), 2);
  AppendBigEndian(out, static_cast<uint16_t>(static_cast<int16_t>(b.weight)), 2);
  AppendBigEndian(out, d.neg && !d.digits.empty() ? kNumericNeg : kNumericPos, 2);
  AppendBigEndian(out, static_cast<uint64_t>(d.scale), 2);
  for (int16_t g : b.digits) AppendBigEndian(out, static_cast<uint16_t>(g), 2);
  return out;
}

// numeric_recv: digits beyond dscale are dropped, as PostgreSQL does.
absl::StatusOr<Decimal> DecodeDecimalBinary(std::string_view v) {
  if (v.size() < 8) return BadBinaryLength(oid::kNumeric, v.size());
  size_t ndigits = LoadBigEndian(v.substr(0, 2));
  int weight = static_cast<int16_t>(LoadBigEndian(v.substr(2, 2)));
  uint64_t sign = LoadBigEndian(v.substr(4, 2));
  uint64_t dscale = LoadBigEndian(v.substr(6, 2));
  if (v.size() != 8 + 2 * ndigits) return BadBinaryLength(oid::kNumeric, v.size());
  if (sign == kNumericNaN) return SpecialDecimal(Decimal::Kind::kNaN);
  if (sign == kNumericPInf) return SpecialDecimal(Decimal::Kind::kPosInf);
  if (sign == kNumericNInf) return SpecialDecimal(Decimal::Kind::kNegInf);
  if (sign != kNumericPos && sign != kNumericNeg) return BadBinaryValue(oid::kNumeric, "sign");
  if (dscale > kNumericMaxDscale) return BadBinaryValue(oid::kNumeric, "scale");
  std::vector<int> groups(ndigits);
  for (size_t i = 0; i < ndigits; ++i) {
    groups[i] = static_cast<int>(LoadBigEndian(v.substr(8 + 2 * i, 2)));
    if (groups[i] >= 10000) return BadBinaryValue(oid::kNumeric, "digit");
  }
  auto group = [&](int64_t index) {
    return index >= 0 && index < static_cast<int64_t>(ndigits) ? groups[index] : 0;
  };
  auto append_group = [](std::string& s, int g) {
    char buf[4] = {static_cast<char>('0' + g / 1000), static_cast<char>('0' + g / 100 % 10),
                   static_cast<char>('0' + g / 10 % 10), static_cast<char>('0' + g % 10)};
    s.append(buf, 4);
  };
  Decimal d;
  d.neg = sign == kNumericNeg;
  for (int64_t i = 0; i <= weight; ++i) append_group(d.digits, group(i));
  std::string frac;
  for (int64_t i = weight + 1; frac.size() < dscale; ++i) append_group(frac, group(i));
  frac.resize(dscale);
  d.digits += frac;
  d.scale = static_cast<int>(dscale);
  StripLeadingZeros(d.digits);
  if (d.digits.empty()) d.neg = false;
  return d;
}

absl::StatusOr<Decimal> DecodeDecimal(int16_t format, std::string_view v) {
  if (format == 1) return DecodeDecimalBinary(v);
  return ParseDecimalText(v);
}

std::string EncodeDecimal(int16_t format, const Decimal& d) {
  return format == 1 ? EncodeDecimalBinary(d) : PrintDecimal(d);
}

Decimal DecimalFromInt(int64_t v) {
  Decimal d;
  d.neg = v < 0;
  uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  if (mag != 0) d.digits = std::to_string(mag);
  return d;
}

// |a| vs |b| for finite values.
int CompareAbs(const Decimal& a, const Decimal& b) {
  if (a.digits.empty() || b.digits.empty()) {
    return static_cast<int>(!a.digits.empty()) - static_cast<int>(!b.digits.empty());
  }
  // Position of the most significant digit relative to the point decides first.
  int64_t ea = static_cast<int64_t>(a.digits.size()) - a.scale;
  int64_t eb = static_cast<int64_t>(b.digits.size()) - b.scale;
  if (ea != eb) return ea < eb ? -1 : 1;
  size_t n = std::min(a.digits.size(), b.digits.size());
  int c = a.digits.compare(0, n, b.digits, 0, n);
  if (c != 0) return c < 0 ? -1 : 1;
  // Equal prefix: the longer one is larger only if its tail is not all zeros ("1.50" = "1.5").
  if (a.digits.find_first_not_of('0', n) != std::string::npos) return 1;
  if (b.digits.find_first_not_of('0', n) != std::string::npos) return -1;
  return 0;
}

// cmp_numerics: NaN above everything, then the infinities around the finite values.
int CompareDecimals(const Decimal& a, const Decimal& b) {
  if (a.kind != Decimal::Kind::kFinite || b.kind != Decimal::Kind::kFinite) {
    return Compare3(KindRank(a.kind), KindRank(b.kind));
  }
  bool a_neg = a.neg && !a.digits.empty(), b_neg = b.neg && !b.digits.empty();
  if (a_neg != b_neg) return a_neg ? -1 : 1;
  int c = CompareAbs(a, b);
  return a_neg ? -c : c;
}

// Both digit strings at scale `scale` (>= both scales).
std::string Rescaled(const Decimal& d, int scale) {
  if (d.digits.empty()) return {};
  return d.digits + std::string(static_cast<size_t>(scale - d.scale), '0');
}

// numeric_add: exact, with the larger display scale; NaN wins, Infinity + -Infinity is NaN.
absl::StatusOr<Decimal> AddDecimals(const Decimal& a, const Decimal& b) {
  using Kind = Decimal::Kind;
  if (a.kind == Kind::kNaN || b.kind == Kind::kNaN) return SpecialDecimal(Kind::kNaN);
  if (a.kind != Kind::kFinite || b.kind != Kind::kFinite) {
    if (a.kind != Kind::kFinite && b.kind != Kind::kFinite && a.kind != b.kind) {
      return SpecialDecimal(Kind::kNaN);
    }
    return SpecialDecimal(a.kind != Kind::kFinite ? a.kind : b.kind);
  }
  Decimal out;
  out.scale = std::max(a.scale, b.scale);
  std::string x = Rescaled(a, out.scale), y = Rescaled(b, out.scale);
  if (a.neg == b.neg) {
    out.digits = AddMagnitudes(x, y);
    out.neg = a.neg;
  } else if (CompareMagnitudes(x, y) >= 0) {
    out.digits = SubtractMagnitudes(x, y);
    out.neg = a.neg;
  } else {
    out.digits = SubtractMagnitudes(y, x);
    out.neg = b.neg;
  }
  if (out.digits.empty()) out.neg = false;
  RETURN_IF_ERROR(CheckNumericBounds(out));
  return out;
}

// select_div_scale: at least 16 significant digits, never fewer decimals than either input.
int SelectDivScale(const Decimal& a, const Decimal& b) {
  Base10000 x = ToBase10000(a), y = ToBase10000(b);
  int weight1 = x.digits.empty() ? 0 : x.weight, first1 = x.digits.empty() ? 0 : x.digits[0];
  int weight2 = y.digits.empty() ? 0 : y.weight, first2 = y.digits.empty() ? 0 : y.digits[0];
  int qweight = weight1 - weight2;
  if (first1 <= first2) --qweight;
  int rscale = kNumericMinSigDigits - qweight * kDecDigits;
  rscale = std::max({rscale, a.scale, b.scale, 0});
  return std::min(rscale, kNumericMaxDisplayScale);
}

// numeric_div: the quotient at select_div_scale's scale, rounded half away from zero.
absl::StatusOr<Decimal> DivideDecimals(const Decimal& a, const Decimal& b) {
  using Kind = Decimal::Kind;
  if (a.kind == Kind::kNaN || b.kind == Kind::kNaN) return SpecialDecimal(Kind::kNaN);
  bool b_neg = b.kind == Kind::kNegInf || (b.kind == Kind::kFinite && b.neg);
  if (a.kind != Kind::kFinite) {
    if (b.kind != Kind::kFinite) return SpecialDecimal(Kind::kNaN);
    if (b.digits.empty()) return PgStatus("22012", "division by zero");
    bool pos = (a.kind == Kind::kPosInf) != b_neg;
    return SpecialDecimal(pos ? Kind::kPosInf : Kind::kNegInf);
  }
  if (b.kind != Kind::kFinite) return Decimal{};  // finite / infinity is 0
  if (b.digits.empty()) return PgStatus("22012", "division by zero");
  int rscale = SelectDivScale(a, b);
  // |a| / |b| * 10^rscale = A * 10^(b.scale + rscale) / (B * 10^a.scale); one extra digit rounds.
  std::string n = a.digits + std::string(static_cast<size_t>(b.scale + rscale + 1), '0');
  std::string d = b.digits + std::string(static_cast<size_t>(a.scale), '0');
  std::string q = DivideMagnitudes(n, d);
  Decimal out;
  out.scale = rscale;
  if (!q.empty()) {
    char last = q.back();
    q.pop_back();
    out.digits = last >= '5' ? AddMagnitudes(q, "1") : q;
    StripLeadingZeros(out.digits);
  }
  out.neg = !out.digits.empty() && (a.neg != b.neg);
  return out;
}

// numeric text as PostgreSQL's numeric_out writes it, compared without allocating: the ORDER BY
// merge of a numeric column compares millions of these. Returns false for anything else
// (exponents, whitespace), which then takes the Decimal path.
struct NumericView {
  Decimal::Kind kind = Decimal::Kind::kFinite;
  bool neg = false;
  std::string_view int_part;  // without leading zeros
  std::string_view frac;      // without trailing zeros
};

bool ParseNumericView(std::string_view s, NumericView& v) {
  if (s == "NaN" || s == "Infinity" || s == "-Infinity") {
    v.kind = s == "NaN"        ? Decimal::Kind::kNaN
             : s == "Infinity" ? Decimal::Kind::kPosInf
                               : Decimal::Kind::kNegInf;
    return true;
  }
  if (!s.empty() && s.front() == '-') {
    v.neg = true;
    s.remove_prefix(1);
  }
  size_t dot = s.find('.');
  v.int_part = s.substr(0, dot);
  v.frac = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (v.int_part.empty() || (dot != std::string_view::npos && v.frac.empty())) return false;
  for (char c : v.int_part) {
    if (!IsDigit(c)) return false;
  }
  for (char c : v.frac) {
    if (!IsDigit(c)) return false;
  }
  while (!v.int_part.empty() && v.int_part.front() == '0') v.int_part.remove_prefix(1);
  while (!v.frac.empty() && v.frac.back() == '0') v.frac.remove_suffix(1);
  if (v.int_part.empty() && v.frac.empty()) v.neg = false;  // "-0.00" is zero
  return true;
}

int CompareNumericViews(const NumericView& a, const NumericView& b) {
  if (a.kind != Decimal::Kind::kFinite || b.kind != Decimal::Kind::kFinite) {
    return Compare3(KindRank(a.kind), KindRank(b.kind));
  }
  if (a.neg != b.neg) return a.neg ? -1 : 1;
  int c = CompareMagnitudes(a.int_part, b.int_part);
  if (c == 0) {
    int f = a.frac.compare(b.frac);
    c = (f > 0) - (f < 0);
  }
  return a.neg ? -c : c;
}

// A number of any numeric type as an exact Decimal (floats excluded: they compare as double).
absl::StatusOr<Decimal> NumberAsDecimal(uint32_t type, int16_t format, std::string_view v) {
  if (type == oid::kNumeric) return DecodeDecimal(format, v);
  ASSIGN_OR_RETURN(int64_t i, DecodeInt(type, format, v));
  return DecimalFromInt(i);
}

// A number of any numeric type as double, as PostgreSQL casts it for a float comparison
// (numeric_float8 reads numeric_out's text back with strtod).
absl::StatusOr<double> NumberAsDouble(uint32_t type, int16_t format, std::string_view v) {
  if (type == oid::kFloat4 || type == oid::kFloat8) return DecodeFloat(type, format, v);
  if (IsIntType(type)) {
    ASSIGN_OR_RETURN(int64_t i, DecodeInt(type, format, v));
    return static_cast<double>(i);
  }
  ASSIGN_OR_RETURN(Decimal d, DecodeDecimal(format, v));
  switch (d.kind) {
    case Decimal::Kind::kNaN:
      return std::numeric_limits<double>::quiet_NaN();
    case Decimal::Kind::kPosInf:
      return std::numeric_limits<double>::infinity();
    case Decimal::Kind::kNegInf:
      return -std::numeric_limits<double>::infinity();
    case Decimal::Kind::kFinite:
      break;
  }
  std::string text = PrintDecimal(d);
  double out = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec == std::errc::result_out_of_range) {
    // Beyond double's range: numeric_float8 fails; for ordering, the sign's infinity is right.
    return d.neg ? -std::numeric_limits<double>::infinity()
                 : std::numeric_limits<double>::infinity();
  }
  return out;
}


// ---------------------------------------------------------------------------------------------
// bool, "char", bytea, uuid.

absl::StatusOr<bool> DecodeBool(int16_t format, std::string_view v) {
  if (format == 1) {
    if (v.size() != 1) return BadBinaryLength(oid::kBool, v.size());
    return v[0] != 0;
  }
  if (v == "t") return true;
  if (v == "f") return false;
  // boolin: unique prefixes of true/false/yes/no, on/off, 1/0, in any case.
  std::string_view s = Trim(v);
  std::string lower(s);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  auto prefix_of = [&](std::string_view word, size_t min_len) {
    return lower.size() >= min_len && lower.size() <= word.size() &&
           word.substr(0, lower.size()) == lower;
  };
  if (prefix_of("true", 1) || prefix_of("yes", 1) || lower == "on" || lower == "1") return true;
  if (prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || lower == "0") {
    return false;
  }
  return InvalidText(oid::kBool, v);
}

// "char": one byte; charout writes bytes with the high bit set as \ooo and the zero byte as "".
absl::StatusOr<unsigned char> DecodeChar(int16_t format, std::string_view v) {
  if (format == 1) {
    if (v.size() > 1) return BadBinaryLength(oid::kChar, v.size());
    return v.empty() ? 0 : static_cast<unsigned char>(v[0]);
  }
  if (v.size() == 4 && v[0] == '\\' && v[1] >= '0' && v[1] <= '3' && v[2] >= '0' && v[2] <= '7' &&
      v[3] >= '0' && v[3] <= '7') {
    return static_cast<unsigned char>((v[1] - '0') * 64 + (v[2] - '0') * 8 + (v[3] - '0'));
  }
  return v.empty() ? 0 : static_cast<unsigned char>(v[0]);
}

// byteain: "\x" + hex pairs (whitespace between pairs allowed), else the escape format.
absl::StatusOr<std::string> DecodeByteaText(std::string_view v) {
  std::string out;
  if (v.size() >= 2 && v[0] == '\\' && v[1] == 'x') {
    out.reserve((v.size() - 2) / 2);
    for (size_t i = 2; i < v.size();) {
      if (IsSpace(v[i])) {
        ++i;
        continue;
      }
      int hi = HexValue(v[i]);
      int lo = i + 1 < v.size() ? HexValue(v[i + 1]) : -1;
      if (hi < 0 || lo < 0) return InvalidText(oid::kBytea, v);
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    }
    return out;
  }
  for (size_t i = 0; i < v.size();) {
    if (v[i] != '\\') {
      out.push_back(v[i++]);
    } else if (i + 1 < v.size() && v[i + 1] == '\\') {
      out.push_back('\\');
      i += 2;
    } else if (i + 3 < v.size() && v[i + 1] >= '0' && v[i + 1] <= '3' && v[i + 2] >= '0' &&
               v[i + 2] <= '7' && v[i + 3] >= '0' && v[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((v[i + 1] - '0') * 64 + (v[i + 2] - '0') * 8 + (v[i + 3] - '0')));
      i += 4;
    } else {
      return InvalidText(oid::kBytea, v);
    }
  }
  return out;
}

std::string ByteaHexText(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + bytes.size() * 2);
  for (char c : bytes) {
    out.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
    out.push_back(kHex[static_cast<unsigned char>(c) & 0xF]);
  }
  return out;
}

using UuidBytes = std::array<unsigned char, 16>;

// uuid_in: 32 hex digits, optionally in braces, a hyphen allowed after any group of four.
absl::StatusOr<UuidBytes> DecodeUuid(int16_t format, std::string_view v) {
  UuidBytes out{};
  if (format == 1) {
    if (v.size() != 16) return BadBinaryLength(oid::kUuid, v.size());
    std::memcpy(out.data(), v.data(), 16);
    return out;
  }
  std::string_view s = v;
  if (!s.empty() && s.front() == '{') {
    if (s.back() != '}') return InvalidText(oid::kUuid, v);
    s = s.substr(1, s.size() - 2);
  }
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '-' && n % 4 == 0 && n > 0 && n < 32 && i + 1 < s.size() && s[i + 1] != '-') {
      continue;
    }
    int h = HexValue(s[i]);
    if (h < 0 || n >= 32) return InvalidText(oid::kUuid, v);
    out[n / 2] = static_cast<unsigned char>(out[n / 2] * 16 + h);
    ++n;
  }
  if (n != 32) return InvalidText(oid::kUuid, v);
  return out;
}

std::string UuidText(const UuidBytes& u) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[u[i] >> 4]);
    out.push_back(kHex[u[i] & 0xF]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// date, time, timestamp, timestamptz. Text is parsed (DateStyle ISO) into the binary
// representation rather than compared bytewise, so BC dates, 5-digit years and timestamptz
// values written with different offsets order correctly too.

constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMicrosPerDay = 86400 * kMicrosPerSecond;

// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year: 1 BC is year 0).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

const int64_t kPostgresEpochDays = DaysFromCivil(2000, 1, 1);

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Reads [0-9]{min,max} at s[i]; advances i.
bool ReadDigits(std::string_view s, size_t& i, size_t min, size_t max, int64_t& out) {
  size_t begin = i;
  out = 0;
  while (i < s.size() && IsDigit(s[i]) && i - begin < max) out = out * 10 + (s[i++] - '0');
  return i - begin >= min && (i >= s.size() || !IsDigit(s[i]));
}

// "YYYY-MM-DD" (the year may be longer) at s[i]: days since 2000-01-01, before any " BC".
bool ReadIsoDate(std::string_view s, size_t& i, int64_t& year, int64_t& month, int64_t& day) {
  return ReadDigits(s, i, 4, 7, year) && i < s.size() && s[i++] == '-' &&
         ReadDigits(s, i, 1, 2, month) && i < s.size() && s[i++] == '-' &&
         ReadDigits(s, i, 1, 2, day);
}

bool DateDays(int64_t year, int64_t month, int64_t day, bool bc, int64_t& days) {
  if (year == 0 || month < 1 || month > 12 || day < 1) return false;
  int64_t astro = bc ? 1 - year : year;
  static constexpr int kMonthDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int64_t limit = kMonthDays[month - 1] + (month == 2 && IsLeap(astro) ? 1 : 0);
  if (day > limit) return false;
  days = DaysFromCivil(astro, month, day) - kPostgresEpochDays;
  return true;
}

// "HH:MM[:SS[.fff...]]" at s[i] as microseconds. The fraction is rounded as DecodeTime does:
// rint(strtod(fraction) * 1e6), so ".1234565" gives 123456 like PostgreSQL.
bool ReadTimeOfDay(std::string_view s, size_t& i, int64_t& micros) {
  int64_t h = 0, m = 0, sec = 0, frac = 0;
  if (!ReadDigits(s, i, 1, 2, h) || i >= s.size() || s[i++] != ':' || !ReadDigits(s, i, 2, 2, m)) {
    return false;
  }
  if (i < s.size() && s[i] == ':') {
    ++i;
    if (!ReadDigits(s, i, 2, 2, sec)) return false;
    if (i < s.size() && s[i] == '.') {
      size_t begin = i++;
      while (i < s.size() && IsDigit(s[i])) ++i;
      if (i == begin + 1) return false;
      double fraction = 0;
      std::from_chars(s.data() + begin, s.data() + i, fraction);
      frac = static_cast<int64_t>(std::rint(fraction * 1000000.0));
    }
  }
  if (m > 59 || sec > 60 || h > 24) return false;
  micros = ((h * 60 + m) * 60 + sec) * kMicrosPerSecond + frac;
  return micros <= kMicrosPerDay;
}

// "+HH[:MM[:SS]]" / "-HH..." at s[i] as seconds east of UTC.
bool ReadOffset(std::string_view s, size_t& i, int64_t& seconds) {
  bool neg = s[i++] == '-';
  int64_t h = 0, m = 0, sec = 0;
  if (!ReadDigits(s, i, 1, 2, h)) return false;
  if (i < s.size() && s[i] == ':') {
    ++i;
    if (!ReadDigits(s, i, 2, 2, m)) return false;
    if (i < s.size() && s[i] == ':') {
      ++i;
      if (!ReadDigits(s, i, 2, 2, sec)) return false;
    }
  }
  seconds = (h * 3600 + m * 60 + sec) * (neg ? -1 : 1);
  return true;
}

absl::Status BadDateTimeText(uint32_t type, std::string_view v) {
  return PgStatus("22P02",
                  "invalid input syntax for type " + TypeName(type) + ": " + Quoted(v),
                  "shardgate merges date/time text values only in DateStyle ISO");
}

// A date/time/timestamp/timestamptz value as its binary integer (days for date, microseconds
// otherwise; timestamptz in UTC). Text infinities map to the binary ones.
absl::StatusOr<int64_t> DecodeDateTime(uint32_t type, int16_t format, std::string_view v) {
  if (format == 1) {
    size_t width = type == oid::kDate ? 4 : 8;
    if (v.size() != width) return BadBinaryLength(type, v.size());
    uint64_t raw = LoadBigEndian(v);
    return type == oid::kDate ? static_cast<int64_t>(static_cast<int32_t>(raw))
                              : static_cast<int64_t>(raw);
  }
  std::string_view s = Trim(v);
  if (type != oid::kTime) {
    bool date = type == oid::kDate;
    if (EqualsIgnoreCase(s, "infinity") || EqualsIgnoreCase(s, "+infinity")) {
      return date ? int64_t{INT32_MAX} : INT64_MAX;
    }
    if (EqualsIgnoreCase(s, "-infinity")) return date ? int64_t{INT32_MIN} : INT64_MIN;
  }
  size_t i = 0;
  int64_t time_micros = 0;
  if (type == oid::kTime) {
    if (!ReadTimeOfDay(s, i, time_micros) || i != s.size()) return BadDateTimeText(type, v);
    return time_micros;
  }
  int64_t year = 0, month = 0, day = 0, offset = 0;
  if (!ReadIsoDate(s, i, year, month, day)) return BadDateTimeText(type, v);
  if (type != oid::kDate) {
    if (i >= s.size() || (s[i] != ' ' && s[i] != 'T')) return BadDateTimeText(type, v);
    ++i;
    if (!ReadTimeOfDay(s, i, time_micros)) return BadDateTimeText(type, v);
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      if (!ReadOffset(s, i, offset)) return BadDateTimeText(type, v);
      // timestamp without time zone ignores a written offset, as timestamp_in does.
      if (type == oid::kTimestamp) offset = 0;
    }
  }
  bool bc = false;
  if (s.substr(i) == " BC") {
    bc = true;
    i += 3;
  }
  int64_t days = 0;
  if (i != s.size() || !DateDays(year, month, day, bc, days)) return BadDateTimeText(type, v);
  if (type == oid::kDate) return days;
  return days * kMicrosPerDay + time_micros - offset * kMicrosPerSecond;
}

// bpchar ignores trailing spaces when comparing (bpcharcmp).
std::string_view WithoutTrailingSpaces(std::string_view s) {
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

int CompareBytes(std::string_view a, std::string_view b) {
  int c = a.compare(b);  // char_traits<char> compares as unsigned char, i.e. memcmp: collation C
  return (c > 0) - (c < 0);
}

}  // namespace

std::string TypeName(uint32_t type) {
  std::string_view known = KnownTypeName(type);
  return known.empty() ? absl::StrCat("with OID ", type) : std::string(known);
}

bool IsNumberType(uint32_t t) {
  return IsIntType(t) || t == oid::kFloat4 || t == oid::kFloat8 || t == oid::kNumeric;
}

bool CanAdd(uint32_t type) { return AverageType(type) != 0; }

// ---------------------------------------------------------------------------------------------
// Public API.

bool HasKnownOrder(uint32_t type_oid) {
  switch (type_oid) {
    case oid::kBool:
    case oid::kBytea:
    case oid::kChar:
    case oid::kName:
    case oid::kInt8:
    case oid::kInt2:
    case oid::kInt4:
    case oid::kText:
    case oid::kOid:
    case oid::kFloat4:
    case oid::kFloat8:
    case oid::kBpchar:
    case oid::kVarchar:
    case oid::kDate:
    case oid::kTime:
    case oid::kTimestamp:
    case oid::kTimestampTz:
    case oid::kNumeric:
    case oid::kUuid:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<int> CompareValues(uint32_t type_oid, int16_t format, std::string_view a,
                                  std::string_view b) {
  RETURN_IF_ERROR(CheckFormat(format));
  switch (type_oid) {
    case oid::kText:
    case oid::kVarchar:
    case oid::kName:
      return CompareBytes(a, b);
    case oid::kBpchar:
      return CompareBytes(WithoutTrailingSpaces(a), WithoutTrailingSpaces(b));
    case oid::kInt2:
    case oid::kInt4:
    case oid::kInt8:
    case oid::kOid: {
      ASSIGN_OR_RETURN(int64_t x, DecodeInt(type_oid, format, a));
      ASSIGN_OR_RETURN(int64_t y, DecodeInt(type_oid, format, b));
      return Compare3(x, y);
    }
    case oid::kFloat4:
    case oid::kFloat8: {
      ASSIGN_OR_RETURN(double x, DecodeFloat(type_oid, format, a));
      ASSIGN_OR_RETURN(double y, DecodeFloat(type_oid, format, b));
      return CompareDoubles(x, y);
    }
    case oid::kNumeric: {
      NumericView va, vb;
      if (format == 0 && ParseNumericView(a, va) && ParseNumericView(b, vb)) {
        return CompareNumericViews(va, vb);
      }
      ASSIGN_OR_RETURN(Decimal x, DecodeDecimal(format, a));
      ASSIGN_OR_RETURN(Decimal y, DecodeDecimal(format, b));
      return CompareDecimals(x, y);
    }
    case oid::kBool: {
      ASSIGN_OR_RETURN(bool x, DecodeBool(format, a));
      ASSIGN_OR_RETURN(bool y, DecodeBool(format, b));
      return Compare3<int>(x, y);
    }
    case oid::kChar: {
      ASSIGN_OR_RETURN(unsigned char x, DecodeChar(format, a));
      ASSIGN_OR_RETURN(unsigned char y, DecodeChar(format, b));
      return Compare3<int>(x, y);
    }
    case oid::kBytea: {
      if (format == 1) return CompareBytes(a, b);
      ASSIGN_OR_RETURN(std::string x, DecodeByteaText(a));
      ASSIGN_OR_RETURN(std::string y, DecodeByteaText(b));
      return CompareBytes(x, y);
    }
    case oid::kDate:
    case oid::kTime:
    case oid::kTimestamp:
    case oid::kTimestampTz: {
      ASSIGN_OR_RETURN(int64_t x, DecodeDateTime(type_oid, format, a));
      ASSIGN_OR_RETURN(int64_t y, DecodeDateTime(type_oid, format, b));
      return Compare3(x, y);
    }
    case oid::kUuid: {
      ASSIGN_OR_RETURN(UuidBytes x, DecodeUuid(format, a));
      ASSIGN_OR_RETURN(UuidBytes y, DecodeUuid(format, b));
      return Sign(std::memcmp(x.data(), y.data(), x.size()));
    }
    default:
      return PgStatus("0A000", "shardgate cannot order values of type " + TypeName(type_oid) +
                                   " across shards");
  }
}

absl::StatusOr<int> CompareMixed(uint32_t type_a, int16_t format_a, std::string_view a,
                                 uint32_t type_b, int16_t format_b, std::string_view b) {
  if (type_a == type_b && format_a == format_b) return CompareValues(type_a, format_a, a, b);
  RETURN_IF_ERROR(CheckFormat(format_a));
  RETURN_IF_ERROR(CheckFormat(format_b));
  if (!IsNumberType(type_a) || !IsNumberType(type_b)) {
    return PgStatus("0A000", "shardgate cannot compare " + TypeName(type_a) +
                                 " with " + TypeName(type_b));
  }
  if (IsIntType(type_a) && IsIntType(type_b)) {
    ASSIGN_OR_RETURN(int64_t x, DecodeInt(type_a, format_a, a));
    ASSIGN_OR_RETURN(int64_t y, DecodeInt(type_b, format_b, b));
    return Compare3(x, y);
  }
  // PostgreSQL has no float/numeric or float/integer cross-type operators: the other side is
  // cast to float8 (implicitly), so the comparison is a double one.
  bool any_float = type_a == oid::kFloat4 || type_a == oid::kFloat8 || type_b == oid::kFloat4 ||
                   type_b == oid::kFloat8;
  if (any_float) {
    ASSIGN_OR_RETURN(double x, NumberAsDouble(type_a, format_a, a));
    ASSIGN_OR_RETURN(double y, NumberAsDouble(type_b, format_b, b));
    return CompareDoubles(x, y);
  }
  ASSIGN_OR_RETURN(Decimal x, NumberAsDecimal(type_a, format_a, a));
  ASSIGN_OR_RETURN(Decimal y, NumberAsDecimal(type_b, format_b, b));
  return CompareDecimals(x, y);
}

absl::StatusOr<std::string> EncodeConstant(uint32_t type_oid, int16_t format,
                                           std::string_view text) {
  RETURN_IF_ERROR(CheckFormat(format));
  switch (type_oid) {
    case oid::kText:
    case oid::kVarchar:
    case oid::kName:
    case oid::kBpchar:
      return std::string(text);
    case oid::kChar: {
      if (format == 0) return std::string(text);
      return std::string(text.substr(0, 1));
    }
    case oid::kInt2:
    case oid::kInt4:
    case oid::kInt8:
    case oid::kOid: {
      ASSIGN_OR_RETURN(int64_t v, DecodeInt(type_oid, 0, text));
      return EncodeInt(type_oid, format, v);
    }
    case oid::kFloat4:
    case oid::kFloat8: {
      ASSIGN_OR_RETURN(double v, DecodeFloat(type_oid, 0, text));
      return EncodeFloat(type_oid, format, v);
    }
    case oid::kNumeric: {
      ASSIGN_OR_RETURN(Decimal d, ParseDecimalText(text));
      return EncodeDecimal(format, d);
    }
    case oid::kBool: {
      ASSIGN_OR_RETURN(bool v, DecodeBool(0, text));
      if (format == 1) return std::string(1, v ? '\1' : '\0');
      return std::string(v ? "t" : "f");
    }
    case oid::kBytea: {
      ASSIGN_OR_RETURN(std::string bytes, DecodeByteaText(text));
      return format == 1 ? bytes : ByteaHexText(bytes);
    }
    case oid::kUuid: {
      ASSIGN_OR_RETURN(UuidBytes u, DecodeUuid(0, text));
      if (format == 1) return std::string(reinterpret_cast<const char*>(u.data()), u.size());
      return UuidText(u);
    }
    case oid::kDate:
    case oid::kTime:
    case oid::kTimestamp:
    case oid::kTimestampTz: {
      // A timestamptz constant without an offset is taken as UTC: the session's TimeZone is not
      // known here.
      ASSIGN_OR_RETURN(int64_t v, DecodeDateTime(type_oid, 0, text));
      if (format == 0) return std::string(Trim(text));
      std::string out;
      AppendBigEndian(out, static_cast<uint64_t>(v), type_oid == oid::kDate ? 4 : 8);
      return out;
    }
    default:
      return PgStatus("0A000", "shardgate cannot use a constant of type " +
                                   TypeName(type_oid) + " here");
  }
}

absl::Status AddValue(uint32_t type_oid, int16_t format, std::string& acc, std::string_view value) {
  RETURN_IF_ERROR(CheckFormat(format));
  switch (type_oid) {
    case oid::kInt2:
    case oid::kInt4:
    case oid::kInt8: {
      ASSIGN_OR_RETURN(int64_t y, DecodeInt(type_oid, format, value));
      if (acc.empty()) {
        acc.assign(value);
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(int64_t x, DecodeInt(type_oid, format, acc));
      int64_t sum = 0;
      if (__builtin_add_overflow(x, y, &sum) || !IntInRange(type_oid, sum)) {
        return PgStatus("22003", std::string(type_oid == oid::kInt8   ? "bigint"
                                             : type_oid == oid::kInt4 ? "integer"
                                                                      : "smallint") +
                                     " out of range");
      }
      acc = EncodeInt(type_oid, format, sum);
      return absl::OkStatus();
    }
    case oid::kNumeric: {
      ASSIGN_OR_RETURN(Decimal y, DecodeDecimal(format, value));
      if (acc.empty()) {
        acc.assign(value);
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(Decimal x, DecodeDecimal(format, acc));
      ASSIGN_OR_RETURN(Decimal sum, AddDecimals(x, y));
      acc = EncodeDecimal(format, sum);
      return absl::OkStatus();
    }
    case oid::kFloat4:
    case oid::kFloat8: {
      ASSIGN_OR_RETURN(double y, DecodeFloat(type_oid, format, value));
      if (acc.empty()) {
        acc.assign(value);
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(double x, DecodeFloat(type_oid, format, acc));
      // float4pl adds in single precision; float8pl in double. Both refuse to overflow finite
      // operands into infinity (float_overflow_error).
      double sum = type_oid == oid::kFloat4
                       ? static_cast<double>(static_cast<float>(x) + static_cast<float>(y))
                       : x + y;
      if (std::isinf(sum) && !std::isinf(x) && !std::isinf(y)) {
        return PgStatus("22003", "value out of range: overflow");
      }
      acc = EncodeFloat(type_oid, format, sum);
      return absl::OkStatus();
    }
    default:
      // money's text form depends on lc_monetary and interval sums need interval arithmetic:
      // neither is worth it for a proxy.
      return PgStatus("0A000", "shardgate cannot add partial sums of type " +
                                   TypeName(type_oid) + " across shards");
  }
}

uint32_t AverageType(uint32_t sum_type) {
  switch (sum_type) {
    case oid::kInt2:
    case oid::kInt4:
    case oid::kInt8:
    case oid::kNumeric:
      return oid::kNumeric;
    case oid::kFloat4:
    case oid::kFloat8:
      return oid::kFloat8;
    default:
      return 0;
  }
}

absl::StatusOr<std::string> AverageValue(uint32_t sum_type, int16_t format, std::string_view sum,
                                         std::string_view count) {
  RETURN_IF_ERROR(CheckFormat(format));
  uint32_t avg_type = AverageType(sum_type);
  if (avg_type == 0) {
    return PgStatus("0A000", "shardgate cannot compute avg() across shards for sums of type " +
                                 TypeName(sum_type));
  }
  ASSIGN_OR_RETURN(int64_t n, DecodeInt(oid::kInt8, format, count));
  if (n == 0) return PgStatus("22012", "division by zero");
  if (avg_type == oid::kFloat8) {
    ASSIGN_OR_RETURN(double s, DecodeFloat(sum_type, format, sum));
    return EncodeFloat(oid::kFloat8, format, s / static_cast<double>(n));
  }
  ASSIGN_OR_RETURN(Decimal s, NumberAsDecimal(sum_type, format, sum));
  ASSIGN_OR_RETURN(Decimal q, DivideDecimals(s, DecimalFromInt(n)));
  return EncodeDecimal(format, q);
}

}  // namespace shardgate::proxy
