/* Pooling, reshaping and upsampling of channels-first tensors (R, C, H, W).
 * max_pool keeps the position of each window's maximum (the first one on
 * ties) in a state node for its backward; avg_pool divides by the number of
 * input pixels the window covers (padding not counted); global_avg_pool is
 * avg_pool over the whole image. */
#include "../internal.h"

#include <float.h>
#include <string.h>

/* The rows of R split among the threads a node may use. */
#define FOR_ROWS(ex, r)                                                      \
    _Pragma("omp parallel for schedule(static) num_threads((ex)->threads) if ((ex)->threads > 1 && (ex)->rows >= 8)") \
    for (int r = 0; r < (ex)->rows; r++)

/* Output size (Ho, Wo) of pooling with window w over input x whose output
 * node is y: y's own height and width, or 1 × 1 for global pooling (y of
 * shape (C)). */
static void out_hw(const yf__gnode *y, int *Ho, int *Wo)
{
    *Ho = y->ndim == 3 ? y->dims[1] : 1;
    *Wo = y->ndim == 3 ? y->dims[2] : 1;
}

/* a, b: the winner of the pair (x[2i], x[2i+1]) for i < n and its offset
 * (0 or 1): the first of equal values wins, a NaN wins (the first NaN) */
YF__CLONES static void pair_max(const float *restrict x, float *restrict m,
                                int32_t *restrict k, int n)
{
    for (int i = 0; i < n; i++) {
        float a = x[2 * i], b = x[2 * i + 1];
        /* | and & rather than || and &&: no branches on the data */
        bool t = ((b > a) | (b != b)) & (a == a);
        m[i] = t ? b : a;
        k[i] = t;
    }
}

/* The larger of two rows of pair maxima m0, m1 (offsets k0, k1), the
 * upper one on ties, to y, and its index in the plane (row 2·oh) to arg */
YF__CLONES static void row_max(const float *restrict m0, const float *restrict m1,
                               const int32_t *restrict k0, const int32_t *restrict k1,
                               float *restrict y, int32_t *restrict arg, int Wo, int W, int oh)
{
    for (int ow = 0; ow < Wo; ow++) {
        float a = m0[ow], b = m1[ow];
        bool t = ((b > a) | (b != b)) & (a == a);
        y[ow] = t ? b : a;
        if (arg)
            arg[ow] = 2 * oh * W + 2 * ow + (t ? W + k1[ow] : k0[ow]);
    }
}

/* Pair maxima held at once: planes up to this many floats go in one
 * pass, larger ones two rows at a time (rows up to POOL_TMP / 2 wide). */
#define POOL_TMP 4096

/* The common 2x2 window with stride 2 over an even-sized plane (H, W):
 * the maxima of horizontal pairs (a long loop that vectorises), then the
 * larger of each two rows of them, the upper one on ties. This is the
 * first maximum in row order, as PyTorch picks. */
static void max_pool_2x2_plane(const float *x, float *y, int32_t *arg, int H, int W)
{
    int Ho = H / 2, Wo = W / 2;
    float m[POOL_TMP / 2];
    int32_t k[POOL_TMP / 2];
    bool whole = H * W <= POOL_TMP;
    if (whole)
        pair_max(x, m, k, H * Wo);
    for (int oh = 0; oh < Ho; oh++) {
        size_t at = whole ? (size_t)2 * oh * Wo : 0;
        if (!whole)
            pair_max(x + (size_t)2 * oh * W, m, k, 2 * Wo);
        row_max(m + at, m + at + Wo, k + at, k + at + Wo, y + (size_t)oh * Wo,
                arg ? arg + (size_t)oh * Wo : NULL, Wo, W, oh);
    }
}

/* x (R, C, H, W), H and W even; y and argmax (R, C, H/2, W/2). */
static void max_pool_2x2(const float *x, float *y, int32_t *arg, int R, int C, int H, int W,
                         int threads)
{
    long planes = (long)R * C;
    int HoWo = (H / 2) * (W / 2);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && planes >= 64)
    for (long p = 0; p < planes; p++)
        max_pool_2x2_plane(x + p * H * W, y + p * HoWo, arg ? arg + p * HoWo : NULL, H, W);
}

/* x is (R, C, H, W); y is (R, C, Ho, Wo); argmax (state, int32, in
 * training) is (R, C, Ho, Wo): the index h·W + w of each maximum */
