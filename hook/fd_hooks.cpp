// The hooked calls that only keep the books: fcntl (and fcntl64, the
// name _FILE_OFFSET_BITS=64 binds it to), ioctl, setsockopt, close, dup,
// dup2, dup3. They track the blocking mode the *user* set, the socket
// timeouts, and descriptors going away (waking what is parked on them).
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>

#include "hook/detail/fd_table.h"
#include "hook/detail/real_calls.h"

#define SPINDLE_HOOK_API extern "C" __attribute__((visibility("default")))

namespace spindle::hook_detail {
namespace {

// The hook made the file non-blocking behind the user's back: the user's
// view of O_NONBLOCK is the slot's, not the kernel's.
bool hidden_nonblock(std::uint32_t st) noexcept {
  return (st & fd_slot::kernel_nonblock) && !(st & fd_slot::user_nonblock);
}

int do_fcntl(int fd, int cmd, unsigned long arg, bool wide) noexcept {
  auto real_call = [&](unsigned long a) { return wide ? real::fcntl64(fd, cmd, a) : real::fcntl(fd, cmd, a); };
  switch (cmd) {
    case F_GETFL: {
      const int r = real_call(arg);
      if (r < 0) return r;
      fd_slot* s = fd_table::find(fd);
      if (s != nullptr && fd_slot::waitable(s->state()) && hidden_nonblock(s->state())) {
        // Hide the hook's O_NONBLOCK, if this is still the file it set it on.
        if (s->still_same_file(fd)) return r & ~O_NONBLOCK;
        fd_table::forget(fd);
      }
      return r;
    }
    case F_SETFL: {
      fd_slot* s = fd_table::find(fd);
      const std::uint32_t st = s != nullptr ? s->state() : 0;
      const bool known = fd_slot::kind_of(st) != fd_kind::unknown;
      unsigned long kernel_arg = arg;
      // Keep a socket's or pipe's file non-blocking under a fiber's waits.
      if (known && fd_slot::waitable(st) && (st & fd_slot::hook_nonblock)) kernel_arg |= O_NONBLOCK;
      const int r = real_call(kernel_arg);
      if (r == 0 && known) {
        fd_table::for_each_sharing(fd, [&](fd_slot& o) { o.user_set_nonblock((arg & O_NONBLOCK) != 0); });
      }
      return r;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      const int r = real_call(arg);
      if (r >= 0) fd_table::duplicated(fd, r);
      return r;
    }
    default:
      return real_call(arg);
  }
}

// dup2() and dup3() close `to` first if it is open: run the close
// protocol on it (waking its parked calls with EBADF), with the real
// call in place of close(2). `from` is checked first, so that a failing
// call leaves `to` alone, as the kernel does.
template <class Dup>
int dup_over(int from, int to, Dup dup) noexcept {
  if (real::fcntl(from, F_GETFD) < 0) return -1;  // EBADF, errno set
  fd_slot* s = fd_table::find(to);
  const int r = s != nullptr ? s->close_and(to, dup) : dup(to);
  if (r >= 0) fd_table::duplicated(from, r);
  return r;
}

}  // namespace
}  // namespace spindle::hook_detail

using namespace spindle::hook_detail;

// fcntl's third argument is an int, a pointer or absent; reading it as an
// unsigned long is what glibc's own fcntl does, and passes any of them on.
SPINDLE_HOOK_API int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  const unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return do_fcntl(fd, cmd, arg, false);
}

SPINDLE_HOOK_API int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  const unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return do_fcntl(fd, cmd, arg, true);
}

SPINDLE_HOOK_API int ioctl(int fd, unsigned long request, ...) noexcept {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (request == FIONBIO && arg != nullptr) {
    fd_slot* s = fd_table::find(fd);
    const std::uint32_t st = s != nullptr ? s->state() : 0;
    if (fd_slot::kind_of(st) != fd_kind::unknown) {
      const bool on = *static_cast<const int*>(arg) != 0;
      if (!on && fd_slot::waitable(st) && (st & fd_slot::hook_nonblock)) {
        // Blocking mode, as far as the user can tell; the file stays
        // non-blocking under the hook. Still fail as the kernel would.
        if (real::fcntl(fd, F_GETFD) < 0) return -1;
        fd_table::for_each_sharing(fd, [](fd_slot& o) { o.user_set_nonblock(false); });
        return 0;
      }
      const int r = real::ioctl(fd, request, arg);
      if (r == 0) fd_table::for_each_sharing(fd, [&](fd_slot& o) { o.user_set_nonblock(on); });
      return r;
    }
  }
  return real::ioctl(fd, request, arg);
}

SPINDLE_HOOK_API int setsockopt(int fd, int level, int name, const void* value, socklen_t len) noexcept {
  const int r = real::setsockopt(fd, level, name, value, len);
  if (r == 0 && level == SOL_SOCKET && value != nullptr && len >= sizeof(timeval) &&
      (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
    if (fd_table::known(fd) != nullptr) {
      const timeval& tv = *static_cast<const timeval*>(value);
      // Zero is no timeout; Linux takes a negative one as "at once".
      const std::int64_t ns = tv.tv_sec < 0 ? 1 : tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
      const io_direction dir = name == SO_RCVTIMEO ? io_direction::read : io_direction::write;
      fd_table::for_each_sharing(fd, [&](fd_slot& o) { o.set_timeout(dir, ns); });
    }
  }
  return r;
}

SPINDLE_HOOK_API int close(int fd) {
  fd_slot* s = fd_table::find(fd);
  if (s == nullptr) return real::close(fd);
  return s->close_and(fd, [](int d) { return real::close(d); });
}

SPINDLE_HOOK_API int dup(int fd) noexcept {
  const int r = real::dup(fd);
  if (r >= 0) fd_table::duplicated(fd, r);
  return r;
}

SPINDLE_HOOK_API int dup2(int from, int to) noexcept {
  if (from == to) return real::dup2(from, to);
  return dup_over(from, to, [from](int t) { return real::dup2(from, t); });
}

SPINDLE_HOOK_API int dup3(int from, int to, int flags) noexcept {
  // EINVAL for the same descriptor or flags other than O_CLOEXEC, before
  // anything happens to `to`, as the kernel's.
  if (from == to || (flags & ~O_CLOEXEC) != 0) return real::dup3(from, to, flags);
  return dup_over(from, to, [from, flags](int t) { return real::dup3(from, t, flags); });
}
