/* spec.c and compile.c's checks: the bad-input corpus tests/bad-specs
 * (each NN-name.yaml with its exact message in NN-name.expected, checked in
 * process and through `yaflow check`, which must exit 2), overrides, and
 * resolved configs that read back as the same spec. */
#include "testutil.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- the corpus ---------------------------------------------------------------- */

static char bad_names[256][128]; /* "01-yaml-syntax", sorted */
static int n_bad;

static int by_name(const void *a, const void *b) { return strcmp(a, b); }

/* Called from main (no ck_assert here): lists the .yaml files of tests/bad-specs. */
static void list_bad_specs(void)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/tests/bad-specs", tu_srcdir());
    DIR *d = opendir(dir);
    if (!d)
        return; /* test_corpus_complete fails */
    struct dirent *e;
    while ((e = readdir(d)) && n_bad < 256) {
        size_t n = strlen(e->d_name);
        if (n > 5 && n < 128 && !strcmp(e->d_name + n - 5, ".yaml"))
            snprintf(bad_names[n_bad++], 128, "%.*s", (int)(n - 5), e->d_name);
    }
    closedir(d);
    qsort(bad_names, n_bad, sizeof bad_names[0], by_name);
}

/* The expected message, with its "tests/bad-specs/..." path. */
static char *expected(const char *name)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/tests/bad-specs/%s.expected", tu_srcdir(), name);
    char *text = tu_read(path, NULL);
    ck_assert_msg(text != NULL, "no %s", path);
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = 0;
    ck_assert_msg(!strchr(text, '\n'), "%s holds more than one line", path);
    return text;
}

/* A message without the source folder: "tests/bad-specs/..." (the corpus
 * is read from $top_srcdir, which make distcheck puts elsewhere). */
static const char *relative(const char *msg)
{
    const char *src = tu_srcdir();
    size_t n = strlen(src);
    if (!strncmp(msg, src, n) && msg[n] == '/')
        return msg + n + 1;
    return msg;
}

START_TEST(test_corpus_complete)
{
    ck_assert_msg(n_bad >= 100, "only %d specs in %s/tests/bad-specs", n_bad, tu_srcdir());
    for (int i = 0; i < n_bad; i++) {
        const char *n = bad_names[i];
        size_t digits = strspn(n, "0123456789");
        ck_assert_msg((digits == 2 || digits == 3) && n[digits] == '-',
                      "%s.yaml is not named NN-short-name.yaml", n);
        free(expected(n));
        for (int j = 0; j < i; j++)
            ck_assert_msg(atoi(n) != atoi(bad_names[j]), "two specs numbered %d", atoi(n));
    }
}
END_TEST

/* In process: yf_spec_load, then yf_model_new, fail with the message. */
START_TEST(test_bad_spec)
{
    ck_assert_int_lt(_i, n_bad);
    const char *name = bad_names[_i];
    char path[1100];
    snprintf(path, sizeof path, "%s/tests/bad-specs/%s.yaml", tu_srcdir(), name);
    char *want = expected(name);
    yf_error err = {0};
    yf_spec *s = yf_spec_load(path, NULL, 0, &err);
    yf_model *m = s ? yf_model_new(s, 1, &err) : NULL;
    ck_assert_msg(m == NULL, "%s.yaml: accepted", name);
    ck_assert_msg(err.code == YF_ESPEC, "%s.yaml: %s, not YF_ESPEC: %s", name,
                  yf_status_name(err.code), yf_error_format(&err));
    ck_assert_int_eq(yf_status_exit_code(err.code), 2);
    ck_assert_str_eq(relative(yf_error_format(&err)), want);
    yf_spec_free(s);
    free(want);
}
END_TEST

