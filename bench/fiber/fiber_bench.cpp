// Fiber benchmarks, side by side with their limits:
//   - a raw boost::context::fiber switch (the floor under any yield),
//   - this_fiber::yield between two fibers,
//   - spawn+join of an empty fiber (one at a time, and in batches),
//   - std::thread spawn+join (what fibers replace),
//   - memory per parked fiber (100k, and 1M on a default vm.max_map_count).
// The Boost.Fiber and Go peers are in bench/peers/; bench/run_fiber_bench.sh
// runs all of them in one go.
#include <benchmark/benchmark.h>

#include <boost/context/fiber.hpp>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/park.h"
#include "sched/scheduler.h"

namespace {

namespace ctx = boost::context;

// These measure one worker's costs; bench/sched/ measures several workers.
constexpr spindle::options one_worker{.workers = 1};

// Raw Boost.Context: resume a fiber that resumes us back. Two switches
// per iteration; the counter reports one switch.
void BM_RawContextSwitch(benchmark::State& state) {
  bool stop = false;
  ctx::fiber f{[&stop](ctx::fiber&& caller) {
    while (!stop) caller = std::move(caller).resume();
    return std::move(caller);
  }};
  for (auto _ : state) f = std::move(f).resume();
  stop = true;
  f = std::move(f).resume();
  state.counters["ns_per_switch"] =
      benchmark::Counter(2.0 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RawContextSwitch);

// Two fibers on one worker alternating this_fiber::yield(): each iteration
// is two yields (ours and the partner's).
void BM_Yield(benchmark::State& state) {
  spindle::run(one_worker, [&state] {
    std::atomic<bool> stop{false};
    spindle::fiber partner([&stop] {
      while (!stop.load(std::memory_order_relaxed)) spindle::this_fiber::yield();
    });
    for (auto _ : state) spindle::this_fiber::yield();
    stop = true;
    partner.join();
  });
  state.counters["ns_per_yield"] =
      benchmark::Counter(2.0 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Yield);

// The two fibers run the same loop, so each resumes at the call sites where
// the other suspended. That is the case the return stack buffer predicts:
// in BM_Yield the two loops differ, and the first return after every
// switch goes to the other loop than the one predicted (a mispredicted
// return, ~10 ns here). Each iteration: two fibers yield 10,000 times
// each; their spawn and join are under 0.01% of it.
__attribute__((noinline)) void yield_times(int n) {
  for (int i = 0; i < n; ++i) spindle::this_fiber::yield();
}
void BM_YieldSameCode(benchmark::State& state) {
  static constexpr int yields = 10000;
  spindle::run(one_worker, [&state] {
    for (auto _ : state) {
      spindle::fiber a(yield_times, yields);
      spindle::fiber b(yield_times, yields);
      a.join();
      b.join();
    }
  });
  state.counters["ns_per_yield"] =
      benchmark::Counter(2.0 * yields * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_YieldSameCode);

void BM_SpawnJoin(benchmark::State& state) {
  spindle::run(one_worker, [&state] {
    for (auto _ : state) {
      spindle::fiber f([] {});
      f.join();
    }
  });
}
BENCHMARK(BM_SpawnJoin);

// Spawn a batch of fibers, then join them all: spawns that do not hand
// over the worker one at a time.
void BM_SpawnJoinBatch(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  spindle::run(one_worker, [&state, batch] {
    std::vector<spindle::fiber> fibers;
    fibers.reserve(batch);
    for (auto _ : state) {
      for (std::size_t i = 0; i < batch; ++i) fibers.emplace_back([] {});
      for (auto& f : fibers) f.join();
      fibers.clear();
    }
  });
  state.counters["ns_per_fiber"] =
      benchmark::Counter(static_cast<double>(state.iterations() * batch),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SpawnJoinBatch)->Arg(1000);

void BM_StdThreadSpawnJoin(benchmark::State& state) {
  for (auto _ : state) {
    std::thread t([] {});
    t.join();
  }
}
BENCHMARK(BM_StdThreadSpawnJoin);

long read_status_kib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(status, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stol(line.substr(prefix.size()));
  }
  return -1;
}

long count_mappings() {
  std::ifstream maps("/proc/self/maps");
  long n = 0;
  std::string line;
  while (std::getline(maps, line)) ++n;
  return n;
}

// Parks N fibers at once (each in the park protocol's wait, as a fiber
// blocked on a mutex or channel would be) and reports the growth of the
// process's RSS per parked fiber: its stack pages, control block and
// bookkeeping. Runs in a fresh runtime; fresh stacks are mapped the first
// time, so the figure includes everything a new fiber costs.
void BM_ParkedFiberMemory(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    double bytes_per_fiber = 0;
    long mappings = 0;
    spindle::run(one_worker, [&] {
      std::vector<spindle::detail::control_block*> parked(count, nullptr);
      std::atomic<std::size_t> ready{0};
      const long rss_before = read_status_kib("VmRSS");
      for (std::size_t i = 0; i < count; ++i) {
        spindle::go([&parked, &ready, i] {
          auto* self = spindle::detail::current_waiter();
          spindle::detail::prepare_park(self);
          parked[i] = self;
          ready.fetch_add(1, std::memory_order_relaxed);
          spindle::detail::park(self);
        });
      }
      while (ready.load() < count) spindle::this_fiber::yield();
      const long rss_after = read_status_kib("VmRSS");
      mappings = count_mappings();
      // The vector of pointers is the benchmark's, not the fibers'.
      bytes_per_fiber =
          (static_cast<double>(rss_after - rss_before) * 1024.0 -
           static_cast<double>(count * sizeof(void*))) /
          static_cast<double>(count);
      for (auto* cb : parked) spindle::detail::unpark(cb);
    });
    state.counters["rss_bytes_per_parked_fiber"] = bytes_per_fiber;
    state.counters["mappings_in_process"] = static_cast<double>(mappings);
  }
}
BENCHMARK(BM_ParkedFiberMemory)->Arg(100'000)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParkedFiberMemory)->Arg(1'000'000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
