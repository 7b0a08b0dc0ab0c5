// Deadlines on any clock: what every timed wait (sleep_until, wait_until,
// try_lock_until, ..._for) does with the time it is given. Internal to
// Spindle's headers; users pass std::chrono durations and time points.
#pragma once

#include <chrono>
#include <type_traits>

namespace spindle::detail {

using steady_time = std::chrono::steady_clock::time_point;

// steady_after() is now + `d` on steady_clock, rounded up, and saturated:
// a duration too long to add (duration::max() of any type, say) is no
// deadline at all (time_point::max()), and zero or a negative one is now.
// Compared in long double seconds, so that no unit conversion overflows.
template <class Rep, class Period>
steady_time steady_after(const std::chrono::duration<Rep, Period>& d) {
  const steady_time now = std::chrono::steady_clock::now();
  if (d <= d.zero()) return now;
  using seconds_ld = std::chrono::duration<long double>;
  const auto room = steady_time::max() - now;
  if (std::chrono::duration_cast<seconds_ld>(d) >= std::chrono::duration_cast<seconds_ld>(room)) {
    return steady_time::max();
  }
  return now + std::chrono::ceil<std::chrono::steady_clock::duration>(d);
}

// until_on_steady() is a steady_clock time point of any duration type as
// steady_clock's own, rounded up, and saturated at time_point::max() (a
// time_point<steady_clock, hours>::max() does not fit in nanoseconds).
template <class Duration>
steady_time until_on_steady(const std::chrono::time_point<std::chrono::steady_clock, Duration>& t) {
  using seconds_ld = std::chrono::duration<long double>;
  if (std::chrono::duration_cast<seconds_ld>(t.time_since_epoch()) >=
      std::chrono::duration_cast<seconds_ld>(steady_time::max().time_since_epoch())) {
    return steady_time::max();
  }
  if (std::chrono::duration_cast<seconds_ld>(t.time_since_epoch()) <=
      std::chrono::duration_cast<seconds_ld>(steady_time::min().time_since_epoch())) {
    return steady_time::min();
  }
  return std::chrono::ceil<std::chrono::steady_clock::duration>(t);
}

// time_left() is `t` - Clock::now(), in long double seconds: no time
// point of any duration type (time_point::max() of hours, min()) makes it
// overflow, as the difference in the time points' own types would.
template <class Clock, class Duration>
std::chrono::duration<long double> time_left(const std::chrono::time_point<Clock, Duration>& t,
                                             const typename Clock::time_point& now) {
  using seconds_ld = std::chrono::duration<long double>;
  return std::chrono::duration_cast<seconds_ld>(t.time_since_epoch()) -
         std::chrono::duration_cast<seconds_ld>(now.time_since_epoch());
}

// to_steady() is the steady_clock estimate of `t`, taken once (for the
// waits that need one deadline: channels, select, futures, io's deadline).
template <class Clock, class Duration>
steady_time to_steady(const std::chrono::time_point<Clock, Duration>& t) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return until_on_steady(t);
  } else {
    return steady_after(time_left(t, Clock::now()));
  }
}

// until_on_clock() waits until `t` of `Clock`, for a wait that takes a
// steady_clock deadline: wait(deadline) returns true when what it waited
// for happened (then until_on_clock() returns true), false at the
// deadline. Another clock may run slower or faster than steady_clock, or
// be stepped (system_clock): each steady deadline is only an estimate, so
// when it passes, the clock is asked again, and the wait goes on until the
// clock itself says `t` has come (what std requires of timed waits, and
// what libstdc++ does). A steady_clock time point is one wait.
template <class Clock, class Duration, class Wait>
bool until_on_clock(const std::chrono::time_point<Clock, Duration>& t, Wait wait) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return wait(until_on_steady(t));
  } else {
    for (;;) {
      const auto left = time_left(t, Clock::now());
      if (left <= left.zero()) return wait(std::chrono::steady_clock::now());  // one last try
      if (wait(steady_after(left))) return true;
    }
  }
}

}  // namespace spindle::detail
