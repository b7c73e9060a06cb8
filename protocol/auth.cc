// SCRAM-SHA-256 (RFC 5802/7677 as PostgreSQL speaks it, no channel binding) and md5, over OpenSSL.
#include "protocol/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/status.h"

namespace shardgate::protocol {
namespace {

bool StartsWith(std::string_view s, std::string_view prefix) { return s.starts_with(prefix); }

constexpr size_t kKeyLen = 32;      // SHA-256 output
constexpr size_t kNonceBytes = 18;  // as PostgreSQL: 18 random bytes, base64 = 24 chars
constexpr size_t kSaltBytes = 16;   // as PostgreSQL's default SCRAM salt
constexpr int kDefaultIterations = 4096;
// A server (or a verifier) asking for more iterations than this is refused rather than letting
// it make us burn seconds of CPU per login.
constexpr int kMaxIterations = 10'000'000;
constexpr std::string_view kScramPrefix = "SCRAM-SHA-256$";

// ---- String helpers. Debian's abseil has its own absl::string_view, so its string utilities do
// not take std::string_view; these few are all this file needs.

std::string Cat(std::initializer_list<std::string_view> pieces) {
  size_t n = 0;
  for (std::string_view p : pieces) n += p.size();
  std::string out;
  out.reserve(n);
  for (std::string_view p : pieces) out.append(p);
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

// A positive decimal int with nothing else around it.
bool ParsePositiveInt(std::string_view s, int* out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end && !s.empty() && *out > 0;
}

// ---- Primitives.

std::string Base64Encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// Strict base64: length a multiple of 4, the alphabet only, at most two '=' at the end.
// EVP_DecodeBlock alone would skip whitespace and count padding as zero bytes.
std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  for (size_t i = 0; i + pad < in.size(); ++i) {
    if (!IsBase64Char(in[i])) return std::nullopt;
  }
  if (in.empty()) return std::string();
  std::string out(3 * in.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  // RAND_bytes fails only when the CSPRNG cannot be seeded; there is no safe fallback, and a
  // predictable nonce or salt must never be used, so this is one of the few hard aborts.
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    OPENSSL_die("RAND_bytes failed", __FILE__, __LINE__);
  }
  return out;
}

std::string Hmac(std::string_view key, std::string_view data) {
  std::string out(kKeyLen, '\0');
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       reinterpret_cast<unsigned char*>(out.data()), &len);
  out.resize(len);
  return out;
}

std::string Digest(const EVP_MD* md, std::string_view data) {
  std::string out(EVP_MAX_MD_SIZE, '\0');
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len, md,
             nullptr);
  out.resize(len);
  return out;
}

