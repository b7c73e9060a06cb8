// Unit tests of the Merger: hand-built MergePlans, shard rows built with the encoder, and the
// DataRows it emits decoded back into strings.
#include "proxy/merge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "proxy/pg_value.h"
#include "tests/support/status_matchers.h"

namespace shardgate::proxy {
namespace {

using ::shardgate::testing::HasSqlState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Role = routing::MergeColumn::Role;
using Rows = std::vector<std::vector<std::string>>;

constexpr std::string_view kNull = "NULL";  // how a NULL value reads in Rows

protocol::FieldDescription Field(std::string_view name, uint32_t type, int16_t format = 0) {
  protocol::FieldDescription f;
  f.name = name;
  f.type_oid = type;
  f.type_size = type == oid::kInt8 ? 8 : type == oid::kInt4 ? 4 : -1;
  f.type_modifier = -1;
  f.format = format;
  return f;
}

// A RowDescription body (the encoder writes a whole message; its 5-byte header is stripped).
std::string Desc(std::initializer_list<protocol::FieldDescription> fields) {
  std::string out;
  protocol::AppendRowDescription(out, std::vector<protocol::FieldDescription>(fields));
  return out.substr(5);
}

// A DataRow body; "NULL" stands for a NULL value.
std::string Row(std::initializer_list<std::string_view> values) {
  std::vector<std::optional<std::string_view>> v;
  for (std::string_view s : values) {
    v.push_back(s == kNull ? std::nullopt : std::optional<std::string_view>(s));
  }
  std::string out;
  protocol::AppendDataRow(out, v);
  return out.substr(5);
}

// The DataRows in `out` (whole messages), decoded.
Rows Decode(std::string_view out) {
  Rows rows;
  while (!out.empty()) {
    EXPECT_GE(out.size(), 5u);
    EXPECT_EQ(out[0], 'D');
    const uint32_t len = (static_cast<uint8_t>(out[1]) << 24) |
                         (static_cast<uint8_t>(out[2]) << 16) |
                         (static_cast<uint8_t>(out[3]) << 8) | static_cast<uint8_t>(out[4]);
    auto row = protocol::ParseDataRow(out.substr(5, len - 4));
    EXPECT_OK(row);
    if (!row.ok()) return rows;
    std::vector<std::string> r;
    for (const auto& v : row->values) r.emplace_back(v ? *v : kNull);
    rows.push_back(std::move(r));
    out.remove_prefix(1 + len);
  }
  return rows;
}

// An 8-byte big-endian int8, as in binary format.
std::string Int8Bin(int64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[7 - i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)));
  return s;
}

routing::MergePlan Plan(int visible) {
  routing::MergePlan p;
  p.visible_columns = visible;
  return p;
}

routing::MergeSortKey Key(int column, bool descending = false, bool nulls_first = false) {
  return {column, descending, nulls_first};
}

// Describes every shard with `desc`.
void DescribeAll(Merger& m, int shards, const std::string& desc) {
  for (int s = 0; s < shards; ++s) ASSERT_OK(m.OnRowDescription(s, desc));
}

void DoneAll(Merger& m, int shards) {
  for (int s = 0; s < shards; ++s) m.OnShardDone(s);
}

Rows EmitAll(Merger& m) {
  std::string out;
  EXPECT_OK(m.Emit(out));
  return Decode(out);
}

// ---- Concatenation.

TEST(MergeConcat, RowsPassThroughWithOffsetAndLimit) {
  Merger m(Plan(1), 2, /*limit=*/3, /*offset=*/2);
  DescribeAll(m, 2, Desc({Field("a", oid::kInt4)}));
  ASSERT_OK(m.OnDataRow(0, Row({"1"})));
  ASSERT_OK(m.OnDataRow(1, Row({"2"})));
  ASSERT_OK(m.OnDataRow(0, Row({"3"})));
  EXPECT_FALSE(m.LimitReached());
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("3")));
  ASSERT_OK(m.OnDataRow(1, Row({"4"})));
  ASSERT_OK(m.OnDataRow(1, Row({"5"})));
  EXPECT_TRUE(m.LimitReached());
  ASSERT_OK(m.OnDataRow(0, Row({"6"})));  // discarded
  DoneAll(m, 2);
  EXPECT_FALSE(m.Finished());
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("4"), ElementsAre("5")));
  EXPECT_TRUE(m.Finished());
  EXPECT_EQ(m.rows_emitted(), 3);
}

