#!/bin/bash
# make check: the two ranks of a data-parallel run in two network
# namespaces joined by a veth pair (ip netns, from iproute2), so that their
# traffic really crosses a network interface, as between two hosts:
#   namespace yfA (10.213.7.1) runs mpirun and rank 0; Open MPI starts the
#   daemon of "host" 10.213.7.2 through an agent that enters namespace yfB
#   (instead of ssh); MPI talks TCP only, over the veth pair.
# The parameters must equal one process's within 1e-5 (tests/paramdiff),
# and the interface must have carried at least the gradients' bytes. The
# buckets go as the backward pass finishes them (YAFLOW_MPI_OVERLAP=1, as
# between machines).
# Skipped (exit 77, saying why) without MPI, without root, or where this
# machine does not let the test make namespaces (a container without
# CAP_SYS_ADMIN): never reported as passed there.
set -u
src=$(cd "${top_srcdir:-.}" && pwd)
build=$(cd "${top_builddir:-.}" && pwd)
yaflow=$build/yaflow
if ! "$yaflow" info | grep -q '^mpi=Open MPI'; then
  echo "SKIP: this yaflow was built without MPI"
  exit 77
fi
for tool in mpirun orted ip; do
  command -v $tool > /dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: network namespaces need root"
  exit 77
fi
. "$src/tests/find-data.sh"

A=yfA$$ B=yfB$$ VA=yfva$$ VB=yfvb$$
cleanup() { ip netns del $A 2> /dev/null; ip netns del $B 2> /dev/null; }
trap cleanup EXIT
if ! { ip netns add $A && ip netns add $B &&
       ip link add $VA type veth peer name $VB &&
       ip link set $VA netns $A && ip link set $VB netns $B; } 2> netns.err; then
  echo "SKIP: this machine does not let the test make network namespaces: $(head -1 netns.err)"
  rm -f netns.err
  ip link del $VA 2> /dev/null
  exit 77
fi
rm -f netns.err
ip -n $A addr add 10.213.7.1/24 dev $VA
ip -n $B addr add 10.213.7.2/24 dev $VB
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link set $VA up
ip -n $B link set $VB up

work=$build/test_netns.tmp
rm -rf "$work"
mkdir -p "$work"
cd "$work"
fail=0
check() {
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; fail=1; fi
}
# Open MPI's launcher runs `AGENT HOST COMMAND...` where it would run ssh
cat > agent <<EOF
#!/bin/sh
host=\$1
shift
case "\$host" in
  10.213.7.1) ns=$A ;;
  10.213.7.2) ns=$B ;;
  *) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" /bin/sh -c "\$*"
EOF
chmod +x agent
printf '10.213.7.1 slots=1\n10.213.7.2 slots=1\n' > hosts

cat > spec.yaml <<EOF
name: netns
seed: 11
data: {source: mnist, dir: $data, valid: 200, train_fraction: 0.01}
model:
  input: {name: x, shape: [784]}
  layers:
    - {name: noisy, type: gaussian_noise, stddev: 0.2}
    - {name: hidden, type: dense, units: 64, activation: elu, init: he_normal}
    - {name: drop, type: dropout, rate: 0.2}
    - {name: out, type: dense, units: 784, activation: sigmoid}
  loss:
    - {type: mse, input: out, target: x}
train: {optimizer: {type: adam, learning_rate: 0.001}, batch_size: 64, epochs: 1}
EOF
"$yaflow" train spec.yaml --threads 1 --out one > one.out 2> one.err ||
  { cat one.err; echo "FAILED: one process"; exit 1; }

bytes() { ip netns exec $A cat /sys/class/net/$VA/statistics/tx_bytes; }
before=$(bytes)
ip netns exec $A env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  OMPI_MCA_mca_base_component_disable_dlclose=1 \
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" \
  mpirun -np 2 --hostfile hosts --mca plm_rsh_agent "$work/agent" \
    --mca btl tcp,self --mca btl_tcp_if_include 10.213.7.0/24 \
    --mca oob_tcp_if_include 10.213.7.0/24 --bind-to none \
    -x YAFLOW_MPI_OVERLAP=1 \
    "$yaflow" train spec.yaml --threads 1 --out two > two.out 2> two.err
rc=$?
after=$(bytes)
check "mpirun across the two namespaces exits 0 ($rc)" test $rc = 0
[ $rc = 0 ] || cat two.err
check "the parameters equal one process's within 1e-5" "$build/tests/paramdiff" one two 1e-5
# 10 steps (0.01 of 60,000 less 200, in batches of 64): each sends at least
# half of the 101,200 gradient floats one way
need=$((10 * 101200 * 4 / 2))
sent=$((after - before))
check "the veth interface carried $sent bytes, at least $need" test $sent -ge $need
cd "$build"
[ $fail = 0 ] && rm -rf "$work"
exit $fail
