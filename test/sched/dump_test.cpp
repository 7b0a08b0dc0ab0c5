// The fiber dump (sched/debug.h) and the dump on a signal
// (sched/detail/dump.h): what it says about each kind of wait, that it
// leaves a busy runtime unharmed, that it groups identical stacks, and
// that a signal writes it to stderr.
#include "sched/debug.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <semaphore>
#include <sstream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "parked.h"
#include "sched/blocking.h"
#include "sched/detail/dump.h"
#include "sched/io_wait.h"
#include "sched/scheduler.h"
#include "sync/channel.h"
#include "sync/condition_variable.h"
#include "sync/future.h"
#include "sync/latch.h"
#include "sync/mutex.h"
#include "sync/select.h"
#include "sync/semaphore.h"
#include "sync/wait_group.h"
#include "test_util.h"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using detail::wait_reason;

// ---- Reading a dump ----

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The entry of fiber `id`: its line and the next ("spawned at ...").
std::string entry_of(const std::string& dump, const fiber::id& id) {
  const std::vector<std::string> lines = lines_of(dump);
  const std::string head = "--- fiber " + std::to_string(id.value());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] == head || lines[i].rfind(head + " ", 0) == 0 ||
        lines[i].rfind(head + ":", 0) == 0) {
      return lines[i] + "\n" + (i + 1 < lines.size() ? lines[i + 1] : "");
    }
  }
  return "(fiber " + std::to_string(id.value()) + " not in the dump)";
}

// The frames of the stack the entry points at (", stack N").
std::string stack_of(const std::string& dump, const std::string& entry) {
  const std::size_t at = entry.find(", stack ");
  if (at == std::string::npos) return "(no stack)";
  const int n = std::atoi(entry.c_str() + at + 8);
  const std::vector<std::string> lines = lines_of(dump);
  const std::string head = "--- stack " + std::to_string(n) + ":";
  std::string frames;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind(head, 0) != 0) continue;
    for (std::size_t j = i + 1; j < lines.size() && lines[j].rfind("    ", 0) == 0; ++j) {
      frames += lines[j] + "\n";
    }
  }
  return frames;
}

// The address after `words` in `entry` ("mutex 0x7f..."), as a number.
std::uintptr_t address_after(const std::string& entry, const std::string& words) {
  const std::size_t at = entry.find(words + " 0x");
  if (at == std::string::npos) return 0;
  return std::strtoull(entry.c_str() + at + words.size() + 1, nullptr, 16);
}

template <class T>
bool points_into(std::uintptr_t address, const T& object) {
  const auto begin = reinterpret_cast<std::uintptr_t>(&object);
  return address >= begin && address < begin + sizeof(T);
}

// ---- Fibers that wait, each in a function of its own ----
// noinline, so that each shows in its fiber's backtrace by name; and
// without a tail call (which would leave no frame of it on the stack).

#define DUMP_TEST_NO_TAIL_CALL() asm volatile("" ::: "memory")

[[gnu::noinline]] void dump_test_lock_mutex(mutex& m) {
  m.lock();
  m.unlock();
}

[[gnu::noinline]] void dump_test_wait_condition(mutex& m, condition_variable& cv, bool& ready) {
  std::unique_lock<mutex> lock(m);
  cv.wait(lock, [&] { return ready; });
  DUMP_TEST_NO_TAIL_CALL();
}

[[gnu::noinline]] int dump_test_recv(channel<int>& ch) { return ch.recv().value_or(-1); }

[[gnu::noinline]] void dump_test_send(channel<int>& ch) {
  ch.send(7);
  DUMP_TEST_NO_TAIL_CALL();
}

[[gnu::noinline]] int dump_test_select(channel<int>& a, channel<int>& b, channel<int>& c) {
  recv_case ra(a), rb(b), rc(c);
  return select(ra, rb, rc);
}

[[gnu::noinline]] void dump_test_join(fiber& other) {
  other.join();
  DUMP_TEST_NO_TAIL_CALL();
}

