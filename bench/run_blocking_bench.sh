#!/usr/bin/env bash
# Runs the blocking pool's benchmarks in one go, so that their figures come
# from the same machine state:
#   - the cost of offload: 4 KiB preads of a cached file through the pool
#     (spindle::file::pread) vs ::pread on the worker, with 1, 8 and 64
#     fibers on 2 workers, and an empty spindle::blocking() round trip
#     (medians of 5);
#   - latency protection: lateness of 1000 fibers ticking every 10 ms while
#     8 fibers hammer the file system, through the pool vs on the workers
#     (3 runs of each mode, alternating).
# Usage: bench/run_blocking_bench.sh [seconds per latency run, default 5]
set -euo pipefail
source "$(dirname "$0")/bench_common.sh"
seconds=${1:-5}

echo "### Offload cost (bench/io/file_bench.cpp)"
build/bench/bench/file_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_display_aggregates_only=true 2>&1 | grep -E '_median|^Benchmark|^-'
echo "### Latency protection (bench/io/latency_bench.cpp, ${seconds} s a run)"
for run in 1 2 3; do
  build/bench/bench/latency_bench direct "$seconds"
  build/bench/bench/latency_bench pool "$seconds"
done
