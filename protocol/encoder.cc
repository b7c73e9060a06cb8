// Encoders for the PostgreSQL v3 messages the proxy itself produces, appended to caller buffers.
#include "protocol/encoder.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/frame_reader.h"

namespace shardgate::protocol {
namespace {

void PutBigEndian32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

// A message whose body is empty: type byte and length 4.
void AppendEmpty(std::string& out, char type) { MessageWriter(out).Begin(type).End(); }

void AppendErrorOrNotice(std::string& out, char type, const PgError& e) {
  MessageWriter w(out);
  w.Begin(type);
  // 'S' is localized in PostgreSQL, 'V' never is; we send both with the same English word.
  w.Bytes("S").CString(e.severity);
  w.Bytes("V").CString(e.severity);
  w.Bytes("C").CString(e.sqlstate);
  w.Bytes("M").CString(e.message);
  if (!e.detail.empty()) w.Bytes("D").CString(e.detail);
  if (!e.hint.empty()) w.Bytes("H").CString(e.hint);
  w.Int8(0);
  w.End();
}

}  // namespace

MessageWriter& MessageWriter::Begin(char type) {
  if (type != 0) out_.push_back(type);
  start_ = out_.size();  // where the length word goes; it counts itself, not the type byte
  out_.append(4, '\0');
  return *this;
}

MessageWriter& MessageWriter::Int8(int8_t v) {
  out_.push_back(static_cast<char>(v));
  return *this;
}

MessageWriter& MessageWriter::Int16(int16_t v) {
  const auto u = static_cast<uint16_t>(v);
  out_.push_back(static_cast<char>(u >> 8));
  out_.push_back(static_cast<char>(u));
  return *this;
}

MessageWriter& MessageWriter::Int32(int32_t v) {
  char b[4];
  PutBigEndian32(b, static_cast<uint32_t>(v));
  out_.append(b, 4);
  return *this;
}

MessageWriter& MessageWriter::CString(std::string_view s) {
  out_.append(s);
  out_.push_back('\0');
  return *this;
}

MessageWriter& MessageWriter::Bytes(std::string_view s) {
  out_.append(s);
  return *this;
}

void MessageWriter::End() {
  PutBigEndian32(out_.data() + start_, static_cast<uint32_t>(out_.size() - start_));
}

// ---- Backend messages.

void AppendAuthentication(std::string& out, AuthCode code, std::string_view data) {
  MessageWriter(out).Begin('R').Int32(static_cast<int32_t>(code)).Bytes(data).End();
}

void AppendSaslMechanisms(std::string& out) {
  MessageWriter(out)
      .Begin('R')
      .Int32(static_cast<int32_t>(AuthCode::kSasl))
      .CString("SCRAM-SHA-256")
      .Int8(0)
      .End();
}

void AppendParameterStatus(std::string& out, std::string_view name, std::string_view value) {
  MessageWriter(out).Begin('S').CString(name).CString(value).End();
}

void AppendBackendKeyData(std::string& out, int32_t pid, int32_t secret) {
  MessageWriter(out).Begin('K').Int32(pid).Int32(secret).End();
}

void AppendReadyForQuery(std::string& out, char status) {
  MessageWriter(out).Begin('Z').Bytes(std::string_view(&status, 1)).End();
}

void AppendError(std::string& out, const PgError& error) { AppendErrorOrNotice(out, 'E', error); }

void AppendError(std::string& out, const absl::Status& status) {
  AppendErrorOrNotice(out, 'E', ToPgError(status));
}

void AppendNotice(std::string& out, const PgError& notice) {
  AppendErrorOrNotice(out, 'N', notice);
}

void AppendRowDescription(std::string& out, std::span<const FieldDescription> fields) {
  MessageWriter w(out);
  w.Begin('T').Int16(static_cast<int16_t>(fields.size()));
  for (const FieldDescription& f : fields) {
    w.CString(f.name)
        .Int32(static_cast<int32_t>(f.table_oid))
        .Int16(f.column)
        .Int32(static_cast<int32_t>(f.type_oid))
        .Int16(f.type_size)
        .Int32(f.type_modifier)
        .Int16(f.format);
  }
  w.End();
}

void AppendDataRow(std::string& out, std::span<const std::optional<std::string_view>> values) {
  MessageWriter w(out);
  w.Begin('D').Int16(static_cast<int16_t>(values.size()));
  for (const auto& v : values) {
    if (!v.has_value()) {
      w.Int32(-1);
    } else {
      w.Int32(static_cast<int32_t>(v->size())).Bytes(*v);
    }
  }
  w.End();
}

void AppendCommandComplete(std::string& out, std::string_view tag) {
  MessageWriter(out).Begin('C').CString(tag).End();
}

void AppendEmptyQueryResponse(std::string& out) { AppendEmpty(out, 'I'); }
void AppendParseComplete(std::string& out) { AppendEmpty(out, '1'); }
void AppendBindComplete(std::string& out) { AppendEmpty(out, '2'); }
void AppendCloseComplete(std::string& out) { AppendEmpty(out, '3'); }
void AppendNoData(std::string& out) { AppendEmpty(out, 'n'); }

// ---- Frontend messages.

void AppendStartup(std::string& out,
                   std::span<const std::pair<std::string_view, std::string_view>> params) {
  MessageWriter w(out);
  w.Begin(0).Int32(static_cast<int32_t>(kProtocolVersion3));
  for (const auto& [name, value] : params) w.CString(name).CString(value);
  w.Int8(0);
  w.End();
}

void AppendSslRequest(std::string& out) {
  MessageWriter(out).Begin(0).Int32(static_cast<int32_t>(kSslRequestCode)).End();
}

void AppendCancelRequest(std::string& out, int32_t pid, int32_t secret) {
  MessageWriter(out)
      .Begin(0)
      .Int32(static_cast<int32_t>(kCancelRequestCode))
      .Int32(pid)
      .Int32(secret)
      .End();
}

void AppendPasswordMessage(std::string& out, std::string_view password) {
  MessageWriter(out).Begin('p').CString(password).End();
}

void AppendSaslInitialResponse(std::string& out, std::string_view mechanism,
                               std::string_view data) {
  MessageWriter(out)
      .Begin('p')
      .CString(mechanism)
      .Int32(static_cast<int32_t>(data.size()))
      .Bytes(data)
      .End();
}

void AppendSaslResponse(std::string& out, std::string_view data) {
  MessageWriter(out).Begin('p').Bytes(data).End();
}

void AppendQuery(std::string& out, std::string_view sql) {
  MessageWriter(out).Begin('Q').CString(sql).End();
}

void AppendParse(std::string& out, std::string_view name, std::string_view sql,
                 std::span<const uint32_t> param_types) {
  MessageWriter w(out);
  w.Begin('P').CString(name).CString(sql).Int16(static_cast<int16_t>(param_types.size()));
  for (uint32_t oid : param_types) w.Int32(static_cast<int32_t>(oid));
  w.End();
}

void AppendBind(std::string& out, const Bind& bind) {
  MessageWriter w(out);
  w.Begin('B').CString(bind.portal).CString(bind.statement);
  w.Int16(static_cast<int16_t>(bind.param_formats.size()));
  for (int16_t f : bind.param_formats) w.Int16(f);
  w.Int16(static_cast<int16_t>(bind.params.size()));
  for (const auto& p : bind.params) {
    if (!p.has_value()) {
      w.Int32(-1);
    } else {
      w.Int32(static_cast<int32_t>(p->size())).Bytes(*p);
    }
  }
  w.Int16(static_cast<int16_t>(bind.result_formats.size()));
  for (int16_t f : bind.result_formats) w.Int16(f);
  w.End();
}

void AppendDescribe(std::string& out, char kind, std::string_view name) {
  MessageWriter(out).Begin('D').Int8(static_cast<int8_t>(kind)).CString(name).End();
}

void AppendExecute(std::string& out, std::string_view portal, int32_t max_rows) {
  MessageWriter(out).Begin('E').CString(portal).Int32(max_rows).End();
}

void AppendClose(std::string& out, char kind, std::string_view name) {
  MessageWriter(out).Begin('C').Int8(static_cast<int8_t>(kind)).CString(name).End();
}

void AppendSync(std::string& out) { AppendEmpty(out, 'S'); }
void AppendFlush(std::string& out) { AppendEmpty(out, 'H'); }
void AppendTerminate(std::string& out) { AppendEmpty(out, 'X'); }

void AppendCopyData(std::string& out, std::string_view data) {
  MessageWriter(out).Begin('d').Bytes(data).End();
}

void AppendCopyDone(std::string& out) { AppendEmpty(out, 'c'); }

void AppendCopyFail(std::string& out, std::string_view message) {
  MessageWriter(out).Begin('f').CString(message).End();
}

}  // namespace shardgate::protocol
