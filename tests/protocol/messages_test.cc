// Tests of the typed message views: well-formed messages parse into the right views, and every
// kind of malformed body (short, unterminated, bad count, trailing bytes) is an 08P01 error.
#include "protocol/messages.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <string>
#include <string_view>

#include "protocol/frame_reader.h"
#include "tests/support/bytes.h"
#include "tests/support/status_matchers.h"

namespace shardgate::protocol {
namespace {

using ::shardgate::testing::Body;
using ::shardgate::testing::HasSqlState;
using ::shardgate::testing::Startup;
using ::shardgate::testing::Untyped;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;
using ::testing::Pair;

// Keeps a message body alive until the end of the test binary, so that the views parsed from it
// stay valid (a temporary Body would die at the end of the full expression that parses it).
std::string_view Keep(std::string body) {
  static std::deque<std::string>* store = new std::deque<std::string>();
  store->push_back(std::move(body));
  return store->back();
}

// Frames a startup-phase packet so that ParseStartupPacket sees what the reader produces.
absl::StatusOr<StartupPacket> ParseStartupBytes(std::string bytes) {
  FrameResult r = ReadStartupFrame(Keep(std::move(bytes)));
  if (r.status != FrameStatus::kFrame) return absl::InternalError("test packet does not frame");
  return ParseStartupPacket(r.frame);
}

// ---- Startup-phase packets.

TEST(StartupPacketTest, StartupMessageParams) {
  ASSERT_OK_AND_ASSIGN(StartupPacket p,
                       ParseStartupBytes(Startup({{"user", "alice"},
                                                  {"database", "app"},
                                                  {"application_name", ""},
                                                  {"options", "-c search_path=x"}})));
  EXPECT_EQ(p.kind, StartupPacket::Kind::kStartup);
  EXPECT_EQ(p.startup.protocol_version, kProtocolVersion3);
  EXPECT_THAT(p.startup.params,
              ElementsAre(Pair("user", "alice"), Pair("database", "app"),
                          Pair("application_name", ""), Pair("options", "-c search_path=x")));
  EXPECT_EQ(p.startup.Get("user"), "alice");
  EXPECT_EQ(p.startup.Get("database"), "app");
  EXPECT_EQ(p.startup.Get("missing"), "");
}

TEST(StartupPacketTest, NoParamsIsFine) {
  ASSERT_OK_AND_ASSIGN(StartupPacket p, ParseStartupBytes(Startup({})));
  EXPECT_EQ(p.kind, StartupPacket::Kind::kStartup);
  EXPECT_TRUE(p.startup.params.empty());
}

TEST(StartupPacketTest, MinorVersionIsAccepted) {
  ASSERT_OK_AND_ASSIGN(StartupPacket p,
                       ParseStartupBytes(Startup({{"user", "u"}}, (3u << 16) | 2)));
  EXPECT_EQ(p.kind, StartupPacket::Kind::kStartup);
  EXPECT_EQ(p.startup.protocol_version, (3u << 16) | 2);
  EXPECT_EQ(p.startup.Get("user"), "u");
}

TEST(StartupPacketTest, SpecialRequests) {
  ASSERT_OK_AND_ASSIGN(StartupPacket ssl,
                       ParseStartupBytes(Untyped(Body().UInt32(kSslRequestCode))));
  EXPECT_EQ(ssl.kind, StartupPacket::Kind::kSslRequest);
  ASSERT_OK_AND_ASSIGN(StartupPacket gss,
                       ParseStartupBytes(Untyped(Body().UInt32(kGssEncRequestCode))));
  EXPECT_EQ(gss.kind, StartupPacket::Kind::kGssEncRequest);
  ASSERT_OK_AND_ASSIGN(
      StartupPacket cancel,
      ParseStartupBytes(Untyped(Body().UInt32(kCancelRequestCode).Int32(1234).Int32(-5))));
  EXPECT_EQ(cancel.kind, StartupPacket::Kind::kCancel);
  EXPECT_EQ(cancel.cancel.pid, 1234);
  EXPECT_EQ(cancel.cancel.secret, -5);
}

TEST(StartupPacketTest, UnsupportedVersions) {
  for (uint32_t version : {2u << 16, 4u << 16, 1234u, 0u}) {
    auto p = ParseStartupBytes(Startup({{"user", "u"}}, version));
    EXPECT_THAT(p, HasSqlState("08P01")) << version;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("unsupported frontend protocol"));
  }
}

struct MalformedStartup {
  const char* name;
  std::string bytes;
};
class MalformedStartupTest : public ::testing::TestWithParam<MalformedStartup> {};
TEST_P(MalformedStartupTest, Is08P01) {
  EXPECT_THAT(ParseStartupBytes(GetParam().bytes), HasSqlState("08P01"));
}
INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedStartupTest,
    ::testing::Values(
        MalformedStartup{"no_terminator",
                         Untyped(Body().UInt32(kProtocolVersion3).CStr("user").CStr("u"))},
        MalformedStartup{"value_missing", Untyped(Body().UInt32(kProtocolVersion3).CStr("user"))},
        MalformedStartup{"unterminated_value",
                         Untyped(Body().UInt32(kProtocolVersion3).CStr("user").Raw("u"))},
        MalformedStartup{"trailing_after_terminator",
                         Untyped(Body().UInt32(kProtocolVersion3).Int8(0).Raw("x"))},
        MalformedStartup{"ssl_with_extra", Untyped(Body().UInt32(kSslRequestCode).Int8(0))},
        MalformedStartup{"gss_with_extra", Untyped(Body().UInt32(kGssEncRequestCode).Int32(0))},
        MalformedStartup{"cancel_short", Untyped(Body().UInt32(kCancelRequestCode).Int32(1))},
        MalformedStartup{"cancel_long",
                         Untyped(Body().UInt32(kCancelRequestCode).Int32(1).Int32(2).Int8(0))}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(StartupPacketTest, ShortBodyFromHandMadeFrame) {
  Frame f;
  f.body = std::string_view("\0\3", 2);
  EXPECT_THAT(ParseStartupPacket(f), HasSqlState("08P01"));
}

// ---- Frontend messages.

TEST(QueryTest, Parses) {
  ASSERT_OK_AND_ASSIGN(Query q, ParseQuery(Keep(Body().CStr("select 1"))));
  EXPECT_EQ(q.sql, "select 1");
}

TEST(ParseTest, NameSqlAndTypes) {
  ASSERT_OK_AND_ASSIGN(
      Parse p,
      ParseParse(
          Keep(Body().CStr("s1").CStr("select $1, $2").Int16(2).UInt32(23).UInt32(0xFFFFFFF0u))));
  EXPECT_EQ(p.name, "s1");
  EXPECT_EQ(p.sql, "select $1, $2");
  EXPECT_THAT(p.param_types, ElementsAre(23u, 0xFFFFFFF0u));
}

TEST(BindTest, AllFields) {
  const std::string body = Body()
                               .CStr("p1")
                               .CStr("s1")
                               .Int16(3)
                               .Int16(0)
                               .Int16(1)
                               .Int16(1)
                               .Int16(3)
                               .Value("42")
                               .Null()
                               .Value(std::string("\0\1", 2))
                               .Int16(1)
                               .Int16(1);
  ASSERT_OK_AND_ASSIGN(Bind b, ParseBind(body));
  EXPECT_EQ(b.portal, "p1");
  EXPECT_EQ(b.statement, "s1");
  ASSERT_EQ(b.params.size(), 3u);
  EXPECT_THAT(b.params[0], Optional(std::string_view("42")));
  EXPECT_EQ(b.params[1], std::nullopt);
  EXPECT_THAT(b.params[2], Optional(std::string_view("\0\1", 2)));
  EXPECT_THAT(b.param_formats, ElementsAre(0, 1, 1));
  EXPECT_EQ(b.ParamFormat(0), 0);
  EXPECT_EQ(b.ParamFormat(2), 1);
  EXPECT_THAT(b.result_formats, ElementsAre(1));
}

TEST(BindTest, EmptyValueIsNotNull) {
  ASSERT_OK_AND_ASSIGN(
      Bind b, ParseBind(Keep(Body().CStr("").CStr("").Int16(0).Int16(1).Value("").Int16(0))));
  ASSERT_EQ(b.params.size(), 1u);
  EXPECT_THAT(b.params[0], Optional(std::string_view("")));
}

// PostgreSQL's format rule: no codes = all text, one code = all params, n codes = one each.
struct FormatCase {
  const char* name;
  std::vector<int16_t> formats;
  int nparams;
  std::vector<int16_t> expected;
};
class BindFormatTest : public ::testing::TestWithParam<FormatCase> {};
TEST_P(BindFormatTest, ResolvesFormatCodes) {
  Body b;
  b.CStr("").CStr("").Int16(static_cast<int16_t>(GetParam().formats.size()));
  for (int16_t f : GetParam().formats) b.Int16(f);
  b.Int16(static_cast<int16_t>(GetParam().nparams));
  for (int i = 0; i < GetParam().nparams; ++i) b.Value("v");
  b.Int16(0);
  ASSERT_OK_AND_ASSIGN(Bind bind, ParseBind(Keep(b)));
  for (int i = 0; i < GetParam().nparams; ++i) {
    EXPECT_EQ(bind.ParamFormat(i), GetParam().expected[i]) << i;
  }
}
INSTANTIATE_TEST_SUITE_P(Rules, BindFormatTest,
                         ::testing::Values(FormatCase{"none_all_text", {}, 3, {0, 0, 0}},
                                           FormatCase{"one_binary_for_all", {1}, 3, {1, 1, 1}},
                                           FormatCase{"one_text_for_all", {0}, 2, {0, 0}},
                                           FormatCase{"each", {1, 0, 1}, 3, {1, 0, 1}},
                                           FormatCase{"one_with_one_param", {1}, 1, {1}}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(BindTest, FormatCountMustMatchParams) {
  EXPECT_THAT(ParseBind(Keep(Body()
                                 .CStr("")
                                 .CStr("")
                                 .Int16(2)
                                 .Int16(0)
                                 .Int16(1)
                                 .Int16(3)
                                 .Value("a")
                                 .Value("b")
                                 .Value("c")
                                 .Int16(0))),
              HasSqlState("08P01"));
}

TEST(DescribeCloseTest, Kinds) {
  ASSERT_OK_AND_ASSIGN(Describe d, ParseDescribe(Keep(Body().Char('P').CStr("portal"))));
  EXPECT_EQ(d.kind, 'P');
  EXPECT_EQ(d.name, "portal");
  ASSERT_OK_AND_ASSIGN(Close c, ParseClose(Keep(Body().Char('S').CStr(""))));
  EXPECT_EQ(c.kind, 'S');
  EXPECT_EQ(c.name, "");
}

TEST(ExecuteTest, PortalAndMaxRows) {
  ASSERT_OK_AND_ASSIGN(Execute e, ParseExecute(Keep(Body().CStr("c1").Int32(100))));
  EXPECT_EQ(e.portal, "c1");
  EXPECT_EQ(e.max_rows, 100);
}

TEST(PasswordTest, Cleartext) {
  ASSERT_OK_AND_ASSIGN(std::string_view pw, ParsePasswordMessage(Keep(Body().CStr("secret"))));
  EXPECT_EQ(pw, "secret");
}

TEST(SaslInitialResponseTest, MechanismAndData) {
  ASSERT_OK_AND_ASSIGN(
      SaslInitialResponse s,
      ParseSaslInitialResponse(Keep(Body().CStr("SCRAM-SHA-256").Value("n,,n=,r=x"))));
  EXPECT_EQ(s.mechanism, "SCRAM-SHA-256");
  EXPECT_EQ(s.data, "n,,n=,r=x");
  ASSERT_OK_AND_ASSIGN(SaslInitialResponse none,
                       ParseSaslInitialResponse(Keep(Body().CStr("SCRAM-SHA-256").Int32(-1))));
  EXPECT_EQ(none.data, "");
}

// ---- Backend messages.

TEST(AuthenticationTest, Codes) {
  ASSERT_OK_AND_ASSIGN(Authentication ok, ParseAuthentication(Keep(Body().Int32(0))));
  EXPECT_EQ(ok.code, AuthCode::kOk);
  ASSERT_OK_AND_ASSIGN(Authentication md5, ParseAuthentication(Keep(Body().Int32(5).Raw("salt"))));
  EXPECT_EQ(md5.code, AuthCode::kMd5);
  EXPECT_EQ(md5.data, "salt");
  ASSERT_OK_AND_ASSIGN(
      Authentication sasl,
      ParseAuthentication(
          Keep(Body().Int32(10).CStr("SCRAM-SHA-256-PLUS").CStr("SCRAM-SHA-256").Int8(0))));
  EXPECT_EQ(sasl.code, AuthCode::kSasl);
  EXPECT_THAT(SaslMechanisms(sasl.data), ElementsAre("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"));
  ASSERT_OK_AND_ASSIGN(Authentication cont,
                       ParseAuthentication(Keep(Body().Int32(11).Raw("r=abc"))));
  EXPECT_EQ(cont.code, AuthCode::kSaslContinue);
  EXPECT_EQ(cont.data, "r=abc");
}

TEST(SaslMechanismsTest, StopsAtMissingTerminator) {
  EXPECT_THAT(SaslMechanisms(Keep(std::string("A\0B", 3))), ElementsAre("A"));
  EXPECT_TRUE(SaslMechanisms("").empty());
}

TEST(BackendKeyDataTest, Parses) {
  ASSERT_OK_AND_ASSIGN(BackendKeyData k, ParseBackendKeyData(Keep(Body().Int32(77).Int32(-1))));
  EXPECT_EQ(k.pid, 77);
  EXPECT_EQ(k.secret, -1);
}

TEST(ParameterStatusTest, Parses) {
  ASSERT_OK_AND_ASSIGN(ParameterStatus p,
                       ParseParameterStatus(Keep(Body().CStr("server_version").CStr("15.4"))));
  EXPECT_EQ(p.name, "server_version");
  EXPECT_EQ(p.value, "15.4");
}

TEST(ReadyForQueryTest, States) {
  for (char c : {'I', 'T', 'E'}) {
    ASSERT_OK_AND_ASSIGN(ReadyForQuery r, ParseReadyForQuery(std::string(1, c)));
    EXPECT_EQ(r.status, c);
  }
}

TEST(CommandCompleteTest, Tag) {
  ASSERT_OK_AND_ASSIGN(CommandComplete c, ParseCommandComplete(Keep(Body().CStr("INSERT 0 1"))));
  EXPECT_EQ(c.tag, "INSERT 0 1");
}

TEST(ErrorFieldsTest, FieldsInOrder) {
  ASSERT_OK_AND_ASSIGN(ErrorFields e,
                       ParseErrorFields(Keep(Body()
                                                 .Char('S')
                                                 .CStr("ERROR")
                                                 .Char('C')
                                                 .CStr("42P01")
                                                 .Char('M')
                                                 .CStr("relation \"t\" does not exist")
                                                 .Char('P')
                                                 .CStr("15")
                                                 .Int8(0))));
  EXPECT_EQ(e.fields.size(), 4u);
  EXPECT_EQ(e.SqlState(), "42P01");
  EXPECT_EQ(e.Message(), "relation \"t\" does not exist");
  EXPECT_EQ(e.Get('P'), "15");
  EXPECT_EQ(e.Get('H'), "");
}

TEST(ErrorFieldsTest, OnlyTerminator) {
  ASSERT_OK_AND_ASSIGN(ErrorFields e, ParseErrorFields(std::string(1, '\0')));
  EXPECT_TRUE(e.fields.empty());
}

TEST(RowDescriptionTest, Fields) {
  ASSERT_OK_AND_ASSIGN(RowDescription d, ParseRowDescription(Keep(Body()
                                                                      .Int16(2)
                                                                      .CStr("id")
                                                                      .UInt32(16384)
                                                                      .Int16(1)
                                                                      .UInt32(20)
                                                                      .Int16(8)
                                                                      .Int32(-1)
                                                                      .Int16(0)
                                                                      .CStr("")
                                                                      .UInt32(0)
                                                                      .Int16(0)
                                                                      .UInt32(25)
                                                                      .Int16(-1)
                                                                      .Int32(-1)
                                                                      .Int16(1))));
  ASSERT_EQ(d.fields.size(), 2u);
  EXPECT_EQ(d.fields[0].name, "id");
  EXPECT_EQ(d.fields[0].table_oid, 16384u);
  EXPECT_EQ(d.fields[0].column, 1);
  EXPECT_EQ(d.fields[0].type_oid, 20u);
  EXPECT_EQ(d.fields[0].type_size, 8);
  EXPECT_EQ(d.fields[0].type_modifier, -1);
  EXPECT_EQ(d.fields[1].name, "");
  EXPECT_EQ(d.fields[1].type_size, -1);
  EXPECT_EQ(d.fields[1].format, 1);
}

TEST(DataRowTest, ValuesAndNulls) {
  ASSERT_OK_AND_ASSIGN(DataRow r, ParseDataRow(Keep(Body().Int16(3).Value("1").Null().Value(""))));
  ASSERT_EQ(r.values.size(), 3u);
  EXPECT_THAT(r.values[0], Optional(std::string_view("1")));
  EXPECT_EQ(r.values[1], std::nullopt);
  EXPECT_THAT(r.values[2], Optional(std::string_view("")));
  ASSERT_OK_AND_ASSIGN(DataRow empty, ParseDataRow(Keep(Body().Int16(0))));
  EXPECT_TRUE(empty.values.empty());
}

TEST(DataRowTest, ManyColumnsBeyondInlineCapacity) {
  Body b;
  b.Int16(40);
  for (int i = 0; i < 40; ++i) b.Value(std::to_string(i));
  ASSERT_OK_AND_ASSIGN(DataRow r, ParseDataRow(Keep(b)));
  ASSERT_EQ(r.values.size(), 40u);
  EXPECT_THAT(r.values[39], Optional(std::string_view("39")));
}

TEST(CopyResponseTest, Parses) {
  ASSERT_OK_AND_ASSIGN(CopyResponse c,
                       ParseCopyResponse(Keep(Body().Int8(1).Int16(2).Int16(1).Int16(0))));
  EXPECT_EQ(c.format, 1);
  EXPECT_THAT(c.column_formats, ElementsAre(1, 0));
}

TEST(NotificationTest, Parses) {
  ASSERT_OK_AND_ASSIGN(NotificationResponse n,
                       ParseNotification(Keep(Body().Int32(9).CStr("chan").CStr("payload"))));
  EXPECT_EQ(n.pid, 9);
  EXPECT_EQ(n.channel, "chan");
  EXPECT_EQ(n.payload, "payload");
}

// ---- Malformed bodies, all 08P01.

using Parser = std::function<absl::Status(std::string_view)>;
template <typename F>
Parser Wrap(F f) {
  return [f](std::string_view b) { return f(b).status(); };
}

struct MalformedCase {
  const char* name;
  Parser parse;
  std::string body;
};
class MalformedTest : public ::testing::TestWithParam<MalformedCase> {};
TEST_P(MalformedTest, Is08P01) {
  EXPECT_THAT(GetParam().parse(GetParam().body), HasSqlState("08P01"));
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, MalformedTest,
    ::testing::Values(
        MalformedCase{"query_empty", Wrap(ParseQuery), ""},
        MalformedCase{"query_unterminated", Wrap(ParseQuery), "select 1"},
        MalformedCase{"query_after_nul", Wrap(ParseQuery), Body().CStr("select 1").Raw("x")},
        MalformedCase{"parse_no_sql", Wrap(ParseParse), Body().CStr("s")},
        MalformedCase{"parse_no_count", Wrap(ParseParse), Body().CStr("s").CStr("q")},
        MalformedCase{"parse_negative_count", Wrap(ParseParse),
                      Body().CStr("s").CStr("q").Int16(-1)},
        MalformedCase{"parse_count_too_big", Wrap(ParseParse),
                      Body().CStr("s").CStr("q").Int16(2).UInt32(23)},
        MalformedCase{"parse_trailing", Wrap(ParseParse),
                      Body().CStr("s").CStr("q").Int16(0).Int8(0)},
        MalformedCase{"bind_empty", Wrap(ParseBind), ""},
        MalformedCase{"bind_negative_formats", Wrap(ParseBind), Body().CStr("").CStr("").Int16(-1)},
        MalformedCase{"bind_negative_params", Wrap(ParseBind),
                      Body().CStr("").CStr("").Int16(0).Int16(-3)},
        MalformedCase{"bind_length_below_minus_one", Wrap(ParseBind),
                      Body().CStr("").CStr("").Int16(0).Int16(1).Int32(-2).Int16(0)},
        MalformedCase{"bind_value_past_end", Wrap(ParseBind),
                      Body().CStr("").CStr("").Int16(0).Int16(1).Int32(100).Raw("abc")},
        MalformedCase{"bind_huge_length", Wrap(ParseBind),
                      Body().CStr("").CStr("").Int16(0).Int16(1).Int32(0x7FFFFFFF)},
        MalformedCase{"bind_no_result_formats", Wrap(ParseBind),
                      Body().CStr("").CStr("").Int16(0).Int16(0)},
        MalformedCase{"bind_negative_result_formats", Wrap(ParseBind),
                      Body().CStr("").CStr("").Int16(0).Int16(0).Int16(-1)},
        MalformedCase{"bind_trailing", Wrap(ParseBind),
                      Body().CStr("").CStr("").Int16(0).Int16(0).Int16(0).Int8(1)},
        MalformedCase{"describe_bad_kind", Wrap(ParseDescribe), Body().Char('X').CStr("")},
        MalformedCase{"describe_empty", Wrap(ParseDescribe), ""},
        MalformedCase{"describe_unterminated", Wrap(ParseDescribe), Body().Char('S').Raw("n")},
        MalformedCase{"close_bad_kind", Wrap(ParseClose), Body().Char('s').CStr("")},
        MalformedCase{"execute_short", Wrap(ParseExecute), Body().CStr("").Int16(0)},
        MalformedCase{"execute_trailing", Wrap(ParseExecute), Body().CStr("").Int32(0).Int8(0)},
        MalformedCase{"password_unterminated", Wrap(ParsePasswordMessage), "secret"},
        MalformedCase{"password_trailing", Wrap(ParsePasswordMessage), Body().CStr("a").CStr("b")},
        MalformedCase{"sasl_no_length", Wrap(ParseSaslInitialResponse),
                      Body().CStr("SCRAM-SHA-256")},
        MalformedCase{"sasl_length_past_end", Wrap(ParseSaslInitialResponse),
                      Body().CStr("SCRAM-SHA-256").Int32(10).Raw("abc")},
        MalformedCase{"sasl_length_negative", Wrap(ParseSaslInitialResponse),
                      Body().CStr("SCRAM-SHA-256").Int32(-2)},
        MalformedCase{"sasl_trailing", Wrap(ParseSaslInitialResponse),
                      Body().CStr("SCRAM-SHA-256").Int32(1).Raw("ab")},
        MalformedCase{"auth_short", Wrap(ParseAuthentication), Body().Int16(0)},
        MalformedCase{"auth_ok_with_data", Wrap(ParseAuthentication), Body().Int32(0).Int8(0)},
        MalformedCase{"auth_md5_short_salt", Wrap(ParseAuthentication), Body().Int32(5).Raw("ab")},
        MalformedCase{"auth_cleartext_with_data", Wrap(ParseAuthentication),
                      Body().Int32(3).Raw("x")},
        MalformedCase{"keydata_short", Wrap(ParseBackendKeyData), Body().Int32(1)},
        MalformedCase{"keydata_long", Wrap(ParseBackendKeyData), Body().Int32(1).Int32(2).Int8(3)},
        MalformedCase{"paramstatus_one", Wrap(ParseParameterStatus), Body().CStr("a")},
        MalformedCase{"rfq_empty", Wrap(ParseReadyForQuery), ""},
        MalformedCase{"rfq_bad", Wrap(ParseReadyForQuery), "X"},
        MalformedCase{"rfq_long", Wrap(ParseReadyForQuery), "II"},
        MalformedCase{"cc_unterminated", Wrap(ParseCommandComplete), "SELECT 1"},
        MalformedCase{"error_empty", Wrap(ParseErrorFields), ""},
        MalformedCase{"error_no_terminator", Wrap(ParseErrorFields), Body().Char('C').CStr("x")},
        MalformedCase{"error_unterminated_value", Wrap(ParseErrorFields),
                      Body().Char('C').Raw("xx")},
        MalformedCase{"error_trailing", Wrap(ParseErrorFields), Body().Int8(0).Raw("x")},
        MalformedCase{"rowdesc_negative", Wrap(ParseRowDescription), Body().Int16(-1)},
        MalformedCase{"rowdesc_truncated_field", Wrap(ParseRowDescription),
                      Body().Int16(1).CStr("id").UInt32(1).Int16(1)},
        MalformedCase{"rowdesc_count_too_big", Wrap(ParseRowDescription),
                      Body().Int16(1000).CStr("id")},
        MalformedCase{"datarow_empty", Wrap(ParseDataRow), ""},
        MalformedCase{"datarow_negative", Wrap(ParseDataRow), Body().Int16(-1)},
        MalformedCase{"datarow_short_value", Wrap(ParseDataRow),
                      Body().Int16(1).Int32(5).Raw("ab")},
        MalformedCase{"datarow_length_minus_two", Wrap(ParseDataRow), Body().Int16(1).Int32(-2)},
        MalformedCase{"datarow_missing_column", Wrap(ParseDataRow), Body().Int16(2).Value("a")},
        MalformedCase{"datarow_trailing", Wrap(ParseDataRow), Body().Int16(1).Value("a").Int8(0)},
        MalformedCase{"copy_short", Wrap(ParseCopyResponse), Body().Int8(0).Int8(0)},
        MalformedCase{"copy_negative", Wrap(ParseCopyResponse), Body().Int8(0).Int16(-1)},
        MalformedCase{"copy_missing_formats", Wrap(ParseCopyResponse),
                      Body().Int8(0).Int16(2).Int16(0)},
        MalformedCase{"notify_no_payload", Wrap(ParseNotification), Body().Int32(1).CStr("c")}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace shardgate::protocol
