/* yaflow train SPEC [key=value ...] [--out DIR] [--threads N] */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: yaflow train SPEC [dotted.key=value ...] [--out DIR] [--overwrite] [--threads N]\n"
    "                  [--profile] [--strict]\n"
    "Trains SPEC (overrides as on `yaflow train models/x.yaml train.epochs=3`) and\n"
    "writes DIR (default runs/<name>): config.yaml (resolved), metrics.csv, log.txt,\n"
    "checkpoint.safetensors. --threads defaults to all cores. --profile times every\n"
    "graph node and writes DIR/profile.txt. A folder that already holds a run, even\n"
    "an unfinished one, is left alone (exit 2) unless --overwrite is given. Warnings\n"
    "about the spec go to stderr; --strict makes them errors.\n";

int cmd_train(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage, CLI_ARG | CLI_OVERRIDES | CLI_THREADS | CLI_OUT | CLI_PROFILE | CLI_OVERWRITE | CLI_STRICT, &a);
    if (rc || a.help)
        return rc;
    yf_error err = {0};
    yf_spec *spec = yf_spec_load(a.positional, a.overrides, a.n_overrides, &err);
    if (!spec)
        return cli_fail(&err);
    char out[1024], earlier[1100];
    if (a.out && (!a.out[0] || strlen(a.out) >= sizeof out)) {
        fprintf(stderr, "yaflow train: --out must name a folder of 1 to %zu characters, not "
                        "%s%.40s%s\n", sizeof out - 1, a.out[0] ? "'" : "an empty string",
                a.out, a.out[0] ? "...'" : "");
        yf_spec_free(spec);
        return 2;
    }
    if (a.out)
        snprintf(out, sizeof out, "%s", a.out);
    else
        snprintf(out, sizeof out, "runs/%s", yf_spec_name(spec));
    /* the folder's problems are found before the model is built */
    struct stat ost;
    if (stat(out, &ost) == 0 && !S_ISDIR(ost.st_mode)) {
        fprintf(stderr, "yaflow train: %s exists and is not a folder\n", out);
        yf_spec_free(spec);
        return 2;
    }
    {
        /* the nearest existing ancestor must be writable */
        char up[1024];
        snprintf(up, sizeof up, "%s", out);
        while (stat(up, &ost) != 0) {
            char *slash = strrchr(up, '/');
            if (!slash) {
                snprintf(up, sizeof up, ".");
                break;
            }
            if (slash == up) {
                up[1] = 0;
                break;
            }
            *slash = 0;
        }
        if (access(up, W_OK) != 0) {
            fprintf(stderr, "yaflow train: cannot write the run folder %s: %s is not writable "
                            "(%s)\n", out, up, strerror(errno));
            yf_spec_free(spec);
            return 2;
        }
    }
    /* an earlier run's results are never replaced by accident */
    snprintf(earlier, sizeof earlier, "%s/checkpoint.safetensors", out);
    struct stat st;
    if (!a.overwrite && stat(earlier, &st) == 0) {
        fprintf(stderr, "yaflow: %s already holds a run (checkpoint.safetensors): give --out "
                        "DIR for a new folder, or --overwrite to replace it\n", out);
        yf_spec_free(spec);
        return 2;
    }
    /* nor is an unfinished one (a config, no checkpoint yet) taken over */
    snprintf(earlier, sizeof earlier, "%s/config.yaml", out);
    if (!a.overwrite && stat(earlier, &st) == 0) {
        fprintf(stderr, "yaflow: %s holds an unfinished run (config.yaml but no checkpoint: it "
                        "stopped before its first epoch ended): give --out DIR for a new "
                        "folder, or --overwrite to replace it\n", out);
        yf_spec_free(spec);
        return 2;
    }
    yf_model *m = yf_model_new(spec, a.threads, &err);
    if (m && cli_warnings(m, &a)) {
        yf_model_free(m);
        yf_spec_free(spec);
        return 2;
    }
    yf_dataset *d = m ? yf_dataset_load(spec, &err) : NULL;
    if (!d) {
        yf_model_free(m);
        yf_spec_free(spec);
        return cli_fail(&err);
    }
    yf_train_opts opts = {.out_dir = out, .echo = stderr, .bar = isatty(2),
                          .profile = a.profile};
    yf_runtime_info info;
    yf_runtime_info_get(&info);
    fprintf(stderr, "training %s: %zu parameters, %zu train / %zu valid examples, "
                    "BLIS %s kernels -> %s\n",
            yf_spec_name(spec), yf_model_param_count(m), yf_dataset_count(d, YF_SPLIT_TRAIN),
            yf_dataset_count(d, YF_SPLIT_VALID), info.blis_arch, out);
    rc = yf_train(m, d, &opts, &err) ? cli_fail(&err) : 0;
    if (!rc)
        printf("%s\n", out);
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(spec);
    return rc;
}
