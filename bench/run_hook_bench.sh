#!/usr/bin/env bash
# spindle::hook's benchmarks (bench/hook/), one section each:
#   1. echo: bench/hook/thread_echo.cpp, a thread-per-connection server in
#      plain POSIX calls ported to Spindle by namespace + the hook, 1 worker
#      ("hooked"), against samples/echo (1 worker), raw libev callbacks
#      (bench/peers/echo) and the same source on std::thread, driven by
#      bench/io/loadgen.cpp at 100 and 1000 connections. Servers alternate
#      within each round (rotating which goes first); rates are medians, and
#      ratios are medians of the per-round ratios to samples/echo.
#   2. hiredis: bench/hook/hiredis_bench.cpp, hiredis's blocking API (SET,
#      one command in flight per client) from N fibers on 1 worker with the
#      hook, from N std::threads (the same code, built without the hook),
#      and redis-benchmark -c N -P 1 -t set, N = 1, 50, 500, against one
#      redis-server the script starts on a free port.
#   3. ticker: lateness of a 10 ms ticker fiber beside 500 hiredis client
#      fibers on 1 worker: with the hook; with the hook and a yield after
#      each command; and without the hook (every command blocks the worker),
#      where the clients must yield after each command, else the first one
#      would keep the worker for ever.
#   4. passthrough: bench/hook/hook_passthrough_bench.cpp with and without
#      the hook, in turn; the difference in CPU ns per call (each run's
#      figure the least of 3 repetitions; medians of the rounds), and, where
#      valgrind is installed, in user-space instructions per call (callgrind).
# Client and server share the machine's cores. Writes the medians, then
# every run, to bench/results/hook.dat and prints markdown tables.
# Usage: bench/run_hook_bench.sh [BUILD_DIR] [seconds per run, default 5]
#                                [rounds, default 5]
#   The echo and passthrough sections run `rounds` rounds, the hiredis and
#   ticker sections (rounds + 1) / 2.
#   BUILD_DIR: a configured Release build with benchmarks and samples (the
#   needed targets are built there); without it, build/bench is set up as
#   the other scripts do, installing what is missing.
#   ECHO=0 HIREDIS=0 TICKER=0 PASSTHROUGH=0 skip a section.
set -euo pipefail
peer_packages="pkg-config libhiredis-dev redis-server redis-tools valgrind"
if [[ -n ${1:-} ]]; then
  B=$(cd "$1" && pwd)
  cd "$(dirname "$0")/.."
else
  source "$(dirname "$0")/bench_common.sh"
  B=build/bench
  cmake -S . -B "$B" -DSPINDLE_BUILD_SAMPLES=ON >/dev/null
fi
targets=(loadgen libev_echo echo_server thread_echo_std thread_echo_spindle
  hook_passthrough_bench hook_passthrough_bench_nohook)
if grep -q '^hiredis_FOUND:INTERNAL=1' "$B/CMakeCache.txt" 2>/dev/null; then
  targets+=(hiredis_bench hiredis_bench_nohook)
fi
cmake --build "$B" -j "$(nproc)" --target "${targets[@]}" >/dev/null

seconds=${2:-5} rounds=${3:-5}
hiredis_rounds=$(((rounds + 1) / 2)) warmup=2
H=$B/bench/hook
loadgen=$B/bench/loadgen
ulimit -Sn "$(ulimit -Hn)"

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
  [[ -n ${redis_pid:-} ]] && kill -KILL "$redis_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# Sets cmd to the command line of server $1 on port $2; false if not built.
server_cmd() {
  case $1 in
    hooked) cmd=("$H/thread_echo_spindle" "$2" 1) ;;
    spindle) cmd=("$B/samples/echo/echo_server" "$2" 1) ;;
    libev) cmd=("$B/bench/peers/echo/libev_echo" "$2") ;;
    std) cmd=("$H/thread_echo_std" "$2") ;;
    redis) cmd=(redis-server --port "$2" --bind 127.0.0.1 --save "" --appendonly no
      --protected-mode no --daemonize no) ;;
  esac
  [[ -x ${cmd[0]} ]] || command -v "${cmd[0]}" >/dev/null
}
source bench/server_common.sh

raw=$tmp/raw  # every run, for the .dat file
: >"$raw"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }

# ---- 1. echo ----
echo_servers=(hooked spindle libev std)
declare -A echo_label=([hooked]="thread_echo_spindle (hook, 1 worker)" [spindle]="samples/echo (1 worker)"
  [libev]="libev callbacks (C)" [std]="thread_echo_std (std::thread)")
