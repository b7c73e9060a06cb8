// libFuzzer target: the server side of a login as the proxy runs it. The input is split at the
// first NUL into a SCRAM client-first and a client-final message (against a stored verifier,
// so no key derivation per run), and is also checked as an md5 password answer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/auth.h"
#include "protocol/messages.h"

namespace p = shardgate::protocol;

namespace {
// The verifier of RFC 7677's example user (password "pencil").
constexpr char kVerifier[] =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string_view first = in.substr(0, nul);
  const std::string_view final = nul == std::string_view::npos ? "" : in.substr(nul + 1);
  p::ScramServer scram(kVerifier);
  if (scram.HandleClientFirst(first).ok()) (void)scram.HandleClientFinal(final);
  // The SASLInitialResponse and password message bodies, and an md5 answer.
  (void)p::ParseSaslInitialResponse(in);
  if (auto pw = p::ParsePasswordMessage(in); pw.ok()) {
    (void)p::Md5Verify("app", "md5_pw", "salt", *pw);
  }
  return 0;
}
