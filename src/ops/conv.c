/* Convolutions through BLIS: each example's input is unfolded into columns
 * (im2col: one row per input channel and kernel position, one column per
 * output pixel), and one GEMM per group multiplies the filters with them.
 * Examples are split among the threads, each with its own slice of a
 * scratch node that the memory plan places (no allocation per step); the
 * GEMMs run single-threaded inside. The backward recomputes the columns
 * instead of keeping them. Tensors are channels first: x is (R, C, H, W). */
#include "../internal.h"

#include <omp.h>
#include <string.h>

/* The geometry of conv node n (or of the conv whose gradient it is):
 * input (C, H, W), output (Co, Ho, Wo), K = C/groups · kh · kw. */
typedef struct {
    int C, H, W, Co, Ho, Wo, K, G;
} geom;

static geom geom_of(const yf__gnode *x, const yf__gnode *y, const yf__window *w)
{
    geom g = {x->dims[0], x->dims[1], x->dims[2], y->dims[0], y->dims[1], y->dims[2], 0,
              w->groups};
    g.K = g.C / g.G * w->kh * w->kw;
    return g;
}

/* x is (C, H, W); col is (C·kh·kw, Ho·Wo), zero where the window is in the
 * padding */
static void im2col(const float *x, const geom *g, const yf__window *w, float *col)
{
    int HW = g->Ho * g->Wo;
    for (int c = 0; c < g->C; c++)
        for (int i = 0; i < w->kh; i++)
            for (int j = 0; j < w->kw; j++) {
                float *row = col + (size_t)((c * w->kh + i) * w->kw + j) * HW;
                const float *xc = x + (size_t)c * g->H * g->W;
                for (int oh = 0; oh < g->Ho; oh++) {
                    int h = oh * w->sh - w->ph + i * w->dh;
                    float *r = row + oh * g->Wo;
                    if (h < 0 || h >= g->H) {
                        memset(r, 0, g->Wo * sizeof(float));
                        continue;
                    }
                    const float *xr = xc + (size_t)h * g->W;
                    int x0 = j * w->dw - w->pw;
                    if (w->sw == 1 && x0 >= 0 && x0 + g->Wo <= g->W) {
                        memcpy(r, xr + x0, g->Wo * sizeof(float));
                        continue;
                    }
                    for (int ow = 0; ow < g->Wo; ow++) {
                        int v = ow * w->sw + x0;
                        r[ow] = v >= 0 && v < g->W ? xr[v] : 0.0f;
                    }
                }
            }
}

/* dx (C, H, W) += the columns col (C·kh·kw, Ho·Wo) folded back */
static void col2im_add(const float *col, const geom *g, const yf__window *w, float *dx)
{
    int HW = g->Ho * g->Wo;
    for (int c = 0; c < g->C; c++)
        for (int i = 0; i < w->kh; i++)
            for (int j = 0; j < w->kw; j++) {
                const float *row = col + (size_t)((c * w->kh + i) * w->kw + j) * HW;
                float *dc = dx + (size_t)c * g->H * g->W;
                for (int oh = 0; oh < g->Ho; oh++) {
                    int h = oh * w->sh - w->ph + i * w->dh;
                    if (h < 0 || h >= g->H)
                        continue;
                    const float *r = row + oh * g->Wo;
                    float *dr = dc + (size_t)h * g->W;
                    int x0 = j * w->dw - w->pw;
                    for (int ow = 0; ow < g->Wo; ow++) {
                        int v = ow * w->sw + x0;
                        if (v >= 0 && v < g->W)
                            dr[v] += r[ow];
                    }
                }
            }
}

static int scratch(yf__graph *g, int id, size_t per_thread, int threads, yf_error *err);

/* Threads for a loop over R examples. */
static int team(const yf__exec *ex) { return ex->threads < ex->rows ? ex->threads : ex->rows; }

/* x is (R, C, H, W); W is (Co, C/G, kh, kw); b is (Co); y is (R, Co, Ho, Wo);
 * scratch (state) holds one (K·G, Ho·Wo) column block per thread */
void yf__conv2d_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]];
    const float *W = ex->g->node[n->in[1]].buf;
    const float *b = n->n_in > 2 ? ex->g->node[n->in[2]].buf : NULL;
    geom g = geom_of(x, n, &n->win);
    int HW = g.Ho * g.Wo, Cg = g.Co / g.G;
    size_t col_size = (size_t)g.K * g.G * HW;
    float *scratch = ex->g->node[n->state].buf;
