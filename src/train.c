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

static const char *const loss_names[] = {
#define XX(e, s) #s,
    YF_LOSS_TYPES(XX)
#undef XX
};

/* Metric names: "loss" (the weighted total), then one per loss term, named
 * by its type ("mse"), with "_2", "_3" for repeated types. */
static void term_names(const yf_spec *s, char names[][64])
{
    for (int t = 0; t < s->n_losses; t++) {
        int same = 0;
        for (int u = 0; u < t; u++)
            same += s->losses[u].type == s->losses[t].type;
        if (same)
            snprintf(names[t], 64, "%s_%d", loss_names[s->losses[t].type], same + 1);
        else
            snprintf(names[t], 64, "%s", loss_names[s->losses[t].type]);
    }
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

int yf_evaluate(yf_model *m, yf_dataset *d, yf_split split, yf_metric *out, int cap,
                yf_error *err)
{
    const yf_spec *s = m->spec;
    size_t count = yf_dataset_count(d, split);
    if (count == 0)
        return yf__fail(err, YF_EUSAGE, "the %s split is empty",
                        split == YF_SPLIT_VALID ? "validation" : "requested");
    yf__graph *g = &m->eval;
    double sums[16] = {0}, total = 0;
    size_t *idx = malloc(g->max_rows * sizeof *idx);
    for (size_t b = 0; b < count; b += g->max_rows) {
        int rows = (int)(count - b < (size_t)g->max_rows ? count - b : (size_t)g->max_rows);
        for (int r = 0; r < rows; r++)
            idx[r] = b + r;
        yf__gather(d, split, idx, rows, yf__out(g, g->input_node));
        yf__run(m, g, rows);
        double terms[16] = {0};
        total += losses(g, terms) * rows;
        for (int t = 0; t < s->n_losses; t++)
            sums[t] += terms[t] * rows;
    }
    free(idx);
    char names[16][64];
    term_names(s, names);
    int n = 0;
    if (n < cap) {
        snprintf(out[n].name, sizeof out[n].name, "loss");
        out[n++].value = total / count;
    }
    for (int t = 0; t < s->n_losses && n < cap; t++) {
        snprintf(out[n].name, sizeof out[n].name, "%.63s", names[t]);
        out[n++].value = sums[t] / count;
    }
    return n;
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
    const yf_spec *s = m->spec;
    const char *dir = opts->out_dir;
    if (mkdirs(dir, err))
        return err->code;
    /* A checkpoint left by an earlier run in this folder must not pass for
     * this run's (with the new config.yaml) if this one fails early. */
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
    if (remove(ckpt) != 0 && errno != ENOENT)
        return yf__fail(err, YF_EIO, "cannot replace %s: %s", ckpt, strerror(errno));
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
    char names[16][64];
    term_names(s, names);
    fprintf(csv, "epoch,train_loss,valid_loss");
    for (int t = 0; t < s->n_losses; t++)
        fprintf(csv, ",valid_%s", names[t]);
    fprintf(csv, ",seconds,examples_per_s\n");
    yf_runtime_info info;
    yf_runtime_info_get(&info);
    fprintf(log, "yaflow: model %s, %zu parameters, %d threads, BLIS %s kernels (%s)\n",
            s->name, yf_model_param_count(m), m->threads, info.blis_arch, info.arch_source);
    fprintf(log, "data: %s, %zu train, %zu valid, %zu test examples\n", s->source,
            d->n_train, d->n_valid, d->test_x.count);

    yf__graph *g = &m->train;
    if (opts->profile && !g->prof_seconds)
        g->prof_seconds = calloc(g->n, sizeof *g->prof_seconds);
    size_t n = d->n_train;
    size_t *perm = malloc(n * sizeof *perm);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    int rc = 0;
    if (s->epochs == 0) /* the initial parameters, so that the run can be evaluated */
        rc = yf_checkpoint_save(m, ckpt, err);
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
            yf__gather(d, YF_SPLIT_TRAIN, perm + b, rows, yf__out(g, g->input_node));
            if (b + rows < n)
                yf__prefetch(d, YF_SPLIT_TRAIN, perm + b + rows,
                             (int)(n - b - rows < (size_t)rows ? n - b - rows : (size_t)rows));
            yf__run(m, g, rows);
            double loss = losses(g, NULL);
            if (!isfinite(loss)) {
                rc = yf__fail(err, YF_ERUN,
                              "training diverged: the loss is %f at epoch %d, batch %zu "
                              "(try a smaller train.optimizer.learning_rate)",
                              loss, epoch, b / s->batch_size + 1);
                break;
            }
            yf__optim_step(m);
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
        yf_metric vm[17];
        int nv = d->n_valid ? yf_evaluate(m, d, YF_SPLIT_VALID, vm, 17, err) : 0;
        if (nv < 0) {
            rc = nv;
            break;
        }
        char line[512];
        int l = snprintf(line, sizeof line, "%d,%.6g,%.6g", epoch, loss_sum / seen,
                         nv ? vm[0].value : NAN);
        for (int t = 0; t < s->n_losses; t++)
            l += snprintf(line + l, sizeof line - l, ",%.6g", nv ? vm[t + 1].value : NAN);
        snprintf(line + l, sizeof line - l, ",%.3f,%.1f", secs, seen / secs);
        fprintf(csv, "%s\n", line);
        fflush(csv);
        char plain[512];
        snprintf(plain, sizeof plain,
                 "epoch %d/%d train_loss=%.6g valid_loss=%.6g seconds=%.2f examples_per_s=%.0f",
                 epoch, s->epochs, loss_sum / seen, nv ? vm[0].value : NAN, secs, seen / secs);
        fprintf(log, "%s\n", plain);
        fflush(log);
        if (opts->echo) {
            if (opts->bar)
                fprintf(opts->echo, "\r\033[K");
            fprintf(opts->echo, "%s\n", plain);
            fflush(opts->echo);
        }
        rc = yf_checkpoint_save(m, ckpt, err);
    }
    free(perm);
    if (!rc && opts->profile)
        rc = write_profile(m, dir, err);
    fclose(csv);
    if (rc)
        fprintf(log, "error: %s\n", yf_error_format(err));
    fclose(log);
    return rc;
}
