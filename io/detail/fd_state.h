// fd_state: the owned state behind every io/ socket (connection, listener,
// udp_socket). It owns one non-blocking descriptor and everything that
// makes closing it under parked fibers safe.
//
// Readiness comes from the netpoll (sched/io_wait.h), where the descriptor
// is registered once, edge-triggered.
//
// Close protocol (after Go's fdMutex): every operation holds an `op` for
// its whole duration. close() marks the state closing, cancels both
// readiness events (parked fibers wake with operation_canceled), waits
// until the last op has left, and only then calls close(2). So the fd
// number cannot be reused while any fiber might still touch it, and no
// watcher of a later owner of that number can see our events.
//
// The two ways in, one for every socket call (so that none can drift):
//   - io_lock, for a call that moves data: an op, the direction's lock,
//     then the closing check (userver's Direction::Lock), and retry() to
//     run the system call under it (userver's PerformIo).
//   - op alone, for a call that neither waits nor needs a turn
//     (getsockname, setsockopt, shutdown): it fails once close() began.
// Both report why they failed in the call's std::error_code.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>
#include <sys/types.h>

#include "fiber/thread_annotations.h"
#include "io/error.h"
#include "sched/io_wait.h"
#include "sync/mutex.h"

namespace spindle::detail {

struct control_block;
class io_lock;

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
  // or listening by then (see sched/io_wait.h).
  fd_state(int fd, fd_kind kind) noexcept;
  ~fd_state();
  fd_state(const fd_state&) = delete;
  fd_state& operator=(const fd_state&) = delete;

  int fd() const noexcept { return fd_; }
  bool is_socket() const noexcept { return is_socket_; }

  // An operation in flight; close() waits for all of them to end. Every
  // call starts with one (inside its io_lock, or alone), on its object's
  // state: null when the object is not open (moved from, never opened).
  class op {
   public:
    explicit op(fd_state* s) noexcept : s_(s), ok_(s != nullptr && s->enter()) {}
    // The form every call uses: `ec` is cleared, or set to error().
    op(fd_state* s, std::error_code& ec) noexcept : op(s) { ec = ok_ ? std::error_code() : error(); }
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
    // The descriptor, which stays this state's while the op lasts.
    int fd() const noexcept { return s_->fd(); }

   private:
    fd_state* const s_;
    const bool ok_;
  };

  // ---- The reader's hint ----

  // read_should_wait() says whether a read now had better wait for
  // readiness first: the last read_some() returned less than it asked for
  // and short_read_is_drained() took that as proof that the receive queue
  // was empty then, so a read now would most likely fail with EAGAIN, and
  // no readiness came since (netpoll_ready_hint()). Waiting saves that
  // failing system call and, more importantly, lets the worker's loop run
  // (and serve every other ready connection in one epoll_wait) instead of
  // this fiber ping-ponging with a fast peer while the others starve.
  bool read_should_wait() const noexcept SPINDLE_REQUIRES(read_mu_) {
    return read_drained_ && pd_ != nullptr && !netpoll_ready_hint(pd_, io_direction::read);
  }
  // note_read() records a read_some() of `got` of the `asked` bytes.
  void note_read(std::size_t got, std::size_t asked) noexcept SPINDLE_REQUIRES(read_mu_) {
    read_drained_ = short_read_is_drained(got, asked);
  }
  // forget_read() is for any other read (read_exactly()): what it leaves
  // in the queue, it does not say, and its reads may consume the edge of
  // bytes it leaves there.
  void forget_read() noexcept SPINDLE_REQUIRES(read_mu_) { read_drained_ = false; }

  // Per-socket deadlines (Go's SetReadDeadline/SetWriteDeadline): apply to
  // calls in progress too.
  void set_deadline(io_direction dir, const deadline& d) noexcept;

  // close() as described at the top. Idempotent: a later or concurrent
  // call waits until the first has closed the descriptor, then returns
  // with no error (so that destroying the owner right after is safe).
  // Fiber or plain thread.
  void close(std::error_code& ec) noexcept SPINDLE_EXCLUDES(close_mu_);
  bool closing() const noexcept { return ops_.load(std::memory_order_acquire) & closing_bit; }

  // A path to unlink after close (a Unix-domain listener's socket file).
  // Set before the state is shared.
  void unlink_on_close(std::string path) { unlink_path_ = std::move(path); }

 private:
  friend class io_lock;
  static constexpr std::uint32_t closing_bit = 1u << 31;

  bool enter() noexcept;
  void leave() noexcept;
  std::error_code closed_error() const noexcept;
  // operation_canceled once closing, else empty: what a call that waited
  // for its direction's lock reports if a close() began meanwhile.
  std::error_code closing_error() const noexcept {
    return closing() ? std::make_error_code(std::errc::operation_canceled) : std::error_code{};
  }
  // wait() parks until the fd is ready in `dir` (or the deadlines, or a
  // close): empty on ready, else timed_out or operation_canceled. The
  // caller holds an op and the direction's lock (an io_lock).
  std::error_code wait(io_direction dir, const deadline& until) noexcept;
  spindle::mutex& lock_of(io_direction dir) noexcept { return dir == io_direction::read ? read_mu_ : write_mu_; }

