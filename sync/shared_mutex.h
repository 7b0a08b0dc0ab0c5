// spindle::shared_mutex and shared_timed_mutex: std's reader/writer locks
// for fibers.
#pragma once

#include <chrono>
#include <cstdint>

#include "fiber/thread_annotations.h"
#include "fiber/clock.h"
#include "sync/detail/wait_queue.h"

namespace spindle {

// shared_mutex is std::shared_mutex for fibers: many readers
// (lock_shared) or one writer (lock); waiting parks the fiber. Writers are
// preferred: once a writer waits, new readers wait behind it, so a stream
// of readers cannot starve writers. On release the lock is handed over
// directly (to the next writer, else to every waiting reader). Works with
// std::unique_lock and std::shared_lock. Any fiber or thread. For clang's
// -Wthread-safety it is a capability, held shared by lock_shared().
//
// Destruction: as std's, a shared_mutex may be destroyed once it is
// unlocked and no fiber waits for it, even before the unlock() or
// unlock_shared() that released it has returned (that call's last touch is
// the store that frees the internal lock, which a fiber it handed the mutex
// to, or any later taker, must take first). Destroying it while fibers wait
// in lock() or lock_shared() is undefined, and is caught while a
// spindle::run() runtime runs (see sync/detail/misuse.h): the destructor
// aborts with "spindle: shared_mutex 0x... destroyed while fibers wait on
// it (N readers, M writers); unlock it and let them leave first" (otherwise
// they would stay parked for ever, and spindle::run() would wait for them).
// The check costs the destructor one uncontended lock. Destroying it while
// it is held and nobody waits is undefined too, and not checked.
class SPINDLE_CAPABILITY("shared_mutex") shared_mutex {
 public:
  shared_mutex() = default;
  shared_mutex(const shared_mutex&) = delete;
  shared_mutex& operator=(const shared_mutex&) = delete;
  ~shared_mutex() {
    lock_.lock();
    const bool waited = !readers_.empty() || !writers_.empty();
    lock_.unlock();
    if (waited) [[unlikely]] report_waited_on();
  }

  void lock() SPINDLE_ACQUIRE() { (void)acquire_exclusive(nullptr); }
  [[nodiscard]] bool try_lock() noexcept SPINDLE_TRY_ACQUIRE(true) {
    return try_acquire_exclusive();
  }
  void unlock() noexcept SPINDLE_RELEASE() { release_exclusive(); }

  void lock_shared() SPINDLE_ACQUIRE_SHARED() { (void)acquire_shared(nullptr); }
  [[nodiscard]] bool try_lock_shared() noexcept SPINDLE_TRY_ACQUIRE_SHARED(true) {
    return try_acquire_shared();
  }
  void unlock_shared() noexcept SPINDLE_RELEASE_SHARED() { release_shared(); }

 protected:
  bool lock_until(const std::chrono::steady_clock::time_point* deadline) noexcept
      SPINDLE_TRY_ACQUIRE(true) {
    return acquire_exclusive(deadline);
  }
  bool lock_shared_until(const std::chrono::steady_clock::time_point* deadline) noexcept
      SPINDLE_TRY_ACQUIRE_SHARED(true) {
    return acquire_shared(deadline);
  }

 private:
  friend struct detail::waiter_census;

  // The implementation lies in these functions, outside the annotated ones
  // above, because clang does not check the body of a function annotated
  // as taking or releasing a capability, and these touch what lock_
  // guards. The acquires wait for ever with a null deadline (and return
  // true); false when the deadline passed first.
  bool acquire_exclusive(const std::chrono::steady_clock::time_point* deadline) noexcept
      SPINDLE_EXCLUDES(lock_);
  bool acquire_shared(const std::chrono::steady_clock::time_point* deadline) noexcept
      SPINDLE_EXCLUDES(lock_);
  bool try_acquire_exclusive() noexcept SPINDLE_EXCLUDES(lock_);
  bool try_acquire_shared() noexcept SPINDLE_EXCLUDES(lock_);
  void release_exclusive() noexcept SPINDLE_EXCLUDES(lock_);
  void release_shared() noexcept SPINDLE_EXCLUDES(lock_);

  [[gnu::cold]] void report_waited_on() noexcept SPINDLE_EXCLUDES(lock_);
  // Gives the lock to the next writer, else to all readers.
  void hand_off() noexcept SPINDLE_REQUIRES(lock_);
  // Parks in `list` (readers_ or writers_), letting go of lock_ meanwhile;
  // true when the lock was handed to us, false on timeout.
  bool wait_in(detail::wait_list& list, const std::chrono::steady_clock::time_point* deadline,
               bool writer) noexcept SPINDLE_REQUIRES(lock_);

  mutable detail::spinlock lock_;  // mutable: waiter_census counts under it
  detail::wait_list readers_ SPINDLE_GUARDED_BY(lock_);
  detail::wait_list writers_ SPINDLE_GUARDED_BY(lock_);
  bool writer_ SPINDLE_GUARDED_BY(lock_) = false;
  std::uint32_t readers_count_ SPINDLE_GUARDED_BY(lock_) = 0;
  std::uint32_t writers_waiting_ SPINDLE_GUARDED_BY(lock_) = 0;
};

// shared_timed_mutex adds the timed forms, as std::shared_timed_mutex.
// Destruction: as shared_mutex's; a waiter whose deadline passed touches
// it until its call returns.
class shared_timed_mutex : public shared_mutex {
 public:
  // The timed takes wait on steady_clock (_for; a duration too long to
  // add to now waits without a deadline) or give up only once the
  // deadline has passed on its own clock (_until, fiber/clock.h).
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout)
      SPINDLE_TRY_ACQUIRE(true) {
    return try_lock_until(detail::steady_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline)
      SPINDLE_TRY_ACQUIRE(true) {
    return detail::until_on_clock(deadline, [this](detail::steady_time d) { return lock_until(&d); });
  }
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& timeout)
      SPINDLE_TRY_ACQUIRE_SHARED(true) {
    return try_lock_shared_until(detail::steady_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_shared_until(const std::chrono::time_point<Clock, Duration>& deadline)
      SPINDLE_TRY_ACQUIRE_SHARED(true) {
    return detail::until_on_clock(deadline,
                                  [this](detail::steady_time d) { return lock_shared_until(&d); });
  }
};

}  // namespace spindle
