// ServerSocket and ClientSocket: which reads mark a socket quiet (a short read ending with
// ReadyForQuery; any short read), that anything epoll reports afterwards ends it, that a read
// started on a quiet socket still completes (data, a reset), and the one case it does not (a
// FIN that came with the drained bytes, which the half-close sweep is for). A loopback socket
// stands in for the peer; no PostgreSQL.
#include "proxy/drain_aware_socket.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include <sys/socket.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>

namespace shardgate::proxy {
namespace {

using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

const std::string kReady("Z\0\0\0\5I", 6);
const std::string kRow("D\0\0\0\6\0\0", 7);

struct ReadResult {
  boost::system::error_code ec;
  std::string bytes;
};

template <typename Socket>
class DrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket client(io_);
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server_);
    socket_.emplace(std::move(client));
    socket_->non_blocking(true);
  }

  void ServerSends(const std::string& bytes) { asio::write(server_, asio::buffer(bytes)); }

  // Starts a read of up to `size` bytes; its result lands in `result_`.
  void StartRead(size_t size) {
    buf_.assign(size, '\0');
    result_.reset();
    socket_->AsyncReadSome(asio::buffer(buf_),
                           [this](boost::system::error_code ec, size_t n) {
                             result_ = ReadResult{ec, buf_.substr(0, n)};
                           });
  }

  // Runs the loop until the read completed (or 2 s passed).
  std::optional<ReadResult> Finish() {
    for (auto end = std::chrono::steady_clock::now() + 2s;
         !result_ && std::chrono::steady_clock::now() < end;) {
      io_.run_for(10ms);
      io_.restart();
    }
    return result_;
  }

  std::optional<ReadResult> Read(size_t size) {
    StartRead(size);
    return Finish();
  }

  // Lets the reactor see what arrived (epoll) without any read pending. A worker's loop always
  // has work (its acceptor, other sessions); here a guard stands in for it, without which
  // poll() would return before asking epoll.
  void Poll() {
    auto work = asio::make_work_guard(io_);
    for (int i = 0; i < 20; ++i) {
      io_.poll();
      io_.restart();
      std::this_thread::sleep_for(1ms);
    }
  }

  asio::io_context io_{1};
  tcp::socket server_{io_};
  std::optional<Socket> socket_;
  std::string buf_;
  std::optional<ReadResult> result_;
};

using ServerSocketTest = DrainTest<ServerSocket>;
using ClientSocketTest = DrainTest<ClientSocket>;

TEST_F(ServerSocketTest, AShortReadEndingWithReadyForQueryMakesItQuiet) {
  EXPECT_FALSE(socket_->Quiet()) << "a new socket has not been read";
  ServerSends(kRow + kReady);
  auto r = Read(1024);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ec);
  EXPECT_EQ(r->bytes, kRow + kReady);
  EXPECT_TRUE(socket_->Quiet());
}

TEST_F(ServerSocketTest, OtherReadsLeaveItLoud) {
  ServerSends(kRow);
  ASSERT_TRUE(Read(1024));
  EXPECT_FALSE(socket_->Quiet()) << "no ReadyForQuery at the end";

  // A read that filled its buffer did not empty the socket, ReadyForQuery or not.
  ServerSends(kReady + kRow);
  auto r = Read(kReady.size());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bytes, kReady);
  EXPECT_FALSE(socket_->Quiet()) << "the buffer was full: more may be there";
  ASSERT_TRUE(Read(1024));  // the row that was left
}

TEST_F(ServerSocketTest, AnythingEpollReportsEndsTheQuiet) {
  ServerSends(kReady);
  ASSERT_TRUE(Read(1024));
  ASSERT_TRUE(socket_->Quiet());
  Poll();
  EXPECT_TRUE(socket_->Quiet()) << "nothing arrived";

  // An asynchronous message (a FATAL before a close, a NOTICE) while no read is pending.
  ServerSends(kRow);
  Poll();
  EXPECT_FALSE(socket_->Quiet());

  // The same for a close: EOF is what the pool's peek then finds.
  ServerSends(kReady);
  auto r = Read(1024);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bytes, kRow + kReady);
  ASSERT_TRUE(socket_->Quiet());
  server_.close();
  Poll();
  EXPECT_FALSE(socket_->Quiet());
  r = Read(1024);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ec, asio::error::eof);
}

