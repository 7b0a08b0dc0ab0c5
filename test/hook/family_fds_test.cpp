// The hooked bookkeeping calls on a fiber against the same calls on a
// plain thread: fcntl (F_GETFL, F_SETFL, F_DUPFD), ioctl(FIONBIO),
// setsockopt(SO_RCVTIMEO), close, dup, dup2, dup3; descriptors made
// behind the hook's back; numbers closed and reused. test/hook/
// family_util.h says how each scenario runs on both, with its companion
// on the same worker.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "hook/family_util.h"

namespace {

using namespace spindle::test::family;
using outcomes = std::vector<outcome>;

long nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags < 0 ? -1 : (flags & O_NONBLOCK) != 0;
}

long cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  return flags < 0 ? -1 : (flags & FD_CLOEXEC) != 0;
}

void close_all(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

// The user's two ways to set the blocking mode.
struct mode_setter {
  const char* name;
  std::function<int(int fd, bool nonblocking)> set;
};

void PrintTo(const mode_setter& m, std::ostream* os) { *os << m.name; }

const mode_setter mode_setters[] = {
    {"Fcntl",
     [](int fd, bool on) {
       const int flags = ::fcntl(fd, F_GETFL);
       return ::fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
     }},
    {"Ioctl",
     [](int fd, bool on) {
       int v = on ? 1 : 0;
       return ::ioctl(fd, FIONBIO, &v);
     }},
};

class HookFdsModeTest : public testing::TestWithParam<mode_setter> {};

// The user turns O_NONBLOCK on, on a socket a fiber has already parked on
// (so the hook made its file non-blocking underneath), then off again.
TEST_P(HookFdsModeTest, TheBlockingModeTheUserSetsIsWhatRecvAndFGetflShow) {
  const mode_setter& mode = GetParam();
  expect_on_both(
      [&] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        std::atomic<bool> nonblocking_set{false};
        std::atomic<bool> nonblocking_recv_done{false};
        std::atomic<bool> blocking_again{false};
        std::atomic<bool> done{false};
        companion peer([&] {
          await_parked();  // the first recv
          (void)::send(sv[1], "1", 1, 0);
          await(nonblocking_set);
          await_parked_or(nonblocking_recv_done);
          if (!nonblocking_recv_done.load()) (void)::send(sv[1], "parked", 6, 0);  // end it, and fail
          await(blocking_again);
          await_parked_or(done);  // the last recv
          (void)::send(sv[1], "3", 1, 0);
          scribble_errno();
        });
        outcomes r;
        char buf[16];
        r.push_back(capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); }));
        r.push_back(returned(nonblocking(sv[0])));
        r.push_back(capture([&] { return mode.set(sv[0], true); }));
        r.push_back(returned(nonblocking(sv[0])));
        nonblocking_set = true;
        r.push_back(capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); }));
        nonblocking_recv_done = true;
        r.push_back(capture([&] { return mode.set(sv[0], false); }));
        r.push_back(returned(nonblocking(sv[0])));
        blocking_again = true;
        r.push_back(capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); }));
        done = true;
        peer.join();
        close_all({sv[0], sv[1]});
        return r;
      },
      outcomes{returned(1, "1"), returned(0), returned(0), returned(1), failed(EAGAIN), returned(0), returned(0),
               returned(1, "3")});
}

TEST_P(HookFdsModeTest, SettingTheBlockingModeOfADescriptorThatIsNotOpenFailsWithEbadf) {
  const mode_setter& mode = GetParam();
  expect_on_both(
      [&] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        close_all({sv[0], sv[1]});
        return outcomes{capture([&] { return mode.set(sv[0], true); }),
                        capture([&] { return mode.set(sv[0], false); })};
      },
      outcomes{failed(EBADF), failed(EBADF)});
}

INSTANTIATE_TEST_SUITE_P(Calls, HookFdsModeTest, testing::ValuesIn(mode_setters),
                         [](const testing::TestParamInfo<mode_setter>& info) { return std::string(info.param.name); });

