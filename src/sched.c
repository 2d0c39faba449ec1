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

void yf__run_at(yf_model *m, yf__graph *g, int rows, uint64_t step)
{
    yf__exec ex = {.rows = rows, .threads = m->active, .seed = m->spec->seed,
                   .step = step, .g = g};
    if (g->prof_seconds)
        g->prof_rows += rows;
    for (int l = 1; l < g->n_levels; l++) {
        int a = g->level_start[l], b = g->level_start[l + 1];
        if (m->active == 1 || !g->side_by_side[l]) {
            for (int k = a; k < b; k++) {
                yf__gnode *n = &g->node[g->order[k]];
                double t0 = g->prof_seconds ? omp_get_wtime() : 0;
                yf__op_fwd[n->op](n, &ex);
                if (g->prof_seconds)
                    g->prof_seconds[g->order[k]] += omp_get_wtime() - t0;
            }
            continue;
        }
        int nt = m->active < b - a ? m->active : b - a;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int k = a; k < b; k++) {
            yf__exec one = ex;
            one.threads = 1;
            yf__gnode *n = &g->node[g->order[k]];
            double t0 = g->prof_seconds ? omp_get_wtime() : 0;
            yf__op_fwd[n->op](n, &one);
            if (g->prof_seconds) /* each node is one worker's: no race */
                g->prof_seconds[g->order[k]] += omp_get_wtime() - t0;
        }
    }
}

int yf__find_nonfinite(yf_model *m, yf__graph *g, int rows, uint64_t step)
{
    yf__exec ex = {.rows = rows, .threads = m->active, .seed = m->spec->seed,
                   .step = step, .g = g};
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
