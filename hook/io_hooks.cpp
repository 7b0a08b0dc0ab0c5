// The hooked calls that create descriptors and move data: socket,
// socketpair, accept, accept4, connect, pipe, pipe2; read, readv, recv,
// recvfrom, recvmsg; write, writev, send, sendto, sendmsg; and the
// _FORTIFY_SOURCE forms of the reads. Each starts with one thread-local
// test (on_fiber()); docs/hook.md describes what each does on a fiber.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <vector>

#include "fiber/this_fiber.h"
#include "hook/detail/call.h"
#include "hook/detail/fd_table.h"
#include "hook/detail/real_calls.h"
#include "hook/detail/trace.h"

#define SPINDLE_HOOK_API extern "C" __attribute__((visibility("default")))

namespace spindle::hook_detail {
namespace {

using spindle::detail::on_fiber;
constexpr io_direction reading = io_direction::read;
constexpr io_direction writing = io_direction::write;

// plain_rest() is the rare part of a plain thread's call: its first
// attempt said EAGAIN, or wrote only part of a stream write. Only where
// the hook made the file non-blocking for a fiber does the caller, who
// expects it to block, need the wait (or the rest of the write) the
// kernel no longer does.
template <class Attempt>
[[gnu::noinline]] ssize_t plain_rest(const char* name, int fd, io_direction dir, std::size_t total,
                                     bool all_on_stream, const void* caller, int saved, ssize_t r,
                                     Attempt attempt) noexcept {
  fd_slot* s = fd_table::find(fd);
  if (s == nullptr) return r;
  const std::uint32_t st = s->state();
  if (!(st & fd_slot::kernel_nonblock) || (st & fd_slot::user_nonblock)) return r;
  const until how = all_on_stream && (st & fd_slot::stream) ? until::all : until::some;
  if (r >= 0 && how == until::some) return r;
  const ssize_t rest = transfer_rest(name, fd, s, dir, total, how, false, caller, saved, r, s->waits(), attempt);
  if (rest != stale_slot) return rest;
  fd_table::forget(fd);  // not the file the slot remembers: the result as the kernel gave it
  if (r < 0) set_errno(EAGAIN);
  return r;
}

// fiber_call() is a fiber's call, by what the descriptor is.
template <class Attempt>
inline ssize_t fiber_call(const char* name, int fd, io_direction dir, std::size_t total, bool all_on_stream,
                          bool nonblocking, const void* caller, Attempt attempt) noexcept {
  for (bool again = true;; again = false) {
    fd_slot* s = fd_table::known(fd);
    if (s == nullptr) return attempt(0);
    const std::uint32_t st = s->state();
    switch (fd_slot::kind_of(st)) {
      case fd_kind::socket:
      case fd_kind::pipe: {
        if (nonblocking || (st & fd_slot::user_nonblock)) return attempt(0);
        if (!(st & fd_slot::kernel_nonblock)) {
          // Before the hook changes the file: is it the one the slot is for?
          if (again && !s->still_same_file(fd)) {
            fd_table::forget(fd);
            continue;
          }
          s->make_kernel_nonblocking(fd);
        }
        const ssize_t r = transfer(name, fd, s, dir, total,
                                   all_on_stream && (st & fd_slot::stream) ? until::all : until::some, true,
                                   caller, attempt);
        if (r != stale_slot) return r;
        fd_table::forget(fd);  // reused behind the hook's back: probe it and start again
        if (!again) return attempt(0);
        continue;
      }
      case fd_kind::foreign:
        if (nonblocking || (st & fd_slot::user_nonblock)) return attempt(0);
        return foreign_call(fd, dir, total, [&] { return attempt(0); });
      case fd_kind::other:
        if (!nonblocking && !(st & fd_slot::user_nonblock) && tracing()) {
          trace_unparked(name, fd, "not a socket or pipe (a tty or character device?)", caller);
        }
        return attempt(0);
      case fd_kind::unknown:
      case fd_kind::file:
        break;
    }
    return attempt(0);
  }
}

// hidden_nonblock() says whether the hook made `fd`'s file non-blocking
// behind the user's back (a fiber waited on it) while the user wants it
// blocking: a plain thread's call on it then needs plain_call(). One look
// at the slot, no system call; every other plain thread's call goes
// straight to libc.
inline bool hidden_nonblock(int fd) noexcept {
  const fd_slot* s = fd_table::find(fd);
  return s != nullptr && (s->state() & (fd_slot::kernel_nonblock | fd_slot::user_nonblock)) == fd_slot::kernel_nonblock &&
         fd_slot::waitable(s->state());
}

// plain_call() is a plain thread's call on such a descriptor: straight
// through, then the wait or the rest of the write that the kernel, with
// the file non-blocking, no longer does.
template <class Attempt>
inline ssize_t plain_call(const char* name, int fd, io_direction dir, std::size_t total,
                                     bool all_on_stream, const void* caller, Attempt attempt) noexcept {
  const int saved = errno;
  const ssize_t r = attempt(0);
  if (r >= 0 ? !all_on_stream || static_cast<std::size_t>(r) >= total : errno != EAGAIN) return r;
  return plain_rest(name, fd, dir, total, all_on_stream, caller, saved, r, attempt);
}

// On a fiber, a call on a regular file, or on a descriptor the user made
// non-blocking, goes straight through too: one look at the slot.
inline bool passes_on_fiber(int fd, bool nonblocking) noexcept {
  const fd_slot* s = fd_table::find(fd);
  if (s == nullptr) return false;
  const std::uint32_t st = s->state();
  switch (fd_slot::kind_of(st)) {
    case fd_kind::file:
      return true;
    case fd_kind::socket:
    case fd_kind::pipe:
    case fd_kind::foreign:
      return nonblocking || (st & fd_slot::user_nonblock) != 0;
    default:
      return false;  // unknown (probe it), other (the trace may report it)
  }
}

// passes_through() says whether a call on `fd` goes straight to libc,
// which is what nearly every plain thread's call does. Inline, with the
// real call a tail call; everything else is slow_call(), out of line.
inline bool passes_through(int fd, bool nonblocking) noexcept {
  if (!on_fiber()) [[likely]] return nonblocking || !hidden_nonblock(fd);
  return passes_on_fiber(fd, nonblocking);
}

template <class Attempt>
inline ssize_t slow_call(const char* name, int fd, io_direction dir, std::size_t total,
                                    bool all_on_stream, bool nonblocking, const void* caller,
                                    Attempt attempt) noexcept {
  if (!on_fiber()) return plain_call(name, fd, dir, total, all_on_stream, caller, attempt);
  return fiber_call(name, fd, dir, total, all_on_stream, nonblocking, caller, attempt);
}

std::size_t iov_total(const iovec* iov, int count) noexcept {
  std::size_t n = 0;
  for (int i = 0; i < count && iov != nullptr; ++i) n += iov[i].iov_len;
  return n;
}

// The iovecs after the first `done` bytes of `iov` (for the rest of a
// transfer that stopped short).
std::vector<iovec> iov_after(const iovec* iov, int count, std::size_t done) {
  std::vector<iovec> rest;
  for (int i = 0; i < count; ++i) {
    if (done >= iov[i].iov_len) {
      done -= iov[i].iov_len;
      continue;
    }
    rest.push_back({static_cast<char*>(iov[i].iov_base) + done, iov[i].iov_len - done});
    done = 0;
  }
  return rest;
}

bool is_stream_type(int type) noexcept { return (type & 0xf) == SOCK_STREAM; }

// accept() and accept4(): the new socket is the listener's kind; on a
// fiber it is made non-blocking in the same call (the fiber that accepts
// it is the one that most likely uses it).
int do_accept(const char* name, int fd, sockaddr* addr, socklen_t* len, int flags, const void* caller) noexcept {
  const bool fiber = on_fiber();
  // The new socket is the listener's kind: probe a listener the hook has
  // not seen (inherited, as with systemd's socket activation).
  fd_slot* listener = fd_table::known(fd);
  const std::uint32_t lst = listener != nullptr ? listener->state() : 0;
  const bool user_nb = (flags & SOCK_NONBLOCK) != 0;
  const int kernel_flags = fiber ? (flags | SOCK_NONBLOCK) : flags;
  auto attempt = [&](std::size_t) -> ssize_t { return real::accept4(fd, addr, len, kernel_flags); };
  const ssize_t r = passes_through(fd, false) ? attempt(0)
                                              : slow_call(name, fd, reading, 1, false, false, caller, attempt);
  if (r >= 0) {
    fd_table::created(static_cast<int>(r), fd_kind::socket, user_nb, (kernel_flags & SOCK_NONBLOCK) != 0,
                      listener == nullptr || (lst & fd_slot::stream) != 0);
  }
  return static_cast<int>(r);
}

// connect(): a blocking connect is a non-blocking one, a wait for
// writability, and SO_ERROR. SO_SNDTIMEO bounds the wait (EINPROGRESS
// then, as the kernel's). An AF_UNIX socket whose listener's backlog is
// full says EAGAIN instead: wait and try again.
int do_connect(int fd, const sockaddr* addr, socklen_t len, const void* caller) noexcept {
  const bool fiber = on_fiber();
  fd_slot* s = fiber ? fd_table::known(fd) : nullptr;
  if (fiber && s != nullptr) {
    const std::uint32_t st = s->state();
    if (fd_slot::managed(st) && !(st & fd_slot::kernel_nonblock)) {
      if (s->still_same_file(fd)) {
        s->make_kernel_nonblocking(fd);
      } else {
        fd_table::forget(fd);
        s = fd_table::known(fd);
      }
    }
  }
  const int saved = get_errno();
  int r = real::connect(fd, addr, len);
  if (r == 0) return 0;
  int e = get_errno();
  if (e != EINPROGRESS && e != EAGAIN) return r;
  if (s == nullptr) s = fd_table::find(fd);
  if (s == nullptr) return r;
  const std::uint32_t st = s->state();
  if (!(st & fd_slot::kernel_nonblock) || (st & fd_slot::user_nonblock)) return r;
  if (fiber && !fd_slot::managed(st)) return r;
  const io_time_point deadline = s->deadline(writing);
  if (e == EAGAIN) {
    // An AF_UNIX listener's backlog is full. Nothing on the connecting
    // socket says when there is room (it polls writable throughout), so
    // try again after a sleep that doubles from 100 us to 10 ms (a
    // fiber's sleep parks), until SO_SNDTIMEO, as the kernel's wait does.
    auto pause = std::chrono::microseconds(100);
    for (;;) {
      if (deadline != io_time_point::max() && std::chrono::steady_clock::now() + pause >= deadline) {
        set_errno(EAGAIN);
        return -1;
      }
      if (fiber) {
        try {
          parked_scope parked;
          spindle::detail::sleep_until_uncancellable(std::chrono::steady_clock::now() + pause);
        } catch (...) {
        }
      } else {
        const timespec ts{0, static_cast<long>(std::chrono::nanoseconds(pause).count())};
        (void)real::nanosleep(&ts, nullptr);
      }
      pause = std::min(pause * 2, std::chrono::microseconds(10000));
      r = real::connect(fd, addr, len);
      if (r == 0) {
        set_errno(saved);
        return 0;
      }
      if (get_errno() != EAGAIN) return r;
    }
  }
  for (;;) {
    // Wait for writability through the transfer path (op, lock, park or
    // poll), with an attempt that reports readiness only.
    const ssize_t w = transfer("connect", fd, s, writing, 0, until::some, fiber, caller, [&](std::size_t) -> ssize_t {
      pollfd p{fd, POLLOUT, 0};
      if (real::poll(&p, 1, 0) > 0) return 0;
      set_errno(EAGAIN);
      return -1;
    });
    if (w == stale_slot) {  // reused behind the hook's back: as the kernel said
      fd_table::forget(fd);
      set_errno(e);
      return -1;
    }
    if (w < 0) {
      e = get_errno();
      set_errno(e == EAGAIN ? EINPROGRESS : e);  // timed out: the kernel's answer
      return -1;
    }
    int err = 0;
    socklen_t elen = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) return -1;
    if (err != 0) {
      set_errno(err);
      return -1;
    }
    set_errno(saved);
    return 0;
  }
}

// The slow paths of the transfer hooks below, out of line so that the
// hooks themselves need no stack frame on the way straight through.
[[gnu::noinline]] ssize_t read_slow(int fd, void* buf, size_t n, const void* caller) noexcept {
  return slow_call("read", fd, reading, n, false, false, caller,
              [=](std::size_t) { return real::read(fd, buf, n); });
}

[[gnu::noinline]] ssize_t readv_slow(int fd, const iovec* iov, int count, const void* caller) noexcept {
  return slow_call("readv", fd, reading, iov_total(iov, count), false, false, caller,
              [=](std::size_t) { return real::readv(fd, iov, count); });
}

[[gnu::noinline]] ssize_t recv_slow(int fd, void* buf, size_t n, int flags, const void* caller) noexcept {
  return slow_call("recv", fd, reading, n, (flags & MSG_WAITALL) != 0, (flags & MSG_DONTWAIT) != 0,
              caller, [=](std::size_t done) {
                return real::recv(fd, static_cast<char*>(buf) + done, n - done, flags);
              });
}

[[gnu::noinline]] ssize_t recvfrom_slow(int fd, void* buf, size_t n, int flags, sockaddr* addr, socklen_t* len, const void* caller) noexcept {
  return slow_call("recvfrom", fd, reading, n, (flags & MSG_WAITALL) != 0, (flags & MSG_DONTWAIT) != 0,
              caller, [=](std::size_t done) {
                return real::recvfrom(fd, static_cast<char*>(buf) + done, n - done, flags, addr, len);
              });
}

[[gnu::noinline]] ssize_t recvmsg_slow(int fd, msghdr* msg, int flags, const void* caller) noexcept {
  // MSG_WAITALL on a stream: the rest of the bytes into the rest of the
  // buffers (ancillary data and flags are the first part's).
  const std::size_t total = iov_total(msg->msg_iov, static_cast<int>(msg->msg_iovlen));
  return slow_call("recvmsg", fd, reading, total, (flags & MSG_WAITALL) != 0, (flags & MSG_DONTWAIT) != 0, caller,
                   [=](std::size_t done) -> ssize_t {
                     if (done == 0) return real::recvmsg(fd, msg, flags);
                     std::vector<iovec> rest = iov_after(msg->msg_iov, static_cast<int>(msg->msg_iovlen), done);
                     msghdr m{};
                     m.msg_iov = rest.data();
                     m.msg_iovlen = rest.size();
                     return real::recvmsg(fd, &m, flags);
                   });
}

[[gnu::noinline]] ssize_t write_slow(int fd, const void* buf, size_t n, const void* caller) noexcept {
  return slow_call("write", fd, writing, n, true, false, caller, [=](std::size_t done) {
    return real::write(fd, static_cast<const char*>(buf) + done, n - done);
  });
}

[[gnu::noinline]] ssize_t writev_slow(int fd, const iovec* iov, int count, const void* caller) noexcept {
  return slow_call("writev", fd, writing, iov_total(iov, count), true, false, caller,
              [=](std::size_t done) -> ssize_t {
                if (done == 0) return real::writev(fd, iov, count);
                const std::vector<iovec> rest = iov_after(iov, count, done);
                return real::writev(fd, rest.data(), static_cast<int>(rest.size()));
              });
}

[[gnu::noinline]] ssize_t send_slow(int fd, const void* buf, size_t n, int flags, const void* caller) noexcept {
  return slow_call("send", fd, writing, n, true, (flags & MSG_DONTWAIT) != 0, caller,
              [=](std::size_t done) { return real::send(fd, static_cast<const char*>(buf) + done, n - done, flags); });
}

[[gnu::noinline]] ssize_t sendto_slow(int fd, const void* buf, size_t n, int flags, const sockaddr* addr, socklen_t len, const void* caller) noexcept {
  return slow_call("sendto", fd, writing, n, true, (flags & MSG_DONTWAIT) != 0, caller,
              [=](std::size_t done) {
                return real::sendto(fd, static_cast<const char*>(buf) + done, n - done, flags, addr, len);
              });
}

[[gnu::noinline]] ssize_t sendmsg_slow(int fd, const msghdr* msg, int flags, const void* caller) noexcept {
  return slow_call("sendmsg", fd, writing, iov_total(msg->msg_iov, static_cast<int>(msg->msg_iovlen)), true,
              (flags & MSG_DONTWAIT) != 0, caller, [=](std::size_t done) -> ssize_t {
                if (done == 0) return real::sendmsg(fd, msg, flags);
                // The rest of the bytes; ancillary data went with the first part.
                std::vector<iovec> rest = iov_after(msg->msg_iov, static_cast<int>(msg->msg_iovlen), done);
                msghdr m = *msg;
                m.msg_iov = rest.data();
                m.msg_iovlen = rest.size();
                m.msg_control = nullptr;
                m.msg_controllen = 0;
                return real::sendmsg(fd, &m, flags);
              });
}

}  // namespace
}  // namespace spindle::hook_detail

