// Tests of PgStatus: SQLSTATE, hint and detail carried through absl::Status, and the fallbacks.
#include "protocol/status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/status_matchers.h"

namespace shardgate {
namespace {

using ::shardgate::testing::HasSqlState;
using ::testing::HasSubstr;

TEST(PgStatusTest, CarriesSqlStateMessageHintDetail) {
  absl::Status s = PgStatus("0A000", "cross-shard join", "add the shard key", "tables a, b");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(SqlState(s), "0A000");
  EXPECT_EQ(std::string(s.message()), "cross-shard join");
  EXPECT_EQ(Hint(s), "add the shard key");
  EXPECT_EQ(Detail(s), "tables a, b");
  EXPECT_THAT(s, HasSqlState("0A000"));
}

TEST(PgStatusTest, HintAndDetailEmptyWhenAbsent) {
  absl::Status s = PgStatus("08P01", "bad");
  EXPECT_EQ(Hint(s), "");
  EXPECT_EQ(Detail(s), "");
}

TEST(PgStatusTest, NeverOkEvenForUnknownClass) {
  EXPECT_FALSE(PgStatus("P0001", "raise").ok());
  EXPECT_EQ(SqlState(PgStatus("P0001", "raise")), "P0001");
}

TEST(PgStatusTest, SurvivesCopyAndStatusOr) {
  absl::StatusOr<int> v = PgStatus("28P01", "password authentication failed");
  absl::Status copy = v.status();
  EXPECT_EQ(SqlState(copy), "28P01");
}

TEST(PgStatusTest, ReturnIfErrorPropagatesPayloads) {
  auto inner = [] { return PgStatus("53300", "too many", "raise max_client_conn"); };
  auto outer = [&]() -> absl::Status {
    RETURN_IF_ERROR(inner());
    return absl::OkStatus();
  };
  absl::Status s = outer();
  EXPECT_EQ(SqlState(s), "53300");
  EXPECT_EQ(Hint(s), "raise max_client_conn");
}

TEST(PgStatusTest, AssignOrReturn) {
  auto make = [](bool ok) -> absl::StatusOr<int> {
    if (ok) return 7;
    return PgStatus("42601", "syntax");
  };
  auto use = [&](bool ok) -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(int x, make(ok));
    return x + 1;
  };
  EXPECT_EQ(*use(true), 8);
  EXPECT_EQ(SqlState(use(false).status()), "42601");
}

// Statuses made without a SQLSTATE map by code, as status.h documents.
struct CodeCase {
  absl::StatusCode code;
  const char* sqlstate;
};
class SqlStateFallbackTest : public ::testing::TestWithParam<CodeCase> {};

TEST_P(SqlStateFallbackTest, MapsCode) {
  absl::Status s(GetParam().code, "x");
  EXPECT_EQ(SqlState(s), GetParam().sqlstate);
}

INSTANTIATE_TEST_SUITE_P(Codes, SqlStateFallbackTest,
                         ::testing::Values(CodeCase{absl::StatusCode::kInvalidArgument, "22023"},
                                           CodeCase{absl::StatusCode::kUnavailable, "08006"},
                                           CodeCase{absl::StatusCode::kResourceExhausted, "53300"},
                                           CodeCase{absl::StatusCode::kUnimplemented, "0A000"},
                                           CodeCase{absl::StatusCode::kDeadlineExceeded, "57014"},
                                           CodeCase{absl::StatusCode::kInternal, "XX000"},
                                           CodeCase{absl::StatusCode::kNotFound, "XX000"},
                                           CodeCase{absl::StatusCode::kUnknown, "XX000"}));

TEST(ToPgErrorTest, FillsAllFields) {
  PgError e = ToPgError(PgStatus("3D000", "database \"x\" does not exist", "h", "d"), "FATAL");
  EXPECT_EQ(e.severity, "FATAL");
  EXPECT_EQ(e.sqlstate, "3D000");
  EXPECT_EQ(e.message, "database \"x\" does not exist");
  EXPECT_EQ(e.hint, "h");
  EXPECT_EQ(e.detail, "d");
}

TEST(ToPgErrorTest, DefaultsToErrorSeverity) {
  PgError e = ToPgError(absl::UnavailableError("shard s1 down"));
  EXPECT_EQ(e.severity, "ERROR");
  EXPECT_EQ(e.sqlstate, "08006");
  EXPECT_THAT(e.message, HasSubstr("shard s1 down"));
}

TEST(ToPgErrorTest, EmptyMessageGetsAName) {
  PgError e = ToPgError(absl::Status(absl::StatusCode::kInternal, ""));
  EXPECT_FALSE(e.message.empty());
}

TEST(StringViewBridgeTest, RoundTripsWithoutCopy) {
  std::string s = "abc";
  std::string_view v = s;
  EXPECT_EQ(StdView(AbslView(v)).data(), s.data());
  EXPECT_EQ(StdView(AbslView(v)).size(), 3u);
}

}  // namespace
}  // namespace shardgate
