/* train.c, optim.c, sched.c end to end: a tiny autoencoder trained on a
 * small MNIST-shaped data set that the tests write (IDX files below
 * test_train.tmp/), whose loss must fall, and whose run is reproducible bit
 * for bit for a seed and a thread count and agrees to rounding across
 * thread counts; every optimizer's updates against hand computation; two
 * models in one process (interleaved, in threads) as each alone, with the
 * caller's process state untouched; and the chapter's stacked autoencoder
 * on the real MNIST (./data, as bootstrap.sh fetches it) reaching a known
 * validation loss in one epoch. */
#include "testutil.h"

#include <blis.h>
#include <dirent.h>
#include <locale.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#ifdef __SSE__
#include <xmmintrin.h>
#endif

#define DIR "test_train.tmp"

/* 8x8 images: 192 to train, 32 to validate, 32 to test; noise and dropout
 * so that every random stream is part of the run. */
static const char spec_fmt[] =
    "name: tiny-ae\n"
    "seed: 42\n"
    "data: {source: mnist, dir: " DIR "/data, valid: 32}\n"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  layers:\n"
    "    - {name: noisy, type: gaussian_noise, stddev: 0.1}\n"
    "    - {name: hidden, type: dense, units: 16, activation: elu, init: he_normal}\n"
    "    - {name: drop, type: dropout, rate: 0.1}\n"
    "    - {name: coding, type: dense, units: 8, activation: tanh}\n"
    "    - {name: decode, type: dense, units: 16, activation: elu, weights: coding.W^T}\n"
    "    - {name: out, type: dense, units: 64, activation: sigmoid, weights: hidden.W^T}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n"
    "    - {type: l2, weight: 1.0e-4, params: [hidden.W, coding.W]}\n"
    "train: {optimizer: {type: %s, learning_rate: %s}, batch_size: 32, epochs: %d}\n";

static void write_data(void)
{
    tu_workdir(DIR);
    tu_write_dataset(DIR "/data", 224, 32, 8, false);
}

typedef struct {
    yf_spec *spec;
    yf_model *m;
    yf_dataset *d;
} run;

static run setup_yaml(const char *yaml, int threads, const char *const *ov, int n_ov)
{
    run r = {0};
    r.spec = tu_spec(yaml, ov, n_ov);
    yf_error err = {0};
    r.m = yf_model_new(r.spec, threads, &err);
    ck_assert_msg(r.m != NULL, "%s", yf_error_format(&err));
    r.d = yf_dataset_load(r.spec, &err);
    ck_assert_msg(r.d != NULL, "%s", yf_error_format(&err));
    return r;
}

static run setup(const char *optim, const char *lr, int epochs, int threads,
                 const char *const *ov, int n_ov)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, spec_fmt, optim, lr, epochs);
    return setup_yaml(yaml, threads, ov, n_ov);
}

static void teardown(run *r)
{
    yf_dataset_free(r->d);
    yf_model_free(r->m);
    yf_spec_free(r->spec);
}

static double valid_loss(run *r)
{
    yf_metric met[17];
    yf_error err = {0};
    int n = yf_evaluate(r->m, r->d, YF_SPLIT_VALID, met, 17, &err);
    ck_assert_msg(n == 3, "yf_evaluate: %d (%s)", n, yf_error_format(&err));
    ck_assert_str_eq(met[0].name, "loss");
    ck_assert_str_eq(met[1].name, "mse");
    ck_assert_str_eq(met[2].name, "l2");
    return met[0].value;
}

static void train(run *r, const char *out)
{
    yf_error err = {0};
    yf_train_opts opts = {.out_dir = out};
    ck_assert_msg(yf_train(r->m, r->d, &opts, &err) == 0, "yf_train: %s",
                  yf_error_format(&err));
}

