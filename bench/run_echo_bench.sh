#!/usr/bin/env bash
# TCP echo servers side by side, driven by one load generator
# (bench/io/loadgen.cpp: closed loop, one 64-byte request in flight per
# connection) over loopback, at 100 and 1000 connections:
#   spindle-1w/-2w  samples/echo (Spindle fibers, 1 and 2 workers)
#   libev           raw libev callbacks, single thread (bench/peers/echo)
#   threads         a blocking thread per connection    (bench/peers/echo)
#   fork            a process per connection            (bench/peers/echo)
#   go              a goroutine per connection, GOMAXPROCS=2 (bench/peers/go_echo)
# Each run starts the server on a fresh port, warms up, then counts round
# trips; the whole server sequence is repeated (rotating which server goes
# first) and medians are reported. Then, for spindle-2w, threads, go and
# libev, the server's VmRSS/VmHWM and thread count while it holds 10000 idle
# connections. Writes bench/results/echo.dat, prints markdown tables and
# draws docs/echo_bench.svg (bench/plot_echo.sh). Client and server share
# the machine's cores. A server whose binary is missing is skipped.
# Usage: bench/run_echo_bench.sh [seconds per run, default 10]
#                                [repetitions, default 3] [warm-up s, default 2]
set -euo pipefail
peer_packages="golang-go gnuplot-nox"
source "$(dirname "$0")/bench_common.sh"
# bench_common.sh leaves the samples out; the Spindle echo server is one.
cmake -S . -B build/bench -DSPINDLE_BUILD_SAMPLES=ON >/dev/null && cmake --build build/bench >/dev/null
(cd bench/peers/go_echo && GOPROXY=off GOTOOLCHAIN=local \
  go build -o ../../../build/bench/go_echo .)

seconds=${1:-10} reps=${2:-3} warmup=${3:-2}
idle_conns=10000
B=build/bench
loadgen=$B/bench/loadgen
servers=(spindle-1w spindle-2w libev threads fork go)
rss_servers=(spindle-2w threads go libev)
declare -A label=([spindle-1w]="Spindle, 1 worker" [spindle-2w]="Spindle, 2 workers"
  [libev]="libev callbacks (C)" [threads]="thread per connection" [fork]="process per connection"
  [go]="Go, GOMAXPROCS=2")
export GOMAXPROCS=2

# 10000 idle connections need that many descriptors in the server and in
# loadgen (separate processes); raise the limits as far as allowed.
if [[ $(ulimit -Hn) != unlimited ]] && (($(ulimit -Hn) < 65536)); then
  ulimit -Hn 65536 2>/dev/null || echo "note: cannot raise the hard open-files limit above $(ulimit -Hn)" >&2
fi
ulimit -Sn "$(ulimit -Hn)"

# Sets cmd to the command line of server $1 on port $2; false if not built.
server_cmd() {
  case $1 in
    spindle-1w) cmd=($B/samples/echo/echo_server "$2" 1) ;;
    spindle-2w) cmd=($B/samples/echo/echo_server "$2" 2) ;;
    libev) cmd=($B/bench/peers/echo/libev_echo "$2") ;;
    threads) cmd=($B/bench/peers/echo/thread_echo "$2") ;;
    fork) cmd=($B/bench/peers/echo/fork_echo "$2") ;;
    go) cmd=($B/go_echo -port "$2") ;;
  esac
  [[ -x ${cmd[0]} ]]
}

