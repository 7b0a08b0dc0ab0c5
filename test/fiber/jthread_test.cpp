#include "fiber/jthread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "fiber/this_fiber.h"
#include "parked.h"
#include "sched/scheduler.h"
#include "spindle.h"
#include "sync/channel.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::jthread;
using spindle::detail::wait_reason;

class JthreadTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(JthreadTest, 1u, 2u, 4u);

TEST_P(JthreadTest, PassesItsStopTokenFirstWhenTheCallableTakesOne) {
  spindle::run(opts(), [] {
    std::stop_token seen;
    int sum = 0;
    jthread t([&](std::stop_token st, int a, int b) {
      seen = st;
      sum = a + b;
    }, 20, 22);
    const std::stop_token mine = t.get_stop_token();
    t.join();
    EXPECT_EQ(sum, 42);
    EXPECT_TRUE(seen == mine);
    EXPECT_TRUE(seen.stop_possible());
  });
}

TEST_P(JthreadTest, CallsACallableWithoutATokenAsFiberDoesAndItsFiberObservesTheToken) {
  spindle::run(opts(), [] {
    bool had_token = false;
    int got = 0;
    jthread t([&](int x) {
      had_token = spindle::this_fiber::get_stop_token().stop_possible();
      got = x;
    }, 7);
    t.join();
    EXPECT_TRUE(had_token);
    EXPECT_EQ(got, 7);
  });
}

TEST_P(JthreadTest, DestructionRequestsStopAndJoinsAFiberParkedInARecv) {
  spindle::run(opts(), [] {
    spindle::channel<int> never;
    std::atomic<bool> canceled{false};
    std::atomic<bool> finished{false};
    {
      jthread t([&](std::stop_token st) {
        try {
          (void)never.recv();
        } catch (const std::system_error& e) {
          canceled = e.code() == std::errc::operation_canceled && st.stop_requested();
        }
        finished = true;
      });
      spindle::test::wait_until_parked(t.get_id(), wait_reason::channel_recv);
    }  // ~jthread: request_stop(), join
    EXPECT_TRUE(canceled.load());
    EXPECT_TRUE(finished.load());
  });
}

TEST_P(JthreadTest, DestructionStopsASleepAndAConditionVariableAnyWait) {
  spindle::run(opts(), [] {
    std::atomic<int> done{0};
    spindle::mutex mu;
    spindle::condition_variable_any cv;
    {
      jthread sleeper([&] {
        spindle::this_fiber::sleep_for(24h);
        done.fetch_add(1);
      });
      jthread waiter([&](std::stop_token st) {
        std::unique_lock lock(mu);
        if (!cv.wait(lock, st, [] { return false; })) done.fetch_add(1);
      });
      spindle::test::wait_until_parked(sleeper.get_id(), wait_reason::sleep);
      spindle::test::wait_until_parked(waiter.get_id(), wait_reason::condition_variable);
    }
    EXPECT_EQ(done.load(), 2);
  });
}

TEST_P(JthreadTest, RequestStopIsSeenByTheFiberAndReportsWhetherItMadeTheRequest) {
  spindle::run(opts(), [] {
    jthread t([](std::stop_token st) {
      while (!st.stop_requested()) spindle::this_fiber::yield();
      EXPECT_TRUE(spindle::this_fiber::stop_requested());
    });
    EXPECT_TRUE(t.request_stop());
    EXPECT_FALSE(t.request_stop());
    EXPECT_TRUE(t.get_stop_source().stop_requested());
    t.join();
    EXPECT_FALSE(t.joinable());
  });
}

TEST_P(JthreadTest, MoveAssignmentStopsAndJoinsTheOldFiber) {
  spindle::run(opts(), [] {
    std::atomic<bool> first_stopped{false};
    jthread a([&](std::stop_token) {
      spindle::this_fiber::sleep_for(24h);
      first_stopped = spindle::this_fiber::stop_requested();
    });
    const std::stop_token old_token = a.get_stop_token();
    spindle::test::wait_until_parked(a.get_id(), wait_reason::sleep);
    jthread b([] {});
    const auto b_id = b.get_id();
    a = std::move(b);
    EXPECT_TRUE(first_stopped.load());
    EXPECT_TRUE(old_token.stop_requested());
    EXPECT_EQ(a.get_id(), b_id);
    EXPECT_FALSE(b.joinable());                          // NOLINT(bugprone-use-after-move)
    EXPECT_FALSE(b.get_stop_source().stop_possible());  // NOLINT(bugprone-use-after-move)
    jthread c(std::move(a));
    EXPECT_FALSE(a.joinable());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(c.get_id(), b_id);
    c.join();
  });
}

