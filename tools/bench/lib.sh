# Helpers shared by the pgbench scripts in tools/bench/ (sourced, not run).

# in_range OPTION VALUE LOW HIGH [UNIT]: exits 2 ("--OPTION must be LOW..HIGH") unless VALUE
# is a whole number in that range.
in_range() {
  [[ $2 =~ ^[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)) && return 0
  echo "--$1 must be $3..$4${5:+ $5}" >&2
  exit 2
}

# need_tool NAME...: exits 1 unless each is on the PATH.
need_tool() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (tools/install_deps.sh)" >&2; exit 1; }
  done
}

# need_binary WHAT PATH [HOW]: exits 1 unless PATH is an executable ("no WHAT at PATH (HOW)").
need_binary() {
  [[ -x $2 ]] && return 0
  echo "no $1 at $2${3:+ ($3)}" >&2
  exit 1
}

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

# bench_workdir NAME: $WORK, a new directory for the run (mode 755: pg_cluster.sh runs the
# servers as `postgres` when we are root), removed on exit after the shardgates start_shardgate
# started and the cluster in $WORK/cluster are stopped, also on Ctrl-C. For scripts that start
# nothing else.
bench_workdir() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench-$1.XXXXXX")
  chmod 755 "$WORK"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  set +e
  stop_shardgates
  bash "$ROOT/tools/pg_cluster.sh" stop --dir "$WORK/cluster" >/dev/null 2>&1
  rm -rf "$WORK"
}

# set_pool_size CONFIG N [WORKERS]: a pg_cluster.sh config's database pool_size (per worker)
# and, when given, its workers; exits if the file did not take it.
set_pool_size() {
  local args=(-e "s/^    pool_size: .*/    pool_size: $2/")
  if [[ -n ${3:-} ]]; then args+=(-e "s/^workers: .*/workers: $3/"); fi
  sed -i "${args[@]}" "$1"
  grep -q "^    pool_size: $2\$" "$1" || { echo "could not set pool_size in $1" >&2; exit 1; }
}

# set_pipeline_reads CONFIG N: every database of a pg_cluster.sh config gets pipeline_reads: N
# (after its pool_size line; nothing for 0, the default); exits if the file did not take it.
set_pipeline_reads() {
  (($2 > 0)) || return 0
  sed -i "s/^    pool_size: \(.*\)/    pool_size: \1\n    pipeline_reads: $2/" "$1"
  grep -q "^    pipeline_reads: $2\$" "$1" || { echo "could not set pipeline_reads in $1" >&2; exit 1; }
}

# start_routed_cluster LISTEN_PORT WORKERS POOL: one PostgreSQL under $WORK/cluster (its env
# sourced: PG_PORT_s0) and a shardgate config for it on LISTEN_PORT with routing and parsing
# on, as issue 8's single-shard figures ask: pgbench_accounts routed by aid with a modulo router
# over the one shard, the other tables to the default shard. POOL server connections in all,
# split over the WORKERS (pool_size is per worker, rounded up).
start_routed_cluster() {
  printf '%s\n' "    default_shard: s0" "    routers:" \
    "      by_aid: {type: modulo, hash: postgres, shards: [s0]}" "    tables:" \
    "      pgbench_accounts: {key: aid, router: by_aid}" >"$WORK/routed-db.yaml"
  bash "$ROOT/tools/pg_cluster.sh" start --dir "$WORK/cluster" --shards 1 --listen-port "$1" \
    --extra-db-yaml "$WORK/routed-db.yaml" >/dev/null
  # shellcheck disable=SC1091
  . "$WORK/cluster/env"
  set_pool_size "$WORK/cluster/shardgate.yaml" $((($3 + $2 - 1) / $2)) "$2"
}

# start_sharded_cluster LISTEN_PORT REPLICAS: two PostgreSQL shards (s0, s1) with REPLICAS
# streaming replicas each under $WORK/cluster (its env sourced: PG_PORT_s0, PG_PORT_s1) and a
# shardgate config for them on LISTEN_PORT: pgbench_accounts sharded by aid with a
# PostgreSQL-hash modulo router, the other tables on s0.
start_sharded_cluster() {
  printf '%s\n' "    default_shard: s0" "    routers:" \
    "      by_aid: {type: modulo, hash: postgres, shards: [s0, s1]}" "    tables:" \
    "      pgbench_accounts: {key: aid, router: by_aid}" >"$WORK/sharded-db.yaml"
  bash "$ROOT/tools/pg_cluster.sh" start --dir "$WORK/cluster" --shards 2 --replicas "$2" \
    --listen-port "$1" --extra-db-yaml "$WORK/sharded-db.yaml" >/dev/null
  # shellcheck disable=SC1091
  . "$WORK/cluster/env"
}

# A process's user and system CPU in ticks, "USER SYS" (fields 14 and 15 of /proc/PID/stat; the
# command name in field 2 has no spaces here).
proc_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

# The machine the figures come from, one line.
machine_line() {
  echo "$(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1); $(uname -sr)"
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

# awk functions for the result tables: median() of a space-separated list of TPS figures
# ("FAILED" when a run failed, "n/a" when there are none), num() rounded, ratio() x/y to two
# places ("-" unless both are numbers). Used as: awk "$MEDIAN_AWK"'{ ... }'.
MEDIAN_AWK='
  function median(list,   a, b, n, i, j, t, ok) {
    n = split(list, a, " "); ok = 0
    for (i = 1; i <= n; i++) if (a[i] != "FAILED") b[++ok] = a[i] + 0
    if (ok < n || n == 0) return n == 0 ? "n/a" : "FAILED"
    for (i = 1; i <= ok; i++) for (j = i + 1; j <= ok; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
    return ok % 2 ? b[(ok + 1) / 2] : (b[ok / 2] + b[ok / 2 + 1]) / 2
  }
  function num(x) { return x ~ /^[0-9.]+$/ ? sprintf("%.0f", x) : x }
  function ratio(x, y) { return (x ~ /^[0-9.]+$/ && y ~ /^[0-9.]+$/ && y > 0) ? sprintf("%.2f", x / y) : "-" }
'

# paired(w, x, y, n): w[k, r] is target k's figure in round r (1..n). The ratio x/y within
# each round where both are numbers (a round's targets run back to back, under much the same
# host load), as "median (lowest-highest)", e.g. "1.17 (1.03-1.25)"; "-" if no round has both.
# Needs a median() of a space-separated list (MEDIAN_AWK's, or the script's own).
PAIRED_AWK='
  function paired(w, x, y, n,   r, list, lo, hi, q, c) {
    list = ""; c = 0
    for (r = 1; r <= n; r++) {
      if (!((x, r) in w) || !((y, r) in w)) continue
      if (w[x, r] !~ /^[0-9.]+$/ || w[y, r] !~ /^[0-9.]+$/ || w[y, r] <= 0) continue
      q = w[x, r] / w[y, r]; list = list " " q; c++
      if (c == 1 || q < lo) lo = q
      if (c == 1 || q > hi) hi = q
    }
    return c ? sprintf("%.2f (%.2f-%.2f)", median(list), lo, hi) : "-"
  }
'
