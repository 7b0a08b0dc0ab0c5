// The chat server (samples/chat/server.h), messages and queries: PRIVMSG,
// NOTICE, TOPIC, NAMES, LIST, WHO, WHOIS, MODE, PING, QUIT and NICK
// changes. The fixture and the test client: chat_server_test.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "samples/chat_server_test.h"

namespace chat::test {
namespace {

SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);

TEST_P(ChatServerTest, AChannelMessageReachesEveryOtherMemberButNotTheSender) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    test_client bob = registered_in(s, "bob", "#a");
    test_client carol = registered_in(s, "carol", "#a");
    test_client outsider = registered(s, "dave");
    alice.sync();
    bob.sync();
    alice.send("PRIVMSG #a :hello there");
    alice.send("NOTICE #a :a notice");
    EXPECT_THAT(alice.sync(), IsEmpty());
    for (test_client* c : {&bob, &carol}) {
      EXPECT_THAT(c->sync(), ElementsAre(mask("alice") + " PRIVMSG #a :hello there",
                                         mask("alice") + " NOTICE #a :a notice"))
          << c->name();
    }
    EXPECT_THAT(outsider.sync(), IsEmpty());
  });
}

TEST_P(ChatServerTest, APrivateMessageReachesOnlyItsTarget) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    test_client bob = registered(s, "bob");
    test_client carol = registered(s, "carol");
    alice.send("PRIVMSG bob :psst");
    alice.send("NOTICE BOB :case does not matter");
    alice.send("PRIVMSG bob,carol :to both");
    EXPECT_THAT(alice.sync(), IsEmpty());
    EXPECT_THAT(bob.sync(), ElementsAre(mask("alice") + " PRIVMSG bob :psst",
                                        mask("alice") + " NOTICE bob :case does not matter",
                                        mask("alice") + " PRIVMSG bob :to both"));
    EXPECT_THAT(carol.sync(), ElementsAre(mask("alice") + " PRIVMSG carol :to both"));
  });
}

TEST_P(ChatServerTest, MessageErrorsGet401And403And404And411And412) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    test_client bob = registered_in(s, "bob", "#b");
    test_client pending(s.local_address());
    pending.send("NICK pending");
    pending.sync();
    alice.send("PRIVMSG nobody :x");
    alice.send("PRIVMSG pending :x");  // not registered: not there yet
    alice.send("PRIVMSG #nowhere :x");
    alice.send("PRIVMSG #b :x");  // not a member
    alice.send("PRIVMSG");
    alice.send("PRIVMSG bob");
    alice.send("PRIVMSG bob :");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "401 alice nobody :No such nick/channel",
                                          srv + "401 alice pending :No such nick/channel",
                                          srv + "403 alice #nowhere :No such channel",
                                          srv + "404 alice #b :Cannot send to channel",
                                          srv + "411 alice :No recipient given (PRIVMSG)",
                                          srv + "412 alice :No text to send",
                                          srv + "412 alice :No text to send"));
    EXPECT_THAT(bob.sync(), IsEmpty());
    EXPECT_THAT(pending.sync(), IsEmpty());
  });
}

TEST_P(ChatServerTest, NoticeNeverGetsAnErrorReply) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    test_client bob = registered_in(s, "bob", "#b");
    alice.send("NOTICE nobody :x");
    alice.send("NOTICE #nowhere :x");
    alice.send("NOTICE #b :x");
    alice.send("NOTICE");
    alice.send("NOTICE bob");
    alice.send("NOTICE bob :");
    EXPECT_THAT(alice.sync(), IsEmpty());
    EXPECT_THAT(bob.sync(), IsEmpty());
  });
}

// A target list that is only commas ("PRIVMSG ,,, :x", "JOIN ,,,") names
// no target once split: RFC 2812's reply for a missing target, 411 for
// PRIVMSG and 461 for JOIN and PART, not silence.
TEST_P(ChatServerTest, ATargetListOfOnlyCommasGets411ForPrivmsgAnd461ForJoinAndPart) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    alice.send("PRIVMSG ,,, :x");
    alice.send("PRIVMSG ,");  // no recipient comes before no text
    alice.send("NOTICE ,,, :x");
    alice.send("JOIN ,,,");
    alice.send("JOIN :");
    alice.send("PART ,,,");
    alice.send("PART , :reason");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "411 alice :No recipient given (PRIVMSG)",
                                          srv + "411 alice :No recipient given (PRIVMSG)",
                                          srv + "461 alice JOIN :Not enough parameters",
                                          srv + "461 alice JOIN :Not enough parameters",
                                          srv + "461 alice PART :Not enough parameters",
                                          srv + "461 alice PART :Not enough parameters"));
    // Still on #a, and alone there.
    alice.send("NAMES #a");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "353 alice = #a :alice",
                                          srv + "366 alice #a :End of NAMES list"));
  });
}

