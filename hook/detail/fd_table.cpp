#include "hook/detail/fd_table.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <new>

#include "fiber/this_fiber.h"
#include "hook/detail/real_calls.h"
#include "hook/detail/trace.h"

namespace spindle::hook_detail {
namespace {
using spindle::detail::on_fiber;
}  // namespace

// ---- fd_table ----

constinit fd_slot fd_table::first_chunk[chunk_size];
constinit std::atomic<fd_slot*> fd_table::chunks[chunk_count] = {};

fd_slot* fd_table::slot(int fd) noexcept {
  if (fd_slot* s = find(fd)) return s;
  if (fd < 0 || fd >= chunk_size * chunk_count) return nullptr;
  std::atomic<fd_slot*>& chunk = chunks[fd >> chunk_bits];
  fd_slot* fresh = new (std::nothrow) fd_slot[chunk_size];
  if (fresh == nullptr) return nullptr;
  fd_slot* c = nullptr;
  if (!chunk.compare_exchange_strong(c, fresh, std::memory_order_acq_rel)) {
    delete[] fresh;  // another thread's came first
  } else {
    c = fresh;
  }
  return &c[fd & (chunk_size - 1)];
}

fd_slot* fd_table::probe(int fd) noexcept {
  fd_slot* s = slot(fd);
  if (s == nullptr) return nullptr;
  s->lock_setup();
  if (fd_slot::kind_of(s->state_.load(std::memory_order_relaxed)) == fd_kind::unknown) s->probe(fd);
  s->unlock_setup();
  return s;
}

void fd_table::created(int fd, fd_kind kind, bool user_nonblock, bool kernel_nonblock,
                       bool is_stream) noexcept {
  fd_slot* s = slot(fd);
  if (s == nullptr) return;
  std::uint32_t state = static_cast<std::uint32_t>(kind);
  if (user_nonblock) state |= fd_slot::user_nonblock;
  if (kernel_nonblock) state |= fd_slot::kernel_nonblock;
  if (kernel_nonblock && !user_nonblock) state |= fd_slot::hook_nonblock;
  if (is_stream) state |= fd_slot::stream;
  s->lock_setup();
  const bool stale = s->pd_ != nullptr;
  s->unlock_setup();
  // The number was closed behind the hook's back while registered: end
  // the old registration (its waiters fail with EBADF: their file is gone).
  if (stale) (void)s->close_and(fd, [](int) { return 0; });
  struct stat st;
  const int saved = get_errno();
  const bool have_identity = ::fstat(fd, &st) == 0;
  set_errno(saved);
  s->lock_setup();
  s->fill(state);
  if (have_identity) s->set_identity(st);
  s->unlock_setup();
}

void fd_table::forget(int fd) noexcept {
  if (fd_slot* s = find(fd)) (void)s->close_and(fd, [](int) { return 0; });
}

void fd_table::duplicated(int from, int to) noexcept {
  fd_slot* src = fd_table::known(from);
  fd_slot* dst = slot(to);
  if (src == nullptr || dst == nullptr) return;
  dst->lock_setup();
  const bool stale = dst->pd_ != nullptr;
  dst->unlock_setup();
  if (stale) (void)dst->close_and(to, [](int) { return 0; });
  dst->lock_setup();
  dst->copy_from(*src);
  dst->state_.fetch_or(fd_slot::has_dups, std::memory_order_acq_rel);
  dst->unlock_setup();
  src->state_.fetch_or(fd_slot::has_dups, std::memory_order_acq_rel);
}

// ---- fd_slot ----

void fd_slot::user_set_nonblock(bool on) noexcept {
  std::uint32_t v = state_.load(std::memory_order_relaxed);
  std::uint32_t next;
  do {
    next = v;
    if (on) {
      next |= user_nonblock | kernel_nonblock;
    } else {
      next &= ~user_nonblock;
      // The file follows the user's wish, unless the hook keeps it
      // non-blocking under a fiber's waits.
      if (!waitable(v) || !(v & hook_nonblock)) next &= ~kernel_nonblock;
    }
  } while (!state_.compare_exchange_weak(v, next, std::memory_order_acq_rel, std::memory_order_relaxed));
}

io_time_point fd_slot::deadline(io_direction dir) const noexcept {
  const std::int64_t ns = timeout_ns_[static_cast<int>(dir)].load(std::memory_order_relaxed);
  if (ns <= 0) return io_time_point::max();
  return std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
}

void fd_slot::make_kernel_nonblocking(int fd) noexcept {
  const int saved = get_errno();
  int on = 1;
  if (real::ioctl(fd, FIONBIO, &on) == 0) state_.fetch_or(kernel_nonblock | hook_nonblock, std::memory_order_acq_rel);
  set_errno(saved);
}

void fd_slot::fill(std::uint32_t state) noexcept {
  timeout_ns_[0].store(0, std::memory_order_relaxed);
  timeout_ns_[1].store(0, std::memory_order_relaxed);
  dev_.store(0, std::memory_order_relaxed);
  ino_.store(0, std::memory_order_relaxed);
  state_.store(state, std::memory_order_release);
}

void fd_slot::probe(int fd) noexcept {
  const int saved = get_errno();
  struct stat st;
  if (::fstat(fd, &st) != 0) {  // not open: stays unknown, the call fails by itself
    set_errno(saved);
    return;
  }
  std::uint32_t state;
  if (S_ISSOCK(st.st_mode)) {
    state = static_cast<std::uint32_t>(fd_kind::socket);
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM) state |= stream;
  } else if (S_ISFIFO(st.st_mode)) {
    state = static_cast<std::uint32_t>(fd_kind::foreign) | stream;
  } else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode)) {
    state = static_cast<std::uint32_t>(fd_kind::file);
  } else {
    state = static_cast<std::uint32_t>(fd_kind::other);
  }
  const int flags = real::fcntl(fd, F_GETFL);
  if (flags >= 0 && (flags & O_NONBLOCK) != 0) state |= user_nonblock | kernel_nonblock;
  int64_t rcv = 0, snd = 0;
  if (fd_slot::kind_of(state) == fd_kind::socket) {
    // Timeouts set before the hook saw the socket.
    timeval tv{};
    socklen_t len = sizeof tv;
    if (::getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0) rcv = tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
    len = sizeof tv;
    if (::getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0) snd = tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
  }
  fill(state);
  set_identity(st);
  timeout_ns_[0].store(rcv, std::memory_order_relaxed);
  timeout_ns_[1].store(snd, std::memory_order_relaxed);
  set_errno(saved);
}

