// Pool: LIFO idle list (warm connections first), FIFO waiters, stale-connection check on checkout.
#include "proxy/pool.h"

#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "proxy/runtime.h"

namespace shardgate::proxy {

namespace {

// True when an idle connection can be reused: no unread bytes and no EOF from the server
// (a server that restarted or was killed leaves EOF on every pooled connection). Where the event
// loop has seen nothing on the socket since its last ReadyForQuery
// (ServerSocket::Quiet) that is known without a system call; otherwise (TLS,
// or something arrived) a peek finds out. The check is kept on purpose: without it the pool
// handed a client a connection whose server had just been killed (ServerKillTest), and its query
// failed with a bare closed socket instead of reconnecting; PgBouncer gets the same guarantee
// from watching its idle server sockets.
// Also false for a connection opened under other server_tls settings than the current ones.
bool StillUsable(ServerConnection& conn, const Runtime* runtime) {
  if (!conn.Idle() || !conn.socket().is_open()) return false;
  if (runtime != nullptr && conn.tls_version() != runtime->server_tls_version()) return false;
  if (conn.stream().QuietSinceReadyForQuery()) return true;
  char byte;
  ssize_t n = ::recv(conn.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

asio::awaitable<absl::StatusOr<std::unique_ptr<ServerConnection>>> Pool::Acquire(
    std::chrono::milliseconds wait) {
  const auto start = Clock::now();
  const auto deadline = start + wait;
  for (;;) {
    if (std::unique_ptr<ServerConnection> conn = TryAcquire()) co_return conn;
    if (open_ < max_size_) {
      ++open_;
      ++connecting_;
      // The TLS context is the current config snapshot's: a reload that changes server_tls
      // applies to every connection opened after it.
      const uint64_t tls_version = runtime_ != nullptr ? runtime_->server_tls_version() : 0;
      auto conn = co_await ServerConnection::Connect(
          target_, connect_timeout_, runtime_ != nullptr ? runtime_->server_tls() : nullptr);
      if (conn.ok()) (*conn)->set_tls_version(tls_version);
      --connecting_;
      if (!conn.ok()) {
        --open_;
        WakeOne();
      }
      co_return conn;
    }
    if (Clock::now() >= deadline) {
      co_return PgStatus("53300",
                         absl::StrCat("no server connection to shard \"", target_.shard,
                                      "\" became free within ", wait.count(), " ms"),
                         "Raise pool_size or lower the number of concurrent transactions.");
    }
    Waiter waiter(co_await asio::this_coro::executor);
    waiter.since = start;
    waiter.timer.expires_at(deadline);
    waiters_.push_back(waiter);
    co_await waiter.timer.async_wait(kTuple);
    if (waiter.is_linked()) waiter.unlink();  // timed out: still queued
    if (waiter.conn) co_return std::move(waiter.conn);
    // A slot or nothing: loop to reuse idle, connect, or fail on the deadline.
  }
}

std::unique_ptr<ServerConnection> Pool::TryAcquire() {
  while (!idle_.empty()) {
    std::unique_ptr<ServerConnection> conn = std::move(idle_.back());
    idle_.pop_back();
    if (StillUsable(*conn, runtime_)) return conn;
    conn->MarkBroken();
    conn->Close();
    --open_;
  }
  return nullptr;
}

void Pool::Release(std::unique_ptr<ServerConnection> conn) {
  if (!conn) return;
  if (conn->has_followers()) {
    Follower& next = conn->followers().front();
    conn->followers().pop_front();
    if (!conn->lost() && conn->socket().is_open()) {
      // The answers before its read's are read: what comes next on the connection is its own.
      // (A lane stays one while it passes from follower to follower.)
      conn->Touch();
      next.conn = std::move(conn);
      next.timer.cancel();
      return;
    }
    next.timer.cancel();
    while (conn->has_followers()) {
      Follower& f = conn->followers().front();
      conn->followers().pop_front();
      f.timer.cancel();
    }
  }
  CloseLane(*conn);
  if (!conn->Idle() ||
      (runtime_ != nullptr && conn->tls_version() != runtime_->server_tls_version())) {
    conn->Close();
    --open_;
    WakeOne();
    return;
  }
  conn->Touch();
  if (!waiters_.empty()) {
    Waiter& w = waiters_.front();
    waiters_.pop_front();
    w.conn = std::move(conn);
    w.timer.cancel();
    return;
  }
  idle_.push_back(std::move(conn));
}

std::chrono::microseconds Pool::max_wait() const {
  // A waiter woken for a free slot that another took queues again at the back: not FIFO by age.
  const auto now = Clock::now();
  auto oldest = now;
  for (const Waiter& w : waiters_) oldest = std::min(oldest, w.since);
  return std::chrono::duration_cast<std::chrono::microseconds>(now - oldest);
}

const Pool::Parameters* Pool::KnownLogin(const std::string& settings_key) const {
  if (open_ == 0) return nullptr;
  auto it = known_logins_.find(settings_key);
  return it == known_logins_.end() ? nullptr : &it->second;
}

void Pool::NoteLogin(const std::string& settings_key, const Parameters& parameters) {
  constexpr size_t kMaxKnownLogins = 1024;  // distinct startup-setting sets remembered
  if (known_logins_.size() >= kMaxKnownLogins) known_logins_.clear();
  known_logins_.insert_or_assign(settings_key, parameters);
}

void Pool::WakeOne() {
  if (waiters_.empty()) return;
  Waiter& w = waiters_.front();
  waiters_.pop_front();
  w.slot = true;
  w.timer.cancel();
}

void Pool::CloseIdle(std::chrono::milliseconds max_idle) {
  const auto now = Clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (max_idle.count() == 0 || now - (*it)->last_used() > max_idle ||
        !StillUsable(**it, runtime_)) {
      (*it)->Close();
      it = idle_.erase(it);
      --open_;
      WakeOne();
    } else {
      ++it;
    }
  }
}

Pool& PoolSet::Get(const BackendTarget& target, int max_size,
                   std::chrono::milliseconds connect_timeout) {
  key_.clear();
  target.AppendKey(key_);
  if (auto it = pools_.find(key_); it != pools_.end()) return *it->second;
  auto& slot = pools_[key_];
  slot = std::make_unique<Pool>(target, max_size, connect_timeout, runtime_);
  return *slot;
}

void PoolSet::CloseIdle(std::chrono::milliseconds max_idle) {
  for (auto& [key, pool] : pools_) pool->CloseIdle(max_idle);
}

}  // namespace shardgate::proxy