/* Runs argv with stdout discarded; returns the exit status and stderr. */
static int run_cli(char *const argv[], char *err_out, size_t cap)
{
    int fd[2];
    ck_assert(pipe(fd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        FILE *null = freopen("/dev/null", "w", stdout);
        (void)null;
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t got;
    while ((got = read(fd[0], err_out + n, cap - 1 - n)) > 0)
        n += (size_t)got;
    err_out[n] = 0;
    close(fd[0]);
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(WIFEXITED(status), "%s died with signal %d", argv[0], WTERMSIG(status));
    return WEXITSTATUS(status);
}

static const char *yaflow_path(void)
{
    static char path[1100];
    snprintf(path, sizeof path, "%s/yaflow", tu_builddir());
    ck_assert_msg(access(path, X_OK) == 0, "no %s: build it first (make)", path);
    return path;
}

/* Through the command line: `yaflow check` exits 2 with the message. */
START_TEST(test_bad_spec_cli)
{
    ck_assert_int_lt(_i, n_bad);
    const char *name = bad_names[_i];
    char path[1100], out[4096];
    snprintf(path, sizeof path, "%s/tests/bad-specs/%s.yaml", tu_srcdir(), name);
    char *want = expected(name);
    char *argv[] = {(char *)yaflow_path(), "check", path, NULL};
    int rc = run_cli(argv, out, sizeof out);
    ck_assert_msg(rc == 2, "yaflow check %s.yaml: exit %d, not 2\n%s", name, rc, out);
    char line[4200];
    snprintf(line, sizeof line, "yaflow: %s", want);
    size_t n = strlen(out);
    while (n && out[n - 1] == '\n')
        out[--n] = 0;
    ck_assert_msg(!strncmp(out, "yaflow: ", 8), "%s", out);
    ck_assert_str_eq(relative(out + 8), want);
    free(want);
}
END_TEST

START_TEST(test_cli_good_and_usage)
{
    char path[1100], out[8192];
    snprintf(path, sizeof path, "%s/models/tied-ae.yaml", tu_srcdir());
    char *ok[] = {(char *)yaflow_path(), "check", path, NULL};
    ck_assert_int_eq(run_cli(ok, out, sizeof out), 0);
    char *ov[] = {(char *)yaflow_path(), "check", path, "train.epochs=zero", NULL};
    ck_assert_int_eq(run_cli(ov, out, sizeof out), 2);
    ck_assert_str_eq(out, "yaflow: override 'train.epochs=zero':1:14: train: 'epochs' must be an "
                          "integer, not 'zero'\n");
    char *missing[] = {(char *)yaflow_path(), "check", "no-such-spec.yaml", NULL};
    ck_assert_int_eq(run_cli(missing, out, sizeof out), 2);
    ck_assert_str_eq(out, "yaflow: no-such-spec.yaml: cannot open spec: No such file or "
                          "directory\n");
    char *none[] = {(char *)yaflow_path(), "check", NULL};
    ck_assert_int_eq(run_cli(none, out, sizeof out), 2);
    ck_assert_str_eq(out, "yaflow check: which model? Give a model file (SPEC), e.g. yaflow check "
                          "models/stacked-ae.yaml\n(yaflow check --help for more)\n");
    char *bogus[] = {(char *)yaflow_path(), "frobnicate", NULL};
    ck_assert_int_eq(run_cli(bogus, out, sizeof out), 2);
    ck_assert_str_eq(out, "yaflow: unknown command 'frobnicate' (yaflow --help lists the "
                          "commands)\n");
}
END_TEST

/* train refuses a folder that holds an earlier run, and leaves it intact */
START_TEST(test_cli_keeps_earlier_run)
{
    char path[1100], out[8192];
    snprintf(path, sizeof path, "%s/models/tied-ae.yaml", tu_srcdir());
    mkdir("earlier-run.tmp", 0777);
    FILE *f = fopen("earlier-run.tmp/checkpoint.safetensors", "w");
    ck_assert_ptr_nonnull(f);
    fputs("earlier", f);
    fclose(f);
    char *train[] = {(char *)yaflow_path(), "train", path, "--out", "earlier-run.tmp", NULL};
    ck_assert_int_eq(run_cli(train, out, sizeof out), 2);
    ck_assert_str_eq(out, "yaflow: earlier-run.tmp already holds a run (checkpoint.safetensors): "
                          "give --out DIR for a new folder, or --overwrite to replace it\n");
    f = fopen("earlier-run.tmp/checkpoint.safetensors", "r");
    char buf[16] = {0};
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fread(buf, 1, sizeof buf - 1, f), 7);
    fclose(f);
    ck_assert_str_eq(buf, "earlier");
    f = fopen("earlier-run.tmp/config.yaml", "r");
    ck_assert_msg(f == NULL, "train wrote config.yaml into the earlier run's folder");
    remove("earlier-run.tmp/checkpoint.safetensors");
    /* an unfinished run (a config, no checkpoint) is not taken over either */
    f = fopen("earlier-run.tmp/config.yaml", "w");
    ck_assert_ptr_nonnull(f);
    fputs("# unfinished\n", f);
    fclose(f);
    ck_assert_int_eq(run_cli(train, out, sizeof out), 2);
    ck_assert_str_eq(out, "yaflow: earlier-run.tmp holds an unfinished run (config.yaml but no "
                          "checkpoint: it stopped before its first epoch ended): give --out DIR "
                          "for a new folder, or --overwrite to replace it\n");
    f = fopen("earlier-run.tmp/config.yaml", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    fclose(f);
    ck_assert_str_eq(buf, "# unfinished\n");
    remove("earlier-run.tmp/config.yaml");
    rmdir("earlier-run.tmp");
}
END_TEST

/* ---- overrides ------------------------------------------------------------------- */

static const char *const base =
    "name: ov\n"
    "data: {source: mnist}\n"
    "model:\n"
    "  input: {name: x, shape: [12]}\n"
    "  layers:\n"
    "    - {name: hidden, type: dense, units: 8, activation: elu}\n"
    "    - {name: coding, type: dense, units: 4, activation: elu}\n"
    "    - {name: out, type: dense, units: 12, activation: sigmoid}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n"
    "train: {epochs: 5}\n";

START_TEST(test_overrides)
{
    const char *ov[] = {"train.epochs=3", "model.layers.coding.units=20", "seed=7",
                        "train.optimizer={type: momentum, nesterov: true}",
                        "model.layers.0.activation=relu"};
    yf_spec *s = tu_spec(base, ov, 5);
    ck_assert_int_eq(s->epochs, 3);
    ck_assert_int_eq(s->layers[1].units, 20);
    ck_assert_int_eq(s->seed, 7);
    ck_assert_int_eq(s->optim.type, YF_OPTIM_MOMENTUM);
    ck_assert(s->optim.nesterov);
    ck_assert(fabsf(s->optim.momentum - 0.9f) < 1e-7f);
    ck_assert_int_eq(s->layers[0].activation, YF_ACT_RELU);
    yf_error err = {0};
    yf_model *m = yf_model_new(s, 1, &err);
    ck_assert_msg(m != NULL, "%s", yf_error_format(&err));
    int w = tu_param(m, "coding.W");
    ck_assert_int_ge(w, 0);
    ck_assert_int_eq(m->params[w].dims[0], 8);
    ck_assert_int_eq(m->params[w].dims[1], 20);
    tu_free(m, s);
}
END_TEST

static void override_fails(const char *ov, yf_status code, const char *want)
{
    yf_error err = {0};
    yf_spec *s = yf_spec_parse(base, strlen(base), "base.yaml", &ov, 1, &err);
    yf_model *m = s ? yf_model_new(s, 1, &err) : NULL;
    ck_assert_msg(m == NULL, "%s: accepted", ov);
    ck_assert_msg(err.code == code, "%s: %s", ov, yf_error_format(&err));
    ck_assert_str_eq(yf_error_format(&err), want);
    ck_assert_int_eq(yf_status_exit_code(err.code), 2);
    yf_spec_free(s);
}

START_TEST(test_bad_overrides)
{
    override_fails("train.epochs", YF_EUSAGE,
                   "override 'train.epochs' is not of the form dotted.key=value");
    override_fails("model.layers.codng.units=3", YF_EUSAGE,
                   "override 'model.layers.codng.units=3': no element 'codng' in the list");
    override_fails("name.first=x", YF_EUSAGE,
                   "override 'name.first=x': 'first' is inside a scalar value");
    /* values are checked like the file's, and errors point into the override */
    override_fails("train.epochs=-2", YF_ESPEC,
                   "override 'train.epochs=-2':1:14: train: 'epochs' must be between 0 and "
                   "100000, not -2");
    override_fails("model.layers.coding.unit=3", YF_ESPEC,
                   "override 'model.layers.coding.unit=3':1:26: layer 'coding': unknown key "
                   "'unit' (did you mean 'units'?)");
    override_fails("train.batch_sise=3", YF_ESPEC,
                   "override 'train.batch_sise=3':1:18: train: unknown key 'batch_sise' (did you "
                   "mean 'batch_size'?)");
    override_fails("model.layers.out.units=10", YF_ESPEC,
                   "base.yaml:10:39: loss 'mse': input 'out' has 10 features but target 'x' "
                   "has 12");
}
END_TEST

/* ---- resolved configs ------------------------------------------------------------- */

static char *resolved(const yf_spec *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(yf_spec_write(s, f), 0);
    fclose(f);
    return buf;
}

#define SAME(field) ck_assert_msg(a->field == b->field, "%s: " #field " differs", what)
#define SAME_STR(field) \
    ck_assert_msg(!strcmp(a->field, b->field), "%s: " #field " '%s' vs '%s'", what, a->field, b->field)

static void assert_same_spec(const yf_spec *a, const yf_spec *b, const char *what)
{
    SAME_STR(name);
    SAME(seed);
    SAME_STR(source);
    SAME_STR(data_dir);
    SAME(valid);
    SAME(train_fraction);
    SAME_STR(input_name);
    SAME(input_ndim);
    for (int i = 0; i < a->input_ndim; i++)
        SAME(input_shape[i]);
    SAME(n_layers);
    for (int i = 0; i < a->n_layers; i++) {
        SAME_STR(layers[i].name);
        SAME(layers[i].type);
        SAME(layers[i].n_inputs);
        for (int k = 0; k < a->layers[i].n_inputs; k++)
            SAME_STR(layers[i].inputs[k]);
        SAME(layers[i].units);
        SAME(layers[i].activation);
        SAME(layers[i].alpha);
        SAME(layers[i].init);
        SAME(layers[i].bias_init);
        SAME_STR(layers[i].weights);
        SAME(layers[i].weights_transposed);
        SAME(layers[i].use_bias);
        SAME(layers[i].trainable);
        SAME(layers[i].stddev);
        SAME(layers[i].rate);
    }
    SAME(n_losses);
    for (int i = 0; i < a->n_losses; i++) {
        SAME(losses[i].type);
        SAME_STR(losses[i].input);
        SAME_STR(losses[i].target);
        SAME(losses[i].weight);
        SAME(losses[i].reduce_sum);
        SAME(losses[i].n_params);
        for (int k = 0; k < a->losses[i].n_params; k++)
            SAME_STR(losses[i].params[k]);
    }
    SAME(optim.type);
    SAME(optim.lr);
    SAME(optim.momentum);
    SAME(optim.beta1);
    SAME(optim.beta2);
    SAME(optim.epsilon);
    SAME(optim.weight_decay);
    SAME(optim.nesterov);
    SAME(batch_size);
    SAME(epochs);
}

/* text → spec → resolved YAML → spec: the same spec, and the same YAML. */
static void round_trip(yf_spec *s, const char *what)
{
    char *first = resolved(s);
    ck_assert_msg(!strncmp(first, "# resolved by yaflow from ", 26), "%s", first);
    yf_error err = {0};
    yf_spec *s2 = yf_spec_parse(first, strlen(first), "resolved.yaml", NULL, 0, &err);
    ck_assert_msg(s2 != NULL, "%s: the resolved config does not parse: %s\n%s", what,
                  yf_error_format(&err), first);
    assert_same_spec(s, s2, what);
    char *second = resolved(s2);
    /* the first line names the source */
    ck_assert_str_eq(strchr(first, '\n'), strchr(second, '\n'));
    free(first);
    free(second);
    yf_spec_free(s2);
}

START_TEST(test_resolved_round_trip)
{
    const char *ov[] = {"train.epochs=3", "model.layers.coding.units=20"};
    yf_spec *s = tu_spec(base, ov, 2);
    round_trip(s, "base with overrides");
    yf_spec_free(s);

    /* every feature the language has */
    const char *all =
        "name: everything\n"
        "seed: 12345678901\n"
        "data: {source: fashion_mnist, dir: \"some dir/x\", valid: 100, train_fraction: 0.25}\n"
        "model:\n"
        "  input: {name: img, shape: [1, 2, 3]}\n"
        "  layers:\n"
        "    - {name: flat_noise, type: gaussian_noise, stddev: 0.5}\n"
        "    - {type: dropout, rate: 0.2, input: img}\n"
        "    - {name: h, type: dense, units: 3, activation: leaky_relu, alpha: 0.3,\n"
        "       init: he_normal, bias_init: zeros, use_bias: true, trainable: false}\n"
        "    - {name: t, type: dense, units: 6, weights: h.W^T, use_bias: false}\n"
        "    - {name: act, type: activation, function: elu, alpha: 2}\n"
        "  loss:\n"
        "    - {type: sigmoid_cross_entropy, input: act, target: img, reduce: sum, weight: 2.5}\n"
        "    - {type: l2, weight: 1.0e-5, params: [h.W]}\n"
        "    - {type: mse, target: img}\n"
        "train:\n"
        "  optimizer: {type: adam, learning_rate: 3.0e-4, beta1: 0.8, beta2: 0.99,\n"
        "              epsilon: 1.0e-7, weight_decay: 0.01}\n"
        "  batch_size: 7\n"
        "  epochs: 0\n";
    s = tu_spec(all, NULL, 0);
    ck_assert_str_eq(s->layers[1].name, "dropout_2"); /* generated */
    ck_assert_str_eq(s->losses[2].input, "act");    /* the last layer */
    ck_assert_int_eq(s->seed, 12345678901ull);
    round_trip(s, "everything");
    yf_spec_free(s);

    /* the chapter's models: every file in models/ */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/models", tu_srcdir());
    DIR *dp = opendir(dir);
    ck_assert_msg(dp != NULL, "cannot open %s", dir);
    char models[64][256];
    size_t n_models = 0;
    for (struct dirent *de; (de = readdir(dp)) && n_models < 64;)
        if (strlen(de->d_name) > 5 && !strcmp(de->d_name + strlen(de->d_name) - 5, ".yaml"))
            snprintf(models[n_models++], sizeof models[0], "%s", de->d_name);
    closedir(dp);
    ck_assert_msg(n_models >= 3, "only %zu model files in %s", n_models, dir);
    for (size_t i = 0; i < n_models; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, models[i]);
        yf_error err = {0};
        s = yf_spec_load(path, NULL, 0, &err);
        ck_assert_msg(s != NULL, "%s", yf_error_format(&err));
        yf_model *m = yf_model_new(s, 1, &err);
        ck_assert_msg(m != NULL, "%s", yf_error_format(&err));
        yf_model_free(m);
        round_trip(s, models[i]);
        yf_spec_free(s);
    }
}
END_TEST

/* Defaults are written out, so a run folder's config.yaml says everything. */
START_TEST(test_defaults_explicit)
{
    yf_spec *s = tu_spec(base, NULL, 0);
    ck_assert_int_eq(s->seed, 42);
    ck_assert_int_eq(s->batch_size, 32);
    ck_assert_int_eq(s->valid, 5000);
    ck_assert_int_eq(s->optim.type, YF_OPTIM_ADAM);
    char *text = resolved(s);
    const char *words[] = {"seed: 42", "valid: 5000", "train_fraction: 1.0", "batch_size: 32",
                           "type: adam", "learning_rate: 0.001", "beta2: 0.999",
                           "epsilon: 1.0e-8", "weight_decay: 0.0", "init: glorot_uniform",
                           "bias_init: zeros", "use_bias: true", "trainable: true",
                           "reduce: mean", "weight: 1.0", "alpha: 1.0"};
    for (size_t i = 0; i < YF__ARRAY_LEN(words); i++)
        ck_assert_msg(strstr(text, words[i]) != NULL, "no '%s' in\n%s", words[i], text);
    free(text);
    yf_spec_free(s);
}
END_TEST

START_TEST(test_load_missing_file)
{
    yf_error err = {0};
    ck_assert(yf_spec_load("test_spec-no-such.yaml", NULL, 0, &err) == NULL);
    ck_assert_int_eq(err.code, YF_ESPEC);
    ck_assert_str_eq(yf_error_format(&err),
                     "test_spec-no-such.yaml: cannot open spec: No such file or directory");
}
END_TEST

/* Two models of one spec but for the seed live side by side, and the
 * accessors answer for each. (That there is no global state, with models
 * interleaved and in threads, is test_train's test_no_global_state.) */
START_TEST(test_two_models)
{
    yf_spec *s1, *s2;
    const char *ov[] = {"seed=1"};
    yf_model *a = tu_model(base, &s1);
    s2 = tu_spec(base, ov, 1);
    yf_error err = {0};
    yf_model *b = yf_model_new(s2, 1, &err);
    ck_assert_msg(b != NULL, "%s", yf_error_format(&err));
    tu_fill(tu_input(a), 32 * 12, 1);
    tu_fill(tu_input(b), 32 * 12, 1);
    double la = tu_step(a, 32), lb = tu_step(b, 32);
    ck_assert(la != lb);
    ck_assert(tu_step(a, 32) == la);
    ck_assert_str_eq(yf_spec_name(s1), "ov");
    ck_assert_int_eq(yf_model_param_count(a), 12 * 8 + 8 + 8 * 4 + 4 + 4 * 12 + 12);
    ck_assert(yf_model_params(a) == a->param_block);
    tu_free(a, s1);
    tu_free(b, s2);
}
END_TEST

int main(void)
{
    list_bad_specs();
    Suite *s = suite_create("spec");
    TCase *tc = tcase_create("bad-specs");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_corpus_complete);
    tcase_add_loop_test(tc, test_bad_spec, 0, n_bad);
    suite_add_tcase(s, tc);
    TCase *cli = tcase_create("yaflow check");
    tcase_set_timeout(cli, 30);
    tcase_add_loop_test(cli, test_bad_spec_cli, 0, n_bad);
    tcase_add_test(cli, test_cli_good_and_usage);
    tcase_add_test(cli, test_cli_keeps_earlier_run);
    suite_add_tcase(s, cli);
    TCase *tc2 = tcase_create("specs");
    tcase_set_timeout(tc2, 30);
    tcase_add_test(tc2, test_overrides);
    tcase_add_test(tc2, test_bad_overrides);
    tcase_add_test(tc2, test_resolved_round_trip);
    tcase_add_test(tc2, test_defaults_explicit);
    tcase_add_test(tc2, test_load_missing_file);
    tcase_add_test(tc2, test_two_models);
    suite_add_tcase(s, tc2);
    return tu_run(s);
}
