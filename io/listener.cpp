#include "io/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

#include "fiber/this_fiber.h"
#include "io/detail/fd_state.h"
#include "io/detail/socket_util.h"

namespace spindle {

using detail::fd_state;
using direction = detail::fd_state::direction;

namespace detail {
// Back-off sleeps taken by accept() for want of descriptors (for tests).
std::atomic<long> accept_backoffs{0};
}  // namespace detail

namespace {
[[noreturn]] void throw_io(std::error_code ec, const char* what) { throw io_error(ec, what); }
std::error_code not_open() noexcept { return std::make_error_code(std::errc::bad_file_descriptor); }

// Errors of accept4() that say nothing about the listener: the connection
// went away before we took it, or the process or system is short of
// descriptors or memory for now.
bool is_transient(int e) noexcept {
  return e == ECONNABORTED || e == EPROTO || e == EPERM || e == ENETDOWN || e == ENOPROTOOPT ||
         e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP || e == ENETUNREACH;
}
bool is_shortage(int e) noexcept { return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM; }
}  // namespace

listener::listener() noexcept = default;
listener::listener(std::unique_ptr<detail::fd_state> s, bool tcp) noexcept : s_(std::move(s)), tcp_(tcp) {}
listener::listener(listener&&) noexcept = default;
listener& listener::operator=(listener&& other) noexcept {
  if (this != &other) {
    s_.reset();
    s_ = std::move(other.s_);
    tcp_ = other.tcp_;
  }
  return *this;
}
listener::~listener() = default;

bool listener::is_open() const noexcept { return s_ != nullptr && !s_->closing(); }
int listener::native_handle() const noexcept { return is_open() ? s_->fd() : -1; }

connection listener::accept(deadline d, std::error_code& ec) noexcept {
  ec.clear();
  fd_state::op op(s_.get());
  if (!op) {
    ec = op.error();
    return {};
  }
  std::lock_guard lock(s_->lock(direction::read));
  const int lfd = s_->fd();
  auto backoff = std::chrono::milliseconds(1);
  for (;;) {
    if ((ec = s_->closing_error())) return {};
    const ssize_t fd = s_->retry(direction::read, d, ec, [&]() -> ssize_t {
      return ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    });
    if (fd >= 0) {
      if (tcp_) {
        std::error_code ignored;
        detail::set_int_option(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, 1, ignored);
      }
      return connection(std::make_unique<fd_state>(static_cast<int>(fd),
                                                   tcp_ ? detail::fd_kind::tcp_stream : detail::fd_kind::socket));
    }
    if (ec.category() != std::system_category()) return {};  // timed out, canceled
    const int e = ec.value();
    if (is_transient(e)) continue;
    if (!is_shortage(e)) return {};
    // Out of descriptors or memory: the pending connection stays queued
    // and the listener stays readable, so retrying at once would spin.
    // Sleep instead, longer each time, until something frees up.
    const auto now = std::chrono::steady_clock::now();
    if (now >= d.when()) {
      ec = std::make_error_code(std::errc::timed_out);
      return {};
    }
    detail::accept_backoffs.fetch_add(1, std::memory_order_relaxed);
    const auto wake = std::min(d.when(), now + backoff);
    this_fiber::sleep_until(wake);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
    ec.clear();
  }
}

connection listener::accept(std::error_code& ec) noexcept { return accept(deadline{}, ec); }
connection listener::accept(deadline d) {
  std::error_code ec;
  connection c = accept(d, ec);
  if (ec) throw_io(ec, "spindle::listener::accept");
  return c;
}

void listener::close(std::error_code& ec) noexcept {
  ec.clear();
  if (s_) s_->close(ec);
}
void listener::close() {
  std::error_code ec;
  close(ec);
  if (ec) throw_io(ec, "spindle::listener::close");
}

address listener::local_address(std::error_code& ec) const noexcept {
  if (!is_open()) {
    ec = not_open();
    return {};
  }
  return detail::socket_name(s_->fd(), false, ec);
}
address listener::local_address() const {
  std::error_code ec;
  address a = local_address(ec);
  if (ec) throw_io(ec, "spindle::listener::local_address");
  return a;
}

listener listen(const address& at, const listen_options& opts, std::error_code& ec) noexcept {
  ec.clear();
  if (at.empty()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  const int fd = ::socket(at.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = detail::last_error();
    return {};
  }
  const bool tcp = at.is_ipv4() || at.is_ipv6();
  if (tcp && opts.reuse_address) detail::set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, ec);
  if (!ec && opts.reuse_port) detail::set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1, ec);
  if (!ec && (::bind(fd, at.data(), at.size()) != 0 || ::listen(fd, opts.backlog) != 0)) {
    ec = detail::last_error();
  }
  if (ec) {
    ::close(fd);
    return {};
  }
  // Registered with the netpoll only now: until listen(), the socket
  // reported itself hung up (tcp_poll in TCP_CLOSE, unix_poll for an
  // unconnected stream), which the netpoll would take as final.
  auto s = std::make_unique<fd_state>(fd, detail::fd_kind::socket);
  if (at.is_unix() && !at.is_abstract() && !at.path().empty()) s->unlink_on_close(at.path());
  return listener(std::move(s), tcp);
}

listener listen(const address& at, const listen_options& opts) {
  std::error_code ec;
  listener l = listen(at, opts, ec);
  if (ec) throw_io(ec, "spindle::listen");
  return l;
}

listener listen(std::string_view where, const listen_options& opts, std::error_code& ec) noexcept {
  std::vector<address> candidates = detail::addresses_for(where, deadline{}, true, ec);
  if (ec) return {};
  for (const address& a : candidates) {
    listener l = listen(a, opts, ec);
    if (!ec) return l;
  }
  return {};
}
listener listen(std::string_view where, std::error_code& ec) noexcept { return listen(where, listen_options{}, ec); }
listener listen(std::string_view where, const listen_options& opts) {
  std::error_code ec;
  listener l = listen(where, opts, ec);
  if (ec) throw_io(ec, "spindle::listen");
  return l;
}

}  // namespace spindle