START_TEST(test_loss_falls)
{
    write_data();
    run r = setup("adam", "0.01", 8, 1, NULL, 0);
    double before = valid_loss(&r);
    train(&r, DIR "/run");
    double after = valid_loss(&r);
    printf("tiny-ae, adam, 8 epochs: validation loss %.5f -> %.5f\n", before, after);
    ck_assert_msg(after < 0.7 * before, "validation loss %.5f -> %.5f", before, after);
    ck_assert_int_eq(r.m->step, 8 * (192 / 32));

    /* the run folder: config, metrics (one line per epoch), log, checkpoint */
    ck_assert(tu_exists(DIR "/run/config.yaml"));
    ck_assert(tu_exists(DIR "/run/log.txt"));
    ck_assert(tu_exists(DIR "/run/checkpoint.safetensors"));
    char *csv = tu_read(DIR "/run/metrics.csv", NULL);
    ck_assert(csv != NULL);
    ck_assert_msg(!strncmp(csv, "epoch,train_loss,valid_loss,valid_mse,valid_l2,", 47), "%s",
                  csv);
    int lines = 0;
    double first = 0, last = 0;
    for (char *l = strchr(csv, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
        int epoch;
        double tl;
        ck_assert(sscanf(l + 1, "%d,%lf", &epoch, &tl) == 2);
        ck_assert_int_eq(epoch, ++lines);
        if (lines == 1)
            first = tl;
        last = tl;
    }
    ck_assert_int_eq(lines, 8);
    ck_assert_msg(last < first, "training loss %.5f -> %.5f", first, last);
    free(csv);

    /* the resolved config trains the same model, and the checkpoint restores
     * its parameters */
    yf_error err = {0};
    yf_spec *s2 = yf_spec_load(DIR "/run/config.yaml", NULL, 0, &err);
    ck_assert_msg(s2 != NULL, "%s", yf_error_format(&err));
    yf_model *m2 = yf_model_new(s2, 1, &err);
    ck_assert_msg(m2 != NULL, "%s", yf_error_format(&err));
    ck_assert_msg(yf_checkpoint_load(m2, DIR "/run/checkpoint.safetensors", 1, &err) == 0,
                  "%s", yf_error_format(&err));
    ck_assert(memcmp(m2->param_block, r.m->param_block, r.m->param_floats * 4) == 0);
    ck_assert_int_eq(m2->step, r.m->step);
    yf_model_free(m2);
    yf_spec_free(s2);
    teardown(&r);
    tu_rmtree(DIR);
}
END_TEST

/* plain SGD and momentum also learn */
/* Early stopping that cannot improve after epoch 1 (min_delta huge): the
 * run stops at epoch 1 + patience with epoch 1's checkpoint, its metrics
 * have a row per epoch run, and a stale .tmp of a killed write is gone. */
START_TEST(test_early_stopping_records)
{
    write_data();
    tu_mkdirs(DIR "/stop");
    tu_write(DIR "/stop/checkpoint.safetensors.tmp", "half", 4);
    const char *ov[] = {"train.early_stopping={metric: valid_loss, patience: 2, min_delta: 1.0e9}"};
    run r = setup("adam", "0.01", 8, 1, ov, 1);
    train(&r, DIR "/stop");
    ck_assert(!tu_exists(DIR "/stop/checkpoint.safetensors.tmp"));
    size_t len = 0;
    char *csv = tu_read(DIR "/stop/metrics.csv", &len);
    int rows = 0;
    for (size_t i = 0; i < len; i++)
        rows += csv[i] == '\n';
    ck_assert_msg(rows == 1 + 3, "%s", csv); /* the header and epochs 1 to 3 */
    free(csv);
    char *log = tu_read(DIR "/stop/log.txt", &len);
    ck_assert_msg(strstr(log, "the checkpoint is epoch 1's"), "%s", log);
    free(log);
    /* the model ends as its checkpoint: epoch 1's step count */
    ck_assert_int_eq(r.m->step, 192 / 32);
    teardown(&r);
}
END_TEST

/* A run folder's config.yaml and checkpoint belong together: a checkpoint
 * records its config's hash, and opening the run with another config is
 * refused. */
START_TEST(test_checkpoint_matches_config)
{
    write_data();
    run r = setup("adam", "0.01", 1, 1, NULL, 0);
    train(&r, DIR "/cfg");
    teardown(&r);
    yf_run o;
    yf_error err = {0};
    ck_assert_msg(yf_run_open(&o, DIR "/cfg", 1, 0, &err) == 0, "%s", yf_error_format(&err));
    yf_run_close(&o);
    size_t len = 0;
    char *cfg = tu_read(DIR "/cfg/config.yaml", &len);
    char *at = strstr(cfg, "epochs: 1");
    ck_assert_ptr_nonnull(at);
    at[8] = '2';
    tu_write(DIR "/cfg/config.yaml", cfg, len);
    free(cfg);
    ck_assert_int_eq(yf_run_open(&o, DIR "/cfg", 1, 0, &err), YF_ECKPT);
    /* the file, both models and hashes (which vary with the config), the reason */
    const char *msg = yf_error_format(&err), *tail = "): the folder's config.yaml and "
                                                     "checkpoint do not belong together";
    static const char head[] = DIR "/cfg/checkpoint.safetensors: it was written for another "
                               "config (model 'tiny-ae', config hash ";
    ck_assert_msg(!strncmp(msg, head, sizeof head - 1) && strlen(msg) > strlen(tail) &&
                      !strcmp(msg + strlen(msg) - strlen(tail), tail) &&
                      strstr(msg, ") than this one ('tiny-ae', "),
                  "%s", msg);
    ck_assert_ptr_null(o.model);
}
END_TEST

/* The caller's floating-point mode is the caller's: building, training
 * and evaluating leave its flush-to-zero bits as they were. */
START_TEST(test_caller_fp_mode_kept)
{
#ifdef __SSE__
    write_data();
    unsigned before = _mm_getcsr() & 0x8040;
    ck_assert_uint_eq(before, 0); /* a fresh process: no FTZ, no DAZ */
    run r = setup("adam", "0.01", 1, 2, NULL, 0);
    ck_assert_uint_eq(_mm_getcsr() & 0x8040, before);
    size_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = (size_t)i;
    double loss;
    yf_error err = {0};
    ck_assert(yf_train_step(r.m, r.d, idx, 32, &loss, &err) == 0);
    ck_assert_uint_eq(_mm_getcsr() & 0x8040, before);
    valid_loss(&r);
    ck_assert_uint_eq(_mm_getcsr() & 0x8040, before);
    teardown(&r);
#endif
}
END_TEST

START_TEST(test_other_optimizers)
{
    write_data();
    const char *optim[] = {"sgd", "momentum"}, *lr[] = {"2.0", "0.2"};
    for (int i = 0; i < 2; i++) {
        run r = setup(optim[i], lr[i], 6, 1, NULL, 0);
        double before = valid_loss(&r);
        char out[128];
        snprintf(out, sizeof out, DIR "/%s", optim[i]);
        train(&r, out);
        double after = valid_loss(&r);
        printf("tiny-ae, %s, 6 epochs: validation loss %.5f -> %.5f\n", optim[i], before, after);
        ck_assert_msg(after < 0.9 * before, "%s: validation loss %.5f -> %.5f", optim[i],
                      before, after);
        teardown(&r);
    }
    tu_rmtree(DIR);
}
END_TEST

/* Trains into DIR/<name> and returns its checkpoint's bytes. */
static char *train_checkpoint(const char *name, int threads, const char *const *ov, int n_ov,
                              size_t *len)
{
    run r = setup("adam", "0.01", 2, threads, ov, n_ov);
    char out[256], path[300];
    snprintf(out, sizeof out, DIR "/%s", name);
    train(&r, out);
    teardown(&r);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", out);
    char *bytes = tu_read(path, len);
    ck_assert_msg(bytes != NULL, "no %s", path);
    return bytes;
}

/* Removes the last two columns (seconds, examples_per_s) of each line. */
static void drop_timings(char *csv)
{
    char *w = csv;
    for (char *line = csv; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        size_t keep = n;
        for (int cut = 0; cut < 2 && keep > 0; cut++)
            while (keep > 0 && line[--keep] != ',')
                ;
        memmove(w, line, keep);
        w += keep;
        *w++ = '\n';
        line += n + (end != NULL);
    }
    *w = 0;
}

static bool same(const char *a, size_t la, const char *b, size_t lb)
{
    return la == lb && memcmp(a, b, la) == 0;
}

START_TEST(test_reproducible)
{
    write_data();
    size_t l1, l2, l3;
    char *c1 = train_checkpoint("one-a", 1, NULL, 0, &l1);
    char *c2 = train_checkpoint("one-b", 1, NULL, 0, &l2);
    ck_assert_msg(same(c1, l1, c2, l2), "two runs with seed 42 and 1 thread differ");
    const char *ov[] = {"seed=43"};
    char *c3 = train_checkpoint("seed-43", 1, ov, 1, &l3);
    ck_assert_msg(!same(c1, l1, c3, l3), "seeds 42 and 43 give the same checkpoint");
    /* the metrics of the two equal runs agree too (but for the timings) */
    char *m1 = tu_read(DIR "/one-a/metrics.csv", NULL), *m2 = tu_read(DIR "/one-b/metrics.csv", NULL);
    ck_assert(m1 && m2);
    drop_timings(m1);
    drop_timings(m2);
    ck_assert_msg(!strcmp(m1, m2), "metrics differ:\n%s\n%s", m1, m2);
    free(m1);
    free(m2);
    free(c1);
    free(c2);
    free(c3);
    tu_rmtree(DIR);
}
END_TEST

/* A model trained into DIR/<name> with its parameters, Adam moments and
 * step kept (copies, freed by trained_free). */
typedef struct {
    float *p, *m, *v; /* param_floats each */
    size_t n;
    uint64_t step;
    double valid;
} trained;

static trained train_keep(const char *yaml, const char *name, int threads)
{
    run r = setup_yaml(yaml, threads, NULL, 0);
    char out[256];
    snprintf(out, sizeof out, DIR "/%s", name);
    train(&r, out);
    yf_metric met[8];
    yf_error err = {0};
    ck_assert_msg(yf_evaluate(r.m, r.d, YF_SPLIT_VALID, met, 8, &err) > 0, "%s",
                  yf_error_format(&err));
    trained t = {.n = r.m->param_floats, .step = r.m->step, .valid = met[0].value};
    size_t bytes = t.n * sizeof(float);
    t.p = malloc(bytes), t.m = malloc(bytes), t.v = malloc(bytes);
    memcpy(t.p, r.m->param_block, bytes);
    memcpy(t.m, r.m->m_block, bytes);
    memcpy(t.v, r.m->v_block, bytes);
    teardown(&r);
    return t;
}

static void trained_free(trained *t)
{
    free(t->p);
    free(t->m);
    free(t->v);
}

/* The largest |a − b| over n floats, relative to the largest |a|. */
static double block_diff(const float *a, const float *b, size_t n, int *differ)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs(a[i]));
        *differ += a[i] != b[i];
    }
    return scale > 0 ? worst / scale : worst;
}

/* test_reproducible's model with convolutions: the weight gradient of a
 * convolution is summed per thread and the partial sums then added in
 * thread order (docs/design.md, Convolutions), so its rounding depends on
 * the thread count. */
static const char conv_spec[] =
    "name: tiny-conv\n"
    "seed: 42\n"
    "data: {source: mnist, dir: " DIR "/data, valid: 32}\n"
    "model:\n"
    "  input: {name: x, shape: [1, 8, 8]}\n"
    "  layers:\n"
    "    - {name: c1, type: conv2d, filters: 4, kernel: 3, padding: same, activation: elu}\n"
    "    - {name: p, type: max_pool, size: 2}\n"
    "    - {name: f, type: flatten}\n"
    "    - {name: coding, type: dense, units: 8, activation: tanh}\n"
    "    - {name: out, type: dense, units: 64, activation: sigmoid}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: 2}\n";

