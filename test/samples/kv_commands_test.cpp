// The key-value server's commands (samples/kv), through hiredis: each
// reply, errors included, as Redis 7.0 gives it for the same command.
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "samples/kv_test.h"

namespace kv::test {
namespace {

TEST_P(KvServerTest, PingAndEchoAnswerAsRedisDoes) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"PING"}), "PONG");
  EXPECT_EQ(c.run({"ping", "hi"}), "\"hi\"");
  EXPECT_EQ(c.run({"ECHO", "a b"}), "\"a b\"");
  EXPECT_EQ(c.run({"ECHO", ""}), "\"\"");
  EXPECT_EQ(c.run({"PING", "a", "b"}), "(error) ERR wrong number of arguments for 'ping' command");
}

TEST_P(KvServerTest, GetAnswersWhatSetStoredBinaryValuesIncluded) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"GET", "k"}), "(nil)");
  EXPECT_EQ(c.run({"SET", "k", "v"}), "OK");
  EXPECT_EQ(c.run({"GET", "k"}), "\"v\"");
  const std::string binary("a\0\r\nb", 5);
  EXPECT_EQ(c.run({"SET", binary, binary}), "OK");
  EXPECT_EQ(c.run({"GET", binary}), "\"" + binary + "\"");
}

TEST_P(KvServerTest, SetWithNxOrXxSetsOnlyWhenTheKeyIsAbsentOrPresent) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"SET", "k", "1", "XX"}), "(nil)");
  EXPECT_EQ(c.run({"SET", "k", "1", "NX"}), "OK");
  EXPECT_EQ(c.run({"SET", "k", "2", "nx"}), "(nil)");
  EXPECT_EQ(c.run({"SET", "k", "3", "xx"}), "OK");
  EXPECT_EQ(c.run({"SET", "k", "4", "GET"}), "\"3\"");
  EXPECT_EQ(c.run({"GET", "k"}), "\"4\"");
}

TEST_P(KvServerTest, SetOptionsThatConflictOrAreUnknownAreASyntaxError) {
  start();
  redis_client c = client();
  for (const std::vector<std::string>& cmd :
       std::vector<std::vector<std::string>>{{"SET", "k", "v", "NX", "XX"},
                                             {"SET", "k", "v", "EX", "10", "PX", "10"},
                                             {"SET", "k", "v", "KEEPTTL", "EX", "10"},
                                             {"SET", "k", "v", "EX"},
                                             {"SET", "k", "v", "bogus"}}) {
    EXPECT_EQ(c.run(cmd), "(error) ERR syntax error");
  }
}

TEST_P(KvServerTest, SetWithABadExpireTimeIsRefusedAsRedisWordsIt) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"SET", "k", "v", "EX", "0"}), "(error) ERR invalid expire time in 'set' command");
  EXPECT_EQ(c.run({"SET", "k", "v", "PX", "-1"}), "(error) ERR invalid expire time in 'set' command");
  EXPECT_EQ(c.run({"SET", "k", "v", "EX", "99999999999999999"}),
            "(error) ERR invalid expire time in 'set' command");
  EXPECT_EQ(c.run({"SET", "k", "v", "EX", "ten"}), "(error) ERR value is not an integer or out of range");
  EXPECT_EQ(c.run({"EXISTS", "k"}), "(integer) 0");
}

TEST_P(KvServerTest, DelAndExistsCountTheKeysThereAre) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"MSET", "a", "1", "b", "2"}), "OK");
  EXPECT_EQ(c.run({"EXISTS", "a", "a", "nope"}), "(integer) 2");
  EXPECT_EQ(c.run({"DEL", "a", "b", "nope"}), "(integer) 2");
  EXPECT_EQ(c.run({"EXISTS", "a", "b"}), "(integer) 0");
  EXPECT_EQ(c.run({"TYPE", "a"}), "none");
}

