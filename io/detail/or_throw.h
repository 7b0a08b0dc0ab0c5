// The throwing forms of io/'s calls, each one line over its std::error_code
// form:
//
//   std::size_t connection::read_some(std::span<std::byte> buf, deadline d) {
//     return detail::or_throw("spindle::connection::read_some",
//                             [&](std::error_code& ec) { return read_some(buf, d, ec); });
//   }
#pragma once

#include <cstddef>
#include <filesystem>
#include <system_error>
#include <type_traits>
#include <utility>

#include "io/error.h"

namespace spindle::detail {

// call_or_raise() runs `call(ec)`, the error_code form, and when it sets
// `ec` calls `raise(ec, bytes)`, which throws; `bytes` is what a call
// returning std::size_t returned (the bytes it moved before the error),
// else 0. Returns what `call` returned.
template <class Call, class Raise>
decltype(auto) call_or_raise(Call&& call, Raise&& raise) {
  std::error_code ec;
  using result = std::invoke_result_t<Call&, std::error_code&>;
  if constexpr (std::is_void_v<result>) {
    call(ec);
    if (ec) raise(ec, std::size_t{0});
  } else {
    result r = call(ec);
    if (ec) {
      if constexpr (std::is_same_v<result, std::size_t>) {
        raise(ec, r);
      } else {
        raise(ec, std::size_t{0});
      }
    }
    return r;
  }
}

// or_throw(): a socket call, which throws io_error (io/error.h) with `what`.
template <class Call>
decltype(auto) or_throw(const char* what, Call&& call) {
  return call_or_raise(std::forward<Call>(call),
                       [what](std::error_code ec, std::size_t bytes) { throw io_error(ec, what, bytes); });
}

// or_throw_fs(): a file or path call, which throws
// std::filesystem::filesystem_error with `what` and the path(s), as
// std::filesystem does.
template <class Call>
decltype(auto) or_throw_fs(const char* what, const std::filesystem::path& p, Call&& call) {
  return call_or_raise(std::forward<Call>(call), [&](std::error_code ec, std::size_t) {
    throw std::filesystem::filesystem_error(what, p, ec);
  });
}
template <class Call>
decltype(auto) or_throw_fs(const char* what, const std::filesystem::path& p1, const std::filesystem::path& p2,
                           Call&& call) {
  return call_or_raise(std::forward<Call>(call), [&](std::error_code ec, std::size_t) {
    throw std::filesystem::filesystem_error(what, p1, p2, ec);
  });
}

}  // namespace spindle::detail
