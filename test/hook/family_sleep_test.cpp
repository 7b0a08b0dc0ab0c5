// The hooked sleeps on a fiber against the same calls on a plain thread:
// nanosleep, clock_nanosleep (relative and TIMER_ABSTIME), usleep, sleep.
// A sleep on a fiber parks it: another fiber on the same (only) worker
// runs meanwhile, which it could not if the worker slept. Durations are
// checked from below only (a sleep never ends early). test/hook/
// family_util.h says how each scenario runs on both.
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "hook/family_util.h"

namespace {

using namespace spindle::test::family;
using outcomes = std::vector<outcome>;
using std::chrono::nanoseconds;

timespec as_timespec(nanoseconds d) {
  return timespec{static_cast<time_t>(d.count() / 1'000'000'000), static_cast<long>(d.count() % 1'000'000'000)};
}

nanoseconds as_duration(const timespec& ts) { return std::chrono::seconds(ts.tv_sec) + nanoseconds(ts.tv_nsec); }

nanoseconds clock_now(clockid_t clock) {
  timespec ts{};
  EXPECT_EQ(::clock_gettime(clock, &ts), 0);
  return as_duration(ts);
}

// slept(call, at_least): runs the sleep `call` beside a companion that
// records whether it ran while the sleeper was parked (on a plain thread
// the sleep is the kernel's: the record says 1 there), and checks that at
// least `at_least` passed. Returns the call's outcome and that record.
outcomes slept(const std::function<long()>& call, nanoseconds at_least) {
  std::atomic<bool> done{false};
  bool saw_it_parked = !on_fiber();
  companion other([&] {
    if (!on_fiber()) return;
    await_parked_or(done);
    saw_it_parked = !done.load();
  });
  const auto start = std::chrono::steady_clock::now();
  const outcome o = capture(call);
  EXPECT_GE(elapsed_since(start), at_least);
  done = true;
  other.join();
  return outcomes{o, returned(saw_it_parked)};
}

const outcomes slept_fully{returned(0), returned(1)};

// ---- nanosleep ----

TEST(HookSleepTest, NanosleepOnAFiberParksForTheTimeAskedWhileAnotherFiberOnTheSameWorkerRuns) {
  expect_on_both(
      [] {
        const timespec req = as_timespec(short_timeout);
        timespec rem{7, 7};
        outcomes r = slept([&] { return ::nanosleep(&req, &rem); }, short_timeout);
        r.push_back(returned(rem.tv_sec == 7 && rem.tv_nsec == 7));  // untouched: not interrupted
        return r;
      },
      outcomes{returned(0), returned(1), returned(1)});
}

TEST(HookSleepTest, NanosleepOfZeroReturnsAtOnceAndABadTimespecFailsWithEinval) {
  expect_on_both(
      [] {
        const timespec zero{0, 0};
        const timespec too_many_ns{0, 1'000'000'000};
        const timespec negative_ns{0, -1};
        const timespec negative_s{-1, 0};
        return outcomes{capture([&] { return ::nanosleep(&zero, nullptr); }),
                        capture([&] { return ::nanosleep(&too_many_ns, nullptr); }),
                        capture([&] { return ::nanosleep(&negative_ns, nullptr); }),
                        capture([&] { return ::nanosleep(&negative_s, nullptr); })};
      },
      outcomes{returned(0), failed(EINVAL), failed(EINVAL), failed(EINVAL)});
}

// ---- clock_nanosleep: returns the error, leaves errno alone ----

TEST(HookSleepTest, ClockNanosleepOnAFiberParksForARelativeTimeOnEachClockTimePassesOn) {
  for (const clockid_t clock : {CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME, CLOCK_TAI}) {
    SCOPED_TRACE("clock " + std::to_string(clock));
    expect_on_both(
        [clock] {
          const timespec req = as_timespec(short_timeout);
          return slept([&] { return ::clock_nanosleep(clock, 0, &req, nullptr); }, short_timeout);
        },
        slept_fully);
  }
}

TEST(HookSleepTest, ClockNanosleepWithTimerAbstimeOnAFiberParksUntilThatTimeOnItsClock) {
  for (const clockid_t clock : {CLOCK_MONOTONIC, CLOCK_REALTIME}) {
    SCOPED_TRACE("clock " + std::to_string(clock));
    expect_on_both(
        [clock] {
          const nanoseconds until = clock_now(clock) + short_timeout;
          const timespec req = as_timespec(until);
          outcomes r = slept([&] { return ::clock_nanosleep(clock, TIMER_ABSTIME, &req, nullptr); }, nanoseconds(0));
          r.push_back(returned(clock_now(clock) >= until));
          return r;
        },
        outcomes{returned(0), returned(1), returned(1)});
  }
}

TEST(HookSleepTest, ClockNanosleepWithTimerAbstimeInThePastReturnsAtOnce) {
  expect_on_both(
      [] {
        const timespec past = as_timespec(clock_now(CLOCK_MONOTONIC) - std::chrono::seconds(1));
        const timespec epoch{0, 0};
        return outcomes{capture([&] { return ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, nullptr); }),
                        capture([&] { return ::clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &epoch, nullptr); })};
      },
      outcomes{returned(0), returned(0)});
}

