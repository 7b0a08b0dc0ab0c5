// The netpoller: readiness of the descriptors io/ owns (its sockets),
// after Go's runtime/netpoll.go. io/ reaches it through the functions of
// sched/io_wait.h (netpoll_open() and the rest, defined in netpoll.cpp as
// calls of poll_desc's members). The contract io/ relies on:
//
//   - poll_desc::open(fd) registers a non-blocking fd once, edge-triggered
//     (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLET; EPOLLOUT is added by the
//     first wait for writing, one epoll_ctl in a connection's life, or at
//     once by open(fd, true)), with one epoll instance shared by the whole
//     process; close() unregisters it, and must come before close(2) and
//     after every waiter has left.
//   - A socket is registered only once it is connected, connecting or
//     listening (io/'s dial() after connect(2) has started, listen() after
//     listen(2)): before that Linux reports it hung up (tcp_poll in state
//     TCP_CLOSE, unix_poll for an unconnected stream socket), and an edge
//     with EPOLLHUP is taken as final (below).
//   - After an operation fails with EAGAIN, wait(dir) parks the caller
//     until an edge in that direction (data arrived, room freed, urgent
//     data, error, hang-up), the deadline, cancel() or interrupt(). An edge
//     that came while nobody waited is kept (ready_) and consumed by the
//     next wait, so none is lost between the EAGAIN and the wait.
//   - An edge with EPOLLHUP or EPOLLERR is final in both directions, one
//     with EPOLLRDHUP for reading: end of stream or the error is then there
//     to be read, and no further edge may come (a pipe's hang-up arrives as
//     EPOLLHUP alone, often in the very edge that brought the last bytes).
//     From then on ready_hint() is true for good, so a caller that would
//     skip an operation and wait, on the strength of what an earlier one
//     returned (io/'s read_drained), tries it instead. wait() itself does
//     not return at once for it: every wait follows an EAGAIN, which says
//     the operation would block after all (a named pipe with a new writer,
//     a datagram socket whose error was taken), and only a new edge changes
//     that; returning at once would spin.
//   - An edge with EPOLLPRI (TCP urgent data) sets urgent_seen() for good.
//   - At most one waiter per direction (io/ serializes readers, writers).
//
// Why not a libev ev_io per wait (the first design): libev is
// level-triggered, and a watcher stopped between waits makes libev drop
// the fd from its epoll when data arrives meanwhile and add it back at the
// next wait: two epoll_ctl calls per request (measured with strace on the
// echo server: 2.0 per round trip, and a third of its system time). Here
// registration is one epoll_ctl per connection.
//
// Every worker's libev loop watches the netpoll's epoll fd; whichever
// worker runs its loop first collects the edges (epoll_wait with no
// timeout) and makes their waiters runnable, on itself. Waiters hold no
// libev watcher, so any worker may wake them and they may run anywhere.
//
// poll_descs are never freed (like Go's pollCache): an edge collected by
// one worker just as another thread closes the descriptor must find valid
// memory. A generation number in the epoll data tells such a stale edge
// from a live one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "sched/detail/spin_lock.h"
#include "sched/io_wait.h"

namespace spindle::detail {

struct control_block;

class poll_desc {
 public:
  using result = io_wait_result;
  using time_point = io_time_point;
  using deadline_rep = io_deadline_rep;

  // open() registers `fd` (see above; with `watch_write`, for EPOLLOUT
  // from the start); nullptr (errno set) if epoll refuses it (EPERM for a
  // regular file, say). Any thread.
  static poll_desc* open(int fd, bool watch_write = false) noexcept;
  // close() unregisters the descriptor and recycles this object. Any
  // thread.
  void close() noexcept;

  // wait() as described above; the deadline is the earlier of `deadline`
  // and `*shared_deadline` (read after the wait is registered, so that an
  // interrupt() after a change is not missed; may be null). A fiber parks;
  // a plain thread polls the fd itself with poll(2), checking for cancel()
  // every 50 ms. With `cancellable`, a fiber's stop request ends the wait
  // with `canceled` (see netpoll_wait() in sched/io_wait.h).
  result wait(io_direction dir, time_point deadline, const std::atomic<deadline_rep>* shared_deadline,
              bool cancellable = false) noexcept;
  // cancel() wakes both waiters with `canceled`; later waits return it at
  // once. Any thread.
  void cancel() noexcept;
  // interrupt() wakes the waiter of `dir`, if any, with `interrupted`.
  void interrupt(io_direction dir) noexcept;

