// PlanMerge: the exact SQL each shard runs (libpg_query's deparse spelling) and the merge plan,
// for sorting, LIMIT/OFFSET, aggregates, GROUP BY, HAVING and UNION; the refusals (0A000) of
// what cannot be merged exactly; InsertWithRows' subsets of a multi-row INSERT.
#include "routing/merge_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "protocol/status.h"
#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::HasSqlState;
using ::testing::HasSubstr;

std::string RenderValue(const MergeValue& v) {
  if (v.param > 0) return "$" + std::to_string(v.param);
  return v.null ? "NULL" : v.text;
}

std::string RenderHaving(const HavingExpr& h) {
  auto operand = [](const HavingExpr::Operand& o) {
    return o.column >= 0 ? "c" + std::to_string(o.column) : RenderValue(o.value);
  };
  auto list = [](const std::string& name, const std::vector<HavingExpr>& args) {
    std::string s = name + "(";
    for (size_t i = 0; i < args.size(); ++i) s += (i ? ", " : "") + RenderHaving(args[i]);
    return s + ")";
  };
  switch (h.kind) {
    case HavingExpr::Kind::kAnd:
      return list("and", h.args);
    case HavingExpr::Kind::kOr:
      return list("or", h.args);
    case HavingExpr::Kind::kNot:
      return list("not", h.args);
    case HavingExpr::Kind::kCompare:
      return operand(h.operands[0]) + " " + h.op + " " + operand(h.operands[1]);
    case HavingExpr::Kind::kIsNull:
      return operand(h.operands[0]) + " is null";
    case HavingExpr::Kind::kIsNotNull:
      return operand(h.operands[0]) + " is not null";
  }
  return "?";
}

std::string RoleName(const MergeColumn& c) {
  switch (c.role) {
    case MergeColumn::Role::kPlain:
      return "plain";
    case MergeColumn::Role::kCount:
      return "count";
    case MergeColumn::Role::kSum:
      return "sum";
    case MergeColumn::Role::kMin:
      return "min";
    case MergeColumn::Role::kMax:
      return "max";
    case MergeColumn::Role::kAvg:
      return "avg/c" + std::to_string(c.count_column);
  }
  return "?";
}

// One line for everything but shard_sql, e.g.
// "2+1 agg[plain,avg/c2,count] group[0] order[1 desc nf] limit=5 having(c1 > 2)".
std::string Render(const MergePlan& p) {
  std::string s = std::to_string(p.visible_columns) + "+" + std::to_string(p.hidden_columns);
  if (p.aggregate) {
    s += " agg[";
    for (size_t i = 0; i < p.columns.size(); ++i) s += (i ? "," : "") + RoleName(p.columns[i]);
    s += "]";
    if (!p.group_columns.empty()) {
      s += " group[";
      for (size_t i = 0; i < p.group_columns.size(); ++i) {
        s += (i ? "," : "") + std::to_string(p.group_columns[i]);
      }
      s += "]";
    }
  } else if (!p.columns.empty() || !p.group_columns.empty() || p.having) {
    s += " NOT-AGGREGATE-BUT-HAS-AGGREGATE-FIELDS";
  }
  if (!p.order_by.empty()) {
    s += " order[";
    for (size_t i = 0; i < p.order_by.size(); ++i) {
      const MergeSortKey& k = p.order_by[i];
      s += (i ? "," : "") + std::to_string(k.column) + (k.descending ? " desc" : "") +
           (k.nulls_first ? " nf" : "");
    }
    s += "]";
  }
  if (p.limit) s += " limit=" + RenderValue(*p.limit);
  if (p.offset) s += " offset=" + RenderValue(*p.offset);
  if (p.distinct) s += " distinct";
  if (p.having) s += " having " + RenderHaving(*p.having);
  return s;
}

struct PlanCase {
  std::string sql;
  std::string shard_sql;  // "=" : the input unchanged
  std::string plan;       // Render()
};
void PrintTo(const PlanCase& c, std::ostream* os) { *os << c.sql; }

class Plans : public ::testing::TestWithParam<PlanCase> {};

