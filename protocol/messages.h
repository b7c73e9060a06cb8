// Typed, non-owning views of the protocol messages that routing and the proxy need to look into.
// Every view points into the frame body it was parsed from (valid while that buffer is unchanged).
// Parse* functions validate every length and terminator and return 08P01 on malformed input.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "protocol/frame_reader.h"

namespace shardgate::protocol {

// ---- Frontend (client -> server) message type bytes.
namespace fe {
inline constexpr char kQuery = 'Q', kParse = 'P', kBind = 'B', kDescribe = 'D', kExecute = 'E',
                      kClose = 'C', kSync = 'S', kFlush = 'H', kTerminate = 'X',
                      kPassword = 'p',  // PasswordMessage, SASLInitialResponse, SASLResponse
                      kCopyData = 'd', kCopyDone = 'c', kCopyFail = 'f', kFunctionCall = 'F';
}  // namespace fe

// ---- Backend (server -> client) message type bytes.
namespace be {
inline constexpr char kAuthentication = 'R', kBackendKeyData = 'K', kParameterStatus = 'S',
                      kReadyForQuery = 'Z', kRowDescription = 'T', kDataRow = 'D',
                      kCommandComplete = 'C', kEmptyQuery = 'I', kErrorResponse = 'E',
                      kNoticeResponse = 'N', kNotification = 'A', kParseComplete = '1',
                      kBindComplete = '2', kCloseComplete = '3', kNoData = 'n',
                      kParameterDescription = 't', kPortalSuspended = 's',
                      kCopyInResponse = 'G', kCopyOutResponse = 'H', kCopyBothResponse = 'W',
                      kCopyData = 'd', kCopyDone = 'c', kNegotiateProtocolVersion = 'v',
                      kFunctionCallResponse = 'V';
}  // namespace be

// Authentication request codes (body of 'R').
enum class AuthCode : int32_t {
  kOk = 0, kCleartext = 3, kMd5 = 5, kSasl = 10, kSaslContinue = 11, kSaslFinal = 12,
};

struct StartupMessage {
  uint32_t protocol_version = 0;
  // (name, value) pairs in the order sent: user, database, application_name, options, ...
  absl::InlinedVector<std::pair<std::string_view, std::string_view>, 8> params;
  std::string_view Get(std::string_view name) const;  // empty when absent
};

struct CancelRequest {
  int32_t pid = 0;
  int32_t secret = 0;
};

// An untyped startup-phase packet, classified.
struct StartupPacket {
  enum class Kind { kStartup, kSslRequest, kGssEncRequest, kCancel } kind = Kind::kStartup;
  StartupMessage startup;  // kStartup
  CancelRequest cancel;    // kCancel
};
// Unsupported protocol versions (not 3.x) are an 08P01/0A000 error.
absl::StatusOr<StartupPacket> ParseStartupPacket(const Frame& frame);

struct Query {
  std::string_view sql;
};
absl::StatusOr<Query> ParseQuery(std::string_view body);

struct Parse {
  std::string_view name;  // "" = unnamed statement
  std::string_view sql;
  absl::InlinedVector<uint32_t, 8> param_types;  // 0 = unspecified
};
absl::StatusOr<Parse> ParseParse(std::string_view body);

struct Bind {
  std::string_view portal;
  std::string_view statement;
  absl::InlinedVector<int16_t, 8> param_formats;  // 0 text, 1 binary; PG's 0/1/n rule applies
  absl::InlinedVector<std::optional<std::string_view>, 8> params;  // nullopt = NULL
  absl::InlinedVector<int16_t, 8> result_formats;
  int16_t ParamFormat(size_t i) const;  // resolves the 0/1/n format-code rule
};
absl::StatusOr<Bind> ParseBind(std::string_view body);

struct Describe {
  char kind = 'S';  // 'S' statement, 'P' portal
  std::string_view name;
};
absl::StatusOr<Describe> ParseDescribe(std::string_view body);

struct Close {
  char kind = 'S';
  std::string_view name;
};
absl::StatusOr<Close> ParseClose(std::string_view body);

struct Execute {
  std::string_view portal;
  int32_t max_rows = 0;
};
absl::StatusOr<Execute> ParseExecute(std::string_view body);

// 'p' body in its three meanings; which one depends on the auth state of the caller.
absl::StatusOr<std::string_view> ParsePasswordMessage(std::string_view body);  // cleartext/md5
struct SaslInitialResponse {
  std::string_view mechanism;
  std::string_view data;  // client-first-message
};
absl::StatusOr<SaslInitialResponse> ParseSaslInitialResponse(std::string_view body);
// SASLResponse: the body is the raw data.

struct Authentication {
  AuthCode code = AuthCode::kOk;
  std::string_view data;  // md5: 4-byte salt; SASL: mechanism list / server data
};
absl::StatusOr<Authentication> ParseAuthentication(std::string_view body);
// For AuthCode::kSasl: the mechanism names in `data`.
std::vector<std::string_view> SaslMechanisms(std::string_view data);

struct BackendKeyData {
  int32_t pid = 0;
  int32_t secret = 0;
};
absl::StatusOr<BackendKeyData> ParseBackendKeyData(std::string_view body);

struct ParameterStatus {
  std::string_view name;
  std::string_view value;
};
absl::StatusOr<ParameterStatus> ParseParameterStatus(std::string_view body);

struct ReadyForQuery {
  char status = 'I';  // 'I' idle, 'T' in transaction, 'E' failed transaction
};
absl::StatusOr<ReadyForQuery> ParseReadyForQuery(std::string_view body);

struct CommandComplete {
  std::string_view tag;  // "SELECT 3", "INSERT 0 1", ...
};
absl::StatusOr<CommandComplete> ParseCommandComplete(std::string_view body);

// ErrorResponse and NoticeResponse: (field code, value) pairs.
struct ErrorFields {
  absl::InlinedVector<std::pair<char, std::string_view>, 8> fields;
  std::string_view Get(char code) const;  // 'S','V','C','M','D','H','P',...; empty when absent
  std::string_view SqlState() const { return Get('C'); }
  std::string_view Message() const { return Get('M'); }
};
absl::StatusOr<ErrorFields> ParseErrorFields(std::string_view body);
// An ErrorResponse body as a status carrying its SQLSTATE (XX000 when it has none), message,
// hint and detail; the parse error when the body is malformed.
absl::Status ErrorResponseStatus(std::string_view body);

struct FieldDescription {
  std::string_view name;
  uint32_t table_oid = 0;
  int16_t column = 0;
  uint32_t type_oid = 0;
  int16_t type_size = 0;
  int32_t type_modifier = 0;
  int16_t format = 0;
};
struct RowDescription {
  absl::InlinedVector<FieldDescription, 16> fields;
};
absl::StatusOr<RowDescription> ParseRowDescription(std::string_view body);

struct DataRow {
  absl::InlinedVector<std::optional<std::string_view>, 16> values;  // nullopt = NULL
};
absl::StatusOr<DataRow> ParseDataRow(std::string_view body);

struct CopyResponse {  // CopyInResponse / CopyOutResponse / CopyBothResponse
  int8_t format = 0;
  absl::InlinedVector<int16_t, 16> column_formats;
};
absl::StatusOr<CopyResponse> ParseCopyResponse(std::string_view body);

struct NotificationResponse {
  int32_t pid = 0;
  std::string_view channel;
  std::string_view payload;
};
absl::StatusOr<NotificationResponse> ParseNotification(std::string_view body);

}  // namespace shardgate::protocol
