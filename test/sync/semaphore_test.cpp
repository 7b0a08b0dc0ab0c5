#include "sync/semaphore.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "sync/barrier.h"
#include "sync/detail/parking_lot.h"
#include "sync/latch.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::fiber;

class SemaphoreTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(SemaphoreTest, 1u, 2u, 4u);

// 20 fibers take and give back a semaphore of 3 units: never more than 3
// hold it at once, and every unit comes back.
template <class Semaphore>
void never_more_holders_than_the_count() {
  Semaphore sem(3);
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  std::vector<fiber> fs;
  for (int i = 0; i < 20; ++i) {
    fs.emplace_back([&] {
      for (int k = 0; k < 200; ++k) {
        sem.acquire();
        const int now = inside.fetch_add(1) + 1;
        int m = most.load();
        while (now > m && !most.compare_exchange_weak(m, now)) {
        }
        spindle::this_fiber::yield();
        inside.fetch_sub(1);
        sem.release();
      }
    });
  }
  for (auto& f : fs) f.join();
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(most.load(), 1);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(sem.try_acquire());
  EXPECT_FALSE(sem.try_acquire());
}

TEST_P(SemaphoreTest, NeverMoreHoldersThanTheCount) {
  spindle::run(opts(), [] { never_more_holders_than_the_count<spindle::counting_semaphore<3>>(); });
}

TEST_P(SemaphoreTest, TryAcquireForTimesOutAtZeroAndReleaseWakesAWaiter) {
  spindle::run(opts(), [] {
    spindle::binary_semaphore sem(0);
    EXPECT_FALSE(sem.try_acquire());
    EXPECT_FALSE(sem.try_acquire_for(2ms));
    fiber releaser([&] { sem.release(); });
    EXPECT_TRUE(sem.try_acquire_for(1h));
    releaser.join();
  });
}

TEST_P(SemaphoreTest, ALatchReleasesWaitersOnceCountedDown) {
  spindle::run(opts(), [] {
    spindle::latch done(5);
    std::atomic<int> after{0};
    std::vector<fiber> fs;
    for (int i = 0; i < 5; ++i) {
      fs.emplace_back([&] {
        done.arrive_and_wait();
        after.fetch_add(1);
      });
    }
    done.wait();
    for (auto& f : fs) f.join();
    EXPECT_EQ(after.load(), 5);
    EXPECT_TRUE(done.try_wait());
  });
}

TEST_P(SemaphoreTest, ABarrierRunsItsCompletionOncePerPhaseBeforeReleasingAnyone) {
  spindle::run(opts(), [] {
    constexpr int parties = 4;
    constexpr int phases = 50;
    std::atomic<int> completions{0};
    std::atomic<int> arrived{0};
    std::atomic<bool> early{false};
    spindle::barrier sync(parties, [&]() noexcept {
      completions.fetch_add(1);
      if (arrived.exchange(0) != parties) early = true;
    });
    std::vector<fiber> fs;
    for (int p = 0; p < parties; ++p) {
      fs.emplace_back([&] {
        for (int i = 0; i < phases; ++i) {
          arrived.fetch_add(1);
          sync.arrive_and_wait();
        }
      });
    }
    for (auto& f : fs) f.join();
    EXPECT_EQ(completions.load(), phases);
    EXPECT_FALSE(early.load());
  });
}

// std lets whoever sees a semaphore signalled destroy it at once (a
// binary_semaphore on a fiber's stack, released by another fiber), so the
// releaser may not touch it once its count went up. Half the rounds the
// acquirer parks, half it polls and so never parks. A touch after the
// release is a race with the delete under TSan and a use after free under
// ASan.
template <class Semaphore>
void destroyed_as_soon_as_its_acquirer_returns(unsigned workers) {
  for (long i = 0; i < spindle::test::scaled(2000); ++i) {
    auto* sem = new Semaphore(0);
    fiber releaser(spindle::fiber_options{.worker = static_cast<int>(i % workers)},
                   [sem] { sem->release(); });
    if (i % 2 == 0) {
      sem->acquire();
    } else {
      while (!sem->try_acquire()) spindle::this_fiber::yield();
    }
    delete sem;
    releaser.join();
  }
}

TEST_P(SemaphoreTest, ASemaphoreMayBeDestroyedAsSoonAsItsAcquirerReturns) {
  spindle::run(opts(), [this] {
    destroyed_as_soon_as_its_acquirer_returns<spindle::binary_semaphore>(workers());
  });
}

// The same for a latch: the last count_down() may not touch it once the
// count reached zero.
TEST_P(SemaphoreTest, ALatchMayBeDestroyedAsSoonAsItsWaiterReturns) {
  spindle::run(opts(), [this] {
    for (long i = 0; i < spindle::test::scaled(2000); ++i) {
      auto* done = new spindle::latch(2);
      std::vector<fiber> fs;
      for (int k = 0; k < 2; ++k) {
        fs.emplace_back(spindle::fiber_options{.worker = static_cast<int>((i + k) % workers())},
                        [done] { done->count_down(); });
      }
      if (i % 2 == 0) {
        done->wait();
      } else {
        while (!done->try_wait()) spindle::this_fiber::yield();
      }
      delete done;
      for (auto& f : fs) f.join();
    }
  });
}

