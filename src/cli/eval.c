/* yaflow eval RUN [--split S] [--json] [--threads N] [--timing] [--data DIR] */
#include "cli.h"

#include <math.h>
#include <stdbool.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: yaflow eval RUN [--split test|valid|train] [--json] [--threads N] [--timing]\n"
    "                 [--data DIR]\n"
    "Evaluates the run folder RUN (its config.yaml and checkpoint.safetensors) on a\n"
    "split (default test): one <split>_<name>=<value> line per value, or one JSON\n"
    "object. <split>_loss is the weighted sum of the loss terms; each term is\n"
    "printed unweighted, with the weights on stderr, so compare models by terms.\n"
    "stderr also says which checkpoint was evaluated (epoch, step) and warns when\n"
    "the run did not finish its epochs. --timing adds infer_examples_per_s: examples\n"
    "through the evaluation graph per second of the evaluation alone. --data DIR\n"
    "reads the data from DIR instead of where the run's config says.\n";

/* One line on stderr: which checkpoint, and whether the run finished. */
static void which_checkpoint(const char *dir, const yf_run *r, int epochs)
{
    if (r->epoch < 0) {
        fprintf(stderr, "yaflow eval: %s: the checkpoint (step %llu) does not record its "
                        "epoch (written before yaflow recorded progress)\n", dir, r->step);
    } else if (r->finished && r->best_epoch > 0 && r->best_epoch != r->epoch) {
        fprintf(stderr, "yaflow eval: %s: checkpoint of epoch %d, the best of the %d the run "
                        "trained (early stopping), step %llu\n", dir, r->best_epoch, r->epoch,
                r->step);
    } else if (r->finished) {
        fprintf(stderr, "yaflow eval: %s: checkpoint after epoch %d of %d (step %llu); the "
                        "run finished\n", dir, r->epoch, epochs, r->step);
    } else {
        char inside[96] = "";
        if (r->position)
            snprintf(inside, sizeof inside, ", %zu examples into epoch %d", r->position,
                     r->epoch + 1);
        fprintf(stderr, "yaflow eval: warning: %s did not finish its %d epochs (interrupted "
                        "or failed): this is the checkpoint after epoch %d%s (step %llu); "
                        "`yaflow train --resume %s` continues it\n", dir, epochs, r->epoch,
                inside, r->step, dir);
    }
}

int cmd_eval(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage,
                       CLI_ARG | CLI_THREADS | CLI_JSON | CLI_TIMING | CLI_DATA | CLI_SPLIT, &a);
    if (rc || a.help)
        return rc;
    static const char *const names[] = {"train", "valid", "test"};
    yf_split split = YF_SPLIT_TEST;
    if (a.split) {
        int k = 0;
        while (k < 3 && strcmp(a.split, names[k]))
            k++;
        if (k == 3) {
            fprintf(stderr, "yaflow eval: --split must be test, valid or train, not '%s'\n",
                    a.split);
            return 2;
        }
        split = (yf_split)k;
    }
    yf_run r;
    if ((rc = cli_open_run(a.positional, &a, YF_RUN_DATA, &r)))
        return rc;
    which_checkpoint(a.positional, &r, yf_spec_epochs(r.spec));
    yf_error err = {0};
    yf_metric met[65];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = yf_evaluate(r.model, r.data, split, met, 64, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (n >= 0 && a.timing) {
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        snprintf(met[n].name, sizeof met[n].name, "infer_examples_per_s");
        met[n].weight = NAN;
        met[n++].value = yf_dataset_count(r.data, split) / s;
    }
    const char *sp = names[split];
    if (n < 0) {
        rc = cli_fail(&err);
    } else {
        /* what the loss is made of, so that losses of models with other
         * terms or weights are not compared as if alike */
        char sum[1024];
        size_t l = 0;
        sum[0] = 0;
        for (int i = 1; i < n && l < sizeof sum; i++)
            if (!isnan(met[i].weight) && met[i].weight != 0)
                l += snprintf(sum + l, sizeof sum - l, "%s%.6g × %s", l ? " + " : "",
                              met[i].weight, met[i].name);
        fprintf(stderr, "yaflow eval: %s_loss = %s", sp, l ? sum : "0");
        bool reported = false;
        for (int i = 1; i < n; i++)
            if (met[i].weight == 0) {
                fprintf(stderr, "%s%s", reported ? ", " : "; reported only (weight 0): ",
                        met[i].name);
                reported = true;
            }
        fprintf(stderr, "\n");
        if (a.json) { /* JSON has no NaN or infinity: null */
            printf("{\"split\": \"%s\", \"epoch\": %d, \"step\": %llu, \"finished\": %s", sp,
                   r.epoch, r.step, r.finished ? "true" : "false");
            for (int i = 0; i < n; i++)
                printf(isfinite(met[i].value) ? ", \"%s_%s\": %.9g" : ", \"%s_%s\": null", sp,
                       met[i].name, met[i].value);
            printf(", \"weights\": {");
            for (int i = 1, k = 0; i < n; i++)
                if (!isnan(met[i].weight))
                    printf("%s\"%s\": %.9g", k++ ? ", " : "", met[i].name, met[i].weight);
            printf("}}\n");
        } else {
            for (int i = 0; i < n; i++)
                printf("%s_%s=%.6g\n", sp, met[i].name, met[i].value);
        }
    }
    if (n > 0 && !isfinite(met[0].value)) {
        fprintf(stderr, "yaflow eval: the %s loss of %s is %g: the checkpoint's parameters "
                        "do not give a finite loss\n", sp, a.positional, met[0].value);
        rc = 1;
    }
    yf_run_close(&r);
    return rc;
}
