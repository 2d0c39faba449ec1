/* Gaussian noise and dropout, active in training graphs only. Random numbers
 * come from (seed, node stream, step, element index), so a run is the same
 * whatever the thread count, and dropout's backward recomputes its mask
 * instead of storing it. */
#include "../internal.h"

#include <math.h>
#include <string.h>

/* x, y are (R, size): y = x + N(0, stddev²) */
void yf__gaussian_noise_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *x = ex->g->node[n->in[0]].buf;
    size_t count = (size_t)ex->rows * n->size;
    yf__rand_normal_at(ex->seed, (uint32_t)n->stream, ex->step, (size_t)ex->row0 * n->size,
                       n->buf, count, 0.0f, n->stddev);
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
    yf__rand_uniform_at(ex->seed, (uint32_t)n->stream, ex->step, (size_t)ex->row0 * n->size, y,
                        count, 0.0f, 1.0f);
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
    return yf__input_grad(g, id, YF_OP_DROPOUT_GRAD, &dy, 1, err);
}

YF__CLONES static void reparameterise(const float *restrict mu, const float *restrict lv,
                                      float *restrict z, size_t n)
{
    for (size_t i = 0; i < n; i++)
        z[i] = mu[i] + expf(0.5f * lv[i]) * z[i];
}

/* mean μ, log-variance λ, z are (R, L): z = μ + e^{λ/2} ε, ε ~ N(0, I) drawn
 * from (seed, layer stream, step, index), the reparameterisation trick */
void yf__sample_normal_fwd(yf__gnode *n, const yf__exec *ex)
{
    size_t count = (size_t)ex->rows * n->size;
    yf__rand_normal_at(ex->seed, (uint32_t)n->stream, ex->step, (size_t)ex->row0 * n->size,
                       n->buf, count, 0.0f, 1.0f);
    reparameterise(ex->g->node[n->in[0]].buf, ex->g->node[n->in[1]].buf, n->buf, count);
}

/* in = (dz, z, μ): dλ = dz ⊙ ½ e^{λ/2} ε = dz ⊙ ½ (z − μ) */
void yf__sample_normal_dlv_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *dz = ex->g->node[n->in[0]].buf, *z = ex->g->node[n->in[1]].buf,
                *mu = ex->g->node[n->in[2]].buf;
    size_t count = (size_t)ex->rows * n->size;
    for (size_t i = 0; i < count; i++)
        n->buf[i] = 0.5f * dz[i] * (z[i] - mu[i]);
}

/* dμ = dz; dλ from the sample itself, so ε need not be kept */
int yf__sample_normal_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    int mu = g->node[id].in[0], lv = g->node[id].in[1];
    if (g->node[mu].needs_grad && yf__grad_accum(g, mu, dy, err))
        return err->code;
    if (!g->node[lv].needs_grad)
        return 0;
    int d = yf__grad_node(g, YF_OP_SAMPLE_NORMAL_DLV, id, 1, (int[]){dy, id, mu}, 3, err);
    return d < 0 ? d : yf__grad_accum(g, lv, d, err);
}

/* ---- random shifts (augmentation) --------------------------------------------- */

/* The shift of example r: (dy, dx), each uniform in [-max, max], from one
 * Philox block keyed by (seed, stream, step, r's place in the batch). */
static void shift_of(const yf__gnode *n, const yf__exec *ex, int r, int *dy, int *dx)
{
    uint32_t w[4];
    yf__philox(ex->seed, (uint32_t)n->stream, ex->step, (uint32_t)(ex->row0 + r), w);
    *dy = (int)(w[0] % (uint32_t)(2 * n->win.ph + 1)) - n->win.ph;
    *dx = (int)(w[1] % (uint32_t)(2 * n->win.pw + 1)) - n->win.pw;
}

/* y[c][i][j] = x[c][i + sy·dy][j + sx·dx], 0 outside the image: sign 1
 * moves the content by (−dy, −dx), sign −1 moves it back (the adjoint). */
static void shift_apply(const yf__gnode *n, const yf__exec *ex, const float *x, float *y,
                        int sign)
{
    int C = n->dims[0], H = n->dims[1], W = n->dims[2];
#pragma omp parallel for num_threads(ex->threads) if (ex->threads > 1 && ex->rows > 1)
    for (int r = 0; r < ex->rows; r++) {
        int dy, dx;
        shift_of(n, ex, r, &dy, &dx);
        dy *= sign, dx *= sign;
        const float *xr = x + (size_t)r * n->size;
        float *yr = y + (size_t)r * n->size;
        int j0 = dx < 0 ? -dx : 0, j1 = dx > 0 ? W - dx : W; /* y columns with a source */
        if (j1 < j0)
            j1 = j0;
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++) {
                float *yrow = yr + ((size_t)c * H + i) * W;
                int si = i + dy;
                if (si < 0 || si >= H) {
                    memset(yrow, 0, W * sizeof *yrow);
                    continue;
                }
                const float *xrow = xr + ((size_t)c * H + si) * W;
                memset(yrow, 0, j0 * sizeof *yrow);
                memcpy(yrow + j0, xrow + j0 + dx, (size_t)(j1 - j0) * sizeof *yrow);
                memset(yrow + j1, 0, (size_t)(W - j1) * sizeof *yrow);
            }
    }
}

void yf__random_shift_fwd(yf__gnode *n, const yf__exec *ex)
{
    shift_apply(n, ex, ex->g->node[n->in[0]].buf, n->buf, 1);
}

void yf__random_shift_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    shift_apply(n, ex, ex->g->node[n->in[0]].buf, n->buf, -1);
}

int yf__random_shift_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return yf__input_grad(g, id, YF_OP_RANDOM_SHIFT_GRAD, &dy, 1, err);
}
