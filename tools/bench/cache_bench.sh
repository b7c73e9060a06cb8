#!/usr/bin/env bash
# The query cache on a skewed read workload: pgbench with a Zipfian key (random_zipfian, s=1.1)
# reading pgbench_accounts by aid through shardgate over 2 shards, with the cache off and with
# `cache: 60s` on pgbench_accounts, beside PostgreSQL directly (s0, which holds every account
# too). Two workloads: reads only, and 95% reads + 5% updates of Zipfian keys (each update
# invalidates its key's entry). Rounds are interleaved; prints median TPS, the ratios and the
# cache's hit rate, and exits 1 if a run had a failure.
#
#   tools/bench/cache_bench.sh [--duration 10] [--rounds 3] [--clients 8] [--threads 2]
#                              [--scale 10] [--modes "simple prepared"]
#                              [--shardgate build/release/proxy/shardgate]
#
# Everything started here is stopped on exit, also on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
DURATION=10 ROUNDS=3 CLIENTS=8 THREADS=2 SCALE=10 MODES="simple prepared"
SHARDGATE=${SHARDGATE_BIN:-$ROOT/build/release/proxy/shardgate}
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --shardgate) SHARDGATE=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
in_range duration "$DURATION" 1 600 s
in_range rounds "$ROUNDS" 1 20
in_range clients "$CLIENTS" 1 200
in_range scale "$SCALE" 1 1000
need_binary "shardgate binary" "$SHARDGATE" "build it or pass --shardgate"
need_tool pgbench

bench_workdir cache

NOCACHE_PORT=$(free_port)
CACHE_PORT=$(free_port)
echo "== starting PostgreSQL: 2 shards" >&2
start_sharded_cluster "$NOCACHE_PORT" 0
PG_PORT=${PG_PORT_s0:?}
PG_PORT1=${PG_PORT_s1:?}

# The cached variant: the same file with cache: on the table and room for every account.
awk -v port="$CACHE_PORT" '
  /^listen:/ { print "listen: {host: 127.0.0.1, port: " port "}"; next }
  /pgbench_accounts: \{key: aid, router: by_aid\}/ {
    sub(/router: by_aid\}/, "router: by_aid, cache: 60s}"); print; next }
  /^    default_shard:/ { print; print "    query_cache: {memory: 536870912}"; next }
  { print }' "$WORK/cluster/shardgate.yaml" >"$WORK/cached.yaml"
# Its own admin HTTP port (or none) so that both proxies can run.
sed -i '/^  http:/d' "$WORK/cached.yaml"

echo "== pgbench -i -s $SCALE on each shard" >&2
for port in "$PG_PORT" "$PG_PORT1"; do
  PGPASSWORD=app_pw pgbench -h 127.0.0.1 -p "$port" -U app -i -s "$SCALE" -q app >"$WORK/init-$port.log" 2>&1 ||
    { cat "$WORK/init-$port.log" >&2; exit 1; }
done
NACCOUNTS=$((100000 * SCALE))
cat >"$WORK/read.sql" <<EOF
\\set aid random_zipfian(1, $NACCOUNTS, 1.1)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
EOF
cat >"$WORK/write.sql" <<EOF
\\set aid random_zipfian(1, $NACCOUNTS, 1.1)
\\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
EOF

echo "== starting shardgate: cache off on $NOCACHE_PORT, cache on on $CACHE_PORT" >&2
start_shardgate nocache "$WORK/cluster/shardgate.yaml" "$NOCACHE_PORT"
start_shardgate cached "$WORK/cached.yaml" "$CACHE_PORT"

port_of() { case $1 in direct) echo "$PG_PORT" ;; nocache) echo "$NOCACHE_PORT" ;; cached) echo "$CACHE_PORT" ;; esac; }
cache_counts() {  # hits misses of the cached proxy
  PGPASSWORD=admin psql -X -At -F ' ' -h 127.0.0.1 -p "$CACHE_PORT" -U admin -d shardgate \
    -c 'SHOW CACHE' 2>/dev/null | awk '$1 == "app" {print $5, $6}'
}

RESULTS="$WORK/results"
: >"$RESULTS"
TARGETS="direct nocache cached"
FAILED=0
HITS=0 MISSES=0
for workload in read mixed; do
  if [[ $workload == read ]]; then scripts=(-f "$WORK/read.sql"); else scripts=(-f "$WORK/read.sql@95" -f "$WORK/write.sql@5"); fi
  for mode in $MODES; do
    for ((round = 1; round <= ROUNDS; round++)); do
      read -r -a order <<<"$TARGETS"
      n=${#order[@]}
      for ((k = 0; k < n; k++)); do
        target=${order[$(((k + round) % n))]}
        out="$WORK/pgbench-$workload-$mode-$target-$round.out"
        if [[ $target == cached ]]; then read -r h0 m0 <<<"$(cache_counts)"; fi
        if PGPASSWORD=app_pw timeout $((DURATION + 60)) pgbench -h 127.0.0.1 -p "$(port_of "$target")" \
            -U app -n "${scripts[@]}" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M "$mode" app >"$out" 2>&1 &&
           ! grep -q '^number of failed transactions: [1-9]' "$out"; then
          tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)
        else
          tps=FAILED
          FAILED=1
          echo "  $target $workload -M $mode round $round failed:" >&2
          grep -iE 'error|abort|fatal|failed' "$out" | head -n 5 >&2
        fi
        if [[ $target == cached && $workload == read ]]; then
          read -r h1 m1 <<<"$(cache_counts)"
          HITS=$((HITS + ${h1:-0} - ${h0:-0})); MISSES=$((MISSES + ${m1:-0} - ${m0:-0}))
        fi
        echo "$workload-$mode $target $round ${tps:-FAILED}" >>"$RESULTS"
        printf '  %-6s %-9s %-8s round %d: %s\n' "$workload" "$mode" "$target" "$round" "${tps:-FAILED}" >&2
      done
    done
  done
done

echo
echo "pgbench, Zipfian aid (s=1.1) over $NACCOUNTS accounts, -c $CLIENTS -j $THREADS -T $DURATION, $ROUNDS round(s) interleaved, median TPS"
echo "direct = PostgreSQL s0; nocache / cached = shardgate over s0+s1 without / with cache: 60s"
echo "read = 100% key reads; mixed = 95% reads + 5% updates of the same Zipfian keys"
awk -v modes="$MODES" "$MEDIAN_AWK"'
  { v[$1 " " $2] = v[$1 " " $2] " " $4 }
  END {
    fmt = "%-16s %10s %10s %10s %16s %16s\n"
    printf fmt, "workload-mode", "direct", "nocache", "cached", "cached/nocache", "cached/direct"
    nw = split("read mixed", w, " "); nm = split(modes, m, " ")
    for (a = 1; a <= nw; a++) for (i = 1; i <= nm; i++) {
      key = w[a] "-" m[i]
      d = median(v[key " direct"]); s1 = median(v[key " nocache"]); s2 = median(v[key " cached"])
      printf fmt, key, num(d), num(s1), num(s2), ratio(s2, s1), ratio(s2, d)
    }
  }' "$RESULTS"
if ((HITS + MISSES > 0)); then
  echo "cache hit rate on the read workload: $((100 * HITS / (HITS + MISSES)))% ($HITS hits, $MISSES misses)"
fi
if ((FAILED)); then
  echo "FAILED: a run had errors or failed transactions (logs above)" >&2
  exit 1
fi
