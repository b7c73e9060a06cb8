// GoogleTest matchers for absl::Status / absl::StatusOr and our SQLSTATE-carrying errors.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "protocol/status.h"

namespace shardgate::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status: " << s;
  return s.ok();
}

// StatusIs(absl::StatusCode::kInvalidArgument) or StatusIs(code, HasSubstr("..."))
MATCHER_P(StatusIs, code, "has status code " + ::testing::PrintToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s;
  return s.code() == code;
}
MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()),
                                       result_listener);
}

// HasSqlState("08P01")
MATCHER_P(HasSqlState, sqlstate, "carries SQLSTATE " + std::string(sqlstate)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s << " sqlstate: " << ::shardgate::SqlState(s);
  return !s.ok() && ::shardgate::SqlState(s) == sqlstate;
}

}  // namespace shardgate::testing

#define ASSERT_OK(expr) ASSERT_THAT(expr, ::shardgate::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT(expr, ::shardgate::testing::IsOk())
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                 \
  auto SHARDGATE_CONCAT_(_sor_, __LINE__) = (expr);                     \
  ASSERT_OK(SHARDGATE_CONCAT_(_sor_, __LINE__));                        \
  lhs = std::move(*SHARDGATE_CONCAT_(_sor_, __LINE__))