TEST_P(KvServerTest, IncrementsWorkOnIntegersAndRefuseOverflow) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"INCR", "n"}), "(integer) 1");
  EXPECT_EQ(c.run({"INCRBY", "n", "10"}), "(integer) 11");
  EXPECT_EQ(c.run({"DECR", "n"}), "(integer) 10");
  EXPECT_EQ(c.run({"DECRBY", "n", "-5"}), "(integer) 15");
  EXPECT_EQ(c.run({"INCRBY", "n", "1.5"}), "(error) ERR value is not an integer or out of range");
  EXPECT_EQ(c.run({"SET", "s", " 1"}), "OK");
  EXPECT_EQ(c.run({"INCR", "s"}), "(error) ERR value is not an integer or out of range");
  EXPECT_EQ(c.run({"SET", "max", "9223372036854775807"}), "OK");
  EXPECT_EQ(c.run({"INCR", "max"}), "(error) ERR increment or decrement would overflow");
  EXPECT_EQ(c.run({"DECRBY", "n", "-9223372036854775808"}), "(error) ERR decrement would overflow");
}

TEST_P(KvServerTest, MsetAndMgetTakeManyKeys) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"MSET", "a", "1", "b", "2"}), "OK");
  EXPECT_EQ(c.run({"RPUSH", "l", "x"}), "(integer) 1");
  EXPECT_EQ(c.run({"MGET", "a", "nope", "b", "l"}), "[\"1\", (nil), \"2\", (nil)]");
  EXPECT_EQ(c.run({"MSET", "a", "1", "b"}), "(error) ERR wrong number of arguments for 'mset' command");
}

TEST_P(KvServerTest, ExpireTtlPttlAndPersistManageATimeToLive) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"TTL", "k"}), "(integer) -2");
  EXPECT_EQ(c.run({"EXPIRE", "k", "100"}), "(integer) 0");
  EXPECT_EQ(c.run({"SET", "k", "v"}), "OK");
  EXPECT_EQ(c.run({"TTL", "k"}), "(integer) -1");
  EXPECT_EQ(c.run({"EXPIRE", "k", "100"}), "(integer) 1");
  // What is left of the 100 s, however slowly the test runs.
  const auto left = [&](const char* command) {
    const std::string r = c.run({command, "k"});
    return r.starts_with("(integer) ") ? std::stoll(r.substr(10)) : -100;
  };
  const long long ttl = left("TTL"), pttl = left("PTTL");
  EXPECT_TRUE(ttl > 0 && ttl <= 100) << ttl;
  EXPECT_TRUE(pttl > 0 && pttl <= 100000) << pttl;
  EXPECT_EQ(c.run({"PERSIST", "k"}), "(integer) 1");
  EXPECT_EQ(c.run({"PERSIST", "k"}), "(integer) 0");
  EXPECT_EQ(c.run({"TTL", "k"}), "(integer) -1");
  EXPECT_EQ(c.run({"EXPIRE", "k", "ten"}), "(error) ERR value is not an integer or out of range");
  EXPECT_EQ(c.run({"EXPIRE", "k", "99999999999999999"}),
            "(error) ERR invalid expire time in 'expire' command");
  EXPECT_EQ(c.run({"PEXPIRE", "k", "0"}), "(integer) 1");  // a time past: gone at once
  EXPECT_EQ(c.run({"EXISTS", "k"}), "(integer) 0");
}

TEST_P(KvServerTest, AKeySetWithPxExpires) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"SET", "k", "v", "PX", "1"}), "OK");
  EXPECT_TRUE(eventually([&] { return c.run({"GET", "k"}) == "(nil)"; }));
  EXPECT_EQ(c.run({"TTL", "k"}), "(integer) -2");
}

TEST_P(KvServerTest, ExpiredKeysNobodyAsksForAreRemovedInTheBackground) {
  start();
  redis_client c = client();
  for (int i = 0; i < 100; ++i) c.append({"SET", "k" + std::to_string(i), "v", "PX", "1"});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(c.reply(), "OK");
  // DBSIZE counts keys not yet removed, expired or not: only the expiry
  // fiber brings it to 0 here, since no command looks at those keys.
  EXPECT_TRUE(eventually([&] { return c.run({"DBSIZE"}) == "(integer) 0"; }));
}

