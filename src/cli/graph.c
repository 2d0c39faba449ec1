/* yaflow graph SPEC [key=value ...] [-o FILE.dot] [--eval] */
#include "cli.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

static const char usage[] =
    "usage: yaflow graph SPEC [dotted.key=value ...] [-o FILE.dot] [--split eval]\n"
    "Compiles SPEC and writes its training graph, the forward nodes and the backward\n"
    "nodes autodiff added, each with its op and shape (B: examples per batch), as\n"
    "Graphviz DOT to FILE.dot (default runs/<name>.graph.dot), and FILE.svg beside it\n"
    "when Graphviz's `dot` is installed. --split eval draws the evaluation graph.\n";

int cmd_graph(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage, CLI_ARG | CLI_OVERRIDES | CLI_OUTPUT | CLI_SPLIT, &a);
    if (rc || a.help)
        return rc;
    int training = 1;
    if (a.split && !strcmp(a.split, "eval"))
        training = 0;
    else if (a.split && strcmp(a.split, "train")) {
        fprintf(stderr, "yaflow graph: --split must be train or eval, not '%s'\n", a.split);
        return 2;
    }
    yf_error err = {0};
    yf_spec *spec = yf_spec_load(a.positional, a.overrides, a.n_overrides, &err);
    yf_model *m = spec ? yf_model_new(spec, 1, &err) : NULL;
    if (!m) {
        yf_spec_free(spec);
        return cli_fail(&err);
    }
    char dot[1100], svg[1200];
    if (a.output)
        snprintf(dot, sizeof dot, "%s", a.output);
    else
        snprintf(dot, sizeof dot, "runs/%s.graph.dot", yf_spec_name(spec));
    size_t l = strlen(dot);
    snprintf(svg, sizeof svg, "%.*s.svg", (int)(l > 4 && !strcmp(dot + l - 4, ".dot") ? l - 4 : l),
             dot);
    FILE *f = fopen(dot, "w");
    if (!f && !a.output && errno == ENOENT) {
        /* runs/ does not exist yet */
        snprintf(dot, sizeof dot, "%s.graph.dot", yf_spec_name(spec));
        snprintf(svg, sizeof svg, "%s.graph.svg", yf_spec_name(spec));
        f = fopen(dot, "w");
    }
    if (!f) {
        fprintf(stderr, "yaflow graph: cannot write %s: %s\n", dot, strerror(errno));
        rc = 1;
    } else if (yf_model_write_dot(m, f, training) | fclose(f)) {
        fprintf(stderr, "yaflow graph: cannot write %s\n", dot);
        rc = 1;
    } else {
        printf("%s\n", dot);
        /* Graphviz's own program draws it, when installed */
        char *args[] = {"dot", "-Tsvg", "-o", svg, dot, NULL};
        pid_t pid;
        int status;
        if (posix_spawnp(&pid, "dot", NULL, NULL, args, environ) != 0)
            fprintf(stderr, "yaflow graph: Graphviz's dot is not installed (apt-get install "
                            "graphviz): no SVG\n");
        else if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "yaflow graph: dot failed to draw %s\n", svg);
            rc = 1;
        } else
            printf("%s\n", svg);
    }
    yf_model_free(m);
    yf_spec_free(spec);
    return rc;
}
