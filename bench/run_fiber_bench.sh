#!/usr/bin/env bash
# Runs the fiber benchmarks of Spindle and of its peers one after the
# other, in one go, so that their figures come from the same machine state:
#   Spindle: raw Boost.Context switch (the limit), yield, spawn+join,
#            std::thread spawn+join, RSS per parked fiber (100k and 1M);
#   Boost.Fiber: yield, spawn+join, RSS per parked fiber;
#   Go: Gosched yield, spawn+join, RSS per parked goroutine.
# Medians of 5 repetitions. Usage: bench/run_fiber_bench.sh
set -euo pipefail
peer_packages="libboost-fiber-dev golang-go"
source "$(dirname "$0")/bench_common.sh"

reps=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true
      --benchmark_display_aggregates_only=true)
echo "### Spindle (bench/fiber/fiber_bench.cpp)"
build/bench/bench/fiber_bench --benchmark_filter='^BM_(RawContextSwitch|Yield|YieldSameCode|SpawnJoin|SpawnJoinBatch/1000|StdThreadSpawnJoin)$' \
  "${reps[@]}" 2>&1 | grep -E '_median|^Benchmark|^-'
build/bench/bench/fiber_bench --benchmark_filter='BM_ParkedFiberMemory' 2>&1 | grep -E 'BM_'
echo "### Boost.Fiber (bench/peers/boost_fiber_bench.cpp)"
build/bench/bench/peers/boost_fiber_bench "${reps[@]}" 2>&1 | grep -E '_median|^Benchmark|^-'
echo "### Go $(go version | awk '{print $3}') (bench/peers/go)"
(cd bench/peers/go && GOPROXY=off GOFLAGS=-mod=mod go run . -bench=yield,spawn_join,parked_rss -procs=1) |
  grep -E 'median'
