/* The model language end to end (compile.c, lint.c, checkpoint.c's init,
 * train.c's schedules, early stopping and encode): every model file of the
 * chapter trains for a few batches; parameters copied with init.from are
 * checked against their source; frozen layers stay as they were; codes
 * written by encode load in NumPy; and specs that would train nothing
 * useful are refused or warned about. The data are small MNIST-shaped
 * files the suite writes (test_models.tmp/). */
#include "testutil.h"

#include <dirent.h>

#define WORK "test_models.tmp"

typedef struct {
    yf_spec *spec;
    yf_model *m;
    yf_dataset *d;
} run;

static run start(const char *yaml, const char *const *ov, int n_ov)
{
    run r = {0};
    r.spec = tu_spec(yaml, ov, n_ov);
    yf_error err = {0};
    r.m = yf_model_new(r.spec, 1, &err);
    ck_assert_msg(r.m != NULL, "%s\n%s", yf_error_format(&err), yaml);
    r.d = yf_dataset_load(r.spec, &err);
    ck_assert_msg(r.d != NULL, "%s", yf_error_format(&err));
    return r;
}

static void stop(run *r)
{
    yf_dataset_free(r->d);
    yf_model_free(r->m);
    yf_spec_free(r->spec);
}

static void train_into(run *r, const char *out)
{
    yf_error err = {0};
    yf_train_opts opts = {.out_dir = out};
    ck_assert_msg(yf_train(r->m, r->d, &opts, &err) == 0, "%s", yf_error_format(&err));
}

/* ---- every model file ------------------------------------------------------- */

static int by_name(const void *a, const void *b) { return strcmp(a, b); }

/* models/ and models/greedy/ YAML files, those without an init section
 * first, then by path (greedy/1-, 2-, 3- in order) */
static int model_files(char files[][300], int cap)
{
    int n = 0;
    const char *dirs[] = {"models", "models/greedy"};
    for (int k = 0; k < 2; k++) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/%s", tu_srcdir(), dirs[k]);
        DIR *dp = opendir(dir);
        ck_assert_msg(dp != NULL, "cannot open %s", dir);
        for (struct dirent *de; (de = readdir(dp)) && n < cap;) {
            size_t l = strlen(de->d_name);
            if (l > 5 && !strcmp(de->d_name + l - 5, ".yaml"))
                snprintf(files[n++], 300, "%s/%s", dirs[k], de->d_name);
        }
        closedir(dp);
    }
    qsort(files, n, 300, by_name);
    return n;
}

