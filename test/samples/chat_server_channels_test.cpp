// The chat server (samples/chat/server.h), channels: JOIN, PART and the
// NAMES that follows a JOIN. The fixture and the test client:
// chat_server_test.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "samples/chat_server_test.h"

namespace chat::test {
namespace {

SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);

TEST_P(ChatServerTest, AJoinIsEchoedToEveryMemberIncludingTheJoiner) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    EXPECT_THAT(
        alice.join("#tea"),
        ElementsAre(mask("alice") + " JOIN #tea", srv + "331 alice #tea :No topic is set",
                    srv + "353 alice = #tea :alice", srv + "366 alice #tea :End of NAMES list"));
    test_client bob = registered(s, "bob");
    EXPECT_THAT(
        bob.join("#tea"),
        ElementsAre(mask("bob") + " JOIN #tea", srv + "331 bob #tea :No topic is set",
                    srv + "353 bob = #tea :alice bob", srv + "366 bob #tea :End of NAMES list"));
    test_client carol = registered_in(s, "carol", "#tea");
    // Each member hears of each later joiner once.
    EXPECT_THAT(alice.sync(),
                ElementsAre(mask("bob") + " JOIN #tea", mask("carol") + " JOIN #tea"));
    EXPECT_THAT(bob.sync(), ElementsAre(mask("carol") + " JOIN #tea"));
    EXPECT_THAT(carol.sync(), IsEmpty());
    // Joining again changes nothing and says nothing.
    alice.send("JOIN #tea");
    EXPECT_THAT(alice.sync(), IsEmpty());
    EXPECT_THAT(bob.sync(), IsEmpty());
    EXPECT_EQ(s.stats().channels, 1u);
  });
}

TEST_P(ChatServerTest, AJoinOfACommaListJoinsEachChannelInTurn) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    alice.send("JOIN #a,#b");
    EXPECT_THAT(
        alice.sync(),
        ElementsAre(mask("alice") + " JOIN #a", srv + "331 alice #a :No topic is set",
                    srv + "353 alice = #a :alice", srv + "366 alice #a :End of NAMES list",
                    mask("alice") + " JOIN #b", srv + "331 alice #b :No topic is set",
                    srv + "353 alice = #b :alice", srv + "366 alice #b :End of NAMES list"));
    EXPECT_EQ(s.stats().channels, 2u);
  });
}

TEST_P(ChatServerTest, AJoinOfAnInvalidNameGets403AndTheRestOfTheListStillJoins) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    alice.send("JOIN tea");
    EXPECT_THAT(alice.sync(), ElementsAre(srv + "403 alice tea :No such channel"));
    alice.send("JOIN #a,bad,#" + std::string(50, 'x') + ",#c");
    std::vector<std::string> lines = alice.sync();
    EXPECT_THAT(lines, Contains(srv + "403 alice bad :No such channel"));
    EXPECT_THAT(lines,
                Contains(cat(srv, "403 alice #", std::string(50, 'x'), " :No such channel")));
    EXPECT_THAT(lines, Contains(mask("alice") + " JOIN #a"));
    EXPECT_THAT(lines, Contains(mask("alice") + " JOIN #c"));
    EXPECT_EQ(s.stats().channels, 2u);
  });
}

TEST_P(ChatServerTest, AJoinOfAChannelWithATopicGets332And333) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#tea");
    alice.send("TOPIC #tea :Tea at four");
    EXPECT_THAT(alice.sync(), ElementsAre(mask("alice") + " TOPIC #tea :Tea at four"));
    test_client bob = registered(s, "bob");
    EXPECT_THAT(
        bob.join("#tea"),
        ElementsAre(mask("bob") + " JOIN #tea", srv + "332 bob #tea :Tea at four",
                    testing::MatchesRegex(":spindle\\.chat 333 bob #tea alice [0-9]+"),
                    srv + "353 bob = #tea :alice bob", srv + "366 bob #tea :End of NAMES list"));
  });
}

