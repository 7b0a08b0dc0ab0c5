#include "sync/mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "sync/semaphore.h"
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
    spindle::test::await_parked(mu);  // the waiter is parked in lock()
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

// Biased locking (lock_word in sync/detail/lock_word.h): a mutex one thread keeps
// taking is biased to it and taken without locked instructions; anyone
// else revokes the bias first. The build or the kernel may rule it out
// (ThreadSanitizer builds, no membarrier), and then these tests skip.

// A mutex that tells whether it is biased now.
class inspectable_mutex : public spindle::mutex {
 public:
  bool biased() const noexcept { return word_.biased(); }
};

constexpr long bias_threshold = spindle::detail::lock_word::bias_threshold;

// Takes and releases `mu` often enough that it is biased to the caller's
// thread (unless something else stands in the way).
template <class M>
void take_until_biased(M& mu) {
  for (long i = 0; i <= bias_threshold; ++i) {
    std::lock_guard lock(mu);
  }
}

// Turns biased locking on for a test, and back to what it was after.
class biased_locking_on {
 public:
  biased_locking_on()
      : was_(spindle::detail::biased_locking_enabled.load()),
        available_(spindle::detail::set_biased_locking(true)) {}
  ~biased_locking_on() { (void)spindle::detail::set_biased_locking(was_); }
  bool available() const noexcept { return available_; }

 private:
  bool was_;
  bool available_;
};

#define SPINDLE_REQUIRE_BIASED_LOCKING(guard)                                        \
  if (!(guard).available()) {                                                        \
    GTEST_SKIP() << "no biased locking in this build or on this kernel";             \
  }

TEST_P(MutexTest, AMutexOneThreadKeepsTakingIsBiasedToItOnlyAfterTheThreshold) {
  biased_locking_on guard;
  SPINDLE_REQUIRE_BIASED_LOCKING(guard);
  spindle::run(opts(), [] {
    inspectable_mutex mu;
    for (long i = 0; i < bias_threshold - 1; ++i) {
      std::lock_guard lock(mu);
    }
    EXPECT_FALSE(mu.biased());
    { std::lock_guard lock(mu); }
    { std::lock_guard lock(mu); }
    EXPECT_TRUE(mu.biased());
    // Biased, it still excludes: a second lock by the owner is misuse.
    std::lock_guard lock(mu);
    EXPECT_THROW(mu.lock(), std::system_error);
    EXPECT_FALSE(mu.try_lock());
  });
}

TEST(MutexBiasTest, AMutexIsNeverBiasedWhileBiasingIsOff) {
  const bool was = spindle::detail::biased_locking_enabled.load();
  EXPECT_FALSE(spindle::detail::set_biased_locking(false));
  inspectable_mutex mu;
  take_until_biased(mu);
  take_until_biased(mu);
  EXPECT_FALSE(mu.biased());
  (void)spindle::detail::set_biased_locking(was);
  // Once passed over, it is not biased later either.
  take_until_biased(mu);
  EXPECT_FALSE(mu.biased());
}

TEST(MutexBiasTest, TheEnvironmentVariableTurnsBiasingOffOnlyWithZero) {
  EXPECT_TRUE(spindle::detail::biased_locking_wanted(nullptr));
  EXPECT_TRUE(spindle::detail::biased_locking_wanted("1"));
  EXPECT_TRUE(spindle::detail::biased_locking_wanted(""));
  EXPECT_FALSE(spindle::detail::biased_locking_wanted("0"));
}

TEST(MutexBiasTest, AMutexThatHasHadAWaiterIsNeverBiased) {
  biased_locking_on guard;
  SPINDLE_REQUIRE_BIASED_LOCKING(guard);
  spindle::run([] {
    inspectable_mutex mu;
    mu.lock();
    fiber waiter([&] { std::lock_guard lock(mu); });
    spindle::test::await_parked(mu);  // the waiter has parked in lock()
    mu.unlock();
    waiter.join();
    take_until_biased(mu);
    EXPECT_FALSE(mu.biased());
  });
}

