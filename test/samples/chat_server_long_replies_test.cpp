// The chat server (samples/chat/server.h), long replies (WHO, NAMES, LIST)
// longer than the send queue. The fixture and the test client:
// chat_server_test.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "samples/chat_server_test.h"

namespace chat::test {
namespace {

SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);

// WHO of a channel of 4,000 used to disconnect the client who asked: the
// whole reply (280 KB) went into its send queue at once and overflowed
// the 256 KiB bound ("ERROR :SendQ exceeded"), as if the client had
// flooded. A long reply now goes in a piece at a time as the client reads
// it. These use a small send queue, and nicks of the longest kind and
// long real names, to need a channel of only 120.

// A nick of the longest kind (30 characters), the i-th.
std::string long_nick(int i) {
  std::string nick = cat("member", i, "_");
  nick.resize(chat::irc::max_nick, 'x');
  return nick;
}

// A client of `s` registered as `nick` with the real name `realname`.
test_client registered_as(chat::server& s, std::string_view nick, std::string_view realname) {
  test_client c(s.local_address(), std::string(nick));
  c.send(cat("NICK ", nick));
  c.send(cat("USER ", nick, " 0 * :", realname));
  c.read_until_command("376");
  return c;
}

// Fills `channel` with `count` clients with nicks long_nick(0), ... (in
// that order) and real names of 400 characters (WHO lines of about 500
// bytes); they read nothing after the channel is full.
//
// Each member is sent the JOIN of every later one, more in all than a
// small send queue holds; a member's writer may fall behind on a loaded
// machine. So every read_every joins, every member reads what it has been
// sent (all PINGs first, then each PONG): a member's queue then never
// holds more than read_every JOINs (1.2 KB), however far behind its
// writer is. Fails (fatally: call it in ASSERT_NO_FATAL_FAILURE) unless
// the channel is full, with no client cut off for SendQ.
struct filled_channel {
  std::vector<test_client> members;
  std::vector<std::string> nicks;
};
void fill_channel(chat::server& s, std::string_view channel, int count, filled_channel& f) {
  constexpr int read_every = 16;
  const std::string realname(400, 'r');
  for (int i = 0; i < count; ++i) {
    f.nicks.push_back(long_nick(i));
    f.members.push_back(registered_as(s, f.nicks.back(), realname));
    f.members.back().join(channel);
    if (f.members.back().failed()) break;
    if ((i + 1) % read_every == 0 || i + 1 == count) {
      for (test_client& m : f.members) m.send("PING :filled");
      for (test_client& m : f.members) {
        m.read_until([](const std::string& l) { return l.ends_with(" PONG spindle.chat :filled"); },
                     "the PONG to PING :filled");
      }
    }
  }
  ASSERT_EQ(f.members.size(), static_cast<std::size_t>(count));
  ASSERT_FALSE(f.members.back().failed());
  ASSERT_EQ(s.stats().sendq_exceeded, 0u);
}

// The nicks that the 352 lines among `lines` list, in order.
std::vector<std::string> who_nicks_in(const std::vector<std::string>& lines) {
  std::vector<std::string> nicks;
  for (const std::string& l : lines) {
    if (command_of(l) != "352") continue;
    // ":server 352 asker #channel user host server nick H :0 real name"
    std::string_view rest = l;
    for (int field = 0; field < 7; ++field) rest.remove_prefix(rest.find(' ') + 1);
    nicks.emplace_back(rest.substr(0, rest.find(' ')));
  }
  return nicks;
}

// The bytes that the lines among `lines` with `command` took on the wire.
std::size_t wire_bytes(const std::vector<std::string>& lines, std::string_view command) {
  std::size_t bytes = 0;
  for (const std::string& l : lines) {
    if (command_of(l) == command) bytes += l.size() + 2;
  }
  return bytes;
}

TEST_P(ChatServerTest, WhoAndNamesRepliesLongerThanTheSendQueueReachTheAskerWhole) {
  chat::options o = test_options();
  o.send_queue_bytes = 3 * 1024;
  with_server(o, [&](chat::server& s) {
    filled_channel big;
    ASSERT_NO_FATAL_FAILURE(fill_channel(s, "#big", 120, big));
    test_client asker = registered(s, "asker");
    std::vector<std::string> nicks = big.nicks;
    nicks.push_back("asker");

    // JOIN's NAMES.
    std::vector<std::string> lines = asker.join("#big");
    EXPECT_EQ(names_in(lines), nicks);
    EXPECT_GT(wire_bytes(lines, "353"), o.send_queue_bytes);
    // NAMES.
    asker.send("NAMES #big");
    lines = asker.sync();
    EXPECT_EQ(names_in(lines), nicks);
    EXPECT_GT(wire_bytes(lines, "353"), o.send_queue_bytes);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(), srv + "366 asker #big :End of NAMES list");
    // WHO, many times the send queue.
    asker.send("WHO #big");
    lines = asker.sync();
    EXPECT_EQ(who_nicks_in(lines), nicks);
    EXPECT_GT(wire_bytes(lines, "352"), 10 * o.send_queue_bytes);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(), srv + "315 asker #big :End of WHO list");
    EXPECT_EQ(lines.size(), nicks.size() + 1);
    // Still connected.
    asker.send("PRIVMSG #big :still here");
    EXPECT_THAT(asker.sync(), IsEmpty());
    EXPECT_FALSE(asker.failed());
    EXPECT_EQ(s.stats().sendq_exceeded, 0u);
    EXPECT_EQ(s.stats().clients, big.members.size() + 1);
  });
}

