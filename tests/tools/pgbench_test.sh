#!/usr/bin/env bash
# pgbench through shardgate, in transaction and session pooling mode: -M simple, extended,
# prepared, -C (a connection per transaction), the default TPC-B script and -S. Fails when any
# pgbench exits non-zero or reports failed transactions.
#
#   pgbench_test.sh --shardgate BIN   # through the proxy (exit 77 = skipped: no binary)
#   pgbench_test.sh --direct          # the same suite straight against PostgreSQL (self-check)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_CLUSTER="$HERE/../../tools/pg_cluster.sh"
SHARDGATE=${SHARDGATE_BIN:-}
DIRECT=0
CLIENTS=4 TXNS=200 SCALE=2
while (($#)); do
  case $1 in
    --shardgate) SHARDGATE=${SHARDGATE_BIN:-$2}; shift 2 ;;
    --direct) DIRECT=1; shift ;;
    --transactions) TXNS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if ((!DIRECT)) && [[ ! -x $SHARDGATE ]]; then
  echo "SKIP: no shardgate binary at '${SHARDGATE}'" >&2
  exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sg-pgbench.XXXXXX")
chmod 755 "$WORK"
PROXY_PID=""
stop_proxy() {
  if [[ -n $PROXY_PID ]]; then
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=""
  fi
}
cleanup() {
  stop_proxy
  bash "$PG_CLUSTER" stop --dir "$WORK/cluster" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  local p=$((20000 + ($$ * 17 + RANDOM) % 10000)) i
  for ((i = 0; i < 1000; i++)); do
    if ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q .; then echo "$p"; return; fi
    p=$((p + 1))
  done
  echo "no free port" >&2; exit 1
}

LISTEN_PORT=$(free_port)
bash "$PG_CLUSTER" start --dir "$WORK/cluster" --shards 1 --listen-port "$LISTEN_PORT" >/dev/null
# shellcheck disable=SC1091
. "$WORK/cluster/env"

FAILED=0
# run_pgbench LABEL ARGS...: runs against $TARGET_PORT; a failure is counted, not fatal, so the
# report lists every failing combination.
run_pgbench() {
  local label=$1; shift
  local out="$WORK/pgbench.out" rc=0 failed
  if ((SECONDS > 700)); then  # stay inside ctest's 900 s with time to clean up
    echo "FAIL $label: not run, the suite's 700 s budget is spent" >&2
    FAILED=$((FAILED + 1))
    return
  fi
  PGPASSWORD=app_pw timeout 120 pgbench -h 127.0.0.1 -p "$TARGET_PORT" -U app "$@" app \
    >"$out" 2>&1 || rc=$?
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n 1)
  local tps processed
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)
  # "actually processed: 780/800" means some clients aborted.
  processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\/[0-9]*\).*/\1/p' "$out")
  if [[ -n $processed && ${processed%/*} != "${processed#*/}" ]]; then
    if ((rc == 0)); then rc=1; fi
  fi
  if ((rc != 0)) || [[ ${failed:-0} != 0 ]]; then
    echo "FAIL $label: exit $rc, failed transactions ${failed:-?}" >&2
    tail -n 25 "$out" >&2
    FAILED=$((FAILED + 1))
  else
    printf 'ok   %-40s tps %s\n' "$label" "${tps:-n/a}"
  fi
}

run_suite() {  # run_suite NAME
  local name=$1 m before=$FAILED
  run_pgbench "$name init -s $SCALE" -i -s "$SCALE" -q
  if ((FAILED > before)); then
    echo "FAIL $name: skipping its runs, the tables did not load" >&2
    return
  fi
  for m in simple extended prepared; do
    run_pgbench "$name tpcb -M $m" -c "$CLIENTS" -j 2 -t "$TXNS" -M "$m"
    run_pgbench "$name select-only -M $m" -S -c "$CLIENTS" -j 2 -t "$TXNS" -M "$m"
  done
  run_pgbench "$name tpcb -C -M simple" -C -c "$CLIENTS" -j 2 -t $((TXNS / 8)) -M simple
  run_pgbench "$name tpcb -C -M prepared" -C -c "$CLIENTS" -j 2 -t $((TXNS / 8)) -M prepared
}

if ((DIRECT)); then
  TARGET_PORT=${PG_PORT_s0:?}
  run_suite direct
else
  for mode in transaction session; do
    sed "s/pool_mode: [a-z]*/pool_mode: $mode/" "$WORK/cluster/shardgate.yaml" >"$WORK/shardgate-$mode.yaml"
    "$SHARDGATE" --config "$WORK/shardgate-$mode.yaml" >"$WORK/shardgate-$mode.log" 2>&1 &
    PROXY_PID=$!
    up=0
    for ((i = 0; i < 150; i++)); do
      if ! kill -0 "$PROXY_PID" 2>/dev/null; then break; fi
      if (: </dev/tcp/127.0.0.1/"$LISTEN_PORT") 2>/dev/null; then up=1; break; fi
      sleep 0.1
    done
    if ((!up)); then
      echo "FAIL shardgate ($mode) did not start:" >&2
      tail -n 30 "$WORK/shardgate-$mode.log" >&2
      FAILED=$((FAILED + 1))
      stop_proxy
      continue
    fi
    TARGET_PORT=$LISTEN_PORT
    before=$FAILED
    run_suite "shardgate/$mode"
    stop_proxy
    # A sanitizer build reports (leaks at exit included) into the log, not the exit status here.
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer' \
      "$WORK/shardgate-$mode.log"; then
      echo "FAIL shardgate ($mode): sanitizer report in its log" >&2
      FAILED=$((FAILED + 1))
    fi
    if ((FAILED > before)); then
      echo "--- shardgate ($mode) log tail:" >&2
      tail -n 40 "$WORK/shardgate-$mode.log" >&2
    fi
  done
fi

if ((FAILED)); then
  echo "$FAILED pgbench run(s) failed" >&2
  exit 1
fi
echo "all pgbench runs passed"
