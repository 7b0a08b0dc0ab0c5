// spindle::channel<T>: Go's channels for fibers. select() is in
// sync/select.h.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <stdexcept>
#include <utility>

#include "sync/condition_variable.h"
#include "sync/detail/wait_queue.h"

namespace spindle {

// What a channel operation that can fail without throwing reports.
enum class channel_status {
  success,  // the value was sent or received
  empty,    // try_recv: nothing to receive now
  full,     // try_send: no room and no receiver now
  closed,   // the channel is closed (recv: and drained)
  timeout,  // the deadline passed first
};

// channel_closed is thrown by send() on a closed channel and by close() on
// a channel already closed (Go panics in both cases).
class channel_closed : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {

class select_engine;

// A parked sender or receiver (or one case of a select): lives on its
// fiber's stack. The waker claims the waiter (unpark), then, still holding
// the channel's lock, moves the value and sets `status`; the woken fiber
// takes the channel's lock before it looks, so it sees both.
struct channel_waiter : wait_node {
  enum class state : unsigned char { pending, done, closed };
  state status = state::pending;
  // For a select: which case this is, and where the winner is recorded.
  int case_index = -1;
  int* fired_case = nullptr;
};

class channel_base {
 public:
  spinlock& lock() const noexcept { return lock_; }

 protected:
  // Wakes the first waiter of `list` that can still be woken (a waiter of
  // a select may have been claimed by another channel; a timed one may
  // have timed out) and returns it, claimed; nullptr if none. Holds lock_.
  static channel_waiter* claim_first(wait_list& list) noexcept {
    while (wait_node* n = list.pop_front()) {
      if (unpark(n->waiter)) {
        auto* w = static_cast<channel_waiter*>(n);
        if (w->fired_case != nullptr) *w->fired_case = w->case_index;
        return w;
      }
    }
    return nullptr;
  }

  // Parks the caller, registered in `list` with the lock held; returns
  // with the lock held again. False on timeout (then the waiter is out of
  // the list and nothing was transferred).
  bool park_in(wait_list& list, channel_waiter& w,
               const std::chrono::steady_clock::time_point* deadline) noexcept {
    w.waiter = current_waiter();
    prepare_park(w.waiter);
    list.push_back(&w);
    lock_.unlock();
    const bool woken = deadline == nullptr ? (park(w.waiter), true)
                                           : park_until(w.waiter, *deadline);
    lock_.lock();
    if (!woken && w.queued) list.remove(&w);
    // Woken, or claimed by a waker whose unpark came after our timeout
    // (then it failed and the waker moved on): status tells.
    return woken;
  }

  mutable spinlock lock_;
  wait_list senders_;    // channel_waiter with payload: T* to move from
  wait_list receivers_;  // channel_waiter with payload: std::optional<T>* to fill
  bool closed_ = false;

  template <class>
  friend class channel;
  friend class select_engine;
};

}  // namespace detail

template <class>
class recv_case;
template <class>
class send_case;

namespace detail {

}  // namespace detail

// channel<T> is a Go channel: a FIFO of values between fibers (and
// threads). channel<T>(0) is unbuffered: send() waits until a receiver
// takes the value (a rendezvous). channel<T>(n) buffers up to n values:
// send() waits only while it is full. recv() waits for a value, and after
// close() returns the values still buffered, then std::nullopt for good.
// Values and waiters are served in FIFO order. Move-only T works.
//
//   spindle::channel<std::string> lines(16);
//   spindle::go([&] { for (auto& l : input) lines.send(l); lines.close(); });
//   while (auto line = lines.recv()) handle(*line);
//
// Sending on a closed channel throws channel_closed, as Go panics; so
// does closing twice. Everything a sender did before send() is visible to
// the receiver after recv(). Any fiber or thread.
template <class T>
class channel : private detail::channel_base {
 public:
  explicit channel(std::size_t capacity = 0) : capacity_(capacity) {}
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  // send() waits until the value is taken (unbuffered) or buffered.
  void send(T value) {
    if (send_impl(value, nullptr, true) == channel_status::closed) {
      throw channel_closed("spindle::channel::send: the channel is closed");
    }
  }
  // try_send() never waits: success, full, or closed (and then the value
  // is left in `value`).
  [[nodiscard]] channel_status try_send(T& value) { return send_impl(value, nullptr, false); }
  [[nodiscard]] channel_status try_send(T&& value) { return send_impl(value, nullptr, false); }
  template <class Clock, class Duration>
  [[nodiscard]] channel_status send_until(T& value,
                                          const std::chrono::time_point<Clock, Duration>& deadline) {
    const auto d = detail::to_steady(deadline);
    return send_impl(value, &d, true);
  }
  template <class Rep, class Period>
  [[nodiscard]] channel_status send_for(T& value, const std::chrono::duration<Rep, Period>& timeout) {
    return send_until(value, std::chrono::steady_clock::now() + timeout);
  }

