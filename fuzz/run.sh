#!/bin/bash
# fuzz/run.sh -- what `make fuzz` runs: builds the libFuzzer targets of
# fuzz/ with clang (the library's sources compiled again with
# -fsanitize=fuzzer-no-link,address,undefined) and runs each for
# FUZZ_SECONDS from its committed seed corpus.
#
# The Makefile passes: srcdir, builddir, FUZZ_CC, FUZZ_CFLAGS, FUZZ_LDFLAGS,
# FUZZ_CPPFLAGS, FUZZ_LIBS, FUZZ_SOURCES (the library's .c files),
# FUZZ_MISSING (why make fuzz cannot run here, or empty), and the user's
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_TARGETS  which targets (default: all of fuzz/fuzz_*.c)
#   FUZZ_MERGE    yes: merge the inputs found that add coverage into the
#                 committed corpus fuzz/corpus/<target> (default: no; new
#                 inputs go to $builddir/fuzz-build/corpus/<target>)
#   FUZZ_FLAGS    more libFuzzer flags (e.g. -jobs=2 -workers=2)
# Crashes are written to $builddir/fuzz-build/crashes/; the run fails if
# any target crashed, leaked, hit undefined behaviour or timed out, or if
# any input of fuzz/regressions/<target>/ (the crashes found before) does.
set -uo pipefail

say() { printf 'fuzz: %s\n' "$*"; }

if [ -n "${FUZZ_MISSING:-}" ]; then
  say "not available on this machine: $FUZZ_MISSING" >&2
  exit 1
fi

seconds=${FUZZ_SECONDS:-60}
out=$builddir/fuzz-build
mkdir -p "$out/obj" "$out/corpus" "$out/crashes" "$out/logs"

targets=${FUZZ_TARGETS:-}
if [ -z "$targets" ]; then
  for f in "$srcdir"/fuzz/fuzz_*.c; do
    t=$(basename "$f" .c)
    targets="$targets ${t#fuzz_}"
  done
fi

# ---------------------------------------------------------------- build
# Every object is rebuilt when the flags or any header changed, else only
# those older than their source.
flags="$FUZZ_CC $FUZZ_CFLAGS $FUZZ_CPPFLAGS"
headers=$(ls "$srcdir"/src/*.h "$srcdir"/src/ops/*.h "$srcdir"/src/ops/ops.def "$srcdir"/fuzz/fuzz.h)
stamp=$out/obj/flags
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$flags" ]; then
  rm -f "$out"/obj/*.o
  printf '%s' "$flags" > "$stamp"
fi
newest_header=$(ls -t $headers | head -n 1)
objs=()
todo=()
for src in $FUZZ_SOURCES; do
  case $src in *.c) ;; *) continue ;; esac
  o=$out/obj/$(echo "${src%.c}" | tr / _).o
  objs+=("$o")
  if [ ! -f "$o" ] || [ "$srcdir/$src" -nt "$o" ] || [ "$newest_header" -nt "$o" ]; then
    todo+=("$srcdir/$src=$o")
  fi
done
# FUZZ_CPPFLAGS holds $(DEFS), quoted for the shell (-DPACKAGE_VERSION=\"0.1\"):
# the commands are evaluated, as make's would be.
cc() { eval "$FUZZ_CC $FUZZ_CFLAGS $FUZZ_CPPFLAGS"' "$@"'; }
if [ ${#todo[@]} -gt 0 ]; then
  say "compiling ${#todo[@]} library sources with $FUZZ_CC"
  np=$(nproc 2>/dev/null || echo 2)
  pids=()
  bad=0
  for item in "${todo[@]}"; do
    cc -c "${item%%=*}" -o "${item#*=}" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$np" ]; then
      wait "${pids[0]}" || bad=1
      pids=("${pids[@]:1}")
    fi
  done
  for p in "${pids[@]}"; do
    wait "$p" || bad=1
  done
  [ $bad = 0 ] || { say "compilation failed" >&2; exit 1; }
fi
for t in $targets; do
  src=$srcdir/fuzz/fuzz_$t.c
  bin=$out/fuzz_$t
  [ -f "$src" ] || { say "no target '$t' (no $src)" >&2; exit 1; }
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ -n "$(find "${objs[@]}" "$newest_header" -newer "$bin" 2>/dev/null | head -n 1)" ]; then
    say "linking fuzz_$t"
    cc -I"$srcdir/fuzz" "$src" "${objs[@]}" $FUZZ_LDFLAGS $FUZZ_LIBS -o "$bin" || exit 1
  fi
done

# ---------------------------------------------------------------- run
dict_of() {
  case $1 in
    spec | experiment) echo "$srcdir/fuzz/yaml.dict" ;;
    checkpoint) echo "$srcdir/fuzz/json.dict" ;;
    *) echo "$srcdir/fuzz/$1.dict" ;;
  esac
}

# No input may take over 30 s (a hang), or more than 2 GB.
common=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=30)
failed=0
summary=()
for t in $targets; do
  bin=$out/fuzz_$t
  log=$out/logs/$t.log
  # the crashes found before, each as one run
  reg=$srcdir/fuzz/regressions/$t
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null)" ]; then
    if ! "$bin" "${common[@]}" "$reg"/* </dev/null >"$out/logs/$t-regressions.log" 2>&1; then
      say "$t: an input of fuzz/regressions/$t fails again:" >&2
      tail -n 30 "$out/logs/$t-regressions.log" >&2
      failed=1
      summary+=("$t: regression")
      continue
    fi
    say "$t: $(ls "$reg" | wc -l) regression inputs pass"
  fi
  work=$out/corpus/$t
  mkdir -p "$work"
  dict=$(dict_of "$t")
  [ -f "$dict" ] || dict=
  say "$t: fuzzing for $seconds s (log: $log)"
  # the first folder receives the new inputs; the committed seeds are read only
  "$bin" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$t-" ${dict:+-dict="$dict"} ${FUZZ_FLAGS:-} \
    "$work" "$srcdir/fuzz/corpus/$t" </dev/null >"$log" 2>&1
  rc=$?
  done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [ $rc -ne 0 ] || [ -z "$done_line" ]; then
    say "$t: FAILED (exit $rc) after ${execs:-?} executions:" >&2
    grep -E 'ERROR: |SUMMARY: |runtime error|Test unit written|abort|ALARM' "$log" | head -n 20 >&2
    tail -n 40 "$log" >&2
    failed=1
    summary+=("$t: FAILED after ${execs:-?} executions (see $log)")
  else
    say "$t: $done_line (corpus: $(ls "$work" | wc -l) new inputs in $work)"
    summary+=("$t: ${done_line#Done }, no crash")
  fi
  if [ "${FUZZ_MERGE:-no}" = yes ]; then
    say "$t: merging the new inputs into fuzz/corpus/$t"
    "$bin" "${common[@]}" -merge=1 "$srcdir/fuzz/corpus/$t" "$work" </dev/null \
      >"$out/logs/$t-merge.log" 2>&1 || { say "$t: merge failed" >&2; failed=1; }
  fi
done
say "summary (FUZZ_SECONDS=$seconds):"
for s in "${summary[@]}"; do
  printf '  %s\n' "$s"
done
exit $failed
