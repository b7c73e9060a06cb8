// Pool's queue of clients waiting for a server, with no server at all: a pool of size 0 never
// hands one out, so every Acquire waits in the queue until its deadline and fails with 53300.
// The queue links each waiter inside its own Acquire's coroutine frame (no allocation); these
// tests check that waiters leave it in whatever order their deadlines come, and that a waiter
// whose frame is destroyed while it waits (its session torn down with the io_context) leaves it
// too instead of staying behind as a dangling entry.
#include "proxy/pool.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "protocol/status.h"

namespace shardgate::proxy {
namespace {

using namespace std::chrono_literals;

BackendTarget NoServer() {
  BackendTarget target;
  target.shard = "s0";
  target.database = "app";
  target.host = "127.0.0.1";
  target.port = 1;  // never connected to: the pool has no room for a connection
  target.dbname = "app";
  target.user = "app";
  return target;
}

TEST(PoolWaitTest, WaitersLeaveTheQueueInTheOrderTheirDeadlinesCome) {
  Pool pool(NoServer(), /*max_size=*/0, 1s);
  asio::io_context io;
  std::vector<std::optional<absl::Status>> results(3);
  std::vector<int> left;           // which waiter left, in order
  std::vector<int> waiting_after;  // pool.waiting() as each left
  auto acquire = [&](int i, std::chrono::milliseconds wait) -> asio::awaitable<void> {
    auto conn = co_await pool.Acquire(wait);
    results[i] = conn.status();
    left.push_back(i);
    waiting_after.push_back(pool.waiting());
  };
  // Queued in the order 0, 1, 2; their deadlines come middle first, then first, then last.
  asio::co_spawn(io, acquire(0, 150ms), asio::detached);
  asio::co_spawn(io, acquire(1, 50ms), asio::detached);
  asio::co_spawn(io, acquire(2, 250ms), asio::detached);
  io.poll();  // each runs up to its wait
  EXPECT_EQ(pool.waiting(), 3);
  EXPECT_GE(pool.max_wait().count(), 0);
  io.run();
  EXPECT_EQ(left, (std::vector<int>{1, 0, 2}));
  EXPECT_EQ(waiting_after, (std::vector<int>{2, 1, 0}));
  for (const auto& st : results) {
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(SqlState(*st), "53300") << *st;
  }
  EXPECT_EQ(pool.waiting(), 0);
  EXPECT_EQ(pool.max_wait().count(), 0);
}

TEST(PoolWaitTest, AWaiterDestroyedWhileWaitingLeavesTheQueue) {
  Pool pool(NoServer(), /*max_size=*/0, 1s);
  bool finished = false;
  auto acquire = [&]() -> asio::awaitable<void> {  // outlives the coroutines' frames
    (void)co_await pool.Acquire(60s);
    finished = true;
  };
  {
    asio::io_context io;
    asio::co_spawn(io, acquire(), asio::detached);
    asio::co_spawn(io, acquire(), asio::detached);
    io.poll();
    EXPECT_EQ(pool.waiting(), 2);
  }  // the io_context goes, and with it the two suspended coroutines' frames
  EXPECT_FALSE(finished);
  EXPECT_EQ(pool.waiting(), 0);
  EXPECT_EQ(pool.max_wait().count(), 0);
}

}  // namespace
}  // namespace shardgate::proxy
