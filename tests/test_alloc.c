/* Fault injection, as SQLite does it: the Nth allocation of the library
 * fails, for every N a piece of work reaches, and again with every
 * allocation from the Nth on failing. The pieces: the way from a spec's
 * text to a reopened run (parsing, compiling, data, a training step, a
 * checkpoint save and load, an evaluation, a whole training run), a model
 * whose spec draws warnings, encoding a split, running part of a model, the
 * hash index (built, written, read, evaluated, queried), eight pictures,
 * samples from a VAE and two small experiments (train and sample; tune).
 * Each time the library must report YF_ENOMEM ("out of memory ...") and
 * not crash; what it was working on must still work once allocations do
 * again, giving what it gives when nothing failed (a model still trains and
 * evaluates alike, files come out byte for byte the same, an experiment
 * continues); and everything is freed (LeakSanitizer checks that under
 * make check in an ASan build). */
#include "testutil.h"

#define DIR "test_alloc.tmp"

static const char spec_text[] =
    "name: alloc-ae\n"
    "seed: 3\n"
    "data: {source: mnist, dir: " DIR "/data, valid: 32}\n"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  layers:\n"
    "    - {name: noisy, type: gaussian_noise, stddev: 0.1}\n"
    "    - {name: hidden, type: dense, units: 16, activation: elu}\n"
    "    - {name: drop, type: dropout, rate: 0.1}\n"
    "    - {name: coding, type: dense, units: 8, activation: sigmoid}\n"
    "    - {name: decode, type: dense, units: 16, activation: elu, weights: coding.W^T}\n"
    "    - {name: out, type: dense, units: 64, activation: sigmoid, weights: hidden.W^T}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n"
    "    - {type: kl_sparsity, input: coding, target: 0.1, weight: 0.01}\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: 1}\n";

static const char vae_text[] =
    "name: alloc-vae\n"
    "seed: 5\n"
    "data: {source: mnist, dir: " DIR "/data, valid: 0}\n"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  layers:\n"
    "    - {name: enc, type: dense, units: 16, activation: elu}\n"
    "    - {name: mean, type: dense, units: 2}\n"
    "    - {name: log_var, type: dense, units: 2, input: enc}\n"
    "    - {name: z, type: sample_normal, mean: mean, log_var: log_var}\n"
    "    - {name: dec, type: dense, units: 16, activation: elu}\n"
    "    - {name: logits, type: dense, units: 64}\n"
    "  loss:\n"
    "    - {type: sigmoid_cross_entropy, input: logits, target: x, reduce: sum}\n"
    "    - {type: kl_normal, mean: mean, log_var: log_var}\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: 1}\n";

/* ---- the loop ------------------------------------------------------------------ */

/* A scenario does its setup with allocations working, calls arm() before
 * the work under test and disarm() after it, checks with allocations
 * working again that what it worked on still works (*usable), and returns
 * the work's status (0, or the code with err filled). */
typedef int (*scenario_fn)(yf_error *err, bool *usable);

static long arm_nth, made;
static bool arm_persist;

/* From here allocation arm_nth fails (and every later one with persist). */
static void arm(void)
{
    made = -1;
    yf__alloc_fail(arm_nth, arm_persist);
}

/* Allocations work again; `made` is how many were asked for since arm(). */
static void disarm(void)
{
    made = yf__alloc_count();
    yf__alloc_fail(0, false);
}

/* Fails allocation N (persist: N and all later ones) for N = 1, 2, ...
 * until the scenario makes fewer than N allocations; at_least: how many
 * allocations the work is known to make (so that the hook is reached). */
static void fail_each(const char *name, scenario_fn scenario, bool persist, long at_least)
{
    long n = 1, failures = 0;
    for (;; n++) {
        yf_error err = {0};
        bool usable = false;
        arm_nth = n, arm_persist = persist;
        int rc = scenario(&err, &usable);
        ck_assert_msg(made >= 0, "%s: the scenario did not disarm", name);
        if (made < n) { /* allocation n was never asked for: all went well */
            ck_assert_msg(rc == 0, "%s: no allocation failed, yet: %s", name,
                          yf_error_format(&err));
            ck_assert_msg(usable, "%s: with no allocation failing, the results differ", name);
            break;
        }
        ck_assert_msg(rc == YF_ENOMEM && strstr(err.msg, "out of memory"),
                      "%s: allocation %ld of %ld failed%s: got %s (%d): %s", name, n, made,
                      persist ? " (and later)" : "", yf_status_name(err.code), rc,
                      yf_error_format(&err));
        ck_assert_msg(usable, "%s: allocation %ld of %ld failed%s: afterwards it no longer "
                      "works as before", name, n, made, persist ? " (and later)" : "");
        failures++;
    }
    printf("%s, %s: %ld allocations, each failed in turn: every failure reported as "
           "YF_ENOMEM\n", name, persist ? "failing from the Nth on" : "failing the Nth only",
           n - 1);
    ck_assert_int_eq(failures, n - 1);
    ck_assert_msg(n - 1 >= at_least, "%s: only %ld allocations: the hook is not reached", name,
                  n - 1);
}

