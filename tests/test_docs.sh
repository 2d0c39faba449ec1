#!/bin/bash
# make check: every sh and python block of docs/tutorial.md and
# docs/python.md runs as written (scripts/doc-blocks.sh), in order, in
# test_docs.tmp/ with the built yaflow on PATH and MNIST as ./data.
set -eu
src=$(cd "${top_srcdir:-.}" && pwd)
build=$(cd "${top_builddir:-.}" && pwd)
. "$src/tests/find-data.sh"
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
