// fd_table: what the hook knows of each descriptor number, and the waits
// and the close protocol of the descriptors it parks fibers on.
//
// A slot per descriptor number, in chunks that are allocated on first
// use and never freed, so that a slot's address stays valid whatever
// happens to the descriptor (a reader never races a free). A slot is
// filled when a hooked call creates the descriptor (socket, accept, pipe,
// dup), or on a fiber's first call on a number the hook has not seen (an
// inherited descriptor, or one a library made through an internal alias),
// by probing it (fstat, getsockopt, F_GETFL); a hooked close() empties it.
//
// The kinds, and what a fiber's call on each does:
//   - socket, pipe (a pipe the hook saw created): managed. The kernel's
//     file is made non-blocking the first time a fiber uses it; the
//     *user's* blocking mode is kept here (fcntl, ioctl FIONBIO), and a
//     call in blocking mode that fails with EAGAIN parks on the netpoll
//     (sched/io_wait.h) and retries, as the blocking call would have
//     waited. A plain thread's call on such a descriptor waits in poll(2)
//     instead, so the non-blocking file never shows through.
//   - foreign: a FIFO the hook did not see created (inherited, or a
//     shell's pipe): its file may be shared with another process, whose
//     view of O_NONBLOCK must not change, so the fiber parks until poll
//     says it is ready, then calls (call.h, foreign_call()).
//   - file, other: anything else (a regular file, a tty, an eventfd): the
//     call passes straight through.
//
// O_NONBLOCK and the socket timeouts belong to the open file, which dups
// share: a slot that was dup'd is marked, and setting them through one
// number sets them in every marked slot of the same file.
//
// Close protocol (io/detail/fd_state.h's, after Go's fdMutex): a call
// that parks holds an `op` for the whole of its slow path. close() marks
// the slot closing, cancels the netpoll registration (parked calls wake
// and fail with EBADF), waits for the last op to leave, unregisters, and
// only then closes the descriptor, under the slot's setup lock, so that a
// new descriptor of the same number is filled in after the old one is
// gone. A slot remembers the identity (device, inode) of the file it was
// filled for, and a call checks it before its first wait and before the
// hook first makes the file non-blocking, so that a number closed and
// reused behind the hook's back (a raw syscall, stdio's fclose) is
// probed afresh instead of parking on the old file's registration.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <sys/stat.h>
#include <sys/types.h>

#include "fiber/thread_annotations.h"
#include "hook/detail/real.h"
#include "sched/io_wait.h"
#include "sync/mutex.h"

namespace spindle::hook_detail {

using spindle::detail::io_direction;
using spindle::detail::io_time_point;

// unknown: not seen yet. file: a regular file, directory or block device
// (never EAGAIN; passes through). other: a tty, an eventfd, any other
// character or anonymous file (passes through; the trace reports calls
// that may block on it). socket, pipe, foreign: see above.
enum class fd_kind : std::uint8_t { unknown = 0, file, other, socket, pipe, foreign };

class fd_slot {
 public:
  // The bits of state(); one relaxed load tells a call what to do.
  static constexpr std::uint32_t kind_mask = 0x7;
  static constexpr std::uint32_t user_nonblock = 1u << 3;    // the user asked for O_NONBLOCK
  static constexpr std::uint32_t kernel_nonblock = 1u << 4;  // the file is O_NONBLOCK
  static constexpr std::uint32_t hook_nonblock = 1u << 6;    // ... because the hook made it so
  static constexpr std::uint32_t has_dups = 1u << 7;         // dup'd: other numbers share the file
  static constexpr std::uint32_t stream = 1u << 5;           // a byte stream (writes go on until done)

  static fd_kind kind_of(std::uint32_t s) noexcept { return static_cast<fd_kind>(s & kind_mask); }
  // managed(): a socket or pipe in blocking mode, which a fiber's call parks on.
  static bool managed(std::uint32_t s) noexcept {
    const fd_kind k = kind_of(s);
    return (k == fd_kind::socket || k == fd_kind::pipe) && !(s & user_nonblock);
  }

  std::uint32_t state() const noexcept { return state_.load(std::memory_order_acquire); }
  // SO_RCVTIMEO / SO_SNDTIMEO, in nanoseconds (0: none).
  void set_timeout(io_direction dir, std::int64_t ns) noexcept {
    timeout_ns_[static_cast<int>(dir)].store(ns, std::memory_order_relaxed);
  }
  // The deadline of a call in `dir` that starts now.
  io_time_point deadline(io_direction dir) const noexcept;

