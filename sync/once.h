// spindle::once_flag and call_once: std::call_once for fibers.
#pragma once

#include <atomic>
#include <functional>
#include <utility>

namespace spindle {

namespace detail {
struct waiter_census;  // sync/detail/waiter_census.h
}  // namespace detail

// once_flag is std::once_flag for fibers: fibers that call call_once()
// while another runs the function park (not their worker) until it is done.
//
// Destruction: a once_flag may be destroyed once no fiber is in
// call_once() on it. The call that ran the function does not touch the
// flag after marking it done, so a caller that finds it done may destroy
// it at once (the flag of an object going away), even while that call is
// still returning; callers that were parked for the run read the flag
// until their own call_once() returns. Destroying it while a call_once()
// runs or waits on it is undefined and is not detected: waiters park by
// address in the parking lot (sync/detail/parking_lot.h), and the flag
// (4 bytes) keeps no count of them. They would stay parked for ever, and
// spindle::run() with them.
class once_flag {
 public:
  constexpr once_flag() noexcept = default;
  once_flag(const once_flag&) = delete;
  once_flag& operator=(const once_flag&) = delete;

 private:
  template <class F, class... Args>
  friend void call_once(once_flag& flag, F&& f, Args&&... args);
  friend struct detail::waiter_census;

  // Takes the right to run the function: true for the one caller that
  // must run it now; false once it has run (after waiting for a run in
  // progress).
  bool begin() noexcept;
  // The function returned (done) or threw (the next caller tries again).
  void end(bool done) noexcept;

  enum : int { idle = 0, running = 1, done_state = 2 };
  // Waiters park on its address (sync/detail/parking_lot.h).
  std::atomic<int> state_{idle};
};

// call_once() runs f(args...) once for `flag`, as std::call_once: if it
// throws, the exception propagates and a later call tries again; all calls
// return after a successful run, seeing its effects.
template <class F, class... Args>
void call_once(once_flag& flag, F&& f, Args&&... args) {
  if (flag.state_.load(std::memory_order_acquire) == once_flag::done_state) return;  // fast path
  if (!flag.begin()) return;
  try {
    std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
  } catch (...) {
    flag.end(false);
    throw;
  }
  flag.end(true);
}

}  // namespace spindle
