#include "io/listener.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/fiber_options.h"
#include "fiber/this_fiber.h"
#include "io/address.h"
#include "io/conn.h"
#include "io/error.h"
#include "sched/scheduler.h"
#include "descriptor_reuse.h"
#include "sync/wait_group.h"
#include "test_util.h"

namespace spindle::detail {
// Back-off sleeps accept() took for want of descriptors (io/listener.cpp).
extern std::atomic<long> accept_backoffs;
}  // namespace spindle::detail

namespace {

using spindle::test::yield_until;
using spindle::test::await_worker_free;

namespace stdfs = std::filesystem;
using namespace std::chrono_literals;
using spindle::connection;
using spindle::fiber;

class ListenerTest : public spindle::test::workers_fixture {};
SPINDLE_INSTANTIATE_WORKERS(ListenerTest, 1u, 2u, 4u);

TEST_P(ListenerTest, AnAcceptLoopServesManyClients) {
  const int clients = static_cast<int>(spindle::test::scaled(500) / 2 + 50);
  spindle::run(opts(), [&] {
    spindle::listener l = spindle::listen("127.0.0.1:0");
    std::atomic<int> served{0};
    fiber server([&] {
      spindle::wait_group handlers;
      for (;;) {
        std::error_code ec;
        connection c = l.accept(ec);
        if (ec) break;
        handlers.add(1);
        spindle::go([&, c = std::move(c)]() mutable {
          // The request is a number; the response is twice it.
          std::array<char, 16> buf{};
          std::error_code ec;
          const std::size_t n = c.read_some(buf, 30s, ec);
          EXPECT_FALSE(ec) << ec.message();
          if (n > 0) c.write_all(std::to_string(2 * std::stoi(std::string(buf.data(), n))), 30s, ec);
          EXPECT_FALSE(ec) << ec.message();
          served.fetch_add(1);
          handlers.done();
        });
      }
      handlers.wait();
    });
    spindle::wait_group wg;
    for (int i = 0; i < clients; ++i) {
      wg.add(1);
      spindle::go([&, i] {
        try {
          connection c = spindle::dial(l.local_address(), 30s);
          c.write_all(std::to_string(i));
          std::array<char, 16> buf{};
          std::size_t got = 0;
          while (std::size_t n = c.read_some(std::span(buf).subspan(got), 30s)) got += n;
          EXPECT_EQ(std::string(buf.data(), got), std::to_string(2 * i));
        } catch (const std::exception& e) {
          ADD_FAILURE() << "client " << i << ": " << e.what();
        }
        wg.done();
      });
    }
    wg.wait();
    l.close();
    server.join();
    EXPECT_EQ(served.load(), clients);
  });
}

TEST_P(ListenerTest, AcceptTimesOutWhenNoClientComes) {
  spindle::run(opts(), [] {
    spindle::listener l = spindle::listen("127.0.0.1:0");
    std::error_code ec;
    connection c = l.accept(20ms, ec);
    EXPECT_EQ(ec, std::errc::timed_out);
    EXPECT_FALSE(c.is_open());
    try {
      l.accept(std::chrono::steady_clock::now() + 20ms);
      ADD_FAILURE() << "no exception";
    } catch (const spindle::io_error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out);
    }
    // A deadline already passed still takes a connection that is waiting.
    connection client = spindle::dial(l.local_address());
    connection server = l.accept(std::chrono::steady_clock::now() - 1s, ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(server.is_open());
  });
}

TEST_P(ListenerTest, AcceptedConnectionsHaveNodelaySet) {
  spindle::run(opts(), [] {
    spindle::listener l = spindle::listen("127.0.0.1:0");
    connection client = spindle::dial(l.local_address());
    connection server = l.accept();
    int v = 0;
    socklen_t len = sizeof v;
    ASSERT_EQ(::getsockopt(server.native_handle(), IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    EXPECT_NE(v, 0);
  });
}

TEST_P(ListenerTest, ListeningOnAnAddressInUseFailsWithAddressInUse) {
  spindle::run(opts(), [] {
    spindle::listener first = spindle::listen("127.0.0.1:0");
    const std::string at = first.local_address().to_string();
    std::error_code ec;
    spindle::listener second = spindle::listen(at, spindle::listen_options{.reuse_port = false}, ec);
    EXPECT_EQ(ec, std::errc::address_in_use) << ec.message();
    EXPECT_FALSE(second.is_open());
    try {
      spindle::listen(at);
      ADD_FAILURE() << "no exception";
    } catch (const spindle::io_error& e) {
      EXPECT_EQ(e.code(), std::errc::address_in_use);
    }
    // Once the first is closed, the port is free again (SO_REUSEADDR).
    first.close();
    spindle::listener third = spindle::listen(at, ec);
    EXPECT_FALSE(ec) << ec.message();
  });
}

TEST_P(ListenerTest, ReusePortLetsTwoListenersShareAPort) {
  spindle::run(opts(), [] {
    spindle::listen_options o;
    o.reuse_port = true;
    spindle::listener a = spindle::listen("127.0.0.1:0", o);
    const spindle::address at = a.local_address();
    spindle::listener b = spindle::listen(at, o);
    EXPECT_EQ(b.local_address(), at);
    // Every client is served by one of the two.
    const int clients = 64;
    std::atomic<int> served{0};
    int by_a = 0;
    int by_b = 0;
    auto serve = [&](spindle::listener& l, int& count) {
      for (;;) {
        std::error_code ec;
        connection c = l.accept(ec);
        if (ec) {
          // Closed while parked in accept(), or before it got there.
          EXPECT_TRUE(ec == std::errc::operation_canceled || ec == std::errc::bad_file_descriptor)
              << ec.message();
          return;
        }
        std::array<char, 1> buf;
        c.read_exactly(buf, 30s);
        c.write_all(std::string_view(buf.data(), 1));
        ++count;
        served.fetch_add(1);
      }
    };
    fiber fa([&] { serve(a, by_a); });
    fiber fb([&] { serve(b, by_b); });
    for (int i = 0; i < clients; ++i) {
      connection c = spindle::dial(at, 30s);
      c.write_all("k");
      std::array<char, 1> buf;
      EXPECT_EQ(c.read_exactly(buf, 30s), 1u);
    }
    yield_until([&] { return served.load() == clients; });
    a.close();
    b.close();
    fa.join();
    fb.join();
    EXPECT_EQ(by_a + by_b, clients);
  });
}

TEST_P(ListenerTest, ListeningOnAMalformedAddressFailsWithAnErrorNotACrash) {
  spindle::run(opts(), [] {
    for (std::string_view bad : {"bad", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:port", "[::1", "unix:",
                                  "@", ""}) {
      std::error_code ec;
      spindle::listener l = spindle::listen(bad, ec);
      EXPECT_TRUE(ec) << "listen(\"" << bad << "\") succeeded";
      EXPECT_FALSE(l.is_open());
      EXPECT_THROW(spindle::listen(bad), std::system_error) << bad;
    }
    std::error_code ec;
    spindle::listen(spindle::address(), {}, ec);
    EXPECT_EQ(ec, std::errc::invalid_argument);
    // Not a local address.
    spindle::listen("192.0.2.1:0", ec);
    EXPECT_EQ(ec, std::errc::address_not_available) << ec.message();
  });
}

TEST_P(ListenerTest, CloseWakesAParkedAcceptWithOperationCanceled) {
  spindle::run(opts(), [&] {
    spindle::this_fiber::pin_guard pin;
    for (int w = 0; w < static_cast<int>(workers()); ++w) {
      spindle::listener l = spindle::listen("127.0.0.1:0");
      std::atomic<bool> started{false};
      std::error_code ec;
      fiber acceptor(spindle::fiber_options{.worker = w, .pinned = true}, [&] {
        started.store(true);
        l.accept(ec);
      });
      yield_until([&] { return started.load(); });
      await_worker_free(w);  // parked in accept()
      l.close();
      acceptor.join();
      EXPECT_EQ(ec, std::errc::operation_canceled) << "acceptor on worker " << w;
    }
  });
}

TEST_P(ListenerTest, CloseFromAPlainThreadWakesAParkedAccept) {
  spindle::run(opts(), [&] {
    spindle::this_fiber::pin_guard pin;
    const int w = static_cast<int>(workers()) - 1;
    spindle::listener l = spindle::listen("127.0.0.1:0");
    std::atomic<bool> started{false};
    std::error_code ec;
    fiber acceptor(spindle::fiber_options{.worker = w, .pinned = true}, [&] {
      started.store(true);
      l.accept(ec);
    });
    yield_until([&] { return started.load(); });
    await_worker_free(w);
    std::atomic<bool> closed{false};
    std::thread closer([&] {
      l.close();
      closed.store(true);
    });
    yield_until([&] { return closed.load(); });
    closer.join();
    acceptor.join();
    EXPECT_EQ(ec, std::errc::operation_canceled);
  });
}

TEST_P(ListenerTest, AcceptAfterCloseFailsWithBadFileDescriptor) {
  spindle::run(opts(), [] {
    spindle::listener l = spindle::listen("127.0.0.1:0");
    EXPECT_TRUE(l.is_open());
    l.close();
    l.close();  // idempotent
    EXPECT_FALSE(l.is_open());
    EXPECT_EQ(l.native_handle(), -1);
    std::error_code ec;
    l.accept(ec);
    EXPECT_EQ(ec, std::errc::bad_file_descriptor);
    try {
      l.accept();
      ADD_FAILURE() << "no exception";
    } catch (const spindle::io_error& e) {
      EXPECT_EQ(e.code(), std::errc::bad_file_descriptor);
    }
    l.local_address(ec);
    EXPECT_EQ(ec, std::errc::bad_file_descriptor);
    spindle::listener never;
    never.accept(ec);
    EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  });
}

TEST_P(ListenerTest, LocalAddressRacingACloseAndANewSocketOnItsNumberNeverReportsTheNewSocketsAddress) {
  spindle::run(opts(), [] {
    spindle::listener l = spindle::listen("127.0.0.1:0");
    const spindle::address before = l.local_address();
    // The new socket is unbound: its name is 0.0.0.0:0, not `before`.
    spindle::test::descriptor_reuse_race race(
        spindle::test::hooked_call::getsockname, l.native_handle(), 0, 0, [&] { l.close(); },
        [] { return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); });
    std::error_code ec;
    const spindle::address got = l.local_address(ec);
    const int reused = race.finish();
    ASSERT_GE(reused, 0);
    if (!ec) {
      EXPECT_EQ(got, before) << "local_address() named the socket that took over the descriptor";
    }
    ::close(reused);
  });
}

TEST_P(ListenerTest, AUnixListenerRemovesItsSocketFileOnClose) {
  std::string dir = (stdfs::temp_directory_path() / "spindle-listener-XXXXXX").string();
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/l.sock";
  spindle::run(opts(), [&] {
    struct stat st {};
    {
      spindle::listener l = spindle::listen(path);
      ASSERT_EQ(::stat(path.c_str(), &st), 0);
      EXPECT_TRUE(S_ISSOCK(st.st_mode));
      EXPECT_EQ(l.local_address().path(), path);
      connection c = spindle::dial("unix:" + path);
      connection s = l.accept();
      l.close();
      EXPECT_NE(::stat(path.c_str(), &st), 0);
      EXPECT_EQ(errno, ENOENT);
      // Connections already made live on.
      c.write_all("x");
      std::array<char, 1> buf;
      EXPECT_EQ(s.read_exactly(buf, 10s), 1u);
    }
    {
      spindle::listener l = spindle::listen("unix:" + path);  // the name is free again
      ASSERT_EQ(::stat(path.c_str(), &st), 0);
    }  // the destructor removes it too
    EXPECT_NE(::stat(path.c_str(), &st), 0);
  });
  std::error_code ignored;
  stdfs::remove_all(dir, ignored);
}

// ---- Out of descriptors ----

// The scenario runs in a child process (it lowers the descriptor limit)
// and ends it with _exit: 0 on success, else 1 after saying why.
[[noreturn]] void fail_child(const char* why) {
  std::fprintf(stderr, "%s (errno %d: %s)\n", why, errno, std::strerror(errno));
  ::_exit(1);
}

int highest_open_descriptor() {
  int highest = -1;
  for (const auto& e : stdfs::directory_iterator("/proc/self/fd")) {
    highest = std::max(highest, std::stoi(e.path().filename().string()));
  }
  return highest;
}

void accept_when_out_of_descriptors() {
  ::alarm(120);  // a hang ends the child (by SIGALRM), failing the test
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    spindle::listener l = spindle::listen("127.0.0.1:0");
    // A client connects before the descriptors run out; its connection
    // waits in the listener's queue.
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (client < 0) fail_child("socket");
    const spindle::address at = l.local_address();
    if (::connect(client, at.data(), at.size()) != 0 && errno != EINPROGRESS) fail_child("connect");
    std::error_code ec;
    spindle::wait_writable(client, 30s, ec);  // connected
    if (ec) fail_child("the client did not connect");

    // The acceptor starts before the descriptors run out (under UBSan,
    // starting a fiber checks its vptr, which needs a pipe), and accepts
    // once they have.
    std::atomic<bool> exhausted{false};
    std::atomic<bool> accepted{false};
    fiber acceptor([&] {
      yield_until([&] { return exhausted.load(); });
      std::error_code aec;
      connection c = l.accept(60s, aec);
      if (aec) {
        std::fprintf(stderr, "accept: %s\n", aec.message().c_str());
        ::_exit(1);
      }
      accepted.store(true);
      c.write_all("!", 10s);  // one byte each way through the new connection
      std::array<char, 1> buf;
      if (c.read_exactly(buf, 10s) != 1 || buf[0] != '?') fail_child("echo back");
    });

    // Use up every descriptor.
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0) fail_child("getrlimit");
    r.rlim_cur = static_cast<rlim_t>(highest_open_descriptor()) + 1 + 8;
    if (::setrlimit(RLIMIT_NOFILE, &r) != 0) fail_child("setrlimit");
    std::vector<int> spare;
    for (;;) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        if (errno != EMFILE) fail_child("open /dev/null");
        break;
      }
      spare.push_back(fd);
    }
    if (spare.size() < 4) fail_child("too few descriptors to free later");
    const long backoffs_before = spindle::detail::accept_backoffs.load();
    exhausted.store(true);

