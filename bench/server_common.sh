# Sourced by the bench scripts that start servers (run_echo_bench.sh,
# run_chat_bench.sh) after bench_common.sh. The sourcing script defines
# server_cmd NAME PORT (sets the array `cmd`, fails for an unknown or
# unbuilt server) and $tmp, a scratch directory.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
exited() { [[ ! -e /proc/$1 || $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Starts server $1 on a fresh free port; sets server_pid and port.
next_port=$((20000 + RANDOM % 8000))
start_server() {
  for attempt in 1 2 3; do
    while port_open $next_port; do next_port=$((next_port + 1)); done
    port=$next_port next_port=$((next_port + 1))
    server_cmd "$1" "$port"
    "${cmd[@]}" >"$tmp/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
      port_open "$port" && return 0
      exited "$server_pid" && break
      sleep 0.1
    done
    stop_server
  done
  echo "error: $1 did not start:" >&2
  tail -20 "$tmp/server.log" >&2
  exit 1
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 50); do exited "$server_pid" && break; sleep 0.1; done
  exited "$server_pid" || kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
median() {
  tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g |
    awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2];
                            else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