/* ---- helpers ---------------------------------------------------------------------- */

static yf_spec *ae_spec, *vae_spec;
static yf_dataset *data;

/* The data set (224 training images; 1000 test images, a full batch of
 * the evaluation graph, so that a buffer the plan reuses is overwritten
 * within it) and the two specs. */
static void setup(void)
{
    tu_workdir(DIR);
    tu_write_dataset(DIR "/data", 192 + 32, 1000, 8, false);
    ae_spec = tu_spec(spec_text, NULL, 0);
    vae_spec = tu_spec(vae_text, NULL, 0);
    yf_error err = {0};
    data = yf_dataset_load(ae_spec, &err);
    ck_assert_msg(data != NULL, "%s", yf_error_format(&err));
}

static void teardown(void)
{
    yf_dataset_free(data);
    yf_spec_free(ae_spec);
    yf_spec_free(vae_spec);
}

/* A model as the spec makes it, with allocations working. */
static yf_model *fresh(const yf_spec *s)
{
    yf_error err = {0};
    yf_model *m = yf_model_new(s, 1, &err);
    ck_assert_msg(m != NULL, "%s", yf_error_format(&err));
    return m;
}

/* Whether two files hold the same bytes. */
static bool same_file(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = tu_read(a, &la), *y = tu_read(b, &lb);
    bool same = x && y && la == lb && !memcmp(x, y, la);
    free(x), free(y);
    return same;
}

/* The loss of a training step of 32 examples, and the validation metrics. */
static double step_loss(yf_model *m)
{
    size_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = (size_t)i * 5;
    double loss = NAN;
    yf_error err = {0};
    if (yf_train_step(m, data, idx, 32, &loss, &err))
        return NAN;
    return loss;
}

static double valid_loss(yf_model *m)
{
    yf_metric met[8];
    yf_error err = {0};
    return yf_evaluate(m, data, YF_SPLIT_VALID, met, 8, &err) > 0 ? met[0].value : NAN;
}

/* Both graphs as they stand (a failed plan must have left the old one
 * whole): the validation loss and a training step's loss are as when
 * nothing failed; the parameters the step changed are put back, so that
 * what is compared next is computed from the same ones. */
static double ref_valid, ref_step;

static bool graphs_alike(yf_model *m)
{
    size_t n = m->param_floats; /* the whole block, padding included */
    float *keep = malloc(n * sizeof *keep);
    ck_assert(keep != NULL);
    memcpy(keep, m->param_block, n * sizeof *keep);
    bool same = valid_loss(m) == ref_valid && step_loss(m) == ref_step;
    memcpy(m->param_block, keep, n * sizeof *keep);
    free(keep);
    return same;
}

/* ---- scenarios ---------------------------------------------------------------------- */

/* From a spec's text to a reopened run. usable: a model existed when it
 * failed and trained a step afterwards. */
static int pipeline(yf_error *err, bool *usable)
{
    *usable = true;
    arm();
    const char *ov[] = {"train.optimizer.learning_rate=0.02"};
    yf_spec *s = yf_spec_parse(spec_text, sizeof spec_text - 1, "alloc.yaml", ov, 1, err);
    yf_model *m = s ? yf_model_new(s, 1, err) : NULL;
    yf_dataset *d = m ? yf_dataset_load(s, err) : NULL;
    int rc = d ? 0 : err->code;
    size_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = (size_t)i * 5;
    double loss;
    if (!rc)
        rc = yf_train_step(m, d, idx, 32, &loss, err);
    if (!rc)
        rc = yf_checkpoint_save(m, DIR "/ck.safetensors", err);
    if (!rc)
        rc = yf_checkpoint_load(m, DIR "/ck.safetensors", 1, err);
    yf_metric met[8];
    if (!rc && yf_evaluate(m, d, YF_SPLIT_VALID, met, 8, err) < 0)
        rc = err->code;
    if (!rc)
        rc = yf_train(m, d, &(yf_train_opts){.out_dir = DIR "/run", .overwrite = 1}, err);
    yf_run r;
    if (!rc && !(rc = yf_run_open(&r, DIR "/run", 1, YF_RUN_DATA, err)))
        yf_run_close(&r);
    disarm();
    if (rc && m && d) { /* what failed left the model usable */
        yf_error again = {0};
        *usable = yf_train_step(m, d, idx, 32, &loss, &again) == 0 && isfinite(loss);
    }
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(s);
    return rc;
}

