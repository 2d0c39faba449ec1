/* yaflow eval RUN [--json] [--threads N] */
#include "cli.h"

#include <stdio.h>
#include <time.h>

static const char usage[] =
    "usage: yaflow eval RUN [--json] [--threads N] [--timing]\n"
    "Evaluates the run folder RUN (its config.yaml and checkpoint.safetensors) on\n"
    "the test set: one test_<metric>=<value> line per metric, or one JSON object.\n"
    "--timing adds infer_examples_per_s: test examples through the evaluation\n"
    "graph (batches of 1000) per second of the evaluation alone.\n";

int cmd_eval(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage, CLI_ARG | CLI_THREADS | CLI_JSON | CLI_TIMING, &a);
    if (rc || a.help)
        return rc;
    char cfg[1100], ckpt[1100];
    snprintf(cfg, sizeof cfg, "%s/config.yaml", a.positional);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", a.positional);
    yf_error err = {0};
    yf_spec *spec = yf_spec_load(cfg, NULL, 0, &err);
    yf_model *m = spec ? yf_model_new(spec, a.threads, &err) : NULL;
    yf_dataset *d = NULL;
    if (m && !yf_checkpoint_load(m, ckpt, 0, &err))
        d = yf_dataset_load(spec, &err);
    yf_metric met[65];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = d ? yf_evaluate(m, d, YF_SPLIT_TEST, met, 64, &err) : -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (n >= 0 && a.timing) {
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        snprintf(met[n].name, sizeof met[n].name, "infer_examples_per_s");
        met[n++].value = yf_dataset_count(d, YF_SPLIT_TEST) / s;
    }
    if (n < 0)
        rc = cli_fail(&err);
    else if (a.json) {
        printf("{");
        for (int i = 0; i < n; i++)
            printf("%s\"test_%s\": %.9g", i ? ", " : "", met[i].name, met[i].value);
        printf("}\n");
    } else {
        for (int i = 0; i < n; i++)
            printf("test_%s=%.6g\n", met[i].name, met[i].value);
    }
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(spec);
    return rc;
}
