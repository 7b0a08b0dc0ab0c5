#include "sync/channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <limits>
#include <stdexcept>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "sync/explosive.h"
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
    spindle::test::await_parked(ch, 8);  // all eight wait in recv()
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
    spindle::test::await_parked(ch);  // the sender waits in send()
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

// A value that counts the live copies of itself, and whose copy throws on
// demand (its move is not noexcept, so a growing buffer copies it).
struct counted {
  static inline int live = 0;
  static inline bool throw_on_copy = false;
  int v;
  explicit counted(int x) : v(x) { ++live; }
  counted(const counted& o) : v(o.v) {
    if (throw_on_copy) throw std::runtime_error("copy");
    ++live;
  }
  counted(counted&& o) noexcept(false) : v(o.v) { ++live; }
  counted& operator=(const counted&) = default;
  ~counted() { --live; }
};

TEST(ChannelBufferTest, ABufferGrowsToItsCapacityAndWrapsAroundWithoutReorderingValues) {
  // No fiber needed: try_send and try_recv never wait. A capacity that is
  // not a power of two, and a pattern that wraps the ring at every size
  // it grows through.
  channel<int> ch(100);
  std::deque<int> model;
  int next = 0;
  for (int round = 0; round < 200; ++round) {
    const int sends = 1 + round % 37;
    const int recvs = 1 + (round * 7) % 31;
    for (int i = 0; i < sends; ++i) {
      int v = next;
      const channel_status st = ch.try_send(v);
      if (model.size() < 100) {
        ASSERT_EQ(st, channel_status::success);
        model.push_back(next++);
      } else {
        ASSERT_EQ(st, channel_status::full);
      }
    }
    for (int i = 0; i < recvs; ++i) {
      std::optional<int> out;
      const channel_status st = ch.try_recv(out);
      if (model.empty()) {
        ASSERT_EQ(st, channel_status::empty);
      } else {
        ASSERT_EQ(st, channel_status::success);
        ASSERT_EQ(*out, model.front());
        model.pop_front();
      }
    }
    ASSERT_EQ(ch.size(), model.size());
  }
}

TEST(ChannelBufferTest, ValuesLeftInAChannelAreDestroyedWithIt) {
  counted::live = 0;
  {
    channel<counted> ch(50);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(ch.try_send(counted(i)), channel_status::success);
    for (int i = 0; i < 5; ++i) {
      std::optional<counted> out;
      ASSERT_EQ(ch.try_recv(out), channel_status::success);
      EXPECT_EQ(out->v, i);
    }
    EXPECT_EQ(counted::live, 15);
  }
  EXPECT_EQ(counted::live, 0);
}

TEST(ChannelBufferTest, AThrowWhileTheBufferGrowsLeavesTheChannelAsItWasAndUsable) {
  counted::live = 0;
  {
    channel<counted> ch(64);
    // The ring starts with 8 slots: the 9th value makes it grow, which
    // copies the 8 (their move may throw).
    for (int i = 0; i < 8; ++i) ASSERT_EQ(ch.try_send(counted(i)), channel_status::success);
    counted ninth(8);
    counted::throw_on_copy = true;
    EXPECT_THROW((void)ch.try_send(ninth), std::runtime_error);
    counted::throw_on_copy = false;
    EXPECT_EQ(ninth.v, 8);  // not taken
    EXPECT_EQ(ch.size(), 8u);
    // The lock was released, and nothing was lost or reordered.
    ASSERT_EQ(ch.try_send(ninth), channel_status::success);
    for (int i = 0; i < 9; ++i) {
      std::optional<counted> out;
      ASSERT_EQ(ch.try_recv(out), channel_status::success);
      EXPECT_EQ(out->v, i);
    }
  }
  EXPECT_EQ(counted::live, 0);
}

TEST(ChannelBufferTest, ACapacityOverFourBillionValuesIsALengthError) {
  if constexpr (sizeof(std::size_t) > 4) {
    EXPECT_THROW(channel<char>(std::size_t{std::numeric_limits<std::uint32_t>::max()} + 1),
                 std::length_error);
  }
  channel<char> largest(std::numeric_limits<std::uint32_t>::max());  // allocates as it fills
  EXPECT_EQ(largest.capacity(), std::size_t{std::numeric_limits<std::uint32_t>::max()});
}

