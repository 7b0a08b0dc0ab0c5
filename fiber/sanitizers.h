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
