#!/usr/bin/env bash
# Two shardgate builds side by side: "a" (by default build/release/proxy/shardgate) and "b"
# (--b, e.g. a copy of the binary from before a change), each with routing and parsing on (a
# modulo router on pgbench_accounts.aid over the one shard, as in pgbench_compare.sh) in front
# of the same PostgreSQL, pgbench -S rounds interleaved. Per mode: the median TPS of each and
# the median of each round's own b/a ratio, and each proxy's own user and system CPU per
# transaction (/proc/PID/stat from a run's second second to the one before its last, at the
# run's rate): what a change did to the proxy's cost, measured in one run instead of against
# figures from another day.
#
#   tools/bench/pgbench_ab.sh --b OTHER_BINARY [--a build/release/proxy/shardgate]
#                             [--duration 5] [--rounds 5] [--clients 16] [--threads 2]
#                             [--scale 10] [--workers 1] [--pool-size 4]
#                             [--modes "simple extended prepared"]
#
# Exits 1 if a round failed. Everything started here is stopped on exit, also on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
DURATION=5 ROUNDS=5 CLIENTS=16 THREADS=2 SCALE=10 WORKERS=1 POOL=4 MODES="simple extended prepared"
BIN_A=$ROOT/build/release/proxy/shardgate BIN_B=""
while (($#)); do
  case $1 in
    --a) BIN_A=$2; shift 2 ;;
    --b) BIN_B=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --pool-size) POOL=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
in_range duration "$DURATION" 3 600 s
in_range rounds "$ROUNDS" 1 20
in_range clients "$CLIENTS" 1 200
in_range scale "$SCALE" 1 1000
in_range workers "$WORKERS" 1 64
in_range pool-size "$POOL" 1 100
[[ -n $BIN_B ]] || { echo "--b OTHER_BINARY is required (the build to compare with --a)" >&2; exit 2; }
need_binary "shardgate binary" "$BIN_A"
need_binary "shardgate binary" "$BIN_B"
need_tool pgbench

bench_workdir ab

PORT_A=$(free_port)
PORT_B=$(free_port)
echo "== starting PostgreSQL" >&2
start_routed_cluster "$PORT_A" "$WORKERS" "$POOL"
sed "s/^listen: .*/listen: {host: 127.0.0.1, port: $PORT_B}/" "$WORK/cluster/shardgate.yaml" >"$WORK/b.yaml"
grep -q "port: $PORT_B}" "$WORK/b.yaml" || { echo "could not write b.yaml" >&2; exit 1; }

echo "== pgbench -i -s $SCALE" >&2
PGPASSWORD=app_pw pgbench -h 127.0.0.1 -p "${PG_PORT_s0:?}" -U app -i -s "$SCALE" -q app \
  >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; exit 1; }
echo "== starting a ($BIN_A) on $PORT_A, b ($BIN_B) on $PORT_B" >&2
SHARDGATE=$BIN_A start_shardgate a "$WORK/cluster/shardgate.yaml" "$PORT_A"
SHARDGATE=$BIN_B start_shardgate b "$WORK/b.yaml" "$PORT_B"
PID_A=${SG_PIDS[0]} PID_B=${SG_PIDS[1]}

RESULTS="$WORK/results"  # lines: mode target round tps user_us sys_us (per transaction)
: >"$RESULTS"
FAILED=0
HZ=$(getconf CLK_TCK)
for mode in $MODES; do
  for ((round = 1; round <= ROUNDS; round++)); do
    # a first in odd rounds, b first in even ones.
    if ((round % 2)); then order="a b"; else order="b a"; fi
    for target in $order; do
      if [[ $target == a ]]; then port=$PORT_A pid=$PID_A; else port=$PORT_B pid=$PID_B; fi
      out="$WORK/pgbench-$mode-$target-$round.out"
      # The proxy's CPU from the run's second second to the one before its last (the clients'
      # logins, SCRAM included, stay out), per transaction at the run's rate.
      PGPASSWORD=app_pw timeout $((DURATION + 60)) pgbench -h 127.0.0.1 -p "$port" -U app -n -S \
        -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M "$mode" app >"$out" 2>&1 &
      bench=$!
      sleep 1
      t0=$(proc_ticks "$pid")
      sleep $((DURATION - 2))
      t1=$(proc_ticks "$pid")
      line=""
      if wait "$bench" && ! grep -q -e '^number of failed transactions: [1-9]' -e 'aborted' "$out"; then
        line=$(awk -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v secs=$((DURATION - 2)) '
          /^tps = / && !tps { tps = $3 + 0 }
          END {
            split(t0, a, " "); split(t1, b, " "); n = tps * secs
            if (n > 0) printf "%s %.2f %.2f", tps, (b[1] - a[1]) / hz * 1e6 / n, (b[2] - a[2]) / hz * 1e6 / n
          }' "$out")
      fi
      if [[ -z $line ]]; then
        FAILED=1 line="FAILED - -"
        echo "  $target -M $mode round $round failed:" >&2
        tail -n 3 "$out" >&2
      fi
      echo "$mode $target $round $line" >>"$RESULTS"
      printf '  %-9s %s round %d: %s\n' "$mode" "$target" "$round" "$line" >&2
    done
  done
done

echo
machine_line
echo "pgbench -S -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE, $ROUNDS round(s) interleaved, medians;" \
  "$WORKERS worker(s), $POOL server connections each"
echo "a = $BIN_A"
echo "b = $BIN_B"
awk -v modes="$MODES" -v rounds="$ROUNDS" "$MEDIAN_AWK$PAIRED_AWK"'
  function cpu(list) { return list ~ /-/ ? "-" : sprintf("%.2f", median(list)) }
  {
    v[$1, $2] = v[$1, $2] " " $4; w[$1 " " $2, $3] = $4
    u[$1, $2] = u[$1, $2] " " $5; s[$1, $2] = s[$1, $2] " " $6
  }
  END {
    fmt = "%-10s %8s %8s %6s %20s %10s %10s %10s %10s\n"
    printf fmt, "mode", "a TPS", "b TPS", "b/a", "b/a within rounds", "a user us", "b user us",
           "a sys us", "b sys us"
    nm = split(modes, m, " ")
    for (i = 1; i <= nm; i++) {
      a = median(v[m[i], "a"]); b = median(v[m[i], "b"])
      printf fmt, m[i], num(a), num(b), ratio(b, a), paired(w, m[i] " b", m[i] " a", rounds),
             cpu(u[m[i], "a"]), cpu(u[m[i], "b"]), cpu(s[m[i], "a"]), cpu(s[m[i], "b"])
    }
  }' "$RESULTS"
if ((FAILED)); then
  echo "FAILED: a round had errors or failed transactions (logs above)" >&2
  exit 1
fi
