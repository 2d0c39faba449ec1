# tests/find-data.sh -- sourced by the shell tests (after setting src and
# build): sets data to the absolute folder holding MNIST, looked for in
# $YAFLOW_TEST_DATA, $YAFLOW_DATA, the build folder's data/ and the source
# folder's data/; without it the test fails, saying where it looked.
data=
for d in "${YAFLOW_TEST_DATA:-}" "${YAFLOW_DATA:-}" "$build/data" "$src/data"; do
  if [ -n "$d" ] && [ -f "$d/train-images-idx3-ubyte" ]; then
    data=$(cd "$d" && pwd)
    break
  fi
done
if [ -z "$data" ]; then
  echo "$(basename "$0"): no MNIST in \$YAFLOW_TEST_DATA, \$YAFLOW_DATA, $build/data or" \
       "$src/data: fetch it with scripts/fetch-mnist.sh DIR (bootstrap.sh does)" >&2
  exit 1
fi
