// thread_echo: a thread-per-connection TCP echo server written the way
// std::thread code is written (plain blocking POSIX calls: socket, bind,
// listen, accept, recv, send, close), built twice from this one source:
//
//   thread_echo_std      namespace port = std: one OS thread per connection.
//   thread_echo_spindle  namespace port = spindle, linked with spindle::hook,
//                        inside spindle::run(): one fiber per connection,
//                        its recv() and send() parking the fiber.
//
// The port is the namespace alias below and the spindle::run() around
// main's body; nothing else differs. bench/run_hook_bench.sh drives it
// with bench/io/loadgen.cpp beside samples/echo/echo_server.cpp.
//
//   thread_echo_std     [--port=7000] [PORT]
//   thread_echo_spindle [--port=7000] [--workers=1] [PORT [WORKERS]]
//
// Listens on 127.0.0.1 and prints "listening PORT"; the default action of
// SIGTERM and SIGINT stops it. A bad argument exits 2.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#ifndef THREAD_ECHO_ON_SPINDLE
#define THREAD_ECHO_ON_SPINDLE 0
#endif
#if THREAD_ECHO_ON_SPINDLE
#include "fiber/fiber.h"
#include "sched/scheduler.h"
namespace port = spindle;
#else
namespace port = std;
#endif

namespace {

// Sends all of buf; false on error.
bool send_all(int fd, const char* buf, std::size_t len) {
  while (len > 0) {
    const ssize_t n = ::send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

// One connection: recv() into a 4 KiB buffer (as the peers in
// bench/peers/echo and samples/echo do) and send it all back, until EOF.
void serve(int fd) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !send_all(fd, buf, static_cast<std::size_t>(n))) break;
  }
  ::close(fd);
}

int listen_on(int port_number) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port_number));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || ::listen(fd, SOMAXCONN) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The accept loop: a thread per connection, detached.
int serve_forever(int port_number) {
  const int lfd = listen_on(port_number);
  if (lfd < 0) {
    std::fprintf(stderr, "thread_echo: cannot listen on 127.0.0.1:%d: %s\n", port_number, std::strerror(errno));
    return 2;
  }
  std::printf("listening %d\n", port_number);
  std::fflush(stdout);
  const int one = 1;
  for (;;) {
    const int fd = ::accept(lfd, nullptr, nullptr);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) ::usleep(10000);
      continue;
    }
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    port::thread(serve, fd).detach();
  }
}

[[noreturn]] void usage(const char* program, std::string_view what) {
  std::fprintf(stderr, "%s: %.*s\nusage: %s [--port=7000]%s [PORT%s]\n", program, static_cast<int>(what.size()),
               what.data(), program, THREAD_ECHO_ON_SPINDLE ? " [--workers=1]" : "",
               THREAD_ECHO_ON_SPINDLE ? " [WORKERS]" : "");
  std::exit(2);
}

unsigned number(const char* program, std::string_view text) {
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) usage(program, "not a number: " + std::string(text));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned port_number = 7000, workers = 1;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    // --name=value or --name value
    auto value = [&](std::string_view name) -> const char* {
      if (a.substr(0, name.size()) != name) return nullptr;
      if (a.size() > name.size() && a[name.size()] == '=') return argv[i] + name.size() + 1;
      if (a.size() == name.size()) {
        if (i + 1 >= argc) usage(argv[0], std::string(name) + " needs a value");
        return argv[++i];
      }
      return nullptr;
    };
    if (const char* v = value("--port")) {
      port_number = number(argv[0], v);
    } else if (const char* w = THREAD_ECHO_ON_SPINDLE ? value("--workers") : nullptr) {
      workers = number(argv[0], w);
    } else if (a.substr(0, 1) != "-" && positional < (THREAD_ECHO_ON_SPINDLE ? 2 : 1)) {
      (positional++ == 0 ? port_number : workers) = number(argv[0], a);
    } else {
      usage(argv[0], "unexpected argument " + std::string(a));
    }
  }
  if (port_number > 65535) usage(argv[0], "port out of range");
  if (workers == 0) usage(argv[0], "--workers must be at least 1");
#if THREAD_ECHO_ON_SPINDLE
  int status = 0;
  spindle::run(spindle::options{.workers = workers}, [&] { status = serve_forever(static_cast<int>(port_number)); });
  return status;
#else
  return serve_forever(static_cast<int>(port_number));
#endif
}