TEST_P(ChatServerTest, ATopicIsBroadcastToEveryMemberAndCanBeQueried) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    test_client bob = registered_in(s, "bob", "#a");
    test_client outsider = registered(s, "carol");
    alice.sync();
    alice.send("TOPIC #a");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "331 alice #a :No topic is set"));
    bob.send("TOPIC #a :tea at four");
    EXPECT_THAT(bob.sync(), ElementsAre(mask("bob") + " TOPIC #a :tea at four"));
    EXPECT_THAT(alice.sync(), ElementsAre(mask("bob") + " TOPIC #a :tea at four"));
    // Anyone may ask; only members may set.
    outsider.send("TOPIC #a");
    EXPECT_THAT(outsider.sync(),
                ElementsAre(srv + "332 carol #a :tea at four",
                            testing::MatchesRegex(":spindle\\.chat 333 carol #a bob [0-9]+")));
    outsider.send("TOPIC #a :mine now");
    outsider.send("TOPIC #nowhere :x");
    EXPECT_THAT(outsider.sync(), ElementsAre(srv + "442 carol #a :You're not on that channel",
                                             srv + "403 carol #nowhere :No such channel"));
    EXPECT_THAT(alice.sync(), IsEmpty());
    // LIST shows it.
    alice.send("LIST #a");
    EXPECT_THAT(alice.sync(), Contains(srv + "322 alice #a 2 :tea at four"));
  });
}

TEST_P(ChatServerTest, ALongTopicIsCutTo390Characters) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    alice.send("TOPIC #a :" + std::string(450, 't'));
    EXPECT_THAT(alice.sync(), ElementsAre(mask("alice") + " TOPIC #a :" + std::string(390, 't')));
  });
}

TEST_P(ChatServerTest, NamesListsTheMembersOfAChannelOrOfEveryChannel) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    test_client bob = registered_in(s, "bob", "#a");
    bob.join("#b");
    bob.send("NAMES #a");
    EXPECT_THAT(bob.sync(), ElementsAre(srv + "353 bob = #a :alice bob",
                                        srv + "366 bob #a :End of NAMES list"));
    bob.send("NAMES #nowhere");
    EXPECT_THAT(bob.sync(), ElementsAre(srv + "366 bob #nowhere :End of NAMES list"));
    bob.send("NAMES");
    std::vector<std::string> lines = bob.sync();
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines.back(), srv + "366 bob * :End of NAMES list");
    lines.pop_back();
    EXPECT_THAT(lines,
                UnorderedElementsAre(srv + "353 bob = #a :alice bob", srv + "353 bob = #b :bob"));
  });
}

TEST_P(ChatServerTest, ALongNamesListIsSplitIntoLinesOfAtMost512Bytes) {
  with_server([&](chat::server& s) {
    std::vector<test_client> members;
    std::vector<std::string> nicks;
    for (int i = 0; i < 40; ++i) {
      std::string nick = cat("member", i, "_", std::string(20, 'x'));
      nick.resize(std::min<std::size_t>(nick.size(), chat::irc::max_nick));
      members.push_back(registered_in(s, nick, "#big"));
      nicks.push_back(nick);
    }
    for (const char* command : {"NAMES #big", "NAMES"}) {
      test_client& asker = members.front();
      asker.sync();
      asker.send(command);
      const std::vector<std::string> lines = asker.sync();
      int lines_353 = 0;
      for (const std::string& l : lines) {
        EXPECT_LE(l.size() + 2, chat::irc::max_line) << l;
        if (command_of(l) == "353") ++lines_353;
      }
      EXPECT_GT(lines_353, 1) << command;
      EXPECT_EQ(names_in(lines), nicks) << command;
    }
  });
}

