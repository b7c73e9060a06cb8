// The analyzer: kinds, tables, read/write, key values, joins and merge needs, as tables of
// statements with their expected analysis (rendered compactly).
#include "routing/analyzer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "routing/normalize.h"
#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::HasSqlState;

std::string Ref(const ValueRef& v) {
  std::string s;
  switch (v.source) {
    case ValueRef::Source::kParam: s = "p" + std::to_string(v.index); break;
    case ValueRef::Source::kLiteral: s = "l" + std::to_string(v.index); break;
    case ValueRef::Source::kConst: s = "c" + std::to_string(v.index); break;
    case ValueRef::Source::kNull: s = "null"; break;
    case ValueRef::Source::kDefault: s = "default"; break;
    case ValueRef::Source::kExpr: s = "expr"; break;
  }
  if (v.negate) s = "-" + s;
  if (v.array) s += "[]";
  return s;
}

std::string TableName(const QueryInfo& q, int t) {
  const TableRef& r = q.tables[t];
  return r.alias.empty() ? r.QualifiedName() : r.alias;
}

// "kind[ write(reason)] tables=a,b keys=a.id=l0|l1 joins=b.uid=a.id"
std::string Render(const QueryInfo& q) {
  std::string s(StatementKindName(q.kind));
  if (q.write) s += " write(" + q.write_reason + ")";
  s += " tables=";
  for (size_t i = 0; i < q.tables.size(); ++i) {
    s += (i ? "," : "") + q.tables[i].QualifiedName();
    if (q.tables[i].written) s += "*";
  }
  if (!q.keys.empty()) s += " keys=";
  for (size_t i = 0; i < q.keys.size(); ++i) {
    const KeyConstraint& k = q.keys[i];
    s += i ? " " : "";
    for (size_t t = 0; t < k.tables.size(); ++t) s += (t ? "|" : "") + TableName(q, k.tables[t]);
    s += "." + k.column + "=";
    for (size_t v = 0; v < k.values.size(); ++v) s += (v ? "|" : "") + Ref(k.values[v]);
  }
  if (!q.joins.empty()) s += " joins=";
  for (size_t i = 0; i < q.joins.size(); ++i) {
    const ColumnEquality& j = q.joins[i];
    s += (i ? " " : "") + TableName(q, j.table_a) + "." + j.column_a + "=" +
         TableName(q, j.table_b) + "." + j.column_b;
  }
  return s;
}

std::string Analyzed(const std::string& sql) {
  NormalizedStatement n = Normalize(sql);
  auto a = AnalyzeNormalized(n);
  if (!a.ok()) return "error " + std::string(a.status().message());
  std::string out;
  for (const QueryInfo& q : (*a)->statements) out += (out.empty() ? "" : "; ") + Render(q);
  return out;
}

struct Case {
  std::string sql;
  std::string expected;
};

class AnalyzeTable : public ::testing::TestWithParam<Case> {};

TEST_P(AnalyzeTable, Analyzes) { EXPECT_EQ(Analyzed(GetParam().sql), GetParam().expected); }

// Key extraction: literals are l<slot>, parameters p<n>, arrays [], negation -.
INSTANTIATE_TEST_SUITE_P(
    Keys, AnalyzeTable,
    ::testing::Values(
        Case{"SELECT * FROM users WHERE id = 42", "select tables=users keys=users.id=l0"},
        Case{"SELECT * FROM users WHERE 42 = id", "select tables=users keys=users.id=l0"},
        Case{"SELECT * FROM users WHERE id = $1", "select tables=users keys=users.id=p1"},
        Case{"SELECT * FROM users WHERE id = '42'::bigint",
             "select tables=users keys=users.id=l0"},
        Case{"SELECT * FROM users WHERE id::bigint = CAST($1 AS bigint)",
             "select tables=users keys=users.id=p1"},
        Case{"SELECT * FROM users WHERE id = -7", "select tables=users keys=users.id=-l0"},
        Case{"SELECT * FROM users WHERE id IN (1, 2, $1)",
             "select tables=users keys=users.id=l0|l1|p1"},
        Case{"SELECT * FROM users WHERE id = ANY('{1,2,3}')",
             "select tables=users keys=users.id=l0[]"},
        Case{"SELECT * FROM users WHERE id = ANY($1::bigint[])",
             "select tables=users keys=users.id=p1[]"},
        Case{"SELECT * FROM users WHERE id = ANY(ARRAY[1, 2])",
             "select tables=users keys=users.id=l0|l1"},
        Case{"SELECT * FROM users WHERE id = 1 AND name = 'x'",
             "select tables=users keys=users.id=l0 users.name=l1"},
        Case{"SELECT * FROM users WHERE (id = 1 OR id = 2) AND x > 0",
             "select tables=users keys=users.id=l0|l1"},
        Case{"SELECT * FROM users u WHERE u.id = 5", "select tables=users keys=u.id=l0"},
        Case{"SELECT * FROM public.users WHERE public.users.id = 5",
             "select tables=public.users keys=public.users.id=l0"}));

