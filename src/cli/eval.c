/* yaflow eval RUN [--json] [--threads N] */
#include "cli.h"

#include <math.h>

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
    int rc = cli_parse(argc, argv, usage, CLI_ARG | CLI_THREADS | CLI_JSON | CLI_TIMING | CLI_DATA, &a);
    if (rc || a.help)
        return rc;
    yf_run r;
    if ((rc = cli_open_run(a.positional, &a, YF_RUN_DATA, &r)))
        return rc;
    yf_error err = {0};
    yf_model *m = r.model;
    yf_dataset *d = r.data;
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
    else if (a.json) { /* JSON has no NaN or infinity: null */
        printf("{");
        for (int i = 0; i < n; i++)
            printf(isfinite(met[i].value) ? "%s\"test_%s\": %.9g" : "%s\"test_%s\": null",
                   i ? ", " : "", met[i].name, met[i].value);
        printf("}\n");
    } else {
        for (int i = 0; i < n; i++)
            printf("test_%s=%.6g\n", met[i].name, met[i].value);
    }
    if (n > 0 && !isfinite(met[0].value)) {
        fprintf(stderr, "yaflow eval: the test loss of %s is %g: the checkpoint's parameters "
                        "do not give a finite loss\n", a.positional, met[0].value);
        rc = 1;
    }
    yf_run_close(&r);
    return rc;
}