[[gnu::noinline]] void dump_test_sleep() {
  this_fiber::sleep_for(1h);
  DUMP_TEST_NO_TAIL_CALL();
}

[[gnu::noinline]] void dump_test_wait_readable(int fd) {
  detail::poll_desc* pd = detail::netpoll_open(fd);
  ASSERT_NE(pd, nullptr);
  (void)detail::netpoll_wait(pd, detail::io_direction::read,
                             std::chrono::steady_clock::now() + 10min, nullptr);
  detail::netpoll_close(pd);
}

[[gnu::noinline]] void dump_test_blocking(std::binary_semaphore& release) {
  blocking([&] { release.acquire(); });
  DUMP_TEST_NO_TAIL_CALL();
}

[[gnu::noinline]] void dump_test_acquire(counting_semaphore<>& sem) {
  sem.acquire();
  DUMP_TEST_NO_TAIL_CALL();
}

[[gnu::noinline]] void dump_test_latch(latch& l) {
  l.wait();
  DUMP_TEST_NO_TAIL_CALL();
}

[[gnu::noinline]] void dump_test_wait_group(wait_group& wg) {
  wg.wait();
  DUMP_TEST_NO_TAIL_CALL();
}

[[gnu::noinline]] int dump_test_future(future<int>& f) {
  const int v = f.get();
  DUMP_TEST_NO_TAIL_CALL();
  return v;
}

[[gnu::noinline]] void dump_test_spin(std::atomic<bool>& running, std::atomic<bool>& stop) {
  running.store(true);
  while (!stop.load()) {
  }
}

