// Helpers of the hook's family tests (test/hook/family_*_test.cpp). Each
// test runs one scenario twice: on the main fiber of a one-worker runtime,
// and on a plain std::thread (the call as the kernel makes it), and checks
// that both saw the same results and the same errno values.
//
// The other side of a scenario (the writer a reader waits for, the
// closer) is a companion: another fiber on the *same* worker when the
// scenario runs on a fiber, so that a call that blocked the worker instead
// of parking would keep the companion from ever running, and the test
// cannot pass without the hook; a plain thread when it runs on a thread.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <utility>

#include "fiber/fiber.h"
#include "hook/hook.h"
#include "sched/io_wait.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace spindle::test::family {

// ---- What a call did ----

// errno_sentinel is what a scenario puts in errno before a call: no errno
// value, so that a call that succeeds and leaves errno alone (as the
// kernel's calls do, and the hook must, across a park too) reads back as
// `error == 0`.
inline constexpr int errno_sentinel = 0x5eed;

// outcome: what one call returned and left in errno, and the bytes it
// moved where it moved any.
struct outcome {
  long result = 0;
  int error = 0;  // errno after the call; 0 when it was left as it was
  std::string data;
  friend bool operator==(const outcome&, const outcome&) = default;
};

inline void PrintTo(const outcome& o, std::ostream* os) {
  *os << "{" << o.result << ", ";
  if (o.error == 0) {
    *os << "errno untouched";
  } else {
    const char* name = ::strerrorname_np(o.error);
    *os << "errno " << (name != nullptr ? name : std::to_string(o.error).c_str());
  }
  if (!o.data.empty()) {
    // Printable bytes as they are, others in hex; the first 64.
    *os << ", \"";
    for (std::size_t i = 0; i < o.data.size() && i < 64; ++i) {
      const unsigned char c = static_cast<unsigned char>(o.data[i]);
      if (c >= 0x20 && c < 0x7f && c != '\\') {
        *os << static_cast<char>(c);
      } else {
        static constexpr char hex[] = "0123456789abcdef";
        *os << "\\x" << hex[c >> 4] << hex[c & 0xf];
      }
    }
    *os << (o.data.size() > 64 ? "\"..." : "\"");
  }
  *os << "}";
}

// capture(call) runs call() with errno_sentinel in errno and returns what
// it did.
template <class Call>
outcome capture(Call call) {
  errno = errno_sentinel;
  const long r = static_cast<long>(call());
  const int e = errno;
  return outcome{r, e == errno_sentinel ? 0 : e, {}};
}

// capture_into(buf, call): capture() of a call that reads into buf, with
// the bytes it read.
template <class Call>
outcome capture_into(const char* buf, Call call) {
  outcome o = capture(call);
  if (o.result > 0) o.data.assign(buf, static_cast<std::size_t>(o.result));
  return o;
}

// A call that makes a descriptor: its number differs from run to run, so
// the outcome says only that it made one (result 1, data "fd").
inline constexpr long made_fd = 1;
inline outcome descriptor(outcome o) {
  if (o.result >= 0) {
    o.result = made_fd;
    o.data = "fd";
  }
  return o;
}
inline outcome made_descriptor() { return outcome{made_fd, 0, "fd"}; }
inline outcome failed(int e) { return outcome{-1, e, {}}; }
inline outcome returned(long r, std::string data = {}) { return outcome{r, 0, std::move(data)}; }

// ---- Where a scenario runs ----

inline bool on_fiber() noexcept { return spindle::detail::on_fiber(); }

// on_a_fiber(scenario) runs scenario() as the main fiber of a one-worker
// runtime and returns its result.
template <class Scenario>
auto on_a_fiber(Scenario scenario) {
  decltype(scenario()) result{};
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [&] { result = scenario(); });
  EXPECT_EQ(spindle::hook::parked_calls(), 0u) << "a hooked call still counted as parked after the runtime ended";
  return result;
}

// The thread a scenario runs on when it runs on a plain thread, for its
// companion's await_parked().
inline std::atomic<pid_t> scenario_thread{0};

