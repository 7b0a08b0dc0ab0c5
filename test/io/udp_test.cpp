#include "io/udp.h"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <functional>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/fiber_options.h"
#include "fiber/this_fiber.h"
#include "io/address.h"
#include "io/error.h"
#include "descriptor_reuse.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using spindle::test::yield_until;
using spindle::test::await_worker_free;

using namespace std::chrono_literals;
using spindle::address;
using spindle::fiber;
using spindle::udp_socket;

std::string_view text(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

class UdpTest : public spindle::test::workers_fixture {};
SPINDLE_INSTANTIATE_WORKERS(UdpTest, 1u, 2u, 4u);

// A request-response exchange between two sockets of `family` bound at
// `where`, the server in its own fiber.
void round_trip(const char* where, int rounds) {
  udp_socket server = udp_socket::bind(where);
  const address at = server.local_address();
  EXPECT_NE(at.port(), 0);
  fiber echo([&] {
    std::array<std::byte, 256> buf;
    for (int i = 0; i < rounds; ++i) {
      address from;
      const std::size_t n = server.recv_from(buf, from, 30s);
      server.send_to(std::span(buf).first(n), from, 30s);
    }
  });
  udp_socket client = udp_socket::open(at.family());
  for (int i = 0; i < rounds; ++i) {
    const std::string msg = "datagram " + std::to_string(i);
    EXPECT_EQ(client.send_to(msg, at), msg.size());
    std::array<std::byte, 256> buf;
    address from;
    const std::size_t n = client.recv_from(buf, from, 30s);
    EXPECT_EQ(text(std::span(buf).first(n)), msg);
    EXPECT_EQ(from, at);
  }
  echo.join();
}

TEST_P(UdpTest, SendToAndRecvFromRoundTripOverIpv4) {
  spindle::run(opts(), [] { round_trip("127.0.0.1:0", 100); });
}

TEST_P(UdpTest, SendToAndRecvFromRoundTripOverIpv6) {
  spindle::run(opts(), [] {
    std::error_code ec;
    udp_socket probe = udp_socket::bind("[::1]:0", ec);
    if (ec) GTEST_SKIP() << "no IPv6 loopback: " << ec.message();
    round_trip("[::1]:0", 100);
  });
}

TEST_P(UdpTest, RecvFromReportsTheSendersAddress) {
  spindle::run(opts(), [] {
    udp_socket receiver = udp_socket::bind("127.0.0.1:0");
    udp_socket a = udp_socket::bind("127.0.0.1:0");
    udp_socket b = udp_socket::bind("127.0.0.1:0");
    a.send_to("from a", receiver.local_address());
    b.send_to("from b", receiver.local_address());
    for (int i = 0; i < 2; ++i) {
      std::array<std::byte, 64> buf;
      address from;
      const std::size_t n = receiver.recv_from(buf, from, 30s);
      const std::string_view got = text(std::span(buf).first(n));
      if (got == "from a") {
        EXPECT_EQ(from, a.local_address());
      } else {
        EXPECT_EQ(got, "from b");
        EXPECT_EQ(from, b.local_address());
      }
    }
  });
}

TEST_P(UdpTest, RecvFromTimesOutWhenNothingArrives) {
  spindle::run(opts(), [] {
    udp_socket s = udp_socket::bind("127.0.0.1:0");
    std::array<std::byte, 16> buf;
    address from;
    std::error_code ec;
    EXPECT_EQ(s.recv_from(buf, from, 20ms, ec), 0u);
    EXPECT_EQ(ec, std::errc::timed_out);
    try {
      s.recv_from(buf, from, std::chrono::steady_clock::now() + 20ms);
      ADD_FAILURE() << "no exception";
    } catch (const spindle::io_error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out);
    }
    // The socket's own read deadline, too.
    s.set_read_deadline(20ms);
    s.recv_from(buf, from, {}, ec);
    EXPECT_EQ(ec, std::errc::timed_out);
    s.set_read_deadline({});
    // And it still receives.
    udp_socket::open().send_to("late", s.local_address());
    EXPECT_EQ(s.recv_from(buf, from, 30s), 4u);
  });
}