  // waitable(): a socket or pipe, whose file the hook keeps non-blocking
  // once a fiber has waited on it.
  static bool waitable(std::uint32_t s) noexcept {
    const fd_kind k = kind_of(s);
    return k == fd_kind::socket || k == fd_kind::pipe;
  }
  // user_set_nonblock() records a successful fcntl(F_SETFL) or
  // ioctl(FIONBIO) of the user's: O_NONBLOCK on the file is then the
  // user's own (and stays; the hook keeps a waitable file non-blocking
  // when the user turns it off).
  void user_set_nonblock(bool on) noexcept;
  // make_kernel_nonblocking() sets O_NONBLOCK on the file the first time
  // a fiber uses a managed descriptor that is still blocking.
  void make_kernel_nonblocking(int fd) noexcept;

  // ---- Used by fd_table and the slow paths (fd_table.cpp) ----
  // fill() under the setup lock: what a creating call knows.
  void fill(std::uint32_t state) noexcept;
  void probe(int fd) noexcept;
  void copy_from(const fd_slot& other) noexcept;

  // wait() parks the calling fiber until `fd` is ready in `dir` or the
  // deadline: 0 on ready, else EAGAIN (timed out) or EBADF (closed
  // meanwhile). 0 with `*unparkable` set when the fiber cannot park on
  // the netpoll (epoll refused the descriptor, or its number was closed
  // and reused behind the hook's back): the caller waits in poll(2). The
  // caller holds an op and the direction's lock.
  int wait(int fd, io_direction dir, io_time_point deadline, bool* unparkable) noexcept;

  // waits() counts the netpoll waits that have returned. A slow path
  // that finds it unchanged since before its failed attempt knows that
  // no wait consumed a readiness edge meanwhile, so the edge of anything
  // that arrived since is still there for its own wait: it may park
  // without trying the call once more.
  std::uint32_t waits() const noexcept { return waits_.load(std::memory_order_acquire); }

  // still_same_file() says whether `fd` is still the file the slot was
  // filled for (one fstat): a slow path asks before it first waits, so
  // that a number closed and reused behind the hook's back (a raw
  // syscall, stdio's fclose) never parks on what the slot remembers.
  bool still_same_file(int fd) noexcept;

  // Ops: a slow path holds one while it may park.
  bool enter() noexcept;
  void leave() noexcept;
  // A close() of this number has begun: a call that waited for its
  // direction's lock fails with EBADF.
  bool closing() const noexcept;
  // close_and(fd, fn) runs the close protocol, with fn(fd) in place of
  // close(2) (dup2() over a descriptor). Returns fn's result, or -1 with
  // EBADF if a close of this number was already under way.
  template <class Fn>
  int close_and(int fd, Fn fn) noexcept;

  // The direction's lock: one caller per direction waits on the netpoll
  // at a time. Taken at a slow path's first EAGAIN and held to its end,
  // which the thread-safety analysis cannot follow.
  void lock_direction(io_direction dir) SPINDLE_NO_THREAD_SAFETY_ANALYSIS { lock_of(dir).lock(); }
  bool lock_direction_until(io_direction dir, io_time_point deadline) SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    return lock_of(dir).try_lock_until(deadline);
  }
  void unlock_direction(io_direction dir) SPINDLE_NO_THREAD_SAFETY_ANALYSIS { lock_of(dir).unlock(); }

 private:
  static constexpr std::uint32_t closing_bit = 1u << 31;

  spindle::timed_mutex& lock_of(io_direction dir) noexcept {
    return dir == io_direction::read ? read_mu_ : write_mu_;
  }

  void lock_setup() noexcept;
  void unlock_setup() noexcept { setup_.store(false, std::memory_order_release); }
  bool begin_close() noexcept;
  void drain() noexcept;
  void reset_locked() noexcept;
  void set_identity(const struct stat& st) noexcept;

  std::atomic<std::uint32_t> state_{0};
  std::atomic<std::uint32_t> ops_{0};
  std::atomic<bool> setup_{false};
  std::atomic<std::uint32_t> waits_{0};
  std::atomic<std::int64_t> timeout_ns_[2] = {0, 0};
  // Guarded by setup_ (written), stable while an op is held (read).
  spindle::detail::poll_desc* pd_ = nullptr;
  // The file's identity, taken when the slot is filled (0, 0: not known).
  std::atomic<dev_t> dev_{0};
  std::atomic<ino_t> ino_{0};
  spindle::timed_mutex read_mu_;
  spindle::timed_mutex write_mu_;

  friend class fd_table;
};

