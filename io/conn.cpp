#include "io/conn.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "io/detail/fd_state.h"
#include "io/detail/file_ops.h"
#include "io/detail/iovec_cursor.h"
#include "io/detail/or_throw.h"
#include "io/detail/page_cache.h"
#include "io/detail/socket_util.h"
#include "io/file.h"
#include "sched/io_wait.h"

namespace spindle {

using detail::fd_state;
using detail::io_direction;
using detail::or_throw;

namespace {

// TCP_ULP_NAME_MAX: the longest upper-layer protocol name getsockopt()
// reports for TCP_ULP ("tls"), NUL included.
constexpr std::size_t tcp_ulp_name_max = 16;

// The largest TCP_KEEPIDLE and TCP_KEEPINTVL Linux takes (MAX_TCP_KEEPIDLE,
// MAX_TCP_KEEPINTVL); a larger value fails with EINVAL, so it is capped.
constexpr std::chrono::seconds::rep max_keepalive_seconds = 32767;

int int_socket_option(int fd, int level, int name) noexcept {
  int v = -1;
  socklen_t len = sizeof v;
  return ::getsockopt(fd, level, name, &v, &len) == 0 ? v : -1;
}

// Whether the socket `fd` is a TCP stream with no upper-layer protocol
// (kernel TLS, whose reads stop at record boundaries): the one kind whose
// short reads prove its queue empty (fd_state::short_read_is_drained()).
bool is_plain_tcp(int fd) noexcept {
  if (int_socket_option(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
      int_socket_option(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP) {
    return false;
  }
  char ulp[tcp_ulp_name_max];
  socklen_t len = sizeof ulp;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_ULP, ulp, &len) == 0 && len == 0;
}

}  // namespace

connection::connection(std::unique_ptr<detail::fd_state> s) noexcept : basic_socket(std::move(s)) {}

connection connection::adopt(int fd, std::error_code& ec) noexcept {
  ec.clear();
  if (fd < 0) {
    ec = std::make_error_code(std::errc::bad_file_descriptor);
    return {};
  }
  if (!detail::set_nonblocking(fd, ec)) return {};
  struct stat st {};
  detail::fd_kind kind = detail::fd_kind::other;
  if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
    kind = is_plain_tcp(fd) ? detail::fd_kind::tcp_stream : detail::fd_kind::socket;
  }
  return connection(std::make_unique<fd_state>(fd, kind));
}

connection connection::adopt(int fd) {
  return or_throw("spindle::connection::adopt", [&](std::error_code& ec) { return adopt(fd, ec); });
}

// ---- Reading ----

std::size_t connection::read_some(std::span<std::byte> buf, deadline d, std::error_code& ec) noexcept {
  fd_state* const s = state();
  if (buf.empty()) {
    const fd_state::op op(s, ec);  // reads nothing, but says whether it could
    return 0;
  }
  detail::io_lock io(s, detail::reading, ec);
  if (!io) return 0;
  if (s->read_should_wait() && (ec = io.wait(d))) return 0;
  const int fd = io.fd();
  const bool is_socket = io.is_socket();
  const ssize_t n = io.retry(d, ec, [&] {
    return is_socket ? ::recv(fd, buf.data(), buf.size(), 0) : ::read(fd, buf.data(), buf.size());
  });
  if (n < 0) return 0;
  s->note_read(static_cast<std::size_t>(n), buf.size());
  return static_cast<std::size_t>(n);
}

std::size_t connection::read_some(std::span<std::byte> buf, std::error_code& ec) noexcept {
  return read_some(buf, deadline{}, ec);
}
std::size_t connection::read_some(std::span<std::byte> buf, deadline d) {
  return or_throw("spindle::connection::read_some", [&](std::error_code& ec) { return read_some(buf, d, ec); });
}
std::size_t connection::read_some(std::span<char> buf, deadline d) { return read_some(std::as_writable_bytes(buf), d); }
std::size_t connection::read_some(std::span<char> buf, std::error_code& ec) noexcept {
  return read_some(std::as_writable_bytes(buf), deadline{}, ec);
}
std::size_t connection::read_some(std::span<char> buf, deadline d, std::error_code& ec) noexcept {
  return read_some(std::as_writable_bytes(buf), d, ec);
}

std::size_t connection::read_exactly(std::span<std::byte> buf, deadline d, std::error_code& ec) noexcept {
  fd_state* const s = state();
  detail::io_lock io(s, detail::reading, ec);
  if (!io) return 0;
  s->forget_read();
  const int fd = io.fd();
  const bool is_socket = io.is_socket();
  std::size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = io.retry(d, ec, [&] {
      return is_socket ? ::recv(fd, buf.data() + done, buf.size() - done, 0)
                       : ::read(fd, buf.data() + done, buf.size() - done);
    });
    if (n < 0) return done;
    if (n == 0) {
      ec = done == 0 ? io_errc::eof : io_errc::unexpected_eof;
      return done;
    }
    done += static_cast<std::size_t>(n);
  }
  return done;
}