/* yf_encode of the test split (the coding layer kept, so the evaluation
 * graph is planned again): the model evaluates and trains as before, and
 * the codes and labels come out as they do when nothing fails. */

static int encode(yf_error *err, bool *usable)
{
    yf_model *m = fresh(ae_spec);
    arm();
    int rc = yf_encode(m, data, YF_SPLIT_TEST, "coding", DIR "/codes.npy", DIR "/labels.npy",
                       err);
    disarm();
    yf_error again = {0};
    *usable = graphs_alike(m) && !tu_exists(DIR "/codes.npy.tmp") && !tu_exists(DIR "/labels.npy.tmp") &&
              yf_encode(m, data, YF_SPLIT_TEST, "coding", DIR "/codes.npy", DIR "/labels.npy",
                        &again) == 0 &&
              same_file(DIR "/codes.npy", DIR "/ref-codes.npy") &&
              same_file(DIR "/labels.npy", DIR "/ref-labels.npy");
    yf_model_free(m);
    return rc;
}

START_TEST(test_encode)
{
    setup();
    yf_model *m = fresh(ae_spec);
    yf_error err = {0};
    ck_assert_msg(yf_encode(m, data, YF_SPLIT_TEST, "coding", DIR "/ref-codes.npy",
                            DIR "/ref-labels.npy", &err) == 0, "%s", yf_error_format(&err));
    ref_valid = valid_loss(m);
    ref_step = step_loss(m);
    ck_assert(isfinite(ref_valid) && isfinite(ref_step));
    yf_model_free(m);
    fail_each("encode", encode, false, 5);
    fail_each("encode", encode, true, 5);
    teardown();
}
END_TEST

/* yf_model_forward from the input to the output (40 rows: two batches),
 * from the coding layer to the output, and on the training graph to a
 * hidden layer: each plans its graph again to keep the layer it returns. */
enum { ROWS = 40 };
static float fwd_in[ROWS * 64], fwd_ref[3][ROWS * 64];

static int forward_all(yf_model *m, float out[3][ROWS * 64], yf_error *err)
{
    float codes[ROWS * 8];
    for (int i = 0; i < ROWS * 8; i++)
        codes[i] = (float)((i * 37) % 100) / 100;
    int rc = yf_model_forward(m, NULL, fwd_in, ROWS, "out", out[0], 0, 7, err);
    if (!rc)
        rc = yf_model_forward(m, "coding", codes, ROWS, "out", out[1], 0, 7, err);
    if (!rc)
        rc = yf_model_forward(m, NULL, fwd_in, ROWS, "hidden", out[2], 1, 7, err);
    return rc;
}

static int forward(yf_error *err, bool *usable)
{
    yf_model *m = fresh(ae_spec);
    static float out[3][ROWS * 64];
    arm();
    int rc = forward_all(m, out, err);
    disarm();
    yf_error again = {0};
    memset(out, 0, sizeof out);
    *usable = graphs_alike(m) && forward_all(m, out, &again) == 0 &&
              !memcmp(out, fwd_ref, sizeof out);
    yf_model_free(m);
    return rc;
}

START_TEST(test_forward)
{
    setup();
    yf_error err = {0};
    ck_assert(yf_dataset_images(data, YF_SPLIT_TEST, 0, ROWS, fwd_in, NULL, &err) == 0);
    yf_model *m = fresh(ae_spec);
    ref_valid = valid_loss(m);
    ref_step = step_loss(m);
    yf_model_free(m);
    m = fresh(ae_spec);
    ck_assert_msg(forward_all(m, fwd_ref, &err) == 0, "%s", yf_error_format(&err));
    yf_model_free(m);
    fail_each("forward", forward, false, 3);
    fail_each("forward", forward, true, 3);
    teardown();
}
END_TEST