TEST_P(UdpTest, CloseWakesAFiberParkedInRecvFromWithOperationCanceled) {
  spindle::run(opts(), [&] {
    spindle::this_fiber::pin_guard pin;
    for (int w = 0; w < static_cast<int>(workers()); ++w) {
      udp_socket s = udp_socket::bind("127.0.0.1:0");
      std::atomic<bool> started{false};
      std::error_code ec;
      fiber receiver(spindle::fiber_options{.worker = w, .pinned = true}, [&] {
        std::array<std::byte, 16> buf;
        address from;
        started.store(true);
        s.recv_from(buf, from, {}, ec);
      });
      yield_until([&] { return started.load(); });
      await_worker_free(w);  // parked in recv_from()
      s.close();
      receiver.join();
      EXPECT_EQ(ec, std::errc::operation_canceled) << "receiver on worker " << w;
    }
  });
}

TEST_P(UdpTest, CallsAfterCloseFailWithBadFileDescriptor) {
  spindle::run(opts(), [] {
    udp_socket s = udp_socket::bind("127.0.0.1:0");
    const address at = s.local_address();
    s.close();
    s.close();  // idempotent
    EXPECT_FALSE(s.is_open());
    std::array<std::byte, 16> buf;
    address from;
    std::error_code ec;
    s.recv_from(buf, from, {}, ec);
    EXPECT_EQ(ec, std::errc::bad_file_descriptor);
    s.send_to(std::as_bytes(std::span("x", 1)), at, {}, ec);
    EXPECT_EQ(ec, std::errc::bad_file_descriptor);
    EXPECT_THROW(s.send_to("x", at), spindle::io_error);
  });
}

// send_to() of a string_view has its std::error_code form too, like the
// span's: it reports errors in `ec` and throws nothing.
TEST_P(UdpTest, SendToOfAStringViewHasAnErrorCodeFormThatDoesNotThrow) {
  spindle::run(opts(), [] {
    udp_socket receiver = udp_socket::bind("127.0.0.1:0");
    const address at = receiver.local_address();
    udp_socket sender = udp_socket::open();
    std::error_code ec = std::make_error_code(std::errc::io_error);
    static_assert(noexcept(sender.send_to(std::string_view(), at, spindle::deadline(), ec)));
    EXPECT_EQ(sender.send_to(std::string_view("hello"), at, 30s, ec), 5u);
    EXPECT_FALSE(ec);
    EXPECT_EQ(sender.send_to("x", at, {}, ec), 1u);
    EXPECT_FALSE(ec);
    std::array<std::byte, 64> buf;
    address from;
    EXPECT_EQ(text(std::span(buf).first(receiver.recv_from(buf, from, 30s))), "hello");
    EXPECT_EQ(text(std::span(buf).first(receiver.recv_from(buf, from, 30s))), "x");
    EXPECT_EQ(from.port(), sender.local_address().port());
    sender.close();
    EXPECT_EQ(sender.send_to("late", at, {}, ec), 0u);
    EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  });
}

TEST_P(UdpTest, ADatagramLongerThanTheBufferIsTruncatedAndItsExcessDropped) {
  spindle::run(opts(), [] {
    udp_socket receiver = udp_socket::bind("127.0.0.1:0");
    udp_socket sender = udp_socket::open();
    const std::string big(1000, 'b');
    sender.send_to("0123456789abcdef", receiver.local_address());
    sender.send_to(big, receiver.local_address());
    std::array<std::byte, 10> small;
    address from;
    EXPECT_EQ(receiver.recv_from(small, from, 30s), 10u);
    EXPECT_EQ(text(small), "0123456789");
    // The next receive starts at the next datagram, not at "abcdef".
    std::array<std::byte, 2000> buf;
    EXPECT_EQ(receiver.recv_from(buf, from, 30s), big.size());
    EXPECT_EQ(text(std::span(buf).first(big.size())), big);
  });
}

TEST_P(UdpTest, BindingABadAddressFails) {
  spindle::run(opts(), [] {
    std::error_code ec;
    udp_socket::bind("@abstract", ec);
    EXPECT_EQ(ec, std::errc::address_family_not_supported);
    udp_socket::bind("not an address", ec);
    EXPECT_TRUE(ec);
    udp_socket::bind(address(), ec);
    EXPECT_EQ(ec, std::errc::invalid_argument);
    udp_socket a = udp_socket::bind("127.0.0.1:0");
    udp_socket::bind(a.local_address(), ec);
    EXPECT_EQ(ec, std::errc::address_in_use);
  });
}