std::size_t connection::read_exactly(std::span<std::byte> buf, std::error_code& ec) noexcept {
  return read_exactly(buf, deadline{}, ec);
}
std::size_t connection::read_exactly(std::span<std::byte> buf, deadline d) {
  return or_throw("spindle::connection::read_exactly", [&](std::error_code& ec) { return read_exactly(buf, d, ec); });
}
std::size_t connection::read_exactly(std::span<char> buf, deadline d) {
  return read_exactly(std::as_writable_bytes(buf), d);
}
std::size_t connection::read_exactly(std::span<char> buf, std::error_code& ec) noexcept {
  return read_exactly(std::as_writable_bytes(buf), deadline{}, ec);
}
std::size_t connection::read_exactly(std::span<char> buf, deadline d, std::error_code& ec) noexcept {
  return read_exactly(std::as_writable_bytes(buf), d, ec);
}

// ---- Writing ----

namespace {

// One buffer, the common case: send() (write() on a non-socket), with no
// iovec batch in the frame. A parked fiber's stack is what its wake-up
// touches again, and with a thousand connections that is cold memory:
// keeping the frames below the read and the write small matters
// (docs/sched.md, "Cold fibers").
[[gnu::noinline]] std::size_t write_one(detail::io_lock& io, const iovec& v, deadline d,
                                        std::error_code& ec) noexcept {
  const int fd = io.fd();
  const bool is_socket = io.is_socket();
  const auto* p = static_cast<const char*>(v.iov_base);
  std::size_t total = 0;
  while (total < v.iov_len) {
    const ssize_t n = io.retry(d, ec, [&]() -> ssize_t {
      return is_socket ? ::send(fd, p + total, v.iov_len - total, MSG_NOSIGNAL)
                       : ::write(fd, p + total, v.iov_len - total);
    });
    if (n < 0) break;
    total += static_cast<std::size_t>(n);
  }
  return total;
}

[[gnu::noinline]] std::size_t write_vector(detail::io_lock& io, std::span<const iovec> bufs, deadline d,
                                           std::error_code& ec) noexcept {
  const int fd = io.fd();
  const bool is_socket = io.is_socket();
  detail::iovec_cursor cursor(bufs);
  iovec batch[detail::iov_batch];
  std::size_t total = 0;
  while (!cursor.done()) {
    const int count = cursor.fill(batch);
    const ssize_t n = io.retry(d, ec, [&]() -> ssize_t {
      if (is_socket) {
        msghdr msg{};
        msg.msg_iov = batch;
        msg.msg_iovlen = static_cast<std::size_t>(count);
        return ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      }
      return ::writev(fd, batch, count);
    });
    if (n < 0) break;
    total += static_cast<std::size_t>(n);
    cursor.advance(static_cast<std::size_t>(n));
  }
  return total;
}

}  // namespace

std::size_t connection::write_all(std::span<const iovec> bufs, deadline d, std::error_code& ec) noexcept {
  detail::io_lock io(state(), detail::writing, ec);
  if (!io) return 0;
  if (bufs.size() == 1) return write_one(io, bufs[0], d, ec);
  return write_vector(io, bufs, d, ec);
}

