/* The yaflow command line: one file per subcommand. Only the CLI prints and
 * exits; the library reports through yf_error. */
#ifndef YAFLOW_CLI_H
#define YAFLOW_CLI_H

#include "../yaflow.h"

typedef struct cli_args {
    const char *positional;     /* SPEC or RUN */
    const char *overrides[256]; /* key=value */
    int n_overrides;
    const char *out;
    int threads;
    int json;
    int profile;
    int overwrite;
    int resume;
    int keys;
    const char *data;     /* --data DIR */
    int help;
    int strict;
    int mean;
    int timing;
    const char *layer, *split, *output;
    const char *more[32]; /* further positional arguments (CLI_MORE) */
    int n_more;
    long count, k;        /* -n, -k (0: not given) */
    unsigned long long seed; /* --seed (0: not given) */
    const char *score;    /* --score RUN */
    long image, radius, top; /* --image, --radius, --top (-1: not given) */
} cli_args;

/* What a subcommand accepts: a SPEC or RUN (required), key=value overrides,
 * and the options --threads, --out, --json, --profile. */
enum {
    CLI_ARG = 1, CLI_OVERRIDES = 2, CLI_THREADS = 4, CLI_OUT = 8, CLI_JSON = 16,
    CLI_PROFILE = 32, CLI_OVERWRITE = 64, CLI_STRICT = 128, CLI_LAYER = 256, CLI_SPLIT = 512,
    CLI_OUTPUT = 1024, CLI_MEAN = 2048, CLI_TIMING = 4096, CLI_MORE = 8192, CLI_COUNT = 16384,
    CLI_K = 32768, CLI_SEED = 65536, CLI_SCORE = 131072, CLI_QUERY = 262144,
    CLI_RESUME = 524288, CLI_DATA = 1048576,
    CLI_KEYS = 2097152
};

/* Parses argv[2..]; prints a message and returns 2 on bad usage. On --help
 * it prints the usage, sets a->help and returns 0. */
int cli_parse(int argc, char **argv, const char *usage, int flags, cli_args *a);
/* Whether stderr takes a live progress bar (carriage returns and an
 * erase-line sequence): a terminal that is not TERM=dumb. yaflow writes
 * no colour, so NO_COLOR has nothing to turn off. */
int cli_live_bar(void);
/* Prints the error and returns the exit code for it. */
int cli_fail(yf_error *err);

int cmd_check(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_query(int argc, char **argv);

/* yf_run_open, printing the error: returns 0 or the exit code. */
/* Opens run folder dir (reading the data from a->data when given). */
int cli_open_run(const char *dir, const struct cli_args *a, int flags, yf_run *r);

/* Prints the model's warnings to stderr; with --strict they are errors:
 * returns 2 then, else 0. */
int cli_warnings(const yf_model *m, const cli_args *a);

#endif
