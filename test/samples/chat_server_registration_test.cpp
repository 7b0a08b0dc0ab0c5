// The chat server (samples/chat/server.h), registration: NICK, USER, PASS
// and CAP, and the numerics that refuse them. The fixture and the test
// client: chat_server_test.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "samples/chat_server_test.h"

namespace chat::test {
namespace {

SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);

TEST_P(ChatServerTest, NickAndUserRegisterWithNumerics001To005AndTheMotd) {
  chat::options o = test_options();
  o.server_name = "irc.test";
  o.network = "TestNet";
  o.motd = "line one\nline two";
  with_server(o, [&](chat::server& s) {
    test_client c(s.local_address());
    c.send("NICK alice");
    c.send("USER alice 0 * :Alice Liddell");
    EXPECT_THAT(
        c.read_until_command("376"),
        ElementsAre(
            ":irc.test 001 alice :Welcome to the TestNet IRC Network alice!~alice@127.0.0.1",
            StartsWith(":irc.test 002 alice :Your host is irc.test, running version "),
            StartsWith(":irc.test 003 alice :This server was created "),
            StartsWith(":irc.test 004 alice irc.test "),
            AllOf(StartsWith(":irc.test 005 alice "), HasSubstr(" CASEMAPPING=rfc1459 "),
                  HasSubstr(" NICKLEN=30 "), HasSubstr(" CHANNELLEN=50 "),
                  HasSubstr(" NETWORK=TestNet "), EndsWith(" :are supported by this server")),
            ":irc.test 375 alice :- irc.test Message of the day - ",
            ":irc.test 372 alice :- line one",  //
            ":irc.test 372 alice :- line two",  //
            ":irc.test 376 alice :End of MOTD command"));
    EXPECT_THAT(c.sync(), IsEmpty());
    EXPECT_EQ(s.stats().registered, 1u);
  });
}

TEST_P(ChatServerTest, AnEmptyMotdOptionGives422InsteadOfTheMotd) {
  chat::options o = test_options();
  o.motd = "";
  with_server(o, [&](chat::server& s) {
    test_client c(s.local_address());
    std::vector<std::string> lines = c.register_as("alice");
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(), srv + "422 alice :MOTD File is missing");
    EXPECT_THAT(lines, Not(Contains(HasSubstr(" 375 "))));
    EXPECT_THAT(lines, Not(Contains(HasSubstr(" 372 "))));
    EXPECT_THAT(c.sync(), IsEmpty());
  });
}

TEST_P(ChatServerTest, UserBeforeNickRegistersToo) {
  with_server([&](chat::server& s) {
    test_client c(s.local_address());
    c.send("USER bob 0 * :Bob");
    EXPECT_THAT(c.sync(), IsEmpty()) << "no NICK yet: no welcome";
    c.send("NICK bob");
    EXPECT_EQ(c.expect_line(),
              srv + "001 bob :Welcome to the Spindle IRC Network bob!~bob@127.0.0.1");
  });
}

TEST_P(ChatServerTest, AUserNameIsCutToTenCharactersAndMaskCharactersAreReplaced) {
  with_server([&](chat::server& s) {
    test_client a(s.local_address());
    a.send("NICK alice");
    a.send("USER averyverylongname 0 * :A");
    EXPECT_THAT(a.expect_line(), EndsWith(" alice!~averyveryl@127.0.0.1"));
    test_client b(s.local_address());
    b.send("NICK bob");
    b.send("USER b@d!x 0 * :B");
    EXPECT_THAT(b.expect_line(), EndsWith(" bob!~b_d_x@127.0.0.1"));
  });
}

TEST_P(ChatServerTest, CapLsHoldsRegistrationUntilCapEnd) {
  with_server([&](chat::server& s) {
    test_client c(s.local_address());
    c.send("CAP LS 302");
    c.send("NICK carol");
    c.send("USER carol 0 * :Carol");
    EXPECT_EQ(c.expect_line(), srv + "CAP * LS :");
    EXPECT_THAT(c.sync(), IsEmpty()) << "registered while negotiating capabilities";
    c.send("CAP REQ :multi-prefix");
    EXPECT_THAT(c.sync(), ElementsAre(srv + "CAP carol NAK :multi-prefix"));
    EXPECT_EQ(s.stats().registered, 0u);
    c.send("CAP END");
    std::vector<std::string> lines = c.read_until_command("376");
    ASSERT_FALSE(lines.empty());
    EXPECT_THAT(lines.front(), StartsWith(srv + "001 carol :Welcome"));
    EXPECT_EQ(s.stats().registered, 1u);
  });
}

TEST_P(ChatServerTest, WithAPasswordAWrongOrMissingPassGets464AndIsDisconnected) {
  chat::options o = test_options();
  o.password = "sesame";
  with_server(o, [&](chat::server& s) {
    test_client wrong(s.local_address(), "wrong");
    wrong.send("PASS open");
    wrong.send("NICK dave");
    wrong.send("USER dave 0 * :Dave");
    EXPECT_THAT(wrong.read_to_end(),
                ElementsAre(srv + "464 dave :Password incorrect", "ERROR :Password incorrect"));
    EXPECT_TRUE(wrong.ended());

    test_client missing(s.local_address(), "missing");
    missing.send("NICK erin");
    missing.send("USER erin 0 * :Erin");
    EXPECT_THAT(missing.read_to_end(),
                ElementsAre(srv + "464 erin :Password incorrect", "ERROR :Password incorrect"));
    EXPECT_EQ(s.stats().registered, 0u);
  });
}

