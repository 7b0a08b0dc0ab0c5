// spindle::blocking(): run a call that blocks (a regular file, DNS, a
// database driver) on the runtime's blocking pool while the calling fiber
// parks, so that the other fibers of its worker keep running.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include "sched/deadline.h"
#include "sched/detail/blocking_call.h"
#include "sched/detail/blocking_pool.h"

namespace spindle {

// blocking(f, args...) runs f(args...) on a thread of the runtime's
// blocking pool and parks the calling fiber until it returns; it returns
// what f returned, or rethrows what f threw. Meanwhile the fiber's worker
// runs other fibers: this is how to call anything that blocks its thread
// (a database driver, a regular file, a library that sleeps).
//
//   auto rows = spindle::blocking([&] { return db.query("select 1"); });
//
// f and args are used in place (not copied): the caller waits for the
// call, so references stay valid. The pool has at most
// options::blocking_threads threads (started on demand, retired after
// options::blocking_idle without work) and a queue of
// options::blocking_queue calls; callers beyond that park until there is
// room. Called on a plain thread (not a fiber), blocking() just calls
// f(args...).
//
// Cancellation: on a fiber that observes a stop token (spindle::jthread's,
// fiber_options::stop_token), a stop request while the call waits for a
// pool thread (or for room in the queue) takes it back, never started, and
// blocking() throws std::system_error with std::errc::operation_canceled
// (at once if stop was requested already). Once the call runs, it borrows
// the caller's frame (f and args are not copied, and typically capture
// locals by reference), so it cannot be left behind: blocking() waits for
// it and returns its result; the next cancellation point sees the stop.
// For a call that a stop abandons while it runs, use blocking_until() or
// blocking_for(), which own copies (a deadline of time_point::max() is
// none).
template <class F, class... Args>
auto blocking(F&& f, Args&&... args) -> std::invoke_result_t<F, Args...> {
  detail::blocking_pool* pool = detail::current_blocking_pool();
  if (pool == nullptr) return std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
  detail::borrowed_call<F, Args...> call(std::forward<F>(f), std::forward<Args>(args)...);
  // No deadline: done, or canceled before it started.
  if (pool->run(call) != detail::call_result::done) detail::throw_blocking_canceled();
  return call.result.take();
}

// blocking_until(deadline, f, args...) is blocking() with a deadline. A
// call still waiting for a pool thread at the deadline is not started; one
// already running is left to finish in the background, and its result (or
// exception) is dropped. Either way the caller gets std::system_error with
// std::errc::timed_out at the deadline. Because the call may outlive the
// caller's wait, f and args are copied (decayed, as std::thread does);
// anything they refer to must outlive the call itself, not just the wait.
//
// Cancellation: on a fiber that observes a stop token, a stop request ends
// the wait as the deadline does (a call not started never starts; a
// running one finishes in the background, its result dropped), but the
// caller gets std::system_error with std::errc::operation_canceled, not
// timed_out.
template <class Clock, class Duration, class F, class... Args>
auto blocking_until(const std::chrono::time_point<Clock, Duration>& deadline, F&& f, Args&&... args) {
  return detail::blocking_with_deadline(spindle::deadline(deadline).when(), std::forward<F>(f),
                                        std::forward<Args>(args)...);
}

// blocking_for(timeout, f, args...) is blocking_until(now + timeout, ...).
template <class Rep, class Period, class F, class... Args>
auto blocking_for(const std::chrono::duration<Rep, Period>& timeout, F&& f, Args&&... args) {
  return detail::blocking_with_deadline(spindle::deadline(timeout).when(), std::forward<F>(f),
                                        std::forward<Args>(args)...);
}

// A snapshot of the calling fiber's runtime's blocking pool.
struct blocking_pool_stats {
  std::size_t threads = 0;       // pool threads alive now
  std::size_t idle_threads = 0;  // of which waiting for work
  std::size_t peak_threads = 0;  // most threads alive at once so far
  std::size_t queued = 0;        // calls waiting for a thread
  std::size_t waiting_room = 0;  // calls waiting for room in the full queue
  std::size_t running = 0;       // calls running now (abandoned ones included)
  std::size_t completed = 0;     // calls run to the end so far
};

// blocking_stats() describes the pool of the calling fiber's runtime
// (all zeros on a plain thread, which has none).
blocking_pool_stats blocking_stats() noexcept;

}  // namespace spindle
