// A runnable fiber never waits behind a running one while a worker is
// idle: whatever wakes it (a plain thread, the blocking pool, a deadline, a
// socket), a fiber that parked on a worker now busy computing resumes on
// another worker.
//
// Each test parks a fiber on worker 0, then occupies worker 0 with a fiber
// pinned there that computes until the parked one has resumed: only
// another worker can resume it, so on a runtime that leaves it to worker 0
// the test never ends (ctest's timeout fails it).
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <optional>
#include <system_error>
#include <thread>

#include <gtest/gtest.h>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "io/conn.h"
#include "sched/blocking.h"
#include "sched/scheduler.h"
#include "sync/channel.h"
#include "test_util.h"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using test::workers_fixture;

class IdleWorkerTest : public workers_fixture {
 protected:
  // No spare workers: what is tested is that the other base workers take
  // the work (a spare would take it too, after 20 ms, and hide a failure:
  // forward_progress_test covers spares).
  spindle::options opts() const {
    spindle::options o = workers_fixture::opts();
    o.max_spare_workers = 0;
    return o;
  }

  // Runs `wait(hog_running)` in a fiber parked on worker 0, and then a hog
  // pinned to worker 0 that computes until the waiter has returned.
  // `wake(hog_running)` runs on a plain thread meanwhile; both may look at
  // `hog_running` to act only once worker 0 is taken.
  template <class Wait, class Wake>
  void expect_resumed_while_worker_zero_computes(Wait wait, Wake wake) {
    spindle::run(opts(), [&] {
      std::atomic<bool> hog_running{false};
      std::atomic<bool> resumed{false};
      // Pinned until it runs, so that it starts on worker 0; unpinned
      // before it parks, so that any worker may resume it.
      fiber waiter(fiber_options{.worker = 0, .pinned = true}, [&] {
        this_fiber::unpin();
        wait(hog_running);
        resumed = true;
      });
      test::await_worker_free(0);  // the waiter has parked on worker 0
      fiber hog(fiber_options{.worker = 0, .pinned = true}, [&] {
        hog_running = true;
        while (!resumed.load()) test::cpu_relax();
      });
      std::thread waker([&] { wake(hog_running); });
      waiter.join();
      hog.join();
      waker.join();
    });
  }
};

// A connected Unix stream pair: our end adopted as a connection, the peer
// end a raw descriptor for a plain thread to write to; closed at the end.
struct socket_pair {
  socket_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      throw std::system_error(errno, std::system_category(), "socketpair");
    }
    ours = connection::adopt(fds[0]);
    peer = fds[1];
  }
  ~socket_pair() { ::close(peer); }
  connection ours;
  int peer = -1;
};

void await(const std::atomic<bool>& flag) {
  while (!flag.load()) std::this_thread::yield();
}

TEST_P(IdleWorkerTest, AFiberWokenByAPlainThreadRunsOnAnIdleWorker) {
  channel<int> ch(1);
  expect_resumed_while_worker_zero_computes(
      [&](const std::atomic<bool>&) { EXPECT_EQ(ch.recv(), 7); },
      [&](const std::atomic<bool>& hog) {
        await(hog);
        ch.send(7);
      });
}

TEST_P(IdleWorkerTest, AFiberWhoseBlockingCallReturnsRunsOnAnIdleWorker) {
  expect_resumed_while_worker_zero_computes(
      [](const std::atomic<bool>& hog) {
        // The pool thread returns once the hog holds worker 0.
        EXPECT_EQ(spindle::blocking([&hog] {
                    await(hog);
                    return 5;
                  }),
                  5);
      },
      [](const std::atomic<bool>&) {});
}

TEST_P(IdleWorkerTest, AFiberWokenInATimedReceiveRunsOnAnIdleWorker) {
  channel<int> ch(1);
  expect_resumed_while_worker_zero_computes(
      [&](const std::atomic<bool>&) {
        std::optional<int> v;
        EXPECT_EQ(ch.recv_for(v, 1h), channel_status::success);
        EXPECT_EQ(v, 3);
      },
      [&](const std::atomic<bool>& hog) {
        await(hog);
        ch.send(3);
      });
}

TEST_P(IdleWorkerTest, AFiberWhoseTimedReceiveTimesOutRunsOnAnIdleWorker) {
  channel<int> ch(1);
  expect_resumed_while_worker_zero_computes(
      [&](const std::atomic<bool>&) {
        std::optional<int> v;
        EXPECT_EQ(ch.recv_for(v, 20ms), channel_status::timeout);
      },
      [](const std::atomic<bool>&) {});
}

TEST_P(IdleWorkerTest, AFiberWhoseSleepEndsRunsOnAnIdleWorker) {
  expect_resumed_while_worker_zero_computes(
      [](const std::atomic<bool>&) {
        const auto start = std::chrono::steady_clock::now();
        this_fiber::sleep_for(20ms);
        EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
      },
      [](const std::atomic<bool>&) {});
}

