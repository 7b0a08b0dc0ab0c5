// spindle::counting_semaphore and binary_semaphore: std's <semaphore> for
// fibers. latch and barrier are in sync/latch.h and sync/barrier.h.
#pragma once

#include <chrono>
#include <cstddef>
#include <type_traits>

#include "fiber/clock.h"
#include "sync/detail/misuse.h"
#include "sync/detail/semaphore_core.h"

namespace spindle {

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
  // deadline has passed on its own clock (fiber/clock.h).
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
  friend struct detail::waiter_census;

  static constexpr std::ptrdiff_t checked(std::ptrdiff_t desired) noexcept {
    if (desired < 0 || desired > LeastMaxValue) {
      detail::sync_misuse("counting_semaphore: initial count outside [0, max()]");
    }
    return desired;
  }

  core core_;
};

using binary_semaphore = counting_semaphore<1>;

}  // namespace spindle
