// Waiting, in a test, until a fiber is parked: the way to order a test's
// steps without sleeping. Uses the inspectors' view of the fibers
// (fiber/detail/inspect.h): the state and the recorded wait reason.
#pragma once

#include <optional>
#include <thread>

#include "fiber/detail/inspect.h"
#include "fiber/fiber.h"
#include "fiber/this_fiber.h"

namespace spindle::test {

// Whether the fiber `id` is parked (and, if `reason` is given, on that).
inline bool is_parked(fiber::id id, std::optional<detail::wait_reason> reason = std::nullopt) {
  struct query {
    std::uint64_t id;
    std::optional<detail::wait_reason> reason;
    bool found = false;
  } q{id.value(), reason};
  detail::for_each_fiber(
      [](detail::control_block* cb, void* arg) {
        auto* q = static_cast<query*>(arg);
        if (cb->id_ != q->id) return;
        if (cb->state_.load(std::memory_order_acquire) != detail::fiber_state::parked) return;
        if (q->reason && cb->wait_reason_.load(std::memory_order_relaxed) != *q->reason) return;
        q->found = true;
      },
      &q);
  return q.found;
}

// Waits until the fiber `id` is parked (on `reason`, if given): yields a
// calling fiber, or the calling thread.
inline void wait_until_parked(fiber::id id,
                              std::optional<detail::wait_reason> reason = std::nullopt) {
  while (!is_parked(id, reason)) this_fiber::yield();
}

}  // namespace spindle::test
