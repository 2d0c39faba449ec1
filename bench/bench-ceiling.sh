#!/bin/bash
# bench-ceiling.sh -- what this machine gives two cores at all, as a bound on
# the two-thread and two-rank targets: the stacked autoencoder on one thread,
# alone (pinned to core 0) and as two independent processes at once (pinned
# to cores 0 and 1), nothing shared between them, alternating over
# BENCH_REPEAT rounds (default 3), 3 epochs each, the middle epoch's
# examples/s kept (the two processes overlap through it). Printed per round
# and as medians of the rounds' ratios:
#   pair 128 / alone 128: two cores each doing a whole one-thread training
#     against one core; a two-thread run of one training has the same work
#     plus its synchronisation, so this bounds two threads against one;
#   pair 64 / alone 128: two processes on batches of 64 against one on 128,
#     the work of two MPI ranks sharing a global batch of 128 with their
#     allreduce left out: a bound on two ranks against one process there;
#   pair 128 / alone 256: the same for a global batch of 256.
# Environment: YAFLOW, YAFLOW_DATA, BENCH_REPEAT as bench-ae.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
die() { printf 'bench-ceiling: %s\n' "$*" >&2; exit 1; }
yaflow=${YAFLOW:-./yaflow}
[ -x "$yaflow" ] || die "no yaflow binary at $yaflow: build it first, or set YAFLOW"
command -v taskset > /dev/null || die "taskset (util-linux) is needed"
[ "$(nproc --all)" -ge 2 ] || die "needs two cores"
repeat=${BENCH_REPEAT:-3}
case "$repeat" in ''|*[!0-9]*|0) die "BENCH_REPEAT must be a positive integer, not '$repeat'" ;; esac
. "$root/bench/setup.sh" > /dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-ceiling.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

start() { # core batch tag: one-thread training in the background
  rm -rf "$tmp/$3"
  taskset -c "$1" "$yaflow" train models/stacked-ae.yaml --threads 1 --out "$tmp/$3" \
    --data "$data_dir" train.epochs=3 train.batch_size="$2" data.valid=0 > "$tmp/$3.log" 2>&1 &
}
rate() { # tag -> examples/s of epoch 2
  [ -s "$tmp/$1/metrics.csv" ] || { cat "$tmp/$1.log" >&2; die "yaflow train failed"; }
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "examples_per_s") c = i; next }
           NR == 3 { print $c }' "$tmp/$1/metrics.csv"
}
alone() { start 0 "$1" a; wait $! || die "yaflow train failed"; rate a; }
pair() {
  start 0 "$1" a; local p=$!; start 1 "$1" b; local q=$!
  wait "$p" && wait "$q" || die "yaflow train failed"
  awk -v a="$(rate a)" -v b="$(rate b)" 'BEGIN { print a + b }'
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

t2=() r128=() r256=()
for r in $(seq "$repeat"); do
  a128=$(alone 128); a256=$(alone 256); p128=$(pair 128); p64=$(pair 64)
  t2+=("$(div "$p128" "$a128")"); r128+=("$(div "$p64" "$a128")"); r256+=("$(div "$p128" "$a256")")
  echo "round $r: alone 128 $a128 examples/s, alone 256 $a256; pair 128 $p128, pair 64 $p64;" \
       "pair128/alone128 ${t2[-1]}, pair64/alone128 ${r128[-1]}, pair128/alone256 ${r256[-1]}"
done
echo "median: two cores against one, independent work: $(median "${t2[@]}") (bound on two threads / one);" \
     "two ranks at global batch 128 without allreduce: $(median "${r128[@]}");" \
     "at 256: $(median "${r256[@]}")"