TEST_P(KvServerTest, KeysListsTheKeysAGlobPatternMatches) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"MSET", "hello", "1", "hallo", "2", "hxllo", "3", "world", "4"}), "OK");
  const auto sorted = [&](const std::string& pattern) {
    std::string r = c.run({"KEYS", pattern});
    std::vector<std::string> parts;
    // "[\"a\", \"b\"]" -> a, b
    for (std::size_t p = r.find('"'); p != std::string::npos; p = r.find('"', r.find('"', p + 1) + 1)) {
      parts.push_back(r.substr(p + 1, r.find('"', p + 1) - p - 1));
    }
    std::sort(parts.begin(), parts.end());
    return parts;
  };
  EXPECT_EQ(sorted("h?llo"), (std::vector<std::string>{"hallo", "hello", "hxllo"}));
  EXPECT_EQ(sorted("h[ae]llo"), (std::vector<std::string>{"hallo", "hello"}));
  EXPECT_EQ(sorted("h[^e]llo"), (std::vector<std::string>{"hallo", "hxllo"}));
  EXPECT_EQ(sorted("*o*"), (std::vector<std::string>{"hallo", "hello", "hxllo", "world"}));
  EXPECT_EQ(sorted("nothing*"), std::vector<std::string>{});
}

// Follows SCAN's cursor to its end, returning every key it gave.
std::multiset<std::string> scan_all(redis_client& c, const std::vector<std::string>& options) {
  std::multiset<std::string> keys;
  std::string cursor = "0";
  do {
    std::vector<std::string> cmd = {"SCAN", cursor};
    cmd.insert(cmd.end(), options.begin(), options.end());
    const std::string r = c.run(cmd);  // ["cursor", ["k", ...]]
    cursor = r.substr(2, r.find('"', 2) - 2);
    for (std::size_t p = r.find("[\"", 3); p != std::string::npos; p = r.find(", \"", p + 1)) {
      const std::size_t start = r.find('"', p) + 1;
      keys.insert(r.substr(start, r.find('"', start) - start));
    }
  } while (cursor != "0");
  return keys;
}

TEST_P(KvServerTest, ScanVisitsEveryKeyOnceAcrossCalls) {
  start();
  redis_client c = client();
  std::multiset<std::string> all;
  for (int i = 0; i < 500; ++i) {
    all.insert("key" + std::to_string(i));
    c.append({"SET", "key" + std::to_string(i), "v"});
  }
  for (int i = 0; i < 500; ++i) ASSERT_EQ(c.reply(), "OK");
  EXPECT_EQ(scan_all(c, {"COUNT", "7"}), all);
  EXPECT_EQ(scan_all(c, {"MATCH", "key1?", "COUNT", "50"}),
            (std::multiset<std::string>{"key10", "key11", "key12", "key13", "key14", "key15", "key16",
                                        "key17", "key18", "key19"}));
  EXPECT_EQ(c.run({"SCAN", "x"}), "(error) ERR invalid cursor");
  EXPECT_EQ(c.run({"SCAN", "0", "COUNT", "0"}), "(error) ERR syntax error");
  EXPECT_EQ(c.run({"SCAN", "0", "MATCH"}), "(error) ERR syntax error");
}

TEST_P(KvServerTest, DbsizeCountsKeysAndFlushallRemovesThemAll) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"DBSIZE"}), "(integer) 0");
  EXPECT_EQ(c.run({"MSET", "a", "1", "b", "2"}), "OK");
  EXPECT_EQ(c.run({"LPUSH", "l", "x"}), "(integer) 1");
  EXPECT_EQ(c.run({"DBSIZE"}), "(integer) 3");
  EXPECT_EQ(c.run({"FLUSHALL", "bogus"}), "(error) ERR syntax error");
  EXPECT_EQ(c.run({"FLUSHALL"}), "OK");
  EXPECT_EQ(c.run({"DBSIZE"}), "(integer) 0");
}

