#include "sched/park.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <chrono>
#include <thread>
#include <utility>
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
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
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
    for (control_block* w : waiters) EXPECT_TRUE(wake(w, wake_order::queued));
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

// ---- park_commit(): the commit runs once the waiter has switched out ----

// A slot for one waiter guarded by a lock the waiter's commit releases: the
// shape of a channel's queue (sync/channel.h).
struct locked_slot {
  std::atomic<bool> locked{false};
  control_block* waiter = nullptr;  // guarded by `locked`
  int tokens = 0;                   // guarded by `locked`

  void lock() {
    while (locked.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
  }
  void unlock() { locked.store(false, std::memory_order_release); }
  static void unlock_commit(void* self) { static_cast<locked_slot*>(self)->unlock(); }

  // Waits for a token. Parks with the lock held until it has switched out,
  // so a giver, who looks for it under the lock, always finds it parked.
  void take(bool inline_switch) {
    lock();
    if (tokens > 0) {
      --tokens;
      unlock();
      return;
    }
    control_block* self = current_waiter();
    waiter = self;
    if (inline_switch) {
      park_commit_inline(self, unlock_commit, this);
    } else {
      park_commit(self, unlock_commit, this);
    }
  }
  // Hands a token to the waiter if there is one (waking it with the
  // CAS-free unpark_sole()), else keeps it.
  void give() {
    lock();
    if (control_block* w = std::exchange(waiter, nullptr)) {
      unpark_sole(w);
    } else {
      ++tokens;
    }
    unlock();
  }
};

TEST(ParkTest, ParkCommitRunsTheCommitOnlyOnceTheFiberHasSwitchedOut) {
  spindle::run([] {
    struct observation {
      control_block* parker = nullptr;
      std::atomic<bool> committed{false};
      bool parked_at_commit = false;
      bool other_context_at_commit = false;
    } seen;
    fiber sleeper([&] {
      seen.parker = current_waiter();
      park_commit(
          seen.parker,
          [](void* arg) {
            auto* s = static_cast<observation*>(arg);
            s->parked_at_commit = s->parker->state_.load() == fiber_state::parked;
            s->other_context_at_commit = current_waiter() != s->parker;
            s->committed = true;
          },
          &seen);
    });
    spindle::test::yield_until([&] { return seen.committed.load(); });
    EXPECT_TRUE(seen.parked_at_commit);
    EXPECT_TRUE(seen.other_context_at_commit);
    unpark_sole(seen.parker);
    sleeper.join();
  });
}

TEST(ParkTest, ParkCommitUntilReturnsFalseAtTheDeadlineAndTrueWhenUnparked) {
  spindle::run([] {
    locked_slot slot;
    control_block* self = current_waiter();
    slot.lock();
    slot.waiter = self;
    EXPECT_FALSE(park_commit_until(self, std::chrono::steady_clock::now() + 2ms,
                                   locked_slot::unlock_commit, &slot));
    slot.lock();
    EXPECT_EQ(slot.waiter, self);  // nobody took it: withdraw it ourselves
    slot.waiter = nullptr;
    slot.unlock();

    std::atomic<bool> result{false};
    std::atomic<bool> registered{false};
    fiber f([&] {
      control_block* me = current_waiter();
      slot.lock();
      slot.waiter = me;
      registered = true;
      result = park_commit_until(me, std::chrono::steady_clock::now() + 1h,
                                 locked_slot::unlock_commit, &slot);
    });
    spindle::test::yield_until([&] { return registered.load(); });
    slot.lock();  // free only once f has switched out
    control_block* w = std::exchange(slot.waiter, nullptr);
    ASSERT_NE(w, nullptr);
    EXPECT_TRUE(unpark(w));  // a timed waiter: the CAS-claiming unpark
    slot.unlock();
    f.join();
    EXPECT_TRUE(result.load());
  });
}

TEST(ParkTest, APlainThreadParksWithACommitAndIsWokenByAFiber) {
  locked_slot slot;
  std::thread outsider;
  spindle::run([&] {
    outsider = std::thread([&] { slot.take(/*inline_switch=*/true); });
    slot.give();  // before or after the thread parks: either way it returns
    outsider.join();
  });
  EXPECT_EQ(slot.tokens, 0);
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

TEST_P(ParkStressTest, ParkCommitHandOffsAcrossWorkersNeitherLoseNorDuplicateAWake) {
  // Pairs pinned to different workers pass tokens through locked slots,
  // parking with park_commit() (inline switch and not) and waking with
  // unpark_sole(); plain threads join in. A wake that met a fiber not yet
  // switched out would resume it twice (the detector) or hang.
  const long rounds = scaled(20'000);
  const int pairs = 4;
  std::atomic<long> passes{0};
  std::vector<reentry_detector> detectors(2 * pairs);
  std::vector<locked_slot> slots(2 * pairs + 2);
  std::thread outsider;
  spindle::run(opts(), [&] {
    std::vector<fiber> fibers;
    for (int p = 0; p < pairs; ++p) {
      const int w1 = static_cast<int>((2 * p) % workers());
      const int w2 = static_cast<int>((2 * p + 1) % workers());
      locked_slot& to_pong = slots[2 * p];
      locked_slot& to_ping = slots[2 * p + 1];
      reentry_detector& d1 = detectors[2 * p];
      reentry_detector& d2 = detectors[2 * p + 1];
      const bool inline_switch = p % 2 == 0;
      fibers.emplace_back(spindle::fiber_options{.worker = w1, .pinned = true}, [&, rounds, inline_switch] {
        for (long i = 0; i < rounds; ++i) {
          to_pong.give();
          to_ping.take(inline_switch);
          d1.enter();
          passes.fetch_add(1, std::memory_order_relaxed);
          d1.leave();
        }
      });
      fibers.emplace_back(spindle::fiber_options{.worker = w2, .pinned = true}, [&, rounds, inline_switch] {
        for (long i = 0; i < rounds; ++i) {
          to_pong.take(inline_switch);
          d2.enter();
          passes.fetch_add(1, std::memory_order_relaxed);
          d2.leave();
          to_ping.give();
        }
      });
    }
    // A plain thread and a fiber, the same way.
    locked_slot& to_thread = slots[2 * pairs];
    locked_slot& to_fiber = slots[2 * pairs + 1];
    const long thread_rounds = rounds / 10;
    outsider = std::thread([&, thread_rounds] {
      for (long i = 0; i < thread_rounds; ++i) {
        to_thread.take(true);
        to_fiber.give();
      }
    });
    fibers.emplace_back([&, thread_rounds] {
      for (long i = 0; i < thread_rounds; ++i) {
        to_thread.give();
        to_fiber.take(false);
      }
    });
    for (auto& f : fibers) f.join();
    outsider.join();
  });
  EXPECT_EQ(passes.load(), 2 * pairs * rounds);
  for (auto& d : detectors) EXPECT_FALSE(d.doubled.load());
  for (auto& s : slots) {
    EXPECT_EQ(s.tokens, 0);
    EXPECT_EQ(s.waiter, nullptr);
  }
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
