// Small coroutine helpers shared by the proxy: reading whole frames, timeouts, error codes.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
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

// A timer that runs `on_expire` once if it is still armed after `timeout` (0 = never). Timeouts
// cancel the I/O they bound (close or cancel a socket) instead of racing coroutines with
// awaitable operators: the cancelled operation then fails and its coroutine reports the timeout.
// Contract: destroy or Disarm() it before the objects `on_expire` touches go away; the handler
// only runs while armed.
class Deadline {
 public:
  template <typename Executor, typename F>
  Deadline(const Executor& ex, std::chrono::milliseconds timeout, F on_expire) {
    if (timeout.count() <= 0) return;  // the common case allocates nothing
    state_ = std::make_shared<State>(ex);
    state_->armed = true;
    state_->timer.expires_after(timeout);
    state_->timer.async_wait([state = state_, f = std::move(on_expire)](
                                 const boost::system::error_code& ec) mutable {
      if (ec || !state->armed) return;
      state->armed = false;
      state->expired = true;
      f();
    });
  }
  ~Deadline() { Disarm(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void Disarm() {
    if (state_ && state_->armed) {
      state_->armed = false;
      state_->timer.cancel();
    }
  }
  bool expired() const { return state_ && state_->expired; }

 private:
  struct State {
    explicit State(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    bool armed = false;
    bool expired = false;
  };
  std::shared_ptr<State> state_;
};

// Sends what the kernel takes of `buf` right now when the socket is in non-blocking mode (0
// when it would block, or when the socket is in blocking mode); errors other than would-block
// go to `ec`. Not a coroutine: the common case, a small answer that fits the socket buffer,
// costs one send and neither a coroutine frame nor a trip through the scheduler.
template <typename Socket>
size_t TrySend(Socket& socket, asio::const_buffer buf, boost::system::error_code& ec) {
  if (!socket.non_blocking()) return 0;
  const size_t n = socket.write_some(buf, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    return 0;
  }
  return n;
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
