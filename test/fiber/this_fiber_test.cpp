#include "fiber/this_fiber.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::fiber;
using std::chrono::steady_clock;

// Tests of the order in which one worker runs its fibers.
constexpr spindle::options one_worker{.workers = 1, .max_spare_workers = 0};

TEST(ThisFiberTest, YieldingFibersKeepTheirOwnStateWhileTheyMoveBetweenWorkers) {
  // yield() switches inline, in the caller's frame, and the fiber may come
  // back on another worker's thread, resumed by a yield, a park or the
  // worker's loop: everything it holds in registers and on its stack must
  // be its own again. More fibers and workers than cores.
  const int rounds = static_cast<int>(spindle::test::scaled(5'000));
  std::atomic<long> total{0};
  spindle::run(spindle::options{.workers = 4}, [&] {
    std::vector<fiber> fibers;
    for (int f = 0; f < 16; ++f) {
      fibers.emplace_back([&, f] {
        const fiber::id me = spindle::this_fiber::get_id();
        long sum = 0;
        double mix = f;  // kept in a vector register across the switches
        for (int i = 0; i < rounds; ++i) {
          sum += f;
          mix = mix * 0.5 + f;
          spindle::this_fiber::yield();
          ASSERT_EQ(spindle::this_fiber::get_id(), me);
        }
        EXPECT_EQ(sum, static_cast<long>(f) * rounds);
        EXPECT_NEAR(mix, 2.0 * f, 1e-9);
        total.fetch_add(sum);
      });
    }
    for (auto& fb : fibers) fb.join();
  });
  EXPECT_EQ(total.load(), 120L * rounds);
}

TEST(ThisFiberTest, YieldRunsTheOtherRunnableFibersInRoundRobinOrder) {
  std::vector<int> order;
  spindle::run(one_worker, [&order] {
    std::vector<fiber> fibers;
    for (int id = 0; id < 3; ++id) {
      fibers.emplace_back([&order, id] {
        for (int round = 0; round < 3; ++round) {
          order.push_back(id);
          spindle::this_fiber::yield();
        }
      });
    }
    for (auto& f : fibers) f.join();
  });
  // Each round runs every fiber once, and every round in the same order
  // (which fiber goes first is the scheduler's choice: the last one
  // spawned runs next, as in Go).
  ASSERT_EQ(order.size(), 9u);
  const std::vector<int> first_round(order.begin(), order.begin() + 3);
  EXPECT_TRUE(std::is_permutation(first_round.begin(), first_round.end(),
                                  std::vector<int>{0, 1, 2}.begin()));
  EXPECT_EQ(std::vector<int>(order.begin() + 3, order.begin() + 6), first_round);
  EXPECT_EQ(std::vector<int>(order.begin() + 6, order.end()), first_round);
}

TEST(ThisFiberTest, YieldWithNothingElseRunnableReturns) {
  int yields = 0;
  spindle::run([&yields] {
    for (int i = 0; i < 10'000; ++i) {
      spindle::this_fiber::yield();
      ++yields;
    }
  });
  EXPECT_EQ(yields, 10'000);
}

TEST(ThisFiberTest, SleepersWakeInDeadlineOrder) {
  // Spawned in an order unrelated to their deadlines. All arm their timers
  // (within microseconds of each other) well before the first deadline, so
  // the order depends on the timers alone, not on when each fiber ran.
  const std::vector<int> delays_ms = {40, 10, 30, 0, 20, 50, 5};
  std::vector<int> woke;
  spindle::run(one_worker, [&] {
    std::atomic<int> ready{0};
    std::atomic<steady_clock::rep> base{0};
    std::vector<fiber> fibers;
    for (int d : delays_ms) {
      fibers.emplace_back([&woke, &ready, &base, d] {
        ready.fetch_add(1);
        while (base.load() == 0) spindle::this_fiber::yield();
        const steady_clock::time_point start{steady_clock::duration(base.load())};
        spindle::this_fiber::sleep_until(start + std::chrono::milliseconds(d));
        woke.push_back(d);
      });
    }
    while (ready.load() < static_cast<int>(delays_ms.size())) spindle::this_fiber::yield();
    base = (steady_clock::now() + 200ms).time_since_epoch().count();
    for (auto& f : fibers) f.join();
  });
  EXPECT_EQ(woke, (std::vector<int>{0, 5, 10, 20, 30, 40, 50}));
}

TEST(ThisFiberTest, SleepForNeverReturnsEarly) {
  spindle::run([] {
    for (auto d : {1ms, 3ms, 7ms}) {
      const auto start = steady_clock::now();
      spindle::this_fiber::sleep_for(d);
      EXPECT_GE(steady_clock::now() - start, d);
    }
  });
}

TEST(ThisFiberTest, SleepUntilAcceptsOtherClocks) {
  spindle::run([] {
    const auto deadline = std::chrono::system_clock::now() + 5ms;
    spindle::this_fiber::sleep_until(deadline);
    EXPECT_GE(std::chrono::system_clock::now(), deadline);
    // A deadline in the past returns at once.
    spindle::this_fiber::sleep_until(steady_clock::now() - 1s);
    spindle::this_fiber::sleep_for(-5ms);
  });
}

TEST(ThisFiberTest, ASleepingFiberLetsOthersRun) {
  std::vector<std::string> events;
  spindle::run(one_worker, [&events] {
    fiber sleeper([&events] {
      events.push_back("sleep");
      spindle::this_fiber::sleep_for(20ms);
      events.push_back("wake");
    });
    spindle::this_fiber::yield();  // the sleeper runs, then parks
    fiber runner([&events] { events.push_back("run"); });
    sleeper.join();
    runner.join();
  });
  EXPECT_EQ(events, (std::vector<std::string>{"sleep", "run", "wake"}));
}

TEST(ThisFiberTest, AYieldingFiberDoesNotStarveTimers) {
  // If the worker never polled libev while fibers keep yielding, the
  // sleeper's timer would never fire and this would hang.
  spindle::run(one_worker, [] {
    std::atomic<bool> woke{false};
    fiber sleeper([&woke] {
      spindle::this_fiber::sleep_for(5ms);
      woke = true;
    });
    fiber spinner([&woke] {
      while (!woke.load()) spindle::this_fiber::yield();
    });
    while (!woke.load()) spindle::this_fiber::yield();
    sleeper.join();
    spinner.join();
  });
}

TEST(ThisFiberTest, ManySleepersWithTheSameDeadlineAllWake) {
  constexpr int count = static_cast<int>(spindle::test::max_concurrent_fibers(10'000));
  std::atomic<int> woke{0};
  spindle::run([&woke] {
    const auto deadline = steady_clock::now() + 10ms;
    for (int i = 0; i < count; ++i) {
      spindle::go([&woke, deadline] {
        spindle::this_fiber::sleep_until(deadline);
        woke.fetch_add(1);
      });
    }
  });
  EXPECT_EQ(woke.load(), count);
}

TEST(ThisFiberTest, GetIdOnAPlainThreadIsStableAndDistinctPerThread) {
  const fiber::id mine = spindle::this_fiber::get_id();
  EXPECT_NE(mine, fiber::id());
  EXPECT_EQ(spindle::this_fiber::get_id(), mine);
  fiber::id other;
  std::thread t([&other] { other = spindle::this_fiber::get_id(); });
  t.join();
  EXPECT_NE(other, mine);
  EXPECT_NE(other, fiber::id());
}

TEST(ThisFiberTest, OnAPlainThreadSleepAndYieldBehaveLikeStdThisThread) {
  const auto start = steady_clock::now();
  spindle::this_thread::sleep_for(2ms);
  EXPECT_GE(steady_clock::now() - start, 2ms);
  spindle::this_thread::yield();
  EXPECT_EQ(spindle::this_thread::get_name(), "");
}

}  // namespace