START_TEST(test_every_model_trains)
{
    tu_workdir(WORK);
    tu_write_dataset(WORK "/data", 400, 64, 28, false);
    char files[64][300];
    int n = model_files(files, 64);
    ck_assert_int_ge(n, 10);
    bool done[64] = {false};
    int trained = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (done[i])
                continue;
            char path[1400];
            snprintf(path, sizeof path, "%.1000s/%.300s", tu_srcdir(), files[i]);
            yf_error err = {0};
            yf_spec *probe = yf_spec_load(path, NULL, 0, &err);
            ck_assert_msg(probe != NULL, "%s", yf_error_format(&err));
            bool has_init = probe->n_init_src > 0;
            if (has_init != (pass == 1)) {
                yf_spec_free(probe);
                continue;
            }
            /* a few batches on the small data; init sources are runs made here */
            static char ov[24][1200];
            int n_ov = 0;
            snprintf(ov[n_ov++], 1200, "data.dir=" WORK "/data");
            snprintf(ov[n_ov++], 1200, "data.valid=64");
            if (probe->epochs > 0) /* epochs: 0 (a random projection) stays untrained */
                snprintf(ov[n_ov++], 1200, "train.epochs=1");
            const yf__node *init = yf__map_get(probe->tree->root, "init");
            for (int k = 0; k < probe->n_init_src; k++) {
                const char *from = probe->init_src[k].from;
                const char *base = strrchr(from, '/') ? strrchr(from, '/') + 1 : from;
                if (init->kind == YF__SEQ)
                    snprintf(ov[n_ov++], 1200, "init.%d.from=" WORK "/runs/%s", k, base);
                else
                    snprintf(ov[n_ov++], 1200, "init.from=" WORK "/runs/%s", base);
            }
            yf_spec_free(probe);
            const char *ovp[24];
            for (int k = 0; k < n_ov; k++)
                ovp[k] = ov[k];
            yf_spec *s = yf_spec_load(path, ovp, n_ov, &err);
            ck_assert_msg(s != NULL, "%s: %s", files[i], yf_error_format(&err));
            run r = {.spec = s};
            r.m = yf_model_new(s, 1, &err);
            ck_assert_msg(r.m != NULL, "%s: %s", files[i], yf_error_format(&err));
            r.d = yf_dataset_load(s, &err);
            ck_assert_msg(r.d != NULL, "%s: %s", files[i], yf_error_format(&err));
            char out[400];
            snprintf(out, sizeof out, WORK "/runs/%s", yf_spec_name(s));
            train_into(&r, out);
            yf_metric met[40];
            int nm = yf_evaluate(r.m, r.d, YF_SPLIT_TEST, met, 40, &err);
            ck_assert_msg(nm > 0, "%s: %s", files[i], yf_error_format(&err));
            printf("model %-40s", files[i]);
            for (int k = 0; k < nm; k++) {
                ck_assert_msg(isfinite(met[k].value), "%s: test_%s is %g", files[i],
                              met[k].name, met[k].value);
                printf(" %s=%.4g", met[k].name, met[k].value);
            }
            printf("\n");
            stop(&r);
            done[i] = true;
            trained++;
        }
    ck_assert_int_eq(trained, n);
    tu_rmtree(WORK);
}
END_TEST

/* ---- init.from ---------------------------------------------------------------- */

/* 8x8 images; two dense layers a and b, their sizes and the init section
 * given */
static const char small_fmt[] =
    "name: small\n"
    "seed: %d\n"
    "data: {source: mnist, dir: " WORK "/data, valid: 32}\n"
    "%s"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  labels: {name: y, classes: 4}\n"
    "  layers:\n"
    "    - {name: a, type: dense, units: %d, activation: elu%s}\n"
    "    - {name: c, type: dense, units: 12, activation: tanh}\n"
    "    - {name: b, type: dense, units: 4}\n"
    "  loss: [{type: softmax_cross_entropy}]\n"
    "  metrics: [accuracy, {type: mean_activation, input: c}]\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: %d}\n";

static char *small(const char *init, int units, const char *extra, int epochs, int seed)
{
    static char yaml[2048];
    snprintf(yaml, sizeof yaml, small_fmt, seed, init, units, extra, epochs);
    return yaml;
}

/* The error yf_model_init_from gives (code and whole message), with the
 * parameters unchanged. */
static void init_fails(const char *yaml, yf_status code, const char *want)
{
    run r = start(yaml, NULL, 0);
    size_t bytes = r.m->param_floats * sizeof(float);
    float *before = malloc(bytes);
    memcpy(before, r.m->param_block, bytes);
    yf_error err = {0};
    ck_assert_int_eq(yf_model_init_from(r.m, &err), code);
    ck_assert_str_eq(yf_error_format(&err), want);
    ck_assert_int_gt(err.line, 0);
    ck_assert(memcmp(before, r.m->param_block, bytes) == 0);
    free(before);
    stop(&r);
}

