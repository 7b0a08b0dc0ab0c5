// The runtime's monitor: a thread that looks at the workers from outside,
// as Go's sysmon does. It measures how long fibers run without switching
// (runtime_stats()'s longest_run), warns about a fiber that hogs its
// worker (runtime_options::long_run_warning), and keeps the runtime making
// progress while fibers hold workers (docs/sched.md, "Held workers").
// Internal to sched/.
//
// It samples each worker's switch count every sample_interval while any
// worker is busy: a worker whose count has not moved between two samples,
// and that is running a fiber (not its loop), has been running that one
// fiber at least since the first of them. The measure is a lower bound,
// coarse by one interval, and costs the workers nothing: they count their
// switches anyway (for stealing). With every worker idle the monitor
// sleeps until one wakes (runtime::leave_idle), so an idle runtime costs
// no CPU.
//
// Held workers. A worker whose fiber has not switched for hold_threshold
// (20-30 ms, as sampled) is held: by a spin-wait, a long computation, or a
// blocking call Spindle does not know. If fibers wait in its queues
// (which it will not run), or every worker is held (then nobody would
// run timers, poll the network or take what other threads hand over), the
// monitor wakes an idle worker to take that work, or, with none idle,
// starts a spare worker thread (runtime::start_spare), up to
// runtime_options::max_spare_workers. A spare is a worker like the others
// (it steals, polls, runs any worker's due timers); it retires when it
// runs out of work and fewer workers are held than spares run.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

namespace spindle::detail {

class runtime;

class monitor {
 public:
  static constexpr auto sample_interval = std::chrono::milliseconds(10);
  // How long a fiber must run without a switch before its worker counts
  // as held (Go's sysmon preempts after 10 ms). Two samples: one would
  // also catch a worker thread that the OS merely left unscheduled for a
  // moment on a loaded machine.
  static constexpr auto hold_threshold = std::chrono::milliseconds(20);

  // Starts the thread. `warn_after` is runtime_options::long_run_warning
  // (0: no warnings).
  monitor(runtime& rt, std::chrono::milliseconds warn_after);
  // Stops and joins it (if stop() has not).
  ~monitor();
  // Stops and joins the thread; the object stays for workers that still
  // call worker_woke(). Idempotent.
  void stop();
  monitor(const monitor&) = delete;
  monitor& operator=(const monitor&) = delete;

  // A worker left its idle sleep: if the monitor sleeps because every
  // worker was idle, it starts sampling again. Any thread; cheap when the
  // monitor is sampling already (one relaxed load).
  void worker_woke() noexcept;

  // Worker i's switches since the runtime started (64 bits: the workers
  // count in 32) and the longest run without a switch seen so far.
  void read(unsigned i, std::uint64_t* switches, std::chrono::nanoseconds* longest_run);

 private:
  void run();
  // Returns whether any worker is busy.
  bool sample(std::chrono::steady_clock::time_point now);
  void warn(unsigned worker, std::chrono::steady_clock::duration ran);
  // What the last sample calls for, done without mu_: relieve() if it
  // saw work waiting on held workers, waking spares to retire when holds
  // have ended, and joining retired ones.
  void act();
  // Wakes an idle worker or starts a spare for work that held workers
  // keep waiting.
  void relieve();

  runtime& rt_;
  const std::chrono::milliseconds warn_after_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool kicked_ = false;
  std::atomic<bool> sleeping_{false};
  struct view {
    std::uint32_t last = 0;
    std::uint64_t total = 0;
    std::chrono::steady_clock::time_point since;
    std::chrono::nanoseconds longest{0};
    bool warned = false;
  };
  std::vector<view> views_;  // guarded by mu_; one per worker slot
  bool warned_spare_bound_ = false;  // monitor thread only
  bool relieve_ = false;             // monitor thread only
  std::unordered_set<std::uint64_t> warned_fibers_;  // monitor thread only
  std::thread thread_;
};

}  // namespace spindle::detail