TEST(MutexBiasTest, ASiblingFiberOfTheBiasThreadWaitsForTheBiasedHolder) {
  // One worker: the holder took the mutex through the bias and parks; a
  // fiber of the same thread must wait for it (revoking the bias), and get
  // it once the holder releases.
  biased_locking_on guard;
  SPINDLE_REQUIRE_BIASED_LOCKING(guard);
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    inspectable_mutex mu;
    take_until_biased(mu);
    ASSERT_TRUE(mu.biased());
    std::vector<int> order;
    mu.lock();
    fiber sibling([&] {
      std::lock_guard lock(mu);
      order.push_back(2);
    });
    spindle::test::await_parked(mu);  // the sibling waits in lock()
    EXPECT_FALSE(mu.biased());
    order.push_back(1);
    mu.unlock();
    sibling.join();
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
    // Revoked for good: it works as a plain mutex.
    take_until_biased(mu);
    EXPECT_FALSE(mu.biased());
  });
}

TEST(MutexBiasTest, TheTakeThatBiasesTheMutexStillExcludesASiblingFiber) {
  // One worker: the take that biases the mutex holds it through the
  // ordinary word; if its fiber parks before releasing, another fiber of
  // the same thread must not slip in through the fresh bias.
  biased_locking_on guard;
  SPINDLE_REQUIRE_BIASED_LOCKING(guard);
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    inspectable_mutex mu;
    for (long i = 0; i < bias_threshold; ++i) {
      std::lock_guard lock(mu);
    }
    ASSERT_FALSE(mu.biased());
    bool inside = false;  // guarded by mu
    mu.lock();  // this take biases it
    ASSERT_TRUE(mu.biased());
    inside = true;
    fiber sibling([&] {
      std::lock_guard lock(mu);
      EXPECT_FALSE(inside);
    });
    spindle::test::await_parked(mu);  // the sibling waits in lock()
    inside = false;
    mu.unlock();
    sibling.join();
    EXPECT_FALSE(mu.biased());
  });
}

TEST(MutexBiasTest, TryLockFromAnotherThreadFailsWhileHeldBiasedAndTimedLockTimesOut) {
  biased_locking_on guard;
  SPINDLE_REQUIRE_BIASED_LOCKING(guard);
  spindle::run(spindle::options{.workers = 2}, [] {
    auto mu = std::make_unique<spindle::timed_mutex>();
    std::atomic<int> step{0};
    fiber holder(spindle::fiber_options{.worker = 0, .pinned = true}, [&] {
      take_until_biased(*mu);
      mu->lock();
      step = 1;
      spindle::test::yield_until([&] { return step.load() == 2; });
      mu->unlock();
    });
    fiber other(spindle::fiber_options{.worker = 1, .pinned = true}, [&] {
      spindle::test::yield_until([&] { return step.load() == 1; });
      EXPECT_FALSE(mu->try_lock());
      EXPECT_FALSE(mu->try_lock_for(1ms));
      step = 2;
      EXPECT_TRUE(mu->try_lock_for(1h));
      mu->unlock();
    });
    holder.join();
    other.join();
  });
}

