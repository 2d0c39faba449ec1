/* The training loop and evaluation: seeded shuffling, batches gathered into
 * the input node, one graph run and one optimiser step per batch, a run
 * folder with config.yaml, metrics.csv, log.txt and checkpoint.safetensors. */
#define _GNU_SOURCE /* qsort_r */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Σ weight · value over the graph's loss nodes; per-term sums in terms. */
static double losses(const yf__graph *g, double *terms)
{
    double total = 0;
    for (int i = 0; i < g->n_loss; i++) {
        const yf__gnode *n = &g->node[g->loss_node[i]];
        if (terms)
            terms[n->term] += n->buf[0];
        total += (double)n->weight * n->buf[0];
    }
    return total;
}

/* Evaluation draws its noise (a VAE's samples) from steps of their own,
 * one per batch, so that a result does not depend on how long the model
 * trained or on what ran before. */
#define YF__EVAL_STEP (UINT64_C(1) << 62)

/* Runs the evaluation graph over a split batch by batch; calls visit after
 * each batch. */
static int sweep(yf_model *m, yf_dataset *d, yf_split split,
                 void (*visit)(yf_model *, size_t first, int rows, void *), void *ctx,
                 yf_error *err)
{
    size_t count = yf_dataset_count(d, split);
    if (count == 0)
        return yf__fail(err, YF_EUSAGE, "the %s split is empty",
                        split == YF_SPLIT_VALID ? "validation" : "requested");
    yf__graph *g = &m->eval;
    size_t *idx = malloc(g->max_rows * sizeof *idx);
    if (!idx)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    for (size_t b = 0; b < count; b += g->max_rows) {
        int rows = (int)(count - b < (size_t)g->max_rows ? count - b : (size_t)g->max_rows);
        for (int r = 0; r < rows; r++)
            idx[r] = b + r;
        yf__gather(d, split, idx, rows, g);
        yf__run_at(m, g, rows, YF__EVAL_STEP + b / g->max_rows);
        visit(m, b, rows, ctx);
    }
    free(idx);
    return 0;
}

typedef struct {
    double total, terms[YF__MAX_TERMS], metrics[2 * YF__MAX_TERMS];
} sums;

static void add_up(yf_model *m, size_t first, int rows, void *ctx)
{
    sums *s = ctx;
    const yf__graph *g = &m->eval;
    double terms[YF__MAX_TERMS] = {0};
    s->total += losses(g, terms) * rows;
    for (int t = 0; t < m->spec->n_losses; t++)
        s->terms[t] += terms[t] * rows;
    for (int i = 0; i < g->n_metric; i++)
        s->metrics[i] += (double)g->node[g->metric[i].node].buf[0] * rows;
}

int yf_evaluate(yf_model *m, yf_dataset *d, yf_split split, yf_metric *out, int cap,
                yf_error *err)
{
    YF__FTZ_SCOPE;
    const yf_spec *s = m->spec;
    sums sm = {0};
    if (sweep(m, d, split, add_up, &sm, err))
        return err->code;
    double count = (double)yf_dataset_count(d, split);
    int n = 0;
    if (n < cap) {
        snprintf(out[n].name, sizeof out[n].name, "loss");
        out[n++].value = sm.total / count;
    }
    for (int t = 0; t < s->n_losses && n < cap; t++) {
        yf__term_name(s, t, out[n].name);
        out[n++].value = sm.terms[t] / count;
    }
    for (int i = 0; i < m->eval.n_metric && n < cap; i++) {
        snprintf(out[n].name, sizeof out[n].name, "%s", m->eval.metric[i].name);
        out[n++].value = sm.metrics[i] / count;
    }
    return n;
}

/* ---- encode ------------------------------------------------------------------ */

typedef struct {
    int node;
    float *codes;
    int64_t *labels;
    const yf_dataset *d;
    yf_split split;
} enc;

