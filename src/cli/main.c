/* yaflow: the command-line driver. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COMMANDS(XX)                                                               \
    XX(check, "validate a model spec and print its layers, shapes, parameters, FLOPs") \
    XX(train, "train a model spec and write a run folder")                         \
    XX(eval, "evaluate a trained run on the test set")                             \
    XX(encode, "write a layer's outputs for a data split as a NumPy .npy file")    \
    XX(show, "draw pictures of a trained run as PNG files")                        \
    XX(sample, "generate images from a trained generative model (PNG and .npy)")  \
    XX(graph, "write the compiled graph (forward and backward) as Graphviz DOT/SVG") \
    XX(run, "run an experiment: trainings, pictures and a report")                 \
    XX(hash, "binary codes of a trained run: an index file and retrieval metrics") \
    XX(query, "the nearest training images of a test image, by Hamming distance")  \
    XX(info, "show BLIS kernels, threads and CPU features")

static const struct {
    const char *name, *help;
    int (*fn)(int, char **);
} commands[] = {
#define XX(n, h) {#n, h, cmd_##n},
    COMMANDS(XX)
#undef XX
};

/* Words other tools use for a command, and yaflow's. */
static const char *const aliases[][2] = {
    {"summary", "check"}, {"validate", "check"}, {"lint", "check"}, {"fit", "train"},
    {"evaluate", "eval"}, {"test", "eval"}, {"score", "eval"}, {"predict", "encode"},
    {"infer", "encode"}, {"embed", "encode"}, {"plot", "show"}, {"visualize", "show"},
    {"visualise", "show"}, {"draw", "show"}, {"generate", "sample"}, {"dot", "graph"},
    {"experiment", "run"}, {"search", "query"}, {"version", "--version"},
};

/* The options a usage text names ("--out", "-o", ...), in order. */
static int options_in(const char *usage_text, const char **out, char store[][24], int cap)
{
    int n = 0;
    for (const char *p = usage_text; *p && n < cap; p++) {
        if (*p != '-' || (p > usage_text && (isalnum((unsigned char)p[-1]) || p[-1] == '-')))
            continue;
        size_t l = 1;
        while (p[l] == '-' || isalnum((unsigned char)p[l]))
            l++;
        if (l < 2 || l >= 24 || !isalpha((unsigned char)p[l - 1]))
            continue;
        memcpy(store[n], p, l);
        store[n][l] = 0;
        bool seen = false;
        for (int i = 0; i < n && !seen; i++)
            seen = !strcmp(out[i], store[n]);
        if (!seen)
            out[n] = store[n], n++;
        p += l - 1;
    }
    return n;
}

typedef struct {
    const char *word; /* the option's name, "-" → "_" */
    const char *best; /* a dotted key ending in it (the shortest) */
    char buf[256];
} key_match;

static void match_key(const char *key, void *ctx)
{
    key_match *k = ctx;
    const char *last = strrchr(key, '.');
    last = last ? last + 1 : key;
    if (!strcmp(last, k->word) && (!k->best || strlen(key) < strlen(k->best))) {
        snprintf(k->buf, sizeof k->buf, "%s", key);
        k->best = k->buf;
    }
}

/* "train --epochs 2": the model file's key train.epochs, when the spec on
 * the command line (or, without one, any spec) has a key of that name. */
static const char *spec_key_for(const char *option, int argc, char **argv, key_match *k)
{
    static const char *const common[][2] = {
        {"epochs", "train.epochs"}, {"batch_size", "train.batch_size"},
        {"learning_rate", "train.optimizer.learning_rate"},
        {"lr", "train.optimizer.learning_rate"}, {"optimizer", "train.optimizer.type"},
        {"seed", "seed"}, {"valid", "data.valid"}, {"source", "data.source"},
        {"name", "name"}, {"patience", "train.early_stopping.patience"},
    };
    char word[64];
    snprintf(word, sizeof word, "%s", option + strspn(option, "-"));
    word[strcspn(word, "=")] = 0;
    for (char *c = word; *c; c++)
        if (*c == '-')
            *c = '_';
    k->word = word, k->best = NULL;
    for (int i = 2; i < argc && !k->best; i++) {
        size_t l = strlen(argv[i]);
        if (argv[i][0] == '-' || l < 6 || (strcmp(argv[i] + l - 5, ".yaml") &&
                                           strcmp(argv[i] + l - 4, ".yml")))
            continue;
        yf_error err = {0};
        yf_spec *spec = yf_spec_load(argv[i], NULL, 0, &err);
        if (spec) {
            yf_spec_keys(spec, match_key, k);
            yf_spec_free(spec);
        }
    }
    for (size_t i = 0; !k->best && i < sizeof common / sizeof common[0]; i++)
        if (!strcmp(word, common[i][0])) {
            snprintf(k->buf, sizeof k->buf, "%s", common[i][1]);
            k->best = k->buf;
        }
    return k->best;
}

