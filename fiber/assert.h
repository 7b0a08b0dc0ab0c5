// SPINDLE_ASSERT(condition): an internal invariant of Spindle's own code.
// Checked in the sanitizer builds (SPINDLE_SANITIZE, which defines
// SPINDLE_ASSERTIONS) and in builds without NDEBUG; in an optimized build
// it costs nothing: the condition is still compiled, never evaluated.
// A failure prints the condition and where, and aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

#if defined(SPINDLE_ASSERTIONS) || !defined(NDEBUG)
#define SPINDLE_ASSERTIONS_ON 1
#else
#define SPINDLE_ASSERTIONS_ON 0
#endif

namespace spindle::detail {
[[noreturn]] inline void assertion_failed(const char* condition, const char* file,
                                          int line) noexcept {
  std::fprintf(stderr, "spindle: internal invariant broken at %s:%d: %s\n", file, line,
               condition);
  std::abort();
}
}  // namespace spindle::detail

#if SPINDLE_ASSERTIONS_ON
#define SPINDLE_ASSERT(condition)                                                    \
  ((condition) ? static_cast<void>(0)                                                \
               : ::spindle::detail::assertion_failed(#condition, __FILE__, __LINE__))
#else
#define SPINDLE_ASSERT(condition) static_cast<void>(sizeof(static_cast<bool>(condition)))
#endif
