#!/usr/bin/env bash
# Redis-protocol servers side by side, driven by redis-benchmark over
# loopback:
#   redis        Debian's redis-server 7 (single-threaded; --save ''
#                --appendonly no, so no persistence)
#   spindle-1w/-2w  samples/kv's kv_server, 1 and 2 workers
#   redis-io2    (only if named in SERVERS) redis-server with
#                --io-threads 2 --io-threads-do-reads yes
# Tests: redis-benchmark's ping_inline, ping_mbulk (its two halves of
# `-t ping`), set, get, incr, lpush, lpop, each run on its own
# (redis-benchmark -t TEST -n N -c C -P P --csv, default keys, 3-byte
# values) at -c 50 and -c 1000 connections and -P 1 and -P 16 (requests
# pipelined per connection). N is $1 at -P 1 and 10 times that at -P 16,
# so that a run takes a few seconds. For each: requests/s and latency
# p50/p99 (as redis-benchmark reports them), and the server's CPU time per
# request: the utime+stime growth of the server process (/proc/PID/stat)
# over the run divided by N. Every server is started once per round on a
# fresh port and runs all the tests; the rounds rotate which server goes
# first, and medians over the rounds are reported. redis-benchmark is one
# thread and shares the machine's cores with the server. A server whose
# binary is missing, or that does not answer PING, is skipped.
# Writes bench/results/kv.dat and prints markdown tables.
#
# Usage: bench/run_kv_bench.sh [requests per run at -P 1, default 150000]
#                              [rounds, default 3]
# Environment (defaults): SERVERS="redis spindle-1w spindle-2w"
#   TESTS="ping_inline ping_mbulk set get incr lpush lpop" CONNS="50 1000"
#   PIPELINES="1 16" MAXCLIENTS=10000 (kv_server --maxclients)
# With the defaults a round is about 2.5 minutes (3 servers) on a 2-CPU VM.
set -euo pipefail
peer_packages="redis-server redis-tools"
source "$(dirname "$0")/bench_common.sh"
# bench_common.sh leaves the samples out; the key-value server is one.
B=build/bench
build_samples kv_server

n1=${1:-150000} reps=${2:-3}
read -r -a servers <<<"${SERVERS:-redis spindle-1w spindle-2w}"
read -r -a tests <<<"${TESTS:-ping_inline ping_mbulk set get incr lpush lpop}"
read -r -a conns <<<"${CONNS:-50 1000}"
read -r -a pipelines <<<"${PIPELINES:-1 16}"
maxclients=${MAXCLIENTS:-10000}
kv_server=$B/samples/kv/kv_server
redis=$(command -v redis-server || echo /usr/bin/redis-server)
redis_version=$("$redis" --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p')
hz=$(getconf CLK_TCK)
declare -A label=([redis]="redis $redis_version" [redis-io2]="redis $redis_version, 2 I/O threads"
  [spindle-1w]="Spindle kv_server, 1 worker" [spindle-2w]="Spindle kv_server, 2 workers")

# 1000 connections need as many descriptors in the server and in
# redis-benchmark (redis-server lowers its maxclients to fit the limit).
if [[ $(ulimit -Hn) != unlimited ]] && (($(ulimit -Hn) < 65536)); then
  ulimit -Hn 65536 2>/dev/null || true
fi
ulimit -Sn "$(ulimit -Hn)"
if [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < 4096)); then
  echo "note: the open-files limit is $(ulimit -n); 1000 connections may fail" >&2
fi

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Sets cmd to the command line of server $1 on port $2; false if missing.
server_cmd() {
  local redis_args=(--port "$2" --bind 127.0.0.1 --save '' --appendonly no --daemonize no
    --dir "$tmp" --tcp-backlog 4096 --maxclients "$maxclients")
  case $1 in
    redis) cmd=("$redis" "${redis_args[@]}") ;;
    redis-io2) cmd=("$redis" "${redis_args[@]}" --io-threads 2 --io-threads-do-reads yes) ;;
    spindle-1w) cmd=("$kv_server" --port "$2" --bind 127.0.0.1 --workers 1 --maxclients "$maxclients") ;;
    spindle-2w) cmd=("$kv_server" --port "$2" --bind 127.0.0.1 --workers 2 --maxclients "$maxclients") ;;
    *) return 1 ;;
  esac
  [[ -x ${cmd[0]} ]]
}

source bench/server_common.sh

present=()
for s in "${servers[@]}"; do
  if server_cmd "$s" 0; then present+=("$s"); else echo "skipping $s: ${cmd[0]} not found" >&2; fi
