/* yaflow check SPEC [key=value ...] */
#include "cli.h"

static const char usage[] =
    "usage: yaflow check SPEC [dotted.key=value ...] [--threads N] [--strict] [--keys]\n"
    "Validates SPEC and prints its layers, output shapes, parameter counts,\n"
    "FLOPs per example and memory plan. Exit 2 with file:line:col on errors.\n"
    "Warnings (a layer no loss depends on ...) go to stderr; --strict makes them\n"
    "errors. A checkpoint named by init.from is checked when it exists. --keys\n"
    "prints instead every dotted key of the resolved spec, one per line, as the\n"
    "overrides take them (for shell completion).\n";

static void print_key(const char *key, void *ctx)
{
    (void)ctx;
    printf("%s\n", key);
}

int cmd_check(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage, CLI_ARG | CLI_OVERRIDES | CLI_THREADS | CLI_STRICT | CLI_KEYS, &a);
    if (rc || a.help)
        return rc;
    yf_error err = {0};
    yf_spec *spec = yf_spec_load(a.positional, a.overrides, a.n_overrides, &err);
    if (spec && a.keys) {
        yf_spec_keys(spec, print_key, NULL);
        yf_spec_free(spec);
        return 0;
    }
    yf_model *m = spec ? yf_model_new(spec, a.threads, &err) : NULL;
    if (!m) {
        yf_spec_free(spec);
        return cli_fail(&err);
    }
    /* the sources of init that exist are checked; the others are noted */
    int n_src = yf_model_init_sources(m), missing = 0;
    char src[1100];
    for (int i = 0; i < n_src; i++)
        missing += !yf_model_init_source(m, i, src, sizeof src);
    if (n_src && !missing && yf_model_init_from(m, &err)) {
        yf_model_free(m);
        yf_spec_free(spec);
        return cli_fail(&err);
    }
    yf_model_summary(m, stdout);
    for (int i = 0; i < n_src; i++)
        if (!yf_model_init_source(m, i, src, sizeof src))
            printf("note: init source %s does not exist yet; train refuses to start until it "
                   "does\n", src);
    if (n_src && !missing)
        printf("init: the layers to copy match their sources\n");
    rc = cli_warnings(m, &a);
    if (!rc)
        printf("%s: ok\n", a.positional);
    yf_model_free(m);
    yf_spec_free(spec);
    return rc;
}
