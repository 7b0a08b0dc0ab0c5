// Parking and unparking: the one way anything in Spindle blocks. sync/ and
// io/ build every wait on the calls below; they never touch workers. Five
// make the basic protocol (current_waiter, prepare_park, park or
// cancel_park, unpark); the others are its variants: with a deadline
// (park_until), with a commit that runs once the fiber has switched out
// (park_commit and its inline and deadline forms), for a waker that alone
// can wake (unpark_sole), and with a choice of where the woken runs (wake).
//
// The basic protocol, for a waiter `self` (a fiber, or a plain thread's
// stand-in):
//
//   control_block* self = current_waiter();
//   prepare_park(self);              // from now on an unpark() may come
//   if (register self with the waited-for object succeeded)
//     park(self);                    // returns after exactly one unpark()
//   else
//     cancel_park(self);
//
// A waker that finds `self` registered calls unpark(self). unpark() may run
// before park() has even switched the fiber out; the state machine in
// fiber/detail/control_block.h turns that into "runnable at once" rather
// than a lost wakeup, and a second unpark() of the same park returns false
// rather than resuming the fiber twice. Spurious returns do not happen:
// park() returns because of an unpark() (or, for park_until, the deadline).
// It is the waker's job to unpark only a waiter it found registered for the
// current park (typically: it removed it from a queue under a lock).
#pragma once

#include <chrono>

#include "fiber/detail/control_block.h"
#include "fiber/detail/inline_switch.h"