using namespace spindle::hook_detail;

// ---- Creating descriptors ----

SPINDLE_HOOK_API int socket(int domain, int type, int protocol) noexcept {
  const bool user_nb = (type & SOCK_NONBLOCK) != 0;
  const bool fiber = spindle::detail::on_fiber();
  const int fd = real::socket(domain, fiber ? type | SOCK_NONBLOCK : type, protocol);
  if (fd >= 0) fd_table::created(fd, fd_kind::socket, user_nb, fiber || user_nb, is_stream_type(type));
  return fd;
}

SPINDLE_HOOK_API int socketpair(int domain, int type, int protocol, int sv[2]) noexcept {
  const bool user_nb = (type & SOCK_NONBLOCK) != 0;
  const bool fiber = spindle::detail::on_fiber();
  const int r = real::socketpair(domain, fiber ? type | SOCK_NONBLOCK : type, protocol, sv);
  if (r == 0) {
    for (int i = 0; i < 2; ++i) {
      fd_table::created(sv[i], fd_kind::socket, user_nb, fiber || user_nb, is_stream_type(type));
    }
  }
  return r;
}

// Pipes are made non-blocking only when a fiber first waits on one, not
// here: a pipe is often created for a child process, which would see
// O_NONBLOCK too.
SPINDLE_HOOK_API int pipe2(int fds[2], int flags) noexcept {
  const int r = real::pipe2(fds, flags);
  if (r == 0) {
    const bool nb = (flags & O_NONBLOCK) != 0;
    for (int i = 0; i < 2; ++i) fd_table::created(fds[i], fd_kind::pipe, nb, nb, (flags & O_DIRECT) == 0);
  }
  return r;
}

