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

TEST(RingQueueTest, PopReleasesTheSlotsValue) {
  RingQueue<std::string> q;
  q.push_back(std::string(100, 'x'));
  q.push_back("b");
  q.pop_front();
  // The slot popped holds an empty value again (what it held is released at once).
  for (int i = 0; i < 7; ++i) q.push_back("c");  // fills the ring of 8 without growing
  EXPECT_EQ(q.size(), 8u);
  EXPECT_EQ(q.front(), "b");
  EXPECT_EQ(q.back(), "c");
}

}  // namespace
}  // namespace shardgate::proxy
