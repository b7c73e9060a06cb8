#!/usr/bin/env bash
# pgbench -S through shardgate over 2 shards (pgbench_accounts sharded by aid with a PostgreSQL-
# hash modulo router), beside the single-shard figures: the same PostgreSQL directly and
# shardgate in front of that one shard with the same router over it alone (routing and parsing
# on in both). Rounds are interleaved so that machine noise hits every target
# alike; -M simple, extended and prepared. Prints the median TPS per target and mode, the
# median of each round's own sharded/single ratio, how the sharded runs' key reads split over
# the shards, and exits 1 if a sharded run had a failure.
#
#   tools/bench/pgbench_sharded.sh [--duration 10] [--rounds 3] [--clients 8] [--threads 2]
#                                  [--scale 10] [--replicas 0] [--modes "simple extended prepared"]
#                                  [--pool-size 20] [--sharded-pool-size N] [--pipeline-reads 0]
#                                  [--shardgate build/release/proxy/shardgate]
#
# Each shard gets the full pgbench tables (`pgbench -i` on each shard directly): -S reads one
# account by key, so whichever shard the router names has it. pgbench's other tables are not
# listed in the router map and go to default_shard s0. With --replicas N the reads go to the
# replicas (read_from: replicas). --pool-size sets the database's pool_size (per shard, server
# and worker) in both proxies, --pipeline-reads their pipeline_reads (default 0, off);
# --sharded-pool-size gives the two-shard proxy another pool_size (e.g. half, for the same
# number of server connections in all as the single-shard proxy: both shards share the cores).
# Everything started here is stopped on exit, also on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
DURATION=10 ROUNDS=3 CLIENTS=8 THREADS=2 SCALE=10 REPLICAS=0 POOL=20 MODES="simple extended prepared"
PIPELINE=0 SHARDED_POOL=
SHARDGATE=${SHARDGATE_BIN:-$ROOT/build/release/proxy/shardgate}
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --replicas) REPLICAS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --pool-size) POOL=$2; shift 2 ;;
    --sharded-pool-size) SHARDED_POOL=$2; shift 2 ;;
    --pipeline-reads) PIPELINE=$2; shift 2 ;;
    --shardgate) SHARDGATE=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
in_range duration "$DURATION" 1 600 s
in_range rounds "$ROUNDS" 1 20
in_range clients "$CLIENTS" 1 200
in_range scale "$SCALE" 1 1000
in_range replicas "$REPLICAS" 0 2
in_range pool-size "$POOL" 1 100
SHARDED_POOL=${SHARDED_POOL:-$POOL}
in_range sharded-pool-size "$SHARDED_POOL" 1 100
in_range pipeline-reads "$PIPELINE" 0 64
need_binary "shardgate binary" "$SHARDGATE" "build it or pass --shardgate"
need_tool pgbench

bench_workdir sharded

SHARDED_PORT=$(free_port)
SINGLE_PORT=$(free_port)
echo "== starting PostgreSQL: 2 shards, $REPLICAS replica(s) each" >&2
start_sharded_cluster "$SHARDED_PORT" "$REPLICAS"
PG_PORT=${PG_PORT_s0:?}
PG_PORT1=${PG_PORT_s1:?}
set_pool_size "$WORK/cluster/shardgate.yaml" "$POOL"
set_pipeline_reads "$WORK/cluster/shardgate.yaml" "$PIPELINE"

# The single-shard reference: the same file with the database cut down to shard s0 and its
# replicas (everything up to s1's entry), routing and parsing on as over two shards: the same
# router over s0 alone (issue 8: "single shard, routing and parsing on"). Without a router a
# database is unsharded and its statements are passed through unparsed, which is not the
# single-shard cost of the sharded path.
awk -v port="$SINGLE_PORT" '
  /^listen:/ { print "listen: {host: 127.0.0.1, port: " port "}"; next }
  /^      - name: s1$/ { skip = 1 }
  /^    default_shard:/ {
    print
    print "    routers:"
    print "      by_aid: {type: modulo, hash: postgres, shards: [s0]}"
    print "    tables:"
    print "      pgbench_accounts: {key: aid, router: by_aid}"
    skip = 1
  }
  /^[a-z]/ && !/^databases:/ { skip = 0 }
  !skip { print }' "$WORK/cluster/shardgate.yaml" >"$WORK/single.yaml"
grep -q 'shards: \[s0\]}' "$WORK/single.yaml" || { echo "could not write single.yaml" >&2; exit 1; }
set_pool_size "$WORK/cluster/shardgate.yaml" "$SHARDED_POOL"

echo "== pgbench -i -s $SCALE on each shard" >&2
for port in "$PG_PORT" "$PG_PORT1"; do
  PGPASSWORD=app_pw pgbench -h 127.0.0.1 -p "$port" -U app -i -s "$SCALE" -q app >"$WORK/init-$port.log" 2>&1 ||
    { cat "$WORK/init-$port.log" >&2; exit 1; }
done
if ((REPLICAS > 0)); then sleep 2; fi  # let the replicas replay the load

