// Tests of the encoders: exact bytes against an independent builder, round trips through the
// parsers, and byte-for-byte re-encoding of a parsed Bind.
#include "protocol/encoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/frame_reader.h"
#include "protocol/messages.h"
#include "protocol/status.h"
#include "tests/support/bytes.h"
#include "tests/support/status_matchers.h"

namespace shardgate::protocol {
namespace {

using ::shardgate::testing::Body;
using ::shardgate::testing::Msg;
using ::shardgate::testing::Startup;
using ::shardgate::testing::Untyped;
using ::testing::ElementsAre;
using ::testing::Optional;
using ::testing::Pair;

TEST(MessageWriterTest, PatchesBigEndianLength) {
  std::string out = "prefix";
  MessageWriter w(out);
  w.Begin('X').Int8(-1).Int16(0x0102).Int32(0x03040506).CString("ab").Bytes("cd").End();
  EXPECT_EQ(
      out,
      "prefix" + Msg('X', Body().Int8(-1).Int16(0x0102).Int32(0x03040506).CStr("ab").Raw("cd")));
  EXPECT_EQ(out.substr(7, 4), std::string("\0\0\0\x10", 4));
}

TEST(MessageWriterTest, UntypedHasNoTypeByte) {
  std::string out;
  MessageWriter(out).Begin(0).Int32(7).End();
  EXPECT_EQ(out, Untyped(Body().Int32(7)));
}

TEST(MessageWriterTest, LargeBodyLength) {
  std::string out;
  const std::string big(70000, 'x');
  AppendCopyData(out, big);
  FrameResult r = ReadFrame(out);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  EXPECT_EQ(r.frame.body.size(), big.size());
}

TEST(MessageWriterTest, WriterIsReusableForConsecutiveMessages) {
  std::string out;
  MessageWriter w(out);
  w.Begin('1').End();
  w.Begin('C').CString("SELECT 1").End();
  EXPECT_EQ(out, Msg('1', "") + Msg('C', Body().CStr("SELECT 1")));
}

// ---- Exact bytes for each simple encoder, against the test builder.
struct ExactCase {
  const char* name;
  std::string (*encode)();
  std::string expected;
};
class ExactBytesTest : public ::testing::TestWithParam<ExactCase> {};
TEST_P(ExactBytesTest, Matches) { EXPECT_EQ(GetParam().encode(), GetParam().expected); }

template <typename F>
std::string Enc(F f) {
  std::string out;
  f(out);
  return out;
}

INSTANTIATE_TEST_SUITE_P(
    Encoders, ExactBytesTest,
    ::testing::Values(
        ExactCase{"auth_ok",
                  [] {
                    return Enc([](auto& o) { AppendAuthentication(o, AuthCode::kOk); });
                  },
                  Msg('R', Body().Int32(0))},
        ExactCase{"auth_md5",
                  [] {
                    return Enc([](auto& o) { AppendAuthentication(o, AuthCode::kMd5, "abcd"); });
                  },
                  Msg('R', Body().Int32(5).Raw("abcd"))},
        ExactCase{"sasl_mechanisms", [] { return Enc([](auto& o) { AppendSaslMechanisms(o); }); },
                  Msg('R', Body().Int32(10).CStr("SCRAM-SHA-256").Int8(0))},
        ExactCase{"parameter_status",
                  [] {
                    return Enc([](auto& o) { AppendParameterStatus(o, "TimeZone", "UTC"); });
                  },
                  Msg('S', Body().CStr("TimeZone").CStr("UTC"))},
        ExactCase{"backend_key",
                  [] { return Enc([](auto& o) { AppendBackendKeyData(o, 42, -7); }); },
                  Msg('K', Body().Int32(42).Int32(-7))},
        ExactCase{"ready", [] { return Enc([](auto& o) { AppendReadyForQuery(o, 'T'); }); },
                  Msg('Z', "T")},
        ExactCase{"command_complete",
                  [] { return Enc([](auto& o) { AppendCommandComplete(o, "SELECT 3"); }); },
                  Msg('C', Body().CStr("SELECT 3"))},
        ExactCase{"empty_query", [] { return Enc([](auto& o) { AppendEmptyQueryResponse(o); }); },
                  Msg('I', "")},
        ExactCase{"parse_complete", [] { return Enc([](auto& o) { AppendParseComplete(o); }); },
                  Msg('1', "")},
        ExactCase{"bind_complete", [] { return Enc([](auto& o) { AppendBindComplete(o); }); },
                  Msg('2', "")},
        ExactCase{"close_complete", [] { return Enc([](auto& o) { AppendCloseComplete(o); }); },
                  Msg('3', "")},
        ExactCase{"no_data", [] { return Enc([](auto& o) { AppendNoData(o); }); }, Msg('n', "")},
        ExactCase{"ssl_request", [] { return Enc([](auto& o) { AppendSslRequest(o); }); },
                  Untyped(Body().UInt32(kSslRequestCode))},
        ExactCase{"cancel_request",
                  [] { return Enc([](auto& o) { AppendCancelRequest(o, 100, 200); }); },
                  Untyped(Body().UInt32(kCancelRequestCode).Int32(100).Int32(200))},
        ExactCase{"password",
                  [] { return Enc([](auto& o) { AppendPasswordMessage(o, "md5abc"); }); },
                  Msg('p', Body().CStr("md5abc"))},
        ExactCase{"sasl_initial",
                  [] {
                    return Enc([](auto& o) {
                      AppendSaslInitialResponse(o, "SCRAM-SHA-256", "n,,n=,r=abc");
                    });
                  },
                  Msg('p', Body().CStr("SCRAM-SHA-256").Value("n,,n=,r=abc"))},
        ExactCase{"sasl_response",
                  [] { return Enc([](auto& o) { AppendSaslResponse(o, "c=biws,r=x,p=y"); }); },
                  Msg('p', "c=biws,r=x,p=y")},
        ExactCase{"query", [] { return Enc([](auto& o) { AppendQuery(o, "select 1"); }); },
                  Msg('Q', Body().CStr("select 1"))},
        ExactCase{"parse_no_types",
                  [] { return Enc([](auto& o) { AppendParse(o, "s1", "select $1"); }); },
                  Msg('P', Body().CStr("s1").CStr("select $1").Int16(0))},
        ExactCase{"parse_types",
                  [] {
                    return Enc([](auto& o) {
                      const uint32_t types[] = {23, 0xFFFFFFFFu};
                      AppendParse(o, "", "select $1, $2", types);
                    });
                  },
                  Msg('P', Body().CStr("").CStr("select $1, $2").Int16(2).UInt32(23).UInt32(
                               0xFFFFFFFFu))},
        ExactCase{"describe",
                  [] { return Enc([](auto& o) { AppendDescribe(o, 'P', "c1"); }); },
                  Msg('D', Body().Char('P').CStr("c1"))},
        ExactCase{"execute", [] { return Enc([](auto& o) { AppendExecute(o, "c1", 50); }); },
                  Msg('E', Body().CStr("c1").Int32(50))},
        ExactCase{"execute_default", [] { return Enc([](auto& o) { AppendExecute(o, ""); }); },
                  Msg('E', Body().CStr("").Int32(0))},
        ExactCase{"close", [] { return Enc([](auto& o) { AppendClose(o, 'S', "s1"); }); },
                  Msg('C', Body().Char('S').CStr("s1"))},
        ExactCase{"sync", [] { return Enc([](auto& o) { AppendSync(o); }); }, Msg('S', "")},
        ExactCase{"flush", [] { return Enc([](auto& o) { AppendFlush(o); }); }, Msg('H', "")},
        ExactCase{"terminate", [] { return Enc([](auto& o) { AppendTerminate(o); }); },
                  Msg('X', "")},
        ExactCase{"copy_data", [] { return Enc([](auto& o) { AppendCopyData(o, "1\t2\n"); }); },
                  Msg('d', "1\t2\n")},
        ExactCase{"copy_done", [] { return Enc([](auto& o) { AppendCopyDone(o); }); },
                  Msg('c', "")},
        ExactCase{"copy_fail", [] { return Enc([](auto& o) { AppendCopyFail(o, "oops"); }); },
                  Msg('f', Body().CStr("oops"))}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(AppendErrorTest, AllFieldsInOrder) {
  PgError e;
  e.severity = "FATAL";
  e.sqlstate = "28P01";
  e.message = "password authentication failed";
  e.detail = "d";
  e.hint = "h";
  std::string out;
  AppendError(out, e);
  EXPECT_EQ(out, Msg('E', Body()
                              .Char('S')
                              .CStr("FATAL")
                              .Char('V')
                              .CStr("FATAL")
                              .Char('C')
                              .CStr("28P01")
                              .Char('M')
                              .CStr("password authentication failed")
                              .Char('D')
                              .CStr("d")
                              .Char('H')
                              .CStr("h")
                              .Int8(0)));
}

TEST(AppendErrorTest, OmitsEmptyDetailAndHint) {
  PgError e;
  e.sqlstate = "08P01";
  e.message = "bad";
  std::string out;
  AppendError(out, e);
  EXPECT_EQ(out, Msg('E', Body()
                              .Char('S')
                              .CStr("ERROR")
                              .Char('V')
                              .CStr("ERROR")
                              .Char('C')
                              .CStr("08P01")
                              .Char('M')
                              .CStr("bad")
                              .Int8(0)));
}

TEST(AppendErrorTest, FromStatusParsesBack) {
  std::string out;
  AppendError(out, PgStatus("0A000", "not across shards", "add a shard key"));
  FrameResult r = ReadFrame(out);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  EXPECT_EQ(r.frame.type, 'E');
  ASSERT_OK_AND_ASSIGN(ErrorFields f, ParseErrorFields(r.frame.body));
  EXPECT_EQ(f.SqlState(), "0A000");
  EXPECT_EQ(f.Message(), "not across shards");
  EXPECT_EQ(f.Get('H'), "add a shard key");
  EXPECT_EQ(f.Get('D'), "");
  EXPECT_EQ(f.Get('S'), "ERROR");
}

TEST(AppendNoticeTest, TypeN) {
  PgError n;
  n.severity = "NOTICE";
  n.sqlstate = "00000";
  n.message = "hello";
  std::string out;
  AppendNotice(out, n);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0], 'N');
  FrameResult r = ReadFrame(out);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  ASSERT_OK_AND_ASSIGN(ErrorFields f, ParseErrorFields(r.frame.body));
  EXPECT_EQ(f.Get('S'), "NOTICE");
}

TEST(RoundTripTest, RowDescription) {
  FieldDescription a{"id", 16384, 1, 20, 8, -1, 0};
  FieldDescription b{"name", 0, 0, 25, -1, -1, 1};
  const FieldDescription fields[] = {a, b};
  std::string out;
  AppendRowDescription(out, fields);
  FrameResult r = ReadFrame(out);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  EXPECT_EQ(r.frame.type, 'T');
  ASSERT_OK_AND_ASSIGN(RowDescription d, ParseRowDescription(r.frame.body));
  ASSERT_EQ(d.fields.size(), 2u);
  EXPECT_EQ(d.fields[0].name, "id");
  EXPECT_EQ(d.fields[0].table_oid, 16384u);
  EXPECT_EQ(d.fields[0].type_oid, 20u);
  EXPECT_EQ(d.fields[0].type_size, 8);
  EXPECT_EQ(d.fields[1].name, "name");
  EXPECT_EQ(d.fields[1].type_size, -1);
  EXPECT_EQ(d.fields[1].format, 1);
}

TEST(RoundTripTest, DataRow) {
  const std::optional<std::string_view> values[] = {"1", std::nullopt, "", "x\0y"};
  std::string out;
  AppendDataRow(out, values);
  EXPECT_EQ(out, Msg('D', Body().Int16(4).Value("1").Null().Value("").Value("x")));
  FrameResult r = ReadFrame(out);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  ASSERT_OK_AND_ASSIGN(DataRow row, ParseDataRow(r.frame.body));
  ASSERT_EQ(row.values.size(), 4u);
  EXPECT_EQ(row.values[1], std::nullopt);
  EXPECT_THAT(row.values[2], Optional(std::string_view("")));
}

TEST(RoundTripTest, Startup) {
  const std::pair<std::string_view, std::string_view> params[] = {{"user", "bob"},
                                                                  {"database", "shop"}};
  std::string out;
  AppendStartup(out, params);
  EXPECT_EQ(out, Startup({{"user", "bob"}, {"database", "shop"}}));
  FrameResult r = ReadStartupFrame(out);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  ASSERT_OK_AND_ASSIGN(StartupPacket p, ParseStartupPacket(r.frame));
  EXPECT_EQ(p.kind, StartupPacket::Kind::kStartup);
  EXPECT_THAT(p.startup.params, ElementsAre(Pair("user", "bob"), Pair("database", "shop")));
}

// Parsing a Bind and appending it again must give the same bytes: the proxy rewrites only
// the statement name and forwards everything else untouched.
class BindReencodeTest : public ::testing::TestWithParam<std::string> {};
TEST_P(BindReencodeTest, ParseThenAppendIsIdentity) {
  const std::string msg = Msg('B', GetParam());
  FrameResult r = ReadFrame(msg);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  ASSERT_OK_AND_ASSIGN(Bind b, ParseBind(r.frame.body));
  std::string out;
  AppendBind(out, b);
  EXPECT_EQ(out, msg);
}
INSTANTIATE_TEST_SUITE_P(
    Binds, BindReencodeTest,
    ::testing::Values(
        std::string(Body().CStr("").CStr("").Int16(0).Int16(0).Int16(0)),
        std::string(Body()
                        .CStr("portal")
                        .CStr("stmt")
                        .Int16(1)
                        .Int16(1)
                        .Int16(2)
                        .Value("ab")
                        .Null()
                        .Int16(1)
                        .Int16(1)),
        std::string(Body()
                        .CStr("")
                        .CStr("s")
                        .Int16(3)
                        .Int16(0)
                        .Int16(1)
                        .Int16(0)
                        .Int16(3)
                        .Value("")
                        .Value(std::string("\0\xff", 2))
                        .Null()
                        .Int16(2)
                        .Int16(0)
                        .Int16(1)),
        std::string(
            Body().CStr("").CStr("s").Int16(0).Int16(1).Value(std::string(300, 'v')).Int16(0))));

TEST(BindReencodeTest, RenamedStatement) {
  const std::string body = Body().CStr("").CStr("client_s1").Int16(0).Int16(1).Value("7").Int16(0);
  ASSERT_OK_AND_ASSIGN(Bind b, ParseBind(body));
  b.statement = "sg_42";
  std::string out;
  AppendBind(out, b);
  EXPECT_EQ(out, Msg('B', Body().CStr("").CStr("sg_42").Int16(0).Int16(1).Value("7").Int16(0)));
}

}  // namespace
}  // namespace shardgate::protocol
