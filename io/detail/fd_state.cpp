#include "io/detail/fd_state.h"

#include <signal.h>
#include <unistd.h>

#include <mutex>

#include "sched/park.h"

namespace spindle {

namespace {
class io_category_impl : public std::error_category {
 public:
  const char* name() const noexcept override { return "spindle.io"; }
  std::string message(int code) const override {
    switch (static_cast<io_errc>(code)) {
      case io_errc::eof:
        return "end of stream";
      case io_errc::unexpected_eof:
        return "end of stream before the requested bytes";
    }
    return "unknown io error";
  }
};
}  // namespace

const std::error_category& io_category() noexcept {
  static const io_category_impl category;
  return category;
}

namespace detail {

void ignore_sigpipe() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL &&
        (old.sa_flags & SA_SIGINFO) == 0) {
      struct sigaction ign {};
      ign.sa_handler = SIG_IGN;
      sigemptyset(&ign.sa_mask);
      ::sigaction(SIGPIPE, &ign, nullptr);
    }
  });
}

fd_state::fd_state(int fd, fd_kind kind) noexcept
    : fd_(fd),
      is_socket_(kind != fd_kind::other),
      pd_(netpoll_open(fd)),
      tcp_stream_(kind == fd_kind::tcp_stream && pd_ != nullptr) {
  ignore_sigpipe();
}

fd_state::~fd_state() {
  std::error_code ignored;
  close(ignored);
}

bool fd_state::enter() noexcept {
  if ((ops_.fetch_add(1, std::memory_order_acquire) & closing_bit) == 0) return true;
  leave();
  return false;
}

void fd_state::leave() noexcept {
  // The op that brings the count to zero while closing wakes the closer.
  // Late ops (refused by enter()) come through here too, so the closer
  // may be taken by any of them: the exchange makes sure it is woken once.
  if (ops_.fetch_sub(1, std::memory_order_acq_rel) == (closing_bit | 1)) {
    if (control_block* c = closer_.exchange(nullptr, std::memory_order_acq_rel)) unpark(c);
  }
}

std::error_code fd_state::closed_error() const noexcept {
  return closed_.load(std::memory_order_acquire) ? std::make_error_code(std::errc::bad_file_descriptor)
                                                 : std::make_error_code(std::errc::operation_canceled);
}

std::error_code fd_state::wait(io_direction dir, const deadline& until) noexcept {
  if (pd_ == nullptr) return std::make_error_code(std::errc::operation_not_supported);
  const auto& shared = dir == io_direction::read ? read_deadline_ : write_deadline_;
  for (;;) {
    // A cancellation point: a stop request on the calling fiber's token
    // ends the wait with `canceled`, which is operation_canceled here as
    // for a close().
    switch (netpoll_wait(pd_, dir, until.when(), &shared, /*cancellable=*/true)) {
      case io_wait_result::ready:
        return {};
      case io_wait_result::timed_out:
        return std::make_error_code(std::errc::timed_out);
      case io_wait_result::canceled:
        return std::make_error_code(std::errc::operation_canceled);
      case io_wait_result::interrupted:
        break;  // a deadline changed: wait again with it
    }
  }
}

void fd_state::set_deadline(io_direction dir, const deadline& d) noexcept {
  auto& shared = dir == io_direction::read ? read_deadline_ : write_deadline_;
  shared.store(d.when().time_since_epoch().count(), std::memory_order_seq_cst);
  if (pd_ != nullptr) netpoll_interrupt(pd_, dir);
}

void fd_state::close(std::error_code& ec) noexcept {
  ec.clear();
  std::lock_guard lock(close_mu_);
  if (closed_.load(std::memory_order_acquire)) return;
  control_block* self = current_waiter();
  note_wait(self, wait_reason::fd_close, this, fd_);
  prepare_park(self);
  closer_.store(self, std::memory_order_release);
  const std::uint32_t before = ops_.fetch_or(closing_bit, std::memory_order_acq_rel);
  // Parked readers and writers wake with operation_canceled; new waits
  // return it at once.
  if (pd_ != nullptr) netpoll_cancel(pd_);
  if ((before & ~closing_bit) == 0 && closer_.exchange(nullptr, std::memory_order_acq_rel) == self) {
    cancel_park(self);  // no op in flight, and none can take the closer now
  } else {
    park(self);  // the last op wakes us (perhaps already has)
  }
  // No op is in flight or can start: the descriptor is ours alone.
  if (pd_ != nullptr) netpoll_close(pd_);
  if (::close(fd_) != 0 && errno != EINTR) ec = last_error();
  if (!unlink_path_.empty()) ::unlink(unlink_path_.c_str());
  closed_.store(true, std::memory_order_release);
}

io_lock::io_lock(fd_state* s, io_direction dir, std::error_code& ec) noexcept
    : op_(s, ec), s_(s), dir_(dir) {
  if (!op_) return;
  spindle::mutex& mu = s->lock_of(dir);
  mu.lock();
  // This check must come after the lock: a close() that began while we
  // waited for it has woken the call ahead of us, and must not find this
  // one going on to the system call in its place.
  if ((ec = s->closing_error())) {
    mu.unlock();
    return;
  }
  locked_ = true;
}

}  // namespace detail
}  // namespace spindle
