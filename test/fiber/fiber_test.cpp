#include "fiber/fiber.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <vector>

#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using spindle::fiber;

// Every test runs on runtimes of several shapes.
class FiberTest : public spindle::test::workers_fixture {
 protected:
  template <class F>
  void run(F&& f) {
    spindle::run(opts(), std::forward<F>(f));
  }
};

SPINDLE_INSTANTIATE_WORKERS(FiberTest, 1u, 2u, 4u);

TEST_P(FiberTest, JoinWaitsForTheFunctionAndSeesItsEffects) {
  run([] {
    int value = 0;
    fiber f([&value] {
      spindle::this_fiber::yield();
      value = 42;
    });
    EXPECT_TRUE(f.joinable());
    f.join();
    EXPECT_FALSE(f.joinable());
    EXPECT_EQ(value, 42);
  });
}

TEST_P(FiberTest, ArgumentsAreDecayCopiedLikeStdThread) {
  run([] {
    std::string text = "original";
    int result = 0;
    fiber f(
        [&result](std::string s, int n) {
          s += "!";
          result = static_cast<int>(s.size()) + n;
        },
        text, 10);
    text = "changed after spawn";
    f.join();
    EXPECT_EQ(result, 9 + 10);
  });
}

TEST_P(FiberTest, MoveOnlyArgumentsAndCallablesAreAccepted) {
  run([] {
    auto p = std::make_unique<int>(5);
    int seen = 0;
    fiber f([&seen, q = std::make_unique<int>(2)](std::unique_ptr<int> r) { seen = *q * *r; },
            std::move(p));
    f.join();
    EXPECT_EQ(seen, 10);
  });
}

TEST_P(FiberTest, CallableAndArgumentsAreDestroyedBeforeJoinReturns) {
  run([] {
    auto token = std::make_shared<int>(1);
    std::weak_ptr<int> watch = token;
    fiber f([t = std::move(token)] { EXPECT_EQ(*t, 1); });
    f.join();
    EXPECT_TRUE(watch.expired());
  });
}

TEST_P(FiberTest, ExceptionEscapingAFiberIsRethrownByJoin) {
  run([] {
    fiber f([] { throw std::runtime_error("from the fiber"); });
    try {
      f.join();
      FAIL() << "join() did not rethrow";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "from the fiber");
    }
    EXPECT_FALSE(f.joinable());
  });
}

TEST_P(FiberTest, ExceptionOfMainIsRethrownByRun) {
  EXPECT_THROW(spindle::run(opts(), [] { throw std::logic_error("main failed"); }), std::logic_error);
}

TEST_P(FiberTest, JoiningANonJoinableFiberIsAnInvalidArgumentError) {
  run([] {
    fiber empty;
    try {
      empty.join();
      FAIL();
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::invalid_argument);
    }
    fiber f([] {});
    f.join();
    EXPECT_THROW(f.join(), std::system_error);
    EXPECT_THROW(f.detach(), std::system_error);
  });
}

TEST_P(FiberTest, AFiberJoiningItselfGetsResourceDeadlockWouldOccur) {
  run([] {
    fiber self_joiner;
    std::atomic<bool> ready{false};
    std::atomic<bool> got_deadlock_error{false};
    self_joiner = fiber([&] {
      while (!ready.load()) spindle::this_fiber::yield();  // until the handle is assigned
      try {
        self_joiner.join();
      } catch (const std::system_error& e) {
        got_deadlock_error = e.code() == std::errc::resource_deadlock_would_occur;
      }
    });
    ready = true;
    self_joiner.join();
    EXPECT_TRUE(got_deadlock_error.load());
  });
}

TEST_P(FiberTest, DetachedFibersFinishBeforeRunReturns) {
  std::atomic<int> done{0};
  run([&done] {
    for (int i = 0; i < 100; ++i) {
      fiber f([&done] {
        spindle::this_fiber::sleep_for(std::chrono::milliseconds(1));
        done.fetch_add(1);
      });
      f.detach();
      EXPECT_FALSE(f.joinable());
    }
  });
  EXPECT_EQ(done.load(), 100);
}

TEST_P(FiberTest, GoStartsADetachedFiber) {
  std::atomic<int> done{0};
  run([&done] {
    for (int i = 0; i < 50; ++i) {
      spindle::go([&done](int n) { done.fetch_add(n); }, 2);
    }
    spindle::go({.name = "named"}, [&done] {
      EXPECT_EQ(spindle::this_fiber::get_name(), "named");
      done.fetch_add(1);
    });
  });
  EXPECT_EQ(done.load(), 101);
}

