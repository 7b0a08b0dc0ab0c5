// The hooked waits on several descriptors on a fiber against the same
// calls on a plain thread: poll, ppoll, select, pselect, epoll_wait.
// test/hook/family_util.h says how each scenario runs on both, with its
// companion on the same worker.
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "hook/family_util.h"

namespace {

using namespace spindle::test::family;
using outcomes = std::vector<outcome>;

void close_all(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

// pipes<N>: N pipes, closed at the end of the scope.
template <std::size_t N>
struct pipes {
  std::array<std::array<int, 2>, N> p{};
  pipes() {
    for (auto& one : p) EXPECT_EQ(::pipe(one.data()), 0);
  }
  ~pipes() {
    for (auto& one : p) close_all({one[0], one[1]});
  }
  int read_end(std::size_t i) const { return p[i][0]; }
  int write_end(std::size_t i) const { return p[i][1]; }
};

// events(fds, n): each entry's revents, by name ("-" for none), joined
// with '|', as an outcome's data.
std::string events(const pollfd* fds, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) s += '|';
    std::string e;
    for (auto [bit, name] : {std::pair{POLLIN, "IN"}, {POLLPRI, "PRI"}, {POLLOUT, "OUT"}, {POLLERR, "ERR"},
                             {POLLHUP, "HUP"}, {POLLNVAL, "NVAL"}}) {
      if (fds[i].revents & bit) e += e.empty() ? name : std::string("+") + name;
    }
    s += e.empty() ? "-" : e;
  }
  return s;
}

template <class Call>
outcome capture_poll(pollfd* fds, std::size_t n, Call call) {
  outcome o = capture(call);
  o.data = events(fds, n);
  return o;
}

// ---- poll ----

