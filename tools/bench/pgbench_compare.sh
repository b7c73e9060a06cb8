#!/usr/bin/env bash
# Direct PostgreSQL, PgBouncer (transaction mode) and shardgate (routing and parsing on: a modulo
# router on pgbench_accounts.aid over the one shard) side by side in one run, rounds interleaved
# so that machine noise hits every target alike, medians reported (and, for part 1, the median
# of each round's own ratios beside the ratio of the medians):
#   1. pgbench -S with --clients (16) for -M simple, extended and prepared: TPS, the ratios
#      shardgate/direct and shardgate/pgbouncer, and the machine's CPU per transaction (busy
#      jiffies of /proc/stat over the run / transactions) minus direct's: what the proxy adds;
#   2. one client (-c 1, -M simple): the latency each proxy adds per round trip;
#   3. connection churn (-C, a new connection per transaction, 4 clients, 1 thread): connections/s;
#   4. --idle (10000) idle client connections held open (tools/bench/idle_client): the proxy's
#      RSS growth per connection.
# Both proxies get the same --pool-size of server connections (20: default_pool_size for
# PgBouncer; for shardgate, whose pool_size is per worker, each of the --workers gets its share,
# rounded up). With 16 clients a pool of 20 pools nothing (every client holds its own server
# connection); a pool smaller than the clients (e.g. 4 on two cores) is how a transaction pooler
# runs in production, with fewer PostgreSQL backends to switch between.
# Parts 1 and 2 also run a second shardgate, "sg-prep", the same but with `prepare_reads: false`
# (shardgate runs simple-protocol point reads as statements prepared on the server by default;
# "sg-prep" sends them as written, as shardgate did by default before 2026-12-06).
# --pipeline-reads N gives both shardgates `pipeline_reads: N` (reads sent on a busy server
# connection behind the one running there; default 0, off, as shardgate's own default).
# With --syscalls, part 1 also reports each proxy's own CPU (user and system, /proc/PID/stat)
# and its recvfrom/sendto/epoll_wait calls per transaction (perf stat on the syscall
# tracepoints, needs perf and tracefs: run as root).
#
#   tools/bench/pgbench_compare.sh [--duration 10] [--rounds 3] [--clients 16] [--threads 2]
#                                  [--scale 10] [--workers 2] [--idle 10000] [--pool-size 20]
#                                  [--modes "simple extended prepared"] [--only tps] [--syscalls]
#                                  [--pipeline-reads 0] [--shardgate build/release/proxy/shardgate]
#
# PgBouncer (1.18) in transaction mode cannot run -M prepared ("prepared statement does not
# exist"): that cell is reported as FAILED, a known PgBouncer limit. A round in which pgbench
# reports any error or aborted client fails (with a small pool PgBouncer's -M prepared can get
# through a round when each of its few server connections already has pgbench's statement from
# an earlier one, and otherwise loses clients mid-run). --only tps skips parts 2-4.
# Everything started here is stopped on exit, also on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
DURATION=10 ROUNDS=3 CLIENTS=16 THREADS=2 SCALE=10 WORKERS=2 IDLE=10000 POOL=20 ONLY="" SYSCALLS=0
PIPELINE=0
MODES="simple extended prepared"
SHARDGATE=${SHARDGATE_BIN:-$ROOT/build/release/proxy/shardgate}
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --pool-size) POOL=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --syscalls) SYSCALLS=1; shift ;;
    --pipeline-reads) PIPELINE=$2; shift 2 ;;
    --shardgate) SHARDGATE=$2; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
in_range duration "$DURATION" 1 600 s
in_range rounds "$ROUNDS" 1 20
in_range clients "$CLIENTS" 1 200
in_range workers "$WORKERS" 1 64
in_range idle "$IDLE" 0 50000
in_range pool-size "$POOL" 1 100
in_range pipeline-reads "$PIPELINE" 0 64
[[ -z $ONLY || $ONLY == tps ]] || { echo "--only takes tps" >&2; exit 2; }
[[ $ONLY == tps ]] && IDLE=0
if ((SYSCALLS)); then
  ((DURATION >= 3)) || { echo "--syscalls needs --duration >= 3" >&2; exit 2; }
  perf stat -e syscalls:sys_enter_sendto -- true >/dev/null 2>&1 ||
    { echo "--syscalls: perf cannot count syscall tracepoints here (perf installed? root?)" >&2; exit 1; }