TEST(MergeConcat, UnchangedRowsAreCopiedByteForByte) {
  Merger m(Plan(2), 1, std::nullopt, std::nullopt);
  DescribeAll(m, 1, Desc({Field("a", oid::kInt4), Field("b", oid::kText)}));
  const std::string row = Row({"1", kNull});
  ASSERT_OK(m.OnDataRow(0, row));
  std::string out;
  ASSERT_OK(m.Emit(out));
  std::string expected;
  protocol::AppendDataRow(expected, std::vector<std::optional<std::string_view>>{"1", {}});
  EXPECT_EQ(out, expected);
}

TEST(MergeConcat, HiddenColumnsAreDropped) {
  Merger m(Plan(1), 1, std::nullopt, std::nullopt);
  DescribeAll(m, 1, Desc({Field("a", oid::kInt4), Field("h", oid::kInt4)}));
  ASSERT_OK(m.OnDataRow(0, Row({"1", "9"})));
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("1")));
  const std::string client = m.ClientRowDescription();
  auto desc = protocol::ParseRowDescription(std::string_view(client).substr(5));
  ASSERT_OK(desc);
  ASSERT_EQ(desc->fields.size(), 1u);
  EXPECT_EQ(desc->fields[0].name, "a");
}

TEST(MergeConcat, DistinctRemovesDuplicatesAcrossShards) {
  routing::MergePlan plan = Plan(2);
  plan.distinct = true;
  Merger m(plan, 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, Desc({Field("a", oid::kInt4), Field("b", oid::kText)}));
  ASSERT_OK(m.OnDataRow(0, Row({"1", "x"})));
  ASSERT_OK(m.OnDataRow(1, Row({"1", "x"})));
  ASSERT_OK(m.OnDataRow(1, Row({"1", kNull})));
  ASSERT_OK(m.OnDataRow(0, Row({"1", kNull})));  // NULLs are not distinct from each other
  ASSERT_OK(m.OnDataRow(0, Row({"2", "x"})));
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m),
              ElementsAre(ElementsAre("1", "x"), ElementsAre("1", "NULL"), ElementsAre("2", "x")));
}

TEST(MergeConcat, FlowControlPerShard) {
  Merger m(Plan(1), 2, std::nullopt, std::nullopt, {.batch = 2});
  DescribeAll(m, 2, Desc({Field("a", oid::kInt4)}));
  ASSERT_OK(m.OnDataRow(0, Row({"1"})));
  EXPECT_TRUE(m.CanAccept(0));
  ASSERT_OK(m.OnDataRow(0, Row({"2"})));
  EXPECT_FALSE(m.CanAccept(0));
  EXPECT_TRUE(m.CanAccept(1));
  EXPECT_EQ(EmitAll(m).size(), 2u);
  EXPECT_TRUE(m.CanAccept(0));
}

TEST(MergeConcat, ZeroLimitIsReachedAtOnce) {
  Merger m(Plan(1), 1, 0, std::nullopt);
  DescribeAll(m, 1, Desc({Field("a", oid::kInt4)}));
  EXPECT_TRUE(m.LimitReached());
  ASSERT_OK(m.OnDataRow(0, Row({"1"})));
  m.OnShardDone(0);
  EXPECT_TRUE(EmitAll(m).empty());
  EXPECT_TRUE(m.Finished());
}

// ---- ORDER BY.

TEST(MergeOrderBy, MergesSortedStreamsWithOneEmptyShard) {
  routing::MergePlan plan = Plan(2);
  plan.order_by = {Key(0)};
  Merger m(plan, 3, std::nullopt, std::nullopt);
  DescribeAll(m, 3, Desc({Field("k", oid::kInt4), Field("s", oid::kText)}));
  ASSERT_OK(m.OnDataRow(0, Row({"1", "a0"})));
  ASSERT_OK(m.OnDataRow(0, Row({"5", "b0"})));
  ASSERT_OK(m.OnDataRow(1, Row({"2", "a1"})));
  // Shard 2 has said nothing yet: no head is known to be the smallest.
  EXPECT_TRUE(EmitAll(m).empty());
  m.OnShardDone(2);  // empty shard
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("1", "a0"), ElementsAre("2", "a1")));
  // Shard 1's queue is empty and it is not done: stop.
  ASSERT_OK(m.OnDataRow(1, Row({"10", "b1"})));
  m.OnShardDone(1);
  m.OnShardDone(0);
  EXPECT_FALSE(m.Finished());
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("5", "b0"), ElementsAre("10", "b1")));
  EXPECT_TRUE(m.Finished());
  EXPECT_EQ(m.rows_emitted(), 4);
}

