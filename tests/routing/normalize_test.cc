// The normalizer: literals become $N after the client's own parameters, comments vanish, and
// its idea of a literal agrees with libpg_query's scanner.
#include "routing/normalize.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <set>

namespace shardgate::routing {
namespace {

std::string Sql(const NormalizedStatement& n) { return n.text.c_str(); }

struct Case {
  std::string sql;
  std::string normalized;
  std::vector<std::string> literals;
  int max_param = 0;
};

class NormalizeTable : public ::testing::TestWithParam<Case> {};

TEST_P(NormalizeTable, Normalizes) {
  const Case& c = GetParam();
  NormalizedStatement n = Normalize(c.sql);
  EXPECT_EQ(Sql(n), c.normalized);
  std::vector<std::string> values;
  for (const Literal& l : n.literals) values.push_back(l.value);
  EXPECT_EQ(values, c.literals);
  EXPECT_EQ(n.max_param, c.max_param);
}

INSTANTIATE_TEST_SUITE_P(
    Table, NormalizeTable,
    ::testing::Values(
        Case{"SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = $1", {"42"}},
        Case{"SELECT * FROM t WHERE id = $1 AND k = 'x'", "SELECT * FROM t WHERE id = $1 AND k = $2",
             {"x"}, 1},
        Case{"SELECT $2, 5, $1", "SELECT $2, $3, $1", {"5"}, 2},
        Case{"SELECT 'it''s', E'a\\nb', $$dollar$$, $tag$x$tag$",
             "SELECT $1, $2, $3, $4", {"it's", "a\nb", "dollar", "x"}},
        Case{"SELECT 1.5, .5, 1e10, 2E-3", "SELECT $1, $2, $3, $4", {"1.5", ".5", "1e10", "2E-3"}},
        Case{"SELECT /* c */ 1 -- tail", "SELECT   $1  ", {"1"}},
        Case{"SELECT /* nested /* deep */ still */ 1", "SELECT   $1", {"1"}},
        Case{"SELECT t1.c2 FROM t1", "SELECT t1.c2 FROM t1", {}},
        Case{"SELECT \"col 1\", \"a\"\"b\" FROM t", "SELECT \"col 1\", \"a\"\"b\" FROM t", {}},
        Case{"SELECT DATE '2020-01-01', INTERVAL '1 day'",
             "SELECT DATE '2020-01-01', INTERVAL '1 day'", {}},
        Case{"SELECT B'101', X'1F', U&'d\\0061t', N'x'", "SELECT B'101', X'1F', U&'d\\0061t', N'x'",
             {}},
        Case{"SELECT -5", "SELECT -$1", {"5"}},
        Case{"SELECT 'a'\n  'b'", "SELECT $1", {"ab"}},
        Case{"SELECT 'a' 'b'", "SELECT $1 $2", {"a", "b"}},  // not a continuation: no newline
        Case{"SELECT arr[1:2]", "SELECT arr[$1:$2]", {"1", "2"}},
        Case{"SELECT x::int FROM t WHERE y IN (1, 2)", "SELECT x::int FROM t WHERE y IN ($1, $2)",
             {"1", "2"}}));

TEST(Normalize, KeyCarriesMaxParam) {
  // "$2" as a literal slot (max_param 1) and "$2" as a client parameter (max_param 2) must not
  // share a cache key.
  NormalizedStatement a = Normalize("SELECT $1, 7");
  NormalizedStatement b = Normalize("SELECT $1, $2");
  EXPECT_EQ(Sql(a), Sql(b));
  EXPECT_NE(a.text, b.text);
}

TEST(Normalize, SameShapeSameKey) {
  EXPECT_EQ(Normalize("SELECT * FROM t WHERE id = 1").text,
            Normalize("SELECT * FROM t WHERE id = 2").text);
  EXPECT_NE(Normalize("SELECT * FROM t WHERE id = 1").text,
            Normalize("SELECT * FROM u WHERE id = 1").text);
}

TEST(Normalize, UnterminatedInputIsCopied) {
  for (const char* sql : {"SELECT 'abc", "SELECT /* x", "SELECT $$abc", "SELECT \"x"}) {
    NormalizedStatement n = Normalize(sql);
    EXPECT_TRUE(n.unterminated) << sql;
  }
}

TEST(Normalize, LiteralPositionsPointIntoTheOriginal) {
  std::string sql = "SELECT a FROM t WHERE b = 'xyz' AND c = 17";
  NormalizedStatement n = Normalize(sql);
  ASSERT_EQ(n.literals.size(), 2u);
  EXPECT_EQ(sql.substr(n.literals[0].offset, n.literals[0].length), "'xyz'");
  EXPECT_EQ(sql.substr(n.literals[1].offset, n.literals[1].length), "17");
  EXPECT_EQ(n.literals[0].kind, Literal::Kind::kString);
  EXPECT_EQ(n.literals[1].kind, Literal::Kind::kInteger);
}

TEST(Normalize, IntegerLiteralsCarryTheirValueWhenItFitsABigint) {
  NormalizedStatement n = Normalize(
      "SELECT 0, 007, 9223372036854775807, 9223372036854775808, 1.5, '12', 1e3");
  ASSERT_EQ(n.literals.size(), 7u);
  EXPECT_TRUE(n.literals[0].has_int);
  EXPECT_EQ(n.literals[0].int_value, 0);
  EXPECT_TRUE(n.literals[1].has_int);
  EXPECT_EQ(n.literals[1].int_value, 7);
  EXPECT_TRUE(n.literals[2].has_int);
  EXPECT_EQ(n.literals[2].int_value, INT64_MAX);
  // Out of range: left to the readers' own parse (the planner's 22003, a numeric parameter).
  EXPECT_EQ(n.literals[3].kind, Literal::Kind::kInteger);
  EXPECT_FALSE(n.literals[3].has_int);
  for (size_t i = 4; i < n.literals.size(); ++i) EXPECT_FALSE(n.literals[i].has_int) << i;
}

// The offsets libpg_query's scanner reports for ICONST/FCONST/SCONST tokens.
std::set<int> ScannerLiteralOffsets(const std::string& sql) {
  std::set<int> out;
  PgQueryScanResult r = pg_query_scan(sql.c_str());
  if (r.error == nullptr) {
    PgQuery__ScanResult* s = pg_query__scan_result__unpack(
        nullptr, r.pbuf.len, reinterpret_cast<const uint8_t*>(r.pbuf.data));
    for (size_t i = 0; s != nullptr && i < s->n_tokens; ++i) {
      PgQuery__Token t = s->tokens[i]->token;
      if (t == PG_QUERY__TOKEN__ICONST || t == PG_QUERY__TOKEN__FCONST ||
          t == PG_QUERY__TOKEN__SCONST) {
        out.insert(s->tokens[i]->start);
      }
    }
    if (s != nullptr) pg_query__scan_result__free_unpacked(s, nullptr);
  }
  pg_query_free_scan_result(r);
  return out;
}

TEST(Normalize, AgreesWithLibpgQueryScanner) {
  const char* corpus[] = {
      "SELECT * FROM users WHERE id = 42",
      "SELECT * FROM users WHERE id IN (1, 2, 3) AND name = 'bob' OR x > 1.5e3",
      "INSERT INTO t (a, b, c) VALUES (1, 'x', 2.5), (-4, E'y\\'z', $$q$$)",
      "UPDATE t SET a = 'it''s', b = b + 1 WHERE id = $1 AND c <> 0",
      "SELECT a FROM t ORDER BY 1 DESC LIMIT 10 OFFSET 20",
      "SELECT count(*) FROM t /* 'not a literal' 5 */ WHERE k = ANY('{1,2}')",
      "SELECT \"weird 'name'\", t.c1 FROM t -- 99\n WHERE t.c2 = 0.5",
      "WITH x AS (SELECT 1 AS a) SELECT a + 2 FROM x WHERE a < 100",
      "SELECT $tag$ body ' with quote $tag$, 7",
      "SELECT arr[1], arr[2:3] FROM t WHERE z BETWEEN 1 AND 10",
      "DELETE FROM t WHERE id = 123456789012 RETURNING *",
      "SELECT 'multi'\n'line', 3",
  };
  for (const char* sql : corpus) {
    NormalizedStatement n = Normalize(sql);
    std::set<int> ours;
    for (const Literal& l : n.literals) ours.insert(static_cast<int>(l.offset));
    EXPECT_EQ(ours, ScannerLiteralOffsets(sql)) << sql;
  }
}

}  // namespace
}  // namespace shardgate::routing
