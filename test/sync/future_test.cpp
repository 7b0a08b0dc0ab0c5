#include "sync/future.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <utility>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;

class FutureTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(FutureTest, 1u, 2u, 4u);

TEST_P(FutureTest, AsyncRunsOnAFiberAndGetReturnsItsResult) {
  spindle::run(opts(), [] {
    auto f = spindle::async([](int a, int b) { return a + b; }, 20, 22);
    EXPECT_EQ(f.get(), 42);
    EXPECT_FALSE(f.valid());
    auto v = spindle::async([] {});
    v.get();
  });
}

TEST_P(FutureTest, AsyncWithLaunchAsyncRunsOnAnotherFiber) {
  spindle::run(opts(), [] {
    auto f = spindle::async(std::launch::async, [] { return spindle::this_fiber::get_id(); });
    EXPECT_NE(f.get(), spindle::this_fiber::get_id());
    auto both = spindle::async(std::launch::async | std::launch::deferred, [](int x) { return x; }, 7);
    EXPECT_EQ(both.get(), 7);
  });
}

TEST_P(FutureTest, AsyncWithLaunchDeferredRunsOnTheFirstWaiterAndNotBefore) {
  spindle::run(opts(), [] {
    int runs = 0;
    auto f = spindle::async(std::launch::deferred, [&runs](int x) {
      ++runs;
      return std::make_pair(x, spindle::this_fiber::get_id());
    }, 5);
    spindle::this_fiber::yield();
    EXPECT_EQ(f.wait_for(0s), spindle::future_status::deferred);
    EXPECT_EQ(runs, 0);
    const auto [x, where] = f.get();
    EXPECT_EQ(x, 5);
    EXPECT_EQ(where, spindle::this_fiber::get_id());
    EXPECT_EQ(runs, 1);
    bool ran = false;
    {
      auto never = spindle::async(std::launch::deferred, [&ran] { ran = true; });
    }
    EXPECT_FALSE(ran);  // nobody waited: it never runs
  });
}

TEST_P(FutureTest, TheLastFutureOfAnAsyncCallWaitsForItAsItGoes) {
  spindle::run(opts(), [] {
    std::atomic<bool> finished{false};
    {
      auto f = spindle::async([&finished] {
        spindle::this_fiber::sleep_for(5ms);
        finished = true;
      });
    }
    EXPECT_TRUE(finished.load());
    finished = false;
    {
      spindle::shared_future<void> first = spindle::async([&finished] {
        spindle::this_fiber::sleep_for(5ms);
        finished = true;
      });
      spindle::shared_future<void> second = first;
      first = spindle::shared_future<void>();  // not the last: no wait
    }
    EXPECT_TRUE(finished.load());
  });
}

TEST_P(FutureTest, ExceptionsTravelThroughTheFuture) {
  spindle::run(opts(), [] {
    auto f = spindle::async([]() -> int { throw std::runtime_error("nope"); });
    EXPECT_THROW(f.get(), std::runtime_error);
  });
}

TEST_P(FutureTest, APromiseSetFromAnotherFiberWakesTheWaiter) {
  spindle::run(opts(), [] {
    spindle::promise<std::unique_ptr<int>> p;
    auto f = p.get_future();
    EXPECT_EQ(f.wait_for(1ms), spindle::future_status::timeout);
    spindle::go([p = std::move(p)]() mutable { p.set_value(std::make_unique<int>(7)); });
    EXPECT_EQ(*f.get(), 7);
  });
}

TEST_P(FutureTest, ABrokenPromiseAndMisuseReportStdErrors) {
  spindle::run(opts(), [] {
    spindle::future<int> f;
    {
      spindle::promise<int> p;
      f = p.get_future();
      try {
        (void)p.get_future();
        FAIL();
      } catch (const spindle::future_error& e) {
        EXPECT_EQ(e.code(), spindle::future_errc::future_already_retrieved);
      }
      p.set_value(1);
      try {
        p.set_value(2);
        FAIL();
      } catch (const spindle::future_error& e) {
        EXPECT_EQ(e.code(), spindle::future_errc::promise_already_satisfied);
      }
    }
    EXPECT_EQ(f.get(), 1);
    spindle::future<int> g;
    { g = spindle::promise<int>().get_future(); }
    try {
      g.get();
      FAIL();
    } catch (const spindle::future_error& e) {
      EXPECT_EQ(e.code(), spindle::future_errc::broken_promise);
    }
  });
}