static void copy_codes(yf_model *m, size_t first, int rows, void *ctx)
{
    enc *e = ctx;
    const yf__gnode *n = &m->eval.node[e->node];
    memcpy(e->codes + first * n->size, n->buf, (size_t)rows * n->size * sizeof(float));
    const yf__idx *y = e->split == YF_SPLIT_TEST ? &e->d->test_y : &e->d->train_y;
    for (int r = 0; r < rows; r++)
        e->labels[first + r] = y->data[yf__row_of(e->d, e->split, first + r)];
}

int yf_encode(yf_model *m, yf_dataset *d, yf_split split, const char *layer, const char *path,
              const char *labels_path, yf_error *err)
{
    YF__FTZ_SCOPE;
    const yf_spec *s = m->spec;
    int node = -1;
    for (int i = 0; i < s->n_layers; i++)
        if (!strcmp(s->layers[i].name, layer))
            node = m->eval.layer_node[i];
    if (!strcmp(s->input_name, layer))
        node = m->eval.input_node;
    if (node < 0) {
        const char *cands[1024];
        int n = 0;
        for (int i = 0; i < s->n_layers && n < 1024; i++)
            cands[n++] = s->layers[i].name;
        const char *near = yf__closest(layer, cands, n);
        return yf__fail(err, YF_EUSAGE, "model '%s' has no layer '%s'%s%s%s", s->name, layer,
                        near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
    }
    /* the node's buffer must survive the rest of the graph: keep it and
     * plan again (the plan reuses the memory of dead buffers) */
    if (!m->eval.node[node].keep) {
        m->eval.node[node].keep = true;
        if (yf__plan(m, &m->eval, err))
            return err->code;
    }
    size_t count = yf_dataset_count(d, split);
    const yf__gnode *n = &m->eval.node[node];
    enc e = {.node = node, .d = d, .split = split};
    e.codes = malloc(count * n->size * sizeof(float) + 1);
    e.labels = malloc(count * sizeof(int64_t) + 1);
    int rc = 0;
    if (!e.codes || !e.labels)
        rc = yf__fail(err, YF_ENOMEM, "out of memory for %zu × %zu codes", count, n->size);
    if (!rc)
        rc = sweep(m, d, split, copy_codes, &e, err);
    if (!rc) {
        int64_t shape[1 + YF__MAX_DIMS] = {(int64_t)count};
        for (int k = 0; k < n->ndim; k++)
            shape[k + 1] = n->dims[k];
        rc = yf__npy_write(path, "<f4", shape, 1 + n->ndim, e.codes, sizeof(float), err);
        if (!rc && labels_path)
            rc = yf__npy_write(labels_path, "<i8", shape, 1, e.labels, sizeof(int64_t), err);
    }
    free(e.codes);
    free(e.labels);
    return rc;
}

/* ---- training ------------------------------------------------------------------ */

int yf_train_step(yf_model *m, yf_dataset *d, const size_t *idx, int rows, double *loss,
                  yf_error *err)
{
    YF__FTZ_SCOPE;
    yf__graph *g = &m->train;
    if (rows < 1 || rows > g->max_rows)
        return yf__fail(err, YF_EUSAGE, "a step takes 1 to %d examples, not %d", g->max_rows,
                        rows);
    /* the schedule's rate at this step's fractional epoch */
    const yf_spec *s = m->spec;
    double per_epoch = ceil((double)yf_dataset_count(d, YF_SPLIT_TRAIN) / s->batch_size);
    m->lr = yf__schedule_lr(s, (double)m->step / per_epoch);
    yf__gather(d, YF_SPLIT_TRAIN, idx, rows, g);
    yf__run(m, g, rows);
    double l = losses(g, NULL);
    if (!isfinite(l))
        return yf__fail(err, YF_ERUN,
                        "training diverged: the loss is %f at step %llu (try a smaller "
                        "train.optimizer.learning_rate)", l, (unsigned long long)m->step + 1);
    yf__optim_step(m);
    if (loss)
        *loss = l;
    return 0;
}

static int mkdirs(const char *path, yf_error *err)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST)
                return yf__fail(err, YF_EIO, "cannot create %s: %s", buf, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

static FILE *open_in(const char *dir, const char *name, const char *mode, yf_error *err)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, mode);
    if (!f)
        yf__fail(err, YF_EIO, "cannot write %s: %s", path, strerror(errno));
    return f;
}

