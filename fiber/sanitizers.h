// SPINDLE_ASAN and SPINDLE_TSAN: 1 when this translation unit is built
// with AddressSanitizer or ThreadSanitizer (GCC's and clang's ways of
// saying so). For code of any layer that must behave differently under a
// sanitizer; the annotations of a fiber switch are fiber/detail's.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define SPINDLE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPINDLE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SPINDLE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SPINDLE_TSAN 1
#endif
#endif

#if SPINDLE_TSAN
#include <atomic>
#endif

namespace spindle::detail {
// A ThreadSanitizer build blocks asynchronous signals across each fiber
// switch once a signal handler of Spindle's own is installed (io/signal's,
// the dump's): see fiber/detail/sanitizer.h. Whoever installs one calls
// tsan_watch_signals() first. Nothing in other builds.
#if SPINDLE_TSAN
inline std::atomic<bool> tsan_signals_watched{false};
inline void tsan_watch_signals() noexcept {
  tsan_signals_watched.store(true, std::memory_order_relaxed);
}
#else
inline void tsan_watch_signals() noexcept {}
#endif
}  // namespace spindle::detail
