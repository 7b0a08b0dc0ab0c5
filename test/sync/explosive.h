// A value whose move constructor throws on demand, for tests of what
// channels and select do when moving a value fails.
#pragma once

#include <stdexcept>

namespace spindle::test {

// explosive's move constructor throws on the Nth move from the moment
// moves_until_throw is set to N (0: never).
struct explosive {
  static inline int moves_until_throw = 0;
  int v;
  explicit explosive(int x) : v(x) {}
  explosive(explosive&& o) noexcept(false) : v(o.v) {
    if (moves_until_throw > 0 && --moves_until_throw == 0) throw std::runtime_error("move");
  }
  explosive& operator=(explosive&&) = default;
};

}  // namespace spindle::test
