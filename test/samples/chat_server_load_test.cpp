// The chat server (samples/chat/server.h), under load: hundreds of clients,
// and many at once changing what they share. The fixture and the test
// client: chat_server_test.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <atomic>
#include <charconv>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "samples/chat_server_test.h"
#include "sync/wait_group.h"

namespace chat::test {
namespace {

using spindle::test::raise_descriptor_limit;

SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);

TEST_P(ChatServerTest, FiveHundredClientsInFiveChannelsGetEveryMessageOnceAndInEachSendersOrder) {
  const rlim_t limit = raise_descriptor_limit();
  // Three fibers a client: this test's, and the server's reader and
  // writer; two descriptors, both ends being in this process.
  int clients = static_cast<int>(spindle::test::max_concurrent_fibers(1500) / 3);
  if (limit < 2 * static_cast<rlim_t>(clients) + 100) {
    clients = static_cast<int>((limit - 100) / 2);
    std::fprintf(stderr, "descriptor limit %llu: running %d clients instead of 500\n",
                 static_cast<unsigned long long>(limit), clients);
  }
  ASSERT_GT(clients, 0);
  constexpr int channels = 5;
  constexpr int senders_per_channel = 3;
  const int messages = static_cast<int>(spindle::test::scaled(200));
  with_server([&](chat::server& s) {
    spindle::wait_group joined;
    joined.add(clients);
    std::atomic<int> complete{0};
    std::vector<spindle::fiber> fibers;
    fibers.reserve(static_cast<std::size_t>(clients));
    for (int i = 0; i < clients; ++i) {
      fibers.emplace_back([&, i] {
        // Client i is in channel i % channels; the first few of each
        // channel send.
        const int ch = i % channels;
        const int rank = i / channels;  // sender number `rank` in its channel
        const std::string channel = cat("#load", ch);
        test_client c(s.local_address(), cat("u", i));
        c.register_as(cat("u", i));
        c.join(channel);
        joined.done();
        joined.wait();  // everyone is in before anyone speaks
        if (rank < senders_per_channel) {
          std::string batch;
          for (int m = 0; m < messages; ++m) {
            batch += cat("PRIVMSG ", channel, " :", rank, " ", m, "\r\n");
            if (batch.size() > 2000 || m + 1 == messages) {
              c.write(batch);
              batch.clear();
            }
          }
        }
        // Every other sender's messages, each once and in order.
        std::vector<int> next(senders_per_channel, 0);
        if (rank < senders_per_channel) next[static_cast<std::size_t>(rank)] = messages;
        const int expected =
            messages * (senders_per_channel - (rank < senders_per_channel ? 1 : 0));
        const std::string privmsg = cat(" PRIVMSG ", channel, " :");
        int got = 0;
        bool wrong = false;
        while (got < expected && !wrong) {
          std::optional<std::string> line = c.read_line();
          if (!line) break;
          const std::size_t at = line->find(privmsg);
          if (at == std::string::npos) continue;  // JOIN and the like
          const std::string_view text = std::string_view(*line).substr(at + privmsg.size());
          int sender = -1, seq = -1;
          const auto r1 = std::from_chars(text.data(), text.data() + text.size(), sender);
          if (r1.ec == std::errc{} && r1.ptr < text.data() + text.size()) {
            std::from_chars(r1.ptr + 1, text.data() + text.size(), seq);
          }
          if (sender < 0 || sender >= senders_per_channel ||
              !line->starts_with(cat(":u", sender * channels + ch, "!")) ||
              seq != next[static_cast<std::size_t>(sender)]) {
            ADD_FAILURE() << c.name() << " got " << *line << " where sender " << sender
                          << " was at message "
                          << (sender >= 0 && sender < senders_per_channel
                                  ? next[static_cast<std::size_t>(sender)]
                                  : -1);
            wrong = true;
            break;
          }
          ++next[static_cast<std::size_t>(sender)];
          ++got;
        }
        if (!wrong && got == expected) {
          // Nothing more (a late duplicate) comes after the last.
          for (const std::string& l : c.sync()) {
            if (l.find(privmsg) != std::string::npos) {
              ADD_FAILURE() << c.name() << " got one more: " << l;
              wrong = true;
            }
          }
          if (!wrong) complete.fetch_add(1);
        } else if (!wrong) {
          ADD_FAILURE() << c.name() << " got " << got << " of " << expected << " messages";
        }
      });
    }
    for (spindle::fiber& f : fibers) f.join();
    EXPECT_EQ(complete.load(), clients);
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 0; }));
  });
}

TEST_P(ChatServerTest, ConcurrentJoinsPartsNickChangesMessagesAndQuitsLeaveNothingBehind) {
  constexpr int clients = 20;
  constexpr int rooms = 4;
  const int ops = static_cast<int>(spindle::test::scaled(300));
  with_server([&](chat::server& s) {
    std::vector<spindle::fiber> fibers;
    for (int i = 0; i < clients; ++i) {
      fibers.emplace_back([&, i] {
        std::mt19937 random(static_cast<std::uint32_t>(1000 + i));
        auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
        std::string nick = cat("c", i);
        // Registers under a nick nobody writes to, then takes c<i>: a
        // message to a nick that is registering can overtake its 001
        // (see TheWelcomeIsTheFirstLineEvenWhileOthersMessageTheNewNick).
        auto connect = [&] {
          test_client c(s.local_address(), nick);
          c.register_as(cat("c", i, "r"));
          c.send("NICK " + nick);
          return c;
        };
        test_client c = connect();
        for (int op = 0; op < ops && !c.failed(); ++op) {
          const std::string room = cat("#r", pick(rooms));
          switch (pick(12)) {
            case 0:
            case 1:
              c.send("JOIN " + room);
              break;
            case 2:
              c.send("PART " + room + " :later");
              break;
            case 3:
            case 4:
              c.send(cat("PRIVMSG ", room, " :message ", op));
              break;
            case 5:
              c.send(cat("PRIVMSG c", pick(clients), " :to you ", op));
              break;
            case 6:
              nick = cat("c", i, nick.find('x') == std::string::npos ? "x" : "");
              c.send("NICK " + nick);
              break;
            case 7:
              c.send(cat("WHOIS c", pick(clients)));
              break;
            case 8:
              c.send(pick(2) == 0 ? "NAMES" : "LIST");
              break;
            case 9:
              c.send("WHO " + room);
              break;
            case 10:
              c.send(cat("TOPIC ", room, " :topic ", op));
              break;
            default:
              if (pick(3) == 0) {
                c.send("QUIT :back soon");
                std::vector<std::string> rest = c.read_to_end();
                if (rest.empty() || !rest.back().starts_with("ERROR :Closing Link")) {
                  ADD_FAILURE() << nick << " quit without ERROR";
                }
                nick = cat("c", i);
                c = connect();
              } else {
                c.send("JOIN 0");
              }
              break;
          }
          if (op % 8 == 7) c.sync();
        }
        c.sync();
      });
    }
    for (spindle::fiber& f : fibers) f.join();
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 0; }));
    EXPECT_EQ(s.stats().registered, 0u);
    EXPECT_EQ(s.stats().channels, 0u);
    EXPECT_EQ(s.stats().sendq_exceeded, 0u);
  });
}

}  // namespace
}  // namespace chat::test