TEST(DumpTest, EveryWaitIsNamedWithItsObjectAndItsStack) {
  std::string dump;
  run(runtime_options{.workers = 2}, [&] {
    // A fiber that keeps worker 1 busy, and one queued behind it there:
    // running and runnable for as long as the test wants.
    std::atomic<bool> spinning{false}, stop_spinning{false};
    fiber spinner(fiber_options{.name = "spinner", .worker = 1, .pinned = true},
                  [&] { dump_test_spin(spinning, stop_spinning); });
    test::yield_until([&] { return spinning.load(); });
    fiber queued(fiber_options{.name = "queued", .worker = 1, .pinned = true}, [] {});

    mutex m;
    m.lock();
    fiber on_mutex(fiber_options{.name = "on-mutex"}, [&] { dump_test_lock_mutex(m); });

    mutex cv_m;
    condition_variable cv;
    bool ready = false;
    fiber on_cv(fiber_options{.name = "on-cv"}, [&] { dump_test_wait_condition(cv_m, cv, ready); });

    channel<int> to_recv, to_send;
    fiber receiver(fiber_options{.name = "receiver"}, [&] { EXPECT_EQ(dump_test_recv(to_recv), 1); });
    fiber sender(fiber_options{.name = "sender"}, [&] { dump_test_send(to_send); });

    channel<int> a, b, c;
    fiber selector(fiber_options{.name = "selector"}, [&] { EXPECT_EQ(dump_test_select(a, b, c), 1); });

    fiber joiner(fiber_options{.name = "joiner"}, [&] { dump_test_join(receiver); });

    std::stop_source stop_sleep;
    fiber sleeper(fiber_options{.name = "sleeper", .stop_token = stop_sleep.get_token()},
                  [] { dump_test_sleep(); });

    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    fiber reader(fiber_options{.name = "reader"}, [&] { dump_test_wait_readable(sv[0]); });

    std::binary_semaphore release_call{0};
    fiber caller(fiber_options{.name = "caller"}, [&] { dump_test_blocking(release_call); });

    counting_semaphore<> sem(0);
    fiber acquirer(fiber_options{.name = "acquirer"}, [&] { dump_test_acquire(sem); });

    latch l(1);
    fiber on_latch(fiber_options{.name = "on-latch"}, [&] { dump_test_latch(l); });

    wait_group wg;
    wg.add(1);
    fiber on_wg(fiber_options{.name = "on-wait-group"}, [&] { dump_test_wait_group(wg); });

    promise<int> p;
    future<int> fut = p.get_future();
    fiber on_future(fiber_options{.name = "on-future"}, [&] { EXPECT_EQ(dump_test_future(fut), 3); });

    test::wait_until_parked(on_mutex.get_id(), wait_reason::mutex);
    test::wait_until_parked(on_cv.get_id(), wait_reason::condition_variable);
    test::wait_until_parked(receiver.get_id(), wait_reason::channel_recv);
    test::wait_until_parked(sender.get_id(), wait_reason::channel_send);
    test::wait_until_parked(selector.get_id(), wait_reason::select);
    test::wait_until_parked(joiner.get_id(), wait_reason::join);
    test::wait_until_parked(sleeper.get_id(), wait_reason::sleep);
    test::wait_until_parked(reader.get_id(), wait_reason::fd_read);
    test::wait_until_parked(caller.get_id(), wait_reason::blocking_call);
    test::wait_until_parked(acquirer.get_id(), wait_reason::semaphore);
    test::wait_until_parked(on_latch.get_id(), wait_reason::latch);
    test::wait_until_parked(on_wg.get_id(), wait_reason::wait_group);
    test::wait_until_parked(on_future.get_id(), wait_reason::future);

    // From a fiber, which keeps running. (No SCOPED_TRACE: GoogleTest's
    // traces are per thread, and this fiber may resume on another.)
    dump = detail::dump_to_string();

    EXPECT_THAT(lines_of(dump).front(),
                testing::MatchesRegex("spindle: 16 fibers: 2 running, 1 runnable, 13 parked \\(.*"));

    const std::string e_mutex = entry_of(dump, on_mutex.get_id());
    EXPECT_THAT(e_mutex, testing::HasSubstr("\"on-mutex\": parked (mutex 0x"));
    EXPECT_TRUE(points_into(address_after(e_mutex, "mutex"), m)) << e_mutex;
    EXPECT_THAT(e_mutex, testing::ContainsRegex("\\) for [0-9.]+ (us|ms|s), stack [0-9]+"));
    EXPECT_THAT(stack_of(dump, e_mutex), testing::HasSubstr("dump_test_lock_mutex"));

    const std::string e_cv = entry_of(dump, on_cv.get_id());
    EXPECT_TRUE(points_into(address_after(e_cv, "condition_variable"), cv)) << e_cv;
    EXPECT_THAT(stack_of(dump, e_cv), testing::HasSubstr("dump_test_wait_condition"));

    const std::string e_recv = entry_of(dump, receiver.get_id());
    EXPECT_TRUE(points_into(address_after(e_recv, "channel recv"), to_recv)) << e_recv;
    EXPECT_THAT(stack_of(dump, e_recv), testing::HasSubstr("dump_test_recv"));

    const std::string e_send = entry_of(dump, sender.get_id());
    EXPECT_TRUE(points_into(address_after(e_send, "channel send"), to_send)) << e_send;
    EXPECT_THAT(stack_of(dump, e_send), testing::HasSubstr("dump_test_send"));

    const std::string e_select = entry_of(dump, selector.get_id());
    EXPECT_THAT(e_select, testing::HasSubstr("parked (select over 3 channels)"));
    EXPECT_THAT(stack_of(dump, e_select), testing::HasSubstr("dump_test_select"));

    const std::string e_join = entry_of(dump, joiner.get_id());
    EXPECT_THAT(e_join, testing::HasSubstr("parked (join fiber " +
                                           std::to_string(receiver.get_id().value()) + ")"));
    EXPECT_THAT(stack_of(dump, e_join), testing::HasSubstr("dump_test_join"));

    const std::string e_sleep = entry_of(dump, sleeper.get_id());
    EXPECT_THAT(e_sleep, testing::ContainsRegex("parked \\(sleep until \\+(59|60) min\\)"));
    EXPECT_THAT(stack_of(dump, e_sleep), testing::HasSubstr("dump_test_sleep"));

    const std::string e_read = entry_of(dump, reader.get_id());
    EXPECT_THAT(e_read, testing::ContainsRegex("parked \\(read fd " + std::to_string(sv[0]) +
                                               ", deadline in (9|10) min\\)"));
    EXPECT_THAT(stack_of(dump, e_read), testing::HasSubstr("dump_test_wait_readable"));

    const std::string e_call = entry_of(dump, caller.get_id());
    EXPECT_THAT(e_call, testing::HasSubstr("parked (blocking call)"));
    EXPECT_THAT(stack_of(dump, e_call), testing::HasSubstr("dump_test_blocking"));

    const std::string e_sem = entry_of(dump, acquirer.get_id());
    EXPECT_TRUE(points_into(address_after(e_sem, "semaphore"), sem)) << e_sem;
    EXPECT_THAT(stack_of(dump, e_sem), testing::HasSubstr("dump_test_acquire"));

    const std::string e_latch = entry_of(dump, on_latch.get_id());
    EXPECT_TRUE(points_into(address_after(e_latch, "latch"), l)) << e_latch;
    EXPECT_THAT(stack_of(dump, e_latch), testing::HasSubstr("dump_test_latch"));

    const std::string e_wg = entry_of(dump, on_wg.get_id());
    EXPECT_TRUE(points_into(address_after(e_wg, "wait_group"), wg)) << e_wg;
    EXPECT_THAT(stack_of(dump, e_wg), testing::HasSubstr("dump_test_wait_group"));

    const std::string e_future = entry_of(dump, on_future.get_id());
    EXPECT_NE(address_after(e_future, "future"), 0u) << e_future;  // its shared state
    EXPECT_THAT(stack_of(dump, e_future), testing::HasSubstr("dump_test_future"));

    EXPECT_THAT(entry_of(dump, spinner.get_id()),
                testing::HasSubstr("\"spinner\": running on worker 1 (pinned)"));
    EXPECT_THAT(entry_of(dump, queued.get_id()), testing::HasSubstr("\"queued\": runnable"));
    EXPECT_THAT(entry_of(dump, this_fiber::get_id()), testing::HasSubstr(": running on worker "));

    // Where each was spawned: this test's body, in this file.
    EXPECT_THAT(e_mutex, testing::ContainsRegex(
                             "spawned at .*DumpTest_EveryWaitIsNamedWithItsObjectAndItsStack_Test"));
    EXPECT_THAT(e_select, testing::HasSubstr("dump_test.cpp:"));

    // Let every one of them go.
    m.unlock();
    {
      std::lock_guard<mutex> lock(cv_m);
      ready = true;
    }
    cv.notify_one();
    to_recv.send(1);
    EXPECT_EQ(to_send.recv(), 7);
    b.send(2);
    stop_sleep.request_stop();
    ASSERT_EQ(::write(sv[1], "x", 1), 1);
    release_call.release();
    sem.release();
    l.count_down();
    wg.done();
    p.set_value(3);
    stop_spinning.store(true);
    for (fiber* f : {&spinner, &queued, &on_mutex, &on_cv, &sender, &selector, &joiner, &sleeper,
                     &reader, &caller, &acquirer, &on_latch, &on_wg, &on_future}) {
      f->join();
    }
    ::close(sv[0]);
    ::close(sv[1]);
  });
  if (HasFailure()) std::fprintf(stderr, "%s", dump.c_str());
}

