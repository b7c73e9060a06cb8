#!/usr/bin/env bash
# Local PostgreSQL 15 clusters for the demo, benchmarks and script tests: the shell twin of
# tests/support/pg_cluster.h (same roles, passwords, pg_hba and settings).
#
#   pg_cluster.sh start  --dir D [--shards N] [--replicas R] [--base-port P] [--dbname app]
#                        [--listen-port 6432] [--pool-mode transaction|session]
#                        [--extra-db-yaml FILE] [--extra-top-yaml FILE]
#   pg_cluster.sh stop   --dir D
#   pg_cluster.sh status --dir D
#
# start prints one line per server ("s0 primary 127.0.0.1 15432") and writes D/ports (the same
# lines), D/shardgate.yaml (a config for shardgate in front of these servers) and D/env
# (shell variables PG_PORT_s0=..., PG_DIR=...). Ports are P, P+1, ... (or free ones when P is
# 0 or absent). Servers run as the `postgres` OS user when this runs as root (initdb refuses
# root). Roles: postgres/postgres (superuser, SCRAM), app/app_pw (SCRAM), app_md5/md5_pw (md5).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
SUPER_PW=postgres

die() { echo "pg_cluster.sh: $*" >&2; exit 1; }

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Runs a command as the server user: ourselves, or postgres when root.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {
  ! ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .
}

# Next free port at or after $1 (bounded search).
next_free_port() {
  local p=$1 i
  for ((i = 0; i < 2000; i++)); do
    if ((p > 32000)); then p=15000; fi
    if port_free "$p" && [[ " ${USED_PORTS[*]:-} " != *" $p "* ]]; then
      echo "$p"; return 0
    fi
    p=$((p + 1))
  done
  die "no free port found"
}

psql_su() {  # psql_su PORT DB SQL... : superuser over the unix socket (trust)
  local port=$1 db=$2; shift 2
  psql -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$port" -U postgres -d "$db" "$@"
}

write_conf() {  # write_conf DATA_DIR PORT [extra lines...]
  local data=$1 port=$2; shift 2
  {
    echo "# --- added by shardgate tools/pg_cluster.sh ---"
    echo "listen_addresses = '127.0.0.1'"
    echo "wal_level = logical"
    echo "max_prepared_transactions = 20"
    echo "max_wal_senders = 10"
    echo "max_replication_slots = 10"
    echo "hot_standby = on"
    echo "fsync = off"
    echo "synchronous_commit = off"
    echo "full_page_writes = off"
    echo "shared_buffers = 32MB"
    echo "max_connections = 200"
    echo "log_min_messages = warning"
    echo "log_line_prefix = '%m [%p] %u@%d '"
    echo "port = $port"
    echo "unix_socket_directories = '$SOCK_DIR'"
    local l; for l in "$@"; do echo "$l"; done
  } | as_pg tee -a "$data/postgresql.conf" >/dev/null
}

start_server() {  # start_server NAME
  local name=$1
  as_pg "$PG_BIN/pg_ctl" -D "$PGROOT/$name" -w -t 60 -l "$PGROOT/$name.log" start >/dev/null ||
    { tail -n 30 "$PGROOT/$name.log" >&2; die "server $name did not start"; }
}

start_primary() {  # start_primary NAME PORT
  local name=$1 port=$2 data="$PGROOT/$1"
  as_pg "$PG_BIN/initdb" -D "$data" -U postgres --pwfile="$PGROOT/pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync --no-instructions \
    >"$PGROOT/$name.initdb.log" 2>&1 || { cat "$PGROOT/$name.initdb.log" >&2; die "initdb $name failed"; }
  write_conf "$data" "$port"
  as_pg tee "$data/pg_hba.conf" >/dev/null <<'EOF'
# shardgate tools/pg_cluster.sh
local all         all                    trust
local replication all                    trust
host  all         app_md5  127.0.0.1/32  md5
host  all         all      127.0.0.1/32  scram-sha-256
host  replication postgres 127.0.0.1/32  scram-sha-256
EOF
  start_server "$name"
  psql_su "$port" postgres -c "CREATE ROLE app LOGIN CREATEDB PASSWORD 'app_pw'"
  psql_su "$port" postgres -c "SET password_encryption = 'md5'; CREATE ROLE app_md5 LOGIN PASSWORD 'md5_pw'"
  if [[ $DBNAME != postgres ]]; then
    psql_su "$port" postgres -c "CREATE DATABASE \"$DBNAME\" OWNER app"
  fi
  psql_su "$port" "$DBNAME" -c "GRANT ALL ON SCHEMA public TO app, app_md5"
}

