// Sans-I/O framing of PostgreSQL v3 messages: header first, length capped, never past the buffer.
#include "protocol/frame_reader.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "protocol/status.h"

namespace shardgate::protocol {
namespace {

uint32_t LoadBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

// Errors are rare (the connection is then closed), so building a message string here does not
// break the allocation-free steady state.
absl::Status BadLength(char type, uint32_t length, uint32_t max_size) {
  std::string what = type == 0 ? std::string("startup packet")
                               : absl::StrCat("message of type '", std::string(1, type), "'");
  return PgStatus("08P01", absl::StrCat("invalid ", what, " length ", length, " (allowed ",
                                        type == 0 ? 8 : 4, "..", max_size, ")"));
}

}  // namespace

HeaderInfo PeekHeader(std::string_view buf, uint32_t max_size) {
  HeaderInfo info;
  if (buf.size() < kHeaderSize) return info;  // kNeedMore
  info.type = buf[0];
  const uint32_t length = LoadBigEndian32(buf.data() + 1);
  if (length < 4 || length > max_size) {
    info.status = FrameStatus::kError;
    info.error = BadLength(info.type, length, max_size);
    return info;
  }
  info.status = FrameStatus::kFrame;
  info.total_size = size_t{length} + 1;
  return info;
}

FrameResult ReadFrame(std::string_view buf, uint32_t max_size) {
  FrameResult r;
  if (buf.size() < kHeaderSize) {
    r.need = kHeaderSize;
    return r;
  }
  const char type = buf[0];
  const uint32_t length = LoadBigEndian32(buf.data() + 1);
  if (length < 4 || length > max_size) {
    r.status = FrameStatus::kError;
    r.error = BadLength(type, length, max_size);
    return r;
  }
  const size_t total = size_t{length} + 1;
  if (buf.size() < total) {
    r.need = total;
    return r;
  }
  r.status = FrameStatus::kFrame;
  r.frame.type = type;
  r.frame.whole = buf.substr(0, total);
  r.frame.body = buf.substr(kHeaderSize, total - kHeaderSize);
  return r;
}

FrameResult ReadStartupFrame(std::string_view buf, uint32_t max_size) {
  FrameResult r;
  if (buf.size() < kStartupHeaderSize) {
    r.need = kStartupHeaderSize;
    return r;
  }
  const uint32_t length = LoadBigEndian32(buf.data());
  // 8 = the length word and the protocol code; PostgreSQL rejects anything shorter too.
  if (length < 8 || length > max_size) {
    r.status = FrameStatus::kError;
    r.error = BadLength(0, length, max_size);
    return r;
  }
  if (buf.size() < length) {
    r.need = length;
    return r;
  }
  r.status = FrameStatus::kFrame;
  r.frame.type = 0;
  r.frame.whole = buf.substr(0, length);
  r.frame.body = buf.substr(kStartupHeaderSize, length - kStartupHeaderSize);
  return r;
}

}  // namespace shardgate::protocol
