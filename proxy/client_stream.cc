// Plain/TLS client stream: dispatches each operation to the active variant.
#include "proxy/client_stream.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "proxy/io.h"

namespace shardgate::proxy {

asio::awaitable<boost::system::error_code> ClientStream::StartTls(asio::ssl::context& ctx) {
  tcp::socket socket = std::move(static_cast<tcp::socket&>(std::get<0>(stream_)));
  stream_.emplace<1>(std::move(socket), ctx);
  auto [ec] = co_await std::get<1>(stream_).async_handshake(asio::ssl::stream_base::server, kTuple);
  co_return ec;
}

asio::awaitable<boost::system::error_code> ClientStream::WriteAll(asio::const_buffer buf) {
  if (stream_.index() == 0) {
    tcp::socket& socket = std::get<0>(stream_);
    boost::system::error_code ec;
    const size_t n = TrySend(socket, buf, ec);
    if (ec || n == buf.size()) co_return ec;
    auto [wec, written] = co_await asio::async_write(socket, buf + n, kTuple);
    co_return wec;
  }
  auto [ec, n] = co_await asio::async_write(std::get<1>(stream_), buf, kTuple);
  co_return ec;
}

tcp::socket& ClientStream::Socket() {
  if (stream_.index() == 0) return std::get<0>(stream_);
  return std::get<1>(stream_).next_layer();
}

void ClientStream::Close() {
  boost::system::error_code ignored;
  Socket().shutdown(tcp::socket::shutdown_both, ignored);
  Socket().close(ignored);
}

}  // namespace shardgate::proxy
