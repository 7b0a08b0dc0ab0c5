#include "sync/wait_group.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using spindle::fiber;

class WaitGroupTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(WaitGroupTest, 1u, 2u, 4u, 8u);

TEST_P(WaitGroupTest, WaitReturnsOnceEveryDoneWasCalledAndSeesTheirWork) {
  spindle::run(opts(), [] {
    spindle::wait_group wg;
    std::vector<int> results(100, 0);
    for (int i = 0; i < 100; ++i) {
      wg.add(1);
      spindle::go([&wg, &results, i] {
        spindle::this_fiber::yield();
        results[i] = i * i;  // plain writes: wait() must make them visible
        wg.done();
      });
    }
    wg.wait();
    for (int i = 0; i < 100; ++i) EXPECT_EQ(results[i], i * i);
    EXPECT_EQ(wg.count(), 0);
  });
}

TEST_P(WaitGroupTest, WaitOnAZeroCounterReturnsAtOnce) {
  spindle::run(opts(), [] {
    spindle::wait_group wg;
    wg.wait();
    wg.add(3);
    wg.add(-3);
    wg.wait();
  });
}

TEST_P(WaitGroupTest, ManyWaitersAllWakeAndMayDestroyItAtOnce) {
  // Each round: waiters wait, the last done() wakes them, and the last
  // waiter out destroys the wait_group at once (ASan catches a waker still
  // touching it).
  const int rounds = static_cast<int>(spindle::test::scaled(2000));
  std::atomic<int> woke{0};
  spindle::run(opts(), [&] {
    for (int r = 0; r < rounds; ++r) {
      auto wg = std::make_shared<spindle::wait_group>();
      wg->add(1);
      std::vector<fiber> waiters;
      for (int w = 0; w < 4; ++w) {
        waiters.emplace_back([&woke, wg]() mutable {
          wg->wait();
          woke.fetch_add(1);
          wg.reset();
        });
      }
      spindle::go([wg]() mutable {
        spindle::this_fiber::yield();
        std::shared_ptr<spindle::wait_group> keep = std::move(wg);
        keep->done();
      });
      wg.reset();
      for (auto& f : waiters) f.join();
    }
  });
  EXPECT_EQ(woke.load(), 4 * rounds);
}

TEST(WaitGroupDeathTest, DoneBelowZeroIsAClearError) {
  EXPECT_DEATH(
      {
        spindle::wait_group wg;
        wg.done();
      },
      "wait_group: counter below zero");
}

}  // namespace
