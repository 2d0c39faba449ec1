/* Activations and sums, element by element. The loops are written without
 * branches or library calls so that GCC vectorises them; target_clones makes
 * AVX-512 and AVX2 versions chosen at load time. */
#include "../internal.h"

#include <math.h>
#include <string.h>


#define SELU_ALPHA 1.6732632423543772f
#define SELU_SCALE 1.0507009873554805f

YF__CLONES static void act_fwd_vec(int act, float alpha, const float *x, float *y, size_t n)
{
    switch (act) {
    case YF_ACT_LINEAR:
        if (x != y)
            memcpy(y, x, n * sizeof(float));
        break;
    case YF_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] <= 0.0f ? 0.0f : x[i]; /* NaN passes */
        break;
    case YF_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] <= 0.0f ? alpha * x[i] : x[i];
        break;
    case YF_ACT_ELU:
        for (size_t i = 0; i < n; i++) {
            float e = alpha * (yf__expf(x[i]) - 1.0f);
            y[i] = x[i] > 0.0f ? x[i] : e;
        }
        break;
    case YF_ACT_SELU:
        for (size_t i = 0; i < n; i++) {
            float e = SELU_ALPHA * (yf__expf(x[i]) - 1.0f);
            y[i] = SELU_SCALE * (x[i] > 0.0f ? x[i] : e);
        }
        break;
    case YF_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            y[i] = 1.0f / (1.0f + yf__expf(-x[i]));
        break;
    case YF_ACT_TANH:
        for (size_t i = 0; i < n; i++) {
            float e = yf__expf(-2.0f * fabsf(x[i]));
            float t = (1.0f - e) / (1.0f + e);
            y[i] = x[i] < 0.0f ? -t : t;
        }
        break;
    }
}

/* dx from the output y and dy; every activation's derivative is a function
 * of its output, so the input need not be kept. */