TEST_P(IdleWorkerTest, AFiberWhoseSocketReadWithADeadlineIsReadyRunsOnAnIdleWorker) {
  socket_pair sp;
  connection& c = sp.ours;
  expect_resumed_while_worker_zero_computes(
      [&](const std::atomic<bool>&) {
        char buf[8];
        EXPECT_EQ(c.read_some(std::span<char>(buf), 1h), 2u);
      },
      [&](const std::atomic<bool>& hog) {
        await(hog);
        EXPECT_EQ(::write(sp.peer, "hi", 2), 2);
      });
}

TEST_P(IdleWorkerTest, AFiberWhoseSocketReadTimesOutRunsOnAnIdleWorker) {
  socket_pair sp;
  connection& c = sp.ours;
  expect_resumed_while_worker_zero_computes(
      [&](const std::atomic<bool>&) {
        char buf[8];
        std::error_code ec;
        EXPECT_EQ(c.read_some(std::span<char>(buf), 20ms, ec), 0u);
        EXPECT_EQ(ec, std::errc::timed_out);
      },
      [](const std::atomic<bool>&) {});
}

TEST_P(IdleWorkerTest, APlainThreadClosingAConnectionIsNotHeldUpByTheWorkerItBlocks) {
  // Worker 0 blocks in std::thread::join() on a thread that closes a
  // connection whose reader parked on worker 0: the close waits for the
  // reader to leave, and the reader must run elsewhere to leave.
  spindle::run(opts(), [] {
    socket_pair sp;
    connection& c = sp.ours;
    fiber reader(fiber_options{.worker = 0, .pinned = true}, [&] {
      this_fiber::unpin();
      char buf[8];
      std::error_code ec;
      EXPECT_EQ(c.read_some(std::span<char>(buf), ec), 0u);
      EXPECT_EQ(ec, std::errc::operation_canceled);
    });
    test::await_worker_free(0);
    fiber blocker(fiber_options{.worker = 0, .pinned = true}, [&] {
      std::thread closer([&] { c.close(); });
      closer.join();
    });
    reader.join();
    blocker.join();
  });
}

TEST_P(IdleWorkerTest, ManySleepersOnABusyWorkerAllWake) {
  // Sleepers on worker 0 with staggered deadlines, while worker 0 computes
  // until every one of them has woken: other workers run all their timers.
  spindle::run(opts(), [] {
    constexpr int sleepers = 50;
    std::atomic<int> woken{0};
    std::vector<fiber> fibers;
    for (int i = 0; i < sleepers; ++i) {
      fibers.emplace_back(fiber_options{.worker = 0, .pinned = true}, [i, &woken] {
        this_fiber::unpin();
        this_fiber::sleep_for(std::chrono::milliseconds(1 + i % 10));
        woken.fetch_add(1);
      });
    }
    test::await_worker_free(0);
    fiber hog(fiber_options{.worker = 0, .pinned = true}, [&] {
      while (woken.load() != sleepers) test::cpu_relax();
    });
    for (auto& f : fibers) f.join();
    hog.join();
  });
}

TEST_P(IdleWorkerTest, ADeadlineAddedWhileAnotherWorkerSleepsUntilALaterOneIsMet) {
  // Worker 1 holds a long deadline and, with every worker idle, sleeps
  // until it. Then a plain thread wakes two fibers pinned to worker 0
  // (through worker 0's inbox, which wakes nobody else): the first sleeps
  // briefly, the second computes until the first has woken. Only worker 1
  // can run that sleep's timer, and only if the new, earlier deadline
  // wakes it.
  spindle::run(opts(), [] {
    channel<int> release_long(1);
    channel<int> go_sleeper(1);
    channel<int> go_hog(1);
    std::atomic<bool> sleeper_started{false};
    std::atomic<bool> sleeper_done{false};
    fiber long_waiter(fiber_options{.worker = 1, .pinned = true}, [&] {
      this_fiber::unpin();
      std::optional<int> v;
      EXPECT_EQ(release_long.recv_for(v, 1h), channel_status::success);
    });
    fiber sleeper(fiber_options{.worker = 0, .pinned = true}, [&] {
      EXPECT_EQ(go_sleeper.recv(), 1);
      sleeper_started = true;
      this_fiber::unpin();
      this_fiber::sleep_for(20ms);
      sleeper_done = true;
    });
    fiber hog(fiber_options{.worker = 0, .pinned = true}, [&] {
      EXPECT_EQ(go_hog.recv(), 1);
      while (!sleeper_done.load()) test::cpu_relax();
    });
    test::await_worker_free(0);
    test::await_worker_free(1);
    std::thread waker([&] {
      // Not synchronisation: a pause that lets every worker go idle, so
      // that worker 1 sleeps until the long deadline alone (the case this
      // test is about); if it has not, the test passes without testing it.
      std::this_thread::sleep_for(20ms);
      go_sleeper.send(1);
      await(sleeper_started);
      go_hog.send(1);
    });
    sleeper.join();
    hog.join();
    waker.join();
    release_long.send(0);
    long_waiter.join();
  });
}

SPINDLE_INSTANTIATE_WORKERS(IdleWorkerTest, 2u, 4u);

}  // namespace
}  // namespace spindle
