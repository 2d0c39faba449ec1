/* The command line as a user meets it: the yaflow program run through the
 * shell (from test_cli.tmp/, with small MNIST-shaped data the suite
 * writes), its exit codes, what it prints on stdout and stderr. */
#include "testutil.h"

#include <ctype.h>
#include <sys/wait.h>

#define DIR "test_cli.tmp"

/* The build folder, absolute (the commands run in other folders). */
static const char *build(void)
{
    static char path[1024];
    if (!path[0] && !realpath(tu_builddir(), path))
        snprintf(path, sizeof path, "%s", tu_builddir());
    return path;
}

typedef struct {
    int rc;
    char *out, *err;
} result;

/* Runs `yaflow ARGS` in folder `in` (below the build folder) through
 * the shell, with env prepended (e.g. "YAFLOW_DATA= "). */
static result yaflow_in(const char *in, const char *env, const char *args)
{
    char cmd[8192], out[1200], err[1200];
    snprintf(out, sizeof out, "%s/" DIR "/stdout.txt", build());
    snprintf(err, sizeof err, "%s/" DIR "/stderr.txt", build());
    snprintf(cmd, sizeof cmd, "cd '%s/%s' && %s '%s/yaflow' %s > '%s' 2> '%s'", build(),
             in, env ? env : "", build(), args, out, err);
    int st = system(cmd);
    result r = {.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1};
    r.out = tu_read(out, NULL);
    r.err = tu_read(err, NULL);
    ck_assert(r.out && r.err);
    return r;
}

static void done(result *r)
{
    free(r->out);
    free(r->err);
}

