#!/bin/bash
# bench-cnn.sh -- yaflow vs the PyTorch peer on the CNN classifier
# (models/cnn-classifier.yaml against ../shared/reference/torch_cnn.py:
# conv 3x3x32, max-pool, conv 3x3x64, max-pool, dense 128, dense 10; Adam,
# batch 128): training throughput (1 epoch on all 60000 images) and
# inference throughput (the 10000 test images in batches of 1000), on one
# and on two threads, the two programs alternating BENCH_REPEAT times
# (default 3). Prints the best of each and the ratios, per thread count and
# best setting against best setting.
#
# Environment: YAFLOW (default ./yaflow), YAFLOW_DATA (default ./data),
# TORCH_REF (default ../shared/reference/torch_cnn.py), BENCH_REPEAT,
# BENCH_THREADS (default "1 2").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '%s\n' "$*"; }
die() { printf 'bench-cnn: %s\n' "$*" >&2; exit 1; }

yaflow=${YAFLOW:-./yaflow}
[ -x "$yaflow" ] || die "no yaflow binary at $yaflow: build it first, or set YAFLOW"
model=models/cnn-classifier.yaml
torch_ref=${TORCH_REF:-$(dirname "$root")/shared/reference/torch_cnn.py}
[ -f "$torch_ref" ] || die "reference script $torch_ref not found; set TORCH_REF"
repeat=${BENCH_REPEAT:-3}
case "$repeat" in ''|*[!0-9]*|0) die "BENCH_REPEAT must be a positive integer, not '$repeat'" ;; esac

. "$root/bench/setup.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-cnn.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# yaflow: "train_examples_per_s infer_examples_per_s" with T threads
run_yaflow() {
  rm -rf "$tmp/yf"
  "$yaflow" train "$model" --threads "$1" --out "$tmp/yf" train.epochs=1 data.valid=0 \
    >"$tmp/yf.log" 2>&1 || { cat "$tmp/yf.log" >&2; die "yaflow train failed"; }
  local train infer
  train=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "examples_per_s") c = i; next }
                   NF > 0 { v = $c } END { print v }' "$tmp/yf/metrics.csv")
  infer=$("$yaflow" eval "$tmp/yf" --threads "$1" --timing |
          sed -n 's/^test_infer_examples_per_s=//p')
  [ -n "$train" ] && [ -n "$infer" ] || die "no yaflow figures"
  echo "$train $infer"
}

# torch: "train_examples_per_s infer_examples_per_s" with T threads
run_torch() {
  env -u OPENBLAS_CORETYPE OMP_NUM_THREADS="$1" /usr/bin/python3 "$torch_ref" "$data_dir" \
    --threads "$1" --epochs 1 >"$tmp/torch.log" 2>&1 || { cat "$tmp/torch.log" >&2; die "the torch peer failed"; }
  sed -n 's/^torch examples_per_s=\([0-9.]*\) .*infer_examples_per_s=\([0-9.]*\).*/\1 \2/p' \
    "$tmp/torch.log" | tail -n 1 | grep . || die "no 'torch examples_per_s=' line from the peer"
}

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (b + 0 > a + 0) ? b : a }'; }
declare -A best pairs
for k in yf_train yf_infer th_train th_infer; do for t in ${BENCH_THREADS:-1 2}; do best[$k$t]=0; done; done
say "bench-cnn: $model, 1 epoch, best of $repeat (yaflow and torch alternate)"
for i in $(seq 1 "$repeat"); do
  for t in ${BENCH_THREADS:-1 2}; do
    read -r ytr yin <<<"$(run_yaflow "$t")"
    say "  run $i/$repeat  $t thread(s)  yaflow  train $ytr  infer $yin examples/s"
    read -r ttr tin <<<"$(run_torch "$t")"
    say "  run $i/$repeat  $t thread(s)  torch   train $ttr  infer $tin examples/s"
    best[yf_train$t]=$(max "${best[yf_train$t]}" "$ytr"); best[yf_infer$t]=$(max "${best[yf_infer$t]}" "$yin")
    best[th_train$t]=$(max "${best[th_train$t]}" "$ttr"); best[th_infer$t]=$(max "${best[th_infer$t]}" "$tin")
    pairs[$t]+="$(awk -v a="$ytr" -v b="$ttr" 'BEGIN { printf "%.3f", a / b }') "
  done
done
top() { local b=0; for t in ${BENCH_THREADS:-1 2}; do b=$(max "$b" "${best[$1$t]}"); done; echo "$b"; }
# the machine is shared: also the median of the training ratios of runs
# taken back to back
median() { printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 }
  END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for t in ${BENCH_THREADS:-1 2}; do
  say "$t thread(s): training ratios of the pairs: ${pairs[$t]}(median $(median "${pairs[$t]}"))"
  awk -v t="$t" -v a="${best[yf_train$t]}" -v b="${best[th_train$t]}" -v c="${best[yf_infer$t]}" \
      -v d="${best[th_infer$t]}" 'BEGIN {
    printf "%d thread(s): train yaflow %.0f torch %.0f ratio %.2f | infer yaflow %.0f torch %.0f ratio %.2f\n",
           t, a, b, a / b, c, d, c / d }'
done
awk -v a="$(top yf_train)" -v b="$(top th_train)" -v c="$(top yf_infer)" -v d="$(top th_infer)" 'BEGIN {
  printf "best setting: train yaflow %.0f torch %.0f ratio %.2f | infer yaflow %.0f torch %.0f ratio %.2f\n",
         a, b, a / b, c, d, c / d }'
