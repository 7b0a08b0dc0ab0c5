// spindle::deadline: when a wait gives up. Every blocking call that takes
// a time limit (socket calls, channel and select waits, blocking_for, the
// std-style *_for and *_until calls) turns it into one of these, on
// steady_clock, once, by the rules of fiber/clock.h:
//
//   conn.read_some(buf, 5s);                        // 5 seconds from now
//   conn.read_some(buf, steady_clock::now() + 5s);  // the same
//   conn.read_some(buf);                            // none: no limit
//
// It saturates instead of overflowing: a duration too long to add to now
// (duration::max() of any type) and a time point past what steady_clock
// holds are no deadline at all; zero, a negative duration and a time
// point already past are "now", which gives a call one try and no wait.
// A time point of another clock is measured against that clock's now()
// when the deadline is made (a std-style *_until call instead waits until
// its own clock says the time has come: fiber/clock.h's until_on_clock).
#pragma once

#include <chrono>

#include "fiber/clock.h"

namespace spindle {

class deadline {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  constexpr deadline() noexcept = default;  // none
  template <class Clock, class Duration>
  deadline(const std::chrono::time_point<Clock, Duration>& t)  // NOLINT: implicit on purpose
      : at_(detail::to_steady(t)) {}
  template <class Rep, class Period>
  deadline(const std::chrono::duration<Rep, Period>& d)  // NOLINT: implicit on purpose
      : at_(detail::steady_after(d)) {}

  static constexpr deadline none() noexcept { return {}; }
  constexpr bool is_none() const noexcept { return at_ == time_point::max(); }
  constexpr time_point when() const noexcept { return at_; }

 private:
  time_point at_ = time_point::max();
};

}  // namespace spindle
