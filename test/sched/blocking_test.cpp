#include "sched/blocking.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using spindle::test::yield_until;

using namespace std::chrono_literals;
using spindle::fiber;

// A one-shot event for plain threads (the pool's), with a bounded wait so
// that a broken runtime fails a test instead of hanging it.
class thread_event {
 public:
  void set() {
    std::lock_guard lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool wait_for(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

class BlockingTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(BlockingTest, 1u, 2u, 4u);

TEST_P(BlockingTest, BlockingReturnsWhatTheCallReturns) {
  spindle::run(opts(), [] {
    EXPECT_EQ(spindle::blocking([] { return 42; }), 42);
    EXPECT_EQ(spindle::blocking([](int a, int b) { return a * b; }, 6, 7), 42);
    const std::string s = spindle::blocking([](std::string x) { return x + "!"; }, std::string("hi"));
    EXPECT_EQ(s, "hi!");
    auto p = spindle::blocking([] { return std::make_unique<int>(7); });  // move-only
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, 7);
    int target = 0;
    int& ref = spindle::blocking([&]() -> int& { return target; });
    EXPECT_EQ(&ref, &target);
    bool ran = false;
    spindle::blocking([&] { ran = true; });  // void
    EXPECT_TRUE(ran);
  });
}

TEST_P(BlockingTest, TheCallRunsOnAPoolThreadNotOnTheWorker) {
  spindle::run(opts(), [] {
    const auto worker_thread = std::this_thread::get_id();
    const auto pool_thread = spindle::blocking([] { return std::this_thread::get_id(); });
    // The fiber may have moved to another worker meanwhile, but no worker
    // is a pool thread.
    EXPECT_NE(pool_thread, worker_thread);
    EXPECT_NE(pool_thread, std::this_thread::get_id());
  });
}

TEST_P(BlockingTest, BlockingRethrowsWhatTheCallThrows) {
  spindle::run(opts(), [] {
    EXPECT_THROW(spindle::blocking([] { throw std::runtime_error("boom"); }), std::runtime_error);
    try {
      spindle::blocking([]() -> int { throw std::out_of_range("the message"); });
      FAIL() << "no exception";
    } catch (const std::out_of_range& e) {
      EXPECT_STREQ(e.what(), "the message");
    }
    // The pool thread survived: the next call works.
    EXPECT_EQ(spindle::blocking([] { return 1; }), 1);
  });
}

TEST(BlockingOnAPlainThreadTest, BlockingRunsTheCallInlineOnAPlainThread) {
  const auto self = std::this_thread::get_id();
  EXPECT_EQ(spindle::blocking([] { return std::this_thread::get_id(); }), self);
  EXPECT_THROW(spindle::blocking([] { throw std::logic_error("x"); }), std::logic_error);
  EXPECT_EQ(spindle::blocking_for(10s, [] { return 5; }), 5);
  const spindle::blocking_pool_stats stats = spindle::blocking_stats();
  EXPECT_EQ(stats.threads, 0u);
  EXPECT_EQ(stats.completed, 0u);
}

// The central property: a blocking call does not stall its worker. With
// one worker, the call blocks (up to 2 s) until another fiber of that same
// worker releases it; had the worker been stuck in the call, that fiber
// could not run and the call would report the timeout.
TEST(BlockingOneWorkerTest, WhileOneFiberBlocksTheOtherFibersOfItsWorkerKeepRunning) {
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    thread_event release;
    std::atomic<bool> entered{false};
    int steps = 0;
    fiber blocked([&] {
      const bool released = spindle::blocking([&] {
        entered.store(true);
        return release.wait_for(2s);
      });
      EXPECT_TRUE(released) << "the worker did not run other fibers during the blocking call";
      EXPECT_EQ(steps, 1000);  // all of them happened while the call blocked
    });
    fiber other([&] {
      yield_until([&] { return entered.load(); });
      for (int i = 0; i < 1000; ++i) {
        ++steps;
        spindle::this_fiber::yield();
      }
      release.set();
    });
    blocked.join();
    other.join();
  });
}

TEST_P(BlockingTest, ManyFibersInManyCallsAllGetTheirOwnResults) {
  spindle::options o = opts();
  o.blocking_threads = 4;
  spindle::run(o, [] {
    const int n = static_cast<int>(spindle::test::scaled(2000));
    std::vector<int> results(static_cast<std::size_t>(n), -1);
    std::vector<fiber> fibers;
    for (int i = 0; i < n; ++i) {
      fibers.emplace_back([&results, i] {
        results[static_cast<std::size_t>(i)] = spindle::blocking([i] { return i * 3; });
      });
    }
    for (auto& f : fibers) f.join();
    for (int i = 0; i < n; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)], i * 3);
    const auto stats = spindle::blocking_stats();
    EXPECT_LE(stats.peak_threads, 4u);
    EXPECT_EQ(stats.completed, static_cast<std::size_t>(n));
  });
}

