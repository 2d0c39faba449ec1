#!/bin/bash
# dist-cost.sh -- the cost model of docs/distributed.md, from numbers
# measured on this machine in this run:
#   t_ex   seconds of computation per training example, one thread, for each
#          of the chapter's models (one epoch of 12,000 images, batch 128);
#   t_opt  the optimizer's pass per step (it does not shrink with more
#          ranks: every rank updates every parameter), from Adam's measured
#          cost per parameter (bench/roofline on the stacked autoencoder);
#   P      the model's parameters (4 bytes each in the gradient block).
# For N ranks a ring allreduce sends and receives 2(N-1)/N of the gradient
# bytes per rank, plus 2(N-1) latencies of 10 us; with no overlap (the
# conservative case) a step of global batch B takes
#   t_ex B / N + t_opt + t_comm,
# and the scaling efficiency is the computation's share of that. The batch
# at which it reaches 80% is B80 = 4 N (t_opt + t_comm) / t_ex.
# Environment: YAFLOW, YAFLOW_DATA (as bench-ae.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
yaflow=${YAFLOW:-./yaflow}
. "$root/bench/setup.sh" > /dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dist-cost.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Adam's cost per parameter per step, from the roofline bench's own timing
roofline=${ROOFLINE:-$root/bench/roofline}
opt_ms=$("$roofline" models/stacked-ae.yaml --threads 1 --rounds 1 --steps 100 |
         sed -n 's/.*optimizer \([0-9.]*\) ms.*/\1/p' | head -1)
opt_per_param=$(awk -v ms="$opt_ms" 'BEGIN { printf "%.4g", ms * 1e-3 / 561968 }')
echo "Adam: $opt_ms ms per step for the stacked autoencoder's 561,968 parameters ($opt_per_param s each)"
echo

printf '%-22s %10s %10s %9s | %-33s | %-33s\n' "model" "params" "us/example" "opt ms" \
  "10 Gbit/s: N=2,4,8,16,32,64 B80" "100 Gbit/s: N=2,4,8,16,32,64 B80"
for model in stacked-ae vae ex08-dae hashing-ae cnn-classifier; do
  rm -rf "$tmp/run"
  "$yaflow" train "models/$model.yaml" --threads 1 --out "$tmp/run" --data "$data_dir" \
    train.epochs=1 data.valid=0 data.train_fraction=0.2 train.batch_size=128 > "$tmp/log" 2>&1 ||
    { cat "$tmp/log" >&2; exit 1; }
  ex_s=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "examples_per_s") c = i; next }
                  NF > 0 { v = $c } END { print v }' "$tmp/run/metrics.csv")
  params=$(sed -n 's/.*model [^,]*, \([0-9]*\) parameters\{0,1\},.*/\1/p' "$tmp/run/log.txt" | head -1)
  awk -v name="$model" -v ex_s="$ex_s" -v P="$params" -v opp="$opt_per_param" 'BEGIN {
    t_ex = 1 / ex_s; t_opt = P * opp; bytes = 4 * P
    line[0] = ""; line[1] = ""
    for (k = 0; k < 2; k++) {
      bw = (k == 0 ? 10e9 : 100e9) / 8
      for (N = 2; N <= 64; N *= 2) {
        comm = 2 * (N - 1) / N * bytes / bw + 2 * (N - 1) * 10e-6
        b80 = 4 * N * (t_opt + comm) / t_ex
        line[k] = line[k] sprintf("%s%d", N > 2 ? "," : "", b80 + 0.5)
      }
    }
    printf "%-22s %10d %10.1f %9.3f | %-33s | %-33s\n", name, P, t_ex * 1e6, t_opt * 1e3, line[0], line[1]
  }'
done
