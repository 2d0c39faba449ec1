/* Convolutions through BLIS: the inputs of a block of examples are unfolded
 * into columns side by side (im2col: one row per input channel and kernel
 * position, one column per output pixel), and one GEMM per group multiplies
 * the filters with them. Blocks are split among the threads, each with its
 * own slice of a scratch node that the memory plan places (no allocation
 * per step); the GEMMs run single-threaded inside. The backward recomputes
 * the columns instead of keeping them. Tensors are channels first: x is
 * (R, C, H, W). */
#include "conv.h"
#include "vec.h"

#include <string.h>

typedef yf__geom geom;

geom yf__conv_geom(const yf__gnode *x, const yf__gnode *y, const yf__window *w)
{
    geom g = {x->dims[0], x->dims[1], x->dims[2], y->dims[0], y->dims[1], y->dims[2], 0,
              w->groups};
    g.K = g.C / g.G * w->kh * w->kw;
    return g;
}

/* The output columns [lo, hi) whose input column ow·s + x0 lies in [0, W). */
static void valid_cols(int x0, int s, int W, int Wo, int *lo, int *hi)
{
    *lo = x0 >= 0 ? 0 : (-x0 + s - 1) / s;
    *hi = x0 > W - 1 ? 0 : (W - 1 - x0) / s + 1;
    *hi = *hi < Wo ? *hi : Wo;
    *lo = *lo < *hi ? *lo : *hi;
}

/* x is (C, H, W); col is (C·kh·kw, Ho·Wo) with rows ld apart, zero where
 * the window is in the padding. Each row of the columns is a shifted (strided) copy of input
 * rows: the part inside the image is copied, the rest zeroed. */
static void im2col(const float *x, const geom *g, const yf__window *w, float *col, size_t ld)
{
    size_t HW = ld;
    for (int c = 0; c < g->C; c++)
        for (int i = 0; i < w->kh; i++)
            for (int j = 0; j < w->kw; j++) {
                float *row = col + (size_t)((c * w->kh + i) * w->kw + j) * HW;
                const float *xc = x + (size_t)c * g->H * g->W;
                int x0 = j * w->dw - w->pw, lo, hi;
                valid_cols(x0, w->sw, g->W, g->Wo, &lo, &hi);
                for (int oh = 0; oh < g->Ho; oh++) {
                    int h = oh * w->sh - w->ph + i * w->dh;
                    float *r = row + oh * g->Wo;
                    if (h < 0 || h >= g->H) {
                        memset(r, 0, g->Wo * sizeof(float));
                        continue;
                    }
                    const float *xr = xc + (size_t)h * g->W + x0;
                    for (int ow = 0; ow < lo; ow++)
                        r[ow] = 0.0f;
                    if (w->sw == 1)
                        memcpy(r + lo, xr + lo, (hi - lo) * sizeof(float));
                    else
                        for (int ow = lo; ow < hi; ow++)
                            r[ow] = xr[ow * w->sw];
                    for (int ow = hi; ow < g->Wo; ow++)
                        r[ow] = 0.0f;
                }
            }
}

/* y[0..n) += x[0..n) */
YF__CLONES static void add_to(float *restrict y, const float *restrict x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += x[i];
}

/* dx (C, H, W) += the columns col (C·kh·kw, Ho·Wo), rows ld apart, folded
 * back */
static void col2im_add(const float *col, const geom *g, const yf__window *w, float *dx,
                       size_t ld)
{
    size_t HW = ld;
    for (int c = 0; c < g->C; c++)
        for (int i = 0; i < w->kh; i++)
            for (int j = 0; j < w->kw; j++) {
                const float *row = col + (size_t)((c * w->kh + i) * w->kw + j) * HW;
                float *dc = dx + (size_t)c * g->H * g->W;
                int x0 = j * w->dw - w->pw, lo, hi;
                valid_cols(x0, w->sw, g->W, g->Wo, &lo, &hi);
                for (int oh = 0; oh < g->Ho; oh++) {
                    int h = oh * w->sh - w->ph + i * w->dh;
                    if (h < 0 || h >= g->H)
                        continue;
                    const float *r = row + oh * g->Wo;
                    float *dr = dc + (size_t)h * g->W + x0;
                    if (w->sw == 1)
                        add_to(dr + lo, r + lo, hi - lo);
                    else
                        for (int ow = lo; ow < hi; ow++)
                            dr[ow * w->sw] += r[ow];
                }
            }
}