TEST_P(KvServerTest, ListsArePushedPoppedAndRangedAtBothEnds) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"RPUSH", "l", "b", "c"}), "(integer) 2");
  EXPECT_EQ(c.run({"LPUSH", "l", "a", "z"}), "(integer) 4");
  EXPECT_EQ(c.run({"LRANGE", "l", "0", "-1"}), "[\"z\", \"a\", \"b\", \"c\"]");
  EXPECT_EQ(c.run({"LRANGE", "l", "-2", "100"}), "[\"b\", \"c\"]");
  EXPECT_EQ(c.run({"LRANGE", "l", "3", "1"}), "[]");
  EXPECT_EQ(c.run({"LRANGE", "l", "a", "1"}), "(error) ERR value is not an integer or out of range");
  EXPECT_EQ(c.run({"LLEN", "l"}), "(integer) 4");
  EXPECT_EQ(c.run({"LPOP", "l"}), "\"z\"");
  EXPECT_EQ(c.run({"RPOP", "l", "2"}), "[\"c\", \"b\"]");
  EXPECT_EQ(c.run({"LPOP", "l", "-1"}), "(error) ERR value is out of range, must be positive");
  EXPECT_EQ(c.run({"RPOP", "l"}), "\"a\"");
  EXPECT_EQ(c.run({"EXISTS", "l"}), "(integer) 0");  // an emptied list is gone
  EXPECT_EQ(c.run({"LPOP", "l"}), "(nil)");
  EXPECT_EQ(c.run({"LPOP", "l", "2"}), "(nil)");
  EXPECT_EQ(c.run({"LLEN", "l"}), "(integer) 0");
  EXPECT_EQ(c.run({"LRANGE", "l", "0", "-1"}), "[]");
}

TEST_P(KvServerTest, ACommandOnAKeyOfTheOtherKindIsAWrongTypeError) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"SET", "s", "1"}), "OK");
  EXPECT_EQ(c.run({"RPUSH", "l", "x"}), "(integer) 1");
  const std::string wrong = "(error) WRONGTYPE Operation against a key holding the wrong kind of value";
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"GET", "l"}, {"INCR", "l"}, {"SET", "l", "v", "GET"}, {"LPUSH", "s", "x"}, {"RPUSH", "s", "x"},
           {"LPOP", "s"}, {"RPOP", "s"}, {"LRANGE", "s", "0", "1"}, {"LLEN", "s"}, {"BLPOP", "s", "0"}}) {
    EXPECT_EQ(c.run(cmd), wrong) << cmd[0];
  }
  EXPECT_EQ(c.run({"TYPE", "s"}), "string");
  EXPECT_EQ(c.run({"TYPE", "l"}), "list");
  EXPECT_EQ(c.run({"SET", "l", "v"}), "OK");  // SET replaces whatever was there
  EXPECT_EQ(c.run({"GET", "l"}), "\"v\"");
}

TEST_P(KvServerTest, UnknownCommandsAndWrongArgumentCountsAreWordedAsRedisWordsThem) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"foo", "a", "b"}), "(error) ERR unknown command 'foo', with args beginning with: 'a' 'b' ");
  EXPECT_EQ(c.run({"FOO"}), "(error) ERR unknown command 'FOO', with args beginning with: ");
  EXPECT_EQ(c.run({"foo", std::string(200, 'x')}),
            "(error) ERR unknown command 'foo', with args beginning with: '" + std::string(128, 'x') + "' ");
  EXPECT_EQ(c.run({"GET"}), "(error) ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(c.run({"Get", "a", "b"}), "(error) ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(c.run({"LPOP", "l", "1", "2"}), "(error) ERR wrong number of arguments for 'lpop' command");
}

TEST_P(KvServerTest, SelectAcceptsDatabaseZeroOnly) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"SELECT", "0"}), "OK");
  EXPECT_EQ(c.run({"SELECT", "1"}), "(error) ERR DB index is out of range");
  EXPECT_EQ(c.run({"SELECT", "x"}), "(error) ERR value is not an integer or out of range");
}