/* The value of `key=` in text, or NAN. */
static double value_of(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

static const char spec_text[] =
    "name: tiny\n"
    "seed: 5\n"
    "data: {source: mnist, dir: ../mydata, valid: 32}\n"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  layers:\n"
    "    - {name: hidden, type: dense, units: 16, activation: elu}\n"
    "    - {name: out, type: dense, units: 64, activation: sigmoid}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n"
    "    - {type: l2, weight: 1.0e-4, params: [hidden.W]}\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: 3}\n";

static void setup(void)
{
    tu_workdir(DIR);
    tu_write_dataset(DIR "/mydata", 224, 40, 8, false);
    tu_mkdirs(DIR "/specs");
    tu_mkdirs(DIR "/elsewhere/deeper");
    tu_write(DIR "/specs/tiny.yaml", spec_text, sizeof spec_text - 1);
}

/* A relative data.dir is the spec file's; eval of the run works from
 * another folder; when the data move, the hint says what is true, and
 * --data finds them. */
START_TEST(test_data_dir_and_eval_elsewhere)
{
    setup();
    /* from the test folder, the spec one level down: ../mydata is
     * DIR/mydata, not the current folder's ../mydata */
    result r = yaflow_in(DIR, "YAFLOW_DATA=", "train specs/tiny.yaml --out run --threads 1");
    ck_assert_msg(r.rc == 0, "train: %d\n%s", r.rc, r.err);
    done(&r);
    char *cfg = tu_read(DIR "/run/config.yaml", NULL);
    char want[2400];
    snprintf(want, sizeof want, "dir: %s/" DIR "/mydata", build());
    ck_assert_msg(cfg && strstr(cfg, want), "config.yaml does not record %s:\n%s", want, cfg);
    free(cfg);

    result here = yaflow_in(DIR, "YAFLOW_DATA=", "eval run --threads 1");
    ck_assert_msg(here.rc == 0, "%s", here.err);
    double loss = value_of(here.out, "test_loss=");
    ck_assert(isfinite(loss) && loss > 0);
    /* which checkpoint, and what the loss is made of */
    ck_assert_msg(strstr(here.err, "checkpoint after epoch 3 of 3 (step 18); the run finished"),
                  "%s", here.err);
    ck_assert_msg(strstr(here.err, "test_loss = 1 × mse + 0.0001 × l2"), "%s", here.err);
    result far = yaflow_in(DIR "/elsewhere/deeper", "YAFLOW_DATA=", "eval ../../run --threads 1");
    ck_assert_msg(far.rc == 0, "eval from another folder: %s", far.err);
    ck_assert_msg(value_of(far.out, "test_loss=") == loss, "%s vs %s", far.out, here.out);
    done(&far);

    /* the data move: the hint names data.dir and its file, and --data */
    ck_assert(rename(DIR "/mydata", DIR "/moved") == 0);
    result gone = yaflow_in(DIR "/elsewhere", "YAFLOW_DATA=/nowhere", "eval ../run --threads 1");
    ck_assert_int_eq(gone.rc, 2);
    snprintf(want, sizeof want, "missing mnist data file: data.dir is %s/" DIR "/mydata "
             "(../run/config.yaml:4)", build());
    ck_assert_msg(strstr(gone.err, want), "%s\nwant %s", gone.err, want);
    ck_assert_msg(strstr(gone.err, "Give --data DIR to read them from elsewhere, or change "
                                   "data.dir"), "%s", gone.err);
    /* not "set YAFLOW_DATA": with data.dir set it would not help */
    ck_assert_msg(!strstr(gone.err, "YAFLOW_DATA"), "%s", gone.err);
    done(&gone);
    result moved = yaflow_in(DIR "/elsewhere", NULL, "eval ../run --data ../moved --threads 1");
    ck_assert_msg(moved.rc == 0, "%s", moved.err);
    ck_assert_msg(value_of(moved.out, "test_loss=") == loss, "%s", moved.out);
    done(&moved);
    result wrong = yaflow_in(DIR "/elsewhere", NULL, "eval ../run --data ../mydata --threads 1");
    ck_assert_int_eq(wrong.rc, 2);
    ck_assert_msg(strstr(wrong.err, "--data gives ") &&
                  strstr(wrong.err, "Give --data the folder that holds the files"), "%s",
                  wrong.err);
    done(&wrong);

    /* no data.dir: $YAFLOW_DATA, then ./data, each named as such */
    result env = yaflow_in(DIR, "YAFLOW_DATA=/nowhere",
                           "train specs/tiny.yaml --out run2 'data={source: mnist, valid: 32}'");
    ck_assert_int_eq(env.rc, 2);
    ck_assert_msg(strstr(env.err, "$YAFLOW_DATA is /nowhere. Give --data DIR, or set "
                                  "$YAFLOW_DATA (or data.dir)"), "%s", env.err);
    done(&env);
    result cwd = yaflow_in(DIR, "YAFLOW_DATA=",
                           "train specs/tiny.yaml --out run2 'data={source: mnist, valid: 32}'");
    ck_assert_int_eq(cwd.rc, 2);
    ck_assert_msg(strstr(cwd.err, "without --data, data.dir or $YAFLOW_DATA they are looked "
                                  "for in ./data, below the current directory "), "%s", cwd.err);
    done(&cwd);
    result given = yaflow_in(DIR, "YAFLOW_DATA=/nowhere",
                             "train specs/tiny.yaml --out run2 'data={source: mnist, valid: 32}' "
                             "--data moved --threads 1");
    ck_assert_msg(given.rc == 0, "%s", given.err);
    done(&given);
    done(&here);
}
END_TEST

/* eval of a run that did not finish says so and names its epoch. */
START_TEST(test_eval_interrupted)
{
    setup();
    /* SIGINT a second into a run of 100000 epochs */
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s/" DIR "' && ( '%s/yaflow' train specs/tiny.yaml --out cut --threads 1 "
             "train.epochs=100000 > cut.out 2> cut.err & p=$!; sleep 1; kill -INT $p; wait $p; "
             "echo $? > cut.rc )", build(), build());
    ck_assert(system(cmd) == 0);
    char *rc = tu_read(DIR "/cut.rc", NULL), *err = tu_read(DIR "/cut.err", NULL);
    ck_assert_msg(rc && atoi(rc) == 130, "exit %s: %s", rc, err);
    ck_assert_msg(strstr(err, "interrupted at step ") &&
                  strstr(err, "continue with `yaflow train --resume cut`"), "%s", err);
    free(rc);
    free(err);
    result e = yaflow_in(DIR, NULL, "eval cut --threads 1");
    ck_assert_msg(e.rc == 0, "%s", e.err);
    ck_assert_msg(strstr(e.err, "warning: cut did not finish its 100000 epochs (interrupted or "
                                "failed): this is the checkpoint after epoch "),
                  "%s", e.err);
    ck_assert_msg(strstr(e.err, "`yaflow train --resume cut` continues it"), "%s", e.err);
    ck_assert(isfinite(value_of(e.out, "test_loss=")));
    done(&e);
    result j = yaflow_in(DIR, NULL, "eval cut --json --split valid --threads 1");
    ck_assert_msg(j.rc == 0 && strstr(j.out, "\"split\": \"valid\"") &&
                  strstr(j.out, "\"finished\": false") && strstr(j.out, "\"valid_loss\": "),
                  "%s %s", j.out, j.err);
    done(&j);
}
END_TEST

/* The words of text that are options ("--out", "-o"), as options_in in
 * main.c finds them; returns how many, stored in out. */
static int options_of(const char *text, char out[][32], int cap)
{
    int n = 0;
    for (const char *p = text; *p && n < cap; p++) {
        if (*p != '-' || (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '-')))
            continue;
        size_t l = 1;
        while (p[l] == '-' || isalnum((unsigned char)p[l]))
            l++;
        if (l >= 2 && l < 32 && isalpha((unsigned char)p[l - 1])) {
            memcpy(out[n], p, l);
            out[n++][l] = 0;
        }
        p += l - 1;
    }
    return n;
}

/* yaflow.1 (made by make from the --help texts) names every command and
 * every option that --help shows; man renders it. */
