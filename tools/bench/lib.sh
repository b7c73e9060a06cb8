# Helpers shared by the pgbench scripts in tools/bench/ (sourced, not run).

# A free loopback port in 20000-29999, not handed out before by this shell.
free_port() {
  local p=$((20000 + ($$ * 31 + RANDOM) % 10000)) i
  for ((i = 0; i < 1000; i++)); do
    if ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q . && [[ " ${TAKEN:-} " != *" $p "* ]]; then
      TAKEN="${TAKEN:-} $p"; echo "$p"; return
    fi
    p=$((p + 1))
  done
  echo "no free port" >&2; exit 1
}

wait_port() {  # wait_port PORT PID: up to 15 s, fails early if PID died
  local i
  for ((i = 0; i < 150; i++)); do
    (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    [[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null && return 1
    sleep 0.1
  done
  return 1
}

# shardgate processes started by start_shardgate, stopped by stop_shardgates (from a trap).
SG_PIDS=()
start_shardgate() {  # start_shardgate NAME CONFIG PORT: log in $WORK/NAME.log; exits on failure
  "$SHARDGATE" --config "$2" >"$WORK/$1.log" 2>&1 &
  local pid=$!
  SG_PIDS+=("$pid")
  wait_port "$3" "$pid" || { echo "shardgate ($1) did not start:" >&2; tail -n 20 "$WORK/$1.log" >&2; exit 1; }
}
stop_shardgates() {
  local pid
  for pid in "${SG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  SG_PIDS=()
}
