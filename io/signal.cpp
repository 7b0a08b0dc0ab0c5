// wait_signal(): the self-pipe trick. The handler counts the signal and
// writes a byte to a non-blocking pipe; waiters park until the pipe is
// readable, drain it, and take a counted signal of their set. A waiter
// that drained the pipe but found only others' signals writes a byte back
// so that their waiters wake too.
#include "io/signal.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "io/detail/fd_state.h"
#include "fiber/sanitizers.h"
#include "io/detail/or_throw.h"
#include "sched/io_wait.h"

namespace spindle {

namespace {

// One past the highest signal number: Linux's _NSIG (64 signals, 1 to 64,
// real-time ones included).
constexpr int max_signal = 65;
// Wake bytes drained from the pipe per read(2): each is one signal's
// wake-up; any size works, the loop reads until the pipe is empty.
constexpr std::size_t drain_chunk = 64;
std::atomic<int> pending[max_signal];
std::atomic<bool> installed[max_signal];
// Fibers and threads in wait_signal() for each signal.
std::atomic<int> waiting[max_signal];
int pipe_fds[2] = {-1, -1};
std::mutex install_mu;

void on_signal(int sig) {
  const int saved = errno;
  if (sig > 0 && sig < max_signal) pending[sig].fetch_add(1, std::memory_order_relaxed);
  const char byte = 1;
  (void)!::write(pipe_fds[1], &byte, 1);  // full pipe: a wake is pending anyway
  errno = saved;
}

bool install(int sig, std::error_code& ec) noexcept {
  if (sig <= 0 || sig >= max_signal || sig == SIGKILL || sig == SIGSTOP) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return false;
  }
  if (installed[sig].load(std::memory_order_acquire)) return true;
  std::lock_guard lock(install_mu);
  if (pipe_fds[0] < 0 && ::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    ec = detail::last_error();
    return false;
  }
  if (!installed[sig].load(std::memory_order_relaxed)) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    detail::tsan_watch_signals();  // before the handler can run (fiber/detail/sanitizer.h)
    if (::sigaction(sig, &sa, nullptr) != 0) {
      ec = detail::last_error();
      return false;
    }
    installed[sig].store(true, std::memory_order_release);
  }
  return true;
}

int take_one(std::initializer_list<int> signals) noexcept {
  for (int sig : signals) {
    int n = pending[sig].load(std::memory_order_relaxed);
    while (n > 0) {
      if (pending[sig].compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) return sig;
    }
  }
  return 0;
}

// Whether a signal that someone waits for is pending: then a waiter that
// drained the pipe leaves a wake in it for them. (Not for signals nobody
// waits for: that wake would come straight back to the drainer.)
bool pending_for_others() noexcept {
  for (int sig = 1; sig < max_signal; ++sig) {
    if (pending[sig].load(std::memory_order_relaxed) > 0 &&
        waiting[sig].load(std::memory_order_relaxed) > 0) {
      return true;
    }
  }
  return false;
}

class waiting_guard {
 public:
  explicit waiting_guard(std::initializer_list<int> signals) : signals_(signals) {
    for (int sig : signals_) waiting[sig].fetch_add(1, std::memory_order_relaxed);
  }
  ~waiting_guard() {
    for (int sig : signals_) waiting[sig].fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  std::initializer_list<int> signals_;
};

}  // namespace

int wait_signal(std::initializer_list<int> signals, deadline d, std::error_code& ec) noexcept {
  ec.clear();
  if (signals.size() == 0) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return 0;
  }
  for (int sig : signals) {
    if (!install(sig, ec)) return 0;
  }
  const waiting_guard counted(signals);
  const char byte = 1;
  for (;;) {
    if (int sig = take_one(signals)) return sig;
    // Drain the wakes; if others' signals remain, leave a wake for them.
    char buf[drain_chunk];
    bool drained = false;
    while (::read(pipe_fds[0], buf, sizeof buf) > 0) drained = true;
    const int sig = take_one(signals);
    if (drained && pending_for_others()) (void)!::write(pipe_fds[1], &byte, 1);
    if (sig != 0) return sig;
    // Level-triggered and open to any number of waiters on the one pipe:
    // not the netpoll, which takes one waiter per direction.
    if (detail::wait_fd_ready(pipe_fds[0], detail::io_direction::read, d.when()) ==
        detail::io_wait_result::timed_out) {
      ec = std::make_error_code(std::errc::timed_out);
      return 0;
    }
  }
}

int wait_signal(std::initializer_list<int> signals, deadline d) {
  return detail::or_throw("spindle::wait_signal", [&](std::error_code& ec) { return wait_signal(signals, d, ec); });
}

}  // namespace spindle
