// A counting hand-off between fibers (and plain threads) built directly on
// sched/park.h, for tests of the park protocol: give() adds a token and
// wakes the waiter, take() waits for a token. One taker at a time (there is
// one waiter slot); any number of givers. A lost wakeup shows up as a
// take() that times out.
#pragma once

#include <atomic>
#include <chrono>

#include "sched/park.h"

namespace spindle::test {

class baton {
 public:
  void give() {
    tokens_.fetch_add(1, std::memory_order_release);
    if (detail::control_block* w = waiter_.exchange(nullptr, std::memory_order_acq_rel)) {
      detail::unpark(w);
    }
  }

  // take_untimed() waits without a deadline (so without a timer, which
  // keeps a parked fiber on its worker: a wake from another worker moves
  // the fiber there). A lost wakeup hangs, and the test's timeout fails it.
  void take_untimed() {
    for (;;) {
      if (try_take()) return;
      detail::control_block* self = detail::current_waiter();
      detail::prepare_park(self);
      waiter_.store(self, std::memory_order_seq_cst);
      if (tokens_.load(std::memory_order_seq_cst) > 0 &&
          waiter_.exchange(nullptr, std::memory_order_acq_rel) == self) {
        detail::cancel_park(self);
        continue;
      }
      detail::park(self);
    }
  }

  // taker_parked() tells whether a taker is parked in take_untimed() or
  // take() now: registered for give()'s wake and switched out (a plain
  // thread: registered), so that give() finds it parked rather than on its
  // way there (for tests of what a wake does to a parked fiber). Only
  // while no give() can run.
  bool taker_parked() const {
    const detail::control_block* w = waiter_.load(std::memory_order_acquire);
    if (w == nullptr) return false;
    // Safe while no give() runs (the caller's to ensure): until one comes,
    // the registered taker stays parking or parked, and alive.
    return w->is_thread_ ||
           w->state_.load(std::memory_order_acquire) == detail::fiber_state::parked;
  }

  // take() returns false if no token came within `patience` (a lost wakeup).
  bool take(std::chrono::seconds patience = std::chrono::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    for (;;) {
      if (try_take()) return true;
      detail::control_block* self = detail::current_waiter();
      detail::prepare_park(self);
      waiter_.store(self, std::memory_order_seq_cst);
      if (tokens_.load(std::memory_order_seq_cst) > 0) {
        // A token came meanwhile. Take back the registration; if a giver
        // already took it, its unpark is coming and must be consumed.
        if (waiter_.exchange(nullptr, std::memory_order_acq_rel) == self) {
          detail::cancel_park(self);
          continue;
        }
      }
      if (!detail::park_until(self, deadline)) {
        // Timed out: a wakeup was lost (or the giver is gone). Deregister,
        // so that no later unpark hits a later park.
        detail::control_block* expected = self;
        waiter_.compare_exchange_strong(expected, nullptr);
        return false;
      }
    }
  }

 private:
  bool try_take() {
    int t = tokens_.load(std::memory_order_acquire);
    while (t > 0) {
      if (tokens_.compare_exchange_weak(t, t - 1, std::memory_order_acq_rel)) return true;
    }
    return false;
  }

  std::atomic<int> tokens_{0};
  std::atomic<detail::control_block*> waiter_{nullptr};
};

}  // namespace spindle::test
