#!/usr/bin/env bash
# HTTP/1.1 servers side by side, driven by wrk (keep-alive, 2 threads) over
# loopback:
#   spindle-1w/-2w  samples/http's http_server, 1 and 2 workers
#   nginx-1w/-2w    Debian's nginx, 1 and 2 worker processes, configured from
#                   bench/peers/nginx/nginx.conf (access_log off, sendfile,
#                   tcp_nopush, open_file_cache)
#   libev-1t/-2t    bench/peers/http/libev_http.c: raw libev callbacks, 1
#                   event loop, and 2 threads each with its own loop and
#                   SO_REUSEPORT listener (hello only: it serves no files)
#   go              bench/peers/go_http: net/http, GOMAXPROCS=2
# Tests, each a wrk run of S seconds (wrk -t2 -cC -dSs --latency):
#   hello   GET / ("Hello, World!\n", 14 bytes) at $CONNS connections
#   4k, 1m  GET of a 4 KiB and a 1 MiB file (made in a temporary directory
#           and read once, so they are in the page cache) at $STATIC_CONNS
#           connections, from the servers that serve files
# For each: requests/s, wrk's average and p99 latency, socket errors and
# non-2xx answers, and the server's CPU time per request: the utime+stime
# growth of the server process (for nginx the master and its workers, from
# /proc/PID/stat) over the run divided by the requests wrk completed. Every
# server is started once per round on a fresh port, warmed up (wrk, W
# seconds), checked (the hello body, the files' sizes; a failing test is
# skipped for that server), and runs all its tests; the rounds rotate which
# server goes first, and medians over the rounds are reported. The size of
# each server's response header is recorded too (curl). Client and server
# share the machine's cores. A server whose binary is missing is skipped.
# Writes bench/results/http.dat and prints markdown tables.
#
# Usage: bench/run_http_bench.sh [seconds per run, default 7]
#                                [rounds, default 3] [warm-up s, default 1]
# Environment (defaults): SERVERS="spindle-1w spindle-2w nginx-1w nginx-2w
#   libev-1t libev-2t go" CONNS="100 1000" STATIC_CONNS=100
#   SPINDLE_STATIC_PREFIX="" (URL path prefix of the files in Spindle's
#   server, e.g. /static) NGINX_REUSEPORT=0 (1: a listening socket per
#   nginx worker, "listen ... reuseport")
# With the defaults one round is about 3 minutes (24 runs of 7 s).
set -euo pipefail
peer_packages="wrk nginx golang-go"
source "$(dirname "$0")/bench_common.sh"
# bench_common.sh leaves the samples out; the HTTP server is one.
B=build/bench
build_samples http_server   # the libev peer (libev_http) is built by bench_common.sh
(cd bench/peers/go_http && GOPROXY=off GOTOOLCHAIN=local go build -o ../../../$B/go_http .)

seconds=${1:-7} reps=${2:-3} warmup=${3:-1}
read -r -a servers <<<"${SERVERS:-spindle-1w spindle-2w nginx-1w nginx-2w libev-1t libev-2t go}"
read -r -a conns <<<"${CONNS:-100 1000}"
read -r -a static_conns <<<"${STATIC_CONNS:-100}"
spindle_prefix=${SPINDLE_STATIC_PREFIX:-}
http_server=$B/samples/http/http_server
nginx=$(command -v nginx || echo /usr/sbin/nginx)
hz=$(getconf CLK_TCK)
hello_body=$'Hello, World!\n'
declare -A file_size=([4k]=4096 [1m]=1048576)
declare -A label=([spindle-1w]="Spindle http_server, 1 worker" [spindle-2w]="Spindle http_server, 2 workers"
  [nginx-1w]="nginx $("$nginx" -v 2>&1 | sed -n 's|.*nginx/||p'), 1 worker"
  [nginx-2w]="nginx $("$nginx" -v 2>&1 | sed -n 's|.*nginx/||p'), 2 workers"
  [libev-1t]="libev callbacks (C), 1 thread" [libev-2t]="libev callbacks (C), 2 threads, SO_REUSEPORT"
  [go]="Go $(go env GOVERSION 2>/dev/null | sed 's/^go//') net/http, GOMAXPROCS=2")
if [[ ${NGINX_REUSEPORT:-0} == 1 ]]; then label[nginx-2w]+=", reuseport"; fi
export GOMAXPROCS=2