/* epoch 2/5 [=========>      ] batch 230/430 loss 0.00612 44012 ex/s ETA 5s */
static void bar(FILE *o, int epoch, int epochs, size_t done, size_t total, int batch_size,
                double loss, double rate)
{
    int width = 24, fill = (int)(width * done / (total ? total : 1));
    double eta = rate > 0 ? (total - done) / rate : 0;
    fprintf(o, "\repoch %d/%d [%.*s%*s] batch %zu/%zu loss %.5f %.0f ex/s ETA %.0fs ", epoch,
            epochs, fill, "========================", width - fill, "",
            (done + batch_size - 1) / batch_size, (total + batch_size - 1) / batch_size, loss,
            rate, eta);
    fflush(o);
}

static int by_seconds_desc(const void *a, const void *b, void *ctx)
{
    const double *t = ctx;
    double x = t[*(const int *)a], y = t[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}

/* profile.txt: every node of the training graph by time spent, with the
 * rate it reached (FLOPs for GEMMs, elements for the rest). */
static int write_profile(const yf_model *m, const char *dir, yf_error *err)
{
    const yf__graph *g = &m->train;
    FILE *f = open_in(dir, "profile.txt", "w", err);
    if (!f)
        return err->code;
    int *ids = malloc(g->n * sizeof *ids);
    double total = 0;
    for (int i = 0; i < g->n; i++)
        ids[i] = i, total += g->prof_seconds[i];
    qsort_r(ids, g->n, sizeof *ids, by_seconds_desc, g->prof_seconds);
    double examples = g->prof_rows;
    fprintf(f, "%-16s %-26s %9s %6s %12s\n", "node", "op", "seconds", "%", "GFLOP/s");
    for (int k = 0; k < g->n; k++) {
        const yf__gnode *n = &g->node[ids[k]];
        if (g->prof_seconds[ids[k]] <= 0)
            continue;
        double flops = yf__node_flops(g, n, 1) * examples;
        fprintf(f, "%-16s %-26s %9.3f %6.1f %12.1f\n", n->name, yf__op_names[n->op],
                g->prof_seconds[ids[k]], 100 * g->prof_seconds[ids[k]] / total,
                flops / g->prof_seconds[ids[k]] * 1e-9);
    }
    fprintf(f, "total in graph nodes: %.3f s for %.0f examples\n", total, examples);
    free(ids);
    fclose(f);
    return 0;
}

int yf_train(yf_model *m, yf_dataset *d, const yf_train_opts *opts, yf_error *err)
{
    YF__FTZ_SCOPE;
    const yf_spec *s = m->spec;
    const char *dir = opts->out_dir;
    /* parameters copied from another run come first: a missing or
     * mismatched source fails before anything in the folder changes */
    if (yf_model_init_from(m, err))
        return err->code;
    if (mkdirs(dir, err))
        return err->code;
    /* A checkpoint left by an earlier run in this folder must not pass for
     * this run's (with the new config.yaml) if this one fails early. */
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
    if (remove(ckpt) != 0 && errno != ENOENT)
        return yf__fail(err, YF_EIO, "cannot replace %s: %s", ckpt, strerror(errno));
    char stale[1200]; /* a write that was killed half-way */
    snprintf(stale, sizeof stale, "%s.tmp", ckpt);
    remove(stale);
    FILE *cfg = open_in(dir, "config.yaml", "w", err);
    if (!cfg)
        return err->code;
    yf_spec_write(s, cfg);
    fclose(cfg);
    FILE *csv = open_in(dir, "metrics.csv", "w", err);
    FILE *log = csv ? open_in(dir, "log.txt", "w", err) : NULL;
    if (!csv || !log) {
        if (csv)
            fclose(csv);
        return err->code;
    }
    /* columns: the loss, its terms and the metrics on the validation split */
    int n_cols = 1 + s->n_losses + m->eval.n_metric, stop_col = -1;
    fprintf(csv, "epoch,train_loss,valid_loss");
    for (int t = 0; t < s->n_losses; t++) {
        char name[64];
        yf__term_name(s, t, name);
        fprintf(csv, ",valid_%s", name);
        if (s->stop.on && !strcmp(s->stop.metric + 6, name))
            stop_col = 1 + t;
    }
    for (int i = 0; i < m->eval.n_metric; i++) {
        fprintf(csv, ",valid_%s", m->eval.metric[i].name);
        if (s->stop.on && !strcmp(s->stop.metric + 6, m->eval.metric[i].name))
            stop_col = 1 + s->n_losses + i;
    }
    if (s->stop.on && !strcmp(s->stop.metric, "valid_loss"))
        stop_col = 0;
    fprintf(csv, ",learning_rate,seconds,examples_per_s\n");
    fflush(csv);
    yf_runtime_info info;
    yf_runtime_info_get(&info);
    fprintf(log, "yaflow: model %s, %zu parameters, %d threads, BLIS %s kernels (%s)\n",
            s->name, yf_model_param_count(m), m->threads, info.blis_arch, info.arch_source);
    fprintf(log, "data: %s, %zu train, %zu valid, %zu test examples\n", s->source,
            d->n_train, d->n_valid, d->test_x.count);
    for (int i = 0; i < s->n_init_src; i++)
        fprintf(log, "init: layers from %s\n", s->init_src[i].from);
    for (int i = 0; i < m->n_warn; i++)
        fprintf(log, "%s\n", m->warn[i].text);
    fflush(log);

    yf__graph *g = &m->train;
    if (opts->profile && !g->prof_seconds)
        g->prof_seconds = calloc(g->n, sizeof *g->prof_seconds);
    size_t n = d->n_train;
    size_t *perm = malloc(n * sizeof *perm);
    if (!perm) {
        fclose(csv);
        fclose(log);
        return yf__fail(err, YF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    int rc = 0;
    if (s->epochs == 0) /* the initial parameters, so that the run can be evaluated */
        rc = yf_checkpoint_save(m, ckpt, err);
    double best = NAN;
    int best_epoch = 0;
    for (int epoch = 1; epoch <= s->epochs && !rc; epoch++) {
        /* Fisher–Yates, one Philox block per draw */
        for (size_t i = n - 1; i > 0; i -= 1) {
            uint32_t w[4];
            yf__philox(s->seed, YF__STREAM_SHUFFLE, (uint64_t)epoch, (uint32_t)i, w);
            size_t j = (size_t)((((uint64_t)w[0] << 32) | w[1]) % (i + 1));
            size_t t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        double t0 = now(), last_draw = 0, loss_sum = 0;
        size_t seen = 0;
        for (size_t b = 0; b < n; b += s->batch_size) {
            int rows = (int)(n - b < (size_t)s->batch_size ? n - b : (size_t)s->batch_size);
            if (b + rows < n)
                yf__prefetch(d, YF_SPLIT_TRAIN, perm + b + rows,
                             (int)(n - b - rows < (size_t)rows ? n - b - rows : (size_t)rows));
            double loss;
            if ((rc = yf_train_step(m, d, perm + b, rows, &loss, err)))
                break;
            loss_sum += loss * rows;
            seen += rows;
            if (opts->echo && opts->bar && now() - last_draw > 0.2) {
                last_draw = now();
                bar(opts->echo, epoch, s->epochs, seen, n, s->batch_size, loss_sum / seen,
                    seen / (last_draw - t0));
            }
        }
        if (rc)
            break;
        double secs = now() - t0;
        yf_metric vm[1 + 3 * YF__MAX_TERMS];
        int nv = d->n_valid ? yf_evaluate(m, d, YF_SPLIT_VALID, vm, n_cols, err) : 0;
        if (nv < 0) {
            rc = nv;
            break;
        }
        /* the checkpoint first, then the records that describe it: a run
         * killed between the two has metrics one epoch behind its
         * checkpoint, never ahead of it */
        bool better = false;
        if (stop_col >= 0) { /* early stopping: the checkpoint is the best epoch's */
            double v = vm[stop_col].value;
            better = isnan(best) || (s->stop.maximize ? v > best + s->stop.min_delta
                                                      : v < best - s->stop.min_delta);
            if (better)
                best = v, best_epoch = epoch;
        }
        if ((stop_col < 0 || better) && (rc = yf_checkpoint_save(m, ckpt, err)))
            break;
        fprintf(csv, "%d,%.6g", epoch, loss_sum / seen);
        for (int c = 0; c < n_cols; c++)
            fprintf(csv, ",%.6g", nv ? vm[c].value : NAN);
        fprintf(csv, ",%.6g,%.3f,%.1f\n", m->lr, secs, seen / secs);
        fflush(csv);
        char plain[4096];
        size_t l = snprintf(plain, sizeof plain, "epoch %d/%d train_loss=%.6g", epoch,
                            s->epochs, loss_sum / seen);
        for (int c = 0; c < nv && l < sizeof plain; c++)
            if (c == 0 || c > s->n_losses || c == stop_col)
                l += snprintf(plain + l, sizeof plain - l, " valid_%s=%.6g", vm[c].name,
                              vm[c].value);
        if (l < sizeof plain)
            snprintf(plain + l, sizeof plain - l, " seconds=%.2f examples_per_s=%.0f", secs,
                     seen / secs);
        fprintf(log, "%s\n", plain);
        fflush(log);
        if (opts->echo) {
            if (opts->bar)
                fprintf(opts->echo, "\r\033[K");
            fprintf(opts->echo, "%s\n", plain);
            fflush(opts->echo);
        }
        if (stop_col >= 0 && !better && epoch - best_epoch >= s->stop.patience) {
            snprintf(plain, sizeof plain,
                     "early stopping: %s has not improved for %d epochs; the checkpoint is "
                     "epoch %d's (%s=%.6g)", s->stop.metric, s->stop.patience, best_epoch,
                     s->stop.metric, best);
            fprintf(log, "%s\n", plain);
            fflush(log);
            if (opts->echo)
                fprintf(opts->echo, "%s\n", plain);
            break;
        }
    }
    free(perm);
    /* with early stopping the model ends as the checkpoint is: the best epoch */
    if (!rc && stop_col >= 0 && best_epoch > 0)
        rc = yf_checkpoint_load(m, ckpt, 1, err);
    if (!rc && opts->profile)
        rc = write_profile(m, dir, err);
    fclose(csv);
    if (rc)
        fprintf(log, "error: %s\n", yf_error_format(err));
    fclose(log);
    return rc;
}

/* ---- run folders, opened again ------------------------------------------------- */

void yf_run_close(yf_run *r)
{
    yf_dataset_free(r->data);
    yf_model_free(r->model);
    yf_spec_free(r->spec);
    memset(r, 0, sizeof *r);
}

int yf_run_open(yf_run *r, const char *dir, int threads, int flags, yf_error *err)
{
    memset(r, 0, sizeof *r);
    char cfg[1100], ckpt[1100];
    snprintf(cfg, sizeof cfg, "%s/config.yaml", dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
    struct stat st;
    if (stat(cfg, &st) != 0)
        return yf__fail(err, YF_EUSAGE, "%s is not a run folder (it has no config.yaml): give a "
                        "folder that yaflow train wrote", dir);
    r->spec = yf_spec_load(cfg, NULL, 0, err);
    if (r->spec && (flags & YF_RUN_MEANS))
        yf_spec_sample_means(r->spec);
    r->model = r->spec ? yf_model_new(r->spec, threads, err) : NULL;
    bool ok = r->model && !yf__checkpoint_load(r->model, ckpt, 0, true, err);
    if (ok && (flags & YF_RUN_DATA))
        ok = (r->data = yf_dataset_load(r->spec, err)) != NULL;
    if (!ok) {
        yf_run_close(r);
        return err->code ? err->code : YF_ERUN;
    }
    return 0;
}
