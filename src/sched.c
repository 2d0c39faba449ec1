/* The scheduler: runs a planned graph level by level. Nodes of one level are
 * independent; when none dominates the level's work they run side by side,
 * one OpenMP worker each with single-threaded kernels, otherwise one after
 * the other with every thread inside the kernel. Either way the number of
 * busy threads never exceeds the model's thread count. */
#include "internal.h"

#include <math.h>
#include <omp.h>

const char *const yf__op_names[YF_OP_COUNT] = {
#define YF_OP(e, name, fwd, bwd) [YF_OP_##e] = #name,
#include "ops/ops.def"
#undef YF_OP
};

const yf__fwd_fn yf__op_fwd[YF_OP_COUNT] = {
#define YF_OP(e, name, fwd, bwd) [YF_OP_##e] = fwd,
#include "ops/ops.def"
#undef YF_OP
};

const yf__bwd_fn yf__op_bwd[YF_OP_COUNT] = {
#define YF_OP(e, name, fwd, bwd) [YF_OP_##e] = bwd,
#include "ops/ops.def"
#undef YF_OP
};

void yf__run(yf_model *m, yf__graph *g, int rows) { yf__run_at(m, g, rows, m->step); }

/* Whether n floats are all finite: x·0 is 0 for a finite x and NaN
 * otherwise, so the sum of them cannot overflow. 64 lanes: four vector
 * accumulators, so that the adds do not wait on each other (one chain of
 * 16 lanes ran at the add's latency, 1.4% of a training step). */
/* (the clones are static: clang, which builds fuzz/, makes no ifunc for a
 * cloned function called from another file) */
YF__CLONES static bool finite_vec(const float *x, size_t n)
{
    float acc[64] = {0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 64; j++)
            acc[j] += x[i + j] * 0.0f;
    for (; i < n; i++)
        acc[0] += x[i] * 0.0f;
    float sum = 0;
    for (int j = 0; j < 64; j++)
        sum += acc[j];
    return sum == 0;
}

bool yf__finite(const float *x, size_t n) { return finite_vec(x, n); }

/* Whether node id is the last writer of a parameter's gradient. */
static bool checks_grad(const yf__graph *g, int id)
{
    const yf__gnode *n = &g->node[id];
    return n->grad_of >= 0 && g->param_writer && g->param_writer[n->grad_of] == id;
}

/* Runs node id. A parameter's gradient is checked for NaN and infinity
 * right after the last node writing it (with several ranks, the sum is
 * checked once it has arrived: yf_train_step). */
static void run_node(yf_model *m, yf__graph *g, int id, const yf__exec *ex)
{
    yf__gnode *n = &g->node[id];
    double t0 = g->prof_seconds ? omp_get_wtime() : 0;
    yf__op_fwd[n->op](n, ex);
    if (checks_grad(g, id) && !m->xchg && !yf__finite(n->buf, m->params[n->grad_of].size))
        __atomic_store_n(&g->grads_bad, true, __ATOMIC_RELAXED);
    if (g->prof_seconds) /* a node is one worker's: no race */
        g->prof_seconds[id] += omp_get_wtime() - t0;
}

static yf__exec exec_of(const yf_model *m, yf__graph *g, int rows, uint64_t step)
{
    return (yf__exec){.rows = rows, .threads = m->active, .team = m->active,
                      .seed = m->spec->seed, .step = step, .g = g, .row0 = m->row0,
                      .batch_rows = m->batch_rows ? m->batch_rows : rows,
                      .shared_terms = !m->follower};
}

static void run_levels(yf_model *m, yf__graph *g, int rows, uint64_t step,
                       const yf__aside *aside)
{
    yf__exec ex = exec_of(m, g, rows, step);
    bool exchange = g->training && m->xchg;
    g->grads_bad = false;
    if (g->prof_seconds)
        g->prof_rows += rows;
    for (int l = 1; l < g->n_levels; l++) {
        int a = g->level_start[l], b = g->level_start[l + 1];
        if (m->active == 1 || !g->side_by_side[l]) {
            for (int k = a; k < b; k++)
                run_node(m, g, g->order[k], &ex);
        } else {
            int nt = m->active < b - a ? m->active : b - a;
            /* the aside is the last task handed out: the first worker
             * done with the level's nodes takes it */
            int end = aside && l == g->n_levels - 1 ? b + 1 : b;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
            for (int k = a; k < end; k++) {
                if (k == b) {
                    aside->fn(aside->arg);
                    continue;
                }
                yf__exec one = ex;
                one.threads = 1;
                run_node(m, g, g->order[k], &one);
            }
            if (end > b)
                aside = NULL;
        }
        if (!exchange)
            continue;
        /* the gradients this level finished go to the other ranks now (on
         * this thread: MPI is called from one), and the sums on their way
         * move on while the next levels compute */
        for (int k = a; k < b; k++)
            if (checks_grad(g, g->order[k]))
                yf__exchange_done(m, g->node[g->order[k]].grad_of);
        yf__exchange_progress(m);
    }
    if (aside)
        aside->fn(aside->arg);
}

void yf__run_at(yf_model *m, yf__graph *g, int rows, uint64_t step)
{
    run_levels(m, g, rows, step, NULL);
}

void yf__run_beside(yf_model *m, yf__graph *g, int rows, const yf__aside *aside)
{
    run_levels(m, g, rows, m->step, aside);
}

int yf__find_nonfinite(yf_model *m, yf__graph *g, int rows, uint64_t step)
{
    yf__exec ex = exec_of(m, g, rows, step);
    for (int l = 1; l < g->n_levels; l++)
        for (int k = g->level_start[l]; k < g->level_start[l + 1]; k++) {
            yf__gnode *n = &g->node[g->order[k]];
            yf__op_fwd[n->op](n, &ex);
            size_t count = n->per_row ? (size_t)rows * n->size : n->size;
            for (size_t i = 0; n->buf && i < count; i++)
                if (!isfinite(n->buf[i]))
                    return g->order[k];
        }
    return -1;
}