/* An option the command does not take: the nearest it does, or the model
 * file's key the user probably meant. */
static int unknown_option(int argc, char **argv, int i, const char *usage_text, int flags)
{
    const char *s = argv[i], *cmd = argv[1];
    key_match k;
    if ((flags & CLI_OVERRIDES) && s[0] == '-' && s[1] == '-' && spec_key_for(s, argc, argv, &k)) {
        const char *v = i + 1 < argc && argv[i + 1][0] != '-' && !strchr(argv[i + 1], '=')
                            ? argv[i + 1] : "VALUE";
        const char *eq = strchr(s, '=');
        if (eq)
            v = eq + 1;
        fprintf(stderr, "yaflow %s: unknown option '%s': to set the model file's %s, write "
                        "%s=%s (a dotted key, no dashes)\n", cmd, s, k.best, k.best, v);
        return 2;
    }
    const char *opts[64];
    char store[64][24];
    int n = options_in(usage_text, opts, store, 64);
    const char *near = yf_closest(s, opts, n);
    fprintf(stderr, "yaflow %s: unknown option '%s'%s%s%s (yaflow %s --help lists them)\n", cmd,
            s, near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "", cmd);
    return 2;
}

/* The positional argument is missing: say which, with an example. */
static int missing_argument(const char *cmd, const char *usage_text)
{
    const char *what = strstr(usage_text, cmd);
    what = what ? what + strlen(cmd) + 1 : "";
    if (!strncmp(what, "SPEC", 4))
        fprintf(stderr, "yaflow %s: which model? Give a model file (SPEC), e.g. yaflow %s "
                        "models/stacked-ae.yaml\n", cmd, cmd);
    else if (!strncmp(what, "RUN", 3))
        fprintf(stderr, "yaflow %s: which run? Give a run folder that yaflow train wrote "
                        "(RUN), e.g. yaflow %s runs/stacked-ae%s\n", cmd, cmd,
                !strcmp(cmd, "encode") ? " --layer coding -o codes.npy"
                : !strcmp(cmd, "show") ? " reconstructions"
                : !strcmp(cmd, "query") ? " --image 0" : "");
    else if (!strncmp(what, "EXPERIMENT", 10))
        fprintf(stderr, "yaflow %s: which experiment? Give an experiment file, e.g. yaflow %s "
                        "examples/ex10-vae.yaml\n", cmd, cmd);
    else
        fprintf(stderr, "yaflow %s: an argument is missing\n", cmd);
    fprintf(stderr, "(yaflow %s --help for more)\n", cmd);
    return 2;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: yaflow COMMAND [ARGS]   (yaflow COMMAND --help for more)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-7s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n  yaflow --version   the version\n");
    fprintf(out, "\nexit codes: 0 ok, 1 runtime failure, 2 bad input (spec, data, checkpoint),\n"
                 "130/143 training stopped by SIGINT/SIGTERM after saving a checkpoint\n");
}

