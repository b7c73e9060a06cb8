// Raw bytes at shardgate: SSLRequest/GSSENCRequest without TLS, malformed and oversized startup
// packets and messages (08P01, then a closed connection) and random bytes (closed, never a
// crash). Each test ends by proving the process alive and serving.
#include <random>

#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

constexpr auto kWait = std::chrono::seconds(5);
constexpr uint32_t kSslRequest = 80877103, kGssEncRequest = 80877104;

class StartupTest : public ProxySuite<StartupTest> {
 protected:
  // The proxy is alive and a libpq client gets an answer through it.
  void ExpectServing() {
    EXPECT_TRUE(env().ProxyAlive());
    auto conn = env().Connect();
    ASSERT_OK(conn.status());
    EXPECT_EQ(Text(conn->Scalar("select 40 + 2")), "42");
  }
};

TEST_F(StartupTest, SslRequestWithoutTlsGetsN) {
  ASSERT_OK_AND_ASSIGN(auto sock, RawSocket::Connect(env().proxy->port()));
  ASSERT_TRUE(sock->Send(SpecialRequest(kSslRequest)));
  ASSERT_TRUE(sock->ReadAtLeast(1, kWait));
  ASSERT_EQ(sock->buffer(), "N");
  // After 'N' the same connection continues in plain text with a StartupMessage.
  sock->buffer().clear();
  ASSERT_TRUE(sock->Send(StartupPacket({{"user", kMd5User}, {"database", "app"}})));
  auto msg = sock->ReadMessage();
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->first, 'R') << "expected an authentication request after the startup";
}

TEST_F(StartupTest, GssEncRequestGetsN) {
  ASSERT_OK_AND_ASSIGN(auto sock, RawSocket::Connect(env().proxy->port()));
  ASSERT_TRUE(sock->Send(SpecialRequest(kGssEncRequest)));
  ASSERT_TRUE(sock->ReadAtLeast(1, kWait));
  ASSERT_EQ(sock->buffer(), "N");
  sock->buffer().clear();
  ASSERT_TRUE(sock->Send(StartupPacket({{"user", kMd5User}, {"database", "app"}})));
  auto msg = sock->ReadMessage();
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->first, 'R');
}

// A startup-phase packet the proxy must refuse: what is sent, and a name for the log.
struct BadStartup {
  const char* name;
  std::string bytes;
};

void PrintTo(const BadStartup& b, std::ostream* os) { *os << b.name; }

std::string Bytes(std::initializer_list<uint32_t> words, std::string tail = "") {
  std::string out;
  for (uint32_t w : words) PutInt32(out, w);
  return out + tail;
}

class BadStartupTest : public StartupTest, public ::testing::WithParamInterface<BadStartup> {};

TEST_P(BadStartupTest, Gets08P01AndClose) {
  ASSERT_OK_AND_ASSIGN(auto sock, RawSocket::Connect(env().proxy->port()));
  sock->Send(GetParam().bytes);  // the proxy may already have closed: its answer still counts
  ASSERT_TRUE(sock->ReadToEof(kWait)) << "connection still open; got " << sock->buffer().size()
                                      << " bytes";
  ASSERT_FALSE(sock->buffer().empty()) << "closed without an ErrorResponse";
  EXPECT_EQ(sock->buffer()[0], 'E');
  EXPECT_THAT(SqlStatesIn(sock->buffer()), Contains("08P01"));
  ExpectServing();
}

INSTANTIATE_TEST_SUITE_P(
    Packets, BadStartupTest,
    ::testing::Values(
        BadStartup{"length_0xFFFFFFF0", Bytes({0xFFFFFFF0u, 196608})},
        BadStartup{"length_3", Bytes({3u}, std::string(4, '\0'))},
        BadStartup{"length_7", Bytes({7u, 196608})},
        // The body promised by the length field is not a sequence of key\0value\0 ... \0.
        BadStartup{"unterminated_parameters",
                   Bytes({8u + 9u, 196608}, std::string("user\0app!", 9))},
        // 300 MB: above limits.max_message_size (256 MiB) but a plausible length otherwise.
        BadStartup{"length_300MB", Bytes({300u << 20, 196608})}),
    [](const auto& info) { return std::string(info.param.name); });

// Logs in with libpq, then writes raw bytes on its socket: the proxy sees them as the next
// frontend messages of an authenticated session.
class AuthenticatedRaw {
 public:
  explicit AuthenticatedRaw(const ProxyEnv& env)
      : conn_(env.Connect("sslmode=disable gssencmode=disable")) {}
  const absl::Status& status() const { return conn_.status(); }
  RawSocket& sock() {
    if (sock_ == nullptr) sock_ = RawSocket::Borrow(PQsocket(conn_->get()));
    return *sock_;
  }
  ~AuthenticatedRaw() {
    if (sock_ != nullptr) sock_->Release();
  }

 private:
  absl::StatusOr<PgConn> conn_;
  std::unique_ptr<RawSocket> sock_;
};

