// Small helpers shared by io/'s socket types (see socket_util.h).
#include "io/detail/socket_util.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <exception>

#include "io/detail/fd_state.h"
#include "io/dns.h"

namespace spindle::detail {

int open_socket(int family, int type, std::error_code& ec) noexcept {
  ec.clear();
  const int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ec = last_error();
  return fd;
}

int open_socket(const address& a, int type, std::error_code& ec) noexcept {
  if (a.empty()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return -1;
  }
  return open_socket(a.family(), type, ec);
}

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

}  // namespace spindle::detail
