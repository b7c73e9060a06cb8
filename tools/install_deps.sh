#!/usr/bin/env bash
# Installs every Debian 12 package shardgate needs to build, test and run the demo.
# Idempotent: only missing packages are installed. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  build-essential clang libclang-rt-14-dev cmake ninja-build pkg-config git
  libboost1.81-dev libpq-dev libpg-query-dev libprotobuf-c-dev
  libyaml-cpp-dev libabsl-dev libspdlog-dev libfmt-dev libcli11-dev
  prometheus-cpp-dev libsystemd-dev libssl-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  postgresql-15 postgresql-client-15 pgbouncer procps iproute2 openssl jq
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

echo "install_deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Debian starts a cluster and pgbouncer as services on install; shardgate's tests and demo run
# their own servers on free ports, so the packaged ones are stopped to leave the machine quiet.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  $SUDO systemctl stop pgbouncer postgresql >/dev/null 2>&1 || true
fi