// Statements that must NOT be narrowed.
INSTANTIATE_TEST_SUITE_P(
    NotNarrowed, AnalyzeTable,
    ::testing::Values(
        Case{"SELECT * FROM users WHERE id = 1 OR name = 'x'", "select tables=users"},
        Case{"SELECT * FROM users WHERE lower(id) = 'x'", "select tables=users"},
        Case{"SELECT * FROM users WHERE id + 1 = 5", "select tables=users"},
        Case{"SELECT * FROM users WHERE id = 1 + 1", "select tables=users"},
        Case{"SELECT * FROM users WHERE NOT (id = 1)", "select tables=users"},
        Case{"SELECT * FROM users WHERE id <> 1", "select tables=users"},
        Case{"SELECT * FROM users WHERE id NOT IN (1, 2)", "select tables=users"},
        Case{"SELECT * FROM users WHERE id IN (1, random())", "select tables=users"},
        Case{"SELECT * FROM users WHERE id > 5", "select tables=users"},
        Case{"SELECT * FROM users WHERE id = (SELECT 1)", "select tables=users"},
        Case{"SELECT * FROM users WHERE id IS NULL OR id = 3", "select tables=users"},
        Case{"SELECT * FROM users WHERE id = ALL('{1}')", "select tables=users"}));

// Joins, subqueries and CTEs.
INSTANTIATE_TEST_SUITE_P(
    Joins, AnalyzeTable,
    ::testing::Values(
        Case{"SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 3",
             "select tables=users,orders keys=u.id=l0 joins=o.user_id=u.id"},
        Case{"SELECT * FROM users u, orders o WHERE o.user_id = u.id AND o.user_id = $1",
             "select tables=users,orders keys=o.user_id=p1 joins=o.user_id=u.id"},
        Case{"SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id AND o.user_id = 5",
             "select tables=users,orders joins=o.user_id=u.id"},
        Case{"SELECT * FROM users JOIN orders USING (id)",
             "select tables=users,orders joins=users.id=orders.id"},
        Case{"SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id) "
             "AND u.id = 9",
             "select tables=users,orders keys=u.id=l1 joins=o.user_id=u.id"},
        Case{"SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 5)",
             "select tables=users,orders joins=users.id=orders.user_id"},
        Case{"SELECT * FROM (SELECT * FROM users WHERE id = 4) s",
             "select tables=users keys=users.id=l0"},
        Case{"WITH x AS (SELECT * FROM users WHERE id = 4) SELECT * FROM x",
             "select tables=users keys=users.id=l0"},
        Case{"SELECT * FROM users u WHERE u.id = 1 AND EXISTS (SELECT 1 FROM orders o WHERE "
             "u.id = 2)",
             "select tables=users,orders keys=u.id=l0"},
        Case{"SELECT id FROM users WHERE id = 1 UNION ALL SELECT id FROM users WHERE id = 2",
             "select tables=users,users keys=users.id=l0 users.id=l1"}));