TEST(HookPollTest, PollOnAFiberParksOnSeveralDescriptorsAndReportsTheOneAnotherFiberWroteTo) {
  for (const int timeout : {-1, 60'000}) {
    expect_on_both(
        [timeout] {
          pipes<3> p;
          companion writer([&] {
            await_parked();
            (void)::write(p.write_end(1), "x", 1);
            scribble_errno();
          });
          pollfd fds[3] = {{p.read_end(0), POLLIN, 0}, {p.read_end(1), POLLIN, 0}, {p.read_end(2), POLLIN, 0}};
          const outcome got = capture_poll(fds, 3, [&] { return ::poll(fds, 3, timeout); });
          writer.join();
          return outcomes{got};
        },
        outcomes{returned(1, "-|IN|-")});
  }
}

TEST(HookPollTest, PollWithATimeoutAndNothingReadyReturnsZeroOnceTheTimeoutHasPassed) {
  expect_on_both(
      [] {
        pipes<2> p;
        pollfd fds[2] = {{p.read_end(0), POLLIN, 0}, {p.read_end(1), POLLIN, 0}};
        const auto start = std::chrono::steady_clock::now();
        const outcome got =
            capture_poll(fds, 2, [&] { return ::poll(fds, 2, static_cast<int>(short_timeout.count())); });
        EXPECT_GE(elapsed_since(start), short_timeout);
        return outcomes{got};
      },
      outcomes{returned(0, "-|-")});
}

TEST(HookPollTest, PollWithAZeroTimeoutReturnsAtOnceWithWhatIsReady) {
  expect_on_both(
      [] {
        pipes<2> p;
        pollfd fds[2] = {{p.read_end(0), POLLIN, 0}, {p.write_end(1), POLLOUT, 0}};
        const outcome some = capture_poll(fds, 2, [&] { return ::poll(fds, 2, 0); });
        const outcome none = capture_poll(fds, 1, [&] { return ::poll(fds, 1, 0); });
        return outcomes{some, none};
      },
      outcomes{returned(1, "-|OUT"), returned(0, "-")});
}

TEST(HookPollTest, PollOnAFiberReportsPollhupWhenTheWriterClosesWhileItIsParked) {
  expect_on_both(
      [] {
        int p[2];
        EXPECT_EQ(::pipe(p), 0);
        companion writer([&] {
          await_parked();
          ::close(p[1]);
          scribble_errno();
        });
        pollfd fds[1] = {{p[0], POLLIN, 0}};
        const outcome got = capture_poll(fds, 1, [&] { return ::poll(fds, 1, -1); });
        writer.join();
        ::close(p[0]);
        return outcomes{got};
      },
      outcomes{returned(1, "HUP")});
}

TEST(HookPollTest, PollIgnoresANegativeDescriptorAndReportsPollnvalForAClosedOneAtOnce) {
  expect_on_both(
      [] {
        pipes<1> p;
        int closed[2];
        EXPECT_EQ(::pipe(closed), 0);
        close_all({closed[0], closed[1]});
        pollfd fds[3] = {{-1, POLLIN, 0}, {closed[0], POLLIN, 0}, {p.read_end(0), POLLIN, 0}};
        const outcome got = capture_poll(fds, 3, [&] { return ::poll(fds, 3, 60'000); });
        return outcomes{got};
      },
      outcomes{returned(1, "-|NVAL|-")});
}

TEST(HookPollTest, PollOfTheSameDescriptorTwiceReportsBothEntries) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        (void)fill_send_buffer(sv[0]);  // not writable
        companion peer([&] {
          await_parked();
          (void)::send(sv[1], "x", 1, 0);
          scribble_errno();
        });
        pollfd fds[2] = {{sv[0], POLLOUT, 0}, {sv[0], POLLIN, 0}};
        const outcome got = capture_poll(fds, 2, [&] { return ::poll(fds, 2, -1); });
        peer.join();
        close_all({sv[0], sv[1]});
        return outcomes{got};
      },
      outcomes{returned(1, "-|IN")});
}

TEST(HookPollTest, PollOfNoDescriptorsOnAFiberSleepsForTheTimeoutWhileAnotherFiberRuns) {
  expect_on_both(
      [] {
        std::atomic<bool> done{false};
        bool saw_it_parked = !on_fiber();  // a plain thread's poll is the kernel's
        companion other([&] {
          if (!on_fiber()) return;
          await_parked_or(done);
          saw_it_parked = !done.load();
        });
        const auto start = std::chrono::steady_clock::now();
        const outcome got = capture([] { return ::poll(nullptr, 0, static_cast<int>(short_timeout.count())); });
        EXPECT_GE(elapsed_since(start), short_timeout);
        done = true;
        other.join();
        return outcomes{got, returned(saw_it_parked)};
      },
      outcomes{returned(0), returned(1)});
}

// A fiber parked in poll is woken when one of its descriptors is closed
// through the hook, and poll reports POLLNVAL for it (docs/hook.md; the
// kernel's poll would wait on until its timeout).
TEST(HookPollTest, PollOnAFiberWokenByACloseOfOneOfItsDescriptorsReportsPollnvalForIt) {
  expect_on_a_fiber(
      [] {
        pipes<1> p;
        int q[2];
        EXPECT_EQ(::pipe(q), 0);
        companion closer([&] {
          await_parked();
          ::close(q[0]);
          scribble_errno();
        });
        pollfd fds[2] = {{p.read_end(0), POLLIN, 0}, {q[0], POLLIN, 0}};
        const outcome got = capture_poll(fds, 2, [&] { return ::poll(fds, 2, -1); });
        closer.join();
        ::close(q[1]);
        return outcomes{got};
      },
      outcomes{returned(1, "-|NVAL")});
}

// ---- ppoll ----

TEST(HookPollTest, PpollOnAFiberParksUntilAnotherFiberWritesWithOrWithoutATimeout) {
  for (const bool with_timeout : {true, false}) {
    expect_on_both(
        [with_timeout] {
          pipes<2> p;
          companion writer([&] {
            await_parked();
            (void)::write(p.write_end(0), "x", 1);
            scribble_errno();
          });
          const timespec ts{60, 0};
          pollfd fds[2] = {{p.read_end(0), POLLIN, 0}, {p.read_end(1), POLLIN, 0}};
          const outcome got =
              capture_poll(fds, 2, [&] { return ::ppoll(fds, 2, with_timeout ? &ts : nullptr, nullptr); });
          writer.join();
          return outcomes{got, returned(ts.tv_sec)};
        },
        outcomes{returned(1, "IN|-"), returned(60) /* ppoll leaves its timespec alone */});
  }
}

TEST(HookPollTest, PpollWithATimeoutAndNothingReadyReturnsZeroOnceTheTimeoutHasPassed) {
  expect_on_both(
      [] {
        pipes<1> p;
        const timespec ts{0, std::chrono::nanoseconds(short_timeout).count()};
        pollfd fds[1] = {{p.read_end(0), POLLIN, 0}};
        const auto start = std::chrono::steady_clock::now();
        const outcome got = capture_poll(fds, 1, [&] { return ::ppoll(fds, 1, &ts, nullptr); });
        EXPECT_GE(elapsed_since(start), short_timeout);
        return outcomes{got};
      },
      outcomes{returned(0, "-")});
}

TEST(HookPollTest, PpollWithAnInvalidTimeoutFailsWithEinval) {
  expect_on_both(
      [] {
        pipes<1> p;
        pollfd fds[1] = {{p.read_end(0), POLLIN, 0}};
        const timespec too_many_ns{0, 1'000'000'000};
        const timespec negative{-1, 0};
        return outcomes{capture([&] { return ::ppoll(fds, 1, &too_many_ns, nullptr); }),
                        capture([&] { return ::ppoll(fds, 1, &negative, nullptr); })};
      },
      outcomes{failed(EINVAL), failed(EINVAL)});
}

// ---- select, pselect ----

// in(set, n): which of the first n descriptors `set` holds, as "3,5".
std::string in(const fd_set& set, int n) {
  std::string s;
  for (int fd = 0; fd < n; ++fd) {
    if (FD_ISSET(fd, &set)) s += (s.empty() ? "" : ",") + std::to_string(fd);
  }
  return s.empty() ? "-" : s;
}

TEST(HookPollTest, SelectOnAFiberParksAndReportsOnlyTheDescriptorAnotherFiberWroteToAndUpdatesItsTimeval) {
  expect_on_both(
      [] {
        pipes<3> p;
        companion writer([&] {
          await_parked();
          (void)::write(p.write_end(2), "x", 1);
          scribble_errno();
        });
        fd_set rd;
        FD_ZERO(&rd);
        int nfds = 0;
        for (std::size_t i = 0; i < 3; ++i) {
          FD_SET(p.read_end(i), &rd);
          nfds = std::max(nfds, p.read_end(i) + 1);
        }
        timeval tv{60, 0};
        const outcome got = capture([&] { return ::select(nfds, &rd, nullptr, nullptr, &tv); });
        writer.join();
        const long only_the_written = in(rd, nfds) == std::to_string(p.read_end(2));
        // Linux writes back the time left: less than asked, more than none.
        const long time_left = (tv.tv_sec < 60 || (tv.tv_sec == 60 && tv.tv_usec == 0)) && (tv.tv_sec > 0);
        return outcomes{got, returned(only_the_written), returned(time_left)};
      },
      outcomes{returned(1), returned(1), returned(1)});
}

TEST(HookPollTest, SelectWithATimeoutAndNothingReadyReturnsZeroEmptiesItsSetsAndZeroesItsTimeval) {
  expect_on_both(
      [] {
        pipes<2> p;
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(p.read_end(0), &rd);
        FD_SET(p.read_end(1), &rd);
        const int nfds = std::max(p.read_end(0), p.read_end(1)) + 1;
        timeval tv = as_timeval(short_timeout);
        const auto start = std::chrono::steady_clock::now();
        const outcome got = capture([&] { return ::select(nfds, &rd, nullptr, nullptr, &tv); });
        EXPECT_GE(elapsed_since(start), short_timeout);
        return outcomes{got, returned(0, in(rd, nfds)), returned(tv.tv_sec * 1'000'000 + tv.tv_usec)};
      },
      outcomes{returned(0), returned(0, "-"), returned(0)});
}

TEST(HookPollTest, SelectReportsAWritableSocketAtOnceAndFailsWithEbadfOnAClosedDescriptor) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        fd_set rd;
        fd_set wr;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        FD_SET(sv[0], &rd);
        FD_SET(sv[0], &wr);
        timeval tv{60, 0};
        const outcome writable = capture([&] { return ::select(sv[0] + 1, &rd, &wr, nullptr, &tv); });
        const std::string sets = in(rd, sv[0] + 1) + "/" + in(wr, sv[0] + 1);
        int closed[2];
        EXPECT_EQ(::pipe(closed), 0);
        close_all({closed[0], closed[1]});
        fd_set bad;
        FD_ZERO(&bad);
        FD_SET(closed[0], &bad);
        tv = timeval{60, 0};
        const outcome ebadf = capture([&] { return ::select(closed[0] + 1, &bad, nullptr, nullptr, &tv); });
        const outcome einval = capture([&] { return ::select(-1, nullptr, nullptr, nullptr, &tv); });
        const std::string expected_sets = "-/" + std::to_string(sv[0]);
        close_all({sv[0], sv[1]});
        return outcomes{writable, returned(sets == expected_sets), ebadf, einval};
      },
      outcomes{returned(1), returned(1), failed(EBADF), failed(EINVAL)});
}

