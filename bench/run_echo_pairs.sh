#!/usr/bin/env bash
# Spindle's echo server on one worker against raw libev callbacks, in
# interleaved pairs (each Spindle run right before a libev run), so that
# the noise of a shared machine hits both alike: the ratio that issue 6's
# "1 worker at least 95% of libev" target is about. Same load generator and
# settings as bench/run_echo_bench.sh; prints each run and the median of
# the per-pair ratios. Builds what it needs (build/bench) first.
# Usage: bench/run_echo_pairs.sh [pairs, default 5] [seconds per run, default 5]
set -euo pipefail
source "$(dirname "$0")/bench_common.sh"
cmake -S . -B build/bench -DSPINDLE_BUILD_SAMPLES=ON >/dev/null
cmake --build build/bench --target echo_server libev_echo loadgen >/dev/null
pairs=${1:-5} seconds=${2:-5}
B=build/bench
ulimit -Sn "$(ulimit -Hn)"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
next_port=$((20000 + RANDOM % 8000))
run() {  # server, conns: prints round trips/s
  while port_open $next_port; do next_port=$((next_port + 1)); done
  local port=$next_port
  next_port=$((next_port + 1))
  if [[ $1 == spindle-1w ]]; then
    $B/samples/echo/echo_server "$port" 1 >/dev/null 2>&1 &
  else
    $B/bench/peers/echo/libev_echo "$port" >/dev/null 2>&1 &
  fi
  local pid=$!
  for _ in $(seq 100); do port_open "$port" && break; sleep 0.05; done
  local out
  out=$($B/bench/loadgen --port "$port" --conns "$2" --seconds "$seconds" --warmup 1)
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  echo "# $1 $2: $out" >&2
  sed -n 's/.*rps=\([0-9]*\).*/\1/p' <<<"$out"
}
for conns in 100 1000; do
  ratios=()
  for _ in $(seq "$pairs"); do
    s=$(run spindle-1w "$conns")
    l=$(run libev "$conns")
    ratios+=("$(awk -v a="$s" -v b="$l" 'BEGIN { printf "%.3f", a / b }')")
  done
  median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  echo "$conns connections: Spindle 1 worker / libev per pair: ${ratios[*]}; median $median"
done