TEST_P(FutureTest, ASharedFutureGivesEveryWaiterTheValue) {
  spindle::run(opts(), [] {
    spindle::promise<std::string> p;
    spindle::shared_future<std::string> sf = p.get_future().share();
    std::vector<spindle::future<std::size_t>> lengths;
    for (int i = 0; i < 8; ++i) {
      lengths.push_back(spindle::async([sf] { return sf.get().size(); }));
    }
    p.set_value("twelve chars");
    for (auto& l : lengths) EXPECT_EQ(l.get(), 12u);
  });
}

TEST_P(FutureTest, APackagedTaskDeliversToItsFuture) {
  spindle::run(opts(), [] {
    spindle::packaged_task<int(int)> task([](int x) { return x * 2; });
    auto f = task.get_future();
    spindle::go([t = std::move(task)]() mutable { t(21); });
    EXPECT_EQ(f.get(), 42);
  });
}

// A value whose copy looks at the future it is being set into: the copy
// is made without the state's lock held (std: no deadlock).
struct looks_at_future {
  spindle::future<looks_at_future>* f = nullptr;
  int copies = 0;
  looks_at_future() = default;
  looks_at_future(const looks_at_future& o) : f(o.f), copies(o.copies + 1) {
    if (f != nullptr) {
      EXPECT_EQ(f->wait_for(0s), spindle::future_status::timeout);
    }
  }
  looks_at_future(looks_at_future&&) noexcept = default;
};

TEST(FutureSetTest, AValueWhoseCopyLooksAtTheFutureIsSetWithoutDeadlock) {
  spindle::promise<looks_at_future> p;
  spindle::future<looks_at_future> f = p.get_future();
  looks_at_future v;
  v.f = &f;
  p.set_value(v);  // copies v, whose copy asks f whether it is ready
  EXPECT_EQ(f.get().copies, 1);
}

TEST(FutureSetTest, APackagedTaskCalledTwiceThrowsWithoutRunningItsFunctionAgain) {
  int runs = 0;
  spindle::packaged_task<int()> task([&runs] { return ++runs; });
  spindle::future<int> f = task.get_future();
  task();
  try {
    task();
    ADD_FAILURE() << "the second call did not throw";
  } catch (const spindle::future_error& e) {
    EXPECT_EQ(e.code(), std::make_error_code(std::future_errc::promise_already_satisfied));
  }
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(f.get(), 1);
}

TEST(FutureSetTest, AFutureErrorThrownByTheTaskIsStoredInItsFuture) {
  spindle::packaged_task<int()> task(
      []() -> int { throw spindle::future_error(std::future_errc::no_state); });
  spindle::future<int> f = task.get_future();
  EXPECT_NO_THROW(task());
  try {
    (void)f.get();
    ADD_FAILURE() << "get() did not rethrow";
  } catch (const spindle::future_error& e) {
    EXPECT_EQ(e.code(), std::make_error_code(std::future_errc::no_state));
  }
}

TEST(FutureSetTest, APackagedTaskOfVoidDiscardsWhatItsCallableReturns) {
  int runs = 0;
  spindle::packaged_task<void(int)> task([&runs](int n) { return runs += n; });
  spindle::future<void> f = task.get_future();
  task(3);
  f.get();
  EXPECT_EQ(runs, 3);
}

TEST_P(FutureTest, SetValueAtThreadExitIsReadyOnlyOnceTheFiberEnds) {
  spindle::run(opts(), [] {
    spindle::promise<int> p;
    spindle::future<int> f = p.get_future();
    spindle::fiber setter([&] {
      p.set_value_at_thread_exit(42);
      EXPECT_EQ(f.wait_for(0s), spindle::future_status::timeout);  // not before the end
      EXPECT_THROW(p.set_value(1), spindle::future_error);          // already satisfied
    });
    setter.join();
    EXPECT_EQ(f.get(), 42);
    spindle::promise<int> q;
    spindle::future<int> g = q.get_future();
    spindle::fiber failer([&] {
      q.set_exception_at_thread_exit(std::make_exception_ptr(std::runtime_error("late")));
      EXPECT_EQ(g.wait_for(0s), spindle::future_status::timeout);
    });
    failer.join();
    EXPECT_THROW(g.get(), std::runtime_error);
  });
}

