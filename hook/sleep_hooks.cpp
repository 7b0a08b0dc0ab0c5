// The hooked sleeps: nanosleep, clock_nanosleep, usleep, sleep. glibc's
// sleep() and usleep() call nanosleep through an internal alias that no
// hook sees, so each is hooked by its own name. On a fiber a sleep parks
// on the worker's timers; a signal does not cut it short (the handler
// runs on some thread, not in the parked call), so it never fails with
// EINTR and never writes the remainder.
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "fiber/this_fiber.h"
#include "hook/detail/real_calls.h"
#include "hook/detail/trace.h"
#include "sched/io_wait.h"

#define SPINDLE_HOOK_API extern "C" __attribute__((visibility("default")))

namespace spindle::hook_detail {
namespace {

bool valid(const timespec* ts) noexcept {
  return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000;
}

void park_for(std::chrono::nanoseconds d) noexcept {
  try {
    parked_scope parked;
    spindle::detail::sleep_until_uncancellable(spindle::detail::steady_after(d));
  } catch (...) {
  }
}

std::chrono::nanoseconds to_duration(const timespec& ts) noexcept {
  // Clamp what would overflow nanoseconds (about 292 years): a sleep
  // that long is a sleep for ever.
  constexpr long long max_sec = 9'000'000'000LL;
  if (ts.tv_sec >= max_sec) return std::chrono::nanoseconds(max_sec * 1'000'000'000LL);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace
}  // namespace spindle::hook_detail

using namespace spindle::hook_detail;

SPINDLE_HOOK_API int nanosleep(const timespec* req, timespec* rem) {
  if (!spindle::detail::on_fiber() || req == nullptr) return real::nanosleep(req, rem);  // EFAULT
  if (!valid(req)) {
    set_errno(EINVAL);
    return -1;
  }
  park_for(to_duration(*req));
  return 0;
}

// clock_nanosleep() returns the error rather than setting errno. The
// clocks that time passes on: CLOCK_MONOTONIC and CLOCK_BOOTTIME park
// for the time asked (an absolute time is turned into the time left on
// that clock); CLOCK_REALTIME and CLOCK_TAI too (a clock step during
// the sleep is not followed). A CPU-time clock passes straight through.
SPINDLE_HOOK_API int clock_nanosleep(clockid_t clock, int flags, const timespec* req, timespec* rem) {
  if (!spindle::detail::on_fiber() || req == nullptr) return real::clock_nanosleep(clock, flags, req, rem);
  if (clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME && clock != CLOCK_REALTIME && clock != CLOCK_TAI) {
    if (tracing()) trace_unparked("clock_nanosleep", -1, "a clock other than the wall and monotonic clocks",
                                  __builtin_return_address(0));
    return real::clock_nanosleep(clock, flags, req, rem);
  }
  if (!valid(req)) return EINVAL;
  std::chrono::nanoseconds d = to_duration(*req);
  if (flags & TIMER_ABSTIME) {
    timespec now{};
    (void)::clock_gettime(clock, &now);
    d -= to_duration(now);
    if (d.count() <= 0) return 0;
  }
  park_for(d);
  return 0;
}

SPINDLE_HOOK_API int usleep(useconds_t us) {
  if (!spindle::detail::on_fiber()) return real::usleep(us);
  park_for(std::chrono::microseconds(us));
  return 0;
}

SPINDLE_HOOK_API unsigned int sleep(unsigned int seconds) {
  if (!spindle::detail::on_fiber()) return real::sleep(seconds);
  park_for(std::chrono::seconds(seconds));
  return 0;
}
