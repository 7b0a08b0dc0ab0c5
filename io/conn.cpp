#include "io/conn.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "io/detail/fd_state.h"
#include "io/detail/socket_util.h"
#include "io/dns.h"
#include "sched/detail/netpoll.h"

namespace spindle {

using detail::fd_state;
using direction = detail::fd_state::direction;

namespace detail {

bool set_nonblocking(int fd, std::error_code& ec) noexcept {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ((flags & O_NONBLOCK) == 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)) {
    ec = last_error();
    return false;
  }
  return true;
}

void set_int_option(int fd, int level, int name, int value, std::error_code& ec) noexcept {
  ec.clear();
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) ec = last_error();
}

address socket_name(int fd, bool peer, std::error_code& ec) noexcept {
  ec.clear();
  address a;
  socklen_t len = address::capacity();
  const int r = peer ? ::getpeername(fd, a.data_mut(), &len) : ::getsockname(fd, a.data_mut(), &len);
  if (r != 0) {
    ec = last_error();
    return {};
  }
  try {
    a.set_size(len);
  } catch (const std::exception&) {
    ec = std::make_error_code(std::errc::address_family_not_supported);
    return {};
  }
  return a;
}

std::vector<address> addresses_for(std::string_view where, const deadline& d, bool passive,
                                   std::error_code& ec) noexcept {
  ec.clear();
  if (where.starts_with("unix:") || where.starts_with("/") || where.starts_with("@")) {
    if (auto a = address::parse(where)) return {*a};
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  resolve_options opts;
  opts.passive = passive;
  opts.deadline = d.when();
  return resolve(where, opts, ec);
}

}  // namespace detail

namespace {

[[noreturn]] void throw_io(std::error_code ec, const char* what, std::size_t bytes = 0) {
  throw io_error(ec, what, bytes);
}

std::error_code not_open() noexcept { return std::make_error_code(std::errc::bad_file_descriptor); }

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
  char ulp[16];
  socklen_t len = sizeof ulp;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_ULP, ulp, &len) == 0 && len == 0;
}

}  // namespace

connection::connection() noexcept = default;
connection::connection(std::unique_ptr<detail::fd_state> s) noexcept : s_(std::move(s)) {}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&& other) noexcept {
  if (this != &other) {
    s_.reset();  // closes ours (fd_state's destructor)
    s_ = std::move(other.s_);
  }
  return *this;
}
connection::~connection() = default;