TEST_P(Plans, ShardSqlAndPlan) {
  const PlanCase& c = GetParam();
  auto p = PlanMerge(c.sql);
  ASSERT_OK(p);
  EXPECT_EQ(p->shard_sql, c.shard_sql == "=" ? c.sql : c.shard_sql);
  EXPECT_EQ(Render(*p), c.plan);
}

INSTANTIATE_TEST_SUITE_P(
    Plain, Plans,
    ::testing::Values(
        PlanCase{"SELECT * FROM t", "=", "-1+0"},
        PlanCase{"select id, name from t where id > 5", "=", "2+0"},
        PlanCase{"SELECT id, name FROM t ORDER BY 2 DESC, id", "=", "2+0 order[1 desc nf,0]"},
        PlanCase{"SELECT id AS k FROM t ORDER BY k NULLS FIRST", "=", "1+0 order[0 nf]"},
        PlanCase{"SELECT id, name FROM t ORDER BY name DESC NULLS LAST", "=", "2+0 order[1 desc]"},
        // An output name wins over an input column of the same name, as in PostgreSQL.
        PlanCase{"SELECT b AS a, a AS b FROM t ORDER BY a", "=", "2+0 order[0]"},
        // A column the select list shows under another name.
        PlanCase{"SELECT a AS x, b FROM t ORDER BY a", "=", "2+0 order[0]"},
        PlanCase{"SELECT t.id, name FROM t ORDER BY id", "=", "2+0 order[0]"},
        PlanCase{"SELECT id, lower(name) FROM t ORDER BY lower(name)", "=", "2+0 order[1]"},
        PlanCase{"SELECT id, name FROM t ORDER BY lower(name)",
                 "SELECT id, name, lower(name) AS sg_o1 FROM t ORDER BY lower(name)",
                 "2+1 order[2]"},
        PlanCase{"SELECT id FROM t ORDER BY b DESC, lower(name), b",
                 "SELECT id, b AS sg_o1, lower(name) AS sg_o2 FROM t ORDER BY b DESC, "
                 "lower(name), b",
                 "1+2 order[1 desc nf,2,1]"},
        PlanCase{"SELECT * FROM t ORDER BY b", "SELECT *, b AS sg_o1 FROM t ORDER BY b",
                 "-1+1 order[-1]"},  // the first hidden column, wherever * ends
        PlanCase{"SELECT * FROM t t1 ORDER BY t1.b DESC",
                 "SELECT *, t1.b AS sg_o1 FROM t t1 ORDER BY t1.b DESC", "-1+1 order[-1 desc nf]"},
        PlanCase{"SELECT * FROM t ORDER BY 3", "=", "-1+0 order[2]"},
        PlanCase{"SELECT DISTINCT a, b FROM t ORDER BY a", "=", "2+0 order[0] distinct"},
        PlanCase{"SELECT a FROM t ORDER BY 'x'", "=", "1+0"}));

INSTANTIATE_TEST_SUITE_P(
    LimitOffset, Plans,
    ::testing::Values(
        PlanCase{"SELECT a FROM t LIMIT 10", "=", "1+0 limit=10"},
        PlanCase{"SELECT a FROM t ORDER BY a LIMIT 10 OFFSET 5",
                 "SELECT a FROM t ORDER BY a LIMIT (10 + 5)", "1+0 order[0] limit=10 offset=5"},
        PlanCase{"SELECT a FROM t LIMIT $1 OFFSET $2",
                 "SELECT a FROM t LIMIT ($1::bigint + $2::bigint)", "1+0 limit=$1 offset=$2"},
        PlanCase{"SELECT a FROM t LIMIT $2 OFFSET 3", "SELECT a FROM t LIMIT ($2::bigint + 3)",
                 "1+0 limit=$2 offset=3"},
        PlanCase{"SELECT a FROM t LIMIT '10' OFFSET '5'",
                 "SELECT a FROM t LIMIT ('10'::bigint + '5'::bigint)", "1+0 limit=10 offset=5"},
        PlanCase{"SELECT a FROM t OFFSET 5", "SELECT a FROM t", "1+0 offset=5"},
        // A parameter only the lifted OFFSET used stays referenced (Bind still sends it).
        PlanCase{"SELECT a FROM t LIMIT ALL OFFSET $1",
                 "SELECT a, $1::pg_catalog.text AS sg_p1 FROM t LIMIT ALL", "1+1 offset=$1"},
        PlanCase{"SELECT a FROM t LIMIT NULL", "=", "1+0"},
        PlanCase{"SELECT a FROM t LIMIT 4 OFFSET NULL", "SELECT a FROM t LIMIT 4", "1+0 limit=4"},
        PlanCase{"SELECT a FROM t LIMIT -1", "=", "1+0 limit=-1"},
        PlanCase{"SELECT a FROM t LIMIT 3::bigint", "=", "1+0 limit=3"},
        PlanCase{"SELECT a FROM t ORDER BY a FETCH FIRST 3 ROWS ONLY", "=", "1+0 order[0] limit=3"},
        PlanCase{"SELECT a FROM t ORDER BY a OFFSET 2 ROWS FETCH FIRST 3 ROWS ONLY",
                 "SELECT a FROM t ORDER BY a LIMIT (3 + 2)", "1+0 order[0] limit=3 offset=2"},
        PlanCase{"SELECT a FROM t LIMIT 99999999999 OFFSET 1",
                 "SELECT a FROM t LIMIT ((99999999999)::bigint + 1)",
                 "1+0 limit=99999999999 offset=1"}));

