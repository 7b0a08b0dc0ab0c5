// The scheduler's contract to io/: parking a fiber until a descriptor is
// ready. io/ includes this header and no sched/detail/ one; a particular
// implementation must define the functions below (today
// sched/detail/netpoll.cpp and sched/detail/fd_event.cpp do, on epoll and
// libev), as Go's runtime/netpoll.go asks of each platform's netpoll.
//
// Two ways to wait, for two kinds of descriptor:
//   - The netpoll, for a descriptor that io/ owns and one caller at a time
//     uses per direction (a socket, an adopted pipe): registered once,
//     edge-triggered, one epoll shared by the process; any worker may
//     collect its readiness and the woken fiber may run anywhere.
//   - wait_fd_ready(), for a descriptor that several callers wait on at
//     once (the signal pipe): a level-triggered wait in the loop of the
//     worker the caller runs on, nothing registered between waits.
// Every function may be called from a fiber (which parks) or a plain
// thread (which blocks in poll(2)), unless it says otherwise.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "fiber/detail/control_block.h"

namespace spindle::detail {

// on_fiber() says whether the caller runs on a fiber: false on a plain
// thread, a blocking-pool thread, and a worker in its own loop (libev's
// callbacks, the netpoll). One thread-local read: the test the hook
// layer (hook/) makes before anything else on every call it interposes.
inline bool on_fiber() noexcept { return tls_current_fiber != nullptr; }

// io_direction is the one encoding of "reading or writing" in io/ and in
// the scheduler's descriptor waits. The values index per-direction arrays.
enum class io_direction : std::uint8_t {
  read = 0,   // readable: data, end of stream, an error, a hang-up
  write = 1,  // writable: room in the send buffer, a connect's outcome
};
inline constexpr int direction_count = 2;
constexpr int direction_index(io_direction d) noexcept { return static_cast<int>(d); }

// io_wait_result is how a wait ends.
enum class io_wait_result : std::uint8_t {
  ready,        // an edge (level) came: retry the operation
  timed_out,    // the deadline passed first
  canceled,     // the descriptor is being closed (netpoll_cancel()), or the
                // waiting fiber's stop token was stopped (a cancellable wait)
  interrupted,  // netpoll_interrupt(): re-read the deadline and wait again
};

using io_time_point = std::chrono::steady_clock::time_point;
// A deadline shared with other fibers (a socket's own), as
// time_since_epoch().count(); no_io_deadline when there is none.
using io_deadline_rep = std::chrono::steady_clock::rep;
inline constexpr io_deadline_rep no_io_deadline = std::chrono::steady_clock::duration::max().count();

// ---- The netpoll ----

// One registered descriptor (sched/detail/netpoll.h); opaque to io/.
class poll_desc;

// netpoll_open() registers `fd`, non-blocking already (`watch_write`: for
// writability from the start, else from the first write wait); nullptr
// with errno set if epoll refuses it (EPERM for a regular file, which is
// always ready). A socket must be connected, connecting or listening by
// then: before, Linux reports it hung up, which the netpoll takes as final.
[[nodiscard]] poll_desc* netpoll_open(int fd, bool watch_write = false) noexcept;
// netpoll_close() unregisters it: after every waiter has left, before
// close(2).
void netpoll_close(poll_desc* pd) noexcept;
// netpoll_wait(), after the operation failed with EAGAIN, parks until an
// edge in `dir` (one that came since the last wait counts: none is lost
// between the EAGAIN and the wait), until the earlier of `deadline` and
// `*shared_deadline` (may be null; re-read after netpoll_interrupt()),
// or until netpoll_cancel(). At most one waiter per direction.
// With `cancellable`, the wait of a fiber that observes a stop token
// (fiber_options::stop_token, spindle::jthread) is a cancellation point:
// a stop request ends it with `canceled` (at once if stop was requested
// already), and an edge that races with the stop is either reported
// (ready) or kept for the next wait, never lost. io/'s socket calls pass
// true; the hook layer does not (a C library is not ready for ECANCELED).
io_wait_result netpoll_wait(poll_desc* pd, io_direction dir, io_time_point deadline,
                            const std::atomic<io_deadline_rep>* shared_deadline,
                            bool cancellable = false) noexcept;
// netpoll_cancel() wakes both waiters with `canceled`; every later wait
// returns it at once. For close(). Any thread.
void netpoll_cancel(poll_desc* pd) noexcept;
// netpoll_interrupt() wakes the waiter of `dir`, if any, with
// `interrupted` (its shared deadline changed). Any thread.
void netpoll_interrupt(poll_desc* pd, io_direction dir) noexcept;
// netpoll_ready_hint() says whether an edge in `dir` came since the last
// wait, or a final one (hang-up, error, end of stream) ever did: an
// operation tried now is likely not to block. A hint, read without a lock.
bool netpoll_ready_hint(const poll_desc* pd, io_direction dir) noexcept;
// netpoll_urgent_seen() says whether an edge ever reported TCP urgent data
// (a read may then stop short at the urgent mark). Sticky; a hint too.
bool netpoll_urgent_seen(const poll_desc* pd) noexcept;

// ---- Level-triggered waits ----

// wait_fd_ready() waits until `fd` is ready in `dir` (level-triggered: at
// once if it is now) or `deadline` passes: ready or timed_out. Any number
// of callers may wait on one fd; it must stay open until they return.
io_wait_result wait_fd_ready(int fd, io_direction dir, io_time_point deadline) noexcept;

}  // namespace spindle::detail
