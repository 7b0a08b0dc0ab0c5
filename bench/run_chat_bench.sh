#!/usr/bin/env bash
# IRC servers side by side, driven by one load generator
# (bench/chat/loadgen.cpp, Spindle fibers) over loopback:
#   ngircd       Debian's ngircd (single-threaded, epoll), configured from
#                bench/peers/ngircd/ngircd.conf: no DNS/ident/PAM, no
#                connection limits, no flood penalty
#   spindle-1w/-2w  samples/chat's chat_server, 1 and 2 workers,
#                --flood_rate=0 (its flood limit off, as ngircd's)
# For each server:
#   1. base: $clients clients in $channels channels, $senders of them each
#      sending PRIVMSGs to their channel at $rate a second for S seconds
#      (after a warm-up); delivered messages a second (a message to a
#      channel of 100 is 99 deliveries), p50/p99/max latency, and any loss,
#      reordering or duplicate.
#   2. ramp: the same clients, the rate per sender stepping through $ramp,
#      each step measured on its own (1 s warm-up), until a step has errors,
#      a p99 over $max_p99_ms, deliveries still missing 2 s after it, or
#      delivers less than 90% of the offered rate.
# The whole server sequence is repeated (rotating which server goes first)
# and medians are reported. Then $idle_clients clients connect to the
# Spindle server and stay idle: how many registered, and the server's
# VmRSS/VmHWM and threads. Client and server share the machine's cores;
# at the base load both are busy (see the CPU column). Writes
# bench/results/chat.dat (medians, then every loadgen line) and prints
# markdown tables. A server that is missing is skipped.
#
# Usage: bench/run_chat_bench.sh [seconds, default 10] [repetitions, default 3]
#                                [seconds per ramp step, default 4]
# Environment (defaults): CLIENTS=1000 CHANNELS=10 SENDERS=100 RATE=10
#   RAMP=5,10,20,50,100,200,400 MAX_P99_MS=100 WARMUP=2 IDLE_CLIENTS=10000
#   LOADGEN_WORKERS=1 CONNECT_RATE=500 (ngircd's listen backlog is 10)
#   IDLE_CONNECT_RATE=2000 (Spindle's server only) SERVERS="ngircd spindle-1w spindle-2w"
set -euo pipefail
peer_packages="ngircd"
source "$(dirname "$0")/bench_common.sh"
# bench_common.sh leaves the samples out; the chat server is one (its
# load generator, bench/chat/loadgen.cpp, is a bench target).
cmake -S . -B build/bench -DSPINDLE_BUILD_SAMPLES=ON >/dev/null
cmake --build build/bench --target chat_server chat_loadgen >/dev/null

seconds=${1:-10} reps=${2:-3} step_seconds=${3:-4}
clients=${CLIENTS:-1000} channels=${CHANNELS:-10} senders=${SENDERS:-100} rate=${RATE:-10}
ramp=${RAMP:-5,10,20,50,100,200,400} max_p99_ms=${MAX_P99_MS:-100} warmup=${WARMUP:-2}
idle_clients=${IDLE_CLIENTS:-10000} lg_workers=${LOADGEN_WORKERS:-1}
connect_rate=${CONNECT_RATE:-500} idle_connect_rate=${IDLE_CONNECT_RATE:-2000}
read -r -a servers <<<"${SERVERS:-ngircd spindle-1w spindle-2w}"
idle_server=spindle-2w
drain=2 step_warmup=1
B=build/bench
loadgen=$B/bench/chat/loadgen
chat_server=$B/samples/chat/chat_server
ngircd=$(command -v ngircd || echo /usr/sbin/ngircd)
declare -A label=([ngircd]="ngircd $("$ngircd" --version 2>/dev/null | awk 'NR == 1 {print $2}' | cut -d- -f1)"
  [spindle-1w]="Spindle chat_server, 1 worker" [spindle-2w]="Spindle chat_server, 2 workers")

# $idle_clients connections need that many descriptors in the server and
# in loadgen (separate processes); raise the limits as far as allowed.
if [[ $(ulimit -Hn) != unlimited ]] && (($(ulimit -Hn) < 65536)); then
  ulimit -Hn 65536 2>/dev/null || echo "note: cannot raise the hard open-files limit above $(ulimit -Hn)" >&2
