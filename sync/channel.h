// spindle::channel<T>: Go's channels for fibers. select() is in
// sync/select.h.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "fiber/thread_annotations.h"
#include "fiber/clock.h"
#include "sync/detail/channel_base.h"
#include "sync/detail/wait_queue.h"

namespace spindle {

// What a channel operation that can fail without throwing reports.
enum class channel_status {
  success,  // the value was sent or received
  empty,    // try_recv: nothing to receive now
  full,     // try_send: no room and no receiver now
  closed,   // the channel is closed (recv: and drained)
  timeout,  // the deadline passed first
  canceled,  // stop was requested on the calling fiber's stop token (see channel)
};

// channel_closed is thrown by send() on a closed channel and by close() on
// a channel already closed (Go panics in both cases).
class channel_closed : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

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
//
// Cancellation: for a fiber that observes a stop token (spindle::jthread's,
// fiber_options::stop_token), send(), recv() and their timed forms are
// cancellation points. Once stop is requested, an operation that would
// wait does not (or stops waiting): send() and recv() throw
// std::system_error with std::errc::operation_canceled (recv()'s
// std::nullopt keeps meaning "closed and drained"), send_until/send_for
// and recv_until/recv_for return channel_status::canceled. An operation
// that can go through without waiting still does. A stop that races with
// the other side's hand-off gives one of the two outcomes: the value went
// through (success), or the operation was canceled and the value did not
// move (a canceled send's value is still the caller's; a value meant for
// a canceled receiver goes to another receiver or the buffer).
//
// Destruction: a channel may be destroyed once no fiber or thread is in a
// call on it (send, recv, close, select, ...). A fiber whose send() or
// recv() returned may destroy it at once, even while the fiber that woke it
// is still inside its own call: a waker lets go of the channel before it
// lets the woken fiber return. Likewise, once close() has returned, the
// fibers it woke from send() and recv() no longer touch the channel, so it
// may be destroyed before they return; a select() it woke does touch it on
// its way out (see select()). Destroying the channel while fibers are
// parked in send(), recv() or select() on it is undefined, as destroying a
// std::condition_variable that threads wait on, and it is caught while a
// spindle::run() runtime runs (see sync/detail/misuse.h): the destructor
// aborts with "spindle: channel 0x... destroyed while fibers wait on it (N
// receivers, M senders); close() it and let them leave first" (select()
// cases count as receivers or senders). Otherwise they would stay parked
// for ever, and spindle::run() would wait for them. The check costs the
// destructor one uncontended lock, and sends and receives nothing. It
// cannot see a fiber that has left the queues but not the call yet (a timed
// wait whose deadline passed, a select() on its way out).
template <class T>
class channel : private detail::channel_base {
 public:
  // Throws std::length_error for a capacity over 2^32 - 1 values.
  explicit channel(std::size_t capacity = 0) {
    if (capacity > std::numeric_limits<std::uint32_t>::max()) {
      throw std::length_error("spindle::channel: capacity over 2^32 - 1 values");
    }
    capacity_ = static_cast<std::uint32_t>(capacity);
  }
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  ~channel() {
    abort_if_waited_on();
    while (count_ != 0) pop_front();
    ::operator delete(slots_, std::align_val_t{alignof(T)});
  }

  // send() waits until the value is taken (unbuffered) or buffered.
  // Throws channel_closed, or std::system_error (operation_canceled) when
  // canceled (see "Cancellation").
  void send(T value) {
    const channel_status st = send_impl(value, nullptr, true);
    if (st == channel_status::closed) {
      throw channel_closed("spindle::channel::send: the channel is closed");
    }
    if (st == channel_status::canceled) [[unlikely]] throw_canceled("spindle::channel::send");
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
    return send_until(value, detail::steady_after(timeout));
  }

