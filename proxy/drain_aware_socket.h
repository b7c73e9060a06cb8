// TCP sockets whose reads tell Asio's reactor when they emptied the socket, so that the next read
// waits for epoll instead of trying a recv that finds nothing: the server's (after
// ReadyForQuery; the pool then hands the connection out without peeking at it) and the
// client's (any short read; a sweep catches the FIN a short read does not show).
#pragma once

#include <cstddef>
#include <cstring>
#include <utility>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/query.hpp>
#include <boost/version.hpp>

// What follows uses Asio's reactor internals as Boost 1.81 has them (Debian 12's): the epoll
// reactor's per-descriptor `try_speculative_` flag and its `done_and_exhausted` status.
static_assert(BOOST_VERSION == 108100,
              "proxy/drain_aware_socket.h is written against Boost 1.81's Asio");

namespace shardgate::proxy {

namespace asio = boost::asio;

namespace drain_internal {

using Reactor = asio::detail::reactor;
using DescriptorState = Reactor::descriptor_state;
using SpeculativeFlags = bool (DescriptorState::*)[Reactor::max_ops];

// Reads the reactor's private `try_speculative_` (explicit instantiation may name a private
// member; this is the only access, and it is read-only).
struct TrySpeculative {
  friend SpeculativeFlags Member(TrySpeculative);
};
template <SpeculativeFlags kMember>
struct Expose {
  friend SpeculativeFlags Member(TrySpeculative) { return kMember; }
};
template struct Expose<&DescriptorState::try_speculative_>;

// Asio's stream recv operation (reactive_socket_recv_op) with one difference in `Perform`: a
// read that emptied the socket (fewer bytes than asked) and that `Drained` accepts reports
// `done_and_exhausted`, on which the reactor clears the socket's `try_speculative_` until epoll
// next reports it: the next read then waits for epoll instead of trying recv first.
template <typename Handler, typename IoExecutor, typename Drained>
class DrainAwareRecvOp : public asio::detail::reactor_op {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(DrainAwareRecvOp);

  DrainAwareRecvOp(int fd, asio::mutable_buffer buf, Handler& handler, const IoExecutor& io_ex)
      : reactor_op(boost::system::error_code(), &DrainAwareRecvOp::Perform,
                   &DrainAwareRecvOp::Complete),
        fd_(fd),
        buf_(buf),
        handler_(std::move(handler)),
        work_(handler_, io_ex) {}

  static status Perform(reactor_op* base) {
    auto* o = static_cast<DrainAwareRecvOp*>(base);
    if (!asio::detail::socket_ops::non_blocking_recv1(o->fd_, o->buf_.data(), o->buf_.size(), 0,
                                                      /*is_stream=*/true, o->ec_,
                                                      o->bytes_transferred_)) {
      return not_done;
    }
    if (o->ec_ == asio::error::eof) return done_and_exhausted;  // as Asio's own recv op
    if (!o->ec_ && o->bytes_transferred_ < o->buf_.size() &&
        Drained::After(static_cast<const char*>(o->buf_.data()), o->bytes_transferred_)) {
      return done_and_exhausted;
    }
    return done;
  }

  // As reactive_socket_recv_op::do_complete: free the operation before the upcall.
  static void Complete(void* owner, asio::detail::operation* base,
                       const boost::system::error_code& /*ec*/, size_t /*bytes*/) {
    auto* o = static_cast<DrainAwareRecvOp*>(base);
    ptr p = {asio::detail::addressof(o->handler_), o, o};
    asio::detail::handler_work<Handler, IoExecutor> w(std::move(o->work_));
    asio::detail::binder2<Handler, boost::system::error_code, size_t> handler(
        o->handler_, o->ec_, o->bytes_transferred_);
    p.h = asio::detail::addressof(handler.handler_);
    p.reset();
    if (owner) {
      asio::detail::fenced_block b(asio::detail::fenced_block::half);
      w.complete(handler, handler.handler_);
    }
  }

