#!/bin/bash
# bench-scaling.sh -- how much faster yaflow trains on two threads than on
# one: the stacked autoencoder (batch 128), `--threads 1` and `--threads 2`
# alternating over BENCH_REPEAT rounds (default 3), 2 epochs each, the second
# epoch's examples/s kept (the first carries start-up). Prints each round,
# the medians and the median of the rounds' ratios.
# This machine's host moves its two virtual CPUs together (a cache line
# goes from one to the other and back in about 70 ns) and apart (about
# 400 ns) by itself, from minute to minute; apart, two threads sharing
# BLIS's packed blocks run at about 1.05 times one thread, while two
# separate processes keep their speed. So each round prints that round
# trip, measured just before and just after its two-thread run
# (bench/corelat, CORELAT), and the medians are also given over the rounds
# whose cores were together both times (under 200 ns): the machine as it is
# when quiet. (A round that starts together and ends apart was moved during
# its run: one such round gave 1.48.)
# Environment: YAFLOW, YAFLOW_DATA, BENCH_REPEAT as bench-ae.sh; CORELAT.
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

one=() two=() ratio=() near=()
for r in $(seq "$repeat"); do
  a=$(rate 1); ns=$(lat); b=$(rate 2); ns2=$(lat)
  one+=("$a"); two+=("$b")
  ratio+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')")
  together "$ns" "$ns2" && near+=("${ratio[-1]}")
  echo "round $r: 1 thread $a examples/s, 2 threads $b, ratio ${ratio[-1]} (cores ${ns} ns apart before, ${ns2} ns after)"
done
[ -x "$corelat" ] || echo "(no $corelat: make bench/corelat to see where the cores were)"
if [ ${#near[@]} -gt 0 ]; then m=$(median "${near[@]}"); else m=none; fi
echo "cores together (round trip under 200 ns before and after) in ${#near[@]} of $repeat rounds; their median ratio: $m"
echo "median: 1 thread $(median "${one[@]}") examples/s, 2 threads $(median "${two[@]}"); two threads / one: median of pairs=$(median "${ratio[@]}")"
