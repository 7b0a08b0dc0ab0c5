#include "fiber/this_fiber.h"

#include <thread>

#include "fiber/detail/control_block.h"
#include "sched/detail/worker.h"
#include "sched/park.h"

namespace spindle::this_fiber {

fiber::id get_id() noexcept {
  if (const detail::control_block* cb = detail::tls_current_fiber) {
    return make_fiber_id(cb->id_);
  }
  thread_local const std::uint64_t thread_id = detail::next_fiber_id();
  return make_fiber_id(thread_id);
}

std::string_view get_name() noexcept {
  if (const detail::control_block* cb = detail::tls_current_fiber) return cb->name_;
  return {};
}

void yield() noexcept {
  if (detail::control_block* self = detail::tls_current_fiber) {
    self->worker_->yield();
  } else {
    std::this_thread::yield();
  }
}

void sleep_until(std::chrono::steady_clock::time_point deadline) {
  detail::control_block* self = detail::tls_current_fiber;
  if (self == nullptr) {
    std::this_thread::sleep_until(deadline);
    return;
  }
  // Only the timer knows about this park, so park_until() returns on the
  // deadline; loop in case the timer's clock rounding woke us a hair early.
  while (std::chrono::steady_clock::now() < deadline) {
    detail::prepare_park(self);
    (void)detail::park_until(self, deadline);
  }
}

}  // namespace spindle::this_fiber
