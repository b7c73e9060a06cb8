#!/usr/bin/env bash
# Cross-shard ORDER BY merge throughput: `SELECT id, v, pad FROM events ORDER BY v` through
# shardgate over 4 shards (the proxy k-way merges the shards' sorted streams), beside the same
# query run directly on one shard (the per-server reference) and a LIMIT 100 OFFSET 1000 page
# through shardgate (latency). Rounds are interleaved; the median of each is reported, with
# shardgate's resident memory before the runs and its peak (VmHWM) after them, as a Markdown
# table. The client (merge_client) fails the run if a merged result is out of order.
#
#   tools/bench/merge_bench.sh [--rows 10000000] [--rounds 3] [--shards 4] [--timeout 900]
#                              [--build-dir build/release] [--shardgate BIN] [--client BIN]
#                              [--keep]
#
# --build-dir names a build with -DSHARDGATE_BUILD_BENCH=ON: its proxy/shardgate and
# tools/bench/merge_client are used (env SHARDGATE_BUILD_DIR, SHARDGATE_BIN, MERGE_CLIENT_BIN
# also work). --timeout bounds each query (seconds). --keep leaves the work dir (logs, config,
# raw results) behind; the servers and shardgate are stopped on exit whatever happens.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
ROWS=10000000 ROUNDS=3 SHARDS=4 TIMEOUT=900 KEEP=0
BUILD_DIR=${SHARDGATE_BUILD_DIR:-$ROOT/build/release}
SHARDGATE=${SHARDGATE_BIN:-} CLIENT=${MERGE_CLIENT_BIN:-}
while (($#)); do
  case $1 in
    --rows) ROWS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --shards) SHARDS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --shardgate) SHARDGATE=$2; shift 2 ;;
    --client) CLIENT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
SHARDGATE=${SHARDGATE:-$BUILD_DIR/proxy/shardgate}
CLIENT=${CLIENT:-$BUILD_DIR/tools/bench/merge_client}
if ! [[ $ROWS =~ ^[0-9]+$ ]] || ((ROWS < 10000 || ROWS > 1000000000)); then
  echo "--rows must be 10000..1000000000" >&2; exit 2