/* Two threads against one. The design promises a run bit for bit for a
 * seed and a thread count, not across thread counts: threads may add
 * partial sums in another order. So one and two threads must agree to
 * float rounding: after 12 Adam steps (2 epochs), parameters, first and
 * second moments each within 1e-6 of their block's largest magnitude, the
 * validation loss within 1e-6 relatively. Measured on the conv model with
 * seeds 42 and 1 to 12 (2026-11-30): at most 1.5e-7 (parameters), 1.1e-7
 * (first moments), 2.6e-7 (second moments), validation losses within
 * 1e-7. The dense model came out bit for bit the same for all 13 seeds
 * (BLIS does not split a GEMM's inner dimension among threads, rows are
 * split without changing a value, and the sums of losses and bias
 * gradients run on one thread); that is printed, not required. */
/* A model of 2 threads gives the same bits whether its steps use 2
 * threads, 1, or alternate (what adapt_threads does on a busy machine):
 * BLIS does not split the inner dimension, and the convolutions' weight
 * gradients are summed in chunks of the model's thread count. Dense and
 * convolutional models, steps and an evaluation. The plan's folds (an
 * activation into its dense layer, the loss, its gradient and the bias
 * gradient into one pass; some only on one thread) change no bit either:
 * patterns 3 and 4 plan without them. */
/* The untied model's plan also pairs: its output layer's weight gradient
 * moves to the last level, beside the first layer's, and its bias gradient
 * follows (pair_last in plan.c); patterns 3 and 4 plan without that too. Its images are 32×32, so that a
 * batch has 32 blocks of the loss's sum and two threads split them (the
 * loss in mse_grad's pass, loss.c). */
static const char untied_spec[] =
    "name: untied-ae\n"
    "seed: 42\n"
    "data: {source: mnist, dir: " DIR "/data32, valid: 32}\n"
    "model:\n"
    "  input: {name: x, shape: [1024]}\n"
    "  layers:\n"
    "    - {name: hidden, type: dense, units: 16, activation: elu, init: he_normal}\n"
    "    - {name: coding, type: dense, units: 8, activation: elu}\n"
    "    - {name: decode, type: dense, units: 16, activation: elu}\n"
    "    - {name: out, type: dense, units: 1024, activation: sigmoid}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: 2}\n";

/* The parameter gradients of kind op the training plan of r runs in its
 * last level. */
static int grads_in_last_level(const yf_model *m, yf__op op)
{
    int last = 0, count = 0;
    for (int i = 0; i < m->train.n; i++)
        last = m->train.node[i].level > last ? m->train.node[i].level : last;
    for (int i = 0; i < m->train.n; i++)
        count += m->train.node[i].level == last && m->train.node[i].grad_of >= 0 &&
                 m->train.node[i].op == op;
    return count;
}

START_TEST(test_active_threads_invariant)
{
    write_data();
    tu_write_dataset(DIR "/data32", 224, 32, 32, false);
    char dense[2048];
    snprintf(dense, sizeof dense, spec_fmt, "adam", "0.01", 2);
    const char *yamls[3] = {dense, conv_spec, untied_spec},
               *names[3] = {"dense", "conv", "untied"};
    enum { PATTERNS = 5, STEPS = 12 };
    const char *what[PATTERNS] = {"2", "1", "alternating", "2 without folds or pairing",
                                  "1 without folds or pairing"};
    for (int k = 0; k < 3; k++) {
        float *params[PATTERNS] = {0};
        double valid[PATTERNS], losses[PATTERNS][STEPS];
        size_t n = 0;
        for (int pattern = 0; pattern < PATTERNS; pattern++) {
            yf__plain_plan = pattern == 3 || pattern == 4;
            run r = setup_yaml(yamls[k], 2, NULL, 0);
            yf__plain_plan = false;
            int epi = 0, colsum = 0, sum_into = 0;
            for (int i = 0; i < r.m->train.n; i++) {
                const yf__gnode *nd = &r.m->train.node[i];
                epi += nd->epi >= 0, colsum += nd->colsum >= 0, sum_into += nd->sum_into >= 0;
            }
            if (k == 0 && pattern < 3) /* the dense model has all three kinds */
                ck_assert_msg(epi >= 4 && colsum >= 1 && sum_into == 1,
                              "folds: %d activations, %d bias sums, %d losses", epi, colsum,
                              sum_into);
            if (pattern == 3 || pattern == 4)
                ck_assert_int_eq(epi + colsum + sum_into, 0);
            if (k == 2) { /* with its output bias's gradient, off its dense_dx's level */
                ck_assert_int_eq(grads_in_last_level(r.m, YF_OP_DENSE_DW), pattern < 3 ? 2 : 1);
                ck_assert_int_eq(grads_in_last_level(r.m, YF_OP_DENSE_DB), pattern < 3 ? 2 : 1);
            }
            size_t idx[32];
            for (int s = 0; s < STEPS; s++) {
                r.m->active = pattern == 1 || pattern == 4 ? 1 : pattern == 2 ? 1 + s % 2 : 2;
                for (int i = 0; i < 32; i++)
                    idx[i] = (size_t)(s * 37 + i * 5) % 192;
                yf_error err = {0};
                ck_assert_msg(yf_train_step(r.m, r.d, idx, 32, &losses[pattern][s], &err) == 0,
                              "%s", yf_error_format(&err));
            }
            r.m->active = pattern == 1 || pattern == 4 ? 1 : 2;
            yf_metric met[8];
            yf_error err = {0};
            ck_assert(yf_evaluate(r.m, r.d, YF_SPLIT_VALID, met, 8, &err) > 0);
            valid[pattern] = met[0].value;
            n = r.m->param_floats;
            params[pattern] = malloc(n * sizeof(float));
            memcpy(params[pattern], r.m->param_block, n * sizeof(float));
            teardown(&r);
        }
        for (int pattern = 1; pattern < PATTERNS; pattern++) {
            ck_assert_msg(!memcmp(params[0], params[pattern], n * sizeof(float)),
                          "%s model: %s active threads change the parameters", names[k],
                          what[pattern]);
            ck_assert_msg(valid[0] == valid[pattern], "%s model: validation loss %.9g vs %.9g",
                          names[k], valid[0], valid[pattern]);
            for (int s = 0; s < STEPS; s++)
                ck_assert_msg(losses[0][s] == losses[pattern][s],
                              "%s model, %s threads: step %d's loss %.17g vs %.17g", names[k],
                              what[pattern], s + 1, losses[pattern][s], losses[0][s]);
        }
        for (int pattern = 0; pattern < PATTERNS; pattern++)
            free(params[pattern]);
    }
    tu_rmtree(DIR);
}
END_TEST

/* Work beside the graph (yf__run_beside: the training loop's prefetch of
 * the next batch) runs once a step: on two threads inside the last level,
 * which runs side by side, on one after the graph. */
static void count_aside(void *arg)
{
    int *c = arg;
    c[omp_in_parallel() ? 1 : 0]++;
}

START_TEST(test_run_beside)
{
    tu_write_dataset(DIR "/data32", 224, 32, 32, false);
    run r = setup_yaml(untied_spec, 2, NULL, 0);
    size_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = (size_t)i * 5;
    yf__gather(r.d, YF_SPLIT_TRAIN, idx, 32, &r.m->train);
    int last = r.m->train.n_levels - 1;
    ck_assert_msg(r.m->train.side_by_side[last], "the last level runs side by side");
    for (int active = 2; active >= 1; active--) {
        int count[2] = {0, 0};
        yf__aside aside = {count_aside, count};
        r.m->active = active;
        for (int s = 0; s < 3; s++)
            yf__run_beside(r.m, &r.m->train, 32, &aside);
        ck_assert_msg(count[0] + count[1] == 3, "%d threads: the aside ran %d times in 3 steps",
                      active, count[0] + count[1]);
        ck_assert_msg(count[active == 2 ? 1 : 0] == 3, "%d threads: the aside ran %s the "
                      "last level", active, active == 2 ? "after, not in," : "in, not after,");
    }
    teardown(&r);
    tu_rmtree(DIR);
}
END_TEST

