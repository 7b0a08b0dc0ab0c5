#include "sync/select.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <system_error>
#include <vector>

namespace spindle::detail {

std::uint32_t select_random() noexcept {
  // xorshift32 per thread: a fair enough shuffle for select's poll order.
  thread_local std::uint32_t state = 0;
  if (state == 0) state = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(&state)) | 1;
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

namespace {

// The distinct channels of a select, in address order: locking them in
// that order everywhere rules out deadlock between selects.
struct lock_set {
  channel_base* chans[64];
  int n = 0;
  std::vector<channel_base*> spill;

  channel_base** data() { return spill.empty() ? chans : spill.data(); }
  // (lock_all/unlock_all use the first n of data().) Not analyzed: the
  // analysis cannot follow a set of locks chosen at run time.
  void lock_all() SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    for (int i = 0; i < n; ++i) data()[i]->lock().lock();
  }
  void unlock_all() SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    for (int i = n; i-- > 0;) data()[i]->lock().unlock();
  }
};

}  // namespace

namespace {

// What select_once() returns when the winning waker's move of the value
// threw (channel_waiter::state::retry): the select starts over.
constexpr int retry = -2;

int select_once(select_case* const* cases, int n,
                const std::chrono::steady_clock::time_point* deadline, bool block) {
  // Poll order: a random permutation (Fisher-Yates).
  std::vector<int> order_storage;
  int order_small[64];
  int* order = order_small;
  if (n > 64) {
    order_storage.resize(static_cast<std::size_t>(n));
    order = order_storage.data();
  }
  for (int i = 0; i < n; ++i) order[i] = i;
  // An index in [0, i] by multiply-and-shift (Lemire; Go's fastrandn)
  // rather than `% (i + 1)`: a division costs tens of cycles, three of
  // them per select over 4 channels.
  for (int i = n - 1; i > 0; --i) {
    const auto j = static_cast<int>(
        (std::uint64_t{select_random()} * static_cast<std::uint32_t>(i + 1)) >> 32);
    std::swap(order[i], order[j]);
  }

  // Reports the case that went through (or found its channel closed).
  auto finish = [&](int i, channel_status st) {
    cases[i]->set_status(st);
    if (st == channel_status::closed && cases[i]->is_send()) {
      throw channel_closed("spindle::select: send on a closed channel");
    }
    return i;
  };
  // Tries case i under its channel's lock, which the caller holds; a
  // waiter it claimed is left in `claimed`, to release after unlocking. If
  // the attempt throws, unlock() runs and the waiter is released first.
  auto try_case = [&](int i, channel_waiter*& claimed, auto unlock) {
    channel_status st;
    try {
      st = cases[i]->try_locked(claimed);
    } catch (...) {
      unlock();
      channel_waiter::release(claimed);
      throw;
    }
    return st == channel_status::success || st == channel_status::closed ? st
                                                                         : channel_status::empty;
  };

  // Pass 1: each case under its own channel's lock alone, in the random
  // order. Taking one lock at a time is enough to go through a ready case
  // (it is a try_send or try_recv on that channel), and when some case is
  // ready, as in a busy server, the select takes one lock instead of all
  // of them (Go takes all of them first).
  for (int k = 0; k < n; ++k) {
    const int i = order[k];
    spinlock& l = cases[i]->chan().lock();
    channel_waiter* claimed = nullptr;
    l.lock();
    // (The unlock on a throw: not analyzed, since the analysis looks at
    // the lambda alone, which does not take `l`.)
    const channel_status st =
        try_case(i, claimed, [&l]() SPINDLE_NO_THREAD_SAFETY_ANALYSIS { l.unlock(); });
    l.unlock();
    channel_waiter::release(claimed);
    if (st != channel_status::empty) return finish(i, st);
  }
  if (!block) return -1;

  // Pass 2: all the locks, in address order, so that no case can become
  // ready between our last look and our waiting on it.
  lock_set locks;
  channel_base** all = locks.chans;
  if (n > 64) {
    locks.spill.resize(static_cast<std::size_t>(n));
    all = locks.spill.data();
  }
  for (int i = 0; i < n; ++i) all[i] = &cases[i]->chan();
  std::sort(all, all + n);
  locks.n = static_cast<int>(std::unique(all, all + n) - all);

  locks.lock_all();
  for (int k = 0; k < n; ++k) {
    const int i = order[k];
    channel_waiter* claimed = nullptr;
    const channel_status st = try_case(i, claimed, [&locks] { locks.unlock_all(); });
    if (st != channel_status::empty) {
      locks.unlock_all();
      channel_waiter::release(claimed);
      return finish(i, st);
    }
  }

  // Wait on all of them at once. One park; a waiter node per case, each
  // pointing at `fired`; the first waker to claim the park (unpark) wins
  // and records its case.
  int fired = -1;
  channel_waiter nodes_small[8];
  std::unique_ptr<channel_waiter[]> nodes_storage;
  channel_waiter* nodes = nodes_small;
  if (n > 8) {
    nodes_storage = std::make_unique<channel_waiter[]>(static_cast<std::size_t>(n));
    nodes = nodes_storage.get();
  }
  control_block* self = current_waiter();
  note_wait(self, wait_reason::select, cases, n);
  prepare_park(self);
  for (int i = 0; i < n; ++i) {
    channel_waiter& w = nodes[i];
    w.waiter = self;
    w.payload = cases[i]->payload();
    w.case_index = i;
    w.fired_case = &fired;
    cases[i]->queue().push_back(&w);
  }
  locks.unlock_all();
  // A fiber that observes a stop token parks with a cancel point
  // (time_point::max() when there is no deadline); one branch for others.
  const bool cancel = cancellable(self);
  if (cancel) [[unlikely]] {
    (void)park_until(self, deadline != nullptr ? *deadline : std::chrono::steady_clock::time_point::max(),
                     cancel_point::yes);
  } else if (deadline == nullptr) {
    park(self);
  } else {
    (void)park_until(self, *deadline);
  }
  // Take every lock (the winner recorded `fired` under its channel's) and
  // withdraw from the other channels.
  locks.lock_all();
  for (int i = 0; i < n; ++i) {
    channel_waiter& w = nodes[i];
    if (w.queued) cases[i]->queue().remove(&w);
  }
  locks.unlock_all();
  if (fired < 0) {
    // The deadline passed first, or a stop request came: no case went
    // through (a waker claims a case only by winning the park).
    if (cancel && stop_requested(self)) {
      throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                              "spindle::select: stop was requested on the calling fiber");
    }
    return -1;
  }
  switch (nodes[fired].wait_released()) {
    case channel_waiter::state::closed:
      return finish(fired, channel_status::closed);
    case channel_waiter::state::retry:
      return retry;  // the waker's move of the value threw: select again
    default:
      return finish(fired, channel_status::success);
  }
}

}  // namespace

int select_engine::run(select_case* const* cases, int n,
                       const std::chrono::steady_clock::time_point* deadline, bool block) {
  for (;;) {
    const int fired = select_once(cases, n, deadline, block);
    if (fired != retry) return fired;
  }
}

}  // namespace spindle::detail