static int scratch(yf__graph *g, int id, size_t per_thread, int threads, yf_error *err);

/* Examples per GEMM: BLIS is faster on wider matrices, so the columns of
 * several examples sit side by side, about 600 output pixels in all (more
 * and the columns no longer stay in cache: measured on the CNN classifier,
 * 400 to 800 were best, 3 to 10% faster than one example at a time). */
static int block_of(const geom *g)
{
    int HW = g->Ho * g->Wo, nb = 600 / HW;
    return nb < 1 ? 1 : nb > 16 ? 16 : nb;
}

/* Scratch per thread: the columns of a block, and (Co, nb·Ho·Wo) outputs
 * or output gradients. */
static size_t scratch_floats(const geom *g)
{
    size_t cols = (size_t)block_of(g) * g->Ho * g->Wo;
    return cols * ((size_t)g->K * g->G + g->Co);
}

/* Scratch per thread of a convolution node (extra: floats more for the
 * im2col path, the weight gradient's partial sums): enough for either
 * algorithm, as tests switch Winograd off after compiling. */
static size_t node_scratch(const geom *g, const yf__window *w, size_t extra)
{
    size_t cols = scratch_floats(g) + extra;
    size_t wino = yf__winograd_fits(g, w) ? yf__winograd_scratch(g) : 0;
    return cols > wino ? cols : wino;
}

/* Few input values per output pixel (K ≤ SMALL_K, as a first layer on
 * one-channel images: K = 9): BLIS runs such thin products slowly, so
 * these two loops do them, 16 pixels at a time. */
#define SMALL_K 32

/* out (Cg, ld) = W (Cg, K) · col (K, ld) */
YF__CLONES static void small_k_gemm(const float *W, const float *col, float *out, int Cg, int K,
                                    size_t ld)
{
    for (int co = 0; co < Cg; co++) {
        const float *w = W + (size_t)co * K;
        float *o = out + (size_t)co * ld;
        size_t p = 0;
        for (; p + 16 <= ld; p += 16) {
            float acc[16] = {0};
            for (int k = 0; k < K; k++)
                for (int l = 0; l < 16; l++)
                    acc[l] += w[k] * col[(size_t)k * ld + p + l];
            for (int l = 0; l < 16; l++)
                o[p + l] = acc[l];
        }
        for (; p < ld; p++) {
            float a = 0.0f;
            for (int k = 0; k < K; k++)
                a += w[k] * col[(size_t)k * ld + p];
            o[p] = a;
        }
    }
}

/* K = 9, a 3x3 filter on one channel (the first layer on grey images):
 * 16 pixels' 9 column values stay in registers while every filter uses
 * them, instead of being reloaded per filter. */
YF__CLONES static void k9_gemm(const float *W, const float *col, float *out, int Cg, size_t ld)
{
    size_t p = 0;
    for (; p + LANES <= ld; p += LANES) {
        vf c[9];
        for (int k = 0; k < 9; k++)
            c[k] = load(col + (size_t)k * ld + p);
        for (int co = 0; co < Cg; co++) {
            const float *w = W + (size_t)co * 9;
            vf acc = c[0] * w[0];
            for (int k = 1; k < 9; k++)
                acc += c[k] * w[k];
            store(out + (size_t)co * ld + p, acc);
        }
    }
    for (; p < ld; p++)
        for (int co = 0; co < Cg; co++) {
            float a = 0.0f;
            for (int k = 0; k < 9; k++)
                a += W[(size_t)co * 9 + k] * col[(size_t)k * ld + p];
            out[(size_t)co * ld + p] = a;
        }
}

