#!/bin/bash
# bench-mpi.sh -- two ranks of one thread each (mpirun -np 2, on this
# machine) against one process of one thread: the stacked autoencoder at
# global batches 128 (the model's), 256, 512 and 1024, 2 epochs each, the
# second epoch's examples/s, BENCH_REPEAT rounds (default 1) alternating.
# The two ranks share the parameters and read each other's gradients
# through shared memory (docs/distributed.md), so, as for two threads
# (bench-scaling.sh), it matters whether the host has put the two virtual
# CPUs together or apart: each round prints the cores' cache-line round
# trip (bench/corelat, CORELAT) just before and just after its two-rank
# run, and each batch ends with the median of its rounds' ratios and the
# median over the rounds whose cores were together both times.
# Environment: YAFLOW, YAFLOW_DATA, BENCH_REPEAT, CORELAT. Needs a yaflow
# built with MPI and mpirun (bootstrap.sh installs Open MPI).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
yaflow=${YAFLOW:-./yaflow}
repeat=${BENCH_REPEAT:-1}
"$yaflow" info | grep -q '^mpi=Open MPI' || { echo "bench-mpi: yaflow was built without MPI"; exit 0; }
command -v mpirun > /dev/null || { echo "bench-mpi: no mpirun"; exit 0; }
. "$root/bench/setup.sh" > /dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-mpi.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rate() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "examples_per_s") c = i; next }
                  NF > 0 { v = $c } END { print v }' "$1/metrics.csv"; }
for B in 128 256 512 1024; do
  ratio=() near=()
  for r in $(seq "$repeat"); do
    rm -rf "$tmp/one" "$tmp/two"
    "$yaflow" train models/stacked-ae.yaml --threads 1 --out "$tmp/one" --data "$data_dir" \
      train.epochs=2 data.valid=0 train.batch_size=$B > /dev/null 2>&1
    ns=$(lat)
    mpirun -np 2 "$yaflow" train models/stacked-ae.yaml --threads 1 --out "$tmp/two" \
      --data "$data_dir" train.epochs=2 data.valid=0 train.batch_size=$B > /dev/null 2>&1
    ns2=$(lat)
    a=$(rate "$tmp/one"); b=$(rate "$tmp/two")
    ratio+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')")
    together "$ns" "$ns2" && near+=("${ratio[-1]}")
    echo "global batch $B, round $r: 1 rank $a examples/s, 2 ranks $b, ratio 2 ranks/1=${ratio[-1]} (cores $ns ns apart before, $ns2 ns after)"
  done
  if [ ${#near[@]} -gt 0 ]; then m=$(median "${near[@]}"); else m=none; fi
  echo "global batch $B: median ratio $(median "${ratio[@]}") of $repeat round(s); with the cores together (under 200 ns before and after) in ${#near[@]}: $m"
done