int cli_parse(int argc, char **argv, const char *usage_text, int flags, cli_args *a)
{
    int allow_overrides = flags & CLI_OVERRIDES;
    memset(a, 0, sizeof *a);
    a->image = a->radius = a->top = -1;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            printf("%s", usage_text);
            a->help = 1;
            return 0;
        } else if (!strcmp(s, "--json") && (flags & CLI_JSON)) {
            a->json = 1;
        } else if (!strcmp(s, "--profile") && (flags & CLI_PROFILE)) {
            a->profile = 1;
        } else if (!strcmp(s, "--overwrite") && (flags & CLI_OVERWRITE)) {
            a->overwrite = 1;
        } else if (!strcmp(s, "--keys") && (flags & CLI_KEYS)) {
            a->keys = 1;
        } else if (!strcmp(s, "--resume") && (flags & CLI_RESUME)) {
            a->resume = 1;
        } else if (!strcmp(s, "--strict") && (flags & CLI_STRICT)) {
            a->strict = 1;
        } else if (!strcmp(s, "--mean") && (flags & CLI_MEAN)) {
            a->mean = 1;
        } else if (!strcmp(s, "--timing") && (flags & CLI_TIMING)) {
            a->timing = 1;
        } else if ((!strcmp(s, "--layer") && (flags & CLI_LAYER)) ||
                   (!strcmp(s, "--split") && (flags & CLI_SPLIT)) ||
                   ((!strcmp(s, "-o") || !strcmp(s, "--output")) && (flags & CLI_OUTPUT))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "yaflow %s: %s needs a value\n%s", argv[1], s, usage_text);
                return 2;
            }
            const char **slot = !strcmp(s, "--layer") ? &a->layer
                                : !strcmp(s, "--split") ? &a->split : &a->output;
            *slot = argv[++i];
        } else if ((!strcmp(s, "-n") && (flags & CLI_COUNT)) ||
                   (!strcmp(s, "-k") && (flags & CLI_K)) ||
                   (!strcmp(s, "--seed") && (flags & CLI_SEED))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "yaflow %s: %s needs a value\n%s", argv[1], s, usage_text);
                return 2;
            }
            char *end;
            errno = 0;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            long cap = !strcmp(s, "--seed") ? 0 : !strcmp(s, "-k") ? 100 : 1000000;
            if (*end || errno || argv[i][0] == '-' || v < 1 || (cap && v > (unsigned long long)cap)) {
                if (cap)
                    fprintf(stderr, "yaflow %s: %s must be an integer from 1 to %ld, not '%s'\n",
                            argv[1], s, cap, argv[i]);
                else
                    fprintf(stderr, "yaflow %s: %s must be a positive integer, not '%s'\n",
                            argv[1], s, argv[i]);
                return 2;
            }
            if (!strcmp(s, "-n"))
                a->count = (long)v;
            else if (!strcmp(s, "-k"))
                a->k = (long)v;
            else
                a->seed = v;
        } else if ((flags & CLI_QUERY) &&
                   (!strcmp(s, "--image") || !strcmp(s, "--radius") || !strcmp(s, "--top"))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "yaflow %s: %s needs a value\n%s", argv[1], s, usage_text);
                return 2;
            }
            char *end;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            long lo = !strcmp(s, "--top") ? 1 : 0, hi = !strcmp(s, "--radius") ? 64 : 100000000;
            if (*end || errno || !argv[i][0] || v < lo || v > hi) {
                fprintf(stderr, "yaflow %s: %s must be an integer from %ld to %ld, not '%s'\n",
                        argv[1], s, lo, hi, argv[i]);
                return 2;
            }
            *(!strcmp(s, "--image") ? &a->image : !strcmp(s, "--radius") ? &a->radius : &a->top) = v;
        } else if (!strcmp(s, "--score") && (flags & CLI_SCORE)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "yaflow %s: %s needs a value\n%s", argv[1], s, usage_text);
                return 2;
            }
            a->score = argv[++i];
        } else if (!strcmp(s, "--data") && (flags & CLI_DATA)) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                fprintf(stderr, "yaflow %s: --data needs a folder\n%s", argv[1], usage_text);
                return 2;
            }
            a->data = argv[++i];
        } else if ((!strcmp(s, "--out") && (flags & CLI_OUT)) ||
                   (!strcmp(s, "--threads") && (flags & CLI_THREADS))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "yaflow %s: %s needs a value\n%s", argv[1], s, usage_text);
                return 2;
            }
            if (!strcmp(s, "--out")) {
                a->out = argv[++i];
            } else {
                char *end;
                long t = strtol(argv[++i], &end, 10);
                int cores = omp_get_num_procs();
                if (*end || t < 1 || t > cores) {
                    /* more threads than cores: busy-waiting workers would
                     * slow training down a hundredfold */
                    fprintf(stderr, "yaflow %s: --threads must be from 1 to %d (the cores "
                                    "here), not '%s'\n", argv[1], cores, argv[i]);
                    return 2;
                }
                a->threads = (int)t;
            }
        } else if (s[0] == '-') {
            return unknown_option(argc, argv, i, usage_text, flags);
        } else if (!a->positional) {
            a->positional = s;
            if (!(flags & CLI_ARG)) {
                fprintf(stderr, "yaflow %s: unexpected argument '%s'\n%s", argv[1], s, usage_text);
                return 2;
            }
        } else if ((flags & CLI_MORE) && !strchr(s, '=')) {
            if (a->n_more == 32) {
                fprintf(stderr, "yaflow %s: too many arguments\n", argv[1]);
                return 2;
            }
            a->more[a->n_more++] = s;
        } else if (allow_overrides && strchr(s, '=')) {
            if (a->n_overrides == 256) {
                fprintf(stderr, "yaflow %s: too many overrides\n", argv[1]);
                return 2;
            }
            a->overrides[a->n_overrides++] = s;
        } else {
            fprintf(stderr, "yaflow %s: unexpected argument '%s'%s\n%s", argv[1], s,
                    allow_overrides ? " (overrides are dotted.key=value)" : "", usage_text);
            return 2;
        }
    }
    if ((flags & CLI_ARG) && !a->positional)
        return missing_argument(argv[1], usage_text);
    return 0;
}

