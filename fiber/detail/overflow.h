// Stack-overflow reports. A fiber that runs into its guard page takes a
// SIGSEGV on a stack that is no longer usable, so the handler runs on an
// alternate signal stack (sigaltstack), one per worker thread. It maps the
// fault address to the running fiber's guard page and, on a match, prints
// the fiber's name, id and stack size, then aborts; any other fault is
// passed on to the handler that was installed before Spindle's.
#pragma once

#include <cstddef>

namespace spindle::detail {

// install_overflow_handler() installs the SIGSEGV/SIGBUS handler once per
// process; later calls do nothing. Any thread.
void install_overflow_handler() noexcept;

// An alternate signal stack for the calling thread, for the lifetime of the
// object; the previous one is restored after. Worker threads hold one.
class alt_signal_stack {
 public:
  alt_signal_stack() noexcept;
  ~alt_signal_stack();
  alt_signal_stack(const alt_signal_stack&) = delete;
  alt_signal_stack& operator=(const alt_signal_stack&) = delete;

 private:
  void* memory_ = nullptr;
  std::size_t size_ = 0;
  bool installed_ = false;
  // The previous stack_t, stored opaquely to keep <signal.h> out.
  alignas(void*) unsigned char previous_[32];
};

// check_canary() aborts with a diagnostic naming the fiber when an
// unguarded stack's canary was overwritten. Called at every switch out.
class control_block;
void check_canary(const control_block* cb) noexcept;

}  // namespace spindle::detail