/* dW (Cg, 9) += d (Cg, ld) · col (9, ld)ᵀ, two filters at a time: 18 sums
 * of 16 lanes in registers, each column vector loaded once per pair */
YF__CLONES static void k9_dw(const float *d, const float *col, float *dW, int Cg, size_t ld)
{
    for (int co = 0; co < Cg; co += 2) {
        int two = co + 1 < Cg;
        const float *d0 = d + (size_t)co * ld, *d1 = d0 + (two ? ld : 0);
        vf a0[9], a1[9];
        memset(a0, 0, sizeof a0), memset(a1, 0, sizeof a1);
        size_t p = 0;
        for (; p + LANES <= ld; p += LANES) {
            vf x0 = load(d0 + p), x1 = load(d1 + p);
            for (int k = 0; k < 9; k++) {
                vf c = load(col + (size_t)k * ld + p);
                a0[k] += x0 * c, a1[k] += x1 * c;
            }
        }
        for (int k = 0; k < 9; k++) {
            float s0 = 0.0f, s1 = 0.0f;
            for (int l = 0; l < LANES; l++)
                s0 += a0[k][l], s1 += a1[k][l];
            for (size_t q = p; q < ld; q++)
                s0 += d0[q] * col[(size_t)k * ld + q], s1 += d1[q] * col[(size_t)k * ld + q];
            dW[(size_t)co * 9 + k] += s0;
            if (two)
                dW[(size_t)(co + 1) * 9 + k] += s1;
        }
    }
}

/* dW (Cg, K) += d (Cg, ld) · col (K, ld)ᵀ: dot products in 16 lanes */
YF__CLONES static void small_k_dw(const float *d, const float *col, float *dW, int Cg, int K,
                                  size_t ld)
{
    for (int co = 0; co < Cg; co++)
        for (int k = 0; k < K; k++) {
            const float *a = d + (size_t)co * ld, *b = col + (size_t)k * ld;
            float lane[16] = {0};
            size_t p = 0;
            for (; p + 16 <= ld; p += 16)
                for (int l = 0; l < 16; l++)
                    lane[l] += a[p + l] * b[p + l];
            float s = 0.0f;
            for (; p < ld; p++)
                s += a[p] * b[p];
            for (int l = 0; l < 16; l++)
                s += lane[l];
            dW[(size_t)co * K + k] += s;
        }
}

/* x is (R, C, H, W); W is (Co, C/G, kh, kw); b is (Co); y is (R, Co, Ho, Wo).
 * Per block: columns (K·G, nb·Ho·Wo), one GEMM per group into (Co, nb·Ho·Wo),
 * then each example's part (with the bias) to its place in y. */
void yf__conv2d_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]];
    const float *W = ex->g->node[n->in[1]].buf;
    const float *b = n->n_in > 2 ? ex->g->node[n->in[2]].buf : NULL;
    geom g = yf__conv_geom(x, n, &n->win);
    int HW = g.Ho * g.Wo, Cg = g.Co / g.G, nb = block_of(&g);
    float *scratch = ex->g->node[n->state].buf;
    if (yf__winograd_ok(&g, &n->win)) {
        yf__winograd_fwd(x->buf, x->size, W, b, n->buf, n->size, &g, &n->win, scratch, ex);
        return;
    }
    size_t per = scratch_floats(&g);
    YF__FOR_BLOCKS(ex, nb, r0, cnt, t, {
        float *col = scratch + (size_t)t * per;
        size_t ld = (size_t)cnt * HW;
        float *out = col + (size_t)g.K * g.G * ld;
        for (int e = 0; e < cnt; e++)
            im2col(x->buf + (size_t)(r0 + e) * x->size, &g, &n->win, col + (size_t)e * HW, ld);
        for (int gi = 0; gi < g.G; gi++)
            if (g.K == 9)
                k9_gemm(W + (size_t)gi * Cg * g.K, col + (size_t)gi * g.K * ld,
                        out + (size_t)gi * Cg * ld, Cg, ld);
            else if (g.K <= SMALL_K)
                small_k_gemm(W + (size_t)gi * Cg * g.K, col + (size_t)gi * g.K * ld,
                             out + (size_t)gi * Cg * ld, Cg, g.K, ld);
            else
                yf__sgemm(false, false, Cg, (int)ld, g.K, 1.0f, W + (size_t)gi * Cg * g.K, g.K,
                          col + (size_t)gi * g.K * ld, (int)ld, 0.0f, out + (size_t)gi * Cg * ld,
                          (int)ld, 1);
        for (int e = 0; e < cnt; e++) {
            float *y = n->buf + (size_t)(r0 + e) * n->size;
            for (int c = 0; c < g.Co; c++) {
                const float *o = out + (size_t)c * ld + (size_t)e * HW;
                float bc = b ? b[c] : 0.0f;
                for (int p = 0; p < HW; p++)
                    y[(size_t)c * HW + p] = o[p] + bc;
            }
        }
    });
}

