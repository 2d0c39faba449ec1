/* yaflow run EXPERIMENT.yaml [--out DIR] [--threads N] */
#include "cli.h"

#include <stdio.h>
#include <unistd.h>

static const char usage[] =
    "usage: yaflow run EXPERIMENT.yaml [--out DIR] [--threads N] [--data DIR]\n"
    "Runs the steps of an experiment file in order: trainings (each a model file with\n"
    "dotted overrides, repeated over seeds), pictures, samples and codes, where a step\n"
    "refers to an earlier training's folder as ${name}. Writes DIR (default\n"
    "runs/<name>): a folder per training, pictures/, and report.md with the results\n"
    "table (mean ± standard deviation over seeds) and the pictures. A step that\n"
    "finished earlier from the same config is skipped; a changed one reruns. A failed\n"
    "step stops the run (exit 1, or 2 for bad input) and keeps what finished; running\n"
    "again continues from it. The format: docs/experiments.md.\n";

int cmd_run(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage, CLI_ARG | CLI_OUT | CLI_THREADS | CLI_DATA, &a);
    if (rc || a.help)
        return rc;
    yf_error err = {0};
    yf_experiment_opts o = {.out_dir = a.out, .threads = a.threads, .echo = stderr,
                            .bar = cli_live_bar(), .data_dir = a.data};
    if (yf_experiment_run(a.positional, &o, &err))
        return cli_fail(&err);
    return 0;
}
