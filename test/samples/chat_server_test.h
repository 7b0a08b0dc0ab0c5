// The fixture of the chat server's tests (samples/chat/server.h), one
// program per section: chat_server_<section>_test.cpp. Each test runs a
// chat::server in-process on 127.0.0.1 (port 0), serving from a fiber,
// drives it over TCP with test_clients in fibers, and stops it at the end.
//
// No test sleeps to synchronise or checks how fast anything happened:
// clients wait for the server's lines (every read with a deadline, so a
// missing line fails the test instead of hanging it), and "nothing else
// arrived" is checked with a PING whose PONG must come next, since the
// server answers a client's lines in order (for another client's lines,
// after a PING to that client first). Timing tests check lower bounds
// only; the fairness tests check that one event comes before another
// that is many times further off.
//
//   TEST_P(ChatServerTest, APingGetsAPong) {
//     with_server([&](chat::server& s) {
//       test_client alice = registered(s, "alice");
//       alice.send("PING :x");
//       EXPECT_EQ(alice.expect_line(), srv + "PONG spindle.chat :x");
//     });
//   }
//   SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "io/address.h"
#include "io/conn.h"
#include "samples/chat/server.h"
#include "samples/test_client.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace chat::test {

using testing::AllOf;
using testing::Contains;
using testing::ElementsAre;
using testing::EndsWith;
using testing::HasSubstr;
using testing::IsEmpty;
using testing::Not;
using testing::StartsWith;
using testing::UnorderedElementsAre;

// The prefix of the server's numerics under the default server name.
inline const std::string srv = ":spindle.chat ";

// The prefix of a client registered by register_as(nick) from 127.0.0.1.
inline std::string mask(std::string_view nick) { return cat(":", nick, "!~", nick, "@127.0.0.1"); }

// Polls `done` until it holds, sleeping a millisecond between tries (for
// counters the server updates after its last line to a client); false
// after a minute, so that a count that never settles fails the test.
template <class Pred>
bool eventually(Pred done) {
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    spindle::this_fiber::sleep_for(1ms);
  }
  return true;
}

// The server's options in most tests: on a free port of 127.0.0.1, and
// no flood limit (tests send faster than a person types).
inline chat::options test_options() {
  chat::options o;
  o.listen = "127.0.0.1:0";
  o.flood_rate = 0;
  return o;
}

// registered() is a client of `s` registered as `nick`.
inline test_client registered(chat::server& s, std::string_view nick) {
  test_client c(s.local_address(), std::string(nick));
  c.register_as(nick);
  return c;
}

// registered_in() is a client of `s` registered as `nick`, in `channel`,
// having read up to the end of that channel's NAMES.
inline test_client registered_in(chat::server& s, std::string_view nick, std::string_view channel) {
  test_client c = registered(s, nick);
  c.join(channel);
  return c;
}

// join_all() joins each of `clients` to `channel` in turn, then reads what
// each was sent meanwhile (the JOINs of the later ones): a channel that
// others' lines can be checked in.
template <class... Clients>
void join_all(std::string_view channel, Clients&... clients) {
  (clients.join(channel), ...);
  (clients.sync(), ...);
}

// The names that the 353 lines among `lines` list, in order.
inline std::vector<std::string> names_in(const std::vector<std::string>& lines) {
  std::vector<std::string> names;
  for (const std::string& l : lines) {
    if (command_of(l) != "353") continue;
    std::string_view list = std::string_view(l).substr(l.find(" :") + 2);
    while (!list.empty()) {
      const std::size_t space = list.find(' ');
      names.emplace_back(list.substr(0, space));
      if (space == std::string_view::npos) break;
      list.remove_prefix(space + 1);
    }
  }
  return names;
}

// A connection to `server` whose receive window is a few KiB (SO_RCVBUF
// set before connecting): with options::socket_send_buffer small too, the
// server can write little to it before the test reads.
inline spindle::connection small_window_connection(const spindle::address& server) {
  const int fd = ::socket(server.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  const int size = 4096;
  EXPECT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0) << std::strerror(errno);
  // Blocking, but over loopback the handshake is done within the call.
  EXPECT_EQ(::connect(fd, server.data(), server.size()), 0) << std::strerror(errno);
  return spindle::connection::adopt(fd);
}

class ChatServerTest : public spindle::test::workers_fixture {
 protected:
  // Runs body(server) on a runtime of workers() workers, with a server
  // with options `o` serving from a fiber; then stops the server and
  // waits for serve() to return.
  template <class Body>
  void with_server(chat::options o, Body body) {
    spindle::run(opts(), [&] {
      chat::server s(std::move(o));
      spindle::fiber serving([&s] { s.serve(); });
      try {
        body(s);
      } catch (...) {
        s.stop();
        serving.join();
        throw;
      }
      s.stop();
      serving.join();
    });
  }
  // The same with test_options().
  template <class Body>
  void with_server(Body body) {
    with_server(test_options(), std::move(body));
  }
};

}  // namespace chat::test