#pragma omp parallel for schedule(static) num_threads(team(ex)) if (team(ex) > 1)
    for (int r = 0; r < ex->rows; r++) {
        float *col = scratch + (size_t)omp_get_thread_num() * col_size;
        float *y = n->buf + (size_t)r * n->size;
        im2col(x->buf + (size_t)r * x->size, &g, &n->win, col);
        for (int gi = 0; gi < g.G; gi++)
            yf__sgemm(false, false, Cg, HW, g.K, 1.0f, W + (size_t)gi * Cg * g.K, g.K,
                      col + (size_t)gi * g.K * HW, HW, 0.0f, y + (size_t)gi * Cg * HW, HW, 1);
        if (b)
            for (int c = 0; c < g.Co; c++)
                for (int p = 0; p < HW; p++)
                    y[(size_t)c * HW + p] += b[c];
    }
}

/* dy is (R, Co, Ho, Wo); W is (Co, C/G, kh, kw); dx is (R, C, H, W):
 * columns Wᵀ·dy per group, folded back; the geometry is the source conv's,
 * whose input has dx's shape. A transposed convolution is this, forward,
 * with a bias b (C) as in[2]. */
void yf__conv2d_dx_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]];
    const float *W = ex->g->node[n->in[1]].buf;
    geom g = geom_of(n, dy, &n->win);
    int HW = g.Ho * g.Wo, Cg = g.Co / g.G;
    size_t col_size = (size_t)g.K * g.G * HW;
    float *scratch = ex->g->node[n->state].buf;
#pragma omp parallel for schedule(static) num_threads(team(ex)) if (team(ex) > 1)
    for (int r = 0; r < ex->rows; r++) {
        float *col = scratch + (size_t)omp_get_thread_num() * col_size;
        const float *d = dy->buf + (size_t)r * dy->size;
        for (int gi = 0; gi < g.G; gi++)
            yf__sgemm(true, false, g.K, HW, Cg, 1.0f, W + (size_t)gi * Cg * g.K, g.K,
                      d + (size_t)gi * Cg * HW, HW, 0.0f, col + (size_t)gi * g.K * HW, HW, 1);
        float *dx = n->buf + (size_t)r * n->size;
        if (n->n_in > 2) { /* transposed convolution: start from the bias */
            const float *b = ex->g->node[n->in[2]].buf;
            int S = g.H * g.W;
            for (int c = 0; c < g.C; c++)
                for (int p = 0; p < S; p++)
                    dx[(size_t)c * S + p] = b[c];
        } else {
            memset(dx, 0, n->size * sizeof(float));
        }
        col2im_add(col, &g, &n->win, dx);
    }
}

/* x is (R, Ci, H, W); W is (Ci, Co/G, kh, kw); b is (Co); y is (R, Co, Ho,
 * Wo): the input gradient of the convolution taking y's shape to x's */
void yf__conv2d_t_fwd(yf__gnode *n, const yf__exec *ex) { yf__conv2d_dx_fwd(n, ex); }

/* dx: that convolution, forward; dW: its weight gradient with the roles of
 * input and output swapped; db: sums of dy */
int yf__conv2d_t_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    yf__gnode n = g->node[id]; /* copy: adding nodes may move the array */
    int threads = g->threads;
    /* the convolution's geometry: its input is y (n), its output x */
    geom ge = geom_of(&n, &g->node[n.in[0]], &n.win);
    size_t col_size = (size_t)ge.K * ge.G * ge.Ho * ge.Wo;
    if (g->node[n.in[0]].needs_grad) {
        int d = yf__grad_node(g, YF_OP_CONV2D, id, 0, (int[]){dy, n.in[1]}, 2, err);
        if (d < 0 || scratch(g, d, col_size, threads, err) || yf__grad_accum(g, n.in[0], d, err))
            return err->code;
    }
    for (int k = 1; k < n.n_in; k++) {
        if (!g->node[n.in[k]].needs_grad)
            continue;
        int d = k == 1 ? yf__grad_node(g, YF_OP_CONV2D_DW, id, 1, (int[]){dy, n.in[0]}, 2, err)
                       : yf__grad_node(g, YF_OP_CONV2D_DB, id, 2, &dy, 1, err);
        if (d < 0)
            return d;
        g->node[d].per_row = false;
        if (k == 1 && scratch(g, d, col_size + g->node[n.in[1]].size, threads, err))
            return err->code;
        if (k == 2)
            g->node[d].state = -1;
        yf__param_grad_writer(g, d, g->node[n.in[k]].param);
    }
    return 0;
}