/* An activation's value and gradient do not depend on how its elements
 * are split into calls (threads' rows, one row at a time): GCC's vector
 * loop and scalar remainder would round differently. */
START_TEST(test_act_split_invariant)
{
    enum { N = 256 };
    static float x[N], dy[N], y1[N], y2[N], d1[N], d2[N];
    uint32_t r = 12345;
    for (int i = 0; i < N; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)(r >> 8) / (1 << 24) * 6.0f - 3.0f;
        r = r * 1664525u + 1013904223u;
        dy[i] = (float)(r >> 8) / (1 << 24) * 2.0f - 1.0f;
    }
    const int acts[] = {YF_ACT_LINEAR, YF_ACT_RELU, YF_ACT_LEAKY_RELU, YF_ACT_ELU, YF_ACT_SELU,
                        YF_ACT_SIGMOID, YF_ACT_TANH};
    const int pieces[] = {8, 5, 16, 23, 1}; /* calls of this many elements */
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++) {
        yf__act_forward(acts[a], 0.3f, x, y1, 1, N);
        yf__act_backward(acts[a], 0.3f, y1, dy, d1, 1, N);
        for (size_t c = 0; c < sizeof pieces / sizeof *pieces; c++) {
            for (int at = 0; at < N; at += pieces[c]) {
                int len = at + pieces[c] <= N ? pieces[c] : N - at;
                yf__act_forward(acts[a], 0.3f, x + at, y2 + at, 1, len);
                yf__act_backward(acts[a], 0.3f, y1 + at, dy + at, d2 + at, 1, len);
            }
            for (int i = 0; i < N; i++) {
                ck_assert_msg(y1[i] == y2[i], "activation %d in calls of %d: y[%d] %.9g vs %.9g",
                              acts[a], pieces[c], i, y1[i], y2[i]);
                ck_assert_msg(d1[i] == d2[i], "activation %d in calls of %d: dx[%d] %.9g vs %.9g",
                              acts[a], pieces[c], i, d1[i], d2[i]);
            }
        }
    }
}
END_TEST

START_TEST(test_reproducible_two_threads)
{
    write_data();
    size_t l1, l2;
    char *c1 = train_checkpoint("two-a", 2, NULL, 0, &l1);
    char *c2 = train_checkpoint("two-b", 2, NULL, 0, &l2);
    ck_assert_msg(same(c1, l1, c2, l2), "two runs with seed 42 and 2 threads differ");
    free(c1);
    free(c2);

    char dense[2048];
    snprintf(dense, sizeof dense, spec_fmt, "adam", "0.01", 2);
    const char *yamls[2] = {dense, conv_spec}, *names[2] = {"dense", "conv"};
    for (int k = 0; k < 2; k++) {
        char n1[64], n2[64];
        snprintf(n1, sizeof n1, "%s-1", names[k]);
        snprintf(n2, sizeof n2, "%s-2", names[k]);
        trained a = train_keep(yamls[k], n1, 1), b = train_keep(yamls[k], n2, 2);
        ck_assert_uint_eq(a.n, b.n);
        ck_assert_uint_eq(a.step, 12);
        ck_assert_uint_eq(b.step, 12);
        int differ = 0;
        double dp = block_diff(a.p, b.p, a.n, &differ), dm = block_diff(a.m, b.m, a.n, &differ),
               dv = block_diff(a.v, b.v, a.n, &differ);
        double dl = fabs(a.valid - b.valid) / a.valid;
        printf("%s model, 1 vs 2 threads: %d of %zu values differ; largest relative difference: "
               "parameters %.2g, first moments %.2g, second moments %.2g, validation loss %.2g\n",
               names[k], differ, 3 * a.n, dp, dm, dv, dl);
        ck_assert_msg(dp <= 1e-6 && dm <= 1e-6 && dv <= 1e-6,
                      "%s model: 1 and 2 threads differ by %.3g (parameters), %.3g (first "
                      "moments), %.3g (second moments) of the largest value",
                      names[k], dp, dm, dv);
        ck_assert_msg(dl <= 1e-6, "%s model: validation loss %.9g with 1 thread, %.9g with 2",
                      names[k], a.valid, b.valid);
        trained_free(&a);
        trained_free(&b);
    }
    tu_rmtree(DIR);
}
END_TEST

/* Direct steps on synthetic batches, without a data set: the loss of a fixed
 * batch falls under Adam. */
START_TEST(test_optim_steps)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, spec_fmt, "adam", "0.01", 1);
    yf_spec *s;
    yf_model *m = tu_model(yaml, &s);
    tu_fill(tu_input(m), 32 * 64, 9);
    double first = tu_step(m, 32), last = first;
    for (int i = 0; i < 100; i++) {
        yf__optim_step(m);
        last = tu_step(m, 32);
        ck_assert(isfinite(last));
    }
    printf("100 adam steps on one batch: loss %.5f -> %.5f\n", first, last);
    ck_assert_msg(last < 0.5 * first, "loss %.5f -> %.5f", first, last);
    ck_assert_int_eq(m->step, 100);
    tu_free(m, s);
}
END_TEST

/* ---- optimizer updates against hand computation ------------------------------ */

/* One dense layer of 2 inputs and 2 units, no activation, reconstructing
 * its input with mse (reduce: mean over the 2 × 2 values of a batch of 2). */
static const char optim_fmt[] =
    "name: opt\n"
    "data: {source: mnist}\n"
    "model:\n"
    "  input: {name: x, shape: [2]}\n"
    "  layers:\n"
    "    - {name: d, type: dense, units: 2}\n"
    "  loss:\n"
    "    - {type: mse, input: d, target: x}\n"
    "train: {optimizer: %s, batch_size: 2}\n";

/* An optimizer as PyTorch defines it (torch.optim.SGD with dampening 0,
 * torch.optim.Adam), written out for one scalar parameter p with gradient
 * g at step t (from 1); buf/m and v are its state. */
typedef struct {
    const char *yaml;
    enum { SGD, MOMENTUM, ADAM } type;
    double lr, mu, wd, b1, b2, eps;
    bool nesterov;
} optim_case;

static void hand_update(const optim_case *o, int t, double *p, double g, double *m, double *v)
{
    g += o->wd * *p; /* weight decay is added to the gradient */
    switch (o->type) {
    case SGD:
        *p -= o->lr * g;
        break;
    case MOMENTUM:
        *m = t == 1 ? g : o->mu * *m + g;
        *p -= o->lr * (o->nesterov ? g + o->mu * *m : *m);
        break;
    case ADAM: {
        *m = o->b1 * *m + (1 - o->b1) * g;
        *v = o->b2 * *v + (1 - o->b2) * g * g;
        double mhat = *m / (1 - pow(o->b1, t)), vhat = *v / (1 - pow(o->b2, t));
        *p -= o->lr * mhat / (sqrt(vhat) + o->eps);
        break;
    }
    }
}

/* |got − want| within 1e-6 |want| + floor; returns it as a fraction of the
 * allowed difference. */
static double assert_near(const char *what, int t, const char *name, int i, double got,
                          double want, double floor)
{
    double tol = 1e-6 * fabs(want) + floor;
    ck_assert_msg(fabs(got - want) <= tol,
                  "%s, step %d: %s[%d] is %.9g, by hand %.9g (|diff| %.3g > %.3g)", what, t, name,
                  i, got, want, fabs(got - want), tol);
    return fabs(got - want) / tol;
}

/* The gradient of L = Σ (x·W + b − x)² / 4 over the batch x (2 × 2), for
 * p = [W00, W01, W10, W11, b0, b1] (W is [in, units]); returns L. */
static double hand_gradient(const double x[2][2], const double *p, double *g)
{
    double loss = 0;
    for (int i = 0; i < 6; i++)
        g[i] = 0;
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 2; j++) {
            double out = x[r][0] * p[j] + x[r][1] * p[2 + j] + p[4 + j];
            double d = 2 * (out - x[r][j]) / 4;
            loss += (out - x[r][j]) * (out - x[r][j]) / 4;
            g[j] += x[r][0] * d, g[2 + j] += x[r][1] * d, g[4 + j] += d;
        }
    return loss;
}

