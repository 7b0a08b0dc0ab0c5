// fork(): the child of a process whose default runtime has started runs
// fibers on a fresh one; a fork on a fiber may exec or exit; the parent is
// not disturbed by what the child does.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

#include "fiber/detail/sanitizer.h"
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

// What a child checks; its exit status says which check failed (0: none).
int exercise_fibers() {
  int result = 0;
  // Spawn and join.
  fiber f([&] { result = 1; });
  f.join();
  if (result != 1) return 10;
  // Two fibers talking over a channel, one sleeping first.
  channel<int> ch;
  fiber producer([&] {
    this_fiber::sleep_for(1ms);
    for (int i = 0; i < 100; ++i) ch.send(i);
    ch.close();
  });
  int sum = 0;
  fiber consumer([&] {
    while (auto v = ch.recv()) sum += *v;
  });
  producer.join();
  consumer.join();
  if (sum != 4950) return 11;
  // The blocking pool.
  int pooled = 0;
  fiber caller([&] { pooled = spindle::blocking([] { return 42; }); });
  caller.join();
  if (pooled != 42) return 12;
  // Sockets, through the netpoll.
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 13;
  std::string got;
  fiber reader([&] {
    connection c = connection::adopt(fds[0]);
    char buf[16];
    std::error_code ec;
    const std::size_t n = c.read_some(std::span<char>(buf), 10s, ec);
    if (!ec) got.assign(buf, n);
  });
  fiber writer([&] {
    connection c = connection::adopt(fds[1]);
    c.write_all(std::string_view("ping"));
  });
  writer.join();
  reader.join();
  if (got != "ping") return 14;
  return 0;
}

int wait_for_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class ForkTest : public testing::Test {
 protected:
  void SetUp() override {
#if SPINDLE_TSAN
    GTEST_SKIP() << "ThreadSanitizer does not support threads started in the child of a "
                    "multithreaded fork (die_after_fork)";
#endif
  }
};

TEST_F(ForkTest, AChildForkedAfterTheDefaultRuntimeStartedRunsFibers) {
  ASSERT_EQ(exercise_fibers(), 0);  // starts the default runtime here
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(exercise_fibers());
  EXPECT_EQ(wait_for_child(pid), 0);
  // And the parent goes on as before.
  EXPECT_EQ(exercise_fibers(), 0);
  test::await_default_runtime_stacks_released();
}

TEST_F(ForkTest, AParentWhoseFibersWaitOnSocketsIsNotDisturbedByItsChild) {
  ASSERT_EQ(exercise_fibers(), 0);
  // A fiber of the parent parked on a socket across the fork, while the
  // child registers sockets of its own: the netpoll's epoll is not shared.
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  connection c = connection::adopt(fds[0]);
  std::string got;
  fiber reader([&] {
    char buf[16];
    got.assign(buf, c.read_some(std::span<char>(buf), 60s));
  });
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (int i = 0; i < 20; ++i) {
      if (const int r = exercise_fibers(); r != 0) _exit(r);
    }
    _exit(0);
  }
  EXPECT_EQ(wait_for_child(pid), 0);
  ASSERT_EQ(::write(fds[1], "pong", 4), 4);
  reader.join();
  EXPECT_EQ(got, "pong");
  c.close();
  ::close(fds[1]);
  test::await_default_runtime_stacks_released();
}

TEST_F(ForkTest, AFiberMayForkAndExec) {
  int status = -1;
  spindle::run(options{.workers = 2}, [&] {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", "exit 3", static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_GE(pid, 0);
    status = spindle::blocking([pid] { return wait_for_child(pid); });
  });
  EXPECT_EQ(status, 3);
}

}  // namespace
}  // namespace spindle
