#!/bin/bash
# bench-ae.sh -- training throughput of yaflow vs the PyTorch reference on the
# stacked autoencoder (784-300-150-300-784, Adam, batch 128), 1 epoch, 1 thread.
#
# Runs yaflow and torch alternately BENCH_REPEAT times (default 3), keeps the
# best examples/s of each, prints both and the ratio yaflow/torch.
#
# Environment:
#   YAFLOW        the yaflow binary (default ./yaflow; make bench sets it)
#   YAFLOW_DATA   MNIST directory (default ./data; fetched if missing)
#   TORCH_REF     the reference script (default ../shared/reference/torch_ae.py
#                 next to the repository)
#   BENCH_REPEAT  runs of each (default 3)
#   BENCH_MODEL   the model file (default models/stacked-ae.yaml); its peer is
#                 TORCH_REF (bench/bench-vae.sh sets both for the VAE)
#   BENCH_THREADS threads of both (default 1)
#   BENCH_BATCH   batch size of both (default 128)
# Needs python3-torch python3-numpy libopenblas0-pthread; installs them with
# apt when missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '%s\n' "$*"; }
die() { printf 'bench-ae: %s\n' "$*" >&2; exit 1; }

yaflow=${YAFLOW:-./yaflow}
[ -x "$yaflow" ] || die "no yaflow binary at $yaflow: build it first (./bootstrap.sh or make), or set YAFLOW"
model=${BENCH_MODEL:-models/stacked-ae.yaml}
[ -f "$model" ] || die "missing $root/$model"

torch_ref=${TORCH_REF:-$(dirname "$root")/shared/reference/torch_ae.py}
[ -f "$torch_ref" ] || die "reference script $torch_ref not found; set TORCH_REF"

repeat=${BENCH_REPEAT:-3}
threads=${BENCH_THREADS:-1}
batch=${BENCH_BATCH:-128}
case "$repeat" in ''|*[!0-9]*|0) die "BENCH_REPEAT must be a positive integer, not '$repeat'" ;; esac

. "$root/bench/setup.sh"   # MNIST in $data_dir, the peer's packages installed

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-ae.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ------------------------------------------------------------ one run each
# run_yaflow: print yaflow's examples/s for one epoch (last row of metrics.csv)
run_yaflow() {
  rm -rf "$tmp/yf"
  if ! "$yaflow" train "$model" --threads "$threads" --out "$tmp/yf" train.epochs=1 data.valid=0 \
       train.batch_size="$batch" \
       >"$tmp/yf.log" 2>&1; then
    cat "$tmp/yf.log" >&2
    die "yaflow train failed"
  fi
  [ -f "$tmp/yf/metrics.csv" ] || die "yaflow wrote no $tmp/yf/metrics.csv"
  awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "examples_per_s") col = i; next }
    NF > 0 { v = $col }
    END { if (!col || v == "") exit 1; print v }' "$tmp/yf/metrics.csv" ||
    die "no examples_per_s column/value in metrics.csv"
}

# run_torch: print the reference's examples/s for one epoch
run_torch() {
  if ! env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS="$threads" \
       /usr/bin/python3 "$torch_ref" "$data_dir" --threads "$threads" --batch "$batch" --epochs 1 \
       >"$tmp/torch.log" 2>&1; then
    cat "$tmp/torch.log" >&2
    die "the torch reference failed"
  fi
  sed -n 's/^torch examples_per_s=\([0-9.eE+-]*\).*/\1/p' "$tmp/torch.log" | tail -n 1 |
    grep . || die "no 'torch examples_per_s=' line in the reference's output"
}

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (b + 0 > a + 0) ? b : a }'; }

say "bench-ae: $model, 1 epoch, batch $batch, $threads thread(s), best of $repeat (yaflow and torch alternate)"
best_yf=0 best_torch=0 ratios=()
for i in $(seq 1 "$repeat"); do
  yf=$(run_yaflow)
  if [ "$threads" -gt 1 ]; then # the host may have moved the vCPUs apart (bench-scaling.sh)
    say "  run $i/$repeat  yaflow  $yf examples/s (cores $(lat) ns apart after it)"
  else
    say "  run $i/$repeat  yaflow  $yf examples/s"
  fi
  best_yf=$(max "$best_yf" "$yf")
  th=$(run_torch)
  say "  run $i/$repeat  torch   $th examples/s"
  best_torch=$(max "$best_torch" "$th")
  ratios+=("$(awk -v y="$yf" -v t="$th" 'BEGIN { printf "%.3f", (t > 0) ? y / t : 0 }')")
done

# The machine is shared: besides best against best, the median of the
# ratios of runs taken back to back, which drift affects least.
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 }
  END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
awk -v y="$best_yf" -v t="$best_torch" -v m="$median" -v all="${ratios[*]}" 'BEGIN {
  printf "yaflow  examples_per_s=%.0f\n", y
  printf "torch   examples_per_s=%.0f\n", t
  printf "ratio   yaflow/torch=%.3f (best against best)\n", (t > 0) ? y / t : 0
  printf "ratio   median of pairs=%.3f (pairs: %s)\n", m, all
}'
