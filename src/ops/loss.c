/* Loss terms. Each loss node outputs its unweighted value (one float); the
 * total minimised is Σ weight·value, so each gradient carries its weight.
 * reduce: mean averages over every element; sum adds over the features of
 * an example and averages over examples. */
#include "../internal.h"

#include <math.h>
#include <string.h>

static double norm(const yf__gnode *n, int rows, size_t size)
{
    return n->reduce_sum ? (double)rows : (double)rows * (double)size;
}

/* Gradient nodes of `op` for inputs 0 .. n_slots-1 of loss node id that
 * need one, each reading in[0..n_in) (the loss's own inputs when in is
 * NULL) and told its slot. */
static int slot_grads(yf__graph *g, int id, yf__op op, int n_slots, const int *in, int n_in,
                      yf_error *err)
{
    yf__gnode src = g->node[id]; /* copy: adding nodes may move the array */
    if (!in)
        in = src.in, n_in = src.n_in;
    for (int k = 0; k < n_slots; k++) {
        if (!g->node[src.in[k]].needs_grad)
            continue;
        int d = yf__grad_node(g, op, id, k, in, n_in, err);
        if (d < 0 || yf__grad_accum(g, src.in[k], d, err))
            return err->code;
    }
    return 0;
}

/* The body of a function summing f(x[i], t[i]) over i < n: float blocks of
 * 16 lanes (so that GCC vectorises f) added up in double. */
#define LANE_SUM(f)                                                          \
    double s = 0.0;                                                          \
    for (size_t i = 0; i < n; i += 1024) {                                   \
        size_t end = i + 1024 < n ? i + 1024 : n;                            \
        float lane[16] = {0};                                                \
        size_t j = i;                                                        \
        for (; j + 16 <= end; j += 16)                                       \
            for (int k = 0; k < 16; k++)                                     \
                lane[k] += f(x[j + k], t[j + k]);                            \
        for (; j < end; j++)                                                 \
            lane[0] += f(x[j], t[j]);                                        \
        for (int k = 0; k < 16; k++)                                         \
            s += lane[k];                                                    \
    }                                                                        \
    return s

static inline float sq_diff(float a, float t) { return (a - t) * (a - t); }

/* max(z, 0) − z·t + log(1 + e^−|z|) */
static inline float sigmoid_ce(float z, float t)
{
    return (z > 0 ? z : 0) - z * t + yf__log1p_unit(yf__expf(-fabsf(z)));
}

/* Σ (x − t)² */
YF__CLONES static double sum_sq_diff(const float *x, const float *t, size_t n)
{
    LANE_SUM(sq_diff);
}

/* Σ max(x, 0) − x·t + log(1 + e^−|x|) over logits x */
YF__CLONES static double sum_sigmoid_ce(const float *x, const float *t, size_t n)
{
    LANE_SUM(sigmoid_ce);
}

/* pred, target are (R, size); out = mean (pred − target)². On one thread
 * its gradient node computes it in its own pass (n->folded). */
/* On more than one thread the gradient's pass also makes the loss when the
 * batch's blocks of sum_sq_diff fit in this table (a batch of 1,337 rows of
 * 784): each thread takes whole blocks and leaves their 16 lanes here, and
 * the lanes are added in sum_sq_diff's order afterwards, so the bits are
 * the same on any number of threads. */
enum { LANE_BLOCKS = 1024 };

static bool loss_in_grad_pass(const yf__exec *ex, size_t count)
{
    return ex->team == 1 || (count + 1023) / 1024 <= LANE_BLOCKS;
}

void yf__mse_fwd(yf__gnode *n, const yf__exec *ex)
{
    if (n->folded && loss_in_grad_pass(ex, (size_t)ex->rows * ex->g->node[n->in[0]].size))
        return;
    const yf__gnode *p = &ex->g->node[n->in[0]];
    const float *a = p->buf, *t = ex->g->node[n->in[1]].buf;
    size_t count = (size_t)ex->rows * p->size;
    n->buf[0] = (float)(sum_sq_diff(a, t, count) / norm(n, ex->batch_rows, p->size));
}

/* dpred = weight · 2 (pred − target) / norm; dtarget (slot 1) = −dpred.
 * With the gradient of pred's activation folded in (n->epi, set by the
 * plan), it goes on through it in place: dz = f'(pred) ⊙ dpred, the same
 * arithmetic as the activation_grad node, in one pass while the rows are
 * in cache. */
YF__CLONES static void diff_rows(const float *a, const float *t, float k, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = k * (a[i] - t[i]);
}

/* One block [i, end) of sum_sq_diff: its 16 lanes of (a − t)², as
 * LANE_SUM makes them, and y = k (a − t) */