// on_a_thread(scenario) runs scenario() on a plain thread: the reference.
template <class Scenario>
auto on_a_thread(Scenario scenario) {
  decltype(scenario()) result{};
  std::thread t([&] {
    scenario_thread.store(::gettid());
    result = scenario();
    scenario_thread.store(0);
  });
  t.join();
  return result;
}

// blocked_in_a_call(tid): thread `tid` of this process sleeps in a system
// call other than futex (which is how a thread waits for a lock, not for
// a descriptor or a timer): /proc says so.
inline bool blocked_in_a_call(pid_t tid) {
  if (tid == 0) return false;
  const std::string dir = "/proc/self/task/" + std::to_string(tid) + "/";
  char buf[256] = {};
  const auto read_file = [&](const std::string& name) {
    const int fd = ::open((dir + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::string();
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  };
  const std::string call = read_file("syscall");
  if (call.empty() || call[0] < '0' || call[0] > '9') return false;  // "running", or "-1" (not in a call)
  if (std::stol(call) == SYS_futex) return false;
  const std::string stat = read_file("stat");
  const std::size_t close_paren = stat.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < stat.size() && stat[close_paren + 2] == 'S';
}

// expect_on_both(scenario, expected): on a plain thread and on a fiber,
// scenario() returns `expected`.
template <class Scenario, class Expected>
void expect_on_both(Scenario scenario, const Expected& expected) {
  EXPECT_EQ(on_a_thread(scenario), expected) << "on a plain thread (the kernel's own behaviour)";
  EXPECT_EQ(on_a_fiber(scenario), expected) << "on a fiber of a one-worker runtime";
}

// expect_on_a_fiber(scenario, expected): for the scenarios with no plain
// thread counterpart (the kernel's call would wait for ever).
template <class Scenario, class Expected>
void expect_on_a_fiber(Scenario scenario, const Expected& expected) {
  EXPECT_EQ(on_a_fiber(scenario), expected) << "on a fiber of a one-worker runtime";
}

// companion: the other side of a scenario, started by it: another fiber
// on the same worker when the scenario runs on a fiber, a plain thread
// otherwise. Joined by join() or the destructor (on a fiber, join()
// parks, and the companion runs meanwhile).
class companion {
 public:
  template <class F>
  explicit companion(F f) {
    if (on_fiber()) {
      fiber_ = spindle::thread(std::move(f));
    } else {
      thread_ = std::thread(std::move(f));
    }
  }
  companion(const companion&) = delete;
  companion& operator=(const companion&) = delete;
  ~companion() { join(); }
  void join() {
    if (fiber_.joinable()) fiber_.join();
    if (thread_.joinable()) thread_.join();
  }

 private:
  spindle::thread fiber_;
  std::thread thread_;
};

// ---- Waiting for the other side, without sleeping ----

// await(done): yields (a fiber) or yields the thread until `done` holds.
inline void await(const std::atomic<bool>& done) {
  while (!done.load()) {
    if (on_fiber()) {
      spindle::this_fiber::yield();
    } else {
      std::this_thread::yield();
    }
  }
}

// let_others_run(): lets the other side run a little (the slow reader's
// pace).
inline void let_others_run() {
  if (on_fiber()) {
    spindle::this_fiber::yield();
  } else {
    std::this_thread::yield();
  }
}

// a_thread_blocks_on(fd): some thread of this process sleeps in a system
// call whose first argument is `fd` (a read, a write, a poll of it...).
inline bool a_thread_blocks_on(int fd) {
  DIR* tasks = ::opendir("/proc/self/task");
  if (tasks == nullptr) return false;
  bool found = false;
  while (const dirent* e = ::readdir(tasks)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const pid_t tid = static_cast<pid_t>(std::stol(e->d_name));
    const int f = ::open(("/proc/self/task/" + std::to_string(tid) + "/syscall").c_str(), O_RDONLY | O_CLOEXEC);
    if (f < 0) continue;
    char buf[256] = {};
    const ssize_t n = ::read(f, buf, sizeof buf - 1);
    ::close(f);
    if (n <= 0 || buf[0] < '0' || buf[0] > '9') continue;
    // "NR 0xARG0 0xARG1 ...": the call's number, then its arguments.
    char* rest = nullptr;
    (void)std::strtol(buf, &rest, 10);
    if (std::strtol(rest, nullptr, 16) == fd && blocked_in_a_call(tid)) {
      found = true;
      break;
    }
  }
  ::closedir(tasks);
  return found;
}

// await_blocked_on(fd, done): yields until a_thread_blocks_on(fd), or
// `done` holds: for a call the hook hands to the blocking pool, whose
// thread blocks in the kernel some time after the fiber has parked.
inline void await_blocked_on(int fd, const std::atomic<bool>& done) {
  while (!done.load() && !a_thread_blocks_on(fd)) let_others_run();
}

// await_parked(n) returns once `n` hooked calls are parked, on a fiber
// (yielding to them). On a plain thread (where nothing counts the
// kernel's blocking calls) it returns once the scenario's thread sleeps in
// a system call, which is the call the companion is about to wake.
inline void await_parked(std::size_t n = 1) {
  if (on_fiber()) {
    yield_until([&] { return spindle::hook::parked_calls() >= n; });
  } else {
    while (!blocked_in_a_call(scenario_thread.load())) std::this_thread::yield();
  }
}

// await_parked_or(done): as await_parked(), or until `done` holds: for a
// companion whose partner should park but, were the hook wrong, might
// return at once instead (then the test fails on what it returned, rather
// than hanging here).
inline void await_parked_or(const std::atomic<bool>& done, std::size_t n = 1) {
  if (on_fiber()) {
    yield_until([&] { return spindle::hook::parked_calls() >= n || done.load(); });
  } else {
    while (!done.load() && !blocked_in_a_call(scenario_thread.load())) std::this_thread::yield();
  }
}

// scribble_errno() is what another fiber of the worker does to errno
// while a call is parked (any call of its own that fails): a parked call
// must return with its caller's errno, not this.
inline void scribble_errno() { errno = EIO; }

// await_consumed(fd, done): yields until what was sent to `fd` has been
// read (FIONREAD says 0), then as await_parked_or(done): a companion that
// sends in pieces sends the next only once the reader has taken the last
// and parked again. (A woken call counts as parked until it has run.)
inline void await_consumed(int fd, const std::atomic<bool>& done) {
  for (;;) {
    int queued = 0;
    if (done.load() || (::ioctl(fd, FIONREAD, &queued) == 0 && queued == 0)) break;
    let_others_run();
  }
  await_parked_or(done);
}

// rescue: a fallback for a scenario that a broken hook would hang. If
// done() has not been called within `limit`, a plain thread runs `fn`,
// which must unblock the scenario (write what it waits for, accept the
// connection it waits on), and used() says so afterwards: the test fails
// on that, instead of hanging the whole program. A passing run never
// waits for it: done() ends it at once (or, once `fn` has begun, waits
// for it to end, so that the descriptors it used may be closed after).
class rescue {
 public:
  static constexpr std::chrono::seconds default_limit{10};

  explicit rescue(std::function<void()> fn, std::chrono::seconds limit = default_limit)
      : thread_([this, limit, fn = std::move(fn)] {
          std::unique_lock lock(mu_);
          if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
          used_.store(true);
          lock.unlock();
          fn();
        }) {}
  rescue(const rescue&) = delete;
  rescue& operator=(const rescue&) = delete;
  ~rescue() { done(); }
  void done() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool used() const { return used_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> used_{false};
  std::thread thread_;
};

// ---- Signals ----

// interrupting_signal installs, for its lifetime, a SIGUSR1 handler
// without SA_RESTART: a blocking call it lands in on a plain thread fails
// with EINTR. It counts the deliveries.
class interrupting_signal {
 public:
  interrupting_signal() {
    struct sigaction sa {};
    sa.sa_handler = &on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART
    EXPECT_EQ(::sigaction(SIGUSR1, &sa, &old_), 0);
  }
  interrupting_signal(const interrupting_signal&) = delete;
  interrupting_signal& operator=(const interrupting_signal&) = delete;
  ~interrupting_signal() { ::sigaction(SIGUSR1, &old_, nullptr); }

  static int delivered() noexcept { return count_.load(); }

  // send(t) sends one SIGUSR1 to thread `t` and, when `t` is the caller,
  // returns once the handler has run.
  static void send(pthread_t t) { EXPECT_EQ(::pthread_kill(t, SIGUSR1), 0); }

  // interrupt_until(t, done) sends SIGUSR1 to thread `t` until `done`
  // holds (the call `t` is blocked in has returned): one that lands before
  // the call begins only runs the handler, and the next one interrupts it.
  static void interrupt_until(pthread_t t, const std::atomic<bool>& done) {
    while (!done.load()) {
      send(t);
      std::this_thread::yield();
    }
  }

 private:
  static void on_signal(int) { count_.fetch_add(1); }
  static inline std::atomic<int> count_{0};
  struct sigaction old_ {};
};

// ---- Sockets ----

// loopback(port): 127.0.0.1:port.
inline sockaddr_in loopback(std::uint16_t port = 0) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

inline std::uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  return ntohs(a.sin_port);
}

// bind_loopback(fd): binds fd to 127.0.0.1 on a port of the kernel's choice;
// returns the port.
inline std::uint16_t bind_loopback(int fd) {
  const sockaddr_in a = loopback();
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  return port_of(fd);
}

// tcp_listener(backlog): a TCP socket listening on 127.0.0.1 (made with
// the hooked socket()); its port in *port.
inline int tcp_listener(std::uint16_t* port, int backlog = 16) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  *port = bind_loopback(fd);
  EXPECT_EQ(::listen(fd, backlog), 0);
  return fd;
}

inline int connect_loopback(int fd, std::uint16_t port) {
  const sockaddr_in a = loopback(port);
  return ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
}

// A unix address in the abstract namespace (nothing in the file system),
// unique to this process and `tag`.
inline std::pair<sockaddr_un, socklen_t> abstract_address(const std::string& tag) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string name = "spindle-hook-family-" + std::to_string(::getpid()) + "-" + tag;
  std::memcpy(a.sun_path + 1, name.data(), name.size());
  return {a, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())};
}

