// The analysis cache: one parse per statement shape, literals re-applied, pins respected,
// statements whose normalized form does not parse, and the LRU bound.
#include "routing/analysis_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::HasSqlState;

TEST(AnalysisCache, SameShapeIsParsedOnce) {
  AnalysisCache cache;
  auto a = cache.Analyze("SELECT * FROM users WHERE id = 1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->hit);
  ASSERT_EQ(a->literals.size(), 1u);
  EXPECT_EQ(a->literals[0].value, "1");
  auto first = a->analysis;
  auto b = cache.Analyze("SELECT * FROM users WHERE id = 987 /* different comment */");
  ASSERT_TRUE(b.ok());
  auto c = cache.Analyze("SELECT * FROM users WHERE id = 987");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->hit);
  EXPECT_EQ(c->analysis.get(), first.get());
  ASSERT_EQ(c->literals.size(), 1u);
  EXPECT_EQ(c->literals[0].value, "987");
  EXPECT_EQ(cache.hits(), 1u);
}

TEST(AnalysisCache, PinnedLiteralsMustMatch) {
  AnalysisCache cache;
  auto a = cache.Analyze("SELECT a, b FROM t ORDER BY 1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->analysis->statements[0].merge.order_by[0].position, 1);
  auto b = cache.Analyze("SELECT a, b FROM t ORDER BY 2");
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->hit);  // same normalized text, different ORDER BY position
  EXPECT_EQ(b->analysis->statements[0].merge.order_by[0].position, 2);
  auto c = cache.Analyze("SELECT a, b FROM t ORDER BY 2");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->hit);
}

TEST(AnalysisCache, UnnormalizableShapesAreAnalysedAsWritten) {
  AnalysisCache cache;
  // `DELIMITER $1` is not valid SQL, so the shape is remembered as "exact".
  auto a = cache.Analyze("COPY t (a) FROM STDIN WITH (DELIMITER ';')");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->analysis->statements[0].copy->delimiter, ";");
  EXPECT_TRUE(a->literals.empty());
  auto b = cache.Analyze("COPY t (a) FROM STDIN WITH (DELIMITER ';')");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->hit);
  auto c = cache.Analyze("COPY t (a) FROM STDIN WITH (DELIMITER '|')");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->hit);
  EXPECT_EQ(c->analysis->statements[0].copy->delimiter, "|");
}

TEST(AnalysisCache, ErrorsAreThoseOfTheStatementAsWritten) {
  AnalysisCache cache;
  EXPECT_THAT(cache.Analyze("SELEC 1"), HasSqlState("42601"));
  EXPECT_THAT(cache.Analyze("SELECT 'open"), HasSqlState("42601"));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(AnalysisCache, BoundedByCapacity) {
  AnalysisCache cache(3);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(cache.Analyze("SELECT * FROM t" + std::to_string(i) + " WHERE id = 1").ok());
  }
  EXPECT_EQ(cache.size(), 3u);
  // The most recent shapes survive.
  auto recent = cache.Analyze("SELECT * FROM t9 WHERE id = 5");
  ASSERT_TRUE(recent.ok());
  EXPECT_TRUE(recent->hit);
  auto old = cache.Analyze("SELECT * FROM t0 WHERE id = 5");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->hit);
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
}

TEST(AnalysisCache, PrepareOwnsItsLiterals) {
  AnalysisCache cache;
  auto p = cache.Prepare("SELECT * FROM users WHERE id = $1 AND kind = 'x'");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->literals.size(), 1u);
  EXPECT_EQ(p->literals[0].value, "x");
  // Later calls reuse the cache's buffers; the prepared copy stays valid.
  ASSERT_TRUE(cache.Analyze("SELECT 42").ok());
  EXPECT_EQ(p->literals[0].value, "x");
  EXPECT_EQ(p->analysis->max_param, 1);
}

TEST(AnalysisCache, ClientParameterAndLiteralShapesDoNotCollide) {
  AnalysisCache cache;
  auto lit = cache.Analyze("SELECT * FROM t WHERE a = $1 AND b = 5");
  auto par = cache.Analyze("SELECT * FROM t WHERE a = $1 AND b = $2");
  ASSERT_TRUE(lit.ok() && par.ok());
  EXPECT_FALSE(par->hit);
  const KeyConstraint& k = par->analysis->statements[0].keys[1];
  EXPECT_EQ(k.values[0].source, ValueRef::Source::kParam);
  EXPECT_EQ(k.values[0].index, 2);
}

TEST(AnalysisCache, HugeStatementsAreNotCached) {
  AnalysisCache cache;
  std::string sql = "SELECT 1";
  while (sql.size() <= AnalysisCache::kMaxCachedLength) sql += ", 1";
  ASSERT_TRUE(cache.Analyze(sql).ok());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(AnalysisCache, DeepExpressionsAreRefusedBeforeParsing) {
  // A left-deep chain makes libprotobuf-c's decoder quadratic (and deep recursion): refused.
  AnalysisCache cache;
  std::string chain = "SELECT 1";
  for (int i = 0; i < 20000; ++i) chain += " + 1";
  EXPECT_THAT(cache.Analyze(chain), HasSqlState("54001"));
  EXPECT_THAT(Analyze(chain), HasSqlState("54001"));
  std::string parens = "SELECT " + std::string(5000, '(') + "1" + std::string(5000, ')');
  EXPECT_THAT(cache.Analyze(parens), HasSqlState("54001"));
  // Long flat lists are fine.
  std::string wide = "SELECT * FROM t WHERE a = 1";
  for (int i = 0; i < 3000; ++i) wide += " AND a = " + std::to_string(i);
  EXPECT_TRUE(cache.Analyze(wide).ok());
}

}  // namespace
}  // namespace shardgate::routing
