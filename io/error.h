// What io/ sockets report: io_error (std::system_error plus the bytes moved
// before the failure), io_errc for end of stream, and `deadline`, the
// optional per-call time limit every blocking socket call takes.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>
#include <type_traits>

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

// deadline is when a blocking socket call gives up (std::errc::timed_out):
// a time_point of any clock, a duration from now, or none (the default).
//
//   conn.read_some(buf, 5s);                      // at most 5 seconds
//   conn.read_some(buf, steady_clock::now() + 5s);  // the same
//   conn.read_some(buf);                          // no limit of its own
class deadline {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  constexpr deadline() noexcept = default;  // none
  template <class Clock, class Duration>
  deadline(const std::chrono::time_point<Clock, Duration>& t)  // NOLINT: implicit on purpose
      : at_(convert(t)) {}
  template <class Rep, class Period>
  deadline(const std::chrono::duration<Rep, Period>& d)  // NOLINT: implicit on purpose
      : at_(from_now(d)) {}

  static constexpr deadline none() noexcept { return {}; }
  constexpr bool is_none() const noexcept { return at_ == time_point::max(); }
  constexpr time_point when() const noexcept { return at_; }

 private:
  template <class Clock, class Duration>
  static time_point convert(const std::chrono::time_point<Clock, Duration>& t) {
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
      // Saturate: time_point::max() of a coarser duration means none.
      if (std::chrono::duration<double>(t.time_since_epoch()) >=
          std::chrono::duration<double>(time_point::max().time_since_epoch())) {
        return time_point::max();
      }
      return std::chrono::time_point_cast<time_point::duration>(t);
    } else {
      return from_now(t - Clock::now());
    }
  }
  template <class Rep, class Period>
  static time_point from_now(const std::chrono::duration<Rep, Period>& d) {
    const auto now = std::chrono::steady_clock::now();
    // Saturate: a huge duration means no deadline, not an overflow.
    if (std::chrono::duration<double>(d) >= std::chrono::duration<double>(time_point::max() - now)) {
      return time_point::max();
    }
    return now + std::chrono::ceil<time_point::duration>(d);
  }

  time_point at_ = time_point::max();
};

}  // namespace spindle

template <>
struct std::is_error_code_enum<spindle::io_errc> : std::true_type {};