fi
ulimit -Sn "$(ulimit -Hn)"

tmp=$(mktemp -d)
chmod 755 "$tmp" # ngircd, started as root, runs as nobody
server_pid="" idle_pid=""
cleanup() {
  for p in $idle_pid $server_pid; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Sets cmd to the command line of server $1 on port $2; false if missing.
server_cmd() {
  case $1 in
    ngircd)
      local dir=$tmp/ngircd uid gid
      mkdir -p "$dir/conf.d"
      if ((EUID == 0)); then uid=65534 gid=65534; else uid=$(id -u) gid=$(id -g); fi
      sed -e "s/@PORT@/$2/; s#@DIR@#$dir#; s/@UID@/$uid/; s/@GID@/$gid/" \
        bench/peers/ngircd/ngircd.conf >"$dir/ngircd.conf"
      chmod -R a+rX "$dir"
      cmd=("$ngircd" -n -f "$dir/ngircd.conf")
      ;;
    spindle-1w) cmd=("$chat_server" --port "$2" --bind 127.0.0.1 --workers 1 --flood_rate=0) ;;
    spindle-2w) cmd=("$chat_server" --port "$2" --bind 127.0.0.1 --workers 2 --flood_rate=0) ;;
    *) return 1 ;;
  esac
  [[ -x ${cmd[0]} ]]
}

source bench/server_common.sh
nsteps=$(tr ',' '\n' <<<"$ramp" | grep -c .)
# A bound on one loadgen run, so that a hung run cannot stall the script:
# connecting, registering (its 60 s timeout), the steps, closing.
limit() { echo $((clients / connect_rate + 90 + $1)); }

# runs loadgen with the common arguments and $@; prints its stdout, keeps
# its stderr in $tmp/loadgen.err (shown if it printed no result).
run_loadgen() {
  timeout -k 5 "$1" "$loadgen" --port "$port" --clients "$clients" --channels "$channels" \
    --senders "$senders" --connect_rate "$connect_rate" --workers "$lg_workers" --drain $drain \
    "${@:2}" 2>"$tmp/loadgen.err" || true
}

present=()
for s in "${servers[@]}"; do
  if server_cmd "$s" 0; then present+=("$s"); else echo "skipping $s: ${cmd[0]} not found" >&2; fi
done
raw=() # every loadgen line, for the .dat file

declare -A mps p50 p99 pmax lost order errs cpu ramp_mps ramp_p50 ramp_p99 ramp_offered ramp_stop
for ((rep = 0; rep < reps; rep++)); do
  n=${#present[@]}
  for ((k = 0; k < n; k++)); do
    s=${present[(k + rep) % n]}
    start_server "$s"
    # 1. base
    t0=$(cpu_ticks "$server_pid") w0=$(date +%s.%N)
    out=$(run_loadgen "$(limit $((warmup + seconds + 2 * drain)))" --rate "$rate" \
      --seconds "$seconds" --warmup "$warmup")
    t1=$(cpu_ticks "$server_pid") w1=$(date +%s.%N)
    echo "# $s run $((rep + 1))/$reps base: ${out:-loadgen failed: $(tail -3 "$tmp/loadgen.err")}" >&2
    if [[ $out == *msgs_per_s=* ]]; then
      raw+=("$s rep=$((rep + 1)) base $out")
      mps[$s]+=" $(field msgs_per_s "$out")"
      p50[$s]+=" $(field p50_us "$out")" p99[$s]+=" $(field p99_us "$out")"
      pmax[$s]+=" $(field max_us "$out")"
      cpu[$s]+=" $(awk -v t="$((t1 - t0))" -v a="$w0" -v b="$w1" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.0f", 100 * t / hz / (b - a)}')"
      lost[$s]=$((${lost[$s]:-0} + $(field lost "$out")))
      order[$s]=$((${order[$s]:-0} + $(field out_of_order "$out") + $(field dup "$out")))
      errs[$s]=$((${errs[$s]:-0} + $(field errors "$out")))
    else
      errs[$s]=$((${errs[$s]:-0} + 1))
      raw+=("$s rep=$((rep + 1)) base failed")
    fi
    # 2. ramp
    out=$(run_loadgen "$(limit $((nsteps * (step_warmup + step_seconds + 2 * drain))))" \
      --ramp "$ramp" --seconds "$step_seconds" --warmup $step_warmup --ramp_max_p99_ms "$max_p99_ms")
    while read -r line; do
      if [[ -z $line ]]; then continue; fi
      raw+=("$s rep=$((rep + 1)) ramp $line")
      if [[ $line == step=* ]]; then
        r=$(field rate "$line")
        ramp_mps[$s,$r]+=" $(field msgs_per_s "$line")" ramp_offered[$s,$r]=$(field offered_per_s "$line")
        ramp_p50[$s,$r]+=" $(field p50_us "$line")" ramp_p99[$s,$r]+=" $(field p99_us "$line")"
        echo "# $s run $((rep + 1))/$reps ramp rate=$r: msgs_per_s=$(field msgs_per_s "$line")" \
          "p50_us=$(field p50_us "$line") p99_us=$(field p99_us "$line") lost=$(field lost "$line")" \
          "errors=$(field errors "$line")" >&2
      elif [[ $line == ramp_end* ]]; then
        ramp_stop[$s]+=" $(field stop "$line")@$(field steps "$line")"
      fi
    done <<<"$out"
    [[ $out == *ramp_end* ]] || {
      echo "# $s run $((rep + 1))/$reps ramp: loadgen failed: $(tail -3 "$tmp/loadgen.err")" >&2
      ramp_stop[$s]+=" failed"
    }
    stop_server
  done
