// PgStatus: absl::Status values that carry a PostgreSQL SQLSTATE, hint and detail as payloads.
#include "protocol/status.h"

#include <string>
#include <string_view>

#include "absl/strings/cord.h"
#include "absl/types/optional.h"

namespace shardgate {
namespace {

// Payload type URLs. They are private to this file: every reader goes through SqlState/Hint/
// Detail, so the spelling only has to be stable within one process.
constexpr std::string_view kSqlStateUrl = "shardgate/sqlstate";
constexpr std::string_view kHintUrl = "shardgate/hint";
constexpr std::string_view kDetailUrl = "shardgate/detail";

// The absl code a SQLSTATE travels under, so that code which only looks at absl codes (logs,
// retries) still sees a sensible category. The SQLSTATE payload stays the authority.
absl::StatusCode CodeForSqlState(std::string_view s) {
  if (s == "08P01") return absl::StatusCode::kInvalidArgument;  // malformed input
  if (s == "57014") return absl::StatusCode::kCancelled;
  if (s == "57P01") return absl::StatusCode::kUnavailable;
  if (s == "42P01" || s == "42703" || s == "42883") return absl::StatusCode::kNotFound;
  if (s.size() < 2) return absl::StatusCode::kUnknown;
  std::string_view cls = s.substr(0, 2);
  if (cls == "08") return absl::StatusCode::kUnavailable;
  if (cls == "28") return absl::StatusCode::kUnauthenticated;
  if (cls == "3D") return absl::StatusCode::kNotFound;
  if (cls == "0A") return absl::StatusCode::kUnimplemented;
  if (cls == "53" || cls == "54") return absl::StatusCode::kResourceExhausted;
  if (cls == "22" || cls == "42") return absl::StatusCode::kInvalidArgument;
  if (cls == "25") return absl::StatusCode::kFailedPrecondition;
  if (cls == "40") return absl::StatusCode::kAborted;
  if (cls == "57") return absl::StatusCode::kUnavailable;
  if (cls == "XX") return absl::StatusCode::kInternal;
  return absl::StatusCode::kUnknown;
}

std::string PayloadString(const absl::Status& status, std::string_view url) {
  absl::optional<absl::Cord> p = status.GetPayload(AbslView(url));
  return p.has_value() ? std::string(*p) : std::string();
}

}  // namespace

absl::Status PgStatus(std::string_view sqlstate, std::string_view message, std::string_view hint,
                      std::string_view detail) {
  absl::Status status(CodeForSqlState(sqlstate), AbslView(message));
  status.SetPayload(AbslView(kSqlStateUrl), absl::Cord(AbslView(sqlstate)));
  if (!hint.empty()) status.SetPayload(AbslView(kHintUrl), absl::Cord(AbslView(hint)));
  if (!detail.empty()) status.SetPayload(AbslView(kDetailUrl), absl::Cord(AbslView(detail)));
  return status;
}

std::string SqlState(const absl::Status& status) {
  if (status.ok()) return "00000";  // successful_completion; nobody should send it as an error
  std::string s = PayloadString(status, kSqlStateUrl);
  if (!s.empty()) return s;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return "22023";
    case absl::StatusCode::kUnavailable:
      return "08006";
    case absl::StatusCode::kResourceExhausted:
      return "53300";
    case absl::StatusCode::kUnimplemented:
      return "0A000";
    case absl::StatusCode::kDeadlineExceeded:
      return "57014";
    default:
      return "XX000";
  }
}

std::string Hint(const absl::Status& status) { return PayloadString(status, kHintUrl); }

std::string Detail(const absl::Status& status) { return PayloadString(status, kDetailUrl); }

PgError ToPgError(const absl::Status& status, std::string_view severity) {
  PgError e;
  e.severity = std::string(severity.empty() ? std::string_view("ERROR") : severity);
  e.sqlstate = SqlState(status);
  e.message = std::string(status.message());
  // A client must never see an empty message; fall back to the code's name.
  if (e.message.empty()) e.message = absl::StatusCodeToString(status.code());
  e.hint = Hint(status);
  e.detail = Detail(status);
  return e;
}

}  // namespace shardgate
