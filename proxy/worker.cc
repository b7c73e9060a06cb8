// Worker: SO_REUSEPORT acceptor, session spawning, idle-server maintenance, shutdown.
#include "proxy/worker.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "proxy/client_session.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {

namespace {
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
}

absl::Status Worker::Listen(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  acceptor_ = std::make_unique<tcp::acceptor>(io_);
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_->set_option(ReusePort(true), ec);
  if (!ec) acceptor_->bind(endpoint, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", endpoint.address().to_string(),
                                               ":", endpoint.port(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

void Worker::Start() {
  asio::co_spawn(io_, AcceptLoop(), asio::detached);
  asio::co_spawn(io_, MaintenanceLoop(), asio::detached);
  asio::co_spawn(io_, HalfCloseSweep(), asio::detached);
  thread_ = std::thread([this] {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        // Our code throws nothing; this is a bug or bad_alloc. Keep serving the others.
        spdlog::error("worker {}: unexpected exception: {}", index_, e.what());
      }
    }
  });
}

asio::awaitable<void> Worker::AcceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_->async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(50));  // e.g. EMFILE: back off
      co_await pause.async_wait(kTuple);
      continue;
    }
    auto session = std::make_shared<ClientSession>(*this, std::move(socket));
    asio::co_spawn(io_, session->Run(), [session](std::exception_ptr e) {
      if (e) spdlog::error("client session ended with an exception");
    });
  }
}

asio::awaitable<void> Worker::MaintenanceLoop() {
  asio::steady_timer timer(io_);
  auto next_halving = std::chrono::steady_clock::now() + kHotKeyHalfLife;
  for (;;) {
    timer.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await timer.async_wait(kTuple);
    if (ec || runtime_.shutting_down.load()) co_return;
    pools_.CloseIdle(runtime_.config()->timeouts.server_idle);
    if (std::chrono::steady_clock::now() >= next_halving) {  // "hot" means recent
      next_halving += kHotKeyHalfLife;
      for (auto& db : hot_keys_) {
        for (auto& table : db.second) table.second.Halve();
      }
    }
  }
}

asio::awaitable<void> Worker::HalfCloseSweep() {
  asio::steady_timer timer(io_);
  for (;;) {
    timer.expires_after(kHalfCloseSweep);
    auto [ec] = co_await timer.async_wait(kTuple);
    if (ec || runtime_.shutting_down.load()) co_return;
    // CheckHalfClosedClient only closes sockets: the sessions end later, outside this loop.
    for (ClientSession* s : sessions_) s->CheckHalfClosedClient();
  }
}

void Worker::SessionStarted(ClientSession* s) {
  sessions_.insert(s);
  session_count_.fetch_add(1);
}

void Worker::SessionEnded(ClientSession* s) {
  sessions_.erase(s);
  session_count_.fetch_sub(1);
}

void Worker::BeginShutdown() {
  asio::post(io_, [this] {
    boost::system::error_code ignored;
    if (acceptor_) acceptor_->close(ignored);
    // Copy: OnShutdown may end a session, which erases itself from the set.
    std::vector<ClientSession*> sessions(sessions_.begin(), sessions_.end());
    for (ClientSession* s : sessions) {
      if (sessions_.contains(s)) s->OnShutdown();
    }
  });
}

void Worker::Stop() {
  asio::post(io_, [this] { pools_.CloseIdle(std::chrono::milliseconds(0)); });
  // Give the post a moment to run, then stop.
  asio::post(io_, [this] { io_.stop(); });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace shardgate::proxy
