// The proxy's byte stream to one server: its TCP socket, with TLS layered over it once the
// server accepted the SSLRequest. Callers do all I/O through it, whichever the mode.
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>

#include <boost/asio/async_result.hpp>
#include <boost/asio/consign.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "proxy/drain_aware_socket.h"

namespace shardgate::proxy {

namespace asio = boost::asio;

// An Asio AsyncReadStream/AsyncWriteStream (so asio::async_write, ReadTypedFrame and the pump
// use it exactly as they used the socket) that dispatches each operation to TLS or the socket.
// Like ClientStream::AsyncReadSome, it keeps Asio's initiating-function shape: the pump's
// per-read path then costs no extra coroutine frame, plain or TLS.
// Contract: one reader and one writer at a time. Deadlines cancel or close `socket()`, which
// fails a pending TLS operation too. The stream may be destroyed while an operation is pending
// (a session drops a lost server while its pump still waits to read): a plain socket's
// aborted operation touches nothing of it, and a TLS operation keeps the layers it uses alive
// until it completes (asio::consign), since Asio's TLS operation updates the engine even when
// it fails.
class ServerStream {
 public:
  using executor_type = asio::ip::tcp::socket::executor_type;
  using TlsLayer = asio::ssl::stream<asio::ip::tcp::socket&>;

  explicit ServerStream(asio::ip::tcp::socket socket)
      : layers_(std::make_shared<Layers>(std::move(socket))) {}
  ServerStream(const ServerStream&) = delete;
  ServerStream& operator=(const ServerStream&) = delete;

  executor_type get_executor() { return layers_->socket.get_executor(); }
  // The TCP socket under everything: for connect, cancel, close, options and MSG_PEEK.
  asio::ip::tcp::socket& socket() { return layers_->socket; }

  // Wraps the socket in TLS (the handshake is the caller's: it sets SNI and verification on
  // the layer first). Call once, before any I/O through the stream.
  TlsLayer& StartTls(asio::ssl::context& ctx) {
    layers_->tls = std::make_unique<TlsLayer>(layers_->socket, ctx);
    return *layers_->tls;
  }
  bool IsTls() const { return layers_->tls != nullptr; }
  // See ServerSocket: false under TLS, whose reads take Asio's own path.
  bool QuietSinceReadyForQuery() const {
    return !layers_->tls && layers_->socket.Quiet();
  }
  TlsLayer* tls() { return layers_->tls.get(); }

  // TrySend (io.h) writes to the kernel directly only when this is true: never under TLS,
  // whose records must go through OpenSSL.
  bool non_blocking() const { return !layers_->tls && layers_->socket.non_blocking(); }
  // Plain streams only (TrySend calls it only when non_blocking()).
  template <typename ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    return layers_->socket.write_some(buffers, ec);
  }

  template <typename MutableBufferSequence, typename Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [layers = layers_.get(), &owner = layers_](auto handler, const MutableBufferSequence& b) {
          if (layers->tls) {
            layers->tls->async_read_some(b, asio::consign(std::move(handler), owner));
          } else if constexpr (std::is_convertible_v<MutableBufferSequence, asio::mutable_buffer>) {
            layers->socket.AsyncReadSome(asio::mutable_buffer(b), std::move(handler));
          } else {
            layers->socket.async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <typename ConstBufferSequence, typename Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [layers = layers_.get(), &owner = layers_](auto handler, const ConstBufferSequence& b) {
          if (layers->tls) {
            layers->tls->async_write_some(b, asio::consign(std::move(handler), owner));
          } else {
            layers->socket.async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

 private:
  struct Layers {
    explicit Layers(asio::ip::tcp::socket s) : socket(std::move(s)) {}
    ServerSocket socket;
    std::unique_ptr<TlsLayer> tls;  // null: plain TCP; refers to `socket`
  };
  std::shared_ptr<Layers> layers_;
};

}  // namespace shardgate::proxy
