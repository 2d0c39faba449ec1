/* Batch normalisation over the channels of (R, C, H, W) or the features of
 * (R, F): y = γ (x − μ) / √(σ² + ε) + β. In training μ and σ² are the
 * batch's (the biased variance), kept in the state node (μ, 1/√(σ² + ε)) for
 * the backward, and the running statistics move towards them (the unbiased
 * variance, as PyTorch does); in evaluation the running statistics are
 * used, so every example is normalised on its own. */
#include "../internal.h"

#include <math.h>

/* channels C and values per channel and example S of node x */
static void bn_dims(const yf__gnode *x, int *C, int *S)
{
    *C = x->dims[0];
    *S = (int)(x->size / *C);
}

/* in = (x, γ, β, running mean, running var); y like x; state (2C) */
void yf__batch_norm_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]];
    const float *gamma = ex->g->node[n->in[1]].buf, *beta = ex->g->node[n->in[2]].buf;
    float *rmean = ex->g->node[n->in[3]].buf, *rvar = ex->g->node[n->in[4]].buf;
    int C, S, R = ex->rows;
    bn_dims(x, &C, &S);
    float *st = n->use_mean ? NULL : ex->g->node[n->state].buf;
#pragma omp parallel for schedule(static) num_threads(ex->threads) if (ex->threads > 1 && C >= 4)
    for (int c = 0; c < C; c++) {
        double mean, var;
        if (n->use_mean) {
            mean = rmean[c], var = rvar[c];
        } else {
            double s = 0, s2 = 0;
            for (int r = 0; r < R; r++) {
                const float *xc = x->buf + (size_t)r * x->size + (size_t)c * S;
                for (int p = 0; p < S; p++)
                    s += xc[p], s2 += (double)xc[p] * xc[p];
            }
            double N = (double)R * S;
            mean = s / N;
            var = s2 / N - mean * mean;
            var = var > 0 ? var : 0;
            st[c] = (float)mean;
            st[C + c] = (float)(1.0 / sqrt(var + n->epsilon));
            /* one value per channel (a last batch of one example on
             * features) has no variance to learn from: the running
             * statistics stay as they are */
            if (N > 1) {
                double unbiased = var * N / (N - 1);
                rmean[c] = (float)((1 - n->momentum) * rmean[c] + n->momentum * mean);
                rvar[c] = (float)((1 - n->momentum) * rvar[c] + n->momentum * unbiased);
            }
        }
        float k = (float)(gamma[c] / sqrt(var + n->epsilon)), b = (float)(beta[c] - k * mean);
        for (int r = 0; r < R; r++) {
            const float *xc = x->buf + (size_t)r * x->size + (size_t)c * S;
            float *yc = n->buf + (size_t)r * n->size + (size_t)c * S;
            for (int p = 0; p < S; p++)
                yc[p] = k * xc[p] + b;
        }
    }
}

/* Σ dy and Σ dy·x̂ of channel c over the batch */
static void sums(const float *dy, const float *x, size_t size, int R, int c, int S, float mean,
                 float inv, double *sdy, double *sdyx)
{
    double a = 0, b = 0;
    for (int r = 0; r < R; r++) {
        const float *d = dy + (size_t)r * size + (size_t)c * S;
        const float *xc = x + (size_t)r * size + (size_t)c * S;
        for (int p = 0; p < S; p++)
            a += d[p], b += d[p] * (xc[p] - mean) * inv;
    }
    *sdy = a, *sdyx = b;
}

/* in = (dy, x, γ, state): dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy·x̂)) */
void yf__batch_norm_dx_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]], *x = &ex->g->node[n->in[1]];
    const float *gamma = ex->g->node[n->in[2]].buf, *st = ex->g->node[n->in[3]].buf;
    int C, S, R = ex->rows;
    bn_dims(x, &C, &S);
    double N = (double)R * S;
#pragma omp parallel for schedule(static) num_threads(ex->threads) if (ex->threads > 1 && C >= 4)
    for (int c = 0; c < C; c++) {
        float mean = st[c], inv = st[C + c];
        double sdy, sdyx;
        sums(dy->buf, x->buf, x->size, R, c, S, mean, inv, &sdy, &sdyx);
        float k = gamma[c] * inv, a = (float)(sdy / N), b = (float)(sdyx / N);
        for (int r = 0; r < R; r++) {
            const float *d = dy->buf + (size_t)r * x->size + (size_t)c * S;
            const float *xc = x->buf + (size_t)r * x->size + (size_t)c * S;
            float *o = n->buf + (size_t)r * x->size + (size_t)c * S;
            for (int p = 0; p < S; p++)
                o[p] = k * (d[p] - a - (xc[p] - mean) * inv * b);
        }
    }
}

/* in = (dy, x, state): dγ (+)= Σ dy·x̂ */
void yf__batch_norm_dgamma_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]], *x = &ex->g->node[n->in[1]];
    const float *st = ex->g->node[n->in[2]].buf;
    int C, S;
    bn_dims(x, &C, &S);
    for (int c = 0; c < C; c++) {
        double sdy, sdyx;
        sums(dy->buf, x->buf, x->size, ex->rows, c, S, st[c], st[C + c], &sdy, &sdyx);
        n->buf[c] = (n->accumulate ? n->buf[c] : 0.0f) + (float)sdyx;
    }
}

/* in = (dy): dβ (+)= Σ dy, per channel */
void yf__batch_norm_dbeta_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]];
    int C = (int)n->size, S = (int)(dy->size / C);
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int r = 0; r < ex->rows; r++) {
            const float *d = dy->buf + (size_t)r * dy->size + (size_t)c * S;
            for (int p = 0; p < S; p++)
                s += d[p];
        }
        n->buf[c] = (n->accumulate ? n->buf[c] : 0.0f) + (float)s;
    }
}

int yf__batch_norm_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    yf__gnode n = g->node[id]; /* copy: adding nodes may move the array */
    if (g->node[n.in[0]].needs_grad) {
        int d = yf__grad_node(g, YF_OP_BATCH_NORM_DX, id, 0,
                              (int[]){dy, n.in[0], n.in[1], n.state}, 4, err);
        if (d < 0 || yf__grad_accum(g, n.in[0], d, err))
            return err->code;
    }
    for (int k = 1; k <= 2; k++) {
        if (!g->node[n.in[k]].needs_grad)
            continue;
        int d = k == 1 ? yf__grad_node(g, YF_OP_BATCH_NORM_DGAMMA, id, 1,
                                       (int[]){dy, n.in[0], n.state}, 3, err)
                       : yf__grad_node(g, YF_OP_BATCH_NORM_DBETA, id, 2, &dy, 1, err);
        if (d < 0)
            return d;
        g->node[d].per_row = false;
        yf__param_grad_writer(g, d, g->node[n.in[k]].param);
    }
    return 0;
}
