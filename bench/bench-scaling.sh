#!/bin/bash
# bench-scaling.sh -- how much faster yaflow trains on two threads than on
# one: the stacked autoencoder (batch 128), `--threads 1` and `--threads 2`
# alternating over BENCH_REPEAT rounds (default 3), 2 epochs each, the second
# epoch's examples/s kept (the first carries start-up). Prints each round,
# the medians and the median of the rounds' ratios.
# Environment: YAFLOW, YAFLOW_DATA, BENCH_REPEAT as bench-ae.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
die() { printf 'bench-scaling: %s\n' "$*" >&2; exit 1; }
yaflow=${YAFLOW:-./yaflow}
[ -x "$yaflow" ] || die "no yaflow binary at $yaflow: build it first, or set YAFLOW"
repeat=${BENCH_REPEAT:-3}
case "$repeat" in ''|*[!0-9]*|0) die "BENCH_REPEAT must be a positive integer, not '$repeat'" ;; esac
. "$root/bench/setup.sh" > /dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-scaling.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

rate() { # threads -> examples/s of the second epoch
  rm -rf "$tmp/run"
  "$yaflow" train models/stacked-ae.yaml --threads "$1" --out "$tmp/run" --data "$data_dir" \
    train.epochs=2 data.valid=0 > "$tmp/log" 2>&1 || { cat "$tmp/log" >&2; die "yaflow train failed"; }
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "examples_per_s") c = i; next }
           NF > 0 { v = $c } END { print v }' "$tmp/run/metrics.csv"
}

one=() two=() ratio=()
for r in $(seq "$repeat"); do
  a=$(rate 1); b=$(rate 2)
  one+=("$a"); two+=("$b")
  ratio+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')")
  echo "round $r: 1 thread $a examples/s, 2 threads $b, ratio ${ratio[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median: 1 thread $(median "${one[@]}") examples/s, 2 threads $(median "${two[@]}"); two threads / one: median of pairs=$(median "${ratio[@]}")"
