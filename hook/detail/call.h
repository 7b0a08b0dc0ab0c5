// How a hooked call that may block runs: the fiber's path (park on the
// netpoll) and the plain thread's (straight through, and a wait in
// poll(2) only where the hook made the file non-blocking behind the
// caller's back). Every transfer call of io_hooks.cpp is one transfer().
#pragma once

#include <cerrno>
#include <climits>
#include <cstddef>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "hook/detail/fd_table.h"
#include "hook/detail/real.h"
#include "hook/detail/real_calls.h"
#include "hook/detail/trace.h"
#include "sched/blocking.h"

namespace spindle::hook_detail {

// poll_wait() waits in poll(2), not parking: for a plain thread, and for
// a fiber on a descriptor the netpoll cannot take. 0 when ready, EAGAIN
// at the deadline. A signal does not end the wait (as SA_RESTART).
int poll_wait(int fd, io_direction dir, io_time_point deadline) noexcept;

// until: a blocking call on a byte stream goes on until all of it is
// done (a write, or a read with MSG_WAITALL) or an error or the deadline
// ends it, which a non-blocking one does not.
enum class until : bool { some, all };

// What transfer() returns, errno untouched, when the descriptor turned
// out not to be the file its slot was filled for: the caller forgets the
// slot (fd_table::forget()) and dispatches the call afresh.
inline constexpr ssize_t stale_slot = -2;

// transfer_rest() is the part of transfer() after a first attempt that
// failed with EAGAIN (`first` < 0) or moved `first` bytes of an
// until::all transfer. `saved` is errno before the call.
template <class Attempt>
[[gnu::noinline]] ssize_t transfer_rest(const char* name, int fd, fd_slot* s, io_direction dir, std::size_t total,
                                        until how, bool fiber, const void* caller, int saved, ssize_t first,
                                        std::uint32_t waits_before, Attempt attempt) noexcept {
  std::size_t done = first > 0 ? static_cast<std::size_t>(first) : 0;
  bool failed = first < 0;  // the last attempt said EAGAIN
  bool have_deadline = false;
  io_time_point deadline{};
  // The fiber's slow path holds an op (close() waits for it) and the
  // direction's lock (one waiter per direction on the netpoll), taken at
  // the first EAGAIN and held to the end.
  bool in_op = false;
  bool locked = false;
  bool unparkable = false;
  auto finish = [&](ssize_t result, int error) -> ssize_t {
    if (locked) s->unlock_direction(dir);
    if (in_op) s->leave();
    if (result < 0 && done > 0) result = static_cast<ssize_t>(done), error = 0;
    set_errno(result < 0 ? error : saved);
    return result;
  };
  for (;;) {
    if (!failed) {
      const ssize_t r = attempt(done);
      if (r >= 0) {
        if (how == until::some) return finish(r, 0);  // any success (accept's descriptor 0 too)
        if (r == 0) return finish(static_cast<ssize_t>(done), 0);  // end of stream
        done += static_cast<std::size_t>(r);
        if (done >= total) return finish(static_cast<ssize_t>(done), 0);
        continue;
      }
      const int e = get_errno();
      if (e != EAGAIN) return finish(-1, e);
    }
    failed = false;
    if (!have_deadline) {
      // The first wait of this call: is the slot still this file's?
      if (!s->still_same_file(fd)) {
        set_errno(saved);
        return stale_slot;
      }
      deadline = s->deadline(dir);
      have_deadline = true;
    }
    int w;
    if (!fiber || unparkable) {
      w = poll_wait(fd, dir, deadline);
    } else {
      if (!in_op) {
        if (!s->enter()) return finish(-1, EBADF);
        in_op = true;
      }
      if (!locked) {
        if (deadline == io_time_point::max()) {
          s->lock_direction(dir);
        } else if (!s->lock_direction_until(dir, deadline)) {
          return finish(-1, EAGAIN);
        }
        locked = true;
        if (s->closing()) return finish(-1, EBADF);
        // Another caller's wait may have consumed the edge of what came
        // since the attempt failed: then try again before parking.
        if (s->waits() != waits_before) continue;
      }
      w = s->wait(fd, dir, deadline, &unparkable);
      if (unparkable && tracing()) trace_unparked(name, fd, "the netpoll cannot watch it", caller);
    }
    if (w != 0) return finish(-1, w);
    if (dir == io_direction::write && total > 0 && fd_slot::kind_of(s->state()) == fd_kind::socket) {
      // A send that waited for room gets the error that ended the wait
      // (the peer reset the connection), as the kernel's blocking send
      // does, rather than what a new send would say first (EPIPE).
      // (connect() waits with total 0 and reads SO_ERROR itself.)
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) return finish(-1, err);
    }
  }
}

// transfer() runs one call that moves data (or accepts) as the blocking
// call would have run for the caller, with `attempt(done)` the
// non-blocking system call for what is left after `done` bytes (ssize_t,
// -1 and errno on failure). until::some returns the first success;
// until::all goes on to `total` bytes or the end of the stream, and a
// failure or the deadline after some bytes returns their count. On
// timeout (SO_RCVTIMEO, SO_SNDTIMEO) it fails with EAGAIN, as the kernel
// does. errno is as it was if the call succeeds. `fiber`: the caller's
// on_fiber() at entry; stale_slot when the descriptor is not the file
// its slot was filled for. The first attempt is inline; what follows a
// failed or short one is transfer_rest().
template <class Attempt>
inline ssize_t transfer(const char* name, int fd, fd_slot* s, io_direction dir, std::size_t total, until how,
                        bool fiber, const void* caller, Attempt attempt) noexcept {
  const int saved = errno;  // read before anything parks
  const std::uint32_t waits_before = s->waits();
  const ssize_t r = attempt(0);
  if (r >= 0) {
    if (how == until::some || r == 0 || static_cast<std::size_t>(r) >= total) return r;
  } else if (errno != EAGAIN) {
    return r;
  }
  return transfer_rest(name, fd, s, dir, total, how, fiber, caller, saved, r, waits_before, attempt);
}

// wait_ready() parks the calling fiber until `fd` is ready in `dir` (or
// hung up, or closed: the call that follows reports it), the way poll()
// does on a fiber (poll_hooks.cpp), level-triggered and registering
// nothing that outlives the wait.
void wait_ready(int fd, io_direction dir) noexcept;

// foreign_call() runs a call on a descriptor whose file the hook must
// not make non-blocking (a FIFO it did not see created): it waits until
// poll says the descriptor is ready, then calls. A read then returns what
// is there; a write of up to PIPE_BUF bytes fits in the room POLLOUT
// promises (a page). A larger write could block for more room: it runs
// on the blocking pool while the fiber parks.
template <class Call>
ssize_t foreign_call(int fd, io_direction dir, std::size_t total, Call call) noexcept {
  if (dir == io_direction::read || total <= PIPE_BUF) {
    wait_ready(fd, dir);
    return call();
  }
  const int saved = get_errno();
  int error = 0;
  ssize_t r;
  try {
    parked_scope parked;
    r = spindle::blocking([&] {
      const ssize_t x = call();
      error = errno;
      return x;
    });
  } catch (...) {  // the pool could not take it: block here
    return call();
  }
  set_errno(r < 0 ? error : saved);
  return r;
}

}  // namespace spindle::hook_detail
