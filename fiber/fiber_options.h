#pragma once

#include <cstddef>
#include <stop_token>
#include <string_view>

namespace spindle {

// fiber_options are the per-fiber settings that std::thread has no place
// for. Pass them as the first argument of spindle::fiber or spindle::go:
//
//   spindle::fiber f({.name = "reader", .stack_size = 64 * 1024}, read_loop, fd);
struct fiber_options {
  // A name for diagnostics (overflow and uncaught-exception reports,
  // this_fiber::get_name()). Copied; may be empty.
  std::string_view name = {};
  // Usable stack bytes, rounded up to whole pages (at least 16 KiB).
  // 0 means the runtime's default (spindle::options::stack_size).
  std::size_t stack_size = 0;
  // The worker to start on (0 .. workers-1); -1 means the spawning worker
  // (from a plain thread: the runtime picks one).
  int worker = -1;
  // Keep the fiber on the worker it starts on for its whole life, as
  // this_fiber::pin() does (see fiber/this_fiber.h).
  bool pinned = false;
  // What an exception escaping the fiber's function does. By default it
  // is kept and rethrown by join() (a deliberate difference from
  // std::thread, which calls std::terminate: an error in a fiber reaches
  // whoever joins it, as with std::async's future). true gives std's
  // behaviour: the process ends with a message naming the fiber. A
  // detached fiber's escaping exception always ends the process.
  bool terminate_on_exception = false;
  // A stop token the fiber's waits observe: once stop is requested on it,
  // every cancellable blocking call the fiber makes (sleeps, socket calls,
  // channel operations, joins, future waits, blocking() calls...; see
  // docs/operability.md) returns at once with errc::operation_canceled.
  // Empty (the default): the fiber is not cancellable. spindle::jthread
  // passes its own.
  std::stop_token stop_token = {};
};

}  // namespace spindle