/* x is (R, C, H, W); dy is (R, Co, Ho, Wo); dW (Co, C/G, kh, kw) (+)=
 * Σ_r dy_r · col_rᵀ per group. Each thread sums its examples into its own
 * partial dW (scratch: a column block and a dW per thread), then the
 * partials are added. */
void yf__conv2d_dw_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *x = &ex->g->node[n->in[0]], *dy = &ex->g->node[n->in[1]];
    geom g = geom_of(x, dy, &n->win);
    int HW = g.Ho * g.Wo, Cg = g.Co / g.G;
    size_t col_size = (size_t)g.K * g.G * HW, wsize = n->size;
    float *scratch = ex->g->node[n->state].buf;
    int T = team(ex);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = omp_get_thread_num();
        float *col = scratch + (size_t)t * (col_size + wsize);
        float *part = T > 1 ? col + col_size : n->buf;
        float beta0 = T > 1 || !n->accumulate ? 0.0f : 1.0f;
        int first = (int)((long)ex->rows * t / T), end = (int)((long)ex->rows * (t + 1) / T);
        for (int r = first; r < end; r++) {
            im2col(x->buf + (size_t)r * x->size, &g, &n->win, col);
            const float *d = dy->buf + (size_t)r * dy->size;
            /* this thread's first example overwrites its partial (or
             * accumulates into the gradient block when it must) */
            float beta = r == first ? beta0 : 1.0f;
            for (int gi = 0; gi < g.G; gi++)
                yf__sgemm(false, true, Cg, g.K, HW, 1.0f, d + (size_t)gi * Cg * HW, HW,
                          col + (size_t)gi * g.K * HW, HW, beta, part + (size_t)gi * Cg * g.K,
                          g.K, 1);
        }
    }
    if (T > 1) {
        if (!n->accumulate)
            memset(n->buf, 0, wsize * sizeof(float));
        for (int t = 0; t < T; t++) {
            const float *part = scratch + (size_t)t * (col_size + wsize) + col_size;
            for (size_t i = 0; i < wsize; i++)
                n->buf[i] += part[i];
        }
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
    geom ge = n->op == YF_OP_CONV2D_T ? geom_of(n, x, &n->win) : geom_of(x, n, &n->win);
    return scratch(g, id, (size_t)ge.K * ge.G * ge.Ho * ge.Wo, threads, err);
}

int yf__conv2d_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    yf__gnode n = g->node[id]; /* copy: adding nodes may move the array */
    int threads = g->threads;
    const yf__gnode *x = &g->node[n.in[0]];
    geom ge = geom_of(x, &n, &n.win);
    size_t col_size = (size_t)ge.K * ge.G * ge.Ho * ge.Wo;
    if (g->node[n.in[0]].needs_grad) {
        int d = yf__grad_node(g, YF_OP_CONV2D_DX, id, 0, (int[]){dy, n.in[1]}, 2, err);
        if (d < 0 || scratch(g, d, col_size, threads, err) || yf__grad_accum(g, n.in[0], d, err))
            return err->code;
    }
    for (int k = 1; k < n.n_in; k++) {
        if (!g->node[n.in[k]].needs_grad)
            continue;
        int d = k == 1 ? yf__grad_node(g, YF_OP_CONV2D_DW, id, 1, (int[]){n.in[0], dy}, 2, err)
                       : yf__grad_node(g, YF_OP_CONV2D_DB, id, 2, &dy, 1, err);
        if (d < 0)
            return d;
        g->node[d].per_row = false;
        if (k == 1 && scratch(g, d, col_size + g->node[n.in[1]].size, threads, err))
            return err->code;
        if (k == 2)
            g->node[d].state = -1;
        yf__param_grad_writer(g, d, g->node[n.in[k]].param);
    }
    return 0;
}
