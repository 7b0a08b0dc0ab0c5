#include "sched/park.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"

namespace {

using namespace std::chrono_literals;
using namespace spindle::detail;
using spindle::fiber;

// Waits (yielding the fiber) until `slot` holds a parked or parking waiter.
control_block* await_waiter(std::atomic<control_block*>& slot) {
  control_block* w;
  while ((w = slot.load()) == nullptr) spindle::this_fiber::yield();
  return w;
}

TEST(ParkTest, ParkReturnsAfterUnparkFromAnotherFiber) {
  spindle::run([] {
    std::atomic<control_block*> slot{nullptr};
    bool woke = false;
    fiber sleeper([&] {
      control_block* self = current_waiter();
      prepare_park(self);
      slot = self;
      park(self);
      woke = true;
    });
    control_block* w = await_waiter(slot);
    EXPECT_TRUE(unpark(w));
    sleeper.join();
    EXPECT_TRUE(woke);
  });
}

TEST(ParkTest, AnUnparkThatComesBeforeTheSwitchOutIsNotLost) {
  spindle::run([] {
    control_block* self = current_waiter();
    prepare_park(self);
    EXPECT_TRUE(unpark(self));   // parking -> notified
    EXPECT_FALSE(unpark(self));  // a second wake of the same park
    park(self);                  // switches out and is made runnable at once
    EXPECT_EQ(self->state_.load(), fiber_state::running);
  });
}

TEST(ParkTest, UnparkingAFiberThatIsNotParkingReturnsFalse) {
  spindle::run([] {
    EXPECT_FALSE(unpark(current_waiter()));
    std::atomic<control_block*> slot{nullptr};
    fiber f([&] {
      control_block* self = current_waiter();
      prepare_park(self);
      slot = self;
      park(self);
    });
    control_block* w = await_waiter(slot);
    EXPECT_TRUE(unpark(w));
    EXPECT_FALSE(unpark(w));  // already runnable: exactly one wake counts
    f.join();
  });
}

TEST(ParkTest, CancelParkConsumesAnEarlyUnpark) {
  spindle::run([] {
    control_block* self = current_waiter();
    prepare_park(self);
    EXPECT_TRUE(unpark(self));
    cancel_park(self);
    EXPECT_EQ(self->state_.load(), fiber_state::running);
    // The next park is not woken by the consumed unpark.
    prepare_park(self);
    EXPECT_FALSE(park_until(self, std::chrono::steady_clock::now() + 2ms));
  });
}

TEST(ParkTest, ParkUntilReturnsFalseAtTheDeadlineAndTrueWhenUnparked) {
  spindle::run([] {
    control_block* self = current_waiter();
    const auto start = std::chrono::steady_clock::now();
    prepare_park(self);
    EXPECT_FALSE(park_until(self, start + 3ms));
    EXPECT_GE(std::chrono::steady_clock::now() - start, 3ms);

    std::atomic<control_block*> slot{nullptr};
    std::atomic<bool> result{false};
    fiber f([&] {
      control_block* me = current_waiter();
      prepare_park(me);
      slot = me;
      result = park_until(me, std::chrono::steady_clock::now() + 1h);
    });
    EXPECT_TRUE(unpark(await_waiter(slot)));
    f.join();
    EXPECT_TRUE(result.load());
  });
}

TEST(ParkTest, APlainThreadParksAndIsUnparkedByAFiber) {
  std::atomic<control_block*> slot{nullptr};
  std::thread outsider([&slot] {
    control_block* self = current_waiter();
    EXPECT_TRUE(self->is_thread_);
    prepare_park(self);
    slot = self;
    park(self);
  });
  spindle::run([&slot] { EXPECT_TRUE(unpark(await_waiter(slot))); });
  outsider.join();
}

TEST(ParkTest, APlainThreadParkUntilTimesOut) {
  control_block* self = current_waiter();
  const auto start = std::chrono::steady_clock::now();
  prepare_park(self);
  EXPECT_FALSE(park_until(self, start + 2ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 2ms);
  EXPECT_FALSE(unpark(self));  // the timed-out park cannot be woken any more
}

TEST(ParkTest, APlainThreadWakesParkedFibersManyTimesWithoutLosingOne) {
  // A plain thread and a fiber hand a token back and forth through
  // park/unpark; a lost wakeup hangs, a double resume breaks the count.
  constexpr int rounds = 20'000;
  std::atomic<control_block*> fiber_slot{nullptr};
  std::atomic<control_block*> thread_slot{nullptr};
  int fiber_count = 0;
  int thread_count = 0;
  std::thread outsider;
  spindle::run([&] {
    outsider = std::thread([&] {
      for (int i = 0; i < rounds; ++i) {
        control_block* self = current_waiter();
        prepare_park(self);
        thread_slot.store(self);
        control_block* f;
        while ((f = fiber_slot.exchange(nullptr)) == nullptr) std::this_thread::yield();
        EXPECT_TRUE(unpark(f));
        park(self);
        ++thread_count;
      }
    });
    for (int i = 0; i < rounds; ++i) {
      control_block* self = current_waiter();
      prepare_park(self);
      fiber_slot.store(self);
      park(self);
      ++fiber_count;
      control_block* t;
      while ((t = thread_slot.exchange(nullptr)) == nullptr) spindle::this_fiber::yield();
      EXPECT_TRUE(unpark(t));
    }
  });
  outsider.join();
  EXPECT_EQ(fiber_count, rounds);
  EXPECT_EQ(thread_count, rounds);
}

}  // namespace