tmp=$(mktemp -d)
server_pid="" idle_pid=""
cleanup() {
  for p in $idle_pid $server_pid; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

source bench/server_common.sh

present=()
for s in "${servers[@]}"; do
  if server_cmd "$s" 0; then present+=("$s"); else echo "skipping $s: ${cmd[0]} not built" >&2; fi
done

declare -A rps p50 p99 errs
for ((rep = 0; rep < reps; rep++)); do
  n=${#present[@]}
  for ((k = 0; k < n; k++)); do
    s=${present[(k + rep) % n]}
    start_server "$s"
    for c in 100 1000; do
      out=$("$loadgen" --port "$port" --conns "$c" --seconds "$seconds" --warmup "$warmup") || true
      echo "# $s run $((rep + 1))/$reps: ${out:-loadgen failed}" >&2
      if [[ $out == *rps=* ]]; then
        rps[$s,$c]+=" $(field rps "$out")"
        p50[$s,$c]+=" $(field p50_us "$out")" p99[$s,$c]+=" $(field p99_us "$out")"
        errs[$s,$c]=$((${errs[$s,$c]:-0} + $(field errors "$out")))
      fi
    done
    stop_server
  done
done

declare -A rss
for s in "${rss_servers[@]}"; do
  server_cmd "$s" 0 || continue
  start_server "$s"
  base=$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status")
  : >"$tmp/idle.out" # emptied here: the job's own redirection may come after the grep below
  "$loadgen" --port "$port" --conns $idle_conns --seconds 15 --idle >"$tmp/idle.out" &
  idle_pid=$!
  while ! grep -q ready "$tmp/idle.out" && ! exited $idle_pid; do sleep 0.1; done
  if grep -q ready "$tmp/idle.out"; then
    rss[$s]="$base $(awk '/^(VmRSS|VmHWM|Threads)/ {v[$1] = $2}
                         END {print v["VmRSS:"], v["VmHWM:"], v["Threads:"]}' "/proc/$server_pid/status")"
  else
    echo "# $s: loadgen --idle --conns $idle_conns failed" >&2
  fi
  echo "# $s idle: ${rss[$s]:-failed}" >&2
  kill -TERM $idle_pid 2>/dev/null || true
  wait $idle_pid 2>/dev/null || true
  idle_pid=""
  stop_server
done

mkdir -p bench/results
dat=bench/results/echo.dat
{
  echo "# bench/run_echo_bench.sh: loopback, 64-byte round trips; latencies in microseconds"
  echo "# $(date -u +%F), $(nproc) CPUs, ${seconds} s runs after ${warmup} s warm-up, medians of ${reps}"
  echo "# server rps@100 p50@100 p99@100 rps@1000 p50@1000 p99@1000 errors"
  for s in "${present[@]}"; do
    row=$s e=0
    for c in 100 1000; do
      row+=" $(median "${rps[$s,$c]:-}") $(median "${p50[$s,$c]:-}") $(median "${p99[$s,$c]:-}")"
      e=$((e + ${errs[$s,$c]:-0}))
    done
    echo "$row $e"
  done
  printf '\n\n# index 1: server holding %d idle connections (KiB; threads = its thread count)\n' $idle_conns
  echo "# server rss_before rss_idle hwm_idle threads"
  for s in "${rss_servers[@]}"; do [[ -n ${rss[$s]:-} ]] && echo "$s ${rss[$s]}"; done
} >"$dat"

echo
echo "TCP echo, 64-byte round trips over loopback; ${seconds} s runs, medians of ${reps}"
echo
echo "| server | rt/s @100 | p50/p99 µs @100 | rt/s @1000 | p50/p99 µs @1000 |"
echo "|---|---:|---:|---:|---:|"
while read -r s r1 a1 b1 r2 a2 b2 e; do
  [[ $s == \#* || -z $s ]] && break
  note=""; ((e == 0)) || note=" ($e connection errors)"
  printf '| %s%s | %.0f | %.0f / %.0f | %.0f | %.0f / %.0f |\n' \
    "${label[$s]}" "$note" "$r1" "$a1" "$b1" "$r2" "$a2" "$b2"
done < <(grep -v '^#' "$dat")
echo
echo "Server memory holding $idle_conns idle connections"
echo
echo "| server | VmRSS before | VmRSS idle | VmHWM | threads | KiB / connection |"
echo "|---|---:|---:|---:|---:|---:|"
for s in "${rss_servers[@]}"; do
  [[ -n ${rss[$s]:-} ]] || continue
  read -r base now hwm threads <<<"${rss[$s]}"
  awk -v l="${label[$s]}" -v b="$base" -v r="$now" -v h="$hwm" -v t="$threads" -v n=$idle_conns \
    'BEGIN {printf "| %s | %.1f MiB | %.1f MiB | %.1f MiB | %d | %.2f |\n", l, b/1024, r/1024, h/1024, t, (r-b)/n}'
done
bench/plot_echo.sh "$dat" docs/echo_bench.svg
echo
echo "data: $dat, plot: docs/echo_bench.svg"