  // recv() waits for a value; std::nullopt once closed and drained.
  // Throws std::system_error (operation_canceled) when canceled (see
  // "Cancellation").
  std::optional<T> recv() {
    std::optional<T> out;
    if (recv_impl(out, nullptr, true) == channel_status::canceled) [[unlikely]] {
      throw_canceled("spindle::channel::recv");
    }
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
    return recv_until(out, detail::steady_after(timeout));
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
    // Claim every waiter under the lock, release them after it: the last
    // one released may destroy the channel at once.
    detail::channel_waiter* claimed = nullptr;
    for (detail::wait_list* list : {&receivers_, &senders_}) {
      while (detail::channel_waiter* w = claim_first(*list)) {
        w->outcome = detail::channel_waiter::state::closed;
        w->next_claimed = claimed;
        claimed = w;
      }
    }
    lock_.unlock();
    while (claimed != nullptr) {
      detail::channel_waiter* next = claimed->next_claimed;
      detail::channel_waiter::release(claimed);
      claimed = next;
    }
  }

  // size() is the number of buffered values now (a snapshot); capacity()
  // the buffer's.
  std::size_t size() const noexcept {
    lock_.lock();
    const std::size_t n = count_;
    lock_.unlock();
    return n;
  }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  friend class detail::select_engine;
  friend struct detail::waiter_census;
  template <class>
  friend class recv_case;
  template <class>
  friend class send_case;

  // ---- Under lock_: the non-blocking halves, shared with select ----

  // Sends now if it can: to a waiting receiver, or into the buffer. A
  // receiver it claimed is left in `claimed` for the caller to release
  // after unlocking (even when this throws).
  channel_status try_send_locked(T& value, detail::channel_waiter*& claimed)
      SPINDLE_REQUIRES(lock_) {
    if (closed_) return channel_status::closed;
    if (detail::channel_waiter* r = claim_first(receivers_)) {
      // Only an empty buffer has waiting receivers: hand it over directly.
      claimed = r;
      static_cast<std::optional<T>*>(r->payload)->emplace(std::move(value));
      r->outcome = detail::channel_waiter::state::done;
      return channel_status::success;
    }
    if (count_ < capacity_) {
      push_back(value);
      return channel_status::success;
    }
    return channel_status::full;
  }

  // Receives now if it can: from the buffer (refilling it from a waiting
  // sender), or from a waiting sender directly (unbuffered). `claimed` as
  // for try_send_locked().
  channel_status try_recv_locked(std::optional<T>& out, detail::channel_waiter*& claimed)
      SPINDLE_REQUIRES(lock_) {
    if (count_ != 0) {
      out.emplace(std::move(front()));
      pop_front();
      if (!senders_.empty()) {
        // The buffer was full: the room just made goes to the first sender.
        // Grow first (it can throw), then claim.
        reserve_one();
        if (detail::channel_waiter* s = claim_first(senders_)) {
          claimed = s;
          try {
            push_back(*static_cast<T*>(s->payload));
            s->outcome = detail::channel_waiter::state::done;
          } catch (...) {
            // The sender's value would not move. Our receive went through;
            // the sender (outcome retry) sends again and meets the
            // exception itself.
          }
        }
      }
      return channel_status::success;
    }
    if (detail::channel_waiter* s = claim_first(senders_)) {
      claimed = s;
      out.emplace(std::move(*static_cast<T*>(s->payload)));
      s->outcome = detail::channel_waiter::state::done;
      return channel_status::success;
    }
    return closed_ ? channel_status::closed : channel_status::empty;
  }

  channel_status send_impl(T& value, const std::chrono::steady_clock::time_point* deadline,
                           bool block) {
    return transfer([&](detail::channel_waiter*& c)
                        SPINDLE_REQUIRES(lock_) { return try_send_locked(value, c); },
                    channel_status::full, &channel::senders_, &value, deadline, block);
  }

  channel_status recv_impl(std::optional<T>& out,
                           const std::chrono::steady_clock::time_point* deadline, bool block) {
    return transfer([&](detail::channel_waiter*& c)
                        SPINDLE_REQUIRES(lock_) { return try_recv_locked(out, c); },
                    channel_status::empty, &channel::receivers_, &out, deadline, block);
  }

