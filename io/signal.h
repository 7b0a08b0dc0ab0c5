// spindle::wait_signal(): receiving POSIX signals in a fiber.
#pragma once

#include <initializer_list>
#include <system_error>

#include "io/error.h"

namespace spindle {

// wait_signal() parks the calling fiber until one of `signals` arrives and
// returns its number; a server's graceful stop:
//
//   spindle::go([&] {
//     spindle::wait_signal({SIGINT, SIGTERM});
//     server.close();
//   });
//
// The first call for a signal installs Spindle's handler for it (from then
// on the signal no longer has its default action), which only counts the
// signal and wakes the waiters through a pipe, so the code that reacts to
// it is ordinary fiber code. Each arrival is taken by one waiter; a signal
// that arrives while nobody waits is kept until someone does. Fibers and
// plain threads; fails with errc::invalid_argument for a signal that
// cannot be caught (SIGKILL, SIGSTOP) or is out of range, and with
// errc::timed_out at the deadline.
int wait_signal(std::initializer_list<int> signals, deadline d = {});
int wait_signal(std::initializer_list<int> signals, deadline d, std::error_code& ec) noexcept;

}  // namespace spindle