// Reads and writes.
INSTANTIATE_TEST_SUITE_P(
    ReadWrite, AnalyzeTable,
    ::testing::Values(
        Case{"SELECT 1", "select tables="},
        Case{"INSERT INTO users (id, name) VALUES (1, 'a')", "insert write(INSERT) tables=users*"},
        Case{"UPDATE users SET name = 'b' WHERE id = 2",
             "update write(UPDATE) tables=users* keys=users.id=l1"},
        Case{"DELETE FROM users WHERE id = ANY($1)",
             "delete write(DELETE) tables=users* keys=users.id=p1[]"},
        Case{"MERGE INTO users u USING staging s ON s.id = u.id WHEN MATCHED THEN DELETE",
             "merge write(MERGE) tables=users*,staging joins=s.id=u.id"},
        Case{"SELECT * FROM users WHERE id = 1 FOR UPDATE",
             "select write(FOR UPDATE) tables=users* keys=users.id=l0"},
        Case{"SELECT * FROM users FOR SHARE", "select write(FOR SHARE) tables=users*"},
        Case{"WITH d AS (DELETE FROM users WHERE id = 1 RETURNING *) SELECT * FROM d",
             "select write(data-modifying WITH) tables=users* keys=users.id=l0"},
        Case{"SELECT nextval('s')", "select write(nextval()) tables="},
        Case{"SELECT pg_advisory_lock(1)", "select write(pg_advisory_lock()) tables="},
        Case{"SELECT * FROM users WHERE id = (SELECT setval('s', 1))",
             "select write(setval()) tables=users"},
        Case{"CREATE TABLE t (k bigint)", "ddl write(CREATE TABLE) tables=t*"},
        Case{"TRUNCATE users", "ddl write(TRUNCATE) tables=users*"},
        Case{"COPY users (id, name) FROM STDIN", "copy_from write(COPY FROM) tables=users*"},
        Case{"COPY users TO STDOUT", "copy_to tables=users"},
        Case{"EXPLAIN SELECT * FROM users WHERE id = 1", "explain tables=users keys=users.id=l0"},
        Case{"EXPLAIN ANALYZE DELETE FROM users", "explain write(DELETE) tables=users*"},
        Case{"EXPLAIN DELETE FROM users", "explain tables=users*"},
        Case{"BEGIN", "transaction tables="},
        Case{"SET search_path = public", "set tables="},
        Case{"SHOW search_path", "show tables="},
        Case{"LISTEN ch", "utility tables="},
        Case{"NOTIFY ch", "utility write(NOTIFY) tables="},
        Case{"VACUUM users", "utility write(VACUUM) tables=users*"},
        Case{"SELECT 1; INSERT INTO t (k) VALUES (2)",
             "select tables=; insert write(INSERT) tables=t*"},
        Case{"", ""}));

TEST(Analyzer, ParseErrorsAre42601) {
  EXPECT_THAT(Analyze("SELEC 1"), HasSqlState("42601"));
  EXPECT_THAT(Analyze("SELECT * FROM"), HasSqlState("42601"));
  EXPECT_THAT(Analyze("SELECT 'unterminated"), HasSqlState("42601"));
}

TEST(Analyzer, InsertRows) {
  auto a = AnalyzeNormalized(Normalize(
      "INSERT INTO users (id, name) VALUES (1, 'a'), ($1, DEFAULT), (-3, lower('x'))"));
  ASSERT_TRUE(a.ok()) << a.status();
  const QueryInfo& q = (*a)->statements[0];
  ASSERT_TRUE(q.insert.has_value());
  EXPECT_THAT(q.insert->columns, ::testing::ElementsAre("id", "name"));
  ASSERT_EQ(q.insert->rows.size(), 3u);
  EXPECT_EQ(Ref(q.insert->rows[0][0]), "l0");
  EXPECT_EQ(Ref(q.insert->rows[1][0]), "p1");
  EXPECT_EQ(Ref(q.insert->rows[1][1]), "default");
  EXPECT_EQ(Ref(q.insert->rows[2][0]), "-l2");
  EXPECT_EQ(Ref(q.insert->rows[2][1]), "expr");
  auto sel = Analyze("INSERT INTO users (id) SELECT id FROM other");
  ASSERT_TRUE(sel.ok());
  EXPECT_TRUE((*sel)->statements[0].insert->from_select);
}

TEST(Analyzer, CopyOptions) {
  auto a = Analyze("COPY users (id, name) FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';')");
  ASSERT_TRUE(a.ok()) << a.status();
  const CopyInfo& c = *(*a)->statements[0].copy;
  EXPECT_TRUE(c.from);
  EXPECT_TRUE(c.stdio);
  EXPECT_EQ(c.format, "csv");
  EXPECT_TRUE(c.header);
  EXPECT_EQ(c.delimiter, ";");
  EXPECT_THAT(c.columns, ::testing::ElementsAre("id", "name"));
  auto file = Analyze("COPY users FROM '/tmp/x'");
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE((*file)->statements[0].copy->stdio);
}