// O_NONBLOCK belongs to the open file, which a dup shares: set through
// one descriptor, it shows through the other, and applies to its calls.
TEST(HookFdsTest, ONonblockSetThroughADupShowsAndAppliesThroughTheOriginalAsBothShareTheOpenFile) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const int d = ::dup(sv[0]);
        std::atomic<bool> first_done{false};
        std::atomic<bool> cleared{false};
        std::atomic<bool> done{false};
        companion peer([&] {
          await_parked_or(first_done);
          if (!first_done.load()) (void)::send(sv[1], "parked", 6, 0);  // the recv parked: end it, and fail
          await(cleared);
          await_parked_or(done);
          if (!done.load()) (void)::send(sv[1], "2", 1, 0);
          scribble_errno();
        });
        outcomes r;
        char buf[16];
        r.push_back(capture([&] { return ::fcntl(d, F_SETFL, ::fcntl(d, F_GETFL) | O_NONBLOCK); }));
        r.push_back(returned(nonblocking(sv[0])));
        r.push_back(capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); }));
        first_done = true;
        r.push_back(capture([&] { return ::fcntl(sv[0], F_SETFL, ::fcntl(sv[0], F_GETFL) & ~O_NONBLOCK); }));
        r.push_back(returned(nonblocking(d)));
        cleared = true;
        r.push_back(capture_into(buf, [&] { return ::recv(d, buf, sizeof buf, 0); }));
        done = true;
        peer.join();
        close_all({d, sv[0], sv[1]});
        return r;
      },
      outcomes{returned(0), returned(1), failed(EAGAIN), returned(0), returned(0), returned(1, "2")});
}

// ---- close ----

// What a plain thread's recv of a socket closed before it gets: the
// kernel's answer, which a parked call gets too.
outcomes recv_after_close() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  const outcome closed = capture([&] { return ::close(sv[0]); });
  char buf[16];
  const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
  ::close(sv[1]);
  return outcomes{got, closed};
}

// A recv parked on a socket, closed by `close_it` (on a companion fiber).
outcomes recv_parked_while(const std::function<outcome(int fd)>& close_it) {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  outcome closed;
  companion closer([&] {
    await_parked();
    closed = close_it(sv[0]);
  });
  char buf[16];
  const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
  closer.join();
  ::close(sv[1]);
  return outcomes{got, closed};
}

TEST(HookFdsTest, CloseByAnotherFiberOfASocketAFiberIsParkedOnMakesTheRecvFailWithEbadf) {
  const outcomes expected{failed(EBADF), returned(0)};
  EXPECT_EQ(on_a_thread(recv_after_close), expected);
  expect_on_a_fiber([] { return recv_parked_while([](int fd) { return capture([&] { return ::close(fd); }); }); },
                    expected);
}

TEST(HookFdsTest, CloseByAPlainThreadOfASocketAFiberIsParkedOnMakesTheRecvFailWithEbadf) {
  const outcomes expected{failed(EBADF), returned(0)};
  EXPECT_EQ(on_a_thread(recv_after_close), expected);
  expect_on_a_fiber(
      [] {
        return recv_parked_while([](int fd) {
          outcome closed;
          std::atomic<bool> done{false};
          std::thread plain([&] {
            closed = capture([&] { return ::close(fd); });
            done = true;
          });
          await(done);  // yields: the close waits for the parked recv to leave
          plain.join();
          return closed;
        });
      },
      expected);
}

TEST(HookFdsTest, CloseOfADescriptorThatIsNotOpenFailsWithEbadf) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const outcome first = capture([&] { return ::close(sv[0]); });
        const outcome again = capture([&] { return ::close(sv[0]); });
        const outcome negative = capture([] { return ::close(-1); });
        ::close(sv[1]);
        return outcomes{first, again, negative};
      },
      outcomes{returned(0), failed(EBADF), failed(EBADF)});
}

// ---- dup, dup2, dup3, F_DUPFD ----

struct dup_call {
  const char* name;
  std::function<int(int fd)> dup;
  bool cloexec;
};

void PrintTo(const dup_call& c, std::ostream* os) { *os << c.name; }

// A number well above the ones a test uses, for dup2 and dup3 to take.
constexpr int spare_number = 900;

