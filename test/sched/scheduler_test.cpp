#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <set>
#include <string>
#include <vector>
#include <chrono>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "fiber/detail/control_block.h"
#include "fiber/fiber.h"
#include "fiber/fiber_local.h"
#include "fiber/this_fiber.h"
#include "sched/baton.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::fiber;

TEST(SchedulerTest, RunReturnsOnlyAfterEveryFiberHasFinished) {
  std::atomic<int> finished{0};
  spindle::run([&finished] {
    for (int i = 0; i < 10; ++i) {
      spindle::go([&finished] {
        // Grandchildren started late still count.
        spindle::this_fiber::sleep_for(2ms);
        spindle::go([&finished] {
          spindle::this_fiber::sleep_for(2ms);
          finished.fetch_add(1);
        });
        finished.fetch_add(1);
      });
    }
  });
  EXPECT_EQ(finished.load(), 20);
}

TEST(SchedulerTest, RunPassesArgumentsToMain) {
  int seen = 0;
  spindle::run([&seen](int a, int b) { seen = a * b; }, 6, 7);
  EXPECT_EQ(seen, 42);
}

TEST(SchedulerTest, RunCanBeCalledAgainAfterItReturns) {
  int runs = 0;
  for (int i = 0; i < 5; ++i) spindle::run([&runs] { ++runs; });
  EXPECT_EQ(runs, 5);
}

TEST(SchedulerTest, RunCalledOnAFiberIsAnError) {
  std::error_code code;
  spindle::run([&code] {
    try {
      spindle::run([] {});
    } catch (const std::system_error& e) {
      code = e.code();
    }
  });
  EXPECT_EQ(code, std::errc::operation_not_permitted);
}

TEST(SchedulerTest, ASecondRuntimeWhileOneIsRunningIsRefused) {
  std::error_code code;
  spindle::run([&code] {
    std::thread other([&code] {
      try {
        spindle::run([] {});
      } catch (const std::system_error& e) {
        code = e.code();
      }
    });
    // Park this fiber (not the worker) until the plain thread is done.
    fiber waiter([&other] { other.join(); });  // blocks the worker briefly: fine here
    waiter.join();
  });
  EXPECT_EQ(code, std::errc::device_or_resource_busy);
}

TEST(SchedulerTest, TheRuntimeStackSizeIsTheDefaultForFibers) {
  spindle::options o;
  o.stack_size = 1024 * 1024;
  std::size_t seen = 0;
  spindle::run(o, [&seen] {
    fiber f([&seen] { seen = spindle::detail::tls_current_fiber->stack_.size(); });
    f.join();
  });
  EXPECT_GE(seen, 1024u * 1024);
}

TEST(SchedulerTest, AFiberMayAskForItsOwnStackSize) {
  std::size_t seen = 0;
  spindle::run([&seen] {
    fiber f({.stack_size = 2 * 1024 * 1024},
            [&seen] { seen = spindle::detail::tls_current_fiber->stack_.size(); });
    f.join();
  });
  EXPECT_GE(seen, 2u * 1024 * 1024);
}

TEST(SchedulerTest, TheDefaultStackHoldsOrdinaryDeepCallChains) {
  // 150 KiB of frames, within the 256 KiB default.
  std::function<int(int)> dive = [&dive](int depth) -> int {
    volatile char frame[1024];
    frame[0] = static_cast<char>(depth);
    return depth == 0 ? 0 : dive(depth - 1) + frame[0];
  };
  int result = -1;
  spindle::run([&] { result = dive(150); });
  EXPECT_GE(result, 0);
}

TEST(SchedulerTest, EachFiberKeepsItsOwnCurrentExceptionAcrossSwitches) {
  // The C++ runtime keeps the "currently handled exception" per thread;
  // fibers that switch inside catch blocks must each see their own.
  spindle::run([] {
    std::atomic<int> inside{0};
    auto body = [&inside](int n) {
      try {
        throw std::runtime_error(std::to_string(n));
      } catch (const std::exception&) {
        inside.fetch_add(1);
        while (inside.load() < 2) spindle::this_fiber::yield();
        spindle::this_fiber::yield();
        try {
          throw;  // rethrows the exception this fiber is handling
        } catch (const std::runtime_error& e) {
          EXPECT_EQ(std::string(e.what()), std::to_string(n));
        }
        EXPECT_EQ(std::uncaught_exceptions(), 0);
      }
      EXPECT_EQ(std::current_exception(), nullptr);
    };
    fiber a(body, 1);
    fiber b(body, 2);
    a.join();
    b.join();
  });
}