# 1000 connections need as many descriptors in the server and in wrk.
if [[ $(ulimit -Hn) != unlimited ]] && (($(ulimit -Hn) < 65536)); then
  ulimit -Hn 65536 2>/dev/null || true
fi
ulimit -Sn "$(ulimit -Hn)"
if [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < 4096)); then
  echo "note: the open-files limit is $(ulimit -n); 1000 connections may fail" >&2
fi

tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx, started as root, runs its workers as nobody
www=$tmp/www
mkdir "$www"
for f in "${!file_size[@]}"; do
  head -c "${file_size[$f]}" <(yes 'Spindle static file benchmark: 64 bytes a line, the same in all.') >"$www/$f.txt"
done
chmod -R a+rX "$www"
cat "$www"/* >/dev/null # into the page cache

server_pid=""
# The process and its children (nginx's workers).
server_pids() {
  echo "$1"
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$1" '{s = $0; sub(/^.*\) /, "", s); split(s, a, " ");
                                                       if (a[2] == p) print $1}'
}
tree_ticks() {
  local t=0 p
  for p in $(server_pids "$1"); do t=$((t + $(cpu_ticks "$p"))); done
  echo $t
}
cleanup() {
  if [[ -n $server_pid ]]; then
    for p in $(server_pids "$server_pid"); do kill -KILL "$p" 2>/dev/null || true; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Sets cmd to the command line of server $1 on port $2; false if missing.
server_cmd() {
  case $1 in
    spindle-1w) cmd=("$http_server" --port "$2" --bind 127.0.0.1 --workers 1 --root "$www") ;;
    spindle-2w) cmd=("$http_server" --port "$2" --bind 127.0.0.1 --workers 2 --root "$www") ;;
    nginx-1w | nginx-2w)
      local dir=$tmp/nginx-$2 user="" workers=${1#nginx-} reuseport=""
      mkdir -p "$dir"
      if ((EUID == 0)); then user="user nobody nogroup;"; fi
      if [[ ${NGINX_REUSEPORT:-0} == 1 ]]; then reuseport=reuseport; fi
      sed -e "s/@WORKERS@/${workers%w}/; s/@PORT@/$2/; s/@REUSEPORT@/$reuseport/; s#@DIR@#$dir#g; s#@ROOT@#$www#; s/@USER@/$user/" \
        bench/peers/nginx/nginx.conf >"$dir/nginx.conf"
      cmd=("$nginx" -p "$dir/" -e stderr -c "$dir/nginx.conf" -g 'daemon off;')
      ;;
    libev-1t) cmd=("$B/bench/peers/http/libev_http" "$2" 1) ;;
    libev-2t) cmd=("$B/bench/peers/http/libev_http" "$2" 2) ;;
    go) cmd=("$B/go_http" -port "$2" -root "$www") ;;
    *) return 1 ;;
  esac
  [[ -x ${cmd[0]} ]]
}
serves_files() { [[ $1 != libev-* ]]; }
url_path() { # server test
  case $2 in
    hello) echo / ;;
    *) if [[ $1 == spindle-* ]]; then echo "$spindle_prefix/$2.txt"; else echo "/$2.txt"; fi ;;
  esac
}

source bench/server_common.sh

# Checks test $2 of server $1 (listening on $port); prints why it fails.
check() {
  local out code size
  out=$(curl -s -o "$tmp/body" -w '%{http_code} %{size_download}' "http://127.0.0.1:$port$(url_path "$1" "$2")" 2>&1) ||
    { echo "curl failed: $out"; return 1; }
  read -r code size <<<"$out"
  [[ $code == 200 ]] || { echo "HTTP status $code"; return 1; }
  if [[ $2 == hello ]]; then
    [[ $(cat "$tmp/body"; echo .) == "$hello_body." ]] || { echo "body is not 'Hello, World!\\n'"; return 1; }
  else
    cmp -s "$tmp/body" "$www/$2.txt" || { echo "body ($size bytes) differs from the file"; return 1; }
  fi
}
# The response header of test $2 of server $1: its size, then its lines.
headers() {
  curl -s -o /dev/null -D "$tmp/headers" "http://127.0.0.1:$port$(url_path "$1" "$2")" || true
  echo "$(wc -c <"$tmp/headers") $(tr -d '\r' <"$tmp/headers" | sed '1d; /^$/d; s/^\([^:]*\):.*/\1/' | paste -sd, -)"
}

