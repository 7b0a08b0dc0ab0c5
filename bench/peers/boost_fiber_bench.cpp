// Boost.Fiber peer benchmarks that Spindle's own benchmarks are compared
// against side by side.
//
// Unless a benchmark is named .../threads:2, all fibers run on the
// benchmark's thread under Boost.Fiber's default round_robin scheduler; the
// threads:2 variants run on a pool of two threads under work_stealing (see
// StealingPool below). Fibers are created with the default stack allocator,
// boost::fibers::default_stack == boost::context::fixedsize_stack: a 128 KiB
// (stack_traits::default_size()) std::malloc'd block per fiber, with no guard
// page; the fiber's control block is placed at the top of that block.

#include <benchmark/benchmark.h>

#include <boost/fiber/all.hpp>

#include <malloc.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double elapsed_ns(clock_type::time_point start) {
    return std::chrono::duration<double, std::nano>(clock_type::now() - start).count();
}

// Resident set size in bytes (VmRSS from /proc/self/status), or -1.
long read_vm_rss() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) return -1;
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strncmp(line, "VmRSS:", 6) == 0) {
            std::sscanf(line + 6, "%ld", &kib);
            break;
        }
    }
    std::fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}

// Cost of one boost::this_fiber::yield() between two ready fibers: the
// benchmark's main fiber and a partner fiber yield to each other, so every
// iteration is two yields (round_robin also passes through its dispatcher
// fiber once per round, which is part of Boost.Fiber's yield cost).
void BM_BoostFiberYield(benchmark::State& state) {
    bool stop = false;
    boost::fibers::fiber partner([&stop] {
        while (!stop) boost::this_fiber::yield();
    });
    auto start = clock_type::now();
    for (auto _ : state) boost::this_fiber::yield();
    double ns = elapsed_ns(start);
    stop = true;
    partner.join();
    state.SetItemsProcessed(state.iterations() * 2);
    state.counters["ns_per_yield"] = ns / (2.0 * static_cast<double>(state.iterations()));
}
BENCHMARK(BM_BoostFiberYield);

// Both fibers run the same loop (compare with Spindle's BM_YieldSameCode).
__attribute__((noinline)) void yield_times(int n) {
    for (int i = 0; i < n; ++i) boost::this_fiber::yield();
}
void BM_BoostFiberYieldSameCode(benchmark::State& state) {
    static constexpr int yields = 10000;
    auto start = clock_type::now();
    for (auto _ : state) {
        boost::fibers::fiber a(yield_times, yields);
        boost::fibers::fiber b(yield_times, yields);
        a.join();
        b.join();
    }
    double ns = elapsed_ns(start);
    state.counters["ns_per_yield"] = ns / (2.0 * yields * static_cast<double>(state.iterations()));
}
BENCHMARK(BM_BoostFiberYieldSameCode);

