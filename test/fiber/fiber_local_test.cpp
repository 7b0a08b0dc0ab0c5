#include "fiber/fiber_local.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "fiber/this_fiber.h"
#include "sched/scheduler.h"

namespace {

using spindle::fiber;

struct counted {
  static inline std::atomic<int> alive{0};
  static inline std::atomic<int> destroyed{0};
  int value = 0;
  counted() { alive.fetch_add(1); }
  ~counted() {
    alive.fetch_sub(1);
    destroyed.fetch_add(1);
  }
};

TEST(FiberLocalTest, EachFiberHasItsOwnValueInitializedInstance) {
  spindle::fiber_local<int> local;
  spindle::run([&local] {
    std::vector<fiber> fibers;
    std::vector<int> seen(10, -1);
    for (int i = 0; i < 10; ++i) {
      fibers.emplace_back([&local, &seen, i] {
        seen[i] = *local;  // value-initialized
        *local = i;
        spindle::this_fiber::yield();  // others write theirs meanwhile
        seen[i] += *local;
      });
    }
    for (auto& f : fibers) f.join();
    for (int i = 0; i < 10; ++i) EXPECT_EQ(seen[i], i);
  });
}

TEST(FiberLocalTest, ValuesAreDestroyedWhenTheirFiberFinishes) {
  static spindle::fiber_local<counted> local;
  counted::destroyed = 0;
  spindle::run([] {
    fiber f([] { local->value = 1; });
    f.join();
    EXPECT_EQ(counted::destroyed.load(), 1);
    fiber untouched([] {});
    untouched.join();
    EXPECT_EQ(counted::destroyed.load(), 1);  // nothing created, nothing destroyed
  });
  EXPECT_EQ(counted::alive.load(), 0);
}

TEST(FiberLocalTest, DestructorsRunOnTheFiberAndMaySleep) {
  struct sleepy {
    std::atomic<bool>* done;
    ~sleepy() {
      spindle::this_fiber::sleep_for(std::chrono::milliseconds(1));
      if (done != nullptr) *done = true;
    }
  };
  static spindle::fiber_local<sleepy> local;
  std::atomic<bool> done{false};
  spindle::run([&done] {
    fiber f([&done] { local->done = &done; });
    f.join();
    EXPECT_TRUE(done.load());  // joined after the fiber-locals were destroyed
  });
}

TEST(FiberLocalTest, DestructorsMayCreateFiberLocalsWhichAreDestroyedToo) {
  static spindle::fiber_local<counted> second;
  struct creates_another {
    ~creates_another() { second->value = 3; }
  };
  static spindle::fiber_local<creates_another> first;
  spindle::run([] {
    fiber f([] { (void)*first; });
    f.join();
  });
  EXPECT_EQ(counted::alive.load(), 0);
}

TEST(FiberLocalTest, APlainThreadHasItsOwnInstanceDestroyedAtThreadExit) {
  static spindle::fiber_local<counted> local;
  const int before = counted::destroyed.load();
  std::thread t([] {
    local->value = 5;
    EXPECT_EQ(local->value, 5);
  });
  t.join();
  EXPECT_EQ(counted::destroyed.load(), before + 1);
}

TEST(FiberLocalTest, ValuesSurviveParkingAndResuming) {
  spindle::fiber_local<std::string> local;
  spindle::run([&local] {
    *local = "main's";
    fiber f([&local] {
      *local = "child's";
      spindle::this_fiber::sleep_for(std::chrono::milliseconds(2));
      EXPECT_EQ(*local, "child's");
    });
    spindle::this_fiber::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(*local, "main's");
    f.join();
  });
}

}  // namespace
