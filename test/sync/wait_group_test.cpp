#include "sync/wait_group.h"

#include <gtest/gtest.h>

#include <algorithm>
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

// Any waiter may destroy the wait_group as soon as its wait() returns: the
// other waiters woken with it are still on their way out, and the done()
// that woke them may still be running. A woken waiter or a waker that
// touched it then (the old waiters took its internal lock once more) is a
// heap-use-after-free under ASan and a race with the delete under TSan.
TEST_P(WaitGroupTest, TheFirstWaiterOutMayDestroyItWhileTheOthersAreStillLeaving) {
  const int rounds = static_cast<int>(spindle::test::scaled(1000));
  const int parked_on = static_cast<int>(std::min(3u, workers()));
  spindle::run(opts(), [&] {
    for (int r = 0; r < rounds; ++r) {
      auto* wg = new spindle::wait_group;
      wg->add(1);
      std::atomic<bool> destroyed{false};
      std::vector<fiber> waiters;
      for (int w = 0; w < 3; ++w) {
        waiters.emplace_back(spindle::fiber_options{.worker = w % parked_on, .pinned = true},
                             [wg, &destroyed] {
                               wg->wait();
                               if (!destroyed.exchange(true)) delete wg;
                             });
      }
      for (int w = 0; w < parked_on; ++w) spindle::test::await_worker_free(w);  // all wait
      wg->done();
      for (auto& f : waiters) f.join();
    }
  });
}

// Destroying a wait_group that fibers wait on is a caller bug; it used to
// leave them parked for ever, and spindle::run() with them.
TEST(WaitGroupDeathTest, DestroyingAWaitGroupWithAParkedWaiterAbortsNamingIt) {
  EXPECT_DEATH(
      spindle::run(spindle::options{.workers = 2},
                   [] {
                     auto* wg = new spindle::wait_group;
                     wg->add(1);
                     fiber waiter(spindle::fiber_options{.worker = 0, .pinned = true},
                                  [wg] { wg->wait(); });
                     spindle::test::await_worker_free(0);  // the waiter has parked in wait()
                     delete wg;
                     waiter.join();
                   }),
      "spindle: wait_group 0x[0-9a-f]+ destroyed while fibers wait on it \\(1 waiters\\); let "
      "its counter reach zero first");
}

}  // namespace
