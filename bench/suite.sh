#!/bin/bash
# suite.sh -- make bench: every benchmark case, each running yaflow and its
# PyTorch peer (../shared/reference/, pinned to the same thread count) on
# the same model, data and batch size, alternating over BENCH_REPEAT rounds
# (default 3), and a summary table of yaflow/PyTorch ratios at the end:
#   stacked autoencoder, batch 32, 128, 512, on 1 and 2 threads (bench-ae.sh)
#   the VAE (bench-vae.sh)            the CNN classifier, training and
#   inference on 1 and 2 threads (bench-cnn.sh)
#   peak resident memory of one epoch of the stacked autoencoder
#   training while a busy process holds one core, then every core
#   (bench-contention.sh)
#   two threads against one (bench-scaling.sh), and what two cores give
#   two independent one-thread trainings (bench-ceiling.sh)
#   two MPI ranks against one process (bench-mpi.sh)
#   a training step's GFLOP/s against BLIS's own sgemm on the same GEMMs
#   (bench/roofline): the stacked autoencoder at batch 32, 128 and 512 on
#   one thread and at 128 on two, the VAE, and the CNN classifier on one
#   and two threads (its convolutions as the GEMMs they unfold into)
# Environment: YAFLOW, YAFLOW_DATA, BENCH_REPEAT as the scripts it runs.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export YAFLOW=${YAFLOW:-$root/yaflow}
log=$(mktemp "${TMPDIR:-/tmp}/bench-suite.XXXXXX")
trap 'rm -f "$log"' EXIT
summary=()
failed=0

run() { # name, command...
  local name=$1
  shift
  echo "== $name"
  if ! "$@" 2>&1 | tee "$log"; then
    summary+=("$name: FAILED")
    failed=1
    return
  fi
  local r
  r=$(sed -n 's/.*ratio *yaflow\/torch=\([0-9.]*\).*/\1/p; s/.*median of pairs=\([0-9.]*\).*/median \1/p' "$log" |
      tr '\n' ' ')
  summary+=("$name: ${r:-see above}")
}

for threads in 1 2; do
  for batch in 32 128 512; do
    run "stacked-ae batch $batch, $threads thread(s)" \
      env BENCH_THREADS=$threads BENCH_BATCH=$batch bash bench/bench-ae.sh
  done
done
run "vae, 1 thread" bash bench/bench-vae.sh
echo "== cnn classifier (training and inference, 1 and 2 threads)"
bash bench/bench-cnn.sh 2>&1 | tee "$log" || failed=1
summary+=("cnn: $(grep -i 'ratio' "$log" | tr -s ' ' | tr '\n' ';')")

# peak resident memory of one epoch, one thread
. bench/setup.sh > /dev/null
tmp=$(mktemp -d)
/usr/bin/time -f '%M' -o "$tmp/yf.kb" "$YAFLOW" train models/stacked-ae.yaml --threads 1 \
  --out "$tmp/run" train.epochs=1 > /dev/null 2>&1
env OMP_NUM_THREADS=1 /usr/bin/time -f '%M' -o "$tmp/torch.kb" /usr/bin/python3 \
  "$(dirname "$root")/shared/reference/torch_ae.py" "$data_dir" --threads 1 --epochs 1 > /dev/null 2>&1
yk=$(tail -n 1 "$tmp/yf.kb"); tk=$(tail -n 1 "$tmp/torch.kb")
echo "== peak resident memory, stacked-ae 1 epoch: yaflow $((yk / 1024)) MB, torch $((tk / 1024)) MB"
summary+=("peak RSS: yaflow $((yk / 1024)) MB, torch $((tk / 1024)) MB, ratio $(awk -v y="$yk" -v t="$tk" 'BEGIN { printf "%.3f", y / t }')")
rm -rf "$tmp"

echo "== two threads against one"
bash bench/bench-scaling.sh 2>&1 | tee "$log" || failed=1
summary+=("two threads / one, stacked-ae batch 128: $(sed -n 's/.*median of pairs=\([0-9.]*\).*/\1/p' "$log"); with the cores together, $(sed -n 's/^cores together .* in \([0-9]* of [0-9]*\) rounds; their median ratio: \(.*\)/\2 (\1 rounds)/p' "$log")")
echo "== two independent processes against one (the machine's ceiling)"
bash bench/bench-ceiling.sh 2>&1 | tee "$log" || failed=1
summary+=("ceiling: $(sed -n 's/^median: //p' "$log")")

roofline=${ROOFLINE:-$root/bench/roofline}
for c in "stacked-ae.yaml 128 1" "stacked-ae.yaml 128 2" "stacked-ae.yaml 32 1" \
         "stacked-ae.yaml 512 1" "vae.yaml 128 1" "cnn-classifier.yaml 128 1" \
         "cnn-classifier.yaml 128 2"; do
  set -- $c
  echo "== roofline: $1, batch $2, $3 thread(s)"
  if "$roofline" "models/$1" --batch "$2" --threads "$3" --rounds "${BENCH_REPEAT:-3}" 2>&1 | tee "$log"; then
    summary+=("roofline $1 batch $2, $3 thread(s): $(tail -n 1 "$log" | sed 's/.*median //')")
  else
    summary+=("roofline $1 batch $2, $3 thread(s): FAILED")
    failed=1
  fi
done

echo "== two MPI ranks against one process"
bash bench/bench-mpi.sh 2>&1 | tee "$log" || failed=1
summary+=("mpi, two ranks / one process: $(sed -n 's/^global batch \([0-9]*\): median ratio \([0-9.]*\) of .*together .* in \([0-9]*\): \(.*\)/batch \1 \2 (together in \3: \4)/p' "$log" | tr '\n' ';')")

echo "== contention"
bash bench/bench-contention.sh 2>&1 | tee "$log" || failed=1
summary+=("contention: $(grep 'ratio default' "$log" | tr -s ' ' | tr '\n' ';')")

echo
echo "== summary (yaflow/PyTorch unless said; date $(date -u +%F), $(nproc) cores)"
printf '  %s\n' "${summary[@]}"
exit $failed
