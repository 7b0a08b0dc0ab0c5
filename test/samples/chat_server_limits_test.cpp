// The chat server (samples/chat/server.h), limits: the send queue, the
// flood limit, registration and ping timeouts, connection limits. The
// fixture and the test client: chat_server_test.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "samples/chat_server_test.h"

namespace chat::test {
namespace {

SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);

TEST_P(ChatServerTest, ASlowReaderIsDisconnectedWithoutHoldingUpTheOthers) {
  chat::options o = test_options();
  o.send_queue_bytes = 64 * 1024;
  o.linger = 200ms;
  with_server(o, [&](chat::server& s) {
    test_client fast = registered_in(s, "fast", "#flood");
    test_client flooder = registered_in(s, "flooder", "#flood");
    test_client slow = registered_in(s, "slow", "#flood");
    fast.sync();
    flooder.sync();
    // From here on `slow` reads nothing until the end.

    // The flooder sends batches (16 KiB, a quarter of a send queue) and
    // waits for `fast` to have read each, until the server has dropped
    // `slow`; and a few batches more.
    const std::string padding(400, 'z');
    constexpr int per_batch = 38;
    constexpr std::size_t give_up_bytes = 256u << 20;  // the kernel never buffers this much
    int sent = 0, received = 0;
    int batches_after = -1;
    bool quit_seen = false;
    std::size_t bytes = 0;
    auto read_fast = [&](int until) {
      while (received < until) {
        std::optional<std::string> line = fast.read_line();
        if (!line) return false;
        if (*line == mask("slow") + " QUIT :SendQ exceeded") {
          quit_seen = true;
          continue;
        }
        if (command_of(*line) != "PRIVMSG") continue;
        const std::string expected =
            cat(mask("flooder"), " PRIVMSG #flood :", received, " ", padding);
        if (*line != expected) {
          ADD_FAILURE() << "fast got " << line->substr(0, 80) << "... where message " << received
                        << " was due";
          return false;
        }
        ++received;
      }
      return true;
    };
    while (batches_after < 4 && bytes < give_up_bytes) {
      std::string batch;
      for (int i = 0; i < per_batch; ++i)
        batch += cat("PRIVMSG #flood :", sent++, " ", padding, "\r\n");
      bytes += batch.size();
      flooder.write(batch);
      if (!read_fast(sent)) break;
      if (batches_after >= 0) {
        ++batches_after;
      } else if (s.stats().sendq_exceeded > 0) {
        batches_after = 0;
      }
    }
    EXPECT_EQ(s.stats().sendq_exceeded, 1u);
    EXPECT_EQ(received, sent);
    if (!quit_seen) {
      EXPECT_THAT(
          fast.read_until(
              [&](const std::string& l) { return l == mask("slow") + " QUIT :SendQ exceeded"; },
              "slow's QUIT"),
          Not(IsEmpty()));
    }
    EXPECT_THAT(flooder.sync(), ElementsAre(mask("slow") + " QUIT :SendQ exceeded"));

    // `slow` finally reads: a run of the messages from the first on, perhaps
    // the ERROR, and end of stream.
    int next = 0;
    bool error_seen = false;
    while (std::optional<std::string> line = slow.read_line()) {
      if (error_seen) {
        ADD_FAILURE() << "slow got a line after ERROR: " << line->substr(0, 80);
      } else if (*line == "ERROR :SendQ exceeded") {
        error_seen = true;
      } else if (command_of(*line) == "PRIVMSG") {
        EXPECT_EQ(*line, cat(mask("flooder"), " PRIVMSG #flood :", next, " ", padding));
        ++next;
      }
    }
    EXPECT_TRUE(slow.ended());
    EXPECT_LT(next, sent) << "slow read every message, so it was not slow";
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 2; }));
    EXPECT_EQ(s.stats().sendq_exceeded, 1u);
  });
}

TEST_P(ChatServerTest, AFloodingClientIsDelayedThenDisconnectedForExcessFlood) {
  chat::options o = test_options();
  o.flood_rate = 5;  // lines a second
  o.flood_burst = 3;
  o.flood_max_delayed = 2;
  with_server(o, [&](chat::server& s) {
    test_client c(s.local_address());
    // Before registration, so that no line has used up the burst yet.
    constexpr int lines = 30;
    std::string all;
    for (int i = 1; i <= lines; ++i) all += cat("PING :", i, "\r\n");
    const auto start = std::chrono::steady_clock::now();
    c.write(all);
    std::vector<std::string> got = c.read_to_end();
    // The burst and the delayed lines are answered in order (more if the
    // server was slow enough for its rate to let more through), then the
    // server gives up on the client.
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got.back(), "ERROR :Excess Flood");
    got.pop_back();
    const std::size_t allowed = o.flood_burst + o.flood_max_delayed;
    EXPECT_GE(got.size(), allowed);
    EXPECT_LT(got.size(), static_cast<std::size_t>(lines));
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i], cat(srv, "PONG spindle.chat :", i + 1));
    }
    // The delayed lines waited for the rate: at least max_delayed / rate.
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, std::chrono::duration<double>(o.flood_max_delayed / o.flood_rate) * 0.99);
    EXPECT_EQ(s.stats().flood_kills, 1u);
  });
}

