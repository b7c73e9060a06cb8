#!/usr/bin/env bash
# Installs missing Debian packages, configures and builds shardgate, runs every test.
#
#   tools/test.sh [--asan | --tsan | --debug] [extra ctest arguments, e.g. -L integration -R Foo]
#
# Default preset: release (build/release). The exit code is ctest's. $SHARDGATE_CMAKE_ARGS adds
# cache settings (e.g. "-DSHARDGATE_DIRS=protocol;conf"), $SHARDGATE_JOBS overrides -j2.
# Works as root (servers run as the `postgres` OS user) and as a sudoer (apt-get through sudo).
# Everything the tests start lives under one temp dir; whatever still runs from it is killed.
# After a full run (no extra ctest arguments), every libFuzzer target runs for
# $SHARDGATE_FUZZ_SECONDS (60; 0 skips) through tools/fuzz.sh; a finding fails the run.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

PRESET=release
CTEST_ARGS=()
while (($#)); do
  case $1 in
    --asan) PRESET=asan; shift ;;
    --tsan) PRESET=tsan; shift ;;
    --debug) PRESET=debug; shift ;;
    --release) PRESET=release; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) CTEST_ARGS+=("$1"); shift ;;
  esac
done
JOBS=${SHARDGATE_JOBS:-2}
BUILD_DIR="$ROOT/build/$PRESET"

log() { echo "== test.sh [$(date -u +%T), ${SECONDS}s]: $*" >&2; }

log "installing missing packages"
bash "$ROOT/tools/install_deps.sh" || { log "install_deps.sh failed"; exit 1; }

log "configuring $PRESET"
if [[ -f $ROOT/CMakePresets.json ]] && grep -q "\"name\": \"$PRESET\"" "$ROOT/CMakePresets.json"; then
  # shellcheck disable=SC2086
  cmake --preset "$PRESET" ${SHARDGATE_CMAKE_ARGS:-} >/dev/null || { log "configure failed"; exit 1; }
else
  # shellcheck disable=SC2086
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    ${SHARDGATE_CMAKE_ARGS:-} >/dev/null ||
    { log "configure failed"; exit 1; }
fi

log "building with -j$JOBS"
cmake --build "$BUILD_DIR" -j "$JOBS" || { log "build failed"; exit 1; }

# One temp dir for every server and proxy the tests start, so leftovers are found by path.
# Traversable by others: when root, the servers run as `postgres` and must reach their dirs.
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/shardgate-test.XXXXXX")
chmod 755 "$TEST_TMP"

# Kills what is still running from TEST_TMP (a crashed test cannot run its destructors):
# postmasters found by their data dir on the command line (and their backends), proxies by
# their --config path.
cleanup() {
  local pid
  for pid in $(pgrep -f -- "$TEST_TMP/" 2>/dev/null); do
    [[ $pid == "$$" ]] && continue
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$TEST_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "running tests (ctest -j$JOBS, temp dir $TEST_TMP)"
TMPDIR="$TEST_TMP" ctest --test-dir "$BUILD_DIR" -j "$JOBS" --output-on-failure --timeout 600 \
  "${CTEST_ARGS[@]}"
rc=$?
log "ctest exit code $rc"

FUZZ_SECONDS=${SHARDGATE_FUZZ_SECONDS:-60}
if ((${#CTEST_ARGS[@]} == 0 && FUZZ_SECONDS > 0)) && [[ $PRESET == release ]]; then
  log "fuzzing: each target for ${FUZZ_SECONDS}s (tools/fuzz.sh)"
  TMPDIR="$TEST_TMP" bash "$ROOT/tools/fuzz.sh" --seconds "$FUZZ_SECONDS"
  fuzz_rc=$?
  log "fuzz exit code $fuzz_rc"
  ((rc == 0)) && rc=$fuzz_rc
fi
exit $rc