done

# 3. idle clients on the Spindle server
idle=""
if server_cmd $idle_server 0; then
  start_server $idle_server
  base=$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status")
  : >"$tmp/idle.out" # emptied here: the job's own redirection may come after the grep below
  timeout -k 5 $((idle_clients / idle_connect_rate + 120)) "$loadgen" --port "$port" \
    --clients "$idle_clients" --idle --seconds 60 --connect_rate "$idle_connect_rate" \
    --workers "$lg_workers" >"$tmp/idle.out" 2>"$tmp/idle.err" &
  idle_pid=$!
  while ! grep -q ready "$tmp/idle.out" && ! exited $idle_pid; do sleep 0.2; done
  if grep -q ready "$tmp/idle.out"; then
    sleep 1 # let the last registrations settle
    idle="$(field registered "$(grep ready "$tmp/idle.out")") $base $(awk '/^(VmRSS|VmHWM|Threads)/ {v[$1] = $2}
      END {print v["VmRSS:"], v["VmHWM:"], v["Threads:"]}' "/proc/$server_pid/status")"
    raw+=("$idle_server idle $(grep ready "$tmp/idle.out")")
  else
    echo "# $idle_server: loadgen --idle --clients $idle_clients failed: $(tail -3 "$tmp/idle.err")" >&2
  fi
  echo "# $idle_server idle: registered, VmRSS before/idle/HWM KiB, threads: ${idle:-failed}" >&2
  kill -TERM $idle_pid 2>/dev/null || true
  wait $idle_pid 2>/dev/null || true
  idle_pid=""
  stop_server
fi

