// spindle::counting_semaphore, binary_semaphore, latch, barrier: std's
// <semaphore>, <latch> and <barrier> for fibers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <utility>

#include "sync/condition_variable.h"
#include "sync/detail/misuse.h"
#include "sync/detail/parking_lot.h"
#include "sync/detail/wait_queue.h"

namespace spindle {

namespace detail {
[[noreturn]] inline void sync_misuse(const char* message) noexcept {
  std::fprintf(stderr, "spindle: %s\n", message);
  std::abort();
}

// A counter that waiters take from; the core of counting_semaphore.
//
// state_ holds the count (low 32 bits) and how many waiters are parked or
// about to park (high 32 bits), so that release() learns from its own
// atomic add whether anyone may need a wake, and otherwise touches nothing
// more: the acquirer it let through may destroy the semaphore at once (a
// binary_semaphore on a fiber's stack signalled by another fiber). Wakes go
// through the parking lot, keyed by the address, which likewise never
// touches the semaphore (parking_lot.h). glibc's sem_t packs its value and
// waiter count the same way, and so has the same 2^31 - 1 limit.
class semaphore_core {
 public:
  static constexpr std::ptrdiff_t max_count = 0x7fff'ffff;

  constexpr explicit semaphore_core(std::ptrdiff_t initial) noexcept
      : state_(static_cast<std::uint64_t>(initial)) {}