TEST(MergeOrderBy, TiesGoToTheLowerShardFirst) {
  routing::MergePlan plan = Plan(2);
  plan.order_by = {Key(0)};
  Merger m(plan, 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, Desc({Field("k", oid::kInt4), Field("s", oid::kText)}));
  ASSERT_OK(m.OnDataRow(1, Row({"1", "s1"})));
  ASSERT_OK(m.OnDataRow(1, Row({"1", "s1b"})));
  ASSERT_OK(m.OnDataRow(0, Row({"1", "s0"})));
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m),
              ElementsAre(ElementsAre("1", "s0"), ElementsAre("1", "s1"), ElementsAre("1", "s1b")));
}

TEST(MergeOrderBy, NullsFirstAndLastDescending) {
  for (bool nulls_first : {false, true}) {
    routing::MergePlan plan = Plan(1);
    plan.order_by = {Key(0, /*descending=*/true, nulls_first)};
    Merger m(plan, 2, std::nullopt, std::nullopt);
    DescribeAll(m, 2, Desc({Field("k", oid::kInt4)}));
    // Each shard's stream is sorted as the shard sorts it.
    if (nulls_first) {
      ASSERT_OK(m.OnDataRow(0, Row({kNull})));
    }
    ASSERT_OK(m.OnDataRow(0, Row({"7"})));
    ASSERT_OK(m.OnDataRow(0, Row({"3"})));
    if (!nulls_first) {
      ASSERT_OK(m.OnDataRow(0, Row({kNull})));
    }
    ASSERT_OK(m.OnDataRow(1, Row({"5"})));
    ASSERT_OK(m.OnDataRow(1, Row({"-1"})));
    DoneAll(m, 2);
    Rows got = EmitAll(m);
    if (nulls_first) {
      EXPECT_THAT(got, ElementsAre(ElementsAre("NULL"), ElementsAre("7"), ElementsAre("5"),
                                   ElementsAre("3"), ElementsAre("-1")));
    } else {
      EXPECT_THAT(got, ElementsAre(ElementsAre("7"), ElementsAre("5"), ElementsAre("3"),
                                   ElementsAre("-1"), ElementsAre("NULL")));
    }
  }
}

TEST(MergeOrderBy, NullsLastAscending) {
  routing::MergePlan plan = Plan(1);
  plan.order_by = {Key(0)};
  Merger m(plan, 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, Desc({Field("k", oid::kInt8)}));
  ASSERT_OK(m.OnDataRow(0, Row({"2"})));
  ASSERT_OK(m.OnDataRow(0, Row({kNull})));
  ASSERT_OK(m.OnDataRow(1, Row({"1"})));
  ASSERT_OK(m.OnDataRow(1, Row({kNull})));
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("1"), ElementsAre("2"), ElementsAre("NULL"),
                                      ElementsAre("NULL")));
}

TEST(MergeOrderBy, IntegersOrderAsNumbersTextAsBytes) {
  for (uint32_t type : {oid::kInt4, oid::kText}) {
    routing::MergePlan plan = Plan(1);
    plan.order_by = {Key(0)};
    Merger m(plan, 2, std::nullopt, std::nullopt);
    DescribeAll(m, 2, Desc({Field("k", type)}));
    if (type == oid::kInt4) {
      ASSERT_OK(m.OnDataRow(0, Row({"9"})));
      ASSERT_OK(m.OnDataRow(0, Row({"100"})));
      ASSERT_OK(m.OnDataRow(1, Row({"10"})));
    } else {
      ASSERT_OK(m.OnDataRow(0, Row({"10"})));
      ASSERT_OK(m.OnDataRow(0, Row({"9"})));
      ASSERT_OK(m.OnDataRow(1, Row({"100"})));
    }
    DoneAll(m, 2);
    Rows got = EmitAll(m);
    if (type == oid::kInt4) {
      EXPECT_THAT(got, ElementsAre(ElementsAre("9"), ElementsAre("10"), ElementsAre("100")));
    } else {
      EXPECT_THAT(got, ElementsAre(ElementsAre("10"), ElementsAre("100"), ElementsAre("9")));
    }
  }
}

