// The IRC wire format of the chat sample (samples/chat/irc.h): parsing a
// client's line, the rules for nicknames and channel names, the RFC 1459
// case mapping, comma lists and cat().
#include "samples/chat/irc.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;
using chat::irc::message;
using testing::ElementsAre;
using testing::IsEmpty;

// Parses `line`, failing the test if parse() says it has no command.
message parsed(std::string_view line) {
  message m;
  EXPECT_TRUE(chat::irc::parse(line, m)) << "line: " << line;
  return m;
}

// ---- parse ----

TEST(IrcParseTest, ACommandWithMiddleParametersAndATrailingOneSplitsIntoThem) {
  const message m = parsed("USER alice 0 * :Alice Liddell");
  EXPECT_EQ(m.command, "USER");
  EXPECT_THAT(m.params, ElementsAre("alice", "0", "*", "Alice Liddell"));
}

TEST(IrcParseTest, ACommandWithoutParametersHasNone) {
  EXPECT_EQ(parsed("QUIT").command, "QUIT");
  EXPECT_THAT(parsed("QUIT").params, IsEmpty());
  EXPECT_THAT(parsed("LIST ").params, IsEmpty()) << "a trailing space adds no parameter";
}

TEST(IrcParseTest, ALowercaseOrMixedCaseCommandIsUpperCased) {
  EXPECT_EQ(parsed("privmsg #a :hi").command, "PRIVMSG");
  EXPECT_EQ(parsed("JoIn #a").command, "JOIN");
  // Only the command: parameters keep their case.
  EXPECT_THAT(parsed("nick Alice").params, ElementsAre("Alice"));
  // Digits and other bytes pass through.
  EXPECT_EQ(parsed("001 x").command, "001");
  EXPECT_EQ(parsed("\xc3\xa9t\xc3\xa9 x").command, "\xc3\xa9T\xc3\xa9");
}

TEST(IrcParseTest, APrefixIsDropped) {
  const message m = parsed(":alice!~alice@host PRIVMSG #a :hello");
  EXPECT_EQ(m.command, "PRIVMSG");
  EXPECT_THAT(m.params, ElementsAre("#a", "hello"));
}

TEST(IrcParseTest, MessageTagsAndAPrefixAreDropped) {
  const message m = parsed("@time=2024-01-01T00:00:00Z;msgid=42 :server.example PING :token");
  EXPECT_EQ(m.command, "PING");
  EXPECT_THAT(m.params, ElementsAre("token"));
  // Tags without a prefix.
  EXPECT_EQ(parsed("@a=b NICK x").command, "NICK");
}

TEST(IrcParseTest, TheTrailingParameterKeepsItsSpacesAndColons) {
  EXPECT_THAT(parsed("TOPIC #a :tea  at :four ").params, ElementsAre("#a", "tea  at :four "));
  // A colon inside a middle parameter does not start the trailing one.
  EXPECT_THAT(parsed("PRIVMSG a:b :c").params, ElementsAre("a:b", "c"));
}

TEST(IrcParseTest, AnEmptyTrailingParameterIsAnEmptyString) {
  EXPECT_THAT(parsed("PRIVMSG #a :").params, ElementsAre("#a", ""));
  EXPECT_THAT(parsed("NICK :").params, ElementsAre(""));
}

TEST(IrcParseTest, RunsOfSpacesSeparateParametersLikeOne) {
  EXPECT_THAT(parsed("  USER   alice  0   *    :Real  Name").params,
              ElementsAre("alice", "0", "*", "Real  Name"));
}

TEST(IrcParseTest, FifteenParametersAreKeptAndTheFifteenthTakesTheRestOfTheLine) {
  // 14 middle parameters and a trailing one: 15, as they are.
  EXPECT_THAT(parsed("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :last words").params,
              ElementsAre("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14",
                          "last words"));
  // More than 15 words: the fifteenth parameter is the rest of the line.
  const message m = parsed("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 :x y");
  ASSERT_EQ(m.params.size(), chat::irc::max_params);
  EXPECT_EQ(m.params[13], "14");
  EXPECT_EQ(m.params[14], "15 16 17 :x y");
}

TEST(IrcParseTest, ALineWithoutACommandIsRejected) {
  message m;
  for (const std::string_view line : {""sv, " "sv, "    "sv, ":prefix"sv, ":prefix   "sv, "@tags"sv,
                                      "@tags :prefix"sv, "@tags  :prefix  "sv}) {
    EXPECT_FALSE(chat::irc::parse(line, m)) << "line: '" << line << "'";
  }
}

TEST(IrcParseTest, ParseClearsWhatTheMessageHeldBefore) {
  message m;
  ASSERT_TRUE(chat::irc::parse("PRIVMSG #a :one", m));
  ASSERT_TRUE(chat::irc::parse("QUIT", m));
  EXPECT_EQ(m.command, "QUIT");
  EXPECT_THAT(m.params, IsEmpty());
  EXPECT_FALSE(chat::irc::parse("", m));
  EXPECT_EQ(m.command, "");
  EXPECT_THAT(m.params, IsEmpty());
}

TEST(IrcParseTest, ArbitraryBytesParseWithoutGoingOutOfBounds) {
  // Bytes that are not text: parse() takes them as they are.
  const message m = parsed("\xff\xfe \x80:\x81 :\x00\x01"s);
  EXPECT_EQ(m.command, "\xff\xfe");
  EXPECT_THAT(m.params, ElementsAre("\x80:\x81", "\x00\x01"s));
}

// ---- is_valid_nick ----