TEST_P(FiberTest, IdsAreUniqueAndMatchBetweenHandleAndFiber) {
  run([] {
    std::vector<fiber> fibers;
    std::vector<fiber::id> inside(100);
    for (int i = 0; i < 100; ++i) {
      fibers.emplace_back([&inside, i] { inside[i] = spindle::this_fiber::get_id(); });
    }
    std::unordered_set<fiber::id> ids;
    std::vector<fiber::id> outside;
    for (auto& f : fibers) {
      outside.push_back(f.get_id());
      ids.insert(f.get_id());
      f.join();
      EXPECT_EQ(f.get_id(), fiber::id());
    }
    EXPECT_EQ(ids.size(), 100u);
    EXPECT_EQ(inside, outside);
    EXPECT_EQ(ids.count(spindle::this_fiber::get_id()), 0u);
  });
}

TEST_P(FiberTest, IdOfAnEmptyHandlePrintsAsNotAFiber) {
  std::ostringstream os;
  os << fiber().get_id();
  EXPECT_EQ(os.str(), "fiber::id of a non-fiber");
}

TEST_P(FiberTest, NamesAreVisibleInsideAndThroughTheHandle) {
  run([] {
    std::string inside;
    fiber f({.name = "worker-7"}, [&inside] { inside = spindle::this_fiber::get_name(); });
    EXPECT_EQ(f.get_name(), "worker-7");
    f.join();
    EXPECT_EQ(inside, "worker-7");
    EXPECT_EQ(spindle::this_fiber::get_name(), "main");
  });
}

TEST_P(FiberTest, MoveTransfersOwnershipOfTheFiber) {
  run([] {
    bool ran = false;
    fiber a([&ran] { ran = true; });
    const fiber::id id = a.get_id();
    fiber b(std::move(a));
    EXPECT_FALSE(a.joinable());  // NOLINT(bugprone-use-after-move): checking the moved-from state
    EXPECT_EQ(b.get_id(), id);
    fiber c;
    c = std::move(b);
    swap(a, c);
    EXPECT_EQ(a.get_id(), id);
    a.join();
    EXPECT_TRUE(ran);
  });
}

TEST_P(FiberTest, AHundredThousandFibersSpawnAndJoin) {
  constexpr int count = static_cast<int>(spindle::test::max_concurrent_fibers(100'000));
  std::atomic<long> sum{0};
  run([&sum] {
    std::vector<fiber> fibers;
    fibers.reserve(count);
    for (int i = 0; i < count; ++i) {
      fibers.emplace_back([&sum, i] {
        spindle::this_fiber::yield();
        sum.fetch_add(i, std::memory_order_relaxed);
      });
    }
    for (auto& f : fibers) f.join();
  });
  EXPECT_EQ(sum.load(), static_cast<long>(count) * (count - 1) / 2);
}

TEST_P(FiberTest, FibersOnADeepTreeAllFinish) {
  // Each fiber spawns two children and joins them: 2^12 - 1 fibers.
  std::atomic<int> count{0};
  std::function<void(int)> grow = [&](int depth) {
    count.fetch_add(1);
    if (depth == 0) return;
    fiber left(grow, depth - 1);
    fiber right(grow, depth - 1);
    left.join();
    right.join();
  };
  run([&] { grow(11); });
  EXPECT_EQ(count.load(), (1 << 12) - 1);
}

TEST_P(FiberTest, APlainThreadCanStartAndJoinFibersInTheRunningRuntime) {
  std::atomic<bool> stop{false};
  std::atomic<int> ran{0};
  std::thread outsider;
  run([&] {
    outsider = std::thread([&] {
      for (int i = 0; i < 20; ++i) {
        spindle::thread t([&ran] {
          spindle::this_fiber::yield();
          ran.fetch_add(1);
        });
        t.join();  // blocks this plain thread
      }
      stop = true;
    });
    // Keep the runtime alive until the outsider is done.
    while (!stop.load()) spindle::this_fiber::sleep_for(std::chrono::milliseconds(1));
  });
  outsider.join();
  EXPECT_EQ(ran.load(), 20);
}

TEST(DefaultRuntimeTest, AThreadStartedOutsideAnyRuntimeRunsOnTheDefaultRuntime) {
  // Code written for std::thread: no spindle::run() anywhere.
  std::atomic<int> sum{0};
  std::vector<spindle::thread> threads;
  for (int i = 1; i <= 10; ++i) {
    threads.emplace_back([&sum](int n) {
      spindle::this_thread::sleep_for(std::chrono::milliseconds(1));
      sum.fetch_add(n);
    }, i);
  }
  for (auto& t : threads) t.join();  // blocks this plain thread
  EXPECT_EQ(sum.load(), 55);
  spindle::thread t([] { throw std::runtime_error("through join"); });
  EXPECT_THROW(t.join(), std::runtime_error);
  spindle::test::await_default_runtime_stacks_released();
}

TEST(DefaultRuntimeTest, RunStillStartsItsOwnRuntimeAlongsideTheDefaultOne) {
  spindle::thread warm_up([] {});
  warm_up.join();
  spindle::test::await_default_runtime_stacks_released();
  int ran = 0;
  spindle::options o;
  o.workers = 2;
  spindle::run(o, [&ran] {
    fiber f([&ran] { ++ran; });
    f.join();
  });
  EXPECT_EQ(ran, 1);
}

TEST(DefaultRuntimeTest, AWorkerIndexOutsideTheRuntimeIsAnInvalidArgument) {
  spindle::run(spindle::options{.workers = 2}, [] {
    try {
      fiber f({.worker = 2}, [] {});
      f.join();
      FAIL() << "started on a worker that does not exist";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::invalid_argument);
    }
  });
}

TEST(FiberDeathTest, DestroyingAJoinableHandleTerminatesLikeStdThread) {
  EXPECT_DEATH(spindle::run([] {
                 fiber f({.name = "forgotten"}, [] {});
                 // f goes out of scope joinable
               }),
               "joinable spindle::fiber handle was destroyed in fiber 'forgotten'");
}

TEST(FiberDeathTest, AnExceptionEscapingADetachedFiberTerminatesNamingTheFiber) {
  EXPECT_DEATH(spindle::run([] {
                 spindle::go({.name = "doomed"}, [] { throw std::runtime_error("lost"); });
               }),
               "uncaught exception in fiber 'doomed'.*lost");
}

TEST(FiberDeathTest, WithTerminateOnExceptionAnEscapingExceptionEndsTheProcessAsStdThreadDoes) {
  EXPECT_DEATH(spindle::run([] {
                 fiber f({.name = "strict", .terminate_on_exception = true},
                         [] { throw std::runtime_error("as std"); });
                 f.join();
               }),
               "uncaught exception in fiber 'strict'.*as std");
}

TEST(FiberDeathTest, DetachingAFiberThatAlreadyFailedTerminatesNamingTheFiber) {
  EXPECT_DEATH(spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
                 fiber f({.name = "failed-early"}, [] { throw std::runtime_error("early"); });
                 // One worker runs fibers in FIFO order: f fails before
                 // main resumes and detaches it.
                 spindle::this_fiber::yield();
                 f.detach();
               }),
               "uncaught exception in fiber 'failed-early'.*early");
}