declare -A rps rat
if [[ ${ECHO:-1} == 1 ]]; then
  for ((rep = 0; rep < rounds; rep++)); do
    declare -A this=()
    n=${#echo_servers[@]}
    for ((k = 0; k < n; k++)); do
      s=${echo_servers[(k + rep) % n]}
      start_server "$s"
      for c in 100 1000; do
        out=$("$loadgen" --port "$port" --conns "$c" --seconds "$seconds" --warmup "$warmup") || true
        echo "# echo $s c=$c round $((rep + 1))/$rounds: ${out:-loadgen failed}" | tee -a "$raw" >&2
        if [[ $out == *rps=* ]]; then
          this[$s,$c]=$(field rps "$out")
          rps[$s,$c]+=" ${this[$s,$c]}"
        fi
      done
      stop_server
    done
    for s in "${echo_servers[@]}"; do
      for c in 100 1000; do
        [[ -n ${this[$s,$c]:-} && -n ${this[spindle,$c]:-} ]] && rat[$s,$c]+=" $(ratio "${this[$s,$c]}" "${this[spindle,$c]}")"
      done
    done
  done
fi

# ---- 2. hiredis, and 3. the ticker: one redis-server ----
clients_list=(1 50 500)
declare -A ops
have_redis=0
if [[ -x $H/hiredis_bench ]] && command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
  have_redis=1
elif [[ ${HIREDIS:-1} == 1 || ${TICKER:-1} == 1 ]]; then
  echo "note: hiredis sections skipped (need libhiredis-dev at configure time, redis-server, redis-tools)" >&2
fi
if ((have_redis)) && [[ ${HIREDIS:-1} == 1 || ${TICKER:-1} == 1 ]]; then
  start_server redis
  redis_pid=$server_pid server_pid="" redis_port=$port
fi
redis_bench() {  # clients requests: prints requests/s
  redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$1" -n "$2" -P 1 -t set --csv 2>/dev/null |
    awk -F'"' '$2 == "SET" { print $4 }'
}
if ((have_redis)) && [[ ${HIREDIS:-1} == 1 ]]; then
  for c in "${clients_list[@]}"; do
    # Calibration (and warm-up): redis-benchmark counts requests, not time.
    est=$(redis_bench "$c" 20000)
    requests=$(awk -v r="${est:-50000}" -v s="$seconds" 'BEGIN { printf "%d", r * s }')
    for ((rep = 0; rep < hiredis_rounds; rep++)); do
      kinds=(fibers threads redis-benchmark)
      for ((k = 0; k < 3; k++)); do
        kind=${kinds[(k + rep) % 3]}
        case $kind in
          fibers) out=$("$H/hiredis_bench" --port "$redis_port" --clients "$c" --seconds "$seconds") || true
            v=$(field ops_per_s "$out") ;;
          threads) out=$("$H/hiredis_bench_nohook" --port "$redis_port" --clients "$c" --seconds "$seconds" --threads) || true
            v=$(field ops_per_s "$out") ;;
          redis-benchmark) v=$(redis_bench "$c" "$requests") out="redis-benchmark -c $c -n $requests -P 1 -t set: ${v:-failed}" ;;
        esac
        echo "# hiredis $kind c=$c round $((rep + 1))/$hiredis_rounds: $out" | tee -a "$raw" >&2
        [[ -n $v ]] && ops[$kind,$c]+=" $v"
      done
    done
  done
fi

ticker_kinds=(hook hook-yield nohook-yield)
declare -A tick_label=([hook]="hook (the program as written)" [hook-yield]="hook, clients yield after each command"
  [nohook-yield]="no hook (blocks the worker), clients yield after each command")