  // recv() waits for a value; std::nullopt once closed and drained.
  std::optional<T> recv() {
    std::optional<T> out;
    (void)recv_impl(out, nullptr, true);
    return out;
  }
  // try_recv() never waits: success (value in `out`), empty, or closed.
  [[nodiscard]] channel_status try_recv(std::optional<T>& out) {
    return recv_impl(out, nullptr, false);
  }
  template <class Clock, class Duration>
  [[nodiscard]] channel_status recv_until(std::optional<T>& out,
                                          const std::chrono::time_point<Clock, Duration>& deadline) {
    const auto d = detail::to_steady(deadline);
    return recv_impl(out, &d, true);
  }
  template <class Rep, class Period>
  [[nodiscard]] channel_status recv_for(std::optional<T>& out,
                                        const std::chrono::duration<Rep, Period>& timeout) {
    return recv_until(out, std::chrono::steady_clock::now() + timeout);
  }

  // close() closes the channel: waiting receivers get std::nullopt (after
  // the buffered values are gone), waiting and later senders throw.
  void close() {
    lock_.lock();
    if (closed_) {
      lock_.unlock();
      throw channel_closed("spindle::channel::close: the channel is already closed");
    }
    closed_ = true;
    while (detail::channel_waiter* w = claim_first(receivers_)) w->status = detail::channel_waiter::state::closed;
    while (detail::channel_waiter* w = claim_first(senders_)) w->status = detail::channel_waiter::state::closed;
    lock_.unlock();
  }

  // size() is the number of buffered values now (a snapshot); capacity()
  // the buffer's.
  std::size_t size() const noexcept {
    lock_.lock();
    const std::size_t n = buffer_.size();
    lock_.unlock();
    return n;
  }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  friend class detail::select_engine;
  template <class>
  friend class recv_case;
  template <class>
  friend class send_case;

  // ---- Under lock_: the non-blocking halves, shared with select ----

  // Sends now if it can: to a waiting receiver, or into the buffer.
  channel_status try_send_locked(T& value) {
    if (closed_) return channel_status::closed;
    if (detail::channel_waiter* r = claim_first(receivers_)) {
      // Only an empty buffer has waiting receivers: hand it over directly.
      static_cast<std::optional<T>*>(r->payload)->emplace(std::move(value));
      r->status = detail::channel_waiter::state::done;
      return channel_status::success;
    }
    if (buffer_.size() < capacity_) {
      buffer_.push_back(std::move(value));
      return channel_status::success;
    }
    return channel_status::full;
  }

  // Receives now if it can: from the buffer (refilling it from a waiting
  // sender), or from a waiting sender directly (unbuffered).
  channel_status try_recv_locked(std::optional<T>& out) {
    if (!buffer_.empty()) {
      out.emplace(std::move(buffer_.front()));
      buffer_.pop_front();
      if (detail::channel_waiter* s = claim_first(senders_)) {
        buffer_.push_back(std::move(*static_cast<T*>(s->payload)));
        s->status = detail::channel_waiter::state::done;
      }
      return channel_status::success;
    }
    if (detail::channel_waiter* s = claim_first(senders_)) {
      out.emplace(std::move(*static_cast<T*>(s->payload)));
      s->status = detail::channel_waiter::state::done;
      return channel_status::success;
    }
    return closed_ ? channel_status::closed : channel_status::empty;
  }

  channel_status send_impl(T& value, const std::chrono::steady_clock::time_point* deadline,
                           bool block) {
    lock_.lock();
    channel_status st = try_send_locked(value);
    if (st != channel_status::full || !block) {
      lock_.unlock();
      return st;
    }
    detail::channel_waiter w;
    w.payload = &value;
    park_in(senders_, w, deadline);
    st = w.status == detail::channel_waiter::state::done     ? channel_status::success
         : w.status == detail::channel_waiter::state::closed ? channel_status::closed
                                                             : channel_status::timeout;
    lock_.unlock();
    return st;
  }

  channel_status recv_impl(std::optional<T>& out,
                           const std::chrono::steady_clock::time_point* deadline, bool block) {
    lock_.lock();
    channel_status st = try_recv_locked(out);
    if (st != channel_status::empty || !block) {
      lock_.unlock();
      return st;
    }
    detail::channel_waiter w;
    w.payload = &out;
    park_in(receivers_, w, deadline);
    st = w.status == detail::channel_waiter::state::done     ? channel_status::success
         : w.status == detail::channel_waiter::state::closed ? channel_status::closed
                                                             : channel_status::timeout;
    lock_.unlock();
    return st;
  }

  const std::size_t capacity_;
  std::deque<T> buffer_;  // guarded by lock_
};

}  // namespace spindle
