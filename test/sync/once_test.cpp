#include "sync/once.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using spindle::fiber;

TEST(CallOnceTest, RunsOnceWhileOthersWaitAndSeeItsEffects) {
  spindle::run(spindle::options{.workers = 4}, [] {
    spindle::once_flag flag;
    std::atomic<int> runs{0};
    int value = 0;
    std::vector<fiber> fs;
    for (int i = 0; i < 32; ++i) {
      fs.emplace_back([&] {
        spindle::call_once(flag, [&] {
          runs.fetch_add(1);
          spindle::this_fiber::yield();  // others arrive meanwhile and park
          value = 42;
        });
        EXPECT_EQ(value, 42);
      });
    }
    for (auto& f : fs) f.join();
    EXPECT_EQ(runs.load(), 1);
  });
}

// A caller that finds the call done may destroy the flag at once (the flag
// of an object that is going away): the fiber that ran the call must not
// touch the flag after marking it done. Half the rounds the other caller
// arrives while the call runs and parks; half it comes later and takes the
// fast path. A touch after is a race with the delete under TSan and a use
// after free under ASan.
TEST(CallOnceTest, TheFlagMayBeDestroyedAsSoonAsAnotherCallerSeesTheCallDone) {
  spindle::run(spindle::options{.workers = 2}, [] {
    for (long i = 0; i < spindle::test::scaled(2000); ++i) {
      auto* flag = new spindle::once_flag;
      std::atomic<bool> started{false};
      fiber runner(spindle::fiber_options{.worker = static_cast<int>(i % 2)}, [&, flag] {
        spindle::call_once(*flag, [&] {
          started = true;
          spindle::this_fiber::yield();
        });
      });
      while (!started.load()) spindle::this_fiber::yield();
      if (i % 2 == 1) {
        for (int y = 0; y < 3; ++y) spindle::this_fiber::yield();
      }
      bool ran_here = false;
      spindle::call_once(*flag, [&] { ran_here = true; });
      EXPECT_FALSE(ran_here);
      delete flag;
      runner.join();
    }
  });
}

TEST(CallOnceTest, AThrowingCallLetsTheNextCallerTryAgain) {
  spindle::run([] {
    spindle::once_flag flag;
    int attempts = 0;
    EXPECT_THROW(spindle::call_once(flag, [&] {
                   ++attempts;
                   throw std::runtime_error("first try fails");
                 }),
                 std::runtime_error);
    spindle::call_once(flag, [&] { ++attempts; });
    spindle::call_once(flag, [&] { ++attempts; });
    EXPECT_EQ(attempts, 2);
  });
}

}  // namespace
