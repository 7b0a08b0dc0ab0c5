#include "sync/once.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"

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