static inline __attribute__((always_inline)) void mse_block(const float *a, const float *t,
                                                            float k, float *y, size_t i,
                                                            size_t end, float lane[16])
{
    size_t j = i;
    for (int q = 0; q < 16; q++)
        lane[q] = 0;
    for (; j + 16 <= end; j += 16)
        for (int q = 0; q < 16; q++) {
            lane[q] += sq_diff(a[j + q], t[j + q]);
            y[j + q] = k * (a[j + q] - t[j + q]);
        }
    for (; j < end; j++) {
        lane[0] += sq_diff(a[j], t[j]);
        y[j] = k * (a[j] - t[j]);
    }
}

/* The one-thread pass of a gradient node with folds: Σ (a − t)² in the
 * blocks and lanes of sum_sq_diff (so the same bits), y = k (a − t), and
 * each row, once whole, through the activation's gradient and into the
 * bias gradient. */
YF__CLONES static double mse_pass(const float *a, const float *t, float k, float *y, size_t R,
                                  size_t C, const yf__gnode *act, float *db)
{
    double s = 0.0;
    size_t n = R * C, done = 0;
    for (size_t i = 0; i < n; i += 1024) {
        size_t end = i + 1024 < n ? i + 1024 : n;
        float lane[16];
        mse_block(a, t, k, y, i, end, lane);
        for (int q = 0; q < 16; q++)
            s += lane[q];
        for (; done < end / C; done++) { /* rows now whole */
            float *row = y + done * C;
            if (act)
                yf__act_backward(act->act, act->alpha, a + done * C, row, row, 1, C);
            if (db)
                yf__colsum(db, row, 1, C);
        }
    }
    return s;
}

/* Blocks [b0, b1) of sum_sq_diff over n elements: each block's 16 lanes
 * into lanes + 16·b, and y = k (a − t) */
YF__CLONES static void mse_blocks(const float *a, const float *t, float k, float *y, size_t n,
                                  size_t b0, size_t b1, float *lanes)
{
    for (size_t b = b0; b < b1; b++) {
        float lane[16]; /* in registers, not through a pointer y may alias */
        mse_block(a, t, k, y, b * 1024, (b + 1) * 1024 < n ? (b + 1) * 1024 : n, lane);
        memcpy(lanes + 16 * b, lane, sizeof lane);
    }
}

void yf__mse_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *a = ex->g->node[n->in[0]].buf, *t = ex->g->node[n->in[1]].buf;
    size_t C = n->size;
    float k = (float)(2.0 * n->weight / norm(n, ex->batch_rows, n->size));
    if (n->slot)
        k = -k;
    const yf__gnode *e = n->epi >= 0 ? &ex->g->node[n->epi] : NULL;
    if (ex->team == 1 && (n->sum_into >= 0 || n->colsum >= 0)) {
        float *db = n->colsum >= 0 ? ex->g->node[n->colsum].buf : NULL;
        if (db)
            memset(db, 0, C * sizeof(float));
        double s = mse_pass(a, t, k, n->buf, ex->rows, C, e, db);
        if (n->sum_into >= 0) {
            yf__gnode *l = &ex->g->node[n->sum_into];
            l->buf[0] = (float)(s / norm(l, ex->batch_rows, C));
        }
        return;
    }
    size_t count = (size_t)ex->rows * C;
    if (n->sum_into >= 0 && loss_in_grad_pass(ex, count)) {
        float lanes[16 * LANE_BLOCKS];
        size_t blocks = (count + 1023) / 1024;
        /* threads take whole blocks: the activation's gradient gives the
         * same bits however its elements are split (act_bwd_vec) */
        YF__FOR_ROW_CHUNKS(ex, blocks, b0, nb, {
            size_t lo = b0 * 1024;
            size_t hi = (b0 + nb) * 1024 < count ? (b0 + nb) * 1024 : count;
            mse_blocks(a, t, k, n->buf, count, b0, b0 + nb, lanes);
            if (e && hi > lo)
                yf__act_backward(e->act, e->alpha, a + lo, n->buf + lo, n->buf + lo, 1, hi - lo);
        });
        double s = 0.0;
        for (size_t i = 0; i < 16 * blocks; i++)
            s += lanes[i];
        yf__gnode *l = &ex->g->node[n->sum_into];
        l->buf[0] = (float)(s / norm(l, ex->batch_rows, C));
        return;
    }
    YF__FOR_ROW_CHUNKS(ex, ex->rows, r0, nr, {
        for (size_t r = r0; r < r0 + nr; r++) {
            float *y = n->buf + r * C;
            diff_rows(a + r * C, t + r * C, k, y, C);
            if (e)
                yf__act_backward(e->act, e->alpha, a + r * C, y, y, 1, C);
        }
    });
}

int yf__mse_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return slot_grads(g, id, YF_OP_MSE_GRAD, 2, NULL, 0, err);
}