START_TEST(test_init_from)
{
    tu_workdir(WORK);
    tu_write_dataset(WORK "/data", 224, 32, 8, false);
    run src = start(small("", 16, "", 2, 1), NULL, 0);
    train_into(&src, WORK "/src");

    /* copied by name, from a run folder and from a .safetensors file, also
     * renamed: the values are the source's */
    const char *inits[] = {"init: {from: " WORK "/src, layers: [a]}\n",
                           "init: {from: " WORK "/src/checkpoint.safetensors, layers: [a, b]}\n"};
    for (int k = 0; k < 2; k++) {
        run r = start(small(inits[k], 16, "", 1, 2), NULL, 0);
        int pa = tu_param(r.m, "a.W"), ps = tu_param(src.m, "a.W");
        ck_assert(memcmp(r.m->param_block + r.m->params[pa].offset,
                         src.m->param_block + src.m->params[ps].offset,
                         16 * 64 * sizeof(float)) != 0); /* another seed */
        yf_error err = {0};
        ck_assert_msg(yf_model_init_from(r.m, &err) == 0, "%s", yf_error_format(&err));
        ck_assert(memcmp(r.m->param_block + r.m->params[pa].offset,
                         src.m->param_block + src.m->params[ps].offset,
                         16 * 64 * sizeof(float)) == 0);
        stop(&r);
    }
    /* a wrong shape names both shapes and the line */
    init_fails(small("init: {from: " WORK "/src, layers: [a]}\n", 12, "", 1, 2), YF_ECKPT,
               "test.yaml:4:44: init: layer 'a': 'a.W' is [64, 16] in " WORK
               "/src/checkpoint.safetensors, but this model's 'a.W' is [64, 12]");
    /* a layer the source does not have */
    init_fails(small("init: {from: " WORK "/src, layers: [{a: hidden}]}\n", 16, "", 1, 2),
               YF_ECKPT,
               "test.yaml:4:44: init: layer 'a' (from 'hidden'): " WORK "/src/checkpoint."
               "safetensors has no tensor 'hidden.W' (it has: a.W, a.b, c.W, c.b, b.W, b.b)");
    /* a missing file */
    init_fails(small("init: {from: " WORK "/nowhere, layers: [a]}\n", 16, "", 1, 2), YF_ECKPT,
               "test.yaml:4:14: init: '" WORK "/nowhere' does not exist (a run folder or a "
               ".safetensors file; train the source model first)");
    /* a file that is not a checkpoint: the error is placed at the spec's key */
    tu_write(WORK "/junk.safetensors", "not a checkpoint at all", 23);
    init_fails(small("init: {from: " WORK "/junk.safetensors, layers: [a]}\n", 16, "", 1, 2),
               YF_ECKPT,
               "test.yaml:4:14: init: " WORK "/junk.safetensors: not a safetensors file: header "
               "length 7521891404167278446 does not fit a file of 23 bytes");
    /* train refuses it before touching the run folder: the earlier run stays */
    run r = start(small("init: {from: " WORK "/nowhere, layers: [a]}\n", 16, "", 1, 2), NULL, 0);
    yf_error err = {0};
    yf_train_opts opts = {.out_dir = WORK "/src"};
    ck_assert_int_eq(yf_train(r.m, r.d, &opts, &err), YF_ECKPT);
    ck_assert_str_eq(yf_error_format(&err),
                     "test.yaml:4:14: init: '" WORK "/nowhere' does not exist (a run folder or a "
                     ".safetensors file; train the source model first)");
    ck_assert(tu_exists(WORK "/src/checkpoint.safetensors"));
    stop(&r);
    stop(&src);
    tu_rmtree(WORK);
}
END_TEST

/* trainable: false: the layer's parameters do not move, nothing of it is in
 * the optimizer state; the others learn */
START_TEST(test_frozen_layer)
{
    tu_workdir(WORK);
    tu_write_dataset(WORK "/data", 224, 32, 8, false);
    run r = start(small("", 16, ", trainable: false", 3, 1), NULL, 0);
    size_t bytes = r.m->param_floats * sizeof(float);
    float *before = malloc(bytes);
    memcpy(before, r.m->param_block, bytes);
    train_into(&r, WORK "/frozen");
    for (int p = 0; p < r.m->n_params; p++) {
        const yf__param *pp = &r.m->params[p];
        bool same = !memcmp(before + pp->offset, r.m->param_block + pp->offset,
                            pp->size * sizeof(float));
        ck_assert_msg(same == (pp->name[0] == 'a'), "%s %s", pp->name,
                      same ? "did not change" : "changed");
    }
    size_t len;
    char *ck = tu_read(WORK "/frozen/checkpoint.safetensors", &len);
    ck_assert(ck && !memmem(ck, len, "optim.m.a.", 10) && memmem(ck, len, "optim.m.b.W", 11));
    free(ck);
    free(before);
    stop(&r);
    tu_rmtree(WORK);
}
END_TEST

