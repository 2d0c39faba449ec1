#!/bin/bash
# bench-mpi-netns.sh -- two ranks over TCP between two network namespaces
# joined by a veth pair (tests/test_netns.sh's setup), the stacked
# autoencoder at global batches 128 and 512, with the gradient sum after
# the backward pass (YAFLOW_MPI_OVERLAP=0, the default) and with buckets
# sent during it (1): examples/s of the second of 2 epochs. Needs root,
# iproute2 and a yaflow built with MPI. Environment: YAFLOW, YAFLOW_DATA.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
yaflow=$(cd "$(dirname "${YAFLOW:-./yaflow}")" && pwd)/$(basename "${YAFLOW:-./yaflow}")
. "$root/bench/setup.sh" > /dev/null
nsa=ybA$$ nsb=ybB$$ va=ybva$$ vb=ybvb$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-mpi-netns.XXXXXX")
trap 'ip netns del $nsa 2> /dev/null; ip netns del $nsb 2> /dev/null; rm -rf "$tmp"' EXIT
ip netns add $nsa
ip netns add $nsb
ip link add $va type veth peer name $vb
ip link set $va netns $nsa
ip link set $vb netns $nsb
ip -n $nsa addr add 10.214.7.1/24 dev $va
ip -n $nsb addr add 10.214.7.2/24 dev $vb
for ns in $nsa $nsb; do ip -n $ns link set lo up; done
ip -n $nsa link set $va up
ip -n $nsb link set $vb up
cat > "$tmp/agent" <<AGENT
#!/bin/sh
host=\$1
shift
case "\$host" in 10.214.7.1) ns=$nsa ;; 10.214.7.2) ns=$nsb ;; *) exit 1 ;; esac
exec ip netns exec "\$ns" /bin/sh -c "\$*"
AGENT
chmod +x "$tmp/agent"
printf '10.214.7.1 slots=1\n10.214.7.2 slots=1\n' > "$tmp/hosts"
for batch in 128 512; do
  for overlap in 0 1; do
    rm -rf "$tmp/run"
    ip netns exec $nsa env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
      YAFLOW_MPI_OVERLAP=$overlap mpirun -np 2 --hostfile "$tmp/hosts" \
      --mca plm_rsh_agent "$tmp/agent" --mca btl tcp,self \
      --mca btl_tcp_if_include 10.214.7.0/24 --mca oob_tcp_if_include 10.214.7.0/24 \
      --bind-to none -x YAFLOW_MPI_OVERLAP \
      "$yaflow" train models/stacked-ae.yaml --threads 1 --out "$tmp/run" --data "$data_dir" \
      train.epochs=2 data.valid=0 train.batch_size=$batch > "$tmp/log" 2>&1 ||
      { cat "$tmp/log" >&2; exit 1; }
    echo "global batch $batch, YAFLOW_MPI_OVERLAP=$overlap: $(grep -o 'examples_per_s=[0-9]*' "$tmp/run/log.txt" | tail -1)"
  done
done
