// The hooked pipe calls on a fiber against the same calls on a plain
// thread: pipe, pipe2, read, readv, write, writev; a signal while a call
// waits; close and dup2 of a pipe a fiber is parked on; pipes the hook did
// not see made. test/hook/family_util.h says how each scenario runs on
// both, with its companion on the same worker.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "hook/family_util.h"
#include "sync/semaphore.h"

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

// queued(fd): the bytes waiting in the pipe (FIONREAD).
int queued(int fd) {
  int n = -1;
  return ::ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

// ignoring_sigpipe: SIGPIPE ignored for the scope (a write to a pipe
// without readers then fails with EPIPE instead of killing the program).
class ignoring_sigpipe {
 public:
  ignoring_sigpipe() {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    EXPECT_EQ(::sigaction(SIGPIPE, &sa, &old_), 0);
  }
  ignoring_sigpipe(const ignoring_sigpipe&) = delete;
  ignoring_sigpipe& operator=(const ignoring_sigpipe&) = delete;
  ~ignoring_sigpipe() { ::sigaction(SIGPIPE, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

// ---- pipe, pipe2 ----

TEST(HookPipesTest, APipeIsBlockingToItsUserEvenAfterAFiberHasWaitedOnIt) {
  expect_on_both(
      [] {
        outcomes r;
        int p[2] = {-1, -1};
        r.push_back(capture([&] { return ::pipe(p); }));
        r.push_back(returned(nonblocking(p[0]) + nonblocking(p[1])));
        companion writer([&] {
          await_parked();
          (void)::write(p[1], "x", 1);
          scribble_errno();
        });
        char byte = 0;
        r.push_back(capture_into(&byte, [&] { return ::read(p[0], &byte, 1); }));
        writer.join();
        r.push_back(returned(nonblocking(p[0]) + nonblocking(p[1])));
        int q[2] = {-1, -1};
        r.push_back(capture([&] { return ::pipe2(q, O_NONBLOCK | O_CLOEXEC); }));
        r.push_back(returned(nonblocking(q[0]) + nonblocking(q[1])));
        r.push_back(returned(cloexec(q[0]) + cloexec(q[1])));
        r.push_back(capture([&] { return ::pipe2(q, 0x7fff0000); }));
        close_all({p[0], p[1], q[0], q[1]});
        return r;
      },
      outcomes{returned(0), returned(0), returned(1, "x"), returned(0), returned(0), returned(2), returned(2),
               failed(EINVAL)});
}

// ---- read, readv ----

TEST(HookPipesTest, AReadOnAPipeParksUntilAnotherFiberOnTheSameWorkerWritesAndReturnsWhatCame) {
  expect_on_both(
      [] {
        int p[2];
        EXPECT_EQ(::pipe(p), 0);
        long wrote = 0;
        companion writer([&] {
          await_parked();
          wrote = ::write(p[1], "hello", 5);
          scribble_errno();
        });
        char buf[100];
        const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
        writer.join();
        close_all({p[0], p[1]});
        return outcomes{got, returned(wrote)};
      },
      outcomes{returned(5, "hello"), returned(5)});
}

TEST(HookPipesTest, AReadvOnAPipeParksAndScattersWhatAnotherFiberWrote) {
  expect_on_both(
      [] {
        int p[2];
        EXPECT_EQ(::pipe(p), 0);
        companion writer([&] {
          await_parked();
          (void)::write(p[1], "scattered!", 10);
          scribble_errno();
        });
        char a[3];
        char b[100];
        iovec iov[2] = {{a, sizeof a}, {b, sizeof b}};
        outcome got = capture([&] { return ::readv(p[0], iov, 2); });
        if (got.result == 10) got.data = std::string(a, 3) + "|" + std::string(b, 7);
        writer.join();
        close_all({p[0], p[1]});
        return outcomes{got};
      },
      outcomes{returned(10, "sca|ttered!")});
}

TEST(HookPipesTest, AReadParkedOnAPipeReturnsZeroWhenTheLastWriterCloses) {
  expect_on_both(
      [] {
        int p[2];
        EXPECT_EQ(::pipe(p), 0);
        companion writer([&] {
          await_parked();
          ::close(p[1]);
          scribble_errno();
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
        writer.join();
        ::close(p[0]);
        return outcomes{got};
      },
      outcomes{returned(0)});
}

TEST(HookPipesTest, CallsOnAPipeMadeWithONonblockFailWithEagainInsteadOfParking) {
  expect_on_both(
      [] {
        int p[2];
        EXPECT_EQ(::pipe2(p, O_NONBLOCK), 0);
        std::atomic<bool> done{false};
        companion rescuer([&] {
          await_parked_or(done);
          if (!done.load()) (void)::write(p[1], "parked", 6);  // the read parked: end it, and fail
        });
        char buf[16];
        const outcome read_empty = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
        done = true;
        rescuer.join();
        const std::string chunk(4096, 'f');
        while (::write(p[1], chunk.data(), chunk.size()) > 0) {
        }
        while (::write(p[1], chunk.data(), 1) > 0) {
        }
        const outcome write_full = capture([&] { return ::write(p[1], chunk.data(), chunk.size()); });
        close_all({p[0], p[1]});
        return outcomes{read_empty, write_full};
      },
      outcomes{failed(EAGAIN), failed(EAGAIN)});
}

// ---- write, writev: a blocking write on a pipe writes everything ----

struct write_call {
  const char* name;
  std::function<ssize_t(int fd, const std::string& data)> call;
};

void PrintTo(const write_call& c, std::ostream* os) { *os << c.name; }

const write_call write_calls[] = {
    {"Write", [](int fd, const std::string& d) { return ::write(fd, d.data(), d.size()); }},
    {"Writev",
     [](int fd, const std::string& d) {
       char* p = const_cast<char*>(d.data());
       const std::size_t half = d.size() / 2;
       const iovec iov[3] = {{p, 1}, {p + 1, half - 1}, {p + half, d.size() - half}};
       return ::writev(fd, iov, 3);
     }},
};

class HookPipesWriteAllTest : public testing::TestWithParam<write_call> {};

TEST_P(HookPipesWriteAllTest, ALargeWriteToAPipeReturnsOnceASlowReaderOnTheSameWorkerHasTakenAllOfIt) {
  const write_call& c = GetParam();
  expect_on_both(
      [&] {
        int p[2];
        EXPECT_EQ(::pipe(p), 0);
        const std::string data = pattern(large_transfer, 11);
        std::string got;
        companion slow([&] { got = read_slowly(p[0], data.size()); });
        const outcome wrote = capture([&] { return c.call(p[1], data); });
        ::close(p[1]);  // a short write ends the reader too
        slow.join();
        ::close(p[0]);
        return outcomes{wrote, returned(got == data)};
      },
      outcomes{returned(static_cast<long>(large_transfer)), returned(1)});
}

TEST_P(HookPipesWriteAllTest, ALargeWriteParkedOnAFullPipeReturnsWhatItWroteWhenTheReaderCloses) {
  const write_call& c = GetParam();
  ignoring_sigpipe no_sigpipe;
  expect_on_both(
      [&] {
        int p[2];
        EXPECT_EQ(::pipe(p), 0);
        const int capacity = ::fcntl(p[0], F_GETPIPE_SZ);
        companion reader([&] {
          while (queued(p[0]) < capacity) let_others_run();  // the writer has filled it...
          await_parked();                                    // ...and waits for room
          ::close(p[0]);
          scribble_errno();
        });
        const outcome wrote = capture([&] { return c.call(p[1], pattern(large_transfer)); });
        reader.join();
        ::close(p[1]);
        return outcomes{outcome{wrote.result == capacity ? 1 : wrote.result, wrote.error, {}}};
      },
      outcomes{returned(1) /* the pipe's capacity, and no error */});
}

INSTANTIATE_TEST_SUITE_P(Calls, HookPipesWriteAllTest, testing::ValuesIn(write_calls),
                         [](const testing::TestParamInfo<write_call>& info) { return std::string(info.param.name); });

// ---- Signals: no EINTR on a fiber; the kernel's EINTR on a plain thread ----

// A blocking read of an empty pipe, and a SIGUSR1 (handler without
// SA_RESTART) sent to its thread while it waits; then a write. On a plain
// thread the kernel ends the read with EINTR; on a fiber the read stays
// parked and returns what was written after the signal.
outcomes read_interrupted_by_a_signal() {
  interrupting_signal handler;
  const int before = interrupting_signal::delivered();
  int p[2];
  EXPECT_EQ(::pipe(p), 0);
  const pthread_t reader_thread = ::pthread_self();
  std::atomic<bool> done{false};
  companion writer([&] {
    await_parked();
    if (on_fiber()) {
      interrupting_signal::send(reader_thread);  // the worker's thread: the handler runs here, now
    } else {
      interrupting_signal::interrupt_until(reader_thread, done);
    }
    (void)::write(p[1], "after the signal", 16);
    scribble_errno();
  });
  char buf[32];
  const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
  done = true;
  writer.join();
  close_all({p[0], p[1]});
  return outcomes{got, returned(interrupting_signal::delivered() > before)};
}

TEST(HookPipesTest, ASignalWithoutSaRestartEndsAPlainThreadsBlockingReadWithEintrButNotAReadParkedOnAFiber) {
  EXPECT_EQ(on_a_thread(read_interrupted_by_a_signal), (outcomes{failed(EINTR), returned(1)}));
  EXPECT_EQ(on_a_fiber(read_interrupted_by_a_signal), (outcomes{returned(16, "after the signal"), returned(1)}));
}

// The same, with the signal sent by a plain thread while the worker has
// nothing to run (both fibers parked): it lands in the worker's own wait.
TEST(HookPipesTest, ASignalThatLandsWhileTheWorkerIdlesDoesNotBreakAReadParkedOnAFiber) {
  interrupting_signal handler;
  const outcomes r = on_a_fiber([] {
    const int before = interrupting_signal::delivered();
    int p[2];
    EXPECT_EQ(::pipe(p), 0);
    const pthread_t worker = ::pthread_self();
    companion writer([&] {
      await_parked();
      spindle::binary_semaphore signalled(0);
      std::thread signaller([&] {
        while (interrupting_signal::delivered() == before) {
          interrupting_signal::send(worker);
          std::this_thread::yield();
        }
        signalled.release();
      });
      signalled.acquire();  // parks too: the worker idles until the signal has landed
      signaller.join();
      (void)::write(p[1], "after the signal", 16);
      scribble_errno();
    });
    char buf[32];
    const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
    writer.join();
    close_all({p[0], p[1]});
    return outcomes{got, returned(interrupting_signal::delivered() > before)};
  });
  EXPECT_EQ(r, (outcomes{returned(16, "after the signal"), returned(1)}));
}


// ---- close, dup2 of a pipe a fiber is parked on ----

// What a plain thread's read of a descriptor closed before it gets: the
// kernel's answer that a parked call gets too.
outcomes read_after_close() {
  int p[2];
  EXPECT_EQ(::pipe(p), 0);
  const outcome closed = capture([&] { return ::close(p[0]); });
  char buf[16];
  const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
  ::close(p[1]);
  return outcomes{got, closed};
}

TEST(HookPipesTest, CloseByAnotherFiberOfAPipeAFiberIsParkedOnMakesTheReadFailWithEbadf) {
  const outcomes expected{failed(EBADF), returned(0)};
  EXPECT_EQ(on_a_thread(read_after_close), expected);
  expect_on_a_fiber([] {
              int p[2];
              EXPECT_EQ(::pipe(p), 0);
              outcome closed;
              companion closer([&] {
                await_parked();
                closed = capture([&] { return ::close(p[0]); });
              });
              char buf[16];
              const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
              closer.join();
              ::close(p[1]);
              return outcomes{got, closed};
            },
            expected);
}

TEST(HookPipesTest, CloseByAPlainThreadOfAPipeAFiberIsParkedOnMakesTheReadFailWithEbadf) {
  const outcomes expected{failed(EBADF), returned(0)};
  EXPECT_EQ(on_a_thread(read_after_close), expected);
  expect_on_a_fiber([] {
              int p[2];
              EXPECT_EQ(::pipe(p), 0);
              outcome closed;
              companion closer([&] {
                await_parked();
                std::atomic<bool> done{false};
                std::thread plain([&] {
                  closed = capture([&] { return ::close(p[0]); });
                  done = true;
                });
                await(done);  // yields: the close waits for the parked read to leave
                plain.join();
              });
              char buf[16];
              const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
              closer.join();
              ::close(p[1]);
              return outcomes{got, closed};
            },
            expected);
}

// Two fibers read one pipe: one is parked on the netpoll, the other waits
// its turn (the hook's per-direction lock). A close ends both.
TEST(HookPipesTest, CloseOfAPipeTwoFibersAreWaitingToReadEndsBothReadsWithEbadf) {
  expect_on_a_fiber([] {
              int p[2];
              EXPECT_EQ(::pipe(p), 0);
              outcome second;
              std::atomic<bool> second_reading{false};
              companion second_reader([&] {
                await_parked();
                char buf[16];
                // From here to its park (behind the first reader) this fiber
                // runs without a switch: the worker is its alone.
                second_reading = true;
                second = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
              });
              outcome closed;
              companion closer([&] {
                await_parked();
                await(second_reading);
                closed = capture([&] { return ::close(p[0]); });
              });
              char buf[16];
              const outcome first = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
              second_reader.join();
              closer.join();
              ::close(p[1]);
              return outcomes{first, second, closed};
            },
            outcomes{failed(EBADF), failed(EBADF), returned(0)});
}

// dup2() over a descriptor a fiber is parked on closes it first: the
// parked read fails with EBADF; the number then reads the new file.
TEST(HookPipesTest, Dup2OverAPipeAFiberIsParkedOnMakesTheReadFailWithEbadfAndTheNumberReadsTheNewPipe) {
  // On a plain thread: the number reads the new pipe after dup2().
  const auto after_dup2 = [] {
    int p[2];
    int q[2];
    EXPECT_EQ(::pipe(p), 0);
    EXPECT_EQ(::pipe(q), 0);
    const outcome duped = capture([&] { return ::dup2(q[0], p[0]) == p[0]; });
    (void)::write(q[1], "new pipe", 8);
    char buf[16];
    const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
    close_all({p[0], p[1], q[0], q[1]});
    return outcomes{duped, got};
  };
  EXPECT_EQ(on_a_thread(after_dup2), (outcomes{returned(1), returned(8, "new pipe")}));
  expect_on_a_fiber([] {
              int p[2];
              int q[2];
              EXPECT_EQ(::pipe(p), 0);
              EXPECT_EQ(::pipe(q), 0);
              outcome duped;
              companion other([&] {
                await_parked();
                duped = capture([&] { return ::dup2(q[0], p[0]) == p[0]; });
                (void)::write(q[1], "new pipe", 8);
                scribble_errno();
              });
              char buf[16];
              const outcome parked = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
              other.join();
              const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
              close_all({p[0], p[1], q[0], q[1]});
              return outcomes{parked, duped, got};
            },
            outcomes{failed(EBADF), returned(1), returned(8, "new pipe")});
}

// ---- Pipes the hook did not see made (inherited, or made by a raw system call) ----

TEST(HookPipesTest, AReadOfAPipeMadeBehindTheHooksBackParksUntilAnotherFiberWrites) {
  expect_on_both(
      [] {
        int p[2];
        EXPECT_EQ(::syscall(SYS_pipe2, p, 0), 0);
        companion writer([&] {
          await_parked();
          (void)::write(p[1], "foreign", 7);
          scribble_errno();
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
        writer.join();
        const long flags = nonblocking(p[0]) + nonblocking(p[1]);
        close_all({p[0], p[1]});
        return outcomes{got, returned(flags)};
      },
      outcomes{returned(7, "foreign"), returned(0)});
}

TEST(HookPipesTest, ALargeWriteToAPipeMadeBehindTheHooksBackReturnsOnceASlowReaderOnTheSameWorkerHasTakenAllOfIt) {
  expect_on_both(
      [] {
        int p[2];
        EXPECT_EQ(::syscall(SYS_pipe2, p, 0), 0);
        const std::string data = pattern(large_transfer, 13);
        std::atomic<std::size_t> rescued{0};
        std::string got;
        companion slow([&] { got = read_slowly(p[0], data.size()); });
        rescue on_hang([&] {
          std::string sink(65536, '\0');
          while (rescued.load() < data.size()) {
            const ssize_t r = ::read(p[0], sink.data(), sink.size());
            if (r <= 0) break;
            rescued += static_cast<std::size_t>(r);
          }
        });
        const outcome wrote = capture([&] { return ::write(p[1], data.data(), data.size()); });
        on_hang.done();
        ::close(p[1]);
        slow.join();
        ::close(p[0]);
        return outcomes{wrote, returned(got == data), returned(on_hang.used())};
      },
      outcomes{returned(static_cast<long>(large_transfer)), returned(1), returned(0) /* no rescue */});
}

TEST(HookPipesTest, CloseOfAPipeMadeBehindTheHooksBackMakesAReadParkedOnItFailWithEbadf) {
  expect_on_a_fiber([] {
              int p[2];
              EXPECT_EQ(::syscall(SYS_pipe2, p, 0), 0);
              outcome closed;
              std::atomic<bool> done{false};
              companion closer([&] {
                await_parked();  // the read waits for the FIFO to become readable
                closed = capture([&] { return ::close(p[0]); });
              });
              rescue on_hang([&] { (void)::write(p[1], "rescued", 7); });
              char buf[16];
              const outcome got = capture_into(buf, [&] { return ::read(p[0], buf, sizeof buf); });
              done = true;
              on_hang.done();
              closer.join();
              ::close(p[1]);
              return outcomes{got, closed, returned(on_hang.used())};
            },
            outcomes{failed(EBADF), returned(0), returned(0) /* no rescue */});
}

}  // namespace
