// Cancellation: a fiber that observes a stop token (fiber_options::stop_token)
// and is parked in a cancellable call is woken by request_stop() with the
// call's failure form (operation_canceled), whoever requests the stop: a
// fiber on its worker, one on another worker, or a plain thread. A stop
// that came before the call makes it fail at once; a stop that races with
// the operation's own completion gives exactly one of the two outcomes.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "io/conn.h"
#include "io/error.h"
#include "io/listener.h"
#include "io/udp.h"
#include "parked.h"
#include "sched/blocking.h"
#include "sched/scheduler.h"
#include "sync/channel.h"
#include "sync/condition_variable.h"
#include "sync/future.h"
#include "sync/mutex.h"
#include "sync/select.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::channel;
using spindle::channel_status;
using spindle::fiber;
using spindle::fiber_options;
using spindle::detail::wait_reason;

// Who calls request_stop().
enum class stopper { same_worker, other_worker, plain_thread };

std::string stopper_name(const testing::TestParamInfo<stopper>& info) {
  switch (info.param) {
    case stopper::same_worker:
      return "FiberOnTheSameWorker";
    case stopper::other_worker:
      return "FiberOnAnotherWorker";
    case stopper::plain_thread:
      return "PlainThread";
  }
  return "?";
}

bool is_canceled(const std::system_error& e) {
  return e.code() == std::make_error_code(std::errc::operation_canceled);
}

// Runs body() on a fiber of worker 0 that observes a fresh stop token;
// once that fiber is parked on `reason`, `who` requests stop. body()
// returns whether it saw the cancellation it expects; the test checks it.
// Call it on a fiber of a runtime with two workers.
void expect_stop_ends(stopper who, wait_reason reason, const std::function<bool()>& body) {
  std::stop_source source;
  std::atomic<bool> saw{false};
  fiber f(fiber_options{.worker = 0, .stop_token = source.get_token()}, [&] { saw = body(); });
  const fiber::id id = f.get_id();
  auto stop = [&source, id, reason] {
    spindle::test::wait_until_parked(id, reason);
    EXPECT_TRUE(source.request_stop());
  };
  switch (who) {
    case stopper::same_worker: {
      fiber s(fiber_options{.worker = 0}, stop);
      f.join();
      s.join();
      break;
    }
    case stopper::other_worker: {
      fiber s(fiber_options{.worker = 1}, stop);
      f.join();
      s.join();
      break;
    }
    case stopper::plain_thread: {
      std::thread t(stop);
      f.join();  // parks this fiber: its worker stays free for f
      t.join();
      break;
    }
  }
  EXPECT_TRUE(saw.load());
}

// Runs body() on a fiber whose token was stopped before it started.
void expect_stopped_first(const std::function<bool()>& body) {
  std::stop_source source;
  source.request_stop();
  std::atomic<bool> saw{false};
  fiber f(fiber_options{.stop_token = source.get_token()}, [&] { saw = body(); });
  f.join();
  EXPECT_TRUE(saw.load());
}