done
((${#present[@]})) || { echo "no server to measure" >&2; exit 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A rps p50 p99 cpu runs fails
for ((rep = 0; rep < reps; rep++)); do
  n=${#present[@]}
  for ((k = 0; k < n; k++)); do
    s=${present[(k + rep) % n]}
    start_server "$s"
    if ! pong=$(timeout 5 redis-cli -p "$port" ping 2>&1) || [[ $pong != PONG ]]; then
      echo "# $s: PING answered '${pong}'; skipped this round" >&2
      fails[$s]=$((${fails[$s]:-0} + 1))
      stop_server
      continue
    fi
    for pl in "${pipelines[@]}"; do
      nreq=$n1
      if ((pl > 1)); then nreq=$((n1 * 10)); fi
      for c in "${conns[@]}"; do
        for t in "${tests[@]}"; do
          k3=$s,$t,$c,$pl
          t0=$(cpu_ticks "$server_pid")
          out=$(timeout -k 5 300 redis-benchmark -p "$port" -t "$t" -n "$nreq" -c "$c" -P "$pl" --csv \
            2>"$tmp/rb.err") || true
          t1=$(cpu_ticks "$server_pid")
          name=${t^^}
          line=$(grep "^\"$name\"," <<<"$out" | tr -d '"') || true
          if [[ -z $line ]]; then
            echo "# $s run $((rep + 1))/$reps $name -c $c -P $pl: redis-benchmark failed:" \
              "$(tail -3 "$tmp/rb.err" | tr '\n' ' ')" >&2
            fails[$k3]=$((${fails[$k3]:-0} + 1))
            continue
          fi
          IFS=, read -r _ r _ _ a _ b _ <<<"$line"
          u=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v q="$nreq" 'BEGIN {printf "%.3f", t / hz * 1e6 / q}')
          echo "# $s run $((rep + 1))/$reps $name -c $c -P $pl: rps=$r p50_ms=$a p99_ms=$b cpu_us_per_req=$u" >&2
          rps[$k3]+=" $r" p50[$k3]+=" $a" p99[$k3]+=" $b" cpu[$k3]+=" $u"
          runs[$k3]=$((${runs[$k3]:-0} + 1))
        done
      done
    done
    stop_server
  done
done

mkdir -p bench/results
dat=bench/results/kv.dat
{
  echo "# bench/run_kv_bench.sh: Redis protocol over loopback, redis-benchmark $(redis-benchmark --version |
    awk '{print $2}') --csv; latencies in milliseconds"
  echo "# $(date -u +%F), $(nproc) CPUs shared by server and redis-benchmark; -n $n1 at -P 1, $((n1 * 10))" \
    "pipelined; medians of ${reps} rounds; load average at start: $load_start"
  echo "# server test conns pipeline rps p50_ms p99_ms cpu_us_per_req runs failed_runs"
  for s in "${present[@]}"; do
    for pl in "${pipelines[@]}"; do
      for c in "${conns[@]}"; do
        for t in "${tests[@]}"; do
          k3=$s,$t,$c,$pl
          [[ -n ${runs[$k3]:-} || -n ${fails[$k3]:-} ]] || continue
          echo "$s ${t^^} $c $pl $(median "${rps[$k3]:-}") $(median "${p50[$k3]:-}") $(median "${p99[$k3]:-}")" \
            "$(median "${cpu[$k3]:-}") ${runs[$k3]:-0} ${fails[$k3]:-0}"
        done
      done
    done
  done
  for s in "${present[@]}"; do
    if [[ -n ${fails[$s]:-} ]]; then echo "# $s did not answer PING in ${fails[$s]} rounds"; fi
  done
} >"$dat"

echo
echo "Redis protocol over loopback, redis-benchmark (one thread; default keys, 3-byte values);" \
  "-n $n1 at -P 1, $((n1 * 10)) at -P 16; medians of ${reps} rounds; $(nproc) CPUs shared by server and" \
  "redis-benchmark; CPU µs/req = server utime+stime / requests. PING_INLINE and PING_MBULK are" \
  "redis-benchmark's two halves of \`-t ping\` (an inline command and a RESP array)."
for pl in "${pipelines[@]}"; do
  for c in "${conns[@]}"; do
    echo
    echo "-c $c, -P $pl: requests/s (server CPU µs/request)"
    echo
    h="| test |" r="|---|"
    for s in "${present[@]}"; do h+=" ${label[$s]} |"; r+="---:|"; done
    echo "$h"
    echo "$r"
    for t in "${tests[@]}"; do
      row="| ${t^^} |"
      for s in "${present[@]}"; do
        k3=$s,$t,$c,$pl
        if [[ -z ${runs[$k3]:-} ]]; then row+=" - |"; continue; fi
        note=""
        ((${runs[$k3]} == reps)) || note=" (${runs[$k3]} of $reps runs)"
        row+=" $(awk -v r="$(median "${rps[$k3]}")" -v u="$(median "${cpu[$k3]}")" -v n="$note" \
          'BEGIN {printf "%.0f (%.2f)%s", r, u, n}') |"
      done
      echo "$row"
    done
  done
done
for s in "${present[@]}"; do
  if [[ -n ${fails[$s]:-} ]]; then echo "- ${label[$s]} did not answer PING in ${fails[$s]} of $reps rounds"; fi
done
echo
echo "data: $dat"