TEST(MutexBiasTest, AFiberThatTookTheMutexBiasedMayUnlockItOnAnotherWorker) {
  biased_locking_on guard;
  SPINDLE_REQUIRE_BIASED_LOCKING(guard);
  spindle::run(spindle::options{.workers = 2}, [] {
    inspectable_mutex mu;
    long counter = 0;  // guarded by mu
    // Pinned while it biases the mutex, so that the bias goes to worker
    // 0's thread (an idle worker 1 could otherwise steal it first, and
    // the take on worker 0 below would rightly revoke that bias).
    fiber mover(spindle::fiber_options{.worker = 0, .pinned = true}, [&] {
      take_until_biased(mu);
      ASSERT_TRUE(mu.biased());
      mu.lock();
      ++counter;
      spindle::this_fiber::unpin();
      // Move to worker 1 while holding it: be woken by a fiber pinned
      // there (a woken fiber runs on its waker's worker), until no idle
      // worker 0 stole it back.
      while (spindle::this_fiber::worker_index() != 1) {
        spindle::binary_semaphore woken(0);
        fiber waker(spindle::fiber_options{.worker = 1, .pinned = true},
                    [&] { woken.release(); });
        woken.acquire();
        waker.join();
      }
      mu.unlock();  // released from worker 1's thread
    });
    mover.join();
    EXPECT_TRUE(mu.biased());  // releasing elsewhere does not revoke
    fiber again(spindle::fiber_options{.worker = 0, .pinned = true}, [&] {
      std::lock_guard lock(mu);
      ++counter;
    });
    again.join();
    EXPECT_TRUE(mu.biased());
    fiber elsewhere(spindle::fiber_options{.worker = 1, .pinned = true}, [&] {
      std::lock_guard lock(mu);
      ++counter;
    });
    elsewhere.join();
    EXPECT_FALSE(mu.biased());  // taking it elsewhere does
    EXPECT_EQ(counter, 3);
  });
}

TEST_P(MutexTest, ABiasRevokedWhileItsThreadKeepsTakingTheMutexNeverAdmitsTwo) {
  // Each round a fresh mutex is biased to a fiber pinned on worker 0,
  // which keeps taking it; fibers on the other workers (with one worker:
  // on that one) and a plain thread take it meanwhile, the first of them revoking the bias while the
  // biased fiber's takes are in flight. Two inside at once, or a lost
  // increment, fails; a revoker that missed the biased holder's release
  // hangs (and the test's timeout fails it).
  biased_locking_on guard;
  SPINDLE_REQUIRE_BIASED_LOCKING(guard);
  const int rounds = static_cast<int>(spindle::test::scaled(400));
  constexpr int others_per_round = 3;
  constexpr int takes_per_other = 16;
  int biased_rounds = 0;
  spindle::run(opts(), [&] {
    for (int r = 0; r < rounds; ++r) {
      auto mu = std::make_unique<inspectable_mutex>();
      long counter = 0;  // guarded by *mu
      std::atomic<int> inside{0};
      std::atomic<bool> overlapped{false};
      std::atomic<bool> ready{false};
      std::atomic<bool> biased{false};
      std::atomic<int> others_done{0};
      auto take = [&](int hold_spins) {
        std::lock_guard lock(*mu);
        if (inside.fetch_add(1, std::memory_order_relaxed) != 0) overlapped = true;
        ++counter;
        // The owner holds it a while until the bias is revoked (a
        // revoker's fence takes microseconds, and must find the owner
        // still inside).
        for (int spin = 0; spin < hold_spins; ++spin) spindle::test::cpu_relax();
        inside.fetch_sub(1, std::memory_order_relaxed);
      };
      long owner_takes = 0;
      fiber owner(spindle::fiber_options{.worker = 0, .pinned = true}, [&] {
        take_until_biased(*mu);
        counter = 0;
        biased = mu->biased();
        ready = true;
        while (others_done.load() < others_per_round + 1) {
          const bool still_biased = mu->biased();
          take(still_biased ? 100 : 0);
          ++owner_takes;
          if (!still_biased) spindle::this_fiber::yield();  // let fibers here run
        }
      });
      std::vector<fiber> others;
      for (int o = 0; o < others_per_round; ++o) {
        const int n = static_cast<int>(workers());
        const int worker = n > 1 ? 1 + o % (n - 1) : 0;
        others.emplace_back(spindle::fiber_options{.worker = worker, .pinned = true}, [&] {
          spindle::test::yield_until([&] { return ready.load(); });
          for (int k = 0; k < takes_per_other; ++k) take(0);
          ++others_done;
        });
      }
      std::thread outsider([&] {
        while (!ready.load()) std::this_thread::yield();
        for (int k = 0; k < takes_per_other; ++k) take(0);
        ++others_done;
      });
      owner.join();
      for (auto& f : others) f.join();
      outsider.join();
      EXPECT_FALSE(overlapped.load()) << "round " << r;
      EXPECT_EQ(counter, owner_takes + (others_per_round + 1) * takes_per_other);
      EXPECT_FALSE(mu->biased());
      if (biased.load()) ++biased_rounds;
    }
  });
  EXPECT_EQ(biased_rounds, rounds);  // every round tested a revocation
}

