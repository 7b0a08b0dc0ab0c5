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

monitor::~monitor() {
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
    if (sample(std::chrono::steady_clock::now())) {
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
  for (unsigned i = 0; i < views_.size(); ++i) {
    worker& w = rt_.worker_at(i);
    view& v = views_[i];
    const std::uint32_t count = w.switch_count();
    const bool running_fiber = !w.asleep() && w.current_racy() != w.loop_block();
    busy = busy || !w.asleep();
    if (count != v.last || !running_fiber) {
      v.total += static_cast<std::uint32_t>(count - v.last);
      v.last = count;
      v.since = now;
      v.warned = false;
      continue;
    }
    // The same fiber since the sample that first saw this count.
    const auto ran = now - v.since;
    if (ran > v.longest) v.longest = std::chrono::duration_cast<std::chrono::nanoseconds>(ran);
    if (warn_after_.count() > 0 && ran >= warn_after_ && !v.warned) {
      v.warned = true;
      warn(i, ran);
    }
  }
  return busy;
}

void monitor::warn(unsigned index, std::chrono::steady_clock::duration ran) {
  control_block* cb = nullptr;
  if (!hold_fiber_at(rt_.worker_at(index).current_racy(), &cb)) return;  // it switched meanwhile
  if (warned_fibers_.insert(cb->id_).second) {
    std::fprintf(stderr,
                 "spindle: fiber %llu \"%s\" has run for %.3f s on worker %u without a switch: it "
                 "holds up every fiber queued there (a long computation, a spin, or a blocking "
                 "call Spindle does not know; see docs/operability.md)\n",
                 static_cast<unsigned long long>(cb->id_), cb->name_.c_str(),
                 std::chrono::duration<double>(ran).count(), index);
  }
  cb->release();
}

}  // namespace spindle::detail
