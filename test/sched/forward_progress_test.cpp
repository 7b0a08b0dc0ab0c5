// Forward progress: a fiber that never switches (it spins on an atomic,
// computes, or sits in a blocking call Spindle does not know) holds its
// worker, but not the fibers, timers and wakes queued behind it. Code
// written for std::thread, ported by namespace, relies on that.
//
// Without spare workers (runtime_options::max_spare_workers = 0, or before
// they existed) each of these tests hangs for ever, and ctest's timeout
// fails it. Each also checks that the spares retire: the process's thread
// count comes back to what it was before the holds began.
#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/debug.h"
#include "sched/scheduler.h"
#include "sync/channel.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;

// The names of this process's threads now (/proc/self/task/*/comm).
std::vector<std::string> thread_names() {
  std::vector<std::string> names;
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return names;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string name = "?";
    if (FILE* f = std::fopen((std::string("/proc/self/task/") + e->d_name + "/comm").c_str(), "r")) {
      char buf[32] = {};
      if (std::fgets(buf, sizeof buf, f) != nullptr) name.assign(buf, std::strcspn(buf, "\n"));
      std::fclose(f);
    }
    names.push_back(name);
  }
  ::closedir(d);
  return names;
}

int thread_count() { return static_cast<int>(thread_names().size()); }

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += "[" + n + "] ";
  return s;
}

// Waits (polling, from a fiber) until no spare runs and the thread count is
// back to `threads`; fails the test after 60 s.
void expect_spares_retire(int threads) {
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (spindle::runtime_stats().spare_workers != 0 || thread_count() != threads) {
    if (std::chrono::steady_clock::now() > give_up) {
      ADD_FAILURE() << "spares still running after 60 s: " << spindle::runtime_stats().spare_workers
                    << " spares, threads " << joined(thread_names()) << "; " << threads
                    << " expected";
      return;
    }
    spindle::this_fiber::sleep_for(1ms);
  }
}

// N fibers each arrive, then spin (without yielding) until all N have.
void spinners_meet(unsigned n) {
  std::atomic<unsigned> arrived{0};
  std::vector<spindle::fiber> fibers;
  for (unsigned i = 0; i < n; ++i) {
    fibers.emplace_back([&arrived, n] {
      arrived.fetch_add(1, std::memory_order_acq_rel);
      while (arrived.load(std::memory_order_acquire) < n) spindle::test::cpu_relax();
    });
  }
  for (auto& f : fibers) f.join();
  EXPECT_EQ(arrived.load(), n);
}

class SpinnersOnTwoWorkers : public testing::TestWithParam<unsigned> {};

TEST_P(SpinnersOnTwoWorkers, AllArriveAndFinishAndTheSparesRetire) {
  const unsigned n = GetParam();
  spindle::run(spindle::options{.workers = 2}, [n] {
    const int threads = thread_count();
    spinners_meet(n);
    expect_spares_retire(threads);
  });
}

INSTANTIATE_TEST_SUITE_P(Counts, SpinnersOnTwoWorkers, testing::Values(2u, 3u, 8u, 32u),
                         [](const testing::TestParamInfo<unsigned>& info) {
                           return std::to_string(info.param) + "Spinners";
                         });

class HeldWorkers : public spindle::test::workers_fixture {};

TEST_P(HeldWorkers, MoreSpinnersThanWorkersFinishTwiceInARow) {
  spindle::run(opts(), [this] {
    const int threads = thread_count();
    // The second round runs on spares that retired after the first (or on
    // retired slots started again).
    spinners_meet(workers() + 2);
    expect_spares_retire(threads);
    spinners_meet(workers() + 2);
    expect_spares_retire(threads);
  });
}

TEST_P(HeldWorkers, ASleepFinishesWhileAFiberSpinsUntilTheSleeperWakes) {
  // The case: the sleep's deadline is in the heap of the worker
  // the spinner holds.
  spindle::run(opts(), [] {
    const int threads = thread_count();
    std::atomic<bool> flag{false};
    spindle::fiber spinner([&flag] {
      while (!flag.load(std::memory_order_acquire)) spindle::test::cpu_relax();
    });
    spindle::this_fiber::sleep_for(10ms);
    flag.store(true, std::memory_order_release);
    spinner.join();
    expect_spares_retire(threads);
  });
}

TEST_P(HeldWorkers, ATickerKeepsTickingWhileEveryWorkerSpins) {
  spindle::run(opts(), [this] {
    const int threads = thread_count();
    std::atomic<bool> stop{false};
    std::atomic<unsigned> spinning{0};
    std::vector<spindle::fiber> spinners;
    for (unsigned i = 0; i < workers(); ++i) {
      spinners.emplace_back([&] {
        spinning.fetch_add(1, std::memory_order_acq_rel);
        while (!stop.load(std::memory_order_acquire)) spindle::test::cpu_relax();
      });
    }
    // Every worker held (or about to be): 20 ticks still come.
    while (spinning.load(std::memory_order_acquire) < workers()) spindle::this_fiber::yield();
    for (int tick = 0; tick < 20; ++tick) spindle::this_fiber::sleep_for(2ms);
    stop.store(true, std::memory_order_release);
    for (auto& f : spinners) f.join();
    expect_spares_retire(threads);
  });
}