fi
need_tool pgbouncer
IDLE_CLIENT=$(dirname "$SHARDGATE")/../tools/bench/idle_client
if ((IDLE > 0)); then
  [[ -x $IDLE_CLIENT ]] ||
    { echo "no $IDLE_CLIENT (build the release preset); --idle 0 skips part 4" >&2; exit 1; }
  # Every idle connection is a descriptor in the client and one in the proxy (each process has
  # its own limit).
  ulimit -n $((IDLE + 1024)) 2>/dev/null ||
    { echo "cannot raise the descriptor limit to $((IDLE + 1024)) (hard limit $(ulimit -Hn)); pass a smaller --idle" >&2; exit 1; }
fi


WORK=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench.XXXXXX")
chmod 755 "$WORK"
SG_PID="" PREP_PID="" IDLE_PID=""
cleanup() {
  set +e
  if [[ -n $IDLE_PID ]]; then kill -TERM "$IDLE_PID" 2>/dev/null; wait "$IDLE_PID" 2>/dev/null; fi
  if [[ -n $SG_PID ]]; then kill -TERM "$SG_PID" 2>/dev/null; wait "$SG_PID" 2>/dev/null; fi
  if [[ -n $PREP_PID ]]; then kill -TERM "$PREP_PID" 2>/dev/null; wait "$PREP_PID" 2>/dev/null; fi
  if [[ -f $WORK/pgbouncer/pgbouncer.pid ]]; then
    kill -TERM "$(cat "$WORK/pgbouncer/pgbouncer.pid")" 2>/dev/null
    sleep 0.2
  fi
  bash "$ROOT/tools/pg_cluster.sh" stop --dir "$WORK/cluster" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SG_PORT=$(free_port)
PREP_PORT=$(free_port)
BOUNCER_PORT=$(free_port)
echo "== starting PostgreSQL" >&2
start_routed_cluster "$SG_PORT" "$WORKERS" "$POOL"
set_pipeline_reads "$WORK/cluster/shardgate.yaml" "$PIPELINE"
PG_PORT=${PG_PORT_s0:?}
# Room for the idle connections (limits.max_client_conn refuses clients beyond it).
printf 'limits: {max_client_conn: %d}\n' $((IDLE + 1000)) >>"$WORK/cluster/shardgate.yaml"

echo "== starting PgBouncer on $BOUNCER_PORT" >&2
mkdir -p "$WORK/pgbouncer"
cat >"$WORK/pgbouncer/pgbouncer.ini" <<INI
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/pgbouncer/userlist.txt
pool_mode = transaction
max_client_conn = $((IDLE + 1000))
default_pool_size = $POOL
ignore_startup_parameters = extra_float_digits
logfile = $WORK/pgbouncer/pgbouncer.log
pidfile = $WORK/pgbouncer/pgbouncer.pid
INI
echo '"app" "app_pw"' >"$WORK/pgbouncer/userlist.txt"
chmod 600 "$WORK/pgbouncer/userlist.txt"
[[ $(id -u) -eq 0 ]] && chown -R postgres: "$WORK/pgbouncer"  # pgbouncer refuses to run as root
# setpriv, not runuser: runuser's PAM session would reset the raised descriptor limit.
if [[ $(id -u) -eq 0 ]]; then bouncer_as=(setpriv --reuid postgres --regid postgres --init-groups); else bouncer_as=(); fi
"${bouncer_as[@]}" pgbouncer -d "$WORK/pgbouncer/pgbouncer.ini" >/dev/null 2>&1 ||
  { cat "$WORK/pgbouncer/pgbouncer.log" >&2; exit 1; }
wait_port "$BOUNCER_PORT" || { echo "pgbouncer did not start" >&2; cat "$WORK/pgbouncer/pgbouncer.log" >&2; exit 1; }
BOUNCER_PID=$(cat "$WORK/pgbouncer/pgbouncer.pid")

TARGETS="direct pgbouncer"
if [[ -x $SHARDGATE ]]; then
  echo "== starting shardgate on $SG_PORT ($SHARDGATE, $WORKERS workers)" >&2
  "$SHARDGATE" --config "$WORK/cluster/shardgate.yaml" >"$WORK/shardgate.log" 2>&1 &
  SG_PID=$!
  # The same proxy with prepare_reads off, on its own port (no admin HTTP port to share).
  sed -e "s/^listen: .*/listen: {host: 127.0.0.1, port: $PREP_PORT}/" \
      -e "s/^    default_shard: s0$/    default_shard: s0\n    prepare_reads: false/" \
      -e '/^  http: /d' "$WORK/cluster/shardgate.yaml" >"$WORK/shardgate-prep.yaml"
  grep -q 'prepare_reads: false' "$WORK/shardgate-prep.yaml" || { echo "could not write shardgate-prep.yaml" >&2; exit 1; }
  "$SHARDGATE" --config "$WORK/shardgate-prep.yaml" >"$WORK/shardgate-prep.log" 2>&1 &
  PREP_PID=$!
  if wait_port "$SG_PORT" "$SG_PID" && wait_port "$PREP_PORT" "$PREP_PID"; then
    TARGETS="direct pgbouncer shardgate sg-prep"
  else
    echo "shardgate did not start; benchmarking without it:" >&2
    tail -n 20 "$WORK/shardgate.log" "$WORK/shardgate-prep.log" >&2
  fi
else
  echo "no shardgate binary at $SHARDGATE; benchmarking without it" >&2
fi

port_of() { case $1 in direct) echo "$PG_PORT" ;; pgbouncer) echo "$BOUNCER_PORT" ;; shardgate) echo "$SG_PORT" ;; sg-prep) echo "$PREP_PORT" ;; esac; }
pid_of() { case $1 in pgbouncer) echo "$BOUNCER_PID" ;; shardgate) echo "$SG_PID" ;; sg-prep) echo "$PREP_PID" ;; esac; }