TEST(HookSleepTest, ClockNanosleepWithABadTimespecOrClockReturnsEinvalAndLeavesErrnoAlone) {
  expect_on_both(
      [] {
        const timespec too_many_ns{0, 1'000'000'000};
        const timespec negative_s{-1, 0};
        const timespec short_one = as_timespec(short_timeout);
        return outcomes{
            capture([&] { return ::clock_nanosleep(CLOCK_MONOTONIC, 0, &too_many_ns, nullptr); }),
            capture([&] { return ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &too_many_ns, nullptr); }),
            capture([&] { return ::clock_nanosleep(CLOCK_REALTIME, 0, &negative_s, nullptr); }),
            capture([&] { return ::clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &short_one, nullptr); }),
        };
      },
      outcomes{returned(EINVAL), returned(EINVAL), returned(EINVAL), returned(EINVAL)});
}

// ---- usleep, sleep ----

TEST(HookSleepTest, UsleepOnAFiberParksForTheTimeAskedWhileAnotherFiberOnTheSameWorkerRuns) {
  expect_on_both(
      [] {
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(short_timeout);
        outcomes r = slept([&] { return ::usleep(static_cast<useconds_t>(us.count())); }, short_timeout);
        r.push_back(capture([] { return ::usleep(0); }));
        return r;
      },
      outcomes{returned(0), returned(1), returned(0)});
}

TEST(HookSleepTest, SleepOnAFiberParksForTheSecondsAskedWhileAnotherFiberOnTheSameWorkerRuns) {
  expect_on_both(
      [] {
        outcomes r = slept([] { return ::sleep(1); }, std::chrono::seconds(1));
        r.push_back(capture([] { return ::sleep(0); }));
        return r;
      },
      outcomes{returned(0), returned(1), returned(0)});
}

// ---- Signals: a sleep on a fiber is not cut short; a plain thread's is ----

// A sleep, and a SIGUSR1 (handler without SA_RESTART) sent to its thread
// while it sleeps. A plain thread's sleep ends early (nanosleep: EINTR and
// the time left; sleep: the seconds left); a fiber's sleeps its time.
outcomes sleep_interrupted_by_a_signal(const std::function<long(nanoseconds)>& sleep_for) {
  interrupting_signal handler;
  const int before = interrupting_signal::delivered();
  const pthread_t sleeper = ::pthread_self();
  // Long on a plain thread (the signal ends it); short on a fiber.
  const nanoseconds asked = on_fiber() ? nanoseconds(short_timeout) : nanoseconds(std::chrono::seconds(60));
  std::atomic<bool> done{false};
  companion other([&] {
    await_parked();
    if (on_fiber()) {
      interrupting_signal::send(sleeper);
    } else {
      interrupting_signal::interrupt_until(sleeper, done);
    }
  });
  const auto start = std::chrono::steady_clock::now();
  const outcome o = capture([&] { return sleep_for(asked); });
  const bool slept_fully = elapsed_since(start) >= asked;
  done = true;
  other.join();
  return outcomes{o, returned(slept_fully), returned(interrupting_signal::delivered() > before)};
}

TEST(HookSleepTest, ASignalEndsAPlainThreadsNanosleepWithEintrButNotANanosleepParkedOnAFiber) {
  timespec rem{};
  const auto nanosleep_for = [&](nanoseconds d) {
    const timespec req = as_timespec(d);
    rem = timespec{};
    return static_cast<long>(::nanosleep(&req, &rem));
  };
  const outcomes thread_result = on_a_thread([&] { return sleep_interrupted_by_a_signal(nanosleep_for); });
  EXPECT_EQ(thread_result, (outcomes{failed(EINTR), returned(0), returned(1)}));
  EXPECT_GT(as_duration(rem), nanoseconds(0)) << "the time left, written on EINTR";
  const outcomes fiber_result = on_a_fiber([&] { return sleep_interrupted_by_a_signal(nanosleep_for); });
  EXPECT_EQ(fiber_result, (outcomes{returned(0), returned(1), returned(1)}));
}

TEST(HookSleepTest, ASignalEndsAPlainThreadsSleepEarlyButNotASleepParkedOnAFiber) {
  const auto sleep_for = [](nanoseconds d) {
    return static_cast<long>(::sleep(static_cast<unsigned>(std::chrono::ceil<std::chrono::seconds>(d).count())));
  };
  const outcomes thread = on_a_thread([&] { return sleep_interrupted_by_a_signal(sleep_for); });
  ASSERT_EQ(thread.size(), 3u);
  EXPECT_GT(thread[0].result, 0) << "the seconds left";
  EXPECT_EQ(thread[0].error, EINTR) << "glibc's sleep() leaves nanosleep's errno";
  EXPECT_EQ(thread[1], returned(0));
  const outcomes fiber_result = on_a_fiber([&] { return sleep_interrupted_by_a_signal(sleep_for); });
  EXPECT_EQ(fiber_result, (outcomes{returned(0), returned(1), returned(1)}));
}

TEST(HookSleepTest, ASignalEndsAPlainThreadsClockNanosleepWithEintrButNotOneParkedOnAFiber) {
  const auto clock_nanosleep_for = [](nanoseconds d) {
    const timespec req = as_timespec(d);
    return static_cast<long>(::clock_nanosleep(CLOCK_MONOTONIC, 0, &req, nullptr));
  };
  const outcomes thread_result = on_a_thread([&] { return sleep_interrupted_by_a_signal(clock_nanosleep_for); });
  EXPECT_EQ(thread_result, (outcomes{returned(EINTR), returned(0), returned(1)}));
  const outcomes fiber_result = on_a_fiber([&] { return sleep_interrupted_by_a_signal(clock_nanosleep_for); });
  EXPECT_EQ(fiber_result, (outcomes{returned(0), returned(1), returned(1)}));
}

}  // namespace
