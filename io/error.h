// What io/ sockets report: io_error (std::system_error plus the bytes moved
// before the failure), and io_errc for end of stream. Every blocking
// socket call also takes a `deadline` (sched/deadline.h), its optional
// per-call time limit.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>
#include <type_traits>

#include "sched/deadline.h"

namespace spindle {

// io_errc: errors of io/ that are not an errno.
enum class io_errc {
  // read_exactly(): the stream ended before the first byte.
  eof = 1,
  // read_exactly(): the stream ended after some bytes but before all.
  unexpected_eof,
};

const std::error_category& io_category() noexcept;

inline std::error_code make_error_code(io_errc e) noexcept {
  return {static_cast<int>(e), io_category()};
}

// io_error is what a throwing socket call throws: the error (an errno in
// std::system_category, std::errc::timed_out at a deadline,
// std::errc::operation_canceled when the socket is closed under the call,
// or an io_errc) and how many bytes the call had moved before it.
class io_error : public std::system_error {
 public:
  io_error(std::error_code ec, const char* what, std::size_t bytes_transferred = 0)
      : std::system_error(ec, what), bytes_(bytes_transferred) {}
  std::size_t bytes_transferred() const noexcept { return bytes_; }

 private:
  std::size_t bytes_;
};

}  // namespace spindle

template <>
struct std::is_error_code_enum<spindle::io_errc> : std::true_type {};