TEST(MergeOrderBy, BinaryFormatAndHiddenSortColumn) {
  routing::MergePlan plan = Plan(1);
  plan.order_by = {Key(1)};  // ORDER BY a column the client did not select
  Merger m(plan, 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, Desc({Field("s", oid::kText), Field("k", oid::kInt8, 1)}));
  ASSERT_OK(m.OnDataRow(0, Row({"minus", Int8Bin(-5)})));
  ASSERT_OK(m.OnDataRow(0, Row({"big", Int8Bin(300)})));
  ASSERT_OK(m.OnDataRow(1, Row({"small", Int8Bin(2)})));
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m),
              ElementsAre(ElementsAre("minus"), ElementsAre("small"), ElementsAre("big")));
}

TEST(MergeOrderBy, FlowControlAndLimit) {
  routing::MergePlan plan = Plan(1);
  plan.order_by = {Key(0)};
  Merger m(plan, 2, /*limit=*/2, /*offset=*/1, {.batch = 2});
  DescribeAll(m, 2, Desc({Field("k", oid::kInt4)}));
  ASSERT_OK(m.OnDataRow(0, Row({"1"})));
  ASSERT_OK(m.OnDataRow(0, Row({"2"})));
  EXPECT_FALSE(m.CanAccept(0));
  EXPECT_TRUE(m.CanAccept(1));
  EXPECT_TRUE(EmitAll(m).empty());  // shard 1 has not shown a row yet
  EXPECT_FALSE(m.CanAccept(0));
  ASSERT_OK(m.OnDataRow(1, Row({"3"})));
  // 1 (skipped by OFFSET), 2; shard 0 is then empty and not done.
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("2")));
  EXPECT_TRUE(m.CanAccept(0));
  ASSERT_OK(m.OnDataRow(0, Row({"4"})));
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("3")));
  EXPECT_TRUE(m.LimitReached());
  EXPECT_TRUE(m.CanAccept(0));
  ASSERT_OK(m.OnDataRow(1, Row({"5"})));  // discarded
  DoneAll(m, 2);
  EXPECT_TRUE(EmitAll(m).empty());
  EXPECT_TRUE(m.Finished());
  EXPECT_EQ(m.rows_emitted(), 2);
}

TEST(MergeOrderBy, TypeWithoutKnownOrderIs0A000) {
  routing::MergePlan plan = Plan(1);
  plan.order_by = {Key(0)};
  Merger m(plan, 1, std::nullopt, std::nullopt);
  auto st = m.OnRowDescription(0, Desc({Field("p", /*point=*/600)}));
  EXPECT_THAT(st, HasSqlState("0A000"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("600"));
}

// ---- Aggregates.

// SELECT g, count(*), sum(v), min(v), max(v), avg(v) GROUP BY g: the shards run
// g, count(*), sum(v), min(v), max(v), sum(v) AS avg, count(v) (hidden).
routing::MergePlan GroupPlan() {
  routing::MergePlan p = Plan(6);
  p.aggregate = true;
  p.group_columns = {0};
  p.columns.resize(7);
  p.columns[1].role = Role::kCount;
  p.columns[2].role = Role::kSum;
  p.columns[3].role = Role::kMin;
  p.columns[4].role = Role::kMax;
  p.columns[5].role = Role::kAvg;
  p.columns[5].count_column = 6;
  p.columns[6].role = Role::kCount;
  return p;
}

std::string GroupDesc() {
  return Desc({Field("g", oid::kText), Field("count", oid::kInt8), Field("sum", oid::kInt8),
               Field("min", oid::kInt4), Field("max", oid::kInt4), Field("avg", oid::kInt8),
               Field("count", oid::kInt8)});
}

TEST(MergeAggregate, GroupByCombinesPartials) {
  routing::MergePlan plan = GroupPlan();
  plan.order_by = {Key(0)};
  Merger m(plan, 3, std::nullopt, std::nullopt);
  DescribeAll(m, 3, GroupDesc());
  // Values 1, 2 in group a on shard 0; 3, 4 in a on shard 1; 5 in b on shard 1; NULL group.
  ASSERT_OK(m.OnDataRow(0, Row({"a", "2", "3", "1", "2", "3", "2"})));
  ASSERT_OK(m.OnDataRow(1, Row({"b", "1", "5", "5", "5", "5", "1"})));
  ASSERT_OK(m.OnDataRow(1, Row({"a", "2", "7", "3", "4", "7", "2"})));
  ASSERT_OK(m.OnDataRow(2, Row({kNull, "1", kNull, kNull, kNull, kNull, "0"})));
  ASSERT_OK(m.OnDataRow(0, Row({kNull, "2", "4", "4", "4", "4", "1"})));
  m.OnShardDone(0);
  m.OnShardDone(1);
  EXPECT_TRUE(EmitAll(m).empty());  // nothing before every shard is done
  m.OnShardDone(2);
  EXPECT_THAT(EmitAll(m),
              ElementsAre(ElementsAre("a", "4", "10", "1", "4", "2.5000000000000000"),
                          ElementsAre("b", "1", "5", "5", "5", "5.0000000000000000"),
                          ElementsAre("NULL", "3", "4", "4", "4", "4.0000000000000000")));
  EXPECT_TRUE(m.Finished());
}

TEST(MergeAggregate, AvgColumnIsDescribedAsNumeric) {
  Merger m(GroupPlan(), 1, std::nullopt, std::nullopt);
  DescribeAll(m, 1, GroupDesc());
  const std::string client = m.ClientRowDescription();
  auto desc = protocol::ParseRowDescription(std::string_view(client).substr(5));
  ASSERT_OK(desc);
  ASSERT_EQ(desc->fields.size(), 6u);
  EXPECT_EQ(desc->fields[5].name, "avg");
  EXPECT_EQ(desc->fields[5].type_oid, oid::kNumeric);
  EXPECT_EQ(desc->fields[5].type_size, -1);
  EXPECT_EQ(desc->fields[5].type_modifier, -1);
  EXPECT_EQ(desc->fields[1].type_oid, oid::kInt8);
}

TEST(MergeAggregate, AvgOverNoValuesIsNull) {
  Merger m(GroupPlan(), 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, GroupDesc());
  ASSERT_OK(m.OnDataRow(0, Row({"a", "1", kNull, kNull, kNull, kNull, "0"})));
  ASSERT_OK(m.OnDataRow(1, Row({"a", "1", kNull, kNull, kNull, kNull, "0"})));
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("a", "2", "NULL", "NULL", "NULL", "NULL")));
}