// A one-shot event for a blocking-pool thread to wait on (a plain thread:
// not a spindle primitive, so it blocks for real).
class thread_event {
 public:
  void set() {
    std::lock_guard lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

// A connected pair of stream sockets: [0] adopted by a connection.
struct socket_pair {
  socket_pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    conn = spindle::connection::adopt(fds[0]);
    peer = fds[1];
  }
  ~socket_pair() { ::close(peer); }
  spindle::connection conn;
  int peer = -1;
};

spindle::options two_workers() { return spindle::options{.workers = 2}; }

class CancelTest : public testing::TestWithParam<stopper> {};

INSTANTIATE_TEST_SUITE_P(Stoppers, CancelTest,
                         testing::Values(stopper::same_worker, stopper::other_worker,
                                         stopper::plain_thread),
                         stopper_name);

// ---- Sleeps ----

TEST_P(CancelTest, StopEndsASleepEarly) {
  spindle::run(two_workers(), [] {
    expect_stop_ends(GetParam(), wait_reason::sleep, [] {
      spindle::this_fiber::sleep_for(24h);
      return spindle::this_fiber::stop_requested();
    });
  });
}

TEST(CancelBeforeTest, ASleepOfAStoppedFiberReturnsAtOnce) {
  spindle::run(two_workers(), [] {
    expect_stopped_first([] {
      spindle::this_fiber::sleep_for(24h);
      spindle::this_fiber::sleep_until(std::chrono::system_clock::now() + 24h);
      return true;
    });
  });
}

// ---- Channels and select ----

TEST_P(CancelTest, StopEndsARecvWithOperationCanceled) {
  spindle::run(two_workers(), [] {
    channel<int> ch;
    expect_stop_ends(GetParam(), wait_reason::channel_recv, [&] {
      try {
        (void)ch.recv();
      } catch (const std::system_error& e) {
        return is_canceled(e);
      }
      return false;
    });
    // The channel is intact: a later exchange works.
    fiber s([&] { ch.send(7); });
    EXPECT_EQ(ch.recv().value_or(-1), 7);
    s.join();
  });
}

TEST_P(CancelTest, StopEndsASendWithOperationCanceledAndTheValueStaysUnsent) {
  spindle::run(two_workers(), [] {
    channel<int> ch;
    expect_stop_ends(GetParam(), wait_reason::channel_send, [&] {
      try {
        ch.send(1);
      } catch (const std::system_error& e) {
        return is_canceled(e);
      }
      return false;
    });
    std::optional<int> v;
    EXPECT_EQ(ch.try_recv(v), channel_status::empty);
  });
}

TEST_P(CancelTest, StopEndsTimedChannelOperationsWithCanceledStatus) {
  spindle::run(two_workers(), [] {
    channel<int> ch(1);
    expect_stop_ends(GetParam(), wait_reason::channel_recv, [&] {
      std::optional<int> v;
      return ch.recv_for(v, 24h) == channel_status::canceled && !v;
    });
    ch.send(1);  // now full
    expect_stop_ends(GetParam(), wait_reason::channel_send, [&] {
      int v = 2;
      return ch.send_until(v, std::chrono::steady_clock::now() + 24h) == channel_status::canceled &&
             v == 2;
    });
    EXPECT_EQ(ch.size(), 1u);
  });
}

TEST_P(CancelTest, StopEndsASelectWithOperationCanceled) {
  spindle::run(two_workers(), [] {
    channel<int> a;
    channel<int> b;
    expect_stop_ends(GetParam(), wait_reason::select, [&] {
      spindle::recv_case ra(a);
      spindle::send_case sb(b, 5);
      try {
        (void)spindle::select(ra, sb);
      } catch (const std::system_error& e) {
        return is_canceled(e);
      }
      return false;
    });
    expect_stop_ends(GetParam(), wait_reason::select, [&] {
      spindle::recv_case ra(a);
      try {
        (void)spindle::select_for(24h, ra);
      } catch (const std::system_error& e) {
        return is_canceled(e);
      }
      return false;
    });
  });
}

TEST(CancelBeforeTest, ChannelOperationsOfAStoppedFiberFailAtOnceUnlessReady) {
  spindle::run(two_workers(), [] {
    channel<int> ch(1);
    expect_stopped_first([&] {
      bool ok = true;
      try {
        (void)ch.recv();
        ok = false;
      } catch (const std::system_error& e) {
        ok = ok && is_canceled(e);
      }
      std::optional<int> v;
      ok = ok && ch.recv_for(v, 24h) == channel_status::canceled;
      ch.send(3);  // room in the buffer: goes through without waiting
      try {
        ch.send(4);  // full: would wait
        ok = false;
      } catch (const std::system_error& e) {
        ok = ok && is_canceled(e);
      }
      ok = ok && ch.recv() == 3;  // ready: goes through
      spindle::recv_case r(ch);
      try {
        (void)spindle::select(r);
        ok = false;
      } catch (const std::system_error& e) {
        ok = ok && is_canceled(e);
      }
      return ok;
    });
  });
}

// ---- join, futures ----

TEST_P(CancelTest, StopEndsAJoinWithOperationCanceled) {
  spindle::run(two_workers(), [] {
    channel<int> release;
    fiber target([&] { (void)release.recv(); });
    expect_stop_ends(GetParam(), wait_reason::join, [&] {
      try {
        target.join();
      } catch (const std::system_error& e) {
        return is_canceled(e) && target.joinable();
      }
      return false;
    });
    release.close();
    target.join();
  });
}

TEST_P(CancelTest, StopEndsFutureWaitsWithOperationCanceled) {
  spindle::run(two_workers(), [] {
    spindle::promise<int> p;
    spindle::future<int> f = p.get_future();
    expect_stop_ends(GetParam(), wait_reason::future, [&] {
      try {
        (void)f.get();
      } catch (const std::system_error& e) {
        return is_canceled(e) && f.valid();
      }
      return false;
    });
    spindle::shared_future<int> sf = f.share();
    expect_stop_ends(GetParam(), wait_reason::future, [&] {
      try {
        (void)sf.wait_for(24h);
      } catch (const std::system_error& e) {
        return is_canceled(e);
      }
      return false;
    });
    p.set_value(9);
    EXPECT_EQ(sf.get(), 9);
    // Ready: a stopped fiber gets the value.
    expect_stopped_first([&] { return sf.get() == 9 && sf.wait_for(0s) == spindle::future_status::ready; });
  });
}

// ---- blocking() ----

TEST_P(CancelTest, StopAbandonsARunningBlockingForCallWithOperationCanceled) {
  spindle::run(two_workers(), [] {
    auto gate = std::make_shared<thread_event>();
    auto finished = std::make_shared<std::atomic<bool>>(false);
    expect_stop_ends(GetParam(), wait_reason::blocking_call, [gate, finished] {
      try {
        spindle::blocking_for(24h, [gate, finished] {
          gate->wait();
          finished->store(true);
        });
      } catch (const std::system_error& e) {
        return is_canceled(e) && !finished->load();
      }
      return false;
    });
    gate->set();  // the abandoned call finishes in the background
  });
}

TEST_P(CancelTest, StopTakesBackABlockingCallThatWaitsForAPoolThread) {
  spindle::options o = two_workers();
  o.blocking_threads = 1;
  spindle::run(o, [] {
    thread_event gate;
    std::atomic<bool> occupied{false};
    fiber hog([&] {
      spindle::blocking([&] {
        occupied = true;
        gate.wait();
      });
    });
    spindle::test::yield_until([&] { return occupied.load(); });
    std::atomic<bool> ran{false};
    expect_stop_ends(GetParam(), wait_reason::blocking_call, [&] {
      try {
        spindle::blocking([&] { ran = true; });
      } catch (const std::system_error& e) {
        return is_canceled(e);
      }
      return false;
    });
    gate.set();
    hog.join();
    // The canceled call never ran.
    EXPECT_EQ(spindle::blocking([] { return 5; }), 5);
    EXPECT_FALSE(ran.load());
  });
}

TEST_P(CancelTest, ARunningBorrowingBlockingCallIsWaitedForAndReturnsItsResult) {
  spindle::run(two_workers(), [] {
    thread_event gate;
    std::atomic<bool> running{false};
    std::stop_source source;
    std::atomic<int> got{0};
    fiber f(fiber_options{.worker = 0, .stop_token = source.get_token()}, [&] {
      got = spindle::blocking([&] {
        running = true;
        gate.wait();
        return 42;
      });
    });
    spindle::test::wait_until_parked(f.get_id(), wait_reason::blocking_call);
    spindle::test::yield_until([&] { return running.load(); });
    source.request_stop();
    // It borrows f's frame: f waits for it, parked again.
    spindle::test::wait_until_parked(f.get_id(), wait_reason::blocking_call);
    gate.set();
    f.join();
    EXPECT_EQ(got.load(), 42);
  });
}

// ---- Sockets ----

TEST_P(CancelTest, StopEndsAReadWithOperationCanceledAndTheConnectionStaysUsable) {
  spindle::run(two_workers(), [] {
    socket_pair sp;
    expect_stop_ends(GetParam(), wait_reason::fd_read, [&] {
      std::array<std::byte, 16> buf{};
      std::error_code ec;
      const std::size_t n = sp.conn.read_some(buf, ec);
      return n == 0 && ec == std::errc::operation_canceled;
    });
    ASSERT_EQ(::write(sp.peer, "x", 1), 1);
    std::array<std::byte, 16> buf{};
    EXPECT_EQ(sp.conn.read_some(buf), 1u);
  });
}

TEST_P(CancelTest, StopEndsAWriteWithOperationCanceled) {
  spindle::run(two_workers(), [] {
    socket_pair sp;
    expect_stop_ends(GetParam(), wait_reason::fd_write, [&] {
      const std::vector<std::byte> chunk(1 << 16);
      try {
        for (;;) sp.conn.write_all(chunk);  // until the buffers are full
      } catch (const spindle::io_error& e) {
        return is_canceled(e);
      }
    });
  });
}

TEST_P(CancelTest, StopEndsAnAcceptWithOperationCanceled) {
  spindle::run(two_workers(), [] {
    spindle::listener l = spindle::listen("127.0.0.1:0");
    expect_stop_ends(GetParam(), wait_reason::fd_read, [&] {
      try {
        (void)l.accept();
      } catch (const spindle::io_error& e) {
        return is_canceled(e);
      }
      return false;
    });
    EXPECT_TRUE(l.is_open());
  });
}

TEST_P(CancelTest, StopEndsAUdpRecvWithOperationCanceled) {
  spindle::run(two_workers(), [] {
    spindle::udp_socket s = spindle::udp_socket::bind("127.0.0.1:0");
    expect_stop_ends(GetParam(), wait_reason::fd_read, [&] {
      std::array<std::byte, 16> buf{};
      spindle::address from;
      std::error_code ec;
      (void)s.recv_from(buf, from, {}, ec);
      return ec == std::errc::operation_canceled;
    });
  });
}

TEST_P(CancelTest, StopEndsWaitReadableWithOperationCanceled) {
  spindle::run(two_workers(), [] {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    expect_stop_ends(GetParam(), wait_reason::fd_read, [&] {
      std::error_code ec;
      spindle::wait_readable(fds[0], {}, ec);
      return ec == std::errc::operation_canceled;
    });
    ::close(fds[0]);
    ::close(fds[1]);
  });
}

TEST(CancelBeforeTest, SocketCallsOfAStoppedFiberFailAtOnceUnlessReady) {
  spindle::run(two_workers(), [] {
    socket_pair sp;
    expect_stopped_first([&] {
      std::array<std::byte, 16> buf{};
      std::error_code ec;
      (void)sp.conn.read_some(buf, ec);
      bool ok = ec == std::errc::operation_canceled;
      // Data there: the read goes through without waiting.
      ok = ok && ::write(sp.peer, "ab", 2) == 2;
      ok = ok && sp.conn.read_some(buf, ec) == 2 && !ec;
      return ok;
    });
  });
}

// ---- condition_variable_any's stop_token overloads ----

TEST_P(CancelTest, StopEndsAConditionVariableAnyWaitOnTheFibersOwnToken) {
  spindle::run(two_workers(), [] {
    spindle::mutex mu;
    spindle::condition_variable_any cv;
    expect_stop_ends(GetParam(), wait_reason::condition_variable, [&] {
      std::unique_lock lock(mu);
      const bool r = cv.wait(lock, spindle::this_fiber::get_stop_token(), [] { return false; });
      return !r && lock.owns_lock();
    });
    expect_stop_ends(GetParam(), wait_reason::condition_variable, [&] {
      std::unique_lock lock(mu);
      return !cv.wait_for(lock, spindle::this_fiber::get_stop_token(), 24h, [] { return false; });
    });
  });
}

TEST(ConditionVariableAnyStopTest, AStopOnAnyTokenWakesAPlainThreadOrAFiberWithoutOne) {
  spindle::run(two_workers(), [] {
    spindle::mutex mu;
    spindle::condition_variable_any cv;
    for (int round = 0; round < 2; ++round) {
      std::stop_source source;
      std::atomic<bool> done{false};
      auto waiter = [&] {
        std::unique_lock lock(mu);
        EXPECT_FALSE(cv.wait_until(lock, source.get_token(),
                                   std::chrono::system_clock::now() + 24h, [] { return false; }));
        done = true;
      };
      if (round == 0) {
        std::thread t(waiter);
        spindle::test::await_parked(cv);
        source.request_stop();
        t.join();
      } else {
        fiber f(waiter);  // no token of its own
        spindle::test::await_parked(cv);
        source.request_stop();
        f.join();
      }
      EXPECT_TRUE(done.load());
    }
  });
}

TEST(ConditionVariableAnyStopTest, ReturnsTrueWhenThePredicateHoldsEvenAfterAStop) {
  spindle::run(two_workers(), [] {
    spindle::mutex mu;
    spindle::condition_variable_any cv;
    bool ready = false;
    std::stop_source source;
    fiber f([&] {
      std::unique_lock lock(mu);
      EXPECT_TRUE(cv.wait(lock, source.get_token(), [&] { return ready; }));
    });
    spindle::test::await_parked(cv);
    {
      std::lock_guard lock(mu);
      ready = true;
      source.request_stop();  // both: pred() decides
    }
    f.join();
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait(lock, source.get_token(), [&] { return ready; }));
    ready = false;
    EXPECT_FALSE(cv.wait_for(lock, source.get_token(), 24h, [&] { return ready; }));
  });
}

