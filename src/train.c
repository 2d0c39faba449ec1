/* The training loop and evaluation: seeded shuffling, batches gathered into
 * the input node, one graph run and one optimiser step per batch, a run
 * folder with config.yaml, metrics.csv, log.txt and checkpoint.safetensors. */
#define _GNU_SOURCE /* qsort_r */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <math.h>
#include <zlib.h>
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
    size_t *idx = yf__malloc(g->max_rows * sizeof *idx);
    if (!idx)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    for (size_t b = 0; b < count; b += g->max_rows) {
        int rows = (int)(count - b < (size_t)g->max_rows ? count - b : (size_t)g->max_rows);
        for (int r = 0; r < rows; r++)
            idx[r] = b + r;
        yf__gather_threads(d, split, idx, rows, g, m->active);
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
        out[n].weight = NAN;
        out[n++].value = sm.total / count;
    }
    for (int t = 0; t < s->n_losses && n < cap; t++) {
        yf__term_name(s, t, out[n].name);
        out[n].weight = s->losses[t].weight;
        out[n++].value = sm.terms[t] / count;
    }
    for (int i = 0; i < m->eval.n_metric && n < cap; i++) {
        snprintf(out[n].name, sizeof out[n].name, "%s", m->eval.metric[i].name);
        out[n].weight = NAN;
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
    if (yf__plan_keep(m, &m->eval, node, err))
        return err->code;
    size_t count = yf_dataset_count(d, split);
    const yf__gnode *n = &m->eval.node[node];
    enc e = {.node = node, .d = d, .split = split};
    e.codes = yf__malloc(count * n->size * sizeof(float) + 1);
    e.labels = yf__malloc(count * sizeof(int64_t) + 1);
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

static int train_step(yf_model *m, yf_dataset *d, const size_t *idx, int rows, int row0,
                      int batch_rows, const size_t *next, int n_next,
                      const volatile sig_atomic_t *asked, int *stop, double *loss,
                      yf_error *err);

int yf_train_step(yf_model *m, yf_dataset *d, const size_t *idx, int rows, double *loss,
                  yf_error *err)
{
    return train_step(m, d, idx, rows, 0, rows, NULL, 0, NULL, NULL, loss, err);
}

/* The gradient block summed over the ranks (yf__run sends the buckets as
 * the backward pass finishes them; here the last arrive), and the losses
 * with them: each rank's are its rows' share of the global batch's mean.
 * Whether any rank has been asked to stop (*asked, as it is now) travels
 * along into *stop, so that all stop after the same step. A rank with no
 * rows in this batch sends zeros. */
static void exchange(yf_model *m, yf__graph *g, int rows, const volatile sig_atomic_t *asked,
                     int *stop)
{
    double v[g->n_loss + 2];
    yf__exchange_finish(m);
    for (int i = 0; i < g->n_loss; i++)
        v[i] = rows ? g->node[g->loss_node[i]].buf[0] : 0.0;
    v[g->n_loss] = asked && *asked;
    size_t lo, hi;
    bool shard = yf__exchange_shard(m, &lo, &hi);
    v[g->n_loss + 1] = shard && !yf__finite(m->grad_block + lo, hi - lo);
    yf__dist_sum(v, g->n_loss + 2);
    for (int i = 0; i < g->n_loss; i++)
        g->node[g->loss_node[i]].buf[0] = (float)v[i];
    if (stop)
        *stop = v[g->n_loss] > 0;
    g->grads_bad = shard ? v[g->n_loss + 1] > 0 : !yf__finite(m->grad_block, m->param_floats);
}

typedef struct {
    const yf_dataset *d;
    const size_t *idx;
    int rows;
} rows_ahead;

static void prefetch_rows(void *arg)
{
    const rows_ahead *r = arg;
    yf__prefetch(r->d, YF_SPLIT_TRAIN, r->idx, r->rows);
}

/* A step. Rows row0 .. row0 + rows of a global batch of batch_rows: all of
 * it in one process; with several ranks this rank's share (possibly none),
 * the gradients and losses then being summed over the ranks. The rows of
 * the next batch (next, n_next) are asked of the memory at the end of the
 * graph, so that they arrive during the optimizer's pass rather than being
 * pushed out of the cache by the step: on several threads by the worker
 * that finishes its share of the last level first (yf__run_beside), where
 * it would otherwise wait (after the graph, it took 0.01 ms a step on one
 * thread while the other waited: docs/performance.md); on one thread,
 * after the graph. */
static int train_step(yf_model *m, yf_dataset *d, const size_t *idx, int rows, int row0,
                      int batch_rows, const size_t *next, int n_next,
                      const volatile sig_atomic_t *asked, int *stop, double *loss,
                      yf_error *err)
{
    YF__FTZ_SCOPE;
    yf__graph *g = &m->train;
    if (rows < (m->xchg ? 0 : 1) || rows > g->max_rows)
        return yf__fail(err, YF_EUSAGE, "a step takes 1 to %d examples, not %d", g->max_rows,
                        rows);
    /* the schedule's rate at this step's fractional epoch */
    const yf_spec *s = m->spec;
    double per_epoch = ceil((double)yf_dataset_count(d, YF_SPLIT_TRAIN) / s->batch_size);
    m->lr = yf__schedule_lr(s, (double)m->step / per_epoch);
    m->row0 = row0, m->batch_rows = batch_rows;
    yf__exchange_start(m);
    rows_ahead ahead = {d, next, n_next};
    yf__aside fetch = {prefetch_rows, &ahead};
    if (rows > 0) {
        yf__gather_threads(d, YF_SPLIT_TRAIN, idx, rows, g, m->active);
        yf__run_beside(m, g, rows, next ? &fetch : NULL);
    } else {
        memset(m->grad_block, 0, m->param_floats * sizeof(float));
        if (next)
            prefetch_rows(&ahead);
    }
    if (m->xchg)
        exchange(m, g, rows, asked, stop);
    double l = losses(g, NULL);
    int rc = 0;
    if (!isfinite(l) || g->grads_bad) {
        /* nothing is updated; run the step again node by node to name the
         * first that produced a NaN or an infinity (with several ranks,
         * among this rank's rows) */
        int bad = rows ? yf__find_nonfinite(m, g, rows, m->step) : -1;
        char what[400];
        if (bad >= 0) {
            const yf__gnode *n = &g->node[bad];
            snprintf(what, sizeof what, "training diverged at step %llu: node '%s' (%s%s) "
                     "produced the first non-finite value, and the loss is %g; nothing was "
                     "updated (try a smaller train.optimizer.learning_rate)",
                     (unsigned long long)m->step + 1, n->name, yf__op_names[n->op],
                     bad >= g->n_fwd ? ", in the backward pass" : "", l);
            rc = n->at ? yf__fail_at(err, n->at, YF_ERUN, "%s", what)
                       : yf__fail(err, YF_ERUN, "%s", what);
        } else {
            rc = yf__fail(err, YF_ERUN, "training diverged at step %llu: the loss is %g%s; "
                          "nothing was updated (try a smaller "
                          "train.optimizer.learning_rate)", (unsigned long long)m->step + 1, l,
                          isfinite(l) ? " but a parameter gradient holds a NaN or an infinity"
                                      : "");
        }
        yf__dist_error_shared(true); /* every rank sees the same sums */
    }
    m->row0 = 0, m->batch_rows = 0;
    if (rc)
        return rc;
    yf__optim_step(m);
    if (loss)
        *loss = l;
    return 0;
}

static int mkdirs(const char *path, yf_error *err)
{
    char buf[1300];
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

/* Where the ranks other than 0 write what rank 0 writes to the run folder. */
static FILE *quiet_file(yf_error *err)
{
    FILE *f = fopen("/dev/null", "w");
    if (!f)
        yf__fail(err, YF_EIO, "cannot open /dev/null: %s", strerror(errno));
    return f;
}

static FILE *open_in(const char *dir, const char *name, const char *mode, yf_error *err)
{
    char path[1400];
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
    int *ids = yf__malloc(g->n * sizeof *ids);
    if (!ids) {
        fclose(f);
        return yf__fail(err, YF_ENOMEM, "out of memory");
    }
    double total = 0;
    for (int i = 0; i < g->n; i++)
        ids[i] = i, total += g->prof_seconds[i];
    qsort_r(ids, g->n, sizeof *ids, by_seconds_desc, g->prof_seconds);
    double examples = g->prof_rows;
    fprintf(f, "%-16s %-40s %9s %6s %12s\n", "node", "op", "seconds", "%", "GFLOP/s");
    for (int k = 0; k < g->n; k++) {
        const yf__gnode *n = &g->node[ids[k]];
        /* a node folded into another's pass only entered its kernel */
        if (g->prof_seconds[ids[k]] <= (n->folded ? 1e-3 * total : 0))
            continue;
        double flops = yf__node_flops(g, n, 1) * examples;
        char op[96]; /* with what the plan folded into it */
        snprintf(op, sizeof op, "%s%s%s%s%s", yf__op_names[n->op], n->epi >= 0 ? "+" : "",
                 n->epi >= 0 ? yf__op_names[g->node[n->epi].op] : "",
                 n->colsum >= 0 ? "+dense_db" : "", n->sum_into >= 0 ? "+mse" : "");
        fprintf(f, "%-16s %-40s %9.3f %6.1f %12.1f\n", n->name, op,
                g->prof_seconds[ids[k]], 100 * g->prof_seconds[ids[k]] / total,
                flops / g->prof_seconds[ids[k]] * 1e-9);
    }
    fprintf(f, "total in graph nodes: %.3f s for %.0f examples (a+b: b folded into a's "
            "pass; +dense_db and +mse only on one thread)\n", total, examples);
    free(ids);
    fclose(f);
    return 0;
}

void (*yf__step_hook)(const yf_model *m);

/* ---- threads that follow the machine's load ---------------------------------- *
 *
 * On a machine where other processes hold cores, a step split over every
 * core waits for the thread that shares its core with them, at every
 * BLIS partition and barrier: with one core busy, two threads ran at
 * 0.34-0.61x the speed of one. So with adapt_threads the loop uses as many
 * threads as there are cores the others leave free: every quarter second
 * it reads the CPU time of the cores it may run on (/proc/stat) and its own
 * (getrusage), and the difference is what other processes took. (Trying
 * thread counts and timing them was slower: on a loaded machine the
 * timings are too noisy to decide on quickly, and a wrong trial costs a
 * lot.) The results do not depend on the count: BLIS does not split the
 * inner dimension, and reductions are chunked by the model's thread count. */
typedef struct {
    bool on;
    double last;                   /* the time of the last reading (0: none yet) */
    double busy_s, own_s;          /* the cores' busy seconds, this process's, then */
    int calm;                      /* readings in a row that allowed more threads */
    double ex_threads, ex_total;   /* Σ threads·examples, Σ examples: the mean count */
} tuner;

#define TUNE_PERIOD_S 0.25

/* Busy seconds of the CPUs this thread may run on and their count, from
 * /proc/stat (user, nice, system, irq, softirq, steal); -1 when unknown. */
static double cores_busy(int *n)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    double ticks = (double)sysconf(_SC_CLK_TCK), busy = 0;
    char line[512];
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        int cpu;
        unsigned long long v[8] = {0};
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 8 ||
            cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set))
            continue;
        busy += (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / ticks;
        ++*n;
    }
    fclose(f);
    return *n > 0 && ticks > 0 ? busy : -1;
}

