#!/bin/sh
# make-man.sh YAFLOW VERSION > yaflow.1 -- the manual page yaflow(1), made
# from the program's own --help texts (`yaflow --help` and `yaflow COMMAND
# --help` for every command it lists), so the two cannot drift apart.
set -eu
yaflow=$1
version=$2

# roff: backslashes, leading dots and quotes, and hyphens as minus signs
esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/-/\\-/g'; }

commands=$("$yaflow" --help | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p')
[ -n "$commands" ] || { echo "make-man.sh: $yaflow --help lists no commands" >&2; exit 1; }

cat <<HEAD
.TH YAFLOW 1 "" "yaflow $version" "User Commands"
.SH NAME
yaflow \\- dataflow graphs from YAML model files: train, evaluate, picture, hash
.SH SYNOPSIS
.B yaflow
.I COMMAND
.RI [ ARGS ]
.br
.B yaflow
.B \\-\\-help
|
.B \\-\\-version
.SH DESCRIPTION
yaflow compiles a model file (YAML) into a static computation graph with
reverse\\-mode automatic differentiation, trains it with OpenMP on BLIS kernels
and writes a run folder (config.yaml, metrics.csv, log.txt,
checkpoint.safetensors) that the other commands read.
The sections below are the program's own help texts.
.PP
.nf
HEAD
"$yaflow" --help | esc
echo ".fi"
echo ".SH COMMANDS"
for c in $commands; do
  echo ".SS \"yaflow $c\""
  echo ".nf"
  "$yaflow" "$c" --help | esc
  echo ".fi"
done
cat <<'TAIL'
.SH ENVIRONMENT
.TP
.B YAFLOW_DATA
the folder of the data files when neither \-\-data nor data.dir gives one
(default: ./data).
.SH EXIT STATUS
0 success; 1 runtime failure (input/output, memory, a diverging run);
2 bad input (model file, override, data file, checkpoint, command line);
130 or 143 when train was stopped by SIGINT or SIGTERM after saving a
checkpoint (yaflow train \-\-resume RUN continues it).
.SH OUTPUT
Results go to standard output, progress and messages to standard error.
yaflow writes no colour; the progress bar's cursor movements are written only
to a terminal.
.SH SEE ALSO
The README and docs/ of the yaflow sources: docs/tutorial.md,
docs/model\-language.md, docs/experiments.md.
TAIL