std::string Pbkdf2(std::string_view password, std::string_view salt, int iterations) {
  // PostgreSQL applies SASLprep first; for ASCII passwords that is the identity. Non-ASCII
  // passwords are used as raw UTF-8, which matches PostgreSQL only when SASLprep leaves them be.
  std::string out(kKeyLen, '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, EVP_sha256(),
                    static_cast<int>(kKeyLen), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

// PBKDF2 results by (iterations, salt, password): 4096 HMAC rounds cost a millisecond or two
// per connection, and the same few passwords and salts come back with every new client and
// every new server connection (a role's salt is fixed in pg_authid; a plain password in the
// config gets one salt per process, see PlainPasswordSalt). Bounded: cleared when full.
class SaltedCache {
 public:
  static SaltedCache& Global() {
    static SaltedCache* cache = new SaltedCache;  // never destroyed: used until exit
    return *cache;
  }
  std::optional<std::string> Find(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  void Put(std::string key, std::string value) {
    std::lock_guard lock(mu_);
    if (map_.size() >= kMaxEntries) map_.clear();
    map_.insert_or_assign(std::move(key), std::move(value));
  }

 private:
  static constexpr size_t kMaxEntries = 4096;
  std::mutex mu_;
  std::unordered_map<std::string, std::string> map_;
};

std::string SaltedPassword(std::string_view password, std::string_view salt, int iterations,
                           bool cache = true) {
  if (!cache) return Pbkdf2(password, salt, iterations);
  std::string key = Cat({std::to_string(iterations), ":", std::to_string(salt.size()), ":", salt,
                         password});
  if (std::optional<std::string> hit = SaltedCache::Global().Find(key)) return std::move(*hit);
  std::string out = Pbkdf2(password, salt, iterations);
  SaltedCache::Global().Put(std::move(key), out);
  return out;
}

// The salt a plain-text password from the config is offered with: random, chosen once per
// password and process (PostgreSQL too keeps one salt per role), so that its PBKDF2 result is
// computed once. The nonces keep every exchange fresh.
std::string PlainPasswordSalt(std::string_view password) {
  const std::string key = Cat({"salt:", password});
  if (std::optional<std::string> hit = SaltedCache::Global().Find(key)) return std::move(*hit);
  std::string salt = RandomBytes(kSaltBytes);
  SaltedCache::Global().Put(key, salt);
  return salt;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Xor(std::string_view a, std::string_view b) {
  std::string out(a);
  for (size_t i = 0; i < out.size() && i < b.size(); ++i) out[i] = static_cast<char>(out[i] ^ b[i]);
  return out;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xF]);
  }
  return out;
}

bool IsMd5Hash(std::string_view stored) {
  if (stored.size() != 35 || !StartsWith(stored, "md5")) return false;
  for (char c : stored.substr(3)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

struct ScramKeys {
  int iterations = kDefaultIterations;
  std::string salt, stored_key, server_key;
};

ScramKeys DeriveKeys(std::string_view password, int iterations, std::string_view salt,
                     bool cache = true) {
  ScramKeys k;
  k.iterations = iterations;
  k.salt = std::string(salt);
  const std::string salted = SaltedPassword(password, salt, iterations, cache);
  k.stored_key = Digest(EVP_sha256(), Hmac(salted, "Client Key"));
  k.server_key = Hmac(salted, "Server Key");
  return k;
}

std::optional<ScramKeys> ParseVerifier(std::string_view stored) {
  if (!StartsWith(stored, kScramPrefix)) return std::nullopt;
  // <iterations>:<salt>$<StoredKey>:<ServerKey>
  std::vector<std::string_view> halves = Split(stored.substr(kScramPrefix.size()), '$');
  if (halves.size() != 2) return std::nullopt;
  std::vector<std::string_view> left = Split(halves[0], ':');
  std::vector<std::string_view> right = Split(halves[1], ':');
  if (left.size() != 2 || right.size() != 2) return std::nullopt;
  ScramKeys k;
  if (!ParsePositiveInt(left[0], &k.iterations) || k.iterations > kMaxIterations) {
    return std::nullopt;
  }
  std::optional<std::string> salt = Base64Decode(left[1]);
  std::optional<std::string> stored_key = Base64Decode(right[0]);
  std::optional<std::string> server_key = Base64Decode(right[1]);
  if (!salt || salt->empty() || !stored_key || stored_key->size() != kKeyLen || !server_key ||
      server_key->size() != kKeyLen) {
    return std::nullopt;
  }
  k.salt = std::move(*salt);
  k.stored_key = std::move(*stored_key);
  k.server_key = std::move(*server_key);
  return k;
}

// RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII except ','.
bool IsValidNonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  }
  return true;
}

// "x=value" with the expected attribute letter; the value may be empty.
std::optional<std::string_view> Attr(std::string_view part, char name) {
  if (part.size() < 2 || part[0] != name || part[1] != '=') return std::nullopt;
  return part.substr(2);
}

absl::Status Malformed(std::string_view what) {
  return PgStatus("08P01", "malformed SCRAM message", {}, what);
}

absl::Status AuthFailed() { return PgStatus("28P01", "password authentication failed"); }

}  // namespace

// ---- md5.

std::string Md5Response(std::string_view user, std::string_view stored, std::string_view salt) {
  const std::string inner = IsMd5Hash(stored) ? std::string(stored.substr(3))
                                              : Hex(Digest(EVP_md5(), Cat({stored, user})));
  return Cat({"md5", Hex(Digest(EVP_md5(), Cat({inner, salt})))});
}

bool Md5Verify(std::string_view user, std::string_view stored, std::string_view salt,
               std::string_view response) {
  return ConstantTimeEqual(Md5Response(user, stored, salt), response);
}

// ---- SCRAM verifiers.

std::string MakeScramVerifier(std::string_view password, int iterations, std::string_view salt) {
  const std::string salt_bytes = salt.empty() ? RandomBytes(kSaltBytes) : std::string(salt);
  const ScramKeys k = DeriveKeys(password, iterations, salt_bytes);
  return Cat({kScramPrefix, std::to_string(k.iterations), ":", Base64Encode(k.salt), "$",
              Base64Encode(k.stored_key), ":", Base64Encode(k.server_key)});
}

