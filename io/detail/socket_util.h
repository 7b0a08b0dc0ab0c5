// Small helpers shared by io/'s socket types.
#pragma once

#include <string_view>
#include <system_error>
#include <vector>

#include "io/address.h"
#include "io/error.h"

namespace spindle::detail {

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
