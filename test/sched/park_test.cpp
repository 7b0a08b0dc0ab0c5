#include "sched/park.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <chrono>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "sched/baton.h"
#include "test_util.h"

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

TEST(ParkTest, MoreFibersWokenAtOnceThanTheRunQueueHoldsRunInTheOrderTheyWereWoken) {
  // One worker, 1000 wakes in a row (its ring holds 256): those that do
  // not fit wait, in order, behind those that do; none waits behind fibers
  // woken later (as it would in a queue served only now and then).
  constexpr int count = 1000;
  spindle::run(spindle::options{.workers = 1}, [] {
    std::vector<control_block*> waiters(count, nullptr);
    std::vector<int> order;
    std::vector<fiber> fibers;
    int parked = 0;
    for (int i = 0; i < count; ++i) {
      fibers.emplace_back([&, i] {
        control_block* self = current_waiter();
        prepare_park(self);
        waiters[i] = self;
        ++parked;  // one worker: nothing runs between this and the park
        park(self);
        order.push_back(i);
      });
    }
    spindle::test::yield_until([&] { return parked == count; });
    for (control_block* w : waiters) EXPECT_TRUE(wake(w, /*next=*/false));
    for (auto& f : fibers) f.join();
    std::vector<int> expected(count);
    for (int i = 0; i < count; ++i) expected[i] = i;
    EXPECT_EQ(order, expected);
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

// ---- Stress: many workers (more than cores), many wakes ----

namespace stress {

using spindle::test::baton;
using spindle::test::scaled;

class ParkStressTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(ParkStressTest, 1u, 2u, 4u, 8u);

// Counts how many threads run a fiber's code at once: 2 means the fiber
// was resumed twice.
struct reentry_detector {
  std::atomic<int> inside{0};
  std::atomic<bool> doubled{false};
  void enter() {
    if (inside.fetch_add(1) != 0) doubled = true;
  }
  void leave() { inside.fetch_sub(1); }
};

TEST_P(ParkStressTest, PingPongAcrossWorkersNeitherLosesNorDuplicatesAWakeup) {
  const long rounds = scaled(200'000);
  const int pairs = 4;
  std::atomic<long> lost{0};
  std::atomic<long> passes{0};
  std::vector<reentry_detector> detectors(2 * pairs);
  spindle::run(opts(), [&] {
    std::vector<baton> batons(2 * pairs);
    std::vector<fiber> fibers;
    for (int p = 0; p < pairs; ++p) {
      // Ping pinned on one worker, pong on another: every wake crosses
      // workers (when there are several).
      const int w1 = static_cast<int>((2 * p) % workers());
      const int w2 = static_cast<int>((2 * p + 1) % workers());
      baton& to_pong = batons[2 * p];
      baton& to_ping = batons[2 * p + 1];
      reentry_detector& d1 = detectors[2 * p];
      reentry_detector& d2 = detectors[2 * p + 1];
      fibers.emplace_back(spindle::fiber_options{.worker = w1, .pinned = true}, [&, rounds] {
        d1.enter();
        for (long i = 0; i < rounds; ++i) {
          to_pong.give();
          d1.leave();
          if (!to_ping.take()) lost.fetch_add(1);
          d1.enter();
          passes.fetch_add(1, std::memory_order_relaxed);
        }
        d1.leave();
      });
      fibers.emplace_back(spindle::fiber_options{.worker = w2, .pinned = true}, [&, rounds] {
        for (long i = 0; i < rounds; ++i) {
          if (!to_pong.take()) lost.fetch_add(1);
          d2.enter();
          passes.fetch_add(1, std::memory_order_relaxed);
          d2.leave();
          to_ping.give();
        }
      });
    }
    for (auto& f : fibers) f.join();
  });
  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(passes.load(), 2 * pairs * rounds);
  for (auto& d : detectors) EXPECT_FALSE(d.doubled.load());
}

TEST_P(ParkStressTest, ManyGiversToOneTakerLoseNoToken) {
  // Unpinned givers on every worker race to wake one taker; wakes move the
  // taker from worker to worker.
  const long per_giver = scaled(20'000);
  const int givers = 8;
  std::atomic<long> lost{0};
  long taken = 0;
  spindle::run(opts(), [&] {
    baton b;
    std::vector<fiber> fibers;
    for (int i = 0; i < givers; ++i) {
      fibers.emplace_back([&] {
        for (long k = 0; k < per_giver; ++k) {
          b.give();
          if (k % 64 == 0) spindle::this_fiber::yield();
        }
      });
    }
    fiber taker([&] {
      for (long k = 0; k < givers * per_giver; ++k) {
        if (b.take()) {
          ++taken;
        } else {
          lost.fetch_add(1);
        }
      }
    });
    for (auto& f : fibers) f.join();
    taker.join();
  });
  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(taken, givers * per_giver);
}

TEST_P(ParkStressTest, PlainThreadsAndFibersWakeEachOtherAcrossTheBoundary) {
  const long rounds = scaled(20'000);
  std::atomic<long> lost{0};
  std::thread outsider;
  spindle::run(opts(), [&] {
    baton to_thread;
    baton to_fiber;
    outsider = std::thread([&] {
      for (long i = 0; i < rounds; ++i) {
        if (!to_thread.take()) lost.fetch_add(1);
        to_fiber.give();
      }
    });
    for (long i = 0; i < rounds; ++i) {
      to_thread.give();
      if (!to_fiber.take()) lost.fetch_add(1);
    }
    outsider.join();  // the thread is done: this blocks only briefly
  });
  EXPECT_EQ(lost.load(), 0);
}

TEST_P(ParkStressTest, TimedParksRacingWithWakesEndExactlyOnce) {
  // Each park is woken either by its timer or by the waker, never both and
  // never neither: counts of timeouts plus wakes must match the parks.
  const long rounds = scaled(20'000);
  std::atomic<long> woken{0};
  std::atomic<long> timed_out{0};
  std::atomic<long> wakes_delivered{0};
  spindle::run(opts(), [&] {
    std::atomic<control_block*> slot{nullptr};
    std::atomic<bool> done{false};
    fiber waker([&] {
      while (!done.load()) {
        if (control_block* w = slot.exchange(nullptr)) {
          if (unpark(w)) wakes_delivered.fetch_add(1);
        }
        spindle::this_fiber::yield();
      }
    });
    for (long i = 0; i < rounds; ++i) {
      control_block* self = current_waiter();
      prepare_park(self);
      slot.store(self);
      const bool by_wake =
          park_until(self, std::chrono::steady_clock::now() + std::chrono::microseconds(i % 50));
      // Withdraw if nobody took the registration, so a later unpark cannot
      // hit a later park.
      control_block* expected = self;
      slot.compare_exchange_strong(expected, nullptr);
      (by_wake ? woken : timed_out).fetch_add(1);
    }
    done = true;
    waker.join();
  });
  EXPECT_EQ(woken.load() + timed_out.load(), rounds);
  EXPECT_EQ(woken.load(), wakes_delivered.load());
}

}  // namespace stress
