/* Memory plan and schedule: nodes are grouped into levels (a node's level is
 * one more than its inputs'), and every per-example buffer gets an offset in
 * one arena, reusing the space of buffers whose last reader ran before. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int first, last; /* levels during which the buffer is live */
    size_t off, size;
} interval;

static int by_offset(const void *a, const void *b)
{
    const interval *x = *(const interval *const *)a, *y = *(const interval *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Folding: an element-wise node that is its producer's only reader is
 * computed by the producer's kernel, row by row while the rows are in
 * cache, in the producer's buffer:
 *   dense -> activation               (yf__dense_fwd applies f in place)
 *   mse_grad -> activation_grad       (yf__mse_grad_fwd multiplies by f')
 * and, when the run has one thread, two reductions are folded where the
 * order of their sums stays the same:
 *   activation_grad or mse_grad -> dense_db   (the bias gradient's column
 *                                 sums, added as each row is made)
 *   mse -> mse_grad               (the loss, summed in the gradient's pass)
 * The arithmetic is the same as the nodes', so the results are too; passes
 * over the rows are saved, and on several threads forks and joins. A
 * producer that is kept, or read by anything else, is left alone. */
typedef struct {
    int *readers, *epi, *colsum, *sum_into;
    bool *folded;
} folds;

bool yf__plain_plan;

static void fold(const yf__graph *g, const folds *f)
{
    for (int i = 0; i < g->n; i++)
        f->epi[i] = f->colsum[i] = f->sum_into[i] = -1, f->folded[i] = false,
        f->readers[i] = 0;
    if (yf__plain_plan)
        return;
    for (int i = 0; i < g->n; i++) {
        const yf__gnode *nd = &g->node[i];
        for (int k = 0; k < nd->n_in; k++)
            f->readers[nd->in[k]]++;
        if (nd->after >= 0)
            f->readers[nd->after]++;
    }
    for (int i = 0; i < g->n; i++) {
        const yf__gnode *q = &g->node[i];
        if ((q->op != YF_OP_ACT && q->op != YF_OP_ACT_GRAD) || q->act == YF_ACT_SOFTMAX ||
            !q->per_row)
            continue;
        int src = q->op == YF_OP_ACT ? q->in[0] : q->in[1];
        const yf__gnode *p = &g->node[src];
        bool fits = q->op == YF_OP_ACT
                        ? p->op == YF_OP_DENSE
                        : p->op == YF_OP_MSE_GRAD && p->slot == 0 && p->in[0] == q->in[0];
        if (!fits || src > i || f->readers[src] != 1 || p->keep || !p->per_row ||
            p->size != q->size || f->epi[src] >= 0 || p->grad_of >= 0)
            continue;
        f->epi[src] = i;
        f->folded[i] = true;
    }
    for (int i = 0; i < g->n; i++) {
        const yf__gnode *q = &g->node[i];
        if (q->op == YF_OP_DENSE_DB && !q->accumulate) {
            int src = q->in[0]; /* dy, or the folded node holding it */
            for (int k = 0; k < i && f->folded[src]; k++)
                if (f->epi[k] == src)
                    src = k;
            const yf__gnode *p = &g->node[src];
            if ((p->op == YF_OP_ACT_GRAD || p->op == YF_OP_MSE_GRAD) && !f->folded[src] &&
                f->colsum[src] < 0 && p->per_row && p->size == q->size)
                f->colsum[src] = i, f->folded[i] = true;
        }
        if (q->op == YF_OP_MSE_GRAD && q->slot == 0)
            for (int k = 0; k < i; k++) {
                const yf__gnode *l = &g->node[k];
                if (l->op == YF_OP_MSE && l->in[0] == q->in[0] && l->in[1] == q->in[1] &&
                    l->reduce_sum == q->reduce_sum && f->readers[k] == 0 && !f->folded[k]) {
                    f->sum_into[i] = k, f->folded[k] = true;
                    break;
                }
            }
    }
}

/* The new plan is made beside the old one and replaces it only when it is
 * whole: a failure (out of memory, a graph too large for the machine)
 * leaves g running exactly as before. */
/* Pairing: the backward pass's last level holds the first layer's weight
 * gradient alone (the input wants none), so it runs with every thread inside
 * one GEMM, while earlier a parameter gradient nobody reads sits beside the
 * node the rest of the chain waits for, each on one thread: the chain's node
 * gets half the machine. So the largest such gradient whose cost the lone
 * node can balance (the side-by-side rule below) moves to the last level:
 * the chain's node then has every thread, and the two gradients, off the
 * chain, share the last level one thread each. Only a node nothing reads and
 * nothing is ordered around moves, and only later, so every input is still
 * ready; the results are the same bits (no sum changes order).
 *
 * Then the small ones: such a gradient in a level one node dominates runs
 * there on one thread after that node while the other threads wait (the
 * output layer's bias gradient after its dense_dx: 0.4% of a two-thread
 * step). It moves to the last level too when that level runs side by side,
 * where a worker done with its GEMM takes it in the gap the slower one
 * leaves. read[] is scratch, one per node. */
static void pair_last(yf__graph *g, int last, bool *read)
{
    int n = g->n;
    memset(read, 0, (size_t)n * sizeof *read);
    double lone = 0, others = 0;
    int lone_id = -1;
    for (int i = 0; i < n; i++) {
        const yf__gnode *nd = &g->node[i];
        for (int k = 0; k < nd->n_in; k++)
            read[nd->in[k]] = true;
        if (nd->after >= 0)
            read[nd->after] = read[i] = true; /* both stay where they are */
        if (nd->level == last) {
            double f = yf__node_flops(g, nd, g->max_rows);
            if (f > lone)
                others += lone, lone = f, lone_id = i;
            else
                others += f;
        }
    }
    /* a lone parameter gradient there (a balanced level is left as it is) */
    bool lone_grad = lone_id >= 0 && g->node[lone_id].grad_of >= 0 &&
                     lone >= 0.6 * (lone + others);
    int best = -1;
    double best_f = 0;
    for (int i = 0; i < n && lone_grad; i++) {
        const yf__gnode *nd = &g->node[i];
        if (nd->level >= last || nd->grad_of < 0 || read[i] || nd->op == YF_OP_STATE)
            continue;
        double f = yf__node_flops(g, nd, g->max_rows);
        double total = lone + others + f, most = f > lone ? f : lone;
        if (most < 0.6 * total && f > best_f)
            best = i, best_f = f;
    }
    double most = lone;
    if (best >= 0)
        g->node[best].level = last, others += best_f, most = best_f > lone ? best_f : lone;
    if (most >= 0.6 * (lone + others))
        return; /* the last level does not run side by side */
    for (int i = 0; i < n; i++) {
        yf__gnode *nd = &g->node[i];
        if (nd->level >= last || nd->grad_of < 0 || read[i] || nd->op == YF_OP_STATE)
            continue;
        double f = yf__node_flops(g, nd, g->max_rows), total = 0, top = 0;
        if (f > 0.02 * (lone + others))
            continue;
        for (int k = 0; k < n; k++)
            if (g->node[k].level == nd->level) {
                double fk = yf__node_flops(g, &g->node[k], g->max_rows);
                total += fk, top = fk > top ? fk : top;
            }
        if (top >= 0.6 * total && f < top)
            nd->level = last, others += f;
    }
}

int yf__plan(yf_model *m, yf__graph *g, yf_error *err)
{
    int n = g->n;
    int max_level = 0;
    bool *read = yf__malloc((n ? n : 1) * sizeof *read);
    if (!read) /* before the levels change: they stay the old plan's */
        return yf__fail(err, YF_ENOMEM, "out of memory planning the graph");
    for (int i = 0; i < n; i++) { /* levels follow from the graph alone: the old plan's too */
        yf__gnode *nd = &g->node[i];
        nd->level = 0;
        if (nd->op == YF_OP_INPUT || nd->op == YF_OP_PARAM)
            continue;
        if (nd->op == YF_OP_STATE) { /* written by its owner's kernel */
            nd->level = g->node[nd->owner].level;
            continue;
        }
        int lv = 0;
        for (int k = 0; k < nd->n_in; k++)
            lv = g->node[nd->in[k]].level > lv ? g->node[nd->in[k]].level : lv;
        if (nd->after >= 0 && g->node[nd->after].level > lv)
            lv = g->node[nd->after].level;
        nd->level = lv + 1;
        max_level = nd->level > max_level ? nd->level : max_level;
    }
    if (g->training && max_level > 0 && !yf__plain_plan)
        pair_last(g, max_level, read);
    int n_levels = max_level + 1;
    size_t n_scalars = 0;
    for (int i = 0; i < n; i++)
        if (!g->node[i].per_row && g->node[i].op != YF_OP_PARAM && g->node[i].grad_of < 0)
            n_scalars += g->node[i].size;
    int *level_start = yf__calloc(n_levels + 1, sizeof *level_start);
    int *order = yf__malloc((n ? n : 1) * sizeof *order);
    float *scalars = yf__calloc(n_scalars + YF__SLACK, sizeof *scalars);
    bool *side_by_side = yf__calloc(n_levels, sizeof *side_by_side);
    interval *iv = yf__calloc(n ? n : 1, sizeof *iv);
    interval **placed = yf__malloc((n ? n : 1) * sizeof *placed);
    interval **live = yf__malloc((n ? n : 1) * sizeof *live);
    int *fill = yf__calloc(n_levels, sizeof *fill);
    int *readers = yf__calloc(n ? n : 1, sizeof *readers);
    int *epi = yf__calloc(n ? n : 1, sizeof *epi);
    int *colsum = yf__calloc(n ? n : 1, sizeof *colsum);
    int *sum_into = yf__calloc(n ? n : 1, sizeof *sum_into);
    bool *folded = yf__calloc(n ? n : 1, sizeof *folded);
    float *arena = NULL;
    int rc = 0;
    if (!level_start || !order || !scalars || !side_by_side || !iv || !placed || !live || !fill ||
        !readers || !epi || !colsum || !sum_into || !folded) {
        rc = yf__fail(err, YF_ENOMEM, "out of memory planning the graph");
        goto done;
    }
    for (int i = 0; i < n; i++)
        level_start[g->node[i].level + 1]++;
    for (int l = 0; l < n_levels; l++)
        level_start[l + 1] += level_start[l];
    for (int i = 0; i < n; i++) {
        int l = g->node[i].level;
        order[level_start[l] + fill[l]++] = i;
    }

    fold(g, &(folds){readers, epi, colsum, sum_into, folded});

    /* A level's nodes run side by side, one worker each, when none of them
     * dominates its work; otherwise one after the other with every thread
     * in the kernel. Work is proportional to the rows, so max_rows decides.
     * A folded node's work is its producer's: a loss whose gradient's pass
     * computes it must not put that pass on one thread. */
    for (int l = 1; l < n_levels; l++) {
        double total = 0, most = 0;
        for (int k = level_start[l]; k < level_start[l + 1]; k++) {
            double f = folded[order[k]] ? 0 : yf__node_flops(g, &g->node[order[k]], g->max_rows);
            total += f;
            most = f > most ? f : most;
        }
        side_by_side[l] = level_start[l + 1] - level_start[l] > 1 && most < 0.6 * total;
        /* the largest first, so that the workers done first take the small
         * ones (a stable insertion sort: a level holds a handful) */
        for (int k = level_start[l] + 1; side_by_side[l] && k < level_start[l + 1]; k++) {
            int id = order[k], j = k;
            double f = yf__node_flops(g, &g->node[id], g->max_rows);
            for (; j > level_start[l] &&
                   yf__node_flops(g, &g->node[order[j - 1]], g->max_rows) < f; j--)
                order[j] = order[j - 1];
            order[j] = id;
        }
    }

    /* liveness; a folded node lives in its producer's buffer */
    for (int i = 0; i < n; i++)
        iv[i].first = iv[i].last = g->node[i].level;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->node[i].n_in; k++) {
            int src = g->node[i].in[k];
            if (g->node[i].level > iv[src].last)
                iv[src].last = g->node[i].level;
        }
    for (int i = 0; i < n; i++) {
        int e = epi[i];
        if (e >= 0)
            iv[i].last = g->node[e].keep ? n_levels : iv[e].last > iv[i].last ? iv[e].last
                                                                               : iv[i].last;
    }
    /* first fit among the buffers live at the same time */
    size_t top = 0, naive = 0;
    int n_placed = 0;
    for (int i = 0; i < n; i++) {
        yf__gnode *nd = &g->node[i];
        if (!nd->per_row || (folded[i] && nd->op != YF_OP_DENSE_DB && nd->op != YF_OP_MSE))
            continue;
        if (nd->keep)
            iv[i].last = n_levels;
        iv[i].size = ((size_t)g->max_rows * nd->size + 15) & ~(size_t)15;
        naive += iv[i].size;
        int n_live = 0;
        for (int j = 0; j < n_placed; j++)
            if (placed[j]->first <= iv[i].last && iv[i].first <= placed[j]->last)
                live[n_live++] = placed[j];
        qsort(live, n_live, sizeof *live, by_offset);
        size_t off = 0;
        for (int j = 0; j < n_live; j++) {
            if (live[j]->off >= off + iv[i].size)
                break;
            if (live[j]->off + live[j]->size > off)
                off = live[j]->off + live[j]->size;
        }
        iv[i].off = off;
        placed[n_placed++] = &iv[i];
        if (off + iv[i].size > top)
            top = off + iv[i].size;
    }
    double have = yf__physical_memory();
    if (have > 0 &&
        (double)top * sizeof(float) + 4.0 * m->param_floats * sizeof(float) > 0.75 * have) {
        rc = yf__fail_at(err, yf__map_get(m->spec->tree->root, "train"), YF_ESPEC,
                         "the %s graph's activations need %.1f GB for %d examples at once, "
                         "more than 3/4 of this machine's memory with the parameters; lower "
                         "train.batch_size", g->training ? "training" : "evaluation",
                         (double)top * sizeof(float) / 1e9, g->max_rows);
        goto done;
    }
    arena = yf__aligned_alloc(64, (top + YF__SLACK) * sizeof(float));
    if (!arena) {
        rc = yf__fail(err, YF_ENOMEM, "out of memory: the graph needs %zu MB",
                      top * sizeof(float) >> 20);
        goto done;
    }
    memset(arena, 0, (top + YF__SLACK) * sizeof(float));

    /* whole: the old plan goes, the new one takes its place */
    free(g->level_start), free(g->order), free(g->scalars), free(g->side_by_side);
    free(g->arena);
    g->n_levels = n_levels;
    g->level_start = level_start, g->order = order, g->side_by_side = side_by_side;
    g->scalars = scalars, g->arena = arena;
    level_start = order = NULL, side_by_side = NULL, scalars = arena = NULL;
    g->arena_floats = top;
    g->naive_floats = naive;
    size_t next_scalar = 0;
    for (int i = 0; i < n; i++) {
        yf__gnode *nd = &g->node[i];
        nd->epi = epi[i], nd->colsum = colsum[i], nd->sum_into = sum_into[i];
        nd->folded = folded[i];
        if (nd->per_row)
            nd->offset = iv[i].off;
        if (epi[i] >= 0)
            iv[epi[i]].off = iv[i].off; /* the folded node comes later */
        if (nd->op == YF_OP_PARAM)
            nd->buf = m->param_block + m->params[nd->param].offset;
        else if (nd->grad_of >= 0)
            nd->buf = m->grad_block + m->params[nd->grad_of].offset;
        else if (nd->per_row)
            nd->buf = g->arena + nd->offset;
        else {
            nd->buf = g->scalars + next_scalar;
            next_scalar += nd->size;
        }
    }
done:
    free(level_start), free(order), free(scalars), free(side_by_side), free(arena);
    free(read), free(iv), free(placed), free(live), free(fill), free(readers), free(epi),
        free(colsum), free(sum_into), free(folded);
    return rc;
}

int yf__plan_keep(yf_model *m, yf__graph *g, int id, yf_error *err)
{
    if (g->node[id].keep)
        return 0;
    g->node[id].keep = true;
    int rc = yf__plan(m, g, err);
    if (rc) /* the old plan stands, and it did not keep the node */
        g->node[id].keep = false;
    return rc;
}