TEST(ChannelThreadTest, ManyPlainThreadsAndFibersOnOneChannelLoseAndDuplicateNothing) {
  // More threads than cores, all hammering one channel's lock: waiters
  // that sleep on it must all be woken, and nothing may be lost.
  constexpr int threads = 4;
  const int per_thread = static_cast<int>(spindle::test::scaled(20'000));
  std::vector<std::atomic<int>> seen(threads * per_thread);
  channel<int> ch(8);
  std::atomic<int> producing{threads};
  std::vector<std::thread> producers;
  std::atomic<int> received{0};
  spindle::run(spindle::options{.workers = 4}, [&] {
    for (int t = 0; t < threads; ++t) {
      producers.emplace_back([&ch, &producing, t, per_thread] {
        for (int i = 0; i < per_thread; ++i) ch.send(t * per_thread + i);
        if (producing.fetch_sub(1) == 1) ch.close();
      });
    }
    std::vector<fiber> consumers;
    for (int c = 0; c < 4; ++c) {
      consumers.emplace_back([&] {
        while (auto v = ch.recv()) {
          seen[static_cast<std::size_t>(*v)].fetch_add(1, std::memory_order_relaxed);
          received.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    for (auto& f : consumers) f.join();
  });
  for (auto& p : producers) p.join();
  EXPECT_EQ(received.load(), threads * per_thread);
  for (auto& s : seen) ASSERT_EQ(s.load(), 1);
}

// The hand-off: a waker lets go of the channel before it releases the
// fiber it woke, so the woken fiber may destroy the channel as soon as its
// call returns. Under ASan a waker that touched the channel (or the
// woken fiber's stack) after releasing it is a heap-use-after-free here.
TEST(ChannelHandOffTest, AFiberMayDestroyTheChannelAsSoonAsItsCallReturns) {
  const int rounds = static_cast<int>(spindle::test::scaled(2'000));
  spindle::run(spindle::options{.workers = 4}, [&] {
    for (int round = 0; round < rounds; ++round) {
      // A receiver woken by a sender, then a sender woken by a receiver,
      // then a receiver woken by close(): each side destroys the channel
      // right after its call returns, the other side still in its call.
      auto ch = std::make_unique<channel<int>>();
      fiber sender([c = ch.get(), round] { c->send(round); });
      EXPECT_EQ(ch->recv(), round);
      ch.reset();
      sender.join();

      auto ch2 = std::make_unique<channel<int>>();
      int got = -1;
      fiber receiver([c = ch2.get(), &got] { got = *c->recv(); });
      ch2->send(round);
      ch2.reset();
      receiver.join();
      EXPECT_EQ(got, round);

      auto ch3 = std::make_unique<channel<int>>();
      fiber closer([c = ch3.get()] { c->close(); });
      EXPECT_EQ(ch3->recv(), std::nullopt);
      ch3.reset();
      closer.join();
    }
  });
}

// Destroying a channel that fibers still wait on is a caller bug, as
// destroying a std::condition_variable that threads wait on is. It used to
// leave the receiver parked for ever, and spindle::run() with it; now the
// destructor aborts and names the channel.
TEST(ChannelDeathTest, DestroyingAChannelWithAParkedReceiverAbortsNamingIt) {
  EXPECT_DEATH(
      spindle::run(spindle::options{.workers = 2},
                   [] {
                     auto* ch = new channel<int>;
                     fiber receiver(spindle::fiber_options{.worker = 0, .pinned = true},
                                    [ch] { (void)ch->recv(); });
                     spindle::test::await_worker_free(0);  // the receiver has parked in recv()
                     delete ch;
                     receiver.join();
                   }),
      "spindle: channel 0x[0-9a-f]+ destroyed while fibers wait on it \\(1 receivers, 0 "
      "senders\\); close\\(\\) it and let them leave first");
}

TEST(ChannelDeathTest, DestroyingAChannelWithAParkedSenderAbortsNamingIt) {
  EXPECT_DEATH(
      spindle::run(spindle::options{.workers = 2},
                   [] {
                     auto* ch = new channel<int>(1);
                     ch->send(1);  // full
                     fiber sender(spindle::fiber_options{.worker = 0, .pinned = true},
                                  [ch] { ch->send(2); });
                     spindle::test::await_worker_free(0);  // the sender has parked in send()
                     delete ch;
                     sender.join();
                   }),
      "spindle: channel 0x[0-9a-f]+ destroyed while fibers wait on it \\(0 receivers, 1 "
      "senders\\)");
}

// Outside spindle::run() the destructor leaves its waiters parked, as a
// std::condition_variable would: a static channel that a detached thread
// still waits on when the process exits must not abort the exit.
TEST(ChannelDeathTest, AStaticChannelAThreadStillWaitsOnDoesNotAbortTheExit) {
  EXPECT_EXIT(
      {
        static channel<int> ch;  // unbuffered
        std::thread([] {
          for (;;) (void)ch.recv();
        }).detach();
        // A try_send() succeeds only into a parked receiver: the thread has
        // parked in recv(), and goes straight back to parking after each.
        for (int sent = 0; sent < 2;) {
          int v = sent;
          if (ch.try_send(v) == channel_status::success) {
            ++sent;
          } else {
            std::this_thread::yield();
          }
        }
        std::exit(0);
      },
      testing::ExitedWithCode(0), "");
}

// The defined way out: close() wakes the waiters, and once they have left
// the channel may go, values still buffered included.
TEST(ChannelDestructionTest, AClosedChannelMayBeDestroyedOnceItsWaitersHaveLeft) {
  spindle::run(spindle::options{.workers = 2}, [] {
    auto receivers = std::make_unique<channel<std::string>>();
    auto senders = std::make_unique<channel<std::string>>(1);
    senders->send("buffered");
    std::atomic<int> left{0};
    std::vector<fiber> fs;
    for (int i = 0; i < 3; ++i) {
      fs.emplace_back(spindle::fiber_options{.worker = 0, .pinned = true}, [&] {
        EXPECT_EQ(receivers->recv(), std::nullopt);
        left.fetch_add(1);
      });
      fs.emplace_back(spindle::fiber_options{.worker = 0, .pinned = true}, [&] {
        EXPECT_THROW(senders->send("never"), spindle::channel_closed);
        left.fetch_add(1);
      });
    }
    spindle::test::await_worker_free(0);  // all six have parked
    receivers->close();
    senders->close();
    for (auto& f : fs) f.join();
    EXPECT_EQ(left.load(), 6);
    receivers.reset();
    senders.reset();
  });
}

// Once close() has returned, the fibers it woke from recv() and send() no
// longer touch the channel: its caller may destroy it before they return.
// Under ASan a woken fiber that touched it afterwards is a
// heap-use-after-free here, under TSan a race with the delete.
TEST(ChannelDestructionTest, TheCallerOfCloseMayDestroyTheChannelBeforeTheFibersItWokeReturn) {
  const int rounds = static_cast<int>(spindle::test::scaled(500));
  spindle::run(spindle::options{.workers = 4}, [&] {
    for (int round = 0; round < rounds; ++round) {
      auto* rx = new channel<int>;     // receivers wait: nobody sends
      auto* tx = new channel<int>(1);  // a sender waits: full
      tx->send(0);
      std::vector<fiber> fs;
      for (int w = 0; w < 3; ++w) {
        fs.emplace_back(spindle::fiber_options{.worker = w, .pinned = true},
                        [rx] { EXPECT_EQ(rx->recv(), std::nullopt); });
      }
      fs.emplace_back(spindle::fiber_options{.worker = 3, .pinned = true},
                      [tx] { EXPECT_THROW(tx->send(1), spindle::channel_closed); });
      for (int w = 0; w < 4; ++w) spindle::test::await_worker_free(w);  // all parked
      rx->close();
      delete rx;
      tx->close();
      delete tx;
      for (auto& f : fs) f.join();
    }
  });
}

using spindle::test::explosive;

TEST(ChannelHandOffTest, WhenTheHandOffToAWaitingReceiverThrowsTheSenderGetsItAndTheReceiverWaitsOn) {
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    channel<explosive> ch;
    std::optional<explosive> got;
    fiber receiver([&] { got = ch.recv(); });
    spindle::this_fiber::yield();  // one worker: the receiver now waits in recv()
    explosive::moves_until_throw = 1;
    EXPECT_THROW(ch.send(explosive(1)), std::runtime_error);
    ch.send(explosive(2));
    receiver.join();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->v, 2);
  });
}

TEST(ChannelHandOffTest, WhenTakingFromAWaitingSenderThrowsTheReceiverGetsItAndTheSenderWaitsOn) {
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    channel<explosive> ch;
    bool sent = false;
    fiber sender([&] {
      ch.send(explosive(3));
      sent = true;
    });
    spindle::this_fiber::yield();  // the sender now waits in send()
    explosive::moves_until_throw = 1;
    EXPECT_THROW((void)ch.recv(), std::runtime_error);
    EXPECT_FALSE(sent);
    std::optional<explosive> v = ch.recv();
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->v, 3);
    sender.join();
    EXPECT_TRUE(sent);
  });
}

TEST(ChannelHandOffTest, WhenRefillingAFullBufferFromAWaitingSenderThrowsNothingIsLost) {
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    channel<explosive> ch(1);
    ch.send(explosive(1));  // full
    fiber sender([&] { ch.send(explosive(2)); });
    spindle::this_fiber::yield();  // the sender now waits for room
    // recv() moves 1 out of the buffer, then moves the sender's 2 in: that
    // second move throws. The receive went through; the sender tries again.
    explosive::moves_until_throw = 2;
    std::optional<explosive> first = ch.recv();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->v, 1);
    EXPECT_EQ(explosive::moves_until_throw, 0);
    std::optional<explosive> second = ch.recv();
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->v, 2);
    sender.join();
  });
}

}  // namespace