/* The 6 floats of d.W then d.b in one of the model's blocks, as doubles. */
static void get6(const yf_model *m, const float *block, double *out)
{
    const float *W = block + m->params[tu_param(m, "d.W")].offset;
    const float *b = block + m->params[tu_param(m, "d.b")].offset;
    for (int i = 0; i < 6; i++)
        out[i] = i < 4 ? W[i] : b[i - 4];
}

/* Every optimizer the spec offers, with and without weight decay and
 * nesterov, for 3 steps on one batch, against the formulas above:
 * - each step's gradient against the hand gradient at the model's
 *   parameters (within 1e-6, or 1e-7 absolutely: a gradient summed over
 *   the batch is a difference of O(1) float terms and carries their
 *   rounding, up to 6e-8 each);
 * - each step's update (parameters, momentum buffer, Adam's moments)
 *   against hand_update from the state before the step and the model's
 *   gradient (within 1e-6 relatively);
 * - the parameters after 3 steps against a trajectory computed wholly by
 *   hand in double from the same start (within 1e-6, or 1e-7 absolutely
 *   for a parameter that has moved close to 0, as a gradient). */
START_TEST(test_optim_by_hand)
{
    static const optim_case cases[] = {
        {"{type: sgd, learning_rate: 0.1}", SGD, .lr = 0.1},
        {"{type: sgd, learning_rate: 0.3, weight_decay: 0.05}", SGD, .lr = 0.3, .wd = 0.05},
        {"{type: momentum, learning_rate: 0.1}", MOMENTUM, .lr = 0.1, .mu = 0.9},
        {"{type: momentum, learning_rate: 0.05, momentum: 0.8, nesterov: true, weight_decay: 0.02}",
         MOMENTUM, .lr = 0.05, .mu = 0.8, .wd = 0.02, .nesterov = true},
        {"{type: adam, learning_rate: 0.01}", ADAM, .lr = 0.01, .b1 = 0.9, .b2 = 0.999,
         .eps = 1e-8},
        {"{type: adam, learning_rate: 0.05, beta1: 0.8, beta2: 0.99, epsilon: 0.001, "
         "weight_decay: 0.1}",
         ADAM, .lr = 0.05, .b1 = 0.8, .b2 = 0.99, .eps = 1e-3, .wd = 0.1},
    };
    static const double x[2][2] = {{1, 2}, {0.5, -1}};
    bool covered[3] = {false};
    for (size_t c = 0; c < YF__ARRAY_LEN(cases); c++) {
        const optim_case *o = &cases[c];
        covered[o->type] = true;
        char yaml[1024];
        snprintf(yaml, sizeof yaml, optim_fmt, o->yaml);
        yf_spec *s;
        yf_model *m = tu_model(yaml, &s);
        ck_assert_int_eq(m->n_params, 2);
        /* The spec keeps its numbers as floats: 0.999 is 0.99900001287, so
         * 1 − β₂ is 1.3e-5 (relatively) below 0.001. The formulas take the
         * hyperparameters as the model holds them, which must be the
         * nearest floats to the YAML's. */
        const yf__optim_spec *so = &s->optim;
        ck_assert(so->lr == (float)o->lr && so->weight_decay == (float)o->wd);
        ck_assert(o->type != MOMENTUM || (so->momentum == (float)o->mu && so->nesterov == o->nesterov));
        ck_assert(o->type != ADAM || (so->beta1 == (float)o->b1 && so->beta2 == (float)o->b2 &&
                                      so->epsilon == (float)o->eps));
        optim_case held = {o->yaml, o->type, so->lr, so->momentum, so->weight_decay, so->beta1,
                           so->beta2, so->epsilon, so->nesterov};
        /* the trajectory by hand: parameters, first and second moments */
        double tp[6] = {0.5, -0.25, 0.75, 1, 0.1, -0.2}, tm[6] = {0}, tv[6] = {0}, worst = 0;
        float *W = m->param_block + m->params[tu_param(m, "d.W")].offset;
        float *b = m->param_block + m->params[tu_param(m, "d.b")].offset;
        for (int i = 0; i < 6; i++)
            *(i < 4 ? &W[i] : &b[i - 4]) = (float)tp[i]; /* all exact in float */
        float *in = tu_input(m);
        for (int r = 0; r < 2; r++)
            for (int k = 0; k < 2; k++)
                in[r * 2 + k] = (float)x[r][k];
        for (int t = 1; t <= 3; t++) {
            double p[6], mo[6], ve[6], g[6], mg[6], got[6];
            get6(m, m->param_block, p);
            get6(m, m->m_block, mo);
            get6(m, m->v_block, ve);
            double loss = hand_gradient(x, p, g);
            worst = fmax(worst, assert_near(o->yaml, t, "loss", 0, tu_step(m, 2), loss, 0));
            get6(m, m->grad_block, mg);
            for (int i = 0; i < 6; i++)
                worst = fmax(worst, assert_near(o->yaml, t, "gradient", i, mg[i], g[i], 1e-7));
            yf__optim_step(m);
            for (int i = 0; i < 6; i++)
                hand_update(&held, t, &p[i], mg[i], &mo[i], &ve[i]);
            get6(m, m->param_block, got);
            for (int i = 0; i < 6; i++)
                worst = fmax(worst, assert_near(o->yaml, t, "parameter", i, got[i], p[i], 0));
            get6(m, m->m_block, got);
            for (int i = 0; i < 6 && o->type != SGD; i++)
                worst = fmax(worst, assert_near(o->yaml, t, "first moment", i, got[i], mo[i], 0));
            get6(m, m->v_block, got);
            for (int i = 0; i < 6 && o->type == ADAM; i++)
                worst = fmax(worst, assert_near(o->yaml, t, "second moment", i, got[i], ve[i], 0));
            /* the trajectory, by hand alone */
            hand_gradient(x, tp, g);
            for (int i = 0; i < 6; i++)
                hand_update(&held, t, &tp[i], g[i], &tm[i], &tv[i]);
        }
        ck_assert_int_eq(m->step, 3);
        double got[6], traj = 0;
        get6(m, m->param_block, got);
        for (int i = 0; i < 6; i++) {
            ck_assert_msg(fabs(got[i] - tp[i]) <= 1e-6 * fabs(tp[i]) + 1e-7,
                          "%s: after 3 steps parameter %d is %.9g, by hand %.9g", o->yaml, i,
                          got[i], tp[i]);
            traj = fmax(traj, fabs(got[i] - tp[i]) / (1e-6 * fabs(tp[i]) + 1e-7));
        }
        printf("optimizer %s: largest difference in a step %.2f of allowed, after 3 steps %.2f\n",
               o->yaml, worst, traj);
        tu_free(m, s);
    }
    ck_assert_int_eq(YF_OPTIM_ADAM + 1, 3); /* a new optimizer needs a case here */
    for (int k = 0; k < 3; k++)
        ck_assert(covered[k]);
}
END_TEST

/* A diverging run (linear output, a huge learning rate) stops with YF_ERUN
 * and says so in log.txt, rather than writing NaN weights. */
START_TEST(test_divergence_reported)
{
    write_data();
    const char *ov[] = {"model.layers.out.activation=linear"};
    run r = setup("sgd", "100", 3, 1, ov, 1);
    yf_error err = {0};
    yf_train_opts opts = {.out_dir = DIR "/diverge"};
    int rc = yf_train(r.m, r.d, &opts, &err);
    ck_assert_msg(rc == YF_ERUN, "rc %d: %s", rc, yf_error_format(&err));
    ck_assert_msg(strstr(err.msg, "training diverged") != NULL, "%s", err.msg);
    ck_assert_int_eq(yf_status_exit_code(err.code), 1);
    char *log = tu_read(DIR "/diverge/log.txt", NULL);
    /* the step, and the first node with a non-finite value: the mse of an
     * output grown past FLT_MAX */
    ck_assert_msg(log && strstr(log, "error: test.yaml:14:7: training diverged at step ") &&
                  strstr(log, "node 'out' (mse) produced the first non-finite value"),
                  "log.txt: %s", log);
    free(log);
    teardown(&r);
    tu_rmtree(DIR);
}
END_TEST

