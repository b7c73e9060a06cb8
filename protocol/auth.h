// Password authentication for both sides of the proxy: SCRAM-SHA-256 (RFC 5802/7677, as
// PostgreSQL implements it, without channel binding) and md5. Pure computation over OpenSSL.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace shardgate::protocol {

// "md5" + hex(md5(hex(md5(password + user)) + salt)), the PasswordMessage a client sends.
// `stored` may be a plain password or an "md5<32 hex>" hash of password+user.
std::string Md5Response(std::string_view user, std::string_view stored, std::string_view salt);

// True when `response` is what a client knowing the password behind `stored` must send.
bool Md5Verify(std::string_view user, std::string_view stored, std::string_view salt,
               std::string_view response);

// A SCRAM verifier "SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>",
// the format of pg_authid.rolpassword. `salt` empty = 16 random bytes.
std::string MakeScramVerifier(std::string_view password, int iterations = 4096,
                              std::string_view salt = {});
bool IsScramVerifier(std::string_view stored);

// Server side of SCRAM-SHA-256 for one login: the proxy authenticating a client.
// `stored` is a plain password or a SCRAM verifier. Errors carry SQLSTATE 28P01 (bad proof)
// or 08P01 (malformed message).
class ScramServer {
 public:
  explicit ScramServer(std::string stored);
  // client-first-message -> server-first-message.
  absl::StatusOr<std::string> HandleClientFirst(std::string_view client_first);
  // client-final-message -> server-final-message ("v=..."); error when the proof is wrong.
  absl::StatusOr<std::string> HandleClientFinal(std::string_view client_final);

  // Test hook (added by h1): fixes the server's nonce suffix instead of 18 random bytes, so that
  // tests can replay RFC 7677's example. Call before HandleClientFirst.
  void SetNonceForTest(std::string server_nonce) { test_server_nonce_ = std::move(server_nonce); }

 private:
  std::string test_server_nonce_;
  std::string gs2_header_;  // "n,," or "y,,", checked against c= in the final message
  enum class State { kFirst, kFinal, kDone } state_ = State::kFirst;
  std::string stored_;
  std::string salt_, stored_key_, server_key_;
  int iterations_ = 4096;
  std::string client_first_bare_, server_first_, nonce_;
};

// Client side of SCRAM-SHA-256: the proxy authenticating to a server.
class ScramClient {
 public:
  explicit ScramClient(std::string password);
  // Test hook (added by h1): a fixed client nonce and, for RFC 7677's example, a user name to
  // send in n= (PostgreSQL ignores it; the default sends "n=").
  ScramClient(std::string password, std::string nonce, std::string user = {});
  std::string ClientFirst();  // the data of SASLInitialResponse
  absl::StatusOr<std::string> HandleServerFirst(std::string_view server_first);  // -> final
  absl::Status VerifyServerFinal(std::string_view server_final);

 private:
  std::string password_, nonce_, client_first_bare_, auth_message_, server_key_;
  std::string user_;
};

}  // namespace shardgate::protocol
