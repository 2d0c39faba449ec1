/* yaflow train SPEC [key=value ...] [--out DIR] [--threads N]
 * yaflow train --resume RUN [--threads N] */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: yaflow train SPEC [dotted.key=value ...] [--out DIR] [--overwrite] [--threads N]\n"
    "                  [--profile] [--strict] [--data DIR]\n"
    "       yaflow train --resume RUN [--threads N] [--profile] [--data DIR]\n"
    "Trains SPEC (overrides as on `yaflow train models/x.yaml train.epochs=3`) and\n"
    "writes DIR (default runs/<name>): config.yaml (resolved), metrics.csv, log.txt,\n"
    "checkpoint.safetensors. Without --threads, training uses as many threads as the\n"
    "cores other processes leave free (measured as it goes; the results do not depend\n"
    "on it). --profile times every graph node and writes DIR/profile.txt. --data DIR\n"
    "reads the data from DIR, whatever data.dir or $YAFLOW_DATA say. A folder that\n"
    "already holds a run, even an unfinished one, is left alone (exit 2) unless\n"
    "--overwrite is given; the new run then replaces it only once its first checkpoint\n"
    "is saved. Warnings about the spec go to stderr; --strict makes them errors.\n"
    "Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves a checkpoint and\n"
    "exits (130 or 143); a second Ctrl-C stops at once. --resume RUN continues a run\n"
    "from its last checkpoint and ends exactly as an uninterrupted run would; a run\n"
    "that finished is left as it is (exit 0).\n";

/* The signal that asked training to stop (0: none). */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (stop_signal) { /* asked twice: stop at once */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    stop_signal = sig;
}

/* From the start of the command, SIGINT and SIGTERM ask training to save
 * and stop (one that comes while the model is built stops it after its
 * first step). */
static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Trains m on d into out (continuing the run there with --resume). */
static int train_into(yf_model *m, yf_dataset *d, const yf_spec *spec, const char *out,
                      const cli_args *a)
{
    bool lead = yf_dist_rank() == 0; /* the others keep quiet */
    yf_train_opts opts = {.out_dir = out, .echo = lead ? stderr : NULL,
                          .bar = lead && cli_live_bar(),
                          .profile = a->profile, .resume = a->resume,
                          .overwrite = a->overwrite, .stop = &stop_signal,
                          .adapt_threads = a->threads == 0};
    yf_runtime_info info;
    yf_runtime_info_get(&info);
    if (lead)
        fprintf(stderr, "training %s: %zu parameters, %zu train / %zu valid examples, "
                        "BLIS %s kernels%s -> %s\n",
                yf_spec_name(spec), yf_model_param_count(m),
                yf_dataset_count(d, YF_SPLIT_TRAIN), yf_dataset_count(d, YF_SPLIT_VALID),
                info.blis_arch, yf_dist_size() > 1 ? ", data parallel on MPI ranks" : "", out);
    yf_error err = {0};
    int rc = yf_train(m, d, &opts, &err) ? cli_fail(&err) : 0;
    if (err.code == YF_EINTERRUPTED)
        rc = 128 + stop_signal;
    if (!rc && lead)
        printf("%s\n", out);
    return rc;
}

/* yaflow train --resume RUN: the run's own config.yaml, nothing else. */
static int resume(const cli_args *a)
{
    if (a->n_overrides || a->out || a->overwrite || a->strict) {
        fprintf(stderr, "yaflow train: --resume continues RUN as its config.yaml says; it takes "
                        "no %s (start a new run to change something)\n",
                a->n_overrides ? "overrides" : a->out ? "--out" : a->overwrite ? "--overwrite"
                                                                              : "--strict");
        return 2;
    }
    char cfg[1100];
    struct stat st;
    if (strlen(a->positional) > 1000 ||
        (snprintf(cfg, sizeof cfg, "%s/config.yaml", a->positional), stat(cfg, &st) != 0)) {
        fprintf(stderr, "yaflow train: %s is not a run folder (it has no config.yaml): "
                        "--resume takes a folder that yaflow train wrote\n", a->positional);
        return 2;
    }
    yf_error err = {0};
    yf_spec *spec = yf_spec_load(cfg, NULL, 0, &err);
    if (spec && a->data && yf_spec_set_data_dir(spec, a->data, &err)) {
        yf_spec_free(spec);
        spec = NULL;
    }
    yf_model *m = spec ? yf_model_new(spec, a->threads, &err) : NULL;
    yf_dataset *d = m ? yf_dataset_load(spec, &err) : NULL;
    int rc = d ? train_into(m, d, spec, a->positional, a) : cli_fail(&err);
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(spec);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage, CLI_ARG | CLI_OVERRIDES | CLI_THREADS | CLI_OUT | CLI_PROFILE | CLI_OVERWRITE | CLI_STRICT | CLI_RESUME | CLI_DATA, &a);
    if (rc || a.help)
        return rc;
    catch_signals();
    if (a.resume)
        return resume(&a);
    yf_error err = {0};
    yf_spec *spec = yf_spec_load(a.positional, a.overrides, a.n_overrides, &err);
    if (spec && a.data && yf_spec_set_data_dir(spec, a.data, &err)) {
        yf_spec_free(spec);
        spec = NULL;
    }
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
    /* the folder's problems are found before the model is built (by rank
     * 0, which alone writes it) */
    struct stat ost;
    bool lead = yf_dist_rank() == 0;
    if (lead && stat(out, &ost) == 0 && !S_ISDIR(ost.st_mode)) {
        fprintf(stderr, "yaflow train: %s exists and is not a folder\n", out);
        yf_spec_free(spec);
        return 2;
    }
    if (lead) {
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
    if (lead && !a.overwrite && stat(earlier, &st) == 0) {
        fprintf(stderr, "yaflow: %s already holds a run (checkpoint.safetensors): give --out "
                        "DIR for a new folder, or --overwrite to replace it\n", out);
        yf_spec_free(spec);
        return 2;
    }
    /* nor is an unfinished one (a config, no checkpoint yet) taken over */
    snprintf(earlier, sizeof earlier, "%s/config.yaml", out);
    if (lead && !a.overwrite && stat(earlier, &st) == 0) {
        fprintf(stderr, "yaflow: %s holds an unfinished run (config.yaml but no checkpoint: it "
                        "stopped before its first epoch ended): give --out DIR for a new "
                        "folder, or --overwrite to replace it\n", out);
        yf_spec_free(spec);
        return 2;
    }
    yf_model *m = yf_model_new(spec, a.threads, &err);
    if (m && lead && cli_warnings(m, &a)) {
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
    rc = train_into(m, d, spec, out, &a);
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(spec);
    return rc;
}
