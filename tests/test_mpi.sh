#!/bin/bash
# make check: data-parallel training over MPI, run as a user runs it.
#  1. `mpirun -np 2 yaflow train` and one process with the same global
#     batch end with the same parameters within 1e-5 (tests/paramdiff:
#     max|a - b| / max|a|; it prints the per-value measure too). The model has
#     gaussian noise, dropout and an l2 term: the random draws must follow
#     the example, not the rank, and the l2 term must count once. Only
#     rank 0 writes the run folder and prints. On this one machine the
#     ranks share one copy of the parameters and moments (dist.c); the same
#     run summing through MPI_Allreduce instead (YAFLOW_MPI_SHM=0, as
#     between machines) gives the same bits, moments included, and so do
#     two ranks of two threads and ranks that MPI gives no shared memory.
#     Three ranks on batches of 2 (rank 0 then has no rows) agree too.
#  2. A rank whose parameters go astray is caught by the epoch checksum on
#     every rank, and no checkpoint of that epoch is written
#     (tests/dist_perturb).
#  3. A rank killed with SIGKILL ends the run, with a message, instead of
#     leaving the other waiting; the last checkpoint still opens.
#  4. A model with batch statistics (batch_norm) is refused on 2 ranks, and
#     so are ranks that would train different configs or data.
# Skipped (exit 77, saying why) where yaflow was built without MPI or
# mpirun is not installed: bootstrap.sh installs Open MPI, so CI runs it.
set -u
src=$(cd "${top_srcdir:-.}" && pwd)
build=$(cd "${top_builddir:-.}" && pwd)
yaflow=$build/yaflow
if ! "$yaflow" info | grep -q '^mpi=Open MPI'; then
  echo "SKIP: this yaflow was built without MPI ($("$yaflow" info | grep '^mpi=')); install libopenmpi-dev and configure again"
  exit 77
fi
if ! command -v mpirun > /dev/null; then
  echo "SKIP: mpirun is not installed (apt-get install openmpi-bin)"
  exit 77
fi
. "$src/tests/find-data.sh"
work=$build/test_mpi.tmp
rm -rf "$work"
mkdir -p "$work"
cd "$work"
fail=0
check() { # message, then the command: a failure is counted and told
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAILED: $what"
    fail=1
  fi
}
# root may run mpirun here (CI and containers run as root); every rank on
# this machine, unbound, talking through shared memory and TCP, without
# the single-copy mechanism containers forbid
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
# In a sanitizer build, leaks are traced with the slow unwinder, which
# walks through Open MPI's libraries (built without frame pointers), so
# that tests/lsan.supp can leave out what MPI_Init keeps and leaks of
# yaflow's own still show; components stay loaded so they can be named.
export OMPI_MCA_mca_base_component_disable_dlclose=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
mpi() { mpirun -np "$1" --bind-to none "${@:2}"; }

cat > spec.yaml <<EOF
name: dist
seed: 7
data: {source: mnist, dir: $data, valid: 500, train_fraction: 0.02}
model:
  input: {name: x, shape: [784]}
  layers:
    - {name: noisy, type: gaussian_noise, stddev: 0.2}
    - {name: hidden, type: dense, units: 64, activation: elu, init: he_normal}
    - {name: drop, type: dropout, rate: 0.2}
    - {name: coding, type: dense, units: 16, activation: elu}
    - {name: decode, type: dense, units: 64, activation: elu}
    - {name: out, type: dense, units: 784, activation: sigmoid}
  loss:
    - {type: mse, input: out, target: x}
    - {type: l2, weight: 1.0e-4, params: [hidden.W, coding.W]}
train: {optimizer: {type: adam, learning_rate: 0.001}, batch_size: 64, epochs: 2}
EOF

# 1. two ranks against one process
"$yaflow" train spec.yaml --threads 1 --out one > one.out 2> one.err ||
  { cat one.err; echo "FAILED: one process"; exit 1; }
