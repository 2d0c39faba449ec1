/* yaflow encode RUN --layer NAME [--split S] [--mean] -o FILE.npy */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: yaflow encode RUN --layer NAME [--split train|valid|test] [--mean] -o FILE.npy\n"
    "                   [--threads N] [--data DIR]\n"
    "Runs the trained model of RUN (its config.yaml and checkpoint.safetensors) in\n"
    "evaluation mode over a split (default test) and writes layer NAME's outputs as\n"
    "a float32 NumPy array of shape (examples, units) to FILE.npy, and the labels\n"
    "as int64 to FILE.labels.npy beside it. --mean makes sample_normal layers give\n"
    "their mean instead of a sample.\n";

int cmd_encode(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage,
                       CLI_ARG | CLI_THREADS | CLI_LAYER | CLI_SPLIT | CLI_OUTPUT | CLI_MEAN | CLI_DATA, &a);
    if (rc || a.help)
        return rc;
    if (!a.layer || !a.output) {
        fprintf(stderr, "yaflow encode: --layer and -o are required\n%s", usage);
        return 2;
    }
    yf_split split = YF_SPLIT_TEST;
    if (a.split && !strcmp(a.split, "train"))
        split = YF_SPLIT_TRAIN;
    else if (a.split && !strcmp(a.split, "valid"))
        split = YF_SPLIT_VALID;
    else if (a.split && strcmp(a.split, "test")) {
        fprintf(stderr, "yaflow encode: --split must be train, valid or test, not '%s'\n",
                a.split);
        return 2;
    }
    size_t ol = strlen(a.output);
    if (ol < 5 || strcmp(a.output + ol - 4, ".npy")) {
        fprintf(stderr, "yaflow encode: the output file must end in .npy, not '%s'\n", a.output);
        return 2;
    }
    char labels[1100];
    snprintf(labels, sizeof labels, "%.*s.labels.npy", (int)(ol - 4), a.output);
    yf_run r;
    if ((rc = cli_open_run(a.positional, &a, YF_RUN_DATA | (a.mean ? YF_RUN_MEANS : 0),
                           &r)))
        return rc;
    yf_error err = {0};
    if (yf_encode(r.model, r.data, split, a.layer, a.output, labels, &err))
        rc = cli_fail(&err);
    else
        printf("%s\n%s\n", a.output, labels);
    yf_run_close(&r);
    return rc;
}