TYPED_TEST(AnyMutexTest, OneBiasedToAFiberOnOneWorkerIsTakenOnAnotherOnlyOnceReleased) {
  biased_locking_on guard;
  SPINDLE_REQUIRE_BIASED_LOCKING(guard);
  spindle::run(spindle::options{.workers = 2}, [] {
    TypeParam mu;
    std::atomic<int> step{0};
    std::atomic<bool> released{false};
    fiber holder(spindle::fiber_options{.worker = 0, .pinned = true}, [&] {
      take_until_biased(mu);
      mu.lock();
      if constexpr (std::is_same_v<TypeParam, spindle::recursive_mutex>) mu.lock();
      step = 1;
      // Let the other fiber come to lock() and wait there (it revokes the
      // bias, and waits for this hold's release).
      spindle::test::await_parked(mu);
      released = true;
      if constexpr (std::is_same_v<TypeParam, spindle::recursive_mutex>) mu.unlock();
      mu.unlock();
    });
    fiber taker(spindle::fiber_options{.worker = 1, .pinned = true}, [&] {
      spindle::test::yield_until([&] { return step.load() == 1; });
      std::lock_guard lock(mu);
      EXPECT_TRUE(released.load());
    });
    holder.join();
    taker.join();
  });
}

// The refcounted object that holds its own mutex: std lets the thread that
// drops the last reference destroy the mutex right after its unlock, while
// another thread's unlock may not have returned yet ("it is possible for
// another thread B to lock the same mutex, observe that it is no longer in
// use, unlock it, and destroy it, before thread A appears to have returned
// from its unlock call"). Three users on different workers, each holding it
// a moment so that the others spin, mark it contended, park, or come in
// just as it is released. The mutexes are fresh (plain releases, then a
// first contention); every other round another fiber has waited for the
// mutex first (spinning, or parked: then it releases with the
// decrement). A touch of the
// mutex after a release is a race with the delete under TSan and a use
// after free under ASan.
TEST_P(MutexTest, TheLastOfItsUsersMayDestroyAMutexRightAfterItsUnlock) {
  struct shared {
    spindle::mutex mu;
    int refs = 3;  // guarded by mu
  };
  spindle::run(opts(), [this] {
    for (long i = 0; i < spindle::test::scaled(1500); ++i) {
      auto* s = new shared;
      if (i % 2 == 1) {
        // Another fiber waits for it first.
        std::unique_lock lock(s->mu);
        fiber other([s] { std::lock_guard inner(s->mu); });
        spindle::this_fiber::yield();
        lock.unlock();
        other.join();
      }
      std::vector<fiber> users;
      for (int k = 0; k < 3; ++k) {
        users.emplace_back(spindle::fiber_options{.worker = static_cast<int>((i + k) % workers())},
                           [s, k] {
                             s->mu.lock();
                             // Held long enough for the others to give up
                             // spinning (only shapes the interleaving).
                             const auto until =
                                 std::chrono::steady_clock::now() + std::chrono::microseconds(20 * k);
                             while (std::chrono::steady_clock::now() < until) {
                             }
                             const bool last = --s->refs == 0;
                             s->mu.unlock();
                             if (last) delete s;
                           });
      }
      for (auto& u : users) u.join();
    }
  });
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
    spindle::test::await_parked(mu);  // `other` waits in lock()
    EXPECT_FALSE(got.load());  // still held once
    mu.unlock();
    other.join();
    EXPECT_TRUE(got.load());
  });
}

}  // namespace