// Waiters park by address in a table of buckets, so unrelated waiters
// share buckets: a release must wake its own semaphore's waiter and no
// other's. Pairs of semaphores whose addresses share a bucket, one waiter
// each; releasing one of each pair lets exactly those through.
TEST_P(SemaphoreTest, WaitersOfSemaphoresThatShareAParkingBucketWakeOnlyForTheirOwn) {
  spindle::run(opts(), [] {
    std::vector<std::unique_ptr<spindle::binary_semaphore>> pool;
    std::vector<spindle::binary_semaphore*> first, second;
    std::vector<spindle::binary_semaphore*> by_bucket(1 << 16, nullptr);
    while (first.size() < 16) {
      pool.push_back(std::make_unique<spindle::binary_semaphore>(0));
      spindle::binary_semaphore* sem = pool.back().get();
      auto& b = spindle::detail::parking_bucket_for(sem);
      const auto slot = static_cast<std::size_t>(
          (reinterpret_cast<std::uintptr_t>(&b) / sizeof(b)) % by_bucket.size());
      if (by_bucket[slot] == nullptr) {
        by_bucket[slot] = sem;
      } else if (&spindle::detail::parking_bucket_for(by_bucket[slot]) == &b) {
        first.push_back(by_bucket[slot]);
        second.push_back(sem);
        by_bucket[slot] = nullptr;
      }
    }
    std::atomic<int> through{0};
    std::vector<fiber> waiting_first, waiting_second;
    for (auto* sem : first) waiting_first.emplace_back([&, sem] { sem->acquire(); through++; });
    for (auto* sem : second) waiting_second.emplace_back([&, sem] { sem->acquire(); through++; });
    for (auto* sem : first) sem->release();
    for (auto& f : waiting_first) f.join();
    EXPECT_EQ(through.load(), 16);
    for (auto* sem : second) EXPECT_FALSE(sem->try_acquire());  // nobody took theirs
    for (auto* sem : second) sem->release();
    for (auto& f : waiting_second) f.join();
    EXPECT_EQ(through.load(), 32);
  });
}

// A semaphore whose LeastMaxValue needs more than 31 bits keeps a 63-bit
// count and a separate waiter count (wide_semaphore_core), as std allows
// any LeastMaxValue up to PTRDIFF_MAX.
using wide_semaphore = spindle::counting_semaphore<PTRDIFF_MAX>;
static_assert(wide_semaphore::max() == PTRDIFF_MAX);
static_assert(spindle::counting_semaphore<(std::ptrdiff_t{1} << 40)>::max() ==
              (std::ptrdiff_t{1} << 40));

TEST(SemaphoreTest, AWideSemaphoreCountsPastThirtyOneBits) {
  wide_semaphore sem(PTRDIFF_MAX - 2);
  sem.release(2);  // now at PTRDIFF_MAX
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(sem.try_acquire());
  sem.release(3);
  std::ptrdiff_t taken = 0;
  while (taken < 10 && sem.try_acquire()) ++taken;
  EXPECT_EQ(taken, 10);
  spindle::counting_semaphore<(std::ptrdiff_t{1} << 40)> big(std::ptrdiff_t{1} << 33);
  EXPECT_TRUE(big.try_acquire());
}

TEST(SemaphoreDeathTest, ReleasingAWideSemaphorePastMaxIsAClearError) {
  EXPECT_DEATH(
      {
        wide_semaphore sem(PTRDIFF_MAX);
        sem.release();
      },
      "the count would pass max");
}

TEST_P(SemaphoreTest, AWideSemaphoreNeverLetsMoreHoldersInThanItsCount) {
  spindle::run(opts(), [] { never_more_holders_than_the_count<wide_semaphore>(); });
}

// The wide core's waiters bit is cleared by whoever guesses it is the last
// waiter out; a guess proved wrong must not strand a parked waiter. Timed
// waiters come and go (each time out is a last-out guess) while plain
// acquirers park and one releaser hands out exactly one unit per acquirer:
// a lost wake leaves an acquirer parked, and the test hangs.
TEST_P(SemaphoreTest, AWideSemaphoreLosesNoWakeWhileTimedWaitersComeAndGo) {
  spindle::run(opts(), [] {
    constexpr int acquirers = 8;
    const long rounds = spindle::test::scaled(300);
    wide_semaphore sem(0);
    std::atomic<bool> done{false};
    std::atomic<long> timed_took{0};
    std::vector<fiber> timed;
    for (int i = 0; i < 4; ++i) {
      timed.emplace_back([&] {
        while (!done.load()) {
          if (sem.try_acquire_for(std::chrono::microseconds(50))) {
            timed_took++;
            sem.release();  // give it back: the acquirers' units are theirs
          }
          spindle::this_fiber::yield();  // one worker: let the others run
        }
      });
    }
    std::vector<fiber> fs;
    for (int i = 0; i < acquirers; ++i) {
      fs.emplace_back([&] {
        for (long k = 0; k < rounds; ++k) sem.acquire();
      });
    }
    fiber releaser([&] {
      for (long k = 0; k < rounds * acquirers; ++k) {
        sem.release();
        if (k % 4 == 0) spindle::this_fiber::yield();
      }
    });
    for (auto& f : fs) f.join();
    releaser.join();
    done = true;
    for (auto& f : timed) f.join();
    EXPECT_FALSE(sem.try_acquire());  // every unit was taken exactly once
  });
}

