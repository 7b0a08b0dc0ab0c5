// spindle::condition_variable and condition_variable_any: std's condition
// variables for fibers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

#include "fiber/clock.h"
#include "sync/detail/at_exit.h"
#include "sync/detail/cv_core.h"
#include "sync/mutex.h"

namespace spindle {

// condition_variable_any works with any lock (anything with lock() and
// unlock(): spindle::timed_mutex, spindle::recursive_mutex held once,
// std::unique_lock<...> of those, std::shared_lock), as
// std::condition_variable_any does.
//
// The stop_token overloads of wait(), wait_until() and wait_for() are
// std's ([thread.condvarany.intwait]): for the duration of the call the
// waiter is also woken by a stop request on `stoken` (one that comes
// after its last look at stop_requested() included: it is not lost), and
// the call returns pred() once stop was requested (at once, without
// waiting, if it already was), true as soon as pred() holds, and for the
// timed forms pred() at the deadline. Any stop token works, the calling
// fiber's own (this_fiber::get_stop_token(), a jthread's) or another, on
// fibers and plain threads alike. A stop wakes only the waiters whose
// token it is; other waiters see no spurious wake-up.
//
//   spindle::jthread worker([&](std::stop_token st) {
//     std::unique_lock lock(mu);
//     while (cv.wait(lock, st, [&] { return !jobs.empty(); })) run(pop(jobs), lock);
//   });  // its destructor requests stop: the wait returns false
//
// Destruction: as condition_variable's (below).
class condition_variable_any {
 public:
  condition_variable_any() = default;
  condition_variable_any(const condition_variable_any&) = delete;
  condition_variable_any& operator=(const condition_variable_any&) = delete;
  ~condition_variable_any() { core_.abort_if_waited_on("condition_variable_any", this); }

  void notify_one() noexcept { core_.notify_one(); }
  void notify_all() noexcept { core_.notify_all(); }

  template <class Lock>
  void wait(Lock& lock) {
    core_.wait(lock);
  }
  template <class Lock, class Predicate>
  void wait(Lock& lock, Predicate pred) {
    while (!pred()) wait(lock);
  }
  // wait_until() returns timeout only once `deadline` has passed on its
  // own clock, which may run at another rate than steady_clock or be
  // stepped (see detail::cv_wait_until).
  template <class Lock, class Clock, class Duration>
  std::cv_status wait_until(Lock& lock, const std::chrono::time_point<Clock, Duration>& deadline) {
    return detail::cv_wait_until(core_, lock, deadline);
  }
  template <class Lock, class Clock, class Duration, class Predicate>
  bool wait_until(Lock& lock, const std::chrono::time_point<Clock, Duration>& deadline,
                  Predicate pred) {
    while (!pred()) {
      if (wait_until(lock, deadline) == std::cv_status::timeout) return pred();
    }
    return true;
  }
  // wait_for() waits on steady_clock; a duration too long to add to now
  // (duration::max()) waits without a deadline.
  template <class Lock, class Rep, class Period>
  std::cv_status wait_for(Lock& lock, const std::chrono::duration<Rep, Period>& timeout) {
    return core_.wait_until(lock, detail::steady_after(timeout));
  }
  template <class Lock, class Rep, class Period, class Predicate>
  bool wait_for(Lock& lock, const std::chrono::duration<Rep, Period>& timeout, Predicate pred) {
    return wait_until(lock, detail::steady_after(timeout), std::move(pred));
  }

  // ---- Interruptible waits (std's stop_token overloads) ----
  template <class Lock, class Predicate>
  bool wait(Lock& lock, std::stop_token stoken, Predicate pred) {
    while (!stoken.stop_requested()) {
      if (pred()) return true;
      (void)core_.wait_until(lock, std::chrono::steady_clock::time_point::max(), stoken);
    }
    return pred();
  }
  template <class Lock, class Clock, class Duration, class Predicate>
  bool wait_until(Lock& lock, std::stop_token stoken,
                  const std::chrono::time_point<Clock, Duration>& abs_time, Predicate pred) {
    while (!stoken.stop_requested()) {
      if (pred()) return true;
      if (detail::cv_wait_until(core_, lock, abs_time, stoken) == std::cv_status::timeout) {
        return pred();
      }
    }
    return pred();
  }
  template <class Lock, class Rep, class Period, class Predicate>
  bool wait_for(Lock& lock, std::stop_token stoken, const std::chrono::duration<Rep, Period>& rel_time,
                Predicate pred) {
    return wait_until(lock, std::move(stoken), detail::steady_after(rel_time), std::move(pred));
  }