INSTANTIATE_TEST_SUITE_P(
    Aggregates, Plans,
    ::testing::Values(
        PlanCase{"SELECT count(*) FROM t", "=", "1+0 agg[count]"},
        PlanCase{"SELECT count(*), sum(x), min(x), max(y), count(x) FROM t WHERE y > 0", "=",
                 "5+0 agg[count,sum,min,max,count]"},
        PlanCase{"SELECT min(DISTINCT x), max(x) FILTER (WHERE x > 0) FROM t", "=",
                 "2+0 agg[min,max]"},
        PlanCase{"SELECT a, avg(x) FROM t GROUP BY a",
                 "SELECT a, sum(x) AS avg, count(x) AS sg_c1 FROM t GROUP BY a",
                 "2+1 agg[plain,avg/c2,count] group[0]"},
        PlanCase{"SELECT avg(x) AS m, avg(y) FROM t",
                 "SELECT sum(x) AS m, sum(y) AS avg, count(x) AS sg_c1, count(y) AS sg_c2 FROM t",
                 "2+2 agg[avg/c2,avg/c3,count,count]"},
        PlanCase{"SELECT pg_catalog.avg(x) FILTER (WHERE x > 0) FROM t",
                 "SELECT pg_catalog.sum(x) FILTER (WHERE x > 0) AS avg, pg_catalog.count(x) "
                 "FILTER (WHERE x > 0) AS sg_c1 FROM t",
                 "1+1 agg[avg/c1,count]"},
        // LIMIT/OFFSET apply to merged groups: the shards return all of theirs.
        PlanCase{"SELECT a, count(*) FROM t GROUP BY a ORDER BY 2 DESC LIMIT 10 OFFSET 5",
                 "SELECT a, count(*) FROM t GROUP BY a ORDER BY 2 DESC",
                 "2+0 agg[plain,count] group[0] order[1 desc nf] limit=10 offset=5"},
        PlanCase{"SELECT a, count(*) FROM t GROUP BY a FETCH FIRST 2 ROWS ONLY",
                 "SELECT a, count(*) FROM t GROUP BY a", "2+0 agg[plain,count] group[0] limit=2"},
        PlanCase{"SELECT a AS k, b, sum(x) FROM t GROUP BY b, 1", "=",
                 "3+0 agg[plain,plain,sum] group[1,0]"},
        PlanCase{"SELECT lower(a) AS k, count(*) FROM t GROUP BY k", "=",
                 "2+0 agg[plain,count] group[0]"},
        PlanCase{"SELECT lower(a), count(*) FROM t GROUP BY lower(a)", "=",
                 "2+0 agg[plain,count] group[0]"},
        PlanCase{"SELECT count(*) FROM t GROUP BY lower(a)",
                 "SELECT count(*), lower(a) AS sg_g1 FROM t GROUP BY lower(a)",
                 "1+1 agg[count,plain] group[1]"},
        PlanCase{"SELECT sum(x) FROM t GROUP BY a, b",
                 "SELECT sum(x), a AS sg_g1, b AS sg_g2 FROM t GROUP BY a, b",
                 "1+2 agg[sum,plain,plain] group[1,2]"},
        PlanCase{"SELECT a, count(*) FROM t GROUP BY a ORDER BY sum(x) DESC",
                 "SELECT a, count(*), sum(x) AS sg_o1 FROM t GROUP BY a ORDER BY sum(x) DESC",
                 "2+1 agg[plain,count,sum] group[0] order[2 desc nf]"},
        PlanCase{"SELECT a FROM t GROUP BY a ORDER BY avg(x)",
                 "SELECT a, sum(x) AS sg_o1, count(x) AS sg_c2 FROM t GROUP BY a ORDER BY avg(x)",
                 "1+2 agg[plain,avg/c2,count] group[0] order[1]"},
        PlanCase{"SELECT a, avg(x) AS m FROM t GROUP BY a ORDER BY m DESC, a",
                 "SELECT a, sum(x) AS m, count(x) AS sg_c1 FROM t GROUP BY a ORDER BY m DESC, a",
                 "2+1 agg[plain,avg/c2,count] group[0] order[1 desc nf,0]"},
        PlanCase{"SELECT DISTINCT count(*) FROM t GROUP BY a",
                 "SELECT DISTINCT count(*), a AS sg_g1 FROM t GROUP BY a",
                 "1+1 agg[count,plain] group[1] distinct"},
        PlanCase{"SELECT a, count(*) FROM t GROUP BY a, a", "=", "2+0 agg[plain,count] group[0]"}));