/* The hash index of the coding layer: built, written, read back,
 * evaluated and queried through a table of buckets. */
static yf_hash_index ref_ix;
static yf_hash_stats ref_stats;
static size_t ref_near;

static bool same_index(const yf_hash_index *a, const yf_hash_index *b)
{
    return a->bits == b->bits && a->n_db == b->n_db && a->n_query == b->n_query &&
           !memcmp(a->db, b->db, a->n_db * 8) && !memcmp(a->query, b->query, a->n_query * 8) &&
           !memcmp(a->db_labels, b->db_labels, a->n_db) &&
           !memcmp(a->query_labels, b->query_labels, a->n_query);
}

static int hash_all(yf_model *m, yf_hash_index *back, yf_hash_stats *st, size_t *near,
                    yf_error *err)
{
    yf_hash_index ix;
    int rc = yf_hash_build(m, data, "coding", &ix, err);
    if (!rc)
        rc = yf_hash_index_save(&ix, DIR "/codes.index", err);
    yf_hash_index_free(&ix);
    if (!rc)
        rc = yf_hash_index_load(back, DIR "/codes.index", err);
    if (!rc)
        rc = yf_hash_evaluate(back, 0, 1, st, err);
    yf_hash_table *t = rc ? NULL : yf_hash_table_new(back->db, back->n_db, err);
    if (!rc && !t)
        rc = err->code;
    if (!rc) {
        uint32_t items[300];
        *near = yf_hash_ball_items(t, back->query[0], back->bits, 2, items, 300);
    }
    yf_hash_table_free(t);
    return rc;
}

static int hash(yf_error *err, bool *usable)
{
    yf_model *m = fresh(ae_spec);
    yf_hash_index back = {0};
    yf_hash_stats st;
    size_t near = 0;
    arm();
    int rc = hash_all(m, &back, &st, &near, err);
    disarm();
    yf_hash_index_free(&back);
    yf_error again = {0};
    *usable = graphs_alike(m) && !tu_exists(DIR "/codes.index.tmp") &&
              hash_all(m, &back, &st, &near, &again) == 0 && same_index(&back, &ref_ix) &&
              !memcmp(&st, &ref_stats, sizeof st) && near == ref_near;
    yf_hash_index_free(&back);
    yf_model_free(m);
    return rc;
}

START_TEST(test_hash)
{
    setup();
    yf_model *m = fresh(ae_spec);
    ref_valid = valid_loss(m);
    ref_step = step_loss(m);
    yf_model_free(m);
    m = fresh(ae_spec);
    yf_error err = {0};
    ck_assert_msg(hash_all(m, &ref_ix, &ref_stats, &ref_near, &err) == 0, "%s",
                  yf_error_format(&err));
    ck_assert_uint_eq(ref_near, yf_hash_count_within(ref_ix.db, 224, ref_ix.query[0], 2));
    ck_assert_uint_eq(ref_ix.n_db, 224);
    ck_assert_uint_eq(ref_ix.n_query, 1000);
    yf_model_free(m);
    fail_each("hash index", hash, false, 10);
    fail_each("hash index", hash, true, 10);
    yf_hash_index_free(&ref_ix);
    teardown();
}
END_TEST

/* Pictures: every one a plain autoencoder has (curves from a metrics.csv
 * written here), and a VAE's samples and interpolation. A failed picture
 * leaves no .tmp file; drawn again, each is byte for byte as when nothing
 * failed. */
static const char *const ae_pictures[] = {"reconstructions", "filters", "top-activations",
                                          "latent", "curves", "buckets"};
static const char *const vae_pictures[] = {"samples", "interpolation"};
enum { N_AE = 6, N_VAE = 2 };

static int draw_all(yf_model *ae, yf_model *vae, const char *prefix, yf_error *err)
{
    int rc = 0;
    for (int i = 0; i < N_AE + N_VAE && !rc; i++) {
        char path[256];
        const char *what = i < N_AE ? ae_pictures[i] : vae_pictures[i - N_AE];
        snprintf(path, sizeof path, DIR "/%s-%s.png", prefix, what);
        yf_show_opts o = {.n = i < N_AE ? 8 : 0, .k = 4, .seed = 2,
                          .layer = strcmp(what, "buckets") ? NULL : "coding"};
        rc = yf_show(i < N_AE ? ae : vae, data, DIR "/run", what, path, &o, err);
    }
    return rc;
}

