// spindle::mutex, timed_mutex, recursive_mutex: std's mutexes for fibers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "fiber/thread_annotations.h"
#include "fiber/clock.h"
#include "sync/detail/lock_word.h"
#include "sync/detail/misuse.h"
#include "sync/detail/parking_lot.h"

namespace spindle {

// mutex is std::mutex for fibers: lock() parks the calling fiber (never its
// worker thread) while another holds the mutex, so thousands of fibers can
// contend for it on a few threads. It works across workers and from plain
// threads (which block). Same interface and semantics as std::mutex, so
// std::lock_guard, std::unique_lock and std::scoped_lock work with it:
//
//   spindle::mutex mu;
//   int counter = 0;  // guarded by mu
//   ...
//   { std::lock_guard lock(mu); ++counter; }
//
// For clang's -Wthread-safety it is a capability: lock(), try_lock() and
// unlock() say what they take and release, so fields may be declared
// guarded by it. (libstdc++'s std::lock_guard and std::unique_lock carry
// no annotations: code that wants its accesses checked takes the mutex
// through an annotated scoped lock.)
//
// Misuse that std leaves undefined is caught: lock() by the owner throws
// std::system_error(errc::resource_deadlock_would_occur) (a fiber would
// otherwise wait for itself forever), and unlock() by anyone but the owner
// aborts with a message. Waiters are woken in FIFO order, but a running
// fiber may take a just-released mutex before the woken one does (no
// hand-off), as with most mutexes: that keeps throughput up. Uncontended,
// lock() and unlock() cost one compare-and-swap and a plain store, and no
// locked instruction once the mutex is biased to the thread that keeps
// taking it (docs/sync.md, "Mutexes").
//
// Destruction: as std's, a mutex may be destroyed once it is unlocked and
// no fiber waits for it, even before the unlock() that released it has
// returned ("it is possible for another thread B to lock the same mutex,
// observe that it is no longer in use, unlock it, and destroy it, before
// thread A appears to have returned from its unlock call"): an unlock
// touches the mutex only until the store that lets it go
// (sync/detail/lock_word.h, "Destruction"). Destroying it while it is
// locked, or while fibers wait in lock(), is undefined, as std's, and is
// not detected: its waiters park by address in the parking lot
// (sync/detail/parking_lot.h), so the mutex keeps no list or count of them
// to check, and its destructor stays trivial. Such waiters would stay
// parked for ever (spindle::run() with them), or wake into freed memory
// when the holder unlocks.
class SPINDLE_CAPABILITY("mutex") mutex {
 public:
  constexpr mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  // lock() waits until the mutex is free and takes it. Any fiber or thread.
  void lock() SPINDLE_ACQUIRE() {
    if (!word_.try_acquire()) [[unlikely]] lock_slow();
    owner_.store(detail::current_id(), std::memory_order_relaxed);
  }
  // try_lock() takes the mutex if it is free now; never waits.
  [[nodiscard]] bool try_lock() noexcept SPINDLE_TRY_ACQUIRE(true) {
    if (!word_.try_acquire()) return false;
    owner_.store(detail::current_id(), std::memory_order_relaxed);
    return true;
  }
  // unlock() releases the mutex, which the caller must hold, and wakes a
  // waiter if there is one (the order of wakes is FIFO).
  void unlock() SPINDLE_RELEASE() {
    if (owner_.load(std::memory_order_relaxed) != detail::current_id()) [[unlikely]] {
      detail::sync_misuse("spindle::mutex::unlock: the caller does not own the mutex");
    }
    owner_.store(0, std::memory_order_relaxed);
    word_.release();
  }

 protected:
  void lock_slow();
  bool lock_until(std::chrono::steady_clock::time_point deadline) SPINDLE_TRY_ACQUIRE(true);
  void check_not_owner(const char* what) const;

  detail::lock_word word_;
  // The owner's id while locked, 0 otherwise; written by the owner, read
  // racily only to detect misuse.
  std::atomic<std::uint64_t> owner_{0};

 private:
  friend struct detail::waiter_census;
};

// timed_mutex adds try_lock_for() and try_lock_until(), as
// std::timed_mutex does. Destruction: as mutex's; a waiter whose deadline
// passed touches it until its call returns.
class timed_mutex : public mutex {
 public:
  // try_lock_for() waits on steady_clock; a duration too long to add to
  // now waits without a deadline.
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout)
      SPINDLE_TRY_ACQUIRE(true) {
    return lock_until(detail::steady_after(timeout));
  }
  // try_lock_until() gives up only once `deadline` has passed on its own
  // clock (see fiber/clock.h's until_on_clock).
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline)
      SPINDLE_TRY_ACQUIRE(true) {
    return detail::until_on_clock(deadline, [this](detail::steady_time d) { return lock_until(d); });
  }
};

// recursive_mutex may be locked again by its owner; it must be unlocked as
// many times. As std::recursive_mutex, with try_lock_for/until as in
// std::recursive_timed_mutex (also spelled recursive_timed_mutex here).
// Destruction: as mutex's (once unlocked as often as locked). For the
// thread-safety analysis it is a plain capability: clang cannot express
// taking it again while held.
class SPINDLE_CAPABILITY("mutex") recursive_mutex {
 public:
  constexpr recursive_mutex() noexcept = default;
  recursive_mutex(const recursive_mutex&) = delete;
  recursive_mutex& operator=(const recursive_mutex&) = delete;

  void lock() SPINDLE_ACQUIRE();
  [[nodiscard]] bool try_lock() noexcept SPINDLE_TRY_ACQUIRE(true);
  void unlock() SPINDLE_RELEASE();

  // The timed forms, as timed_mutex's.
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout)
      SPINDLE_TRY_ACQUIRE(true) {
    return lock_until(detail::steady_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline)
      SPINDLE_TRY_ACQUIRE(true) {
    return detail::until_on_clock(deadline, [this](detail::steady_time d) { return lock_until(d); });
  }

 private:
  friend struct detail::waiter_census;
  bool lock_until(std::chrono::steady_clock::time_point deadline) SPINDLE_TRY_ACQUIRE(true);

  detail::lock_word word_;
  std::atomic<std::uint64_t> owner_{0};
  std::uint32_t depth_ SPINDLE_GUARDED_BY(this) = 0;  // how many times the owner holds it
};

using recursive_timed_mutex = recursive_mutex;

}  // namespace spindle