START_TEST(test_man_page)
{
    tu_workdir(DIR);
    char path[1200];
    snprintf(path, sizeof path, "%s/yaflow.1", build());
    char *man = tu_read(path, NULL);
    ck_assert_msg(man != NULL, "%s is missing: make builds it", path);
    /* the roff source without its escapes: "\-" is "-" */
    char *plain = malloc(strlen(man) + 1), *w = plain;
    for (const char *p = man; *p; p++)
        if (!(p[0] == '\\' && p[1] == '-'))
            *w++ = *p;
    *w = 0;
    result top = yaflow_in(DIR, NULL, "--help");
    ck_assert_int_eq(top.rc, 0);
    int commands = 0, options = 0;
    for (const char *line = top.out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        /* "  name   what it does" */
        char cmd[32];
        size_t l = strspn(line + 2, "abcdefghijklmnopqrstuvwxyz");
        if (line[0] != ' ' || line[1] != ' ' || l == 0 || l >= sizeof cmd ||
            strncmp(line + 2 + l, "  ", 2))
            continue;
        memcpy(cmd, line + 2, l);
        cmd[l] = 0;
        commands++;
        char heading[64];
        snprintf(heading, sizeof heading, ".SS \"yaflow %s\"", cmd);
        ck_assert_msg(strstr(man, heading), "yaflow.1 has no section for %s", cmd);
        char args[64];
        snprintf(args, sizeof args, "%s --help", cmd);
        result h = yaflow_in(DIR, NULL, args);
        ck_assert_int_eq(h.rc, 0);
        char opts[128][32];
        int n = options_of(h.out, opts, 128);
        ck_assert_msg(n > 0 || !strcmp(cmd, "info"), "%s --help names no option", cmd);
        /* every command that reads data takes --data */
        bool reads = strcmp(cmd, "check") && strcmp(cmd, "graph") && strcmp(cmd, "info");
        ck_assert_msg(!reads || strstr(h.out, "[--data DIR]"), "%s --help has no --data", cmd);
        for (int i = 0; i < n; i++, options++)
            ck_assert_msg(strstr(plain, opts[i]), "yaflow.1 lacks %s of %s", opts[i], cmd);
        /* and the usage line itself */
        char usage[256];
        snprintf(usage, sizeof usage, "%.*s", (int)strcspn(h.out, "\n"), h.out);
        ck_assert_msg(strstr(plain, usage), "yaflow.1 lacks '%s'", usage);
        done(&h);
    }
    ck_assert_msg(commands >= 11, "only %d commands in --help", commands);
    printf("yaflow.1: %d commands, %d options of their --help texts, all present\n", commands,
           options);
    done(&top);
    free(man);
    free(plain);
    /* man renders it, when man is installed */
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "command -v man > /dev/null && MANWIDTH=80 man -l '%s' > "
             DIR "/man.txt 2> /dev/null", path);
    if (system(cmd) == 0) {
        char *txt = tu_read(DIR "/man.txt", NULL);
        ck_assert_msg(txt && strstr(txt, "yaflow train --resume RUN"), "man -l output:\n%s",
                      txt);
        free(txt);
    }
}
END_TEST

/* Bash completion (completion/yaflow): commands, options, model files and
 * a model file's dotted keys. */
static char *complete(const char *words, int cword)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && bash -c 'source \"%s/completion/yaflow\"; "
             "COMP_WORDS=(%s); COMP_CWORD=%d; _yaflow; printf \"%%s\\n\" \"${COMPREPLY[@]}\"' "
             "> '%s/" DIR "/complete.txt' 2> /dev/null", build(), tu_srcdir()[0] == '/' ? tu_srcdir() : build(), words, cword, build());
    ck_assert(system(cmd) == 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/" DIR "/complete.txt", build());
    return tu_read(path, NULL);
}

START_TEST(test_bash_completion)
{
    setup();
    char *c = complete("./yaflow tr", 1);
    ck_assert_msg(c && !strcmp(c, "train\n"), "yaflow tr<TAB>: '%s'", c);
    free(c);
    c = complete("./yaflow e", 1);
    ck_assert_msg(c && strstr(c, "eval\n") && strstr(c, "encode\n"), "yaflow e<TAB>: '%s'", c);
    free(c);
    c = complete("./yaflow eval --js", 2);
    ck_assert_msg(c && !strcmp(c, "--json\n"), "eval --js<TAB>: '%s'", c);
    free(c);
    c = complete("./yaflow train " DIR "/specs/ti", 2);
    ck_assert_msg(c && !strcmp(c, DIR "/specs/tiny.yaml\n"), "train <TAB>: '%s'", c);
    free(c);
    /* the model file's keys, with '=' */
    c = complete("./yaflow train " DIR "/specs/tiny.yaml train.ep", 3);
    ck_assert_msg(c && !strcmp(c, "train.epochs=\n"), "train.ep<TAB>: '%s'", c);
    free(c);
    c = complete("./yaflow train " DIR "/specs/tiny.yaml model.layers.hidden.u", 3);
    ck_assert_msg(c && strstr(c, "model.layers.hidden.units=\n") &&
                  strstr(c, "model.layers.hidden.use_bias=\n"), "hidden.u<TAB>: '%s'", c);
    free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_data_dir_and_eval_elsewhere);
    tcase_add_test(tc, test_eval_interrupted);
    tcase_add_test(tc, test_man_page);
    tcase_add_test(tc, test_bash_completion);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    if (rc == EXIT_SUCCESS)
        tu_rmtree(DIR);
    return rc;
}
