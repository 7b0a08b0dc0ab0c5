// spindle::select: Go's select over channel sends and receives.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>

#include "fiber/thread_annotations.h"
#include "sync/channel.h"

namespace spindle {

namespace detail {

// What select() needs of a case, whatever the channel's value type.
class select_case {
 public:
  virtual ~select_case() = default;
  virtual channel_base& chan() noexcept = 0;
  // The non-blocking attempt, under the channel's lock (held by the
  // caller); a waiter it claimed is left in `claimed`, for the caller to
  // release after it unlocked (channel_waiter).
  virtual channel_status try_locked(channel_waiter*& claimed) = 0;
  virtual bool is_send() const noexcept = 0;
  virtual void* payload() noexcept = 0;
  // The channel's queue this case waits in; under the channel's lock.
  virtual wait_list& queue() noexcept = 0;
  virtual void set_status(channel_status s) noexcept = 0;
};

std::uint32_t select_random() noexcept;

class select_engine {
 public:
  // Runs a select over `cases`; returns the index of the case that went
  // through, or -1 (no case ready with !block, or the deadline passed).
  static int run(select_case* const* cases, int n,
                 const std::chrono::steady_clock::time_point* deadline, bool block);
};

}  // namespace detail

// recv_case is a receive case of select(): after select() chose it,
// `value` holds what was received, or std::nullopt if the channel was
// closed (and drained).
template <class T>
class recv_case final : public detail::select_case {
 public:
  explicit recv_case(channel<T>& ch) noexcept : ch_(ch) {}
  std::optional<T> value;
  channel_status status = channel_status::empty;

 private:
  detail::channel_base& chan() noexcept override { return ch_; }
  channel_status try_locked(detail::channel_waiter*& claimed) override
      SPINDLE_REQUIRES(ch_.lock_) {
    return ch_.try_recv_locked(value, claimed);
  }
  bool is_send() const noexcept override { return false; }
  void* payload() noexcept override { return &value; }
  detail::wait_list& queue() noexcept override SPINDLE_REQUIRES(ch_.lock_) {
    return ch_.receivers_;
  }
  void set_status(channel_status s) noexcept override { status = s; }
  channel<T>& ch_;
};

// send_case is a send case of select(): it sends `value`.
template <class T>
class send_case final : public detail::select_case {
 public:
  send_case(channel<T>& ch, T v) : value(std::move(v)), ch_(ch) {}
  T value;
  channel_status status = channel_status::full;

 private:
  detail::channel_base& chan() noexcept override { return ch_; }
  channel_status try_locked(detail::channel_waiter*& claimed) override
      SPINDLE_REQUIRES(ch_.lock_) {
    return ch_.try_send_locked(value, claimed);
  }
  bool is_send() const noexcept override { return true; }
  void* payload() noexcept override { return &value; }
  detail::wait_list& queue() noexcept override SPINDLE_REQUIRES(ch_.lock_) {
    return ch_.senders_;
  }
  void set_status(channel_status s) noexcept override { status = s; }
  channel<T>& ch_;
};

// select() waits until one of the cases can go through, does it, and
// returns its index (0 for the first case). When several are ready, one is
// picked uniformly at random, so that no case starves (Go's rule). A
// receive from a closed channel is ready (its value is std::nullopt); a
// send to a closed channel throws channel_closed, as Go panics.
//
//   spindle::recv_case job(jobs);
//   spindle::recv_case stop(quit);
//   switch (spindle::select(job, stop)) {
//     case 0: run(*job.value); break;
//     case 1: return;
//   }
//
// try_select() is select() with a default: -1 at once if no case is ready.
// select_for()/select_until() return -1 when the deadline passes first.
//
// Cancellation: for a fiber that observes a stop token (spindle::jthread's,
// fiber_options::stop_token), select(), select_for() and select_until()
// are cancellation points: once stop is requested, a select that would
// wait (no case ready) throws std::system_error with
// std::errc::operation_canceled (an int has no room for a third outcome
// next to a case and -1), and no case went through. One with a ready case
// still goes through it. try_select() never waits.
//
// Destruction: the channels of the cases must outlive the call. Even once
// one of them has woken it (by a value, or by close()), a waiting select()
// takes every case's channel lock on its way out, to withdraw from the
// others, so unlike recv() and send() it may touch a channel after the
// close() that woke it has returned. Destroying a channel while a select()
// waits on it is caught: the channel's destructor aborts naming it (see
// channel). The cases themselves are the caller's, and may go once
// select() has returned.
template <class... Cases>
int select(Cases&... cases) {
  detail::select_case* cs[] = {&cases...};
  return detail::select_engine::run(cs, sizeof...(Cases), nullptr, true);
}

template <class... Cases>
int try_select(Cases&... cases) {
  detail::select_case* cs[] = {&cases...};
  return detail::select_engine::run(cs, sizeof...(Cases), nullptr, false);
}

template <class Clock, class Duration, class... Cases>
int select_until(const std::chrono::time_point<Clock, Duration>& deadline, Cases&... cases) {
  detail::select_case* cs[] = {&cases...};
  const auto d = detail::to_steady(deadline);
  return detail::select_engine::run(cs, sizeof...(Cases), &d, true);
}

template <class Rep, class Period, class... Cases>
int select_for(const std::chrono::duration<Rep, Period>& timeout, Cases&... cases) {
  return select_until(detail::steady_after(timeout), cases...);
}

}  // namespace spindle
