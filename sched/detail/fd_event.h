// fd_event: waiting for a file descriptor to become readable or writable
// through a libev ev_io in the loop of the worker the fiber parks on. io/'s
// own descriptors go through the netpoll instead (sched/detail/netpoll.h),
// and so does spindle::wait_readable() for a caller's (io/conn.cpp): this
// is for descriptors io/ keeps open itself (the signal pipe), which io/
// reaches through wait_fd_ready() (sched/io_wait.h).
//
// The contract, for io/:
//   - An fd_event watches one direction (read or write) of one fd. It is
//     created after the fd is opened and destroyed before it is closed,
//     and at most one fiber waits on it at a time (io/ serializes readers
//     and writers). The fd must be open for as long as a wait is in
//     progress: libev adds it to its epoll later, in the worker's loop, and
//     asserts if it is negative (ev_io_start) or closed by then (4.33's
//     epoll_modify on EBADF; the abort comes before any EV_ERROR reaches
//     a callback).
//   - wait() is called only after the operation returned EAGAIN. It parks
//     the calling fiber on a libev watcher in the loop of the worker it
//     runs on, until the fd is ready, the deadline passes, or cancel() or
//     interrupt() is called. Readiness is level-triggered: a wait started
//     while the fd is ready returns at once.
//   - cancel() is for close(): it wakes the waiter (canceled), and every
//     later wait() returns canceled without waiting. interrupt() wakes the
//     waiter so that it re-reads its deadline (Go's SetDeadline affecting a
//     blocked Read).
//
// Re-arming costs no system call: the watcher is started and stopped in
// user space; libev touches epoll only the first time the watcher is
// started in a given worker's loop (ev_io_set, which also makes a reused
// fd number safe) or when the mask changes (libev's epoll backend keeps
// the registered mask and skips an unchanged epoll_ctl).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "sched/io_wait.h"

namespace spindle::detail {

class fd_event {
 public:
  // ready: the fd is readable (writable); canceled: cancel() was called;
  // interrupted: interrupt() was, re-read the deadline and retry.
  using result = io_wait_result;
  using time_point = io_time_point;
  using deadline_rep = io_deadline_rep;  // time_since_epoch().count()

  fd_event(int fd, io_direction dir) noexcept;
  ~fd_event();
  fd_event(const fd_event&) = delete;
  fd_event& operator=(const fd_event&) = delete;

  // wait() waits as described above, until the earlier of `deadline` and
  // `*shared_deadline` (read after the wait is registered, so that an
  // interrupt() after a change cannot be missed; may be null). A fiber
  // parks; a plain thread blocks in poll(2), checking for cancel() every
  // 50 ms.
  result wait(time_point deadline, const std::atomic<deadline_rep>* shared_deadline) noexcept;

  // cancel() wakes the current waiter with `canceled`; every later wait()
  // returns `canceled` at once. Any thread.
  void cancel() noexcept;
  bool canceled() const noexcept { return canceled_.load(std::memory_order_acquire); }
  // interrupt() wakes the current waiter, if any, with `interrupted`. Any
  // thread.
  void interrupt() noexcept;

  struct wait_node;  // in worker.cpp

 private:
  result wait_plain(time_point deadline, const std::atomic<deadline_rep>* shared_deadline) noexcept;
  void wake_waiter(result why) noexcept;
  void lock() noexcept;
  void unlock() noexcept { lock_.store(false, std::memory_order_release); }

  // The ev_io watcher (libev stays out of headers; worker.cpp checks the
  // size).
  alignas(16) unsigned char io_[64];
  const int fd_;
  const io_direction dir_;
  // Worker loops this watcher has been started in since the fd was
  // opened (bit = worker index; see the comment at the top), and of which
  // runtime. Only the waiter touches them.
  std::uint64_t started_in_ = 0;
  const void* started_runtime_ = nullptr;
  std::atomic<bool> canceled_{false};
  // Guards waiter_: a waker holds it while it looks at the node, so the
  // waiter takes it once more before its node (on its stack) goes away.
  std::atomic<bool> lock_{false};
  wait_node* waiter_ = nullptr;
};

}  // namespace spindle::detail
