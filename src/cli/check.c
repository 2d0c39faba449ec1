/* yaflow check SPEC [key=value ...] */
#include "cli.h"

static const char usage[] =
    "usage: yaflow check SPEC [dotted.key=value ...] [--threads N]\n"
    "Validates SPEC and prints its layers, output shapes, parameter counts,\n"
    "FLOPs per example and memory plan. Exit 2 with file:line:col on errors.\n";

int cmd_check(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage, CLI_ARG | CLI_OVERRIDES | CLI_THREADS, &a);
    if (rc || a.help)
        return rc;
    yf_error err = {0};
    yf_spec *spec = yf_spec_load(a.positional, a.overrides, a.n_overrides, &err);
    yf_model *m = spec ? yf_model_new(spec, a.threads, &err) : NULL;
    if (!m) {
        yf_spec_free(spec);
        return cli_fail(&err);
    }
    yf_model_summary(m, stdout);
    printf("%s: ok\n", a.positional);
    yf_model_free(m);
    yf_spec_free(spec);
    return 0;
}