TEST(DumpTest, WithoutBacktracesItListsNoStacks) {
  run(runtime_options{.workers = 1, .max_spare_workers = 0}, [] {
    channel<int> ch;
    fiber waiter([&] { (void)ch.recv(); });
    test::wait_until_parked(waiter.get_id(), wait_reason::channel_recv);
    std::ostringstream out;
    dump_fibers(out, dump_options{.backtraces = false});
    EXPECT_THAT(out.str(), testing::Not(testing::HasSubstr("--- stack")));
    EXPECT_THAT(entry_of(out.str(), waiter.get_id()), testing::HasSubstr("parked (channel recv 0x"));
    ch.close();
    waiter.join();
  });
}

// ---- A dump while the runtime is busy ----

// Pairs of fibers pass numbers over a channel and count under a shared
// mutex, wave after wave, while a plain thread dumps again and again and
// the spawning fiber dumps too: nobody crashes, and every number arrives.
TEST(DumpTest, DumpsWhileFibersChurnLeaveThemIntact) {
  constexpr int rounds = 20;
  const std::size_t pairs = test::max_concurrent_fibers(10'000) / 2;
  constexpr int wanted_dumps = 3;
  std::atomic<int> dumps{0};
  std::atomic<bool> done{false};
  std::thread dumper([&] {
    while (!done.load()) {
      const std::string text = detail::dump_to_string();
      EXPECT_EQ(text.rfind("spindle: ", 0), 0u);
      dumps.fetch_add(1);
    }
  });
  run(runtime_options{.workers = 4}, [&] {
    mutex m;
    long counted = 0;
    int waves = 0;
    while (waves == 0 || dumps.load() < wanted_dumps) {
      std::vector<channel<int>> channels(pairs);
      std::vector<long> sent(pairs), received(pairs);
      wait_group wg;
      wg.add(static_cast<int>(2 * pairs));
      for (std::size_t i = 0; i < pairs; ++i) {
        go(fiber_options{.stack_size = 16 * 1024}, [&, i] {
          for (int r = 1; r <= rounds; ++r) {
            channels[i].send(r * static_cast<int>(i % 7 + 1));
            sent[i] += r * static_cast<long>(i % 7 + 1);
            if (r % 5 == 0) this_fiber::yield();
          }
          channels[i].close();
          wg.done();
        });
        go(fiber_options{.stack_size = 16 * 1024}, [&, i] {
          while (auto v = channels[i].recv()) {
            received[i] += *v;
            std::lock_guard<mutex> lock(m);
            ++counted;
          }
          wg.done();
        });
      }
      if (waves == 0) (void)detail::dump_to_string();  // from a fiber, mid-wave
      wg.wait();
      for (std::size_t i = 0; i < pairs; ++i) {
        ASSERT_EQ(sent[i], received[i]) << "pair " << i;
        ASSERT_EQ(sent[i], (rounds * (rounds + 1) / 2) * static_cast<long>(i % 7 + 1));
      }
      ++waves;
      EXPECT_EQ(counted, static_cast<long>(waves) * rounds * static_cast<long>(pairs));
    }
  });
  done.store(true);
  dumper.join();
  EXPECT_GE(dumps.load(), wanted_dumps);
}

// ---- Grouping ----

[[gnu::noinline]] void dump_test_crowd_member(channel<int>& ch) {
  (void)ch.recv();
  DUMP_TEST_NO_TAIL_CALL();
}

// Fibers parked at one place share one stack, listed once with its count;
// the summary and the stacks stay a few lines however many fibers there
// are, and the listing is one line per fiber.
TEST(DumpTest, IdenticalStacksAreGroupedWithTheirCount) {
#if SPINDLE_ASAN || SPINDLE_TSAN
  const std::size_t crowd = test::max_concurrent_fibers(20'000);
#else
  const std::size_t crowd = 100'000;
#endif
  std::string dump;
  run(runtime_options{.workers = 2}, [&] {
    channel<int> ch;
    for (std::size_t i = 0; i < crowd; ++i) {
      go(fiber_options{.stack_size = 16 * 1024}, [&] { dump_test_crowd_member(ch); });
    }
    test::await_parked(ch, crowd);
    std::ostringstream out;
    dump_fibers(out);
    dump = out.str();
    ch.close();
  });
  const std::vector<std::string> lines = lines_of(dump);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "spindle: " + std::to_string(crowd + 1) + " fibers: 1 running, 0 runnable, " +
                          std::to_string(crowd) + " parked (" + std::to_string(crowd) +
                          " channel recv)");
  const std::string group = "--- stack 1: " + std::to_string(crowd) + " fibers parked on channel recv: ids ";
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[1].rfind(group, 0), 0u) << lines[1];
  EXPECT_THAT(lines[1], testing::HasSubstr("... (" + std::to_string(crowd - 10) + " more)"));
  EXPECT_THAT(dump, testing::HasSubstr("dump_test_crowd_member"));
  EXPECT_THAT(dump, testing::Not(testing::HasSubstr("--- stack 2:")));
  // Summary, one stack (at most 48 frames and "..."), the listing's
  // heading, then exactly one line per fiber.
  std::size_t head = 0;
  while (head < lines.size() && lines[head].rfind("fiber ", 0) != 0) ++head;
  EXPECT_LT(head, 60u);
  EXPECT_EQ(lines.size() - head, crowd + 1);
}

