// Parking and unparking: the one way anything in Spindle blocks. sync/ and
// io/ build every wait on these five calls; they never touch workers.
//
// The protocol, for a waiter `self` (a fiber, or a plain thread's stand-in):
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

// parallel_workers() tells whether the caller is a fiber of a runtime with
// more than one worker (so another fiber may be running at this moment),
// or a plain thread: the condition under which spinning on a lock can pay.
bool parallel_workers() noexcept;

// unpark() wakes a waiter between prepare_park() and the return of its
// park(): returns true if this call woke it, false if it was not parking
// or someone else already woke it. A fiber is made runnable on the worker
// it parked on. Any thread, including plain threads outside the runtime.
bool unpark(control_block* waiter) noexcept;

// wake() is unpark() with a choice: with `next`, a fiber woken by a fiber
// runs on the waker's worker as soon as the waker blocks, and is not
// stolen meanwhile (what unpark() does: a fiber that wakes another and
// waits for its answer keeps the pair on one worker); without, it queues
// behind the fibers already runnable there (for a waker about to finish,
// such as the last act of a joined fiber).
bool wake(control_block* waiter, bool next) noexcept;

}  // namespace spindle::detail