start_replica() {  # start_replica NAME PORT PRIMARY_PORT
  local name=$1 port=$2 pport=$3 data="$PGROOT/$1" i state=""
  as_pg env PGPASSWORD="$SUPER_PW" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres \
    -D "$data" -R -X stream -c fast --no-sync >"$PGROOT/$name.basebackup.log" 2>&1 ||
    { cat "$PGROOT/$name.basebackup.log" >&2; die "pg_basebackup $name failed"; }
  # The copied conf has the primary's port; later lines win. cluster_name is the walreceiver's
  # application_name, which is how the primary's pg_stat_replication names this replica.
  write_conf "$data" "$port" "cluster_name = '$name'"
  start_server "$name"
  for ((i = 0; i < 600; i++)); do
    state=$(psql_su "$pport" postgres -c \
      "SELECT state FROM pg_stat_replication WHERE application_name = '$name'" 2>/dev/null || true)
    [[ $state == streaming ]] && return 0
    sleep 0.1
  done
  die "replica $name is not streaming (state '${state}')"
}

cmd_start() {
  [[ -n ${DIR:-} ]] || usage
  ((SHARDS >= 1 && SHARDS <= 16)) || die "--shards must be 1..16"
  ((REPLICAS >= 0 && REPLICAS <= 4)) || die "--replicas must be 0..4"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  PGROOT="$DIR/pg"
  SOCK_DIR="$PGROOT"
  if [[ -d $PGROOT ]]; then
    if cmd_status >/dev/null 2>&1; then die "a cluster is already running in $DIR (stop it first)"; fi
    cmd_stop >/dev/null 2>&1 || true
  fi
  mkdir -p "$PGROOT"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$PGROOT"
    as_pg test -x "$PGROOT" || die "the postgres user cannot reach $PGROOT (choose a --dir under /tmp)"
  fi
  chmod 700 "$PGROOT"
  (umask 077; echo "$SUPER_PW" >"$PGROOT/pwfile")
  [[ $(id -u) -eq 0 ]] && chown postgres: "$PGROOT/pwfile"
  cd "$PGROOT"  # the server user must be able to stat its working directory

  # Ports first (sequentially, so no two servers get the same one), then the shards start in
  # parallel: initdb and pg_basebackup dominate and each shard is independent.
  USED_PORTS=()
  local next=$BASE_PORT
  if ((next == 0)); then next=$((15000 + ($$ * 631) % 16000)); fi
  local s r port
  : >"$DIR/ports"
  for ((s = 0; s < SHARDS; s++)); do
    for ((r = 0; r <= REPLICAS; r++)); do
      if ((BASE_PORT != 0)); then port=$next; port_free "$port" || die "port $port is in use";
      else port=$(next_free_port "$next"); fi
      USED_PORTS+=("$port"); next=$((port + 1))
      if ((r == 0)); then echo "s$s primary 127.0.0.1 $port"; else echo "s$s replica 127.0.0.1 $port"; fi
    done >>"$DIR/ports"
  done
  local pids=() failed=0 pid
  for ((s = 0; s < SHARDS; s++)); do
    (
      mapfile -t ports < <(awk -v s="s$s" '$1 == s {print $4}' "$DIR/ports")
      start_primary "s$s" "${ports[0]}"
      for ((r = 1; r <= REPLICAS; r++)); do start_replica "s${s}r$r" "${ports[$r]}" "${ports[0]}"; done
    ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || { cmd_stop >/dev/null 2>&1 || true; die "the cluster did not start"; }
  write_yaml
  {
    echo "PG_DIR='$DIR'"
    echo "PG_SOCKET_DIR='$SOCK_DIR'"
    awk '$2 == "primary" {print "PG_PORT_" $1 "=" $4}' "$DIR/ports"
  } >"$DIR/env"
  cat "$DIR/ports"
}

write_yaml() {
  local y="$DIR/shardgate.yaml" s
  {
    echo "# shardgate in front of the servers of $DIR (written by tools/pg_cluster.sh)"
    echo "listen: {host: 127.0.0.1, port: $LISTEN_PORT}"
    echo "workers: 2"
    echo "admin:"
    echo "  users: [admin]"
    echo "users:"
    echo "  - {name: postgres, password: postgres, pool_mode: $POOL_MODE}"
    echo "  - {name: app, password: app_pw, pool_mode: $POOL_MODE}"
    echo "  - {name: app_md5, password: md5_pw, pool_mode: $POOL_MODE, auth: md5}"
    echo "  - {name: admin, password: admin, pool_mode: $POOL_MODE}"
    echo "databases:"
    echo "  $DBNAME:"
    echo "    pool_size: 20"
    echo "    shards:"
    for ((s = 0; s < SHARDS; s++)); do
      echo "      - name: s$s"
      awk -v s="s$s" -v db="$DBNAME" '$1 == s && $2 == "primary" {
        print "        primary: {host: " $3 ", port: " $4 ", dbname: " db "}" }' "$DIR/ports"
      if grep -q "^s$s replica" "$DIR/ports"; then
        echo "        replicas:"
        awk -v s="s$s" -v db="$DBNAME" '$1 == s && $2 == "replica" {
          print "          - {host: " $3 ", port: " $4 ", dbname: " db "}" }' "$DIR/ports"
      fi
    done
    if [[ -n $EXTRA_DB_YAML ]]; then cat "$EXTRA_DB_YAML"; fi
    if [[ -n $EXTRA_TOP_YAML ]]; then cat "$EXTRA_TOP_YAML"; fi
  } >"$y"
}

