// Key values: text and binary parameter formats, conversions, arrays.
#include "routing/key_value.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::HasSqlState;

struct TextCase {
  std::string text;
  KeyType type;
  std::string expect;  // ToString() of the value, or "" for an error
  std::string sqlstate = "";
};

class ParseText : public ::testing::TestWithParam<TextCase> {};

TEST_P(ParseText, Parses) {
  const TextCase& c = GetParam();
  auto v = ParseKeyText(c.text, c.type);
  if (c.expect.empty()) {
    EXPECT_THAT(v, HasSqlState(c.sqlstate));
  } else {
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->ToString(), c.expect);
    EXPECT_EQ(v->type(), c.type);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseText,
    ::testing::Values(
        TextCase{"42", KeyType::kInt, "42"}, TextCase{" -7 ", KeyType::kInt, "-7"},
        TextCase{"+5", KeyType::kInt, "5"},
        TextCase{"9223372036854775807", KeyType::kInt, "9223372036854775807"},
        TextCase{"-9223372036854775808", KeyType::kInt, "-9223372036854775808"},
        TextCase{"9223372036854775808", KeyType::kInt, "", "22003"},
        TextCase{"abc", KeyType::kInt, "", "22P02"}, TextCase{"", KeyType::kInt, "", "22P02"},
        TextCase{"1.5", KeyType::kInt, "", "22P02"},
        TextCase{"acme", KeyType::kText, "acme"},
        TextCase{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", KeyType::kUuid,
                 "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
        TextCase{"{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}", KeyType::kUuid,
                 "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
        TextCase{"a0eebc999c0b4ef8bb6d6bb9bd380a11", KeyType::kUuid,
                 "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
        TextCase{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", KeyType::kUuid, "", "22P02"},
        TextCase{"not-a-uuid", KeyType::kUuid, "", "22P02"}));

TEST(KeyValue, EmptyTextIsAValue) {
  auto v = ParseKeyText("", KeyType::kText);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->bytes(), "");
}

std::string BigEndian(uint64_t v, int n) {
  std::string out;
  for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

TEST(KeyValue, BinaryIntegersOfEachWidth) {
  auto v8 = ParseKeyParam(BigEndian(static_cast<uint64_t>(-5), 8), 1, oid::kInt8, KeyType::kInt);
  auto v4 = ParseKeyParam(BigEndian(static_cast<uint32_t>(-5), 4), 1, oid::kInt4, KeyType::kInt);
  auto v2 = ParseKeyParam(BigEndian(static_cast<uint16_t>(-5), 2), 1, oid::kInt2, KeyType::kInt);
  ASSERT_TRUE(v8.ok() && v4.ok() && v2.ok());
  EXPECT_EQ(v8->int_value(), -5);
  EXPECT_EQ(v4->int_value(), -5);
  EXPECT_EQ(v2->int_value(), -5);
  // Unspecified type: the width decides.
  auto u = ParseKeyParam(BigEndian(300, 4), 1, oid::kUnspecified, KeyType::kInt);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->int_value(), 300);
  EXPECT_THAT(ParseKeyParam("abc", 1, oid::kInt8, KeyType::kInt), HasSqlState("22P02"));
}

TEST(KeyValue, BinaryTextAndUuid) {
  auto t = ParseKeyParam("acme", 1, oid::kText, KeyType::kText);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->bytes(), "acme");
  std::string raw(16, '\x11');
  auto u = ParseKeyParam(raw, 1, oid::kUuid, KeyType::kUuid);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->ToString(), "11111111-1111-1111-1111-111111111111");
  EXPECT_THAT(ParseKeyParam("short", 1, oid::kUuid, KeyType::kUuid), HasSqlState("22P02"));
}

TEST(KeyValue, ConversionsBetweenTypes) {
  // An int8 parameter for a text key becomes its decimal text; a text parameter for an integer
  // key must parse as one.
  auto a = ParseKeyParam(BigEndian(42, 8), 1, oid::kInt8, KeyType::kText);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->type(), KeyType::kText);
  EXPECT_EQ(a->bytes(), "42");
  auto b = ParseKeyParam("42", 1, oid::kText, KeyType::kInt);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->int_value(), 42);
  EXPECT_THAT(ParseKeyParam("x42", 1, oid::kText, KeyType::kInt), HasSqlState("22P02"));
  EXPECT_THAT(ParseKeyParam("42", 0, oid::kText, KeyType::kUuid), HasSqlState("22P02"));
  EXPECT_THAT(ParseKeyParam("42", 7, oid::kText, KeyType::kInt), HasSqlState("08P01"));
}