TEST_P(KvServerTest, ConfigGetAnswersWhatRedisBenchmarkAsks) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"CONFIG", "GET", "save"}), "[\"save\", \"\"]");
  EXPECT_EQ(c.run({"CONFIG", "GET", "appendonly"}), "[\"appendonly\", \"no\"]");
  EXPECT_EQ(c.run({"CONFIG", "GET", "no-such-parameter"}), "[]");
  EXPECT_EQ(c.run({"CONFIG", "GET"}), "(error) ERR wrong number of arguments for 'config|get' command");
  EXPECT_EQ(c.run({"CONFIG", "foo"}), "(error) ERR unknown subcommand 'foo'. Try CONFIG HELP.");
  EXPECT_EQ(c.run({"CONFIG"}), "(error) ERR wrong number of arguments for 'config' command");
}

TEST_P(KvServerTest, CommandRepliesWithAnEmptyList) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"COMMAND", "DOCS"}), "[]");
  EXPECT_EQ(c.run({"COMMAND"}), "[]");
}

TEST_P(KvServerTest, InfoReportsTheServerItsClientsAndItsKeys) {
  start();
  redis_client c = client();
  redis_client other = client();
  EXPECT_EQ(other.run({"PING"}), "PONG");
  EXPECT_EQ(c.run({"SET", "a", "1"}), "OK");
  EXPECT_EQ(c.run({"SET", "b", "1", "EX", "100"}), "OK");
  const std::string info = c.run({"INFO"});
  EXPECT_NE(info.find("# Server\r\nredis_version:"), std::string::npos) << info;
  EXPECT_NE(info.find("connected_clients:2\r\n"), std::string::npos) << info;
  EXPECT_NE(info.find("db0:keys=2,expires=1,"), std::string::npos) << info;
  const std::string keyspace = c.run({"INFO", "keyspace"});
  EXPECT_EQ(keyspace.find("# Server"), std::string::npos) << keyspace;
  EXPECT_NE(keyspace.find("db0:keys=2"), std::string::npos) << keyspace;
}

TEST_P(KvServerTest, PipelinedCommandsAreAnsweredInOrder) {
  start();
  redis_client c = client();
  constexpr int n = 2000;
  for (int i = 0; i < n; ++i) {
    c.append({"SET", "k" + std::to_string(i), std::to_string(i)});
    c.append({"GET", "k" + std::to_string(i)});
    c.append({"INCR", "counter"});
  }
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(c.reply(), "OK");
    ASSERT_EQ(c.reply(), "\"" + std::to_string(i) + "\"");
    ASSERT_EQ(c.reply(), "(integer) " + std::to_string(i + 1));
  }
}

// ---- BLPOP and BRPOP ----

TEST_P(KvServerTest, BlpopReturnsAtOnceWhenAListHasElements) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"RPUSH", "b", "1", "2"}), "(integer) 2");
  EXPECT_EQ(c.run({"BLPOP", "a", "b", "0"}), "[\"b\", \"1\"]");
  EXPECT_EQ(c.run({"BRPOP", "a", "b", "0"}), "[\"b\", \"2\"]");
  EXPECT_EQ(c.run({"EXISTS", "b"}), "(integer) 0");
}

TEST_P(KvServerTest, BlpopWaitsUntilAnotherClientPushes) {
  start();
  std::string got;
  std::thread waiter([&] {
    redis_client c = client();
    got = c.run({"BLPOP", "q", "0"});
  });
  ASSERT_TRUE(eventually([&] { return stats().blocked == 1; }));
  redis_client pusher = client();
  // The length after the push, before the waiter took its element.
  EXPECT_EQ(pusher.run({"LPUSH", "q", "job"}), "(integer) 1");
  waiter.join();
  EXPECT_EQ(got, "[\"q\", \"job\"]");
  EXPECT_EQ(pusher.run({"LLEN", "q"}), "(integer) 0");
}

