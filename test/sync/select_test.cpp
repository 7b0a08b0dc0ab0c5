#include "sync/select.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "sync/explosive.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::channel;
using spindle::fiber;
using spindle::recv_case;
using spindle::send_case;

class SelectTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(SelectTest, 1u, 2u, 4u);

TEST_P(SelectTest, ReceivesFromWhicheverChannelHasAValue) {
  spindle::run(opts(), [] {
    channel<int> a;
    channel<std::string> b;
    fiber sender([&b] { b.send("hello"); });
    recv_case ra(a);
    recv_case rb(b);
    EXPECT_EQ(spindle::select(ra, rb), 1);
    EXPECT_EQ(*rb.value, "hello");
    sender.join();
  });
}

TEST_P(SelectTest, SendsToAWaitingReceiver) {
  spindle::run(opts(), [] {
    channel<int> a;
    int got = 0;
    fiber receiver([&] { got = *a.recv(); });
    send_case sa(a, 42);
    channel<int> never;
    recv_case rn(never);
    EXPECT_EQ(spindle::select(rn, sa), 1);
    receiver.join();
    EXPECT_EQ(got, 42);
  });
}

TEST_P(SelectTest, ReadyCasesArePickedUniformlyAtRandom) {
  spindle::run(opts(), [] {
    constexpr int rounds = 4000;
    std::array<channel<int>, 4> chans{channel<int>(rounds), channel<int>(rounds),
                                      channel<int>(rounds), channel<int>(rounds)};
    for (auto& c : chans) {
      for (int i = 0; i < rounds; ++i) (void)c.try_send(i);
    }
    std::array<int, 4> picks{};
    for (int i = 0; i < rounds; ++i) {
      recv_case r0(chans[0]), r1(chans[1]), r2(chans[2]), r3(chans[3]);
      ++picks[spindle::select(r0, r1, r2, r3)];
    }
    // Each expected 1000 times; 5 standard deviations (~27 each) apart is
    // a failure of the shuffle, not bad luck (p < 1e-6).
    for (int p : picks) {
      EXPECT_GT(p, 1000 - 140);
      EXPECT_LT(p, 1000 + 140);
    }
  });
}

TEST_P(SelectTest, AClosedChannelMakesItsReceiveReady) {
  spindle::run(opts(), [] {
    channel<int> a;
    channel<int> b;
    b.close();
    recv_case ra(a);
    recv_case rb(b);
    EXPECT_EQ(spindle::select(ra, rb), 1);
    EXPECT_FALSE(rb.value.has_value());
    EXPECT_EQ(rb.status, spindle::channel_status::closed);
  });
}

TEST_P(SelectTest, DefaultAndTimeoutReturnMinusOne) {
  spindle::run(opts(), [] {
    channel<int> a;
    recv_case ra(a);
    EXPECT_EQ(spindle::try_select(ra), -1);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(spindle::select_for(3ms, ra), -1);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 3ms);
    // Nothing was taken from the channel by the timed-out select.
    EXPECT_EQ(a.try_send(1), spindle::channel_status::full);
  });
}

TEST_P(SelectTest, SelectsCompetingForValuesGetEachValueOnce) {
  const int values = static_cast<int>(spindle::test::scaled(20'000));
  std::vector<std::atomic<int>> seen(values);
  spindle::run(opts(), [&] {
    channel<int> a;
    channel<int> b(8);
    channel<int> done;
    std::vector<fiber> fs;
    fs.emplace_back([&] {
      for (int i = 0; i < values; i += 2) a.send(i);
    });
    fs.emplace_back([&] {
      for (int i = 1; i < values; i += 2) b.send(i);
    });
    std::atomic<int> received{0};
    for (int r = 0; r < 4; ++r) {
      fs.emplace_back([&] {
        for (;;) {
          recv_case ra(a), rb(b), rd(done);
          const int which = spindle::select(ra, rb, rd);
          if (which == 2) return;
          const int v = which == 0 ? *ra.value : *rb.value;
          seen[v].fetch_add(1);
          if (received.fetch_add(1) + 1 == values) done.close();
        }
      });
    }
    for (auto& f : fs) f.join();
  });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

using spindle::test::explosive;

// A waiting select() is registered on each of its channels: destroying one
// of them under it aborts, naming the channel, instead of leaving the
// select() parked on freed memory.
TEST(SelectDeathTest, DestroyingAChannelAWaitingSelectIsRegisteredOnAbortsNamingIt) {
  EXPECT_DEATH(
      spindle::run(spindle::options{.workers = 2},
                   [] {
                     auto* a = new channel<int>;
                     channel<int> b;
                     fiber selector(spindle::fiber_options{.worker = 0, .pinned = true}, [a, &b] {
                       recv_case ra(*a);
                       send_case sb(b, 1);
                       (void)spindle::select(ra, sb);
                     });
                     spindle::test::await_worker_free(0);  // the select() has parked
                     delete a;
                     b.close();
                     selector.join();
                   }),
      "spindle: channel 0x[0-9a-f]+ destroyed while fibers wait on it \\(1 receivers, 0 "
      "senders\\)");
}

TEST(SelectHandOffTest, AWaitingSelectWhoseHandOffThrowsInTheSenderWaitsOnForTheNextValue) {
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    channel<explosive> a;
    channel<int> b;
    int which = -1;
    int got = -1;
    fiber selector([&] {
      recv_case ra(a);
      recv_case rb(b);
      which = spindle::select(ra, rb);
      if (which == 0) got = ra.value->v;
    });
    spindle::this_fiber::yield();  // one worker: the select now waits
    explosive::moves_until_throw = 1;
    EXPECT_THROW(a.send(explosive(1)), std::runtime_error);
    a.send(explosive(2));
    selector.join();
    EXPECT_EQ(which, 0);
    EXPECT_EQ(got, 2);
  });
}

TEST(SelectHandOffTest, WhenTakingFromAWaitingSenderThrowsTheSelectGetsItAndTheSenderWaitsOn) {
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    channel<explosive> a;
    bool sent = false;
    fiber sender([&] {
      a.send(explosive(5));
      sent = true;
    });
    spindle::this_fiber::yield();  // one worker: the sender now waits in send()
    explosive::moves_until_throw = 1;
    {
      recv_case ra(a);
      EXPECT_THROW((void)spindle::select(ra), std::runtime_error);
    }
    EXPECT_FALSE(sent);
    // The select let go of the channel's lock and of the sender: both can
    // go on.
    recv_case ra(a);
    EXPECT_EQ(spindle::select(ra), 0);
    ASSERT_TRUE(ra.value.has_value());
    EXPECT_EQ(ra.value->v, 5);
    sender.join();
    EXPECT_TRUE(sent);
  });
}

}  // namespace