static int show(yf_error *err, bool *usable)
{
    yf_model *ae = fresh(ae_spec), *vae = fresh(vae_spec);
    arm();
    int rc = draw_all(ae, vae, "pic", err);
    disarm();
    yf_error again = {0};
    *usable = graphs_alike(ae) && draw_all(ae, vae, "pic", &again) == 0;
    for (int i = 0; i < N_AE + N_VAE && *usable; i++) {
        const char *what = i < N_AE ? ae_pictures[i] : vae_pictures[i - N_AE];
        char a[256], b[256], tmp[300];
        snprintf(a, sizeof a, DIR "/pic-%s.png", what);
        snprintf(b, sizeof b, DIR "/ref-%s.png", what);
        snprintf(tmp, sizeof tmp, "%s.tmp", a);
        *usable = same_file(a, b) && !tu_exists(tmp);
    }
    yf_model_free(ae);
    yf_model_free(vae);
    return rc;
}

START_TEST(test_show)
{
    setup();
    tu_mkdirs(DIR "/run");
    static const char csv[] = "epoch,train_loss,valid_loss,valid_mse,valid_kl_sparsity,"
                              "learning_rate,seconds,examples_per_s\n"
                              "1,0.09,0.08,0.07,0.5,0.01,0.1,1000\n"
                              "2,0.06,0.05,0.045,0.4,0.01,0.1,1000\n";
    tu_write(DIR "/run/metrics.csv", csv, sizeof csv - 1);
    yf_model *ae = fresh(ae_spec), *vae = fresh(vae_spec);
    ref_valid = valid_loss(ae);
    ref_step = step_loss(ae);
    yf_model_free(ae);
    ae = fresh(ae_spec);
    yf_error err = {0};
    ck_assert_msg(draw_all(ae, vae, "ref", &err) == 0, "%s", yf_error_format(&err));
    yf_model_free(ae);
    yf_model_free(vae);
    fail_each("show", show, false, 20);
    fail_each("show", show, true, 20);
    teardown();
}
END_TEST

/* yf_sample: 40 images from a VAE's prior, as when nothing fails. */
static float sample_ref[40 * 64];

static int sample(yf_error *err, bool *usable)
{
    yf_model *m = fresh(vae_spec);
    static float out[40 * 64];
    arm();
    int rc = yf_sample(m, 40, 11, out, err);
    disarm();
    yf_error again = {0};
    memset(out, 0, sizeof out);
    *usable = yf_sample(m, 40, 11, out, &again) == 0 && !memcmp(out, sample_ref, sizeof out);
    yf_model_free(m);
    return rc;
}

START_TEST(test_sample)
{
    setup();
    yf_model *m = fresh(vae_spec);
    yf_error err = {0};
    ck_assert_msg(yf_sample(m, 40, 11, sample_ref, &err) == 0, "%s", yf_error_format(&err));
    yf_model_free(m);
    fail_each("sample", sample, false, 2);
    fail_each("sample", sample, true, 2);
    teardown();
}
END_TEST

/* A spec the compiler has remarks about (a layer no loss depends on, a
 * sigmoid of a sigmoid): a warning that cannot be kept fails the model
 * rather than vanish, so that --strict never passes such a spec. */
static const char warned_text[] =
    "name: alloc-warned\n"
    "data: {source: mnist, dir: " DIR "/data, valid: 32}\n"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  layers:\n"
    "    - {name: hidden, type: dense, units: 16, activation: sigmoid}\n"
    "    - {name: squash, type: activation, function: sigmoid}\n"
    "    - {name: unused, type: dense, units: 4, input: hidden}\n"
    "    - {name: out, type: dense, units: 64, activation: sigmoid, input: squash}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n";

static yf_spec *warned_spec;

static int warned(yf_error *err, bool *usable)
{
    arm();
    yf_model *m = yf_model_new(warned_spec, 1, err);
    disarm();
    int rc = m ? 0 : err->code;
    yf_model_free(m);
    m = fresh(warned_spec);
    *usable = yf_model_warning_count(m) == 2 && strstr(yf_model_warning(m, 0), "'unused'") &&
              strstr(yf_model_warning(m, 1), "'squash'");
    yf_model_free(m);
    return rc;
}

