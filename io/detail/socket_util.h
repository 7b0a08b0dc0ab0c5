// Small helpers shared by io/'s socket types.
#pragma once

#include <string_view>
#include <system_error>
#include <vector>

#include "io/address.h"
#include "io/error.h"

namespace spindle::detail {

// A new non-blocking, close-on-exec socket of `family` and `type`
// (SOCK_STREAM, SOCK_DGRAM); -1 with ec on failure. The form that takes the
// address it is for fails with invalid_argument for an empty one.
int open_socket(int family, int type, std::error_code& ec) noexcept;
int open_socket(const address& a, int type, std::error_code& ec) noexcept;
// Makes `fd` non-blocking; false (with ec) on failure.
bool set_nonblocking(int fd, std::error_code& ec) noexcept;
// setsockopt() of an int option.
void set_int_option(int fd, int level, int name, int value, std::error_code& ec) noexcept;
// getsockname() (peer = false) or getpeername().
address socket_name(int fd, bool peer, std::error_code& ec) noexcept;
// The addresses `where` names: a Unix-domain form ("unix:/p", "/p",
// "@name") parsed, anything else ("host:port") through resolve().
std::vector<address> addresses_for(std::string_view where, const deadline& d, bool passive,
                                   std::error_code& ec) noexcept;

}  // namespace spindle::detail