TEST_P(SemaphoreTest, AWideSemaphoreMayBeDestroyedAsSoonAsItsAcquirerReturns) {
  spindle::run(opts(), [this] { destroyed_as_soon_as_its_acquirer_returns<wide_semaphore>(workers()); });
}

// Deletes a semaphore while a fiber is parked in its acquire(): a caller
// bug the destructor reports.
template <class Semaphore>
void destroy_with_a_parked_acquirer() {
  spindle::run(spindle::options{.workers = 2}, [] {
    auto* sem = new Semaphore(0);
    fiber acquirer(spindle::fiber_options{.worker = 0, .pinned = true},
                   [sem] { sem->acquire(); });
    spindle::test::await_worker_free(0);  // the acquirer has parked
    delete sem;
    acquirer.join();
  });
}
constexpr const char* destroyed_while_waited_on =
    "spindle: counting_semaphore 0x[0-9a-f]+ destroyed while fibers wait on it \\(1 "
    "waiters\\); let their acquire\\(\\) calls return first";

TEST(SemaphoreDeathTest, DestroyingAWideSemaphoreWithAParkedAcquirerAbortsNamingIt) {
  EXPECT_DEATH(destroy_with_a_parked_acquirer<wide_semaphore>(), destroyed_while_waited_on);
}

// LWG 3898: a completion that throws ends the process, as for std::barrier;
// it used to reach the arriving caller and leave the phase uncompleted,
// its other waiters parked for ever.
TEST(BarrierDeathTest, ACompletionThatThrowsEndsTheProcess) {
  EXPECT_DEATH(
      spindle::run(spindle::options{.workers = 2},
                   [] {
                     spindle::barrier b(2, [] { throw std::runtime_error("completion failed"); });
                     fiber other([&] { b.arrive_and_wait(); });
                     try {
                       b.arrive_and_wait();
                     } catch (...) {
                     }
                     other.join();
                   }),
      "terminate called after throwing an instance of 'std::runtime_error'");
}

// constexpr constructors, as std's: these globals are initialized before
// any code runs.
constinit spindle::counting_semaphore<8> constant_semaphore(3);
constinit spindle::binary_semaphore constant_binary(1);
constinit spindle::barrier<> constant_barrier(1);

TEST(SemaphoreTest, ConstinitGlobalsWork) {
  EXPECT_TRUE(constant_semaphore.try_acquire());
  constant_semaphore.release();
  EXPECT_TRUE(constant_binary.try_acquire());
  constant_binary.release();
  constant_barrier.arrive_and_wait();  // a barrier of one completes at once
}

TEST(SemaphoreDeathTest, AnInitialCountOverMaxIsAClearError) {
  EXPECT_DEATH({ spindle::binary_semaphore sem(2); }, "initial count outside");
}

TEST(SemaphoreDeathTest, ReleasingPastTheLargestCountIsAClearError) {
  EXPECT_DEATH(
      {
        spindle::counting_semaphore<> sem(spindle::counting_semaphore<>::max());
        sem.release();
      },
      "the count would pass max");
}

TEST(SemaphoreDeathTest, CountingALatchBelowZeroIsAClearError) {
  EXPECT_DEATH(
      {
        spindle::latch l(1);
        l.count_down(2);
      },
      "latch::count_down: counter below zero");
}

// Destroying a semaphore or a barrier that fibers wait on is a caller bug,
// as for std's; it used to leave them parked for ever, and spindle::run()
// with them.
TEST(SemaphoreDeathTest, DestroyingASemaphoreWithAParkedAcquirerAbortsNamingIt) {
  EXPECT_DEATH(destroy_with_a_parked_acquirer<spindle::binary_semaphore>(),
               destroyed_while_waited_on);
}

TEST(BarrierDeathTest, DestroyingABarrierWithAParkedWaiterAbortsNamingIt) {
  EXPECT_DEATH(
      spindle::run(spindle::options{.workers = 2},
                   [] {
                     auto* b = new spindle::barrier<>(2);
                     fiber waiter(spindle::fiber_options{.worker = 0, .pinned = true},
                                  [b] { b->arrive_and_wait(); });
                     spindle::test::await_worker_free(0);  // the waiter has parked
                     delete b;
                     waiter.join();
                   }),
      "spindle: barrier 0x[0-9a-f]+ destroyed while fibers wait on it \\(1 waiters\\)");
}

}  // namespace
