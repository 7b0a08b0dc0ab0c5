#include "io/udp.h"

#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "io/detail/fd_state.h"
#include "io/detail/or_throw.h"
#include "io/detail/socket_util.h"
#include "io/dns.h"

namespace spindle {

using detail::fd_state;
using detail::or_throw;

udp_socket::udp_socket(std::unique_ptr<detail::fd_state> s) noexcept : basic_socket(std::move(s)) {}

udp_socket udp_socket::open(int family, std::error_code& ec) noexcept {
  const int fd = detail::open_socket(family, SOCK_DGRAM, ec);
  if (fd < 0) return {};
  return udp_socket(std::make_unique<fd_state>(fd, detail::fd_kind::socket));
}
udp_socket udp_socket::open(int family) {
  return or_throw("spindle::udp_socket::open", [&](std::error_code& ec) { return open(family, ec); });
}

udp_socket udp_socket::bind(const address& at, std::error_code& ec) noexcept {
  const int fd = detail::open_socket(at, SOCK_DGRAM, ec);
  if (fd < 0) return {};
  udp_socket s(std::make_unique<fd_state>(fd, detail::fd_kind::socket));
  if (::bind(fd, at.data(), at.size()) != 0) {
    ec = detail::last_error();
    return {};
  }
  return s;
}
udp_socket udp_socket::bind(const address& at) {
  return or_throw("spindle::udp_socket::bind", [&](std::error_code& ec) { return bind(at, ec); });
}
udp_socket udp_socket::bind(std::string_view where, std::error_code& ec) noexcept {
  ec.clear();
  if (where.starts_with("unix:") || where.starts_with("/") || where.starts_with("@")) {
    ec = std::make_error_code(std::errc::address_family_not_supported);
    return {};
  }
  resolve_options opts;
  opts.passive = true;
  opts.socktype = SOCK_DGRAM;
  std::vector<address> candidates = resolve(where, opts, ec);
  if (ec) return {};
  for (const address& a : candidates) {
    udp_socket s = bind(a, ec);
    if (!ec) return s;
  }
  return {};
}
udp_socket udp_socket::bind(std::string_view where) {
  return or_throw("spindle::udp_socket::bind", [&](std::error_code& ec) { return bind(where, ec); });
}

std::size_t udp_socket::send_to(std::span<const std::byte> data, const address& to, deadline d,
                                std::error_code& ec) noexcept {
  detail::io_lock io(state(), detail::writing, ec);
  if (!io) return 0;
  const int fd = io.fd();
  const ssize_t n = io.retry(d, ec, [&] {
    return ::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, to.data(), to.size());
  });
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}
std::size_t udp_socket::send_to(std::span<const std::byte> data, const address& to, deadline d) {
  return or_throw("spindle::udp_socket::send_to", [&](std::error_code& ec) { return send_to(data, to, d, ec); });
}
std::size_t udp_socket::send_to(std::string_view data, const address& to, deadline d) {
  return send_to(std::as_bytes(std::span(data.data(), data.size())), to, d);
}
std::size_t udp_socket::send_to(std::string_view data, const address& to, deadline d,
                                std::error_code& ec) noexcept {
  return send_to(std::as_bytes(std::span(data.data(), data.size())), to, d, ec);
}

std::size_t udp_socket::recv_from(std::span<std::byte> buf, address& from, deadline d,
                                  std::error_code& ec) noexcept {
  detail::io_lock io(state(), detail::reading, ec);
  if (!io) return 0;
  const int fd = io.fd();
  address sender;
  socklen_t len = 0;
  const ssize_t n = io.retry(d, ec, [&] {
    len = address::capacity();
    return ::recvfrom(fd, buf.data(), buf.size(), 0, sender.data_mut(), &len);
  });
  if (n < 0) return 0;
  try {
    sender.set_size(len);
    from = sender;
  } catch (const std::exception&) {
    from = address();
  }
  return static_cast<std::size_t>(n);
}
std::size_t udp_socket::recv_from(std::span<std::byte> buf, address& from, deadline d) {
  return or_throw("spindle::udp_socket::recv_from", [&](std::error_code& ec) { return recv_from(buf, from, d, ec); });
}

}  // namespace spindle