std::size_t connection::write_all(std::span<const iovec> bufs, std::error_code& ec) noexcept {
  return write_all(bufs, deadline{}, ec);
}
std::size_t connection::write_all(std::span<const iovec> bufs, deadline d) {
  return or_throw("spindle::connection::write_all", [&](std::error_code& ec) { return write_all(bufs, d, ec); });
}

std::size_t connection::write_all(std::span<const std::byte> data, deadline d, std::error_code& ec) noexcept {
  const iovec v{const_cast<std::byte*>(data.data()), data.size()};
  return write_all(std::span<const iovec>(&v, 1), d, ec);
}
std::size_t connection::write_all(std::span<const std::byte> data, std::error_code& ec) noexcept {
  return write_all(data, deadline{}, ec);
}
std::size_t connection::write_all(std::span<const std::byte> data, deadline d) {
  return or_throw("spindle::connection::write_all", [&](std::error_code& ec) { return write_all(data, d, ec); });
}
std::size_t connection::write_all(std::string_view data, deadline d) {
  return write_all(std::as_bytes(std::span(data.data(), data.size())), d);
}
std::size_t connection::write_all(std::string_view data, std::error_code& ec) noexcept {
  return write_all(std::as_bytes(std::span(data.data(), data.size())), deadline{}, ec);
}
std::size_t connection::write_all(std::string_view data, deadline d, std::error_code& ec) noexcept {
  return write_all(std::as_bytes(std::span(data.data(), data.size())), d, ec);
}

// ---- Sending a file ----

namespace {

// The range one cachestat(2) looks at before one sendfile(2): the worker
// then holds at most one check of 64 pages between chances to switch (a
// sendfile stops anyway where the socket's buffer is full).
constexpr std::size_t send_file_chunk = 256 * 1024;
// The buffer of the copy path, for a range that is not (known to be) all
// cached: below malloc's mmap threshold, so it costs no system calls.
constexpr std::size_t send_file_bounce = 64 * 1024;

}  // namespace

std::size_t connection::send_file(const file& f, std::uint64_t offset, std::size_t count, deadline d,
                                  std::error_code& ec) noexcept {
  ec.clear();
  const int in = f.native_handle();
  if (in < 0) {
    ec = std::make_error_code(std::errc::bad_file_descriptor);
    return 0;
  }
  constexpr auto max_off = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());
  if (offset > max_off) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return 0;
  }
  count = static_cast<std::size_t>(std::min<std::uint64_t>(count, max_off - offset));
  detail::io_lock io(state(), detail::writing, ec);
  if (!io) return 0;
  std::unique_ptr<std::byte[]> bounce;  // the copy path's, made when first needed
  std::size_t sent = 0;
  while (sent < count) {
    const std::uint64_t at = offset + sent;
    const std::size_t chunk = std::min(count - sent, send_file_chunk);
    if (detail::range_cached(in, at, chunk) == detail::cache_state::cached) {
      // All in memory: from the page cache to the socket, on this worker.
      off_t pos = static_cast<off_t>(at);
      const ssize_t n = io.retry(d, ec, [&] { return ::sendfile(io.fd(), in, &pos, chunk); });
      if (n <= 0) break;  // an error, or the file ended
      sent += static_cast<std::size_t>(n);
      continue;
    }
    // Otherwise copy: what is cached read on the worker, the rest on the
    // pool (which brings it into the cache), then written from the buffer.
    if (!bounce) {
      bounce.reset(new (std::nothrow) std::byte[send_file_bounce]);
      if (!bounce) {
        ec = std::make_error_code(std::errc::not_enough_memory);
        break;
      }
    }
    const std::size_t want = std::min(chunk, send_file_bounce);
    const iovec v{bounce.get(), want};
    const detail::cached_read fast = detail::read_cached(in, &v, 1, want, static_cast<off_t>(at));
    std::size_t got = fast.bytes;
    if (!fast.finished) {
      std::byte* const buf = bounce.get();
      const detail::io_result r = spindle::blocking([&]() noexcept {
        return detail::transfer(want - got, true, [&](std::size_t done) {
          return ::pread(in, buf + got + done, want - got - done, static_cast<off_t>(at + got + done));
        });
      });
      got += r.bytes;
      if (r.error != 0) {
        ec = detail::errno_code(r.error);
        break;
      }
    }
    if (got == 0) break;  // the file ended
    const iovec out{bounce.get(), got};
    sent += write_one(io, out, d, ec);
    if (ec || got < want) break;  // a socket error, or the file ended
  }
  return sent;
}

