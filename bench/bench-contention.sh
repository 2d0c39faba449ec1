#!/bin/bash
# bench-contention.sh -- training speed on a busy machine: the stacked
# autoencoder (models/stacked-ae.yaml, batch 128, one epoch) while other
# processes hold cores, for yaflow's default (no --threads: it adapts the
# thread count to the load), yaflow --threads 1, yaflow --threads <cores>
# (every core, the old default) and the PyTorch peer pinned to 1 and to
# <cores> threads, all under the same load, alternating over BENCH_REPEAT
# rounds (default 3). Two loads: one busy process (a shell loop), then one
# per core. Prints each one's median examples/s and the ratios.
#
# Environment: YAFLOW, YAFLOW_DATA, TORCH_REF, BENCH_REPEAT as bench-ae.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '%s\n' "$*"; }
die() { printf 'bench-contention: %s\n' "$*" >&2; exit 1; }

yaflow=${YAFLOW:-./yaflow}
[ -x "$yaflow" ] || die "no yaflow binary at $yaflow: build it first, or set YAFLOW"
torch_ref=${TORCH_REF:-$(dirname "$root")/shared/reference/torch_ae.py}
[ -f "$torch_ref" ] || die "reference script $torch_ref not found; set TORCH_REF"
repeat=${BENCH_REPEAT:-3}
case "$repeat" in ''|*[!0-9]*|0) die "BENCH_REPEAT must be a positive integer, not '$repeat'" ;; esac
. "$root/bench/setup.sh"
cores=$(nproc)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-contention.XXXXXX")
busy=()
stop_load() { for p in "${busy[@]}"; do kill "$p" 2>/dev/null || true; done; busy=(); }
trap 'stop_load; rm -rf "$tmp"' EXIT
start_load() { # N busy processes
  for _ in $(seq 1 "$1"); do
    sh -c 'while :; do :; done' &
    busy+=($!)
  done
}

# yaflow [--threads N]: examples/s of one epoch
run_yaflow() {
  rm -rf "$tmp/yf"
  "$yaflow" train models/stacked-ae.yaml "$@" --out "$tmp/yf" train.epochs=1 data.valid=0 \
    > "$tmp/yf.log" 2>&1 || { cat "$tmp/yf.log" >&2; die "yaflow train failed"; }
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "examples_per_s") c = i; next }
           NF { v = $c } END { print v }' "$tmp/yf/metrics.csv"
}
run_torch() { # threads
  env -u OPENBLAS_CORETYPE OMP_NUM_THREADS="$1" /usr/bin/python3 "$torch_ref" "$data_dir" \
    --threads "$1" --epochs 1 > "$tmp/torch.log" 2>&1 || { cat "$tmp/torch.log" >&2; die "torch failed"; }
  sed -n 's/^torch examples_per_s=\([0-9.eE+-]*\).*/\1/p' "$tmp/torch.log" | tail -n 1
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A med=()
for load in 1 "$cores"; do
  say "bench-contention: $load busy process(es) on $cores cores, stacked-ae 1 epoch, median of $repeat"
  start_load "$load"
  sleep 1
  declare -A runs=()
  for i in $(seq 1 "$repeat"); do
    runs[auto]+="$(run_yaflow) "
    runs[one]+="$(run_yaflow --threads 1) "
    runs[all]+="$(run_yaflow --threads "$cores") "
    runs[t1]+="$(run_torch 1) "
    runs[tall]+="$(run_torch "$cores") "
    say "  round $i/$repeat done"
  done
  stop_load
  for k in auto one all t1 tall; do
    med[$k]=$(printf '%s\n' ${runs[$k]} | median)
  done
  awk -v a="${med[auto]}" -v o="${med[one]}" -v l="${med[all]}" -v t1="${med[t1]}" \
      -v tl="${med[tall]}" -v c="$cores" -v load="$load" -v ra="${runs[auto]}" -v ro="${runs[one]}" 'BEGIN {
    printf "  yaflow default (adaptive)  examples_per_s=%.0f  (runs: %s)\n", a, ra
    printf "  yaflow --threads 1         examples_per_s=%.0f  (runs: %s)\n", o, ro
    printf "  yaflow --threads %d         examples_per_s=%.0f\n", c, l
    printf "  torch 1 thread             examples_per_s=%.0f\n", t1
    printf "  torch %d threads            examples_per_s=%.0f\n", c, tl
    printf "  ratio default/--threads 1 = %.3f (want >= %s), default/torch best = %.3f\n",
      a / o, load < c ? "1.0" : "0.8", a / ((t1 > tl) ? t1 : tl)
  }'
  unset runs
done
