// Parsers producing non-owning views of PostgreSQL v3 messages; every length is checked first.
#include "protocol/messages.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "protocol/status.h"

namespace shardgate::protocol {
namespace {

// A bounds-checked cursor over a message body. Every read either succeeds completely or leaves
// the cursor failed; callers check the bool so that no read ever goes past the buffer.
class Reader {
 public:
  explicit Reader(std::string_view buf) : buf_(buf) {}

  bool Byte(char* out) {
    if (buf_.size() - pos_ < 1) return false;
    *out = buf_[pos_++];
    return true;
  }
  bool Int8(int8_t* out) {
    char c;
    if (!Byte(&c)) return false;
    *out = static_cast<int8_t>(c);
    return true;
  }
  bool Int16(int16_t* out) {
    if (buf_.size() - pos_ < 2) return false;
    const auto* u = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
    *out = static_cast<int16_t>(static_cast<uint16_t>((u[0] << 8) | u[1]));
    pos_ += 2;
    return true;
  }
  bool UInt32(uint32_t* out) {
    if (buf_.size() - pos_ < 4) return false;
    const auto* u = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
    *out = (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
    pos_ += 4;
    return true;
  }
  bool Int32(int32_t* out) {
    uint32_t u;
    if (!UInt32(&u)) return false;
    *out = static_cast<int32_t>(u);
    return true;
  }
  // A NUL-terminated string; the view excludes the NUL.
  bool CString(std::string_view* out) {
    const size_t nul = buf_.find('\0', pos_);
    if (nul == std::string_view::npos) return false;
    *out = buf_.substr(pos_, nul - pos_);
    pos_ = nul + 1;
    return true;
  }
  bool Bytes(size_t n, std::string_view* out) {
    if (buf_.size() - pos_ < n) return false;
    *out = buf_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // A count word: negative counts are malformed, as are counts that cannot fit in what is left
  // given `min_item_size` bytes per item (so a hostile count never drives a long loop).
  bool Count(size_t min_item_size, int16_t* out) {
    if (!Int16(out) || *out < 0) return false;
    return static_cast<size_t>(*out) * min_item_size <= Remaining();
  }
  std::string_view Rest() {
    std::string_view rest = buf_.substr(pos_);
    pos_ = buf_.size();
    return rest;
  }
  size_t Remaining() const { return buf_.size() - pos_; }
  bool AtEnd() const { return pos_ == buf_.size(); }

 private:
  std::string_view buf_;
  size_t pos_ = 0;
};

// 08P01 as PostgreSQL words it ("invalid message format"), naming the message.
absl::Status Malformed(std::string_view what) {
  return PgStatus("08P01", absl::StrCat("invalid ", AbslView(what), " message format"));
}

// A length-prefixed value (-1 = NULL) as in Bind and DataRow.
bool NullableValue(Reader& r, std::optional<std::string_view>* out) {
  int32_t len;
  if (!r.Int32(&len) || len < -1) return false;
  if (len == -1) {
    *out = std::nullopt;
    return true;
  }
  std::string_view v;
  if (!r.Bytes(static_cast<size_t>(len), &v)) return false;
  *out = v;
  return true;
}

absl::StatusOr<StartupMessage> ParseStartupParams(uint32_t version, Reader& r) {
  StartupMessage m;
  m.protocol_version = version;
  // (name, value) pairs until an empty name; like PostgreSQL we require that terminator to be
  // the very last byte, so trailing garbage is refused rather than ignored.
  for (;;) {
    std::string_view name, value;
    if (!r.CString(&name)) {
      return PgStatus("08P01", "invalid startup packet layout: expected terminator as last byte");
    }
    if (name.empty()) break;
    if (!r.CString(&value)) {
      return PgStatus("08P01", "invalid startup packet layout: expected terminator as last byte");
    }
    m.params.emplace_back(name, value);
  }
  if (!r.AtEnd()) {
    return PgStatus("08P01", "invalid startup packet layout: expected terminator as last byte");
  }
  return m;
}

}  // namespace

std::string_view StartupMessage::Get(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

absl::StatusOr<StartupPacket> ParseStartupPacket(const Frame& frame) {
  Reader r(frame.body);
  uint32_t code;
  if (!r.UInt32(&code)) return PgStatus("08P01", "invalid length of startup packet");
  StartupPacket p;
  switch (code) {
    case kSslRequestCode:
    case kGssEncRequestCode:
      if (!r.AtEnd()) return PgStatus("08P01", "invalid length of startup packet");
      p.kind = code == kSslRequestCode ? StartupPacket::Kind::kSslRequest
                                       : StartupPacket::Kind::kGssEncRequest;
      return p;
    case kCancelRequestCode:
      if (!r.Int32(&p.cancel.pid) || !r.Int32(&p.cancel.secret) || !r.AtEnd()) {
        return PgStatus("08P01", "invalid length of cancel request packet");
      }
      p.kind = StartupPacket::Kind::kCancel;
      return p;
    default:
      break;
  }
  if ((code >> 16) != 3) {
    return PgStatus("08P01", absl::StrCat("unsupported frontend protocol ", code >> 16, ".",
                                          code & 0xFFFF, ": server supports 3.0 to 3.0"));
  }
  // Minor versions above 0 are accepted here; answering NegotiateProtocolVersion is the
  // session's business, and it needs the parsed parameters to do so.
  p.kind = StartupPacket::Kind::kStartup;
  ASSIGN_OR_RETURN(p.startup, ParseStartupParams(code, r));
  return p;
}

absl::StatusOr<Query> ParseQuery(std::string_view body) {
  Reader r(body);
  Query q;
  if (!r.CString(&q.sql) || !r.AtEnd()) return Malformed("Query");
  return q;
}

absl::StatusOr<Parse> ParseParse(std::string_view body) {
  Reader r(body);
  Parse p;
  int16_t n;
  if (!r.CString(&p.name) || !r.CString(&p.sql) || !r.Count(4, &n)) return Malformed("Parse");
  for (int16_t i = 0; i < n; ++i) {
    uint32_t oid;
    if (!r.UInt32(&oid)) return Malformed("Parse");
    p.param_types.push_back(oid);
  }
  if (!r.AtEnd()) return Malformed("Parse");
  return p;
}

int16_t Bind::ParamFormat(size_t i) const {
  if (param_formats.empty()) return 0;                     // none: all text
  if (param_formats.size() == 1) return param_formats[0];  // one: applies to all
  return i < param_formats.size() ? param_formats[i] : 0;
}

absl::StatusOr<Bind> ParseBind(std::string_view body) {
  Reader r(body);
  Bind b;
  int16_t n;
  if (!r.CString(&b.portal) || !r.CString(&b.statement) || !r.Count(2, &n)) {
    return Malformed("Bind");
  }
  for (int16_t i = 0; i < n; ++i) {
    int16_t f;
    if (!r.Int16(&f)) return Malformed("Bind");
    b.param_formats.push_back(f);
  }
  if (!r.Count(4, &n)) return Malformed("Bind");
  // PostgreSQL's own check: 0, 1 or one format code per parameter.
  if (b.param_formats.size() > 1 && b.param_formats.size() != static_cast<size_t>(n)) {
    return PgStatus("08P01", absl::StrCat("bind message has ", b.param_formats.size(),
                                          " parameter formats but ", n, " parameters"));
  }
  for (int16_t i = 0; i < n; ++i) {
    std::optional<std::string_view> v;
    if (!NullableValue(r, &v)) return Malformed("Bind");
    b.params.push_back(v);
  }
  if (!r.Count(2, &n)) return Malformed("Bind");
  for (int16_t i = 0; i < n; ++i) {
    int16_t f;
    if (!r.Int16(&f)) return Malformed("Bind");
    b.result_formats.push_back(f);
  }
  if (!r.AtEnd()) return Malformed("Bind");
  return b;
}

absl::StatusOr<Describe> ParseDescribe(std::string_view body) {
  Reader r(body);
  Describe d;
  if (!r.Byte(&d.kind) || !r.CString(&d.name) || !r.AtEnd()) return Malformed("Describe");
  if (d.kind != 'S' && d.kind != 'P') {
    return PgStatus("08P01", absl::StrCat("invalid DESCRIBE message subtype ",
                                          static_cast<int>(static_cast<unsigned char>(d.kind))));
  }
  return d;
}

absl::StatusOr<Close> ParseClose(std::string_view body) {
  Reader r(body);
  Close c;
  if (!r.Byte(&c.kind) || !r.CString(&c.name) || !r.AtEnd()) return Malformed("Close");
  if (c.kind != 'S' && c.kind != 'P') {
    return PgStatus("08P01", absl::StrCat("invalid CLOSE message subtype ",
                                          static_cast<int>(static_cast<unsigned char>(c.kind))));
  }
  return c;
}

absl::StatusOr<Execute> ParseExecute(std::string_view body) {
  Reader r(body);
  Execute e;
  if (!r.CString(&e.portal) || !r.Int32(&e.max_rows) || !r.AtEnd()) return Malformed("Execute");
  return e;
}

absl::StatusOr<std::string_view> ParsePasswordMessage(std::string_view body) {
  Reader r(body);
  std::string_view password;
  if (!r.CString(&password) || !r.AtEnd()) return Malformed("password");
  return password;
}

absl::StatusOr<SaslInitialResponse> ParseSaslInitialResponse(std::string_view body) {
  Reader r(body);
  SaslInitialResponse s;
  int32_t len;
  if (!r.CString(&s.mechanism) || !r.Int32(&len) || len < -1) {
    return Malformed("SASLInitialResponse");
  }
  // -1 = no initial response; the view stays empty.
  if (len >= 0 && !r.Bytes(static_cast<size_t>(len), &s.data)) {
    return Malformed("SASLInitialResponse");
  }
  if (!r.AtEnd()) return Malformed("SASLInitialResponse");
  return s;
}

absl::StatusOr<Authentication> ParseAuthentication(std::string_view body) {
  Reader r(body);
  int32_t code;
  if (!r.Int32(&code)) return Malformed("authentication request");
  Authentication a;
  a.code = static_cast<AuthCode>(code);
  a.data = r.Rest();
  // Fixed-size requests are checked; others (GSS, SSPI, SASL data) carry opaque bytes.
  switch (a.code) {
    case AuthCode::kOk:
    case AuthCode::kCleartext:
      if (!a.data.empty()) return Malformed("authentication request");
      break;
    case AuthCode::kMd5:
      if (a.data.size() != 4) return Malformed("authentication request");
      break;
    default:
      break;
  }
  return a;
}

std::vector<std::string_view> SaslMechanisms(std::string_view data) {
  std::vector<std::string_view> out;
  Reader r(data);
  std::string_view name;
  // A list of NUL-terminated names ended by an empty one; a missing terminator ends it too.
  while (r.CString(&name) && !name.empty()) out.push_back(name);
  return out;
}

absl::StatusOr<BackendKeyData> ParseBackendKeyData(std::string_view body) {
  Reader r(body);
  BackendKeyData k;
  if (!r.Int32(&k.pid) || !r.Int32(&k.secret) || !r.AtEnd()) return Malformed("BackendKeyData");
  return k;
}

absl::StatusOr<ParameterStatus> ParseParameterStatus(std::string_view body) {
  Reader r(body);
  ParameterStatus p;
  if (!r.CString(&p.name) || !r.CString(&p.value) || !r.AtEnd()) {
    return Malformed("ParameterStatus");
  }
  return p;
}

absl::StatusOr<ReadyForQuery> ParseReadyForQuery(std::string_view body) {
  Reader r(body);
  ReadyForQuery q;
  if (!r.Byte(&q.status) || !r.AtEnd()) return Malformed("ReadyForQuery");
  if (q.status != 'I' && q.status != 'T' && q.status != 'E') return Malformed("ReadyForQuery");
  return q;
}

absl::StatusOr<CommandComplete> ParseCommandComplete(std::string_view body) {
  Reader r(body);
  CommandComplete c;
  if (!r.CString(&c.tag) || !r.AtEnd()) return Malformed("CommandComplete");
  return c;
}

std::string_view ErrorFields::Get(char code) const {
  for (const auto& [c, v] : fields) {
    if (c == code) return v;
  }
  return {};
}

absl::StatusOr<ErrorFields> ParseErrorFields(std::string_view body) {
  Reader r(body);
  ErrorFields e;
  for (;;) {
    char code;
    if (!r.Byte(&code)) return Malformed("ErrorResponse");
    if (code == '\0') break;
    std::string_view value;
    if (!r.CString(&value)) return Malformed("ErrorResponse");
    e.fields.emplace_back(code, value);
  }
  if (!r.AtEnd()) return Malformed("ErrorResponse");
  return e;
}

absl::Status ErrorResponseStatus(std::string_view body) {
  auto fields = ParseErrorFields(body);
  if (!fields.ok()) return fields.status();
  return PgStatus(fields->SqlState().empty() ? "XX000" : fields->SqlState(), fields->Message(),
                  fields->Get('H'), fields->Get('D'));
}

absl::StatusOr<RowDescription> ParseRowDescription(std::string_view body) {
  Reader r(body);
  RowDescription d;
  int16_t n;
  // 19 = the smallest field: an empty name's NUL plus 18 bytes of fixed attributes.
  if (!r.Count(19, &n)) return Malformed("RowDescription");
  for (int16_t i = 0; i < n; ++i) {
    FieldDescription f;
    if (!r.CString(&f.name) || !r.UInt32(&f.table_oid) || !r.Int16(&f.column) ||
        !r.UInt32(&f.type_oid) || !r.Int16(&f.type_size) || !r.Int32(&f.type_modifier) ||
        !r.Int16(&f.format)) {
      return Malformed("RowDescription");
    }
    d.fields.push_back(f);
  }
  if (!r.AtEnd()) return Malformed("RowDescription");
  return d;
}

absl::StatusOr<DataRow> ParseDataRow(std::string_view body) {
  Reader r(body);
  DataRow row;
  int16_t n;
  if (!r.Count(4, &n)) return Malformed("DataRow");
  for (int16_t i = 0; i < n; ++i) {
    std::optional<std::string_view> v;
    if (!NullableValue(r, &v)) return Malformed("DataRow");
    row.values.push_back(v);
  }
  if (!r.AtEnd()) return Malformed("DataRow");
  return row;
}

absl::StatusOr<CopyResponse> ParseCopyResponse(std::string_view body) {
  Reader r(body);
  CopyResponse c;
  int16_t n;
  if (!r.Int8(&c.format) || !r.Count(2, &n)) return Malformed("CopyResponse");
  for (int16_t i = 0; i < n; ++i) {
    int16_t f;
    if (!r.Int16(&f)) return Malformed("CopyResponse");
    c.column_formats.push_back(f);
  }
  if (!r.AtEnd()) return Malformed("CopyResponse");
  return c;
}

absl::StatusOr<NotificationResponse> ParseNotification(std::string_view body) {
  Reader r(body);
  NotificationResponse n;
  if (!r.Int32(&n.pid) || !r.CString(&n.channel) || !r.CString(&n.payload) || !r.AtEnd()) {
    return Malformed("NotificationResponse");
  }
  return n;
}

}  // namespace shardgate::protocol