 private:
  int fd_;
  asio::mutable_buffer buf_;
  Handler handler_;
  asio::detail::handler_work<Handler, IoExecutor> work_;
};

}  // namespace drain_internal

// A tcp::socket (moved in once connected or accepted) with `AsyncReadSome`, which is
// `async_read_some` plus the drained signal above for the reads `Drained::After` accepts, and
// `Quiet`. Contract: used on its io_context's one thread (the worker's), as all of a session's
// I/O is.
template <typename Drained>
class DrainAwareSocket : public asio::ip::tcp::socket {
 public:
  explicit DrainAwareSocket(asio::ip::tcp::socket&& socket)
      : asio::ip::tcp::socket(std::move(socket)),
        reactor_(&asio::use_service<drain_internal::Reactor>(
            asio::query(get_executor(), asio::execution::context))) {}

  // True when epoll has reported nothing on the socket since a drained read: the peer sent and
  // closed nothing that the proxy's event loop has seen (except a FIN that came with the drained
  // read's bytes: see the two kinds below).
  bool Quiet() const {
    auto* state = impl_.get_implementation().reactor_data_;
    if (state == nullptr) return false;
    using drain_internal::Reactor;
    return !(state->*Member(drain_internal::TrySpeculative{}))[Reactor::read_op];
  }

  // Starts the read for a completion handler (callers initiate: ServerStream::async_read_some).
  template <typename Handler>
  void AsyncReadSome(asio::mutable_buffer buf, Handler handler) {
    // Per-operation cancellation and empty reads take Asio's own path (neither is used on the
    // hot path: sessions cancel by closing or cancelling the socket).
    if (asio::get_associated_cancellation_slot(handler).is_connected() || buf.size() == 0) {
      asio::ip::tcp::socket::async_read_some(buf, std::move(handler));
      return;
    }
    using Op = drain_internal::DrainAwareRecvOp<Handler, executor_type, Drained>;
    auto& impl = impl_.get_implementation();
    const bool is_continuation =
        boost_asio_handler_cont_helpers::is_continuation(handler);
    typename Op::ptr p = {asio::detail::addressof(handler), Op::ptr::allocate(handler), nullptr};
    p.p = new (p.v) Op(impl.socket_, buf, handler, get_executor());
    if ((impl.state_ & asio::detail::socket_ops::non_blocking) != 0 ||
        asio::detail::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true,
                                                            p.p->ec_)) {
      reactor_->start_op(drain_internal::Reactor::read_op, impl.socket_,
                         impl.reactor_data_, p.p, is_continuation, /*allow_speculative=*/true);
    } else {
      reactor_->post_immediate_completion(p.p, is_continuation);
    }
    p.v = p.p = nullptr;
  }

 private:
  drain_internal::Reactor* reactor_;
};

// The server's reads: drained when they end with a whole ReadyForQuery ('Z', length 5, a status
// byte). A server sends nothing after it until it is sent something, or closes: with a FATAL
// error first (an event), or a FIN that, if it came with the ReadyForQuery, shows when the next
// request's send draws a reset from the closed peer. So the read after the next query skips its
// recv, and the pool's `Quiet` check replaces its peek (a close that arrives in the same batch of
// events as a client's query is seen a little later, as PgBouncer, watching its idle server
// sockets, sees it).
struct AfterReadyForQuery {
  static bool After(const char* data, size_t n) {
    static constexpr char kHead[] = {'Z', 0, 0, 0, 5};
    if (n < 6) return false;
    const char status = data[n - 1];
    return std::memcmp(data + n - 6, kHead, sizeof kHead) == 0 &&
           (status == 'I' || status == 'T' || status == 'E');
  }
};
using ServerSocket = DrainAwareSocket<AfterReadyForQuery>;

// The client's reads: every short read. A client may send its last bytes and a FIN together
// (a half-close), which a short read does not show and no later event reports; the worker's
// sweep (ClientSession::CheckHalfClosedClient) peeks once at a client whose read has waited on
// a quiet socket for a sweep interval, and closes it on EOF.
struct AfterAnyRead {
  static bool After(const char* /*data*/, size_t /*n*/) { return true; }
};
using ClientSocket = DrainAwareSocket<AfterAnyRead>;

}  // namespace shardgate::proxy
