// WriteGate without a proxy: which writes a pause blocks, the drain of transactions that wrote
// before it, the deadline, Resume, the switch record behind 40001, and Enter/Leave racing with
// Pause/Resume on several threads.
#include "proxy/write_gate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "protocol/status.h"
#include "tests/support/status_matchers.h"

namespace shardgate::proxy {
namespace {

using ::shardgate::testing::HasSqlState;
using ::shardgate::testing::IsOk;
using ::testing::ElementsAre;
using Clock = WriteGate::Clock;

routing::TableRef Table(std::string schema, std::string name, bool written) {
  routing::TableRef t;
  t.schema = std::move(schema);
  t.name = std::move(name);
  t.written = written;
  return t;
}
std::vector<routing::TableRef> Writes(const std::string& name, const std::string& schema = "") {
  return {Table(schema, name, true)};
}
std::vector<routing::TableRef> Reads(const std::string& name) { return {Table("", name, false)}; }

Clock::time_point Far() { return Clock::now() + std::chrono::hours(1); }

TEST(WriteGateTest, NothingBlocksWithoutAPause) {
  WriteGate gate;
  const uint64_t e = gate.Enter();
  EXPECT_FALSE(gate.Blocks(e, Writes("t")));
  EXPECT_FALSE(gate.Paused());
  EXPECT_EQ(gate.Draining(), 0);
  EXPECT_TRUE(gate.Tables().empty());
  gate.Leave(e);
}

TEST(WriteGateTest, BlocksOnlyWritesOfPausedTables) {
  WriteGate gate;
  ASSERT_THAT(gate.Pause({"t", "app.x"}, Far()), IsOk());
  EXPECT_TRUE(gate.Paused());
  EXPECT_THAT(gate.Tables(), ElementsAre("app.x", "t"));
  const uint64_t e = gate.Enter();
  EXPECT_TRUE(gate.Blocks(e, Writes("t")));
  EXPECT_TRUE(gate.Blocks(e, Writes("t", "public"))) << "public.t is t";
  EXPECT_FALSE(gate.Blocks(e, Writes("t", "other"))) << "other.t is another table";
  EXPECT_TRUE(gate.Blocks(e, Writes("x", "app")));
  EXPECT_FALSE(gate.Blocks(e, Writes("x"))) << "x is public.x, not app.x";
  EXPECT_FALSE(gate.Blocks(e, Reads("t"))) << "reads go on";
  EXPECT_FALSE(gate.Blocks(e, Writes("u")));
  EXPECT_FALSE(gate.Blocks(e, {}));
  // A statement reading t and writing u (INSERT INTO u SELECT ... FROM t) goes on; one writing
  // u and t waits.
  EXPECT_FALSE(gate.Blocks(e, {Table("", "t", false), Table("", "u", true)}));
  EXPECT_TRUE(gate.Blocks(e, {Table("", "u", true), Table("", "t", true)}));
  gate.Leave(e);
}

// Regression: shardctl pauses the names the YAML map uses, and the map may name a table
// "public.t"; writes to t (parsed as schema "" or "public") were never held by such a pause.
TEST(WriteGateTest, PublicQualifiedPauseNamesHoldBareWrites) {
  WriteGate gate;
  ASSERT_THAT(gate.Pause({"public.t"}, Far()), IsOk());
  EXPECT_THAT(gate.Tables(), ElementsAre("t"));
  const uint64_t e = gate.Enter();
  EXPECT_TRUE(gate.Blocks(e, Writes("t")));
  EXPECT_TRUE(gate.Blocks(e, Writes("t", "public")));
  EXPECT_FALSE(gate.Blocks(e, Writes("t", "other")));
  gate.NoteSwitch(2);
  gate.Resume();
  EXPECT_TRUE(gate.MovedSince(1, Writes("t")));
  gate.Leave(e);
}

TEST(WriteGateTest, TransactionsFromBeforeThePauseGoOnAndAreDrained) {
  WriteGate gate;
  const uint64_t before1 = gate.Enter();
  const uint64_t before2 = gate.Enter();
  ASSERT_THAT(gate.Pause({"t"}, Far()), IsOk());
  EXPECT_EQ(gate.Draining(), 2);
  EXPECT_FALSE(gate.Blocks(before1, Writes("t")));
  const uint64_t after = gate.Enter();
  EXPECT_NE(after, before1);
  EXPECT_TRUE(gate.Blocks(after, Writes("t")));
  EXPECT_EQ(gate.Draining(), 2) << "a transaction entered after the pause is not drained";
  gate.Leave(before1);
  EXPECT_EQ(gate.Draining(), 1);
  gate.Leave(before2);
  EXPECT_EQ(gate.Draining(), 0);
  EXPECT_TRUE(gate.Blocks(after, Writes("t")));
  gate.Resume();
  EXPECT_FALSE(gate.Blocks(after, Writes("t")));
  gate.Leave(after);
}

TEST(WriteGateTest, SecondPauseIsRefused) {
  WriteGate gate;
  ASSERT_THAT(gate.Pause({"t"}, Far()), IsOk());
  EXPECT_THAT(gate.Pause({"u"}, Far()), HasSqlState("55000"));
  EXPECT_THAT(gate.Tables(), ElementsAre("t")) << "the refused pause changed nothing";
  gate.Resume();
  EXPECT_THAT(gate.Pause({"u"}, Far()), IsOk()) << "after Resume a new pause is fine";
  EXPECT_THAT(gate.Tables(), ElementsAre("u"));
}

TEST(WriteGateTest, PauseIsRefusedWhileTransactionsFromBeforeThePreviousOneAreOpen) {
  WriteGate gate;
  const uint64_t old = gate.Enter();
  ASSERT_THAT(gate.Pause({"t"}, Far()), IsOk());
  gate.Resume();
  // `old` would not be counted by the next pause's Draining(): refused until it ends.
  EXPECT_THAT(gate.Pause({"t"}, Far()), HasSqlState("55000"));
  EXPECT_FALSE(gate.Paused());
  gate.Leave(old);
  const uint64_t mid = gate.Enter();  // entered between the pauses: drained by the next one
  ASSERT_THAT(gate.Pause({"t"}, Far()), IsOk());
  EXPECT_EQ(gate.Draining(), 1);
  EXPECT_FALSE(gate.Blocks(mid, Writes("t")));
  gate.Leave(mid);
  EXPECT_EQ(gate.Draining(), 0);
}

TEST(WriteGateTest, PassedDeadlineUnblocks) {
  WriteGate gate;
  ASSERT_THAT(gate.Pause({"t"}, Clock::now() + std::chrono::milliseconds(30)), IsOk());
  const uint64_t e = gate.Enter();
  // Bounded: the deadline is 30 ms away; 10 s is only a guard against a hang.
  const auto guard = Clock::now() + std::chrono::seconds(10);
  while (gate.Blocks(e, Writes("t")) && Clock::now() < guard) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_FALSE(gate.Blocks(e, Writes("t")));
  EXPECT_FALSE(gate.Paused());
  // An expired pause does not stand in the way of the next one.
  EXPECT_THAT(gate.Pause({"u"}, Far()), IsOk());
  EXPECT_TRUE(gate.Paused());
  gate.Leave(e);
}

TEST(WriteGateTest, DeadlineInThePastBlocksNothing) {
  WriteGate gate;
  ASSERT_THAT(gate.Pause({"t"}, Clock::now() - std::chrono::milliseconds(1)), IsOk());
  const uint64_t e = gate.Enter();
  EXPECT_FALSE(gate.Blocks(e, Writes("t")));
  EXPECT_FALSE(gate.Paused());
  gate.Leave(e);
}

// RESHARD SWITCH holds the pause for its whole length again, so the new map is installed while
// writes still wait; an expired or resumed pause cannot be held.
TEST(WriteGateTest, HoldRenewsAPauseThatIsOnAndNothingElse) {
  WriteGate gate;
  EXPECT_FALSE(gate.Hold()) << "no pause";
  ASSERT_THAT(gate.Pause({"t"}, Clock::now() + std::chrono::hours(1)), IsOk());
  EXPECT_TRUE(gate.Hold());
  EXPECT_TRUE(gate.Paused());
  gate.Resume();
  EXPECT_FALSE(gate.Hold()) << "resumed";
  ASSERT_THAT(gate.Pause({"t"}, Clock::now() - std::chrono::milliseconds(1)), IsOk());
  EXPECT_FALSE(gate.Hold()) << "expired";
  EXPECT_FALSE(gate.Paused());
}

TEST(WriteGateTest, ResumeUnblocksAndClearsTheTables) {
  WriteGate gate;
  ASSERT_THAT(gate.Pause({"t"}, Far()), IsOk());
  const uint64_t e = gate.Enter();
  ASSERT_TRUE(gate.Blocks(e, Writes("t")));
  gate.Resume();
  EXPECT_FALSE(gate.Blocks(e, Writes("t")));
  EXPECT_FALSE(gate.Paused());
  EXPECT_TRUE(gate.Tables().empty());
  EXPECT_EQ(gate.Draining(), 0);
  gate.Resume();  // twice is harmless
  EXPECT_FALSE(gate.Paused());
  gate.Leave(e);
}

TEST(WriteGateTest, SwitchesRecordWhichTablesMoved) {
  WriteGate gate;
  EXPECT_FALSE(gate.MovedSince(0, Writes("t")));
  ASSERT_THAT(gate.Pause({"t", "s.v"}, Far()), IsOk());
  gate.NoteSwitch(5);
  gate.Resume();
  EXPECT_TRUE(gate.MovedSince(4, Writes("t")));
  EXPECT_TRUE(gate.MovedSince(0, Writes("t", "public")));
  EXPECT_TRUE(gate.MovedSince(4, Writes("v", "s")));
  EXPECT_FALSE(gate.MovedSince(4, Writes("v")));
  EXPECT_FALSE(gate.MovedSince(5, Writes("t"))) << "began on the new map";
  EXPECT_FALSE(gate.MovedSince(6, Writes("t")));
  EXPECT_FALSE(gate.MovedSince(4, Writes("u"))) << "u did not move";
  EXPECT_FALSE(gate.MovedSince(4, Reads("t"))) << "only writes are refused";

  ASSERT_THAT(gate.Pause({"u"}, Far()), IsOk());
  gate.NoteSwitch(7);
  gate.Resume();
  EXPECT_TRUE(gate.MovedSince(5, Writes("u")));
  EXPECT_FALSE(gate.MovedSince(5, Writes("t"))) << "t moved at 5, before this transaction";
  EXPECT_TRUE(gate.MovedSince(4, Writes("t")));
  EXPECT_TRUE(gate.MovedSince(4, {Table("", "x", true), Table("", "u", true)}));
  EXPECT_FALSE(gate.MovedSince(7, Writes("u")));
}

TEST(WriteGateTest, SwitchWithoutTablesMovesNothing) {
  WriteGate gate;
  gate.NoteSwitch(3);  // e.g. a switch recorded with no pause on: no table named
  EXPECT_FALSE(gate.MovedSince(1, Writes("t")));
}

// Writers Enter, wait while blocked, "write", Leave; one thread pauses t, waits for the drain,
// checks that no writer is inside, resumes. The invariant: once Draining() is 0 under a pause,
// no transaction is writing t until Resume. Bounded by iteration counts, no timing assertions
// (the 10 s guards only turn a hang into a failure).
TEST(WriteGateTest, ConcurrentEnterLeaveWithPauseAndResume) {
  WriteGate gate;
  constexpr int kWriters = 4;
  constexpr int kMinIterations = 1000;     // per writer, even if the pauser is done first
  constexpr int kMaxIterations = 2000000;  // per writer: the loop's bound
  constexpr int kPauses = 200;
  std::atomic<int> writing{0};
  std::atomic<bool> pauser_done{false};
  std::atomic<bool> hung{false};
  std::atomic<int> pauses_done{0};
  std::atomic<int> violations{0};
  std::atomic<int64_t> writes{0};

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      const auto paused = w % 2 == 0 ? Writes("t") : Writes("t", "public");
      const auto other = Writes("u");
      for (int i = 0;
           i < kMaxIterations && !hung.load() && (i < kMinIterations || !pauser_done.load()); ++i) {
        const uint64_t e = gate.Enter();
        if (gate.Blocks(e, other)) violations.fetch_add(1);  // u is never paused
        const auto guard = Clock::now() + std::chrono::seconds(10);
        while (gate.Blocks(e, paused)) {
          if (Clock::now() > guard) {
            hung.store(true);
            break;
          }
          std::this_thread::yield();
        }
        writing.fetch_add(1);
        writes.fetch_add(1);
        writing.fetch_sub(1);
        gate.Leave(e);
      }
    });
  }
  threads.emplace_back([&] {
    for (int p = 0; p < kPauses && !hung.load(); ++p) {
      // Refused (55000) while a writer from before the previous pause is still open.
      const auto guard = Clock::now() + std::chrono::seconds(10);
      absl::Status st;
      while (!(st = gate.Pause({"t"}, Far())).ok()) {
        if (SqlState(st) != "55000") violations.fetch_add(1);
        if (Clock::now() > guard) {
          hung.store(true);
          break;
        }
        std::this_thread::yield();
      }
      if (hung.load()) break;
      while (gate.Draining() > 0) {
        if (Clock::now() > guard) {
          hung.store(true);
          break;
        }
        std::this_thread::yield();
      }
      // Drained and paused: nobody may be writing t until Resume.
      for (int check = 0; check < 50 && !hung.load(); ++check) {
        if (writing.load() != 0) violations.fetch_add(1);
        std::this_thread::yield();
      }
      gate.Resume();
      pauses_done.fetch_add(1);
      std::this_thread::yield();
    }
    gate.Resume();
    pauser_done.store(true);
  });
  for (auto& t : threads) t.join();
  EXPECT_FALSE(hung.load()) << "a writer or the pauser waited more than 10 s";
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(pauses_done.load(), kPauses);
  EXPECT_GE(writes.load(), kWriters * kMinIterations);
  // Everyone left: a new pause drains nothing, twice (both epoch parities are back to 0).
  ASSERT_THAT(gate.Pause({"t"}, Far()), IsOk());
  EXPECT_EQ(gate.Draining(), 0);
  gate.Resume();
  ASSERT_THAT(gate.Pause({"t"}, Far()), IsOk());
  EXPECT_EQ(gate.Draining(), 0);
}

}  // namespace
}  // namespace shardgate::proxy