class fd_table {
 public:
  // Slots come in chunks of 1024 numbers; the first chunk is static, so
  // that the descriptors every process has (0, 1, 2 and the first
  // thousand) never allocate, not even in a signal handler that writes
  // to stderr. 2^16 chunks cover 2^26 descriptors, past any
  // RLIMIT_NOFILE Linux allows by default (fs.nr_open is 2^20).
  static constexpr int chunk_bits = 10;
  static constexpr int chunk_size = 1 << chunk_bits;
  static constexpr int chunk_count = 1 << 16;

  // The slot of `fd`, allocating its chunk; nullptr for a negative or
  // absurd number (the real call then fails with EBADF).
  static fd_slot* slot(int fd) noexcept;
  // The slot of `fd` if its chunk exists; never allocates.
  static fd_slot* find(int fd) noexcept {
    if (static_cast<unsigned>(fd) < static_cast<unsigned>(chunk_size)) return &first_chunk[fd];
    if (fd < 0 || fd >= chunk_size * chunk_count) return nullptr;
    fd_slot* c = chunks[fd >> chunk_bits].load(std::memory_order_acquire);
    return c == nullptr ? nullptr : &c[fd & (chunk_size - 1)];
  }
  // The slot of `fd`, probed if the hook has not seen it yet.
  static fd_slot* known(int fd) noexcept {
    fd_slot* s = find(fd);
    if (s != nullptr && fd_slot::kind_of(s->state()) != fd_kind::unknown) [[likely]] return s;
    return probe(fd);
  }
  // created() fills in the slot of a descriptor a hooked call just made.
  static void created(int fd, fd_kind kind, bool user_nonblock, bool kernel_nonblock,
                      bool is_stream) noexcept;
  // duplicated() fills `to` as a copy of `from` (dup, dup2, dup3, F_DUPFD).
  static void duplicated(int from, int to) noexcept;
  // forget() empties the slot of a number found closed and reused behind
  // the hook's back (calls parked on its old registration fail with
  // EBADF); the next call probes it afresh.
  static void forget(int fd) noexcept;
  // for_each_sharing(fd, fn) calls fn(slot) for `fd`'s slot and, if it
  // was dup'd, for every other slot of the same open file: O_NONBLOCK and
  // the socket timeouts belong to the file, which dups share. Scans the
  // table, but only for a descriptor that was dup'd.
  template <class Fn>
  static void for_each_sharing(int fd, Fn fn) noexcept;

 private:
  static fd_slot* probe(int fd) noexcept;
  static fd_slot first_chunk[chunk_size];
  static std::atomic<fd_slot*> chunks[chunk_count];
};

// An op held for a scope.
class op_guard {
 public:
  explicit op_guard(fd_slot* s) noexcept : s_(s), ok_(s->enter()) {}
  ~op_guard() {
    if (ok_) s_->leave();
  }
  op_guard(const op_guard&) = delete;
  op_guard& operator=(const op_guard&) = delete;
  explicit operator bool() const noexcept { return ok_; }

 private:
  fd_slot* const s_;
  const bool ok_;
};

// kick_pollers() wakes the fibers parked in a poll (select, epoll_wait)
// that includes `fd`, which was just closed (poll_hooks.cpp).
void kick_pollers(int fd) noexcept;

template <class Fn>
void fd_table::for_each_sharing(int fd, Fn fn) noexcept {
  fd_slot* s = find(fd);
  if (s == nullptr) return;
  fn(*s);
  if (!(s->state() & fd_slot::has_dups)) return;
  const dev_t dev = s->dev_.load(std::memory_order_relaxed);
  const ino_t ino = s->ino_.load(std::memory_order_relaxed);
  for (int c = 0; c < chunk_count; ++c) {
    fd_slot* chunk = c == 0 ? first_chunk : chunks[c].load(std::memory_order_acquire);
    if (chunk == nullptr) continue;
    for (int i = 0; i < chunk_size; ++i) {
      fd_slot& o = chunk[i];
      if (&o == s || !(o.state() & fd_slot::has_dups)) continue;
      if (o.dev_.load(std::memory_order_relaxed) == dev && o.ino_.load(std::memory_order_relaxed) == ino) fn(o);
    }
  }
}

// ---- The close protocol ----

template <class Fn>
int fd_slot::close_and(int fd, Fn fn) noexcept {
  if (!begin_close()) {
    set_errno(EBADF);
    return -1;
  }
  const int saved = get_errno();
  drain();
  lock_setup();
  if (pd_ != nullptr) spindle::detail::netpoll_close(pd_);
  pd_ = nullptr;
  const int r = fn(fd);
  const int e = r < 0 ? get_errno() : saved;
  reset_locked();
  unlock_setup();
  kick_pollers(fd);
  set_errno(e);
  return r;
}

}  // namespace spindle::hook_detail
