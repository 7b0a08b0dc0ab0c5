// The key-value server's limits and its connection handling (samples/kv):
// protocol errors (the error as Redis words it, then the connection is
// closed), max_clients, a client that never reads, QUIT, inline commands,
// and stop() with clients connected.
#include <string>
#include <thread>

#include "samples/kv_test.h"

namespace kv::test {
namespace {

TEST_P(KvServerTest, ABulkLengthBeyondTheLimitIsAProtocolErrorThatClosesTheConnection) {
  kv::options o = test_options();
  o.limits.max_bulk = 16;
  start(o);
  raw_client ok(port_);
  ASSERT_TRUE(ok.send("*2\r\n$4\r\nECHO\r\n$16\r\n0123456789abcdef\r\nQUIT\r\n"));
  EXPECT_EQ(ok.read_to_end(), "$16\r\n0123456789abcdef\r\n+OK\r\n<closed>");
  raw_client big(port_);
  ASSERT_TRUE(big.send("*2\r\n$4\r\nECHO\r\n$17\r\n"));
  EXPECT_EQ(big.read_to_end(), "-ERR Protocol error: invalid bulk length\r\n<closed>");
  raw_client negative(port_);
  ASSERT_TRUE(negative.send("*1\r\n$-5\r\n"));
  EXPECT_EQ(negative.read_to_end(), "-ERR Protocol error: invalid bulk length\r\n<closed>");
  EXPECT_EQ(stats().protocol_errors, 2u);
}

TEST_P(KvServerTest, TooManyArgumentsIsAProtocolErrorThatClosesTheConnection) {
  start();
  raw_client c(port_);
  ASSERT_TRUE(c.send("*1048577\r\n"));
  EXPECT_EQ(c.read_to_end(), "-ERR Protocol error: invalid multibulk length\r\n<closed>");
  raw_client bad(port_);
  ASSERT_TRUE(bad.send("*x\r\n"));
  EXPECT_EQ(bad.read_to_end(), "-ERR Protocol error: invalid multibulk length\r\n<closed>");
  raw_client no_dollar(port_);
  ASSERT_TRUE(no_dollar.send("*1\r\nx3\r\n"));
  EXPECT_EQ(no_dollar.read_to_end(), "-ERR Protocol error: expected '$', got 'x'\r\n<closed>");
}

TEST_P(KvServerTest, AnInlineCommandOverSixtyFourKibIsAProtocolError) {
  start();
  raw_client c(port_);
  c.send(std::string(64 * 1024 + 1, 'a'));  // no end of line
  EXPECT_EQ(c.read_to_end(), "-ERR Protocol error: too big inline request\r\n<closed>");
}

TEST_P(KvServerTest, InlineCommandsAreSplitAsRedisSplitsThem) {
  start();
  raw_client c(port_);
  ASSERT_TRUE(c.send("SET k \"a b\\x41\"\r\n\r\nget  k\nECHO 'it\\'s'\r\nQUIT\r\n"));
  EXPECT_EQ(c.read_to_end(), "+OK\r\n$4\r\na bA\r\n$4\r\nit's\r\n+OK\r\n<closed>");
  raw_client unbalanced(port_);
  ASSERT_TRUE(unbalanced.send("ECHO \"a\r\n"));
  EXPECT_EQ(unbalanced.read_to_end(), "-ERR Protocol error: unbalanced quotes in request\r\n<closed>");
}

TEST_P(KvServerTest, RepliesToTheCommandsBeforeAProtocolErrorComeFirst) {
  start();
  raw_client c(port_);
  ASSERT_TRUE(c.send("PING\r\n*1\r\n$4\r\nPING\r\n*x\r\nPING\r\n"));
  EXPECT_EQ(c.read_to_end(), "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n<closed>");
}

TEST_P(KvServerTest, QuitRepliesOkAndClosesTheConnection) {
  start();
  raw_client c(port_);
  ASSERT_TRUE(c.send("PING\r\nQUIT\r\nPING\r\n"));
  EXPECT_EQ(c.read_to_end(), "+PONG\r\n+OK\r\n<closed>");
  redis_client h = client();
  EXPECT_EQ(h.run({"QUIT"}), "OK");
}

TEST_P(KvServerTest, ABigValueSentInManyPiecesIsStoredWhole) {
  start();
  redis_client c = client();
  std::string big(4 * 1024 * 1024, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + i % 26);
  EXPECT_EQ(c.run({"SET", "big", big}), "OK");
  EXPECT_EQ(c.run({"GET", "big"}), "\"" + big + "\"");
}

TEST_P(KvServerTest, AClientBeyondMaxclientsIsToldAndDisconnected) {
  kv::options o = test_options();
  o.max_clients = 2;
  start(o);
  redis_client a = client(), b = client();
  EXPECT_EQ(a.run({"PING"}), "PONG");
  EXPECT_EQ(b.run({"PING"}), "PONG");
  raw_client third(port_);
  EXPECT_EQ(third.read_to_end(), "-ERR max number of clients reached\r\n<closed>");
  EXPECT_EQ(stats().refused, 1u);
  EXPECT_EQ(a.run({"PING"}), "PONG");  // the others go on
}

TEST_P(KvServerTest, AClientThatNeverReadsIsDroppedWhileOthersAreServed) {
  kv::options o = test_options();
  o.write_timeout = std::chrono::milliseconds(200);
  start(o);
  redis_client c = client();
  EXPECT_EQ(c.run({"SET", "big", std::string(1024 * 1024, 'x')}), "OK");
  raw_client hog(port_);
  std::string gets;
  for (int i = 0; i < 64; ++i) gets += "GET big\r\n";  // 64 MiB of replies, never read
  ASSERT_TRUE(hog.send(gets));
  EXPECT_EQ(c.run({"PING"}), "PONG");
  ASSERT_TRUE(eventually([&] { return stats().write_timeouts == 1; }));
  EXPECT_EQ(c.run({"PING"}), "PONG");
  const std::string got = hog.read_to_end();  // what the kernel had taken, then the end
  EXPECT_TRUE(got.ends_with("<closed>")) << got.substr(got.size() - 20);
  EXPECT_LT(got.size(), 64u * 1024 * 1024);
}

TEST_P(KvServerTest, StopClosesEveryConnectionABlockedOneIncluded) {
  start();
  raw_client blocked(port_), idle(port_);
  ASSERT_TRUE(blocked.send("BLPOP q 0\r\n"));
  ASSERT_TRUE(idle.send("PING\r\n"));
  EXPECT_EQ(idle.read_exactly(7), "+PONG\r\n");
  ASSERT_TRUE(eventually([&] { return stats().blocked == 1; }));
  stop();
  EXPECT_EQ(blocked.read_to_end(), "<closed>");
  EXPECT_EQ(idle.read_to_end(), "<closed>");
}

SPINDLE_KV_INSTANTIATE(KvServerTest);

}  // namespace
}  // namespace kv::test
