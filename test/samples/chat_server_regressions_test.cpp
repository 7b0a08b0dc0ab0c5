// The chat server (samples/chat/server.h), bugs these tests found (fixed in
// the server), one test each. The fixture and the test client:
// chat_server_test.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "samples/chat_server_test.h"

namespace chat::test {
namespace {

SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);

// A session used to read and handle lines without ever parking for as
// long as its socket had more input: Spindle does not preempt, read_some()
// parks only after a short read, and neither empty nor overlong lines
// counted against the flood limit (with the limit off, no line does). A
// client that sent faster than its session handled the lines kept that
// worker from polling the connections it watches, and their clients
// waited until the flood was over (seen with 2 and 4 workers, in some
// runs). The session now yields after a read that filled its buffer.
// These check that another client is answered long before the flood is
// over.

// flood_while_asking() has a plain thread (which no worker's scheduling
// slows down) register and then send `line` over and over, up to `total`
// bytes, while `victim`, registered before, sends a PING. True when the
// PONG came before the flooder had sent it all. The flooder stops once
// the PONG is in.
bool flood_while_asking(chat::server& s, test_client& victim, std::string_view line,
                        std::size_t total) {
  const spindle::address at = s.local_address();
  const std::uint64_t accepted = s.stats().accepted;
  std::atomic<bool> stop{false};
  std::atomic<bool> finished{false};
  std::thread flooder([&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // Blocking writes that time out now and then, to look at `stop` (the
    // server may stop reading from the flooder: the flood limit).
    const timeval give_up{0, 200 * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &give_up, sizeof give_up);
    if (fd >= 0 && ::connect(fd, at.data(), at.size()) == 0) {
      // Registered, so that the flooder's lines get no 451 (it reads no
      // replies).
      const std::string_view hello = "NICK flooder\r\nUSER flooder 0 * :Flooder\r\n";
      std::string chunk;
      while (chunk.size() < 256 * 1024) chunk += line;
      bool ok = ::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(hello.size());
      for (std::size_t sent = 0; ok && sent < total && !stop.load();) {
        const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
    }
    finished = true;
    if (fd >= 0) ::close(fd);
  });
  // Once the server has the flooder's connection, ask.
  EXPECT_TRUE(eventually([&] { return s.stats().accepted > accepted || finished.load(); }));
  victim.send("PING :still there?");
  EXPECT_EQ(victim.expect_line(), srv + "PONG spindle.chat :still there?");
  const bool in_time = !finished.load();
  stop = true;
  // Not std::thread::join() straight away: that would block this worker,
  // which may be the one that reads from the flooder.
  EXPECT_TRUE(eventually([&] { return finished.load(); }));
  flooder.join();
  return in_time;
}

// Empty lines, with the flood limit on.
TEST_P(ChatServerTest, AClientSendingEmptyLinesWithoutPauseDoesNotStallTheOthers) {
  chat::options o = test_options();
  o.flood_rate = chat::options{}.flood_rate;  // the flood limit on
  with_server(o, [&](chat::server& s) {
    test_client victim = registered(s, "victim");
    const std::size_t total = static_cast<std::size_t>(spindle::test::scaled(256)) << 20;
    EXPECT_TRUE(flood_while_asking(s, victim, "\n", total))
        << "the PONG came only once the flooder had sent everything";
  });
}

// With the flood limit off, lines that cost the server more to handle
// than the flooder to send.
TEST_P(ChatServerTest,
       AClientSendingCommandsWithoutPauseDoesNotStallTheOthersWithTheFloodLimitOff) {
  with_server([&](chat::server& s) {
    test_client victim = registered(s, "victim");
    // 100 nick lookups a line (NOTICE has no error replies).
    std::string targets = "n0";
    for (int i = 1; i < 100; ++i) targets += cat(",n", i);
    EXPECT_TRUE(flood_while_asking(s, victim, cat("NOTICE ", targets, " :x\r\n"),
                                   static_cast<std::size_t>(spindle::test::scaled(64)) << 20))
        << "the PONG came only once the flooder had sent everything";
  });
}

// RFC 1459 2.3 bounds a message at 512 bytes with its CR LF. The server
// cut relayed text and split NAMES, but replies that echo a parameter or
// gather a list went out whole: a client that reads lines into 512-byte
// buffers cuts them, or drops the connection.
TEST_P(ChatServerTest, NoLineTheServerSendsIsLongerThan512Bytes) {
  with_server([&](chat::server& s) {
    auto expect_short = [](const std::vector<std::string>& lines, std::string_view what) {
      for (const std::string& l : lines) {
        EXPECT_LE(l.size() + 2, chat::irc::max_line)
            << what << ": " << l.substr(0, 60) << "... (" << l.size() + 2 << " bytes)";
      }
    };
    test_client alice = registered_in(s, "alice", "#a");
    // Replies that echo what the client sent.
    alice.send("PING :" + std::string(500, 'p'));
    expect_short(alice.read_until_command("PONG"), "PONG");
    alice.send(std::string(505, 'X'));
    expect_short(alice.sync(), "421");
    alice.send("NICK " + std::string(500, 'n'));
    expect_short(alice.sync(), "432");
    alice.send("PRIVMSG " + std::string(490, 'n') + " :x");
    expect_short(alice.sync(), "401");

    // WHOIS lists every channel on one 319 line.
    test_client bob = registered(s, "bob");
    std::string list;
    for (int i = 0; i < 50; ++i) {
      std::string name = cat("#", i, "_", std::string(50, 'c'));
      name.resize(chat::irc::max_channel);
      list += cat(i == 0 ? "" : ",", name);
      if (list.size() > 400) {
        bob.send("JOIN " + list);
        bob.sync();
        list.clear();
      }
    }
    if (!list.empty()) bob.send("JOIN " + list);
    bob.sync();
    alice.send("WHOIS bob");
    expect_short(alice.sync(), "WHOIS of a client in 50 channels");

    // WHO and WHOIS repeat a long real name with the rest of the reply.
    test_client carol(s.local_address(), "carol");
    carol.send("NICK carol");
    carol.send("USER carol 0 * :" + std::string(480, 'r'));
    carol.read_until_command("376");
    carol.join("#a");
    alice.sync();
    alice.send("WHO #a");
    expect_short(alice.sync(), "WHO");
    alice.send("WHOIS carol");
    expect_short(alice.sync(), "WHOIS");

    // PART and QUIT relay a long reason with the leaver's prefix.
    carol.send("PART #a :" + std::string(495, 'q'));
    expect_short(carol.sync(), "PART to the leaver");
    expect_short(alice.sync(), "PART to a member");
    carol.join("#a");
    alice.sync();
    carol.send("QUIT :" + std::string(500, 'q'));
    expect_short(carol.read_to_end(), "ERROR to the quitter");
    expect_short(alice.read_until_command("QUIT"), "QUIT to a member");
  });
}

// try_register() marked the client registered (and so visible to PRIVMSG
// and NOTICE) under state_mu_, and queued 001 to 005 and the MOTD only
// after unlocking: a message to the new nick from another client's
// session could be queued in between and reach the client before its 001,
// which clients take as the first line of a registered connection. Needs
// two workers or more to show, and not every run showed it.
TEST_P(ChatServerTest, TheWelcomeIsTheFirstLineEvenWhileOthersMessageTheNewNick) {
  chat::options o = test_options();
  // The senders can queue notices for the new nick faster than its writer
  // fiber gets to run on a loaded machine (seen once: 256 KiB queued before
  // the 001 went out, and the client was cut off with "SendQ exceeded").
  // That is the send queue doing its job; here only the order is tested.
  o.send_queue_bytes = std::size_t{1} << 30;
  with_server(o, [&](chat::server& s) {
    std::atomic<int> round{0};
    std::atomic<bool> done{false};
    std::vector<spindle::fiber> spam;
    for (int k = 0; k < 3; ++k) {
      spam.emplace_back([&, k] {
        test_client sender = registered(s, cat("sender", k));
        // NOTICE gets no error reply for a nick that is not there (yet).
        // A round trip after each batch, so that the sender's session
        // parks now and then and the others get their turn.
        while (!done.load() && !sender.failed()) {
          const std::string line = cat("NOTICE target", round.load(), " :early\r\n");
          std::string batch;
          for (int i = 0; i < 50; ++i) batch += line;
          sender.write(batch);
          sender.sync();
        }
      });
    }
    // The window is a few hundred nanoseconds wide: many rounds.
    const int rounds = static_cast<int>(spindle::test::scaled(4000));
    int early = 0;
    std::string example;
    for (int r = 0; r < rounds; ++r) {
      round = r;
      const std::string nick = cat("target", r);
      test_client target(s.local_address(), nick);
      target.send("NICK " + nick);
      target.send(cat("USER ", nick, " 0 * :Target"));
      const std::string first = target.expect_line();
      if (!first.starts_with(cat(srv, "001 ", nick, " "))) {
        ++early;
        example = first;
      }
      target.send("QUIT");
      target.read_to_end();
      if (target.failed()) break;
    }
    done = true;
    for (spindle::fiber& f : spam) f.join();
    EXPECT_EQ(early, 0) << early << " of " << rounds
                        << " registrations got a line before 001, such as: " << example;
  });
}

// RFC 2812 2.3.1 allows neither CR nor LF inside a message, but the
// server relayed a CR that arrived inside a line: a client that ends lines
// at CR (as many servers and some clients do) then reads the rest as a
// line of its own, so anyone in a channel could forge lines, numerics from
// the server included, in others' clients.
TEST_P(ChatServerTest, ACarriageReturnInsideALineIsNeverRelayed) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    test_client bob = registered(s, "bob");
    join_all("#a", alice, bob);
    alice.write("PRIVMSG #a :hi\r:spindle.chat 001 bob :forged\r\n");
    alice.write("PRIVMSG bob :hi\r:spindle.chat 001 bob :forged\r\n");
    alice.sync();
    for (std::string l : bob.sync()) {
      if (l.find('\r') == std::string::npos) continue;
      std::replace(l.begin(), l.end(), '\r', '|');
      ADD_FAILURE() << "relayed with a CR inside (shown as |): " << l;
    }
  });
}

}  // namespace
}  // namespace chat::test