INSTANTIATE_TEST_SUITE_P(
    Having, Plans,
    ::testing::Values(
        PlanCase{"SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1",
                 "SELECT a, count(*) FROM t GROUP BY a",
                 "2+0 agg[plain,count] group[0] having c1 > 1"},
        PlanCase{"SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1 AND sum(y) <= -3",
                 "SELECT a, count(*), sum(y) AS sg_h1 FROM t GROUP BY a",
                 "2+1 agg[plain,count,sum] group[0] having and(c1 > 1, c2 <= -3)"},
        PlanCase{"SELECT a, avg(x) AS m FROM t GROUP BY a HAVING avg(x) > 2.5 LIMIT 5",
                 "SELECT a, sum(x) AS m, count(x) AS sg_c1 FROM t GROUP BY a",
                 "2+1 agg[plain,avg/c2,count] group[0] limit=5 having c1 > 2.5"},
        PlanCase{"SELECT a FROM t GROUP BY a HAVING avg(x) <> $1",
                 "SELECT a, sum(x) AS sg_h1, count(x) AS sg_c2, $1::pg_catalog.text AS sg_p3 "
                 "FROM t GROUP BY a",
                 "1+3 agg[plain,avg/c2,count,plain] group[0] having c1 <> $1"},
        // count(x) reuses avg's hidden count.
        PlanCase{"SELECT a, avg(x) FROM t GROUP BY a HAVING count(x) != 0",
                 "SELECT a, sum(x) AS avg, count(x) AS sg_c1 FROM t GROUP BY a",
                 "2+1 agg[plain,avg/c2,count] group[0] having c2 <> 0"},
        PlanCase{"SELECT a, max(x) FROM t GROUP BY a HAVING NOT (a = 'k' OR max(x) IS NULL) "
                 "AND max(x) IS NOT NULL",
                 "SELECT a, max(x) FROM t GROUP BY a",
                 "2+0 agg[plain,max] group[0] having and(not(or(c0 = k, c1 is null)), "
                 "c1 is not null)"},
        PlanCase{"SELECT b, sum(x) FROM t GROUP BY b HAVING sum(x) BETWEEN -5 AND 10.5",
                 "SELECT b, sum(x) FROM t GROUP BY b",
                 "2+0 agg[plain,sum] group[0] having and(c1 >= -5, c1 <= 10.5)"},
        PlanCase{"SELECT b, sum(x) FROM t GROUP BY b HAVING sum(x) NOT BETWEEN $1 AND $2",
                 "SELECT b, sum(x), $1::pg_catalog.text AS sg_p1, $2::pg_catalog.text AS sg_p2 "
                 "FROM t GROUP BY b",
                 "2+2 agg[plain,sum,plain,plain] group[0] having or(c1 < $1, c1 > $2)"},
        PlanCase{"SELECT count(*) FROM t GROUP BY a, lower(b) HAVING a > 1 AND lower(b) = 'x'",
                 "SELECT count(*), a AS sg_g1, lower(b) AS sg_g2 FROM t GROUP BY a, lower(b)",
                 "1+2 agg[count,plain,plain] group[1,2] having and(c1 > 1, c2 = x)"},
        PlanCase{"SELECT count(*) FROM t GROUP BY a HAVING -(2) < count(*) AND 1 = 1 AND "
                 "NULL IS NULL AND '3'::int < count(*)",
                 "SELECT count(*), a AS sg_g1 FROM t GROUP BY a",
                 "1+1 agg[count,plain] group[1] having and(-2 < c0, 1 = 1, NULL is null, "
                 "3 < c0)"},
        PlanCase{"SELECT count(*) FROM t GROUP BY t.a HAVING a > 0",
                 "SELECT count(*), t.a AS sg_g1, a AS sg_h2 FROM t GROUP BY t.a",
                 "1+2 agg[count,plain,plain] group[1] having c2 > 0"},
        PlanCase{"SELECT count(*) FROM t HAVING count(*) > 0", "SELECT count(*) FROM t",
                 "1+0 agg[count] having c0 > 0"}));