/* ---- encode ------------------------------------------------------------------- */

START_TEST(test_encode_numpy)
{
    tu_workdir(WORK);
    /* 1000 test images: the evaluation graph's full batch, so that a buffer
     * the plan reuses is overwritten where encode reads */
    tu_write_dataset(WORK "/data", 224, 1000, 8, false);
    run r = start(small("", 16, "", 1, 1), NULL, 0);
    train_into(&r, WORK "/enc");
    yf_error err = {0};
    /* a middle layer: its memory would be reused by the layers above it
     * unless encode keeps it; checked against elu(x·W + b) computed here */
    ck_assert_msg(yf_encode(r.m, r.d, YF_SPLIT_TEST, "a", WORK "/mid.npy", NULL, &err) == 0,
                  "%s", yf_error_format(&err));
    size_t mlen;
    char *mid = tu_read(WORK "/mid.npy", &mlen);
    ck_assert(mid && mlen == 128 + 1000 * 16 * sizeof(float));
    const float *codes = (const float *)(mid + 128);
    const float *W = r.m->param_block + r.m->params[tu_param(r.m, "a.W")].offset;
    const float *bias = r.m->param_block + r.m->params[tu_param(r.m, "a.b")].offset;
    double worst = 0;
    for (int e = 0; e < 1000; e++)
        for (int j = 0; j < 16; j++) {
            double z = bias[j];
            for (int k = 0; k < 64; k++)
                z += r.d->test_x.data[e * 64 + k] / 255.0 * W[k * 16 + j];
            double want = z > 0 ? z : exp(z) - 1;
            worst = fmax(worst, fabs(codes[e * 16 + j] - want));
        }
    printf("encode: middle layer against elu(x·W + b): largest difference %.2e\n", worst);
    ck_assert_msg(worst < 1e-4, "encode wrote codes %g away from the layer's values", worst);
    free(mid);
    ck_assert_msg(yf_encode(r.m, r.d, YF_SPLIT_TEST, "a", WORK "/codes.npy",
                            WORK "/codes.labels.npy", &err) == 0, "%s", yf_error_format(&err));
    /* the sum of the codes as the evaluation graph computes them */
    yf__graph *g = &r.m->eval;
    size_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = i;
    yf__gather(r.d, YF_SPLIT_TEST, idx, 32, g);
    yf__run(r.m, g, 32);
    double sum = 0;
    for (size_t i = 0; i < 32 * 16; i++)
        sum += g->node[g->layer_node[0]].buf[i];
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy, sys; a = numpy.load('" WORK "/codes.npy'); "
             "l = numpy.load('" WORK "/codes.labels.npy'); "
             "ok = a.shape == (1000, 16) and a.dtype == numpy.float32 and l.shape == (1000,) and "
             "list(l[:5]) == [0, 1, 2, 3, 0] and abs(float(a[:32].astype(numpy.float64).sum()) - "
             "%.9g) < 1e-3; print('numpy', a.shape, a.dtype, l[:5]); sys.exit(0 if ok else 1)\"",
             sum);
    ck_assert_msg(system(cmd) == 0, "numpy.load did not read what yf_encode wrote: %s", cmd);
    /* an unknown layer */
    ck_assert_int_eq(yf_encode(r.m, r.d, YF_SPLIT_TEST, "aa", WORK "/x.npy", NULL, &err),
                     YF_EUSAGE);
    ck_assert_str_eq(yf_error_format(&err), "model 'small' has no layer 'aa' (did you mean 'a'?)");
    stop(&r);
    tu_rmtree(WORK);
}
END_TEST

/* ---- batch norm ------------------------------------------------------------------ */

/* Running statistics are trained, saved and loaded with the parameters;
 * evaluation normalises each example on its own: one at a time gives what
 * a batch of 1000 gives. */