  // Whether an edge in `dir` came since the last wait, or a final one ever
  // did (a hint: an operation tried now is likely not to block). Read
  // without the lock: exact only for a caller whose last wait() (which
  // takes the lock) came after the edge.
  bool ready_hint(io_direction dir) const noexcept {
    return ready_[direction_index(dir)].load(std::memory_order_relaxed) ||
           final_[direction_index(dir)].load(std::memory_order_relaxed);
  }

  // Called by the worker that collected an edge for this descriptor.
  void deliver(std::uint32_t events, std::uint16_t gen) noexcept;
  // Prefetches what deliver() will touch of a waiting reader (a hint: read
  // without the lock).
  void prefetch_waiter() const noexcept;

  // Whether an edge ever reported urgent data (EPOLLPRI): a read then may
  // stop short at the urgent mark with more behind it. Sticky; read
  // without the lock, like ready_hint().
  bool urgent_seen() const noexcept { return urgent_.load(std::memory_order_relaxed); }

 private:
  poll_desc() = default;
  result wait_plain(io_direction dir, time_point deadline,
                    const std::atomic<deadline_rep>* shared_deadline) noexcept;
  // Releases the object to the pool (close() without the epoll_ctl, for a
  // descriptor epoll refused), in two halves close() does its work between.
  void recycle() noexcept;
  int recycle_begin() noexcept;
  void recycle_end() noexcept;
  void lock() noexcept SPINDLE_ACQUIRE(lock_) { lock_.lock(); }
  void unlock() noexcept SPINDLE_RELEASE(lock_) { lock_.unlock(); }
  void wake_locked(io_direction dir, result why) noexcept SPINDLE_REQUIRES(lock_);
  // An edge wakes the waiter of its direction, or is kept for the next.
  void edge_locked(io_direction dir) noexcept SPINDLE_REQUIRES(lock_);

  int fd_ = -1;
  spin_lock lock_;
  std::uint16_t gen_ SPINDLE_GUARDED_BY(lock_) = 0;  // bumped at every open and close
  // Guarded by lock_; wakers unpark while holding it, so a waiter that
  // retakes it after its park knows no wake of that park is still coming.
  // Atomic (relaxed) only so that netpoll_poll() may peek at them without
  // the lock, to prefetch the fibers it is about to wake.
  std::atomic<control_block*> waiter_[direction_count] = {nullptr, nullptr};
  result result_[direction_count] SPINDLE_GUARDED_BY(lock_) = {result::ready, result::ready};
  std::atomic<bool> ready_[direction_count] = {false, false};
  // Sticky (written under lock_, read without it by ready_hint()): a
  // final edge came, EPOLLRDHUP (read) or EPOLLHUP or EPOLLERR (both). End
  // of stream or the error is then there to be read with no further edge
  // to come. (A read that returned data may have left the end of stream of
  // the same edge behind it.)
  std::atomic<bool> final_[direction_count] = {false, false};
  // Sticky, likewise: an edge carried EPOLLPRI (see urgent_seen()).
  std::atomic<bool> urgent_{false};
  bool canceled_ = false;
  // Whether the fd is watched for EPOLLOUT (see wait()). Guarded by lock_.
  bool out_armed_ = false;
  poll_desc* next_free_ = nullptr;
};

// The netpoll's epoll fd, created at the first call. Any thread.
int netpoll_fd() noexcept;
// Collects up to `max` of the edges that are in, without blocking, and
// wakes their waiters; returns how many it took. Edges beyond `max` stay
// in the epoll ready list for the next poll (by this worker or another).
// Called from a worker's loop when the netpoll fd is readable, with `max`
// the room left in the worker's ring, so that readiness never overflows
// the ring into the shared queue: under a flood of ready connections the
// woken fibers then run in the order their edges came, and a connection
// waits at most one ring's worth of others (see docs/sched.md).
std::uint32_t netpoll_poll(std::uint32_t max) noexcept;
// Whether any descriptor is registered now (relaxed: a hint). Any thread.
bool netpoll_in_use() noexcept;
// How many descriptors are registered now (relaxed). Any thread.
std::size_t netpoll_descriptors() noexcept;

}  // namespace spindle::detail