INSTANTIATE_TEST_SUITE_P(
    SetOperations, Plans,
    ::testing::Values(
        PlanCase{"SELECT a FROM t UNION ALL SELECT b FROM u", "=", "1+0"},
        PlanCase{"SELECT a, b FROM t UNION SELECT c, d FROM u ORDER BY 2 DESC, a LIMIT 3", "=",
                 "2+0 order[1 desc nf,0] limit=3 distinct"},
        PlanCase{"SELECT a FROM t UNION ALL SELECT b FROM u LIMIT 3 OFFSET 1",
                 "SELECT a FROM t UNION ALL SELECT b FROM u LIMIT (3 + 1)", "1+0 limit=3 offset=1"},
        PlanCase{"SELECT a FROM t UNION ALL SELECT b FROM u UNION SELECT c FROM v", "=",
                 "1+0 distinct"},  // (t UNION ALL u) UNION v: duplicates removed in the end
        PlanCase{"SELECT DISTINCT a FROM t UNION SELECT b FROM u", "=", "1+0 distinct"},
        PlanCase{"VALUES (1, 'a'), (2, 'b') ORDER BY column2", "=", "2+0 order[1]"}));

TEST(PlanMerge, StarColumnsResolvedFromTheRowDescription) {
  auto p = PlanMerge("SELECT a, *, b FROM t ORDER BY a, 2, b, c DESC");
  ASSERT_OK(p);
  EXPECT_EQ(p->shard_sql, "SELECT a, *, b, b AS sg_o1, c AS sg_o2 FROM t ORDER BY a, 2, b, c DESC");
  EXPECT_EQ(Render(*p), "-1+2 order[0,1,-1,-2 desc nf]");
  MergePlan plan = *p;
  EXPECT_THAT(ResolveColumns(plan, 1), HasSqlState("0A000"));
  ASSERT_OK(ResolveColumns(plan, 7));  // a, three columns of t, b; then the two hidden
  EXPECT_EQ(Render(plan), "5+2 order[0,1,5,6 desc nf]");
  ASSERT_OK(ResolveColumns(plan, 99));  // known: unchanged
  EXPECT_EQ(plan.visible_columns, 5);
}

TEST(PlanMerge, UnionAllAroundUnion) {
  // Left-nested: (t UNION u) UNION ALL v. The inner UNION removes duplicates per shard only.
  auto p = PlanMerge("(SELECT a FROM t UNION SELECT b FROM u) UNION ALL SELECT c FROM v");
  EXPECT_THAT(p, HasSqlState("0A000"));
}

TEST(PlanMerge, AnalyzerParityForMixedUnion) {
  // PostgreSQL parses `A UNION B UNION ALL C` left to right, as (A UNION B) UNION ALL C.
  auto p = PlanMerge("SELECT a FROM t UNION SELECT b FROM u UNION ALL SELECT c FROM v");
  EXPECT_THAT(p, HasSqlState("0A000"));
}

