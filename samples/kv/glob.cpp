#include "samples/kv/glob.h"

#include <cstddef>
#include <utility>

namespace kv {

bool glob_match(std::string_view p, std::string_view s) {
  while (!p.empty()) {
    switch (p[0]) {
      case '*': {
        while (p.size() > 1 && p[1] == '*') p.remove_prefix(1);
        if (p.size() == 1) return true;
        // Try the rest of the pattern at every position: patterns are
        // short, so the backtracking stays cheap.
        for (std::size_t i = 0; i <= s.size(); ++i) {
          if (glob_match(p.substr(1), s.substr(i))) return true;
        }
        return false;
      }
      case '?':
        if (s.empty()) return false;
        s.remove_prefix(1);
        break;
      case '[': {
        if (s.empty()) return false;
        p.remove_prefix(1);
        const bool negate = !p.empty() && p[0] == '^';
        if (negate) p.remove_prefix(1);
        bool match = false;
        while (!p.empty() && p[0] != ']') {
          if (p[0] == '\\' && p.size() >= 2) {
            p.remove_prefix(1);
            if (p[0] == s[0]) match = true;
          } else if (p.size() >= 3 && p[1] == '-' && p[2] != ']') {
            char lo = p[0], hi = p[2];
            if (lo > hi) std::swap(lo, hi);
            if (s[0] >= lo && s[0] <= hi) match = true;
            p.remove_prefix(2);
          } else if (p[0] == s[0]) {
            match = true;
          }
          p.remove_prefix(1);
        }
        if (match == negate) return false;
        s.remove_prefix(1);
        if (p.empty()) return s.empty();  // "[abc" without its ']': as Redis, the set ends there
        break;
      }
      case '\\':
        if (p.size() >= 2) p.remove_prefix(1);
        [[fallthrough]];
      default:
        if (s.empty() || p[0] != s[0]) return false;
        s.remove_prefix(1);
        break;
    }
    p.remove_prefix(1);
  }
  return s.empty();
}

}  // namespace kv
