// What every sample server program (chat, http, kv) does around its
// server: run it on a runtime, say where it listens, and stop it on SIGINT
// or SIGTERM. Header-only; the server type needs local_address(),
// serve() (returns once stopped) and stop().
//
//   int serve(const options& o) {           // on a fiber
//     server s(o);                          // listens, or throws
//     samples::serve_until_signal("x_server", s);
//     ... print s.stats() ...
//     return 0;
//   }
//   int main(int argc, char** argv) {
//     ... parse the command line into `o` ...
//     return samples::run_program(workers, [&] { return serve(o); });
//   }
#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <string_view>
#include <system_error>

#include "fiber/fiber.h"
#include "io/signal.h"
#include "samples/command_line.h"
#include "sched/scheduler.h"

namespace samples {

// serve_until_signal() prints "<program>: listening on <address>", runs
// s.serve() until SIGINT or SIGTERM, which it answers with s.stop(), and
// returns once serve() has. On a fiber.
template <class Server>
void serve_until_signal(std::string_view program, Server& s) {
  // Take over SIGINT and SIGTERM before saying we listen: the first
  // wait_signal() installs the handlers, and one with a deadline already
  // past does only that (or reports a signal that came already). Left to
  // the stopper fiber, a SIGTERM sent as soon as the server answers could
  // come before that fiber first ran, and kill the process outright.
  std::error_code ec;
  const int early_signal = spindle::wait_signal({SIGINT, SIGTERM}, std::chrono::nanoseconds(0), ec);
  const int name_length = static_cast<int>(program.size());
  std::printf("%.*s: listening on %s\n", name_length, program.data(), s.local_address().to_string().c_str());
  std::fflush(stdout);
  spindle::fiber stopper([&] {
    const int sig = early_signal != 0 ? early_signal : spindle::wait_signal({SIGINT, SIGTERM});
    std::printf("%.*s: signal %d, shutting down\n", name_length, program.data(), sig);
    std::fflush(stdout);
    s.stop();
  });
  s.serve();
  stopper.join();
}

// run_program() runs `serve` (returning the exit status) as the first
// fiber of a runtime of `workers` workers (0: one per hardware thread);
// its status, or 1, said on stderr, if the runtime itself fails.
template <class Serve>
int run_program(unsigned workers, Serve serve) {
  int status = 0;
  try {
    spindle::run(spindle::options{.workers = workers}, [&] { status = serve(); });
  } catch (const std::exception& e) {
    error(e.what());
    return 1;
  }
  return status;
}

}  // namespace samples
