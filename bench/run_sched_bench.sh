#!/usr/bin/env bash
# Runs the scheduler benchmarks of Spindle and of the Go peer one after the
# other, so that their figures come from the same machine state: wake
# latency (ping-pong), spawn+join on 1 and 2 workers (GOMAXPROCS 1 and 2),
# CPU-bound work on 1 and 2 workers, and an idle runtime's CPU use.
# Medians of 5 repetitions (the CPU-bound and idle ones: 3 and 1).
# Usage: bench/run_sched_bench.sh
set -euo pipefail
peer_packages="golang-go"
source "$(dirname "$0")/bench_common.sh"

agg=(--benchmark_report_aggregates_only=true --benchmark_display_aggregates_only=true)
echo "### Spindle (bench/sched/scheduler_bench.cpp)"
build/bench/bench/scheduler_bench --benchmark_filter='PingPong|SpawnJoin' \
  --benchmark_repetitions=5 "${agg[@]}" 2>&1 | grep -E '_median|^Benchmark|^-'
build/bench/bench/scheduler_bench --benchmark_filter='CpuBound' \
  --benchmark_repetitions=3 "${agg[@]}" 2>&1 | grep -E '_median'
build/bench/bench/scheduler_bench --benchmark_filter='Idle' 2>&1 | grep -E 'BM_'
echo "### Go $(go version | awk '{print $3}') (bench/peers/go)"
cd bench/peers/go
for procs in 1 2; do
  GOPROXY=off go run . -bench=pingpong,pingpong_locked,spawn_join,cpu -procs=$procs | grep median
done