// The kernel takes sets of any size (nfds past FD_SETSIZE, in memory the
// caller made large enough); so does the hook.
TEST(HookPollTest, SelectTakesADescriptorNumberedPastFdSetsizeInALargerSet) {
  ASSERT_GE(spindle::test::raise_descriptor_limit(), static_cast<rlim_t>(2 * FD_SETSIZE));
  expect_on_both(
      [] {
        int p[2];
        EXPECT_EQ(::pipe(p), 0);
        const int high = FD_SETSIZE + 100;
        EXPECT_EQ(::dup2(p[0], high), high);
        companion writer([&] {
          await_parked();
          (void)::write(p[1], "x", 1);
          scribble_errno();
        });
        constexpr int bits = 8 * sizeof(__fd_mask);
        std::vector<__fd_mask> set(2 * FD_SETSIZE / bits, 0);  // FD_SET would stop at FD_SETSIZE
        set[high / bits] |= __fd_mask(1) << (high % bits);
        timeval tv{60, 0};
        const outcome got =
            capture([&] { return ::select(high + 1, reinterpret_cast<fd_set*>(set.data()), nullptr, nullptr, &tv); });
        writer.join();
        const long still_set = (set[high / bits] >> (high % bits)) & 1;
        close_all({high, p[0], p[1]});
        return outcomes{got, returned(still_set)};
      },
      outcomes{returned(1), returned(1)});
}

