/* Loss terms. Each loss node outputs its unweighted value (one float); the
 * total minimised is Σ weight·value, so each gradient carries its weight.
 * reduce: mean averages over every element; sum adds over the features of
 * an example and averages over examples. */
#include "../internal.h"

#include <math.h>

static double norm(const yf__gnode *n, int rows, size_t size)
{
    return n->reduce_sum ? (double)rows : (double)rows * (double)size;
}

static int loss_grad(yf__graph *g, int id, yf__op op, yf_error *err)
{
    yf__gnode src = g->node[id];
    if (!g->node[src.in[0]].needs_grad)
        return 0;
    int d = yf__graph_add(g, op, src.name, src.at, err);
    if (d < 0)
        return d;
    yf__gnode *n = &g->node[d];
    n->n_in = 2, n->in[0] = src.in[0], n->in[1] = src.in[1];
    n->weight = src.weight, n->reduce_sum = src.reduce_sum;
    n->size = g->node[src.in[0]].size, n->per_row = true;
    return yf__grad_accum(g, src.in[0], d, err);
}

/* Σ (a − t)², in float blocks of 16 lanes (vectorised) added in double. */
YF__CLONES static double sum_sq_diff(const float *a, const float *t, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i += 1024) {
        size_t end = i + 1024 < n ? i + 1024 : n;
        float lane[16] = {0};
        size_t j = i;
        for (; j + 16 <= end; j += 16)
            for (int k = 0; k < 16; k++) {
                float d = a[j + k] - t[j + k];
                lane[k] += d * d;
            }
        for (; j < end; j++)
            lane[0] += (a[j] - t[j]) * (a[j] - t[j]);
        for (int k = 0; k < 16; k++)
            s += lane[k];
    }
    return s;
}

/* pred, target are (R, size); out = mean (pred − target)² */
void yf__mse_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *p = &ex->g->node[n->in[0]];
    const float *a = p->buf, *t = ex->g->node[n->in[1]].buf;
    size_t count = (size_t)ex->rows * p->size;
    n->buf[0] = (float)(sum_sq_diff(a, t, count) / norm(n, ex->rows, p->size));
}

/* dpred = weight · 2 (pred − target) / norm */
void yf__mse_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *a = ex->g->node[n->in[0]].buf, *t = ex->g->node[n->in[1]].buf;
    size_t count = (size_t)ex->rows * n->size;
    float k = (float)(2.0 * n->weight / norm(n, ex->rows, n->size));
    for (size_t i = 0; i < count; i++)
        n->buf[i] = k * (a[i] - t[i]);
}

int yf__mse_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return loss_grad(g, id, YF_OP_MSE_GRAD, err);
}

/* logits z, target t are (R, size): max(z,0) − z·t + log(1 + e^−|z|) */
void yf__sigmoid_ce_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *p = &ex->g->node[n->in[0]];
    const float *z = p->buf, *t = ex->g->node[n->in[1]].buf;
    size_t count = (size_t)ex->rows * p->size;
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += (z[i] > 0 ? z[i] : 0) - z[i] * t[i] + log1pf(expf(-fabsf(z[i])));
    n->buf[0] = (float)(s / norm(n, ex->rows, p->size));
}

/* dz = weight · (σ(z) − t) / norm */
void yf__sigmoid_ce_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *z = ex->g->node[n->in[0]].buf, *t = ex->g->node[n->in[1]].buf;
    size_t count = (size_t)ex->rows * n->size;
    float k = (float)(n->weight / norm(n, ex->rows, n->size));
    yf__act_forward(YF_ACT_SIGMOID, 0, z, n->buf, 1, count);
    for (size_t i = 0; i < count; i++)
        n->buf[i] = k * (n->buf[i] - t[i]);
}

int yf__sigmoid_ce_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return loss_grad(g, id, YF_OP_SIGMOID_CE_GRAD, err);
}

/* W is a parameter of any shape: out = Σ W² */
void yf__l2_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *w = &ex->g->node[n->in[0]];
    double s = 0.0;
    for (size_t i = 0; i < w->size; i++)
        s += (double)w->buf[i] * w->buf[i];
    n->buf[0] = (float)s;
}

/* dW (+)= 2 · weight · W */
void yf__l2_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *w = ex->g->node[n->in[0]].buf;
    float k = 2.0f * n->weight;
    if (n->accumulate)
        for (size_t i = 0; i < n->size; i++)
            n->buf[i] += k * w[i];
    else
        for (size_t i = 0; i < n->size; i++)
            n->buf[i] = k * w[i];
}

int yf__l2_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    yf__gnode src = g->node[id];
    if (!g->node[src.in[0]].needs_grad)
        return 0;
    int d = yf__graph_add(g, YF_OP_L2_GRAD, src.name, src.at, err);
    if (d < 0)
        return d;
    yf__gnode *n = &g->node[d];
    n->n_in = 1, n->in[0] = src.in[0];
    n->weight = src.weight;
    n->size = g->node[src.in[0]].size;
    yf__param_grad_writer(g, d, g->node[src.in[0]].param);
    return 0;
}