START_TEST(test_batch_norm_eval)
{
    tu_workdir(WORK);
    tu_write_dataset(WORK "/data", 224, 1000, 8, false);
    const char *yaml =
        "name: bn\nseed: 3\ndata: {source: mnist, dir: " WORK "/data, valid: 32}\n"
        "model:\n  input: {shape: [1, 8, 8]}\n  labels: {name: y, classes: 4}\n  layers:\n"
        "    - {name: c, type: conv2d, filters: 4, kernel: 3, padding: same}\n"
        "    - {name: bn, type: batch_norm}\n"
        "    - {name: r, type: activation, function: relu}\n"
        "    - {name: f, type: flatten}\n"
        "    - {name: logits, type: dense, units: 4}\n"
        "  loss: [{type: softmax_cross_entropy}]\n  metrics: [accuracy]\n"
        "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 16, epochs: 2}\n";
    run r = start(yaml, NULL, 0);
    int pm = tu_param(r.m, "bn.running_mean"), pv = tu_param(r.m, "bn.running_var");
    ck_assert_int_ge(pm, 0);
    ck_assert(!r.m->params[pm].trainable && !r.m->params[pv].trainable);
    train_into(&r, WORK "/bn");
    const float *mean = r.m->param_block + r.m->params[pm].offset;
    const float *var = r.m->param_block + r.m->params[pv].offset;
    ck_assert_msg(mean[0] != 0.0f && var[0] != 1.0f, "running statistics did not move");
    /* a checkpoint round trip keeps them */
    run r2 = start(yaml, NULL, 0);
    yf_error err = {0};
    ck_assert_int_eq(yf_checkpoint_load(r2.m, WORK "/bn/checkpoint.safetensors", 0, &err), 0);
    ck_assert(!memcmp(r2.m->param_block + r2.m->params[pm].offset, mean, 4 * sizeof(float)));
    ck_assert(!memcmp(r2.m->param_block + r2.m->params[pv].offset, var, 4 * sizeof(float)));
    /* evaluation: 32 examples at once, then one at a time */
    yf__graph *g = &r2.m->eval;
    int out = g->layer_node[4];
    static size_t idx[1000];
    static float all[1000 * 4];
    for (int i = 0; i < 1000; i++)
        idx[i] = i;
    yf__gather(r2.d, YF_SPLIT_TEST, idx, 1000, g);
    yf__run_at(r2.m, g, 1000, 0);
    memcpy(all, g->node[out].buf, sizeof all);
    double worst = 0;
    for (int i = 0; i < 1000; i++) {
        yf__gather(r2.d, YF_SPLIT_TEST, idx + i, 1, g);
        yf__run_at(r2.m, g, 1, 0);
        for (int j = 0; j < 4; j++)
            worst = fmax(worst, fabs(g->node[out].buf[j] - all[i * 4 + j]));
    }
    printf("batch_norm: evaluation one at a time vs 1000 at once: largest difference %.2e\n",
           worst);
    ck_assert_msg(worst < 1e-5, "evaluation depends on the batch: %g", worst);
    stop(&r2);
    stop(&r);
    tu_rmtree(WORK);
}
END_TEST

/* ---- schedules and early stopping --------------------------------------------- */

START_TEST(test_schedules)
{
    struct {
        const char *sched;
        double e, want;
    } cases[] = {
        {"{type: cosine}", 0, 0.1},
        {"{type: cosine}", 5, 0.05},
        {"{type: cosine, min_lr: 0.01}", 10, 0.01},
        {"{type: cosine, warmup_epochs: 2}", 1, 0.05},
        {"{type: step, step_epochs: 3, gamma: 0.5}", 2.9, 0.1},
        {"{type: step, step_epochs: 3, gamma: 0.5}", 6.5, 0.025},
        {"{type: exponential, gamma: 0.5}", 2, 0.025},
        {"{type: constant}", 7, 0.1},
    };
    for (size_t i = 0; i < YF__ARRAY_LEN(cases); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 "name: s\ndata: {source: mnist}\nmodel:\n  input: {shape: [4]}\n"
                 "  layers: [{name: h, type: dense, units: 4}]\n"
                 "  loss: [{type: mse, input: h, target: x}]\n"
                 "train: {optimizer: {type: sgd, learning_rate: 0.1}, epochs: 10, "
                 "schedule: %s}\n", cases[i].sched);
        yf_spec *s = tu_spec(yaml, NULL, 0);
        double lr = yf__schedule_lr(s, cases[i].e);
        ck_assert_msg(fabs(lr - cases[i].want) < 2e-4 * (1 + cases[i].want),
                      "%s at epoch %g: %g, not %g", cases[i].sched, cases[i].e, lr,
                      cases[i].want);
        yf_spec_free(s);
    }
}
END_TEST

