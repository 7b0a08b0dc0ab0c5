// A straight-line echo server: an accept loop and one fiber per
// connection that reads what arrives and writes it back. It stops
// gracefully on SIGINT or SIGTERM: no new connections, the open ones
// closed (their fibers wake with operation_canceled and end), then
// spindle::run() returns.
//
// Usage: echo_server [PORT=7000] [WORKERS=hardware threads] [HOST=0.0.0.0]
#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>

#include <spindle.h>

int main(int argc, char** argv) {
  const std::string port = argc > 1 ? argv[1] : "7000";
  const unsigned workers = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 0;
  const std::string host = argc > 3 ? argv[3] : "0.0.0.0";

  spindle::run(spindle::options{.workers = workers}, [&] {
    spindle::listener listener = spindle::listen(host + ":" + port);
    std::printf("listening on %s\n", listener.local_address().to_string().c_str());
    std::fflush(stdout);

    // The open connections, so that a stop can close them.
    spindle::mutex mu;
    std::unordered_map<std::uint64_t, spindle::connection*> open;
    spindle::wait_group handlers;

    spindle::fiber stopper([&] {
      const int sig = spindle::wait_signal({SIGINT, SIGTERM});
      std::printf("signal %d: stopping\n", sig);
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
        std::fprintf(stderr, "accept: %s\n", ec.message().c_str());
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
  });
  std::puts("stopped");
}