const dup_call dup_calls[] = {
    {"Dup", [](int fd) { return ::dup(fd); }, false},
    {"Dup2", [](int fd) { return ::dup2(fd, spare_number); }, false},
    {"Dup3", [](int fd) { return ::dup3(fd, spare_number, O_CLOEXEC); }, true},
    {"FDupfd", [](int fd) { return ::fcntl(fd, F_DUPFD, 100); }, false},
    {"FDupfdCloexec", [](int fd) { return ::fcntl(fd, F_DUPFD_CLOEXEC, 100); }, true},
};

class HookFdsDupTest : public testing::TestWithParam<dup_call> {};

TEST_P(HookFdsDupTest, ACopyOfASocketIsBlockingToItsUserAndARecvOnItParks) {
  const dup_call& c = GetParam();
  expect_on_both(
      [&] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        int d = -1;
        const outcome made = descriptor(capture([&] { return d = c.dup(sv[0]); }));
        companion peer([&] {
          await_parked();
          (void)::send(sv[1], "copy", 4, 0);
          scribble_errno();
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(d, buf, sizeof buf, 0); });
        peer.join();
        const outcomes r{made, returned(nonblocking(d)), returned(cloexec(d)), got};
        close_all({d, sv[0], sv[1]});
        return r;
      },
      outcomes{made_descriptor(), returned(0), returned(c.cloexec), returned(4, "copy")});
}

INSTANTIATE_TEST_SUITE_P(Calls, HookFdsDupTest, testing::ValuesIn(dup_calls),
                         [](const testing::TestParamInfo<dup_call>& info) { return std::string(info.param.name); });

