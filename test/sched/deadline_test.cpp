// Every timed call goes through one deadline type (sched/deadline.h) and
// its saturating steps (fiber/clock.h): the extremes of every duration and
// time point type mean "no deadline" or "now", never an overflow. A call
// with a timeout too long to add to now still returns when what it waits
// for comes, and does not give up at once; zero, negative and min()
// timeouts are one try. (The UBSan build reports any signed overflow on
// these paths as a failure.)
#include "sched/deadline.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/blocking.h"
#include "sched/scheduler.h"
#include "sync/channel.h"
#include "sync/select.h"
#include "test_util.h"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using std::chrono::hours;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

template <class F>
void on_fiber(F f) {
  spindle::run(runtime_options{.workers = 2}, f);
}

TEST(DeadlineTest, DurationsTooLongToAddToNowAreNoDeadline) {
  EXPECT_TRUE(deadline(hours::max()).is_none());
  EXPECT_TRUE(deadline(seconds::max()).is_none());
  EXPECT_TRUE(deadline(nanoseconds::max()).is_none());
  EXPECT_TRUE(deadline(std::chrono::duration<double>(1e300)).is_none());
  EXPECT_TRUE(deadline::none().is_none());
  EXPECT_TRUE(deadline().is_none());
  EXPECT_FALSE(deadline(5s).is_none());
}

TEST(DeadlineTest, TimePointsPastWhatSteadyClockHoldsAreNoDeadline) {
  EXPECT_TRUE(deadline(steady_clock::time_point::max()).is_none());
  EXPECT_TRUE(deadline(std::chrono::time_point<steady_clock, hours>::max()).is_none());
  EXPECT_TRUE(deadline(std::chrono::time_point<system_clock, hours>::max()).is_none());
  // system_clock's own max() is some 290 years from its epoch: a deadline
  // centuries ahead (or none), and no overflow on the way.
  const deadline far(system_clock::time_point::max());
  EXPECT_GT(far.when(), steady_clock::now() + hours(24 * 365 * 200));
}

TEST(DeadlineTest, ZeroNegativeAndMinimalTimeoutsAreNow) {
  for (const deadline d : {deadline(0s), deadline(-5s), deadline(hours::min()),
                           deadline(nanoseconds::min()), deadline(system_clock::time_point::min()),
                           deadline(std::chrono::time_point<system_clock, hours>::min()),
                           deadline(system_clock::now() - 1h)}) {
    const auto before = steady_clock::now();
    EXPECT_FALSE(d.is_none());
    EXPECT_LE(d.when(), steady_clock::now());
    EXPECT_GE(d.when(), before - 1ms);  // "now", not the distant past
  }
  EXPECT_EQ(deadline(steady_clock::time_point::min()).when(), steady_clock::time_point::min());
}

TEST(DeadlineTest, ATimePointOfSystemClockIsMeasuredAgainstThatClock) {
  const deadline d(system_clock::now() + 1h);
  const auto from_now = d.when() - steady_clock::now();
  EXPECT_GT(from_now, 59min);
  EXPECT_LE(from_now, 1h);
}

TEST(DeadlineTest, SleepsWithZeroNegativeOrMinimalTimeoutsReturnAtOnce) {
  on_fiber([] {
    this_fiber::sleep_for(0s);
    this_fiber::sleep_for(-1h);
    this_fiber::sleep_for(hours::min());
    this_fiber::sleep_for(nanoseconds::min());
    this_fiber::sleep_until(system_clock::time_point::min());
    this_fiber::sleep_until(std::chrono::time_point<system_clock, hours>::min());
    this_fiber::sleep_until(steady_clock::time_point::min());
  });
}

