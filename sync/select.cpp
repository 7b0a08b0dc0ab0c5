#include "sync/select.h"

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
  void lock_all() {
    for (int i = 0; i < n; ++i) data()[i]->lock().lock();
  }
  void unlock_all() {
    for (int i = n; i-- > 0;) data()[i]->lock().unlock();
  }
};

}  // namespace

int select_engine::run(select_case* const* cases, int n,
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
  for (int i = n - 1; i > 0; --i) std::swap(order[i], order[select_random() % (i + 1)]);

  lock_set locks;
  std::vector<channel_base*> all;
  all.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) all.push_back(&cases[i]->chan());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  locks.n = static_cast<int>(all.size());
  if (locks.n > 64) {
    locks.spill = all;
  } else {
    std::copy(all.begin(), all.end(), locks.chans);
  }

  locks.lock_all();
  // Pass 1: a case that can go through now.
  for (int k = 0; k < n; ++k) {
    const int i = order[k];
    const channel_status st = cases[i]->try_locked();
    if (st == channel_status::success || st == channel_status::closed) {
      locks.unlock_all();
      cases[i]->set_status(st);
      if (st == channel_status::closed && cases[i]->is_send()) {
        throw channel_closed("spindle::select: send on a closed channel");
      }
      return i;
    }
  }
  if (!block) {
    locks.unlock_all();
    return -1;
  }

  // Pass 2: wait on all of them at once. One park; a waiter node per case,
  // each pointing at `fired`; the first waker to claim the park (unpark)
  // wins and records its case.
  int fired = -1;
  std::vector<channel_waiter> nodes(static_cast<std::size_t>(n));
  control_block* self = current_waiter();
  prepare_park(self);
  for (int i = 0; i < n; ++i) {
    channel_waiter& w = nodes[static_cast<std::size_t>(i)];
    w.waiter = self;
    w.payload = cases[i]->payload();
    w.case_index = i;
    w.fired_case = &fired;
    cases[i]->queue().push_back(&w);
  }
  locks.unlock_all();
  if (deadline == nullptr) {
    park(self);
  } else {
    (void)park_until(self, *deadline);
  }
  // Take every lock (the winner wrote the value under its channel's) and
  // withdraw from the other channels.
  locks.lock_all();
  for (int i = 0; i < n; ++i) {
    channel_waiter& w = nodes[static_cast<std::size_t>(i)];
    if (w.queued) cases[i]->queue().remove(&w);
  }
  locks.unlock_all();
  if (fired < 0) return -1;  // the deadline passed first
  const channel_waiter& w = nodes[static_cast<std::size_t>(fired)];
  if (w.status == channel_waiter::state::closed) {
    cases[fired]->set_status(channel_status::closed);
    if (cases[fired]->is_send()) throw channel_closed("spindle::select: send on a closed channel");
  } else {
    cases[fired]->set_status(channel_status::success);
  }
  return fired;
}

}  // namespace spindle::detail