echo "== pgbench -i -s $SCALE" >&2
PGPASSWORD=app_pw pgbench -h 127.0.0.1 -p "$PG_PORT" -U app -i -s "$SCALE" -q app >/dev/null 2>&1

# The machine's busy CPU time in jiffies (everything but idle and iowait), from /proc/stat.
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

RESULTS="$WORK/results"  # lines: part mode target round value [cpu_us_per_txn]
: >"$RESULTS"
# run_pgbench PART MODE TARGET ROUND PGBENCH-ARGS...: one pgbench run, its figure appended to
# $RESULTS (TPS, or the average latency in us for part "latency").
run_pgbench() {
  local part=$1 mode=$2 target=$3 round=$4 out="$WORK/pgbench-$1-$2-$3-$4.out" value cpu="-" b0 b1 txns
  shift 4
  local perf_pid="" pid="" t0="" t1=""
  if ((SYSCALLS)) && [[ $part == tps && $target != direct ]]; then
    pid=$(pid_of "$target")
    t0=$(proc_ticks "$pid")
    # From the second second to the one before last: pgbench's connecting and ending stay out.
    (sleep 1; exec perf stat -x, -e syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait \
       -p "$pid" -o "$WORK/perf-$mode-$target-$round.csv" -- sleep $((DURATION - 2))) >/dev/null 2>&1 &
    perf_pid=$!
  fi
  b0=$(busy_jiffies)
  if PGPASSWORD=app_pw timeout $((DURATION + 60)) pgbench -h 127.0.0.1 -p "$(port_of "$target")" \
      -U app -n -S -T "$DURATION" -M "$mode" "$@" app >"$out" 2>&1 &&
     ! grep -q -e '^number of failed transactions: [1-9]' -e 'aborted' -e 'error:' "$out"; then
    b1=$(busy_jiffies)
    if [[ $part == latency ]]; then
      value=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | awk '{ printf "%.1f", $1 * 1000 }')
    else
      value=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)
    fi
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    if [[ -n $txns && $txns -gt 0 ]]; then
      cpu=$(awk -v j=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" -v n="$txns" 'BEGIN { printf "%.1f", j / hz * 1e6 / n }')
    fi
  fi
  if [[ -n $perf_pid ]]; then
    t1=$(proc_ticks "$pid")
    wait "$perf_pid" 2>/dev/null || true
    if [[ -n ${value:-} && -n $txns ]]; then
      # Calls over DURATION-2 seconds at the run's rate; CPU over the whole run.
      awk -F, -v tps="$value" -v secs=$((DURATION - 2)) -v n="$txns" -v hz="$(getconf CLK_TCK)" \
        -v t0="$t0" -v t1="$t1" -v key="$mode $target $round" '
        /sys_enter_recvfrom/ { r = $1 } /sys_enter_sendto/ { s = $1 } /sys_enter_epoll_wait/ { e = $1 }
        END {
          split(t0, a, " "); split(t1, b, " "); d = tps * secs
          printf "%s %.2f %.2f %.2f %.1f %.1f\n", key, r / d, s / d, e / d,
                 (b[1] - a[1]) / hz * 1e6 / n, (b[2] - a[2]) / hz * 1e6 / n
        }' "$WORK/perf-$mode-$target-$round.csv" >>"$WORK/syscalls"
    fi
  fi
  if [[ -z ${value:-} && ! ($target == pgbouncer && $mode == prepared) ]]; then
    echo "  $part -M $mode $target round $round failed:" >&2
    grep -iE 'error|abort|fatal|failed' "$out" | head -n 5 >&2
  fi
  echo "$part $mode $target $round ${value:-FAILED} $cpu" >>"$RESULTS"
  printf '  %-8s %-9s %-10s round %d: %s (cpu/txn %s us)\n' "$part" "$mode" "$target" "$round" "${value:-FAILED}" "$cpu" >&2
}