# Every server dir under D/pg (primaries and replicas), replicas first so that a primary is not
# stopped under its streaming replicas.
server_dirs() {
  local d
  for d in "$PGROOT"/*/; do [[ -f $d/PG_VERSION ]] && echo "${d%/}"; done | sort -r
}

cmd_stop() {
  [[ -n ${DIR:-} ]] || usage
  [[ -d $DIR ]] || return 0
  DIR=$(cd "$DIR" && pwd)
  PGROOT="$DIR/pg"
  [[ -d $PGROOT ]] || return 0
  cd /
  local d pid
  for d in $(server_dirs); do
    if [[ -f $d/postmaster.pid ]]; then
      as_pg "$PG_BIN/pg_ctl" -D "$d" -m fast -w -t 30 stop >/dev/null 2>&1 || true
      pid=$(head -n 1 "$d/postmaster.pid" 2>/dev/null || true)
      if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
  done
  rm -rf "$PGROOT" "$DIR/ports" "$DIR/env" "$DIR/shardgate.yaml"
}

cmd_status() {
  [[ -n ${DIR:-} ]] || usage
  DIR=$(cd "$DIR" 2>/dev/null && pwd) || die "no cluster in ${DIR}"
  PGROOT="$DIR/pg"
  [[ -d $PGROOT ]] || die "no cluster in $DIR"
  local d rc=0 any=0
  for d in $(server_dirs); do
    any=1
    if as_pg "$PG_BIN/pg_ctl" -D "$d" status >/dev/null 2>&1; then
      echo "$(basename "$d") running"
    else
      echo "$(basename "$d") stopped"; rc=1
    fi
  done
  ((any)) || rc=1
  [[ -f $DIR/ports ]] && cat "$DIR/ports"
  return $rc
}

CMD=${1:-}; shift || true
DIR="" SHARDS=1 REPLICAS=0 BASE_PORT=0 DBNAME=app LISTEN_PORT=6432 POOL_MODE=transaction
EXTRA_DB_YAML="" EXTRA_TOP_YAML=""
while (($#)); do
  case $1 in
    --dir) DIR=$2; shift 2 ;;
    --shards) SHARDS=$2; shift 2 ;;
    --replicas) REPLICAS=$2; shift 2 ;;
    --base-port) BASE_PORT=$2; shift 2 ;;
    --dbname) DBNAME=$2; shift 2 ;;
    --listen-port) LISTEN_PORT=$2; shift 2 ;;
    --pool-mode) POOL_MODE=$2; shift 2 ;;
    --extra-db-yaml) EXTRA_DB_YAML=$(realpath "$2"); shift 2 ;;
    --extra-top-yaml) EXTRA_TOP_YAML=$(realpath "$2"); shift 2 ;;
    -h|--help) usage ;;
    *) die "unknown option $1" ;;
  esac
done

case $CMD in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
