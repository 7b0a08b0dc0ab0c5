// Helpers shared by the tests.
#pragma once

#include <cstddef>

#include "fiber/detail/sanitizer.h"

namespace spindle::test {

// TSan gives every fiber a thread slot and dies past 8128 of them alive at
// once, so tests that hold many fibers at a time hold fewer under TSan.
constexpr std::size_t max_concurrent_fibers(std::size_t wanted) {
#if SPINDLE_TSAN
  return wanted < 4000 ? wanted : 4000;
#else
  return wanted;
#endif
}

}  // namespace spindle::test
