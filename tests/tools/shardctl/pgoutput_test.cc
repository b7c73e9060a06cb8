// DecodePgoutput on hand-built pgoutput v1 messages: every message type shardctl applies, the
// tuple value kinds ('t', 'n', 'u'), and each message cut short or malformed (08P01, no crash).
#include "tools/shardctl/pgoutput.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "tests/support/bytes.h"
#include "tests/support/status_matchers.h"

namespace shardgate::tools {
namespace {

using ::shardgate::testing::Body;
using ::shardgate::testing::HasSqlState;
using ::shardgate::testing::IsOk;
using ::testing::ElementsAre;
using Type = PgoutputMessage::Type;
using Kind = PgoutputValue::Kind;

absl::StatusOr<PgoutputMessage> Decode(std::string_view bytes) { return DecodePgoutput(bytes); }
absl::StatusOr<PgoutputMessage> Decode(const Body& b) { return DecodePgoutput(b.str()); }

Body& Int64(Body& b, uint64_t v) {
  b.UInt32(static_cast<uint32_t>(v >> 32));
  return b.UInt32(static_cast<uint32_t>(v));
}

// TupleData values.
struct V {
  char kind;
  std::string text;
};
Body& Tuple(Body& b, const std::vector<V>& values) {
  b.Int16(static_cast<int16_t>(values.size()));
  for (const V& v : values) {
    b.Char(v.kind);
    if (v.kind == 't') b.Value(v.text);
  }
  return b;
}

std::string BeginMsg() {
  Body b;
  b.Char('B');
  Int64(b, 0x0000000100000A28ull);  // final LSN 1/A28
  Int64(b, 0x0002F4A1B2C3D4E5ull);  // timestamp
  return b.UInt32(731);             // xid
}

std::string CommitMsg() {
  Body b;
  b.Char('C').Int8(0);
  Int64(b, 0x0000000100000A28ull);
  Int64(b, 0x0000000100000A58ull);
  return Int64(b, 0x0002F4A1B2C3D4E6ull);
}

std::string RelationMsg() {
  Body b;
  b.Char('R').UInt32(16384).CStr("public").CStr("orders").Int8('d').Int16(3);
  b.Int8(1).CStr("id").UInt32(20).Int32(-1);
  b.Int8(0).CStr("note").UInt32(25).Int32(-1);
  b.Int8(1).CStr("tenant").UInt32(1043).Int32(36);
  return b;
}

std::string InsertMsg() {
  Body b;
  b.Char('I').UInt32(16384).Char('N');
  return Tuple(b, {{'t', "42"}, {'n', ""}, {'t', "acme"}});
}

std::string UpdateMsg(char old_kind) {
  Body b;
  b.Char('U').UInt32(16384);
  if (old_kind != 0) {
    b.Char(old_kind);
    Tuple(b, old_kind == 'K' ? std::vector<V>{{'t', "41"}, {'n', ""}, {'t', "acme"}}
                             : std::vector<V>{{'t', "41"}, {'t', "old"}, {'t', "acme"}});
  }
  b.Char('N');
  return Tuple(b, {{'t', "42"}, {'u', ""}, {'t', "acme"}});
}

std::string DeleteMsg(char kind) {
  Body b;
  b.Char('D').UInt32(16384).Char(kind);
  return Tuple(b, {{'t', "42"}, {'n', ""}, {'t', "acme"}});
}

std::string TruncateMsg() {
  Body b;
  return b.Char('T').Int32(3).Int8(1).UInt32(16384).UInt32(16390).UInt32(4294967295u);
}

std::string MessageMsg(std::string_view content) {
  Body b;
  b.Char('M').Int8(1);
  Int64(b, 0x00000002000000FFull);
  return b.CStr("shardgate.reshard").Value(content);
}

TEST(PgoutputTest, Begin) {
  auto m = Decode(BeginMsg());
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, Type::kBegin);
  EXPECT_EQ(m->lsn, 0x0000000100000A28ull);
  EXPECT_EQ(m->timestamp, 0x0002F4A1B2C3D4E5ll);
}

TEST(PgoutputTest, Commit) {
  auto m = Decode(CommitMsg());
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, Type::kCommit);
  EXPECT_EQ(m->lsn, 0x0000000100000A28ull);
  EXPECT_EQ(m->end_lsn, 0x0000000100000A58ull);
  EXPECT_EQ(m->timestamp, 0x0002F4A1B2C3D4E6ll);
}

