#include "io/udp.h"

#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <vector>

#include "io/detail/fd_state.h"
#include "io/detail/socket_util.h"
#include "io/dns.h"

namespace spindle {

using detail::fd_state;
using direction = detail::fd_state::direction;

namespace {
[[noreturn]] void throw_io(std::error_code ec, const char* what) { throw io_error(ec, what); }
std::error_code not_open() noexcept { return std::make_error_code(std::errc::bad_file_descriptor); }
}  // namespace

udp_socket::udp_socket() noexcept = default;
udp_socket::udp_socket(std::unique_ptr<detail::fd_state> s) noexcept : s_(std::move(s)) {}
udp_socket::udp_socket(udp_socket&&) noexcept = default;
udp_socket& udp_socket::operator=(udp_socket&& other) noexcept {
  if (this != &other) {
    s_.reset();
    s_ = std::move(other.s_);
  }
  return *this;
}
udp_socket::~udp_socket() = default;

udp_socket udp_socket::open(int family, std::error_code& ec) noexcept {
  ec.clear();
  const int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = detail::last_error();
    return {};
  }
  return udp_socket(std::make_unique<fd_state>(fd, true));
}
udp_socket udp_socket::open(int family) {
  std::error_code ec;
  udp_socket s = open(family, ec);
  if (ec) throw_io(ec, "spindle::udp_socket::open");
  return s;
}

udp_socket udp_socket::bind(const address& at, std::error_code& ec) noexcept {
  if (at.empty()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  udp_socket s = open(at.family(), ec);
  if (ec) return {};
  if (::bind(s.s_->fd(), at.data(), at.size()) != 0) {
    ec = detail::last_error();
    return {};
  }
  return s;
}
udp_socket udp_socket::bind(const address& at) {
  std::error_code ec;
  udp_socket s = bind(at, ec);
  if (ec) throw_io(ec, "spindle::udp_socket::bind");
  return s;
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
  std::error_code ec;
  udp_socket s = bind(where, ec);
  if (ec) throw_io(ec, "spindle::udp_socket::bind");
  return s;
}

std::size_t udp_socket::send_to(std::span<const std::byte> data, const address& to, deadline d,
                                std::error_code& ec) noexcept {
  ec.clear();
  fd_state::op op(s_.get());
  if (!op) {
    ec = op.error();
    return 0;
  }
  std::lock_guard lock(s_->lock(direction::write));
  const int fd = s_->fd();
  const ssize_t n = s_->retry(direction::write, d, ec, [&] {
    return ::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, to.data(), to.size());
  });
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}
std::size_t udp_socket::send_to(std::span<const std::byte> data, const address& to, deadline d) {
  std::error_code ec;
  const std::size_t n = send_to(data, to, d, ec);
  if (ec) throw_io(ec, "spindle::udp_socket::send_to");
  return n;
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
  ec.clear();
  fd_state::op op(s_.get());
  if (!op) {
    ec = op.error();
    return 0;
  }
  std::lock_guard lock(s_->lock(direction::read));
  const int fd = s_->fd();
  address sender;
  socklen_t len = 0;
  const ssize_t n = s_->retry(direction::read, d, ec, [&] {
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
  std::error_code ec;
  const std::size_t n = recv_from(buf, from, d, ec);
  if (ec) throw_io(ec, "spindle::udp_socket::recv_from");
  return n;
}

void udp_socket::close(std::error_code& ec) noexcept {
  ec.clear();
  if (s_) s_->close(ec);
}
void udp_socket::close() {
  std::error_code ec;
  close(ec);
  if (ec) throw_io(ec, "spindle::udp_socket::close");
}
bool udp_socket::is_open() const noexcept { return s_ != nullptr && !s_->closing(); }
int udp_socket::native_handle() const noexcept { return is_open() ? s_->fd() : -1; }
address udp_socket::local_address(std::error_code& ec) const noexcept {
  if (!is_open()) {
    ec = not_open();
    return {};
  }
  return detail::socket_name(s_->fd(), false, ec);
}
address udp_socket::local_address() const {
  std::error_code ec;
  address a = local_address(ec);
  if (ec) throw_io(ec, "spindle::udp_socket::local_address");
  return a;
}
void udp_socket::set_deadline(deadline d) noexcept {
  set_read_deadline(d);
  set_write_deadline(d);
}
void udp_socket::set_read_deadline(deadline d) noexcept {
  if (s_) s_->set_deadline(direction::read, d);
}
void udp_socket::set_write_deadline(deadline d) noexcept {
  if (s_) s_->set_deadline(direction::write, d);
}

}  // namespace spindle