/* logits z, target t are (R, size): max(z,0) − z·t + log(1 + e^−|z|) */
void yf__sigmoid_ce_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *p = &ex->g->node[n->in[0]];
    size_t count = (size_t)ex->rows * p->size;
    double s = sum_sigmoid_ce(p->buf, ex->g->node[n->in[1]].buf, count);
    n->buf[0] = (float)(s / norm(n, ex->batch_rows, p->size));
}

/* dz = weight · (σ(z) − t) / norm; dt (slot 1) = −weight · z / norm */
void yf__sigmoid_ce_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *z = ex->g->node[n->in[0]].buf, *t = ex->g->node[n->in[1]].buf;
    size_t count = (size_t)ex->rows * n->size;
    float k = (float)(n->weight / norm(n, ex->batch_rows, n->size));
    if (n->slot) {
        for (size_t i = 0; i < count; i++)
            n->buf[i] = -k * z[i];
        return;
    }
    yf__act_forward(YF_ACT_SIGMOID, 0, z, n->buf, 1, count);
    for (size_t i = 0; i < count; i++)
        n->buf[i] = k * (n->buf[i] - t[i]);
}

int yf__sigmoid_ce_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return slot_grads(g, id, YF_OP_SIGMOID_CE_GRAD, 2, NULL, 0, err);
}

/* logits z are (R, C), labels y (R) int32: mean over rows of
 * log Σ_j e^{z_j} − z_y, with the max subtracted first. In training the
 * probabilities softmax(z) are kept in the state node for the backward. */
void yf__softmax_ce_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *zn = &ex->g->node[n->in[0]];
    const int32_t *y = (const int32_t *)ex->g->node[n->in[1]].buf;
    float *p = n->state >= 0 ? ex->g->node[n->state].buf : NULL;
    size_t C = zn->size;
    double s = 0.0;
    for (int r = 0; r < ex->rows; r++) {
        const float *z = zn->buf + r * C;
        float mx = z[0];
        for (size_t j = 1; j < C; j++)
            mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (size_t j = 0; j < C; j++)
            sum += exp((double)z[j] - mx);
        double lse = mx + log(sum);
        s += lse - z[y[r]];
        if (p)
            for (size_t j = 0; j < C; j++)
                p[r * C + j] = (float)exp((double)z[j] - lse);
    }
    n->buf[0] = (float)(s / ex->batch_rows);
}

/* in = (probabilities (R, C), labels (R)): dz = weight · (p − onehot(y)) / R */
void yf__softmax_ce_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *p = ex->g->node[n->in[0]].buf;
    const int32_t *y = (const int32_t *)ex->g->node[n->in[1]].buf;
    size_t C = n->size;
    float k = n->weight / ex->batch_rows;
    for (int r = 0; r < ex->rows; r++) {
        for (size_t j = 0; j < C; j++)
            n->buf[r * C + j] = k * p[r * C + j];
        n->buf[r * C + y[r]] -= k;
    }
}

int yf__softmax_ce_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    int in[2] = {g->node[id].state, g->node[id].in[1]};
    return slot_grads(g, id, YF_OP_SOFTMAX_CE_GRAD, 1, in, 2, err);
}

/* mean μ, log-variance λ are (R, L): KL(N(μ, e^λ) ‖ N(0, I)) =
 * −½ Σ (1 + λ − μ² − e^λ), summed over L (reduce: sum) or averaged, and
 * averaged over rows */
void yf__kl_normal_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *mn = &ex->g->node[n->in[0]];
    const float *mu = mn->buf, *lv = ex->g->node[n->in[1]].buf;
    size_t count = (size_t)ex->rows * mn->size;
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += 1.0 + lv[i] - (double)mu[i] * mu[i] - exp(lv[i]);
    n->buf[0] = (float)(-0.5 * s / norm(n, ex->batch_rows, mn->size));
}

/* dμ = weight · μ / norm (slot 0); dλ = weight · ½ (e^λ − 1) / norm (slot 1) */
void yf__kl_normal_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *mu = ex->g->node[n->in[0]].buf, *lv = ex->g->node[n->in[1]].buf;
    size_t count = (size_t)ex->rows * n->size;
    float k = (float)(n->weight / norm(n, ex->batch_rows, n->size));
    if (n->slot == 0)
        for (size_t i = 0; i < count; i++)
            n->buf[i] = k * mu[i];
    else
        for (size_t i = 0; i < count; i++)
            n->buf[i] = 0.5f * k * (expf(lv[i]) - 1.0f);
}

int yf__kl_normal_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return slot_grads(g, id, YF_OP_KL_NORMAL_GRAD, 2, NULL, 0, err);
}

