// The chat server (samples/chat/server.h), lines as they arrive: line
// endings, NUL bytes, overlong lines, junk and resets. The fixture and the
// test client: chat_server_test.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "samples/chat_server_test.h"

namespace chat::test {
namespace {

using namespace std::string_literals;

SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);

TEST_P(ChatServerTest, BareLfLineEndingsAreAccepted) {
  with_server([&](chat::server& s) {
    test_client c(s.local_address());
    c.write("NICK alice\nUSER alice 0 * :Alice\n");
    EXPECT_THAT(c.expect_line(), StartsWith(srv + "001 alice :Welcome"));
    c.write("PING :lf\nPING :crlf\r\n");
    std::vector<std::string> lines =
        c.read_until([](const std::string& l) { return l.ends_with(" :crlf"); }, "PONG :crlf");
    EXPECT_THAT(lines, Contains(srv + "PONG spindle.chat :lf"));
  });
}

TEST_P(ChatServerTest, NulBytesAreDroppedAndEmptyLinesIgnored) {
  with_server([&](chat::server& s) {
    test_client c = registered(s, "alice");
    c.write("\r\n\n\r\n  \r\n");
    c.write("PI\0NG :a\0b\r\n"s);
    c.write("\0\r\n"s);
    EXPECT_THAT(c.sync(), ElementsAre(srv + "PONG spindle.chat :ab"));
  });
}

TEST_P(ChatServerTest, AnOverlongLineArrivingWholeGets417AndTheConnectionStillWorks) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    test_client bob = registered(s, "bob");
    join_all("#a", alice, bob);
    alice.write(cat("PING :one\r\nPRIVMSG #a :", std::string(600, 'x'), "\r\nPING :two\r\n"));
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "PONG spindle.chat :one",
                                          srv + "417 alice :Input line was too long",
                                          srv + "PONG spindle.chat :two"));
    // Longer than the server's whole read buffer.
    alice.write(cat("PRIVMSG #a :", std::string(40000, 'y'), "\r\n"));
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "417 alice :Input line was too long"));
    EXPECT_THAT(bob.sync(), IsEmpty()) << "part of an overlong line was relayed";
    alice.send("PRIVMSG #a :short again");
    EXPECT_THAT(alice.sync(), IsEmpty());
    EXPECT_THAT(bob.sync(), ElementsAre(mask("alice") + " PRIVMSG #a :short again"));
  });
}

TEST_P(ChatServerTest, AnOverlongLineArrivingInPiecesGets417OnceAndItsTailIsDropped) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    // More than 512 bytes without a line end: the server says so at once.
    alice.write(cat("PRIVMSG alice :", std::string(600, 'x')));
    EXPECT_EQ(alice.expect_line(), srv + "417 alice :Input line was too long");
    // The rest of that line, which would read as a command of its own.
    alice.write(std::string(300, 'y'));
    alice.write(" TAIL :of the long line\r\n");
    EXPECT_THAT(alice.sync(), IsEmpty());
    // Pieces the server may see together or apart: one 417 either way.
    alice.write(std::string(300, 'p'));
    alice.write(std::string(300, 'q'));
    alice.write(std::string(300, 'r') + "\r\n");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "417 alice :Input line was too long"));
  });
}

TEST_P(ChatServerTest, ALineOf512BytesWithCrLfIsAcceptedAndOneOf513Gets417) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    test_client bob = registered(s, "bob");
    join_all("#a", alice, bob);
    const std::string head = "PRIVMSG #a :";
    alice.send(head + std::string(chat::irc::max_line - 2 - head.size(), 'x'));
    EXPECT_THAT(alice.sync(), IsEmpty());
    // Relayed, cut to fit in 512 bytes with the sender's prefix.
    const std::string relayed = bob.expect_line();
    EXPECT_THAT(relayed, StartsWith(mask("alice") + " PRIVMSG #a :xxxxxxxx"));
    EXPECT_EQ(relayed.size() + 2, chat::irc::max_line);
    alice.send(head + std::string(chat::irc::max_line - 1 - head.size(), 'x'));
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "417 alice :Input line was too long"));
    EXPECT_THAT(bob.sync(), IsEmpty());
  });
}