/* dy (R, Co, Ho, Wo) of examples r0 .. r0+cnt as (Co, cnt·Ho·Wo) in out */
static void gather_dy(const float *dy, size_t size, int r0, int cnt, int Co, int HW, float *out)
{
    size_t ld = (size_t)cnt * HW;
    for (int e = 0; e < cnt; e++)
        for (int c = 0; c < Co; c++)
            memcpy(out + (size_t)c * ld + (size_t)e * HW, dy + (size_t)(r0 + e) * size + (size_t)c * HW,
                   HW * sizeof(float));
}

/* dy is (R, Co, Ho, Wo); W is (Co, C/G, kh, kw); dx is (R, C, H, W):
 * columns Wᵀ·dy per group, folded back; the geometry is the source conv's,
 * whose input has dx's shape. A transposed convolution is this, forward,
 * with a bias b (C) as in[2]. */
void yf__conv2d_dx_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]];
    const float *W = ex->g->node[n->in[1]].buf;
    const float *bias = n->n_in > 2 ? ex->g->node[n->in[2]].buf : NULL;
    geom g = yf__conv_geom(n, dy, &n->win);
    int HW = g.Ho * g.Wo, Cg = g.Co / g.G, nb = block_of(&g), S = g.H * g.W;
    float *scratch = ex->g->node[n->state].buf;
    if (yf__winograd_ok(&g, &n->win)) {
        yf__winograd_dx(dy->buf, dy->size, W, bias, n->buf, n->size, &g, &n->win, scratch, ex);
        return;
    }
    size_t per = scratch_floats(&g);
    YF__FOR_BLOCKS(ex, nb, r0, cnt, t, {
        float *col = scratch + (size_t)t * per;
        size_t ld = (size_t)cnt * HW;
        float *d = col + (size_t)g.K * g.G * ld;
        gather_dy(dy->buf, dy->size, r0, cnt, g.Co, HW, d);
        for (int gi = 0; gi < g.G; gi++)
            yf__sgemm(true, false, g.K, (int)ld, Cg, 1.0f, W + (size_t)gi * Cg * g.K, g.K,
                      d + (size_t)gi * Cg * ld, (int)ld, 0.0f, col + (size_t)gi * g.K * ld,
                      (int)ld, 1);
        for (int e = 0; e < cnt; e++) {
            float *dx = n->buf + (size_t)(r0 + e) * n->size;
            if (bias) /* transposed convolution: start from the bias */
                for (int c = 0; c < g.C; c++)
                    for (int p = 0; p < S; p++)
                        dx[(size_t)c * S + p] = bias[c];
            else
                memset(dx, 0, n->size * sizeof(float));
            col2im_add(col + (size_t)e * HW, &g, &n->win, dx, ld);
        }
    });
}