TEST(Analyzer, MergeSpec) {
  auto a = AnalyzeNormalized(Normalize(
      "SELECT name, count(*), sum(total), avg(x) FROM orders GROUP BY name "
      "ORDER BY 2 DESC, name NULLS FIRST LIMIT 10 OFFSET $1"));
  ASSERT_TRUE(a.ok()) << a.status();
  const QueryInfo& q = (*a)->statements[0];
  const MergeSpec& m = q.merge;
  ASSERT_EQ(m.order_by.size(), 2u);
  EXPECT_EQ(m.order_by[0].position, 2);
  EXPECT_TRUE(m.order_by[0].descending);
  EXPECT_EQ(m.order_by[1].position, 1);
  EXPECT_EQ(m.order_by[1].nulls_first, true);
  ASSERT_TRUE(m.limit.has_value());
  EXPECT_EQ(Ref(*m.limit), "l1");
  EXPECT_EQ(Ref(*m.offset), "p1");
  ASSERT_EQ(m.aggregates.size(), 3u);
  EXPECT_EQ(m.aggregates[0].function, "count");
  EXPECT_TRUE(m.aggregates[0].star);
  EXPECT_EQ(m.aggregates[2].function, "avg");
  EXPECT_EQ(m.aggregates[2].position, 4);
  ASSERT_EQ(m.group_by.size(), 1u);
  EXPECT_EQ(m.group_by[0].position, 1);
  EXPECT_TRUE(q.fanout_blockers.empty());
  // ORDER BY 2 was a literal: the analysis is pinned to it.
  ASSERT_EQ(q.pinned_literals.size(), 1u);
  EXPECT_EQ(q.pinned_literals[0].second, "2");
}

struct BlockerCase {
  std::string sql;
  std::string blocker;  // substring of the first blocker, "" = none
};

class Blockers : public ::testing::TestWithParam<BlockerCase> {};

TEST_P(Blockers, Detects) {
  auto a = Analyze(GetParam().sql);
  ASSERT_TRUE(a.ok()) << a.status();
  const auto& b = (*a)->statements[0].fanout_blockers;
  if (GetParam().blocker.empty()) {
    EXPECT_TRUE(b.empty()) << b.front();
  } else {
    ASSERT_FALSE(b.empty());
    EXPECT_THAT(b.front(), ::testing::HasSubstr(GetParam().blocker));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, Blockers,
    ::testing::Values(
        BlockerCase{"SELECT DISTINCT ON (a) a, b FROM t", "DISTINCT ON"},
        BlockerCase{"SELECT a, row_number() OVER () FROM t", "window"},
        BlockerCase{"SELECT string_agg(a, ',') FROM t", "string_agg"},
        BlockerCase{"SELECT count(DISTINCT a) FROM t", "DISTINCT"},
        BlockerCase{"SELECT sum(a) / count(*) FROM t", "inside an expression"},
        BlockerCase{"SELECT a FROM t INTERSECT SELECT a FROM u", "INTERSECT"},
        BlockerCase{"SELECT a FROM t ORDER BY a FETCH FIRST 3 ROWS WITH TIES", "WITH TIES"},
        BlockerCase{"SELECT a, b FROM t ORDER BY b LIMIT 5", ""},
        BlockerCase{"SELECT DISTINCT a FROM t", ""},
        BlockerCase{"SELECT * FROM t ORDER BY b", ""},
        // HAVING and ORDER BY / GROUP BY expressions outside the select list are PlanMerge's
        // to check (hidden columns, HAVING evaluated by the proxy).
        BlockerCase{"SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1", ""},
        BlockerCase{"SELECT a FROM t ORDER BY lower(b)", ""},
        BlockerCase{"SELECT count(*) FROM t GROUP BY lower(a)", ""},
        BlockerCase{"SELECT min(a), max(a), count(a) FILTER (WHERE a > 0) FROM t", ""}));

TEST(Analyzer, ReadOnlyTransaction) {
  auto a = Analyze("START TRANSACTION READ ONLY");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->statements[0].txn, TxnOp::kBegin);
  EXPECT_TRUE((*a)->statements[0].read_only_txn);
  auto c = Analyze("COMMIT");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->statements[0].txn, TxnOp::kCommit);
}

TEST(Analyzer, DeepNestingIsAnErrorNotACrash) {
  std::string sql = "SELECT * FROM t WHERE ";
  for (int i = 0; i < 900; ++i) sql += "(id = 1 AND ";
  sql += "true";
  for (int i = 0; i < 900; ++i) sql += ")";
  auto a = Analyze(sql);
  // Either the parser's own depth limit or ours: an error, never a crash.
  if (!a.ok()) {
    EXPECT_FALSE(shardgate::SqlState(a.status()).empty());
  }
}

}  // namespace
}  // namespace shardgate::routing