// ---- The signal ----

// Reads what fd 2 receives until `end` appears; false if it does not
// within a generous bound (a failure, not a way to wait).
bool read_until(int fd, const std::string& end, std::string* out) {
  const auto give_up = std::chrono::steady_clock::now() + 120s;
  while (out->find(end) == std::string::npos) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    out->append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

TEST(DumpTest, TheDumpSignalWritesTheDumpToStderr) {
  detail::install_dump_signal(SIGUSR2);
  detail::install_dump_signal(SIGUSR2);  // a second time changes nothing
  std::string captured;
  bool complete = false;
  run(runtime_options{.workers = 2}, [&] {
    channel<int> ch;
    fiber waiter(fiber_options{.name = "signal-test-waiter"}, [&] { (void)ch.recv(); });
    test::wait_until_parked(waiter.get_id(), wait_reason::channel_recv);
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    const int saved = ::dup(2);
    ::dup2(p[1], 2);
    ::close(p[1]);
    ::raise(SIGUSR2);
    complete = read_until(p[0], "spindle: end of fiber dump\n", &captured);
    ::dup2(saved, 2);
    ::close(saved);
    ::close(p[0]);
    ch.close();
    waiter.join();
  });
  ASSERT_TRUE(complete) << captured;
  EXPECT_THAT(captured, testing::HasSubstr("spindle: fiber dump on signal " +
                                           std::to_string(SIGUSR2) + " (SIGUSR2)\nspindle: "));
  EXPECT_THAT(captured, testing::HasSubstr("\"signal-test-waiter\": parked (channel recv 0x"));
}

// ---- SPINDLE_DUMP_SIGNAL ----

int signal_from(const char* value) {
  if (value == nullptr) {
    ::unsetenv("SPINDLE_DUMP_SIGNAL");
  } else {
    ::setenv("SPINDLE_DUMP_SIGNAL", value, 1);
  }
  const int signo = detail::dump_signal_from_env();
  ::unsetenv("SPINDLE_DUMP_SIGNAL");
  return signo;
}

TEST(DumpTest, DumpSignalFromEnvAcceptsNumbersAndNames) {
  EXPECT_EQ(signal_from("SIGQUIT"), SIGQUIT);
  EXPECT_EQ(signal_from("QUIT"), SIGQUIT);
  EXPECT_EQ(signal_from("sigusr1"), SIGUSR1);
  EXPECT_EQ(signal_from("3"), 3);
  EXPECT_EQ(signal_from(std::to_string(SIGUSR2).c_str()), SIGUSR2);
}

TEST(DumpTest, DumpSignalFromEnvIsZeroWhenUnsetOrEmpty) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(signal_from(nullptr), 0);
  EXPECT_EQ(signal_from(""), 0);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(DumpTest, DumpSignalFromEnvWarnsAboutWhatIsNoSignal) {
  for (const char* bad : {"bogus", "SIGNOPE", "0", "-3", "3x", "100000", "KILL", "9", "SIGSTOP"}) {
    testing::internal::CaptureStderr();
    EXPECT_EQ(signal_from(bad), 0) << bad;
    const std::string warning = testing::internal::GetCapturedStderr();
    EXPECT_THAT(warning, testing::HasSubstr(std::string("SPINDLE_DUMP_SIGNAL=\"") + bad + "\""));
    EXPECT_EQ(std::count(warning.begin(), warning.end(), '\n'), 1) << warning;
  }
}

}  // namespace
}  // namespace spindle