TEST_P(KvServerTest, BlpopOnSeveralKeysIsWokenByAPushToAnyOfThem) {
  start();
  std::string got;
  std::thread waiter([&] {
    redis_client c = client();
    got = c.run({"BRPOP", "a", "b", "c", "0"});
  });
  ASSERT_TRUE(eventually([&] { return stats().blocked == 1; }));
  redis_client pusher = client();
  EXPECT_EQ(pusher.run({"RPUSH", "c", "1", "2"}), "(integer) 2");
  waiter.join();
  EXPECT_EQ(got, "[\"c\", \"2\"]");
  EXPECT_EQ(pusher.run({"LRANGE", "c", "0", "-1"}), "[\"1\"]");
}

TEST_P(KvServerTest, BlockedClientsAreServedInTheOrderTheyCame) {
  start();
  std::string first, second;
  std::thread a([&] { first = client().run({"BLPOP", "q", "0"}); });
  ASSERT_TRUE(eventually([&] { return stats().blocked == 1; }));
  std::thread b([&] { second = client().run({"BLPOP", "q", "0"}); });
  ASSERT_TRUE(eventually([&] { return stats().blocked == 2; }));
  redis_client pusher = client();
  EXPECT_EQ(pusher.run({"RPUSH", "q", "1", "2", "3"}), "(integer) 3");
  a.join();
  b.join();
  EXPECT_EQ(first, "[\"q\", \"1\"]");
  EXPECT_EQ(second, "[\"q\", \"2\"]");
  EXPECT_EQ(pusher.run({"LRANGE", "q", "0", "-1"}), "[\"3\"]");
}

TEST_P(KvServerTest, BlpopTimesOutWithANilReply) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"BLPOP", "q", "0.05"}), "(nil)");
  EXPECT_EQ(c.run({"BRPOP", "q", "1", "0.01"}), "(nil)");
  EXPECT_EQ(stats().blocked, 0u);
  EXPECT_EQ(c.run({"RPUSH", "q", "x"}), "(integer) 1");  // nobody takes it now
  EXPECT_EQ(c.run({"LLEN", "q"}), "(integer) 1");
}

TEST_P(KvServerTest, BlpopRefusesABadTimeout) {
  start();
  redis_client c = client();
  EXPECT_EQ(c.run({"BLPOP", "q", "-1"}), "(error) ERR timeout is negative");
  EXPECT_EQ(c.run({"BLPOP", "q", "soon"}), "(error) ERR timeout is not a float or out of range");
  EXPECT_EQ(c.run({"BLPOP", "q"}), "(error) ERR wrong number of arguments for 'blpop' command");
}

TEST_P(KvServerTest, RepliesPipelinedBeforeABlpopArriveBeforeItBlocks) {
  start();
  redis_client c = client();
  c.append({"SET", "k", "v"});
  c.append({"BLPOP", "q", "0"});
  EXPECT_EQ(c.reply(), "OK");  // while the BLPOP still waits
  redis_client pusher = client();
  ASSERT_TRUE(eventually([&] { return stats().blocked == 1; }));
  EXPECT_EQ(pusher.run({"RPUSH", "q", "x"}), "(integer) 1");
  EXPECT_EQ(c.reply(), "[\"q\", \"x\"]");
}

TEST_P(KvServerTest, AClientThatLeavesWhileBlockedIsForgotten) {
  start();
  {
    raw_client gone(port_);
    ASSERT_TRUE(gone.send("BLPOP q 0\r\n"));
    ASSERT_TRUE(eventually([&] { return stats().blocked == 1; }));
  }  // closed
  ASSERT_TRUE(eventually([&] { return stats().blocked == 0 && stats().clients == 0; }));
  redis_client c = client();
  EXPECT_EQ(c.run({"RPUSH", "q", "x"}), "(integer) 1");
  EXPECT_EQ(c.run({"LLEN", "q"}), "(integer) 1");  // not handed to the client that left
}

SPINDLE_KV_INSTANTIATE(KvServerTest);

}  // namespace
}  // namespace kv::test
