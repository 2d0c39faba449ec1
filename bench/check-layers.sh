#!/bin/bash
# check-layers.sh -- trains bench/layers-check.yaml briefly (so that batch
# norm's statistics and every weight move), writes every layer's outputs on
# the test set with `yaflow encode`, and has bench/torch_check_layers.py
# compute each layer with PyTorch from the layer below: the largest
# difference per layer, exit 1 above 1e-4.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '%s\n' "$*"; }
die() { printf 'check-layers: %s\n' "$*" >&2; exit 1; }
yaflow=${YAFLOW:-./yaflow}
[ -x "$yaflow" ] || die "no yaflow binary at $yaflow: build it first, or set YAFLOW"
. "$root/bench/setup.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-layers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$yaflow" train bench/layers-check.yaml --out "$tmp/run" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; die "train failed"; }
for l in c1 c2 mp ap t1 t2 up bn gp; do
  "$yaflow" encode "$tmp/run" --layer "$l" -o "$tmp/run/$l.npy" >/dev/null
done
/usr/bin/python3 "$root/bench/torch_check_layers.py" "$tmp/run"