bool IsScramVerifier(std::string_view stored) { return ParseVerifier(stored).has_value(); }

// ---- Server.

ScramServer::ScramServer(std::string stored) : stored_(std::move(stored)) {}

absl::StatusOr<std::string> ScramServer::HandleClientFirst(std::string_view client_first) {
  if (state_ != State::kFirst) return Malformed("unexpected SCRAM client-first-message");
  state_ = State::kDone;  // any error below ends the exchange
  // gs2-header: cbind-flag "," [authzid] ","
  std::vector<std::string_view> parts = Split(client_first, ',');
  if (parts.size() < 4) return Malformed("client-first-message too short");
  if (parts[0] == "p" || StartsWith(parts[0], "p=")) {
    return PgStatus("08P01",
                    "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not "
                    "include channel binding data.",
                    "the proxy offers SCRAM-SHA-256 without channel binding");
  }
  if (parts[0] != "n" && parts[0] != "y") return Malformed("unexpected channel-binding flag");
  if (!parts[1].empty()) {
    if (StartsWith(parts[1], "a=")) {
      return PgStatus("0A000", "client uses authorization identity, but it is not supported");
    }
    return Malformed("unexpected attribute in gs2 header");
  }
  gs2_header_ = Cat({parts[0], ",,"});
  client_first_bare_ = std::string(client_first.substr(gs2_header_.size()));
  if (StartsWith(parts[2], "m=")) {
    return Malformed("client requires an unsupported SCRAM extension");
  }
  // PostgreSQL takes the user from the startup packet and ignores n= ("n=" or "n=*" in libpq).
  if (!Attr(parts[2], 'n')) return Malformed("expected attribute n");
  std::optional<std::string_view> client_nonce = Attr(parts[3], 'r');
  if (!client_nonce || !IsValidNonce(*client_nonce)) return Malformed("invalid client nonce");
  for (size_t i = 4; i < parts.size(); ++i) {  // extensions: ignored, but must look like x=...
    if (parts[i].size() < 2 || parts[i][1] != '=') return Malformed("invalid attribute");
  }

  if (std::optional<ScramKeys> k = ParseVerifier(stored_)) {
    iterations_ = k->iterations;
    salt_ = std::move(k->salt);
    stored_key_ = std::move(k->stored_key);
    server_key_ = std::move(k->server_key);
  } else {
    // A plain password gets its salt for this process (PlainPasswordSalt). An md5 hash cannot
    // drive SCRAM: like PostgreSQL we run the exchange against random keys (not cached), so the
    // proof fails with the usual 28P01.
    const bool md5 = IsMd5Hash(stored_);
    const std::string password = md5 ? RandomBytes(kKeyLen) : stored_;
    ScramKeys derived = DeriveKeys(password, kDefaultIterations,
                                   md5 ? RandomBytes(kSaltBytes) : PlainPasswordSalt(password),
                                   /*cache=*/!md5);
    iterations_ = derived.iterations;
    salt_ = std::move(derived.salt);
    stored_key_ = std::move(derived.stored_key);
    server_key_ = std::move(derived.server_key);
  }
  const std::string server_nonce =
      test_server_nonce_.empty() ? Base64Encode(RandomBytes(kNonceBytes)) : test_server_nonce_;
  nonce_ = Cat({*client_nonce, server_nonce});
  server_first_ =
      Cat({"r=", nonce_, ",s=", Base64Encode(salt_), ",i=", std::to_string(iterations_)});
  state_ = State::kFinal;
  return server_first_;
}