/* ---- process-wide state ------------------------------------------------------- */

/* No global state: two models of different specs, seeds and thread counts,
 * each built, stepped (yf_train_step), evaluated and trained for an epoch
 * (yf_train) by a job below, give bit for bit what each gives alone when
 * they run interleaved in one thread and at once in two threads; and
 * nothing of the process a caller owns changes: the FP mode of the calling
 * threads, the locale, the environment, signal dispositions and mask,
 * umask, working folder, open files, OpenMP's and BLIS's thread settings. */
typedef struct {
    const char *name, *optim, *lr;
    const char *ov[4];
    int n_ov, threads;
    bool caller_ftz; /* the thread that runs it has FTZ and DAZ set (a caller's choice) */
} job_spec;

static const job_spec jobs[2] = {
    {"a", "adam", "0.01", {"seed=42"}, 1, 1, false},
    {"b", "momentum", "0.2",
     {"seed=7", "model.layers.hidden.units=24", "model.layers.decode.units=24", "data.valid=64"},
     4, 2, true},
};

#define JOB_STEPS 8
#define JOB_PARAMS 4096

typedef struct {
    char err[600]; /* what failed; empty if nothing */
    double loss[JOB_STEPS], mid[3], end[3]; /* step losses; validation metrics */
    uint64_t step;
    size_t n;
    float p[JOB_PARAMS]; /* the parameters at the end */
    unsigned csr_before, csr_after; /* the running thread's MXCSR around the job */
} job_out;

typedef struct {
    const job_spec *js;
    const char *mode; /* "alone", "interleaved", "threads": its run folder */
    yf_spec *spec;
    yf_model *m;
    yf_dataset *d;
    job_out *out;
} job;

/* Each returns false with out->err set on failure (no ck_assert: jobs run
 * in forked children and in threads). */
static bool job_fail(job *j, const char *what, yf_error *err)
{
    snprintf(j->out->err, sizeof j->out->err, "job %s (%s): %s: %s", j->js->name, j->mode, what,
             yf_error_format(err));
    return false;
}

static bool job_open(job *j)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, spec_fmt, j->js->optim, j->js->lr, 1);
    yf_error err = {0};
    if (!(j->spec = yf_spec_parse(yaml, strlen(yaml), "job.yaml", j->js->ov, j->js->n_ov, &err)))
        return job_fail(j, "spec", &err);
    if (!(j->m = yf_model_new(j->spec, j->js->threads, &err)))
        return job_fail(j, "model", &err);
    if (!(j->d = yf_dataset_load(j->spec, &err)))
        return job_fail(j, "data", &err);
    if (j->m->param_floats > JOB_PARAMS)
        return job_fail(j, "too many parameters for job_out", &err);
    return true;
}

/* Step k on examples chosen from k. */
static bool job_step(job *j, int k)
{
    size_t idx[32], n = yf_dataset_count(j->d, YF_SPLIT_TRAIN);
    for (int i = 0; i < 32; i++)
        idx[i] = ((size_t)k * 37 + (size_t)i * 5) % n;
    yf_error err = {0};
    if (yf_train_step(j->m, j->d, idx, 32, &j->out->loss[k], &err))
        return job_fail(j, "step", &err);
    return true;
}

static bool job_eval(job *j, double *into)
{
    yf_metric met[8];
    yf_error err = {0};
    if (yf_evaluate(j->m, j->d, YF_SPLIT_VALID, met, 8, &err) != 3)
        return job_fail(j, "evaluate", &err);
    for (int i = 0; i < 3; i++)
        into[i] = met[i].value;
    return true;
}

/* Evaluates, trains an epoch into DIR/<mode>-<name>, evaluates, and keeps
 * the parameters. */
static bool job_finish(job *j)
{
    yf_error err = {0};
    char out[256];
    snprintf(out, sizeof out, DIR "/%s-%s", j->mode, j->js->name);
    yf_train_opts opts = {.out_dir = out};
    if (!job_eval(j, j->out->mid))
        return false;
    if (yf_train(j->m, j->d, &opts, &err))
        return job_fail(j, "train", &err);
    if (!job_eval(j, j->out->end))
        return false;
    j->out->step = j->m->step;
    j->out->n = j->m->param_floats;
    memcpy(j->out->p, j->m->param_block, j->m->param_floats * sizeof(float));
    return true;
}

static void job_close(job *j)
{
    yf_dataset_free(j->d);
    yf_model_free(j->m);
    yf_spec_free(j->spec);
}

static unsigned csr(void)
{
#ifdef __SSE__
    return _mm_getcsr() & ~0x3fu; /* the mode, not the sticky exception flags */
#else
    return 0;
#endif
}

/* Sets FTZ and DAZ when `on`; returns the whole MXCSR before. */
static unsigned set_ftz(bool on)
{
#ifdef __SSE__
    unsigned was = _mm_getcsr();
    if (on)
        _mm_setcsr(was | 0x8040);
    return was;
#else
    return 0;
#endif
}

static void restore_csr(unsigned was)
{
#ifdef __SSE__
    _mm_setcsr(was);
#endif
}

/* A whole job in the calling thread; the argument is a job with js, mode
 * and out set. */
static void *job_run(void *arg)
{
    job *j = arg;
    unsigned was = set_ftz(j->js->caller_ftz);
    j->out->csr_before = csr();
    if (job_open(j)) {
        bool ok = true;
        for (int k = 0; k < JOB_STEPS && ok; k++)
            ok = job_step(j, k);
        if (ok)
            job_finish(j);
    }
    job_close(j);
    j->out->csr_after = csr();
    restore_csr(was); /* the caller's own setting, undone by the caller */
    return NULL;
}

/* Bit for bit what the job gave alone. */
static void assert_same_job(const job_out *alone, const job_out *o, const char *name,
                            const char *mode)
{
    ck_assert_msg(!o->err[0], "%s", o->err);
    ck_assert_msg(!memcmp(alone->loss, o->loss, sizeof o->loss),
                  "job %s %s: step losses differ from alone (first %.9g vs %.9g)", name, mode,
                  o->loss[0], alone->loss[0]);
    ck_assert_msg(!memcmp(alone->mid, o->mid, sizeof o->mid) &&
                      !memcmp(alone->end, o->end, sizeof o->end),
                  "job %s %s: validation loss %.9g, %.9g; alone %.9g, %.9g", name, mode, o->mid[0],
                  o->end[0], alone->mid[0], alone->end[0]);
    ck_assert_uint_eq(o->step, alone->step);
    ck_assert_uint_eq(o->n, alone->n);
    ck_assert_msg(!memcmp(alone->p, o->p, o->n * sizeof(float)),
                  "job %s %s: parameters differ from alone", name, mode);
}

/* What a caller owns in the process. */
typedef struct {
    unsigned csr;
    char locale[512];
    bool thread_locale_global;
    char **env;
    int n_env;
    struct sigaction sig[NSIG];
    sigset_t mask;
    mode_t umask;
    char cwd[1024];
    char fds[4096]; /* the open descriptors and their files, " 0:/dev/null 1:..." */
    int omp_max_threads, omp_dynamic, omp_levels, blis_threads;
} process_state;