TEST_F(ServerSocketTest, AReadOnAQuietSocketWaitsForEpollAndCompletes) {
  ServerSends(kReady);
  ASSERT_TRUE(Read(1024));
  ASSERT_TRUE(socket_->Quiet());
  StartRead(1024);  // queued without trying recv first
  io_.poll();
  io_.restart();
  EXPECT_FALSE(result_) << "completed with nothing sent";
  ServerSends(kRow + kReady);
  auto r = Finish();
  ASSERT_TRUE(r) << "the read on a quiet socket never completed";
  EXPECT_FALSE(r->ec);
  EXPECT_EQ(r->bytes, kRow + kReady);
}

// The case a quiet socket can miss: the server closed right behind its ReadyForQuery, the FIN
// came with it, and no later event reports it. The next request's send draws a reset from the
// closed peer, which completes the read waiting for the answer: an error, not a hang.
TEST_F(ServerSocketTest, ACloseThatCameWithReadyForQueryShowsAtTheNextSend) {
  ServerSends(kReady);
  server_.close();
  std::this_thread::sleep_for(20ms);  // both the bytes and the FIN are in before the read
  auto r = Read(1024);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bytes, kReady);
  socket_->non_blocking(false);
  boost::system::error_code ec;
  asio::write(*socket_, asio::buffer(std::string("Q\0\0\0\5x", 6)), ec);
  socket_->non_blocking(true);
  r = Read(1024);
  ASSERT_TRUE(r) << "a read after a send to a closed server hung";
  EXPECT_TRUE(r->ec == asio::error::eof || r->ec == asio::error::connection_reset) << r->ec;
}

TEST_F(ClientSocketTest, AnyShortReadMakesItQuietAndAFullOneDoesNot) {
  ServerSends(kRow);
  auto r = Read(1024);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bytes, kRow);
  EXPECT_TRUE(socket_->Quiet());
  ServerSends(kRow + kRow);
  r = Read(kRow.size());
  ASSERT_TRUE(r);
  EXPECT_FALSE(socket_->Quiet()) << "the buffer was full: more may be there";
  r = Read(1024);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bytes, kRow);
  EXPECT_TRUE(socket_->Quiet());
  ServerSends(kRow);  // the next message, read after epoll reports it
  r = Read(1024);
  ASSERT_TRUE(r) << "a read on a quiet client socket never completed";
  EXPECT_EQ(r->bytes, kRow);
}

// Why ClientSession::CheckHalfClosedClient exists: a read waits on a quiet socket, the peer's
// last bytes and its FIN arrive together (a half-close: the peer still reads), epoll reports
// them once, the read takes the bytes, and nothing reports the FIN to the next read. A peek
// sees it (EOF), which is what the sweep looks for before it closes the socket.
TEST_F(ClientSocketTest, AFinThatCameWithTheLastBytesIsReportedByNothing) {
  ServerSends(kRow);
  ASSERT_TRUE(Read(1024));
  ASSERT_TRUE(socket_->Quiet());
  StartRead(1024);  // waits for epoll
  ServerSends(kRow);
  server_.shutdown(tcp::socket::shutdown_send);
  std::this_thread::sleep_for(20ms);  // both are in before epoll is asked
  auto r = Finish();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bytes, kRow);
  EXPECT_TRUE(socket_->Quiet());

  StartRead(1024);
  Poll();
  EXPECT_FALSE(result_) << "the FIN was reported after all: the half-close sweep is not needed";
  char byte;
  EXPECT_EQ(::recv(socket_->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT), 0)
      << "a peek sees EOF";
  socket_->close();  // what the sweep does: the waiting read fails
  r = Finish();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ec, asio::error::operation_aborted);
}

}  // namespace
}  // namespace shardgate::proxy
