// A straight-line echo server: an accept loop and one fiber per
// connection that reads what arrives and writes it back. It stops
// gracefully on SIGINT or SIGTERM: no new connections, the open ones
// closed (their fibers wake with operation_canceled and end), then
// spindle::run() returns.
//
//   echo_server [--port=7000] [--workers=N] [--bind=0.0.0.0]
//   echo_server [PORT [WORKERS [BIND]]]     (the benchmark scripts' form)
//
// A bad flag or argument, or an address it cannot listen on, is said on
// stderr and exits 2.
#include <array>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <spindle.h>

#include "absl/flags/flag.h"
#include "samples/command_line.h"

ABSL_FLAG(int, port, 7000, "TCP port to listen on (0: any free port)");
ABSL_FLAG(unsigned, workers, 0, "worker threads (0: one per hardware thread)");
ABSL_FLAG(std::string, bind, "0.0.0.0", "address to listen on (\"::\" for IPv6)");

namespace {

constexpr std::string_view usage =
    "A TCP echo server on Spindle fibers.\n"
    "Usage: echo_server [--port=7000] [--workers=N] [--bind=0.0.0.0]\n"
    "   or: echo_server [PORT [WORKERS [BIND]]]";

// The number `text` spells, all of it; a usage error otherwise.
template <class Int>
Int number_argument(std::string_view what, std::string_view text) {
  Int value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    samples::usage_error(std::string(what) + " must be a number, not \"" + std::string(text) + "\"");
  }
  return value;
}

// Serves connections from `listener` until SIGINT or SIGTERM (or at once
// if `early_signal`, one of them, came already).
void serve(spindle::listener& listener, int early_signal) {
  // The open connections, so that a stop can close them.
  spindle::mutex mu;
  std::unordered_map<std::uint64_t, spindle::connection*> open;
  spindle::wait_group handlers;

  spindle::fiber stopper([&] {
    const int sig = early_signal != 0 ? early_signal : spindle::wait_signal({SIGINT, SIGTERM});
    std::printf("signal %d: stopping\n", sig);
    std::fflush(stdout);
    listener.close();  // the accept loop wakes with operation_canceled
    std::lock_guard lock(mu);
    for (auto& [id, conn] : open) conn->close();
  });

  std::uint64_t next_id = 0;
  for (;;) {
    std::error_code ec;
    spindle::connection conn = listener.accept(ec);
    if (ec == std::errc::operation_canceled || ec == std::errc::bad_file_descriptor) break;
    if (ec) {
      samples::error("accept: " + ec.message());
      continue;
    }
    const std::uint64_t id = next_id++;
    handlers.add(1);
    spindle::go([&, id, conn = std::move(conn)]() mutable {
      bool stopping;
      {
        std::lock_guard lock(mu);
        // The stop closes the listener before it closes what is in
        // `open`: a connection that comes after that is not served.
        stopping = !listener.is_open();
        if (!stopping) open.emplace(id, &conn);
      }
      std::array<char, 4096> buf;  // the peers in bench/peers/ use 4 KiB too
      std::error_code io;
      while (!stopping) {
        const std::size_t n = conn.read_some(buf, io);
        if (n == 0 || conn.write_all(std::string_view(buf.data(), n), io) != n) break;
      }
      {
        std::lock_guard lock(mu);
        open.erase(id);
      }
      handlers.done();
    });
  }
  handlers.wait();
  stopper.join();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<char*> args =
      samples::parse_command_line(argc, argv, usage, __FILE__, /*max_arguments=*/3);
  int port = absl::GetFlag(FLAGS_port);
  unsigned workers = absl::GetFlag(FLAGS_workers);
  std::string bind = absl::GetFlag(FLAGS_bind);
  // Positional arguments, as the benchmark scripts give them, stand for
  // the flags in order.
  if (args.size() > 1) port = number_argument<int>("PORT", args[1]);
  if (args.size() > 2) workers = number_argument<unsigned>("WORKERS", args[2]);
  if (args.size() > 3) bind = args[3];
  const std::string at = samples::listen_address(bind, port);

  int status = 0;
  try {
    spindle::run(spindle::options{.workers = workers}, [&] {
      std::error_code ec;
      spindle::listener listener = spindle::listen(at, ec);
      if (ec) {
        samples::error("cannot listen on " + at + ": " + ec.message());
        status = samples::exit_usage;
        return;
      }
      // Take over SIGINT and SIGTERM before saying we listen: a wait with
      // a deadline already past installs the handlers (or reports a
      // signal that came already). Left to the stopper fiber, a SIGTERM
      // sent as soon as we say we listen could come first and kill the
      // process outright.
      const int early_signal =
          spindle::wait_signal({SIGINT, SIGTERM}, std::chrono::nanoseconds(0), ec);
      std::printf("listening on %s\n", listener.local_address().to_string().c_str());
      std::fflush(stdout);
      serve(listener, early_signal);
    });
  } catch (const std::exception& e) {
    samples::error(e.what());
    return 1;
  }
  if (status == 0) std::puts("stopped");
  return status;
}