// As std::thread::id: comparisons that a type converting to an id takes
// part in, printing to wide streams, hashing.
struct converts_to_id {
  spindle::fiber::id i;
  operator spindle::fiber::id() const { return i; }  // NOLINT: implicit on purpose
};

TEST(FiberIdTest, IdsCompareWithTypesThatConvertToThem) {
  spindle::fiber::id none;
  spindle::fiber::id some;
  spindle::fiber f([&some] { some = spindle::this_fiber::get_id(); });
  f.join();
  const converts_to_id c{some};
  EXPECT_TRUE(spindle::operator==(c, some));
  EXPECT_TRUE(spindle::operator<=>(none, c) < 0);
  EXPECT_TRUE(c != none);
  EXPECT_TRUE(c == some);
  EXPECT_TRUE(none < c);
  spindle::test::await_default_runtime_stacks_released();
}

TEST(FiberIdTest, IdsPrintToNarrowAndWideStreams) {
  std::ostringstream narrow;
  std::wostringstream wide;
  narrow << spindle::fiber::id();
  wide << spindle::fiber::id();
  EXPECT_EQ(narrow.str(), "fiber::id of a non-fiber");
  EXPECT_EQ(wide.str(), L"fiber::id of a non-fiber");
  spindle::fiber::id some;
  spindle::fiber f([&some] { some = spindle::this_fiber::get_id(); });
  f.join();
  std::wostringstream wide_some;
  wide_some << some;
  EXPECT_EQ(wide_some.str(), std::to_wstring(some.value()));
  spindle::test::await_default_runtime_stacks_released();
}

TEST(FiberIdTest, IdsHashAsStdThreadIdsDo) {
  std::unordered_set<spindle::thread::id> ids;
  ids.insert(spindle::thread::id());
  EXPECT_EQ(ids.count(spindle::thread::id()), 1u);
  EXPECT_EQ(std::hash<spindle::thread::id>{}(spindle::thread::id()),
            std::hash<spindle::thread::id>{}(spindle::thread::id()));
}

TEST(FiberTest, HardwareConcurrencyIsThatOfTheMachine) {
  EXPECT_EQ(fiber::hardware_concurrency(), std::thread::hardware_concurrency());
}

}  // namespace