declare -A late50 late99 latemax tick_ops missed
if ((have_redis)) && [[ ${TICKER:-1} == 1 ]]; then
  for ((rep = 0; rep < hiredis_rounds; rep++)); do
    for ((k = 0; k < ${#ticker_kinds[@]}; k++)); do
      kind=${ticker_kinds[(k + rep) % ${#ticker_kinds[@]}]}
      case $kind in
        hook) prog=("$H/hiredis_bench") ;;
        hook-yield) prog=("$H/hiredis_bench" --yield) ;;
        nohook-yield) prog=("$H/hiredis_bench_nohook" --yield) ;;
      esac
      out=$("${prog[@]}" --port "$redis_port" --clients 500 --seconds "$seconds" --ticker) || true
      echo "# ticker $kind round $((rep + 1))/$hiredis_rounds: $out" | tee -a "$raw" >&2
      if [[ $out == *late_p50_us=* ]]; then
        late50[$kind]+=" $(field late_p50_us "$out")" late99[$kind]+=" $(field late_p99_us "$out")"
        latemax[$kind]+=" $(field late_max_us "$out")" tick_ops[$kind]+=" $(field ops_per_s "$out")"
        missed[$kind]+=" $(field missed "$out")"
      fi
    done
  done
fi
if [[ -n ${redis_pid:-} ]]; then
  server_pid=$redis_pid
  stop_server
  redis_pid=""
fi

# ---- 4. passthrough ----
pass_benchmarks=(BM_ThreadPipeRead BM_FiberFileWrite BM_FiberPipeRead)
declare -A pass pass_diff pass_insn
if [[ ${PASSTHROUGH:-1} == 1 ]]; then
  # gbench BINARY: "benchmark cpu_ns" lines, each the least of 3
  # repetitions (the noise of a shared machine only adds time).
  gbench() {
    "$1" --benchmark_min_time=0.3 --benchmark_repetitions=3 --benchmark_color=false 2>/dev/null |
      awk '/^BM_/ && $1 !~ /_(mean|median|stddev|cv)$/ {
             t = $4; u = $5; m = (u == "us") ? 1e3 : (u == "ms") ? 1e6 : (u == "s") ? 1e9 : 1;
             if (!($1 in best) || t * m < best[$1]) best[$1] = t * m }
           END { for (b in best) print b, best[b] }'
  }
  for ((rep = 0; rep < rounds; rep++)); do
    declare -A this=()
    order=(hook nohook)
    ((rep % 2)) && order=(nohook hook)
    for v in "${order[@]}"; do
      bin=$H/hook_passthrough_bench
      [[ $v == nohook ]] && bin+=_nohook
      while read -r bm ns; do
        this[$v,$bm]=$ns
        pass[$v,$bm]+=" $ns"
        echo "# passthrough $v $bm round $((rep + 1))/$rounds: cpu_ns=$ns" | tee -a "$raw" >&2
      done < <(gbench "$bin")
    done
    for bm in "${pass_benchmarks[@]}"; do
      [[ -n ${this[hook,$bm]:-} && -n ${this[nohook,$bm]:-} ]] &&
        pass_diff[$bm]+=" $(awk -v a="${this[hook,$bm]}" -v b="${this[nohook,$bm]}" 'BEGIN { printf "%.2f", a - b }')"
    done
  done
  # Instructions per iteration under callgrind (deterministic, user space
  # only): the difference of two runs of 20000 and 120000 iterations, so
  # that start-up and the runtime's setup cancel out.
  if command -v valgrind >/dev/null; then
    callgrind() {  # binary benchmark iterations: instructions executed
      valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" --iterations="$3" \
        --benchmark_filter="^$2/" 2>&1 >/dev/null | awk '/Collected :/ { print $NF }'
    }
    for v in hook nohook; do
      bin=$H/hook_passthrough_bench
      [[ $v == nohook ]] && bin+=_nohook
      for bm in "${pass_benchmarks[@]}"; do
        small=$(callgrind "$bin" "$bm" 20000) large=$(callgrind "$bin" "$bm" 120000)
        pass_insn[$v,$bm]=$(awk -v a="$small" -v b="$large" 'BEGIN { if (a > 0 && b > 0) printf "%.1f", (b - a) / 100000; else print "nan" }')
        echo "# passthrough $v $bm callgrind: instructions_per_iteration=${pass_insn[$v,$bm]}" | tee -a "$raw" >&2
      done
    done
  else
    echo "note: valgrind not installed: no instruction counts" >&2
  fi
fi

# ---- Results ----
mkdir -p bench/results
dat=bench/results/hook.dat
{
  echo "# bench/run_hook_bench.sh: spindle::hook; $(date -u +%F), $(nproc) CPUs, $(uname -r)"
  echo "# ${seconds} s runs; echo and passthrough: medians of $rounds rounds; hiredis and ticker: medians of $hiredis_rounds"
  echo "# index 0: echo, 64-byte round trips over loopback. server rps@100 ratio@100 rps@1000 ratio@1000"
  echo "# (ratio: median of the per-round ratios to samples/echo, 1 worker)"
  for s in "${echo_servers[@]}"; do
    echo "$s $(median "${rps[$s,100]:-}") $(median "${rat[$s,100]:-}") $(median "${rps[$s,1000]:-}") $(median "${rat[$s,1000]:-}")"
  done
  printf '\n\n# index 1: hiredis SET, one command in flight per client. clients fibers_ops threads_ops redis_benchmark_ops\n'
  for c in "${clients_list[@]}"; do
    echo "$c $(median "${ops[fibers,$c]:-}") $(median "${ops[threads,$c]:-}") $(median "${ops[redis-benchmark,$c]:-}")"
  done
  printf '\n\n# index 2: 10 ms ticker beside 500 hiredis client fibers, 1 worker; microseconds. variant p50 p99 max ops_per_s missed_ticks\n'
  for k in "${ticker_kinds[@]}"; do
    echo "$k $(median "${late50[$k]:-}") $(median "${late99[$k]:-}") $(median "${latemax[$k]:-}") $(median "${tick_ops[$k]:-}") $(median "${missed[$k]:-}")"
  done
  printf '\n\n# index 3: passthrough, per iteration (one call). benchmark cpu_ns_hook cpu_ns_nohook'
  printf ' ns_added(median of per-round differences) instructions_hook instructions_nohook\n'
  for bm in "${pass_benchmarks[@]}"; do
    echo "$bm $(median "${pass[hook,$bm]:-}") $(median "${pass[nohook,$bm]:-}") $(median "${pass_diff[$bm]:-}")" \
      "${pass_insn[hook,$bm]:-nan} ${pass_insn[nohook,$bm]:-nan}"
  done
  printf '\n\n# every run\n'
  cat "$raw"
} >"$dat"

block() { awk -v i="$1" '/^# index/ { n = $3 + 0; next } /^#/ || NF == 0 { next } n == i' "$dat"; }
pct() { awk -v r="$1" 'BEGIN { if (r == "nan" || r == "") print "–"; else printf "%.0f%%", 100 * r }'; }
echo
echo "## spindle::hook benchmarks ($(nproc) CPUs, client and server on the same cores; ${seconds} s runs)"
if [[ ${ECHO:-1} == 1 ]]; then
  echo
  echo "### Echo, 64-byte round trips over loopback (round trips/s, median of $rounds rounds; % of samples/echo)"
  echo
  echo "| server | @100 conns | vs samples/echo | @1000 conns | vs samples/echo |"
  echo "|---|---:|---:|---:|---:|"
  while read -r s r1 q1 r2 q2; do
    printf '| %s | %.0f | %s | %.0f | %s |\n' "${echo_label[$s]}" "$r1" "$(pct "$q1")" "$r2" "$(pct "$q2")"
  done < <(block 0)
fi
if ((have_redis)) && [[ ${HIREDIS:-1} == 1 ]]; then
  echo
  echo "### hiredis SET, one command in flight per client (ops/s, median of $hiredis_rounds)"
  echo
  echo "| clients | fibers, 1 worker + hook | std::threads | redis-benchmark -P 1 | fibers / threads | fibers / redis-benchmark |"
  echo "|---:|---:|---:|---:|---:|---:|"
  while read -r c f t r; do
    printf '| %s | %.0f | %.0f | %.0f | %s | %s |\n' "$c" "$f" "$t" "$r" "$(pct "$(ratio "$f" "$t")")" "$(pct "$(ratio "$f" "$r")")"
  done < <(block 1)
fi
if ((have_redis)) && [[ ${TICKER:-1} == 1 ]]; then
  echo
  echo "### 10 ms ticker fiber beside 500 hiredis client fibers on 1 worker (lateness µs, median of $hiredis_rounds)"
  echo
  echo "| 500 clients | p50 | p99 | max | missed ticks | client ops/s |"
  echo "|---|---:|---:|---:|---:|---:|"
  while read -r k a b m o x; do
    printf '| %s | %.0f | %.0f | %.0f | %s | %.0f |\n' "${tick_label[$k]}" "$a" "$b" "$m" "$x" "$o"
  done < <(block 2)
fi
if [[ ${PASSTHROUGH:-1} == 1 ]]; then
  echo
  echo "### What the hook adds to a call (CPU ns per call: least of 3 repetitions, median of $rounds interleaved rounds)"
  echo
  echo "| benchmark | ns with hook | ns without | ns added | instructions with hook | without | added |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  while read -r bm h n d ih in; do
    printf '| %s | %.1f | %.1f | %+.1f | %s | %s | %s |\n' "$bm" "$h" "$n" "$d" "$ih" "$in" \
      "$(awk -v a="$ih" -v b="$in" 'BEGIN { if (a == "nan" || b == "nan") print "–"; else printf "%+.0f", a - b }')"
  done < <(block 3)
fi
echo
echo "data: $dat"
