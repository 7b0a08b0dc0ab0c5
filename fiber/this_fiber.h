// spindle::this_fiber: the calling fiber's view of itself, shaped like
// std::this_thread (and aliased as spindle::this_thread).
#pragma once

#include <chrono>
#include <stop_token>
#include <string_view>

#include "fiber/detail/inline_switch.h"
#include "fiber/fiber.h"
#include "fiber/clock.h"

namespace spindle::detail {
// The two out-of-line halves of yield()'s inline fast path: yield_begin()
// does everything before the switch and returns where to switch to (a null
// `ctx`: nowhere, carry on; on a plain thread it has yielded the thread);
// the switched-to context is `cb`'s. yield_end() is what the resumed
// fiber does right after, with the context that switched to it.
struct yield_target {
  void* ctx;
  void* cb;
};
yield_target yield_begin() noexcept;
void yield_end(void* from_ctx) noexcept;
// The whole yield, out of line (where the switch cannot be inline, and in
// sanitizer builds of the library, whose yield_begin() calls it).
void yield_slow() noexcept;
}  // namespace spindle::detail

namespace spindle::detail {
// this_fiber::sleep_until() without the cancel point: sleeps to the
// deadline even on a stopped fiber (for the hook's libc sleeps, whose
// callers would loop on an early return).
void sleep_until_uncancellable(std::chrono::steady_clock::time_point deadline);
}  // namespace spindle::detail

namespace spindle::this_fiber {

// get_id() is the calling fiber's id. On a plain thread (not a fiber) it is
// an id unique to that thread, drawn from the same sequence, so ported
// std::thread code that keys maps by this_thread::get_id() keeps working.
// Any thread.
fiber::id get_id() noexcept;

// get_name() is the name the calling fiber was given ("" if none, and on a
// plain thread). The view is valid while the fiber runs. Any thread.
std::string_view get_name() noexcept;

// yield() lets the worker run other runnable fibers (and poll timers and
// I/O if it is due) before this one continues. On a plain thread it is
// std::this_thread::yield(). Any thread.
//
// The switch itself is inline, in the caller's frame: the fiber resumed
// continues in its own caller straight from the switch, with no return
// through the scheduler's frames. Those returns would be predicted from
// the suspended fiber's call stack, and whenever two fibers yield from
// different places one of them mispredicts (bench/fiber/fiber_bench.cpp:
// BM_Yield, two different loops, against BM_YieldSameCode).
inline void yield() noexcept {
#if SPINDLE_INLINE_SWITCH
  const detail::yield_target t = detail::yield_begin();
  if (t.ctx != nullptr) detail::yield_end(detail::jump_inline(t.ctx, t.cb).fctx);
#else
  detail::yield_slow();
#endif
}

// ---- Cancellation ----
//
// A fiber may observe a stop token: a spindle::jthread's fiber observes its
// own, a plain fiber the one given in fiber_options::stop_token. Once stop
// is requested on it, the blocking calls Spindle makes for the fiber are
// cancellation points: each returns promptly with its failure form
// (errc::operation_canceled, or what its header says), and a call that
// would not have to wait still goes through. mutex lock() is not one (as
// in std), nor are wait_group, latch, barrier and semaphore waits, which
// have no failure form.

// get_stop_token() is the stop token the calling fiber observes: empty
// (stop_possible() false) for a fiber without one and on a plain thread.
// Any thread.
std::stop_token get_stop_token() noexcept;

// stop_requested() tells whether stop was requested on that token (false
// for a fiber without one, and on a plain thread). Any thread.
bool stop_requested() noexcept;

// sleep_until() parks the calling fiber until `deadline` has passed; it
// returns early only when stop is requested on the stop token the fiber
// observes (at once if it was already; a cancellation point, see above,
// whose failure form is the early return: check stop_requested()). A
// deadline in the past returns at once (without yielding). On a plain
// thread it is std::this_thread::sleep_until(). Any thread.
void sleep_until(std::chrono::steady_clock::time_point deadline);

// On another clock, it returns only once that clock says `deadline` has
// passed: a clock slower than steady_clock, or one stepped back, means
// sleeping again for what is left (std requires it; Boost.Fiber converts
// once and may return early).
template <class Clock, class Duration>
void sleep_until(const std::chrono::time_point<Clock, Duration>& deadline) {
  (void)detail::until_on_clock(deadline, [](detail::steady_time d) {
    sleep_until(d);
    return stop_requested();  // stopped: do not sleep again
  });
}

// sleep_for() parks the calling fiber for at least `duration` (or until a
// stop request, as sleep_until()); a duration too long to add to now
// sleeps for ever. Any thread.
template <class Rep, class Period>
void sleep_for(const std::chrono::duration<Rep, Period>& duration) {
  if (duration <= duration.zero()) return;
  sleep_until(detail::steady_after(duration));
}

// ---- Pinning (fiber only) ----
//
// A fiber may move between worker threads whenever it blocks or yields: an
// idle worker steals it, or the fiber that wakes it runs on another worker.
// Code that relies on the identity of the OS thread (a `thread_local`, a
// library with thread-affine state, thread-specific signal masks) must not
// see that move. Worse, a compiler may keep the address of a thread_local
// in a register across a call that blocks, so even re-reading it after the
// call can touch the old thread's copy. Use spindle::fiber_local for
// per-fiber state; pin the fiber where the OS thread matters.

// pin() keeps the calling fiber on its current worker thread until as many
// unpin() calls (pins nest, as Go's LockOSThread does). A pinned fiber is
// never stolen and is always woken on its worker. Throws std::system_error
// (errc::operation_not_permitted) when not called on a fiber.
void pin();

// unpin() undoes one pin(). Throws std::system_error
// (errc::operation_not_permitted) when not on a fiber, and
// (errc::invalid_argument) when the fiber is not pinned.
void unpin();

// is_pinned() tells whether the calling fiber is pinned (false on a plain
// thread). Any thread.
bool is_pinned() noexcept;

// worker_index() is the index of the worker running the calling fiber
// (0 .. workers-1), or -1 on a plain thread. It may change at any blocking
// call or yield unless the fiber is pinned. Any thread.
int worker_index() noexcept;

// pin_guard pins the calling fiber for its scope.
class pin_guard {
 public:
  pin_guard() { pin(); }
  ~pin_guard() { unpin(); }
  pin_guard(const pin_guard&) = delete;
  pin_guard& operator=(const pin_guard&) = delete;
};

}  // namespace spindle::this_fiber

namespace spindle {
// spindle::this_thread is spindle::this_fiber, as spindle::thread is
// spindle::fiber.
namespace this_thread = this_fiber;
}  // namespace spindle
