// Tests of SCRAM-SHA-256 (RFC 7677's example, round trips, tampering) and md5 authentication.
#include "protocol/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <string_view>

#include "protocol/status.h"
#include "tests/support/status_matchers.h"

namespace shardgate::protocol {
namespace {

using ::shardgate::testing::HasSqlState;
using ::shardgate::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// RFC 7677 section 3.
constexpr std::string_view kRfcPassword = "pencil";
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcSaltB64 = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
// The same keys computed independently (Python hashlib) in pg_authid's format.
constexpr std::string_view kRfcVerifier =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

std::string B64Decode(std::string_view in) {
  std::string out(in.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  size_t pad = 0;
  while (pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string B64Encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

// An independent client-final builder, so tests can send what ScramClient never would
// (another gs2 header, extensions) with a proof that is still right.
std::string ClientFinalFor(std::string_view password, std::string_view client_first_bare,
                           std::string_view server_first, std::string_view without_proof) {
  const size_t s_at = server_first.find(",s=") + 3;
  const std::string salt = B64Decode(server_first.substr(s_at, server_first.find(",i=") - s_at));
  const int iterations = std::stoi(std::string(server_first.substr(server_first.find(",i=") + 3)));
  unsigned char salted[32];
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, EVP_sha256(), 32, salted);
  const std::string client_key =
      HmacSha256(std::string_view(reinterpret_cast<char*>(salted), 32), "Client Key");
  unsigned char stored[32];
  unsigned int len = 0;
  EVP_Digest(client_key.data(), client_key.size(), stored, &len, EVP_sha256(), nullptr);
  const std::string auth = std::string(client_first_bare) + "," + std::string(server_first) + "," +
                           std::string(without_proof);
  std::string proof = HmacSha256(std::string_view(reinterpret_cast<char*>(stored), 32), auth);
  for (size_t i = 0; i < proof.size(); ++i) proof[i] = static_cast<char>(proof[i] ^ client_key[i]);
  return std::string(without_proof) + ",p=" + B64Encode(proof);
}

// The nonce of a server-first-message ("r=<nonce>,s=...").
std::string NonceOf(std::string_view server_first) {
  return std::string(server_first.substr(2, server_first.find(',') - 2));
}

// ---- RFC 7677.

TEST(ScramRfc7677Test, ClientProducesTheRfcMessages) {
  ScramClient client(std::string(kRfcPassword), std::string(kRfcClientNonce), "user");
  EXPECT_EQ(client.ClientFirst(), kRfcClientFirst);
  ASSERT_OK_AND_ASSIGN(std::string final_msg, client.HandleServerFirst(kRfcServerFirst));
  EXPECT_EQ(final_msg, kRfcClientFinal);
  EXPECT_OK(client.VerifyServerFinal(kRfcServerFinal));
}

TEST(ScramRfc7677Test, VerifierMatchesIndependentComputation) {
  EXPECT_EQ(MakeScramVerifier(kRfcPassword, 4096, B64Decode(kRfcSaltB64)), kRfcVerifier);
  EXPECT_TRUE(IsScramVerifier(kRfcVerifier));
}

TEST(ScramRfc7677Test, ServerProducesTheRfcMessages) {
  ScramServer server{std::string(kRfcVerifier)};
  server.SetNonceForTest(std::string(kRfcServerNonce));
  ASSERT_OK_AND_ASSIGN(std::string server_first, server.HandleClientFirst(kRfcClientFirst));
  EXPECT_EQ(server_first, kRfcServerFirst);
  ASSERT_OK_AND_ASSIGN(std::string server_final, server.HandleClientFinal(kRfcClientFinal));
  EXPECT_EQ(server_final, kRfcServerFinal);
}

TEST(ScramRfc7677Test, ClientRejectsWrongServerSignature) {
  ScramClient client(std::string(kRfcPassword), std::string(kRfcClientNonce), "user");
  client.ClientFirst();
  ASSERT_OK(client.HandleServerFirst(kRfcServerFirst));
  EXPECT_THAT(client.VerifyServerFinal("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
              HasSqlState("28P01"));
}

TEST(ScramRfc7677Test, ClientWithWrongPasswordIsRefusedByServer) {
  ScramServer server{std::string(kRfcVerifier)};
  server.SetNonceForTest(std::string(kRfcServerNonce));
  ScramClient client("pencil2", std::string(kRfcClientNonce), "user");
  ASSERT_OK_AND_ASSIGN(std::string server_first, server.HandleClientFirst(client.ClientFirst()));
  ASSERT_OK_AND_ASSIGN(std::string client_final, client.HandleServerFirst(server_first));
  auto r = server.HandleClientFinal(client_final);
  EXPECT_THAT(r, HasSqlState("28P01"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("password authentication failed"));
}

// ---- Round trips.

struct Login {
  absl::Status status;
  std::string server_final;
};

// Runs one whole exchange between our client and our server.
Login RunExchange(std::string stored, std::string password) {
  ScramServer server(std::move(stored));
  ScramClient client(std::move(password));
  const std::string first = client.ClientFirst();
  auto server_first = server.HandleClientFirst(first);
  if (!server_first.ok()) return {server_first.status(), ""};
  auto client_final = client.HandleServerFirst(*server_first);
  if (!client_final.ok()) return {client_final.status(), ""};
  auto server_final = server.HandleClientFinal(*client_final);
  if (!server_final.ok()) return {server_final.status(), ""};
  return {client.VerifyServerFinal(*server_final), *server_final};
}

TEST(ScramRoundTripTest, PlainPassword) {
  Login l = RunExchange("s3cret", "s3cret");
  EXPECT_OK(l.status);
  EXPECT_THAT(l.server_final, StartsWith("v="));
}

TEST(ScramRoundTripTest, Verifier) {
  EXPECT_OK(RunExchange(MakeScramVerifier("s3cret"), "s3cret").status);
  EXPECT_OK(RunExchange(MakeScramVerifier("s3cret", 1000, "fixedsalt"), "s3cret").status);
}

TEST(ScramRoundTripTest, EmptyAndOddPasswords) {
  EXPECT_OK(RunExchange("", "").status);
  EXPECT_OK(RunExchange("p,a=s$s:w=rd", "p,a=s$s:w=rd").status);
  EXPECT_OK(RunExchange(MakeScramVerifier("ünïcödé"), "ünïcödé").status);
}

TEST(ScramRoundTripTest, WrongPassword) {
  EXPECT_THAT(RunExchange("s3cret", "s3cret ").status, HasSqlState("28P01"));
  EXPECT_THAT(RunExchange(MakeScramVerifier("s3cret"), "S3cret").status, HasSqlState("28P01"));
}

TEST(ScramRoundTripTest, Md5HashCannotDriveScram) {
  // The client knows the hash text itself; PostgreSQL refuses it and so do we.
  const std::string md5 = "md5" + std::string(32, 'a');
  EXPECT_THAT(RunExchange(md5, md5).status, HasSqlState("28P01"));
}

TEST(ScramRoundTripTest, RandomNoncesAndSaltsDiffer) {
  ScramClient a("x"), b("x");
  EXPECT_NE(a.ClientFirst(), b.ClientFirst());
  EXPECT_NE(MakeScramVerifier("x"), MakeScramVerifier("x"));
  ScramServer s1("x"), s2("x");
  auto f1 = s1.HandleClientFirst("n,,n=,r=abc");
  auto f2 = s2.HandleClientFirst("n,,n=,r=abc");
  ASSERT_OK(f1);
  ASSERT_OK(f2);
  EXPECT_NE(*f1, *f2);
}

// ---- What the server accepts in client-first-message.

class ClientFirstAcceptedTest : public ::testing::TestWithParam<std::string> {};
TEST_P(ClientFirstAcceptedTest, Accepted) {
  ScramServer server("pw");
  auto r = server.HandleClientFirst(GetParam());
  ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("r=abc"));
  EXPECT_THAT(*r, HasSubstr(",i=4096"));
}
INSTANTIATE_TEST_SUITE_P(Messages, ClientFirstAcceptedTest,
                         ::testing::Values("n,,n=,r=abc", "n,,n=*,r=abc", "y,,n=,r=abc",
                                           "n,,n=someone,r=abc", "n,,n=,r=abc,x=ext"));

struct RejectCase {
  const char* name;
  std::string message;
  const char* sqlstate;
};
class ClientFirstRejectedTest : public ::testing::TestWithParam<RejectCase> {};
TEST_P(ClientFirstRejectedTest, Rejected) {
  ScramServer server("pw");
  EXPECT_THAT(server.HandleClientFirst(GetParam().message), HasSqlState(GetParam().sqlstate));
}
INSTANTIATE_TEST_SUITE_P(
    Messages, ClientFirstRejectedTest,
    ::testing::Values(RejectCase{"channel_binding", "p=tls-server-end-point,,n=,r=abc", "08P01"},
                      RejectCase{"authzid", "n,a=bob,n=,r=abc", "0A000"},
                      RejectCase{"empty", "", "08P01"},
                      RejectCase{"bad_flag", "x,,n=,r=abc", "08P01"},
                      RejectCase{"no_user_attr", "n,,r=abc", "08P01"},
                      RejectCase{"no_nonce", "n,,n=,s=abc", "08P01"},
                      RejectCase{"empty_nonce", "n,,n=,r=", "08P01"},
                      RejectCase{"nonce_with_space", "n,,n=,r=a c", "08P01"},
                      RejectCase{"mandatory_extension", "n,,m=x,n=,r=abc", "08P01"},
                      RejectCase{"bad_extension", "n,,n=,r=abc,junk", "08P01"}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- Tampered client-final-messages.

class ClientFinalTamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sf = server_.HandleClientFirst("n,,n=,r=clientnonce");
    ASSERT_OK(sf);
    server_first_ = *sf;
    nonce_ = NonceOf(server_first_);
  }
  std::string Final(std::string_view without_proof, std::string_view password = "pw") {
    return ClientFinalFor(password, "n=,r=clientnonce", server_first_, without_proof);
  }
  ScramServer server_{"pw"};
  std::string server_first_, nonce_;
};

TEST_F(ClientFinalTamperTest, IndependentClientIsAccepted) {
  EXPECT_OK(server_.HandleClientFinal(Final("c=biws,r=" + nonce_)));
}

TEST_F(ClientFinalTamperTest, ExtensionBeforeProofIsAccepted) {
  EXPECT_OK(server_.HandleClientFinal(Final("c=biws,r=" + nonce_ + ",x=1")));
}

TEST_F(ClientFinalTamperTest, WrongNonce) {
  std::string msg = Final("c=biws,r=" + nonce_ + "x");
  EXPECT_THAT(server_.HandleClientFinal(msg), HasSqlState("08P01"));
}

TEST_F(ClientFinalTamperTest, ChannelBindingMismatch) {
  // eSws = base64("y,,") while the client-first said "n,,".
  EXPECT_THAT(server_.HandleClientFinal(Final("c=eSws,r=" + nonce_)), HasSqlState("08P01"));
}

TEST_F(ClientFinalTamperTest, FlippedProofBit) {
  std::string msg = Final("c=biws,r=" + nonce_);
  const size_t at = msg.find(",p=") + 3;
  msg[at] = msg[at] == 'A' ? 'B' : 'A';
  EXPECT_THAT(server_.HandleClientFinal(msg), HasSqlState("28P01"));
}

TEST_F(ClientFinalTamperTest, WrongPasswordProof) {
  EXPECT_THAT(server_.HandleClientFinal(Final("c=biws,r=" + nonce_, "pw2")), HasSqlState("28P01"));
}

TEST_F(ClientFinalTamperTest, ProofNotBase64) {
  EXPECT_THAT(server_.HandleClientFinal("c=biws,r=" + nonce_ + ",p=!!!!"), HasSqlState("08P01"));
}

TEST_F(ClientFinalTamperTest, ProofWrongLength) {
  EXPECT_THAT(server_.HandleClientFinal("c=biws,r=" + nonce_ + ",p=AAAA"), HasSqlState("08P01"));
}

TEST_F(ClientFinalTamperTest, MissingProof) {
  EXPECT_THAT(server_.HandleClientFinal("c=biws,r=" + nonce_), HasSqlState("08P01"));
}

TEST_F(ClientFinalTamperTest, Garbage) {
  EXPECT_THAT(server_.HandleClientFinal(""), HasSqlState("08P01"));
}

TEST_F(ClientFinalTamperTest, OnlyOneFinal) {
  // A failed final ends the exchange: a second try (even a right one) is refused.
  EXPECT_THAT(server_.HandleClientFinal(Final("c=biws,r=" + nonce_, "bad")), HasSqlState("28P01"));
  EXPECT_THAT(server_.HandleClientFinal(Final("c=biws,r=" + nonce_)), Not(IsOk()));
}

TEST(ScramServerTest, YHeaderRoundTrip) {
  ScramServer server("pw");
  ASSERT_OK_AND_ASSIGN(std::string sf, server.HandleClientFirst("y,,n=,r=cn"));
  EXPECT_OK(
      server.HandleClientFinal(ClientFinalFor("pw", "n=,r=cn", sf, "c=eSws,r=" + NonceOf(sf))));
}

TEST(ScramServerTest, FinalBeforeFirst) {
  ScramServer server("pw");
  EXPECT_THAT(server.HandleClientFinal("c=biws,r=x,p=AAAA"), HasSqlState("08P01"));
}

TEST(ScramServerTest, FirstTwice) {
  ScramServer server("pw");
  ASSERT_OK(server.HandleClientFirst("n,,n=,r=abc"));
  EXPECT_THAT(server.HandleClientFirst("n,,n=,r=abc"), HasSqlState("08P01"));
}

// ---- The client facing a hostile or broken server.

class ServerFirstRejectedTest : public ::testing::TestWithParam<RejectCase> {};
TEST_P(ServerFirstRejectedTest, Rejected) {
  ScramClient client("pw", "cn");
  client.ClientFirst();
  EXPECT_THAT(client.HandleServerFirst(GetParam().message), HasSqlState(GetParam().sqlstate));
}
INSTANTIATE_TEST_SUITE_P(
    Messages, ServerFirstRejectedTest,
    ::testing::Values(RejectCase{"other_nonce", "r=xxsrv,s=QUJD,i=4096", "08P01"},
                      RejectCase{"same_nonce", "r=cn,s=QUJD,i=4096", "08P01"},
                      RejectCase{"bad_salt", "r=cnsrv,s=Q,i=4096", "08P01"},
                      RejectCase{"empty_salt", "r=cnsrv,s=,i=4096", "08P01"},
                      RejectCase{"zero_iterations", "r=cnsrv,s=QUJD,i=0", "08P01"},
                      RejectCase{"negative_iterations", "r=cnsrv,s=QUJD,i=-1", "08P01"},
                      RejectCase{"huge_iterations", "r=cnsrv,s=QUJD,i=999999999999", "08P01"},
                      RejectCase{"text_iterations", "r=cnsrv,s=QUJD,i=12x", "08P01"},
                      RejectCase{"missing_parts", "r=cnsrv", "08P01"},
                      RejectCase{"order", "s=QUJD,r=cnsrv,i=4096", "08P01"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ScramClientTest, ServerErrorAttribute) {
  ScramClient client("pw", "cn");
  client.ClientFirst();
  ASSERT_OK(client.HandleServerFirst("r=cnsrv,s=QUJD,i=16"));
  auto s = client.VerifyServerFinal("e=invalid-proof");
  EXPECT_THAT(s, HasSqlState("28P01"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("invalid-proof"));
}

TEST(ScramClientTest, OutOfOrder) {
  ScramClient client("pw");
  EXPECT_THAT(client.HandleServerFirst("r=x,s=QUJD,i=1"), HasSqlState("08P01"));
  EXPECT_THAT(client.VerifyServerFinal("v=AAAA"), HasSqlState("08P01"));
}

TEST(ScramClientTest, DefaultClientFirstHasEmptyUser) {
  ScramClient client("pw");
  const std::string first = client.ClientFirst();
  EXPECT_THAT(first, StartsWith("n,,n=,r="));
  EXPECT_EQ(first.size(), std::string("n,,n=,r=").size() + 24);  // 18 random bytes in base64
}

// ---- Verifiers.

class BadVerifierTest : public ::testing::TestWithParam<std::string> {};
TEST_P(BadVerifierTest, NotAVerifier) { EXPECT_FALSE(IsScramVerifier(GetParam())); }
INSTANTIATE_TEST_SUITE_P(
    Strings, BadVerifierTest,
    ::testing::Values(
        "", "plainpassword", "md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "SCRAM-SHA-256$",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
        "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:W22Z*J0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==:WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));

TEST(VerifierTest, FormatOfAFreshVerifier) {
  const std::string v = MakeScramVerifier("pw", 5000);
  EXPECT_THAT(v, StartsWith("SCRAM-SHA-256$5000:"));
  EXPECT_TRUE(IsScramVerifier(v));
  // 16-byte salt = 24 base64 characters.
  const size_t colon = v.find(':');
  EXPECT_EQ(v.find('$', colon) - colon - 1, 24u);
}

// ---- md5.

// Expected values computed independently with Python's hashlib.
constexpr std::string_view kMd5Salt = "\x01\x02\x03\x04";
constexpr std::string_view kMd5Stored =
    "md553f48b7c4b76a86ce72276c5755f217d";  // "secret"+"postgres"
constexpr std::string_view kMd5Response = "md5bb41a296aab6baccb36ff243a562abff";

TEST(Md5Test, ResponseFromPlainPassword) {
  EXPECT_EQ(Md5Response("postgres", "secret", kMd5Salt), kMd5Response);
}

TEST(Md5Test, ResponseFromStoredHash) {
  EXPECT_EQ(Md5Response("postgres", kMd5Stored, kMd5Salt), kMd5Response);
}

TEST(Md5Test, Verify) {
  EXPECT_TRUE(Md5Verify("postgres", "secret", kMd5Salt, kMd5Response));
  EXPECT_TRUE(Md5Verify("postgres", kMd5Stored, kMd5Salt, kMd5Response));
  EXPECT_FALSE(Md5Verify("postgres", "Secret", kMd5Salt, kMd5Response));
  EXPECT_FALSE(Md5Verify("other", "secret", kMd5Salt, kMd5Response));
  EXPECT_FALSE(Md5Verify("postgres", "secret", "\x01\x02\x03\x05", kMd5Response));
  EXPECT_FALSE(Md5Verify("postgres", "secret", kMd5Salt, ""));
  EXPECT_FALSE(Md5Verify("postgres", "secret", kMd5Salt, kMd5Response.substr(0, 34)));
}

TEST(Md5Test, MalformedHashIsAPlainPassword) {
  // Upper-case hex or a wrong length is not pg_authid's md5 format: treated as a password.
  const std::string upper = "md553F48B7C4B76A86CE72276C5755F217D";
  EXPECT_NE(Md5Response("postgres", upper, kMd5Salt), kMd5Response);
  EXPECT_TRUE(Md5Verify("postgres", upper, kMd5Salt, Md5Response("postgres", upper, kMd5Salt)));
}

}  // namespace
}  // namespace shardgate::protocol
