#include "io/signal.h"

#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "fiber/fiber.h"
#include "fiber/fiber_options.h"
#include "fiber/this_fiber.h"
#include "io/error.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using spindle::test::yield_until;

using namespace std::chrono_literals;
using spindle::fiber;

// Makes sure Spindle's handler for `sig` is installed before the test sends
// it (else the default action would end the process): a wait with a
// deadline already passed installs it and times out, unless an arrival is
// pending, which it takes.
void install(int sig) {
  std::error_code ec;
  spindle::wait_signal({sig}, std::chrono::steady_clock::now() - 1s, ec);
}

// Sends `sig` to the process from a new thread that blocks it, so that
// the kernel hands it to another thread (a worker, or a waiting one).
void send_from_another_thread(int sig) {
  std::thread([sig] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    ASSERT_EQ(::kill(::getpid(), sig), 0);
  }).join();
}

// Under TSan, signals go to one plain thread waiting in a blocking call.
// TSan runs a handler only at the receiving thread's next intercepted
// call, and keeps the signal with the fiber that was running there: a
// fiber that then parks (waiting for that very signal, say) would hold it
// until its deadline. Elsewhere the handler runs wherever the kernel
// delivers the signal, workers included. Constructed before run(): the
// thread that makes it, and the workers it starts, block the signals.
class signal_sink {
#if SPINDLE_TSAN
 public:
  signal_sink() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, &saved_);
    sink_ = std::thread([this, set] {
      pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_; });
    });
  }
  ~signal_sink() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    sink_.join();
    pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }
  signal_sink(const signal_sink&) = delete;
  signal_sink& operator=(const signal_sink&) = delete;

 private:
  sigset_t saved_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread sink_;
#endif
};

class SignalTest : public spindle::test::workers_fixture {
 protected:
  void SetUp() override {
    install(SIGUSR1);
    install(SIGUSR2);
  }
  signal_sink sink_;
};
SPINDLE_INSTANTIATE_WORKERS(SignalTest, 1u, 2u, 4u);

TEST_P(SignalTest, WaitSignalReturnsTheSignalSentFromAnotherThread) {
  spindle::run(opts(), [] {
    std::atomic<bool> started{false};
    int got = 0;
    fiber waiter([&] {
      started.store(true);
      got = spindle::wait_signal({SIGUSR1}, 30s);
    });
    yield_until([&] { return started.load(); });
    // Whether the waiter has parked yet or not: an arrival before the
    // wait is kept for it.
    send_from_another_thread(SIGUSR1);
    waiter.join();
    EXPECT_EQ(got, SIGUSR1);
  });
}

TEST_P(SignalTest, ASignalThatArrivesWhileNobodyWaitsIsKeptForTheNextWaiter) {
  spindle::run(opts(), [] {
    send_from_another_thread(SIGUSR2);
    EXPECT_EQ(spindle::wait_signal({SIGUSR1, SIGUSR2}, 30s), SIGUSR2);
    // Taken once: it is not there a second time.
    std::error_code ec;
    EXPECT_EQ(spindle::wait_signal({SIGUSR2}, 20ms, ec), 0);
    EXPECT_EQ(ec, std::errc::timed_out);
    // Two arrivals, two waits.
    send_from_another_thread(SIGUSR1);
    EXPECT_EQ(spindle::wait_signal({SIGUSR1}, 30s), SIGUSR1);
    send_from_another_thread(SIGUSR1);
    EXPECT_EQ(spindle::wait_signal({SIGUSR1}, 30s), SIGUSR1);
  });
}

TEST_P(SignalTest, WaitSignalTimesOutAtItsDeadline) {
  spindle::run(opts(), [] {
    std::error_code ec;
    EXPECT_EQ(spindle::wait_signal({SIGUSR1}, 20ms, ec), 0);
    EXPECT_EQ(ec, std::errc::timed_out);
    try {
      spindle::wait_signal({SIGUSR1, SIGUSR2}, std::chrono::steady_clock::now() + 20ms);
      ADD_FAILURE() << "no exception";
    } catch (const spindle::io_error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out);
    }
  });
}