TEST(HookPollTest, PselectOnAFiberParksUntilAnotherFiberWritesAndLeavesItsTimespecAlone) {
  expect_on_both(
      [] {
        pipes<2> p;
        companion writer([&] {
          await_parked();
          (void)::write(p.write_end(1), "x", 1);
          scribble_errno();
        });
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(p.read_end(0), &rd);
        FD_SET(p.read_end(1), &rd);
        const int nfds = std::max(p.read_end(0), p.read_end(1)) + 1;
        const timespec ts{60, 0};
        const outcome got = capture([&] { return ::pselect(nfds, &rd, nullptr, nullptr, &ts, nullptr); });
        writer.join();
        return outcomes{got, returned(in(rd, nfds) == std::to_string(p.read_end(1))), returned(ts.tv_sec)};
      },
      outcomes{returned(1), returned(1), returned(60)});
}

TEST(HookPollTest, PselectWithATimeoutAndNothingReadyReturnsZeroOnceTheTimeoutHasPassed) {
  expect_on_both(
      [] {
        pipes<1> p;
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(p.read_end(0), &rd);
        const timespec ts{0, std::chrono::nanoseconds(short_timeout).count()};
        const auto start = std::chrono::steady_clock::now();
        const outcome got = capture([&] { return ::pselect(p.read_end(0) + 1, &rd, nullptr, nullptr, &ts, nullptr); });
        EXPECT_GE(elapsed_since(start), short_timeout);
        return outcomes{got, returned(0, in(rd, p.read_end(0) + 1))};
      },
      outcomes{returned(0), returned(0, "-")});
}

// ---- epoll_wait ----