TEST(ConditionVariableAnyStopTest, AStopJustBeforeTheWaitIsNotLost) {
  // The stop comes between the waiter's last look at stop_requested() and
  // its park: from inside the predicate, on another thread, with the
  // waiter holding the mutex (which the stopper does not take).
  const long rounds = spindle::test::scaled(2000);
  spindle::run(spindle::options{.workers = 4}, [rounds] {
    spindle::mutex mu;
    spindle::condition_variable_any cv;
    for (long i = 0; i < rounds; ++i) {
      std::stop_source source;
      std::atomic<bool> checked{false};
      fiber stopper(fiber_options{.worker = static_cast<int>(i % 4)}, [&] {
        spindle::test::yield_until([&] { return checked.load(); });
        source.request_stop();
      });
      std::unique_lock lock(mu);
      EXPECT_FALSE(cv.wait(lock, source.get_token(), [&] {
        checked = true;
        return false;
      }));
      lock.unlock();
      stopper.join();
    }
  });
}

// ---- Races: a stop against the operation's own completion ----

TEST(CancelRaceTest, AStopRacingASendGivesTheValueOrCanceledNeverBothOrNeither) {
  const long rounds = spindle::test::scaled(4000);
  const unsigned workers = 2 * std::max(2u, std::thread::hardware_concurrency());  // more than cores
  spindle::run(spindle::options{.workers = workers}, [rounds, workers] {
    long received = 0;
    long canceled = 0;
    for (long i = 0; i < rounds; ++i) {
      channel<long> ch(i % 2);  // unbuffered and buffered
      std::stop_source source;
      std::optional<long> got;
      bool was_canceled = false;
      fiber receiver(fiber_options{.worker = static_cast<int>(i % workers), .stop_token = source.get_token()},
                     [&] {
                       try {
                         got = ch.recv();
                       } catch (const std::system_error& e) {
                         was_canceled = is_canceled(e);
                       }
                     });
      std::atomic<int> go{0};
      fiber sender(fiber_options{.worker = static_cast<int>((i + 1) % workers)}, [&] {
        go.fetch_add(1);
        while (go.load() < 2) spindle::this_fiber::yield();
        // Unbuffered: only to a receiver parked already (a canceled one
        // leaves the value with us); buffered: always goes in.
        if (ch.capacity() == 0) {
          long value = i;
          (void)ch.try_send(value);  // to a parked receiver only
        } else {
          ch.send(i);
        }
      });
      go.fetch_add(1);
      while (go.load() < 2) spindle::this_fiber::yield();
      source.request_stop();
      sender.join();
      receiver.join();
      EXPECT_NE(got.has_value(), was_canceled) << "round " << i;
      if (got) {
        EXPECT_EQ(*got, i);
        ++received;
        std::optional<long> rest;
        EXPECT_EQ(ch.try_recv(rest), channel_status::empty);
      } else {
        ++canceled;
        // Not lost: a buffered value is still in the channel.
        std::optional<long> rest;
        if (ch.capacity() == 1) {
          EXPECT_EQ(ch.try_recv(rest), channel_status::success) << "round " << i;
          EXPECT_EQ(rest.value_or(-1), i);
        }
      }
    }
    EXPECT_EQ(received + canceled, rounds);
  });
}