// Spawn one empty fiber and join it: stack allocation, context creation, two
// switches and teardown, one fiber at a time.
void BM_BoostFiberSpawnJoin(benchmark::State& state) {
    for (auto _ : state) {
        boost::fibers::fiber f([] {});
        f.join();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BoostFiberSpawnJoin);

// Batched variant: spawn 1000 empty fibers, then join them all; reported per
// fiber (compare with Go's spawn_join_batch).
void BM_BoostFiberSpawnJoinBatch(benchmark::State& state) {
    constexpr int batch = 1000;
    std::vector<boost::fibers::fiber> fibers;
    fibers.reserve(batch);
    auto start = clock_type::now();
    for (auto _ : state) {
        for (int i = 0; i < batch; ++i) fibers.emplace_back([] {});
        for (auto& f : fibers) f.join();
        fibers.clear();
    }
    double ns = elapsed_ns(start);
    state.SetItemsProcessed(state.iterations() * batch);
    state.counters["ns_per_fiber"] = ns / (static_cast<double>(state.iterations()) * batch);
}
BENCHMARK(BM_BoostFiberSpawnJoinBatch);

// Memory held by a parked fiber: park `count` detached fibers on a
// condition_variable and report (VmRSS after - VmRSS before) / count as the
// bytes_per_fiber counter, then release them. Time is not meaningful here.
void BM_BoostFiberParkedRss(benchmark::State& state) {
    const long count = state.range(0);
    // Warm-up: glibc raises its mmap threshold when the first 128 KiB stack
    // is freed; from then on stacks come from the brk heap and pack more
    // tightly (~9.3 KiB resident per parked fiber here, vs ~11.2 KiB for
    // individually mmap'd stacks in a process that never freed one). Fix the
    // allocator in that steady state so the figure does not depend on what
    // ran before.
    boost::fibers::fiber([] {}).join();
    for (auto _ : state) {
        // Hand memory freed by earlier benchmarks/repetitions back to the
        // kernel, so that stacks are freshly faulted in, as in a new process.
        malloc_trim(0);
        boost::fibers::mutex mtx;
        boost::fibers::condition_variable park_cv;  // parked fibers wait here
        boost::fibers::condition_variable main_cv;  // main fiber waits here
        long parked = 0;
        long finished = 0;
        bool released = false;

        const long before = read_vm_rss();
        for (long i = 0; i < count; ++i) {
            boost::fibers::fiber([&] {
                std::unique_lock<boost::fibers::mutex> lock(mtx);
                if (++parked == count) main_cv.notify_one();
                park_cv.wait(lock, [&] { return released; });
                if (++finished == count) main_cv.notify_one();
            }).detach();
        }
        {
            std::unique_lock<boost::fibers::mutex> lock(mtx);
            main_cv.wait(lock, [&] { return parked == count; });
        }
        const long after = read_vm_rss();

        {
            std::unique_lock<boost::fibers::mutex> lock(mtx);
            released = true;
            park_cv.notify_all();
            main_cv.wait(lock, [&] { return finished == count; });
        }
        // Let the dispatcher free the terminated fibers' stacks.
        boost::this_fiber::yield();

        state.counters["bytes_per_fiber"] =
            static_cast<double>(after - before) / static_cast<double>(count);
    }
}
BENCHMARK(BM_BoostFiberParkedRss)->Arg(100000)->Iterations(1)->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// Synchronisation and channels, mirroring Spindle's mutex/channel benchmarks
// and the Go peer's mutex_*, chan_* measurements. Each benchmark runs a fixed
// batch of operations per iteration, timed around the batch on the thread
// that runs it, and reports ns per operation as a counter (ns_per_op,
// ns_per_roundtrip, ns_per_item). /threads:1 runs the fibers on the benchmark
// thread (round_robin, like Go -procs 1); /threads:2 on the two-thread
// work_stealing pool (like Go -procs 2). Boost.Fiber has no select, so there
// is no counterpart of Go's select4.

// Two threads running Boost.Fiber's work_stealing algorithm, both as plain
// workers: each one's main fiber pops jobs from a channel and runs them, and
// while it waits there its dispatcher runs (and steals) worker fibers. A job
// is run by one pool thread's main fiber; the fibers it spawns are spread
// over both threads by stealing. The benchmark thread only hands in a job and
// blocks on a std::future until the job has returned its own timing.
//
// work_stealing keeps its scheduler table in static members and can be set up
// only once per process, so the pool is created on first use and kept until
// exit; the benchmark thread keeps round_robin for the other benchmarks.
// work_stealing is constructed with suspend = false (Boost's default): idle
// workers spin in their dispatcher looking for fibers to steal, since with
// suspend = true a sleeping worker is not woken when another worker's queue
// fills and would never steal. The threads:2 benchmarks are registered last
// so that the spinning pool does not exist while the others run.
class StealingPool {
public:
    static constexpr std::uint32_t threads = 2;

    static StealingPool& instance() {
        static StealingPool pool;
        return pool;
    }

    // Runs job on a pool thread's main fiber and returns its result.
    double run(std::function<double()> const& job) {
        std::promise<double> result;
        std::function<void()> task = [&] { result.set_value(job()); };
        jobs_.push(&task);
        return result.get_future().get();
    }

    // Runs from the exit handlers, after the main thread's thread_local fiber
    // runtime is gone (waking the workers from there crashes in
    // context::schedule), so close the channel from a fresh thread.
    ~StealingPool() {
        std::thread([this] { jobs_.close(); }).join();
        for (auto& t : workers_) t.join();
    }

private:
    StealingPool() : jobs_(2) {
        for (std::uint32_t i = 0; i < threads; ++i) {
            workers_.emplace_back([this] {
                boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads);
                std::function<void()>* task = nullptr;
                while (jobs_.pop(task) == boost::fibers::channel_op_status::success) (*task)();
            });
        }
    }

    boost::fibers::buffered_channel<std::function<void()>*> jobs_;
    std::vector<std::thread> workers_;
};

// Runs batch(), which returns the nanoseconds it measured, on the benchmark
// thread (threads == 1) or on the stealing pool (threads == 2), once per
// benchmark iteration, and sets counter = total ns / (iterations * ops).
template <typename Batch>
void run_batches(benchmark::State& state, long ops, char const* counter, Batch batch) {
    const bool pooled = state.range(0) > 1;
    double ns = 0;
    for (auto _ : state) ns += pooled ? StealingPool::instance().run(batch) : batch();
    const double total = static_cast<double>(state.iterations()) * static_cast<double>(ops);
    state.SetItemsProcessed(static_cast<std::int64_t>(total));
    state.counters[counter] = ns / total;
}

// sink keeps results observable so that the compiler cannot drop the work.
std::uint64_t sink = 0;

