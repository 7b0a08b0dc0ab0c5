// The runtime: workers that run fibers. Design notes: docs/sched.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

#include "fiber/detail/fiber_record.h"
#include "fiber/detail/stack.h"

namespace spindle {

// runtime_options configure a runtime started by spindle::run(), beside
// fiber_options (one fiber), listen_options and resolve_options (io/).
struct runtime_options {
  // Usable stack bytes of a fiber that does not ask for a size
  // (fiber_options::stack_size). Only touched pages cost memory.
  std::size_t stack_size = detail::default_stack_size;
  // Worker threads; 0 (the default) means one per hardware thread. The
  // calling thread of run() is worker 0.
  unsigned workers = 0;
  // The blocking pool (sched/blocking.h; files and DNS use it too): at
  // most this many threads, started on demand...
  unsigned blocking_threads = 64;
  // ...each retired after this long without work...
  std::chrono::milliseconds blocking_idle = std::chrono::seconds(10);
  // ...and at most this many calls queued for them; callers beyond that
  // park (in order) until there is room.
  std::size_t blocking_queue = 1024;
  // Forward progress (docs/sched.md, "Held workers"): when a fiber holds
  // its worker for 20-30 ms without switching (a spin-wait, a long
  // computation, a blocking call Spindle does not know) while fibers,
  // timers or the network wait, the runtime starts a spare worker thread
  // that takes that work over; the held fiber keeps its thread. A spare
  // retires when it runs out of work and holds have ended. At most this
  // many spares run at once; past that, work queued behind held workers
  // waits until a hold ends (and a warning says so, once). 0: none, as
  // before (a held worker's queue waits for it).
  unsigned max_spare_workers = 256;

  // ---- Diagnostics (docs/operability.md) ----
  // What run() does when every fiber is parked on Spindle's own
  // synchronization and nothing can ever wake one (see deadlock_error).
  enum class deadlock_action : std::uint8_t {
    // Print "spindle: all fibers are asleep: deadlock" and the fiber dump
    // to stderr, and end the process with status 2 (as Go does).
    exit,
    // Make run() throw deadlock_error (with the dump in what()), leaving
    // the deadlocked fibers parked for ever (their memory is not freed).
    throw_error,
  };
  deadlock_action on_deadlock = deadlock_action::exit;
  // A signal (such as SIGQUIT) on which the fiber dump is written to
  // stderr, the process going on; 0: none. The environment variable
  // SPINDLE_DUMP_SIGNAL (a number or a name: "SIGQUIT", "QUIT") sets it
  // for programs that do not.
  int dump_signal = 0;
  // Warn once per fiber on stderr, naming it, when a fiber runs this long
  // without switching (hogging its worker); 0: never. The environment
  // variable SPINDLE_LONG_RUN_WARNING_MS sets it too.
  std::chrono::milliseconds long_run_warning{0};
};

// deadlock_error is what run() throws, with
// runtime_options::deadlock_action::throw_error, when all fibers are
// asleep: every live fiber is parked on a mutex, condition variable,
// channel, select, join, semaphore, latch, barrier, call_once, future or
// wait_group, and nothing outside the fibers can wake one (no timer, no
// descriptor watched, no blocking call in flight, no signal watcher, and
// no thread of the process other than the runtime's own). what() holds
// the message and the fiber dump.
class deadlock_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The name runtime_options had first; the same type.
using options = runtime_options;

namespace detail {
template <class F, class... Args>
void run_with(const runtime_options& opts, F&& main, Args&&... args);
}  // namespace detail

// run() starts a runtime on the calling thread, runs `main(args...)` as its
// first fiber, and returns once `main` and every fiber started inside the
// runtime have finished; the worker threads are joined by then. An
// exception escaping `main` is rethrown by run() (after the other fibers
// have finished). One runtime runs at a time: run() throws
// std::system_error with errc::device_or_resource_busy if one is already
// running, and with errc::operation_not_permitted when called on a fiber.
//
//   int main() {
//     spindle::run([] {
//       spindle::go([] { std::puts("hello from a fiber"); });
//     });
//   }
//
// Plain thread only.
//
// fork(): the child has only the thread that called fork(). Forked from a
// plain thread, the child may use Spindle as a fresh process would: its
// first fiber starts a new default runtime, and run() works; the parent's
// fibers do not exist there (joining one never returns), and the parent's
// connections, listeners and sockets may only be closed. Forked on a fiber
// (inside run() or the default runtime), the child is that worker's thread
// alone, and only what POSIX allows the child of a multithreaded process is
// defined: async-signal-safe calls, then exec or _exit.
template <class F, class... Args>
  requires(!std::is_same_v<std::remove_cvref_t<F>, runtime_options>)
void run(F&& main, Args&&... args) {
  detail::run_with(runtime_options{}, std::forward<F>(main), std::forward<Args>(args)...);
}

template <class F, class... Args>
void run(const runtime_options& opts, F&& main, Args&&... args) {
  detail::run_with(opts, std::forward<F>(main), std::forward<Args>(args)...);
}

namespace detail {
// run_main() starts a runtime, builds main's record with make_main(ctx,
// stack) and runs it as the first fiber; returns once every fiber has
// finished and rethrows main's exception.
void run_main(const runtime_options& opts, control_block* (*make_main)(void* ctx, const stack& s),
              void* ctx);

template <class F, class... Args>
void run_with(const runtime_options& opts, F&& main, Args&&... args) {
  auto bound = [&]() { return std::forward_as_tuple(std::forward<F>(main), std::forward<Args>(args)...); };
  using bound_t = decltype(bound);
  run_main(
      opts,
      [](void* ctx, const stack& s) -> control_block* {
        return std::apply(
            [&s](auto&&... a) { return make_record(s, std::forward<decltype(a)>(a)...); },
            (*static_cast<bound_t*>(ctx))());
      },
      &bound);
}
}  // namespace detail

}  // namespace spindle
