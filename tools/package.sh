#!/usr/bin/env bash
# Builds the Debian package of shardgate (shardgate, shardctl, the systemd unit, the example
# config as /etc/shardgate/shardgate.yaml) and prints the path of the .deb.
#
#   tools/package.sh [--build-dir DIR] [--out DIR]
#
# Default: configures and builds the release preset (build/release), only the two binaries the
# package holds, then `cpack -G DEB`; the .deb goes to --out (default: the build dir).
# --build-dir uses an already configured tree instead (building the two binaries in it).
# Installs missing Debian packages first (tools/install_deps.sh). $SHARDGATE_JOBS overrides -j2.
# Install with: dpkg -i shardgate_<version>_<arch>.deb
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=""
OUT_DIR=""
while (($#)); do
  case $1 in
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --out) OUT_DIR=$(realpath -m "$2"); shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
JOBS=${SHARDGATE_JOBS:-2}

log() { echo "== package.sh: $*" >&2; }

log "installing missing packages"
bash "$ROOT/tools/install_deps.sh"
for tool in cpack dpkg-deb dpkg-shlibdeps; do
  if ! command -v "$tool" >/dev/null; then
    echo "package.sh: $tool not found (dpkg-dev provides dpkg-shlibdeps)" >&2
    exit 1
  fi
done

if [[ -z $BUILD_DIR ]]; then
  BUILD_DIR="$ROOT/build/release"
  log "configuring the release preset"
  (cd "$ROOT" && cmake --preset release >/dev/null)
elif [[ ! -f $BUILD_DIR/CPackConfig.cmake ]]; then
  echo "package.sh: $BUILD_DIR is not a configured shardgate build (no CPackConfig.cmake)" >&2
  exit 1
else
  cmake "$BUILD_DIR" >/dev/null  # picks up changes to the install rules
fi

log "building shardgate and shardctl in $BUILD_DIR with -j$JOBS"
cmake --build "$BUILD_DIR" -j "$JOBS" --target shardgate shardctl >&2  # stdout: the .deb only

OUT_DIR=${OUT_DIR:-$BUILD_DIR}
mkdir -p "$OUT_DIR"
log "cpack -G DEB into $OUT_DIR"
# cpack's own staging (_CPack_Packages) goes to OUT_DIR too; its log is shown on failure only.
cpack_log=$(mktemp "${TMPDIR:-/tmp}/sg-cpack.XXXXXX")
trap 'rm -f "$cpack_log"' EXIT
if ! timeout 600 cpack -G DEB --config "$BUILD_DIR/CPackConfig.cmake" -B "$OUT_DIR" \
    >"$cpack_log" 2>&1; then
  cat "$cpack_log" >&2
  echo "package.sh: cpack failed" >&2
  exit 1
fi
deb=$(sed -n 's/^CPack: - package: \(.*\.deb\) generated\.$/\1/p' "$cpack_log" | tail -n 1)
if [[ -z $deb || ! -f $deb ]]; then
  cat "$cpack_log" >&2
  echo "package.sh: cpack reported no .deb" >&2
  exit 1
fi
rm -rf "$OUT_DIR/_CPack_Packages"
echo "$deb"
