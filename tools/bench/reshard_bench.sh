#!/usr/bin/env bash
# Online resharding cost: `shardctl reshard start` moving a third of `users` from a 2-shard hash
# ring (s0, s1) to a 3-shard one (s0, s1, s2), beside a plain psql COPY pipe between the same
# servers (s0 -> s2, as many rows as shardctl moved from s0, into a scratch table of the same
# definition); then `shardctl reshard cutover` while pgbench writes to the moving tables through
# shardgate: the write pause it reports, pgbench's tps, failed transactions and worst latency.
# Each round is a fresh cluster; medians over the rounds are printed as a Markdown table.
#
#   tools/bench/reshard_bench.sh [--rows 1000000] [--rounds 3] [--clients 8] [--load-seconds 20]
#                                [--timeout 1800] [--build-dir build/release] [--shardgate BIN]
#                                [--shardctl BIN] [--keep]
#
# users is (id bigint primary key, name text, pad text of 100 bytes), loaded through shardgate
# with COPY so that every row sits where the old ring puts it; orders gets 1000 rows. The copy
# window runs from shardctl's "started" (or last "created_table") event to its last "copied"
# event; MB are the moved rows' COPY text. pgbench (-n -M simple, tools/bench/reshard_load.sql)
# runs --load-seconds; the cutover starts a quarter of the way in. --timeout bounds each step
# (seconds). --keep leaves the work dir behind; servers, shardgate and pgbench are stopped on exit
# whatever happens. Exits 1 if a step fails, rows are lost, or a pgbench transaction failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
ROWS=1000000 ROUNDS=3 CLIENTS=8 LOAD_SECONDS=20 TIMEOUT=1800 KEEP=0
BUILD_DIR=${SHARDGATE_BUILD_DIR:-$ROOT/build/release}
SHARDGATE=${SHARDGATE_BIN:-} SHARDCTL=${SHARDCTL_BIN:-}
while (($#)); do
  case $1 in
    --rows) ROWS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --load-seconds) LOAD_SECONDS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --shardgate) SHARDGATE=$2; shift 2 ;;
    --shardctl) SHARDCTL=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
SHARDGATE=${SHARDGATE:-$BUILD_DIR/proxy/shardgate}
SHARDCTL=${SHARDCTL:-$BUILD_DIR/tools/shardctl/shardctl}
if ! [[ $ROWS =~ ^[0-9]+$ ]] || ((ROWS < 10000 || ROWS > 100000000)); then
  echo "--rows must be 10000..100000000" >&2; exit 2