// A session waiting out a flood delay used to sleep it out whatever
// happened: stop() (SIGTERM) then waited for it (18.7 s with
// --flood_rate=0.05), and so did a client that had closed. A delay now
// ends when the client is disconnected or closes its connection.

// Options under which a client's second line waits for the flood limit
// longer than eventually() waits for anything, so that only a session
// woken from its delay passes.
chat::options long_flood_delay_options() {
  chat::options o = test_options();
  o.flood_burst = 1;
  o.flood_rate = 1.0 / 90;  // one line every 90 s beyond the burst
  o.flood_max_delayed = 1000;
  return o;
}

TEST_P(ChatServerTest, StopWakesASessionWaitingOutAFloodDelay) {
  spindle::run(opts(), [&] {
    chat::server s(long_flood_delay_options());
    std::atomic<bool> served{false};
    spindle::fiber serving([&] {
      s.serve();
      served = true;
    });
    test_client c(s.local_address());
    c.write("PING :1\r\nPING :2\r\n");
    // The first line is the burst; the second now waits for the rate.
    EXPECT_EQ(c.expect_line(), srv + "PONG spindle.chat :1");
    s.stop();
    EXPECT_THAT(c.read_to_end(), ElementsAre("ERROR :Server shutting down"));
    EXPECT_TRUE(eventually([&] { return served.load(); }))
        << "serve() still waits for the session in its flood delay";
    serving.join();
    EXPECT_EQ(s.stats().clients, 0u);
  });
}

TEST_P(ChatServerTest, ClosingTheConnectionEndsASessionWaitingOutAFloodDelay) {
  with_server(long_flood_delay_options(), [&](chat::server& s) {
    test_client c(s.local_address());
    c.write("PING :1\r\nPING :2\r\n");
    EXPECT_EQ(c.expect_line(), srv + "PONG spindle.chat :1");
    c.close();
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 0; }))
        << "the session still waits out its flood delay";
  });
}

// The same with more lines waiting than the session's input buffer holds,
// so that the session cannot read up to the end of the stream.
TEST_P(ChatServerTest, ClosingTheConnectionEndsASessionWithABufferFullOfDelayedLines) {
  with_server(long_flood_delay_options(), [&](chat::server& s) {
    test_client c(s.local_address());
    std::string lines = "PING :1\r\n";
    while (lines.size() < 64 * 1024) lines += "PING :more\r\n";
    c.write(lines);
    EXPECT_EQ(c.expect_line(), srv + "PONG spindle.chat :1");
    c.close();
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 0; }))
        << "the session still waits out its flood delay";
  });
}

// The server's messages to a client waiting out a flood delay still reach
// it, and a SendQ overflow still disconnects it at once.
TEST_P(ChatServerTest, AClientWaitingOutAFloodDelayStillGetsMessagesAndCanBeDisconnected) {
  chat::options o = long_flood_delay_options();
  // A burst that bob's lines below stay within, and alice uses up.
  o.flood_burst = 300;
  o.send_queue_bytes = 4 * 1024;
  o.socket_send_buffer = 4096;
  o.linger = 200ms;
  with_server(o, [&](chat::server& s) {
    test_client bob = registered_in(s, "bob", "#a");
    // A client that reads little, so that what it does not read stays in
    // its send queue.
    test_client alice(small_window_connection(s.local_address()), "alice");
    alice.register_as("alice");
    alice.join("#a");
    bob.sync();
    // Up to the end of the burst in lines that get no reply (alice used
    // three to register and join), a PING to see the burst is over, and a
    // PING that has to wait.
    std::string lines;
    for (std::size_t i = 3; i < o.flood_burst - 1; ++i) lines += "PONG :x\r\n";
    alice.write(lines + "PING :last\r\nPING :delayed\r\n");
    EXPECT_EQ(alice.expect_line(), srv + "PONG spindle.chat :last");
    // Her last PING now waits for the flood limit.
    bob.send("PRIVMSG #a :hello");
    EXPECT_EQ(alice.expect_line(), mask("bob") + " PRIVMSG #a :hello");
    // Enough to fill the kernel's buffers (small: socket_send_buffer and
    // the small window) and then alice's send queue.
    const std::string padding(400, 'p');
    std::vector<std::string> heard;
    for (int i = 0; i < 100 && s.stats().sendq_exceeded == 0; ++i) {
      bob.send(cat("PRIVMSG #a :", i, " ", padding));
      for (std::string& l : bob.sync()) heard.push_back(std::move(l));
    }
    EXPECT_EQ(s.stats().sendq_exceeded, 1u);
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 1; }))
        << "the session still waits out its flood delay";
    for (std::string& l : bob.sync()) heard.push_back(std::move(l));
    EXPECT_THAT(heard, ElementsAre(mask("alice") + " QUIT :SendQ exceeded"));
  });
}