TEST(HookPollTest, EpollWaitOnAFiberParksUntilAnotherFiberWritesAndReturnsTheEvent) {
  for (const int timeout : {-1, 60'000}) {
    expect_on_both(
        [timeout] {
          pipes<2> p;
          const int ep = ::epoll_create1(EPOLL_CLOEXEC);
          for (std::size_t i = 0; i < 2; ++i) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = 100 + i;
            EXPECT_EQ(::epoll_ctl(ep, EPOLL_CTL_ADD, p.read_end(i), &ev), 0);
          }
          companion writer([&] {
            await_parked();
            (void)::write(p.write_end(1), "x", 1);
            scribble_errno();
          });
          epoll_event got[4] = {};
          const outcome waited = capture([&] { return ::epoll_wait(ep, got, 4, timeout); });
          writer.join();
          ::close(ep);
          return outcomes{waited, returned(static_cast<long>(got[0].data.u64)), returned(got[0].events)};
        },
        outcomes{returned(1), returned(101), returned(EPOLLIN)});
  }
}

TEST(HookPollTest, EpollWaitWithATimeoutAndNothingReadyReturnsZeroOnceTheTimeoutHasPassed) {
  expect_on_both(
      [] {
        pipes<1> p;
        const int ep = ::epoll_create1(EPOLL_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN;
        EXPECT_EQ(::epoll_ctl(ep, EPOLL_CTL_ADD, p.read_end(0), &ev), 0);
        epoll_event got[4];
        const auto start = std::chrono::steady_clock::now();
        const outcome waited =
            capture([&] { return ::epoll_wait(ep, got, 4, static_cast<int>(short_timeout.count())); });
        EXPECT_GE(elapsed_since(start), short_timeout);
        const outcome at_once = capture([&] { return ::epoll_wait(ep, got, 4, 0); });
        ::close(ep);
        return outcomes{waited, at_once};
      },
      outcomes{returned(0), returned(0)});
}

TEST(HookPollTest, EpollWaitWithNoRoomForEventsOrOnADescriptorThatIsNoEpollFailsWithEinval) {
  expect_on_both(
      [] {
        pipes<1> p;
        const int ep = ::epoll_create1(EPOLL_CLOEXEC);
        epoll_event got[1];
        const outcome no_room = capture([&] { return ::epoll_wait(ep, got, 0, -1); });
        const outcome not_epoll = capture([&] { return ::epoll_wait(p.read_end(0), got, 1, -1); });
        ::close(ep);
        const outcome closed = capture([&] { return ::epoll_wait(ep, got, 1, -1); });
        return outcomes{no_room, not_epoll, closed};
      },
      outcomes{failed(EINVAL), failed(EINVAL), failed(EBADF)});
}

// ---- Signals ----

// A poll with no timeout on an empty pipe, a SIGUSR1 (handler without
// SA_RESTART) while it waits, then a write: poll is never restarted by the
// kernel, so a plain thread's fails with EINTR; a fiber's goes on waiting.
outcomes poll_interrupted_by_a_signal() {
  interrupting_signal handler;
  const int before = interrupting_signal::delivered();
  int p[2];
  EXPECT_EQ(::pipe(p), 0);
  const pthread_t poller = ::pthread_self();
  std::atomic<bool> done{false};
  companion writer([&] {
    await_parked();
    if (on_fiber()) {
      interrupting_signal::send(poller);
    } else {
      interrupting_signal::interrupt_until(poller, done);
    }
    (void)::write(p[1], "x", 1);
    scribble_errno();
  });
  pollfd fds[1] = {{p[0], POLLIN, 0}};
  const outcome got = capture_poll(fds, 1, [&] { return ::poll(fds, 1, -1); });
  done = true;
  writer.join();
  close_all({p[0], p[1]});
  return outcomes{got, returned(interrupting_signal::delivered() > before)};
}

TEST(HookPollTest, ASignalEndsAPlainThreadsPollWithEintrButNotAPollParkedOnAFiber) {
  EXPECT_EQ(on_a_thread(poll_interrupted_by_a_signal), (outcomes{outcome{-1, EINTR, "-"}, returned(1)}));
  EXPECT_EQ(on_a_fiber(poll_interrupted_by_a_signal), (outcomes{returned(1, "IN"), returned(1)}));
}

}  // namespace
