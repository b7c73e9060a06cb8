// Builders for protocol messages. Append to a caller-owned std::string so that a batch of
// messages goes out in one write and a reused buffer allocates nothing in steady state.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/messages.h"
#include "protocol/status.h"

namespace shardgate::protocol {

// Appends one message to `out`: Begin writes the type byte and a length placeholder, End
// patches the length. Nesting is not allowed. `type` 0 = untyped (startup-phase packet).
class MessageWriter {
 public:
  explicit MessageWriter(std::string& out) : out_(out) {}
  MessageWriter& Begin(char type);
  // Continues the message whose type byte is at `start` in out (e.g. a head kept from an
  // earlier message and copied in), so that End() writes its whole length.
  MessageWriter& Reopen(size_t start) {
    start_ = start + 1;
    return *this;
  }
  MessageWriter& Int8(int8_t v);
  MessageWriter& Int16(int16_t v);
  MessageWriter& Int32(int32_t v);
  MessageWriter& CString(std::string_view s);  // s followed by a NUL
  MessageWriter& Bytes(std::string_view s);    // raw bytes
  void End();

 private:
  std::string& out_;
  size_t start_ = 0;
};

// ---- Backend messages the proxy itself sends to clients.
void AppendAuthentication(std::string& out, AuthCode code, std::string_view data = {});
void AppendSaslMechanisms(std::string& out);  // AuthenticationSASL offering SCRAM-SHA-256
void AppendParameterStatus(std::string& out, std::string_view name, std::string_view value);
void AppendBackendKeyData(std::string& out, int32_t pid, int32_t secret);
void AppendReadyForQuery(std::string& out, char status);
void AppendError(std::string& out, const PgError& error);       // 'E'
void AppendError(std::string& out, const absl::Status& status);  // 'E' with SqlState(status)
void AppendNotice(std::string& out, const PgError& notice);      // 'N'
void AppendRowDescription(std::string& out, std::span<const FieldDescription> fields);
void AppendDataRow(std::string& out, std::span<const std::optional<std::string_view>> values);
void AppendCommandComplete(std::string& out, std::string_view tag);
void AppendEmptyQueryResponse(std::string& out);
void AppendParseComplete(std::string& out);
void AppendBindComplete(std::string& out);
void AppendCloseComplete(std::string& out);
void AppendNoData(std::string& out);

// ---- Frontend messages the proxy sends to servers.
void AppendStartup(std::string& out,
                   std::span<const std::pair<std::string_view, std::string_view>> params);
void AppendSslRequest(std::string& out);
void AppendCancelRequest(std::string& out, int32_t pid, int32_t secret);
void AppendPasswordMessage(std::string& out, std::string_view password);  // also md5 answer
void AppendSaslInitialResponse(std::string& out, std::string_view mechanism,
                               std::string_view data);
void AppendSaslResponse(std::string& out, std::string_view data);
void AppendQuery(std::string& out, std::string_view sql);
void AppendParse(std::string& out, std::string_view name, std::string_view sql,
                 std::span<const uint32_t> param_types = {});
void AppendBind(std::string& out, const Bind& bind);  // re-encodes a parsed Bind
void AppendDescribe(std::string& out, char kind, std::string_view name);
void AppendExecute(std::string& out, std::string_view portal, int32_t max_rows = 0);
void AppendClose(std::string& out, char kind, std::string_view name);
void AppendSync(std::string& out);
void AppendFlush(std::string& out);
void AppendTerminate(std::string& out);
void AppendCopyData(std::string& out, std::string_view data);
void AppendCopyDone(std::string& out);
void AppendCopyFail(std::string& out, std::string_view message);

}  // namespace shardgate::protocol
