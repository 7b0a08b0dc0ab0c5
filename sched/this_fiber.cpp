#include "fiber/this_fiber.h"

#include <cstdint>
#include <string>
#include <system_error>
#include <thread>

#include "fiber/detail/control_block.h"
#include "sched/detail/runtime.h"
#include "sched/detail/worker.h"
#include "sched/park.h"

namespace spindle::this_fiber {

// detail::sleep_until_uncancellable()'s body (fiber/this_fiber.h).
void sleep_until_no_cancel(std::chrono::steady_clock::time_point deadline);

fiber::id get_id() noexcept { return detail::fiber_id_maker::make(detail::current_id()); }

std::string_view get_name() noexcept {
  if (const detail::control_block* cb = detail::tls_current_fiber) return cb->name_;
  return {};
}

namespace {
void sleep_to(std::chrono::steady_clock::time_point deadline, detail::cancel_point cp) {
  detail::control_block* self = detail::tls_current_fiber;
  if (self == nullptr) {
    std::this_thread::sleep_until(deadline);
    return;
  }
  // Only the timer knows about this park, so park_until() returns on the
  // deadline (or, as a cancel point, on a stop request); loop in case the
  // timer's clock rounding woke us a hair early. A stopped fiber's park
  // returns false at once, so the loop ends there rather than spin.
  while (std::chrono::steady_clock::now() < deadline) {
    detail::note_wait(self, detail::wait_reason::sleep, nullptr);
    detail::prepare_park(self);
    (void)detail::park_until(self, deadline, cp);
    if (cp == detail::cancel_point::yes && detail::stop_requested(self)) [[unlikely]] return;
  }
}
}  // namespace

void sleep_until(std::chrono::steady_clock::time_point deadline) {
  sleep_to(deadline, detail::cancel_point::yes);
}

void sleep_until_no_cancel(std::chrono::steady_clock::time_point deadline) {
  sleep_to(deadline, detail::cancel_point::no);
}


std::stop_token get_stop_token() noexcept {
  if (const detail::control_block* self = detail::tls_current_fiber; self && self->stop_) {
    return *self->stop_;
  }
  return {};
}

bool stop_requested() noexcept {
  const detail::control_block* self = detail::tls_current_fiber;
  return self != nullptr && detail::stop_requested(self);
}

namespace {
detail::control_block* current_fiber_or_throw(const char* what) {
  detail::control_block* self = detail::tls_current_fiber;
  if (self == nullptr) {
    throw std::system_error(std::make_error_code(std::errc::operation_not_permitted),
                            std::string("spindle::this_fiber::") + what +
                                ": called outside a fiber (it pins fibers, not threads)");
  }
  return self;
}
}  // namespace

void pin() {
  detail::control_block* self = current_fiber_or_throw("pin");
  if (self->pinned_ == UINT16_MAX) {
    throw std::system_error(std::make_error_code(std::errc::value_too_large),
                            "spindle::this_fiber::pin: nested too deeply");
  }
  if (self->pinned_++ == 0) self->worker_->pinned_here(+1);
}

void unpin() {
  detail::control_block* self = current_fiber_or_throw("unpin");
  if (self->pinned_ == 0) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "spindle::this_fiber::unpin: the fiber is not pinned");
  }
  if (--self->pinned_ == 0) self->worker_->pinned_here(-1);
}

bool is_pinned() noexcept {
  const detail::control_block* self = detail::tls_current_fiber;
  return self != nullptr && self->pinned_ != 0;
}

int worker_index() noexcept {
  const detail::control_block* self = detail::tls_current_fiber;
  return self != nullptr ? static_cast<int>(self->worker_->index()) : -1;
}

}  // namespace spindle::this_fiber

namespace spindle::detail {
void sleep_until_uncancellable(std::chrono::steady_clock::time_point deadline) {
  this_fiber::sleep_until_no_cancel(deadline);
}
}  // namespace spindle::detail