  // short_read_is_drained() says whether a read that returned `got` of the
  // `asked` bytes may be taken as proof that it left nothing readable
  // (read_drained_), which only holds if nothing can still be:
  //   - Only a TCP socket's short read proves anything: tcp_recvmsg()
  //     stops short of `asked` only on an empty receive queue and backlog,
  //     at end of stream (final, so netpoll_ready_hint() takes it), or at
  //     the urgent mark (below). Not a datagram or seqpacket socket: a read
  //     takes one datagram, whatever queues behind it. Not a Unix stream
  //     socket: a read stops after a message that carried descriptors
  //     (SCM_RIGHTS), and with SO_PASSCRED where the writer changes, with
  //     the rest still queued. Not pipes, ttys or anything else adopted.
  //   - Never once urgent data was seen (netpoll_urgent_seen(), from
  //     EPOLLPRI). Why the flag is always in time: a read can stop at the
  //     urgent mark only after the kernel took in the urgent byte, and it
  //     woke the socket's waiters under the same socket lock, before
  //     recv() could get it; until a read passes the mark the socket
  //     reports EPOLLPRI, so that wake-up's edge carries it whenever it is
  //     collected. If it was collected before this fiber last took the
  //     poll_desc's lock (in a wait), the flag is visible here; if it was
  //     collected after, it sits in the ready edge or wakes the wait that
  //     read_drained_ leads to; if not yet, it will. No case strands data.
  // The one switch of the shortcut: `return false;` turns it off (to
  // measure it; the echo server at 1000 connections is where it counts).
  bool short_read_is_drained(std::size_t got, std::size_t asked) const noexcept {
    return got != 0 && got < asked && tcp_stream_ && !netpoll_urgent_seen(pd_);
  }

  const int fd_;
  const bool is_socket_;
  // Registration with the netpoll; null for a descriptor epoll cannot
  // watch (a regular file: never EAGAIN).
  poll_desc* const pd_;
  // A TCP socket, registered (pd_ is not null).
  const bool tcp_stream_;
  spindle::mutex read_mu_;
  spindle::mutex write_mu_;
  // The last read_some() proved the receive queue empty (read_should_wait()).
  bool read_drained_ SPINDLE_GUARDED_BY(read_mu_) = false;
  std::atomic<io_deadline_rep> read_deadline_{no_io_deadline};
  std::atomic<io_deadline_rep> write_deadline_{no_io_deadline};
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

// The direction of an io_lock, as a type: the lock it takes is then known
// at compile time, to the thread-safety analysis too.
template <io_direction Dir>
using direction_constant = std::integral_constant<io_direction, Dir>;
inline constexpr direction_constant<io_direction::read> reading{};
inline constexpr direction_constant<io_direction::write> writing{};

// io_lock is the entry of every call that moves data or waits for
// readiness (userver's Direction::Lock): it holds an op, so close() waits
// for the call; then the direction's lock, so one reader and one writer
// run at a time; then it checks that no close() began while it waited for
// that lock (one that did wins: operation_canceled, as for a call parked
// when close() came). False, with `ec` set, when any step fails: the call
// then returns at once. Not open: bad_file_descriptor.
//
//   detail::io_lock io(state(), detail::reading, ec);
//   if (!io) return 0;
//   const ssize_t n = io.retry(d, ec, [&] { return ::recv(io.fd(), ...); });
class SPINDLE_SCOPED_CAPABILITY io_lock {
 public:
  // The analysis cannot follow the lock being taken only when the op is;
  // a caller returns at once on the other path, touching nothing guarded.
  io_lock(fd_state* s, direction_constant<io_direction::read>, std::error_code& ec) noexcept
      SPINDLE_ACQUIRE(s->read_mu_) SPINDLE_NO_THREAD_SAFETY_ANALYSIS : io_lock(s, io_direction::read, ec) {}
  io_lock(fd_state* s, direction_constant<io_direction::write>, std::error_code& ec) noexcept
      SPINDLE_ACQUIRE(s->write_mu_) SPINDLE_NO_THREAD_SAFETY_ANALYSIS : io_lock(s, io_direction::write, ec) {}
  ~io_lock() SPINDLE_RELEASE() SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    if (locked_) s_->lock_of(dir_).unlock();
  }
  io_lock(const io_lock&) = delete;
  io_lock& operator=(const io_lock&) = delete;

  explicit operator bool() const noexcept { return locked_; }
  int fd() const noexcept { return s_->fd(); }
  bool is_socket() const noexcept { return s_->is_socket(); }
  // operation_canceled once a close() has begun, else empty: for a call
  // that goes on after a wait of its own (accept()'s back-off).
  std::error_code closing_error() const noexcept { return s_->closing_error(); }

  // wait() parks until the fd is ready in this direction, until `until`
  // or the direction's own deadline, or a close(): empty on ready, else
  // timed_out or operation_canceled.
  std::error_code wait(const deadline& until) noexcept { return s_->wait(dir_, until); }

  // retry() runs `attempt` (a system call returning ssize_t and setting
  // errno) until it succeeds or fails with something other than EINTR or
  // EAGAIN; on EAGAIN it wait()s. Returns the result, or -1 with `ec` set.
  template <class Attempt>
  ssize_t retry(const deadline& until, std::error_code& ec, Attempt attempt) noexcept {
    for (;;) {
      const ssize_t n = attempt();
      if (n >= 0) return n;
      const int e = errno;  // before anything can switch threads
      if (e == EINTR) continue;
      if (e != EAGAIN && e != EWOULDBLOCK) {
        ec.assign(e, std::system_category());
        return -1;
      }
      if ((ec = wait(until))) return -1;
    }
  }

 private:
  io_lock(fd_state* s, io_direction dir, std::error_code& ec) noexcept SPINDLE_NO_THREAD_SAFETY_ANALYSIS;

  fd_state::op op_;
  fd_state* const s_;
  const io_direction dir_;
  bool locked_ = false;
};

// Makes SIGPIPE harmless for the whole process (once): a write to a
// closed pipe or socket then fails with EPIPE instead of killing it.
void ignore_sigpipe() noexcept;

// The error of a failed system call, as a std::error_code.
inline std::error_code last_error() noexcept { return {errno, std::system_category()}; }

}  // namespace spindle::detail