TEST_P(SignalTest, SignalsThatCannotBeCaughtOrDoNotExistAreInvalidArguments) {
  spindle::run(opts(), [] {
    for (int sig : {SIGKILL, SIGSTOP, 0, -1, 65, 1000}) {
      std::error_code ec;
      EXPECT_EQ(spindle::wait_signal({sig}, 1s, ec), 0);
      EXPECT_EQ(ec, std::errc::invalid_argument) << "signal " << sig;
      // One bad signal spoils the set.
      spindle::wait_signal({SIGUSR1, sig}, 1s, ec);
      EXPECT_EQ(ec, std::errc::invalid_argument) << "signal " << sig;
    }
    std::error_code ec;
    spindle::wait_signal({}, 1s, ec);
    EXPECT_EQ(ec, std::errc::invalid_argument);
    EXPECT_THROW(spindle::wait_signal({SIGKILL}), spindle::io_error);
  });
}

TEST_P(SignalTest, TwoWaitersForDifferentSignalsEachGetTheirOwn) {
  spindle::run(opts(), [&] {
    std::atomic<int> started{0};
    int got1 = 0;
    int got2 = 0;
    const int last = static_cast<int>(workers()) - 1;
    fiber w1(spindle::fiber_options{.worker = 0}, [&] {
      started.fetch_add(1);
      got1 = spindle::wait_signal({SIGUSR1}, 30s);
    });
    fiber w2(spindle::fiber_options{.worker = last}, [&] {
      started.fetch_add(1);
      got2 = spindle::wait_signal({SIGUSR2}, 30s);
    });
    yield_until([&] { return started.load() == 2; });
    send_from_another_thread(SIGUSR2);
    send_from_another_thread(SIGUSR1);
    w1.join();
    w2.join();
    EXPECT_EQ(got1, SIGUSR1);
    EXPECT_EQ(got2, SIGUSR2);
  });
}

TEST(SignalOnAPlainThreadTest, WaitSignalWorksOnAPlainThread) {
  install(SIGUSR1);
  [[maybe_unused]] signal_sink sink;
  int got = 0;
  std::thread waiter([&] { got = spindle::wait_signal({SIGUSR1}, 30s); });
  send_from_another_thread(SIGUSR1);
  waiter.join();
  EXPECT_EQ(got, SIGUSR1);
  std::error_code ec;
  spindle::wait_signal({SIGUSR1}, 20ms, ec);
  EXPECT_EQ(ec, std::errc::timed_out);
}

// The number of read(2)-family calls the process has made.
long read_calls() {
  std::ifstream io("/proc/self/io");
  std::string key;
  long value = 0;
  while (io >> key >> value) {
    if (key == "syscr:") return value;
  }
  return -1;
}

TEST(SignalOneWorkerTest, AWaiterDoesNotSpinWhileAnotherSignalIsPendingUnclaimed) {
  // A SIGUSR2 arrives with nobody waiting for it: it is kept. Meanwhile a
  // fiber waits for SIGUSR1 only. That waiter must sleep, not wake again
  // and again on the pending SIGUSR2's wake-up byte: count the read(2)
  // calls the process makes while it waits (a wake drains the pipe with
  // read(2); an idle one makes a few at most).
  install(SIGUSR1);
  install(SIGUSR2);
  if (read_calls() < 0) GTEST_SKIP() << "no /proc/self/io";
  [[maybe_unused]] signal_sink sink;
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    send_from_another_thread(SIGUSR2);
    std::atomic<bool> started{false};
    int got = 0;
    fiber waiter([&] {
      started.store(true);
      got = spindle::wait_signal({SIGUSR1}, 30s);
    });
    yield_until([&] { return started.load(); });
    const long before = read_calls();
    spindle::this_fiber::sleep_for(200ms);  // a window to count in, not synchronisation
    const long reads = read_calls() - before;
    // Parked, it makes about one; spinning, thousands (hundreds on a
    // loaded machine).
    EXPECT_LT(reads, 20) << "the SIGUSR1 waiter woke " << reads
                         << " times in 200 ms: it spins on the unclaimed SIGUSR2";
    send_from_another_thread(SIGUSR1);
    waiter.join();
    EXPECT_EQ(got, SIGUSR1);
    EXPECT_EQ(spindle::wait_signal({SIGUSR2}, 30s), SIGUSR2);  // leave none pending
  });
}

}  // namespace
