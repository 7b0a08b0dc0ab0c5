// Timed waits on clocks other than steady_clock return only once their own
// clock has reached the deadline: a clock slower than steady_clock, or one
// stepped back during the wait, means waiting again for what is left. And
// durations too long to add to now mean no deadline, not an overflow.
#include "fiber/clock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "sync/condition_variable.h"
#include "sync/future.h"
#include "sync/mutex.h"
#include "sync/semaphore.h"
#include "sync/shared_mutex.h"
#include "test_util.h"

namespace spindle {
namespace {

using namespace std::chrono_literals;

// A clock that runs at half the rate of steady_clock.
struct slow_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<slow_clock>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept {
    return time_point(std::chrono::steady_clock::now().time_since_epoch() / 2);
  }
};

// steady_clock plus an offset the test sets: a system clock stepped by hand.
struct stepped_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<stepped_clock>;
  static constexpr bool is_steady = false;
  static inline std::atomic<rep> offset{0};
  static time_point now() noexcept {
    return time_point(std::chrono::steady_clock::now().time_since_epoch() + duration(offset.load()));
  }
};

// Runs `f` on a fiber of a one-worker runtime.
template <class F>
void on_fiber(F f) {
  spindle::run(options{.workers = 1, .max_spare_workers = 0}, f);
}

TEST(ClockTest, SleepUntilOnASlowClockReturnsOnlyOnceThatClockHasPassedTheDeadline) {
  on_fiber([] {
    const auto deadline = slow_clock::now() + 20ms;
    this_fiber::sleep_until(deadline);
    EXPECT_GE(slow_clock::now(), deadline);
  });
}

TEST(ClockTest, ConditionVariableWaitUntilOnASlowClockTimesOutOnlyOnceThatClockHasPassed) {
  on_fiber([] {
    spindle::mutex m;
    spindle::condition_variable cv;
    std::unique_lock lock(m);
    const auto deadline = slow_clock::now() + 20ms;
    while (cv.wait_until(lock, deadline) != std::cv_status::timeout) {
    }
    EXPECT_GE(slow_clock::now(), deadline);
    EXPECT_FALSE(cv.wait_until(lock, slow_clock::now() + 10ms, [] { return false; }));
  });
}

TEST(ClockTest, TimedLocksOnASlowClockGiveUpOnlyOnceThatClockHasPassed) {
  on_fiber([] {
    spindle::timed_mutex tm;
    spindle::recursive_timed_mutex rtm;
    spindle::shared_timed_mutex stm;
    std::atomic<bool> held{false};
    std::atomic<bool> done{false};
    fiber holder([&] {
      tm.lock();
      rtm.lock();
      stm.lock();
      held = true;
      while (!done.load()) this_fiber::yield();
      stm.unlock();
      rtm.unlock();
      tm.unlock();
    });
    while (!held.load()) this_fiber::yield();
    auto deadline = slow_clock::now() + 10ms;
    EXPECT_FALSE(tm.try_lock_until(deadline));
    EXPECT_GE(slow_clock::now(), deadline);
    deadline = slow_clock::now() + 10ms;
    EXPECT_FALSE(rtm.try_lock_until(deadline));
    EXPECT_GE(slow_clock::now(), deadline);
    deadline = slow_clock::now() + 10ms;
    EXPECT_FALSE(stm.try_lock_until(deadline));
    EXPECT_GE(slow_clock::now(), deadline);
    deadline = slow_clock::now() + 10ms;
    EXPECT_FALSE(stm.try_lock_shared_until(deadline));
    EXPECT_GE(slow_clock::now(), deadline);
    done = true;
    holder.join();
  });
}

TEST(ClockTest, SemaphoreAndFutureWaitsOnASlowClockTimeOutOnlyOnceThatClockHasPassed) {
  on_fiber([] {
    spindle::counting_semaphore<4> sem(0);
    auto deadline = slow_clock::now() + 10ms;
    EXPECT_FALSE(sem.try_acquire_until(deadline));
    EXPECT_GE(slow_clock::now(), deadline);
    spindle::promise<int> p;
    spindle::future<int> f = p.get_future();
    deadline = slow_clock::now() + 10ms;
    EXPECT_EQ(f.wait_until(deadline), spindle::future_status::timeout);
    EXPECT_GE(slow_clock::now(), deadline);
    p.set_value(1);
  });
}

TEST(ClockTest, AWaitOnAClockSteppedBackDuringItWaitsForWhatIsLeft) {
  // The clock is stepped back 30 ms while the sleeper and the cv waiter
  // are parked on their first estimate: each returns only once the clock,
  // stepped, has reached its deadline.
  stepped_clock::offset = 0;
  spindle::run(options{.workers = 1, .max_spare_workers = 0}, [] {
    const auto deadline = stepped_clock::now() + 20ms;
    std::atomic<bool> slept_past{false};
    std::atomic<bool> cv_past{false};
    fiber sleeper(fiber_options{.worker = 0, .pinned = true}, [&] {
      this_fiber::sleep_until(deadline);
      slept_past = stepped_clock::now() >= deadline;
    });
    fiber waiter(fiber_options{.worker = 0, .pinned = true}, [&] {
      spindle::mutex m;
      spindle::condition_variable cv;
      std::unique_lock lock(m);
      while (cv.wait_until(lock, deadline) != std::cv_status::timeout) {
      }
      cv_past = stepped_clock::now() >= deadline;
    });
    test::await_worker_free(0);  // both are parked on their estimates
    stepped_clock::offset = std::chrono::nanoseconds(-30ms).count();
    sleeper.join();
    waiter.join();
    EXPECT_TRUE(slept_past.load());
    EXPECT_TRUE(cv_past.load());
  });
}

TEST(ClockTest, DurationsTooLongToAddAreNoDeadline) {
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(detail::steady_after(std::chrono::hours::max()), detail::steady_time::max());
  EXPECT_EQ(detail::steady_after(std::chrono::seconds::max()), detail::steady_time::max());
  EXPECT_EQ(detail::steady_after(std::chrono::nanoseconds::max()), detail::steady_time::max());
  EXPECT_GE(detail::steady_after(std::chrono::hours::min()), now);
  EXPECT_GE(detail::steady_after(0s), now);
  const auto past = detail::steady_after(-5s);
  EXPECT_GE(past, now);
  EXPECT_LE(past, std::chrono::steady_clock::now());
  EXPECT_EQ(detail::until_on_steady(
                std::chrono::time_point<std::chrono::steady_clock, std::chrono::hours>::max()),
            detail::steady_time::max());
  // And the waits themselves: a timed wait that cannot time out still
  // returns when what it waits for comes.
  on_fiber([] {
    spindle::timed_mutex tm;
    EXPECT_TRUE(tm.try_lock_for(std::chrono::hours::max()));
    tm.unlock();
    spindle::counting_semaphore<2> sem(1);
    EXPECT_TRUE(sem.try_acquire_for(std::chrono::seconds::max()));
    spindle::mutex m;
    spindle::condition_variable cv;
    bool ready = false;
    fiber notifier([&] {
      std::lock_guard lock(m);
      ready = true;
      cv.notify_one();
    });
    std::unique_lock lock(m);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::hours::max(), [&] { return ready; }));
    lock.unlock();
    notifier.join();
  });
}

}  // namespace
}  // namespace spindle