std::size_t connection::send_file(const file& f, std::uint64_t offset, std::size_t count,
                                  std::error_code& ec) noexcept {
  return send_file(f, offset, count, deadline{}, ec);
}
std::size_t connection::send_file(const file& f, std::uint64_t offset, std::size_t count, deadline d) {
  return or_throw("spindle::connection::send_file",
                  [&](std::error_code& ec) { return send_file(f, offset, count, d, ec); });
}

// ---- The rest ----

void connection::shutdown(shutdown_type how, std::error_code& ec) noexcept {
  const fd_state::op op(state(), ec);
  if (!op) return;
  const int h = how == shutdown_type::read ? SHUT_RD : how == shutdown_type::write ? SHUT_WR : SHUT_RDWR;
  if (::shutdown(op.fd(), h) != 0) ec = detail::last_error();
}
void connection::shutdown(shutdown_type how) {
  or_throw("spindle::connection::shutdown", [&](std::error_code& ec) { shutdown(how, ec); });
}

address connection::remote_address(std::error_code& ec) const noexcept {
  const fd_state::op op(state(), ec);
  if (!op) return {};
  return detail::socket_name(op.fd(), true, ec);
}
address connection::remote_address() const {
  return or_throw("spindle::connection::remote_address", [&](std::error_code& ec) { return remote_address(ec); });
}

// Socket options are set under an op: the descriptor cannot be closed (and
// its number given to a new socket) under the setsockopt().
void connection::set_nodelay(bool on, std::error_code& ec) noexcept {
  const fd_state::op op(state(), ec);
  if (!op) return;
  detail::set_int_option(op.fd(), IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, ec);
}
void connection::set_nodelay(bool on) {
  or_throw("spindle::connection::set_nodelay", [&](std::error_code& ec) { set_nodelay(on, ec); });
}

void connection::set_keepalive(bool on, std::chrono::seconds idle, std::error_code& ec) noexcept {
  const fd_state::op op(state(), ec);
  if (!op) return;
  detail::set_int_option(op.fd(), SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0, ec);
  if (ec || !on || idle.count() <= 0) return;
  const int secs = static_cast<int>(std::min(idle.count(), max_keepalive_seconds));
  detail::set_int_option(op.fd(), IPPROTO_TCP, TCP_KEEPIDLE, secs, ec);
  if (!ec) detail::set_int_option(op.fd(), IPPROTO_TCP, TCP_KEEPINTVL, secs, ec);
}
void connection::set_keepalive(bool on, std::chrono::seconds idle) {
  or_throw("spindle::connection::set_keepalive", [&](std::error_code& ec) { set_keepalive(on, idle, ec); });
}

// ---- dial ----

connection dial(const address& to, deadline d, std::error_code& ec) noexcept {
  const int fd = detail::open_socket(to, SOCK_STREAM, ec);
  if (fd < 0) return {};
  const bool tcp = to.is_ipv4() || to.is_ipv6();
  if (tcp) {
    std::error_code ignored;
    detail::set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, ignored);
  }
  int r;
  do {
    r = ::connect(fd, to.data(), to.size());
  } while (r != 0 && errno == EINTR);
  // A Unix socket's EAGAIN (the listener's backlog is full) is an error
  // here, as in Go: only EINPROGRESS means "wait for it".
  if (r != 0 && errno != EINPROGRESS) {
    ec = detail::last_error();
    ::close(fd);
    return {};
  }
  // Registered with the netpoll only now: until connect() started, the
  // socket reported itself hung up (tcp_poll in TCP_CLOSE, unix_poll for
  // an unconnected stream), which the netpoll would take as final.
  auto s = std::make_unique<fd_state>(fd, tcp ? detail::fd_kind::tcp_stream : detail::fd_kind::socket);
  if (r != 0) {
    detail::io_lock io(s.get(), detail::writing, ec);  // a new state: nobody else has it
    // Wait until the connect has an outcome. A write edge is not taken
    // as proof of one: as Go's netFD.connect does (golang.org/issue/19289),
    // check that the socket is connected before believing it.
    for (;;) {
      if ((ec = io.wait(d))) return {};
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) {
        ec.assign(err, std::system_category());
        return {};
      }
      sockaddr_storage peer;
      socklen_t peer_len = sizeof peer;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0) break;
      if (errno != ENOTCONN) {
        ec = detail::last_error();
        return {};
      }
    }
  }
  return connection(std::move(s));
}

