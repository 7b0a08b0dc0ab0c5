#!/usr/bin/env bash
# Runs the sync/ benchmarks of Spindle, Boost.Fiber and Go one after the
# other, so that their figures come from the same machine state:
# uncontended and contended mutex, unbuffered channel ping-pong, buffered
# channel throughput (1/1 and 4/4), select over 4 channels.
# Medians of 5 repetitions. Usage: bench/run_sync_bench.sh
set -euo pipefail
peer_packages="libboost-fiber-dev golang-go"
source "$(dirname "$0")/bench_common.sh"

agg=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true
     --benchmark_display_aggregates_only=true)
echo "### Spindle (bench/sync/sync_bench.cpp)"
build/bench/bench/sync_bench "${agg[@]}" 2>&1 | grep -E '_median|^Benchmark|^-'
echo "### Boost.Fiber (bench/peers/boost_fiber_bench.cpp)"
build/bench/bench/peers/boost_fiber_bench --benchmark_filter='Mutex|Chan' "${agg[@]}" 2>&1 |
  grep -E '_median|^Benchmark|^-'
echo "### Go $(go version | awk '{print $3}') (bench/peers/go)"
cd bench/peers/go
b=mutex_uncontended,mutex_contended,chan_unbuffered_pingpong,chan_buffered_1p1c,chan_buffered_4p4c,select4
for procs in 1 2; do
  GOPROXY=off go run . -bench=$b -procs=$procs | grep median
done