TEST_P(ChatServerTest, WithAPasswordTheRightPassRegisters) {
  chat::options o = test_options();
  o.password = "sesame";
  with_server(o, [&](chat::server& s) {
    test_client c(s.local_address());
    c.send("PASS");
    EXPECT_THAT(c.sync(), ElementsAre(srv + "461 * PASS :Not enough parameters"));
    c.send("PASS sesame");
    c.send("NICK dave");
    c.send("USER dave 0 * :Dave");
    EXPECT_THAT(c.expect_line(), StartsWith(srv + "001 dave :Welcome"));
  });
}

TEST_P(ChatServerTest, NickWithoutANameGets431) {
  with_server([&](chat::server& s) {
    test_client c(s.local_address());
    c.send("NICK");
    c.send("NICK :");
    EXPECT_THAT(c.sync(),
                ElementsAre(srv + "431 * :No nickname given", srv + "431 * :No nickname given"));
  });
}

TEST_P(ChatServerTest, InvalidNicksGet432AndAValidOneStillRegisters) {
  with_server([&](chat::server& s) {
    test_client c(s.local_address());
    const std::vector<std::string> bad = {
        "1abc", "-abc", "ab.c", "a*b", "a~b", "#chan", "\xc3\xa9t\xc3\xa9", std::string(31, 'n'),
        "a:b"};
    std::vector<std::string> expected;
    for (const std::string& nick : bad) {
      c.send(cat("NICK :", nick));
      expected.push_back(cat(srv, "432 * ", nick, " :Erroneous nickname"));
    }
    EXPECT_EQ(c.sync(), expected);
    c.register_as(std::string(30, 'n'));
    // Registered, a bad new nick gets 432 too, and the nick stays.
    c.send("NICK 9lives");
    EXPECT_THAT(c.sync(),
                ElementsAre(cat(srv, "432 ", std::string(30, 'n'), " 9lives :Erroneous nickname")));
  });
}

TEST_P(ChatServerTest, ANickInUseGets433UnderRfc1459CaseMapping) {
  with_server([&](chat::server& s) {
    test_client first = registered(s, "Nick[1]");
    test_client c(s.local_address());
    for (const char* nick : {"Nick[1]", "nick{1}", "NICK[1}", "nick{1]"}) {
      c.send(cat("NICK ", nick));
      EXPECT_THAT(c.sync(), ElementsAre(cat(srv, "433 * ", nick, " :Nickname is already in use")));
    }
    c.register_as("other");
    c.send("NICK NICK{1}");
    EXPECT_THAT(c.sync(), ElementsAre(srv + "433 other NICK{1} :Nickname is already in use"));
    // An unregistered client's nick is taken too.
    test_client pending(s.local_address());
    pending.send("NICK pending");
    EXPECT_THAT(pending.sync(), IsEmpty());
    c.send("NICK Pending");
    EXPECT_THAT(c.sync(), ElementsAre(srv + "433 other Pending :Nickname is already in use"));
  });
}

TEST_P(ChatServerTest, ChannelCommandsBeforeRegistrationGet451AndUnknownOnes421) {
  with_server([&](chat::server& s) {
    test_client c(s.local_address());
    std::vector<std::string> expected;
    for (const char* cmd :
         {"JOIN", "PART", "PRIVMSG", "NOTICE", "TOPIC", "NAMES", "LIST", "WHO", "WHOIS", "MODE"}) {
      c.send(cat(cmd, " #chan :x"));
      expected.push_back(srv + "451 * :You have not registered");
    }
    c.send("KICK #chan bob");
    expected.push_back(srv + "421 * KICK :Unknown command");
    EXPECT_EQ(c.sync(), expected);
    EXPECT_EQ(s.stats().channels, 0u);
  });
}

TEST_P(ChatServerTest, CommandsWithoutTheirParametersGet461) {
  with_server([&](chat::server& s) {
    test_client c(s.local_address());
    c.send("USER");
    c.send("USER alice 0 *");
    c.send("USER : 0 * :x");
    EXPECT_THAT(c.sync(), ElementsAre(srv + "461 * USER :Not enough parameters",
                                      srv + "461 * USER :Not enough parameters",
                                      srv + "461 * USER :Not enough parameters"));
    c.register_as("alice");
    for (const char* cmd : {"JOIN", "PART", "TOPIC", "MODE"}) {
      c.send(cmd);
      EXPECT_THAT(c.sync(), ElementsAre(cat(srv, "461 alice ", cmd, " :Not enough parameters")));
    }
  });
}

TEST_P(ChatServerTest, UserOrPassAfterRegistrationGets462) {
  with_server([&](chat::server& s) {
    test_client c = registered(s, "alice");
    c.send("USER again 0 * :Again");
    c.send("PASS secret");
    EXPECT_THAT(c.sync(), ElementsAre(srv + "462 alice :You may not reregister",
                                      srv + "462 alice :You may not reregister"));
  });
}

TEST_P(ChatServerTest, AnUnknownCommandGets421WithTheCommandUpperCased) {
  with_server([&](chat::server& s) {
    test_client c = registered(s, "alice");
    c.send("FOO bar");
    c.send("kick #a bob");
    c.send("@tag=1 :alice!x@y knock #a");
    EXPECT_THAT(c.sync(), ElementsAre(srv + "421 alice FOO :Unknown command",
                                      srv + "421 alice KICK :Unknown command",
                                      srv + "421 alice KNOCK :Unknown command"));
  });
}

}  // namespace
}  // namespace chat::test
