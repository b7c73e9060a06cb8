#!/usr/bin/env bash
# pgbench -S against direct PostgreSQL, PgBouncer and shardgate in one run, rounds interleaved
# (so that machine noise hits all three alike), for -M simple, extended and prepared. Prints the
# median TPS per target and mode and the ratios shardgate/direct and shardgate/pgbouncer.
#
#   tools/bench/pgbench_compare.sh [--duration 10] [--rounds 3] [--clients 8] [--threads 2]
#                                  [--scale 10] [--modes "simple extended prepared"]
#                                  [--shardgate build/release/proxy/shardgate]
#
# PgBouncer (1.18) runs in transaction mode, where -M prepared is expected to fail ("prepared
# statement does not exist"): that cell is reported as FAILED, a known PgBouncer limit.
# Everything started here is stopped on exit, also on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=10 ROUNDS=3 CLIENTS=8 THREADS=2 SCALE=10 MODES="simple extended prepared"
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
((DURATION >= 1 && DURATION <= 600)) || { echo "--duration must be 1..600 s" >&2; exit 2; }
((ROUNDS >= 1 && ROUNDS <= 20)) || { echo "--rounds must be 1..20" >&2; exit 2; }
command -v pgbouncer >/dev/null || { echo "pgbouncer is not installed (tools/install_deps.sh)" >&2; exit 1; }

as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench.XXXXXX")
chmod 755 "$WORK"
SG_PID=""
cleanup() {
  set +e
  if [[ -n $SG_PID ]]; then kill -TERM "$SG_PID" 2>/dev/null; wait "$SG_PID" 2>/dev/null; fi
  if [[ -f $WORK/pgbouncer/pgbouncer.pid ]]; then
    kill -TERM "$(cat "$WORK/pgbouncer/pgbouncer.pid")" 2>/dev/null
    sleep 0.2
  fi
  bash "$ROOT/tools/pg_cluster.sh" stop --dir "$WORK/cluster" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"

SG_PORT=$(free_port)
BOUNCER_PORT=$(free_port)
echo "== starting PostgreSQL" >&2
bash "$ROOT/tools/pg_cluster.sh" start --dir "$WORK/cluster" --shards 1 --listen-port "$SG_PORT" >/dev/null
# shellcheck disable=SC1091
. "$WORK/cluster/env"
PG_PORT=${PG_PORT_s0:?}

echo "== starting PgBouncer on $BOUNCER_PORT" >&2
mkdir -p "$WORK/pgbouncer"
cat >"$WORK/pgbouncer/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/pgbouncer/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
logfile = $WORK/pgbouncer/pgbouncer.log
pidfile = $WORK/pgbouncer/pgbouncer.pid
EOF
echo '"app" "app_pw"' >"$WORK/pgbouncer/userlist.txt"
chmod 600 "$WORK/pgbouncer/userlist.txt"
[[ $(id -u) -eq 0 ]] && chown -R postgres: "$WORK/pgbouncer"  # pgbouncer refuses to run as root
as_pg pgbouncer -d "$WORK/pgbouncer/pgbouncer.ini" >/dev/null 2>&1 ||
  { cat "$WORK/pgbouncer/pgbouncer.log" >&2; exit 1; }
wait_port "$BOUNCER_PORT" || { echo "pgbouncer did not start" >&2; cat "$WORK/pgbouncer/pgbouncer.log" >&2; exit 1; }

TARGETS="direct pgbouncer"
if [[ -x $SHARDGATE ]]; then
  echo "== starting shardgate on $SG_PORT ($SHARDGATE)" >&2
  "$SHARDGATE" --config "$WORK/cluster/shardgate.yaml" >"$WORK/shardgate.log" 2>&1 &
  SG_PID=$!
  if wait_port "$SG_PORT" "$SG_PID"; then
    TARGETS="direct pgbouncer shardgate"
  else
    echo "shardgate did not start; benchmarking without it:" >&2
    tail -n 20 "$WORK/shardgate.log" >&2
    SG_PID=""
  fi
else
  echo "no shardgate binary at $SHARDGATE; benchmarking without it" >&2
fi

port_of() { case $1 in direct) echo "$PG_PORT" ;; pgbouncer) echo "$BOUNCER_PORT" ;; shardgate) echo "$SG_PORT" ;; esac; }

echo "== pgbench -i -s $SCALE" >&2
PGPASSWORD=app_pw pgbench -h 127.0.0.1 -p "$PG_PORT" -U app -i -s "$SCALE" -q app >/dev/null 2>&1

RESULTS="$WORK/results"
: >"$RESULTS"
for mode in $MODES; do
  for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate the order each round so that no target always runs first (cold) or last.
    read -r -a order <<<"$TARGETS"
    n=${#order[@]}
    for ((k = 0; k < n; k++)); do
      target=${order[$(((k + round) % n))]}
      out="$WORK/pgbench-$mode-$target-$round.out"
      if PGPASSWORD=app_pw timeout $((DURATION + 60)) pgbench -h 127.0.0.1 -p "$(port_of "$target")" \
          -U app -n -S -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M "$mode" app >"$out" 2>&1 &&
         ! grep -q '^number of failed transactions: [1-9]' "$out"; then
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)
      else
        tps=FAILED
      fi
      echo "$mode $target $round ${tps:-FAILED}" >>"$RESULTS"
      printf '  %-9s %-10s round %d: %s\n' "$mode" "$target" "$round" "${tps:-FAILED}" >&2
    done
  done
done

echo
echo "pgbench -S -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE, $ROUNDS round(s) interleaved, median TPS"
awk -v targets="direct pgbouncer shardgate" -v modes="$MODES" '
  { v[$1 " " $2] = v[$1 " " $2] " " $4 }
  function median(list,   a, n, i, j, t, ok) {
    n = split(list, a, " "); ok = 0
    for (i = 1; i <= n; i++) if (a[i] != "FAILED") b[++ok] = a[i] + 0
    if (ok < n || n == 0) return n == 0 ? "n/a" : "FAILED"
    for (i = 1; i <= ok; i++) for (j = i + 1; j <= ok; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
    return ok % 2 ? b[(ok + 1) / 2] : (b[ok / 2] + b[ok / 2 + 1]) / 2
  }
  function ratio(x, y) { return (x ~ /^[0-9.]+$/ && y ~ /^[0-9.]+$/ && y > 0) ? sprintf("%.2f", x / y) : "-" }
  END {
    printf "%-10s %12s %12s %12s %12s %14s\n", "mode", "direct", "pgbouncer", "shardgate", "sg/direct", "sg/pgbouncer"
    nm = split(modes, m, " ")
    for (i = 1; i <= nm; i++) {
      d = median(v[m[i] " direct"]); p = median(v[m[i] " pgbouncer"]); s = median(v[m[i] " shardgate"])
      fmt = "%-10s %12s %12s %12s %12s %14s\n"
      printf fmt, m[i], (d ~ /^[0-9.]+$/ ? sprintf("%.0f", d) : d), (p ~ /^[0-9.]+$/ ? sprintf("%.0f", p) : p),
             (s ~ /^[0-9.]+$/ ? sprintf("%.0f", s) : s), ratio(s, d), ratio(s, p)
    }
  }' "$RESULTS"
if grep -q "prepared pgbouncer .* FAILED" "$RESULTS"; then
  echo "(pgbouncer -M prepared FAILED: expected, PgBouncer 1.18 in transaction mode has no prepared-statement support)"
fi
