/* yaflow: the command-line driver. */
#include "cli.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void usage(FILE *out)
{
    fprintf(out, "usage: yaflow COMMAND [ARGS]   (yaflow COMMAND --help for more)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-7s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nexit codes: 0 ok, 1 runtime failure, 2 bad input (spec, data, checkpoint)\n");
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
            fprintf(stderr, "yaflow %s: unknown option '%s'\n%s", argv[1], s, usage_text);
            return 2;
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
    if ((flags & CLI_ARG) && !a->positional) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    return 0;
}

int cli_fail(yf_error *err)
{
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
    return yf_run_open_data(r, dir, a->threads, flags, a->data, &err) ? cli_fail(&err) : 0;
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
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc, argv);
    fprintf(stderr, "yaflow: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
