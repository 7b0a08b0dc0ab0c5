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
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <sys/types.h>

#include "io/error.h"
#include "sched/detail/netpoll.h"
#include "sync/mutex.h"

namespace spindle::detail {

struct control_block;

// What a descriptor is, as far as reading it goes.
enum class fd_kind : std::uint8_t {
  other,       // not a socket (a pipe, a tty): read(2) and write(2)
  socket,      // a socket: recv(2) and send(2)
  tcp_stream,  // a TCP socket: recv(2) and send(2), and see short_read_is_drained()
};

class fd_state {
 public:
  // Takes ownership of `fd`, which must be non-blocking already, and
  // registers it with the netpoll: a socket must be connected, connecting
  // or listening by then (see sched/detail/netpoll.h).
  fd_state(int fd, fd_kind kind) noexcept;
  // The same for a socket (fd_kind::socket) or not.
  fd_state(int fd, bool is_socket) noexcept : fd_state(fd, is_socket ? fd_kind::socket : fd_kind::other) {}
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

  // The reader's hint (guarded by the read lock): the last read_some()
  // returned less than it asked for and short_read_is_drained() took that
  // as proof that the receive queue was empty then, so a read now would
  // most likely fail with EAGAIN. read_some() then waits for readiness
  // before reading, unless some came since (read_ready_hint()): it saves
  // that failing system call, and, more importantly, it lets the worker's
  // loop run (and serve every other ready connection in one epoll_wait)
  // instead of this fiber ping-ponging with a fast peer while the others
  // starve. Any other read (read_exactly()) clears it: what it leaves in
  // the queue, it does not say.
  bool read_drained = false;
  // Whether a read now is worth trying under that hint: readiness came
  // since, or a final edge ever did (see poll_desc::ready_hint).
  bool read_ready_hint() const noexcept {
    return pd_ == nullptr || pd_->ready_hint(poll_desc::read);
  }

  // short_read_is_drained() says whether a read that returned `got` of the
  // `asked` bytes may be taken as proof that it left nothing readable
  // (read_drained), which only holds if nothing can still be:
  //   - Only a TCP socket's short read proves anything: tcp_recvmsg()
  //     stops short of `asked` only on an empty receive queue and backlog,
  //     at end of stream (final, so read_ready_hint() takes it), or at the
  //     urgent mark (below). Not a datagram or seqpacket socket: a read
  //     takes one datagram, whatever queues behind it. Not a Unix stream
  //     socket: a read stops after a message that carried descriptors
  //     (SCM_RIGHTS), and with SO_PASSCRED where the writer changes, with
  //     the rest still queued. Not pipes, ttys or anything else adopted.
  //   - Never once urgent data was seen (poll_desc::urgent_seen(), from
  //     EPOLLPRI). Why the flag is always in time: a read can stop at the
  //     urgent mark only after the kernel took in the urgent byte, and it
  //     woke the socket's waiters under the same socket lock, before
  //     recv() could get it; until a read passes the mark the socket
  //     reports EPOLLPRI, so that wake-up's edge carries it whenever it is
  //     collected. If it was collected before this fiber last took the
  //     poll_desc's lock (in a wait), the flag is visible here; if it was
  //     collected after, it sits in ready_ or wakes the wait that
  //     read_drained leads to; if not yet, it will. No case strands data.
  // The one switch of the shortcut: `return false;` turns it off (to
  // measure it; the echo server at 1000 connections is where it counts).
  bool short_read_is_drained(std::size_t got, std::size_t asked) const noexcept {
    return got != 0 && got < asked && tcp_stream_ && !pd_->urgent_seen();
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
  // A TCP socket, registered (pd_ is not null).
  const bool tcp_stream_;
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