TEST_P(ChatServerTest, ChannelNamesAreTheSameUnderRfc1459CaseMapping) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#Tea[1]~");
    test_client bob = registered(s, "bob");
    // The channel keeps the spelling of the one who made it.
    bob.send("JOIN #tEA{1}^");
    EXPECT_THAT(
        bob.read_until_command("366"),
        ElementsAre(mask("bob") + " JOIN #Tea[1]~", srv + "331 bob #Tea[1]~ :No topic is set",
                    srv + "353 bob = #Tea[1]~ :alice bob",
                    srv + "366 bob #Tea[1]~ :End of NAMES list"));
    EXPECT_THAT(alice.sync(), ElementsAre(mask("bob") + " JOIN #Tea[1]~"));
    bob.send("PRIVMSG #TEA{1]^ :hi");
    EXPECT_THAT(bob.sync(), IsEmpty());
    EXPECT_THAT(alice.sync(), ElementsAre(mask("bob") + " PRIVMSG #Tea[1]~ :hi"));
    EXPECT_EQ(s.stats().channels, 1u);
  });
}

TEST_P(ChatServerTest, JoinZeroLeavesEveryChannel) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    alice.join("#b");
    test_client bob = registered_in(s, "bob", "#a");
    alice.sync();
    alice.send("JOIN 0");
    EXPECT_THAT(alice.sync(), UnorderedElementsAre(mask("alice") + " PART #a :Left all channels",
                                                   mask("alice") + " PART #b :Left all channels"));
    EXPECT_THAT(bob.sync(), ElementsAre(mask("alice") + " PART #a :Left all channels"));
    EXPECT_EQ(s.stats().channels, 1u);
  });
}

TEST_P(ChatServerTest, AClientCanBeInAtMostFiftyChannels) {
  with_server([&](chat::server& s) {
    test_client alice = registered(s, "alice");
    std::string list;
    for (int i = 0; i <= 50; ++i) list += cat(i == 0 ? "" : ",", "#c", i);
    alice.send("JOIN " + list);
    std::vector<std::string> lines = alice.sync();
    EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                            [](const std::string& l) { return command_of(l) == "JOIN"; }),
              50);
    EXPECT_EQ(lines.back(), srv + "405 alice #c50 :You have joined too many channels");
    EXPECT_EQ(s.stats().channels, 50u);
  });
}

TEST_P(ChatServerTest, APartIsBroadcastToEveryMemberAndTheLastToLeaveEndsTheChannel) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    test_client bob = registered_in(s, "bob", "#a");
    bob.join("#b");
    alice.sync();
    bob.send("PART #a :bye now");
    EXPECT_THAT(bob.sync(), ElementsAre(mask("bob") + " PART #a :bye now"));
    EXPECT_THAT(alice.sync(), ElementsAre(mask("bob") + " PART #a :bye now"));
    bob.send("PART #b");
    EXPECT_THAT(bob.sync(), ElementsAre(mask("bob") + " PART #b"));
    EXPECT_EQ(s.stats().channels, 1u);
    // Messages to #a no longer reach bob.
    alice.send("PRIVMSG #a :still here?");
    EXPECT_THAT(alice.sync(), IsEmpty());
    EXPECT_THAT(bob.sync(), IsEmpty());
  });
}

TEST_P(ChatServerTest, PartingAChannelNotJoinedGets442AndAMissingOne403) {
  with_server([&](chat::server& s) {
    test_client alice = registered_in(s, "alice", "#a");
    test_client bob = registered(s, "bob");
    bob.send("PART #a");
    bob.send("PART #nowhere");
    bob.send("PART #A,#nowhere2");
    EXPECT_THAT(bob.sync(), ElementsAre(srv + "442 bob #a :You're not on that channel",
                                        srv + "403 bob #nowhere :No such channel",
                                        srv + "442 bob #a :You're not on that channel",
                                        srv + "403 bob #nowhere2 :No such channel"));
    EXPECT_THAT(alice.sync(), IsEmpty());
  });
}

}  // namespace
}  // namespace chat::test
