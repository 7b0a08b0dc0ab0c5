#include "sync/semaphore.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::fiber;

class SemaphoreTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(SemaphoreTest, 1u, 2u, 4u);

TEST_P(SemaphoreTest, NeverMoreHoldersThanTheCount) {
  spindle::run(opts(), [] {
    spindle::counting_semaphore<3> sem(3);
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
  });
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

TEST(SemaphoreDeathTest, CountingALatchBelowZeroIsAClearError) {
  EXPECT_DEATH(
      {
        spindle::latch l(1);
        l.count_down(2);
      },
      "latch::count_down: counter below zero");
}

}  // namespace