mkdir -p bench/results
dat=bench/results/chat.dat
{
  echo "# bench/run_chat_bench.sh: IRC over loopback, loadgen bench/chat/loadgen.cpp; latencies in microseconds"
  echo "# $(date -u +%F), $(nproc) CPUs, $clients clients in $channels channels, $senders senders;" \
    "${seconds} s base runs at $rate msg/s per sender after ${warmup} s warm-up; ramp steps of" \
    "${step_seconds} s; medians of ${reps}; loadgen workers $lg_workers"
  echo "# index 0: base. server msgs_per_s p50 p99 max server_cpu_pct lost order_errors errors"
  for s in "${present[@]}"; do
    echo "$s $(median "${mps[$s]:-}") $(median "${p50[$s]:-}") $(median "${p99[$s]:-}")" \
      "$(median "${pmax[$s]:-}") $(median "${cpu[$s]:-}") ${lost[$s]:-0} ${order[$s]:-0} ${errs[$s]:-0}"
  done
  printf '\n\n# index 1: ramp. server rate_per_sender offered_per_s msgs_per_s p50 p99 runs_reaching_step\n'
  for s in "${present[@]}"; do
    for r in ${ramp//,/ }; do
      [[ -n ${ramp_mps[$s,$r]:-} ]] || continue
      echo "$s $r ${ramp_offered[$s,$r]} $(median "${ramp_mps[$s,$r]}") $(median "${ramp_p50[$s,$r]}")" \
        "$(median "${ramp_p99[$s,$r]}") $(wc -w <<<"${ramp_mps[$s,$r]}")"
    done
    echo "# $s ramp stopped (reason@steps per run):${ramp_stop[$s]:-}"
  done
  printf '\n\n# index 2: %s holding idle clients.' "$idle_server"
  echo " server clients registered rss_before rss_idle hwm_idle threads (KiB)"
  if [[ -n $idle ]]; then echo "$idle_server $idle_clients $idle"; fi
  printf '\n\n# raw loadgen lines\n'
  for line in "${raw[@]}"; do echo "# $line"; done
} >"$dat"

ms() { awk -v v="$1" 'BEGIN {if (v == "nan") print "-"; else printf "%.2f", v / 1000}'; }
echo
echo "IRC chat over loopback: $clients clients in $channels channels, $senders senders at $rate msg/s each" \
  "(each message goes to the rest of its channel); ${seconds} s runs, medians of ${reps}; $(nproc) CPUs" \
  "shared by server and load generator"
echo
echo "| server | delivered msg/s | p50 ms | p99 ms | max ms | server CPU | lost | order errors | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for s in "${present[@]}"; do
  printf '| %s | %.0f | %s | %s | %s | %s%% | %d | %d | %d |\n' "${label[$s]}" "$(median "${mps[$s]:-}")" \
    "$(ms "$(median "${p50[$s]:-}")")" "$(ms "$(median "${p99[$s]:-}")")" "$(ms "$(median "${pmax[$s]:-}")")" \
    "$(median "${cpu[$s]:-}")" "${lost[$s]:-0}" "${order[$s]:-0}" "${errs[$s]:-0}"
done
echo
echo "Ramp: the rate per sender steps up ($senders senders, ${step_seconds} s a step) until a step has p99 >" \
  "$max_p99_ms ms, errors, deliveries missing ${drain} s after it, or under 90% of the offered rate delivered." \
  "Cells: delivered msg/s, p50 / p99 ms (medians of the runs that reached the step)"
echo
header="| msg/s per sender | offered msg/s |" rule="|---:|---:|"
for s in "${present[@]}"; do header+=" ${label[$s]} |"; rule+="---:|"; done
echo "$header"
echo "$rule"
for r in ${ramp//,/ }; do
  row="" any=""
  for s in "${present[@]}"; do
    if [[ -n ${ramp_mps[$s,$r]:-} ]]; then
      any=${ramp_offered[$s,$r]}
      runs=$(wc -w <<<"${ramp_mps[$s,$r]}") note=""
      if ((runs < reps)); then note=" ($runs of $reps runs)"; fi
      row+=" $(printf '%.0f' "$(median "${ramp_mps[$s,$r]}")"), $(ms "$(median "${ramp_p50[$s,$r]}")")"
      row+=" / $(ms "$(median "${ramp_p99[$s,$r]}")")$note |"
    else
      row+=" - |"
    fi
  done
  if [[ -n $any ]]; then echo "| $r | $(printf '%.0f' "$any") |$row"; fi
done
echo
for s in "${present[@]}"; do echo "- ${label[$s]}: ramp stopped (reason@step, per run):${ramp_stop[$s]:-}"; done
if [[ -n $idle ]]; then
  read -r registered base now hwm threads <<<"$idle"
  echo
  echo "$idle_clients idle clients (registered, no channels) on ${label[$idle_server]}"
  echo
  echo "| server | registered | VmRSS before | VmRSS idle | VmHWM | threads | KiB / client |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  awk -v l="${label[$idle_server]}" -v g="$registered" -v n="$idle_clients" -v b="$base" -v r="$now" \
    -v h="$hwm" -v t="$threads" 'BEGIN {printf "| %s | %d of %d | %.1f MiB | %.1f MiB | %.1f MiB | %d | %.1f |\n",
      l, g, n, b/1024, r/1024, h/1024, t, (g > 0 ? (r-b)/g : 0)}'
fi
echo
echo "data: $dat"