routing::MergePlan UngroupedPlan() {
  routing::MergePlan p = GroupPlan();
  p.group_columns.clear();
  p.columns.erase(p.columns.begin());
  p.columns[4].count_column = 5;
  p.visible_columns = 5;
  return p;
}

std::string UngroupedDesc() {
  return Desc({Field("count", oid::kInt8), Field("sum", oid::kInt8), Field("min", oid::kInt4),
               Field("max", oid::kInt4), Field("avg", oid::kInt8), Field("count", oid::kInt8)});
}

TEST(MergeAggregate, UngroupedIsOneRow) {
  Merger m(UngroupedPlan(), 3, std::nullopt, std::nullopt);
  DescribeAll(m, 3, UngroupedDesc());
  ASSERT_OK(m.OnDataRow(0, Row({"2", "3", "1", "2", "3", "2"})));
  ASSERT_OK(m.OnDataRow(1, Row({"0", kNull, kNull, kNull, kNull, "0"})));
  // Shard 2 sends no row at all.
  DoneAll(m, 3);
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("2", "3", "1", "2", "1.5000000000000000")));
}

TEST(MergeAggregate, UngroupedOverNothingCountsZero) {
  Merger m(UngroupedPlan(), 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, UngroupedDesc());
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("0", "NULL", "NULL", "NULL", "NULL")));
  EXPECT_TRUE(m.Finished());
}

TEST(MergeAggregate, BinarySums) {
  routing::MergePlan p = Plan(2);
  p.aggregate = true;
  p.group_columns = {0};
  p.columns.resize(2);
  p.columns[1].role = Role::kSum;
  Merger m(p, 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, Desc({Field("g", oid::kText), Field("sum", oid::kInt8, 1)}));
  ASSERT_OK(m.OnDataRow(0, Row({"x", Int8Bin(40)})));
  ASSERT_OK(m.OnDataRow(1, Row({"x", Int8Bin(2)})));
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("x", Int8Bin(42))));
}

// GROUP BY g with count (column 1) and sum (column 2); HAVING built per test.
class MergeHaving : public ::testing::Test {
 protected:
  using HavingExprOperand = routing::HavingExpr::Operand;

  static HavingExprOperand Col(int c) { return {c, {}}; }
  static HavingExprOperand Const(std::string text) {
    HavingExprOperand o;
    o.value.text = std::move(text);
    return o;
  }
  static HavingExprOperand Param(int n) {
    HavingExprOperand o;
    o.value.param = n;
    return o;
  }
  static routing::HavingExpr Cmp(HavingExprOperand a, std::string op, HavingExprOperand b) {
    routing::HavingExpr e;
    e.kind = routing::HavingExpr::Kind::kCompare;
    e.op = std::move(op);
    e.operands = {std::move(a), std::move(b)};
    return e;
  }
  static routing::HavingExpr Node(routing::HavingExpr::Kind kind,
                                  std::vector<routing::HavingExpr> args) {
    routing::HavingExpr e;
    e.kind = kind;
    e.args = std::move(args);
    return e;
  }
  static routing::HavingExpr IsNull(int column, bool negate = false) {
    routing::HavingExpr e;
    e.kind = negate ? routing::HavingExpr::Kind::kIsNotNull : routing::HavingExpr::Kind::kIsNull;
    e.operands = {Col(column)};
    return e;
  }

