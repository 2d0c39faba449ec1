/* Dense layers: y = x·W + b, or y = x·Wᵀ + b with a weight shared from
 * another layer (tied weights). GEMMs go to BLIS with strides, so no
 * transposed copies are ever made. */
#include "../internal.h"

#include <string.h>

/* x is (R,K); W is (K,N), or (N,K) when trans; b is (N); y is (R,N) */
void yf__dense_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]], *w = &ex->g->node[n->in[1]];
    int R = ex->rows, K = (int)x->size, N = (int)n->size;
    float beta = 0.0f;
    if (n->n_in == 3) {
        const float *b = ex->g->node[n->in[2]].buf;
        for (int r = 0; r < R; r++)
            memcpy(n->buf + (size_t)r * N, b, N * sizeof(float));
        beta = 1.0f;
    }
    yf__sgemm(false, n->trans, R, N, K, 1.0f, x->buf, K, w->buf, n->trans ? K : N,
              beta, n->buf, N, ex->threads);
}

/* dy is (R,N); W is (K,N), or (N,K) when trans; dx is (R,K) */
void yf__dense_dx_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]], *w = &ex->g->node[n->in[1]];
    int R = ex->rows, N = (int)dy->size, K = (int)n->size;
    yf__sgemm(false, !n->trans, R, K, N, 1.0f, dy->buf, N, w->buf, n->trans ? K : N,
              0.0f, n->buf, K, ex->threads);
}

/* x is (R,K); dy is (R,N); dW (K,N) += xᵀ·dy, or dW (N,K) += dyᵀ·x when trans */
void yf__dense_dw_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]], *dy = &ex->g->node[n->in[1]];
    int R = ex->rows, K = (int)x->size, N = (int)dy->size;
    float beta = n->accumulate ? 1.0f : 0.0f;
    if (n->trans)
        yf__sgemm(true, false, N, K, R, 1.0f, dy->buf, N, x->buf, K, beta, n->buf, K,
                  ex->threads);
    else
        yf__sgemm(true, false, K, N, R, 1.0f, x->buf, K, dy->buf, N, beta, n->buf, N,
                  ex->threads);
}

/* dy is (R,N); db is (N) += column sums of dy */
void yf__dense_db_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *dy = ex->g->node[n->in[0]].buf;
    int R = ex->rows, N = (int)n->size;
    float *db = n->buf;
    if (!n->accumulate)
        memset(db, 0, N * sizeof(float));
    for (int r = 0; r < R; r++) {
        const float *row = dy + (size_t)r * N;
        for (int j = 0; j < N; j++)
            db[j] += row[j];
    }
}

int yf__dense_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    yf__gnode n = g->node[id]; /* copy: adding nodes may move the array */
    if (g->node[n.in[0]].needs_grad) {
        int dx = yf__grad_node(g, YF_OP_DENSE_DX, id, 0, (int[]){dy, n.in[1]}, 2, err);
        if (dx < 0)
            return dx;
        int rc = yf__grad_accum(g, n.in[0], dx, err);
        if (rc)
            return rc;
    }
    for (int k = 1; k < n.n_in; k++) {
        if (!g->node[n.in[k]].needs_grad)
            continue;
        int dw = yf__graph_add(g, k == 1 ? YF_OP_DENSE_DW : YF_OP_DENSE_DB, n.name, n.at, err);
        if (dw < 0)
            return dw;
        yf__gnode *d = &g->node[dw];
        if (k == 1)
            d->n_in = 2, d->in[0] = n.in[0], d->in[1] = dy;
        else
            d->n_in = 1, d->in[0] = dy;
        d->trans = n.trans;
        d->size = g->node[n.in[k]].size;
        yf__param_grad_writer(g, dw, g->node[n.in[k]].param);
    }
    return 0;
}
