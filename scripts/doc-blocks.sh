#!/bin/bash
# doc-blocks.sh FILE.md... -- runs the ```sh and ```python code blocks of
# Markdown files, in order, in the current directory, as a reader would
# type them: each sh block with bash -e -o pipefail, each python block with
# python3, the python blocks of a file as one session (as in a notebook:
# a block sees what the ones before it defined; their output is not
# repeated). A fence written ```sh no-run (or python no-run) is only shown;
# ```python needs=MODULE runs when python3 can import MODULE and is reported
# as not run otherwise. $PYTHON (default python3) runs the python blocks. Stops at the first block that fails, printing it
# and its output. Exit 0 when every block that ran succeeded.
set -u
ran=0 skipped=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for md in "$@"; do
  n=0 in=0 line=0 start=0 kind= opts=
  : > "$tmp/session.py"
  while IFS= read -r text || [ -n "$text" ]; do
    line=$((line + 1))
    if [ $in = 0 ]; then
      if [[ $text =~ ^\`\`\`(sh|python)([[:space:]]+(.*))?$ ]]; then
        in=1 n=$((n + 1)) start=$line kind=${BASH_REMATCH[1]} opts=${BASH_REMATCH[3]}
        : > "$tmp/block"
      fi
      continue
    fi
    if [[ $text == '```' ]]; then
      in=0
      where="$md:$start"
      case $opts in
        *no-run*) skipped=$((skipped + 1)); continue ;;
        needs=*)
          mod=${opts#needs=}
          if ! "${PYTHON:-python3}" -c "import $mod" 2> /dev/null; then
            echo "== $where ($kind): not run: python3 has no module $mod"
            skipped=$((skipped + 1))
            continue
          fi ;;
      esac
      echo "== $where ($kind): $(head -n 1 "$tmp/block")"
      if [ "$kind" = sh ]; then
        bash -e -o pipefail "$tmp/block" > "$tmp/out" 2>&1
      else
        "${PYTHON:-python3}" - "$tmp/session.py" "$tmp/block" > "$tmp/out" 2>&1 <<'PY'
import contextlib, io, sys
scope = {"__name__": "__main__"}
with contextlib.redirect_stdout(io.StringIO()):
    exec(compile(open(sys.argv[1]).read(), "earlier blocks", "exec"), scope)
exec(compile(open(sys.argv[2]).read(), "this block", "exec"), scope)
PY
      fi
      rc=$?
      if [ $rc = 0 ] && [ "$kind" = python ]; then
        cat "$tmp/block" >> "$tmp/session.py"
      fi
      if [ $rc != 0 ]; then
        echo "FAILED (exit $rc): the block at $where:"
        sed 's/^/    /' "$tmp/block"
        echo "its output:"
        sed 's/^/    /' "$tmp/out"
        exit 1
      fi
      sed 's/^/    /' "$tmp/out" | tail -n 5
      ran=$((ran + 1))
      continue
    fi
    printf '%s\n' "$text" >> "$tmp/block"
  done < "$md"
  if [ $in = 1 ]; then
    echo "$md:$start: a code block is not closed"
    exit 1
  fi
done
echo "doc-blocks: $ran blocks ran and passed, $skipped shown only or not run"