# wrk output to "rps avg_us p99_us requests errors", or nothing.
parse_wrk() {
  awk 'function us(v) {
         if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000;
         if (v ~ /m$/) return v * 60e6; if (v ~ /s$/) return v * 1e6; return v + 0 }
       /^ +Latency / && avg == "" {avg = us($2)}
       /^ +99% / {p99 = us($2)}
       / requests in / {req = $1}
       /^Requests\/sec:/ {rps = $2}
       /Socket errors:/ {gsub(/[^0-9 ]/, " "); err += $1 + $2 + $3 + $4}
       /Non-2xx or 3xx responses:/ {err += $NF}
       END {if (rps != "" && req != "") printf "%s %s %s %s %d\n", rps, avg, p99, req, err}'
}

present=()
for s in "${servers[@]}"; do
  if server_cmd "$s" 0; then present+=("$s"); else echo "skipping $s: ${cmd[0]} not found" >&2; fi
done
((${#present[@]})) || { echo "no server to measure" >&2; exit 1; }
tests=() # "test conns" pairs
for c in "${conns[@]}"; do tests+=("hello $c"); done
for f in 4k 1m; do for c in "${static_conns[@]}"; do tests+=("$f $c"); done; done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A rps avg p99 cpu errs runs skip hdr
for ((rep = 0; rep < reps; rep++)); do
  n=${#present[@]}
  for ((k = 0; k < n; k++)); do
    s=${present[(k + rep) % n]}
    start_server "$s"
    timeout -k 5 $((warmup + 30)) wrk -t2 -c100 -d"${warmup}s" "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
    for t in "${tests[@]}"; do
      read -r test c <<<"$t"
      if [[ $test != hello ]] && ! serves_files "$s"; then continue; fi
      if [[ -n ${skip[$s,$test]:-} ]]; then continue; fi
      if ! why=$(check "$s" "$test"); then
        echo "# $s: GET $(url_path "$s" "$test"): $why; $test skipped" >&2
        skip[$s,$test]=$why
        continue
      fi
      [[ -n ${hdr[$s,$test]:-} ]] || hdr[$s,$test]=$(headers "$s" "$test")
      t0=$(tree_ticks "$server_pid")
      out=$(timeout -k 5 $((seconds + 60)) wrk -t2 -c"$c" -d"${seconds}s" --latency \
        "http://127.0.0.1:$port$(url_path "$s" "$test")" 2>&1) || true
      t1=$(tree_ticks "$server_pid")
      res=$(parse_wrk <<<"$out")
      if [[ -z $res ]]; then
        echo "# $s run $((rep + 1))/$reps $test c=$c: wrk failed: $(tail -3 <<<"$out")" >&2
        errs[$s,$test,$c]=$((${errs[$s,$test,$c]:-0} + 1))
        continue
      fi
      read -r r a p q e <<<"$res"
      u=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v q="$q" 'BEGIN {printf "%.2f", (q > 0 ? t / hz * 1e6 / q : 0)}')
      echo "# $s run $((rep + 1))/$reps $test c=$c: rps=$r avg_us=$a p99_us=$p requests=$q" \
        "errors=$e cpu_us_per_req=$u" >&2
      rps[$s,$test,$c]+=" $r" avg[$s,$test,$c]+=" $a" p99[$s,$test,$c]+=" $p" cpu[$s,$test,$c]+=" $u"
      errs[$s,$test,$c]=$((${errs[$s,$test,$c]:-0} + e)) runs[$s,$test,$c]=$((${runs[$s,$test,$c]:-0} + 1))
    done
    stop_server
  done
done

mkdir -p bench/results
dat=bench/results/http.dat
{
  echo "# bench/run_http_bench.sh: HTTP/1.1 keep-alive over loopback, wrk -t2 --latency; latencies in microseconds"
  echo "# $(date -u +%F), $(nproc) CPUs shared by server and wrk, ${seconds} s runs after a ${warmup} s warm-up," \
    "medians of ${reps} rounds; load average at start: $load_start"
  echo "# server test conns rps avg_us p99_us cpu_us_per_req errors runs"
  for s in "${present[@]}"; do
    for t in "${tests[@]}"; do
      read -r test c <<<"$t"
      [[ -n ${runs[$s,$test,$c]:-} ]] || continue
      echo "$s $test $c $(median "${rps[$s,$test,$c]}") $(median "${avg[$s,$test,$c]}")" \
        "$(median "${p99[$s,$test,$c]}") $(median "${cpu[$s,$test,$c]}") ${errs[$s,$test,$c]:-0} ${runs[$s,$test,$c]}"
    done
  done
  printf '\n\n# index 1: response header bytes (status line to the blank line) and header names\n'
  echo "# server test bytes names"
  for s in "${present[@]}"; do
    for test in hello 4k 1m; do
      if [[ -n ${hdr[$s,$test]:-} ]]; then echo "$s $test ${hdr[$s,$test]}"; fi
    done
  done
  for s in "${present[@]}"; do
    for test in hello 4k 1m; do
      if [[ -n ${skip[$s,$test]:-} ]]; then echo "# $s: $test skipped: ${skip[$s,$test]}"; fi
    done
  done
} >"$dat"

# cell SERVER TEST CONNS: "req/s | avg / p99 ms | CPU µs/req" or dashes
cell() {
  local k=$1,$2,$3
  if [[ -z ${runs[$k]:-} ]]; then echo "- | - | -"; return; fi
  local note=""
  ((${errs[$k]:-0} == 0)) || note=" (${errs[$k]} errors)"
  ((${runs[$k]} == reps)) || note+=" (${runs[$k]} of $reps runs)"
  awk -v r="$(median "${rps[$k]}")" -v a="$(median "${avg[$k]}")" -v p="$(median "${p99[$k]}")" \
    -v u="$(median "${cpu[$k]}")" -v n="$note" \
    'BEGIN {printf "%.0f%s | %.2f / %.2f | %.1f\n", r, n, a / 1000, p / 1000, u}'
}
table() { # title, tests ("test conns"...)
  local title=$1 t s row
  shift
  echo
  echo "$title"
  echo
  local h="| server |" r="|---|"
  for t in "$@"; do
    read -r test c <<<"$t"
    h+=" $test @$c req/s | avg / p99 ms | CPU µs/req |" r+="---:|---:|---:|"
  done
  echo "$h"
  echo "$r"
  for s in "${present[@]}"; do
    row="| ${label[$s]} |" any=""
    for t in "$@"; do
      read -r test c <<<"$t"
      [[ -n ${runs[$s,$test,$c]:-} ]] && any=1
      row+=" $(cell "$s" "$test" "$c") |"
    done
    if [[ -n $any ]]; then echo "$row"; fi
  done
}
echo
echo "HTTP/1.1 over loopback, wrk -t2 keep-alive; ${seconds} s runs, medians of ${reps} rounds; $(nproc) CPUs" \
  "shared by server and wrk; CPU µs/req = server utime+stime / requests"
hello_tests=() static_tests=()
for t in "${tests[@]}"; do if [[ $t == hello* ]]; then hello_tests+=("$t"); else static_tests+=("$t"); fi; done
table "GET / (\"Hello, World!\\n\", 14-byte body)" "${hello_tests[@]}"
table "Static files (GET of a 4 KiB and a 1 MiB file)" "${static_tests[@]}"
echo
echo "Response headers (bytes up to and including the blank line)"
echo
echo "| server | GET / | 4 KiB file | headers of GET / (file: extra) |"
echo "|---|---:|---:|---|"
for s in "${present[@]}"; do
  read -r hb hn <<<"${hdr[$s,hello]:-- -}"
  read -r fb fn <<<"${hdr[$s,4k]:-- -}"
  extra=""
  if [[ $fn != - ]]; then
    extra=$(comm -13 <(tr , '\n' <<<"$hn" | sort) <(tr , '\n' <<<"$fn" | sort) | paste -sd, -)
  fi
  echo "| ${label[$s]} | $hb | $fb | ${hn//,/, }${extra:+ (file: ${extra//,/, })} |"
done
for s in "${present[@]}"; do
  for test in hello 4k 1m; do
    if [[ -n ${skip[$s,$test]:-} ]]; then echo "- ${label[$s]}: $test skipped: ${skip[$s,$test]}"; fi
  done
done
echo
echo "data: $dat"
