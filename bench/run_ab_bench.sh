#!/usr/bin/env bash
# Two builds of Spindle side by side, for a change to a hot path: the
# scheduler's spawn+join and ping-pong, the sync benchmarks, and the echo
# server against raw libev, each round running A, then B (then libev), so
# that a shared machine's noise hits both alike. Prints every run and the
# median of each row. Each build directory must hold a release build with
# benchmarks and samples (cmake -DSPINDLE_BUILD_BENCH=ON, the default).
# The chat server too: bench/chat's load generator (B's) against A's and
# B's chat_server, 2 workers, at one fixed load: deliveries a second,
# p50/p99 latency, and the server's CPU.
# Usage: bench/run_ab_bench.sh BUILD_A BUILD_B [rounds, default 3]
#   ECHO_CONNS="1000" ECHO_WORKERS="1" ECHO_SECONDS=5
#   CHAT_CLIENTS=1000 CHAT_RATE=20 CHAT_SECONDS=8 CHAT_WORKERS=2
#   SCHED=1 FIBER=1 SYNC=1 ECHO=1 CHAT=1 (0 skips a part)
#   SCHED_FILTER='PingPong|SpawnJoin' FIBER_FILTER='^BM_Yield$|^BM_SpawnJoin$'
#   SYNC_FILTER=. (benchmark filters)
set -euo pipefail
a=$1 b=$2 rounds=${3:-3}
conns_list=${ECHO_CONNS:-1000} workers_list=${ECHO_WORKERS:-1} seconds=${ECHO_SECONDS:-5}
ulimit -Sn "$(ulimit -Hn)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# gbench NAME BUILD BINARY FILTER: appends "benchmark ns" lines to $tmp/NAME.
gbench() {
  # Console format: the CSV reporter aborts on counters that only some
  # benchmarks set.
  "$2/bench/$3" --benchmark_filter="$4" --benchmark_min_time=0.5 --benchmark_color=false 2>/dev/null |
    awk '/^BM_/ { t = $2; u = $3; m = (u == "us") ? 1e3 : (u == "ms") ? 1e6 : (u == "s") ? 1e9 : 1;
                  print $1, t * m }' >>"$tmp/$1"
}

report() {  # NAME: one line per benchmark, A's and B's medians
  for bm in $(awk '{ print $1 }' "$tmp/$1.A" | sort -u); do
    ma=$(awk -v b="$bm" '$1 == b { print $2 }' "$tmp/$1.A" | median)
    mb=$(awk -v b="$bm" '$1 == b { print $2 }' "$tmp/$1.B" | median)
    all_a=$(awk -v b="$bm" '$1 == b { printf "%.1f ", $2 }' "$tmp/$1.A")
    all_b=$(awk -v b="$bm" '$1 == b { printf "%.1f ", $2 }' "$tmp/$1.B")
    printf '%-60s A %8.1f  B %8.1f ns  (A: %s| B: %s)\n' "$bm" "$ma" "$mb" "$all_a" "$all_b"
  done
}

if [[ ${SCHED:-1} == 1 ]]; then
  for _ in $(seq "$rounds"); do
    gbench sched.A "$a" scheduler_bench "${SCHED_FILTER:-PingPong|SpawnJoin}"
    gbench sched.B "$b" scheduler_bench "${SCHED_FILTER:-PingPong|SpawnJoin}"
  done
  echo "### scheduler_bench (ns per operation, median of $rounds interleaved rounds)"
  report sched
fi
if [[ ${FIBER:-1} == 1 ]]; then
  for _ in $(seq "$rounds"); do
    gbench fiber.A "$a" fiber_bench "${FIBER_FILTER:-^BM_Yield\$|^BM_SpawnJoin\$}"
    gbench fiber.B "$b" fiber_bench "${FIBER_FILTER:-^BM_Yield\$|^BM_SpawnJoin\$}"
  done
  echo "### fiber_bench (ns per operation, median of $rounds interleaved rounds)"
  report fiber