    // accept() fails with EMFILE and, rather than retry at once (the
    // pending connection keeps the listener readable), sleeps between
    // attempts, each sleep longer.
    while (spindle::detail::accept_backoffs.load() - backoffs_before < 3) {
      if (accepted.load()) fail_child("accept succeeded with no descriptor free");
      if (std::chrono::steady_clock::now() > give_up) fail_child("accept did not back off");
      spindle::this_fiber::yield();
    }
    if (accepted.load()) fail_child("accept succeeded with no descriptor free");
    // Free some: accept resumes and succeeds (and leaves a few free).
    for (int i = 0; i < 4; ++i) {
      ::close(spare.back());
      spare.pop_back();
    }
    spindle::wait_readable(client, 60s, ec);
    if (ec) fail_child("the accepted connection wrote nothing");
    char b = 0;
    if (::read(client, &b, 1) != 1 || b != '!') fail_child("read the byte");
    if (::write(client, "?", 1) != 1) fail_child("write the byte");
    acceptor.join();
    if (!accepted.load()) fail_child("not accepted");
  });
  ::_exit(0);
}

TEST(ListenerOutOfDescriptorsTest, AcceptBacksOffWhileOutOfDescriptorsAndResumesOnceSomeAreFree) {
#if SPINDLE_ASAN
  // The ASan build has UBSan too, whose vptr check probes memory through a
  // pipe(2): with no descriptor free it fails, and reports every virtual
  // call in the child (error_category's included) as a bad vptr.
  GTEST_SKIP() << "UBSan's vptr check needs free descriptors";
#endif
  EXPECT_EXIT(accept_when_out_of_descriptors(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