/* x is (R, Ci, H, W); W is (Ci, Co/G, kh, kw); b is (Co); y is (R, Co, Ho,
 * Wo): the input gradient of the convolution taking y's shape to x's */
void yf__conv2d_t_fwd(yf__gnode *n, const yf__exec *ex) { yf__conv2d_dx_fwd(n, ex); }

/* x is (R, C, H, W); dy is (R, Co, Ho, Wo); dW (Co, C/G, kh, kw) (+)=
 * Σ_r dy_r · col_rᵀ per group, a block of examples per GEMM. Each thread
 * sums its blocks into its own partial (after its scratch), then the
 * partials are added. BLIS is faster on colᵀ-major partials, (K, Cg) per
 * group, computed as col · dyᵀ; small K goes through small_k_dw. */
void yf__conv2d_dw_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]], *dy = &ex->g->node[n->in[1]];
    geom g = yf__conv_geom(x, dy, &n->win);
    int HW = g.Ho * g.Wo, Cg = g.Co / g.G, nb = block_of(&g);
    size_t per = scratch_floats(&g), wsize = n->size;
    float *scratch = ex->g->node[n->state].buf;
    if (yf__winograd_ok(&g, &n->win)) {
        yf__winograd_dw(x->buf, x->size, dy->buf, dy->size, n->buf, n->accumulate, &g, &n->win,
                        scratch, ex);
        return;
    }
    /* The blocks are dealt to P chunks, P the model's thread count (not
     * the threads running now), each summed into its own partial and the
     * partials added in chunk order: the result does not depend on how
     * many threads ran, so the thread count may change between steps. */
    int nblk = (ex->rows + nb - 1) / nb, P = ex->g->threads < nblk ? ex->g->threads : nblk;
    int T = ex->threads < P ? ex->threads : P;
    bool small = g.K <= SMALL_K;
#pragma omp parallel num_threads(T) if (T > 1)
    for (int c = omp_get_thread_num(); c < P; c += omp_get_num_threads()) {
        float *col = scratch + (size_t)c * (per + wsize);
        float *part = col + per;
        memset(part, 0, wsize * sizeof(float));
        for (int blk = (int)((long)nblk * c / P); blk < (int)((long)nblk * (c + 1) / P); blk++) {
            int r0 = blk * nb, cnt = ex->rows - r0 < nb ? ex->rows - r0 : nb;
            size_t ld = (size_t)cnt * HW;
            float *d = col + (size_t)g.K * g.G * ld;
            for (int e = 0; e < cnt; e++)
                im2col(x->buf + (size_t)(r0 + e) * x->size, &g, &n->win, col + (size_t)e * HW, ld);
            gather_dy(dy->buf, dy->size, r0, cnt, g.Co, HW, d);
            for (int gi = 0; gi < g.G; gi++) {
                float *pg = part + (size_t)gi * Cg * g.K;
                if (g.K == 9)
                    k9_dw(d + (size_t)gi * Cg * ld, col + (size_t)gi * g.K * ld, pg, Cg, ld);
                else if (small)
                    small_k_dw(d + (size_t)gi * Cg * ld, col + (size_t)gi * g.K * ld, pg, Cg, g.K,
                               ld);
                else
                    yf__sgemm(false, true, g.K, Cg, (int)ld, 1.0f, col + (size_t)gi * g.K * ld,
                              (int)ld, d + (size_t)gi * Cg * ld, (int)ld, 1.0f, pg, Cg, 1);
            }
        }
    }
    if (!n->accumulate)
        memset(n->buf, 0, wsize * sizeof(float));
    for (int t = 0; t < P; t++) {
        const float *part = scratch + (size_t)t * (per + wsize) + per;
        if (small) {
            add_to(n->buf, part, (int)wsize);
            continue;
        }
        for (int gi = 0; gi < g.G; gi++) /* (K, Cg) to (Cg, K) */
            for (int k = 0; k < g.K; k++)
                for (int c = 0; c < Cg; c++)
                    n->buf[((size_t)gi * Cg + c) * g.K + k] += part[((size_t)gi * g.K + k) * Cg + c];
    }
}

