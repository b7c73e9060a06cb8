#!/usr/bin/env bash
# A local shardgate to play with: installs missing packages, builds shardgate and shardctl
# (release), starts 3 PostgreSQL 15 shards with one streaming replica each and shardgate in front
# on 127.0.0.1:6432, then prints the psql line to use.
#
#   tools/demo.sh [start]   # idempotent: says so when the demo already runs
#   tools/demo.sh status
#   tools/demo.sh stop      # stops shardgate and the servers, deletes the state dir
#
# State (data dirs, logs, shardgate.yaml) lives in $SHARDGATE_DEMO_DIR (default
# /tmp/shardgate-demo); the port is $SHARDGATE_DEMO_PORT (default 6432). With $SHARDGATE_BIN set,
# that binary is used and nothing is built.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${SHARDGATE_DEMO_DIR:-/tmp/shardgate-demo}
PORT=${SHARDGATE_DEMO_PORT:-6432}
BUILD="$ROOT/build/release"
SHARDGATE=${SHARDGATE_BIN:-$BUILD/proxy/shardgate}
SHARDS=3

log() { echo "== demo: $*" >&2; }
die() { echo "demo: $*" >&2; exit 1; }

proxy_running() {
  [[ -f $STATE/shardgate.pid ]] && kill -0 "$(cat "$STATE/shardgate.pid")" 2>/dev/null
}

port_in_use() { ss -Htln "( sport = :$1 )" 2>/dev/null | grep -q .; }

print_usage_lines() {
  cat <<EOF

shardgate is listening on 127.0.0.1:$PORT in front of $SHARDS shards (1 replica each):
$(sed 's/^/  /' "$STATE/ports")

Connect:
  psql "host=127.0.0.1 port=$PORT dbname=app user=app password=app_pw"

Try:  INSERT INTO users (id, name) VALUES (1, 'ada');  SELECT * FROM users WHERE id = 1;
      SET shardgate.explain = on;  (a NOTICE names the shard and server of each statement)
Admin console: psql "host=127.0.0.1 port=$PORT dbname=shardgate user=admin password=admin"
Config: $STATE/shardgate.yaml   Log: $STATE/shardgate.log
Stop:   tools/demo.sh stop
EOF
}

# The routers and tables of the demo map (../shared/CONFIG.md): users are spread over the three
# shards by a consistent-hash ring; other tables live on s0.
write_router_yaml() {
  cat >"$1" <<'EOF'
    default_shard: s0
    routers:
      by_user: {type: hash_ring, shards: [s0, s1, s2], vnodes: 256}
    tables:
      users: {key: id, router: by_user}
EOF
}

# A plain one-shard map for a proxy that does not route yet: s0's primary and replica.
write_single_shard_yaml() {
  awk '/^databases:/ {exit} {print}' "$STATE/shardgate.yaml" >"$STATE/shardgate.single.yaml"
  {
    echo "databases:"
    echo "  app:"
    echo "    pool_size: 20"
    echo "    shards:"
    echo "      - name: s0"
    awk '$1 == "s0" && $2 == "primary" { print "        primary: {host: " $3 ", port: " $4 ", dbname: app}" }' "$STATE/ports"
    if grep -q '^s0 replica' "$STATE/ports"; then
      echo "        replicas:"
      awk '$1 == "s0" && $2 == "replica" { print "          - {host: " $3 ", port: " $4 ", dbname: app}" }' "$STATE/ports"
    fi
  } >>"$STATE/shardgate.single.yaml"
}

cmd_start() {
  if proxy_running; then
    log "already running"
    print_usage_lines
    return 0
  fi
  log "installing missing packages"
  bash "$ROOT/tools/install_deps.sh"
  if [[ -z ${SHARDGATE_BIN:-} ]]; then
    log "building shardgate and shardctl (release)"
    cmake --preset release >/dev/null
    cmake --build "$BUILD" -j 2 --target shardgate
    if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^shardctl:'; then
      cmake --build "$BUILD" -j 2 --target shardctl
    fi
  fi
  [[ -x $SHARDGATE ]] || die "no shardgate binary at $SHARDGATE"

  port_in_use "$PORT" && die "port $PORT is in use (set SHARDGATE_DEMO_PORT)"
  # A previous demo that was not stopped cleanly: clear it first.
  bash "$ROOT/tools/pg_cluster.sh" stop --dir "$STATE" >/dev/null 2>&1 || true
  mkdir -p "$STATE"
  chmod 755 "$STATE"
  log "starting $SHARDS shards with 1 replica each in $STATE"
  write_router_yaml "$STATE/routers.yaml"
  bash "$ROOT/tools/pg_cluster.sh" start --dir "$STATE" --shards "$SHARDS" --replicas 1 \
    --listen-port "$PORT" --extra-db-yaml "$STATE/routers.yaml" >/dev/null
  # shellcheck disable=SC1091
  . "$STATE/env"
  local s port
  for ((s = 0; s < SHARDS; s++)); do
    port=$(awk -v s="s$s" '$1 == s && $2 == "primary" {print $4}' "$STATE/ports")
    PGPASSWORD=app_pw psql -X -q -h 127.0.0.1 -p "$port" -U app -d app -v ON_ERROR_STOP=1 \
      -c "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text)"
  done

  local config="$STATE/shardgate.yaml"
  if ! "$SHARDGATE" --config "$config" --check >"$STATE/check.log" 2>&1; then
    log "this shardgate does not accept the sharded map yet:"
    sed 's/^/    /' "$STATE/check.log" >&2
    log "falling back to a single-shard map (s0) in $STATE/shardgate.single.yaml"
    write_single_shard_yaml
    config="$STATE/shardgate.single.yaml"
  fi

  log "starting shardgate on 127.0.0.1:$PORT"
  nohup "$SHARDGATE" --config "$config" >"$STATE/shardgate.log" 2>&1 </dev/null &
  echo $! >"$STATE/shardgate.pid"
  disown || true
  local i
  for ((i = 0; i < 150; i++)); do
    (: </dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
    proxy_running || { tail -n 30 "$STATE/shardgate.log" >&2; die "shardgate exited"; }
    sleep 0.1
  done
  ((i < 150)) || { tail -n 30 "$STATE/shardgate.log" >&2; die "shardgate did not listen within 15 s"; }
  print_usage_lines
}

cmd_stop() {
  if [[ -f $STATE/shardgate.pid ]]; then
    local pid i
    pid=$(cat "$STATE/shardgate.pid")
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping shardgate (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  log "stopping the servers"
  bash "$ROOT/tools/pg_cluster.sh" stop --dir "$STATE" || true
  rm -rf "$STATE"
}

cmd_status() {
  if proxy_running; then echo "shardgate running (pid $(cat "$STATE/shardgate.pid"))"; else echo "shardgate stopped"; fi
  bash "$ROOT/tools/pg_cluster.sh" status --dir "$STATE"
}

case ${1:-start} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