mpi 2 "$yaflow" train spec.yaml --threads 1 --out two > two.out 2> two.err
rc=$?
check "mpirun -np 2 yaflow train exits 0 (it gave $rc)" test $rc = 0
[ $rc = 0 ] || cat two.err
check "the parameters of 2 ranks equal one process's within 1e-5" "$build/tests/paramdiff" one two 1e-5
check "rank 0 alone prints the run folder" test "$(cat two.out)" = two
check "rank 0 alone reports (one 'training dist' line, no rank 1 message)" \
  test "$(grep -c '^training dist' two.err)" = 1 -a "$(grep -c 'rank 1' two.err)" = 0
check "the log says data parallel on 2 ranks" grep -q 'data parallel: 2 ranks' two/log.txt
check "sharing the parameters and moments on this one machine" \
  grep -q 'one machine: parameters and moments shared' two/log.txt
check "metrics.csv has both epochs" test "$(wc -l < two/metrics.csv)" = 3
l1=$(awk -F, 'NR == 3 { print $2 }' one/metrics.csv)
l2=$(awk -F, 'NR == 3 { print $2 }' two/metrics.csv)
check "the second epoch's train loss agrees ($l1 and $l2)" \
  awk -v a="$l1" -v b="$l2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * a) }'

# 1a. the same through MPI_Allreduce, as between machines: the same bits as
# the shared state (two ranks add a + b either way), the moments included
YAFLOW_MPI_SHM=0 mpi 2 -x YAFLOW_MPI_SHM "$yaflow" train spec.yaml --threads 1 --out two-ar \
  > two-ar.out 2> two-ar.err
rc=$?
check "2 ranks summing with MPI_Allreduce exit 0 ($rc)" test $rc = 0
[ $rc = 0 ] || cat two-ar.err
check "and say so in the log" grep -q 'gradients summed with MPI_Allreduce' two-ar/log.txt
check "and hold the same parameters and moments as the shared state, bit for bit" \
  "$build/tests/paramdiff" two two-ar 0
# where MPI gives no shared memory (here: its osc/sm component left out),
# the ranks fall back on MPI_Allreduce and say why in the log
mpi 2 --mca osc ^sm "$yaflow" train spec.yaml --threads 1 --out two-nosm > two-nosm.out \
  2> two-nosm.err
rc=$?
check "2 ranks without MPI shared memory exit 0 ($rc)" test $rc = 0
[ $rc = 0 ] || cat two-nosm.err
check "and the log says why they summed with MPI_Allreduce" \
  grep -q 'MPI_Allreduce (MPI gave no shared memory' two-nosm/log.txt
check "with the same bits" "$build/tests/paramdiff" two two-nosm 0

# 1b. two threads in each rank: each rank's shard of the update is cut
# between its threads (each float's update is its own), the same bits
short="train.epochs=1 data.train_fraction=0.005"
mpi 2 "$yaflow" train spec.yaml $short --threads 1 --out t1 > /dev/null 2>&1
mpi 2 "$yaflow" train spec.yaml $short --threads 2 --out t2 > t2.out 2> t2.err
rc=$?
check "2 ranks of 2 threads exit 0 ($rc)" test $rc = 0
check "and hold the bits of 2 ranks of 1 thread" "$build/tests/paramdiff" t1 t2 0

# 1c. three ranks on a global batch of 2: rank 0 has no rows in any step
small="train.batch_size=2 data.train_fraction=0.002 train.epochs=1"
"$yaflow" train spec.yaml $small --threads 1 --out one3 > /dev/null 2>&1
mpi 3 "$yaflow" train spec.yaml $small --threads 1 --out three > three.out 2> three.err
rc=$?
check "3 ranks on batches of 2 exit 0 ($rc)" test $rc = 0
check "and equal one process within 1e-5 (the l2 term counted once though rank 0 has no rows)" \
  "$build/tests/paramdiff" one3 three 1e-5
# the same with the buckets sent as the backward pass finishes them (the
# way between machines): rank 0, with no rows, sends them all at the end,
# in the order the others send them as they finish
YAFLOW_MPI_OVERLAP=1 mpi 3 -x YAFLOW_MPI_OVERLAP "$yaflow" train spec.yaml $small --threads 1 \
  --out three-overlap > three-overlap.out 2> three-overlap.err