// boost::fibers::mutex lock+unlock by one fiber (the benchmark's main fiber);
// never contended, never suspends.
void BM_BoostFiberMutexUncontended(benchmark::State& state) {
    boost::fibers::mutex mtx;
    std::uint64_t counter = 0;
    auto start = clock_type::now();
    for (auto _ : state) {
        mtx.lock();
        ++counter;
        mtx.unlock();
    }
    double ns = elapsed_ns(start);
    sink ^= counter;
    state.SetItemsProcessed(state.iterations());
    state.counters["ns_per_op"] = ns / static_cast<double>(state.iterations());
}
BENCHMARK(BM_BoostFiberMutexUncontended);

// 8 fibers each do lock; ++counter; unlock 10000 times on one
// boost::fibers::mutex; ns_per_op is wall time / 80000. On one thread fibers
// are never preempted, so the mutex is (almost) never found locked.
void BM_BoostFiberMutexContended(benchmark::State& state) {
    constexpr int workers = 8;
    constexpr long per = 10000;
    run_batches(state, workers * per, "ns_per_op", [] {
        boost::fibers::mutex mtx;
        std::uint64_t counter = 0;
        std::vector<boost::fibers::fiber> fibers;
        fibers.reserve(workers);
        auto start = clock_type::now();
        for (int w = 0; w < workers; ++w) {
            fibers.emplace_back([&] {
                for (long i = 0; i < per; ++i) {
                    mtx.lock();
                    ++counter;
                    mtx.unlock();
                }
            });
        }
        for (auto& f : fibers) f.join();
        double ns = elapsed_ns(start);
        sink ^= counter;
        return ns;
    });
}

// Round trip of an int over two boost::fibers::unbuffered_channel<int>
// between two fibers, 10000 round trips per batch (Go: pingpong, alias
// chan_unbuffered_pingpong).
void BM_BoostFiberChanUnbufferedPingPong(benchmark::State& state) {
    constexpr long rounds = 10000;
    run_batches(state, rounds, "ns_per_roundtrip", [] {
        boost::fibers::unbuffered_channel<int> ping, pong;
        auto start = clock_type::now();
        boost::fibers::fiber echo([&] {
            int v = 0;
            while (ping.pop(v) == boost::fibers::channel_op_status::success) pong.push(v);
        });
        boost::fibers::fiber driver([&] {
            int v = 0;
            for (long i = 0; i < rounds; ++i) {
                ping.push(static_cast<int>(i));
                pong.pop(v);
            }
            ping.close();
        });
        driver.join();
        echo.join();
        return elapsed_ns(start);
    });
}

// `producers` fibers push items/producers ints each into one
// boost::fibers::buffered_channel<int> of capacity 128 (which holds at most
// 127 items: one slot of the ring stays empty); `consumers` fibers pop until
// the channel is closed after the last push. Reported per item.
double buffered_batch(int producers, int consumers, long items) {
    const long per = items / producers;
    boost::fibers::buffered_channel<int> ch(128);
    std::vector<std::uint64_t> sums(consumers);
    std::vector<boost::fibers::fiber> prod, cons;
    auto start = clock_type::now();
    for (int c = 0; c < consumers; ++c) {
        cons.emplace_back([&, c] {
            int v = 0;
            std::uint64_t s = 0;
            while (ch.pop(v) == boost::fibers::channel_op_status::success) s += static_cast<std::uint64_t>(v);
            sums[c] = s;
        });
    }
    for (int p = 0; p < producers; ++p) {
        prod.emplace_back([&] {
            for (long i = 0; i < per; ++i) ch.push(static_cast<int>(i));
        });
    }
    for (auto& f : prod) f.join();
    ch.close();
    for (auto& f : cons) f.join();
    double ns = elapsed_ns(start);
    for (auto s : sums) sink ^= s;
    return ns;
}

void BM_BoostFiberChanBuffered1p1c(benchmark::State& state) {
    constexpr long items = 100000;
    run_batches(state, items, "ns_per_item", [] { return buffered_batch(1, 1, items); });
}

void BM_BoostFiberChanBuffered4p4c(benchmark::State& state) {
    constexpr long items = 100000;
    run_batches(state, items, "ns_per_item", [] { return buffered_batch(4, 4, items); });
}

// One thread first, then the pool (see StealingPool).
BENCHMARK(BM_BoostFiberMutexContended)->ArgName("threads")->Arg(1);
BENCHMARK(BM_BoostFiberChanUnbufferedPingPong)->ArgName("threads")->Arg(1);
BENCHMARK(BM_BoostFiberChanBuffered1p1c)->ArgName("threads")->Arg(1);
BENCHMARK(BM_BoostFiberChanBuffered4p4c)->ArgName("threads")->Arg(1);
BENCHMARK(BM_BoostFiberMutexContended)->ArgName("threads")->Arg(2)->UseRealTime();
BENCHMARK(BM_BoostFiberChanUnbufferedPingPong)->ArgName("threads")->Arg(2)->UseRealTime();
BENCHMARK(BM_BoostFiberChanBuffered1p1c)->ArgName("threads")->Arg(2)->UseRealTime();
BENCHMARK(BM_BoostFiberChanBuffered4p4c)->ArgName("threads")->Arg(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