// A pool of one thread and a queue of one call, with many more callers:
// those beyond the queue wait for room, and none is lost or stuck.
TEST_P(BlockingTest, ASaturatedPoolNeitherDeadlocksNorLosesCalls) {
  spindle::options o = opts();
  o.blocking_threads = 1;
  o.blocking_queue = 1;
  spindle::run(o, [] {
    const int n = 300;
    std::atomic<int> ran{0};
    std::atomic<int> max_waiting{0};
    std::vector<fiber> fibers;
    for (int i = 0; i < n; ++i) {
      fibers.emplace_back([&] {
        spindle::blocking([&] {
          const auto st = spindle::blocking_stats();  // a pool thread: all zeros
          EXPECT_EQ(st.threads, 0u);
          std::this_thread::yield();
          ran.fetch_add(1);
        });
        const auto st = spindle::blocking_stats();
        int seen = max_waiting.load();
        const int w = static_cast<int>(st.waiting_room);
        while (w > seen && !max_waiting.compare_exchange_weak(seen, w)) {
        }
      });
    }
    for (auto& f : fibers) f.join();
    EXPECT_EQ(ran.load(), n);
    const auto stats = spindle::blocking_stats();
    EXPECT_EQ(stats.peak_threads, 1u);
    EXPECT_EQ(stats.completed, static_cast<std::size_t>(n));
    EXPECT_EQ(stats.queued, 0u);
    EXPECT_EQ(stats.waiting_room, 0u);
  });
}

// Calls queue in order behind a single busy thread; each caller beyond
// the queue's bound waits for room, and is admitted in order.
TEST(BlockingQueueTest, CallsBeyondTheQueueWaitForRoomAndRunInOrder) {
  spindle::options o{.workers = 1, .max_spare_workers = 0};
  o.blocking_threads = 1;
  o.blocking_queue = 2;
  spindle::run(o, [] {
    thread_event gate;
    std::atomic<bool> first_running{false};
    std::vector<int> order;  // written by the one pool thread only
    fiber first([&] {
      spindle::blocking([&] {
        first_running.store(true);
        EXPECT_TRUE(gate.wait_for(60s));
        order.push_back(0);
      });
    });
    yield_until([&] { return first_running.load(); });
    std::vector<fiber> rest;
    for (int i = 1; i <= 6; ++i) {
      rest.emplace_back([&order, i] { spindle::blocking([&order, i] { order.push_back(i); }); });
      // Let fiber i submit before fiber i + 1 (one worker: it runs now).
      yield_until([&] {
        const auto st = spindle::blocking_stats();
        return st.queued + st.waiting_room == static_cast<std::size_t>(i);
      });
    }
    const auto st = spindle::blocking_stats();
    EXPECT_EQ(st.queued, 2u);
    EXPECT_EQ(st.waiting_room, 4u);
    EXPECT_EQ(st.threads, 1u);
    gate.set();
    first.join();
    for (auto& f : rest) f.join();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
  });
}

TEST(BlockingThreadsTest, ThreadsStartOnDemandAndOneFiberReusesOneThread) {
  spindle::run(spindle::options{.workers = 2}, [] {
    EXPECT_EQ(spindle::blocking_stats().threads, 0u);  // none before the first call
    for (int i = 0; i < 1000; ++i) spindle::blocking([] {});
    const auto st = spindle::blocking_stats();
    EXPECT_EQ(st.peak_threads, 1u);  // never a thread per call
    EXPECT_EQ(st.completed, 1000u);
  });
}

TEST(BlockingThreadsTest, ConcurrentCallsStartThreadsUpToTheBoundOnly) {
  spindle::options o{.workers = 2};
  o.blocking_threads = 3;
  spindle::run(o, [] {
    thread_event gate;
    std::atomic<int> inside{0};
    std::vector<fiber> fibers;
    for (int i = 0; i < 8; ++i) {
      fibers.emplace_back([&] {
        spindle::blocking([&] {
          inside.fetch_add(1);
          EXPECT_TRUE(gate.wait_for(60s));
        });
      });
    }
    // Three threads, all busy, and the other five calls queued.
    yield_until([&] { return inside.load() == 3 && spindle::blocking_stats().queued == 5; });
    const auto st = spindle::blocking_stats();
    EXPECT_EQ(st.threads, 3u);
    EXPECT_EQ(st.running, 3u);
    EXPECT_EQ(st.queued, 5u);
    gate.set();
    for (auto& f : fibers) f.join();
    EXPECT_EQ(inside.load(), 8);
    EXPECT_EQ(spindle::blocking_stats().peak_threads, 3u);
  });
}

TEST(BlockingThreadsTest, IdleThreadsRetireAfterTheIdleTimeout) {
  spindle::options o{.workers = 1, .max_spare_workers = 0};
  o.blocking_idle = 1ms;
  spindle::run(o, [] {
    spindle::blocking([] {});
    EXPECT_EQ(spindle::blocking_stats().peak_threads, 1u);
    yield_until([] { return spindle::blocking_stats().threads == 0; });
    // And a retired pool starts a thread again when needed.
    EXPECT_EQ(spindle::blocking([] { return 3; }), 3);
  });
}