TEST(CancelRaceTest, AStopRacingANotifyOrAPromiseGivesOneOfTheTwo) {
  const long rounds = spindle::test::scaled(5'000);
  const unsigned workers = 2 * std::max(2u, std::thread::hardware_concurrency());
  spindle::run(spindle::options{.workers = workers}, [rounds, workers] {
    for (long i = 0; i < rounds; ++i) {
      spindle::promise<long> p;
      spindle::future<long> f = p.get_future();
      std::stop_source source;
      std::optional<long> got;
      bool was_canceled = false;
      fiber waiter(fiber_options{.worker = static_cast<int>(i % workers), .stop_token = source.get_token()},
                   [&] {
                     try {
                       got = f.get();
                     } catch (const std::system_error& e) {
                       was_canceled = is_canceled(e) && f.valid();
                     }
                   });
      fiber setter(fiber_options{.worker = static_cast<int>((i + 1) % workers)}, [&] { p.set_value(i); });
      source.request_stop();
      setter.join();
      waiter.join();
      EXPECT_NE(got.has_value(), was_canceled) << "round " << i;
      if (was_canceled) {
        EXPECT_EQ(f.get(), i);  // still there for a later get
      }
    }
  });
}

// ---- A fiber without a token ----

TEST(CancelFastPathTest, AFiberWithoutATokenIsNotCancellable) {
  spindle::run(two_workers(), [] {
    EXPECT_FALSE(spindle::this_fiber::get_stop_token().stop_possible());
    EXPECT_FALSE(spindle::this_fiber::stop_requested());
    channel<int> ch;
    fiber f([&] {
      EXPECT_FALSE(spindle::this_fiber::get_stop_token().stop_possible());
      EXPECT_EQ(ch.recv().value_or(-1), 1);
    });
    spindle::test::wait_until_parked(f.get_id(), wait_reason::channel_recv);
    ch.send(1);
    f.join();
    spindle::this_fiber::sleep_for(1ms);  // sleeps for real
  });
  EXPECT_FALSE(spindle::this_fiber::get_stop_token().stop_possible());  // a plain thread
}

TEST(CancelFastPathTest, AStoppedTokenOfAnotherFiberDoesNotAffectThisOne) {
  spindle::run(two_workers(), [] {
    std::stop_source source;
    source.request_stop();
    channel<int> ch;
    fiber stopped(fiber_options{.stop_token = source.get_token()},
                  [] { EXPECT_TRUE(spindle::this_fiber::stop_requested()); });
    fiber f([&] { EXPECT_EQ(ch.recv().value_or(-1), 2); });
    spindle::test::wait_until_parked(f.get_id(), wait_reason::channel_recv);
    ch.send(2);
    f.join();
    stopped.join();
  });
}

}  // namespace
