#!/usr/bin/env bash
# The sample Grafana dashboard is valid JSON and only queries metrics shardgate exports
# (every shardgate_* name in it appears in proxy/metrics.cc).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DASH="$ROOT/tools/grafana/shardgate.json"
jq -e '.panels | length > 0' "$DASH" >/dev/null
missing=0
for name in $(grep -o 'shardgate_[a-z_]*' "$DASH" | sed -E 's/_(bucket|count|sum)$//' | sort -u); do
  if ! grep -q "\"$name\"\|$name\"" "$ROOT/proxy/metrics.cc"; then
    echo "the dashboard queries $name, which proxy/metrics.cc does not export" >&2
    missing=1
  fi
done
exit $missing