TEST(KeyValue, ArrayText) {
  auto a = ParseArrayText("{1, 2,3}");
  ASSERT_TRUE(a.ok());
  EXPECT_THAT(*a, ::testing::ElementsAre("1", "2", "3"));
  auto q = ParseArrayText(R"({"a b","c\"d",e})");
  ASSERT_TRUE(q.ok());
  EXPECT_THAT(*q, ::testing::ElementsAre("a b", "c\"d", "e"));
  auto e = ParseArrayText("{}");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->empty());
  auto dims = ParseArrayText("[1:2]={7,8}");
  ASSERT_TRUE(dims.ok());
  EXPECT_THAT(*dims, ::testing::ElementsAre("7", "8"));
  for (const char* bad : {"1,2", "{1,2", "{1,,2}", "{{1,2},{3,4}}", "{1,}", "{\"a}"}) {
    EXPECT_THAT(ParseArrayText(bad), HasSqlState("22P02")) << bad;
  }
  EXPECT_THAT(ParseArrayText("{1,NULL}"), HasSqlState("22004"));
}

TEST(KeyValue, ArrayBinary) {
  // int8[] {5, -6}: ndim 1, flags 0, elem oid 20, dim 2, lbound 1, then (len, value) pairs.
  std::string b = BigEndian(1, 4) + BigEndian(0, 4) + BigEndian(oid::kInt8, 4) +
                  BigEndian(2, 4) + BigEndian(1, 4) + BigEndian(8, 4) + BigEndian(5, 8) +
                  BigEndian(8, 4) + BigEndian(static_cast<uint64_t>(-6), 8);
  auto a = ParseArrayBinary(b, KeyType::kInt);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].int_value(), 5);
  EXPECT_EQ((*a)[1].int_value(), -6);
  EXPECT_THAT(ParseArrayBinary(b.substr(0, b.size() - 1), KeyType::kInt), HasSqlState("22P02"));
  std::string huge = BigEndian(1, 4) + BigEndian(0, 4) + BigEndian(oid::kInt8, 4) +
                     BigEndian(0x7fffffff, 4) + BigEndian(1, 4);
  EXPECT_THAT(ParseArrayBinary(huge, KeyType::kInt), HasSqlState("22P02"));
  std::string with_null = BigEndian(1, 4) + BigEndian(1, 4) + BigEndian(oid::kInt8, 4) +
                          BigEndian(1, 4) + BigEndian(1, 4) + BigEndian(0xffffffff, 4);
  EXPECT_THAT(ParseArrayBinary(with_null, KeyType::kInt), HasSqlState("22004"));
}

TEST(KeyValue, OrderingAndEquality) {
  EXPECT_LT(KeyValue::Int(-3), KeyValue::Int(2));
  EXPECT_LT(KeyValue::Text("a"), KeyValue::Text("b"));
  EXPECT_LT(KeyValue::Text("Z"), KeyValue::Text("a"));  // bytewise, as the C collation
  EXPECT_EQ(KeyValue::Int(1), KeyValue::Int(1));
  EXPECT_FALSE(KeyValue::Int(1) == KeyValue::Text("1"));
}

TEST(KeyValue, TypeNames) {
  EXPECT_EQ(KeyTypeFromName("BIGINT"), KeyType::kInt);
  EXPECT_EQ(KeyTypeFromName("varchar"), KeyType::kText);
  EXPECT_EQ(KeyTypeFromName("uuid"), KeyType::kUuid);
  EXPECT_EQ(KeyTypeFromName("numeric"), std::nullopt);
  EXPECT_EQ(KeyTypeForOid(oid::kInt2), KeyType::kInt);
  EXPECT_EQ(KeyTypeForOid(16), std::nullopt);
  EXPECT_EQ(ArrayElementOid(oid::kInt8Array), oid::kInt8);
}

}  // namespace
}  // namespace shardgate::routing
