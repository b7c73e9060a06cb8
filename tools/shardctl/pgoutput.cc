#include "tools/shardctl/pgoutput.h"

#include "protocol/status.h"

namespace shardgate::tools {
namespace {

// Big-endian reads over the message; any overrun makes the message malformed.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ >= b_.size(); }
  void Fail() { ok_ = false; }
  uint64_t Int(int bytes) {
    if (!Need(static_cast<size_t>(bytes))) return 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(b_[pos_++]);
    return v;
  }
  char Byte() { return static_cast<char>(Int(1)); }
  std::string CString() {
    const size_t end = b_.find('\0', pos_);
    if (end == std::string_view::npos) {
      ok_ = false;
      return {};
    }
    std::string s(b_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }
  std::string Bytes(size_t n) {
    if (!Need(n)) return {};
    std::string s(b_.substr(pos_, n));
    pos_ += n;
    return s;
  }

 private:
  bool Need(size_t n) {
    if (!ok_ || b_.size() - pos_ < n || pos_ > b_.size()) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

PgoutputTuple ReadTuple(Reader& r) {
  const int n = static_cast<int>(r.Int(2));
  PgoutputTuple tuple;
  for (int i = 0; i < n && r.ok(); ++i) {
    PgoutputValue v;
    const char kind = r.Byte();
    if (kind == 't' || kind == 'b') {
      v.kind = PgoutputValue::Kind::kText;
      v.text = r.Bytes(static_cast<size_t>(r.Int(4)));
    } else if (kind == 'u') {
      v.kind = PgoutputValue::Kind::kUnchanged;
    } else if (kind != 'n') {
      r.Fail();  // unknown kind
    }
    tuple.push_back(std::move(v));
  }
  return tuple;
}

}  // namespace

absl::StatusOr<PgoutputMessage> DecodePgoutput(std::string_view bytes) {
  Reader r(bytes);
  PgoutputMessage m;
  m.type = static_cast<PgoutputMessage::Type>(r.Byte());
  switch (m.type) {
    case PgoutputMessage::Type::kBegin:
      m.lsn = r.Int(8);
      m.timestamp = static_cast<int64_t>(r.Int(8));
      r.Int(4);  // xid
      break;
    case PgoutputMessage::Type::kCommit:
      r.Int(1);  // flags
      m.lsn = r.Int(8);
      m.end_lsn = r.Int(8);
      m.timestamp = static_cast<int64_t>(r.Int(8));
      break;
    case PgoutputMessage::Type::kRelation: {
      m.relation = static_cast<uint32_t>(r.Int(4));
      m.schema = r.CString();
      m.name = r.CString();
      r.Int(1);  // replica identity setting
      const int n = static_cast<int>(r.Int(2));
      for (int i = 0; i < n && r.ok(); ++i) {
        PgoutputColumn c;
        c.key = (r.Int(1) & 1) != 0;
        c.name = r.CString();
        c.type_oid = static_cast<uint32_t>(r.Int(4));
        r.Int(4);  // type modifier
        m.columns.push_back(std::move(c));
      }
      break;
    }
    case PgoutputMessage::Type::kInsert:
      m.relation = static_cast<uint32_t>(r.Int(4));
      if (r.Byte() != 'N') return PgStatus("08P01", "pgoutput: Insert without a new tuple");
      m.new_tuple = ReadTuple(r);
      break;
    case PgoutputMessage::Type::kUpdate: {
      m.relation = static_cast<uint32_t>(r.Int(4));
      char kind = r.Byte();
      if (kind == 'K' || kind == 'O') {
        m.old_tuple = ReadTuple(r);
        kind = r.Byte();
      }
      if (kind != 'N') return PgStatus("08P01", "pgoutput: Update without a new tuple");
      m.new_tuple = ReadTuple(r);
      break;
    }
    case PgoutputMessage::Type::kDelete: {
      m.relation = static_cast<uint32_t>(r.Int(4));
      const char kind = r.Byte();
      if (kind != 'K' && kind != 'O') return PgStatus("08P01", "pgoutput: Delete without a key");
      m.old_tuple = ReadTuple(r);
      break;
    }
    case PgoutputMessage::Type::kTruncate: {
      // Unsigned: a count with the top bit set is malformed, not "no relations".
      const uint64_t n = r.Int(4);
      r.Int(1);  // options (CASCADE, RESTART IDENTITY)
      for (uint64_t i = 0; i < n && r.ok(); ++i) {
        m.relations.push_back(static_cast<uint32_t>(r.Int(4)));
      }
      break;
    }
    case PgoutputMessage::Type::kMessage:
      r.Int(1);  // flags (transactional)
      m.lsn = r.Int(8);
      m.prefix = r.CString();
      m.content = r.Bytes(static_cast<size_t>(r.Int(4)));
      break;
    case PgoutputMessage::Type::kType:
    case PgoutputMessage::Type::kOrigin:
      return m;  // nothing shardctl applies
    default:
      return PgStatus("08P01", std::string("pgoutput: unknown message type '") +
                                   std::string(bytes.substr(0, 1)) + "'");
  }
  if (!r.ok()) return PgStatus("08P01", "pgoutput: truncated message");
  return m;
}

}  // namespace shardgate::tools
