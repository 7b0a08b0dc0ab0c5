// Scheduler benchmarks, for the Go peer in bench/peers/go to be read
// beside (bench/run_sched_bench.sh runs both):
//   - wake latency and throughput: a ping-pong between two fibers, on one
//     worker, on two workers but free to meet (as Go's goroutines are),
//     and pinned to different workers (every wake crosses threads);
//   - spawn+join with 1 and 2 workers;
//   - CPU-bound fibers on 1 and 2 workers (the speed-up);
//   - CPU used by a runtime with nothing to do.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "sync/channel.h"
#include "test/sched/baton.h"

namespace {

// The ping-pong's hand-off is test/sched/baton.h's, the one the scheduler
// tests use: a one-slot hand-off on the park protocol (what a channel of
// capacity 0 does at its core), give() waking the taker.
using spindle::test::baton;

// One iteration is a round trip: ping gives, pong takes and gives back.
void ping_pong(benchmark::State& state, unsigned workers, bool separate_workers) {
  spindle::run(spindle::options{.workers = workers}, [&] {
    baton to_pong;
    baton to_ping;
    std::atomic<bool> stop{false};
    spindle::fiber_options pong_options;
    if (separate_workers) pong_options = {.worker = 1, .pinned = true};
    spindle::fiber pong(pong_options, [&] {
      for (;;) {
        to_pong.take_untimed();
        if (stop.load(std::memory_order_relaxed)) return;
        to_ping.give();
      }
    });
    if (separate_workers) spindle::this_fiber::pin();  // main is on worker 0
    for (auto _ : state) {
      to_pong.give();
      to_ping.take_untimed();
    }
    stop = true;
    to_pong.give();
    pong.join();
  });
  state.counters["ns_per_round_trip"] =
      benchmark::Counter(static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_PingPongOneWorker(benchmark::State& state) { ping_pong(state, 1, false); }
void BM_PingPongTwoWorkers(benchmark::State& state) { ping_pong(state, 2, false); }
void BM_PingPongPinnedToDifferentWorkers(benchmark::State& state) { ping_pong(state, 2, true); }
BENCHMARK(BM_PingPongOneWorker)->UseRealTime();
BENCHMARK(BM_PingPongTwoWorkers)->UseRealTime();
BENCHMARK(BM_PingPongPinnedToDifferentWorkers)->UseRealTime();

// The same round trip over unbuffered channels whose receives carry a
// deadline that never comes (a read with a deadline, the chat server's
// every read): the cost of arming and disarming a timer at each wait.
void ping_pong_timed(benchmark::State& state, unsigned workers) {
  spindle::run(spindle::options{.workers = workers}, [&] {
    spindle::channel<int> to_pong;
    spindle::channel<int> to_ping;
    constexpr auto patience = std::chrono::hours(1);
    spindle::fiber pong([&] {
      for (;;) {
        std::optional<int> v;
        if (to_pong.recv_for(v, patience) != spindle::channel_status::success || *v < 0) return;
        to_ping.send(*v);
      }
    });
    for (auto _ : state) {
      to_pong.send(1);
      std::optional<int> v;
      if (to_ping.recv_for(v, patience) != spindle::channel_status::success) std::abort();
    }
    to_pong.send(-1);
    pong.join();
  });
}
void BM_PingPongWithDeadlinesOneWorker(benchmark::State& state) { ping_pong_timed(state, 1); }
void BM_PingPongWithDeadlinesTwoWorkers(benchmark::State& state) { ping_pong_timed(state, 2); }
BENCHMARK(BM_PingPongWithDeadlinesOneWorker)->UseRealTime();
BENCHMARK(BM_PingPongWithDeadlinesTwoWorkers)->UseRealTime();

void BM_SpawnJoin(benchmark::State& state) {
  spindle::run(spindle::options{.workers = static_cast<unsigned>(state.range(0))}, [&state] {
    for (auto _ : state) {
      spindle::fiber f([] {});
      f.join();
    }
  });
}
BENCHMARK(BM_SpawnJoin)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime();

void BM_SpawnJoinBatch(benchmark::State& state) {
  constexpr int batch = 1000;
  spindle::run(spindle::options{.workers = static_cast<unsigned>(state.range(0))}, [&state] {
    std::vector<spindle::fiber> fibers;
    fibers.reserve(batch);
    for (auto _ : state) {
      for (int i = 0; i < batch; ++i) fibers.emplace_back([] {});
      for (auto& f : fibers) f.join();
      fibers.clear();
    }
  });
  state.counters["ns_per_fiber"] =
      benchmark::Counter(static_cast<double>(state.iterations() * batch),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SpawnJoinBatch)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime();

// The same fixed work as the Go peer's `cpu`: 200M xorshift steps split
// over 8 fibers; wall time.
std::uint64_t xorshift_steps(std::uint64_t seed, long steps) {
  std::uint64_t x = seed | 1;
  for (long i = 0; i < steps; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

constexpr long total_steps = 200'000'000;
constexpr int tasks = 8;

void BM_CpuBoundFibers(benchmark::State& state) {
  for (auto _ : state) {
    std::atomic<std::uint64_t> sink{0};
    spindle::run(spindle::options{.workers = static_cast<unsigned>(state.range(0))}, [&] {
      for (int t = 0; t < tasks; ++t) {
        spindle::go([&sink, t] { sink.fetch_xor(xorshift_steps(t + 1, total_steps / tasks)); });
      }
    });
    benchmark::DoNotOptimize(sink.load());
  }
}
BENCHMARK(BM_CpuBoundFibers)->ArgName("workers")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// A runtime with two workers and nothing to do but one fiber asleep for a
// second: the CPU the process uses meanwhile, in ms per second.
void BM_IdleRuntimeCpu(benchmark::State& state) {
  for (auto _ : state) {
    double used = 0;
    spindle::run(spindle::options{.workers = 2}, [&used] {
      spindle::this_fiber::sleep_for(std::chrono::milliseconds(50));  // settle
      const double before = process_cpu_seconds();
      spindle::this_fiber::sleep_for(std::chrono::seconds(1));
      used = process_cpu_seconds() - before;
    });
    state.counters["cpu_ms_per_idle_second"] = used * 1000.0;
  }
}
BENCHMARK(BM_IdleRuntimeCpu)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Forward progress (docs/sched.md, "Held workers"): a 10 ms ticker on a
// two-worker runtime while `spinners` fibers spin without ever switching
// (until the ticker is done). Each iteration is one tick; the counters are
// how late the ticks woke, median and worst, in ms. Without spare workers
// (max_spare_workers = 0) two or more spinners hold both workers and the
// ticker never wakes again.
void BM_TickerLatenessWhileFibersSpin(benchmark::State& state) {
  const auto spinners = static_cast<int>(state.range(0));
  std::vector<double> late_ms;
  spindle::run(spindle::options{.workers = 2}, [&] {
    std::atomic<bool> stop{false};
    std::atomic<int> spinning{0};
    std::vector<spindle::fiber> fibers;
    for (int i = 0; i < spinners; ++i) {
      fibers.emplace_back([&] {
        spinning.fetch_add(1, std::memory_order_relaxed);
        while (!stop.load(std::memory_order_relaxed)) {
        }
      });
    }
    while (spinning.load(std::memory_order_relaxed) < spinners) spindle::this_fiber::yield();
    for (auto _ : state) {
      const auto due = std::chrono::steady_clock::now() + std::chrono::milliseconds(10);
      spindle::this_fiber::sleep_until(due);
      late_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - due).count());
    }
    stop.store(true, std::memory_order_relaxed);
    for (auto& f : fibers) f.join();
  });
  std::sort(late_ms.begin(), late_ms.end());
  if (!late_ms.empty()) {
    state.counters["late_p50_ms"] = late_ms[late_ms.size() / 2];
    state.counters["late_max_ms"] = late_ms.back();
  }
}
BENCHMARK(BM_TickerLatenessWhileFibersSpin)
    ->ArgName("spinners")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Arg(8)
    ->Iterations(100)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