TEST_P(HeldWorkers, FibersPingPongWhileOneSitsInARawReadOfAPipe) {
  spindle::run(opts(), [] {
    const int threads = thread_count();
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    std::atomic<bool> reading{false};
    long got = -1;
    char byte = 0;
    // syscall(): past any hook; the worker's thread blocks in the kernel.
    spindle::fiber reader([&] {
      reading.store(true, std::memory_order_release);
      got = ::syscall(SYS_read, fds[0], &byte, 1);
    });
    while (!reading.load(std::memory_order_acquire)) spindle::this_fiber::yield();
    constexpr int pairs = 500;
    const long rounds = spindle::test::scaled(200);
    std::atomic<long> exchanged{0};
    std::vector<spindle::fiber> players;
    for (int p = 0; p < pairs; ++p) {
      auto ping = std::make_shared<spindle::channel<int>>();
      auto pong = std::make_shared<spindle::channel<int>>();
      players.emplace_back([ping, pong, rounds] {
        for (long r = 0; r < rounds; ++r) {
          ping->send(static_cast<int>(r));
          (void)pong->recv();
        }
      });
      players.emplace_back([ping, pong, rounds, &exchanged] {
        for (long r = 0; r < rounds; ++r) {
          const auto v = ping->recv();
          pong->send(v.value_or(-1));
          exchanged.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    for (auto& f : players) f.join();
    EXPECT_EQ(exchanged.load(), pairs * rounds);
    // Only now does the reader get its byte.
    EXPECT_EQ(::write(fds[1], "x", 1), 1);
    reader.join();
    EXPECT_EQ(got, 1);
    EXPECT_EQ(byte, 'x');
    ::close(fds[0]);
    ::close(fds[1]);
    expect_spares_retire(threads);
  });
}

TEST_P(HeldWorkers, AWorkerJoinsAThreadThatWaitsForAFiberQueuedOnThatWorker) {
  spindle::run(opts(), [] {
    const int threads = thread_count();
    std::atomic<bool> signalled{false};
    std::atomic<bool> thread_done{false};
    spindle::fiber joiner([&] {
      std::thread t([&] {
        signalled.wait(false, std::memory_order_acquire);
        thread_done.store(true, std::memory_order_release);
      });
      // Spawned on this worker (its runnext slot), behind the join below,
      // which blocks the worker's thread.
      spindle::fiber signaller([&] {
        signalled.store(true, std::memory_order_release);
        signalled.notify_one();
      });
      t.join();
      signaller.join();
    });
    joiner.join();
    EXPECT_TRUE(thread_done.load());
    expect_spares_retire(threads);
  });
}

TEST_P(HeldWorkers, FibersThatSpinWithYieldStartNoSpare) {
  spindle::run(opts(), [this] {
    const std::uint64_t before = spindle::runtime_stats().spares_started;
    std::atomic<unsigned> arrived{0};
    const unsigned n = workers() * 4;
    std::vector<spindle::fiber> fibers;
    for (unsigned i = 0; i < n; ++i) {
      fibers.emplace_back([&arrived, n] {
        arrived.fetch_add(1, std::memory_order_acq_rel);
        // Each pass switches: the worker is never held.
        while (arrived.load(std::memory_order_acquire) < n) spindle::this_fiber::yield();
      });
    }
    for (auto& f : fibers) f.join();
    EXPECT_EQ(spindle::runtime_stats().spares_started, before);
  });
}

SPINDLE_INSTANTIATE_WORKERS(HeldWorkers, 1u, 2u);

TEST(SpareWorkerBound, OneSpareIsEnoughForOneSpinnerMoreThanWorkers) {
  spindle::run(spindle::options{.workers = 2, .max_spare_workers = 1}, [] {
    const int threads = thread_count();
    spinners_meet(3);
    EXPECT_GE(spindle::runtime_stats().spares_started, 1u);
    expect_spares_retire(threads);
  });
}

TEST(SpareWorkers, RunOnlyWhileHeldAndNoneIsStartedByAnIdleRuntime) {
  spindle::run(spindle::options{.workers = 2}, [] {
    spindle::this_fiber::sleep_for(50ms);  // idle workers, no hold
    EXPECT_EQ(spindle::runtime_stats().spares_started, 0u);
    EXPECT_EQ(spindle::runtime_stats().held_workers, 0u);
  });
}

}  // namespace
