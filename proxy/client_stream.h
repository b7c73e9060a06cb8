// The client's byte stream: a plain TCP socket, or TLS over it after an SSLRequest.
#pragma once

#include <memory>
#include <variant>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include "proxy/drain_aware_socket.h"

namespace shardgate::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Contract: one reader and one writer at a time (the session guarantees it). Errors are
// returned as error codes, never thrown.
class ClientStream {
 public:
  // The socket is put in non-blocking mode: writes try the kernel directly before waiting.
  explicit ClientStream(tcp::socket socket) : stream_(std::in_place_index<0>, std::move(socket)) {
    boost::system::error_code ignored;
    std::get<0>(stream_).non_blocking(true, ignored);
  }

  // Performs the server side of a TLS handshake; afterwards all I/O is encrypted.
  asio::awaitable<boost::system::error_code> StartTls(asio::ssl::context& ctx);
  bool IsTls() const { return stream_.index() == 1; }

  // Reads what has arrived, up to `buf`: an Asio asynchronous operation, so that awaiting it
  // (`co_await stream.AsyncReadSome(buf, kTuple)`) costs no coroutine frame of its own.
  template <typename Token>
  auto AsyncReadSome(asio::mutable_buffer buf, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, size_t)>(
        [this](auto handler, asio::mutable_buffer b) {
          if (stream_.index() == 0) {
            std::get<0>(stream_).AsyncReadSome(b, std::move(handler));
          } else {
            std::get<1>(stream_).async_read_some(b, std::move(handler));
          }
        },
        token, buf);
  }
  asio::awaitable<boost::system::error_code> WriteAll(asio::const_buffer buf);

  tcp::socket& Socket();
  void Close();
  // Plain TCP whose last read emptied it, with nothing reported by epoll since (ClientSocket).
  bool Quiet() const { return stream_.index() == 0 && std::get<0>(stream_).Quiet(); }

 private:
  std::variant<ClientSocket, asio::ssl::stream<tcp::socket>> stream_;
};

}  // namespace shardgate::proxy
