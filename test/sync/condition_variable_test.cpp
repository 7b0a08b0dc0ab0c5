#include "sync/condition_variable.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::fiber;

class ConditionVariableTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(ConditionVariableTest, 1u, 2u, 4u);

TEST_P(ConditionVariableTest, AProducerAndConsumersPassEveryItemExactlyOnce) {
  const int items = static_cast<int>(spindle::test::scaled(50'000));
  constexpr int consumers = 4;
  std::vector<std::atomic<int>> seen(items);
  spindle::run(opts(), [&] {
    spindle::mutex mu;
    spindle::condition_variable not_empty;
    std::deque<int> queue;  // guarded by mu
    bool closed = false;    // guarded by mu
    std::vector<fiber> cs;
    for (int c = 0; c < consumers; ++c) {
      cs.emplace_back([&] {
        for (;;) {
          std::unique_lock lock(mu);
          not_empty.wait(lock, [&] { return !queue.empty() || closed; });
          if (queue.empty()) return;
          const int v = queue.front();
          queue.pop_front();
          lock.unlock();
          seen[v].fetch_add(1);
        }
      });
    }
    for (int i = 0; i < items; ++i) {
      {
        std::lock_guard lock(mu);
        queue.push_back(i);
      }
      not_empty.notify_one();
    }
    {
      std::lock_guard lock(mu);
      closed = true;
    }
    not_empty.notify_all();
    for (auto& c : cs) c.join();
  });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

TEST_P(ConditionVariableTest, NotifyAllWakesEveryWaiter) {
  spindle::run(opts(), [] {
    spindle::mutex mu;
    spindle::condition_variable cv;
    int waiting = 0;  // guarded by mu
    bool go = false;  // guarded by mu
    std::atomic<int> woke{0};
    std::vector<fiber> fs;
    for (int i = 0; i < 20; ++i) {
      fs.emplace_back([&] {
        std::unique_lock lock(mu);
        ++waiting;
        cv.wait(lock, [&] { return go; });
        woke.fetch_add(1);
      });
    }
    for (;;) {
      std::lock_guard lock(mu);
      if (waiting == 20) break;
      // (not holding the lock across the yield)
      mu.unlock();
      spindle::this_fiber::yield();
      mu.lock();
    }
    {
      std::lock_guard lock(mu);
      go = true;
    }
    cv.notify_all();
    for (auto& f : fs) f.join();
    EXPECT_EQ(woke.load(), 20);
  });
}

TEST_P(ConditionVariableTest, WaitForTimesOutWithoutANotification) {
  spindle::run(opts(), [] {
    spindle::mutex mu;
    spindle::condition_variable cv;
    std::unique_lock lock(mu);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(cv.wait_for(lock, 3ms), std::cv_status::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 3ms);
    EXPECT_TRUE(lock.owns_lock());
    EXPECT_FALSE(cv.wait_for(lock, 1ms, [] { return false; }));
    EXPECT_TRUE(cv.wait_until(lock, std::chrono::system_clock::now() + 1h, [] { return true; }));
  });
}

TEST_P(ConditionVariableTest, APlainThreadWaitsForAFiber) {
  spindle::mutex mu;
  spindle::condition_variable cv;
  bool ready = false;
  std::thread waiter;
  spindle::run(opts(), [&] {
    waiter = std::thread([&] {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return ready; });
    });
    spindle::this_fiber::sleep_for(1ms);
    {
      std::lock_guard lock(mu);
      ready = true;
    }
    cv.notify_one();
  });
  waiter.join();
  EXPECT_TRUE(ready);
}

TEST_P(ConditionVariableTest, ConditionVariableAnyWorksWithATimedMutex) {
  spindle::run(opts(), [] {
    spindle::timed_mutex mu;
    spindle::condition_variable_any cv;
    int value = 0;
    fiber setter([&] {
      std::lock_guard lock(mu);
      value = 7;
      cv.notify_one();
    });
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, 1h, [&] { return value == 7; }));
    lock.unlock();
    setter.join();
  });
}

}  // namespace
