#!/usr/bin/env bash
# Re-takes the figures of docs/benchmarks.md: the results table (between the
# bench-results markers) and the plot docs/bench-ns-per-page.svg, both from `iopt bench`.
# Run it on a quiet machine; extra arguments go to both runs (e.g. --reps 9).
set -euo pipefail
cd "$(dirname "$0")/.."

doc=docs/benchmarks.md
table=$(mktemp)
trap 'rm -f "$table"' EXIT

cargo run --release -q -- bench --format all --workload all --markdown "$@" > "$table"
cargo run --release -q -- bench --plot docs/bench-ns-per-page.svg "$@" > /dev/null

# Replace what lies between the markers with the new table.
awk -v table="$table" '
  /<!-- bench-results:start -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
  /<!-- bench-results:end -->/ { skip = 0 }
  !skip { print }
' "$doc" > "$doc.new"
mv "$doc.new" "$doc"
echo "updated $doc and docs/bench-ns-per-page.svg"
