// The cores of counting_semaphore (sync/semaphore.h): a packed count and
// waiter count for LeastMaxValue up to 2^31 - 1, and a wider form past it.
// Internal.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "sync/detail/misuse.h"
#include "sync/detail/parking_lot.h"

namespace spindle::detail {

// Takes one unit from a count kept in the `count_mask` bits of `state`,
// if there is one. Both cores below keep theirs that way.
inline bool take_one_unit(std::atomic<std::uint64_t>& state, std::uint64_t count_mask) noexcept {
  std::uint64_t s = state.load(std::memory_order_relaxed);
  while ((s & count_mask) != 0) {
    if (state.compare_exchange_weak(s, s - 1, std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
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

  bool try_acquire() noexcept { return take_one_unit(state_, count_mask); }

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
          deadline, wait_reason::semaphore);
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

  bool try_acquire() noexcept { return take_one_unit(state_, count_mask); }

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
          deadline, wait_reason::semaphore);
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
}  // namespace spindle::detail