TEST(PgoutputTest, RelationWithKeyFlags) {
  auto m = Decode(RelationMsg());
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, Type::kRelation);
  EXPECT_EQ(m->relation, 16384u);
  EXPECT_EQ(m->schema, "public");
  EXPECT_EQ(m->name, "orders");
  ASSERT_EQ(m->columns.size(), 3u);
  EXPECT_EQ(m->columns[0].name, "id");
  EXPECT_EQ(m->columns[0].type_oid, 20u);
  EXPECT_TRUE(m->columns[0].key);
  EXPECT_EQ(m->columns[1].name, "note");
  EXPECT_EQ(m->columns[1].type_oid, 25u);
  EXPECT_FALSE(m->columns[1].key);
  EXPECT_EQ(m->columns[2].name, "tenant");
  EXPECT_EQ(m->columns[2].type_oid, 1043u);
  EXPECT_TRUE(m->columns[2].key);
}

TEST(PgoutputTest, RelationWithNoColumns) {
  Body b;
  b.Char('R').UInt32(7).CStr("s").CStr("empty").Int8('n').Int16(0);
  auto m = Decode(b);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->schema, "s");
  EXPECT_TRUE(m->columns.empty());
}

std::vector<std::pair<Kind, std::string>> Values(const PgoutputTuple& t) {
  std::vector<std::pair<Kind, std::string>> out;
  for (const PgoutputValue& v : t) out.emplace_back(v.kind, v.text);
  return out;
}

TEST(PgoutputTest, InsertWithNull) {
  auto m = Decode(InsertMsg());
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, Type::kInsert);
  EXPECT_EQ(m->relation, 16384u);
  EXPECT_THAT(Values(m->new_tuple), ElementsAre(std::pair{Kind::kText, std::string("42")},
                                                std::pair{Kind::kNull, std::string()},
                                                std::pair{Kind::kText, std::string("acme")}));
  EXPECT_FALSE(m->old_tuple.has_value());
}

TEST(PgoutputTest, InsertWithEmptyAndBinaryLookingText) {
  // An empty text value differs from a null; bytes are kept as they are, NULs included.
  Body b;
  b.Char('I').UInt32(1).Char('N');
  Tuple(b, {{'t', ""}, {'t', std::string("a\0b", 3)}});
  auto m = Decode(b);
  ASSERT_THAT(m, IsOk());
  EXPECT_THAT(Values(m->new_tuple), ElementsAre(std::pair{Kind::kText, std::string()},
                                                std::pair{Kind::kText, std::string("a\0b", 3)}));
}

TEST(PgoutputTest, UpdateWithoutOldTupleKeepsUnchangedToast) {
  auto m = Decode(UpdateMsg(0));
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, Type::kUpdate);
  EXPECT_FALSE(m->old_tuple.has_value());
  EXPECT_THAT(Values(m->new_tuple), ElementsAre(std::pair{Kind::kText, std::string("42")},
                                                std::pair{Kind::kUnchanged, std::string()},
                                                std::pair{Kind::kText, std::string("acme")}));
}

TEST(PgoutputTest, UpdateWithOldKey) {
  auto m = Decode(UpdateMsg('K'));
  ASSERT_THAT(m, IsOk());
  ASSERT_TRUE(m->old_tuple.has_value());
  EXPECT_THAT(Values(*m->old_tuple), ElementsAre(std::pair{Kind::kText, std::string("41")},
                                                 std::pair{Kind::kNull, std::string()},
                                                 std::pair{Kind::kText, std::string("acme")}));
  EXPECT_EQ(m->new_tuple.size(), 3u);
  EXPECT_EQ(m->new_tuple[1].kind, Kind::kUnchanged);
}

TEST(PgoutputTest, UpdateWithOldRow) {
  auto m = Decode(UpdateMsg('O'));
  ASSERT_THAT(m, IsOk());
  ASSERT_TRUE(m->old_tuple.has_value());
  EXPECT_THAT(Values(*m->old_tuple), ElementsAre(std::pair{Kind::kText, std::string("41")},
                                                 std::pair{Kind::kText, std::string("old")},
                                                 std::pair{Kind::kText, std::string("acme")}));
  EXPECT_EQ(m->new_tuple[0].text, "42");
}