rc=$?
check "3 ranks sending buckets during the backward pass exit 0 ($rc)" test $rc = 0
check "and equal one process within 1e-5" "$build/tests/paramdiff" one3 three-overlap 1e-5

# 2. the checksum
# (ranks that share one copy of the parameters cannot drift apart: the
# checksum guards the ranks that hold copies, as on several machines)
YAFLOW_MPI_SHM=0 mpi 2 -x YAFLOW_MPI_SHM "$build/tests/dist_perturb" spec.yaml astray \
  > astray.out 2> astray.err
rc=$?
check "a rank gone astray stops both ranks with the checksum message (rc $rc)" \
  test $rc = 0 -a "$(grep -c 'parameters differ between the 2 ranks' astray.out)" = 2
check "and no checkpoint of that epoch was written" test ! -e astray/checkpoint.safetensors

# 3. a rank killed
sed 's/epochs: 2/epochs: 40/' spec.yaml > long.yaml
mpi 2 "$yaflow" train long.yaml --threads 1 --out killed > killed.out 2> killed.err &
runner=$!
for i in $(seq 600); do
  [ -e killed/checkpoint.safetensors ] && break
  sleep 0.1
done
victim=
for p in $(pgrep -f "yaflow train long.yaml"); do
  if tr '\0' '\n' < /proc/$p/environ 2> /dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
    victim=$p
  fi
done
check "found rank 1's process once the first checkpoint was saved" test -n "$victim"
[ -n "$victim" ] && kill -KILL "$victim"
ended=no
for i in $(seq 300); do
  if ! kill -0 $runner 2> /dev/null; then ended=yes; break; fi
  sleep 0.1
done
check "the run ends within 30 s of the kill instead of waiting for the dead rank" test $ended = yes
[ $ended = yes ] || { kill -KILL $runner; pkill -KILL -f "yaflow train long.yaml"; }
wait $runner
rc=$?
check "mpirun exits non-zero ($rc) and says why" test $rc != 0 -a -s killed.err
grep -m 3 -i 'rank\|signal\|killed' killed.err | sed 's/^/  mpirun said: /'
check "the last checkpoint still opens (yaflow eval)" \
  bash -c '"$1" eval killed --threads 1 > killed.eval 2>&1' _ "$yaflow"

# 4. batch statistics
sed 's/- {name: coding, type: dense, units: 16, activation: elu}/- {name: coding, type: dense, units: 16}\n    - {name: bn, type: batch_norm}/' spec.yaml > bn.yaml
mpi 2 "$yaflow" train bn.yaml --threads 1 --out bn > bn.out 2> bn.err
rc=$?
check "batch_norm on 2 ranks is refused with exit 2 ($rc), naming the layer" \
  test $rc = 2 -a "$(grep -c "'bn': batch_norm's batch statistics" bn.err)" -ge 1

# 5. ranks that would not train alike
mpi 1 "$yaflow" train spec.yaml --threads 1 --out mixed : \
  -np 1 "$yaflow" train spec.yaml train.optimizer.learning_rate=0.01 --threads 1 --out mixed \
  > mixed.out 2> mixed.err
rc=$?
check "ranks given different configs are refused with exit 2 ($rc)" \
  test $rc = 2 -a "$(grep -c 'do not train alike: their configs differ' mixed.err)" = 1
mkdir -p other
for f in "$data"/*-ubyte; do ln -s "$f" other/; done
rm other/train-images-idx3-ubyte
head -c 16 "$data/train-images-idx3-ubyte" > other/train-images-idx3-ubyte
tail -c +17 "$data/train-images-idx3-ubyte" | tr '\000' '\001' >> other/train-images-idx3-ubyte
mpi 1 "$yaflow" train spec.yaml --threads 1 --out mixed2 : \
  -np 1 "$yaflow" train spec.yaml --data other --threads 1 --out mixed2 > mixed2.out 2> mixed2.err
rc=$?
check "ranks reading different data are refused with exit 2 ($rc)" \
  test $rc = 2 -a "$(grep -c 'their training data differ' mixed2.err)" = 1

cd "$build"
[ $fail = 0 ] && rm -rf "$work"
exit $fail
