// sync/ benchmarks, for the Boost.Fiber and Go peers in bench/peers/ to be
// read beside (bench/run_sync_bench.sh runs all three):
//   - uncontended mutex lock+unlock (std::mutex in a threaded process as
//     the reference), biased and not, and what a bias costs the first time
//     another thread takes the lock;
//   - contended mutex: 8 fibers on 2 workers;
//   - unbuffered channel ping-pong;
//   - buffered channel throughput, 1 producer/1 consumer and 4/4;
//   - select over 4 channels.
#include <benchmark/benchmark.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "sched/scheduler.h"
#include "sync/channel.h"
#include "sync/mutex.h"
#include "sync/select.h"

namespace {

constexpr spindle::options one_worker{.workers = 1};
constexpr spindle::options two_workers{.workers = 2};

void per_op(benchmark::State& state, double ops) {
  state.counters["ns_per_op"] =
      benchmark::Counter(ops, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// glibc's mutexes skip the atomic instructions while a process has only
// ever had one thread: std::mutex then costs a third of what it does in
// any program that runs a fiber runtime. Start (and join) a thread first,
// so that the reference is the one a threaded program gets.
void BM_StdMutexUncontended(benchmark::State& state) {
  std::thread([] {}).join();
  std::mutex mu;
  for (auto _ : state) {
    mu.lock();
    mu.unlock();
  }
  per_op(state, static_cast<double>(state.iterations()));
}
BENCHMARK(BM_StdMutexUncontended);

// The floor for a lock that works across threads and releases with a
// locked instruction (std::mutex, Go's, Boost.Fiber's): the compare-and-
// swap that takes it and the atomic decrement that releases it.
void BM_AtomicLockUnlockFloor(benchmark::State& state) {
  std::atomic<unsigned> word{0};
  for (auto _ : state) {
    unsigned expected = 0;
    word.compare_exchange_strong(expected, 1, std::memory_order_acquire);
    word.fetch_sub(1, std::memory_order_release);
  }
  per_op(state, static_cast<double>(state.iterations()));
}
BENCHMARK(BM_AtomicLockUnlockFloor);

// The floor for spindle::mutex, which releases a lock that never had a
// waiter with a plain store (sync/mutex.h): the compare-and-swap alone.
void BM_OneCasLockUnlockFloor(benchmark::State& state) {
  std::atomic<unsigned> word{0};
  for (auto _ : state) {
    unsigned expected = 0;
    word.compare_exchange_strong(expected, 1, std::memory_order_acquire);
    word.store(0, std::memory_order_release);
  }
  per_op(state, static_cast<double>(state.iterations()));
}
BENCHMARK(BM_OneCasLockUnlockFloor);

void BM_MutexUncontended(benchmark::State& state) {
  spindle::run(one_worker, [&state] {
    spindle::mutex mu;
    for (auto _ : state) {
      mu.lock();
      mu.unlock();
    }
  });
  per_op(state, static_cast<double>(state.iterations()));
}
BENCHMARK(BM_MutexUncontended);

// The same with biased locking off (SPINDLE_MUTEX_BIAS=0): one CAS to take
// it and a plain store to release it.
void BM_MutexUncontendedUnbiased(benchmark::State& state) {
  const bool was = spindle::detail::biased_locking_enabled.load();
  (void)spindle::detail::set_biased_locking(false);
  spindle::run(one_worker, [&state] {
    spindle::mutex mu;
    for (auto _ : state) {
      mu.lock();
      mu.unlock();
    }
  });
  (void)spindle::detail::set_biased_locking(was);
  per_op(state, static_cast<double>(state.iterations()));
}
BENCHMARK(BM_MutexUncontendedUnbiased);

// What a lock's bias costs when it turns out to be shared: per iteration,
// a fresh mutex taken lock_word::bias_threshold + 1 times by a fiber on
// worker 0 (biased, if on), then once by a fiber on worker 1 (which
// revokes the bias: membarrier, then a look at the holder). Arg 1: biasing
// on; arg 0: off, the same work without it.
void BM_MutexBiasedThenSharedOnce(benchmark::State& state) {
  const bool was = spindle::detail::biased_locking_enabled.load();
  (void)spindle::detail::set_biased_locking(state.range(0) != 0);
  spindle::run(two_workers, [&state] {
    for (auto _ : state) {
      spindle::mutex mu;
      spindle::fiber owner(spindle::fiber_options{.worker = 0, .pinned = true}, [&mu] {
        for (std::uint32_t i = 0; i <= spindle::detail::lock_word::bias_threshold; ++i) {
          mu.lock();
          mu.unlock();
        }
      });
      owner.join();
      spindle::fiber other(spindle::fiber_options{.worker = 1, .pinned = true}, [&mu] {
        mu.lock();
        mu.unlock();
      });
      other.join();
    }
  });
  (void)spindle::detail::set_biased_locking(was);
}
BENCHMARK(BM_MutexBiasedThenSharedOnce)->Arg(0)->Arg(1)->UseRealTime();

// 8 fibers on 2 workers, each lock; ++counter; unlock; in a loop. One
// iteration = 8 * 1000 lock+unlock pairs.
void BM_MutexContended8Fibers2Workers(benchmark::State& state) {
  constexpr int fibers = 8;
  constexpr int per_fiber = 1000;
  spindle::run(two_workers, [&state] {
    spindle::mutex mu;
    long counter = 0;
    for (auto _ : state) {
      std::vector<spindle::fiber> fs;
      for (int f = 0; f < fibers; ++f) {
        fs.emplace_back([&] {
          for (int i = 0; i < per_fiber; ++i) {
            std::lock_guard lock(mu);
            ++counter;
          }
        });
      }
      for (auto& f : fs) f.join();
    }
    benchmark::DoNotOptimize(counter);
  });
  per_op(state, static_cast<double>(state.iterations()) * fibers * per_fiber);
}
BENCHMARK(BM_MutexContended8Fibers2Workers)->UseRealTime();

void BM_UnbufferedChannelPingPong(benchmark::State& state) {
  spindle::run(spindle::options{.workers = static_cast<unsigned>(state.range(0))}, [&state] {
    spindle::channel<int> ping;
    spindle::channel<int> pong;
    spindle::fiber echo([&] {
      while (auto v = ping.recv()) pong.send(*v);
    });
    int i = 0;
    for (auto _ : state) {
      ping.send(i++);
      benchmark::DoNotOptimize(pong.recv());
    }
    ping.close();
    echo.join();
  });
  state.counters["ns_per_round_trip"] =
      benchmark::Counter(static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_UnbufferedChannelPingPong)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime();

// Producers send `items` ints in total into a channel of capacity 128;
// consumers receive them all. One iteration = `items` items. The
// benchmark's argument is the number of workers.
void buffered_throughput(benchmark::State& state, int producers, int consumers) {
  constexpr int items = 100'000;
  const spindle::options opts{.workers = static_cast<unsigned>(state.range(0))};
  spindle::run(opts, [&] {
    for (auto _ : state) {
      spindle::channel<int> ch(128);
      std::atomic<int> producers_left{producers};
      std::vector<spindle::fiber> fs;
      for (int p = 0; p < producers; ++p) {
        fs.emplace_back([&] {
          for (int i = 0; i < items / producers; ++i) ch.send(i);
          if (producers_left.fetch_sub(1) == 1) ch.close();
        });
      }
      for (int c = 0; c < consumers; ++c) {
        fs.emplace_back([&] {
          long sum = 0;
          while (auto v = ch.recv()) sum += *v;
          benchmark::DoNotOptimize(sum);
        });
      }
      for (auto& f : fs) f.join();
    }
  });
  per_op(state, static_cast<double>(state.iterations()) * items);
}
void BM_BufferedChannel1P1C(benchmark::State& state) { buffered_throughput(state, 1, 1); }
void BM_BufferedChannel4P4C(benchmark::State& state) { buffered_throughput(state, 4, 4); }
BENCHMARK(BM_BufferedChannel1P1C)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BufferedChannel4P4C)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// One fiber selects over 4 buffered channels that 4 producers keep full.
void BM_Select4Channels(benchmark::State& state) {
  constexpr int per_producer = 25'000;
  spindle::run(two_workers, [&state] {
    for (auto _ : state) {
      std::vector<std::unique_ptr<spindle::channel<int>>> chans;
      for (int c = 0; c < 4; ++c) chans.push_back(std::make_unique<spindle::channel<int>>(128));
      std::vector<spindle::fiber> producers;
      for (int c = 0; c < 4; ++c) {
        producers.emplace_back([&ch = *chans[c]] {
          for (int i = 0; i < per_producer; ++i) ch.send(i);
        });
      }
      for (int n = 0; n < 4 * per_producer; ++n) {
        spindle::recv_case r0(*chans[0]), r1(*chans[1]), r2(*chans[2]), r3(*chans[3]);
        benchmark::DoNotOptimize(spindle::select(r0, r1, r2, r3));
      }
      for (auto& p : producers) p.join();
    }
  });
  per_op(state, static_cast<double>(state.iterations()) * 4 * per_producer);
}
BENCHMARK(BM_Select4Channels)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