TEST_P(BlockingTest, ACallStillQueuedAtItsDeadlineIsNeverStarted) {
  spindle::options o = opts();
  o.blocking_threads = 1;
  spindle::run(o, [] {
    thread_event gate;
    std::atomic<bool> busy{false};
    fiber holder([&] {
      spindle::blocking([&] {
        busy.store(true);
        EXPECT_TRUE(gate.wait_for(60s));
      });
    });
    yield_until([&] { return busy.load(); });
    auto started = std::make_shared<std::atomic<bool>>(false);
    try {
      spindle::blocking_for(1ms, [started] { started->store(true); });
      FAIL() << "no timeout";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out);
    }
    EXPECT_EQ(spindle::blocking_stats().queued, 0u);  // taken out of the queue
    gate.set();
    holder.join();
    // The pool has run everything it was going to: the expired call never.
    spindle::blocking([] {});
    EXPECT_FALSE(started->load());
  });
}

TEST_P(BlockingTest, ACallRunningAtItsDeadlineFinishesInTheBackgroundAndIsDropped) {
  spindle::run(opts(), [] {
    auto gate = std::make_shared<thread_event>();
    auto finished = std::make_shared<thread_event>();
    auto entered = std::make_shared<std::atomic<bool>>(false);
    // On a loaded machine the call may not even have started by its
    // deadline (it is then cancelled, never run): try longer deadlines
    // until one passes while the call runs.
    for (auto timeout = 1ms; !entered->load(); timeout *= 2) {
      try {
        // The result (a heap string) must be destroyed by the pool, not
        // leaked: ASan checks.
        (void)spindle::blocking_for(timeout, [gate, finished, entered] {
          entered->store(true);
          EXPECT_TRUE(gate->wait_for(60s));
          finished->set();
          return std::string(1000, 'x');
        });
        FAIL() << "the call returned before the gate opened";
      } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), std::errc::timed_out);
      }
    }
    // Back at the deadline, while the call still runs.
    EXPECT_EQ(spindle::blocking_stats().running, 1u);
    gate->set();
    yield_until([&] { return spindle::blocking_stats().running == 0; });
    EXPECT_TRUE(finished->wait_for(0ms));
  });
}

TEST_P(BlockingTest, ADeadlineThatIsMetReturnsTheResult) {
  spindle::run(opts(), [] {
    EXPECT_EQ(spindle::blocking_for(60s, [](int x) { return x + 1; }, 41), 42);
    EXPECT_EQ(spindle::blocking_until(std::chrono::steady_clock::now() + 60s, [] { return 7; }), 7);
    EXPECT_EQ(spindle::blocking_until(std::chrono::system_clock::now() + 60s, [] { return 8; }), 8);
    EXPECT_THROW(spindle::blocking_for(60s, [] { throw std::runtime_error("x"); }),
                 std::runtime_error);
  });
}

TEST_P(BlockingTest, AnAlreadyPassedDeadlineTimesOutWithoutRunning) {
  spindle::run(opts(), [] {
    bool ran = false;
    try {
      spindle::blocking_until(std::chrono::steady_clock::now() - 1s, [&ran] { ran = true; });
      FAIL() << "no timeout";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out);
    }
    spindle::blocking([] {});  // anything queued before has run by now
    EXPECT_FALSE(ran);
  });
}

// Deadlines racing completions: whichever wins, each call either returns
// its result or times out, and nothing leaks or runs twice.
TEST_P(BlockingTest, DeadlinesRacingCompletionsNeitherLoseNorDuplicateResults) {
  spindle::options o = opts();
  o.blocking_threads = 2;
  spindle::run(o, [] {
    const int n = static_cast<int>(spindle::test::scaled(3000));
    auto runs = std::make_shared<std::atomic<int>>(0);
    std::atomic<int> results{0};
    std::atomic<int> timeouts{0};
    std::vector<fiber> fibers;
    for (int i = 0; i < n; ++i) {
      fibers.emplace_back([&, i] {
        try {
          auto v = spindle::blocking_for(std::chrono::microseconds(i % 50), [runs, i] {
            runs->fetch_add(1);
            return std::to_string(i);
          });
          EXPECT_EQ(v, std::to_string(i));
          results.fetch_add(1);
        } catch (const std::system_error& e) {
          EXPECT_EQ(e.code(), std::errc::timed_out);
          timeouts.fetch_add(1);
        }
      });
    }
    for (auto& f : fibers) f.join();
    EXPECT_EQ(results.load() + timeouts.load(), n);
    yield_until([] { return spindle::blocking_stats().running == 0; });
    EXPECT_GE(runs->load(), results.load());  // some timed-out calls ran anyway
    EXPECT_LE(runs->load(), n);
  });
}

}  // namespace
