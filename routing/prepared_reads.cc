// Which simple-protocol reads run as server-prepared statements (prepare_reads).
#include "routing/prepared_reads.h"

#include <charconv>
#include <limits>

namespace shardgate::routing {
namespace {

constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kInt4Oid = 23;
constexpr uint32_t kNumericOid = 1700;
constexpr uint32_t kUnspecifiedOid = 0;
// Literal slots are tracked in one 64-bit mask; statements with more literals are sent as
// written.
constexpr size_t kMaxLiterals = 64;

}  // namespace

uint32_t LiteralParameterType(const Literal& literal) {
  switch (literal.kind) {
    case Literal::Kind::kString:
      return kUnspecifiedOid;
    case Literal::Kind::kFloat:
      return kNumericOid;
    case Literal::Kind::kInteger: {
      int64_t v = literal.int_value;
      if (!literal.has_int) {
        const char* end = literal.value.data() + literal.value.size();
        auto [ptr, ec] = std::from_chars(literal.value.data(), end, v);
        if (ec != std::errc{} || ptr != end) return kNumericOid;
      }
      return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()
                 ? kInt4Oid
                 : kInt8Oid;
    }
  }
  return kUnspecifiedOid;
}

bool PreparableRead(const Analysis& analysis) {
  if (analysis.statements.size() != 1) return false;
  const QueryInfo& q = analysis.statements[0];
  return q.kind == StatementKind::kSelect && !q.write && !q.merge.star;
}

bool ReadParameterTypes(const Analysis& analysis, std::span<const Literal> literals, int max_param,
                        absl::InlinedVector<uint32_t, 8>& types) {
  if (max_param != 0 || literals.empty() || literals.size() > kMaxLiterals ||
      !analysis.normalized || !PreparableRead(analysis)) {
    return false;
  }
  const QueryInfo& q = analysis.statements[0];
  uint64_t covered = 0;
  for (const KeyConstraint& key : q.keys) {
    for (const ValueRef& v : key.values) {
      if (v.source != ValueRef::Source::kLiteral) continue;
      if (v.negate || v.array || v.index < 0 || static_cast<size_t>(v.index) >= literals.size()) {
        return false;
      }
      covered |= uint64_t{1} << v.index;
    }
  }
  const uint64_t all =
      literals.size() == kMaxLiterals ? ~uint64_t{0} : (uint64_t{1} << literals.size()) - 1;
  if (covered != all) return false;
  types.clear();
  for (const Literal& literal : literals) types.push_back(LiteralParameterType(literal));
  return true;
}

}  // namespace shardgate::routing