  bool try_acquire() noexcept {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    while ((s & count_mask) != 0) {
      if (state_.compare_exchange_weak(s, s - 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // acquire_until(nullptr) waits for ever.
  bool acquire_until(const std::chrono::steady_clock::time_point* deadline) noexcept {
    for (;;) {
      if (try_acquire()) return true;
      // Register as a waiter, but only while the count is zero: a release
      // that comes first makes this fail, and we try again; one that comes
      // after sees us.
      std::uint64_t s = state_.load(std::memory_order_relaxed);
      if ((s & count_mask) != 0 ||
          !state_.compare_exchange_weak(s, s + one_waiter, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
        continue;
      }
      const park_result r = park_on(
          this, [this] { return (state_.load(std::memory_order_relaxed) & count_mask) == 0; },
          deadline);
      state_.fetch_sub(one_waiter, std::memory_order_relaxed);
      if (r == park_result::timeout) return try_acquire();
    }
  }

  void release(std::ptrdiff_t update) noexcept {
    if (update == 0) return;
    if (update > max_count) sync_misuse("counting_semaphore::release: the count would pass max()");
    const std::uint64_t before =
        state_.fetch_add(static_cast<std::uint64_t>(update), std::memory_order_release);
    if (static_cast<std::ptrdiff_t>(before & count_mask) > max_count - update) {
      sync_misuse("counting_semaphore::release: the count would pass max()");
    }
    // Not one more touch of *this from here.
    if ((before >> 32) != 0) (void)unpark_address(this, static_cast<std::size_t>(update));
  }

  // The destructor's check (counting_semaphore, "Destruction"): one load.
  void abort_if_waited_on(const void* object) const noexcept {
    const auto waiters = static_cast<std::size_t>(state_.load(std::memory_order_acquire) >> 32);
    if (waiters != 0) [[unlikely]] {
      destroyed_while_waited_on("counting_semaphore", object, {waiters, "waiters"}, {},
                                "let their acquire() calls return first");
    }
  }

 private:
  static constexpr std::uint64_t count_mask = 0xffff'ffff;
  static constexpr std::uint64_t one_waiter = std::uint64_t{1} << 32;

  std::atomic<std::uint64_t> state_;
};

// The core of a counting_semaphore whose LeastMaxValue does not fit the
// packed core's 31 bits, up to PTRDIFF_MAX. The count takes 63 bits of
// state_, which leaves one bit to say that waiters may be parked, so
// release() still learns from its own add whether to wake anyone, and
// touches nothing of *this after it. The waiters themselves are counted
// in a second word that only they touch (glibc's 32-bit sem_t has the
// same shape): the last one out clears the bit. Being last is a guess
// (another waiter may come in between), so a waiter that finds it guessed
// wrong sets the bit again and wakes as many waiters as there are units,
// standing in for a release that saw no bit.
class wide_semaphore_core {
 public:
  static constexpr std::ptrdiff_t max_count = std::numeric_limits<std::ptrdiff_t>::max();

  constexpr explicit wide_semaphore_core(std::ptrdiff_t initial) noexcept
      : state_(static_cast<std::uint64_t>(initial)) {}

  bool try_acquire() noexcept {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    while ((s & count_mask) != 0) {
      if (state_.compare_exchange_weak(s, s - 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  bool acquire_until(const std::chrono::steady_clock::time_point* deadline) noexcept {
    if (try_acquire()) return true;
    // seq_cst on waiters_ and on the bit's set, clear and check: the last
    // waiter's clear and a newcomer's check of the bit are a Dekker pair.
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    bool acquired = false;
    for (;;) {
      if (try_acquire()) {
        acquired = true;
        break;
      }
      // Set the bit, but only while the count is zero: a release that
      // comes first makes this fail, and we try again; one that comes
      // after sees the bit.
      std::uint64_t s = state_.load(std::memory_order_relaxed);
      if ((s & count_mask) != 0) continue;
      if ((s & waiters_bit) == 0 &&
          !state_.compare_exchange_weak(s, s | waiters_bit, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
        continue;
      }
      const park_result r = park_on(
          this,
          [this] {
            // A last waiter's guess may have cleared the bit: then do not
            // park, set it again.
            return state_.load(std::memory_order_seq_cst) == waiters_bit;
          },
          deadline);
      if (r == park_result::timeout) {
        acquired = try_acquire();
        break;
      }
    }
    stop_waiting();
    return acquired;
  }

  void release(std::ptrdiff_t update) noexcept {
    if (update == 0) return;
    const std::uint64_t before =
        state_.fetch_add(static_cast<std::uint64_t>(update), std::memory_order_release);
    if (static_cast<std::ptrdiff_t>(before & count_mask) > max_count - update) {
      sync_misuse("counting_semaphore::release: the count would pass max()");
    }
    // Not one more touch of *this from here.
    if ((before & waiters_bit) != 0) (void)unpark_address(this, static_cast<std::size_t>(update));
  }

  void abort_if_waited_on(const void* object) const noexcept {
    const auto waiters = static_cast<std::size_t>(waiters_.load(std::memory_order_acquire));
    if (waiters != 0) [[unlikely]] {
      destroyed_while_waited_on("counting_semaphore", object, {waiters, "waiters"}, {},
                                "let their acquire() calls return first");
    }
  }

 private:
  static constexpr std::uint64_t waiters_bit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t count_mask = waiters_bit - 1;

  void stop_waiting() noexcept {
    const std::uint64_t guess = waiters_.load(std::memory_order_seq_cst);
    if (guess == 1) state_.fetch_and(~waiters_bit, std::memory_order_seq_cst);
    const std::uint64_t before = waiters_.fetch_sub(1, std::memory_order_seq_cst);
    if (guess == 1 && before > 1) {
      // Another waiter came in: it may be parked behind a bit we cleared,
      // and a release since may have seen no bit.
      const std::uint64_t s = state_.fetch_or(waiters_bit, std::memory_order_seq_cst);
      if ((s & count_mask) != 0) {
        (void)unpark_address(this, static_cast<std::size_t>(s & count_mask));
      }
    }
  }

  std::atomic<std::uint64_t> state_;    // count, and waiters_bit
  std::atomic<std::uint64_t> waiters_{0};  // fibers inside acquire_until's loop
};
}  // namespace detail

// counting_semaphore is std::counting_semaphore for fibers: acquire()
// parks the calling fiber while the count is zero. Any fiber or thread.
//
// Destruction: a semaphore may be destroyed once no fiber is in a call on
// it. A release() does not touch it after the add that lets an acquirer
// through, so that acquirer may destroy it as soon as its acquire() returns
// (a binary_semaphore on its stack), even while the release() is still
// running. A woken acquirer does touch it until its own acquire() returns.
// Destroying it while fibers wait in acquire() is undefined, and is caught
// while a spindle::run() runtime runs (see sync/detail/misuse.h): it counts
// its waiters (for release()'s sake), so the destructor aborts with
// "spindle: counting_semaphore 0x... destroyed while fibers wait on it (N
// waiters); let their acquire() calls return first" (otherwise they would
// stay parked for ever, and spindle::run() would wait for them). The check
// is one load.
//
// Any LeastMaxValue up to PTRDIFF_MAX, as std's. Up to 2^31 - 1 (and by
// default) the count and the waiters share one word; past that the count
// takes 63 bits and a second word counts the waiters (wide_semaphore_core).
template <std::ptrdiff_t LeastMaxValue = detail::semaphore_core::max_count>
class counting_semaphore {
  static_assert(LeastMaxValue >= 0, "counting_semaphore: LeastMaxValue must not be negative");
  using core = std::conditional_t<(LeastMaxValue <= detail::semaphore_core::max_count),
                                  detail::semaphore_core, detail::wide_semaphore_core>;

 public:
  static constexpr std::ptrdiff_t max() noexcept { return LeastMaxValue; }

  // `desired` must lie in [0, max()] (std's precondition; aborts otherwise).
  // constexpr, as std's: a constinit global semaphore needs no
  // initialization at run time.
  constexpr explicit counting_semaphore(std::ptrdiff_t desired) noexcept : core_(checked(desired)) {}
  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;
  ~counting_semaphore() { core_.abort_if_waited_on(this); }

  // release() adds `update` (>= 0) to the count and wakes as many waiters.
  // Passing max() is a caller bug (aborts), as std makes it a precondition.
  void release(std::ptrdiff_t update = 1) noexcept {
    if (update < 0) detail::sync_misuse("counting_semaphore::release: negative update");
    core_.release(update);
  }
  void acquire() noexcept { core_.acquire_until(nullptr); }
  [[nodiscard]] bool try_acquire() noexcept { return core_.try_acquire(); }
  // try_acquire_for() waits on steady_clock (a duration too long to add
  // to now: no deadline); try_acquire_until() gives up only once the
  // deadline has passed on its own clock (sched/clock.h).
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_acquire_until(detail::steady_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return detail::until_on_clock(deadline,
                                  [this](detail::steady_time d) { return core_.acquire_until(&d); });
  }

 private:
  static constexpr std::ptrdiff_t checked(std::ptrdiff_t desired) noexcept {
    if (desired < 0 || desired > LeastMaxValue) {
      detail::sync_misuse("counting_semaphore: initial count outside [0, max()]");
    }
    return desired;
  }

  core core_;
};

using binary_semaphore = counting_semaphore<1>;

// latch is std::latch for fibers: a single-use counter that wait() waits to
// see at zero.
//
// Destruction: a latch may be destroyed once no fiber is in a call on it.
// The count_down() that reaches zero does not touch it after its store,
// so a lone waiter (or a fiber that saw try_wait() true) may destroy it as
// soon as its wait() returns, even while that count_down() is still
// running; with several waiters, each woken one reads the count until its
// own wait() returns. Destroying it while fibers wait on it is undefined
// and is not detected: its waiters park by address in the parking lot
// (sync/detail/parking_lot.h), and the latch keeps no list or count of
// them. They would stay parked for ever, and spindle::run() with them.
class latch {
 public:
  static constexpr std::ptrdiff_t max() noexcept { return std::numeric_limits<std::ptrdiff_t>::max(); }
  explicit latch(std::ptrdiff_t expected) noexcept : count_(expected) {}
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  // count_down() lowers the counter; below zero is a caller bug (abort).
  void count_down(std::ptrdiff_t n = 1) noexcept {
    const std::ptrdiff_t now = count_.fetch_sub(n, std::memory_order_acq_rel) - n;
    if (now < 0) detail::sync_misuse("latch::count_down: counter below zero");
    // Not one more touch of *this from here: a waiter that sees zero may
    // destroy the latch at once (a latch on a fiber's stack).
    if (now == 0) (void)detail::unpark_address(this);
  }
  [[nodiscard]] bool try_wait() const noexcept {
    return count_.load(std::memory_order_acquire) == 0;
  }
  void wait() const noexcept {
    while (!try_wait()) {
      (void)detail::park_on(
          this, [this] { return count_.load(std::memory_order_relaxed) != 0; }, nullptr);
    }
  }
  void arrive_and_wait(std::ptrdiff_t n = 1) noexcept {
    count_down(n);
    wait();
  }

 private:
  std::atomic<std::ptrdiff_t> count_;
};

namespace detail {
struct no_completion {
  void operator()() noexcept {}
};
}  // namespace detail

// barrier is std::barrier for fibers: a reusable rendezvous of a fixed
// number of participants per phase; the completion function runs once per
// phase, on the last fiber to arrive, before any is released.
//
// A completion function that throws ends the process (std::terminate), as
// std's since LWG 3898: the phase cannot complete, and its waiters would
// wait for ever.
//
// Destruction: a barrier may be destroyed once no fiber is in a call on it:
// every wait() (and arrive_and_wait()) must have returned, since a released
// waiter takes the barrier's lock again on its way out. Destroying it while
// fibers wait for a phase to complete is undefined, and is caught while a
// spindle::run() runtime runs (see sync/detail/misuse.h): the destructor
// aborts with "spindle: barrier 0x... destroyed while fibers wait on it (N
// waiters); let the phase complete and their wait() calls return first"
// (otherwise they would stay parked for ever, and spindle::run() would wait
// for them). The check costs the destructor one uncontended lock; it cannot
// see a waiter already released but not yet returned.
template <class CompletionFunction = detail::no_completion>
class barrier {
 public:
  // An arrival_token names the phase it was handed out in.
  class arrival_token {
   public:
    arrival_token(arrival_token&&) noexcept = default;
    arrival_token& operator=(arrival_token&&) noexcept = default;

   private:
    friend class barrier;
    explicit arrival_token(std::uint64_t phase) noexcept : phase_(phase) {}
    std::uint64_t phase_;
  };

  static constexpr std::ptrdiff_t max() noexcept { return std::numeric_limits<std::ptrdiff_t>::max(); }

  // constexpr, as std's (for constinit globals).
  constexpr explicit barrier(std::ptrdiff_t expected, CompletionFunction f = CompletionFunction())
      : expected_(expected), remaining_(expected), completion_(std::move(f)) {}
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;
  ~barrier() { cv_.abort_if_waited_on("barrier", this); }

  [[nodiscard]] arrival_token arrive(std::ptrdiff_t n = 1) {
    std::unique_lock lock(mu_);
    const std::uint64_t phase = phase_;
    remaining_ -= n;
    if (remaining_ < 0) detail::sync_misuse("barrier::arrive: more arrivals than expected");
    if (remaining_ == 0) complete_phase();
    return arrival_token(phase);
  }
  void wait(arrival_token&& token) const {
    std::unique_lock lock(mu_);
    while (phase_ == token.phase_) cv_.wait(lock);
  }
  void arrive_and_wait() { wait(arrive()); }
  // arrive_and_drop() arrives and leaves: later phases expect one fewer.
  void arrive_and_drop() {
    std::unique_lock lock(mu_);
    --expected_;
    --remaining_;
    if (remaining_ == 0) complete_phase();
  }

 private:
  // Holds mu_. noexcept: a throwing completion reaches std::terminate.
  void complete_phase() noexcept {
    completion_();
    remaining_ = expected_;
    ++phase_;
    cv_.notify_all();
  }

  mutable mutex mu_;
  mutable detail::cv_core cv_;  // a condition variable on mu_
  std::ptrdiff_t expected_;   // guarded by mu_
  std::ptrdiff_t remaining_;  // guarded by mu_
  std::uint64_t phase_ = 0;   // guarded by mu_
  CompletionFunction completion_;
};

}  // namespace spindle