TEST(HookFdsTest, Dup2OverASocketAFiberIsParkedOnMakesTheRecvFailWithEbadfAndTheNumberReadsTheNewSocket) {
  // On a plain thread: the number reads the new socket after dup2().
  const auto after_dup2 = [] {
    int a[2];
    int b[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    const outcome duped = capture([&] { return ::dup2(b[0], a[0]) == a[0]; });
    (void)::send(b[1], "new socket", 10, 0);
    char buf[16];
    const outcome got = capture_into(buf, [&] { return ::recv(a[0], buf, sizeof buf, 0); });
    close_all({a[0], a[1], b[0], b[1]});
    return outcomes{duped, got};
  };
  EXPECT_EQ(on_a_thread(after_dup2), (outcomes{returned(1), returned(10, "new socket")}));
  expect_on_a_fiber(
      [] {
        int a[2];
        int b[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
        outcome duped;
        companion other([&] {
          await_parked();
          duped = capture([&] { return ::dup2(b[0], a[0]) == a[0]; });
          (void)::send(b[1], "new socket", 10, 0);
          scribble_errno();
        });
        char buf[16];
        const outcome parked = capture_into(buf, [&] { return ::recv(a[0], buf, sizeof buf, 0); });
        other.join();
        const outcome got = capture_into(buf, [&] { return ::recv(a[0], buf, sizeof buf, 0); });
        close_all({a[0], a[1], b[0], b[1]});
        return outcomes{parked, duped, got};
      },
      outcomes{failed(EBADF), returned(1), returned(10, "new socket")});
}

TEST(HookFdsTest, Dup2AndDup3FailAsTheKernelsDoAndLeaveTheTargetOpen) {
  expect_on_both(
      [] {
        int sv[2];
        int gone[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, gone), 0);
        close_all({gone[0], gone[1]});
        const outcomes r{
            capture([&] { return ::dup2(gone[0], sv[0]); }),        // EBADF: from is not open...
            returned(cloexec(sv[0]) >= 0),                         // ...and `to` stays open
            capture([&] { return ::dup2(sv[0], sv[0]) == sv[0]; }),  // the same: returns it
            capture([&] { return ::dup3(sv[0], sv[0], 0); }),       // the same: EINVAL
            capture([&] { return ::dup3(sv[0], sv[1], 0x1234); }),  // bad flags: EINVAL...
            returned(cloexec(sv[1]) >= 0),                         // ...and `to` stays open
            capture([&] { return ::dup2(sv[0], -1); }),             // EBADF
        };
        close_all({sv[0], sv[1]});
        return r;
      },
      outcomes{failed(EBADF), returned(1), returned(1), failed(EINVAL), failed(EINVAL), returned(1), failed(EBADF)});
}

// A dup2() or dup3() that fails leaves its target as it was (the kernel
// checks everything before it closes it): a call parked on the target
// stays parked, and gets what comes later.
struct failing_dup {
  const char* name;
  std::function<int(int gone, int live, int to)> dup;
  int error;
};

void PrintTo(const failing_dup& c, std::ostream* os) { *os << c.name; }

const failing_dup failing_dups[] = {
    {"Dup2FromADescriptorThatIsNotOpen", [](int gone, int, int to) { return ::dup2(gone, to); }, EBADF},
    {"Dup3FromADescriptorThatIsNotOpen", [](int gone, int, int to) { return ::dup3(gone, to, 0); }, EBADF},
    {"Dup3WithBadFlags", [](int, int live, int to) { return ::dup3(live, to, 0x1234); }, EINVAL},
};

class HookFdsFailingDupTest : public testing::TestWithParam<failing_dup> {};

TEST_P(HookFdsFailingDupTest, AFailingDupOverASocketAFiberIsParkedOnLeavesTheRecvParked) {
  const failing_dup& c = GetParam();
  expect_on_both(
      [&] {
        int sv[2];
        int other[2];
        int gone[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, gone), 0);
        close_all({gone[0], gone[1]});
        outcome duped;
        std::atomic<bool> done{false};
        companion peer([&] {
          await_parked();
          duped = capture([&] { return c.dup(gone[0], other[0], sv[0]); });
          await_parked_or(done);
          (void)::send(sv[1], "still parked", 12, 0);
          scribble_errno();
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
        done = true;
        peer.join();
        close_all({sv[0], sv[1], other[0], other[1]});
        return outcomes{got, duped};
      },
      outcomes{returned(12, "still parked"), failed(c.error)});
}

INSTANTIATE_TEST_SUITE_P(Calls, HookFdsFailingDupTest, testing::ValuesIn(failing_dups),
                         [](const testing::TestParamInfo<failing_dup>& info) { return std::string(info.param.name); });

// ---- Numbers closed and reused ----

// A socket a fiber has parked on (so that the hook registered it) is
// closed, and its number is given to a pipe: `reuse` closes the socket
// and makes the pipe, each through the hook or behind its back. A read
// of the number then parks on the pipe, never on the old registration.
struct reuse_way {
  const char* name;
  std::function<int(int fd)> close;
  std::function<int(int p[2])> pipe;
};

void PrintTo(const reuse_way& w, std::ostream* os) { *os << w.name; }

const reuse_way reuse_ways[] = {
    {"ClosedAndReusedThroughTheHook", [](int fd) { return ::close(fd); }, [](int p[2]) { return ::pipe(p); }},
    {"ClosedThroughTheHookReusedBehindItsBack", [](int fd) { return ::close(fd); },
     [](int p[2]) { return static_cast<int>(::syscall(SYS_pipe2, p, 0)); }},
    {"ClosedBehindTheHooksBackReusedThroughIt", [](int fd) { return static_cast<int>(::syscall(SYS_close, fd)); },
     [](int p[2]) { return ::pipe(p); }},
};

class HookFdsReuseTest : public testing::TestWithParam<reuse_way> {};

TEST_P(HookFdsReuseTest, ANumberClosedAndReusedIsNotConfusedWithTheDescriptorItWasBefore) {
  const reuse_way& way = GetParam();
  expect_on_both(
      [&] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const int number = sv[0];
        {
          companion peer([&] {
            await_parked();
            (void)::send(sv[1], "old", 3, 0);
          });
          char byte[3];
          EXPECT_EQ(::recv(number, byte, sizeof byte, 0), 3);
        }
        EXPECT_EQ(way.close(number), 0);
        int p[2];
        EXPECT_EQ(way.pipe(p), 0);
        const long same_number = p[0] == number;
        companion writer([&] {
          await_parked();
          (void)::send(sv[1], "to the old socket", 17, MSG_NOSIGNAL);  // gone: nobody reads it
          (void)::write(p[1], "new pipe", 8);
          scribble_errno();
        });
        char buf[32];
        const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
        writer.join();
        close_all({p[0], p[1], sv[1]});
        return outcomes{returned(same_number), got};
      },
      outcomes{returned(1), returned(8, "new pipe")});
}

INSTANTIATE_TEST_SUITE_P(Ways, HookFdsReuseTest, testing::ValuesIn(reuse_ways),
                         [](const testing::TestParamInfo<reuse_way>& info) { return std::string(info.param.name); });

// fclose() of a socket opened with fdopen() closes the descriptor with
// glibc's internal close, which no hook sees; the next descriptor given
// that number here is an eventfd, made without the hook too (eventfd() is
// not hooked), and non-blocking: a read of it fails with EAGAIN, whatever
// the number was before.
TEST(HookFdsTest, ANumberClosedByFcloseAndReusedByANonBlockingEventfdIsTakenForTheEventfd) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        std::FILE* f = ::fdopen(sv[0], "r+");
        EXPECT_NE(f, nullptr);
        std::fclose(f);
        const int e = ::eventfd(0, EFD_NONBLOCK);
        const long same_number = e == sv[0];
        std::atomic<bool> done{false};
        companion rescuer([&] {
          await_parked_or(done);
          if (!done.load()) (void)::eventfd_write(e, 1);  // the read parked: end it, and fail
        });
        std::uint64_t value = 0;
        const outcome got = capture([&] { return ::read(e, &value, sizeof value); });
        done = true;
        rescuer.join();
        const long flags = nonblocking(e);
        close_all({e, sv[1]});
        return outcomes{returned(same_number), got, returned(flags)};
      },
      outcomes{returned(1), failed(EAGAIN), returned(1)});
}