TEST_P(FutureTest, MakeReadyAtThreadExitRunsNowAndIsReadyOnlyOnceTheFiberEnds) {
  spindle::run(opts(), [] {
    int runs = 0;
    spindle::packaged_task<int(int)> task([&runs](int x) { return ++runs * x; });
    spindle::future<int> f = task.get_future();
    spindle::fiber runner([&] {
      task.make_ready_at_thread_exit(7);
      EXPECT_EQ(runs, 1);
      EXPECT_EQ(f.wait_for(0s), spindle::future_status::timeout);
    });
    runner.join();
    EXPECT_EQ(f.get(), 7);
  });
}

int twice(int x) { return 2 * x; }

TEST(FutureSetTest, PromisesAndTasksSwapAndTasksDeduceTheirSignature) {
  spindle::promise<int> a;
  spindle::promise<int> b;
  spindle::future<int> fa = a.get_future();
  swap(a, b);
  b.set_value(1);  // b now holds a's state
  EXPECT_EQ(fa.get(), 1);
  spindle::packaged_task from_lambda([](int x) { return x + 1; });
  static_assert(std::is_same_v<decltype(from_lambda), spindle::packaged_task<int(int)>>);
  spindle::packaged_task from_function(&twice);
  static_assert(std::is_same_v<decltype(from_function), spindle::packaged_task<int(int)>>);
  spindle::packaged_task<int(int)> other;
  swap(from_lambda, other);
  EXPECT_FALSE(from_lambda.valid());
  spindle::future<int> f = other.get_future();
  other(4);
  EXPECT_EQ(f.get(), 5);
}

TEST_P(FutureTest, ReferenceResultsReferToTheObjectSet) {
  spindle::run(opts(), [] {
    int target = 1;
    spindle::promise<int&> p;
    spindle::future<int&> f = p.get_future();
    spindle::fiber setter([&] { p.set_value(target); });
    int& got = f.get();
    EXPECT_EQ(&got, &target);
    setter.join();
    spindle::promise<int&> q;
    spindle::shared_future<int&> shared = q.get_future().share();
    q.set_value(target);
    EXPECT_EQ(&shared.get(), &target);
    shared.get() = 5;
    EXPECT_EQ(target, 5);
    spindle::packaged_task<int&(int&)> task([](int& x) -> int& { return x; });
    spindle::future<int&> tf = task.get_future();
    task(target);
    EXPECT_EQ(&tf.get(), &target);
    auto af = spindle::async([&target]() -> int& { return target; });
    EXPECT_EQ(&af.get(), &target);
  });
}

// A callable that counts how often it is moved and copied.
struct counted_callable {
  static inline int moves = 0;
  static inline int copies = 0;
  counted_callable() = default;
  counted_callable(const counted_callable&) { ++copies; }
  counted_callable(counted_callable&&) noexcept { ++moves; }
  int operator()(int x) const { return x + 1; }
  static void reset() { moves = copies = 0; }
};

template <class Make>
std::pair<int, int> moves_and_copies(Make make) {
  counted_callable::reset();
  make();
  return {counted_callable::moves, counted_callable::copies};
}

// packaged_task and async move (or copy) the callable as often as
// libstdc++'s do, no more: a swap-in run of outside code (docs/porting.md)
// found one extra move in each, visible to a callable that counts.
TEST(FutureMovesTest, PackagedTaskAndAsyncMoveTheCallableAsOftenAsStds) {
  EXPECT_EQ(moves_and_copies([] { std::packaged_task<int(int)> t(counted_callable{}); }),
            moves_and_copies([] { spindle::packaged_task<int(int)> t(counted_callable{}); }));
  const counted_callable lvalue;
  EXPECT_EQ(moves_and_copies([&] { std::packaged_task<int(int)> t(lvalue); }),
            moves_and_copies([&] { spindle::packaged_task<int(int)> t(lvalue); }));
  EXPECT_EQ(moves_and_copies([] { EXPECT_EQ(std::async(std::launch::async, counted_callable{}, 1).get(), 2); }),
            moves_and_copies([] { EXPECT_EQ(spindle::async(spindle::launch::async, counted_callable{}, 1).get(), 2); }));
  EXPECT_EQ(moves_and_copies([] { EXPECT_EQ(std::async(std::launch::deferred, counted_callable{}, 1).get(), 2); }),
            moves_and_copies([] { EXPECT_EQ(spindle::async(spindle::launch::deferred, counted_callable{}, 1).get(), 2); }));
}

TEST(FutureThreadTest, APlainThreadWaitsOnAFuture) {
  spindle::promise<int> p;
  auto f = p.get_future();
  std::thread waiter([&f] { EXPECT_EQ(f.get(), 5); });
  spindle::run([&p] { p.set_value(5); });
  waiter.join();
}

}  // namespace
