// runtime_stats() (sched/debug.h): counters each worker keeps (and the
// monitor, for switches and long runs), summed on read; fiber counts from
// a walk of every fiber (fiber/detail/inspect.h).
#include <array>
#include <string>
#include <utility>

#include "fiber/detail/inspect.h"
#include "sched/blocking.h"
#include "sched/debug.h"
#include "sched/detail/monitor.h"
#include "sched/detail/netpoll.h"
#include "sched/detail/runtime.h"
#include "sched/detail/worker.h"

namespace spindle {
namespace {

struct fiber_counts {
  std::size_t fibers = 0, runnable = 0, running = 0, parked = 0;
  std::array<std::size_t, static_cast<std::size_t>(detail::wait_reason::count_)> by_reason{};
};

void count_fiber(detail::control_block* cb, void* arg) {
  auto* c = static_cast<fiber_counts*>(arg);
  ++c->fibers;
  switch (cb->state_.load(std::memory_order_acquire)) {
    case detail::fiber_state::runnable:
    case detail::fiber_state::notified:
      ++c->runnable;
      break;
    case detail::fiber_state::running:
      ++c->running;
      break;
    case detail::fiber_state::parking:
    case detail::fiber_state::parked: {
      ++c->parked;
      const auto r = static_cast<std::size_t>(cb->wait_reason_.load(std::memory_order_relaxed));
      if (r < c->by_reason.size()) ++c->by_reason[r];
      break;
    }
    case detail::fiber_state::finished:
      break;
  }
}

void read_runtime(detail::runtime& rt, void* arg) {
  auto* out = static_cast<runtime_statistics*>(arg);
  if (out->workers != 0) return;  // the first one: run()'s if there is one
  out->workers = rt.worker_count();
  out->per_worker.resize(rt.worker_count());
  for (unsigned i = 0; i < rt.worker_count(); ++i) {
    detail::worker& w = rt.worker_at(i);
    worker_stats& s = out->per_worker[i];
    s.steals = w.steals();
    s.idle = std::chrono::nanoseconds(w.idle_nanoseconds());
    if (detail::monitor* m = rt.get_monitor()) {
      m->read(i, &s.switches, &s.longest_run);
    } else {
      s.switches = w.switch_count();
    }
  }
  out->spare_workers = static_cast<unsigned>(rt.active_spares());
  out->held_workers = static_cast<unsigned>(rt.held_workers());
  out->spares_started = rt.spares_started();
  blocking_pool_stats b;
  rt.blocking().stats(b);
  out->blocking_threads = b.threads;
  out->blocking_queued = b.queued;
  out->blocking_waiting_room = b.waiting_room;
  out->blocking_calls = b.completed;
}

}  // namespace

runtime_statistics runtime_stats() {
  runtime_statistics out;
  detail::with_runtimes(read_runtime, &out);
  fiber_counts c;
  detail::for_each_fiber(count_fiber, &c);
  out.fibers = c.fibers;
  out.runnable = c.runnable;
  out.running = c.running;
  out.parked = c.parked;
  for (std::size_t r = 0; r < c.by_reason.size(); ++r) {
    if (c.by_reason[r] != 0) {
      out.parked_by_reason.emplace_back(
          detail::wait_reason_name(static_cast<detail::wait_reason>(r)), c.by_reason[r]);
    }
  }
  out.netpoll_descriptors = detail::netpoll_descriptors();
  return out;
}

}  // namespace spindle
