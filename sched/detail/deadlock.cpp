// Deadlock detection: "all fibers are asleep", as Go reports "all
// goroutines are asleep - deadlock!". What counts and what does not is in
// docs/operability.md; the rule is never to report a deadlock that is not
// one.
//
// When. A worker about to sleep with every worker of its runtime idle and
// no timer armed in any of its heaps asks check_deadlock(). That is the
// only moment the question is cheap and the answer stable: no fiber runs,
// and none can start unless something outside the fibers wakes one.
//
// What. Every fiber of the process (all runtimes: a fiber of the default
// runtime may wake one of run()'s) must be parked, on one of Spindle's own
// synchronization objects (is_sync_wait()), without a deadline. A fiber
// parked on a socket, a timer, a signal or a blocking call, or in a wait
// that records no reason, may be woken by the kernel, the clock or the
// pool: no report. Then the wakers outside the fibers: a blocking call
// still running (even one its caller abandoned: the function may use a
// channel) and any thread of the process that is not the runtime's own
// (workers, pool threads, Spindle's service threads) could wake a fiber:
// the verdict is then "maybe", and the worker looks again later instead
// of sleeping for ever. A plain thread that waits in a Spindle call is
// such a thread too: conservative, never wrong.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "fiber/detail/inspect.h"
#include "fiber/sanitizers.h"
#include "sched/blocking.h"
#include "sched/detail/dump.h"
#include "sched/detail/runtime.h"

#if SPINDLE_ASAN && __has_include(<sanitizer/lsan_interface.h>)
#include <sanitizer/lsan_interface.h>
#define SPINDLE_HAVE_LSAN 1
#else
#define SPINDLE_HAVE_LSAN 0
#endif

