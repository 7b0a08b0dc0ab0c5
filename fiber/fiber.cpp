#include "fiber/fiber.h"

#include <cstdio>
#include <exception>
#include <ostream>
#include <system_error>
#include <thread>

#include "fiber/detail/control_block.h"

namespace spindle {

fiber::~fiber() {
  if (cb_ != nullptr) {
    detail::write_fiber_diagnostic("a joinable spindle::fiber handle was destroyed", cb_,
                                   "join() or detach() it first");
    std::terminate();
  }
}

fiber& fiber::operator=(fiber&& other) noexcept {
  if (cb_ != nullptr) {
    detail::write_fiber_diagnostic("a joinable spindle::fiber handle was assigned to", cb_,
                                   "join() or detach() it first");
    std::terminate();
  }
  cb_ = std::exchange(other.cb_, nullptr);
  return *this;
}

fiber::id fiber::get_id() const noexcept { return cb_ != nullptr ? id(cb_->id_) : id(); }

std::string fiber::get_name() const { return cb_ != nullptr ? cb_->name_ : std::string(); }

void fiber::join() {
  if (cb_ == nullptr) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "spindle::fiber::join: the fiber is not joinable");
  }
  if (cb_ == detail::tls_current_fiber) {
    throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                            "spindle::fiber::join: a fiber cannot join itself");
  }
  if (!detail::join(cb_, /*cancellable=*/true)) {
    throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                            "spindle::fiber::join: stop was requested on the joining fiber");
  }
  // The finishing fiber wrote exception_ before publishing joiner_finished,
  // and join() observed that (acquire).
  std::exception_ptr e = std::move(cb_->exception_);
  std::exchange(cb_, nullptr)->release();
  if (e) std::rethrow_exception(e);
}

void fiber::detach() {
  if (cb_ == nullptr) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "spindle::fiber::detach: the fiber is not joinable");
  }
  detail::control_block* cb = std::exchange(cb_, nullptr);
  // Exactly one of detach() and the finishing fiber sees the other's mark
  // (see control_block::joiner_); if the fiber already finished with an
  // exception, nobody will ever see it: report it as for a detached fiber.
  if (cb->joiner_.exchange(detail::joiner_detached, std::memory_order_acq_rel) ==
          detail::joiner_finished &&
      cb->exception_) {
    detail::report_uncaught(cb);
  }
  cb->release();
}

unsigned fiber::hardware_concurrency() noexcept { return std::thread::hardware_concurrency(); }

}  // namespace spindle