struct RefusalCase {
  std::string sql;
  std::string sqlstate;
  std::string message;  // substring
};
void PrintTo(const RefusalCase& c, std::ostream* os) { *os << c.sql; }

class Refusals : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(Refusals, Refused) {
  const RefusalCase& c = GetParam();
  auto p = PlanMerge(c.sql);
  ASSERT_THAT(p, HasSqlState(c.sqlstate));
  EXPECT_THAT(std::string(p.status().message()), HasSubstr(c.message));
  if (c.sqlstate == "0A000") EXPECT_FALSE(shardgate::Hint(p.status()).empty());
}

INSTANTIATE_TEST_SUITE_P(
    Table, Refusals,
    ::testing::Values(
        RefusalCase{"SELECT 1; SELECT 2", "0A000", "more than one statement"},
        RefusalCase{"UPDATE t SET a = 1", "0A000", "other than SELECT"},
        RefusalCase{"SELEKT 1", "42601", "syntax error"},
        RefusalCase{"SELECT string_agg(a, ',') FROM t", "0A000",
                    "aggregate string_agg() is not supported across shards"},
        RefusalCase{"SELECT a, stddev(x) FROM t GROUP BY a", "0A000", "aggregate stddev()"},
        RefusalCase{"SELECT bool_and(x > 0) FROM t", "0A000", "aggregate bool_and()"},
        RefusalCase{"SELECT count(DISTINCT a) FROM t", "0A000", "count(DISTINCT ...)"},
        RefusalCase{"SELECT avg(DISTINCT a) FROM t", "0A000", "avg(DISTINCT ...)"},
        RefusalCase{"SELECT array_agg(a ORDER BY b) FROM t", "0A000", "array_agg()"},
        RefusalCase{"SELECT sum(a ORDER BY b) FROM t", "0A000", "sum() with ORDER BY"},
        RefusalCase{"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM t", "0A000",
                    "percentile_cont()"},
        RefusalCase{"SELECT count(*) + 1 FROM t", "0A000", "an aggregate inside an expression"},
        RefusalCase{"SELECT count(*)::int FROM t", "0A000", "inside an expression"},
        RefusalCase{"SELECT a FROM t GROUP BY a ORDER BY count(*) + 1", "0A000",
                    "inside an expression"},
        RefusalCase{"SELECT * FROM t GROUP BY id", "0A000", "SELECT * in an aggregate query"},
        RefusalCase{"SELECT a, row_number() OVER () FROM t", "0A000",
                    "window function row_number()"},
        RefusalCase{"SELECT a FROM t ORDER BY rank() OVER (ORDER BY b)", "0A000",
                    "window function rank()"},
        RefusalCase{"SELECT a FROM t WINDOW w AS (ORDER BY b)", "0A000", "WINDOW"},
        RefusalCase{"SELECT DISTINCT ON (a) a, b FROM t", "0A000", "DISTINCT ON"},
        RefusalCase{"SELECT a, count(*) FROM t GROUP BY ROLLUP (a)", "0A000", "GROUPING SETS"},
        RefusalCase{"SELECT a, count(*) FROM t GROUP BY GROUPING SETS ((a), ())", "0A000",
                    "GROUPING SETS"},
        RefusalCase{"SELECT a FROM t FOR UPDATE", "0A000", "FOR UPDATE"},
        RefusalCase{"SELECT a INTO x FROM t", "0A000", "SELECT INTO"},
        RefusalCase{"SELECT a FROM t ORDER BY a USING <", "0A000", "ORDER BY ... USING"},
        RefusalCase{"SELECT a FROM t ORDER BY a FETCH FIRST 3 ROWS WITH TIES", "0A000",
                    "WITH TIES"},
        RefusalCase{"SELECT a FROM t LIMIT 1 + 1", "0A000", "LIMIT with an expression"},
        RefusalCase{"SELECT a FROM t OFFSET (SELECT 1)", "0A000", "OFFSET with an expression"},
        RefusalCase{"SELECT a FROM t LIMIT -$1", "0A000", "LIMIT with an expression"},
        RefusalCase{"SELECT a FROM t ORDER BY 2", "42P10", "ORDER BY position 2"},
        RefusalCase{"SELECT a, count(*) FROM t GROUP BY 3", "42P10", "GROUP BY position 3"},
        RefusalCase{"SELECT a FROM t GROUP BY a HAVING count(*) IN (1, 2)", "0A000",
                    "HAVING with IN (...) is not supported across shards"},
        RefusalCase{"SELECT a FROM t GROUP BY a HAVING count(*) + 1 > 2", "0A000",
                    "HAVING with an aggregate inside an expression"},
        RefusalCase{"SELECT a FROM t GROUP BY a HAVING lower(a) = 'x'", "0A000",
                    "HAVING with function lower()"},
        RefusalCase{"SELECT a FROM t GROUP BY a HAVING count(*) > (SELECT 1)", "0A000",
                    "HAVING with a subquery"},
        RefusalCase{"SELECT a FROM t GROUP BY a HAVING bool_or(x > 0)", "0A000",
                    "HAVING with function bool_or()"},
        RefusalCase{"SELECT a FROM t GROUP BY a HAVING a LIKE 'x%'", "0A000", "HAVING with LIKE"},
        RefusalCase{"SELECT a FROM t GROUP BY a HAVING string_agg(b, ',') = 'x'", "0A000",
                    "aggregate string_agg()"},
        RefusalCase{"SELECT a FROM t INTERSECT SELECT a FROM u", "0A000", "INTERSECT/EXCEPT"},
        RefusalCase{"SELECT a FROM t EXCEPT ALL SELECT a FROM u", "0A000", "INTERSECT/EXCEPT"},
        RefusalCase{"SELECT count(*) FROM t UNION ALL SELECT count(*) FROM u", "0A000",
                    "an aggregate inside a UNION branch"},
        RefusalCase{"SELECT a FROM t UNION SELECT a FROM u GROUP BY a", "0A000",
                    "aggregate inside a UNION branch"},
        RefusalCase{"(SELECT a FROM t LIMIT 1) UNION ALL SELECT a FROM u", "0A000",
                    "LIMIT/OFFSET inside a UNION branch"},
        RefusalCase{"SELECT DISTINCT a FROM t UNION ALL SELECT a FROM u", "0A000",
                    "SELECT DISTINCT inside UNION ALL"},
        RefusalCase{"SELECT * FROM t UNION SELECT * FROM u ORDER BY id", "0A000",
                    "ORDER BY an expression or a column of *"}));