void yf__max_pool_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]];
    const yf__window *w = &n->win;
    int C = x->dims[0], H = x->dims[1], W = x->dims[2], Ho, Wo;
    out_hw(n, &Ho, &Wo);
    int32_t *arg = n->state >= 0 ? (int32_t *)ex->g->node[n->state].buf : NULL;
    if (w->kh == 2 && w->kw == 2 && w->sh == 2 && w->sw == 2 && w->ph == 0 && w->pw == 0 &&
        H % 2 == 0 && W % 2 == 0 && W <= POOL_TMP / 2) {
        max_pool_2x2(x->buf, n->buf, arg, ex->rows, C, H, W, ex->threads);
        return;
    }
    FOR_ROWS(ex, r)
    for (int c = 0; c < C; c++) {
        const float *xc = x->buf + (size_t)r * x->size + (size_t)c * H * W;
        float *yc = n->buf + (size_t)r * n->size + (size_t)c * Ho * Wo;
        int32_t *ac = arg ? arg + (size_t)r * n->size + (size_t)c * Ho * Wo : NULL;
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                float best = -FLT_MAX;
                int at = -1;
                for (int i = 0; i < w->kh; i++) {
                    int h = oh * w->sh - w->ph + i;
                    if (h < 0 || h >= H)
                        continue;
                    for (int j = 0; j < w->kw; j++) {
                        int v = ow * w->sw - w->pw + j;
                        if (v >= 0 && v < W &&
                            (at < 0 || ((xc[h * W + v] > best || xc[h * W + v] != xc[h * W + v]) &&
                                        best == best)))
                            best = xc[h * W + v], at = h * W + v;
                    }
                }
                yc[oh * Wo + ow] = best;
                if (ac)
                    ac[oh * Wo + ow] = at;
            }
    }
}

/* dy · f'(p) for the n values of a plane into out, when the pooling's
 * input was activation f (fused: p the pooled values), else dy itself */
static const float *activated_grad(const yf__gnode *n, const float *dy, const float *p, int n_,
                                   float *out)
{
    if (n->act == YF_ACT_LINEAR)
        return dy;
    yf__act_backward(n->act, n->alpha, p, dy, out, 1, n_);
    return out;
}

/* Values of a plane's output gradient taken at once */
#define GRAD_CHUNK 1024

/* The 2x2, stride 2 case on even sizes: every input pixel is in one window,
 * so dx is written in one pass, dy at the maximum and 0 beside it. */
static void max_pool_2x2_grad(const yf__gnode *n, const float *dy, const int32_t *arg,
                              const float *pooled, float *dx, long planes, int H, int W,
                              int threads)
{
    int Ho = H / 2, Wo = W / 2;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && planes >= 64)
    for (long p = 0; p < planes; p++) {
        const int32_t *a = arg + p * Ho * Wo;
        float *o = dx + p * H * W, tmp[GRAD_CHUNK];
        int rows = GRAD_CHUNK / Wo; /* output rows at a time (Wo ≤ GRAD_CHUNK) */
        for (int oh0 = 0; oh0 < Ho; oh0 += rows) {
            int nr = Ho - oh0 < rows ? Ho - oh0 : rows;
            size_t q0 = (size_t)oh0 * Wo;
            const float *d = activated_grad(n, dy + p * Ho * Wo + q0,
                                            pooled ? pooled + p * Ho * Wo + q0 : NULL, nr * Wo, tmp);
            for (int oh = 0; oh < nr; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    int i0 = 2 * (oh0 + oh) * W + 2 * ow, at = a[q0 + oh * Wo + ow];
                    float v = d[oh * Wo + ow];
                    o[i0] = at == i0 ? v : 0.0f;
                    o[i0 + 1] = at == i0 + 1 ? v : 0.0f;
                    o[i0 + W] = at == i0 + W ? v : 0.0f;
                    o[i0 + W + 1] = at == i0 + W + 1 ? v : 0.0f;
                }
        }
    }
}

/* in = (dy (R, C, Ho, Wo), argmax) and, when an activation is fused
 * (act), the pooling's output; dx (R, C, H, W): dy at each maximum */
void yf__max_pool_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]];
    const int32_t *arg = (const int32_t *)ex->g->node[n->in[1]].buf;
    const float *pooled = n->n_in > 2 ? ex->g->node[n->in[2]].buf : NULL;
    int C = n->dims[0], HW = n->dims[1] * n->dims[2], O = (int)(dy->size / C);
    const yf__window *w = &n->win;
    if (w->kh == 2 && w->kw == 2 && w->sh == 2 && w->sw == 2 && w->ph == 0 && w->pw == 0 &&
        n->dims[1] % 2 == 0 && n->dims[2] % 2 == 0 && n->dims[2] / 2 <= GRAD_CHUNK) {
        max_pool_2x2_grad(n, dy->buf, arg, pooled, n->buf, (long)ex->rows * C, n->dims[1],
                          n->dims[2], ex->threads);
        return;
    }
    FOR_ROWS(ex, r) {
        float *dx = n->buf + (size_t)r * n->size, tmp[GRAD_CHUNK];
        memset(dx, 0, n->size * sizeof(float));
        for (int c = 0; c < C; c++)
            for (int o0 = 0; o0 < O; o0 += GRAD_CHUNK) {
                size_t at = (size_t)r * dy->size + (size_t)c * O + o0;
                int no = O - o0 < GRAD_CHUNK ? O - o0 : GRAD_CHUNK;
                const float *d = activated_grad(n, dy->buf + at, pooled ? pooled + at : NULL, no,
                                                tmp);
                const int32_t *a = arg + at;
                for (int o = 0; o < no; o++)
                    if (a[o] >= 0)
                        dx[(size_t)c * HW + a[o]] += d[o];
            }
    }
}

