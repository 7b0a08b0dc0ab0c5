// Deadlock detection (sched/detail/deadlock.cpp): run() reports "all fibers
// are asleep" when every fiber waits on Spindle's synchronization and
// nothing can wake one, and never otherwise.
#include <sys/timerfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "parked.h"
#include "sched/blocking.h"
#include "io/conn.h"
#include "sched/scheduler.h"
#include "sync/channel.h"
#include "sync/condition_variable.h"
#include "sync/latch.h"
#include "sync/mutex.h"
#include "sync/wait_group.h"
#include "test_util.h"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using detail::wait_reason;

class DeadlockTest : public test::workers_fixture {
 protected:
  options throwing() const {
    options o = opts();
    o.on_deadlock = options::deadlock_action::throw_error;
    return o;
  }
};

// Runs `main` and returns what deadlock_error said ("" if none was thrown).
template <class F>
std::string deadlock_message(const options& o, F main) {
  try {
    run(o, main);
  } catch (const deadlock_error& e) {
    return e.what();
  }
  return {};
}

TEST_P(DeadlockTest, TwoFibersLockingTwoMutexesInOppositeOrderAreReported) {
  const std::string what = deadlock_message(throwing(), [] {
    // Never unlocked: the fibers are abandoned, parked, when run() throws.
    static mutex a, b;
    static latch both_hold(2);
    fiber f1([] {
      a.lock();
      both_hold.arrive_and_wait();
      b.lock();
    });
    fiber f2([] {
      b.lock();
      both_hold.arrive_and_wait();
      a.lock();
    });
    f1.join();
    f2.join();
  });
  EXPECT_NE(what.find("spindle: all fibers are asleep: deadlock"), std::string::npos) << what;
  EXPECT_NE(what.find("mutex"), std::string::npos) << what;
}

TEST_P(DeadlockTest, ReceivingOnAChannelNobodyElseHoldsIsReported) {
  const std::string what = deadlock_message(throwing(), [] {
    channel<int> ch;
    (void)ch.recv();
  });
  EXPECT_NE(what.find("all fibers are asleep"), std::string::npos) << what;
  EXPECT_NE(what.find("channel recv"), std::string::npos) << what;
}

TEST_P(DeadlockTest, JoiningAFiberThatWaitsForItsJoinerIsReported) {
  const std::string what = deadlock_message(throwing(), [] {
    auto* go_on = new latch(1);  // counted down after the join: never
    fiber f([go_on] { go_on->wait(); });
    f.join();
    go_on->count_down();
  });
  EXPECT_NE(what.find("all fibers are asleep"), std::string::npos) << what;
  EXPECT_NE(what.find("join"), std::string::npos) << what;
}

TEST_P(DeadlockTest, AWaitGroupNeverDoneIsReported) {
  const std::string what = deadlock_message(throwing(), [] {
    wait_group wg;
    wg.add(1);
    wg.wait();
  });
  EXPECT_NE(what.find("all fibers are asleep"), std::string::npos) << what;
  EXPECT_NE(what.find("wait_group"), std::string::npos) << what;
}

TEST_P(DeadlockTest, AConditionVariableNobodyNotifiesIsReported) {
  const std::string what = deadlock_message(throwing(), [] {
    mutex m;
    condition_variable cv;
    std::unique_lock lock(m);
    cv.wait(lock);
  });
  EXPECT_NE(what.find("condition_variable"), std::string::npos) << what;
}

// ---- Near misses: asleep, but something outside the fibers wakes them ----

TEST_P(DeadlockTest, AFiberParkedOnATimerIsNotReported) {
  EXPECT_EQ(deadlock_message(throwing(),
                             [] {
                               channel<int> ch;
                               fiber sender([&ch] {
                                 this_fiber::sleep_for(20ms);
                                 ch.send(1);
                               });
                               EXPECT_EQ(ch.recv(), 1);
                               sender.join();
                             }),
            "");
}

TEST_P(DeadlockTest, AFiberParkedOnADescriptorIsNotReported) {
  // The kernel makes the timerfd readable: no timer of Spindle's is armed.
  EXPECT_EQ(deadlock_message(throwing(),
                             [] {
                               const int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
                               ASSERT_GE(fd, 0);
                               itimerspec when{};
                               when.it_value.tv_nsec = 20'000'000;
                               ASSERT_EQ(::timerfd_settime(fd, 0, &when, nullptr), 0);
                               channel<int> ch;
                               fiber reader([&ch, fd] {
                                 wait_readable(fd);
                                 ch.send(1);
                               });
                               EXPECT_EQ(ch.recv(), 1);
                               reader.join();
                               ::close(fd);
                             }),
            "");
}

TEST_P(DeadlockTest, AFiberWaitingForABlockingCallIsNotReported) {
  EXPECT_EQ(deadlock_message(throwing(),
                             [] {
                               const int v = blocking([] {
                                 std::this_thread::sleep_for(20ms);  // the call's own work
                                 return 7;
                               });
                               EXPECT_EQ(v, 7);
                             }),
            "");
}

TEST_P(DeadlockTest, AChannelAPlainThreadSendsToLaterIsNotReported) {
  EXPECT_EQ(deadlock_message(throwing(),
                             [] {
                               channel<int> ch;
                               fiber receiver([&ch] { EXPECT_EQ(ch.recv(), 5); });
                               // Only a plain thread can wake the receiver,
                               // and it does so once the receiver sleeps.
                               std::thread sender([&ch, id = receiver.get_id()] {
                                 test::wait_until_parked(id, wait_reason::channel_recv);
                                 std::this_thread::sleep_for(20ms);  // "later"
                                 ch.send(5);
                               });
                               receiver.join();
                               sender.join();
                             }),
            "");
}

TEST_P(DeadlockTest, AProgramThatFinishesIsNotReported) {
  EXPECT_EQ(deadlock_message(throwing(),
                             [] {
                               channel<int> ch(1);
                               wait_group wg;
                               for (int i = 0; i < 100; ++i) {
                                 wg.add(1);
                                 go([&] {
                                   ch.send(1);
                                   (void)ch.recv();
                                   wg.done();
                                 });
                               }
                               wg.wait();
                             }),
            "");
}

// The race behind a false report once seen in CI: main parks in join()
// while the joined fiber, on another worker that had been idle, finishes
// (and is no longer seen) during the check, and main then finishes too.
// Many short runs of exactly that: none may be reported.
TEST_P(DeadlockTest, JoinsOfFibersFinishingOnOtherWorkersAreNeverReported) {
  for (long round = 0; round < test::scaled(300); ++round) {
    EXPECT_EQ(deadlock_message(throwing(),
                               [n = workers()] {
                                 for (unsigned w = 0; w < n; ++w) {
                                   fiber f(fiber_options{.worker = static_cast<int>(w),
                                                         .pinned = true},
                                           [] { this_fiber::yield(); });
                                   f.join();
                                 }
                               }),
              "");
  }
}

SPINDLE_INSTANTIATE_WORKERS(DeadlockTest, 1u, 2u, 4u, 8u);

// The default action, as Go's: the message and the dump on stderr, and
// exit status 2.
TEST(DeadlockExitTest, ByDefaultTheProcessEndsWithStatusTwoAndTheDump) {
  EXPECT_EXIT(
      {
        run(options{.workers = 2}, [] {
          channel<int> ch;
          (void)ch.recv();
        });
        std::_Exit(0);
      },
      testing::ExitedWithCode(2), "spindle: all fibers are asleep: deadlock(.|\n)*channel recv");
}

}  // namespace
}  // namespace spindle
