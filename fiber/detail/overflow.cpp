#include "fiber/detail/overflow.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "fiber/detail/control_block.h"

namespace spindle::detail {
namespace {

struct sigaction g_previous_segv;
struct sigaction g_previous_bus;

// Enough for the handler's few frames and the diagnostic buffer, and for
// a sanitizer's handler that we chain to (those use several KiB).
constexpr std::size_t alt_stack_size = 64 * 1024;

static_assert(sizeof(stack_t) <= 32, "alt_signal_stack::previous_ too small");

[[noreturn]] void die() noexcept {
  // Make sure abort() is not caught and turned into something else.
  ::signal(SIGABRT, SIG_DFL);
  std::abort();
}

void chain(int sig, siginfo_t* info, void* context) {
  const struct sigaction& prev = sig == SIGBUS ? g_previous_bus : g_previous_segv;
  if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction != nullptr) {
    prev.sa_sigaction(sig, info, context);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action: restore it and return, so the faulting instruction
  // faults again and the kernel kills the process (with a core dump).
  ::signal(sig, SIG_DFL);
}

void on_fault(int sig, siginfo_t* info, void* context) {
  const control_block* cb = tls_current_fiber;
  const char* addr = static_cast<const char*>(info->si_addr);
  if (cb != nullptr && cb->stack_.guard != guard_kind::canary && addr >= cb->stack_.base &&
      addr < cb->stack_.limit()) {
    write_fiber_diagnostic("stack overflow", cb,
                           "it ran into the guard page below its stack; "
                           "give it a bigger stack (fiber_options::stack_size)");
    die();
  }
  chain(sig, info, context);
}

}  // namespace

void install_overflow_handler() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &g_previous_segv);
    ::sigaction(SIGBUS, &sa, &g_previous_bus);
  });
}

alt_signal_stack::alt_signal_stack() noexcept {
  void* p = ::mmap(nullptr, alt_stack_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return;  // no report on overflow, but no failure either
  stack_t ss;
  std::memset(&ss, 0, sizeof ss);
  ss.ss_sp = p;
  ss.ss_size = alt_stack_size;
  auto* previous = reinterpret_cast<stack_t*>(previous_);
  if (::sigaltstack(&ss, previous) != 0) {
    ::munmap(p, alt_stack_size);
    return;
  }
  memory_ = p;
  size_ = alt_stack_size;
  installed_ = true;
}

alt_signal_stack::~alt_signal_stack() {
  if (!installed_) return;
  auto* previous = reinterpret_cast<stack_t*>(previous_);
  if ((previous->ss_flags & SS_DISABLE) != 0) {
    stack_t off;
    std::memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    ::sigaltstack(&off, nullptr);
  } else {
    ::sigaltstack(previous, nullptr);
  }
  ::munmap(memory_, size_);
}

void check_canary(const control_block* cb) noexcept {
  if (cb->stack_.guard != guard_kind::canary || canary_intact(cb->stack_)) return;
  write_fiber_diagnostic("stack overflow", cb,
                         "the canary at the bottom of its unguarded stack was "
                         "overwritten; give it a bigger stack (fiber_options::stack_size)");
  die();
}

}  // namespace spindle::detail
