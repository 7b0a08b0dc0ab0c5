// The netpoller: readiness of the descriptors io/ owns (its sockets),
// after Go's runtime/netpoll.go. The contract io/ relies on:
//
//   - poll_desc::open(fd) registers a non-blocking fd once, edge-triggered
//     (EPOLLIN | EPOLLRDHUP | EPOLLET; EPOLLOUT is added by the first wait
//     for writing, one epoll_ctl in a connection's life), with one epoll instance
//     shared by the whole process; close() unregisters it, and must come
//     before close(2) and after every waiter has left.
//   - After an operation fails with EAGAIN, wait(dir) parks the caller
//     until an edge in that direction (data arrived, room freed, error,
//     hang-up), the deadline, cancel() or interrupt(). An edge that came
//     while nobody waited is kept (ready_) and consumed by the next wait,
//     so none is lost between the EAGAIN and the wait.
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

namespace spindle::detail {

struct control_block;

class poll_desc {
 public:
  enum class result : std::uint8_t {
    ready,        // an edge came: retry the operation
    timed_out,    // the deadline passed first
    canceled,     // cancel() was called: the descriptor is being closed
    interrupted,  // interrupt(): re-read the deadline and wait again
  };
  enum direction : int { read = 0, write = 1 };
  using time_point = std::chrono::steady_clock::time_point;
  using deadline_rep = std::chrono::steady_clock::rep;

  // open() registers `fd`; nullptr (errno set) if epoll refuses it (a
  // regular file, say). Any thread.
  static poll_desc* open(int fd) noexcept;
  // close() unregisters the descriptor and recycles this object. Any
  // thread.
  void close() noexcept;

  // wait() as described above; the deadline is the earlier of `deadline`
  // and `*shared_deadline` (read after the wait is registered, so that an
  // interrupt() after a change is not missed; may be null). A fiber parks;
  // a plain thread polls the fd itself with poll(2), checking for cancel()
  // every 50 ms.
  result wait(direction dir, time_point deadline, const std::atomic<deadline_rep>* shared_deadline) noexcept;
  // cancel() wakes both waiters with `canceled`; later waits return it at
  // once. Any thread.
  void cancel() noexcept;
  // interrupt() wakes the waiter of `dir`, if any, with `interrupted`.
  void interrupt(direction dir) noexcept;

  // Whether an edge in `dir` came since the last wait (a hint: an
  // operation tried now is likely to succeed).
  bool ready_hint(direction dir) const noexcept {
    return ready_[dir].load(std::memory_order_relaxed) || final_[dir].load(std::memory_order_relaxed);
  }

  // Called by the worker that collected an edge for this descriptor.
  void deliver(std::uint32_t events, std::uint16_t gen) noexcept;
  // Prefetches what deliver() will touch of a waiting reader (a hint: read
  // without the lock).
  void prefetch_waiter() const noexcept;
  std::uint16_t generation() const noexcept { return gen_; }

 private:
  poll_desc() = default;
  result wait_plain(direction dir, time_point deadline,
                    const std::atomic<deadline_rep>* shared_deadline) noexcept;
  // Releases the object to the pool (close() without the epoll_ctl, for a
  // descriptor epoll refused), in two halves close() does its work between.
  void recycle() noexcept;
  int recycle_begin() noexcept;
  void recycle_end() noexcept;
  void lock() noexcept;
  void unlock() noexcept { lock_.store(false, std::memory_order_release); }
  void wake_locked(direction dir, result why) noexcept;

  int fd_ = -1;
  std::uint16_t gen_ = 0;  // bumped at every open and close (guarded by lock_)
  std::atomic<bool> lock_{false};
  // Guarded by lock_; wakers unpark while holding it, so a waiter that
  // retakes it after its park knows no wake of that park is still coming.
  // Atomic (relaxed) only so that netpoll_poll() may peek at them without
  // the lock, to prefetch the fibers it is about to wake.
  std::atomic<control_block*> waiter_[2] = {nullptr, nullptr};
  result result_[2] = {result::ready, result::ready};
  std::atomic<bool> ready_[2] = {false, false};
  // Sticky: the peer shut its side (read: EPOLLRDHUP) or the socket has
  // an error (both: EPOLLERR). End of stream or the error is then always
  // there to be read, with no further edge to come, so waits return at
  // once. (A read that returned data may have left the end of stream of
  // the same edge behind it.)
  std::atomic<bool> final_[2] = {false, false};
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

}  // namespace spindle::detail