TEST_P(ChatServerTest, ListShowsEveryChannelWithItsUserCountAndTopic) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    alice.send("TOPIC #a :the topic");
    alice.sync();
    test_client bob = registered_in(s, "bob", "#a");
    bob.join("#b");
    bob.send("LIST");
    std::vector<std::string> lines = bob.sync();
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines.front(), srv + "321 bob Channel :Users  Name");
    EXPECT_EQ(lines.back(), srv + "323 bob :End of LIST");
    EXPECT_THAT(std::vector<std::string>(lines.begin() + 1, lines.end() - 1),
                UnorderedElementsAre(srv + "322 bob #a 2 :the topic", srv + "322 bob #b 1 :"));
    bob.send("LIST #b,#nowhere");
    EXPECT_THAT(bob.sync(), ElementsAre(srv + "321 bob Channel :Users  Name",
                                        srv + "322 bob #b 1 :", srv + "323 bob :End of LIST"));
  });
}

TEST_P(ChatServerTest, WhoListsTheMembersOfAChannelAndWhoisDescribesANick) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    test_client bob = registered_in(s, "bob", "#a");
    bob.join("#b");
    alice.sync();
    alice.send("WHO #a");
    EXPECT_THAT(
        alice.sync(),
        ElementsAre(srv + "352 alice #a ~alice 127.0.0.1 spindle.chat alice H :0 Real alice",
                    srv + "352 alice #a ~bob 127.0.0.1 spindle.chat bob H :0 Real bob",
                    srv + "315 alice #a :End of WHO list"));
    alice.send("WHO BOB");
    EXPECT_THAT(alice.sync(),
                ElementsAre(srv + "352 alice * ~bob 127.0.0.1 spindle.chat bob H :0 Real bob",
                            srv + "315 alice BOB :End of WHO list"));
    alice.send("WHOIS bob");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "311 alice bob ~bob 127.0.0.1 * :Real bob",
                                          srv + "319 alice bob :#a #b",
                                          srv + "312 alice bob spindle.chat :Spindle",
                                          srv + "318 alice bob :End of WHOIS list"));
    alice.send("WHOIS nobody");
    alice.send("WHOIS");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "401 alice nobody :No such nick/channel",
                                          srv + "318 alice nobody :End of WHOIS list",
                                          srv + "431 alice :No nickname given"));
  });
}

TEST_P(ChatServerTest, ModeOfAChannelIs324AndItsBanListIsEmpty) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    alice.send("MODE #a");
    EXPECT_THAT(alice.sync(),
                ElementsAre(srv + "324 alice #a +n",
                            testing::MatchesRegex(":spindle\\.chat 329 alice #a [0-9]+")));
    alice.send("MODE #a b");
    alice.send("MODE #a +b");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "368 alice #a :End of channel ban list",
                                          srv + "368 alice #a :End of channel ban list"));
    alice.send("MODE #a +o alice");
    alice.send("MODE #nowhere");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "482 alice #a :You're not channel operator",
                                          srv + "403 alice #nowhere :No such channel"));
  });
}

TEST_P(ChatServerTest, ModeOfOnesOwnNickIsAcceptedSilentlyAndOfAnotherNickGets502) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    test_client bob = registered(s, "bob");
    alice.send("MODE alice +i");
    alice.send("MODE ALICE -w");
    EXPECT_THAT(alice.sync(), IsEmpty());
    alice.send("MODE alice");
    alice.send("MODE bob +i");
    alice.send("MODE nobody +i");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "221 alice +",
                                          srv + "502 alice :Cant change mode for other users",
                                          srv + "401 alice nobody :No such nick/channel"));
    EXPECT_THAT(bob.sync(), IsEmpty());
  });
}

TEST_P(ChatServerTest, PingGetsPongBeforeAndAfterRegistrationAndWithoutAnOrigin409) {
  with_server([&](chat::server& s) {
    test_client c(s.local_address());
    c.send("PING :before");
    c.send("PING");
    EXPECT_EQ(c.expect_line(), srv + "PONG spindle.chat :before");
    EXPECT_EQ(c.expect_line(), srv + "409 * :No origin specified");
    c.register_as("alice");
    c.send("PING after registration");
    c.send("PING");
    c.send("PONG :whatever");  // an unasked PONG is ignored
    EXPECT_EQ(c.expect_line(), srv + "PONG spindle.chat :after");
    EXPECT_EQ(c.expect_line(), srv + "409 alice :No origin specified");
    EXPECT_THAT(c.sync(), IsEmpty());
  });
}

// Four registered clients: alice and bob share #x and #y, carol is in #y
// only, dave in no channel; each has read all it was sent. News of
// alice's reaches bob and carol once each, and dave not at all.
std::array<test_client, 4> four_peers(chat::server& s) {
  std::array<test_client, 4> peers = {registered(s, "alice"), registered(s, "bob"),
                                      registered(s, "carol"), registered(s, "dave")};
  join_all("#x", peers[0], peers[1]);
  join_all("#y", peers[0], peers[1], peers[2]);
  return peers;
}

