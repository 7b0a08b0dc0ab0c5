// A deterministic "close, then reuse the number" race for io/ tests.
//
// The bug it catches: a socket call that checks is_open() and then uses the
// bare descriptor, with nothing that makes close() wait for it. Between the
// check and the system call, another thread may close the socket and open a
// new one, which the kernel gives the lowest free number: the same one. The
// call then acts on a socket that is not its own. That window is a few
// instructions wide; instead of hoping to hit it, the test program
// interposes the system calls such code ends in (getsockname(2),
// setsockopt(2)) and, inside the call, runs the close and the reuse on
// another thread before the real system call.
//
// Correct code holds an op (io/detail/fd_state.h) across the system call,
// so the close cannot finish inside it: the hook waits `patience` for the
// reuse, gives up, and the call goes on on its own, still open, socket.
//
// Include this header in exactly one source file of a test program: the
// getsockname() and setsockopt() defined below replace the C library's for
// the whole program (Spindle is linked statically, so its calls come here
// too). Unhooked calls go straight to the kernel.
#pragma once

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace spindle::test {

// The interposed calls.
enum class hooked_call { getsockname, setsockopt };

namespace hook_state {

struct armed_hook {
  hooked_call call{};
  int fd = -1;
  int level = 0;   // setsockopt only
  int option = 0;  // setsockopt only
  std::function<void()> run;
};

inline std::mutex hook_mu;
inline armed_hook hook;  // guarded by hook_mu

// The hook armed for this call, taken (it runs once), or an empty one.
inline std::function<void()> take_hook(hooked_call call, int fd, int level, int option) {
  std::lock_guard lock(hook_mu);
  if (!hook.run || hook.call != call || hook.fd != fd || hook.level != level || hook.option != option) {
    return {};
  }
  return std::exchange(hook.run, nullptr);
}

}  // namespace hook_state

// descriptor_reuse_race arms the hook: inside the next `call` on `fd`
// (setsockopt: of `level` and `option`) a thread of its own runs `close`
// (the socket's close()) and then `open_new` (a system call returning a new
// descriptor), which it moves to the number `fd` if the kernel gave it
// another; the hooked call waits for that, or for `patience` to pass, and
// then makes the real system call. finish() joins that thread and returns
// the new descriptor (at `fd`, for the test to inspect and close).
class descriptor_reuse_race {
 public:
  static constexpr std::chrono::milliseconds patience{200};

  descriptor_reuse_race(hooked_call call, int fd, int level, int option, std::function<void()> close,
                        std::function<int()> open_new)
      : fd_(fd), close_(std::move(close)), open_new_(std::move(open_new)) {
    std::lock_guard lock(hook_state::hook_mu);
    hook_state::hook = {call, fd, level, option, [this] { run(); }};
  }
  ~descriptor_reuse_race() {
    {
      std::lock_guard lock(hook_state::hook_mu);
      hook_state::hook = {};
    }
    if (reuser_.joinable()) reuser_.join();
  }
  descriptor_reuse_race(const descriptor_reuse_race&) = delete;
  descriptor_reuse_race& operator=(const descriptor_reuse_race&) = delete;

  int finish() {
    if (reuser_.joinable()) reuser_.join();
    return reused_;
  }

 private:
  void run() {
    reuser_ = std::thread([this] {
      close_();
      int s = open_new_();
      if (s >= 0 && s != fd_) {
        ::dup2(s, fd_);
        ::close(s);
        s = fd_;
      }
      reused_ = s;
      done_.store(true, std::memory_order_release);
    });
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (!done_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  const int fd_;
  std::function<void()> close_;
  std::function<int()> open_new_;
  std::thread reuser_;
  std::atomic<bool> done_{false};
  int reused_ = -1;  // written by reuser_, read after joining it
};

}  // namespace spindle::test

extern "C" int getsockname(int fd, sockaddr* __restrict addr, socklen_t* __restrict len) noexcept {
  if (auto run = spindle::test::hook_state::take_hook(spindle::test::hooked_call::getsockname, fd, 0, 0)) run();
  return static_cast<int>(::syscall(SYS_getsockname, fd, addr, len));
}

extern "C" int setsockopt(int fd, int level, int option, const void* value, socklen_t len) noexcept {
  if (auto run = spindle::test::hook_state::take_hook(spindle::test::hooked_call::setsockopt, fd, level, option)) {
    run();
  }
  return static_cast<int>(::syscall(SYS_setsockopt, fd, level, option, value, len));
}
