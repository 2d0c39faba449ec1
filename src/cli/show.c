/* yaflow show RUN WHAT... [-o PATH] [-n N] [-k K] [--layer NAME] [--seed S] */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: yaflow show RUN WHAT... [-o PATH] [-n N] [-k K] [--layer NAME] [--seed S]\n"
    "                 [--threads N] [--data DIR]\n"
    "Draws pictures of the trained run RUN as PNG files, RUN/pictures/WHAT.png unless\n"
    "-o names the file (one WHAT) or a folder (several). WHAT is one or more of:\n"
    "  reconstructions  test images, their corrupted versions (denoising models) and\n"
    "                   the reconstructions; -n images (10)\n"
    "  filters          the first dense layer's weights as image tiles (-n units, 100),\n"
    "                   or a conv layer's kernels; --layer picks another layer\n"
    "  top-activations  for each unit of the coding layer (--layer; default: a VAE's\n"
    "                   mean, a layer named coding, else the narrowest dense layer),\n"
    "                   the -k (8) test images that activate it most; -n units\n"
    "  curves           training and validation loss and metrics per epoch\n"
    "  latent           codes of the test images coloured by class: the 2 units of a\n"
    "                   2-unit code, else the first two principal components\n"
    "  samples          -n (100) images generated from the prior (VAE); --seed\n"
    "  interpolation    decoded walks between the codes of two test images (VAE)\n"
    "  confusion        a classifier's confusion matrix on the test set\n"
    "  buckets          the -n (12) largest buckets of training images sharing a hash\n"
    "                   code (--layer, default the spec's hash: {layer}), -k (12) each\n";

int cmd_show(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage,
                       CLI_ARG | CLI_MORE | CLI_THREADS | CLI_OUTPUT | CLI_COUNT | CLI_K |
                           CLI_LAYER | CLI_SEED | CLI_DATA, &a);
    if (rc || a.help)
        return rc;
    if (a.n_more == 0) {
        fprintf(stderr, "yaflow show: say what to draw after the run folder\n%s", usage);
        return 2;
    }
    yf_error err = {0};
    for (int i = 0; i < a.n_more; i++) {
        int known = 0;
        for (int k = 0; yf_show_pictures[k]; k++)
            known |= !strcmp(a.more[i], yf_show_pictures[k]);
        if (!known) {
            yf_show(NULL, NULL, NULL, a.more[i], NULL, NULL, &err); /* names the near one */
            return cli_fail(&err);
        }
    }
    yf_run r;
    if ((rc = cli_open_run(a.positional, &a, YF_RUN_DATA, &r)))
        return rc;
    char dir[1100];
    int to_dir = !a.output || a.n_more > 1;
    if (!a.output)
        snprintf(dir, sizeof dir, "%s/pictures", a.positional);
    else
        snprintf(dir, sizeof dir, "%s", a.output);
    if (to_dir && mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "yaflow show: cannot create %s: %s\n", dir, strerror(errno));
        yf_run_close(&r);
        return 1;
    }
    yf_show_opts o = {.n = (int)a.count, .k = (int)a.k, .layer = a.layer, .seed = a.seed};
    for (int i = 0; i < a.n_more && !rc; i++) {
        char path[1200];
        if (to_dir)
            snprintf(path, sizeof path, "%s/%s.png", dir, a.more[i]);
        else
            snprintf(path, sizeof path, "%s", a.output);
        if (yf_show(r.model, r.data, a.positional, a.more[i], path, &o, &err))
            rc = cli_fail(&err);
        else
            printf("%s\n", path);
    }
    yf_run_close(&r);
    return rc;
}