  // Groups: a (count 3, sum 30), b (count 1, sum NULL), c (count 5, sum 7); sorted by g.
  Rows Run(routing::HavingExpr having, std::vector<std::optional<std::string>> params = {}) {
    routing::MergePlan p = Plan(2);
    p.aggregate = true;
    p.group_columns = {0};
    p.columns.resize(3);
    p.columns[1].role = Role::kCount;
    p.columns[2].role = Role::kSum;
    p.order_by = {Key(0)};
    p.having = std::move(having);
    Merger m(p, 2, std::nullopt, std::nullopt);
    m.SetParams(std::move(params));
    DescribeAll(
        m, 2, Desc({Field("g", oid::kText), Field("count", oid::kInt8), Field("sum", oid::kInt8)}));
    EXPECT_OK(m.OnDataRow(0, Row({"a", "2", "10"})));
    EXPECT_OK(m.OnDataRow(1, Row({"a", "1", "20"})));
    EXPECT_OK(m.OnDataRow(1, Row({"b", "1", kNull})));
    EXPECT_OK(m.OnDataRow(0, Row({"c", "5", "7"})));
    DoneAll(m, 2);
    Rows rows;
    for (auto& r : EmitAll(m)) rows.push_back({r[0]});
    return rows;
  }
};

TEST_F(MergeHaving, CompareWithConstant) {
  EXPECT_THAT(Run(Cmp(Col(1), ">", Const("1"))), ElementsAre(ElementsAre("a"), ElementsAre("c")));
  EXPECT_THAT(Run(Cmp(Const("3"), "=", Col(1))), ElementsAre(ElementsAre("a")));
  EXPECT_THAT(Run(Cmp(Col(1), "<>", Const("3"))), ElementsAre(ElementsAre("b"), ElementsAre("c")));
}

TEST_F(MergeHaving, NullComparisonIsUnknown) {
  // sum(b) is NULL: b is in neither sum > 5 nor NOT (sum > 5).
  EXPECT_THAT(Run(Cmp(Col(2), ">", Const("5"))), ElementsAre(ElementsAre("a"), ElementsAre("c")));
  EXPECT_THAT(Run(Node(routing::HavingExpr::Kind::kNot, {Cmp(Col(2), ">", Const("10"))})),
              ElementsAre(ElementsAre("c")));
}

TEST_F(MergeHaving, AndOrWithUnknown) {
  using K = routing::HavingExpr::Kind;
  // b: unknown OR true = true; a: false OR... sum > 20 is true.
  EXPECT_THAT(Run(Node(K::kOr, {Cmp(Col(2), ">", Const("20")), Cmp(Col(1), "=", Const("1"))})),
              ElementsAre(ElementsAre("a"), ElementsAre("b")));
  // b: unknown AND true = unknown (dropped); c: true AND true.
  EXPECT_THAT(Run(Node(K::kAnd, {Cmp(Col(2), "<", Const("8")), Cmp(Col(1), ">=", Const("1"))})),
              ElementsAre(ElementsAre("c")));
  // NOT (unknown AND false) = NOT false = true for b.
  EXPECT_THAT(
      Run(Node(K::kNot,
               {Node(K::kAnd, {Cmp(Col(2), "<", Const("8")), Cmp(Col(1), ">", Const("1"))})})),
      ElementsAre(ElementsAre("a"), ElementsAre("b")));
}

TEST_F(MergeHaving, IsNullAndColumnComparisons) {
  EXPECT_THAT(Run(IsNull(2)), ElementsAre(ElementsAre("b")));
  EXPECT_THAT(Run(IsNull(2, /*negate=*/true)), ElementsAre(ElementsAre("a"), ElementsAre("c")));
  EXPECT_THAT(Run(Cmp(Col(2), ">", Col(1))), ElementsAre(ElementsAre("a"), ElementsAre("c")));
}