int yf__max_pool_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return yf__input_grad(g, id, YF_OP_MAX_POOL_GRAD, (int[]){dy, g->node[id].state}, 2, err);
}

/* The input pixels window (oh, ow) covers: [h0, h1) × [w0, w1). */
static int window(const yf__window *w, int H, int W, int oh, int ow, int *h0, int *h1, int *w0,
                  int *w1)
{
    *h0 = oh * w->sh - w->ph, *h1 = *h0 + w->kh;
    *w0 = ow * w->sw - w->pw, *w1 = *w0 + w->kw;
    *h0 = *h0 < 0 ? 0 : *h0, *w0 = *w0 < 0 ? 0 : *w0;
    *h1 = *h1 > H ? H : *h1, *w1 = *w1 > W ? W : *w1;
    return (*h1 - *h0) * (*w1 - *w0);
}

/* x is (R, C, H, W); y is (R, C, Ho, Wo), or (R, C) for global pooling */
void yf__avg_pool_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]];
    int C = x->dims[0], H = x->dims[1], W = x->dims[2], Ho, Wo;
    out_hw(n, &Ho, &Wo);
    FOR_ROWS(ex, r)
    for (int c = 0; c < C; c++) {
        const float *xc = x->buf + (size_t)r * x->size + (size_t)c * H * W;
        float *yc = n->buf + (size_t)r * n->size + (size_t)c * Ho * Wo;
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                int h0, h1, w0, w1;
                int cnt = window(&n->win, H, W, oh, ow, &h0, &h1, &w0, &w1);
                float s = 0.0f;
                for (int h = h0; h < h1; h++)
                    for (int v = w0; v < w1; v++)
                        s += xc[h * W + v];
                yc[oh * Wo + ow] = cnt ? s / cnt : 0.0f;
            }
    }
}

/* dy is (R, C, Ho, Wo) (shaped as the pooling's output); dx (R, C, H, W):
 * dy / count over each window */
void yf__avg_pool_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]];
    int C = n->dims[0], H = n->dims[1], W = n->dims[2], Ho, Wo;
    out_hw(dy, &Ho, &Wo);
    FOR_ROWS(ex, r) {
        float *dx = n->buf + (size_t)r * n->size;
        memset(dx, 0, n->size * sizeof(float));
        for (int c = 0; c < C; c++) {
            const float *d = dy->buf + (size_t)r * dy->size + (size_t)c * Ho * Wo;
            float *dc = dx + (size_t)c * H * W;
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    int h0, h1, w0, w1;
                    int cnt = window(&n->win, H, W, oh, ow, &h0, &h1, &w0, &w1);
                    float v = cnt ? d[oh * Wo + ow] / cnt : 0.0f;
                    for (int h = h0; h < h1; h++)
                        for (int u = w0; u < w1; u++)
                            dc[h * W + u] += v;
                }
        }
    }
}

int yf__avg_pool_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return yf__input_grad(g, id, YF_OP_AVG_POOL_GRAD, &dy, 1, err);
}

/* x and y hold the same values in another shape (flatten, reshape) */
void yf__reshape_fwd(yf__gnode *n, const yf__exec *ex)
{
    memcpy(n->buf, ex->g->node[n->in[0]].buf, (size_t)ex->rows * n->size * sizeof(float));
}

/* the gradient is dy reshaped back: a reshape node again */
int yf__reshape_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return yf__input_grad(g, id, YF_OP_RESHAPE, &dy, 1, err);
}

/* x is (R, C, H, W); y is (R, C, H·sh, W·sw): each pixel repeated */
void yf__upsample_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]];
    int C = x->dims[0], H = x->dims[1], W = x->dims[2], fh = n->win.sh, fw = n->win.sw;
    int Wo = W * fw;
    FOR_ROWS(ex, r)
    for (int c = 0; c < C; c++) {
        const float *xc = x->buf + (size_t)r * x->size + (size_t)c * H * W;
        float *yc = n->buf + (size_t)r * n->size + (size_t)c * H * fh * Wo;
        for (int h = 0; h < H * fh; h++)
            for (int v = 0; v < Wo; v++)
                yc[h * Wo + v] = xc[(h / fh) * W + v / fw];
    }
}

/* dy is (R, C, H·sh, W·sw); dx (R, C, H, W): the sum over each block */
void yf__upsample_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]];
    int C = n->dims[0], H = n->dims[1], W = n->dims[2], fh = n->win.sh, fw = n->win.sw;
    int Wo = W * fw;
    FOR_ROWS(ex, r) {
        float *dx = n->buf + (size_t)r * n->size;
        memset(dx, 0, n->size * sizeof(float));
        for (int c = 0; c < C; c++) {
            const float *d = dy->buf + (size_t)r * dy->size + (size_t)c * H * fh * Wo;
            float *dc = dx + (size_t)c * H * W;
            for (int h = 0; h < H * fh; h++)
                for (int v = 0; v < Wo; v++)
                    dc[(h / fh) * W + v / fw] += d[h * Wo + v];
        }
    }
}

int yf__upsample_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return yf__input_grad(g, id, YF_OP_UPSAMPLE_GRAD, &dy, 1, err);
}