  // The shape of a send and a receive: try now under the lock; if that
  // would have to wait (`would_wait`) and we may, park in this->*list
  // (senders_ or receivers_) with `payload` for the other side to fill or
  // take.
  template <class Attempt>
  channel_status transfer(Attempt attempt, channel_status would_wait,
                          detail::wait_list detail::channel_base::*list, void* payload,
                          const std::chrono::steady_clock::time_point* deadline, bool block) {
    for (;;) {
      detail::channel_waiter* claimed = nullptr;
      lock_.lock();
      channel_status st;
      try {
        st = attempt(claimed);  // may throw: T's move, growing the ring
      } catch (...) {
        lock_.unlock();
        detail::channel_waiter::release(claimed);
        throw;
      }
      if (st != would_wait || !block) {
        lock_.unlock();
        detail::channel_waiter::release(claimed);
        return st;
      }
      // Nothing was claimed: park until the other side comes. The lock is
      // let go only once we have switched out (park_commit), so that no
      // waker meets us half parked: without a deadline only wakers that
      // hold the lock can wake us, and neither side needs a CAS for it.
      detail::channel_waiter w;
      w.payload = payload;
      w.waiter = detail::current_waiter();
      detail::note_wait(w.waiter,
                        list == &channel::senders_ ? detail::wait_reason::channel_send
                                                     : detail::wait_reason::channel_recv,
                        this);
      // A fiber that observes a stop token parks with a cancel point, and
      // so not as `sole` (a stop request may end its park too). One branch
      // for the others.
      const bool cancellable = detail::cancellable(w.waiter);
      w.sole = deadline == nullptr && !cancellable;
      (this->*list).push_back(&w);
      if (!park_unlocking(w, deadline, cancellable)) {
        // Nobody can claim us any more; a waker that popped us first (and
        // whose unpark failed) looks at w only while it holds the lock,
        // and moved nothing (the value is still ours, or went elsewhere).
        lock_.lock();
        if (w.queued) (this->*list).remove(&w);
        lock_.unlock();
        return cancellable && detail::stop_requested(w.waiter) ? channel_status::canceled
                                                               : channel_status::timeout;
      }
      switch (w.wait_released()) {
        case detail::channel_waiter::state::done:
          return channel_status::success;
        case detail::channel_waiter::state::closed:
          return channel_status::closed;
        default:  // retry: the waker's move of the value threw
          continue;
      }
    }
  }

  [[noreturn, gnu::cold]] static void throw_canceled(const char* what) {
    throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                            std::string(what) + ": stop was requested on the calling fiber");
  }

  // ---- The ring (under lock_) ----
  T* slots() const noexcept SPINDLE_REQUIRES(lock_) { return static_cast<T*>(slots_); }
  T& front() noexcept SPINDLE_REQUIRES(lock_) { return slots()[head_]; }
  void pop_front() noexcept SPINDLE_REQUIRES(lock_) {
    slots()[head_].~T();
    if (++head_ == ring_size_) head_ = 0;
    --count_;
  }
  // Makes room for one more value (count_ < capacity_): grows the ring
  // when it is full, moving the values into a new one twice its size
  // (at most the capacity). Strong guarantee: on a throw nothing changed.
  void reserve_one() SPINDLE_REQUIRES(lock_) {
    if (count_ < ring_size_) return;
    const std::uint64_t want = ring_size_ == 0 ? 8 : 2 * std::uint64_t{ring_size_};
    const auto size = static_cast<std::uint32_t>(want < capacity_ ? want : capacity_);
    T* fresh = static_cast<T*>(::operator new(sizeof(T) * size, std::align_val_t{alignof(T)}));
    std::uint32_t moved = 0;
    try {
      for (; moved < count_; ++moved) {
        ::new (static_cast<void*>(fresh + moved))
            T(std::move_if_noexcept(slots()[(std::uint64_t{head_} + moved) % ring_size_]));
      }
    } catch (...) {
      while (moved != 0) fresh[--moved].~T();
      ::operator delete(fresh, std::align_val_t{alignof(T)});
      throw;
    }
    for (std::uint32_t i = 0; i < count_; ++i) slots()[(std::uint64_t{head_} + i) % ring_size_].~T();
    ::operator delete(slots_, std::align_val_t{alignof(T)});
    slots_ = fresh;
    ring_size_ = size;
    head_ = 0;
  }
  // Appends, moving from `value` (count_ < capacity_).
  void push_back(T& value) SPINDLE_REQUIRES(lock_) {
    reserve_one();
    std::uint64_t tail = std::uint64_t{head_} + count_;
    if (tail >= ring_size_) tail -= ring_size_;
    ::new (static_cast<void*>(slots() + tail)) T(std::move(value));
    ++count_;
  }
};

}  // namespace spindle
