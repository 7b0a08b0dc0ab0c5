// A thread-per-connection echo server written only with std::thread-style
// code and plain POSIX calls (socket, accept, recv, send, close), ported
// to Spindle by changing the namespace of its threads and linking
// spindle::hook: on a one-worker runtime it serves 1,000 connections at
// once, which without the hook would stop at the first recv().
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "hook/hook.h"
#include "sched/scheduler.h"
#include "sync/mutex.h"
#include "test_util.h"

namespace {

// The port: the program below was written against `std`.
namespace port = spindle;

// send_all() is a plain blocking send: the hook makes it write everything
// (as the kernel's blocking send does), the loop is only what any careful
// program would write anyway.
bool send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool recv_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// The server: one thread accepts, one thread per connection echoes.
class echo_server {
 public:
  explicit echo_server(int connections) : connections_(connections) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener_, 4096), 0);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    acceptor_ = port::thread([this] { accept_loop(); });
  }
  ~echo_server() {
    acceptor_.join();
    for (port::thread& t : handlers_) t.join();
    ::close(listener_);
  }
  int port() const { return port_; }

 private:
  void accept_loop() {
    for (int i = 0; i < connections_; ++i) {
      const int c = ::accept(listener_, nullptr, nullptr);
      ASSERT_GE(c, 0) << std::strerror(errno);
      handlers_.emplace_back([c] {
        char buf[4096];
        for (;;) {
          const ssize_t n = ::recv(c, buf, sizeof buf, 0);
          if (n <= 0) break;
          if (!send_all(c, buf, static_cast<std::size_t>(n))) break;
        }
        ::close(c);
      });
    }
  }

  const int connections_;
  int listener_ = -1;
  int port_ = 0;
  port::thread acceptor_;
  std::vector<port::thread> handlers_;
};

int connect_to(int p) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(p));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(HookEchoTest, TheHookIsLinkedIntoThisProgram) { EXPECT_TRUE(spindle::hook::linked()); }

TEST(HookEchoTest, AThreadPerConnectionServerPortedByNamespaceServesAThousandConnectionsOnOneWorker) {
  constexpr int connections = static_cast<int>(spindle::test::max_concurrent_fibers(3000) / 3);
  ASSERT_GE(spindle::test::raise_descriptor_limit(), static_cast<rlim_t>(3 * connections + 64));
  std::atomic<int> echoed{0};
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [&] {
    echo_server server(connections);
    // Every client connects before any sends: all connections are open
    // at once, each with its server thread parked in recv().
    std::vector<int> fds(connections, -1);
    std::atomic<int> connected{0};
    spindle::mutex gate;
    gate.lock();
    std::vector<port::thread> clients;
    for (int i = 0; i < connections; ++i) {
      clients.emplace_back([&, i] {
        fds[i] = connect_to(server.port());
        connected.fetch_add(1);
        { std::lock_guard wait_for_all(gate); }
        if (fds[i] < 0) return;
        // Three rounds of 8 KiB, each a pattern of its own.
        std::string out(8192, '\0'), in(8192, '\0');
        bool ok = true;
        for (int round = 0; round < 3 && ok; ++round) {
          for (std::size_t k = 0; k < out.size(); ++k) out[k] = static_cast<char>(i * 7 + round * 13 + k);
          ok = send_all(fds[i], out.data(), out.size()) && recv_all(fds[i], in.data(), in.size()) && in == out;
        }
        if (ok) echoed.fetch_add(1);
        ::close(fds[i]);
      });
    }
    spindle::test::yield_until([&] { return connected.load() == connections; });
    gate.unlock();
    for (port::thread& t : clients) t.join();
  });
  EXPECT_EQ(echoed.load(), connections);
}

}  // namespace