// pattern(n, seed): n bytes that differ at every offset mod 251.
inline std::string pattern(std::size_t n, unsigned seed = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i % 251) * 7 + seed);
  return s;
}

// read_slowly(fd, n): reads n bytes (or up to the end of the stream) in
// small pieces, letting the other side run between them: the slow peer
// of a large write.
inline std::string read_slowly(int fd, std::size_t n, std::size_t piece = 4096) {
  std::string got;
  std::string buf(piece, '\0');
  while (got.size() < n) {
    const ssize_t r = ::read(fd, buf.data(), std::min(piece, n - got.size()));
    if (r <= 0) break;
    got.append(buf.data(), static_cast<std::size_t>(r));
    let_others_run();
  }
  return got;
}

// fill_send_buffer(fd): sends without waiting (MSG_DONTWAIT) until the
// socket's buffer is full; returns how many bytes it took.
inline std::size_t fill_send_buffer(int fd) {
  std::size_t total = 0;
  const std::string chunk(65536, 'f');
  for (std::size_t piece : {std::size_t{65536}, std::size_t{1}}) {
    for (;;) {
      const ssize_t w = ::send(fd, chunk.data(), piece, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w <= 0) break;
      total += static_cast<std::size_t>(w);
    }
  }
  return total;
}

// Sizes of the large transfers: well past any socket or pipe buffer, and
// smaller in the sanitizer builds, which run several times slower.
#if SPINDLE_TSAN || SPINDLE_ASAN
inline constexpr std::size_t large_transfer = 1 << 20;
#else
inline constexpr std::size_t large_transfer = 4 << 20;
#endif

// A short timeout for the tests that wait for one to pass (SO_RCVTIMEO,
// poll's, a sleep): the tests check that it passed, never how long after.
inline constexpr std::chrono::milliseconds short_timeout{30};

inline timeval as_timeval(std::chrono::microseconds d) {
  return timeval{static_cast<time_t>(d.count() / 1000000), static_cast<suseconds_t>(d.count() % 1000000)};
}

// elapsed_since(start) on the steady clock (CLOCK_MONOTONIC).
inline std::chrono::nanoseconds elapsed_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::steady_clock::now() - start;
}

}  // namespace spindle::test::family
