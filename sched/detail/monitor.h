// The runtime's monitor: a thread that looks at the workers from outside,
// as Go's sysmon does. Today it measures how long fibers run without
// switching (runtime_stats()'s longest_run) and warns about a fiber that
// hogs its worker (runtime_options::long_run_warning). Internal to sched/.
//
// It samples each worker's switch count every sample_interval while any
// worker is busy: a worker whose count has not moved between two samples,
// and that is running a fiber (not its loop), has been running that one
// fiber at least since the first of them. The measure is a lower bound,
// coarse by one interval, and costs the workers nothing: they count their
// switches anyway (for stealing). With every worker idle the monitor
// sleeps until one wakes (runtime::leave_idle), so an idle runtime costs
// no CPU.
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

  // Starts the thread. `warn_after` is runtime_options::long_run_warning
  // (0: no warnings).
  monitor(runtime& rt, std::chrono::milliseconds warn_after);
  // Stops and joins it.
  ~monitor();
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
  std::vector<view> views_;  // guarded by mu_
  std::unordered_set<std::uint64_t> warned_fibers_;  // monitor thread only
  std::thread thread_;
};

}  // namespace spindle::detail