namespace spindle::detail {

// current_waiter() is the running fiber, or on a plain thread a per-thread
// stand-in through which that thread blocks. Any thread.
control_block* current_waiter() noexcept;

// prepare_park() declares that `self` is about to park. `self` must be
// current_waiter() and running.
void prepare_park(control_block* self) noexcept;

// cancel_park() takes back prepare_park(), consuming an unpark() that may
// already have come.
void cancel_park(control_block* self) noexcept;

// park() suspends `self` until unpark(self). A fiber gives its worker to
// other fibers; a plain thread blocks.
void park(control_block* self) noexcept;

// park_until() is park() with a deadline: returns true when unparked, false
// when the deadline passed first (then nobody's unpark() of this park can
// succeed any more).
bool park_until(control_block* self, std::chrono::steady_clock::time_point deadline) noexcept;

// Cancellation. A fiber may observe a stop token (control_block::stop_:
// spindle::jthread's, or fiber_options::stop_token). A wait made with
// cancel_point::yes then also ends, as if its deadline had passed, when
// stop is requested on that token (at once if it already was): the park
// returns false, and the caller, seeing stop_requested(self), reports
// operation_canceled instead of a timeout. Only waits whose callers
// handle a false return may be cancel points; time_point::max() is a
// deadline that never passes. A stop and a wake that race give one of the
// two results, never both. On a plain thread cancel_point::yes changes
// nothing.
enum class cancel_point : bool { no, yes };
bool park_until(control_block* self, std::chrono::steady_clock::time_point deadline,
                cancel_point cp) noexcept;
// Whether waits of `self` can be cancelled (a fiber with a stop token that
// can be stopped), and whether stop was requested.
inline bool cancellable(const control_block* self) noexcept {
  return self->stop_ != nullptr && self->stop_->stop_possible();  // never a plain thread's
}
inline bool stop_requested(const control_block* self) noexcept {
  return self->stop_ != nullptr && self->stop_->stop_requested();
}

// park_commit() is park() without prepare_park(), for waits whose every
// waker finds the waiter in a place the waiter registers in under a lock
// (a channel's queues): the waiter registers while it holds that lock,
// and commit(arg) releases the lock once the fiber has switched out (Go's
// gopark with an unlock function). No waker can then meet it half
// switched out, so publishing "parked" is a plain store rather than a
// compare-and-swap. `self` must be current_waiter() and running; commit
// runs on the worker, after the switch (on a plain thread: before it
// blocks) and must not block.
void park_commit(control_block* self, void (*commit)(void*), void* arg) noexcept;

// park_commit_begin() and park_end() are park_commit() in two halves
// around a switch the caller makes itself, inline in its own frame (see
// yield() in fiber/this_fiber.h for why that pays): park_commit_inline().
struct switch_target {
  void* ctx = nullptr;  // null: already parked and woken, nothing to do
  void* cb = nullptr;
};
switch_target park_commit_begin(control_block* self, void (*commit)(void*), void* arg) noexcept;
void park_end(void* from_ctx) noexcept;

[[gnu::always_inline]] inline void park_commit_inline(control_block* self, void (*commit)(void*),
                                                      void* arg) noexcept {
#if SPINDLE_INLINE_SWITCH
  const switch_target t = park_commit_begin(self, commit, arg);
  if (t.ctx != nullptr) park_end(jump_inline(t.ctx, t.cb).fctx);
#else
  park_commit(self, commit, arg);
#endif
}

// park_commit_until() is park_commit() with a deadline: true when
// unparked, false when the deadline passed first.
bool park_commit_until(control_block* self, std::chrono::steady_clock::time_point deadline,
                       void (*commit)(void*), void* arg,
                       cancel_point cp = cancel_point::no) noexcept;

// parallel_workers() tells whether the caller is a fiber of a runtime with
// more than one worker (so another fiber may be running at this moment),
// or a plain thread: the condition under which spinning on a lock can pay.
bool parallel_workers() noexcept;

// An asymmetric fence, for a fast path that orders itself with plain
// stores and a slow path that pays for both (the biased mutex, sync/; a
// one-worker runtime's queues, worker::share()). process_fence_available()
// is whether membarrier(2)'s private expedited command works here (Linux
// 4.14 and later, unless a seccomp filter forbids it), registering it the
// first time (the registration survives fork()). process_wide_fence()
// makes every running thread of the process execute a full memory fence;
// only after process_fence_available() said true. Any thread.
bool process_fence_available() noexcept;
void process_wide_fence() noexcept;

// run_active() tells whether a spindle::run() runtime is running (one that
// waits for all its fibers before it returns). Any thread.
bool run_active() noexcept;

// unpark() wakes a waiter between prepare_park() and the return of its
// park(): returns true if this call woke it, false if it was not parking
// or someone else already woke it. A fiber is made runnable on the worker
// it parked on. Any thread, including plain threads outside the runtime.
bool unpark(control_block* waiter) noexcept;

// unpark_sole() is unpark() for a waiter that park_commit() parked
// without a deadline and that nobody but the caller can wake (the caller
// found it under the lock the commit released, and took it out from
// there): the transition to runnable is a plain store, not a
// compare-and-swap. Always wakes it.
void unpark_sole(control_block* waiter) noexcept;

// note_wait() records what `self` is about to park on, for the fiber dump
// and the deadlock check (sched/debug.h): the reason, the object's
// address, and a number that goes with it (a descriptor, a fiber id, a
// count of channels). Call it just before the park, after any other wait
// that could come first; a park that follows no note_wait() shows as
// "unknown" (the park functions clear the reason once the fiber
// resumes). Costs a few stores; a plain thread's call does nothing.
//
// The start of the wait is the worker's last clock reading: within ~100 us
// of the truth while the worker switches, older when the fiber computed a
// while first (the worker thread keeps it in tls_coarse_now, so the note
// costs no clock read).
extern thread_local constinit std::int64_t tls_coarse_now __attribute__((tls_model("initial-exec")));
inline void note_wait(control_block* self, wait_reason reason, const void* object,
                      std::int64_t arg = 0) noexcept {
  if (self->is_thread_) return;
  if (self->outer_reason_ != wait_reason::none) [[unlikely]] {
    reason = self->outer_reason_;
    object = self->outer_object_;
    arg = 0;
  }
  self->wait_seq_.store(self->wait_seq_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
  self->wait_reason_.store(reason, std::memory_order_relaxed);
  self->wait_object_.store(object, std::memory_order_relaxed);
  self->wait_arg_.store(arg, std::memory_order_relaxed);
  self->wait_since_.store(tls_coarse_now, std::memory_order_relaxed);
  // wait_deadline_ is 0 but while a timed park lasts (park_commit_until).
}

// outer_wait names the waits made inside its scope by an outer reason (a
// future is a condition variable inside, but a dump should say "future").
// On a plain thread it does nothing.
class outer_wait {
 public:
  outer_wait(wait_reason reason, const void* object) noexcept : self_(tls_current_fiber) {
    if (self_ != nullptr && self_->outer_reason_ == wait_reason::none) {
      self_->outer_reason_ = reason;
      self_->outer_object_ = object;
    } else {
      self_ = nullptr;  // nested: the outermost names it
    }
  }
  ~outer_wait() {
    // Not self_->...: the fiber may have moved to another thread, but the
    // control block is the same one.
    if (self_ != nullptr) self_->outer_reason_ = wait_reason::none;
  }
  outer_wait(const outer_wait&) = delete;
  outer_wait& operator=(const outer_wait&) = delete;

 private:
  control_block* self_;
};

// Where a woken fiber goes in its new worker's queues.
enum class wake_order : bool {
  // Behind the fibers already runnable there (for a waker about to
  // finish, such as the last act of a joined fiber, or the netpoller).
  queued,
  // Next: it runs on the waker's worker as soon as the waker blocks, and
  // is not stolen meanwhile (what unpark() does: a fiber that wakes
  // another and waits for its answer keeps the pair on one worker).
  next,
};

// wake() is unpark() with a choice of wake_order.
bool wake(control_block* waiter, wake_order order) noexcept;

}  // namespace spindle::detail