connection dial(const address& to, deadline d) {
  return or_throw("spindle::dial", [&](std::error_code& ec) { return dial(to, d, ec); });
}

connection dial(std::string_view where, deadline d, std::error_code& ec) noexcept {
  std::vector<address> candidates = detail::addresses_for(where, d, false, ec);
  if (ec) return {};
  for (const address& a : candidates) {
    connection c = dial(a, d, ec);
    if (!ec) return c;
    if (ec == std::errc::timed_out) return {};  // the deadline covers all attempts
  }
  return {};
}
connection dial(std::string_view where, std::error_code& ec) noexcept { return dial(where, deadline{}, ec); }
connection dial(std::string_view where, deadline d) {
  return or_throw("spindle::dial", [&](std::error_code& ec) { return dial(where, d, ec); });
}

// ---- Foreign descriptors ----

namespace {
// The wait registers a duplicate of `fd` with the netpoll, for this wait
// alone. Not libev (an ev_io in the loop of the worker the fiber parks on,
// the first design): libev adds the descriptor to its epoll later, in that
// worker's loop, and if it has been closed by then (or was never open),
// libev 4.33 asserts in epoll_modify (EBADF: "I/O watcher with invalid fd
// found in epoll_ctl") and the process aborts in the worker, before any
// EV_ERROR could reach a callback; a check beforehand cannot close that
// window. Here the epoll_ctl happens in the call, and on a descriptor of
// our own that nobody else can close: the file stays open to the wait
// until it ends, and the registration is removed before the duplicate is
// closed (closing it is not enough while `fd` keeps the file open).
void wait_fd(int fd, io_direction dir, deadline d, std::error_code& ec) noexcept {
  ec.clear();
  if (fd < 0) {
    ec = std::make_error_code(std::errc::bad_file_descriptor);
    return;
  }
  const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) {
    ec = detail::last_error();  // EBADF for a closed descriptor
    return;
  }
  detail::poll_desc* pd = detail::netpoll_open(own, dir == io_direction::write);
  if (pd == nullptr) {
    // EPERM: a regular file or a directory, which epoll refuses, is always
    // ready (as poll(2) reports it).
    if (errno != EPERM) ec = detail::last_error();
    ::close(own);
    return;
  }
  for (bool waiting = true; waiting;) {
    switch (detail::netpoll_wait(pd, dir, d.when(), nullptr, /*cancellable=*/true)) {
      case detail::io_wait_result::ready:
        waiting = false;
        break;
      case detail::io_wait_result::timed_out:
        ec = std::make_error_code(std::errc::timed_out);
        waiting = false;
        break;
      case detail::io_wait_result::canceled:  // the calling fiber's stop token was stopped
        ec = std::make_error_code(std::errc::operation_canceled);
        waiting = false;
        break;
      case detail::io_wait_result::interrupted:
        break;
    }
  }
  detail::netpoll_close(pd);
  ::close(own);
}
}  // namespace

void wait_readable(int fd, deadline d, std::error_code& ec) noexcept { wait_fd(fd, io_direction::read, d, ec); }
void wait_readable(int fd, deadline d) {
  or_throw("spindle::wait_readable", [&](std::error_code& ec) { wait_readable(fd, d, ec); });
}
void wait_writable(int fd, deadline d, std::error_code& ec) noexcept { wait_fd(fd, io_direction::write, d, ec); }
void wait_writable(int fd, deadline d) {
  or_throw("spindle::wait_writable", [&](std::error_code& ec) { wait_writable(fd, d, ec); });
}

}  // namespace spindle