TEST(PlanMerge, DeepExpressionsAreRefusedNotCrashed) {
  std::string sql = "SELECT a FROM t GROUP BY a HAVING count(*) > ";
  for (int i = 0; i < 900; ++i) sql += "(";
  sql += "1";
  for (int i = 0; i < 900; ++i) sql += ")";
  // Parentheses leave no nodes: this is one constant, merged like any other.
  auto p = PlanMerge(sql);
  ASSERT_OK(p);
  EXPECT_EQ(Render(*p), "1+1 agg[plain,count] group[0] having c1 > 1");

  std::string nots = "SELECT a FROM t GROUP BY a HAVING ";
  for (int i = 0; i < 600; ++i) nots += "NOT ";
  nots += "count(*) > 1";
  EXPECT_THAT(PlanMerge(nots), HasSqlState("54001"));
}

// --- InsertWithRows ---------------------------------------------------------------------------

struct InsertCase {
  std::string sql;
  std::vector<int> rows;
  std::string expected;  // "=" : unchanged
};
void PrintTo(const InsertCase& c, std::ostream* os) { *os << c.sql; }

class Inserts : public ::testing::TestWithParam<InsertCase> {};

TEST_P(Inserts, KeepsRows) {
  const InsertCase& c = GetParam();
  auto s = InsertWithRows(c.sql, c.rows);
  ASSERT_OK(s);
  EXPECT_EQ(*s, c.expected == "=" ? c.sql : c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, Inserts,
    ::testing::Values(
        InsertCase{"INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
                   {0, 2},
                   "INSERT INTO t (a, b) VALUES (1, 'x'), (3, 'z')"},
        InsertCase{"INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')", {0, 1}, "="},
        InsertCase{"INSERT INTO t VALUES ($1, $2), ($3, $4), ($5, $6)",
                   {1},
                   "INSERT INTO t VALUES ($3, $4)"},
        InsertCase{"INSERT INTO t (a, b) VALUES ($1, 1), ($2, 2), ($3, 'x') RETURNING *",
                   {2},
                   "INSERT INTO t (a, b) VALUES ($3, 'x') RETURNING *"},
        InsertCase{"INSERT INTO s.t AS x (a, b) VALUES (1, 2), (3, 4) ON CONFLICT (a) DO UPDATE "
                   "SET b = excluded.b WHERE x.b < excluded.b RETURNING x.a, b + 1 AS c",
                   {1},
                   "INSERT INTO s.t AS x (a, b) VALUES (3, 4) ON CONFLICT (a) DO UPDATE SET b = "
                   "excluded.b WHERE x.b < excluded.b RETURNING x.a, b + 1 AS c"},
        InsertCase{"INSERT INTO t (a) VALUES (1), (DEFAULT), (3) ON CONFLICT DO NOTHING",
                   {0, 1},
                   "INSERT INTO t (a) VALUES (1), (DEFAULT) ON CONFLICT DO NOTHING"}));

TEST(InsertWithRows, RejectsBadInput) {
  std::vector<int> rows = {0};
  EXPECT_FALSE(InsertWithRows("SELECT 1", rows).ok());
  EXPECT_FALSE(InsertWithRows("INSERT INTO t SELECT * FROM u", rows).ok());
  std::vector<int> out_of_range = {2};
  EXPECT_FALSE(InsertWithRows("INSERT INTO t VALUES (1), (2)", out_of_range).ok());
  std::vector<int> unordered = {1, 0};
  EXPECT_FALSE(InsertWithRows("INSERT INTO t VALUES (1), (2)", unordered).ok());
  std::vector<int> none;
  EXPECT_FALSE(InsertWithRows("INSERT INTO t VALUES (1), (2)", none).ok());
  EXPECT_THAT(InsertWithRows("INSERT INTO", rows), HasSqlState("42601"));
}

TEST(InsertWithRows, RepeatedCallsOnTheSameText) {
  // Each call parses afresh and restores the tree before freeing it (run under ASan).
  const std::string sql = "INSERT INTO t VALUES (1), (2), (3), (4)";
  for (int i = 0; i < 4; ++i) {
    std::vector<int> rows = {i};
    auto s = InsertWithRows(sql, rows);
    ASSERT_OK(s);
    EXPECT_EQ(*s, "INSERT INTO t VALUES (" + std::to_string(i + 1) + ")");
  }
}

}  // namespace
}  // namespace shardgate::routing

