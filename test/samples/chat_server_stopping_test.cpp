// The chat server (samples/chat/server.h), stopping: stop() and serve().
// The fixture and the test client: chat_server_test.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <system_error>
#include <vector>

#include "io/conn.h"
#include "samples/chat_server_test.h"

namespace chat::test {
namespace {

SPINDLE_INSTANTIATE_WORKERS(ChatServerTest, 1u, 2u, 4u);

TEST_P(ChatServerTest, StopTellsEveryClientTheServerIsShuttingDownThenServeReturns) {
  spindle::run(opts(), [&] {
    chat::server s(test_options());
    const spindle::address at = s.local_address();
    std::atomic<bool> served{false};
    spindle::fiber serving([&] {
      s.serve();
      served = true;
    });
    std::vector<test_client> clients;
    clients.push_back(registered(s, "alice"));
    clients.back().join("#s");
    clients.push_back(registered(s, "bob"));
    clients.back().join("#s");
    clients.push_back(test_client(s.local_address(), "unregistered"));
    clients.back().sync();  // the server has it
    clients.front().sync();
    s.stop();
    s.stop();  // again: harmless
    for (test_client& c : clients) {
      std::vector<std::string> lines = c.read_to_end();
      ASSERT_FALSE(lines.empty()) << c.name();
      EXPECT_EQ(lines.back(), "ERROR :Server shutting down") << c.name();
      lines.pop_back();
      // Before it, at most news of another client's leaving.
      for (const std::string& l : lines) EXPECT_EQ(command_of(l), "QUIT") << c.name() << ": " << l;
      EXPECT_TRUE(c.ended()) << c.name();
    }
    serving.join();
    EXPECT_TRUE(served.load());
    EXPECT_EQ(s.stats().clients, 0u);
    // The listener is closed: nobody else gets in.
    std::error_code ec;
    spindle::dial(at, patience, ec);
    EXPECT_TRUE(ec) << "connected to a stopped server";
  });
}

TEST_P(ChatServerTest, StopBeforeServeMakesServeReturnAtOnce) {
  spindle::run(opts(), [&] {
    chat::server s(test_options());
    s.stop();
    s.serve();
    EXPECT_EQ(s.stats().clients, 0u);
  });
}

}  // namespace
}  // namespace chat::test