TEST_P(ChatServerTest, ListAndNamesOfEveryChannelLongerThanTheSendQueueReachTheAskerWhole) {
  chat::options o = test_options();
  o.send_queue_bytes = 3 * 1024;
  with_server(o, [&](chat::server& s) {
    test_client asker = registered(s, "asker");
    std::vector<std::string> list_expected;
    std::vector<std::string> names_expected;
    const std::string topic(390, 't');
    for (int i = 0; i < 50; ++i) {  // the most channels a client may join
      std::string name = cat("#channel", i, "_");
      name.resize(chat::irc::max_channel, 'c');
      asker.join(name);
      asker.send(cat("TOPIC ", name, " :", topic));
      asker.sync();
      list_expected.push_back(cat(srv, "322 asker ", name, " 1 :", topic));
      names_expected.push_back(cat(srv, "353 asker = ", name, " :asker"));
    }
    asker.send("LIST");
    std::vector<std::string> lines = asker.sync();
    EXPECT_GT(wire_bytes(lines, "322"), 5 * o.send_queue_bytes);
    ASSERT_EQ(lines.size(), list_expected.size() + 2);
    EXPECT_EQ(lines.front(), srv + "321 asker Channel :Users  Name");
    EXPECT_EQ(lines.back(), srv + "323 asker :End of LIST");
    EXPECT_THAT(std::vector<std::string>(lines.begin() + 1, lines.end() - 1),
                testing::UnorderedElementsAreArray(list_expected));
    asker.send("NAMES");
    lines = asker.sync();
    EXPECT_GT(wire_bytes(lines, "353"), o.send_queue_bytes);
    ASSERT_EQ(lines.size(), names_expected.size() + 1);
    EXPECT_EQ(lines.back(), srv + "366 asker * :End of NAMES list");
    lines.pop_back();
    EXPECT_THAT(lines, testing::UnorderedElementsAreArray(names_expected));
    EXPECT_FALSE(asker.failed());
    EXPECT_EQ(s.stats().sendq_exceeded, 0u);
  });
}

// Options under which a WHO of a channel filled by fill_channel(120) is
// many times what the kernel's buffers hold for a client with a
// small_window_connection() (a few KiB each way) plus half the send queue
// (the most of a reply the queue holds at once): a client that reads
// little keeps the reply waiting. The send queue is still big enough for
// everything the members (which read nothing) are sent while the channel
// fills, even if none of it were written: with a small SO_SNDBUF, delayed
// ACKs hold their writers up.
chat::options large_reply_options() {
  chat::options o = test_options();
  o.send_queue_bytes = 16 * 1024;
  o.socket_send_buffer = 4096;
  return o;
}

// What others send a client while its long reply waits for it to read
// comes after the reply, not inside it (a PART inside a NAMES list would
// leave a client listing someone gone).
TEST_P(ChatServerTest, LinesFromOthersDuringALongReplyComeAfterIt) {
  chat::options o = large_reply_options();
  with_server(o, [&](chat::server& s) {
    filled_channel big;
    ASSERT_NO_FATAL_FAILURE(fill_channel(s, "#big", 120, big));
    test_client talker = registered_in(s, "talker", "#big");
    test_client asker(small_window_connection(s.local_address()), "asker");
    asker.register_as("asker");
    asker.join("#big");
    talker.sync();
    asker.send("WHO #big");
    // The reply has begun; most of it (60 KB) is still to come.
    std::vector<std::string> lines = {asker.expect_line()};
    EXPECT_EQ(command_of(lines.front()), "352");
    talker.send("PRIVMSG #big :in the middle?");
    talker.send("PART #big");
    talker.sync();  // both are queued (or held) for the asker by now
    std::vector<std::string> rest = asker.sync();
    lines.insert(lines.end(), rest.begin(), rest.end());
    std::vector<std::string> nicks = big.nicks;
    nicks.push_back("talker");
    nicks.push_back("asker");
    EXPECT_EQ(who_nicks_in(lines), nicks);
    ASSERT_EQ(lines.size(), nicks.size() + 3);
    EXPECT_EQ(lines[nicks.size()], srv + "315 asker #big :End of WHO list");
    EXPECT_EQ(lines[nicks.size() + 1], mask("talker") + " PRIVMSG #big :in the middle?");
    EXPECT_EQ(lines[nicks.size() + 2], mask("talker") + " PART #big");
    EXPECT_EQ(s.stats().sendq_exceeded, 0u);
  });
}