TEST_F(MergeHaving, Parameters) {
  EXPECT_THAT(Run(Cmp(Col(1), "<=", Param(1)), {"3"}),
              ElementsAre(ElementsAre("a"), ElementsAre("b")));
  EXPECT_THAT(Run(Cmp(Col(1), "<=", Param(1)), {std::nullopt}), ::testing::IsEmpty());
}

TEST(MergeAggregate, DistinctOrderByLimitOffsetAfterGrouping) {
  routing::MergePlan p = Plan(1);  // SELECT DISTINCT count(*) ... GROUP BY g ORDER BY 1 DESC
  p.aggregate = true;
  p.distinct = true;
  p.group_columns = {1};
  p.columns.resize(2);
  p.columns[0].role = Role::kCount;
  p.order_by = {Key(0, /*descending=*/true, /*nulls_first=*/true)};
  Merger m(p, 2, /*limit=*/2, /*offset=*/1);
  DescribeAll(m, 2, Desc({Field("count", oid::kInt8), Field("g", oid::kText)}));
  ASSERT_OK(m.OnDataRow(0, Row({"1", "a"})));
  ASSERT_OK(m.OnDataRow(1, Row({"4", "b"})));
  ASSERT_OK(m.OnDataRow(0, Row({"2", "c"})));
  ASSERT_OK(m.OnDataRow(1, Row({"1", "c"})));
  ASSERT_OK(m.OnDataRow(1, Row({"1", "d"})));
  ASSERT_OK(m.OnDataRow(0, Row({"5", "e"})));
  // Counts: a 1, b 4, c 3, d 1, e 5 -> distinct desc 5, 4, 3, 1 -> offset 1 limit 2: 4, 3.
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("4"), ElementsAre("3")));
  EXPECT_TRUE(m.LimitReached());
  EXPECT_TRUE(m.Finished());
}

TEST(MergeAggregate, MinMaxOfTypeWithoutOrderIs0A000) {
  routing::MergePlan p = Plan(1);
  p.aggregate = true;
  p.columns.resize(1);
  p.columns[0].role = Role::kMax;
  Merger m(p, 1, std::nullopt, std::nullopt);
  EXPECT_THAT(m.OnRowDescription(0, Desc({Field("p", 600)})), HasSqlState("0A000"));
}

TEST(MergeAggregate, FloatAvgIsFloat8AndTableIsNotFlowControlled) {
  routing::MergePlan p = Plan(1);  // SELECT avg(x): shards run sum(x), count(x)
  p.aggregate = true;
  p.columns.resize(2);
  p.columns[0].role = Role::kAvg;
  p.columns[0].count_column = 1;
  p.columns[1].role = Role::kCount;
  Merger m(p, 2, std::nullopt, std::nullopt, {.batch = 1});
  DescribeAll(m, 2, Desc({Field("avg", oid::kFloat8), Field("count", oid::kInt8)}));
  const std::string client = m.ClientRowDescription();
  auto desc = protocol::ParseRowDescription(std::string_view(client).substr(5));
  ASSERT_OK(desc);
  ASSERT_EQ(desc->fields.size(), 1u);
  EXPECT_EQ(desc->fields[0].type_oid, oid::kFloat8);
  EXPECT_EQ(desc->fields[0].type_size, 8);
  ASSERT_OK(m.OnDataRow(0, Row({"1", "1"})));
  EXPECT_TRUE(m.CanAccept(0));  // aggregates are bounded by max_memory, not by batch
  ASSERT_OK(m.OnDataRow(1, Row({"2", "1"})));
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("1.5")));
}

TEST(MergeAggregate, SumOverflowIs22003) {
  routing::MergePlan p = Plan(1);
  p.aggregate = true;
  p.columns.resize(1);
  p.columns[0].role = Role::kCount;
  Merger m(p, 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, Desc({Field("count", oid::kInt8)}));
  ASSERT_OK(m.OnDataRow(0, Row({"9223372036854775807"})));
  EXPECT_THAT(m.OnDataRow(1, Row({"1"})), HasSqlState("22003"));
}

TEST(MergeOrderBy, DistinctOverTheMergedStream) {
  routing::MergePlan plan = Plan(1);
  plan.order_by = {Key(0)};
  plan.distinct = true;
  Merger m(plan, 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, Desc({Field("k", oid::kText)}));
  for (const char* v : {"a", "b", "b"}) ASSERT_OK(m.OnDataRow(0, Row({v})));
  for (const char* v : {"a", "c"}) ASSERT_OK(m.OnDataRow(1, Row({v})));
  DoneAll(m, 2);
  EXPECT_THAT(EmitAll(m), ElementsAre(ElementsAre("a"), ElementsAre("b"), ElementsAre("c")));
}