absl::StatusOr<std::string> ScramServer::HandleClientFinal(std::string_view client_final) {
  if (state_ != State::kFinal) return Malformed("unexpected SCRAM client-final-message");
  state_ = State::kDone;
  const size_t last_comma = client_final.rfind(',');
  if (last_comma == std::string_view::npos) return Malformed("client-final-message too short");
  std::optional<std::string_view> proof_b64 = Attr(client_final.substr(last_comma + 1), 'p');
  if (!proof_b64) return Malformed("expected attribute p last");
  const std::string_view without_proof = client_final.substr(0, last_comma);
  std::vector<std::string_view> parts = Split(without_proof, ',');
  if (parts.size() < 2) return Malformed("client-final-message too short");
  std::optional<std::string_view> cbind_b64 = Attr(parts[0], 'c');
  if (!cbind_b64) return Malformed("expected attribute c");
  std::optional<std::string> cbind = Base64Decode(*cbind_b64);
  if (!cbind || *cbind != gs2_header_) {
    return PgStatus("08P01", "SCRAM channel binding check failed");
  }
  std::optional<std::string_view> nonce = Attr(parts[1], 'r');
  if (!nonce) return Malformed("expected attribute r");
  if (!ConstantTimeEqual(*nonce, nonce_)) return PgStatus("08P01", "SCRAM nonce mismatch");
  std::optional<std::string> proof = Base64Decode(*proof_b64);
  if (!proof || proof->size() != kKeyLen) return Malformed("invalid client proof");

  const std::string auth_message =
      Cat({client_first_bare_, ",", server_first_, ",", without_proof});
  const std::string client_signature = Hmac(stored_key_, auth_message);
  const std::string client_key = Xor(*proof, client_signature);
  if (!ConstantTimeEqual(Digest(EVP_sha256(), client_key), stored_key_)) return AuthFailed();
  return Cat({"v=", Base64Encode(Hmac(server_key_, auth_message))});
}

// ---- Client.

ScramClient::ScramClient(std::string password) : password_(std::move(password)) {}

ScramClient::ScramClient(std::string password, std::string nonce, std::string user)
    : password_(std::move(password)), nonce_(std::move(nonce)), user_(std::move(user)) {}

std::string ScramClient::ClientFirst() {
  if (nonce_.empty()) nonce_ = Base64Encode(RandomBytes(kNonceBytes));
  client_first_bare_ = Cat({"n=", user_, ",r=", nonce_});
  return Cat({"n,,", client_first_bare_});
}

absl::StatusOr<std::string> ScramClient::HandleServerFirst(std::string_view server_first) {
  if (client_first_bare_.empty()) return Malformed("server-first-message before client-first");
  std::vector<std::string_view> parts = Split(server_first, ',');
  if (parts.size() < 3) return Malformed("server-first-message too short");
  std::optional<std::string_view> nonce = Attr(parts[0], 'r');
  std::optional<std::string_view> salt_b64 = Attr(parts[1], 's');
  std::optional<std::string_view> iter_text = Attr(parts[2], 'i');
  if (!nonce || !salt_b64 || !iter_text) return Malformed("expected attributes r, s, i");
  // The server's nonce must extend ours; otherwise the exchange is not the one we started.
  if (!IsValidNonce(*nonce) || nonce->size() <= nonce_.size() || !StartsWith(*nonce, nonce_)) {
    return PgStatus("08P01", "SCRAM nonce mismatch");
  }
  std::optional<std::string> salt = Base64Decode(*salt_b64);
  if (!salt || salt->empty()) return Malformed("invalid salt");
  int iterations = 0;
  if (!ParsePositiveInt(*iter_text, &iterations) || iterations > kMaxIterations) {
    return Malformed("invalid iteration count");
  }
  const std::string salted = SaltedPassword(password_, *salt, iterations);
  const std::string client_key = Hmac(salted, "Client Key");
  const std::string stored_key = Digest(EVP_sha256(), client_key);
  server_key_ = Hmac(salted, "Server Key");
  const std::string without_proof = Cat({"c=biws,r=", *nonce});  // biws = b64("n,,")
  auth_message_ = Cat({client_first_bare_, ",", server_first, ",", without_proof});
  const std::string proof = Xor(client_key, Hmac(stored_key, auth_message_));
  return Cat({without_proof, ",p=", Base64Encode(proof)});
}

absl::Status ScramClient::VerifyServerFinal(std::string_view server_final) {
  if (auth_message_.empty()) return Malformed("server-final-message before server-first");
  if (std::optional<std::string_view> err = Attr(server_final, 'e')) {
    return PgStatus("28P01", Cat({"SCRAM authentication failed: ", *err}));
  }
  // PostgreSQL may append extensions after v=; only the signature matters.
  std::optional<std::string_view> sig_b64 =
      Attr(server_final.substr(0, server_final.find(',')), 'v');
  if (!sig_b64) return Malformed("expected attribute v");
  std::optional<std::string> sig = Base64Decode(*sig_b64);
  if (!sig || !ConstantTimeEqual(*sig, Hmac(server_key_, auth_message_))) {
    return PgStatus("28P01", "invalid server signature in SCRAM server-final-message");
  }
  return absl::OkStatus();
}

}  // namespace shardgate::protocol
