/* Dense layers: y = x·W + b, or y = x·Wᵀ + b with a weight shared from
 * another layer (tied weights). GEMMs go to BLIS with strides, so no
 * transposed copies are ever made. */
#include "../internal.h"

#include <string.h>

/* x is (R,K); W is (K,N), or (N,K) when trans; b is (N); y is (R,N). With an
 * activation folded in (n->epi, set by the plan), it is applied in place,
 * rows at a time after the GEMM: one pass fewer over the output, and one
 * buffer for both. */
void yf__dense_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *a = n->epi >= 0 ? &ex->g->node[n->epi] : NULL;
    size_t N = n->size;
    if (n->n_in == 3) { /* the bias rows go in first, then C = b + x·W */
        const float *b = ex->g->node[n->in[2]].buf;
        for (int r = 0; r < ex->rows; r++)
            memcpy(n->buf + (size_t)r * n->size, b, n->size * sizeof(float));
    }
    yf__dense_sgemm(n, ex);
    if (!a)
        return;
    YF__FOR_ROW_CHUNKS(ex, ex->rows, r0, nr,
                       yf__act_forward(a->act, a->alpha, n->buf + r0 * N, n->buf + r0 * N,
                                       nr, N));
}

/* The one BLIS call of a dense, dense_dx or dense_dw node, on its buffers:
 *   dense:    x (R,K) · W (K,N), or x · Wᵀ with W (N,K) when trans, into y
 *             (R,N), added to what y holds when there is a bias;
 *   dense_dx: dy (R,N) · Wᵀ into dx (R,K) (dy · W when trans);
 *   dense_dw: xᵀ · dy into dW (K,N), or dyᵀ · x into dW (N,K) when trans,
 *             added to what it holds when another node wrote it first. */
void yf__dense_sgemm(const yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *a = &ex->g->node[n->in[0]], *b = &ex->g->node[n->in[1]];
    int R = ex->rows;
    switch (n->op) {
    case YF_OP_DENSE: {
        int K = (int)a->size, N = (int)n->size;
        yf__sgemm(false, n->trans, R, N, K, 1.0f, a->buf, K, b->buf, n->trans ? K : N,
                  n->n_in == 3 ? 1.0f : 0.0f, n->buf, N, ex->threads);
        break;
    }
    case YF_OP_DENSE_DX: {
        int N = (int)a->size, K = (int)n->size;
        yf__sgemm(false, !n->trans, R, K, N, 1.0f, a->buf, N, b->buf, n->trans ? K : N, 0.0f,
                  n->buf, K, ex->threads);
        break;
    }
    case YF_OP_DENSE_DW: {
        int K = (int)a->size, N = (int)b->size;
        float beta = n->accumulate ? 1.0f : 0.0f;
        if (n->trans)
            yf__sgemm(true, false, N, K, R, 1.0f, b->buf, N, a->buf, K, beta, n->buf, K,
                      ex->threads);
        else
            yf__sgemm(true, false, K, N, R, 1.0f, a->buf, K, b->buf, N, beta, n->buf, N,
                      ex->threads);
        break;
    }
    default:
        break;
    }
}

void yf__dense_dx_fwd(yf__gnode *n, const yf__exec *ex) { yf__dense_sgemm(n, ex); }

void yf__dense_dw_fwd(yf__gnode *n, const yf__exec *ex) { yf__dense_sgemm(n, ex); }

/* dy is (R,N); db is (N) += column sums of dy. On one thread the node
 * that makes dy usually adds them itself, row by row (n->folded). */
YF__CLONES static void colsum_vec(float *db, const float *dy, size_t R, size_t C)
{
    for (size_t r = 0; r < R; r++) {
        const float *row = dy + r * C;
        for (size_t j = 0; j < C; j++)
            db[j] += row[j];
    }
}

/* (a plain function around static clones: see yf__finite) */
void yf__colsum(float *db, const float *dy, size_t R, size_t C) { colsum_vec(db, dy, R, C); }

void yf__dense_db_fwd(yf__gnode *n, const yf__exec *ex)
{
    if (n->folded && ex->team == 1)
        return;
    if (!n->accumulate)
        memset(n->buf, 0, n->size * sizeof(float));
    yf__colsum(n->buf, ex->g->node[n->in[0]].buf, ex->rows, n->size);
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
