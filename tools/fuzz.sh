#!/usr/bin/env bash
# Builds the libFuzzer targets (preset fuzz: clang with ASan and UBSan, only protocol, conf and
# routing) and runs each for a bounded time from its seed corpus (tests/fuzz/corpus/<target>),
# then prints the executions per target. A finding (crash, leak, sanitizer report, an input that
# runs over 10 s or 2 GiB) fails the run: the input is kept in build/fuzz/findings/ and
# replays with `build/fuzz/tests/fuzz/fuzz_<target> FILE`.
#
#   tools/fuzz.sh [--seconds 60] [TARGET...]      targets: frames auth sql yaml (default: all)
#
# The seed corpus is only read: what a run discovers goes to a temp dir, deleted at the end
# (--keep-corpus DIR keeps it there instead).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=60 KEEP="" TARGETS=()
while (($#)); do
  case $1 in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --keep-corpus) KEEP=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    frames|auth|sql|yaml) TARGETS+=("$1"); shift ;;
    *) echo "unknown option or target $1" >&2; exit 2 ;;
  esac
done
((SECONDS_EACH >= 1 && SECONDS_EACH <= 86400)) || { echo "--seconds must be 1..86400" >&2; exit 2; }
((${#TARGETS[@]})) || TARGETS=(frames auth sql yaml)
command -v clang++ >/dev/null || { echo "clang++ not found (tools/install_deps.sh)" >&2; exit 1; }

BUILD="$ROOT/build/fuzz"
echo "== building the fuzz targets ($BUILD)" >&2
(cd "$ROOT" && cmake --preset fuzz >/dev/null)
ninja -C "$BUILD" -j "$(nproc)" $(printf 'fuzz_%s ' "${TARGETS[@]}") >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sg-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BUILD/findings"
failed=0
summary=""
for t in "${TARGETS[@]}"; do
  corpus="$WORK/$t"
  [[ -n $KEEP ]] && corpus="$KEEP/$t"
  mkdir -p "$corpus"
  echo "== fuzz_$t for ${SECONDS_EACH}s" >&2
  log="$WORK/$t.log"
  # The first corpus dir receives new inputs; the seeds are read from the second.
  if "$BUILD/tests/fuzz/fuzz_$t" "$corpus" "$ROOT/tests/fuzz/corpus/$t" \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
      -print_final_stats=1 -artifact_prefix="$BUILD/findings/$t-" >"$log" 2>&1; then
    verdict=ok
  else
    verdict=FINDING
    failed=1
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -n 10 >&2
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
  summary+=$(printf '  %-8s %-8s %12s runs  %s, %d inputs in the corpus\n' "$t" "$verdict" \
    "${execs:-?}" "${cov:-cov: ?}" "$(find "$corpus" -type f | wc -l)")$'\n'
done
echo
echo "fuzzing, ${SECONDS_EACH}s per target:"
printf '%s' "$summary"
exit $failed