fi
in_range rounds "$ROUNDS" 1 20
in_range shards "$SHARDS" 2 16
in_range timeout "$TIMEOUT" 10 86400 s
need_binary "shardgate binary" "$SHARDGATE" "build it or pass --build-dir/--shardgate"
need_binary merge_client "$CLIENT" "build target merge_client with -DSHARDGATE_BUILD_BENCH=ON, or pass --client"
need_tool psql

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench-merge.XXXXXX")
chmod 755 "$WORK"  # pg_cluster.sh runs the servers as `postgres` when we are root
SG_PID=""
LOAD_PIDS=()
cleanup() {
  set +e
  local pid
  for pid in "${LOAD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  if [[ -n $SG_PID ]]; then kill -TERM "$SG_PID" 2>/dev/null; wait "$SG_PID" 2>/dev/null; fi
  if ((KEEP)); then mkdir -p "$WORK/pg-logs" && cp "$WORK"/cluster/pg/*.log "$WORK/pg-logs/" 2>/dev/null; fi
  bash "$ROOT/tools/pg_cluster.sh" stop --dir "$WORK/cluster" >/dev/null 2>&1
  if ((KEEP)); then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


SG_PORT=$(free_port)
# events is sharded by id so that shardgate sends a statement without a key condition to every
# shard and merges the answers: that merge is what this measures.
{
  echo "    default_shard: s0"
  echo "    routers:"
  printf '      by_id: {type: modulo, hash: postgres, shards: ['
  for ((s = 0; s < SHARDS; s++)); do printf '%ss%d' "$([[ $s -gt 0 ]] && echo ', ')" "$s"; done
  echo ']}'
  echo "    tables:"
  echo "      events: {key: id, router: by_id}"
} >"$WORK/db.yaml"
echo "== starting PostgreSQL: $SHARDS shards" >&2
timeout 300 bash "$ROOT/tools/pg_cluster.sh" start --dir "$WORK/cluster" --shards "$SHARDS" \
  --listen-port "$SG_PORT" --extra-db-yaml "$WORK/db.yaml" >/dev/null
mapfile -t SHARD_PORTS < <(awk '$2 == "primary" {print $4}' "$WORK/cluster/ports")

pg() {  # pg PORT SQL...: as app, straight to one server
  PGPASSWORD=app_pw psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U app -d app "${@:2}"
}

# Each shard gets a slice of g = 1..ROWS loaded on its primary directly (no proxy), in parallel.
# The rows do not sit where the by_id router would put them: the query has no key condition, so
# every shard is read whatever it holds, and placement does not change the merge. v is a
# multiplicative hash of g, so the shards' sorted streams interleave all along the merge. The
# rows are inserted in v order and indexed on v: the heap is then correlated with the index, the
# planner picks an index scan, and each shard streams its ORDER BY at once instead of sorting
# first (the merge, not the shards' sorts, is under test). VACUUM sets the hint bits now, so that
# round 1 does not pay for them.
echo "== loading $ROWS rows over $SHARDS shards (directly on each primary)" >&2
per=$(((ROWS + SHARDS - 1) / SHARDS))
for ((s = 0; s < SHARDS; s++)); do
  lo=$((s * per + 1)) hi=$(((s + 1) * per))
  ((hi > ROWS)) && hi=$ROWS
  PGPASSWORD=app_pw timeout 3600 psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 \
    -p "${SHARD_PORTS[$s]}" -U app -d app >"$WORK/load-s$s.log" 2>&1 <<EOF &
SET work_mem = '1GB';
SET maintenance_work_mem = '1GB';
CREATE TABLE events (id bigint PRIMARY KEY, v bigint NOT NULL, pad text NOT NULL);
INSERT INTO events
  SELECT g, (g * 2654435761) % 1000000007, lpad(to_hex(g), 20, 'x')
  FROM generate_series($lo, $hi) AS g
  ORDER BY 2;
CREATE INDEX events_v ON events (v);
VACUUM ANALYZE events;
EOF
  LOAD_PIDS+=($!)
done
failed=0
for ((s = 0; s < SHARDS; s++)); do
  wait "${LOAD_PIDS[$s]}" || { failed=1; echo "loading shard s$s failed:" >&2; cat "$WORK/load-s$s.log" >&2; }
done
LOAD_PIDS=()
((failed == 0)) || exit 1
DIRECT_ROWS=$(pg "${SHARD_PORTS[0]}" -c "SELECT count(*) FROM events")
PLAN=$(pg "${SHARD_PORTS[0]}" -c "EXPLAIN SELECT id, v, pad FROM events ORDER BY v" | head -n 1)
echo "   shard plan: $PLAN" >&2

echo "== starting shardgate on $SG_PORT" >&2
"$SHARDGATE" --config "$WORK/cluster/shardgate.yaml" >"$WORK/shardgate.log" 2>&1 &
SG_PID=$!
wait_port "$SG_PORT" "$SG_PID" || { echo "shardgate did not start:" >&2; tail -n 20 "$WORK/shardgate.log" >&2; exit 1; }

status_kib() {  # status_kib FIELD: VmRSS / VmHWM of shardgate in KiB
  awk -v f="$1:" '$1 == f {print $2}' "/proc/$SG_PID/status"
}
conninfo() { echo "host=127.0.0.1 port=$1 user=app password=app_pw dbname=app sslmode=disable gssencmode=disable connect_timeout=10"; }
QUERY="SELECT id, v, pad FROM events ORDER BY v"

declare -A RUN_SQL=(
  [merged]="$QUERY"
  [direct]="$QUERY"
  [page]="$QUERY LIMIT 100 OFFSET 1000"
)
declare -A RUN_PORT=([merged]=$SG_PORT [direct]=${SHARD_PORTS[0]} [page]=$SG_PORT)
declare -A RUN_EXPECT=([merged]=$ROWS [direct]=$DIRECT_ROWS [page]=100)

sleep 1  # let the workers settle before taking the baseline
RSS_BASE=$(status_kib VmRSS)
RESULTS="$WORK/results"
: >"$RESULTS"
FAILED=0
TARGETS=(direct merged page)
for ((round = 1; round <= ROUNDS; round++)); do
  for ((k = 0; k < ${#TARGETS[@]}; k++)); do
    target=${TARGETS[$(((k + round) % ${#TARGETS[@]}))]}
    out="$WORK/$target-$round.json"
    if timeout "$TIMEOUT" "$CLIENT" --conninfo "$(conninfo "${RUN_PORT[$target]}")" \
        --query "${RUN_SQL[$target]}" >"$out" 2>"$WORK/$target-$round.err"; then
      rows=$(jq -r .rows "$out") secs=$(jq -r .seconds "$out")
      if [[ $rows != "${RUN_EXPECT[$target]}" ]]; then
        echo "  $target round $round: $rows rows, expected ${RUN_EXPECT[$target]}" >&2
        secs=FAILED FAILED=1
      fi
    else
      echo "  $target round $round failed (exit $?): $(tail -n 3 "$WORK/$target-$round.err")" >&2
      rows=0 secs=FAILED FAILED=1
    fi
    echo "$target $round $rows $secs" >>"$RESULTS"
    printf '  %-7s round %d: %s rows in %s s\n' "$target" "$round" "$rows" "$secs" >&2
  done
done
kill -0 "$SG_PID" 2>/dev/null || { echo "shardgate died during the runs:" >&2; tail -n 20 "$WORK/shardgate.log" >&2; exit 1; }
RSS_PEAK=$(status_kib VmHWM)
RSS_END=$(status_kib VmRSS)

median() {  # median TARGET: median seconds over the rounds, FAILED if any round failed
  awk -v t="$1" '$1 == t {print $4}' "$RESULTS" | sort -g | awk '
    /FAILED/ { bad = 1 } { a[++n] = $1 }
    END { if (bad || n == 0) print "FAILED"; else print (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) }'
}
# rate ROWS SECONDS / fixed DIGITS SCALE SECONDS: "-" or FAILED for a failed target.
rate() { awk -v r="$1" -v s="$2" 'BEGIN { if (s == "FAILED") print "-"; else printf "%.0f", (s > 0 ? r / s : 0) }'; }
fixed() { awk -v d="$1" -v m="$2" -v s="$3" 'BEGIN { if (s == "FAILED") print s; else printf "%." d "f", s * m }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
M_SECS=$(median merged) D_SECS=$(median direct) P_SECS=$(median page)
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM_GIB=$(awk '/^MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)

echo
echo "$QUERY: $ROWS rows merged from $SHARDS shards by shardgate; median of $ROUNDS round(s)"
echo
printf '| %s ' rows seconds "merged rows/s" "direct one-shard rows/s ($DIRECT_ROWS rows)" \
  "LIMIT 100 OFFSET 1000 (ms)" "shardgate RSS before (MiB)" "shardgate peak RSS (MiB)" \
  "peak - before (MiB)"
echo "|"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$ROWS" \
  "$(fixed 2 1 "$M_SECS")" "$(rate "$ROWS" "$M_SECS")" \
  "$(rate "$DIRECT_ROWS" "$D_SECS")" \
  "$(fixed 1 1000 "$P_SECS")" \
  "$(mib "$RSS_BASE")" "$(mib "$RSS_PEAK")" "$(mib $((RSS_PEAK - RSS_BASE)))"
echo
echo "Machine: $(nproc) CPUs ($CPU), $MEM_GIB GiB RAM; PostgreSQL $(pg "${SHARD_PORTS[0]}" -c 'SHOW server_version'), shards and proxy on the same host, one client (libpq single-row mode)."
echo "Shard plan: $PLAN. shardgate RSS after the runs: $(mib "$RSS_END") MiB."
if ((FAILED)); then
  echo "FAILED: a run failed or returned the wrong number of rows (details above)" >&2
  exit 1
fi