// The send queue's bound still holds while a long reply waits: a client
// that stops reading is disconnected once what others send it overflows.
TEST_P(ChatServerTest, AClientThatStopsReadingDuringALongReplyIsStillDisconnectedForSendQ) {
  chat::options o = large_reply_options();
  o.linger = 200ms;
  with_server(o, [&](chat::server& s) {
    filled_channel big;
    ASSERT_NO_FATAL_FAILURE(fill_channel(s, "#big", 120, big));
    test_client talker = registered_in(s, "talker", "#chat");
    test_client asker(small_window_connection(s.local_address()), "asker");
    asker.register_as("asker");
    asker.join("#chat");
    asker.join("#big");
    talker.sync();
    asker.send("WHO #big");
    EXPECT_EQ(command_of(asker.expect_line()), "352");
    // From here on the asker reads nothing until the end.
    EXPECT_EQ(s.stats().sendq_exceeded, 0u);
    const std::string padding(400, 'p');
    std::vector<std::string> heard;
    for (int i = 0; i < 1000 && s.stats().sendq_exceeded == 0; ++i) {
      talker.send(cat("PRIVMSG #chat :", i, " ", padding));
      for (std::string& l : talker.sync()) heard.push_back(std::move(l));
    }
    EXPECT_EQ(s.stats().sendq_exceeded, 1u);
    EXPECT_TRUE(eventually([&] { return s.stats().clients == big.members.size() + 1; }));
    for (std::string& l : talker.sync()) heard.push_back(std::move(l));
    EXPECT_THAT(heard, ElementsAre(mask("asker") + " QUIT :SendQ exceeded"));
    // The asker gets the start of the reply, then the ERROR.
    std::vector<std::string> lines = asker.read_to_end();
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(), "ERROR :SendQ exceeded");
    lines.pop_back();
    std::vector<std::string> others;
    for (const std::string& l : lines) {
      if (command_of(l) != "352") others.push_back(l);
    }
    EXPECT_THAT(others, IsEmpty());
  });
}

// A session waiting for its client to read a long reply cannot ping it; a
// client that takes none of the reply for ping_interval + ping_timeout is
// disconnected as if it had not answered a PING. Here the reply is the
// welcome, with a MOTD (52 KB) that does not fit in the small window.
TEST_P(ChatServerTest, AClientThatReadsNoneOfALongReplyTimesOutAsForAPing) {
  chat::options o = test_options();
  o.send_queue_bytes = 8 * 1024;
  o.socket_send_buffer = 4096;
  o.ping_interval = 200ms;
  o.ping_timeout = 200ms;
  std::string motd;
  for (int i = 0; i < 400; ++i) motd += cat(i, " ", std::string(96, 'm'), "\n");
  o.motd = motd;
  with_server(o, [&](chat::server& s) {
    const auto start = std::chrono::steady_clock::now();
    test_client c(small_window_connection(s.local_address()), "c");
    c.send("NICK c");
    c.send("USER c 0 * :C");
    // It reads nothing until the server gives up on it.
    EXPECT_TRUE(eventually([&] { return s.stats().ping_timeouts == 1; }));
    EXPECT_GE(std::chrono::steady_clock::now() - start, o.ping_interval + o.ping_timeout);
    // What it then reads is a start of the welcome, and perhaps the ERROR
    // (if the writer gets it out within `linger`).
    std::vector<std::string> lines = c.read_to_end();
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.front(), srv + "001 c :Welcome to the Spindle IRC Network c!~c@127.0.0.1");
    if (lines.back().starts_with("ERROR")) {
      EXPECT_EQ(lines.back(), "ERROR :Ping timeout");
      lines.pop_back();
    }
    EXPECT_LT(lines.size(), 400u);
    std::vector<std::string> others;
    for (const std::string& l : lines) {
      const std::string_view cmd = command_of(l);
      if (!cmd.starts_with("00") && cmd != "375" && cmd != "372") others.push_back(l);
    }
    EXPECT_THAT(others, IsEmpty());
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 0; }));
  });
}

}  // namespace
}  // namespace chat::test