YF__CLONES static void act_bwd_vec(int act, float alpha, const float *y, const float *dy,
                                   float *dx, size_t n)
{
    switch (act) {
    case YF_ACT_LINEAR:
        if (dy != dx)
            memcpy(dx, dy, n * sizeof(float));
        break;
    case YF_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case YF_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : alpha * dy[i];
        break;
    case YF_ACT_ELU:
        for (size_t i = 0; i < n; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : dy[i] * (y[i] + alpha);
        break;
    case YF_ACT_SELU:
        for (size_t i = 0; i < n; i++)
            dx[i] = y[i] > 0.0f ? SELU_SCALE * dy[i]
                                : dy[i] * (y[i] + SELU_SCALE * SELU_ALPHA);
        break;
    case YF_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        break;
    case YF_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    }
}

/* GCC vectorises the loops above with fused multiply-adds in places its
 * scalar remainder loop does not use them, so an element's bits would
 * depend on whether it fell in the remainder: on where a split into
 * threads or rows ends. The remainder is therefore padded to a whole
 * vector and run through the same vector loop. */
static void act_fwd_flat(int act, float alpha, const float *x, float *y, size_t n)
{
    size_t body = n & ~(size_t)15;
    if (body)
        act_fwd_vec(act, alpha, x, y, body);
    if (n > body) {
        float tx[16] = {0}, ty[16];
        memcpy(tx, x + body, (n - body) * sizeof(float));
        act_fwd_vec(act, alpha, tx, ty, 16);
        memcpy(y + body, ty, (n - body) * sizeof(float));
    }
}

static void act_bwd_flat(int act, float alpha, const float *y, const float *dy, float *dx,
                         size_t n)
{
    size_t body = n & ~(size_t)15;
    if (body)
        act_bwd_vec(act, alpha, y, dy, dx, body);
    if (n > body) {
        float ty[16] = {0}, tdy[16] = {0}, tdx[16];
        memcpy(ty, y + body, (n - body) * sizeof(float));
        memcpy(tdy, dy + body, (n - body) * sizeof(float));
        act_bwd_vec(act, alpha, ty, tdy, tdx, 16);
        memcpy(dx + body, tdx, (n - body) * sizeof(float));
    }
}

/* x, y are (R,C); softmax over each row */
static void softmax_rows(const float *x, float *y, size_t R, size_t C)
{
    for (size_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        float mx = xr[0];
        for (size_t j = 1; j < C; j++)
            mx = xr[j] > mx ? xr[j] : mx;
        float s = 0.0f;
        for (size_t j = 0; j < C; j++)
            s += (yr[j] = yf__expf(xr[j] - mx));
        for (size_t j = 0; j < C; j++)
            yr[j] /= s;
    }
}

void yf__act_forward(int act, float alpha, const float *x, float *y, size_t R,
                     size_t C)
{
    if (act == YF_ACT_SOFTMAX)
        softmax_rows(x, y, R, C);
    else
        act_fwd_flat(act, alpha, x, y, R * C);
}

void yf__act_backward(int act, float alpha, const float *y, const float *dy,
                      float *dx, size_t R, size_t C)
{
    if (act != YF_ACT_SOFTMAX) {
        act_bwd_flat(act, alpha, y, dy, dx, R * C);
        return;
    }
    /* dx = y ⊙ (dy − Σ dy⊙y) per row */
    for (size_t r = 0; r < R; r++) {
        const float *yr = y + r * C, *dyr = dy + r * C;
        float *dxr = dx + r * C;
        float dot = 0.0f;
        for (size_t j = 0; j < C; j++)
            dot += dyr[j] * yr[j];
        for (size_t j = 0; j < C; j++)
            dxr[j] = yr[j] * (dyr[j] - dot);
    }
}

/* x, y are (R, size) */
void yf__act_fwd(yf__gnode *n, const yf__exec *ex)
{
    if (n->folded) /* done by the dense layer below (yf__dense_fwd) */
        return;
    const float *x = ex->g->node[n->in[0]].buf;
    size_t C = n->size;
    YF__FOR_ROW_CHUNKS(ex, ex->rows, r0, nr,
                   yf__act_forward(n->act, n->alpha, x + r0 * C, n->buf + r0 * C, nr, C));
}

/* in[0] = y (the activation's output), in[1] = dy; dx is (R, size). On one
 * thread it also adds each row of dx to the bias gradient below (n->colsum). */
void yf__act_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    if (n->folded) /* done by the loss gradient that is its dy (yf__mse_grad_fwd) */
        return;
    const float *y = ex->g->node[n->in[0]].buf, *dy = ex->g->node[n->in[1]].buf;
    size_t C = n->size;
    if (n->colsum >= 0 && ex->team == 1) {
        float *db = ex->g->node[n->colsum].buf;
        memset(db, 0, C * sizeof(float));
        for (size_t r = 0; r < (size_t)ex->rows; r++) {
            yf__act_backward(n->act, n->alpha, y + r * C, dy + r * C, n->buf + r * C, 1, C);
            yf__colsum(db, n->buf + r * C, 1, C);
        }
        return;
    }
    YF__FOR_ROW_CHUNKS(ex, ex->rows, r0, nr,
                       yf__act_backward(n->act, n->alpha, y + r0 * C, dy + r0 * C,
                                        n->buf + r0 * C, nr, C));
}

/* An element-wise activation whose whole gradient comes from the max
 * pooling that reads it (dy is that pooling's gradient node itself, not a
 * sum): dy is zero except at each window's maximum y = the pooled value p,
 * so the pooling's gradient kernel multiplies by f'(p) on the way (in[2]
 * = the pooling's output) and no activation_grad pass over the full-size
 * image runs. */
static bool fuse_into_pool_grad(yf__graph *g, int id, int dy)
{
    yf__gnode *d = &g->node[dy];
    if (g->node[id].act == YF_ACT_SOFTMAX || d->op != YF_OP_MAX_POOL_GRAD ||
        d->act != YF_ACT_LINEAR || d->n_in != 2)
        return false;
    int pool = g->node[d->in[1]].owner; /* the argmax state's writer */
    if (g->node[pool].op != YF_OP_MAX_POOL || g->node[pool].in[0] != id)
        return false;
    d->act = g->node[id].act, d->alpha = g->node[id].alpha;
    d->in[d->n_in++] = pool;
    return true;
}

