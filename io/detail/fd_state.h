// fd_state: the owned state behind every io/ socket (connection, listener,
// udp_socket). It owns one non-blocking descriptor and everything that
// makes closing it under parked fibers safe.
//
// Readiness comes from the netpoll (sched/detail/netpoll.h), where the
// descriptor is registered once, edge-triggered.
//
// Close protocol (after Go's fdMutex): every operation holds an `op` for
// its whole duration. close() marks the state closing, cancels both
// readiness events (parked fibers wake with operation_canceled), waits
// until the last op has left, and only then calls close(2). So the fd
// number cannot be reused while any fiber might still touch it, and no
// watcher of a later owner of that number can see our events.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>
#include <sys/types.h>

#include "io/error.h"
#include "sched/detail/netpoll.h"
#include "sync/mutex.h"

namespace spindle::detail {

struct control_block;

class fd_state {
 public:
  // Takes ownership of `fd`, which must be non-blocking already.
  fd_state(int fd, bool is_socket) noexcept;
  ~fd_state();
  fd_state(const fd_state&) = delete;
  fd_state& operator=(const fd_state&) = delete;

  int fd() const noexcept { return fd_; }
  bool is_socket() const noexcept { return is_socket_; }

  enum class direction { read, write };

  // An operation in flight; close() waits for all of them to end. Every
  // I/O call starts with one, on its object's state: null when the object
  // is not open (moved from, or never opened).
  class op {
   public:
    explicit op(fd_state* s) noexcept : s_(s), ok_(s != nullptr && s->enter()) {}
    ~op() {
      if (ok_) s_->leave();
    }
    op(const op&) = delete;
    op& operator=(const op&) = delete;
    // False when there is no state, or it is closing or closed: report
    // error() (bad_file_descriptor when not open or closed,
    // operation_canceled while closing).
    explicit operator bool() const noexcept { return ok_; }
    std::error_code error() const noexcept {
      return s_ == nullptr ? std::make_error_code(std::errc::bad_file_descriptor) : s_->closed_error();
    }

   private:
    fd_state* const s_;
    const bool ok_;
  };

  // retry() runs `attempt` (a system call returning ssize_t and setting
  // errno) until it succeeds or fails with something other than EINTR or
  // EAGAIN; on EAGAIN it parks until the fd is ready in `dir`, until
  // `until` or the direction's own deadline. Returns the result, or -1
  // with `ec` set. The caller holds an op and the direction's lock.
  template <class Attempt>
  ssize_t retry(direction dir, const deadline& until, std::error_code& ec, Attempt attempt) noexcept {
    for (;;) {
      const ssize_t n = attempt();
      if (n >= 0) return n;
      const int e = errno;  // before anything can switch threads
      if (e == EINTR) continue;
      if (e != EAGAIN && e != EWOULDBLOCK) {
        ec.assign(e, std::system_category());
        return -1;
      }
      if ((ec = wait(dir, until))) return -1;
    }
  }

  // The reader's hint (guarded by the read lock): the last read returned
  // less than it asked for, so the socket's receive buffer was empty then
  // and a read now would most likely fail with EAGAIN. read_some() then
  // waits for readiness before reading: it saves that failing system call,
  // and, more importantly, it lets the worker's loop run (and serve every
  // other ready connection in one epoll_wait) instead of this fiber
  // ping-ponging with a fast peer while the others starve.
  bool read_drained = false;
  // Whether a read now is worth trying under that hint: readiness came
  // since (see poll_desc::ready_hint).
  bool read_ready_hint() const noexcept {
    return pd_ == nullptr || pd_->ready_hint(poll_desc::read);
  }

  // wait() parks until the fd is ready in `dir` (or the deadlines, or a
  // close): empty on ready, else timed_out or operation_canceled.
  std::error_code wait(direction dir, const deadline& until) noexcept;

  // The per-direction locks: one reader and one writer at a time.
  spindle::mutex& lock(direction dir) noexcept { return dir == direction::read ? read_mu_ : write_mu_; }

  // Per-socket deadlines (Go's SetReadDeadline/SetWriteDeadline): apply to
  // calls in progress too.
  void set_deadline(direction dir, const deadline& d) noexcept;

  // close() as described at the top. Idempotent: a later or concurrent
  // call waits until the first has closed the descriptor, then returns
  // with no error (so that destroying the owner right after is safe).
  // Fiber or plain thread.
  void close(std::error_code& ec) noexcept;
  bool closing() const noexcept { return ops_.load(std::memory_order_acquire) & closing_bit; }
  // operation_canceled once closing, else empty: what a call that waited
  // for its direction's lock reports if a close() began meanwhile.
  std::error_code closing_error() const noexcept {
    return closing() ? std::make_error_code(std::errc::operation_canceled) : std::error_code{};
  }

  // A path to unlink after close (a Unix-domain listener's socket file).
  void unlink_on_close(std::string path) { unlink_path_ = std::move(path); }

 private:
  static constexpr std::uint32_t closing_bit = 1u << 31;
  static constexpr poll_desc::deadline_rep no_deadline = std::chrono::steady_clock::duration::max().count();

  bool enter() noexcept;
  void leave() noexcept;
  std::error_code closed_error() const noexcept;

  const int fd_;
  const bool is_socket_;
  // Registration with the netpoll; null for a descriptor epoll cannot
  // watch (a regular file: never EAGAIN).
  poll_desc* pd_;
  spindle::mutex read_mu_;
  spindle::mutex write_mu_;
  std::atomic<poll_desc::deadline_rep> read_deadline_{no_deadline};
  std::atomic<poll_desc::deadline_rep> write_deadline_{no_deadline};
  // Operations in flight, and closing_bit once close() has begun.
  std::atomic<std::uint32_t> ops_{0};
  // Held by the closer from start to end; later closers wait on it.
  spindle::mutex close_mu_;
  std::atomic<bool> closed_{false};
  // The closer waiting for the ops to drain; taken (exchanged with null)
  // by exactly one waker.
  std::atomic<control_block*> closer_{nullptr};
  std::string unlink_path_;
};

// Makes SIGPIPE harmless for the whole process (once): a write to a
// closed pipe or socket then fails with EPIPE instead of killing it.
void ignore_sigpipe() noexcept;

// The error of a failed system call, as a std::error_code.
inline std::error_code last_error() noexcept { return {errno, std::system_category()}; }

}  // namespace spindle::detail
