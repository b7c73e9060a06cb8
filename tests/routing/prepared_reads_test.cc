// Which simple reads run prepared on the server (prepare_reads), with which parameter types.
#include "routing/prepared_reads.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "routing/analysis_cache.h"
#include "routing/normalize.h"

namespace shardgate::routing {
namespace {

using ::testing::ElementsAre;

// The parameter types of `sql`, or "as written" when it does not qualify.
std::string Types(const std::string& sql) {
  AnalysisCache cache;
  auto r = cache.Analyze(sql);
  if (!r.ok()) return "error";
  absl::InlinedVector<uint32_t, 8> types;
  if (!ReadParameterTypes(*r->analysis, r->literals, r->max_param, types)) return "as written";
  std::string out;
  for (uint32_t t : types) out += (out.empty() ? "" : ",") + std::to_string(t);
  return out;
}

TEST(LiteralParameterType, IsTheTypePostgresGivesTheConstant) {
  // Parsed from the text, and (integers) from the value the normalizer read: the same type.
  auto type = [](Literal::Kind kind, const std::string& value) {
    const uint32_t t = LiteralParameterType(Literal{kind, value, 0, 0});
    if (kind == Literal::Kind::kInteger) {
      NormalizedStatement n = Normalize("SELECT " + value);
      EXPECT_EQ(n.literals.size(), 1u) << value;
      if (n.literals.size() == 1) EXPECT_EQ(LiteralParameterType(n.literals[0]), t) << value;
    }
    return t;
  };
  EXPECT_EQ(type(Literal::Kind::kInteger, "7"), 23u);
  EXPECT_EQ(type(Literal::Kind::kInteger, "2147483647"), 23u);
  EXPECT_EQ(type(Literal::Kind::kInteger, "2147483648"), 20u);
  EXPECT_EQ(type(Literal::Kind::kInteger, "9223372036854775807"), 20u);
  EXPECT_EQ(type(Literal::Kind::kInteger, "9223372036854775808"), 1700u);
  EXPECT_EQ(type(Literal::Kind::kFloat, "1.5"), 1700u);
  EXPECT_EQ(type(Literal::Kind::kFloat, "1e5"), 1700u);
  EXPECT_EQ(type(Literal::Kind::kString, "abc"), 0u);
}

TEST(ReadParameterTypes, LiteralsComparedWithColumnsBecomeParameters) {
  EXPECT_EQ(Types("SELECT abalance FROM pgbench_accounts WHERE aid = 42"), "23");
  EXPECT_EQ(Types("SELECT a FROM t WHERE id IN (1, 2) AND name = 'x'"), "23,23,0");
  EXPECT_EQ(Types("SELECT a FROM t WHERE (id = 1 OR id = 3000000000)"), "23,20");
  EXPECT_EQ(Types("SELECT a FROM t WHERE price = 1.50"), "1700");
  EXPECT_EQ(Types("SELECT a FROM t WHERE id = ANY(ARRAY[1, 2])"), "23,23");
  EXPECT_EQ(Types("SELECT t.a FROM t JOIN u ON u.id = t.id WHERE t.id = 5"), "23");
}

TEST(ReadParameterTypes, AnythingElseIsSentAsWritten) {
  EXPECT_EQ(Types("SELECT 1"), "as written");
  EXPECT_EQ(Types("SELECT a FROM t"), "as written");                        // no literal
  EXPECT_EQ(Types("SELECT 'x', a FROM t WHERE id = 1"), "as written");      // select list
  EXPECT_EQ(Types("SELECT a FROM t WHERE id = 1 LIMIT 5"), "as written");   // LIMIT
  EXPECT_EQ(Types("SELECT a FROM t WHERE id = 1 ORDER BY 1"), "as written");
  EXPECT_EQ(Types("SELECT * FROM t WHERE id = 1"), "as written");           // SELECT *
  EXPECT_EQ(Types("SELECT a FROM t WHERE id = -1"), "as written");          // negated
  EXPECT_EQ(Types("SELECT a FROM t WHERE id = ANY('{1,2}')"), "as written");  // array literal
  EXPECT_EQ(Types("SELECT a FROM t WHERE id > 1"), "as written");           // not an equality
  EXPECT_EQ(Types("SELECT a FROM t WHERE id = 1 + 1"), "as written");
  EXPECT_EQ(Types("SELECT a FROM t WHERE id = 1; SELECT 2"), "as written");
  EXPECT_EQ(Types("SELECT a FROM t WHERE id = 1 FOR UPDATE"), "as written");  // a write
  EXPECT_EQ(Types("UPDATE t SET a = 1 WHERE id = 2"), "as written");
  EXPECT_EQ(Types("DELETE FROM t WHERE id = 2"), "as written");
  EXPECT_EQ(Types("SELECT a FROM t WHERE id = $1"), "as written");  // a client parameter
}

TEST(AnalysisCache, GivesTheNormalizedStatementWithItsLiterals) {
  AnalysisCache cache;
  for (int i = 0; i < 2; ++i) {  // a miss, then a hit
    auto r = cache.Analyze("SELECT a /* c */ FROM t WHERE id = 42");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->normalized, "SELECT a   FROM t WHERE id = $1");  // the comment is a space
    EXPECT_EQ(r->max_param, 0);
    ASSERT_EQ(r->literals.size(), 1u);
    EXPECT_EQ(r->literals[0].value, "42");
  }
  auto typed = cache.Analyze("SELECT a FROM t WHERE d = DATE '2020-01-01'");
  ASSERT_TRUE(typed.ok());
  EXPECT_THAT(typed->literals, ElementsAre());
}

}  // namespace
}  // namespace shardgate::routing