namespace spindle::detail {

std::atomic<int> g_service_threads{0};

namespace {

// Threads of this process now (/proc/self/stat, field 20); -1 if unknown.
long process_threads() noexcept {
  std::FILE* f = std::fopen("/proc/self/stat", "r");
  if (f == nullptr) return -1;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // The command name (field 2) is in parentheses and may hold spaces:
  // count fields after its closing parenthesis.
  const char* p = nullptr;
  for (const char* q = buf; *q != '\0'; ++q) {
    if (*q == ')') p = q;
  }
  if (p == nullptr) return -1;
  int field = 2;
  for (++p; *p != '\0'; ++p) {
    if (*p == ' ') {
      ++field;
      if (field == 20) return std::strtol(p + 1, nullptr, 10);
    }
  }
  return -1;
}

struct census {
  long known_threads = 0;
  bool pool_busy = false;
};

void count_runtime(runtime& rt, void* arg) {
  auto* c = static_cast<census*>(arg);
  c->known_threads += rt.worker_count() + static_cast<unsigned>(rt.active_spares());
  blocking_pool_stats s;
  rt.blocking().stats(s);
  c->known_threads += static_cast<long>(s.threads);
  if (s.running != 0 || s.queued != 0 || s.waiting_room != 0) c->pool_busy = true;
}

// Whether `cb` sleeps for good as far as it alone goes: parked on
// Spindle's synchronization, without a deadline. Counts the fibers seen.
bool asleep_on_sync(const control_block* cb, void* count) {
  ++*static_cast<std::size_t*>(count);
  return cb->state_.load(std::memory_order_acquire) == fiber_state::parked &&
         is_sync_wait(cb->wait_reason_.load(std::memory_order_relaxed)) &&
         cb->wait_deadline_.load(std::memory_order_relaxed) == 0;
}

void abandon(control_block* cb, void* arg) {
  const auto* rt = static_cast<const runtime*>(arg);
  const void* w = racy_worker(cb);
  bool ours = false;
  for (unsigned i = 0; i < rt->slot_count(); ++i) {
    ours = ours || w == &const_cast<runtime*>(rt)->worker_at(i);
  }
  if (!ours) return;  // another runtime's (asleep for ever too, but not ours to hide)
  // Parked for ever: no inspector should find it again (its worker is
  // about to go), and under ASan its stack holds the only pointers to what
  // it allocated.
  retire_live(cb);
  count_abandoned_stack();
#if SPINDLE_HAVE_LSAN
  __lsan_register_root_region(cb->stack_.limit(), cb->stack_.size());
#endif
}

}  // namespace

runtime::deadlock_verdict runtime::check_deadlock() noexcept {
  if (deadlocked()) return deadlock_verdict::found;
  // One worker at a time. Another that finds the check running looks again
  // later ("maybe"): the checker may find nothing definite, and it must not
  // sleep for ever on the checker's behalf.
  if (deadlock_checking_.exchange(true, std::memory_order_acquire)) return deadlock_verdict::maybe;
  struct release_flag {
    std::atomic<bool>& f;
    ~release_flag() { f.store(false, std::memory_order_release); }
  } release{deadlock_checking_};

  // Nothing may happen while we look: the workers were all idle when this
  // worker decided to sleep, but another may have woken since (to run a
  // fiber handed to it just before). Each worker's switch count moves
  // whenever any fiber runs, finishes or parks there, so unchanged counts
  // from here to the end mean that the walks below saw one still picture
  // (a fiber that finished mid-walk, say, would have been missed by the
  // walk while the fiber it woke still looked parked).
  const unsigned slots = slot_count();
  std::vector<std::uint32_t> switches(slots);
  for (unsigned i = 0; i < slots; ++i) switches[i] = worker_at(i).switch_count();
  const auto still = [&] {
    if (!all_idle() || slot_count() != slots) return false;
    for (unsigned i = 0; i < slots; ++i) {
      if (worker_at(i).switch_count() != switches[i]) return false;
    }
    return true;
  };

  // Stops at the first fiber that is not asleep for good: an idle server's
  // walk ends at its first fiber parked on a socket.
  std::size_t fibers = 0;
  bool interrupted = false;
  if (!all_fibers(asleep_on_sync, &fibers, &interrupted) || fibers == 0) {
    return interrupted ? deadlock_verdict::maybe : deadlock_verdict::none;
  }
  if (worker_live_.load(std::memory_order_acquire) + live_.load(std::memory_order_acquire) <= 0) return deadlock_verdict::none;

  census c;
  with_runtimes(count_runtime, &c);
  c.known_threads += g_service_threads.load(std::memory_order_acquire);
#if SPINDLE_TSAN
  c.known_threads += 1;  // ThreadSanitizer's own background thread
#endif
  const long threads = process_threads();
  if (c.pool_busy || threads < 0 || threads > c.known_threads) return deadlock_verdict::maybe;

  // Nothing can wake any fiber. Look once more: every fiber parked as
  // before (a fiber woken in between by something we did not think of
  // would show here).
  std::size_t again = 0;
  if (!all_fibers(asleep_on_sync, &again, &interrupted)) {
    return interrupted ? deadlock_verdict::maybe : deadlock_verdict::none;
  }
  // The same fibers, and no worker ran anything meanwhile.
  if (again != fibers || !still()) return deadlock_verdict::maybe;

  std::string report = "spindle: all fibers are asleep: deadlock\n";
  try {
    report += dump_to_string();
  } catch (...) {
  }
  if (opts_.on_deadlock == runtime_options::deadlock_action::exit) {
    std::fwrite(report.data(), 1, report.size(), stderr);
    std::fflush(nullptr);
    std::_Exit(2);
  }
  deadlock_report_ = std::move(report);
  deadlocked_.store(true, std::memory_order_release);
  stopping_.store(true, std::memory_order_release);
  for (unsigned i = 0; i < slot_count(); ++i) worker_at(i).wake();
  return deadlock_verdict::found;
}

void runtime::abandon_fibers() noexcept { for_each_fiber(abandon, this); }

}  // namespace spindle::detail