TEST(SchedulerTest, AWorkerWithOnlySleepingFibersWakesForTheirTimers) {
  // The worker blocks in its loop between the wakes; each wake must come
  // from the timer, or this would hang.
  int ticks = 0;
  spindle::run([&ticks] {
    for (int i = 0; i < 20; ++i) {
      spindle::this_fiber::sleep_for(1ms);
      ++ticks;
    }
  });
  EXPECT_EQ(ticks, 20);
}

TEST(SchedulerTest, ZeroWorkersMeansOnePerHardwareThread) {
  spindle::options o;
  o.workers = 0;
  bool ran = false;
  spindle::run(o, [&ran] { ran = true; });
  EXPECT_TRUE(ran);
}

}  // namespace

// ---- Many workers: stealing, migration, pinning, shutdown ----

namespace many {

using spindle::test::baton;
using spindle::test::scaled;

class WorkersTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(WorkersTest, 1u, 2u, 4u, 8u);

TEST_P(WorkersTest, ASpawnStormFromEveryWorkerRunsEveryFiberOnce) {
  const int spawners = 16;
  const int children = static_cast<int>(spindle::test::max_concurrent_fibers(2000)) / spawners;
  std::vector<std::atomic<int>> ran(spawners * children);
  spindle::run(opts(), [&] {
    std::vector<fiber> fibers;
    for (int s = 0; s < spawners; ++s) {
      fibers.emplace_back(spindle::fiber_options{.worker = static_cast<int>(s % workers())}, [&, s] {
        std::vector<fiber> kids;
        for (int c = 0; c < children; ++c) {
          kids.emplace_back([&ran, s, c, children] { ran[s * children + c].fetch_add(1); });
        }
        for (auto& k : kids) k.join();
      });
    }
    for (auto& f : fibers) f.join();
  });
  for (auto& r : ran) EXPECT_EQ(r.load(), 1);
}

TEST_P(WorkersTest, RunReturnsWhileFibersWereStillSpawningFibersWhenMainEnded) {
  // main returns at once; detached chains keep spawning for a while.
  std::atomic<int> done{0};
  const int chains = 32;
  const int depth = 50;
  std::function<void(int)> link = [&](int remaining) {
    if (remaining == 0) {
      done.fetch_add(1);
      return;
    }
    spindle::this_fiber::yield();
    spindle::go(link, remaining - 1);
  };
  spindle::run(opts(), [&] {
    for (int c = 0; c < chains; ++c) spindle::go(link, depth);
  });
  EXPECT_EQ(done.load(), chains);
}

TEST_P(WorkersTest, FibersThatAPlainThreadSpawnsIntoTheRuntimeKeepItRunningUntilTheyFinish) {
  // The runtime counts fibers that fibers spawn apart from those that
  // plain threads spawn (with one worker, the first count is the worker's
  // own): run() must return only once both have finished, and must return.
  const int spawned = 64;
  std::atomic<int> finished{0};
  std::thread spawner;
  spindle::run(opts(), [&] {
    baton spawned_all;
    spawner = std::thread([&] {
      for (int i = 0; i < spawned; ++i) {
        spindle::go([&finished] {
          for (int y = 0; y < 3; ++y) spindle::this_fiber::yield();
          finished.fetch_add(1);
        });
      }
      spawned_all.give();
    });
    spawned_all.take_untimed();
  });
  spawner.join();
  EXPECT_EQ(finished.load(), spawned);
}

TEST_P(WorkersTest, AFiberWokenFromEachWorkerInTurnMovesWithItsStateIntact) {
  if (workers() < 2) GTEST_SKIP() << "migration needs two workers";
  const int hops = static_cast<int>(scaled(2000));
  static spindle::fiber_local<std::string> local;
  std::set<int> visited;
  std::string seen_at_end;
  spindle::run(opts(), [&] {
    std::vector<baton> to_wakers(workers());
    baton to_traveller;
    std::atomic<bool> stop{false};
    std::vector<fiber> wakers;
    for (unsigned w = 0; w < workers(); ++w) {
      // A pinned waker per worker: each wake it gives lands the traveller
      // on that worker (woken fibers run on the waker's worker).
      wakers.emplace_back(spindle::fiber_options{.worker = static_cast<int>(w), .pinned = true},
                          [&, w] {
                            while (to_wakers[w].take() && !stop.load()) to_traveller.give();
                          });
    }
    fiber traveller([&] {
      *local = "mine";
      for (int i = 0; i < hops; ++i) {
        to_wakers[i % workers()].give();
        to_traveller.take_untimed();  // a timed wait would keep it home
        visited.insert(spindle::this_fiber::worker_index());
        try {
          throw std::runtime_error("carried");
        } catch (const std::exception& e) {
          spindle::this_fiber::yield();  // may move while handling it
          EXPECT_STREQ(e.what(), "carried");
        }
      }
      seen_at_end = *local;
      stop = true;
      for (auto& b : to_wakers) b.give();
    });
    traveller.join();
    for (auto& w : wakers) w.join();
  });
  EXPECT_EQ(seen_at_end, "mine");
  // A wake from worker k queues the traveller on worker k (an idle worker
  // may steal it from there): over thousands of hops it must have moved.
  EXPECT_GE(visited.size(), 2u);
}

TEST_P(WorkersTest, APinnedFiberStaysOnItsWorkerWhoeverWakesIt) {
  const int rounds = static_cast<int>(scaled(2000));
  std::atomic<int> moves{0};
  spindle::run(opts(), [&] {
    baton to_pinned;
    baton to_others;
    fiber pinned([&] {
      spindle::this_fiber::pin_guard pin;
      EXPECT_TRUE(spindle::this_fiber::is_pinned());
      const int home = spindle::this_fiber::worker_index();
      for (int i = 0; i < rounds; ++i) {
        to_others.give();
        ASSERT_TRUE(to_pinned.take());
        spindle::this_fiber::yield();
        if (spindle::this_fiber::worker_index() != home) moves.fetch_add(1);
      }
    });
    fiber other([&] {
      for (int i = 0; i < rounds; ++i) {
        ASSERT_TRUE(to_others.take());
        to_pinned.give();
      }
    });
    pinned.join();
    other.join();
  });
  EXPECT_EQ(moves.load(), 0);
}

TEST_P(WorkersTest, FibersStartOnTheWorkerTheyAskFor) {
  spindle::run(opts(), [&] {
    for (unsigned w = 0; w < workers(); ++w) {
      int seen = -1;
      fiber f(spindle::fiber_options{.worker = static_cast<int>(w), .pinned = true},
              [&seen] { seen = spindle::this_fiber::worker_index(); });
      f.join();
      EXPECT_EQ(seen, static_cast<int>(w));
    }
  });
}

TEST_P(WorkersTest, ACpuBoundFiberDoesNotHoldUpAFiberQueuedBehindIt) {
  if (workers() < 2) GTEST_SKIP() << "with one worker a fiber that never yields holds it";
  // The hog spawns the releaser and then spins without ever yielding: only
  // another worker taking the releaser lets the hog finish.
  spindle::run(opts(), [] {
    std::atomic<bool> released{false};
    fiber hog([&released] {
      spindle::go([&released] { released = true; });
      while (!released.load()) {
      }
    });
    hog.join();
  });
}

TEST_P(WorkersTest, AFiberWokenByAComputingFiberIsNotHeldUpByIt) {
  if (workers() < 2) GTEST_SKIP() << "with one worker a fiber that never yields holds it";
  // The waker puts the woken fiber in its own runnext slot and then spins
  // without blocking: another worker must take the woken fiber from there.
  const int rounds = static_cast<int>(spindle::test::scaled(200));
  spindle::run(opts(), [rounds] {
    for (int i = 0; i < rounds; ++i) {
      baton wake;
      std::atomic<bool> answered{false};
      fiber sleeper([&] {
        wake.take_untimed();
        answered = true;
      });
      fiber waker([&] {
        spindle::test::yield_until([&] { return wake.taker_parked(); });
        wake.give();
        while (!answered.load()) {
        }
      });
      sleeper.join();
      waker.join();
    }
  });
}

TEST_P(WorkersTest, AFiberSpawnedByAComputingFiberIsNotHeldUpByIt) {
  if (workers() < 2) GTEST_SKIP() << "with one worker a fiber that never yields holds it";
  const int rounds = static_cast<int>(spindle::test::scaled(200));
  spindle::run(opts(), [rounds] {
    for (int i = 0; i < rounds; ++i) {
      std::atomic<bool> ran{false};
      fiber spawner([&ran] {
        fiber child([&ran] { ran = true; });
        while (!ran.load()) {
        }
        child.join();
      });
      spawner.join();
    }
  });
}

TEST(PinTest, PinningOutsideAFiberIsAnError) {
  try {
    spindle::this_fiber::pin();
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::operation_not_permitted);
  }
  EXPECT_THROW(spindle::this_fiber::unpin(), std::system_error);
  EXPECT_FALSE(spindle::this_fiber::is_pinned());
  EXPECT_EQ(spindle::this_fiber::worker_index(), -1);
}

TEST(PinTest, PinsNestAndUnpinningAnUnpinnedFiberIsAnError) {
  spindle::run([] {
    spindle::this_fiber::pin();
    spindle::this_fiber::pin();
    spindle::this_fiber::unpin();
    EXPECT_TRUE(spindle::this_fiber::is_pinned());
    spindle::this_fiber::unpin();
    EXPECT_FALSE(spindle::this_fiber::is_pinned());
    EXPECT_THROW(spindle::this_fiber::unpin(), std::system_error);
  });
}

}  // namespace many