/* The batch's mean activation of each unit, kept inside (0, 1), in q. */
static void unit_means(const float *a, int R, size_t C, float *q)
{
    for (size_t j = 0; j < C; j++)
        q[j] = 0.0f;
    for (int r = 0; r < R; r++)
        for (size_t j = 0; j < C; j++)
            q[j] += a[r * C + j];
    for (size_t j = 0; j < C; j++) {
        q[j] /= R;
        q[j] = q[j] < 1e-6f ? 1e-6f : q[j] > 1 - 1e-6f ? 1 - 1e-6f : q[j];
    }
}

/* activations a are (R, C) in (0, 1), q_j their mean over the batch (kept
 * in the state node, (C), for the backward):
 * Σ_j ρ log(ρ / q_j) + (1 − ρ) log((1 − ρ) / (1 − q_j)) */
void yf__kl_sparsity_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *an = &ex->g->node[n->in[0]];
    float *q = ex->g->node[n->state].buf;
    size_t C = an->size;
    double rho = n->rho, s = 0.0;
    unit_means(an->buf, ex->rows, C, q);
    for (size_t j = 0; j < C; j++)
        s += rho * log(rho / q[j]) + (1 - rho) * log((1 - rho) / (1 - q[j]));
    n->buf[0] = (float)s;
}

/* in = (a, q): da_rj = weight · (−ρ / q_j + (1 − ρ) / (1 − q_j)) / R, the
 * same for every row: the first row is computed, then copied */
void yf__kl_sparsity_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    size_t C = n->size;
    const float *q = ex->g->node[n->in[1]].buf;
    double rho = n->rho;
    for (size_t j = 0; j < C; j++)
        n->buf[j] = (float)(n->weight * (-rho / q[j] + (1 - rho) / (1 - q[j])) / ex->rows);
    for (int r = 1; r < ex->rows; r++)
        memcpy(n->buf + r * C, n->buf, C * sizeof(float));
}

int yf__kl_sparsity_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    int in[2] = {g->node[id].in[0], g->node[id].state};
    return slot_grads(g, id, YF_OP_KL_SPARSITY_GRAD, 1, in, 2, err);
}

/* activations a are (R, C): Σ |a| / norm */
void yf__l1_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *an = &ex->g->node[n->in[0]];
    size_t count = (size_t)ex->rows * an->size;
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += fabsf(an->buf[i]);
    n->buf[0] = (float)(s / norm(n, ex->batch_rows, an->size));
}

/* da = weight · sign(a) / norm */
void yf__l1_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *a = ex->g->node[n->in[0]].buf;
    size_t count = (size_t)ex->rows * n->size;
    float k = (float)(n->weight / norm(n, ex->batch_rows, n->size));
    for (size_t i = 0; i < count; i++)
        n->buf[i] = a[i] > 0 ? k : a[i] < 0 ? -k : 0.0f;
}

int yf__l1_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return slot_grads(g, id, YF_OP_L1_GRAD, 1, NULL, 0, err);
}

/* scores (R, C), labels (R) int32: the fraction of rows whose highest
 * score is the label's */
void yf__accuracy_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *zn = &ex->g->node[n->in[0]];
    const int32_t *y = (const int32_t *)ex->g->node[n->in[1]].buf;
    size_t C = zn->size;
    int right = 0;
    for (int r = 0; r < ex->rows; r++) {
        const float *z = zn->buf + r * C;
        size_t best = 0;
        for (size_t j = 1; j < C; j++)
            best = z[j] > z[best] ? j : best;
        right += (int32_t)best == y[r];
    }
    n->buf[0] = (float)right / ex->rows;
}

/* a is (R, C): the mean of every value */
void yf__mean_activation_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *an = &ex->g->node[n->in[0]];
    size_t count = (size_t)ex->rows * an->size;
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += an->buf[i];
    n->buf[0] = (float)(s / count);
}

/* W is a parameter of any shape: out = Σ W² */
void yf__l2_fwd(yf__gnode *n, const yf__exec *ex)
{
    const yf__gnode *w = &ex->g->node[n->in[0]];
    double s = 0.0;
    for (size_t i = 0; i < w->size; i++)
        s += (double)w->buf[i] * w->buf[i];
    n->buf[0] = ex->shared_terms ? (float)s : 0.0f; /* counted on one rank */
}

/* dW (+)= 2 · weight · W */
void yf__l2_grad_fwd(yf__gnode *n, const yf__exec *ex)
{
    const float *w = ex->g->node[n->in[0]].buf;
    float k = ex->shared_terms ? 2.0f * n->weight : 0.0f; /* counted on one rank */
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
    int d = yf__grad_node(g, YF_OP_L2_GRAD, id, 0, src.in, 1, err);
    if (d < 0)
        return d;
    g->node[d].per_row = false;
    yf__param_grad_writer(g, d, g->node[src.in[0]].param);
    return 0;
}
