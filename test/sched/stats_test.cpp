// runtime_stats() (sched/debug.h) and the long-run warning
// (runtime_options::long_run_warning).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "io/listener.h"
#include "parked.h"
#include "sched/blocking.h"
#include "sched/debug.h"
#include "sched/scheduler.h"
#include "sync/channel.h"
#include "test_util.h"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using detail::wait_reason;

std::size_t parked_for(const runtime_statistics& s, const std::string& reason) {
  for (const auto& [name, n] : s.parked_by_reason) {
    if (name == reason) return n;
  }
  return 0;
}

TEST(RuntimeStatsTest, CountsFibersByStateAndReason) {
  run(options{.workers = 2}, [] {
    channel<int> ch;
    std::vector<fiber> receivers;
    for (int i = 0; i < 5; ++i) receivers.emplace_back([&ch] { (void)ch.recv(); });
    for (auto& f : receivers) test::wait_until_parked(f.get_id(), wait_reason::channel_recv);
    const runtime_statistics s = runtime_stats();
    EXPECT_EQ(s.workers, 2u);
    ASSERT_EQ(s.per_worker.size(), 2u);
    EXPECT_GE(s.fibers, 6u);  // main and the receivers
    EXPECT_GE(s.running, 1u);  // main, taking the statistics
    EXPECT_EQ(parked_for(s, "channel recv"), 5u);
    EXPECT_GE(s.parked, 5u);
    for (int i = 0; i < 5; ++i) ch.send(i);
    for (auto& f : receivers) f.join();
    EXPECT_EQ(parked_for(runtime_stats(), "channel recv"), 0u);
  });
}

TEST(RuntimeStatsTest, CountsSwitchesIdleTimeAndTheBlockingPool) {
  run(options{.workers = 1, .max_spare_workers = 0}, [] {
    const std::uint64_t before = runtime_stats().per_worker[0].switches;
    fiber other([] {
      for (int i = 0; i < 100; ++i) this_fiber::yield();
    });
    for (int i = 0; i < 100; ++i) this_fiber::yield();
    other.join();
    // The only worker sleeps in its loop while main sleeps.
    this_fiber::sleep_for(5ms);
    (void)blocking([] { return 1; });
    const runtime_statistics s = runtime_stats();
    EXPECT_GE(s.per_worker[0].switches, before + 200);
    EXPECT_GT(s.per_worker[0].idle.count(), 0);
    EXPECT_GE(s.blocking_calls, 1u);
    EXPECT_GE(s.blocking_threads, 1u);
  });
}

TEST(RuntimeStatsTest, CountsDescriptorsInTheNetpoll) {
  run(options{.workers = 1, .max_spare_workers = 0}, [] {
    listener l = listen("127.0.0.1:0");
    fiber acceptor([&l] {
      try {
        (void)l.accept();
      } catch (const std::system_error&) {
        // closed below
      }
    });
    test::wait_until_parked(acceptor.get_id(), wait_reason::fd_read);
    const runtime_statistics s = runtime_stats();
    EXPECT_GE(s.netpoll_descriptors, 1u);
    EXPECT_EQ(parked_for(s, "read"), 1u);
    l.close();
    acceptor.join();
  });
}

// A fiber that computes without switching: the monitor sees the run grow.
// It spins until the statistics show it (no timing assumption: the
// monitor samples every few ms, however slow the machine).
TEST(RuntimeStatsTest, TheLongestRunWithoutASwitchIsMeasured) {
  run(options{.workers = 2}, [] {
    fiber hog([] {
      while (std::ranges::none_of(runtime_stats().per_worker, [](const worker_stats& w) {
        return w.longest_run >= 30ms;
      })) {
      }
    });
    hog.join();
  });
}

// The warning names the fiber, once. stderr goes to a pipe that the
// hogging fiber itself reads until the warning is there.
TEST(LongRunWarningTest, AFiberThatHogsItsWorkerIsNamedOnStderrOnce) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  const int saved = ::dup(2);
  ASSERT_GE(saved, 0);
  ::dup2(fds[1], 2);
  std::string seen;
  run(options{.workers = 2, .long_run_warning = 20ms}, [&seen, fd = fds[0]] {
    fiber hog(fiber_options{.name = "the-hog"}, [&seen, fd] {
      char buf[512];
      while (seen.find("the-hog") == std::string::npos) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) seen.append(buf, static_cast<std::size_t>(n));
      }
    });
    hog.join();
  });
  ::dup2(saved, 2);
  ::close(saved);
  ::close(fds[1]);
  ::close(fds[0]);
  EXPECT_NE(seen.find("without a switch"), std::string::npos) << seen;
  // Once: the fiber was named in one warning only.
  EXPECT_EQ(seen.find("the-hog"), seen.rfind("the-hog")) << seen;
}

}  // namespace
}  // namespace spindle
