#!/usr/bin/env bash
# Instructions per operation of the benchmark workloads, counted by valgrind's callgrind:
# exact and repeatable, unlike time on a shared machine. Needs valgrind (not CI).
#
#   scripts/instr-counts.sh                    # the issue 9 table, at --size 64M
#   scripts/instr-counts.sh --size 256M        # the same at another size
#   scripts/instr-counts.sh --workloads "W1 W7" --subjects "x86-64 arm64-s1"
#   scripts/instr-counts.sh --profile bench    # built as criterion builds (thin LTO, 1 CGU)
#
# How: every measured operation of a benchmark run goes through one never-inlined
# function, `iopt_bench::measured` (crates/iopt-bench/src/lib.rs); the timed region of
# `iopt bench` is exactly that call. The `run_once` example of crates/iopt-bench runs one
# workload once with one subject and prints its operation count. Under
#   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*iopt_bench::measured*'
# callgrind counts only the instructions inside `measured` (setup, the untimed halves of
# W2e and W7, and teardown are not counted), so Ir/op = total Ir / operations, with no
# subtraction. The count includes the benchmark's own loop around each call and its
# check of the result (a few instructions per call, for every subject alike).
#
# Output: one row per workload, one column per subject, Ir per operation (see the `op`
# column of `iopt bench`: a 4K page, a lookup, ...); "-" where a subject does not run
# the workload.
set -euo pipefail
cd "$(dirname "$0")/.."

size=64M
profile=release
workloads="W1 W1u W2 W2e W2u W4 W7 W7u"
subjects="x86-64 x86_64-crate arm64-s1 aarch64-paging fill"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --subjects) subjects=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "instr-counts.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

command -v valgrind >/dev/null || { echo "instr-counts.sh: valgrind is not installed" >&2; exit 1; }

# The release and bench profiles share target/release: take the path cargo reports.
bin=$(cargo build --profile "$profile" -q -p iopt-bench --example run_once --message-format=json |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "instr-counts.sh: no run_once executable was built" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "Ir per operation (callgrind; --size $size, --profile $profile, $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo
header="| workload |"
rule="|---|"
for s in $subjects; do header="$header $s |"; rule="$rule--:|"; done
echo "$header"
echo "$rule"
for w in $workloads; do
  row="| $w |"
  for s in $subjects; do
    # run_once refuses (status 2) what the subject does not run.
    if ops=$(valgrind --tool=callgrind --collect-atstart=no \
          --toggle-collect='*iopt_bench::measured*' --callgrind-out-file="$out" \
          "$bin" "$w" "$s" "$size" 2>/dev/null); then
      ops=$(echo "$ops" | awk '{ print $2 }')
      ir=$(awk '/^totals:/ { print $2 }' "$out")
      row="$row $(awk -v ir="$ir" -v ops="$ops" 'BEGIN { printf "%.1f", ir / ops }') |"
    else
      row="$row - |"
    fi
  done
  echo "$row"
done