static void process_state_get(process_state *st)
{
    memset(st, 0, sizeof *st);
    st->csr = csr();
    snprintf(st->locale, sizeof st->locale, "%s", setlocale(LC_ALL, NULL));
    st->thread_locale_global = uselocale((locale_t)0) == LC_GLOBAL_LOCALE;
    extern char **environ;
    while (environ[st->n_env])
        st->n_env++;
    st->env = malloc((st->n_env + 1) * sizeof *st->env);
    for (int i = 0; i < st->n_env; i++)
        st->env[i] = strdup(environ[i]);
    for (int sg = 1; sg < NSIG; sg++)
        sigaction(sg, NULL, &st->sig[sg]);
    pthread_sigmask(SIG_BLOCK, NULL, &st->mask);
    st->umask = umask(022);
    umask(st->umask);
    ck_assert_ptr_nonnull(getcwd(st->cwd, sizeof st->cwd));
    struct dirent **fd;
    int n_fd = scandir("/proc/self/fd", &fd, NULL, alphasort);
    ck_assert_int_gt(n_fd, 0);
    for (int i = 0; i < n_fd; i++) {
        char link[300], target[256] = "";
        snprintf(link, sizeof link, "/proc/self/fd/%s", fd[i]->d_name);
        ssize_t tn = readlink(link, target, sizeof target - 1);
        target[tn > 0 ? tn : 0] = 0;
        if (tn > 0) /* not scandir's own descriptor, closed by now */
            snprintf(st->fds + strlen(st->fds), sizeof st->fds - strlen(st->fds), " %s:%s",
                     fd[i]->d_name, target);
        free(fd[i]);
    }
    free(fd);
    st->omp_max_threads = omp_get_max_threads();
    st->omp_dynamic = omp_get_dynamic();
    st->omp_levels = omp_get_max_active_levels();
    st->blis_threads = (int)bli_thread_get_num_threads();
}

static void process_state_same(const process_state *a, const process_state *b)
{
    ck_assert_msg(a->csr == b->csr, "the caller's MXCSR went from %#x to %#x", a->csr, b->csr);
    ck_assert_str_eq(a->locale, b->locale);
    ck_assert(a->thread_locale_global == b->thread_locale_global);
    ck_assert_msg(a->n_env == b->n_env, "the environment had %d variables, now %d", a->n_env,
                  b->n_env);
    for (int i = 0; i < a->n_env; i++)
        ck_assert_str_eq(a->env[i], b->env[i]);
    for (int sg = 1; sg < NSIG; sg++)
        ck_assert_msg(a->sig[sg].sa_handler == b->sig[sg].sa_handler &&
                          a->sig[sg].sa_flags == b->sig[sg].sa_flags,
                      "the disposition of signal %d (%s) changed", sg, strsignal(sg));
    for (int sg = 1; sg < NSIG; sg++)
        ck_assert_msg(sigismember(&a->mask, sg) == sigismember(&b->mask, sg),
                      "signal %d (%s) was %sblocked", sg, strsignal(sg),
                      sigismember(&b->mask, sg) ? "" : "un");
    ck_assert_uint_eq(a->umask, b->umask);
    ck_assert_str_eq(a->cwd, b->cwd);
    ck_assert_msg(!strcmp(a->fds, b->fds), "open descriptors were%s, now%s", a->fds, b->fds);
    ck_assert_int_eq(a->omp_max_threads, b->omp_max_threads);
    ck_assert_int_eq(a->omp_dynamic, b->omp_dynamic);
    ck_assert_int_eq(a->omp_levels, b->omp_levels);
    ck_assert_int_eq(a->blis_threads, b->blis_threads);
}

static void process_state_free(process_state *st)
{
    for (int i = 0; i < st->n_env; i++)
        free(st->env[i]);
    free(st->env);
}

static int count_threads(void)
{
    struct dirent **t;
    int n = scandir("/proc/self/task", &t, NULL, NULL);
    for (int i = 0; i < n; i++)
        free(t[i]);
    free(t);
    return n;
}

/* Waits (up to 5 s) until the number of threads has not changed for 100 ms. */
static void settle_threads(void)
{
    int last = count_threads(), same = 0;
    for (int i = 0; i < 500 && same < 10; i++) {
        usleep(10000);
        int n = count_threads();
        same = n == last ? same + 1 : 0;
        last = n;
    }
}