TEST_F(StartupTest, HugeQueryMessageGets08P01AndClose) {
  AuthenticatedRaw session(env());
  ASSERT_OK(session.status());
  std::string query = "Q";
  PutInt32(query, 0x7FFFFFFFu);  // 2^31 - 1: the header alone, the body never comes
  session.sock().Send(query);
  ASSERT_TRUE(session.sock().ReadToEof(kWait)) << "connection still open";
  EXPECT_THAT(SqlStatesIn(session.sock().buffer()), Contains("08P01"));
  ExpectServing();
}

// Half a message, then silence: after timeouts.client_message the client gets 08P01 and is
// disconnected (its session would otherwise sit there for good); between messages nothing
// times out.
TEST_F(StartupTest, ClientStoppingMidMessageIsDisconnectedAfterTheTimeout) {
  ProxyEnvOptions options;
  options.extra_top_yaml = "timeouts: {client_message: 500ms}\n";
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(options));
  ASSERT_OK_AND_ASSIGN(PgConn idle, PgConn::Connect(proxy->ConnString() +
                                                    " sslmode=disable gssencmode=disable"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(proxy->ConnString() +
                                                    " sslmode=disable gssencmode=disable"));
  auto sock = RawSocket::Borrow(PQsocket(conn.get()));
  std::string query = "Q";
  PutInt32(query, 4 + 20);
  query += "select 1";  // 8 of the 20 bytes announced
  const auto sent = Clock::now();
  sock->Send(query);
  ASSERT_TRUE(sock->ReadToEof(kWait)) << "connection still open";
  EXPECT_GE(Clock::now() - sent, std::chrono::milliseconds(400)) << "closed before the timeout";
  EXPECT_THAT(SqlStatesIn(sock->buffer()), Contains("08P01"));
  sock->Release();
  // The client that sent nothing for as long is still there.
  EXPECT_OK(idle.Exec("select 1")) << proxy->Log();
}

TEST_F(StartupTest, MessageLengthBelowFourGets08P01AndClose) {
  AuthenticatedRaw session(env());
  ASSERT_OK(session.status());
  std::string msg = "Q";
  PutInt32(msg, 2);
  session.sock().Send(msg);
  ASSERT_TRUE(session.sock().ReadToEof(kWait)) << "connection still open";
  EXPECT_THAT(SqlStatesIn(session.sock().buffer()), Contains("08P01"));
  ExpectServing();
}

TEST_F(StartupTest, RandomBytesBeforeStartupCloseWithoutCrash) {
  std::mt19937 rng(20240601);  // fixed seed: a failure is reproducible
  for (int round = 0; round < 40; ++round) {
    const size_t size = std::uniform_int_distribution<size_t>(1, 4096)(rng);
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    ASSERT_OK_AND_ASSIGN(auto sock, RawSocket::Connect(env().proxy->port()));
    sock->Send(bytes);
    // Our EOF ends any frame the proxy may still be waiting for: it must close, not hang.
    sock->ShutdownWrite();
    EXPECT_TRUE(sock->ReadToEof(kWait)) << "round " << round << " left the connection open";
    ASSERT_TRUE(env().ProxyAlive()) << "crashed at round " << round;
  }
  ExpectServing();
}

TEST_F(StartupTest, RandomBytesAfterLoginCloseWithoutCrash) {
  std::mt19937 rng(77);
  for (int round = 0; round < 20; ++round) {
    AuthenticatedRaw session(env());
    ASSERT_OK(session.status());
    const size_t size = std::uniform_int_distribution<size_t>(1, 4096)(rng);
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    session.sock().Send(bytes);
    session.sock().ShutdownWrite();
    EXPECT_TRUE(session.sock().ReadToEof(kWait)) << "round " << round;
    ASSERT_TRUE(env().ProxyAlive()) << "crashed at round " << round;
  }
  ExpectServing();
}

// A client that sends its last query and a FIN together (a half-close, as `nc -N` does) gets
// the answer and then EOF. The proxy's client reads do not try recv before waiting for epoll
// after a read that emptied the socket (ClientSocket), and that read does not show the FIN:
// the worker's half-close sweep finds it (the session would otherwise wait for good).
TEST_F(StartupTest, HalfCloseAfterTheLastQueryGetsTheAnswerThenEof) {
  for (int round = 0; round < 5; ++round) {
    AuthenticatedRaw session(env());
    ASSERT_OK(session.status());
    const std::string sql = "select 'half-' || 'closed'";
    std::string query = "Q";
    PutInt32(query, static_cast<uint32_t>(4 + sql.size() + 1));
    query += sql;
    query.push_back('\0');
    ASSERT_TRUE(session.sock().Send(query));
    session.sock().ShutdownWrite();
    ASSERT_TRUE(session.sock().ReadToEof(kWait)) << "round " << round << ": still open";
    EXPECT_THAT(session.sock().buffer(), HasSubstr("half-closed")) << "round " << round;
  }
  ExpectServing();
}

TEST_F(StartupTest, ClientVanishingMidStartupLeavesProxyServing) {
  for (int cut = 1; cut < 12; ++cut) {
    ASSERT_OK_AND_ASSIGN(auto sock, RawSocket::Connect(env().proxy->port()));
    sock->Send(StartupPacket({{"user", kScramUser}, {"database", "app"}}).substr(0, cut));
  }  // each socket closes here, mid-packet
  ExpectServing();
}

}  // namespace
}  // namespace shardgate::testing
