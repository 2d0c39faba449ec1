#!/bin/bash
# bench-vae.sh -- training throughput of yaflow vs the PyTorch peer on the
# chapter's variational autoencoder (models/vae.yaml against
# ../shared/reference/torch_vae.py: 784-500-500-20 ELU, Adam, batch 128),
# 1 epoch, 1 thread, the two alternating; see bench-ae.sh for the settings.
root=$(cd "$(dirname "$0")/.." && pwd)
export BENCH_MODEL=models/vae.yaml
export TORCH_REF=${TORCH_REF:-$(dirname "$root")/shared/reference/torch_vae.py}
exec bash "$root/bench/bench-ae.sh" "$@"