void fd_slot::copy_from(const fd_slot& other) noexcept {
  fill(other.state_.load(std::memory_order_acquire));
  dev_.store(other.dev_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  ino_.store(other.ino_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  timeout_ns_[0].store(other.timeout_ns_[0].load(std::memory_order_relaxed), std::memory_order_relaxed);
  timeout_ns_[1].store(other.timeout_ns_[1].load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void fd_slot::set_identity(const struct stat& st) noexcept {
  dev_.store(st.st_dev, std::memory_order_relaxed);
  ino_.store(st.st_ino, std::memory_order_relaxed);
}

bool fd_slot::still_same_file(int fd) noexcept {
  const int saved = get_errno();
  struct stat st;
  if (::fstat(fd, &st) != 0) {  // closed: the call that follows says so
    set_errno(saved);
    return true;
  }
  set_errno(saved);
  if (dev_.load(std::memory_order_relaxed) == 0 && ino_.load(std::memory_order_relaxed) == 0) {
    set_identity(st);  // not known yet: take it now
    return true;
  }
  return st.st_dev == dev_.load(std::memory_order_relaxed) && st.st_ino == ino_.load(std::memory_order_relaxed);
}

int fd_slot::wait(int fd, io_direction dir, io_time_point deadline, bool* reused) noexcept {
  const int saved = get_errno();
  lock_setup();
  if (ops_.load(std::memory_order_acquire) & closing_bit) {
    unlock_setup();
    return EBADF;
  }
  if (pd_ == nullptr) {
    pd_ = spindle::detail::netpoll_open(fd, dir == io_direction::write);
    if (pd_ == nullptr) {  // epoll refused it: the caller waits in poll(2)
      unlock_setup();
      set_errno(saved);
      *reused = true;
      return 0;
    }
  }
  spindle::detail::poll_desc* pd = pd_;
  unlock_setup();
  set_errno(saved);
  parked_scope parked;
  const auto result = spindle::detail::netpoll_wait(pd, dir, deadline, nullptr);
  waits_.fetch_add(1, std::memory_order_release);
  switch (result) {
    case spindle::detail::io_wait_result::ready:
    case spindle::detail::io_wait_result::interrupted:
      return 0;
    case spindle::detail::io_wait_result::timed_out:
      return EAGAIN;
    case spindle::detail::io_wait_result::canceled:
      return EBADF;
  }
  return 0;
}

bool fd_slot::enter() noexcept {
  std::uint32_t v = ops_.load(std::memory_order_relaxed);
  do {
    if (v & closing_bit) return false;
  } while (!ops_.compare_exchange_weak(v, v + 1, std::memory_order_acquire, std::memory_order_relaxed));
  return true;
}

void fd_slot::leave() noexcept { ops_.fetch_sub(1, std::memory_order_release); }

bool fd_slot::closing() const noexcept {
  return (ops_.load(std::memory_order_acquire) & closing_bit) != 0;
}

bool fd_slot::begin_close() noexcept {
  std::uint32_t v = ops_.load(std::memory_order_relaxed);
  do {
    if (v & closing_bit) return false;
  } while (!ops_.compare_exchange_weak(v, v | closing_bit, std::memory_order_acq_rel, std::memory_order_relaxed));
  return true;
}

void fd_slot::drain() noexcept {
  lock_setup();
  spindle::detail::poll_desc* pd = pd_;
  unlock_setup();
  if (pd != nullptr) spindle::detail::netpoll_cancel(pd);
  // Parked calls wake with EBADF and leave at once; a call waiting for
  // its direction's lock leaves once it has it.
  while ((ops_.load(std::memory_order_acquire) & ~closing_bit) != 0) {
    if (on_fiber()) {
      spindle::this_fiber::yield();
    } else {
      ::sched_yield();
    }
  }
}

void fd_slot::reset_locked() noexcept {
  fill(0);
  ops_.store(0, std::memory_order_release);
}

void fd_slot::lock_setup() noexcept {
  while (setup_.exchange(true, std::memory_order_acquire)) {
    while (setup_.load(std::memory_order_relaxed)) {
      if (on_fiber()) {
        spindle::this_fiber::yield();
      } else {
        ::sched_yield();
      }
    }
  }
}

}  // namespace spindle::hook_detail
