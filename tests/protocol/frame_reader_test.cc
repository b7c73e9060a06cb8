// Tests of the frame reader: header first, capped lengths, need-more sizes, never past the buffer,
// and no allocation on the hot path.
#include "protocol/frame_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "protocol/messages.h"
#include "tests/support/bytes.h"
#include "tests/support/status_matchers.h"

// Counts heap allocations while `g_counting` is set, to prove the hot path allocates nothing.
// GCC cannot see that the replaced new and delete pair malloc with free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<bool> g_counting{false};
std::atomic<int> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  std::abort();  // a test out of memory has nothing better to do
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace shardgate::protocol {
namespace {

using ::shardgate::testing::Body;
using ::shardgate::testing::HasSqlState;
using ::shardgate::testing::Int32;
using ::shardgate::testing::Msg;
using ::shardgate::testing::Startup;
using ::shardgate::testing::Untyped;

TEST(ReadFrameTest, EmptyBufferNeedsHeader) {
  FrameResult r = ReadFrame("");
  EXPECT_EQ(r.status, FrameStatus::kNeedMore);
  EXPECT_EQ(r.need, kHeaderSize);
}

TEST(ReadFrameTest, WholeMessage) {
  const std::string m = Msg('Q', Body().CStr("select 1"));
  FrameResult r = ReadFrame(m);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  EXPECT_EQ(r.frame.type, 'Q');
  EXPECT_EQ(r.frame.body, std::string("select 1") + '\0');
  EXPECT_EQ(r.frame.whole, m);
  EXPECT_EQ(r.frame.whole.data(), m.data());  // a view, not a copy
  EXPECT_EQ(r.need, 0u);
}

TEST(ReadFrameTest, EmptyBodyMessage) {
  const std::string m = Msg('S', "");
  FrameResult r = ReadFrame(m);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  EXPECT_EQ(r.frame.type, 'S');
  EXPECT_TRUE(r.frame.body.empty());
  EXPECT_EQ(r.frame.whole.size(), 5u);
}

// Every strict prefix of a message needs more: 5 before the header is complete, then the total.
TEST(ReadFrameTest, EveryPrefixNeedsMore) {
  const std::string m = Msg('D', Body().Int16(1).Value("hello world"));
  for (size_t n = 0; n < m.size(); ++n) {
    FrameResult r = ReadFrame(std::string_view(m).substr(0, n));
    ASSERT_EQ(r.status, FrameStatus::kNeedMore) << n;
    EXPECT_EQ(r.need, n < kHeaderSize ? kHeaderSize : m.size()) << n;
  }
}

TEST(ReadFrameTest, ReturnsOnlyTheFirstOfSeveral) {
  const std::string a = Msg('1', "");
  const std::string b = Msg('C', Body().CStr("SELECT 1"));
  const std::string buf = a + b + "Z";
  FrameResult r = ReadFrame(buf);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  EXPECT_EQ(r.frame.whole, a);
  r = ReadFrame(std::string_view(buf).substr(a.size()));
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  EXPECT_EQ(r.frame.whole, b);
  r = ReadFrame(std::string_view(buf).substr(a.size() + b.size()));
  EXPECT_EQ(r.status, FrameStatus::kNeedMore);
}

struct BadLengthCase {
  const char* name;
  uint32_t length;
  uint32_t max;
};
class ReadFrameBadLengthTest : public ::testing::TestWithParam<BadLengthCase> {};

TEST_P(ReadFrameBadLengthTest, IsProtocolViolation) {
  const std::string header = "Q" + Int32(static_cast<int32_t>(GetParam().length));
  FrameResult r = ReadFrame(header, GetParam().max);
  EXPECT_EQ(r.status, FrameStatus::kError);
  EXPECT_THAT(r.error, HasSqlState("08P01"));
  HeaderInfo h = PeekHeader(header, GetParam().max);
  EXPECT_EQ(h.status, FrameStatus::kError);
  EXPECT_THAT(h.error, HasSqlState("08P01"));
}

INSTANTIATE_TEST_SUITE_P(
    Lengths, ReadFrameBadLengthTest,
    ::testing::Values(BadLengthCase{"zero", 0, kDefaultMaxMessageSize},
                      BadLengthCase{"three", 3, kDefaultMaxMessageSize},
                      BadLengthCase{"over_cap", 1001, 1000},
                      BadLengthCase{"default_cap", kDefaultMaxMessageSize + 1,
                                    kDefaultMaxMessageSize},
                      BadLengthCase{"negative", 0x80000000u, kDefaultMaxMessageSize},
                      BadLengthCase{"all_ones", 0xFFFFFFFFu, kDefaultMaxMessageSize}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ReadFrameTest, LengthAtCapIsAccepted) {
  const std::string m = Msg('d', std::string(96, 'x'));  // length 100
  EXPECT_EQ(ReadFrame(m, 100).status, FrameStatus::kFrame);
  EXPECT_EQ(ReadFrame(m, 99).status, FrameStatus::kError);
}

TEST(ReadFrameTest, HugeDeclaredLengthNeedsMoreWithoutReading) {
  // A declared 200 MB message with 5 bytes present: need says the total, nothing is read.
  const std::string header = "d" + Int32(200 << 20);
  FrameResult r = ReadFrame(header);
  EXPECT_EQ(r.status, FrameStatus::kNeedMore);
  EXPECT_EQ(r.need, (size_t{200} << 20) + 1);
}

TEST(PeekHeaderTest, TypeAndTotalSize) {
  const std::string m = Msg('D', Body().Int16(0));
  HeaderInfo h = PeekHeader(std::string_view(m).substr(0, 5));
  ASSERT_EQ(h.status, FrameStatus::kFrame);
  EXPECT_EQ(h.type, 'D');
  EXPECT_EQ(h.total_size, m.size());
  EXPECT_EQ(PeekHeader("D\0\0").status, FrameStatus::kNeedMore);
}

TEST(ReadStartupFrameTest, StartupMessage) {
  const std::string m = Startup({{"user", "alice"}, {"database", "app"}});
  FrameResult r = ReadStartupFrame(m);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  EXPECT_EQ(r.frame.type, 0);
  EXPECT_EQ(r.frame.whole, m);
  EXPECT_EQ(r.frame.body, std::string_view(m).substr(4));
}

TEST(ReadStartupFrameTest, EveryPrefixNeedsMore) {
  const std::string m = Startup({{"user", "u"}});
  for (size_t n = 0; n < m.size(); ++n) {
    FrameResult r = ReadStartupFrame(std::string_view(m).substr(0, n));
    ASSERT_EQ(r.status, FrameStatus::kNeedMore) << n;
    EXPECT_EQ(r.need, n < kStartupHeaderSize ? kStartupHeaderSize : m.size()) << n;
  }
}

TEST(ReadStartupFrameTest, SslRequestIsEightBytes) {
  const std::string m = Untyped(Body().UInt32(kSslRequestCode));
  FrameResult r = ReadStartupFrame(m);
  ASSERT_EQ(r.status, FrameStatus::kFrame);
  EXPECT_EQ(r.frame.body.size(), 4u);
}

class ReadStartupBadLengthTest : public ::testing::TestWithParam<uint32_t> {};
TEST_P(ReadStartupBadLengthTest, IsProtocolViolation) {
  FrameResult r = ReadStartupFrame(Int32(static_cast<int32_t>(GetParam())));
  EXPECT_EQ(r.status, FrameStatus::kError);
  EXPECT_THAT(r.error, HasSqlState("08P01"));
}
INSTANTIATE_TEST_SUITE_P(Lengths, ReadStartupBadLengthTest,
                         ::testing::Values(0u, 4u, 7u, kMaxStartupPacketSize + 1, 0x80000000u));

TEST(ReadStartupFrameTest, CustomCap) {
  const std::string m = Startup({{"user", std::string(100, 'u')}});
  EXPECT_EQ(ReadStartupFrame(m, 50).status, FrameStatus::kError);
  EXPECT_EQ(ReadStartupFrame(m).status, FrameStatus::kFrame);
}

// The steady-state path: frame a message and look into it through views, no heap.
TEST(HotPathTest, FramingAndViewsDoNotAllocate) {
  const std::string q = Msg('Q', Body().CStr("select * from t where id = 42"));
  const std::string bind = Msg(
      'B',
      Body().CStr("").CStr("s1").Int16(1).Int16(0).Int16(2).Value("42").Null().Int16(1).Int16(1));
  const std::string row = Msg('D', Body().Int16(3).Value("1").Null().Value("abc"));
  const std::string cc = Msg('C', Body().CStr("SELECT 1"));
  const std::string buf = q + bind + row + cc;
  int frames = 0;
  bool all_ok = true;
  g_allocations = 0;
  g_counting = true;
  std::string_view rest = buf;
  for (int i = 0; i < 16 && !rest.empty(); ++i) {
    FrameResult r = ReadFrame(rest);
    if (r.status != FrameStatus::kFrame) break;
    ++frames;
    switch (r.frame.type) {
      case 'Q':
        all_ok &= ParseQuery(r.frame.body).ok();
        break;
      case 'B':
        all_ok &= ParseBind(r.frame.body).ok();
        break;
      case 'D':
        all_ok &= ParseDataRow(r.frame.body).ok();
        break;
      case 'C':
        all_ok &= ParseCommandComplete(r.frame.body).ok();
        break;
      default:
        all_ok = false;
    }
    rest.remove_prefix(r.frame.whole.size());
  }
  g_counting = false;
  EXPECT_EQ(frames, 4);
  EXPECT_TRUE(all_ok);
  EXPECT_EQ(g_allocations.load(), 0);
}

}  // namespace
}  // namespace shardgate::protocol
