// Sans-I/O framing of the PostgreSQL v3 protocol: finds message boundaries in a byte buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace shardgate::protocol {

inline constexpr size_t kHeaderSize = 5;            // type byte + int32 length
inline constexpr size_t kStartupHeaderSize = 4;     // int32 length, no type byte
inline constexpr uint32_t kDefaultMaxMessageSize = 256u << 20;  // configurable per listener
inline constexpr uint32_t kMaxStartupPacketSize = 10000;        // PostgreSQL's own limit

// Special protocol codes of an untyped startup-phase packet.
inline constexpr uint32_t kProtocolVersion3 = 196608;  // 3.0
inline constexpr uint32_t kSslRequestCode = 80877103;
inline constexpr uint32_t kGssEncRequestCode = 80877104;
inline constexpr uint32_t kCancelRequestCode = 80877102;

enum class FrameStatus {
  kNeedMore,  // the buffer holds less than one whole message; `need` says how many bytes in all
  kFrame,     // `frame` is a whole message at the start of the buffer
  kError,     // malformed (bad length, over the cap): the stream is out of sync, close it (08P01)
};

// One message, viewing the caller's buffer (valid while that buffer is unchanged).
struct Frame {
  char type = 0;            // 0 for startup-phase packets
  std::string_view body;    // the payload after the length word
  std::string_view whole;   // header + body, the bytes to forward untouched
};

struct FrameResult {
  FrameStatus status = FrameStatus::kNeedMore;
  Frame frame;
  size_t need = 0;        // kNeedMore: total bytes the message will take once known, else 0
  absl::Status error;     // kError: why, with SQLSTATE 08P01
};

// A typed message ('Q', 'D', ...) at the start of `buf`. Lengths below 4 or above `max_size`
// are errors; only the 5-byte header must be present to learn the size.
FrameResult ReadFrame(std::string_view buf, uint32_t max_size = kDefaultMaxMessageSize);

// An untyped startup-phase packet (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).
FrameResult ReadStartupFrame(std::string_view buf, uint32_t max_size = kMaxStartupPacketSize);

// Header-only peek for streaming large messages: type and total size (header included) of the
// message at the start of `buf`, or kNeedMore when fewer than 5 bytes are present.
struct HeaderInfo {
  FrameStatus status = FrameStatus::kNeedMore;
  char type = 0;
  size_t total_size = 0;
  absl::Status error;
};
HeaderInfo PeekHeader(std::string_view buf, uint32_t max_size = kDefaultMaxMessageSize);

}  // namespace shardgate::protocol