TEST_P(ChatServerTest, BinaryJunkNeverCrashesTheServerAndAFreshClientStillRegisters) {
  with_server([&](chat::server& s) {
    test_client watcher = registered_in(s, "watcher", "#junk");
    // Lines that look like commands, with parameters that are empty,
    // missing or not text.
    const std::vector<std::string> odd = {"NICK \xff\xfe",
                                          "USER \x80 \x81 \x82 :\x83",
                                          "USER : : : :",
                                          "JOIN :",
                                          "JOIN ,,,",
                                          "JOIN #\xff\xfe",
                                          "PART :",
                                          "PART ,",
                                          "PRIVMSG ,,, :x",
                                          "PRIVMSG : :x",
                                          "PRIVMSG :",
                                          "NOTICE :",
                                          "TOPIC :",
                                          "TOPIC : :x",
                                          "NAMES :",
                                          "NAMES ,",
                                          "LIST ,",
                                          "LIST :",
                                          "WHO :",
                                          "WHO",
                                          "WHOIS :",
                                          "WHOIS : :",
                                          "MODE :",
                                          "MODE : +i",
                                          "MODE # +b",
                                          "CAP",
                                          "CAP :",
                                          "CAP \xff",
                                          "PASS :",
                                          "PING :",
                                          ":",
                                          ": :",
                                          "@",
                                          "@ :",
                                          ":prefix",
                                          "\x01\x02\x03",
                                          "\xc3\x28\xa0\xa1 \xe2\x28\xa1 :\xf0\x28\x8c\xbc"};
    for (int round = 0; round < 2; ++round) {
      // First an unregistered client, then a registered one in #junk.
      test_client junk(s.local_address(), cat("junk", round));
      if (round == 1) {
        junk.register_as("junker");
        junk.join("#junk");
        watcher.sync();
      }
      std::mt19937 random(20240601 + round);
      std::string bytes;
      for (int i = 0; i < 32 * 1024; ++i) bytes += static_cast<char>(random() & 0xff);
      for (const std::string& line : odd) bytes += cat("\r\n", line, "\r\n");
      junk.write(bytes);
      // Whatever the junk's last line was, it ends here.
      junk.write("\r\nPING :after-junk\r\n");
      std::vector<std::string> lines = junk.read_until(
          [](const std::string& l) { return l == srv + "PONG spindle.chat :after-junk"; },
          "PONG :after-junk");
      for (const std::string& l : lines) {
        EXPECT_LE(l.size() + 2, 1024u) << "an odd reply: " << l.substr(0, 100);
      }
      if (round == 1) {
        // Not text in a message to a channel is relayed byte for byte.
        junk.send("PRIVMSG #junk :\xc3\x28\xa0\xa1\xff");
        EXPECT_THAT(junk.sync(), IsEmpty());
        EXPECT_THAT(watcher.sync(),
                    Contains(":junker!~junker@127.0.0.1 PRIVMSG #junk :\xc3\x28\xa0\xa1\xff"));
      }
    }
    test_client fresh = registered(s, "fresh");
    EXPECT_FALSE(fresh.failed());
    // At most news of junker's leaving.
    for (const std::string& l : watcher.sync())
      EXPECT_EQ(l, ":junker!~junker@127.0.0.1 QUIT :Client closed connection");
  });
}

TEST_P(ChatServerTest, AResetInTheMiddleOfALineLeavesTheServerServingTheOthers) {
  with_server([&](chat::server& s) {
    {
      test_client alice = registered_in(s, "alice", "#r");
      for (std::uint64_t i = 0; i < 10; ++i) {
        test_client bob(s.local_address(), "bob");
        switch (i % 3) {
          case 0:  // reset while registering
            bob.write("NICK bob\r\nUSER bob 0 * :Bo");
            bob.reset();
            break;
          case 1:  // reset mid-message
            bob.register_as("bob");
            bob.join("#r");
            EXPECT_EQ(alice.expect_line(), mask("bob") + " JOIN #r");
            bob.write("PRIVMSG #r :half a li");
            bob.reset();
            EXPECT_EQ(alice.expect_line(), mask("bob") + " QUIT :Connection reset by peer");
            break;
          default:  // reset with replies unread
            bob.register_as("bob");
            bob.send("LIST");
            bob.send("WHOIS alice");
            bob.reset();
            break;
        }
        // A new "bob" can register once the server has let the old one
        // go (counting it only once it has been accepted).
        EXPECT_TRUE(eventually([&] {
          const chat::stats now = s.stats();
          return now.accepted == i + 2 && now.clients == 1;
        }));
      }
      EXPECT_THAT(alice.sync(), IsEmpty());
    }
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 0; }));
    EXPECT_EQ(s.stats().registered, 0u);
    EXPECT_EQ(s.stats().channels, 0u);
  });
}

}  // namespace
}  // namespace chat::test
