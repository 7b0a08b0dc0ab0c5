// cv_core: the waiting core of condition_variable, condition_variable_any
// (sync/condition_variable.h) and barrier (sync/barrier.h). Internal.
#pragma once

#include <chrono>
#include <condition_variable>
#include <stop_token>
#include <type_traits>

#include "fiber/thread_annotations.h"
#include "fiber/clock.h"
#include "sync/detail/wait_queue.h"

namespace spindle::detail {

// Register as a waiter, release the caller's lock, park, re-take the lock.
// A notify that comes after the registration is never lost, even if it
// comes before the park.
class cv_core {
 public:
  // wait() and wait_until() return with `lock` held again. Not analyzed:
  // `lock` is any lockable (most often an unannotated std::unique_lock),
  // let go and taken again around the park.
  template <class Lock>
  void wait(Lock& lock) SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    queue_node node;
    waiters_.lock().lock();
    waiters_.enqueue(node, wait_reason::condition_variable);
    lock.unlock();
    waiters_.park_enqueued(node);
    lock.lock();
  }

  template <class Lock>
  std::cv_status wait_until(Lock& lock, std::chrono::steady_clock::time_point deadline)
      SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    queue_node node;
    waiters_.lock().lock();
    waiters_.enqueue(node, wait_reason::condition_variable);
    lock.unlock();
    const bool woken = waiters_.park_enqueued_until(node, deadline);
    lock.lock();
    return woken ? std::cv_status::no_timeout : std::cv_status::timeout;
  }

  // The same, also woken by a stop request on `stop` (std's stop_token
  // overloads of condition_variable_any): registered for the duration of
  // the wait, from before the caller's lock is let go, so a stop that
  // comes after the caller's last look at stop_requested() is not lost (a
  // stop already requested runs the callback in its constructor, here). A
  // stop wakes this waiter alone, and takes no notification from others;
  // it reports no_timeout, and the caller looks at the token.
  template <class Lock>
  std::cv_status wait_until(Lock& lock, std::chrono::steady_clock::time_point deadline,
                            const std::stop_token& stop) SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    queue_node node;
    waiters_.lock().lock();
    waiters_.enqueue(node, wait_reason::condition_variable);
    // Declared after `node`, so destroyed first: its destructor waits for
    // a callback running on another thread, which uses the node.
    std::stop_callback<stop_waker> on_stop(stop, stop_waker{&waiters_, &node});
    lock.unlock();
    bool woken = true;
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      waiters_.park_enqueued(node);
    } else {
      woken = waiters_.park_enqueued_until(node, deadline);
    }
    lock.lock();
    return woken ? std::cv_status::no_timeout : std::cv_status::timeout;
  }

  void notify_one() noexcept;
  void notify_all() noexcept;

  // The destructors' check (condition_variable, "Destruction"): aborts,
  // naming `what` at `object`, if fibers still wait here. One uncontended
  // lock; nothing on the wait and notify paths.
  void abort_if_waited_on(const char* what, const void* object) noexcept {
    waiters_.lock().lock();
    const bool waited = waiters_.has_waiters();
    waiters_.lock().unlock();
    if (waited) [[unlikely]] report_waited_on(what, object);
  }

  // How many wait here now (for tests: waiter_census.h).
  std::size_t count_waiters() const noexcept { return waiters_.count_waiters(); }

 private:
  [[gnu::cold]] void report_waited_on(const char* what, const void* object) noexcept;

  // A stop request's callback: wakes its waiter as a notify would.
  struct stop_waker {
    wait_queue* queue;
    queue_node* node;
    void operator()() const noexcept {
      queue->lock().lock();
      queue_node* woken = queue->wake_queued(*node);
      queue->lock().unlock();
      wait_queue::release(woken);  // the last touch: the waiter may return now
    }
  };

  wait_queue waiters_;
};

// cv_wait_until() is a condition variable's wait_until on any clock: one
// wait until the steady_clock estimate of `t`; if that estimate passed but
// `Clock` has not reached `t` (a slower clock, or one stepped back), it
// returns no_timeout, a spurious wake-up, which a waiter handles by
// waiting again (as libstdc++ does): timeout means Clock::now() >= t.
// `extra` goes on to core.wait_until() (a stop token).
template <class Core, class Lock, class Clock, class Duration, class... Extra>
std::cv_status cv_wait_until(Core& core, Lock& lock, const std::chrono::time_point<Clock, Duration>& t,
                             const Extra&... extra) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return core.wait_until(lock, until_on_steady(t), extra...);
  } else {
    const auto now = Clock::now();
    if (core.wait_until(lock, steady_after(t - now), extra...) == std::cv_status::no_timeout) {
      return std::cv_status::no_timeout;
    }
    return Clock::now() < t ? std::cv_status::no_timeout : std::cv_status::timeout;
  }
}

}  // namespace spindle::detail