TEST_P(ChatServerTest, AClientThatDoesNotRegisterInTimeIsDisconnected) {
  chat::options o = test_options();
  o.register_timeout = 200ms;
  with_server(o, [&](chat::server& s) {
    const auto start = std::chrono::steady_clock::now();
    test_client idle(s.local_address(), "idle");
    test_client half(s.local_address(), "half");
    half.send("NICK half");
    EXPECT_THAT(idle.read_to_end(), ElementsAre("ERROR :Registration timed out"));
    EXPECT_THAT(half.read_to_end(), ElementsAre("ERROR :Registration timed out"));
    EXPECT_GE(std::chrono::steady_clock::now() - start, o.register_timeout);
    EXPECT_EQ(s.stats().register_timeouts, 2u);
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 0; }));
    // The nick is free again.
    test_client c(s.local_address());
    c.send("NICK half");
    EXPECT_THAT(c.sync(), IsEmpty());
  });
}

TEST_P(ChatServerTest, AClientThatAnswersPingsStaysConnected) {
  chat::options o = test_options();
  o.ping_interval = 100ms;
  o.ping_timeout = 60s;  // longer than `patience`: a lost PONG fails the test
  with_server(o, [&](chat::server& s) {
    test_client c = registered(s, "alice");
    for (int i = 0; i < 3; ++i) {
      // After a PONG the server waits out a fresh interval and asks again.
      EXPECT_EQ(c.expect_line(), "PING :spindle.chat");
      c.send("PONG :spindle.chat");
    }
    EXPECT_EQ(s.stats().ping_timeouts, 0u);
    c.send("QUIT");
    std::vector<std::string> rest = c.read_to_end();
    ASSERT_FALSE(rest.empty());
    EXPECT_EQ(rest.back(), "ERROR :Closing Link: 127.0.0.1 (Client Quit)");
  });
}

TEST_P(ChatServerTest, AClientThatDoesNotAnswerAPingTimesOut) {
  chat::options o = test_options();
  o.ping_interval = 100ms;
  o.ping_timeout = 100ms;
  with_server(o, [&](chat::server& s) {
    const auto start = std::chrono::steady_clock::now();
    test_client c = registered(s, "alice");
    EXPECT_THAT(c.read_to_end(), ElementsAre("PING :spindle.chat", "ERROR :Ping timeout"));
    EXPECT_GE(std::chrono::steady_clock::now() - start, o.ping_interval + o.ping_timeout);
    EXPECT_EQ(s.stats().ping_timeouts, 1u);
  });
}

TEST_P(ChatServerTest, AConnectionBeyondMaxClientsIsToldTooManyConnectionsAndClosed) {
  chat::options o = test_options();
  o.max_clients = 2;
  with_server(o, [&](chat::server& s) {
    test_client alice = registered(s, "alice");
    test_client pending(s.local_address(), "pending");
    pending.sync();  // unregistered ones count too
    test_client refused(s.local_address(), "refused");
    EXPECT_THAT(refused.read_to_end(), ElementsAre("ERROR :Too many connections"));
    EXPECT_TRUE(refused.ended());
    EXPECT_EQ(s.stats().refused, 1u);
    EXPECT_EQ(s.stats().clients, 2u);
    // Room again once one leaves.
    pending.close();
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 1; }));
    test_client bob = registered(s, "bob");
    EXPECT_FALSE(bob.failed());
    EXPECT_EQ(s.stats().refused, 1u);
  });
}

// Connects to `server` from the local address `from` (an IP), which
// dial() cannot choose.
spindle::connection connect_from(const char* from, const spindle::address& server) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, from, &local.sin_addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local), 0)
      << std::strerror(errno);
  // Blocking, but over loopback the handshake is done within the call.
  EXPECT_EQ(::connect(fd, server.data(), server.size()), 0) << std::strerror(errno);
  return spindle::connection::adopt(fd);
}

TEST_P(ChatServerTest, AConnectionBeyondMaxClientsPerIpIsRefusedWhileOtherIpsAreServed) {
  chat::options o = test_options();
  o.max_clients_per_ip = 2;
  with_server(o, [&](chat::server& s) {
    const spindle::address at = s.local_address();
    test_client a(at, "a");
    a.register_as("a");
    test_client b(at, "b");
    b.register_as("b");
    test_client refused(at, "refused");
    EXPECT_THAT(refused.read_to_end(), ElementsAre("ERROR :Too many connections"));
    EXPECT_EQ(s.stats().refused, 1u);
    // Another address is another count.
    test_client other(connect_from("127.0.0.2", at), "other");
    other.send("NICK other");
    other.send("USER other 0 * :Other");
    EXPECT_EQ(other.expect_line(),
              srv + "001 other :Welcome to the Spindle IRC Network other!~other@127.0.0.2");
    // Room again for 127.0.0.1 once one of its clients leaves.
    a.send("QUIT");
    a.read_to_end();
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 2; }));
    test_client c(at, "c");
    c.register_as("c");
    EXPECT_FALSE(c.failed());
    EXPECT_EQ(s.stats().refused, 1u);
  });
}

}  // namespace
}  // namespace chat::test
