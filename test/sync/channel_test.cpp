#include "sync/channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::channel;
using spindle::channel_status;
using spindle::fiber;

// (workers, capacity)
class ChannelTest : public testing::TestWithParam<std::tuple<unsigned, std::size_t>> {
 protected:
  spindle::options opts() const { return spindle::options{.workers = std::get<0>(GetParam())}; }
  std::size_t capacity() const { return std::get<1>(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Shapes, ChannelTest,
                         testing::Combine(testing::Values(1u, 2u, 4u), testing::Values(0u, 1u, 16u)),
                         [](const auto& info) {
                           return std::to_string(std::get<0>(info.param)) + "Workers" +
                                  std::to_string(std::get<1>(info.param)) + "Capacity";
                         });

TEST_P(ChannelTest, ValuesArriveInOrderFromOneSender) {
  spindle::run(opts(), [this] {
    channel<int> ch(capacity());
    fiber sender([&ch] {
      for (int i = 0; i < 1000; ++i) ch.send(i);
      ch.close();
    });
    int expected = 0;
    while (auto v = ch.recv()) EXPECT_EQ(*v, expected++);
    EXPECT_EQ(expected, 1000);
    EXPECT_FALSE(ch.recv().has_value());  // closed and drained, for good
    sender.join();
  });
}

TEST_P(ChannelTest, ManySendersAndReceiversLoseAndDuplicateNothing) {
  const int per_sender = static_cast<int>(spindle::test::scaled(20'000));
  constexpr int senders = 4;
  constexpr int receivers = 4;
  std::vector<std::atomic<int>> seen(senders * per_sender);
  spindle::run(opts(), [&] {
    channel<int> ch(capacity());
    std::vector<fiber> fs;
    std::atomic<int> senders_left{senders};
    for (int s = 0; s < senders; ++s) {
      fs.emplace_back([&, s] {
        int last = -1;
        (void)last;
        for (int i = 0; i < per_sender; ++i) ch.send(s * per_sender + i);
        if (senders_left.fetch_sub(1) == 1) ch.close();
      });
    }
    for (int r = 0; r < receivers; ++r) {
      fs.emplace_back([&] {
        std::vector<int> last(senders, -1);
        while (auto v = ch.recv()) {
          seen[*v].fetch_add(1);
          // Per sender, values arrive in the order sent.
          const int s = *v / per_sender;
          EXPECT_GT(*v, last[s]);
          last[s] = *v;
        }
      });
    }
    for (auto& f : fs) f.join();
  });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

TEST_P(ChannelTest, CloseWakesEveryWaitingReceiver) {
  spindle::run(opts(), [this] {
    channel<int> ch(capacity());
    std::atomic<int> got_nullopt{0};
    std::vector<fiber> fs;
    for (int i = 0; i < 8; ++i) {
      fs.emplace_back([&] {
        if (!ch.recv().has_value()) got_nullopt.fetch_add(1);
      });
    }
    spindle::this_fiber::sleep_for(2ms);
    ch.close();
    for (auto& f : fs) f.join();
    EXPECT_EQ(got_nullopt.load(), 8);
  });
}

TEST_P(ChannelTest, SendingOnAClosedChannelThrowsAndClosingTwiceToo) {
  spindle::run(opts(), [this] {
    channel<int> ch(capacity());
    ch.close();
    EXPECT_THROW(ch.send(1), spindle::channel_closed);
    EXPECT_THROW(ch.close(), spindle::channel_closed);
    int v = 2;
    EXPECT_EQ(ch.try_send(v), channel_status::closed);
  });
}

TEST_P(ChannelTest, ASenderWaitingWhenTheChannelClosesThrows) {
  spindle::run(opts(), [this] {
    channel<int> ch(capacity());
    std::atomic<bool> threw{false};
    fiber sender([&] {
      try {
        for (;;) ch.send(1);  // fills the buffer, then waits
      } catch (const spindle::channel_closed&) {
        threw = true;
      }
    });
    spindle::this_fiber::sleep_for(2ms);
    ch.close();
    sender.join();
    EXPECT_TRUE(threw.load());
  });
}

TEST_P(ChannelTest, TryAndTimedOperationsReportInsteadOfWaiting) {
  spindle::run(opts(), [this] {
    channel<int> ch(capacity());
    std::optional<int> out;
    EXPECT_EQ(ch.try_recv(out), channel_status::empty);
    EXPECT_EQ(ch.recv_for(out, 2ms), channel_status::timeout);
    for (std::size_t i = 0; i < capacity(); ++i) EXPECT_EQ(ch.try_send(int(i)), channel_status::success);
    int v = 99;
    EXPECT_EQ(ch.try_send(v), channel_status::full);
    EXPECT_EQ(ch.send_for(v, 2ms), channel_status::timeout);
    EXPECT_EQ(v, 99);  // not taken
    if (capacity() > 0) {
      EXPECT_EQ(ch.try_recv(out), channel_status::success);
      EXPECT_EQ(*out, 0);
    }
  });
}

TEST(ChannelMoveOnlyTest, MoveOnlyValuesPassThrough) {
  spindle::run([] {
    channel<std::unique_ptr<int>> ch;
    fiber f([&ch] { ch.send(std::make_unique<int>(5)); });
    auto v = ch.recv();
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(**v, 5);
    f.join();
  });
}

TEST(ChannelThreadTest, PlainThreadsAndFibersShareAChannel) {
  channel<int> ch(4);
  long sum = 0;
  std::thread producer;
  spindle::run([&] {
    producer = std::thread([&ch] {
      for (int i = 1; i <= 1000; ++i) ch.send(i);
      ch.close();
    });
    while (auto v = ch.recv()) sum += *v;
  });
  producer.join();
  EXPECT_EQ(sum, 1000 * 1001 / 2);
}

}  // namespace