/* Σ x[0..n), in 16 lanes so that it vectorises */
YF__CLONES static float plane_sum(const float *x, int n)
{
    float lane[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            lane[k] += x[i + k];
    for (; i < n; i++)
        lane[0] += x[i];
    float s = 0.0f;
    for (int k = 0; k < 16; k++)
        s += lane[k];
    return s;
}

/* dy is (R, Co, Ho, Wo); db (Co) (+)= Σ over examples and pixels */
void yf__conv2d_db_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]];
    int Co = (int)n->size, HW = (int)(dy->size / Co);
    if (!n->accumulate)
        memset(n->buf, 0, Co * sizeof(float));
    for (int r = 0; r < ex->rows; r++)
        for (int c = 0; c < Co; c++)
            n->buf[c] += plane_sum(dy->buf + (size_t)r * dy->size + (size_t)c * HW, HW);
}

/* Scratch of a conv kernel: `per_thread` floats for each of the model's
 * threads, placed by the plan. */
static int scratch(yf__graph *g, int id, size_t per_thread, int threads, yf_error *err)
{
    return yf__state_node(g, id, per_thread * (size_t)threads, false, err) < 0 ? err->code : 0;
}

int yf__conv2d_scratch(yf__graph *g, int id, int threads, yf_error *err)
{
    const yf__gnode *n = &g->node[id], *x = &g->node[n->in[0]];
    /* a transposed convolution is the convolution from its output to x */
    geom ge = n->op == YF_OP_CONV2D_T ? yf__conv_geom(n, x, &n->win) : yf__conv_geom(x, n, &n->win);
    return scratch(g, id, node_scratch(&ge, &n->win, 0), threads, err);
}

/* The gradients of conv node id (or of a transposed convolution, which
 * is the convolution from its output to its input: its input gradient is
 * that convolution run forward, its weight gradient has input and output
 * swapped); ge is the geometry of the convolution in both cases. */
static int conv_grads(yf__graph *g, int id, int dy, const geom *ge, bool transposed,
                      yf_error *err)
{
    yf__gnode n = g->node[id]; /* copy: adding nodes may move the array */
    size_t col_size = node_scratch(ge, &n.win, 0);
    if (g->node[n.in[0]].needs_grad) {
        int d = yf__grad_node(g, transposed ? YF_OP_CONV2D : YF_OP_CONV2D_DX, id, 0,
                              (int[]){dy, n.in[1]}, 2, err);
        if (d < 0 || scratch(g, d, col_size, g->threads, err) ||
            yf__grad_accum(g, n.in[0], d, err))
            return err->code;
    }
    for (int k = 1; k < n.n_in; k++) {
        if (!g->node[n.in[k]].needs_grad)
            continue;
        int conv_in = transposed ? dy : n.in[0], conv_out = transposed ? n.in[0] : dy;
        int d = k == 1 ? yf__grad_node(g, YF_OP_CONV2D_DW, id, 1, (int[]){conv_in, conv_out}, 2,
                                       err)
                       : yf__grad_node(g, YF_OP_CONV2D_DB, id, 2, &dy, 1, err);
        if (d < 0)
            return d;
        g->node[d].per_row = false;
        if (k == 1 && scratch(g, d, node_scratch(ge, &n.win, g->node[n.in[1]].size), g->threads,
                              err))
            return err->code;
        if (k == 2)
            g->node[d].state = -1;
        yf__param_grad_writer(g, d, g->node[n.in[k]].param);
    }
    return 0;
}

int yf__conv2d_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    geom ge = yf__conv_geom(&g->node[g->node[id].in[0]], &g->node[id], &g->node[id].win);
    return conv_grads(g, id, dy, &ge, false, err);
}

int yf__conv2d_t_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    geom ge = yf__conv_geom(&g->node[id], &g->node[g->node[id].in[0]], &g->node[id].win);
    return conv_grads(g, id, dy, &ge, true, err);
}