SPINDLE_HOOK_API int pipe(int fds[2]) noexcept { return pipe2(fds, 0); }

SPINDLE_HOOK_API int accept(int fd, sockaddr* addr, socklen_t* len) {
  return do_accept("accept", fd, addr, len, 0, __builtin_return_address(0));
}

SPINDLE_HOOK_API int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  return do_accept("accept4", fd, addr, len, flags, __builtin_return_address(0));
}

SPINDLE_HOOK_API int connect(int fd, const sockaddr* addr, socklen_t len) {
  return do_connect(fd, addr, len, __builtin_return_address(0));
}

// ---- Reading ----

SPINDLE_HOOK_API ssize_t read(int fd, void* buf, size_t n) {
  if (passes_through(fd, false)) [[likely]] return real::read(fd, buf, n);
  return read_slow(fd, buf, n, __builtin_return_address(0));
}

SPINDLE_HOOK_API ssize_t readv(int fd, const iovec* iov, int count) {
  if (passes_through(fd, false)) [[likely]] return real::readv(fd, iov, count);
  return readv_slow(fd, iov, count, __builtin_return_address(0));
}

SPINDLE_HOOK_API ssize_t recv(int fd, void* buf, size_t n, int flags) {
  if (passes_through(fd, (flags & MSG_DONTWAIT) != 0)) [[likely]] return real::recv(fd, buf, n, flags);
  return recv_slow(fd, buf, n, flags, __builtin_return_address(0));
}