# Rounds interleaved, the order rotated each round so that no target always runs first or last.
interleaved() {  # interleaved PART MODE PGBENCH-ARGS...
  local part=$1 mode=$2 round k n target targets=$TARGETS
  shift 2
  # prepare_reads changes nothing for connections: churn runs without sg-prep.
  [[ $part == churn ]] && targets=${TARGETS/ sg-prep/}
  for ((round = 1; round <= ROUNDS; round++)); do
    read -r -a order <<<"$targets"
    n=${#order[@]}
    for ((k = 0; k < n; k++)); do
      target=${order[$(((k + round) % n))]}
      run_pgbench "$part" "$mode" "$target" "$round" "$@"
    done
  done
}

for mode in $MODES; do
  interleaved tps "$mode" -c "$CLIENTS" -j "$THREADS"
done
if [[ $ONLY != tps ]]; then
  interleaved latency simple -c 1 -j 1
  # One pgbench thread: with two, their concurrent SCRAM key derivations (libpq over OpenSSL 3)
  # contend with each other and the client, not the proxy, sets the rate.
  interleaved churn simple -C -c 4 -j 1
fi

# Part 4: RSS growth of each proxy holding $IDLE idle client connections.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
if ((IDLE > 0)); then
  for target in $TARGETS; do
    [[ $target == direct || $target == sg-prep ]] && continue
    pid=$(pid_of "$target")
    before=$(rss_kib "$pid")
    mkfifo "$WORK/idle-$target.in"
    "$IDLE_CLIENT" --conninfo "host=127.0.0.1 port=$(port_of "$target") user=app password=app_pw dbname=app" \
      --count "$IDLE" <"$WORK/idle-$target.in" >"$WORK/idle-$target.out" 2>"$WORK/idle-$target.err" &
    IDLE_PID=$!
    exec 9>"$WORK/idle-$target.in"
    for ((i = 0; i < 1200; i++)); do  # up to 10 minutes to connect them all
      grep -q '^ready' "$WORK/idle-$target.out" 2>/dev/null && break
      kill -0 "$IDLE_PID" 2>/dev/null || break
      sleep 0.5
    done
    sleep 1
    after=$(rss_kib "$pid")
    read -r _ held failed <"$WORK/idle-$target.out" || held=0 failed=$IDLE
    exec 9>&-
    wait "$IDLE_PID" 2>/dev/null || true
    IDLE_PID=""
    if ((${held:-0} > 0)); then
      kib=$(awk -v a="$after" -v b="$before" -v n="$held" 'BEGIN { printf "%.1f", (a - b) / n }')
    else
      kib=FAILED
    fi
    echo "idle - $target 1 $kib ${held:-0}/${failed:-?}" >>"$RESULTS"
    printf '  idle     %-10s %s connections held (%s failed): RSS %s -> %s KiB, %s KiB each\n' \
      "$target" "${held:-0}" "${failed:-?}" "$before" "$after" "$kib" >&2
    if [[ -s $WORK/idle-$target.err ]]; then head -n 3 "$WORK/idle-$target.err" >&2; fi
  done
fi

echo
machine_line
echo "pgbench -S -T $DURATION, scale $SCALE, $ROUNDS round(s) interleaved, medians; shardgate: $WORKERS workers, routing on, pipeline_reads $PIPELINE; $POOL server connections per proxy"
awk -v targets="$TARGETS" -v modes="$MODES" -v clients="$CLIENTS" -v rounds="$ROUNDS" "$PAIRED_AWK"'
  function median(list,   a, b, n, i, j, t, ok) {
    n = split(list, a, " "); ok = 0
    for (i = 1; i <= n; i++) if (a[i] != "FAILED" && a[i] != "-") b[++ok] = a[i] + 0
    if (n == 0) return "n/a"
    if (ok < n) return "FAILED"
    for (i = 1; i <= ok; i++) for (j = i + 1; j <= ok; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
    return ok % 2 ? b[(ok + 1) / 2] : (b[ok / 2] + b[ok / 2 + 1]) / 2
  }
  function med(a, key, target) { return median(a[key " " target]) }  # a: v (figures) or c (CPU)
  function num(x) { return x ~ /^[0-9.]+$/ }
  function ratio(x, y) { return (num(x) && num(y) && y > 0) ? sprintf("%.2f", x / y) : "-" }
  function f0(x) { return num(x) ? sprintf("%.0f", x) : x }
  function added(x, d) { return (num(x) && num(d)) ? sprintf("%+.1f", x - d) : "-" }
  { key = $1 " " $2 " " $3; v[key] = v[key] " " $5; c[key] = c[key] " " $6; extra[key] = $6
    if ($1 == "tps") w[key, $4] = $5 }
  END {
    printf "\n%d clients, TPS      %10s %10s %10s %10s %10s %10s %10s %10s   proxy CPU us/txn added\n", clients,
           "direct", "pgbouncer", "shardgate", "sg/direct", "sg/pgb", "sg-prep", "-prep/dir", "-prep/pgb"
    nm = split(modes, m, " ")
    for (i = 1; i <= nm; i++) {
      d = med(v, "tps " m[i], "direct"); p = med(v, "tps " m[i], "pgbouncer"); s = med(v, "tps " m[i], "shardgate")
      r = med(v, "tps " m[i], "sg-prep")
      dc = med(c, "tps " m[i], "direct"); pc = med(c, "tps " m[i], "pgbouncer"); sc = med(c, "tps " m[i], "shardgate")
      rc = med(c, "tps " m[i], "sg-prep")
      printf "  -M %-15s %10s %10s %10s %10s %10s %10s %10s %10s   pgbouncer %s, shardgate %s, sg-prep %s\n", m[i],
             f0(d), f0(p), f0(s), ratio(s, d), ratio(s, p), f0(r), ratio(r, d), ratio(r, p),
             added(pc, dc), added(sc, dc), added(rc, dc)
    }
    printf "\n%-50s %18s %18s %18s %18s\n", "ratio within each round, median (lowest-highest)", "sg/direct", "sg/pgb", "-prep/dir", "-prep/pgb"
    for (i = 1; i <= nm; i++) {
      k = "tps " m[i] " "
      printf "  -M %-45s %18s %18s %18s %18s\n", m[i], paired(w, k "shardgate", k "direct", rounds),
             paired(w, k "shardgate", k "pgbouncer", rounds), paired(w, k "sg-prep", k "direct", rounds),
             paired(w, k "sg-prep", k "pgbouncer", rounds)
    }
    if (("latency simple direct") in v) {
      d = med(v, "latency simple", "direct"); p = med(v, "latency simple", "pgbouncer"); s = med(v, "latency simple", "shardgate")
      r = med(v, "latency simple", "sg-prep")
      printf "\n1 client, latency us %10s %10s %10s %10s   added: pgbouncer %s, shardgate %s, sg-prep %s\n", d, p, s, r,
             added(p, d), added(s, d), added(r, d)
      d = med(v, "churn simple", "direct"); p = med(v, "churn simple", "pgbouncer"); s = med(v, "churn simple", "shardgate")
      printf "-C churn, conn/s     %10s %10s %10s   sg/pgbouncer %s\n", f0(d), f0(p), f0(s), ratio(s, p)
    }
    if (("idle - pgbouncer") in v) {
      printf "idle connections, proxy RSS KiB each: pgbouncer %s (%s held/failed), shardgate %s (%s)\n",
             med(v, "idle -", "pgbouncer"), extra["idle - pgbouncer"], med(v, "idle -", "shardgate"),
             extra["idle - shardgate"]
    }
  }' "$RESULTS"
if grep -q "^tps prepared pgbouncer .* FAILED" "$RESULTS"; then
  echo "(pgbouncer -M prepared FAILED: expected, PgBouncer 1.18 in transaction mode has no prepared-statement support)"
fi
if [[ -s $WORK/syscalls ]]; then
  echo
  echo "per transaction, medians (--syscalls): the proxy's own system calls and CPU"
  printf "  %-20s %9s %8s %11s %10s %10s\n" "mode target" "recvfrom" "sendto" "epoll_wait" "user us" "sys us"
  awk '
    function median(list,   a, n, i, j, t) {
      n = split(list, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { k = $1 " " $2; keys[k] = 1; for (f = 4; f <= 8; f++) v[k, f] = v[k, f] " " $f }
    END {
      for (k in keys) {
        printf "  %-20s %9.2f %8.2f %11.2f %10.1f %10.1f\n", k, median(v[k, 4]), median(v[k, 5]),
               median(v[k, 6]), median(v[k, 7]), median(v[k, 8])
      }
    }' "$WORK/syscalls" | sort
fi
