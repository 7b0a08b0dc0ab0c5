// The runtime's monitor; see monitor.h.
#include "sched/detail/monitor.h"

#include <pthread.h>

#include <cstdio>

#include "fiber/detail/inspect.h"
#include "sched/detail/runtime.h"
#include "sched/detail/worker.h"

namespace spindle::detail {

monitor::monitor(runtime& rt, std::chrono::milliseconds warn_after)
    : rt_(rt), warn_after_(warn_after), views_(rt.worker_count()) {
  const auto now = std::chrono::steady_clock::now();
  for (view& v : views_) v.since = now;
  g_service_threads.fetch_add(1, std::memory_order_acq_rel);
  thread_ = std::thread([this] { run(); });
}

monitor::~monitor() { stop(); }

void monitor::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  g_service_threads.fetch_sub(1, std::memory_order_acq_rel);
}

void monitor::worker_woke() noexcept {
  if (!sleeping_.load(std::memory_order_seq_cst)) return;
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_one();
}

void monitor::read(unsigned i, std::uint64_t* switches, std::chrono::nanoseconds* longest_run) {
  std::lock_guard lock(mu_);
  const view& v = views_[i];
  // The switches since the last sample, added to the 64-bit total (fewer
  // than 2^32 switches happen in one sample interval).
  *switches = v.total + static_cast<std::uint32_t>(rt_.worker_at(i).switch_count() - v.last);
  *longest_run = v.longest;
}

void monitor::run() {
  ::pthread_setname_np(::pthread_self(), "spindle-monitor");
  std::unique_lock lock(mu_);
  while (!stop_) {
    const bool busy = sample(std::chrono::steady_clock::now());
    // Acting on it takes the runtime's locks (its idle list, a spare's
    // thread): not under mu_, which workers take under those (worker_woke).
    lock.unlock();
    act();
    lock.lock();
    if (busy) {
      cv_.wait_for(lock, sample_interval, [this] { return stop_; });
      continue;
    }
    // Every worker idle: sleep until one wakes. Announce it, then look
    // again (a worker that woke in between either is seen here or sees
    // sleeping_ and kicks us; seq_cst on both sides).
    sleeping_.store(true, std::memory_order_seq_cst);
    if (rt_.all_idle()) {
      cv_.wait(lock, [this] { return stop_ || kicked_; });
    }
    kicked_ = false;
    sleeping_.store(false, std::memory_order_relaxed);
  }
}

bool monitor::sample(std::chrono::steady_clock::time_point now) {
  bool busy = false;
  int held = 0;
  int active = 0;
  bool work_waits = false;
  const unsigned slots = rt_.slot_count();
  while (views_.size() < slots) {
    views_.push_back(view{});
    views_.back().last = rt_.worker_at(static_cast<unsigned>(views_.size() - 1)).switch_count();
    views_.back().since = now;
  }
  const auto due_soon = (now + sample_interval).time_since_epoch().count();
  for (unsigned i = 0; i < views_.size(); ++i) {
    worker& w = rt_.worker_at(i);
    view& v = views_[i];
    const std::uint32_t count = w.switch_count();
    if (w.spare() && w.retired()) {
      v.total += static_cast<std::uint32_t>(count - v.last);
      v.last = count;
      v.since = now;
      continue;
    }
    ++active;
    // (current_ is null until the worker's loop has started.)
    const control_block* current = w.current_racy();
    const bool running_fiber = !w.asleep() && current != nullptr && current != w.loop_block();
    busy = busy || !w.asleep();
    if (count != v.last || !running_fiber) {
      v.total += static_cast<std::uint32_t>(count - v.last);
      v.last = count;
      v.since = now;
      v.warned = false;
      continue;
    }
    const auto ran = now - v.since;
    if (ran > v.longest) v.longest = std::chrono::duration_cast<std::chrono::nanoseconds>(ran);
    if (warn_after_.count() > 0 && ran >= warn_after_ && !v.warned) {
      v.warned = true;
      warn(i, ran);
    }
    // Held: the same fiber since the sample that first saw this count,
    // hold_threshold ago at least (less half an interval, for a wait that
    // woke early).
    if (ran < hold_threshold - sample_interval / 2) continue;
    ++held;
    if (w.has_stealable_work() || w.timers().due(due_soon)) work_waits = true;
  }
  rt_.set_held_workers(held);
  relieve_ = held != 0 && (work_waits || held == active);
  return busy;
}

void monitor::act() {
  if (relieve_) relieve();
  if (rt_.held_workers() < rt_.active_spares()) {
    // Holds have ended: a spare asleep in its loop (with no timeout, when
    // every worker idles) looks again, and retires.
    for (unsigned i = rt_.worker_count(); i < rt_.slot_count(); ++i) {
      worker& w = rt_.worker_at(i);
      if (!w.retired() && w.asleep()) w.wake();
    }
  }
  rt_.join_spares(/*all=*/false);
}

void monitor::relieve() {
  // An idle worker takes it (it steals rings, inboxes, a stale runnext and
  // any worker's due timers); it would within its idle poll anyway.
  if (rt_.idle_count() != 0) {
    rt_.wake_one_idle_worker();
    return;
  }
  if (rt_.max_spares() == 0 || rt_.start_spare()) return;
  if (!warned_spare_bound_ && rt_.active_spares() >= static_cast<int>(rt_.max_spares())) {
    warned_spare_bound_ = true;
    std::fprintf(stderr,
                 "spindle: %u spare workers run, the most runtime_options::max_spare_workers "
                 "allows, and fibers still hold every worker: work queued behind them waits "
                 "until a hold ends (docs/sched.md, \"Held workers\")\n",
                 rt_.max_spares());
  }
}

void monitor::warn(unsigned index, std::chrono::steady_clock::duration ran) {
  control_block* cb = nullptr;
  if (!hold_fiber_at(rt_.worker_at(index).current_racy(), &cb)) return;  // it switched meanwhile
  if (warned_fibers_.insert(cb->id_).second) {
    std::fprintf(stderr,
                 "spindle: fiber %llu \"%s\" has run for %.3f s on worker %u without a switch: it "
                 "holds that worker's thread (a long computation, a spin, or a blocking call "
                 "Spindle does not know; see docs/operability.md)\n",
                 static_cast<unsigned long long>(cb->id_), cb->name_.c_str(),
                 std::chrono::duration<double>(ran).count(), index);
  }
  cb->release();
}

}  // namespace spindle::detail
