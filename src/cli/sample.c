/* yaflow sample RUN [-n N] [--seed S] [-o PREFIX] [--score CLASSIFIER_RUN] */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: yaflow sample RUN [-n N] [--seed S] [-o PREFIX] [--score CLASSIFIER_RUN]\n"
    "                   [--threads N] [--data DIR]\n"
    "Generates N images (default 100) from the trained generative model of RUN (a VAE:\n"
    "codes drawn from N(0, I) with seed S, default 1, then decoded) and writes\n"
    "PREFIX.npy (float32, N x the input's shape, values in [0, 1]) and PREFIX.png (the\n"
    "first 400 as a grid); PREFIX defaults to RUN/samples. --score runs a trained\n"
    "classifier over the samples and over as many real test images, and prints, for\n"
    "each, the mean probability of the predicted class and the entropy (nats) of the\n"
    "mix of predicted classes (log 10 = 2.303 when every class is equally common).\n";

/* n examples shaped as the model's input: (n, 784) or (n, 1, 28, 28) */
static int save_npy(const char *path, const float *x, size_t n, const yf_model *m, yf_error *err)
{
    int ndim, dims[8];
    yf_model_layer_size(m, NULL, &ndim, dims);
    int64_t shape[9] = {(int64_t)n};
    for (int k = 0; k < ndim; k++)
        shape[k + 1] = dims[k];
    return yf_npy_save(path, x, shape, ndim + 1, err);
}

int cmd_sample(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage,
                       CLI_ARG | CLI_THREADS | CLI_OUTPUT | CLI_COUNT | CLI_SEED | CLI_SCORE | CLI_DATA, &a);
    if (rc || a.help)
        return rc;
    yf_run r, c = {0};
    if ((rc = cli_open_run(a.positional, &a, YF_RUN_DATA, &r)))
        return rc;
    if (a.score && (rc = cli_open_run(a.score, &a, 0, &c))) {
        yf_run_close(&r);
        return rc;
    }
    size_t n = a.count ? (size_t)a.count : 100, dim = yf_model_input_size(r.model);
    char prefix[1100], npy[1200], png[1200];
    snprintf(prefix, sizeof prefix, "%s", a.output ? a.output : "");
    if (!a.output)
        snprintf(prefix, sizeof prefix, "%s/samples", a.positional);
    size_t pl = strlen(prefix);
    if (pl > 4 && (!strcmp(prefix + pl - 4, ".npy") || !strcmp(prefix + pl - 4, ".png")))
        prefix[pl - 4] = 0;
    snprintf(npy, sizeof npy, "%s.npy", prefix);
    snprintf(png, sizeof png, "%s.png", prefix);
    yf_error err = {0};
    float *x = malloc(n * dim * sizeof *x);
    if (!x) {
        fprintf(stderr, "yaflow sample: out of memory for %zu images\n", n);
        rc = 1;
    } else if (yf_sample(r.model, n, a.seed ? a.seed : 1, x, &err) ||
               save_npy(npy, x, n, r.model, &err)) {
        rc = cli_fail(&err);
    } else {
        yf_show_opts o = {.n = n < 400 ? (int)n : 400, .seed = a.seed ? a.seed : 1};
        if (yf_show(r.model, r.data, a.positional, "samples", png, &o, &err))
            rc = cli_fail(&err);
        else
            printf("%s\n%s\n", npy, png);
    }
    if (!rc && c.model) {
        size_t nt = yf_dataset_count(r.data, YF_SPLIT_TEST);
        nt = nt < n ? nt : n;
        float *t = malloc(nt * dim * sizeof *t + 1);
        yf_score gen, real;
        if (!t || yf_dataset_images(r.data, YF_SPLIT_TEST, 0, nt, t, NULL, &err) ||
            yf_score_images(c.model, x, n, &gen, &err) ||
            yf_score_images(c.model, t, nt, &real, &err))
            rc = t ? cli_fail(&err) : 1;
        else {
            printf("samples=%zu\nsamples_top_prob=%.4f\nsamples_class_entropy=%.4f\n", n,
                   gen.top_prob, gen.entropy);
            printf("test_images=%zu\ntest_top_prob=%.4f\ntest_class_entropy=%.4f\n", nt,
                   real.top_prob, real.entropy);
        }
        free(t);
    }
    free(x);
    yf_run_close(&c);
    yf_run_close(&r);
    return rc;
}