/* The checkpoint is the best epoch's, and training stops `patience` epochs
 * after it. */
START_TEST(test_early_stopping)
{
    tu_workdir(WORK);
    tu_write_dataset(WORK "/data", 224, 32, 8, false);
    const char *ov[] = {"train.early_stopping.metric=valid_loss",
                        "train.early_stopping.patience=2",
                        "train.optimizer.learning_rate=0.3"};
    run r = start(small("", 16, "", 30, 1), ov, 3);
    train_into(&r, WORK "/stop");
    size_t len;
    char *csv = tu_read(WORK "/stop/metrics.csv", &len);
    ck_assert(csv != NULL);
    int epochs = 0, best_epoch = 0;
    double best = INFINITY;
    char *save = NULL;
    strtok_r(csv, "\n", &save); /* the header */
    for (char *line; (line = strtok_r(NULL, "\n", &save));) {
        int e;
        double train, valid;
        ck_assert_int_eq(sscanf(line, "%d,%lf,%lf", &e, &train, &valid), 3);
        epochs = e;
        if (valid < best)
            best = valid, best_epoch = e;
    }
    free(csv);
    printf("early stopping: best epoch %d (valid_loss %.6g), %d epochs run\n", best_epoch, best,
           epochs);
    ck_assert_int_eq(epochs, best_epoch + 2 > 30 ? 30 : best_epoch + 2);
    yf_error err = {0};
    yf_metric now_[8];
    ck_assert_int_gt(yf_evaluate(r.m, r.d, YF_SPLIT_VALID, now_, 8, &err), 0);
    ck_assert_msg(fabs(now_[0].value - best) <= 1e-5 * (1 + best),
                  "after training the model is at %.7g, the best epoch at %.7g", now_[0].value,
                  best);
    ck_assert_int_eq(yf_checkpoint_load(r.m, WORK "/stop/checkpoint.safetensors", 0, &err), 0);
    yf_metric met[8];
    ck_assert_int_gt(yf_evaluate(r.m, r.d, YF_SPLIT_VALID, met, 8, &err), 0);
    ck_assert_msg(fabs(met[0].value - best) <= 1e-5 * (1 + best), "checkpoint %.7g, best %.7g",
                  met[0].value, best);
    stop(&r);
    tu_rmtree(WORK);
}
END_TEST

/* ---- warnings ----------------------------------------------------------------- */

static void warns(const char *layers, const char *loss, const char *train, const char *words)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "name: w\nmodel:\n  input: {shape: [8]}\n"
             "  layers:\n%s  loss:\n%strain: %s\n%s", layers, loss, train,
             strstr(train, "data:") ? "" : "data: {source: mnist}\n");
    yf_spec *s;
    yf_model *m = tu_model(yaml, &s);
    ck_assert_msg(yf_model_warning_count(m) == 1, "%d warnings for '%s'",
                  yf_model_warning_count(m), words);
    printf("%s\n", yf_model_warning(m, 0));
    ck_assert_msg(strstr(yf_model_warning(m, 0), words) &&
                      !strncmp(yf_model_warning(m, 0), "test.yaml:", 10),
                  "%s", yf_model_warning(m, 0));
    tu_free(m, s);
}

