// libFuzzer target: bytes from a client or a server, split into frames by the frame reader and
// each frame given to every message parser that could see it. Nothing may crash, hang or read
// out of bounds, whatever the bytes (ASan and UBSan watch).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/frame_reader.h"
#include "protocol/messages.h"

namespace p = shardgate::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  // A startup packet (untyped) first, as a client's connection starts.
  p::FrameResult startup = p::ReadStartupFrame(buf);
  if (startup.status == p::FrameStatus::kFrame) (void)p::ParseStartupPacket(startup.frame);
  // Then typed messages, with a small size limit so that the reader's bounds are exercised.
  constexpr uint32_t kMax = 1 << 16;
  for (int i = 0; i < 1000 && !buf.empty(); ++i) {
    p::FrameResult r = p::ReadFrame(buf, kMax);
    if (r.status != p::FrameStatus::kFrame) break;
    const std::string_view body = r.frame.body;
    // Frontend and backend share type letters: parse as every message of that letter.
    switch (r.frame.type) {
      case 'Q': (void)p::ParseQuery(body); break;
      case 'P': (void)p::ParsePasswordMessage(body); (void)p::ParseSaslInitialResponse(body);
                (void)p::ParseParse(body); break;
      case 'B': (void)p::ParseBind(body); break;
      case 'D': (void)p::ParseDescribe(body); (void)p::ParseDataRow(body); break;
      case 'C': (void)p::ParseClose(body); (void)p::ParseCommandComplete(body); break;
      case 'E': (void)p::ParseExecute(body); (void)p::ParseErrorFields(body); break;
      case 'N': (void)p::ParseErrorFields(body); break;
      case 'R': (void)p::ParseAuthentication(body); break;
      case 'K': (void)p::ParseBackendKeyData(body); break;
      case 'S': (void)p::ParseParameterStatus(body); break;
      case 'Z': (void)p::ParseReadyForQuery(body); break;
      case 'T': (void)p::ParseRowDescription(body); break;
      case 'G': case 'H': case 'W': (void)p::ParseCopyResponse(body); break;
      case 'A': (void)p::ParseNotification(body); break;
      case 'p': (void)p::ParsePasswordMessage(body); (void)p::ParseSaslInitialResponse(body);
                break;
      default: break;
    }
    buf.remove_prefix(r.frame.whole.size());
  }
  return 0;
}
