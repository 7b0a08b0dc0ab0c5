#include "sync/detail/misuse.h"

#include <cstdio>
#include <cstdlib>

#include "sched/park.h"

namespace spindle::detail {

void sync_misuse(const char* message) noexcept {
  std::fprintf(stderr, "spindle: %s\n", message);
  std::abort();
}

void destroyed_while_waited_on(const char* what, const void* object, waiting_count first,
                               waiting_count second, const char* advice) noexcept {
  if (!run_active()) return;
  if (second.who != nullptr) {
    std::fprintf(stderr,
                 "spindle: %s %p destroyed while fibers wait on it (%zu %s, %zu %s); %s\n", what,
                 object, first.n, first.who, second.n, second.who, advice);
  } else {
    std::fprintf(stderr, "spindle: %s %p destroyed while fibers wait on it (%zu %s); %s\n", what,
                 object, first.n, first.who, advice);
  }
  std::abort();
}

}  // namespace spindle::detail