START_TEST(test_no_global_state)
{
    write_data();
    /* a caller with a locale of its own (not the "C" a library might set) */
    ck_assert_ptr_nonnull(setlocale(LC_ALL, "C.UTF-8"));
    process_state before;
    process_state_get(&before);
    static job_out alone[2], inter[2], conc[2];

    /* alone: each job in a fresh child process (forked before this
     * process has run anything; under CK_FORK=no, here one after the
     * other, since a child of a process that has run OpenMP regions may
     * hang in its first region) */
    const char *fork_mode = getenv("CK_FORK");
    bool forked = !(fork_mode && !strcmp(fork_mode, "no"));
    for (int i = 0; i < 2; i++) {
        job j = {.js = &jobs[i], .mode = "alone", .out = &alone[i]};
        if (!forked) {
            job_run(&j);
            continue;
        }
        char path[256];
        snprintf(path, sizeof path, DIR "/alone-%s.out", jobs[i].name);
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            job_run(&j);
            FILE *f = fopen(path, "wb");
            _exit(f && fwrite(j.out, sizeof *j.out, 1, f) == 1 && fclose(f) == 0 ? 0 : 1);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "job %s alone: status %#x",
                      jobs[i].name, status);
        size_t len;
        char *bytes = tu_read(path, &len);
        ck_assert_msg(bytes && len == sizeof alone[i], "job %s alone: no results", jobs[i].name);
        memcpy(&alone[i], bytes, len);
        free(bytes);
    }
    for (int i = 0; i < 2; i++)
        ck_assert_msg(!alone[i].err[0], "%s", alone[i].err);
    ck_assert_msg(memcmp(alone[0].loss, alone[1].loss, sizeof alone[0].loss) != 0,
                  "the two jobs are the same job");

    /* interleaved in this thread: open both, then a step of each in turn */
    job j[2];
    for (int i = 0; i < 2; i++) {
        j[i] = (job){.js = &jobs[i], .mode = "interleaved", .out = &inter[i]};
        ck_assert_msg(job_open(&j[i]), "%s", inter[i].err);
    }
    for (int k = 0; k < JOB_STEPS; k++)
        for (int i = 0; i < 2; i++)
            ck_assert_msg(job_step(&j[i], k), "%s", inter[i].err);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(job_finish(&j[i]), "%s", inter[i].err);
    for (int i = 0; i < 2; i++) {
        job_close(&j[i]);
        assert_same_job(&alone[i], &inter[i], jobs[i].name, "interleaved");
    }

    /* at once, each in a thread of its own (b's with FTZ and DAZ set by
     * its caller, which it must keep) */
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        j[i] = (job){.js = &jobs[i], .mode = "threads", .out = &conc[i]};
        ck_assert_int_eq(pthread_create(&t[i], NULL, job_run, &j[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_same_job(&alone[i], &conc[i], jobs[i].name, "in threads");
        ck_assert_msg(conc[i].csr_before == conc[i].csr_after,
                      "job %s: its thread's MXCSR went from %#x to %#x", jobs[i].name,
                      conc[i].csr_before, conc[i].csr_after);
    }
#ifdef __SSE__
    ck_assert_uint_eq(conc[1].csr_before & 0x8040, 0x8040);
#endif
    printf("two models interleaved and in two threads: bit for bit as alone (validation loss "
           "%.6g and %.6g after %llu and %llu steps); the process as it was\n",
           alone[0].end[0], alone[1].end[0], (unsigned long long)alone[0].step,
           (unsigned long long)alone[1].step);

    /* OpenMP's workers for a thread's team exit after that thread (and
     * load libgcc_s as they do): let them go before counting open files */
    settle_threads();
    process_state after;
    process_state_get(&after);
    process_state_same(&before, &after);
    process_state_free(&before);
    process_state_free(&after);
    tu_rmtree(DIR);
}
END_TEST

/* ---- quality: the chapter's stacked autoencoder on MNIST --------------------------- */

/* The folder holding MNIST's files (train-images-idx3-ubyte ...):
 * $YAFLOW_TEST_DATA (configure's, which make distcheck points at the
 * source tree's data/), else $YAFLOW_DATA, else ./data (bootstrap.sh puts it there, and the suites
 * run in the build folder), else $top_srcdir/data; NULL if none has them. */
static const char *mnist_dir(void)
{
    static char dir[1100];
    const char *env = getenv("YAFLOW_DATA"), *test = getenv("YAFLOW_TEST_DATA");
    const char *try[4] = {test && *test ? test : NULL, env && *env ? env : NULL, "data", NULL};
    char src[1100];
    snprintf(src, sizeof src, "%s/data", tu_srcdir());
    try[3] = src;
    for (int i = 0; i < 4; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", try[i] ? try[i] : "");
        if (try[i] && tu_exists(path)) {
            snprintf(dir, sizeof dir, "%s", try[i]);
            return dir;
        }
    }
    return NULL;
}

/* models/stacked-ae.yaml (784-300-150-300-784, Adam 0.001, batch 128) for
 * one epoch of the 55,000 training images on one thread must reach a
 * validation mse below QUALITY_BOUND, so that a change that quietly trains
 * worse fails make check. Measured (2026-11-30, `yaflow train
 * models/stacked-ae.yaml train.epochs=1 seed=S --threads 1`): 0.00787
 * (seed 42), 0.00770, 0.00775, 0.00807, 0.00755, 0.00784, 0.00821,
 * 0.00801, 0.00792, 0.00813, 0.00804 (seeds 1 to 10); about a second each.
 * A run is bit for bit the same for a seed and thread count, so the margin
 * is for other machines' kernels (other rounding, another trajectory, as
 * another seed gives): the bound is 10 % above the worst seed. A learning
 * rate 30 % too low (0.0007) ends at 0.0093 and fails. The untrained model
 * is at 0.239, 26 times the bound, so the test cannot pass untrained. */
#define QUALITY_BOUND 0.0090

START_TEST(test_stacked_ae_quality)
{
    const char *data = mnist_dir();
    ck_assert_msg(data != NULL,
                  "no MNIST in $YAFLOW_DATA, ./data or %s/data: fetch it with "
                  "scripts/fetch-mnist.sh DIR (bootstrap.sh does) or set YAFLOW_DATA "
                  "(an absolute path, for make distcheck)", tu_srcdir());
    char path[1100], dir_ov[1200];
    snprintf(path, sizeof path, "%s/models/stacked-ae.yaml", tu_srcdir());
    snprintf(dir_ov, sizeof dir_ov, "data.dir=%s", data);
    static const char *const seeds[] = {"seed=42", "seed=3"};
    tu_workdir(DIR);
    for (size_t i = 0; i < YF__ARRAY_LEN(seeds); i++) {
        const char *ov[] = {"train.epochs=1", dir_ov, seeds[i]};
        yf_error err = {0};
        run r = {0};
        r.spec = yf_spec_load(path, ov, 3, &err);
        ck_assert_msg(r.spec != NULL, "%s", yf_error_format(&err));
        ck_assert_int_eq(r.spec->valid, 5000);
        r.m = yf_model_new(r.spec, 1, &err);
        ck_assert_msg(r.m != NULL, "%s", yf_error_format(&err));
        r.d = yf_dataset_load(r.spec, &err);
        ck_assert_msg(r.d != NULL, "%s", yf_error_format(&err));
        ck_assert_uint_eq(yf_dataset_count(r.d, YF_SPLIT_TRAIN), 55000);
        yf_metric met[4];
        ck_assert_int_eq(yf_evaluate(r.m, r.d, YF_SPLIT_VALID, met, 4, &err), 2);
        double before = met[0].value;
        char out[256];
        snprintf(out, sizeof out, DIR "/stacked-ae-%zu", i);
        double t0 = omp_get_wtime();
        train(&r, out);
        double secs = omp_get_wtime() - t0;
        ck_assert_int_eq(yf_evaluate(r.m, r.d, YF_SPLIT_VALID, met, 4, &err), 2);
        double after = met[0].value;
        printf("stacked-ae, %s, 1 epoch, 1 thread: validation mse %.5f -> %.5f (bound %g) in "
               "%.1f s\n", seeds[i], before, after, QUALITY_BOUND, secs);
        ck_assert_msg(before > 20 * QUALITY_BOUND,
                      "the untrained model is already at %.5f: the bound %g proves nothing",
                      before, QUALITY_BOUND);
        ck_assert_msg(after < QUALITY_BOUND,
                      "stacked-ae, %s: validation mse %.5f after one epoch, above %g (measured "
                      "0.0076 to 0.0082): training got worse",
                      seeds[i], after, QUALITY_BOUND);
        ck_assert_int_eq(r.m->step, (55000 + 127) / 128);
        teardown(&r);
    }
    tu_rmtree(DIR);
}
END_TEST

/* BLIS's kernel set: never its slow `generic` one on a CPU with AVX-512 or
 * AVX2 (unless the user asked for it), and the user's BLIS_ARCH_TYPE wins. */
START_TEST(test_blis_kernels)
{
    yf_runtime_info info;
    yf_runtime_info_get(&info);
    printf("blis kernels %s (%s), BLIS alone: %s\n", info.blis_arch, info.arch_source,
           info.blis_arch_detected);
    __builtin_cpu_init();
    if (!getenv("BLIS_ARCH_TYPE") &&
        (__builtin_cpu_supports("avx512f") || __builtin_cpu_supports("avx2")))
        ck_assert_msg(strcmp(info.blis_arch, "generic") != 0,
                      "BLIS runs its generic kernels on a CPU with %s",
                      info.cpu_features);

    /* the choice comes first or not at all: once BLIS is up, asking again
     * is refused and changes nothing */
    yf_error err = {0};
    ck_assert_int_eq(yf_runtime_choose_kernels(&err), YF_EUSAGE);
    ck_assert_str_eq(yf_error_format(&err), "yf_runtime_choose_kernels must come before the first "
                                            "model: BLIS has already chosen its kernels");

    /* through the command line, in a process of its own */
    char cmd[1400], line[256], want[64];
    snprintf(want, sizeof want, "blis_kernels=%s", bli_arch_string(BLIS_ARCH_PENRYN));
    snprintf(cmd, sizeof cmd, "BLIS_ARCH_TYPE=%d '%s/yaflow' info", (int)BLIS_ARCH_PENRYN,
             tu_builddir());
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    bool seen = false;
    while (fgets(line, sizeof line, p))
        seen |= strncmp(line, want, strlen(want)) == 0;
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(seen, "`%s` did not print %s", cmd, want);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("training");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_loss_falls);
    tcase_add_test(tc, test_other_optimizers);
    tcase_add_test(tc, test_optim_steps);
    tcase_add_test(tc, test_optim_by_hand);
    tcase_add_test(tc, test_divergence_reported);
    tcase_add_test(tc, test_early_stopping_records);
    tcase_add_test(tc, test_checkpoint_matches_config);
    tcase_add_test(tc, test_caller_fp_mode_kept);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("reproducibility");
    tcase_set_timeout(tc2, 60);
    tcase_add_test(tc2, test_reproducible);
    tcase_add_test(tc2, test_reproducible_two_threads);
    tcase_add_test(tc2, test_active_threads_invariant);
    tcase_add_test(tc2, test_run_beside);
    tcase_add_test(tc2, test_act_split_invariant);
    suite_add_tcase(s, tc2);
    TCase *tcp = tcase_create("process");
    tcase_set_timeout(tcp, 120);
    tcase_add_test(tcp, test_no_global_state);
    suite_add_tcase(s, tcp);
    TCase *tcq = tcase_create("quality");
    tcase_set_timeout(tcq, 240);
    tcase_add_test(tcq, test_stacked_ae_quality);
    suite_add_tcase(s, tcq);
    TCase *tc3 = tcase_create("runtime");
    tcase_add_test(tc3, test_blis_kernels);
    suite_add_tcase(s, tc3);
    return tu_run(s);
}
