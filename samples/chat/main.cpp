// chat_server: the chat server of samples/chat/server.h as a program.
// Any IRC client can connect (irssi: /connect localhost 6667).
//
//   chat_server [--port=6667] [--bind=0.0.0.0] [--workers=N] [--max_clients=...]
//   chat_server --help     (the flags below)
//
// SIGINT or SIGTERM: clients are told "ERROR :Server shutting down", the
// connections close, and the program exits 0. A bad flag, or an address
// it cannot listen on, is said on stderr and exits 2.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "samples/chat/server.h"
#include "samples/command_line.h"
#include "samples/serve.h"

ABSL_FLAG(int, port, 6667, "TCP port to listen on (0: any free port)");
ABSL_FLAG(std::string, bind, "0.0.0.0", "address to listen on (\"::\" for IPv6)");
ABSL_FLAG(unsigned, workers, 0, "worker threads (0: one per hardware thread)");
ABSL_FLAG(std::string, server_name, "spindle.chat", "the server's name in prefixes and numerics");
ABSL_FLAG(std::string, network, "Spindle", "the network's name (001, 005)");
ABSL_FLAG(std::string, password, "", "a password clients must send with PASS (empty: none)");
ABSL_FLAG(std::string, motd, "Welcome. This server is a sample of the Spindle fiber library.",
          "message of the day, lines separated by \\n (empty: none)");
ABSL_FLAG(std::size_t, max_clients, 20000, "connections at most, in total");
ABSL_FLAG(std::size_t, max_clients_per_ip, 20000, "connections at most from one IP address");
ABSL_FLAG(std::size_t, sendq, 256 * 1024, "bytes a client's send queue may hold before it is disconnected");
ABSL_FLAG(int, register_timeout, 60, "seconds a connection has to register");
ABSL_FLAG(int, ping_interval, 120, "seconds of silence after which a client is sent PING");
ABSL_FLAG(int, ping_timeout, 60, "seconds to answer that PING before being disconnected");
ABSL_FLAG(double, flood_rate, 2.0, "lines a second a client may send beyond its burst (0: no limit)");
ABSL_FLAG(std::size_t, flood_burst, 20, "lines a client may send at once");
ABSL_FLAG(std::size_t, flood_max_delayed, 100,
          "lines delayed in a row after which a flooding client is disconnected");

namespace {

// Raises the soft limit on open descriptors to the hard limit: each client
// is one. Says so if that is still fewer than max_clients.
void raise_descriptor_limit(std::size_t max_clients) {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < max_clients + 64) {
    std::fprintf(stderr,
                 "chat_server: note: the open-files limit is %llu (hard limit), so at most about "
                 "%llu clients can connect, not %zu\n",
                 static_cast<unsigned long long>(r.rlim_cur),
                 static_cast<unsigned long long>(r.rlim_cur > 64 ? r.rlim_cur - 64 : 0), max_clients);
  }
}

// Listens and serves until SIGINT or SIGTERM; the exit status. On a fiber.
int serve(const chat::options& o) {
  std::unique_ptr<chat::server> s;
  try {
    s = std::make_unique<chat::server>(o);
  } catch (const std::exception& e) {
    samples::error("cannot listen on " + o.listen + ": " + e.what());
    return samples::exit_usage;
  }
  samples::serve_until_signal("chat_server", *s);
  const chat::stats st = s->stats();
  std::printf("chat_server: stopped; %llu connections served, %llu refused, %llu sendq, "
              "%llu flood, %llu ping timeouts\n",
              static_cast<unsigned long long>(st.accepted),
              static_cast<unsigned long long>(st.refused),
              static_cast<unsigned long long>(st.sendq_exceeded),
              static_cast<unsigned long long>(st.flood_kills),
              static_cast<unsigned long long>(st.ping_timeouts));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  samples::parse_command_line(
      argc, argv,
      "A chat server that IRC clients use, on Spindle fibers.\n"
      "Usage: chat_server [--port=6667] [--bind=0.0.0.0] [--workers=N] [flags below]",
      __FILE__);

  chat::options o;
  o.listen = samples::listen_address(absl::GetFlag(FLAGS_bind), absl::GetFlag(FLAGS_port));
  o.server_name = absl::GetFlag(FLAGS_server_name);
  o.network = absl::GetFlag(FLAGS_network);
  o.password = absl::GetFlag(FLAGS_password);
  o.motd = absl::GetFlag(FLAGS_motd);
  o.max_clients = absl::GetFlag(FLAGS_max_clients);
  o.max_clients_per_ip = absl::GetFlag(FLAGS_max_clients_per_ip);
  o.send_queue_bytes = absl::GetFlag(FLAGS_sendq);
  o.register_timeout = std::chrono::seconds(absl::GetFlag(FLAGS_register_timeout));
  o.ping_interval = std::chrono::seconds(absl::GetFlag(FLAGS_ping_interval));
  o.ping_timeout = std::chrono::seconds(absl::GetFlag(FLAGS_ping_timeout));
  o.flood_rate = absl::GetFlag(FLAGS_flood_rate);
  o.flood_burst = absl::GetFlag(FLAGS_flood_burst);
  o.flood_max_delayed = absl::GetFlag(FLAGS_flood_max_delayed);
  raise_descriptor_limit(o.max_clients);

  return samples::run_program(absl::GetFlag(FLAGS_workers), [&] { return serve(o); });
}