echo "== starting shardgate: 2 shards on $SHARDED_PORT, 1 shard on $SINGLE_PORT" >&2
start_shardgate sharded "$WORK/cluster/shardgate.yaml" "$SHARDED_PORT"
start_shardgate single "$WORK/single.yaml" "$SINGLE_PORT"

port_of() { case $1 in direct) echo "$PG_PORT" ;; single) echo "$SINGLE_PORT" ;; sharded) echo "$SHARDED_PORT" ;; esac; }

# Index scans on pgbench_accounts per shard, over its primary and replicas (where -S reads ran).
shard_scans() {  # shard_scans SHARD
  local total=0 port n
  for port in $(awk -v s="$1" '$1 == s {print $4}' "$WORK/cluster/ports"); do
    n=$(PGPASSWORD=app_pw psql -X -At -h 127.0.0.1 -p "$port" -U app -d app -c \
      "SELECT coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'pgbench_accounts'" 2>/dev/null || echo 0)
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

RESULTS="$WORK/results"
: >"$RESULTS"
TARGETS="direct single sharded"
SHARDED_FAILED=0
SPLIT_S0=0 SPLIT_S1=0
for mode in $MODES; do
  for ((round = 1; round <= ROUNDS; round++)); do
    read -r -a order <<<"$TARGETS"
    n=${#order[@]}
    for ((k = 0; k < n; k++)); do
      target=${order[$(((k + round) % n))]}
      out="$WORK/pgbench-$mode-$target-$round.out"
      if [[ $target == sharded ]]; then b0=$(shard_scans s0); b1=$(shard_scans s1); fi
      if PGPASSWORD=app_pw timeout $((DURATION + 60)) pgbench -h 127.0.0.1 -p "$(port_of "$target")" \
          -U app -n -S -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M "$mode" app >"$out" 2>&1 &&
         ! grep -q '^number of failed transactions: [1-9]' "$out"; then
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)
      else
        tps=FAILED
      fi
      if [[ $target == sharded ]]; then
        # A backend reports its statistics at most once a second while busy; what it counted in
        # its last second reaches pg_stat_user_tables up to 10 s after it goes idle (PostgreSQL
        # 15), so a short run's split is incomplete.
        sleep 1
        SPLIT_S0=$((SPLIT_S0 + $(shard_scans s0) - b0)); SPLIT_S1=$((SPLIT_S1 + $(shard_scans s1) - b1))
        if [[ ${tps:-FAILED} == FAILED ]]; then SHARDED_FAILED=1; fi
      fi
      if [[ ${tps:-FAILED} == FAILED ]]; then
        echo "  $target -M $mode round $round failed:" >&2
        grep -v '^progress' "$out" | grep -iE 'error|abort|fatal|failed' | head -n 5 >&2
        tail -n 3 "$out" >&2
      fi
      echo "$mode $target $round ${tps:-FAILED}" >>"$RESULTS"
      printf '  %-9s %-8s round %d: %s\n' "$mode" "$target" "$round" "${tps:-FAILED}" >&2
    done
  done
done

echo
echo "pgbench -S -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE per shard, $ROUNDS round(s) interleaved, median TPS; pool_size $POOL (two shards: $SHARDED_POOL), pipeline_reads $PIPELINE"
echo "direct = PostgreSQL s0; single = shardgate over s0 (by aid); sharded = shardgate over s0+s1 (by aid)"
awk -v modes="$MODES" -v rounds="$ROUNDS" "$MEDIAN_AWK$PAIRED_AWK"'
  { v[$1 " " $2] = v[$1 " " $2] " " $4; w[$1 " " $2, $3] = $4 }
  END {
    fmt = "%-10s %12s %12s %12s %16s %16s   %s\n"
    printf fmt, "mode", "direct", "single", "sharded", "sharded/single", "sharded/direct",
           "sharded/single within each round, median (lowest-highest)"
    nm = split(modes, m, " ")
    for (i = 1; i <= nm; i++) {
      d = median(v[m[i] " direct"]); s1 = median(v[m[i] " single"]); s2 = median(v[m[i] " sharded"])
      printf fmt, m[i], num(d), num(s1), num(s2), ratio(s2, s1), ratio(s2, d),
             paired(w, m[i] " sharded", m[i] " single", rounds)
    }
  }' "$RESULTS"
total=$((SPLIT_S0 + SPLIT_S1))
if ((total > 0)); then
  echo "sharded key reads per shard (pgbench_accounts index scans): s0 $SPLIT_S0 ($((100 * SPLIT_S0 / total))%), s1 $SPLIT_S1 ($((100 * SPLIT_S1 / total))%)"
  if ((SPLIT_S0 == 0 || SPLIT_S1 == 0)); then
    if ((DURATION >= 3)); then
      echo "WARNING: one shard got no reads: the proxy is not routing by aid" >&2
    else
      echo "(a run of $DURATION s is too short for the split: PostgreSQL reports the reads up to 10 s late)"
    fi
  fi
fi
if ((SHARDED_FAILED)); then
  echo "FAILED: a sharded run had errors or failed transactions (logs above)" >&2
  exit 1
fi