int yf__act_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    if (g->node[g->node[id].in[0]].needs_grad && fuse_into_pool_grad(g, id, dy))
        return yf__grad_accum(g, g->node[id].in[0], dy, err);
    return yf__input_grad(g, id, YF_OP_ACT_GRAD, (int[]){id, dy}, 2, err);
}

YF__CLONES static void add_flat(const float *a, const float *b, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

YF__CLONES static void mul_flat(const float *a, const float *b, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}

YF__CLONES static void scale_flat(const float *x, float k, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = k * x[i];
}

static size_t count_of(const yf__gnode *n, const yf__exec *ex)
{
    return n->per_row ? (size_t)ex->rows * n->size : n->size;
}

/* in[0..n_in) and y are (R, size), or scalars: y = Σ in[k] */
void yf__add_fwd(yf__gnode *n, const yf__exec *ex)
{
    size_t count = count_of(n, ex);
    add_flat(ex->g->node[n->in[0]].buf, ex->g->node[n->in[1]].buf, n->buf, count);
    for (int k = 2; k < n->n_in; k++)
        add_flat(n->buf, ex->g->node[n->in[k]].buf, n->buf, count);
}

/* every input receives dy itself */
int yf__add_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    for (int k = 0; k < g->node[id].n_in; k++)
        if (g->node[g->node[id].in[k]].needs_grad) {
            int rc = yf__grad_accum(g, g->node[id].in[k], dy, err);
            if (rc)
                return rc;
        }
    return 0;
}

/* a, b, y are (R, size): y = a ⊙ b */
void yf__multiply_fwd(yf__gnode *n, const yf__exec *ex)
{
    mul_flat(ex->g->node[n->in[0]].buf, ex->g->node[n->in[1]].buf, n->buf, count_of(n, ex));
}

/* da = dy ⊙ b, db = dy ⊙ a: multiply nodes again */
int yf__multiply_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    for (int k = 0; k < 2; k++) {
        int x = g->node[id].in[k], other = g->node[id].in[1 - k];
        if (!g->node[x].needs_grad)
            continue;
        int d = yf__grad_node(g, YF_OP_MULTIPLY, id, k, (int[]){dy, other}, 2, err);
        if (d < 0 || yf__grad_accum(g, x, d, err))
            return err->code;
    }
    return 0;
}

/* x, y are (R, size): y = factor · x */
void yf__scale_fwd(yf__gnode *n, const yf__exec *ex)
{
    scale_flat(ex->g->node[n->in[0]].buf, n->factor, n->buf, count_of(n, ex));
}

/* dx = factor · dy: a scale node again */
int yf__scale_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return yf__input_grad(g, id, YF_OP_SCALE, &dy, 1, err);
}

/* in[k] is (R, C_k); y is (R, Σ C_k), the inputs side by side */
void yf__concat_fwd(yf__gnode *n, const yf__exec *ex)
{
    size_t C = n->size, off = 0;
    for (int k = 0; k < n->n_in; k++) {
        const yf__gnode *x = &ex->g->node[n->in[k]];
        for (int r = 0; r < ex->rows; r++)
            memcpy(n->buf + r * C + off, x->buf + r * x->size, x->size * sizeof(float));
        off += x->size;
    }
}

/* dy is (R, C); y is (R, size): columns slot .. slot + size of dy */
void yf__slice_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *dy = &ex->g->node[n->in[0]];
    for (int r = 0; r < ex->rows; r++)
        memcpy(n->buf + r * n->size, dy->buf + r * dy->size + n->slot, n->size * sizeof(float));
}

/* each input's gradient is its slice of dy */
int yf__concat_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    size_t off = 0;
    for (int k = 0; k < g->node[id].n_in; k++) {
        int x = g->node[id].in[k];
        size_t size = g->node[x].size;
        if (g->node[x].needs_grad) {
            int d = yf__grad_node(g, YF_OP_SLICE, id, k, &dy, 1, err);
            if (d < 0)
                return d;
            g->node[d].slot = (int)off; /* the first column */
            if (yf__grad_accum(g, x, d, err))
                return err->code;
        }
        off += size;
    }
    return 0;
}

int yf__nograd_bwd(yf__graph *g, int id, int dy, yf_error *err) { return 0; }