namespace shardgate::routing {
namespace {

// Subqueries run on each shard separately: anything that needs all rows at once is refused
// (found through the differential check: a LIMIT in an IN (...) subquery answered per shard).
TEST(PlanMergeSubqueries, RefusedWhenTheyNeedEveryShardsRows) {
  for (const char* sql : {"SELECT id FROM t WHERE id IN (SELECT id FROM t LIMIT 1)",
                          "SELECT count(*) FROM (SELECT g FROM t GROUP BY g) s",
                          "SELECT id FROM t WHERE v > (SELECT avg(v) FROM t)",
                          "WITH x AS (SELECT DISTINCT g FROM t) SELECT * FROM x",
                          "SELECT id, (SELECT max(v) FROM u WHERE u.id = t.id) FROM t"}) {
    auto p = PlanMerge(sql);
    ASSERT_FALSE(p.ok()) << sql;
    EXPECT_EQ(SqlState(p.status()), "0A000") << sql;
    EXPECT_NE(std::string(p.status().message()).find("subquery"), std::string::npos) << sql;
  }
  for (const char* sql : {"SELECT id FROM t WHERE id IN (SELECT id FROM u WHERE u.v > 3)",
                          "SELECT s.id FROM (SELECT id FROM t WHERE v > 1) s ORDER BY 1"}) {
    EXPECT_TRUE(PlanMerge(sql).ok()) << sql << ": " << PlanMerge(sql).status();
  }
}

}  // namespace
}  // namespace shardgate::routing