TEST(PgoutputTest, DeleteWithKeyOrOldRow) {
  for (char kind : {'K', 'O'}) {
    SCOPED_TRACE(kind);
    auto m = Decode(DeleteMsg(kind));
    ASSERT_THAT(m, IsOk());
    EXPECT_EQ(m->type, Type::kDelete);
    EXPECT_EQ(m->relation, 16384u);
    ASSERT_TRUE(m->old_tuple.has_value());
    EXPECT_THAT(Values(*m->old_tuple), ElementsAre(std::pair{Kind::kText, std::string("42")},
                                                   std::pair{Kind::kNull, std::string()},
                                                   std::pair{Kind::kText, std::string("acme")}));
    EXPECT_TRUE(m->new_tuple.empty());
  }
}

TEST(PgoutputTest, Truncate) {
  auto m = Decode(TruncateMsg());
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, Type::kTruncate);
  EXPECT_THAT(m->relations, ElementsAre(16384u, 16390u, 4294967295u));
}

TEST(PgoutputTest, Message) {
  auto m = Decode(MessageMsg(std::string("cutover\0done", 12)));
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, Type::kMessage);
  EXPECT_EQ(m->lsn, 0x00000002000000FFull);
  EXPECT_EQ(m->prefix, "shardgate.reshard");
  EXPECT_EQ(m->content, std::string("cutover\0done", 12));
}

TEST(PgoutputTest, MessageWithEmptyContent) {
  auto m = Decode(MessageMsg(""));
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->prefix, "shardgate.reshard");
  EXPECT_EQ(m->content, "");
}

TEST(PgoutputTest, TypeAndOriginAreAcceptedAndIgnored) {
  Body y;
  y.Char('Y').UInt32(16400).CStr("public").CStr("mood");
  auto m = Decode(y);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, Type::kType);
  Body o;
  o.Char('O');
  Int64(o, 5).CStr("origin");
  m = Decode(o);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, Type::kOrigin);
}

// Every well-formed message above, cut at every length short of whole, is 08P01 (the type byte
// alone too), and never reads past the end (ASan would say).
struct Named {
  const char* name;
  std::string bytes;
};
void PrintTo(const Named& n, std::ostream* os) { *os << n.name; }

class TruncatedTest : public ::testing::TestWithParam<Named> {};

