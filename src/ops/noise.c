/* Gaussian noise and dropout, active in training graphs only. Random numbers
 * come from (seed, node stream, step, element index), so a run is the same
 * whatever the thread count, and dropout's backward recomputes its mask
 * instead of storing it. */
#include "../internal.h"

#include <string.h>

/* x, y are (R, size): y = x + N(0, stddev²) */
void yf__gaussian_noise_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *x = ex->g->node[n->in[0]].buf;
    size_t count = (size_t)ex->rows * n->size;
    yf__rand_normal(ex->seed, (uint32_t)n->stream, ex->step, n->buf, count, 0.0f, n->stddev);
    for (size_t i = 0; i < count; i++)
        n->buf[i] += x[i];
}

int yf__gaussian_noise_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    int x = g->node[id].in[0];
    return g->node[x].needs_grad ? yf__grad_accum(g, x, dy, err) : 0;
}

YF__CLONES static void keep_scaled(const float *restrict x, float *restrict y, size_t n,
                                   float rate, float scale)
{
    for (size_t i = 0; i < n; i++)
        y[i] = y[i] >= rate ? x[i] * scale : 0.0f;
}

/* y = x ⊙ mask / (1 − rate), mask_i = [u_i ≥ rate] for u_i uniform in [0,1):
 * the uniforms are drawn into y, then replaced. */
static void dropout_apply(const yf__gnode *n, const yf__exec *ex, const float *x,
                          float *y)
{
    size_t count = (size_t)ex->rows * n->size;
    yf__rand_uniform(ex->seed, (uint32_t)n->stream, ex->step, y, count, 0.0f, 1.0f);
    keep_scaled(x, y, count, n->rate, 1.0f / (1.0f - n->rate));
}

void yf__dropout_fwd(yf__gnode *n, const yf__exec *ex)
{
    dropout_apply(n, ex, ex->g->node[n->in[0]].buf, n->buf);
}

void yf__dropout_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    dropout_apply(n, ex, ex->g->node[n->in[0]].buf, n->buf);
}

int yf__dropout_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    int x = g->node[id].in[0];
    if (!g->node[x].needs_grad)
        return 0;
    int d = yf__graph_add(g, YF_OP_DROPOUT_GRAD, g->node[id].name, g->node[id].at, err);
    if (d < 0)
        return d;
    yf__gnode *n = &g->node[d], *src = &g->node[id];
    n->n_in = 1, n->in[0] = dy;
    n->rate = src->rate, n->stream = src->stream;
    n->size = src->size, n->per_row = true;
    return yf__grad_accum(g, x, d, err);
}
