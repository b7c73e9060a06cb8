// Small coroutine helpers shared by the proxy: reading whole frames, timeouts, error codes.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "absl/status/statusor.h"
#include "protocol/frame_reader.h"
#include "protocol/status.h"
#include "proxy/buffer.h"

namespace shardgate::proxy {

namespace asio = boost::asio;
inline constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;

// Runs `op` and fails with `on_timeout` when it has not finished after `timeout` (0 = no limit).
// The losing operation is cancelled (Asio per-operation cancellation).
template <typename T>
asio::awaitable<absl::StatusOr<T>> WithTimeout(asio::awaitable<absl::StatusOr<T>> op,
                                               std::chrono::milliseconds timeout,
                                               absl::Status on_timeout) {
  if (timeout.count() <= 0) co_return co_await std::move(op);
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto result = co_await (std::move(op) || timer.async_wait(kTuple));
  if (result.index() == 0) co_return std::move(std::get<0>(result));
  co_return on_timeout;
}

// Reads until `buf` starts with one whole typed message and returns it (a view into `buf`,
// valid until the caller consumes it or reads again). EOF and errors become 08006.
template <typename Stream>
asio::awaitable<absl::StatusOr<protocol::Frame>> ReadTypedFrame(Stream& stream, ReadBuffer& buf,
                                                                uint32_t max_size) {
  for (;;) {
    protocol::FrameResult r = protocol::ReadFrame(buf.Data(), max_size);
    if (r.status == protocol::FrameStatus::kFrame) co_return r.frame;
    if (r.status == protocol::FrameStatus::kError) co_return r.error;
    auto [ec, n] = co_await stream.async_read_some(buf.Prepare(r.need), kTuple);
    if (ec) co_return PgStatus("08006", "connection lost: " + ec.message());
    buf.Commit(n);
  }
}

}  // namespace shardgate::proxy