TEST_P(ChatServerTest, QuitIsBroadcastOnceToEachPeerAndTheQuitterGetsErrorAndIsClosed) {
  with_server([&](chat::server& s) {
    auto [alice, bob, carol, dave] = four_peers(s);
    alice.send("QUIT :gone fishing");
    EXPECT_THAT(alice.read_to_end(),
                ElementsAre("ERROR :Closing Link: 127.0.0.1 (Quit: gone fishing)"));
    EXPECT_TRUE(alice.ended());
    for (test_client* peer : {&bob, &carol}) {
      EXPECT_THAT(peer->sync(), ElementsAre(mask("alice") + " QUIT :Quit: gone fishing"))
          << peer->name();
    }
    EXPECT_THAT(dave.sync(), IsEmpty());
    // alice is gone from the channels, and her nick is free.
    bob.send("NAMES #x");
    EXPECT_THAT(bob.sync(), Contains(srv + "353 bob = #x :bob"));
    test_client again = registered(s, "alice");
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 4; }));

    // Without a reason.
    again.join("#y");
    bob.sync();
    again.send("QUIT");
    EXPECT_THAT(again.read_to_end(), ElementsAre("ERROR :Closing Link: 127.0.0.1 (Client Quit)"));
    EXPECT_THAT(bob.sync(), ElementsAre(mask("alice") + " QUIT :Client Quit"));
  });
}

TEST_P(ChatServerTest, ADisconnectWithoutQuitIsBroadcastAsAQuit) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    {
      test_client bob = registered_in(s, "bob", "#a");
      alice.sync();
    }  // bob closes
    EXPECT_EQ(alice.expect_line(), mask("bob") + " QUIT :Client closed connection");
    EXPECT_TRUE(eventually([&] { return s.stats().clients == 1; }));
  });
}

TEST_P(ChatServerTest, ANickChangeIsBroadcastOnceToTheClientAndToEachPeer) {
  with_server([&](chat::server& s) {
    auto [alice, bob, carol, dave] = four_peers(s);
    alice.send("NICK alicia");
    const std::string change = mask("alice") + " NICK :alicia";
    EXPECT_THAT(alice.sync(), ElementsAre(change));
    EXPECT_THAT(bob.sync(), ElementsAre(change));
    EXPECT_THAT(carol.sync(), ElementsAre(change));
    EXPECT_THAT(dave.sync(), IsEmpty());
    // The new nick is hers (the user name stays); the old one is free.
    bob.send("PRIVMSG alicia :hi");
    EXPECT_THAT(bob.sync(), IsEmpty());
    EXPECT_THAT(alice.sync(), ElementsAre(mask("bob") + " PRIVMSG alicia :hi"));
    alice.send("PRIVMSG #x :as alicia");
    EXPECT_THAT(alice.sync(), IsEmpty());
    EXPECT_THAT(bob.sync(), ElementsAre(":alicia!~alice@127.0.0.1 PRIVMSG #x :as alicia"));
    dave.send("NICK alice");
    EXPECT_THAT(dave.sync(), ElementsAre(mask("dave") + " NICK :alice"));
    // Only the case: still a change, and not "in use".
    bob.send("NICK BOB");
    EXPECT_THAT(bob.sync(), ElementsAre(mask("bob") + " NICK :BOB"));
    // The same nick again: nothing.
    bob.send("NICK BOB");
    EXPECT_THAT(bob.sync(), IsEmpty());
  });
}

TEST_P(ChatServerTest, AClientThatClosesItsSendingSideStillGetsTheRepliesToItsLastLines) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    test_client bob = registered(s, "bob");
    join_all("#a", alice, bob);
    // As `printf 'PRIVMSG ...' | nc` does: lines, then end of stream.
    bob.send("PRIVMSG #a :last words");
    bob.send("PING :last");
    bob.shutdown_write();
    EXPECT_THAT(bob.read_to_end(),
                ElementsAre(srv + "PONG spindle.chat :last", "ERROR :Client closed connection"));
    EXPECT_FALSE(bob.was_reset());
    EXPECT_THAT(alice.read_until_command("QUIT"),
                ElementsAre(mask("bob") + " PRIVMSG #a :last words",
                            mask("bob") + " QUIT :Client closed connection"));
  });
}

}  // namespace
}  // namespace chat::test
