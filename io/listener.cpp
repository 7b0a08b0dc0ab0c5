#include "io/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "fiber/this_fiber.h"
#include "io/detail/fd_state.h"
#include "io/detail/or_throw.h"
#include "io/detail/socket_util.h"

namespace spindle {

using detail::fd_state;
using detail::or_throw;

namespace detail {
// Back-off sleeps taken by accept() for want of descriptors (for tests).
std::atomic<long> accept_backoffs{0};
}  // namespace detail

namespace {

// accept()'s back-off while out of descriptors: the first sleep, short
// enough that a brief shortage costs little; doubled at every attempt up
// to the longest, so that a long one costs a few wake-ups a second.
constexpr std::chrono::milliseconds first_backoff{1};
constexpr std::chrono::milliseconds longest_backoff{100};

// Errors of accept4() that say nothing about the listener: the connection
// went away before we took it, or the process or system is short of
// descriptors or memory for now.
bool is_transient(int e) noexcept {
  return e == ECONNABORTED || e == EPROTO || e == EPERM || e == ENETDOWN || e == ENOPROTOOPT ||
         e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP || e == ENETUNREACH;
}
bool is_shortage(int e) noexcept { return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM; }
}  // namespace

listener::listener(std::unique_ptr<detail::fd_state> s, bool tcp) noexcept
    : basic_socket(std::move(s)), tcp_(tcp) {}

connection listener::accept(deadline d, std::error_code& ec) noexcept {
  detail::io_lock io(state(), detail::reading, ec);
  if (!io) return {};
  const int lfd = io.fd();
  auto backoff = first_backoff;
  for (;;) {
    // Also clears the error of the attempt before. After a back-off sleep
    // or a transient error, a close() that came meanwhile wins.
    if ((ec = io.closing_error())) return {};
    const ssize_t fd = io.retry(d, ec, [&]() -> ssize_t {
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
    // A stop request ends the sleep early; it is a cancellation point as
    // the wait for readiness is (retrying at once would spin).
    if (this_fiber::stop_requested()) {
      ec = std::make_error_code(std::errc::operation_canceled);
      return {};
    }
    backoff = std::min(backoff * 2, longest_backoff);
  }
}

connection listener::accept(std::error_code& ec) noexcept { return accept(deadline{}, ec); }
connection listener::accept(deadline d) {
  return or_throw("spindle::listener::accept", [&](std::error_code& ec) { return accept(d, ec); });
}

listener listen(const address& at, const listen_options& opts, std::error_code& ec) noexcept {
  const int fd = detail::open_socket(at, SOCK_STREAM, ec);
  if (fd < 0) return {};
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
  return or_throw("spindle::listen", [&](std::error_code& ec) { return listen(at, opts, ec); });
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
  return or_throw("spindle::listen", [&](std::error_code& ec) { return listen(where, opts, ec); });
}

}  // namespace spindle