// ---- Limits and errors.

TEST(MergeErrors, MemoryLimitIs54000) {
  routing::MergePlan p = Plan(2);
  p.aggregate = true;
  p.group_columns = {0};
  p.columns.resize(2);
  p.columns[1].role = Role::kCount;
  Merger m(p, 1, std::nullopt, std::nullopt, {.max_memory = 4096});
  DescribeAll(m, 1, Desc({Field("g", oid::kText), Field("count", oid::kInt8)}));
  absl::Status st;
  for (int i = 0; i < 1000 && st.ok(); ++i) {
    st = m.OnDataRow(0, Row({std::string(40, 'x') + std::to_string(i), "1"}));
  }
  EXPECT_THAT(st, HasSqlState("54000"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("4096 bytes"));
  EXPECT_FALSE(Hint(st).empty());
  EXPECT_GT(m.peak_memory(), 4096u);
}

TEST(MergeErrors, DistinctSetCountsTowardsMemory) {
  routing::MergePlan p = Plan(1);
  p.distinct = true;
  Merger m(p, 1, std::nullopt, std::nullopt, {.max_memory = 2048});
  DescribeAll(m, 1, Desc({Field("s", oid::kText)}));
  absl::Status st;
  std::string out;
  for (int i = 0; i < 1000 && st.ok(); ++i) {
    st = m.OnDataRow(0, Row({std::to_string(i)}));
    if (st.ok()) st = m.Emit(out);  // emitted rows no longer count; the set does
  }
  EXPECT_THAT(st, HasSqlState("54000"));
}

TEST(MergeErrors, PeakMemoryOfOrderedQueues) {
  routing::MergePlan plan = Plan(1);
  plan.order_by = {Key(0)};
  Merger m(plan, 2, std::nullopt, std::nullopt);
  DescribeAll(m, 2, Desc({Field("k", oid::kInt4)}));
  ASSERT_OK(m.OnDataRow(0, Row({"1"})));
  ASSERT_OK(m.OnDataRow(0, Row({"2"})));
  const size_t peak = m.peak_memory();
  EXPECT_GT(peak, 0u);
  DoneAll(m, 2);
  EmitAll(m);
  EXPECT_EQ(m.peak_memory(), peak);
}

TEST(MergeErrors, DifferentDescriptionsAre0A000NamingTheColumn) {
  Merger m(Plan(2), 2, std::nullopt, std::nullopt);
  ASSERT_OK(m.OnRowDescription(0, Desc({Field("a", oid::kInt4), Field("b", oid::kText)})));
  auto st = m.OnRowDescription(1, Desc({Field("a", oid::kInt4), Field("b", oid::kInt8)}));
  EXPECT_THAT(st, HasSqlState("0A000"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("\"b\""));
  st = m.OnRowDescription(1, Desc({Field("a", oid::kInt4)}));
  EXPECT_THAT(st, HasSqlState("0A000"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("\"b\""));
  st = m.OnRowDescription(1, Desc({Field("a", oid::kInt4), Field("b", oid::kText, 1)}));
  EXPECT_THAT(st, HasSqlState("0A000"));
}

TEST(MergeErrors, MalformedAndWrongWidthRowsAre08P01) {
  Merger m(Plan(2), 1, std::nullopt, std::nullopt);
  EXPECT_THAT(m.OnDataRow(0, Row({"1", "2"})), HasSqlState("08P01"));  // before description
  DescribeAll(m, 1, Desc({Field("a", oid::kInt4), Field("b", oid::kInt4)}));
  EXPECT_THAT(m.OnDataRow(0, Row({"1"})), HasSqlState("08P01"));
  std::string truncated = Row({"1", "2"});
  truncated.pop_back();
  EXPECT_THAT(m.OnDataRow(0, truncated), HasSqlState("08P01"));
  EXPECT_THAT(m.OnDataRow(0, std::string_view("\x00", 1)), HasSqlState("08P01"));
  EXPECT_THAT(m.OnRowDescription(0, std::string_view("\x00\x01", 2)), HasSqlState("08P01"));
}

TEST(MergeErrors, PlanColumnsOutOfRangeAre0A000) {
  routing::MergePlan plan = Plan(1);
  plan.order_by = {Key(3)};
  Merger m(plan, 1, std::nullopt, std::nullopt);
  EXPECT_THAT(m.OnRowDescription(0, Desc({Field("a", oid::kInt4)})), HasSqlState("0A000"));
}

}  // namespace
}  // namespace shardgate::proxy