// ---- SO_RCVTIMEO ----

TEST(HookFdsTest, SoRcvtimeoSetBeforeTheHookSawTheSocketIsHonouredWhenItIsProbed) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const timeval tv = as_timeval(short_timeout);
        EXPECT_EQ(::syscall(SYS_setsockopt, sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
        rescue on_hang([&] { (void)::send(sv[1], "rescued", 7, 0); });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
        on_hang.done();
        close_all({sv[0], sv[1]});
        return outcomes{got};
      },
      outcomes{failed(EAGAIN)});
}

// Socket options belong to the socket, which a dup shares.
TEST(HookFdsTest, SoRcvtimeoSetThroughADupAppliesToTheOriginal) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const int d = ::dup(sv[0]);
        const timeval tv = as_timeval(short_timeout);
        EXPECT_EQ(::setsockopt(d, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
        rescue on_hang([&] { (void)::send(sv[1], "rescued", 7, 0); });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
        on_hang.done();
        close_all({d, sv[0], sv[1]});
        return outcomes{got};
      },
      outcomes{failed(EAGAIN)});
}

TEST(HookFdsTest, SoRcvtimeoOfZeroMeansNoTimeoutAndABadOneFailsWithEdomLeavingTheLastOne) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const auto set_timeout = [&](const timeval& tv) {
          return capture([&] { return ::setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); });
        };
        outcomes r;
        r.push_back(set_timeout(as_timeval(short_timeout)));
        r.push_back(set_timeout(timeval{0, 0}));
        r.push_back(set_timeout(timeval{0, 1'000'000}));
        companion peer([&] {
          await_parked();
          (void)::send(sv[1], "no timeout", 10, 0);
          scribble_errno();
        });
        char buf[16];
        r.push_back(capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); }));
        peer.join();
        close_all({sv[0], sv[1]});
        return r;
      },
      outcomes{returned(0), returned(0), failed(EDOM), returned(10, "no timeout")});
}

// Linux takes a negative SO_RCVTIMEO for zero time, not for none: a recv
// that would wait fails with EAGAIN at once.
TEST(HookFdsTest, ANegativeSoRcvtimeoMakesARecvFailWithEagainAtOnce) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const timeval negative{-1, 0};
        const outcome set =
            capture([&] { return ::setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &negative, sizeof negative); });
        std::atomic<bool> done{false};
        companion rescuer([&] {
          await_parked_or(done);
          if (!done.load()) (void)::send(sv[1], "parked", 6, 0);  // the recv parked: end it, and fail
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
        done = true;
        rescuer.join();
        close_all({sv[0], sv[1]});
        return outcomes{set, got};
      },
      outcomes{returned(0), failed(EAGAIN)});
}

}  // namespace
