// RingQueue (the session's queue of expected answers): first in, first out across the ring's
// wrap-around and its growth, slots reused. No servers.
#include "proxy/buffer.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>

namespace shardgate::proxy {
namespace {

TEST(RingQueueTest, KeepsOrderAcrossWrapAndGrowth) {
  RingQueue<std::string> q;
  std::deque<std::string> want;  // the reference
  int next = 0;
  // Sizes that go up and down so that head and tail wrap at each ring size (8, 16, 32, 64).
  for (int round = 0; round < 200; ++round) {
    const int push = (round * 7) % 13 + 1;
    const int pop = (round * 5) % 11;
    for (int i = 0; i < push; ++i) {
      q.push_back(std::to_string(next));
      want.push_back(std::to_string(next));
      ++next;
    }
    ASSERT_EQ(q.size(), want.size());
    ASSERT_EQ(q.back(), want.back());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(q.at(i), want[i]) << "round " << round;
    for (int i = 0; i < pop && !want.empty(); ++i) {
      ASSERT_EQ(q.front(), want.front());
      q.pop_front();
      want.pop_front();
    }
  }
  ASSERT_FALSE(want.empty());
  q.clear();
  EXPECT_TRUE(q.empty());
  q.push_back("after clear");
  EXPECT_EQ(q.front(), "after clear");
  EXPECT_EQ(q.back(), "after clear");
}

TEST(RingQueueTest, EmplaceBackGivesADefaultSlotAlsoWhereAPoppedValueWas) {
  // ClientSession::Push fills the slot emplace_back returns field by field: it must be in its
  // default state, also a slot that held a value before (pop_front resets it) and the new
  // slots of a growth.
  RingQueue<std::string> q;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 5; ++i) q.push_back(std::string(100, 'a' + i));
    for (int i = 0; i < 5; ++i) q.pop_front();
  }
  for (int i = 0; i < 40; ++i) {  // wraps over the popped slots, then grows twice
    std::string& slot = q.emplace_back();
    ASSERT_TRUE(slot.empty()) << "slot " << i << " holds \"" << slot.substr(0, 8) << "...\"";
    slot = std::to_string(i);
  }
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(q.front(), std::to_string(i));
    q.pop_front();
  }
}

}  // namespace
}  // namespace shardgate::proxy