int cli_live_bar(void)
{
    const char *term = getenv("TERM");
    return isatty(2) && !(term && !strcmp(term, "dumb"));
}

int yf__cli_shared_exit; /* every rank ends with the same code by itself */

int cli_fail(yf_error *err)
{
    /* with several ranks, an error every rank met is told by rank 0 alone */
    if (yf_dist_size() > 1 && yf_dist_rank() > 0 && yf_dist_error_shared())
        return yf_status_exit_code(err->code);
    if (yf_dist_size() > 1 && yf_dist_rank() > 0)
        fprintf(stderr, "yaflow: rank %d: %s\n", yf_dist_rank(), yf_error_format(err));
    else
        fprintf(stderr, "yaflow: %s\n", yf_error_format(err));
    return yf_status_exit_code(err->code);
}

int cli_warnings(const yf_model *m, const cli_args *a)
{
    int n = yf_model_warning_count(m);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "yaflow: %s%s\n", yf_model_warning(m, i),
                a->strict ? " (an error with --strict)" : "");
    return a->strict && n ? 2 : 0;
}

int cli_open_run(const char *dir, const cli_args *a, int flags, yf_run *r)
{
    yf_error err = {0};
    if (yf_run_open_data(r, dir, a->threads, flags, a->data, &err))
        return cli_fail(&err);
    if (!a->threads) /* no --threads: the cores other processes leave free */
        yf_model_fit_threads(r->model);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("yaflow %s\n", PACKAGE_VERSION);
        return 0;
    }
    /* the kernels BLIS would not pick on its own, before any model exists */
    yf_error err = {0};
    yf_runtime_choose_kernels(&err);
    /* started by mpirun: MPI comes up now, after the kernel choice (which
     * forks and sets the environment) and before anything else */
    if (yf_dist_init(&argc, &argv, &err))
        return cli_fail(&err);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc;
            if (yf_dist_size() > 1 && strcmp(argv[1], "train") && strcmp(argv[1], "info")) {
                if (yf_dist_rank() == 0)
                    fprintf(stderr, "yaflow %s: only `yaflow train` runs on several ranks "
                                    "(mpirun); run %s in one process\n", argv[1], argv[1]);
                rc = 2;
                yf__cli_shared_exit = 1;
            } else {
                rc = commands[i].fn(argc, argv);
            }
            /* an error one rank met alone ends the others, which would wait
             * for it at their next exchange */
            if (rc && yf_dist_size() > 1 && !yf_dist_error_shared() && !yf__cli_shared_exit)
                yf_dist_abort(rc);
            yf_dist_finalize();
            return rc;
        }
    const char *near = NULL;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0] && !near; i++)
        if (!strcmp(argv[1], aliases[i][0]))
            near = aliases[i][1];
    const char *names[32];
    int n = 0;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        names[n++] = commands[i].name;
    if (!near)
        near = yf_closest(argv[1], names, n);
    for (size_t i = 0; near && i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(near, commands[i].name)) {
            fprintf(stderr, "yaflow: unknown command '%s' (did you mean '%s'? %s: %s)\n",
                    argv[1], near, near, commands[i].help);
            return 2;
        }
    if (near) /* --version */
        fprintf(stderr, "yaflow: unknown command '%s' (did you mean '%s'?)\n", argv[1], near);
    else
        fprintf(stderr, "yaflow: unknown command '%s' (yaflow --help lists the commands)\n",
                argv[1]);
    return 2;
}