fi
in_range rounds "$ROUNDS" 1 20
in_range clients "$CLIENTS" 1 100
in_range load-seconds "$LOAD_SECONDS" 8 600
in_range timeout "$TIMEOUT" 30 86400 s
need_binary "shardgate binary" "$SHARDGATE" "build it or pass --build-dir/--shardgate"
need_binary "shardctl binary" "$SHARDCTL" "build it or pass --build-dir/--shardctl"
need_tool psql pgbench jq
LOAD_SQL="$ROOT/tools/bench/reshard_load.sql"
[[ -f $LOAD_SQL ]] || { echo "missing $LOAD_SQL" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench-reshard.XXXXXX")
chmod 755 "$WORK"  # pg_cluster.sh runs the servers as `postgres` when we are root
CLUSTER="" SG_PID="" PGB_PID=""
stop_round() {  # stops what the current round started (idempotent)
  if [[ -n $PGB_PID ]]; then kill -TERM "$PGB_PID" 2>/dev/null; wait "$PGB_PID" 2>/dev/null; PGB_PID=""; fi
  if [[ -n $SG_PID ]]; then kill -TERM "$SG_PID" 2>/dev/null; wait "$SG_PID" 2>/dev/null; SG_PID=""; fi
  if [[ -n $CLUSTER ]]; then
    if ((KEEP)); then mkdir -p "$CLUSTER/../pg-logs" && cp "$CLUSTER"/pg/*.log "$CLUSTER/../pg-logs/" 2>/dev/null; fi
    bash "$ROOT/tools/pg_cluster.sh" stop --dir "$CLUSTER" >/dev/null 2>&1
    CLUSTER=""
  fi
  return 0
}
cleanup() {
  set +e
  stop_round
  if ((KEEP)); then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


die() { echo "reshard_bench: $*" >&2; exit 1; }
pg() {  # pg PORT ARGS...: as app, straight to one server (or to shardgate)
  PGPASSWORD=app_pw timeout "$TIMEOUT" psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" \
    -U app -d app "${@:2}"
}
stamp() {  # prefixes each line with the time it arrived (shardctl flushes every JSON event)
  local line
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}
events() {  # events FILE: the stamped JSON lines as objects with a "t" field, one array
  jq -s -R '[split("\n")[] | select(length > 0) | capture("^(?<t>[0-9.]+) (?<j>.*)$")
             | (.j | fromjson) + {t: (.t | tonumber)}]' "$1"
}
secs_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# write_map FILE SHARD...: the cluster's generated config, restricted to these shards, with
# users and orders on one hash ring over them.
write_map() {
  local file=$1 s; shift
  {
    sed '/^    shards:$/q' "$CLUSTER/shardgate.yaml"
    for s in "$@"; do
      echo "      - name: $s"
      echo "        primary: {host: 127.0.0.1, port: ${PORT[$s]}, dbname: app}"
    done
    echo "    routers:"
    echo "      ring: {type: hash_ring, shards: [$(printf '%s, ' "$@" | sed 's/, $//')], vnodes: 64}"
    echo "    tables:"
    echo "      users: {key: id, router: ring}"
    echo "      orders: {key: user_id, router: ring}"
  } >"$file"
}

RESULTS="$WORK/results"
: >"$RESULTS"
FAILED=0
declare -A PORT

# run_round N: one fresh cluster, load, reshard start, plain COPY, cutover under pgbench.
# Appends one line to $RESULTS.
run_round() {
  local round=$1 rd="$WORK/round$1"
  mkdir -p "$rd"
  chmod 755 "$rd"
  CLUSTER="$rd/cluster"
  local sg_port
  sg_port=$(free_port)
  echo "== round $round: starting PostgreSQL (3 shards) and shardgate on $sg_port" >&2
  timeout 300 bash "$ROOT/tools/pg_cluster.sh" start --dir "$CLUSTER" --shards 3 --replicas 0 \
    --listen-port "$sg_port" >/dev/null || die "the cluster did not start"
  local name role port
  while read -r name role _ port; do
    [[ $role == primary ]] && PORT[$name]=$port
  done <"$CLUSTER/ports"
  write_map "$rd/old.yaml" s0 s1
  write_map "$rd/new.yaml" s0 s1 s2
  cp "$rd/old.yaml" "$rd/live.yaml"
  "$SHARDGATE" --config "$rd/live.yaml" >"$rd/shardgate.log" 2>&1 &
  SG_PID=$!
  wait_port "$sg_port" "$SG_PID" || { tail -n 20 "$rd/shardgate.log" >&2; die "shardgate did not start"; }

  # Tables through shardgate (created on s0 and s1; shardctl creates them on s2), rows with COPY
  # through shardgate so that the old ring places them. s2 generates them (it is empty).
  echo "== round $round: loading $ROWS users through shardgate" >&2
  pg "$sg_port" -c "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, pad text NOT NULL)" \
    -c "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL, amount int NOT NULL)" ||
    die "creating the tables through shardgate failed"
  local t0
  t0=$EPOCHREALTIME
  pg "${PORT[s2]}" -c "\\copy (SELECT g, 'u' || g, rpad(md5(g::text), 100, md5(g::text)) FROM generate_series(1, $ROWS) AS g) TO pstdout" |
    pg "$sg_port" -c "\\copy users (id, name, pad) FROM pstdin" || die "loading users failed"
  pg "${PORT[s2]}" -c "\\copy (SELECT g, 1 + (g * 7919) % $ROWS, 1 FROM generate_series(1, 1000) AS g) TO pstdout" |
    pg "$sg_port" -c "\\copy orders (id, user_id, amount) FROM pstdin" || die "loading orders failed"
  echo "   loaded in $(secs_since "$t0") s" >&2
  local s n loaded=0
  for s in s0 s1; do
    # Hint bits and statistics now, so that neither copy below pays for them.
    pg "${PORT[$s]}" -c "VACUUM ANALYZE users" -c "VACUUM ANALYZE orders"
    n=$(pg "${PORT[$s]}" -c "SELECT count(*) FROM users")
    loaded=$((loaded + n))
  done
  ((loaded == ROWS)) || die "s0 + s1 hold $loaded users, expected $ROWS"

  # 1. The copy phase.
  echo "== round $round: shardctl reshard start" >&2
  t0=$EPOCHREALTIME
  (cd "$rd" && timeout "$TIMEOUT" "$SHARDCTL" --json --config live.yaml reshard start --to new.yaml) \
    2>"$rd/start.err" | stamp >"$rd/start.jsonl" ||
    { cat "$rd/start.jsonl" "$rd/start.err" >&2; die "reshard start failed"; }
  local start_s
  start_s=$(secs_since "$t0")
  local ev moved from_s0 copy_s
  ev=$(events "$rd/start.jsonl")
  jq -e 'any(.[]; .event == "ready")' <<<"$ev" >/dev/null ||
    { cat "$rd/start.jsonl" >&2; die "reshard start did not report ready"; }
  moved=$(jq '[.[] | select(.event == "copied") | .rows] | add // 0' <<<"$ev")
  from_s0=$(jq '[.[] | select(.event == "copied" and .table == "users" and .from == "s0") | .rows] | add // 0' <<<"$ev")
  copy_s=$(jq '([.[] | select(.event == "copied") | .t] | max)
               - ([.[] | select(.event == "started" or .event == "created_table") | .t] | max)
               | . * 1000 | round / 1000' <<<"$ev")
  local on_s2 bytes
  on_s2=$(pg "${PORT[s2]}" -c "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM orders)")
  ((on_s2 == moved)) || die "s2 holds $on_s2 rows after the copy, shardctl reported $moved"
  ((from_s0 > 0)) || die "shardctl moved no users from s0"
  bytes=$(pg "${PORT[s2]}" -c "SELECT
      (SELECT coalesce(sum(octet_length(id::text) + octet_length(name) + octet_length(pad) + 3), 0) FROM users)
    + (SELECT coalesce(sum(octet_length(id::text) + octet_length(user_id::text) + octet_length(amount::text) + 3), 0) FROM orders)")
  echo "   $moved rows ($from_s0 users from s0) copied in $copy_s s; start took $start_s s" >&2

  # The baseline: a plain COPY pipe s0 -> s2 of as many users as shardctl moved from s0.
  echo "== round $round: plain COPY s0 -> s2, $from_s0 rows" >&2
  pg "${PORT[s2]}" -c "CREATE TABLE users_plain (id bigint PRIMARY KEY, name text NOT NULL, pad text NOT NULL)"
  t0=$EPOCHREALTIME
  pg "${PORT[s0]}" -c "\\copy (SELECT id, name, pad FROM users LIMIT $from_s0) TO pstdout" |
    pg "${PORT[s2]}" -c "\\copy users_plain (id, name, pad) FROM pstdin" || die "the plain COPY failed"
  local plain_s
  plain_s=$(secs_since "$t0")
  n=$(pg "${PORT[s2]}" -c "SELECT count(*) FROM users_plain")
  ((n == from_s0)) || die "the plain COPY wrote $n rows, expected $from_s0"
  pg "${PORT[s2]}" -c "DROP TABLE users_plain"
  echo "   $from_s0 rows in $plain_s s" >&2

  # 2. The cutover while pgbench writes to both moving tables through shardgate.
  local warmup=$((LOAD_SECONDS / 4))
  echo "== round $round: pgbench ${LOAD_SECONDS}s, $CLIENTS clients; cutover after ${warmup}s" >&2
  PGPASSWORD=app_pw timeout $((LOAD_SECONDS + 120)) pgbench -n -M simple -c "$CLIENTS" -j 2 \
    -T "$LOAD_SECONDS" -P 1 -l --log-prefix="$rd/pgbench-log" -D rows="$ROWS" -f "$LOAD_SQL" \
    -h 127.0.0.1 -p "$sg_port" -U app app >"$rd/pgbench.out" 2>"$rd/pgbench.err" &
  PGB_PID=$!
  local pgb_t0=$EPOCHREALTIME
  sleep "$warmup"
  kill -0 "$PGB_PID" 2>/dev/null || { cat "$rd/pgbench.err" >&2; die "pgbench stopped before the cutover"; }
  (cd "$rd" && timeout "$TIMEOUT" "$SHARDCTL" --json --config live.yaml reshard cutover) \
    2>"$rd/cutover.err" | stamp >"$rd/cutover.jsonl" ||
    { cat "$rd/cutover.jsonl" "$rd/cutover.err" >&2; die "reshard cutover failed"; }
  ev=$(events "$rd/cutover.jsonl")
  local pause_ms cut_t
  pause_ms=$(jq '[.[] | select(.event == "cutover") | .pause_ms][0] // empty' <<<"$ev")
  cut_t=$(jq '[.[] | select(.event == "cutover") | .t][0] // empty' <<<"$ev")
  [[ -n $pause_ms ]] || { cat "$rd/cutover.jsonl" >&2; die "no cutover event"; }
  jq -e 'any(.[]; .event == "done")' <<<"$ev" >/dev/null ||
    { cat "$rd/cutover.jsonl" >&2; die "the cutover's cleanup did not finish"; }
  # The pause must fall inside the load, or it measured nothing.
  awk -v c="$cut_t" -v s="$pgb_t0" -v d="$LOAD_SECONDS" 'BEGIN { exit !(c < s + d) }' ||
    die "the cutover ended after pgbench's ${LOAD_SECONDS}s (raise --load-seconds)"
  local pgb_rc=0
  wait "$PGB_PID" || pgb_rc=$?
  PGB_PID=""
  local tps failed aborted min_tps max_lat
  tps=$(awk '/^tps = / {printf "%.0f", $3}' "$rd/pgbench.out")
  failed=$(awk '/^number of failed transactions:/ {print $5}' "$rd/pgbench.out")
  aborted=$(grep -c 'aborted in command' "$rd/pgbench.err" || true)
  min_tps=$(awk '/^progress:/ { v = $4 + 0; if (n++ == 0 || v < m) m = v } END { printf "%.0f", m }' "$rd/pgbench.err")
  max_lat=$(cat "$rd"/pgbench-log.* 2>/dev/null | awk '$3 + 0 > m { m = $3 + 0 } END { printf "%.1f", m / 1000 }')
  [[ -n $tps && -n $failed ]] || { cat "$rd/pgbench.out" "$rd/pgbench.err" >&2; die "pgbench printed no summary (exit $pgb_rc)"; }
  if ((pgb_rc != 0 || failed > 0 || aborted > 0)); then
    echo "   pgbench: exit $pgb_rc, $failed failed transactions, $aborted clients aborted:" >&2
    grep -m 5 -i 'error' "$rd/pgbench.err" >&2 || true
    FAILED=1
  fi
  echo "   pause $pause_ms ms; pgbench $tps tps (lowest 1-s $min_tps), $failed failed, $aborted aborted, max latency $max_lat ms" >&2

  # Nothing lost: after cleanup the three shards hold every user exactly once.
  local total=0
  for s in s0 s1 s2; do
    n=$(pg "${PORT[$s]}" -c "SELECT count(*) FROM users")
    total=$((total + n))
  done
  ((total == ROWS)) || die "after the cutover the shards hold $total users, expected $ROWS"

  echo "$round $moved $from_s0 $copy_s $start_s $bytes $plain_s $pause_ms $tps $min_tps $failed $aborted $max_lat" >>"$RESULTS"
  stop_round
  ((KEEP)) || rm -rf "$rd"
}

for ((round = 1; round <= ROUNDS; round++)); do run_round "$round"; done

col() { awk -v c="$1" '{print $c}' "$RESULTS"; }
median() { sort -g | awk '{ a[++n] = $1 } END { print (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) }'; }
maxof() { sort -g | tail -n 1; }
sumof() { awk '{ s += $1 } END { print s + 0 }'; }
# Per round: copy rows/s, MB/s and plain COPY rows/s.
awk '{ printf "%s %.0f %.1f %.0f\n", $1, $2 / $4, $6 / $4 / 1e6, $3 / $7 }' "$RESULTS" >"$WORK/rates"
rcol() { awk -v c="$1" '{print $c}' "$WORK/rates"; }
MOVED=$(col 2 | median) COPY_RPS=$(rcol 2 | median) COPY_MBPS=$(rcol 3 | median)
PLAIN_RPS=$(rcol 4 | median)
RATIO=$(awk -v a="$COPY_RPS" -v b="$PLAIN_RPS" 'BEGIN { printf "%.2f", a / b }')
PAUSE_MED=$(col 8 | median) PAUSE_MAX=$(col 8 | maxof)
TPS=$(col 9 | median) MIN_TPS=$(col 10 | sort -g | head -n 1)
FAILS=$(col 11 | sumof) ABORTS=$(col 12 | sumof) MAX_LAT=$(col 13 | maxof)
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

echo
echo "Per round (copy window = shardctl's started/created_table event to its last copied event):"
echo
echo "| round | rows moved | copy s | reshard start s | copy rows/s | copy MB/s | plain COPY s | plain rows/s | pause ms | pgbench tps | lowest 1-s tps | failed | aborted clients | max latency ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
paste -d' ' "$RESULTS" "$WORK/rates" | awk '{
  printf "| %s | %s | %.2f | %.2f | %s | %s | %.2f | %s | %s | %s | %s | %s | %s | %s |\n",
    $1, $2, $4, $5, $15, $16, $7, $17, $8, $9, $10, $11, $12, $13 }'
echo
echo "Summary: $ROWS users loaded, median of $ROUNDS round(s) (pause: median and max; failures: sum)"
echo
echo "| machine | rows moved | copy rows/s | copy MB/s | plain COPY rows/s | shardctl/plain | cutover pause median ms | cutover pause max ms | pgbench tps during cutover | lowest 1-s tps | failed transactions | max latency ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "| $(nproc) CPUs, $CPU | $MOVED | $COPY_RPS | $COPY_MBPS | $PLAIN_RPS | $RATIO | $PAUSE_MED | $PAUSE_MAX | $TPS | $MIN_TPS | $FAILS (+$ABORTS clients aborted) | $MAX_LAT |"
echo
echo "PostgreSQL $(psql --version | awk '{print $3}'), 3 servers, shardgate, shardctl and pgbench ($CLIENTS clients, -M simple, ${LOAD_SECONDS}s, tools/bench/reshard_load.sql) on one host. Plain COPY = psql \\copy (SELECT ... LIMIT n) TO pstdout | psql \\copy FROM pstdin, s0 -> s2."
if ((FAILED)); then
  echo "FAILED: pgbench transactions failed or clients aborted during the cutover (details above)" >&2
  exit 1
fi