static double own_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

/* Processes running now besides this one: the least of a few samples of
 * /proc/loadavg's runnable count (which counts the reader itself); -1
 * when unknown. */
static int others_running(void)
{
    int least = -1;
    for (int i = 0; i < 5; i++) {
        FILE *f = fopen("/proc/loadavg", "r");
        int running = 0, total = 0;
        bool ok = f && fscanf(f, "%*f %*f %*f %d/%d", &running, &total) == 2;
        if (f)
            fclose(f);
        if (!ok)
            return -1;
        if (least < 0 || running - 1 < least)
            least = running - 1;
        usleep(2000);
    }
    return least;
}

/* Before the first step: as many threads as the processes running now
 * leave cores for (a glance at /proc/loadavg), until the first reading of
 * CPU times a tenth of a second in. (Starting on one thread cost a quiet
 * machine a third of a short epoch; starting on every thread cost a busy
 * one a twentieth.) */
void yf_model_fit_threads(yf_model *m)
{
    cpu_set_t set;
    int others = others_running();
    if (others < 0 || sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    int free = CPU_COUNT(&set) - others;
    m->active = free < 1 ? 1 : free > m->threads ? m->threads : free;
}

static void tuner_start(tuner *t, yf_model *m)
{
    int n;
    if (!t->on || m->threads < 2)
        return;
    t->busy_s = cores_busy(&n), t->own_s = own_cpu();
    if (t->busy_s < 0 || t->own_s < 0) {
        t->on = false;
        return;
    }
    t->last = now() - (TUNE_PERIOD_S - 0.1);
    yf_model_fit_threads(m);
}


static void tuner_step(tuner *t, yf_model *m, int rows)
{
    t->ex_threads += (double)m->active * rows, t->ex_total += rows;
    if (!t->on || m->threads < 2)
        return;
    double clock = now();
    if (t->last && clock - t->last < TUNE_PERIOD_S)
        return;
    int n;
    double busy = cores_busy(&n), own = own_cpu();
    if (busy < 0 || own < 0) {
        t->on = false; /* not Linux, or no /proc: the fixed count */
        return;
    }
    if (t->last) {
        /* the cores the other processes kept busy: a core taken by more
         * than 0.3 of its time is not free; more threads only after two
         * readings in a row that allow them (a loaded machine's load comes
         * and goes, and a thread too many costs far more than one too few) */
        double wall = clock - t->last;
        double others = ((busy - t->busy_s) - (own - t->own_s)) / wall;
        int free = n - (int)ceil(others - 0.3);
        free = free < 1 ? 1 : free > m->threads ? m->threads : free;
        if (free < m->active) {
            m->active = free, t->calm = 0;
        } else if (free > m->active && ++t->calm >= 2) {
            m->active = free, t->calm = 0;
        } else if (free <= m->active) {
            t->calm = 0;
        }
    }
    t->last = clock, t->busy_s = busy, t->own_s = own;
}

/* metrics.csv's rows so far: every checkpoint records them, so that a
 * resumed run's metrics.csv agrees with its checkpoint. */
typedef struct {
    char *text;
    size_t len, cap;
} text;

static int text_add(text *t, const char *line, yf_error *err)
{
    size_t l = strlen(line);
    if (t->len + l + 1 > t->cap) {
        size_t cap = 2 * (t->len + l + 1) + 256;
        char *p = yf__realloc(t->text, cap);
        if (!p)
            return yf__fail(err, YF_ENOMEM, "out of memory");
        t->text = p, t->cap = cap;
    }
    memcpy(t->text + t->len, line, l + 1);
    t->len += l;
    return 0;
}

/* Epoch e's order: Fisher–Yates over the previous epoch's, one Philox
 * block per draw. */
static void shuffle(size_t *perm, size_t n, uint64_t seed, int epoch)
{
    for (size_t i = n - 1; n && i > 0; i -= 1) {
        uint32_t w[4];
        yf__philox(seed, YF__STREAM_SHUFFLE, (uint64_t)epoch, (uint32_t)i, w);
        size_t j = (size_t)((((uint64_t)w[0] << 32) | w[1]) % (i + 1));
        size_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

/* Writes head and body to dir/name whole, through a temporary file. */
static int write_whole(const char *dir, const char *name, const char *head, const char *body,
                       yf_error *err)
{
    char path[1400], tmp[1500];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return yf__fail(err, YF_EIO, "cannot write %s: %s", tmp, strerror(errno));
    fputs(head, f);
    fputs(body, f);
    if (fflush(f) | ferror(f) | fclose(f) || rename(tmp, path)) {
        int e = errno;
        remove(tmp);
        return yf__fail(err, YF_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

/* metrics.csv of a resumed run: the checkpoint's rows, each with its
 * timings from the old metrics.csv when that holds the same row (else
 * empty timings). Rows after the checkpoint's epoch go: they are run again. */
static int restore_metrics(const char *dir, const char *head, const char *rows, yf_error *err)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    char *old = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        FILE *mem = open_memstream(&old, &len);
        char buf[4096];
        size_t k;
        while (mem && (k = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, k, mem);
        if (mem)
            fclose(mem);
        fclose(f);
    }
    text body = {0};
    int rc = text_add(&body, "", err);
    for (const char *r = rows; *r && !rc;) {
        const char *end = strchr(r, '\n');
        size_t n = end ? (size_t)(end - r) : strlen(r);
        char line[4096];
        snprintf(line, sizeof line, "%.*s,,\n", (int)(n < 4000 ? n : 4000), r);
        for (const char *o = old; o && *o;) { /* the same row, with its timings */
            const char *oend = strchr(o, '\n');
            size_t on = oend ? (size_t)(oend - o) : strlen(o);
            if (on > n && on < 4000 && !memcmp(o, r, n) && o[n] == ',') {
                snprintf(line, sizeof line, "%.*s\n", (int)on, o);
                break;
            }
            o += on + (oend != NULL);
        }
        rc = text_add(&body, line, err);
        r += n + (end != NULL);
    }
    free(old);
    if (!rc)
        rc = write_whole(dir, "metrics.csv", head, body.text, err);
    free(body.text);
    return rc;
}

/* steps.csv of a resumed run: the rows up to the checkpoint's step (the
 * later ones are run again). */
static int trim_steps(const char *dir, uint64_t step, yf_error *err)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/steps.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0; /* none yet: it starts with a header */
    text keep = {0};
    char line[512];
    int rc = 0;
    bool first = true;
    while (!rc && fgets(line, sizeof line, f)) {
        if (first || strtoull(line, NULL, 10) <= step)
            rc = text_add(&keep, line, err);
        first = false;
    }
    fclose(f);
    if (!rc)
        rc = write_whole(dir, "steps.csv", keep.text ? keep.text : "", "", err);
    free(keep.text);
    return rc;
}

/* metrics.csv's header, and the column early stopping watches (-1:
 * none): the loss, its terms and the metrics on the validation split. */
static int columns(const yf_model *m, text *head, int *stop_col, yf_error *err)
{
    const yf_spec *s = m->spec;
    char line[200];
    *stop_col = -1;
    int rc = text_add(head, "epoch,train_loss,valid_loss", err);
    for (int t = 0; t < s->n_losses && !rc; t++) {
        char name[64];
        yf__term_name(s, t, name);
        snprintf(line, sizeof line, ",valid_%s", name);
        rc = text_add(head, line, err);
        if (s->stop.on && !strcmp(s->stop.metric + 6, name))
            *stop_col = 1 + t;
    }
    for (int i = 0; i < m->eval.n_metric && !rc; i++) {
        snprintf(line, sizeof line, ",valid_%s", m->eval.metric[i].name);
        rc = text_add(head, line, err);
        if (s->stop.on && !strcmp(s->stop.metric + 6, m->eval.metric[i].name))
            *stop_col = 1 + s->n_losses + i;
    }
    if (s->stop.on && !strcmp(s->stop.metric, "valid_loss"))
        *stop_col = 0;
    if (!rc)
        rc = text_add(head, ",learning_rate,seconds,examples_per_s\n", err);
    return rc;
}

/* Which of two records of progress is further on. */
static bool later(const yf__progress *a, const yf__progress *b)
{
    return a->epoch > b->epoch || (a->epoch == b->epoch && a->position > b->position);
}

/* Where a resumed run continues from: the checkpoint, or the state saved
 * on an interrupt when it is further on (with early stopping the
 * checkpoint is the best epoch's, so an interrupt saves beside it). *from
 * is NULL when there is nothing to resume: start from the beginning. */
static int resume_point(const char *ckpt, const char *paused, yf__progress *pr,
                        const char **from, yf_error *err)
{
    struct stat st;
    *from = NULL;
    if (stat(ckpt, &st) == 0) {
        if (yf__checkpoint_progress(ckpt, pr, err))
            return err->code;
        *from = ckpt;
    }
    yf__progress p2;
    yf_error ignored = {0}; /* a damaged interrupt save: the checkpoint will do */
    if (stat(paused, &st) == 0 && !yf__checkpoint_progress(paused, &p2, &ignored)) {
        if (!*from || later(&p2, pr)) {
            free(pr->metrics);
            *pr = p2;
            *from = paused;
        } else {
            free(p2.metrics);
        }
    }
    return 0;
}

/* The run folder being written. With overwrite, a folder holding an
 * earlier run is replaced only once the new run's first checkpoint is
 * safe: until then the new run is staged beside it (DIR.yaflow-new). */
typedef struct {
    const char *final;
    char dir[1200], ckpt[1300], paused[1300];
    bool staged;
} folder;

static void folder_at(folder *f, const char *dir)
{
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/checkpoint.safetensors", dir);
    snprintf(f->paused, sizeof f->paused, "%s/interrupted.safetensors", dir);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Once a staged run's checkpoint is safe, it and the earlier run swap
 * places in one atomic step; then the earlier run goes. Open files (the
 * metrics, the log) follow their folder. */
static int unstage(folder *f, yf_error *err)
{
    if (!f->staged)
        return 0;
    char staging[1200];
    snprintf(staging, sizeof staging, "%s", f->dir);
    if (renameat2(AT_FDCWD, staging, AT_FDCWD, f->final, RENAME_EXCHANGE) != 0)
        return yf__fail(err, YF_EIO, "cannot put the new run %s in the place of %s: %s",
                        staging, f->final, strerror(errno));
    f->staged = false;
    folder_at(f, f->final);
    remove_tree(staging); /* now the earlier run */
    return 0;
}

/* CRC-32 of the training examples as this rank will read them: the image
 * and label files and the rows chosen from them. */
static uint64_t data_hash(const yf_dataset *d)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32_z(c, d->train_x.data, d->train_x.count * d->train_x.item);
    c = crc32_z(c, d->train_y.data, d->train_y.count * d->train_y.item);
    if (d->train_rows)
        c = crc32_z(c, (const Bytef *)d->train_rows, d->n_train * sizeof *d->train_rows);
    return (uint64_t)c << 32 | (uint32_t)d->n_train;
}

/* Several ranks (MPI) train one model: they must read the same config and
 * the same data (else each would compute its share of another batch, and
 * the sums would mean nothing though the parameters stayed equal), and a
 * model whose training reads whole batches at once cannot be cut into
 * shares. */
static int dist_start(yf_model *m, const yf_dataset *d, yf_error *err)
{
    bool same_config = yf__dist_same(yf__config_hash(m->spec));
    bool same_data = yf__dist_same(data_hash(d));
    if (!same_config || !same_data) {
        yf__dist_error_shared(true); /* every rank finds it */
        return yf__fail(err, YF_EUSAGE, "the %d ranks do not train alike: their %s differ "
                        "(every rank must read the same model file with the same overrides, "
                        "and the same data files: rank 0 reads %s)", yf_dist_size(),
                        !same_config ? "configs" : "training data",
                        m->spec->data_dir[0] ? m->spec->data_dir : "its data");
    }
    const yf__graph *g = &m->train;
    for (int i = 0; i < g->n; i++) {
        const yf__gnode *n = &g->node[i];
        if (n->op == YF_OP_KL_SPARSITY || n->op == YF_OP_BATCH_NORM) {
            const char *what = n->op == YF_OP_KL_SPARSITY
                                   ? "kl_sparsity's mean activation over the batch"
                                   : "batch_norm's batch statistics";
            yf__dist_error_shared(true); /* every rank finds it */
            return yf__fail_at(err, n->at, YF_EUSAGE, "'%s': %s would be taken over each "
                               "rank's share of the batch, not the whole batch, so training "
                               "on %d ranks is refused (train it in one process)", n->name,
                               what, yf_dist_size());
        }
    }
    m->follower = yf_dist_rank() != yf_dist_size() - 1;
    return yf__exchange_new(m, err);
}

/* What rank 0 read or set up, for the other ranks: where training stands
 * and the whole optimizer state. */
typedef struct {
    int from, finished, epoch, best_epoch;
    size_t position;
    double loss_sum, best;
    uint64_t step;
} dist_state;

static void dist_share(yf_model *m, yf__progress *pr, bool *from)
{
    dist_state st = {*from, pr->finished, pr->epoch, pr->best_epoch, pr->position,
                     pr->loss_sum, pr->best, m->step};
    yf__dist_bcast(&st, sizeof st);
    *from = st.from, pr->finished = st.finished, pr->epoch = st.epoch;
    pr->best_epoch = st.best_epoch, pr->position = st.position, pr->loss_sum = st.loss_sum;
    pr->best = st.best, m->step = st.step;
    if (yf__exchange_shared(m)) { /* one copy, which rank 0 has set */
        yf__exchange_sync(m);
        return;
    }
    size_t bytes = m->param_floats * sizeof(float);
    yf__dist_bcast(m->param_block, bytes);
    yf__dist_bcast(m->m_block, bytes);
    yf__dist_bcast(m->v_block, bytes);
}


static int train_run(yf_model *m, yf_dataset *d, const yf_train_opts *opts, yf_error *err);

/* (every rank that returns 0 has come to the end with the others: the
 * shared memory of the ranks may then be given back, which they do
 * together) */
int yf_train(yf_model *m, yf_dataset *d, const yf_train_opts *opts, yf_error *err)
{
    int rc = train_run(m, d, opts, err);
    if (!rc)
        yf__exchange_end(m);
    return rc;
}

static int train_run(yf_model *m, yf_dataset *d, const yf_train_opts *opts, yf_error *err)
{
    YF__FTZ_SCOPE;
    const yf_spec *s = m->spec;
    folder fo = {.final = opts->out_dir};
    folder_at(&fo, opts->out_dir);
    char stale[1400];
    yf__progress pr = {.best = NAN};
    const char *from = NULL;
    /* with several ranks, rank 0 (the lead) alone reads and writes the
     * run folder and reports; the others follow what it shares */
    int ranks = yf_dist_size(), rank = yf_dist_rank();
    bool lead = rank == 0;
    yf__dist_error_shared(false);
    if (ranks > 1 && dist_start(m, d, err))
        return err->code;
    if (opts->resume && lead && resume_point(fo.ckpt, fo.paused, &pr, &from, err))
        return err->code;
    if (from && (pr.epoch > s->epochs || pr.position > yf_dataset_count(d, YF_SPLIT_TRAIN) ||
                 pr.best_epoch > pr.epoch)) {
        /* a record this run cannot have written (another data set, or
         * damaged): refused rather than replayed */
        yf__fail_file(err, YF_ECKPT, from, "its record of where training stood (epoch %d, "
                      "%zu examples into the next) does not fit this run (%d epochs of %zu "
                      "examples)", pr.epoch, pr.position, s->epochs,
                      yf_dataset_count(d, YF_SPLIT_TRAIN));
        free(pr.metrics);
        return err->code;
    }
    if (ranks > 1) { /* a finished run: every rank has nothing to do */
        int done = from && pr.finished;
        yf__dist_bcast(&done, sizeof done);
        if (done && !lead)
            return 0;
    }
    if (from && pr.finished) {
        /* killed after its last checkpoint, before the rows that describe
         * it: the records are restored from the checkpoint */
        text head = {0};
        int stop_col, rc = columns(m, &head, &stop_col, err);
        if (!rc)
            rc = restore_metrics(fo.dir, head.text, pr.metrics ? pr.metrics : "", err);
        if (!rc && s->log_every)
            rc = trim_steps(fo.dir, pr.step, err);
        free(head.text);
        free(pr.metrics);
        if (!rc && opts->echo)
            fprintf(opts->echo, "%s finished its training (%d of %d epoch%s); nothing to do\n",
                    fo.dir, pr.epoch, s->epochs, YF__S(s->epochs));
        return rc;
    }
    if (from && yf__checkpoint_load(m, from, 1, true, err)) {
        free(pr.metrics);
        return err->code;
    }
    if (!from && lead) {
        /* parameters copied from another run come first: a missing or
         * mismatched source fails before anything in the folder changes */
        if (yf_model_init_from(m, err))
            return err->code;
        struct stat st;
        if (opts->overwrite && stat(fo.final, &st) == 0 && S_ISDIR(st.st_mode)) {
            char staging[1200];
            snprintf(staging, sizeof staging, "%s.yaflow-new", fo.final);
            remove_tree(staging); /* a staging left by a run killed early */
            folder_at(&fo, staging);
            fo.staged = true;
        }
        if (mkdirs(fo.dir, err))
            return err->code;
        /* A checkpoint left by an earlier run in this folder must not pass
         * for this run's (with the new config.yaml) if this one fails early. */
        for (int i = 0; i < 2; i++) {
            const char *old = i ? fo.paused : fo.ckpt;
            if (remove(old) != 0 && errno != ENOENT)
                return yf__fail(err, YF_EIO, "cannot replace %s: %s", old, strerror(errno));
        }
        FILE *cfg = open_in(fo.dir, "config.yaml", "w", err);
        if (!cfg)
            return err->code;
        yf_spec_write(s, cfg);
        if (fflush(cfg) | ferror(cfg) | fclose(cfg))
            return yf__fail(err, YF_EIO, "cannot write %s/config.yaml: %s", fo.dir, strerror(errno));
    }
    if (ranks > 1) {
        bool resumed = from != NULL;
        dist_share(m, &pr, &resumed);
        if (resumed && !from)
            from = "rank 0's checkpoint";
    }
    if (from && m->step > 0) {
        /* the rate of the last step taken, which the epoch's row reports
         * even when the checkpoint ends the epoch (no step left in it) */
        double per_epoch = ceil((double)yf_dataset_count(d, YF_SPLIT_TRAIN) / s->batch_size);
        m->lr = yf__schedule_lr(s, (double)(m->step - 1) / per_epoch);
    }
    for (int i = 0; i < 2 && lead; i++) { /* writes that were killed half-way */
        snprintf(stale, sizeof stale, "%s.tmp", i ? fo.paused : fo.ckpt);
        remove(stale);
    }
    int n_cols = 1 + s->n_losses + m->eval.n_metric, stop_col;
    text head = {0}, rows = {.text = pr.metrics, .len = pr.metrics ? strlen(pr.metrics) : 0,
                             .cap = pr.metrics ? strlen(pr.metrics) + 1 : 0};
    pr.metrics = NULL;
    char line[4096];
    int rc = columns(m, &head, &stop_col, err);
    /* a resumed run's metrics.csv is the checkpoint's rows: a kill between
     * a checkpoint and its row loses neither, and rows of epochs after the
     * checkpoint (to be run again) go */
    if (!rc && from && lead)
        rc = restore_metrics(fo.dir, head.text, rows.text ? rows.text : "", err);
    FILE *csv = rc ? NULL : lead ? open_in(fo.dir, "metrics.csv", from ? "a" : "w", err)
                                 : quiet_file(err);
    FILE *log = !csv ? NULL : lead ? open_in(fo.dir, "log.txt", from ? "a" : "w", err)
                                   : quiet_file(err);
    if (!csv || !log) {
        if (csv)
            fclose(csv);
        free(head.text);
        free(rows.text);
        return err->code;
    }
    if (!from)
        fputs(head.text, csv);
    free(head.text);
    fflush(csv);
    yf_runtime_info info;
    yf_runtime_info_get(&info);
    if (from)
        fprintf(log, "resumed from %s: %d epoch%s done, %zu examples into epoch %d, step %llu\n",
                from, pr.epoch, YF__S(pr.epoch), pr.position, pr.epoch + 1, (unsigned long long)m->step);
    fprintf(log, "yaflow: model %s, %zu parameter%s, %d thread%s, BLIS %s kernels (%s)\n",
            s->name, yf_model_param_count(m), YF__S(yf_model_param_count(m)), m->threads,
            YF__S(m->threads), info.blis_arch, info.arch_source);
    fprintf(log, "data: %s, %zu train, %zu valid, %zu test examples\n", s->source,
            d->n_train, d->n_valid, d->test_x.count);
    if (ranks > 1)
        fprintf(log, "data parallel: %d ranks (%s), each a share of every global batch of %d; "
                "%s\n", ranks, yf_dist_library() ? yf_dist_library() : "MPI", s->batch_size,
                yf__exchange_shared(m) ? "one machine: parameters and moments shared, each "
                "rank sums and updates its shard" : yf__exchange_shm_refused(m)
                ? "gradients summed with MPI_Allreduce (MPI gave no shared memory for the "
                  "parameters)" : "gradients summed with MPI_Allreduce");
    for (int i = 0; i < s->n_init_src && !from; i++)
        fprintf(log, "init: layers from %s\n", s->init_src[i].from);
    for (int i = 0; i < m->n_warn; i++)
        fprintf(log, "%s\n", m->warn[i].text);
    fflush(log);
    if (from && opts->echo)
        fprintf(opts->echo, "resuming %s at epoch %d (%zu examples into it), step %llu\n", fo.dir,
                pr.epoch + 1, pr.position, (unsigned long long)m->step);

    /* train.log_every: one steps.csv row every N steps (a resumed run
     * keeps the rows up to its checkpoint's step) */
    FILE *steps = NULL;
    if (s->log_every) {
        if (from && lead && trim_steps(fo.dir, m->step, err)) {
            fclose(csv);
            fclose(log);
            free(rows.text);
            return err->code;
        }
        steps = lead ? open_in(fo.dir, "steps.csv", from ? "a" : "w", err) : quiet_file(err);
        if (!steps) {
            fclose(csv);
            fclose(log);
            free(rows.text);
            return err->code;
        }
        if (!from)
            fputs("step,epoch,examples,loss,learning_rate\n", steps);
        fflush(steps);
    }
    yf__graph *g = &m->train;
    if (opts->profile && !g->prof_seconds)
        g->prof_seconds = yf__calloc(g->n, sizeof *g->prof_seconds);
    size_t n = d->n_train;
    size_t *perm = yf__malloc(n * sizeof *perm + 1);
    if (!perm || (opts->profile && !g->prof_seconds)) {
        free(perm);
        if (steps)
            fclose(steps);
        fclose(csv);
        fclose(log);
        free(rows.text);
        return yf__fail(err, YF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (int e = 1; e <= pr.epoch; e++) /* the order each epoch so far left */
        shuffle(perm, n, s->seed, e);
    if (s->epochs == 0 && lead) /* the initial parameters, so that the run can be evaluated */
        rc = yf__checkpoint_save(m, fo.ckpt, &(yf__progress){.best = NAN, .finished = true}, err) ||
             unstage(&fo, err) ? err->code : 0;
    double best = pr.best;
    int best_epoch = pr.best_epoch, epoch = pr.epoch + 1;
    tuner tune = {.on = opts->adapt_threads};
    tuner_start(&tune, m);
    for (; epoch <= s->epochs && !rc; epoch++) {
        shuffle(perm, n, s->seed, epoch);
        size_t start = epoch == pr.epoch + 1 ? pr.position : 0;
        double t0 = now(), last_draw = 0, loss_sum = start ? pr.loss_sum : 0;
        size_t seen = start;
        for (size_t b = start; b < n; b += s->batch_size) {
            int rows_n = (int)(n - b < (size_t)s->batch_size ? n - b : (size_t)s->batch_size);
            int n_next = b + rows_n < n ? (int)(n - b - rows_n < (size_t)rows_n ? n - b - rows_n
                                                                              : (size_t)rows_n)
                                        : 0;
            /* this rank's share of the global batch: rows lo .. hi of it */
            int lo = (int)((long)rows_n * rank / ranks), hi = (int)((long)rows_n * (rank + 1) / ranks);
            int next_lo = (int)((long)n_next * rank / ranks);
            int next_hi = (int)((long)n_next * (rank + 1) / ranks);
            int agreed = 0; /* several ranks: whether any was asked to stop */
            double loss;
            if ((rc = train_step(m, d, perm + b + lo, hi - lo, lo, rows_n,
                                 n_next ? perm + b + rows_n + next_lo : NULL, next_hi - next_lo,
                                 opts->stop, &agreed, &loss, err)))
                break;
            tuner_step(&tune, m, rows_n);
            loss_sum += loss * rows_n;
            seen += rows_n;
            if (yf__step_hook)
                yf__step_hook(m);
            if (steps && m->step % (uint64_t)s->log_every == 0) {
                fprintf(steps, "%llu,%d,%zu,%.6g,%.6g\n", (unsigned long long)m->step, epoch,
                        seen, loss, m->lr);
                fflush(steps);
            }
            if (ranks > 1 ? agreed : opts->stop && *opts->stop) {
                /* the step is done (on every rank): save it and stop */
                yf__progress here = {.epoch = epoch - 1, .position = seen, .loss_sum = loss_sum,
                                     .best = best, .best_epoch = best_epoch,
                                     .metrics = rows.text};
                char to[1300];
                snprintf(to, sizeof to, "%s", stop_col >= 0 ? fo.paused : fo.ckpt);
                if (opts->echo && opts->bar)
                    fprintf(opts->echo, "\r\033[K");
                if (!lead || (!(rc = yf__checkpoint_save(m, to, &here, err)) &&
                              !(rc = unstage(&fo, err)))) {
                    yf__dist_error_shared(true);
                    rc = yf__fail(err, YF_EINTERRUPTED, "interrupted at step %llu (epoch %d, "
                                  "%zu of %zu examples); saved in %s: continue with `yaflow "
                                  "train --resume %s`", (unsigned long long)m->step, epoch,
                                  seen, n, stop_col >= 0 ? fo.paused : fo.ckpt, fo.dir);
                }
                break;
            }
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
        bool better = false;
        if (stop_col >= 0) { /* early stopping: the checkpoint is the best epoch's */
            double v = vm[stop_col].value;
            better = isnan(best) || (s->stop.maximize ? v > best + s->stop.min_delta
                                                      : v < best - s->stop.min_delta);
            if (better)
                best = v, best_epoch = epoch;
        }
        size_t l = snprintf(line, sizeof line, "%d,%.6g", epoch, loss_sum / seen);
        for (int c = 0; c < n_cols && l < sizeof line; c++)
            l += snprintf(line + l, sizeof line - l, ",%.6g", nv ? vm[c].value : NAN);
        if (l < sizeof line)
            l += snprintf(line + l, sizeof line - l, ",%.6g\n", m->lr);
        /* the checkpoint records the row without its timings, so that two
         * equal runs write equal checkpoints */
        if ((rc = text_add(&rows, line, err)))
            break;
        if (l < sizeof line)
            snprintf(line + l - 1, sizeof line - l + 1, ",%.3f,%.1f\n", secs,
                     (seen - start) / secs);
        /* the checkpoint first, then the records that describe it: a run
         * killed between the two has metrics one epoch behind its
         * checkpoint (and --resume restores the row from the checkpoint) */
        yf__progress done = {.epoch = epoch, .best = best, .best_epoch = best_epoch,
                             .finished = epoch == s->epochs && stop_col < 0,
                             .metrics = rows.text};
        if (ranks > 1 && !yf__dist_same(yf__fnv1a(0, m->param_block, m->param_floats * sizeof(float)))) {
            /* a rank whose sums or steps went another way: its work and the
             * checkpoint it would give are not this run's */
            yf__dist_error_shared(true);
            rc = yf__fail(err, YF_ERUN, "after epoch %d the parameters differ between the %d "
                          "ranks (a checksum of them is compared every epoch); the checkpoint "
                          "of epoch %d is kept%s", epoch, ranks, epoch - 1,
                          lead ? "" : " (rank 0's)");
            break;
        }
        if (lead && (stop_col < 0 || better) &&
            (rc = yf__checkpoint_save(m, fo.ckpt, &done, err) || unstage(&fo, err) ? err->code : 0))
            break;
        fputs(line, csv);
        fflush(csv);
        char plain[4096];
        l = snprintf(plain, sizeof plain, "epoch %d/%d train_loss=%.6g", epoch, s->epochs,
                     loss_sum / seen);
        for (int c = 0; c < nv && l < sizeof plain; c++)
            if (c == 0 || c > s->n_losses || c == stop_col)
                l += snprintf(plain + l, sizeof plain - l, " valid_%s=%.6g", vm[c].name,
                              vm[c].value);
        if (l < sizeof plain)
            l += snprintf(plain + l, sizeof plain - l, " seconds=%.2f examples_per_s=%.0f", secs,
                          (seen - start) / secs);
        if (tune.on && m->threads > 1 && tune.ex_total > 0 && l < sizeof plain)
            snprintf(plain + l, sizeof plain - l, " threads=%.2f", tune.ex_threads / tune.ex_total);
        tune.ex_threads = tune.ex_total = 0;
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
                     "early stopping: %s has not improved for %d epoch%s; the checkpoint is "
                     "epoch %d's (%s=%.6g)", s->stop.metric, s->stop.patience,
                     YF__S(s->stop.patience), best_epoch,
                     s->stop.metric, best);
            fprintf(log, "%s\n", plain);
            fflush(log);
            if (opts->echo)
                fprintf(opts->echo, "%s\n", plain);
            break;
        }
    }
    free(perm);
    /* with early stopping the model ends as the checkpoint is, the best
     * epoch's, and the checkpoint is marked finished */
    if (!rc && lead && stop_col >= 0 && best_epoch > 0) {
        rc = yf_checkpoint_load(m, fo.ckpt, 1, err);
        yf__progress done = {.epoch = epoch > s->epochs ? s->epochs : epoch, .best = best,
                             .best_epoch = best_epoch, .finished = true, .metrics = rows.text};
        if (!rc)
            rc = yf__checkpoint_save(m, fo.ckpt, &done, err);
    }
    if (!rc && lead)
        remove(fo.paused);
    if (!rc && lead && opts->profile)
        rc = write_profile(m, fo.dir, err);
    fclose(csv);
    if (steps)
        fclose(steps);
    free(rows.text);
    if (rc)
        fprintf(log, "%s: %s\n", rc == YF_EINTERRUPTED ? "stopped" : "error",
                yf_error_format(err));
    fclose(log);
    if (fo.staged) /* it failed before its first checkpoint: the earlier run stays */
        remove_tree(fo.dir);
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
    return yf_run_open_data(r, dir, threads, flags, NULL, err);
}

int yf_run_open_data(yf_run *r, const char *dir, int threads, int flags, const char *data_dir,
                     yf_error *err)
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
    if (r->spec && data_dir && yf_spec_set_data_dir(r->spec, data_dir, err)) {
        yf_run_close(r);
        return err->code;
    }
    if (r->spec && (flags & YF_RUN_MEANS))
        yf_spec_sample_means(r->spec);
    r->model = r->spec ? yf_model_new(r->spec, threads, err) : NULL;
    bool ok = r->model && !yf__checkpoint_load(r->model, ckpt, 0, true, err);
    r->epoch = -1;
    yf__progress pr;
    yf_error older = {0}; /* a checkpoint from before progress records */
    int prc = ok ? yf__checkpoint_progress(ckpt, &pr, &older) : 0;
    if (ok && !prc) {
        r->epoch = pr.epoch, r->best_epoch = pr.best_epoch, r->finished = pr.finished;
        r->position = pr.position, r->step = pr.step;
        free(pr.metrics);
    }
    if (ok && prc && prc != YF_ECKPT) { /* only the missing records are forgiven */
        *err = older;
        ok = false;
    }
    if (ok && (flags & YF_RUN_DATA))
        ok = (r->data = yf_dataset_load(r->spec, err)) != NULL;
    if (!ok) {
        yf_run_close(r);
        return err->code ? err->code : YF_ERUN;
    }
    return 0;
}