 private:
  friend class condition_variable;
  friend struct detail::waiter_census;
  detail::cv_core core_;
};

// condition_variable is std::condition_variable for fibers, used with
// std::unique_lock<spindle::mutex>. wait() parks the calling fiber (or
// blocks a plain thread) and releases the mutex atomically with respect to
// notify_one()/notify_all(): a notification that comes after wait() has
// released the mutex is never lost. Waiters are woken in FIFO order.
// notify_*() may be called with or without the mutex held, from any fiber
// or thread. Unlike std's, wait() never wakes spuriously, but code should
// still wait in a loop on its condition (or use the predicate forms).
//
//   spindle::mutex mu;
//   spindle::condition_variable ready_cv;
//   bool ready = false;
//   ...
//   std::unique_lock lock(mu);
//   ready_cv.wait(lock, [&] { return ready; });
// (It is a condition_variable_any restricted to spindle::mutex.)
//
// Destruction: as std's, a condition variable may be destroyed once every
// fiber waiting on it has been notified, even before they have returned
// from wait() (they then need only their mutex): a woken waiter never
// touches the condition variable again, and neither does notify_*() once it
// has woken the last one. A wait that timed out touches it until it
// returns. Destroying it while fibers wait on it unnotified is undefined,
// as std's, and is caught while a spindle::run() runtime runs (see
// sync/detail/misuse.h): the destructor aborts with "spindle:
// condition_variable 0x... destroyed while fibers wait on it (N waiters);
// notify them first" (otherwise they would stay parked for ever, and
// spindle::run() would wait for them). The check costs the destructor one
// uncontended lock; it cannot see a timed-out waiter that has already left
// the queue but not yet returned.
class condition_variable {
 public:
  condition_variable() = default;
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;
  ~condition_variable() { any_.core_.abort_if_waited_on("condition_variable", this); }

  void notify_one() noexcept { any_.notify_one(); }
  void notify_all() noexcept { any_.notify_all(); }

  void wait(std::unique_lock<mutex>& lock) { any_.wait(lock); }
  template <class Predicate>
  void wait(std::unique_lock<mutex>& lock, Predicate pred) {
    any_.wait(lock, std::move(pred));
  }
  template <class Clock, class Duration>
  std::cv_status wait_until(std::unique_lock<mutex>& lock,
                            const std::chrono::time_point<Clock, Duration>& deadline) {
    return any_.wait_until(lock, deadline);
  }
  template <class Clock, class Duration, class Predicate>
  bool wait_until(std::unique_lock<mutex>& lock,
                  const std::chrono::time_point<Clock, Duration>& deadline, Predicate pred) {
    return any_.wait_until(lock, deadline, std::move(pred));
  }
  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<mutex>& lock,
                          const std::chrono::duration<Rep, Period>& timeout) {
    return any_.wait_for(lock, timeout);
  }
  template <class Rep, class Period, class Predicate>
  bool wait_for(std::unique_lock<mutex>& lock, const std::chrono::duration<Rep, Period>& timeout,
                Predicate pred) {
    return any_.wait_for(lock, timeout, std::move(pred));
  }

 private:
  friend struct detail::waiter_census;
  condition_variable_any any_;
};

// notify_all_at_thread_exit() keeps `lock` held until the calling fiber
// ends (on a plain thread: until the thread exits), then unlocks it and
// calls cv.notify_all(), as std's does for a thread: a fiber that finishes
// its part of shared state can let its joiners know after its fiber-local
// values are gone. Throws std::bad_alloc.
inline void notify_all_at_thread_exit(condition_variable& cv, std::unique_lock<mutex> lock) {
  detail::at_fiber_exit([&cv, held = std::move(lock)]() mutable {
    held.unlock();
    cv.notify_all();
  });
}

}  // namespace spindle
