#include "sync/mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::fiber;

class MutexTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(MutexTest, 1u, 2u, 4u, 8u);

// The mutex types share the basic contract.
template <class M>
class AnyMutexTest : public testing::Test {};
using mutex_types = testing::Types<spindle::mutex, spindle::timed_mutex, spindle::recursive_mutex>;
TYPED_TEST_SUITE(AnyMutexTest, mutex_types);

TYPED_TEST(AnyMutexTest, ManyFibersOnManyWorkersNeverOverlapInsideAndLoseNoIncrement) {
  TypeParam mu;
  long counter = 0;  // guarded by mu, deliberately not atomic
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  const long per_fiber = spindle::test::scaled(20'000);
  constexpr int fibers = 32;
  spindle::run(spindle::options{.workers = 4}, [&] {
    std::vector<fiber> fs;
    for (int i = 0; i < fibers; ++i) {
      fs.emplace_back([&] {
        for (long k = 0; k < per_fiber; ++k) {
          std::lock_guard lock(mu);
          if (inside.fetch_add(1) != 0) overlapped = true;
          ++counter;
          if (k % 128 == 0) spindle::this_fiber::yield();  // holding it
          inside.fetch_sub(1);
        }
      });
    }
    for (auto& f : fs) f.join();
  });
  EXPECT_FALSE(overlapped.load());
  EXPECT_EQ(counter, fibers * per_fiber);
}

TYPED_TEST(AnyMutexTest, WorksWithStdLockHelpers) {
  TypeParam a;
  TypeParam b;
  spindle::run([&] {
    { std::scoped_lock both(a, b); }
    std::unique_lock lock(a);
    EXPECT_TRUE(lock.owns_lock());
    lock.unlock();
    EXPECT_TRUE(a.try_lock());
    a.unlock();
  });
}

TEST_P(MutexTest, TryLockFailsWhileAnotherFiberHoldsIt) {
  spindle::run(opts(), [] {
    spindle::mutex mu;
    std::atomic<bool> held{false};
    std::atomic<bool> release{false};
    fiber holder([&] {
      mu.lock();
      held = true;
      while (!release.load()) spindle::this_fiber::yield();
      mu.unlock();
    });
    while (!held.load()) spindle::this_fiber::yield();
    EXPECT_FALSE(mu.try_lock());
    release = true;
    holder.join();
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  });
}

TEST_P(MutexTest, LockParksTheFiberNotTheWorker) {
  // With one worker, a lock() that blocked the thread would deadlock: the
  // holder could never run to unlock.
  spindle::run(opts(), [] {
    spindle::mutex mu;
    std::vector<int> order;
    mu.lock();
    fiber waiter([&] {
      std::lock_guard lock(mu);
      order.push_back(2);
    });
    spindle::this_fiber::sleep_for(2ms);  // the waiter is parked in lock() by now
    order.push_back(1);
    mu.unlock();
    waiter.join();
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
  });
}

TEST_P(MutexTest, PlainThreadsAndFibersShareAMutex) {
  spindle::mutex mu;
  long counter = 0;
  const long rounds = spindle::test::scaled(20'000);
  std::thread outsider;
  spindle::run(opts(), [&] {
    outsider = std::thread([&] {
      for (long i = 0; i < rounds; ++i) {
        std::lock_guard lock(mu);
        ++counter;
      }
    });
    std::vector<fiber> fs;
    for (int f = 0; f < 4; ++f) {
      fs.emplace_back([&] {
        for (long i = 0; i < rounds; ++i) {
          std::lock_guard lock(mu);
          ++counter;
        }
      });
    }
    for (auto& f : fs) f.join();
  });
  outsider.join();
  EXPECT_EQ(counter, 5 * rounds);
}

TEST_P(MutexTest, FreshMutexesContendedForTheFirstTimeWhileTheirHolderReleasesLoseNoWakeup) {
  // A mutex nobody has waited for releases with a plain store; its first
  // waiter switches it to the locked decrement, with a process-wide fence
  // (see lock_word in sync/mutex.h). Here that switch races with releases
  // over and over: each round a fresh mutex, fibers on every worker taking
  // it at once. A release that missed the switch and the waiter it should
  // have woken would hang the round (and the test's timeout fails it); a
  // broken exclusion would lose increments.
  const int rounds = static_cast<int>(spindle::test::scaled(2'000));
  constexpr int fibers_per_round = 4;
  constexpr int per_fiber = 64;
  long total = 0;
  spindle::run(opts(), [&] {
    for (int r = 0; r < rounds; ++r) {
      auto mu = std::make_unique<spindle::mutex>();
      long counter = 0;  // guarded by *mu
      std::vector<fiber> fs;
      for (int f = 0; f < fibers_per_round; ++f) {
        const int worker = static_cast<int>(f % workers());
        fs.emplace_back(spindle::fiber_options{.worker = worker}, [&] {
          for (int k = 0; k < per_fiber; ++k) {
            std::lock_guard lock(*mu);
            ++counter;
            // Hold it a moment, so that fibers on other workers come to
            // wait while it is held, and release as they arrive.
            for (int spin = 0; spin < 50; ++spin) spindle::test::cpu_relax();
          }
        });
      }
      for (auto& f : fs) f.join();
      EXPECT_EQ(counter, fibers_per_round * per_fiber);
      total += counter;
    }
  });
  EXPECT_EQ(total, long{rounds} * fibers_per_round * per_fiber);
}

TEST_P(MutexTest, RelockingByTheOwnerIsResourceDeadlockWouldOccur) {
  spindle::run(opts(), [] {
    spindle::mutex mu;
    std::lock_guard lock(mu);
    try {
      mu.lock();
      FAIL() << "relocked a non-recursive mutex";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::resource_deadlock_would_occur);
    }
  });
}

TEST(MutexDeathTest, UnlockingAMutexTheCallerDoesNotOwnAborts) {
  EXPECT_DEATH(
      {
        spindle::mutex mu;
        mu.unlock();
      },
      "spindle::mutex::unlock: the caller does not own the mutex");
}

TEST_P(MutexTest, TryLockForTimesOutWhileHeldAndSucceedsOnceReleased) {
  spindle::run(opts(), [] {
    spindle::timed_mutex mu;
    std::atomic<bool> held{false};
    std::atomic<bool> release{false};
    fiber holder([&] {
      mu.lock();
      held = true;
      while (!release.load()) spindle::this_fiber::sleep_for(1ms);
      mu.unlock();
    });
    while (!held.load()) spindle::this_fiber::yield();
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(mu.try_lock_for(5ms));
    EXPECT_GE(std::chrono::steady_clock::now() - start, 5ms);
    release = true;
    EXPECT_TRUE(mu.try_lock_for(1h));
    mu.unlock();
    holder.join();
  });
}

TEST_P(MutexTest, ARecursiveMutexIsHeldUntilUnlockedAsOftenAsLocked) {
  spindle::run(opts(), [] {
    spindle::recursive_mutex mu;
    mu.lock();
    mu.lock();
    EXPECT_TRUE(mu.try_lock());
    std::atomic<bool> got{false};
    fiber other([&] {
      std::lock_guard lock(mu);
      got = true;
    });
    mu.unlock();
    mu.unlock();
    spindle::this_fiber::sleep_for(2ms);
    EXPECT_FALSE(got.load());  // still held once
    mu.unlock();
    other.join();
    EXPECT_TRUE(got.load());
  });
}

}  // namespace