SPINDLE_HOOK_API ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr, socklen_t* len) {
  if (passes_through(fd, (flags & MSG_DONTWAIT) != 0)) [[likely]] return real::recvfrom(fd, buf, n, flags, addr, len);
  return recvfrom_slow(fd, buf, n, flags, addr, len, __builtin_return_address(0));
}

SPINDLE_HOOK_API ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  if (msg == nullptr) return real::recvmsg(fd, msg, flags);  // EFAULT
  if (passes_through(fd, (flags & MSG_DONTWAIT) != 0)) [[likely]] return real::recvmsg(fd, msg, flags);
  return recvmsg_slow(fd, msg, flags, __builtin_return_address(0));
}

// ---- Writing: on a byte stream, a blocking write goes on until all is written ----

SPINDLE_HOOK_API ssize_t write(int fd, const void* buf, size_t n) {
  if (passes_through(fd, false)) [[likely]] return real::write(fd, buf, n);
  return write_slow(fd, buf, n, __builtin_return_address(0));
}

SPINDLE_HOOK_API ssize_t writev(int fd, const iovec* iov, int count) {
  if (passes_through(fd, false)) [[likely]] return real::writev(fd, iov, count);
  return writev_slow(fd, iov, count, __builtin_return_address(0));
}

SPINDLE_HOOK_API ssize_t send(int fd, const void* buf, size_t n, int flags) {
  if (passes_through(fd, (flags & MSG_DONTWAIT) != 0)) [[likely]] return real::send(fd, buf, n, flags);
  return send_slow(fd, buf, n, flags, __builtin_return_address(0));
}

SPINDLE_HOOK_API ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr, socklen_t len) {
  if (passes_through(fd, (flags & MSG_DONTWAIT) != 0)) [[likely]] return real::sendto(fd, buf, n, flags, addr, len);
  return sendto_slow(fd, buf, n, flags, addr, len, __builtin_return_address(0));
}

SPINDLE_HOOK_API ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  if (msg == nullptr) return real::sendmsg(fd, msg, flags);  // EFAULT
  if (passes_through(fd, (flags & MSG_DONTWAIT) != 0)) [[likely]] return real::sendmsg(fd, msg, flags);
  return sendmsg_slow(fd, msg, flags, __builtin_return_address(0));
}

// ---- _FORTIFY_SOURCE: the checks glibc's would make, then the hooked call ----

extern "C" [[noreturn]] void __chk_fail(void);

SPINDLE_HOOK_API ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) __chk_fail();
  return read(fd, buf, n);
}

SPINDLE_HOOK_API ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  if (n > buflen) __chk_fail();
  return recv(fd, buf, n, flags);
}

SPINDLE_HOOK_API ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags, sockaddr* addr,
                                        socklen_t* len) {
  if (n > buflen) __chk_fail();
  return recvfrom(fd, buf, n, flags, addr, len);
}
