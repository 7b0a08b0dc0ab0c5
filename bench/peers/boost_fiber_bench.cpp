// Boost.Fiber peer benchmarks that Spindle's own benchmarks are compared
// against side by side.
//
// All fibers run on the benchmark's thread under Boost.Fiber's default
// round_robin scheduler. Fibers are created with the default stack allocator,
// boost::fibers::default_stack == boost::context::fixedsize_stack: a 128 KiB
// (stack_traits::default_size()) std::malloc'd block per fiber, with no guard
// page; the fiber's control block is placed at the top of that block.

#include <benchmark/benchmark.h>

#include <boost/fiber/all.hpp>

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
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

}  // namespace

BENCHMARK_MAIN();