fi
if [[ ${SYNC:-1} == 1 ]]; then
  for _ in $(seq "$rounds"); do
    gbench sync.A "$a" sync_bench "${SYNC_FILTER:-.}"
    gbench sync.B "$b" sync_bench "${SYNC_FILTER:-.}"
  done
  echo "### sync_bench (ns per operation, median of $rounds interleaved rounds)"
  report sync
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
next_port=$((20000 + RANDOM % 8000))
echo_run() {  # server-binary args... : prints round trips/s
  while port_open $next_port; do next_port=$((next_port + 1)); done
  local port=$next_port
  next_port=$((next_port + 1))
  local bin=$1 kind=$2 workers=$3 conns=$4
  if [[ $kind == spindle ]]; then
    "$bin/samples/echo/echo_server" "$port" "$workers" >/dev/null 2>&1 &
  else
    "$bin/bench/peers/echo/libev_echo" "$port" >/dev/null 2>&1 &
  fi
  local pid=$!
  for _ in $(seq 100); do port_open "$port" && break; sleep 0.05; done
  local out
  out=$("$b/bench/loadgen" --port "$port" --conns "$conns" --seconds "$seconds" --warmup 1)
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
  sed -n 's/.*rps=\([0-9]*\).*/\1/p' <<<"$out"
}
if [[ ${ECHO:-1} == 1 ]]; then
  echo "### echo round trips/s ($seconds s runs, A, B and libev interleaved)"
  for w in $workers_list; do
    for c in $conns_list; do
      ra=() rb=() rl=()
      for _ in $(seq "$rounds"); do
        ra+=("$(echo_run "$a" spindle "$w" "$c")")
        rb+=("$(echo_run "$b" spindle "$w" "$c")")
        rl+=("$(echo_run "$b" libev 1 "$c")")
      done
      printf '%s workers, %s conns: A %s  B %s  libev %s  (A: %s| B: %s| libev: %s)\n' "$w" "$c" \
        "$(printf '%s\n' "${ra[@]}" | median)" "$(printf '%s\n' "${rb[@]}" | median)" \
        "$(printf '%s\n' "${rl[@]}" | median)" "${ra[*]} " "${rb[*]} " "${rl[*]}"
    done
  done
fi

chat_run() {  # build: prints "msgs_per_s p50_us p99_us cpu%"
  while port_open $next_port; do next_port=$((next_port + 1)); done
  local port=$next_port
  next_port=$((next_port + 1))
  "$1/samples/chat/chat_server" --port "$port" --bind 127.0.0.1 --workers "${CHAT_WORKERS:-2}" \
    --flood_rate=0 >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do port_open "$port" && break; sleep 0.05; done
  local t0 w0 t1 w1 out
  t0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat") w0=$(date +%s.%N)
  out=$(timeout -k 5 120 "$b/bench/chat/loadgen" --port "$port" --clients "${CHAT_CLIENTS:-1000}" \
    --channels 10 --senders 100 --connect_rate 500 --drain 2 --rate "${CHAT_RATE:-20}" \
    --seconds "${CHAT_SECONDS:-8}" --warmup 2 2>/dev/null || true)
  t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat") w1=$(date +%s.%N)
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
  local f
  for f in msgs_per_s p50_us p99_us; do printf '%s ' "$(sed -n "s/.*$f=\([0-9.]*\).*/\1/p" <<<"$out")"; done
  awk -v t="$((t1 - t0))" -v a="$w0" -v b="$w1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f\n", 100 * t / hz / (b - a) }'
}
if [[ ${CHAT:-1} == 1 ]]; then
  echo "### chat_server, ${CHAT_WORKERS:-2} workers, ${CHAT_CLIENTS:-1000} clients, 100 senders at ${CHAT_RATE:-20}/s"
  echo "### (deliveries/s p50_us p99_us server_cpu%; A and B interleaved)"
  for _ in $(seq "$rounds"); do
    echo "A $(chat_run "$a")"
    echo "B $(chat_run "$b")"
  done
fi
