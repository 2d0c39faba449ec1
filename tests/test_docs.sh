#!/bin/bash
# make check: every sh and python block of docs/tutorial.md and
# docs/python.md runs as written (scripts/doc-blocks.sh), in order, in
# test_docs.tmp/ with the built yaflow on PATH and MNIST as ./data.
set -eu
src=$(cd "${top_srcdir:-.}" && pwd)
build=$(cd "${top_builddir:-.}" && pwd)
data=
for d in "${YAFLOW_TEST_DATA:-}" "${YAFLOW_DATA:-}" "$build/data" "$src/data"; do
  if [ -n "$d" ] && [ -f "$d/train-images-idx3-ubyte" ]; then
    data=$(cd "$d" && pwd)
    break
  fi
done
if [ -z "$data" ]; then
  echo "test_docs: no MNIST in \$YAFLOW_TEST_DATA, \$YAFLOW_DATA, $build/data or $src/data:" \
       "fetch it with scripts/fetch-mnist.sh DIR (bootstrap.sh does)" >&2
  exit 1
fi
work=$build/test_docs.tmp
rm -rf "$work"
mkdir -p "$work/bin"
ln -s "$data" "$work/data"
printf '#!/bin/sh\nexec "%s/yaflow" "$@"\n' "$build" > "$work/bin/yaflow"
chmod +x "$work/bin/yaflow"
export PATH="$work/bin:$PATH"
unset YAFLOW_DATA
# Debian's python3, where python3-numpy (bootstrap.sh) installs NumPy
if [ -z "${PYTHON:-}" ] && [ -x /usr/bin/python3 ]; then
  export PYTHON=/usr/bin/python3
fi
cd "$work"
bash "$src/scripts/doc-blocks.sh" "$src/docs/tutorial.md" "$src/docs/python.md"
cd "$build"
rm -rf "$work"