connection connection::adopt(int fd, std::error_code& ec) noexcept {
  ec.clear();
  if (fd < 0) {
    ec = not_open();
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
  std::error_code ec;
  connection c = adopt(fd, ec);
  if (ec) throw_io(ec, "spindle::connection::adopt");
  return c;
}

bool connection::is_open() const noexcept { return s_ != nullptr && !s_->closing(); }
int connection::native_handle() const noexcept { return is_open() ? s_->fd() : -1; }

// ---- Reading ----

std::size_t connection::read_some(std::span<std::byte> buf, deadline d, std::error_code& ec) noexcept {
  ec.clear();
  fd_state::op op(s_.get());
  if (!op) {
    ec = op.error();
    return 0;
  }
  if (buf.empty()) return 0;
  std::lock_guard lock(s_->lock(direction::read));
  if ((ec = s_->closing_error())) return 0;
  if (s_->read_drained && !s_->read_ready_hint() && (ec = s_->wait(direction::read, d))) return 0;
  const int fd = s_->fd();
  const bool is_socket = s_->is_socket();
  const ssize_t n = s_->retry(direction::read, d, ec, [&] {
    return is_socket ? ::recv(fd, buf.data(), buf.size(), 0) : ::read(fd, buf.data(), buf.size());
  });
  if (n < 0) return 0;
  s_->read_drained = s_->short_read_is_drained(static_cast<std::size_t>(n), buf.size());
  return static_cast<std::size_t>(n);
}

std::size_t connection::read_some(std::span<std::byte> buf, std::error_code& ec) noexcept {
  return read_some(buf, deadline{}, ec);
}
std::size_t connection::read_some(std::span<std::byte> buf, deadline d) {
  std::error_code ec;
  const std::size_t n = read_some(buf, d, ec);
  if (ec) throw_io(ec, "spindle::connection::read_some");
  return n;
}
std::size_t connection::read_some(std::span<char> buf, deadline d) { return read_some(std::as_writable_bytes(buf), d); }
std::size_t connection::read_some(std::span<char> buf, std::error_code& ec) noexcept {
  return read_some(std::as_writable_bytes(buf), deadline{}, ec);
}
std::size_t connection::read_some(std::span<char> buf, deadline d, std::error_code& ec) noexcept {
  return read_some(std::as_writable_bytes(buf), d, ec);
}

std::size_t connection::read_exactly(std::span<std::byte> buf, deadline d, std::error_code& ec) noexcept {
  ec.clear();
  fd_state::op op(s_.get());
  if (!op) {
    ec = op.error();
    return 0;
  }
  std::lock_guard lock(s_->lock(direction::read));
  if ((ec = s_->closing_error())) return 0;
  // Its reads may consume the edge of bytes it leaves in the queue.
  s_->read_drained = false;
  const int fd = s_->fd();
  const bool is_socket = s_->is_socket();
  std::size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = s_->retry(direction::read, d, ec, [&] {
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
  std::error_code ec;
  const std::size_t n = read_exactly(buf, d, ec);
  if (ec) throw_io(ec, "spindle::connection::read_exactly", n);
  return n;
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
[[gnu::noinline]] std::size_t write_one(fd_state& s, const iovec& v, deadline d, std::error_code& ec) noexcept {
  const int fd = s.fd();
  const bool is_socket = s.is_socket();
  const auto* p = static_cast<const char*>(v.iov_base);
  std::size_t total = 0;
  while (total < v.iov_len) {
    const ssize_t n = s.retry(direction::write, d, ec, [&]() -> ssize_t {
      return is_socket ? ::send(fd, p + total, v.iov_len - total, MSG_NOSIGNAL)
                       : ::write(fd, p + total, v.iov_len - total);
    });
    if (n < 0) break;
    total += static_cast<std::size_t>(n);
  }
  return total;
}

[[gnu::noinline]] std::size_t write_vector(fd_state& s, std::span<const iovec> bufs, deadline d,
                                         std::error_code& ec) noexcept {
  const int fd = s.fd();
  const bool is_socket = s.is_socket();
  // A local copy of the vector, advanced past what has been written.
  constexpr std::size_t batch = 64;
  iovec local[batch];
  std::size_t next = 0;    // first of `bufs` not yet copied into local
  std::size_t count = 0;   // entries of local in use
  std::size_t first = 0;   // first entry of local not fully written
  std::size_t total = 0;
  auto refill = [&] {
    count = 0;
    first = 0;
    while (next < bufs.size() && count < batch) {
      if (bufs[next].iov_len != 0) local[count++] = bufs[next];
      ++next;
    }
  };
  refill();
  while (first < count) {
    const ssize_t n = s.retry(direction::write, d, ec, [&]() -> ssize_t {
      if (is_socket) {
        msghdr msg{};
        msg.msg_iov = local + first;
        msg.msg_iovlen = count - first;
        return ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      }
      return ::writev(fd, local + first, static_cast<int>(count - first));
    });
    if (n < 0) return total;
    total += static_cast<std::size_t>(n);
    auto left = static_cast<std::size_t>(n);
    while (first < count && left >= local[first].iov_len) {
      left -= local[first].iov_len;
      ++first;
    }
    if (first < count) {
      local[first].iov_base = static_cast<char*>(local[first].iov_base) + left;
      local[first].iov_len -= left;
    } else {
      refill();
    }
  }
  return total;
}

}  // namespace

std::size_t connection::write_all(std::span<const iovec> bufs, deadline d, std::error_code& ec) noexcept {
  ec.clear();
  fd_state::op op(s_.get());
  if (!op) {
    ec = op.error();
    return 0;
  }
  std::lock_guard lock(s_->lock(direction::write));
  if ((ec = s_->closing_error())) return 0;
  if (bufs.size() == 1) return write_one(*s_, bufs[0], d, ec);
  return write_vector(*s_, bufs, d, ec);
}

std::size_t connection::write_all(std::span<const iovec> bufs, std::error_code& ec) noexcept {
  return write_all(bufs, deadline{}, ec);
}
std::size_t connection::write_all(std::span<const iovec> bufs, deadline d) {
  std::error_code ec;
  const std::size_t n = write_all(bufs, d, ec);
  if (ec) throw_io(ec, "spindle::connection::write_all", n);
  return n;
}

std::size_t connection::write_all(std::span<const std::byte> data, deadline d, std::error_code& ec) noexcept {
  const iovec v{const_cast<std::byte*>(data.data()), data.size()};
  return write_all(std::span<const iovec>(&v, 1), d, ec);
}
std::size_t connection::write_all(std::span<const std::byte> data, std::error_code& ec) noexcept {
  return write_all(data, deadline{}, ec);
}
std::size_t connection::write_all(std::span<const std::byte> data, deadline d) {
  std::error_code ec;
  const std::size_t n = write_all(data, d, ec);
  if (ec) throw_io(ec, "spindle::connection::write_all", n);
  return n;
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

// ---- The rest ----

void connection::shutdown(shutdown_type how, std::error_code& ec) noexcept {
  ec.clear();
  fd_state::op op(s_.get());
  if (!op) {
    ec = op.error();
    return;
  }
  const int h = how == shutdown_type::read ? SHUT_RD : how == shutdown_type::write ? SHUT_WR : SHUT_RDWR;
  if (::shutdown(s_->fd(), h) != 0) ec = detail::last_error();
}
void connection::shutdown(shutdown_type how) {
  std::error_code ec;
  shutdown(how, ec);
  if (ec) throw_io(ec, "spindle::connection::shutdown");
}

void connection::close(std::error_code& ec) noexcept {
  ec.clear();
  if (s_) s_->close(ec);
}
void connection::close() {
  std::error_code ec;
  close(ec);
  if (ec) throw_io(ec, "spindle::connection::close");
}

address connection::local_address(std::error_code& ec) const noexcept {
  if (!is_open()) {
    ec = not_open();
    return {};
  }
  fd_state::op op(s_.get());
  if (!op) {
    ec = op.error();
    return {};
  }
  return detail::socket_name(s_->fd(), false, ec);
}
address connection::local_address() const {
  std::error_code ec;
  address a = local_address(ec);
  if (ec) throw_io(ec, "spindle::connection::local_address");
  return a;
}
address connection::remote_address(std::error_code& ec) const noexcept {
  if (!is_open()) {
    ec = not_open();
    return {};
  }
  fd_state::op op(s_.get());
  if (!op) {
    ec = op.error();
    return {};
  }
  return detail::socket_name(s_->fd(), true, ec);
}
address connection::remote_address() const {
  std::error_code ec;
  address a = remote_address(ec);
  if (ec) throw_io(ec, "spindle::connection::remote_address");
  return a;
}

void connection::set_nodelay(bool on, std::error_code& ec) noexcept {
  if (!is_open()) {
    ec = not_open();
    return;
  }
  detail::set_int_option(s_->fd(), IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, ec);
}
void connection::set_nodelay(bool on) {
  std::error_code ec;
  set_nodelay(on, ec);
  if (ec) throw_io(ec, "spindle::connection::set_nodelay");
}

void connection::set_keepalive(bool on, std::chrono::seconds idle, std::error_code& ec) noexcept {
  if (!is_open()) {
    ec = not_open();
    return;
  }
  detail::set_int_option(s_->fd(), SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0, ec);
  if (ec || !on || idle.count() <= 0) return;
  const int secs = static_cast<int>(std::min<std::chrono::seconds::rep>(idle.count(), 32767));
  detail::set_int_option(s_->fd(), IPPROTO_TCP, TCP_KEEPIDLE, secs, ec);
  if (!ec) detail::set_int_option(s_->fd(), IPPROTO_TCP, TCP_KEEPINTVL, secs, ec);
}
void connection::set_keepalive(bool on, std::chrono::seconds idle) {
  std::error_code ec;
  set_keepalive(on, idle, ec);
  if (ec) throw_io(ec, "spindle::connection::set_keepalive");
}

void connection::set_deadline(deadline d) noexcept {
  set_read_deadline(d);
  set_write_deadline(d);
}
void connection::set_read_deadline(deadline d) noexcept {
  if (s_) s_->set_deadline(direction::read, d);
}
void connection::set_write_deadline(deadline d) noexcept {
  if (s_) s_->set_deadline(direction::write, d);
}

// ---- dial ----

connection dial(const address& to, deadline d, std::error_code& ec) noexcept {
  ec.clear();
  if (to.empty()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  const int fd = ::socket(to.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = detail::last_error();
    return {};
  }
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
    fd_state::op op(s.get());
    // Wait until the connect has an outcome. A write edge is not taken
    // as proof of one: as Go's netFD.connect does (golang.org/issue/19289),
    // check that the socket is connected before believing it.
    for (;;) {
      if ((ec = s->wait(direction::write, d))) return {};
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
  std::error_code ec;
  connection c = dial(to, d, ec);
  if (ec) throw_io(ec, "spindle::dial");
  return c;
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
  std::error_code ec;
  connection c = dial(where, d, ec);
  if (ec) throw_io(ec, "spindle::dial");
  return c;
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
void wait_fd(int fd, bool write, deadline d, std::error_code& ec) noexcept {
  ec.clear();
  if (fd < 0) {
    ec = not_open();
    return;
  }
  const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) {
    ec = detail::last_error();  // EBADF for a closed descriptor
    return;
  }
  detail::poll_desc* pd = detail::poll_desc::open(own, write);
  if (pd == nullptr) {
    // EPERM: a regular file or a directory, which epoll refuses, is always
    // ready (as poll(2) reports it).
    if (errno != EPERM) ec = detail::last_error();
    ::close(own);
    return;
  }
  for (bool waiting = true; waiting;) {
    switch (pd->wait(write ? detail::poll_desc::write : detail::poll_desc::read, d.when(), nullptr)) {
      case detail::poll_desc::result::ready:
        waiting = false;
        break;
      case detail::poll_desc::result::timed_out:
        ec = std::make_error_code(std::errc::timed_out);
        waiting = false;
        break;
      case detail::poll_desc::result::canceled:  // nobody cancels it; for completeness
        ec = std::make_error_code(std::errc::operation_canceled);
        waiting = false;
        break;
      case detail::poll_desc::result::interrupted:
        break;
    }
  }
  pd->close();
  ::close(own);
}
}  // namespace

void wait_readable(int fd, deadline d, std::error_code& ec) noexcept { wait_fd(fd, false, d, ec); }
void wait_readable(int fd, deadline d) {
  std::error_code ec;
  wait_readable(fd, d, ec);
  if (ec) throw_io(ec, "spindle::wait_readable");
}
void wait_writable(int fd, deadline d, std::error_code& ec) noexcept { wait_fd(fd, true, d, ec); }
void wait_writable(int fd, deadline d) {
  std::error_code ec;
  wait_writable(fd, d, ec);
  if (ec) throw_io(ec, "spindle::wait_writable");
}

}  // namespace spindle