START_TEST(test_warnings)
{
    const char *mse = "    - {type: mse, input: out, target: x}\n";
    warns("    - {name: h, type: dense, units: 4}\n"
          "    - {name: side, type: dense, units: 3, input: h}\n"
          "    - {name: out, type: dense, units: 8, input: h}\n",
          mse, "{batch_size: 8}", "layer 'side': no loss depends on it");
    warns("    - {name: h, type: dense, units: 4, activation: sigmoid}\n"
          "    - {name: s2, type: activation, function: sigmoid}\n"
          "    - {name: out, type: dense, units: 8}\n",
          mse, "{batch_size: 8}", "already a sigmoid");
    warns("    - {name: h, type: dense, units: 4, trainable: false}\n"
          "    - {name: out, type: dense, units: 8}\n",
          "    - {type: mse, input: out, target: x}\n"
          "    - {type: l2, weight: 0.1, params: [h.W, out.W]}\n",
          "{batch_size: 8}", "'h.W' is not trained");
    warns("    - {name: out, type: dense, units: 8}\n", mse,
          "{batch_size: 9000}\ndata: {source: mnist, valid: 100, train_count: 5000}\n",
          "batch_size 9000 is larger than the 5000 training examples");
}
END_TEST

/* A fused output (sigmoid into sigmoid_cross_entropy, softmax into
 * softmax_cross_entropy) and a linear activation layer into a logit loss
 * are fine: no warning, no refusal. */
START_TEST(test_fused_output_quiet)
{
    const char *yaml[] = {
        "name: f\ndata: {source: mnist}\nmodel:\n  input: {shape: [8]}\n  layers:\n"
        "    - {name: out, type: dense, units: 8, activation: sigmoid}\n"
        "  loss: [{type: sigmoid_cross_entropy, input: out, target: x}]\n",
        "name: f\ndata: {source: mnist}\nmodel:\n  input: {shape: [8]}\n"
        "  labels: {name: y, classes: 10}\n  layers:\n"
        "    - {name: out, type: dense, units: 10, activation: softmax}\n"
        "  loss: [{type: softmax_cross_entropy, input: out}]\n",
        "name: f\ndata: {source: mnist}\nmodel:\n  input: {shape: [8]}\n  layers:\n"
        "    - {name: h, type: dense, units: 8}\n"
        "    - {name: out, type: activation, function: linear}\n"
        "  loss: [{type: sigmoid_cross_entropy, input: out, target: x}]\n",
    };
    for (int i = 0; i < 3; i++) {
        yf_spec *s;
        yf_model *m = tu_model(yaml[i], &s);
        ck_assert_msg(yf_model_warning_count(m) == 0, "%s", yf_model_warning(m, 0));
        tu_free(m, s);
    }
}
END_TEST

/* yf_train_step, the library's unit, follows the schedule on its own. */
START_TEST(test_step_follows_schedule)
{
    tu_workdir(WORK);
    tu_write_dataset(WORK "/data", 224, 32, 8, false);
    const char *ov[] = {"train.schedule.type=cosine", "train.schedule.warmup_epochs=1"};
    run r = start(small("", 16, "", 4, 1), ov, 2);
    size_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = i;
    yf_error err = {0};
    int per_epoch = (192 + 31) / 32;
    for (int k = 0; k < 3 * per_epoch; k++) {
        double loss;
        ck_assert_msg(yf_train_step(r.m, r.d, idx, 32, &loss, &err) == 0, "%s",
                      yf_error_format(&err));
        double want = yf__schedule_lr(r.spec, (double)k / per_epoch);
        ck_assert_msg(fabs(r.m->lr - want) <= 1e-7, "step %d: lr %g, schedule %g", k, r.m->lr,
                      want);
    }
    ck_assert(r.m->lr < 0.01 * 0.9); /* past the warm-up, on the way down */
    stop(&r);
    tu_rmtree(WORK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("model files");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_every_model_trains);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("language");
    tcase_set_timeout(tc2, 120);
    tcase_add_test(tc2, test_init_from);
    tcase_add_test(tc2, test_frozen_layer);
    tcase_add_test(tc2, test_encode_numpy);
    tcase_add_test(tc2, test_batch_norm_eval);
    tcase_add_test(tc2, test_schedules);
    tcase_add_test(tc2, test_early_stopping);
    tcase_add_test(tc2, test_warnings);
    tcase_add_test(tc2, test_fused_output_quiet);
    tcase_add_test(tc2, test_step_follows_schedule);
    suite_add_tcase(s, tc2);
    return tu_run(s);
}