TEST_P(UdpTest, LocalAddressRacingACloseAndANewSocketOnItsNumberNeverReportsTheNewSocketsAddress) {
  spindle::run(opts(), [] {
    udp_socket s = udp_socket::bind("127.0.0.1:0");
    const address before = s.local_address();
    // The new socket is unbound: its name is 0.0.0.0:0, not `before`.
    spindle::test::descriptor_reuse_race race(
        spindle::test::hooked_call::getsockname, s.native_handle(), 0, 0, [&] { s.close(); },
        [] { return ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); });
    std::error_code ec;
    const address got = s.local_address(ec);
    const int reused = race.finish();
    ASSERT_GE(reused, 0);
    if (!ec) {
      EXPECT_EQ(got, before) << "local_address() named the socket that took over the descriptor";
    }
    ::close(reused);
  });
}

// Two calls of one direction on one worker, the first parked in the
// netpoll (holding the direction's lock), the second parked on that lock
// (holding an op: close() waits for it); then close() begins, with the
// call itself able to succeed (`make_room`: a datagram to read, room to
// send). Returns what the second call reported. On one worker each fiber
// runs until it parks, so "started" means "parked".
std::error_code second_call_when_close_begins(udp_socket& s, const std::function<void(std::error_code&)>& call,
                                              const std::function<void()>& make_room) {
  std::error_code first_ec, second_ec;
  std::atomic<int> started{0};
  fiber first([&] {
    started.fetch_add(1);
    call(first_ec);
  });
  yield_until([&] { return started.load() == 1; });
  fiber second([&] {
    started.fetch_add(1);
    call(second_ec);
  });
  yield_until([&] { return started.load() == 2; });
  make_room();  // no switch from here to close(): neither call can run
  s.close();
  first.join();
  second.join();
  return second_ec;
}

TEST(UdpOneWorkerTest, ARecvFromWaitingForItsTurnWhenCloseBeginsFailsWithOperationCanceledAsConnectionReadsDo) {
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    udp_socket s = udp_socket::bind("127.0.0.1:0");
    const address at = s.local_address();
    udp_socket client = udp_socket::open(AF_INET);
    const std::error_code ec = second_call_when_close_begins(
        s,
        [&](std::error_code& e) {
          std::array<std::byte, 16> buf;
          address from;
          s.recv_from(buf, from, {}, e);
        },
        [&] {
          // A datagram for each call; the loopback queues them at once,
          // poll() only makes sure (it blocks the one worker, briefly).
          client.send_to("a", at);
          client.send_to("b", at);
          pollfd p{s.native_handle(), POLLIN, 0};
          ASSERT_EQ(::poll(&p, 1, 10000), 1);
        });
    EXPECT_EQ(ec, std::errc::operation_canceled);
  });
}

TEST(UdpOneWorkerTest, ASendToWaitingForItsTurnWhenCloseBeginsFailsWithOperationCanceledAsConnectionWritesDo) {
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    // A Unix-domain datagram socket: its sends block while the receiver's
    // queue is full (a UDP one never does: the loopback drops instead).
    const auto to = address::parse("@spindle-udp-test-" + std::to_string(::getpid()));
    ASSERT_TRUE(to.has_value());
    udp_socket receiver = udp_socket::bind(*to);
    udp_socket s = udp_socket::open(AF_UNIX);
    while (::sendto(s.native_handle(), "x", 1, MSG_DONTWAIT, to->data(), to->size()) == 1) {
    }
    ASSERT_EQ(errno, EAGAIN);
    const std::error_code ec = second_call_when_close_begins(
        s, [&](std::error_code& e) { s.send_to("y", *to, {}, e); },
        [&] {
          char buf[16];
          while (::recv(receiver.native_handle(), buf, sizeof buf, MSG_DONTWAIT) > 0) {
          }
        });
    EXPECT_EQ(ec, std::errc::operation_canceled);
  });
}

TEST(UdpOnPlainThreadsTest, UdpSocketsWorkOnPlainThreads) {
  udp_socket server = udp_socket::bind("127.0.0.1:0");
  std::thread t([&] {
    std::array<std::byte, 64> buf;
    address from;
    const std::size_t n = server.recv_from(buf, from, 30s);
    server.send_to(std::span(buf).first(n), from);
  });
  udp_socket client = udp_socket::open();
  client.send_to("ping", server.local_address());
  std::array<std::byte, 64> buf;
  address from;
  EXPECT_EQ(client.recv_from(buf, from, 30s), 4u);
  EXPECT_EQ(text(std::span(buf).first(4)), "ping");
  t.join();
}

}  // namespace