TEST(IrcNickTest, LettersDigitsSpecialsAndDashesMakeAValidNick) {
  for (const std::string_view nick : {"a"sv, "alice"sv, "Nick[1]"sv, "[]\\`_^{|}"sv, "_x"sv,
                                      "a-b"sv, "a9"sv, "^"sv, "|"sv, "ABCdef-123"sv}) {
    EXPECT_TRUE(chat::irc::is_valid_nick(nick)) << nick;
  }
}

TEST(IrcNickTest, ANickMayBeThirtyCharactersLongButNotThirtyOne) {
  EXPECT_TRUE(chat::irc::is_valid_nick(std::string(chat::irc::max_nick, 'n')));
  EXPECT_EQ(chat::irc::max_nick, 30u);
  EXPECT_FALSE(chat::irc::is_valid_nick(std::string(chat::irc::max_nick + 1, 'n')));
}

TEST(IrcNickTest, ANickStartingWithADigitOrDashIsInvalid) {
  EXPECT_FALSE(chat::irc::is_valid_nick("1abc"));
  EXPECT_FALSE(chat::irc::is_valid_nick("-abc"));
  EXPECT_FALSE(chat::irc::is_valid_nick("9"));
}

TEST(IrcNickTest, EmptyNicksAndOtherCharactersAreInvalid) {
  for (const std::string_view nick :
       {""sv, "a b"sv, "a.b"sv, "a#b"sv, "#a"sv, "a!b"sv, "a@b"sv, "a:b"sv, ":a"sv, "a,b"sv,
        "a*b"sv, "a~b"sv, "a\x01"sv, "\xc3\xa9t\xc3\xa9"sv, "a\0b"sv, "a\r"sv, "a\n"sv}) {
    EXPECT_FALSE(chat::irc::is_valid_nick(nick)) << nick;
  }
}

// ---- is_valid_channel ----

TEST(IrcChannelTest, AHashAndAnyOtherBytesMakeAValidChannel) {
  for (const std::string_view name :
       {"#a"sv, "#chan"sv, "#a#b"sv, "#!x~y"sv, "#caf\xc3\xa9"sv, "#\xff"sv, "#[x]"sv}) {
    EXPECT_TRUE(chat::irc::is_valid_channel(name)) << name;
  }
}

TEST(IrcChannelTest, AChannelNameMayBeFiftyBytesLongButNotFiftyOne) {
  EXPECT_EQ(chat::irc::max_channel, 50u);
  EXPECT_TRUE(chat::irc::is_valid_channel("#" + std::string(49, 'c')));
  EXPECT_FALSE(chat::irc::is_valid_channel("#" + std::string(50, 'c')));
}

TEST(IrcChannelTest, ANameWithoutAHashOrWithForbiddenBytesIsInvalid) {
  for (const std::string_view name :
       {""sv, "#"sv, "chan"sv, "&chan"sv, "+chan"sv, " #chan"sv, "#a b"sv, "#a,b"sv, "#a:b"sv,
        "#a\a"sv, "#a\0b"sv, "#a\r"sv, "#a\n"sv}) {
    EXPECT_FALSE(chat::irc::is_valid_channel(name)) << name;
  }
}

// ---- fold ----

TEST(IrcFoldTest, UpperCaseLettersFoldToLowerCase) {
  EXPECT_EQ(chat::irc::fold("ABCxyzXYZ"), "abcxyzxyz");
  EXPECT_EQ(chat::irc::fold("#Chan"), "#chan");
}

TEST(IrcFoldTest, BracketsBackslashAndTildeFoldToBracesBarAndCaretUnderRfc1459) {
  EXPECT_EQ(chat::irc::fold("Nick[1]"), chat::irc::fold("nick{1}"));
  EXPECT_EQ(chat::irc::fold("Nick[1]"), "nick{1}");
  EXPECT_EQ(chat::irc::fold("A\\B"), "a|b");
  EXPECT_EQ(chat::irc::fold("x~"), "x^");
  EXPECT_EQ(chat::irc::fold("[]\\~"), "{}|^");
}

TEST(IrcFoldTest, OtherBytesAreLeftAlone) {
  EXPECT_EQ(chat::irc::fold("a-1_`{|}^"), "a-1_`{|}^");
  // Not ASCII: no case folding of UTF-8.
  EXPECT_EQ(chat::irc::fold("\xc3\x89"), "\xc3\x89");
  EXPECT_EQ(chat::irc::fold(""), "");
}

// ---- split_list ----

TEST(IrcSplitListTest, ACommaListSplitsIntoItsItemsLeavingOutEmptyOnes) {
  EXPECT_THAT(chat::irc::split_list("#a,#b"), ElementsAre("#a", "#b"));
  EXPECT_THAT(chat::irc::split_list("#a"), ElementsAre("#a"));
  EXPECT_THAT(chat::irc::split_list(",#a,,#b,"), ElementsAre("#a", "#b"));
  EXPECT_THAT(chat::irc::split_list(""), IsEmpty());
  EXPECT_THAT(chat::irc::split_list(",,,"), IsEmpty());
}

// ---- cat ----

TEST(IrcCatTest, CatJoinsStringsCharactersAndIntegers) {
  EXPECT_EQ(chat::irc::cat(), "");
  EXPECT_EQ(chat::irc::cat("a", 'b', 42, std::string("c"), std::string_view("d"), -7), "ab42cd-7");
  EXPECT_EQ(chat::irc::cat(std::numeric_limits<std::int64_t>::min()), "-9223372036854775808");
  EXPECT_EQ(chat::irc::cat(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615");
  EXPECT_EQ(chat::irc::cat(std::size_t{0}, ' ', 0u), "0 0");
}

}  // namespace