TEST_P(TruncatedTest, EveryPrefixIsMalformed) {
  const std::string& whole = GetParam().bytes;
  ASSERT_THAT(Decode(whole), IsOk());
  for (size_t n = 0; n < whole.size(); ++n) {
    // A heap copy of exactly n bytes, so that an overrun is a real one.
    const std::string cut = whole.substr(0, n);
    EXPECT_THAT(Decode(cut), HasSqlState("08P01")) << "cut at " << n;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Pgoutput, TruncatedTest,
    ::testing::Values(Named{"Begin", BeginMsg()}, Named{"Commit", CommitMsg()},
                      Named{"Relation", RelationMsg()}, Named{"Insert", InsertMsg()},
                      Named{"Update", UpdateMsg(0)}, Named{"UpdateK", UpdateMsg('K')},
                      Named{"UpdateO", UpdateMsg('O')}, Named{"DeleteK", DeleteMsg('K')},
                      Named{"DeleteO", DeleteMsg('O')}, Named{"Truncate", TruncateMsg()},
                      Named{"Message", MessageMsg("payload")}),
    [](const ::testing::TestParamInfo<Named>& info) { return std::string(info.param.name); });

TEST(PgoutputTest, EmptyAndUnknownTypesAreMalformed) {
  EXPECT_THAT(Decode(""), HasSqlState("08P01"));
  EXPECT_THAT(Decode("Z"), HasSqlState("08P01"));
  EXPECT_THAT(Decode(std::string(1, '\0')), HasSqlState("08P01"));
  // Protocol v2+ streaming messages are not v1.
  EXPECT_THAT(Decode(std::string("S") + std::string(8, '\0')), HasSqlState("08P01"));
}

TEST(PgoutputTest, InsertWithoutNewTupleMarker) {
  Body b;
  b.Char('I').UInt32(1).Char('K');
  Tuple(b, {{'t', "1"}});
  EXPECT_THAT(Decode(b), HasSqlState("08P01"));
}

TEST(PgoutputTest, UpdateWithoutNewTuple) {
  Body only_old;
  only_old.Char('U').UInt32(1).Char('K');
  Tuple(only_old, {{'t', "1"}});
  EXPECT_THAT(Decode(only_old), HasSqlState("08P01"));
  Body bad_marker;
  bad_marker.Char('U').UInt32(1).Char('X');
  Tuple(bad_marker, {{'t', "1"}});
  EXPECT_THAT(Decode(bad_marker), HasSqlState("08P01"));
}

TEST(PgoutputTest, DeleteWithoutKey) {
  Body b;
  b.Char('D').UInt32(1).Char('N');
  Tuple(b, {{'t', "1"}});
  EXPECT_THAT(Decode(b), HasSqlState("08P01"));
}

TEST(PgoutputTest, UnknownValueKindIsMalformed) {
  Body b;
  b.Char('I').UInt32(1).Char('N').Int16(2).Char('t').Value("1").Char('x');
  EXPECT_THAT(Decode(b), HasSqlState("08P01"));
}

// Regression: an unknown value kind was flagged by asking for 1 MiB more, so a kind byte
// followed by at least that much data (a big TOASTed row) decoded as if fine.
TEST(PgoutputTest, UnknownValueKindFollowedByMuchDataIsMalformed) {
  Body b;
  b.Char('I').UInt32(1).Char('N').Int16(1).Char('x').Raw(std::string((1u << 20) + 16, 'a'));
  EXPECT_THAT(Decode(b), HasSqlState("08P01"));
}

TEST(PgoutputTest, ValueLengthBeyondTheMessage) {
  Body b;
  b.Char('I').UInt32(1).Char('N').Int16(1).Char('t').Int32(100).Raw("short");
  EXPECT_THAT(Decode(b), HasSqlState("08P01"));
  Body negative;  // -1 is a length of 4 GiB - 1 here, not a null
  negative.Char('I').UInt32(1).Char('N').Int16(1).Char('t').Int32(-1);
  EXPECT_THAT(Decode(negative), HasSqlState("08P01"));
}

TEST(PgoutputTest, CountsBeyondTheMessage) {
  Body columns;  // says 1000 columns, holds one
  columns.Char('R').UInt32(1).CStr("public").CStr("t").Int8('d').Int16(1000);
  columns.Int8(1).CStr("id").UInt32(20).Int32(-1);
  EXPECT_THAT(Decode(columns), HasSqlState("08P01"));
  Body values;  // says 65535 values (read as unsigned), holds one
  values.Char('I').UInt32(1).Char('N').Int16(-1).Char('n');
  EXPECT_THAT(Decode(values), HasSqlState("08P01"));
  Body relations;  // says 2^31 - 1 relations, holds one: must not loop or allocate for all
  relations.Char('T').Int32(0x7fffffff).Int8(0).UInt32(16384);
  EXPECT_THAT(Decode(relations), HasSqlState("08P01"));
  Body huge;  // a count with the top bit set
  huge.Char('T').UInt32(0xffffffffu).Int8(0).UInt32(16384);
  EXPECT_THAT(Decode(huge), HasSqlState("08P01"));
}

TEST(PgoutputTest, UnterminatedStrings) {
  Body relation;
  relation.Char('R').UInt32(1).Raw("public");  // no NUL
  EXPECT_THAT(Decode(relation), HasSqlState("08P01"));
  Body message;
  message.Char('M').Int8(0);
  Int64(message, 1).Raw("prefix-without-nul");
  EXPECT_THAT(Decode(message), HasSqlState("08P01"));
  Body content;  // content length past the end
  content.Char('M').Int8(0);
  Int64(content, 1).CStr("p").Int32(10).Raw("abc");
  EXPECT_THAT(Decode(content), HasSqlState("08P01"));
}

// Random bytes after each type byte: any answer is fine, crashing or overrunning is not.
TEST(PgoutputTest, RandomBytesNeverCrash) {
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  auto next = [&seed] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  const std::string types = "BCRIUDTYOMxN";
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(1, types[next() % types.size()]);
    const size_t n = next() % 64;
    for (size_t j = 0; j < n; ++j) {
      // Mostly small values and the markers, so that decoding gets past the first fields.
      const uint64_t r = next();
      const char pick[] = {'\0', '\1', 't', 'n', 'u', 'K', 'O', 'N', 'a'};
      bytes.push_back(r % 3 == 0 ? static_cast<char>(r >> 8) : pick[(r >> 8) % sizeof(pick)]);
    }
    auto m = Decode(bytes);
    if (!m.ok()) EXPECT_THAT(m, HasSqlState("08P01")) << "input " << i;
  }
}

}  // namespace
}  // namespace shardgate::tools