START_TEST(test_warnings)
{
    setup();
    warned_spec = tu_spec(warned_text, NULL, 0);
    fail_each("model with warnings", warned, _i, 20);
    yf_spec_free(warned_spec);
    teardown();
}
END_TEST

/* Two small experiments, each run from nothing: a VAE trained and sampled
 * from (the samples' picture and .npy file), and a grid search of one
 * trial over two folds with its best config trained. After a failure the
 * same experiment run again continues and ends with the files a run that
 * never failed writes. (Each allocation of an experiment costs a run of
 * it, about 25 ms here: the steps are as few as cover the runner.) */
static const char train_sample_text[] =
    "name: alloc-exp\n"
    "steps:\n"
    "  - name: vae\n"
    "    train: vae.yaml\n"
    "  - {name: gen, sample: \"${vae}\", n: 8}\n";

static const char tune_text[] =
    "name: alloc-tune\n"
    "steps:\n"
    "  - name: tuned\n"
    "    tune: ae.yaml\n"
    "    grid: {model.layers.noisy.stddev: [0.2]}\n"
    "    folds: 2\n"
    "    metric: valid_loss\n";

/* A spec file whose data.dir is absolute, wherever relative ones are taken
 * to be relative to. */
static void write_absolute(const char *path, const char *text)
{
    char cwd[512], out[4096];
    ck_assert(getcwd(cwd, sizeof cwd) != NULL);
    const char *at = strstr(text, "dir: " DIR);
    ck_assert(at != NULL);
    int n = snprintf(out, sizeof out, "%.*sdir: %s/%s", (int)(at - text), text, cwd,
                     at + strlen("dir: "));
    ck_assert(n > 0 && (size_t)n < sizeof out);
    tu_write(path, out, (size_t)n);
}

/* The files an experiment's run must end with as the reference run did. */
static const char *const *exp_outputs;

static int run_experiment(const char *out, yf_error *err)
{
    yf_experiment_opts o = {.out_dir = out, .threads = 1};
    return yf_experiment_run(DIR "/exp.yaml", &o, err);
}

static int experiment(yf_error *err, bool *usable)
{
    tu_rmtree(DIR "/out");
    arm();
    int rc = run_experiment(DIR "/out", err);
    disarm();
    yf_error again = {0};
    *usable = run_experiment(DIR "/out", &again) == 0;
    for (int i = 0; exp_outputs[i] && *usable; i++) {
        char a[256], b[256];
        snprintf(a, sizeof a, DIR "/out/%s", exp_outputs[i]);
        snprintf(b, sizeof b, DIR "/ref/%s", exp_outputs[i]);
        *usable = same_file(a, b);
    }
    return rc;
}

/* _i: 0 train and sample, 1 tune; each failing the Nth only, then from the
 * Nth on */
START_TEST(test_experiment)
{
    static const char *const sampled[] = {"gen.npy", "pictures/gen.png", NULL};
    static const char *const tuned[] = {"tuned/best.yaml", "tuned/tune.md",
                                        "tuned/best/checkpoint.safetensors", NULL};
    setup();
    const char *text = _i / 2 ? tune_text : train_sample_text;
    tu_write(DIR "/exp.yaml", text, strlen(text));
    write_absolute(DIR "/vae.yaml", vae_text);
    write_absolute(DIR "/ae.yaml", spec_text);
    exp_outputs = _i / 2 ? tuned : sampled;
    yf_error err = {0};
    ck_assert_msg(run_experiment(DIR "/ref", &err) == 0, "%s", yf_error_format(&err));
    fail_each(_i / 2 ? "experiment (tune)" : "experiment (train, sample)", experiment, _i % 2,
              500);
    teardown();
}
END_TEST

START_TEST(test_pipeline)
{
    setup();
    fail_each("spec to run", pipeline, _i == 1, 200);
    teardown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 1200);
    tcase_add_loop_test(tc, test_pipeline, 0, 2); /* the Nth; from the Nth on */
    tcase_add_loop_test(tc, test_warnings, 0, 2);
    tcase_add_test(tc, test_encode);
    tcase_add_test(tc, test_forward);
    tcase_add_test(tc, test_hash);
    tcase_add_test(tc, test_show);
    tcase_add_test(tc, test_sample);
    tcase_add_loop_test(tc, test_experiment, 0, 4);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    if (rc == EXIT_SUCCESS)
        tu_rmtree(DIR);
    return rc;
}
