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
    spindle::test::await_parked(cv);  // the thread waits in wait()
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

// std lets a condition variable go once every waiter has been notified,
// before any of them has returned from wait(): "only the notification to
// unblock the wait needs to happen before destruction"
// ([thread.condition.condvar]). The notifier deletes it right after
// notify_all(), the woken waiters still on their way out. A woken waiter
// that touched it then (the old code took its internal lock once more) is
// a heap-use-after-free under ASan and a race with the delete under TSan.
TEST_P(ConditionVariableTest, ItMayBeDestroyedOnceEveryWaiterIsNotifiedBeforeAnyReturns) {
  spindle::run(opts(), [this] {
    for (long round = 0; round < spindle::test::scaled(1000); ++round) {
      spindle::mutex mu;
      int waiting = 0;  // guarded by mu
      bool go = false;  // guarded by mu
      auto* cv = new spindle::condition_variable;
      std::vector<fiber> fs;
      for (int k = 0; k < 3; ++k) {
        fs.emplace_back(
            spindle::fiber_options{.worker = static_cast<int>((round + k) % workers())},
            [&mu, &waiting, &go, cv] {
              std::unique_lock lock(mu);
              ++waiting;
              while (!go) cv->wait(lock);
            });
      }
      {
        // Once all three have counted themselves under mu, all three wait:
        // wait() registers before it lets go of mu.
        std::unique_lock lock(mu);
        while (waiting < 3) {
          lock.unlock();
          spindle::this_fiber::yield();
          lock.lock();
        }
        go = true;
      }
      cv->notify_all();
      delete cv;
      for (auto& f : fs) f.join();
    }
  });
}

// Destroying a condition variable that fibers wait on unnotified is a
// caller bug, as for std's; it used to leave them parked for ever, and
// spindle::run() with them.
TEST(ConditionVariableDeathTest, DestroyingAConditionVariableWithAParkedWaiterAbortsNamingIt) {
  EXPECT_DEATH(
      spindle::run(spindle::options{.workers = 2},
                   [] {
                     spindle::mutex mu;
                     auto* cv = new spindle::condition_variable;
                     fiber waiter(spindle::fiber_options{.worker = 0, .pinned = true},
                                  [&mu, cv] {
                                    std::unique_lock lock(mu);
                                    cv->wait(lock);
                                  });
                     spindle::test::await_worker_free(0);  // the waiter has parked in wait()
                     delete cv;
                     waiter.join();
                   }),
      "spindle: condition_variable 0x[0-9a-f]+ destroyed while fibers wait on it \\(1 "
      "waiters\\); notify them first");
}

TEST(ConditionVariableDeathTest, DestroyingAConditionVariableAnyWithAParkedWaiterAbortsNamingIt) {
  EXPECT_DEATH(
      spindle::run(spindle::options{.workers = 2},
                   [] {
                     spindle::timed_mutex mu;
                     auto* cv = new spindle::condition_variable_any;
                     fiber waiter(spindle::fiber_options{.worker = 0, .pinned = true},
                                  [&mu, cv] {
                                    std::unique_lock lock(mu);
                                    (void)cv->wait_for(lock, 1h);
                                  });
                     spindle::test::await_worker_free(0);  // the waiter has parked in wait_for()
                     delete cv;
                     waiter.join();
                   }),
      "spindle: condition_variable_any 0x[0-9a-f]+ destroyed while fibers wait on it \\(1 "
      "waiters\\)");
}

TEST(ConditionVariableExitTest, NotifyAllAtThreadExitHoldsTheLockUntilTheFiberHasEnded) {
  spindle::run(spindle::options{.workers = 2}, [] {
    spindle::mutex m;
    spindle::condition_variable cv;
    bool done = false;
    bool returned = false;
    spindle::fiber worker([&] {
      std::unique_lock lock(m);
      done = true;
      spindle::notify_all_at_thread_exit(cv, std::move(lock));
      returned = true;  // still under the lock, which the fiber's end releases
    });
    {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done; });
      EXPECT_TRUE(returned);  // the lock came back only after the fiber's function returned
    }
    worker.join();
  });
}

}  // namespace
