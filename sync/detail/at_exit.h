// Calls made when the calling fiber ends: what std's *_at_thread_exit
// functions mean for a fiber (on a plain thread: when the thread exits).
// Internal.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "fiber/fiber_local.h"

namespace spindle::detail {

struct exit_call {
  virtual ~exit_call() = default;
  virtual void run() noexcept = 0;
};

template <class F>
struct exit_call_of final : exit_call {
  explicit exit_call_of(F f) : fn(std::move(f)) {}
  void run() noexcept override { fn(); }
  F fn;
};

// The calling fiber's exit calls, run in the order they were added when its
// fiber-local values are destroyed: after its function has returned, on the
// fiber itself (fiber/fiber_local.h).
struct exit_calls {
  exit_calls() = default;
  exit_calls(const exit_calls&) = delete;
  exit_calls& operator=(const exit_calls&) = delete;
  ~exit_calls() {
    for (auto& c : calls) c->run();
  }
  std::vector<std::unique_ptr<exit_call>> calls;
};

inline fiber_local<exit_calls>& exit_calls_of_fiber() {
  static fiber_local<exit_calls>* local = new fiber_local<exit_calls>;  // used until exit
  return *local;
}

// at_fiber_exit(f): f() runs when the calling fiber (or plain thread) ends.
// Throws std::bad_alloc.
template <class F>
void at_fiber_exit(F f) {
  exit_calls_of_fiber()->calls.push_back(std::make_unique<exit_call_of<F>>(std::move(f)));
}

}  // namespace spindle::detail