// sleep_for(max()) used to return at once. Sleepers pinned to worker 0 of
// the default runtime, then a probe pinned behind them: the probe runs
// once they have parked (or ended), and none may have ended. They stay
// parked, so this runs in a child process that exits with its verdict.
TEST(DeadlineTest, SleepingForTheLongestDurationDoesNotReturn) {
  EXPECT_EXIT(
      {
        static std::atomic<int> woke{0};
        for (const auto d : {hours::max(), std::chrono::duration_cast<hours>(seconds::max())}) {
          go(fiber_options{.worker = 0, .pinned = true}, [d] {
            this_fiber::sleep_for(d);
            woke++;
          });
        }
        go(fiber_options{.worker = 0, .pinned = true}, [] {
          this_fiber::sleep_until(system_clock::time_point::max());
          woke++;
        });
        fiber probe(fiber_options{.worker = 0, .pinned = true}, [] {});
        probe.join();
        std::_Exit(woke.load() == 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(DeadlineTest, ChannelAndSelectWaitsWithTheLongestTimeoutsStillGetTheirValue) {
  on_fiber([] {
    channel<int> ch;
    fiber sender([&] {
      ch.send(1);
      ch.send(2);
      ch.send(3);
    });
    std::optional<int> v;
    EXPECT_EQ(ch.recv_for(v, hours::max()), channel_status::success);
    EXPECT_EQ(v, 1);
    EXPECT_EQ(ch.recv_until(v, system_clock::time_point::max()), channel_status::success);
    EXPECT_EQ(v, 2);
    recv_case rc(ch);
    EXPECT_EQ(select_for(seconds::max(), rc), 0);
    EXPECT_EQ(*rc.value, 3);
    sender.join();
    int x = 4;
    fiber receiver([&] { (void)ch.recv(); });
    EXPECT_EQ(ch.send_for(x, nanoseconds::max()), channel_status::success);
    receiver.join();
  });
}

TEST(DeadlineTest, ChannelAndSelectWaitsWithNoTimeLeftTryOnce) {
  on_fiber([] {
    channel<int> ch;
    std::optional<int> v;
    EXPECT_EQ(ch.recv_for(v, 0s), channel_status::timeout);
    EXPECT_EQ(ch.recv_for(v, hours::min()), channel_status::timeout);
    EXPECT_EQ(ch.recv_until(v, system_clock::time_point::min()), channel_status::timeout);
    recv_case rc(ch);
    EXPECT_EQ(select_for(-1s, rc), -1);
    EXPECT_EQ(select_until(steady_clock::time_point::min(), rc), -1);
    int x = 1;
    EXPECT_EQ(ch.send_for(x, nanoseconds::min()), channel_status::timeout);
  });
}

TEST(DeadlineTest, BlockingCallsWithTheLongestTimeoutsRunToTheEnd) {
  on_fiber([] {
    EXPECT_EQ(blocking_for(hours::max(), [] { return 7; }), 7);
    EXPECT_EQ(blocking_for(seconds::max(), [] { return 8; }), 8);
    EXPECT_EQ(blocking_until(system_clock::time_point::max(), [] { return 9; }), 9);
    EXPECT_EQ(blocking_until(std::chrono::time_point<steady_clock, hours>::max(), [] { return 10; }),
              10);
  });
}

// A call whose deadline has passed before it starts is given up at once:
// not started, or, if a pool thread took it first, abandoned to finish in
// the background. Either way the caller gets timed_out. The call waits on
// a gate the test opens only afterwards, so it cannot finish in time.
TEST(DeadlineTest, BlockingCallsWithNoTimeLeftTimeOut) {
  on_fiber([] {
    auto gate = std::make_shared<std::latch>(1);
    const auto wait_gate = [gate] { gate->wait(); };
    EXPECT_THROW(
        try { blocking_for(hours::min(), wait_gate); } catch (const std::system_error& e) {
          EXPECT_EQ(e.code(), std::errc::timed_out);
          throw;
        },
        std::system_error);
    EXPECT_THROW(blocking_until(system_clock::time_point::min(), wait_gate), std::system_error);
    EXPECT_THROW(blocking_for(-1s, wait_gate), std::system_error);
    EXPECT_THROW(blocking_until(steady_clock::time_point::min(), wait_gate), std::system_error);
    gate->count_down();
  });
}

}  // namespace
}  // namespace spindle