TEST_P(JthreadTest, DefaultConstructedHasNoStopStateAndSwapExchangesBoth) {
  spindle::run(opts(), [] {
    jthread empty;
    EXPECT_FALSE(empty.joinable());
    EXPECT_FALSE(empty.get_stop_token().stop_possible());
    EXPECT_FALSE(empty.request_stop());
    jthread t([] {});
    const auto id = t.get_id();
    swap(empty, t);
    EXPECT_EQ(empty.get_id(), id);
    EXPECT_TRUE(empty.get_stop_token().stop_possible());
    EXPECT_FALSE(t.get_stop_token().stop_possible());
    EXPECT_GE(jthread::hardware_concurrency(), 1u);
  });
}

TEST_P(JthreadTest, OptionsApplyAndTheJthreadsOwnTokenReplacesAGivenOne) {
  spindle::run(opts(), [] {
    std::stop_source other;
    std::string name;
    std::stop_token observed;
    jthread t(spindle::fiber_options{.name = "worker-j", .stop_token = other.get_token()}, [&] {
      name = std::string(spindle::this_fiber::get_name());
      observed = spindle::this_fiber::get_stop_token();
    });
    const std::stop_token mine = t.get_stop_token();
    t.join();
    EXPECT_EQ(name, "worker-j");
    EXPECT_TRUE(observed == mine);
    EXPECT_FALSE(observed == other.get_token());
  });
}

TEST_P(JthreadTest, JoinRethrowsAndDetachLetsItRun) {
  spindle::run(opts(), [] {
    jthread t([] { throw std::runtime_error("boom"); });
    EXPECT_THROW(t.join(), std::runtime_error);
    std::atomic<bool> ran{false};
    spindle::channel<int> done(1);
    jthread d([&] {
      ran = true;
      done.send(1);
    });
    d.detach();
    EXPECT_FALSE(d.joinable());
    EXPECT_EQ(done.recv().value_or(0), 1);
    EXPECT_TRUE(ran.load());
  });
}

TEST_P(JthreadTest, AJthreadDestroyedFromAStoppedFiberStillJoins) {
  // The destructor's join is not a cancellation point: it waits even when
  // the destroying fiber's own token is stopped.
  spindle::run(opts(), [] {
    jthread outer([](std::stop_token) {
      std::atomic<bool> inner_done{false};
      {
        jthread inner([&] {
          spindle::this_fiber::sleep_for(24h);  // until its own stop
          inner_done = true;
        });
        spindle::test::wait_until_parked(inner.get_id(), wait_reason::sleep);
        spindle::this_fiber::sleep_for(24h);  // until outer's stop
      }
      EXPECT_TRUE(inner_done.load());
    });
    spindle::test::wait_until_parked(outer.get_id(), wait_reason::sleep);
  });
}

TEST(JthreadPlainThreadTest, WorksFromAPlainThread) {
  // Inside run(), which waits for every fiber (their stacks included)
  // before it returns; the plain thread's jthread goes to its runtime.
  spindle::run(spindle::options{.workers = 2}, [] {
    std::atomic<bool> canceled{false};
    std::atomic<bool> done{false};
    std::thread plain([&] {
      {
        jthread t([&](std::stop_token) {
          spindle::channel<int> never;
          try {
            (void)never.recv();
          } catch (const std::system_error& e) {
            canceled = e.code() == std::errc::operation_canceled;
          }
        });
        spindle::test::wait_until_parked(t.get_id(), wait_reason::channel_recv);
      }  // ~jthread on a plain thread: blocks it until the fiber is done
      done = true;
    });
    spindle::test::yield_until([&] { return done.load(); });
    plain.join();
    EXPECT_TRUE(canceled.load());
  });
}

}  // namespace
