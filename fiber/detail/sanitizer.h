// Sanitizer annotations for stack switches. Every switch between fibers
// (and between a fiber and a worker's own thread stack) tells ASan and TSan
// about it; without this ASan reports false stack-buffer overflows on reused
// stacks and in exceptions thrown on fibers, and TSan mixes up the
// happens-before of fibers that migrate between threads.
//
// ASan protocol (compiler-rt's common_interface_defs.h):
//   start_switch(&fake_stack_of_current, bottom_of_target, size_of_target)
//   ... switch ...
//   finish_switch(fake_stack_of_now_current, &bottom_of_previous, &size_of_previous)
// A fiber about to end passes nullptr as its fake-stack slot so that ASan
// frees its fake stack.
#pragma once

#include <cstddef>

#include "fiber/sanitizers.h"

#if SPINDLE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if SPINDLE_TSAN
#include <sanitizer/tsan_interface.h>
#include <signal.h>
#endif

// The annotations must sit in the very function that then switches: TSan
// keeps a shadow call stack per fiber, and a function that switched fibers
// and then returned would pop its frame off the wrong fiber's stack.
#define SPINDLE_ALWAYS_INLINE [[gnu::always_inline]] inline

namespace spindle::detail {

// asan_unpoison() clears ASan's poison from a reused stack: a fiber that
// ends never returns from its outer frames, so their redzones stay poisoned
// in ASan's shadow memory until something clears them.
inline void asan_unpoison(const void* addr, std::size_t size) noexcept {
#if SPINDLE_ASAN
  __asan_unpoison_memory_region(addr, size);
#else
  (void)addr, (void)size;
#endif
}

SPINDLE_ALWAYS_INLINE void asan_start_switch(void** fake_stack_save, const void* bottom,
                              std::size_t size) noexcept {
#if SPINDLE_ASAN
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
  (void)fake_stack_save, (void)bottom, (void)size;
#endif
}

SPINDLE_ALWAYS_INLINE void asan_finish_switch(void* fake_stack_save, const void** bottom_old,
                               std::size_t* size_old) noexcept {
#if SPINDLE_ASAN
  __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
#else
  (void)fake_stack_save, (void)bottom_old, (void)size_old;
#endif
}

inline void* tsan_create_fiber() noexcept {
#if SPINDLE_TSAN
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}

inline void* tsan_current_fiber() noexcept {
#if SPINDLE_TSAN
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}

SPINDLE_ALWAYS_INLINE void tsan_switch_to(void* fiber) noexcept {
#if SPINDLE_TSAN
  __tsan_switch_to_fiber(fiber, 0);
#else
  (void)fiber;
#endif
}

// TSan runs a signal handler at once only while the thread is in a
// blocking call (epoll_wait, a condition variable wait). Otherwise it
// queues the signal on the current TSan fiber and runs the handler at that
// fiber's next intercepted call. A signal caught after a fiber's last such
// call and before it switched out therefore waits until that fiber runs
// again, which may be never: a fiber parked on a read that only a stop
// would end, while the stopper waits in wait_signal() for that very
// handler (echo_server's stop on SIGTERM with one worker: its program
// test hung in a few runs in a hundred). So a TSan build blocks the
// asynchronous signals across each switch: tsan_block_signals() on the
// way out (pthread_sigmask is intercepted, so it runs what the departing
// fiber has queued), and tsan_restore_signals() on arrival, where a signal
// that came in between is delivered to the fiber switched to. Synchronous
// signals stay open:
// TSan runs those at once anyway, and a fault must not be blocked.
// Two system calls a switch, so only once Spindle has installed a signal
// handler of its own (io/signal.cpp's, the dump's): tsan_watch_signals().
// Out of line, so that the thread_locals are looked up on the thread that
// switches (a fiber may resume on another).
#if SPINDLE_TSAN
inline thread_local sigset_t tsan_switch_saved_mask;
inline thread_local bool tsan_switch_blocked = false;

[[gnu::noinline]] inline void tsan_block_signals() noexcept {
  tsan_switch_blocked = tsan_signals_watched.load(std::memory_order_relaxed);
  if (!tsan_switch_blocked) return;
  sigset_t async;
  sigfillset(&async);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE, SIGPIPE, SIGSYS}) {
    sigdelset(&async, sig);
  }
  pthread_sigmask(SIG_BLOCK, &async, &tsan_switch_saved_mask);
}

[[gnu::noinline]] inline void tsan_restore_signals() noexcept {
  if (tsan_switch_blocked) pthread_sigmask(SIG_SETMASK, &tsan_switch_saved_mask, nullptr);
}
#else
inline void tsan_block_signals() noexcept {}
inline void tsan_restore_signals() noexcept {}
#endif

inline void tsan_destroy_fiber(void* fiber) noexcept {
#if SPINDLE_TSAN
  if (fiber != nullptr) __tsan_destroy_fiber(fiber);
#else
  (void)fiber;
#endif
}

}  // namespace spindle::detail
