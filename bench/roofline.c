/* roofline SPEC [--threads T] [--batch B] [--steps N] [--rounds R] [--gemms] -- how close a
 * training step comes to BLIS's own sgemm rate on the same shapes, both
 * measured in this one run (alternating R rounds, medians):
 *   yaflow: N training steps of SPEC at its batch size (forward, backward,
 *           optimizer, batch gathering: everything), GEMM FLOPs / time;
 *   BLIS:   the same GEMMs (every dense node of the training graph, its
 *           shapes, transposes and beta; a convolution as the GEMM it is
 *           unfolded, conv_shape), called one after the other,
 *           FLOPs / time, two ways:
 *           - on three buffers shared by all the GEMMs (the bench as first
 *             written: its operands stay warm in cache between calls);
 *           - on the training step's own buffers, the exact BLIS calls a
 *             step makes (yf__dense_sgemm) in its order, with nothing in
 *             between: what the step would take if everything but the
 *             GEMMs cost nothing (dense models only).
 *           And the step's GEMMs as the step makes them (src/gemm.c), alone
 *           on its own buffers: the share of that the step keeps.
 * The ratios are the share of each BLIS rate the whole step keeps.
 * --gemms: then each dense GEMM of the step on its own buffers, BLIS's
 * sgemm against the step's (src/gemm.c), alternating, best of 200 calls
 * each. */
#include "../src/internal.h"
#include "../src/ops/conv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    bool ta, tb;
    int m, n, k;
    float beta;
    int reps; /* a convolution's groups: as many GEMMs of this shape */
} shape;

/* The GEMM a convolution node's arithmetic is, unfolded (im2col) over the
 * whole batch: x (C, H, W) and y (Co, Ho, Wo) are the convolution's input
 * and output whatever the node computes; per group, the forward is
 * W (Co/G × K) · col (K × P), dx is Wᵀ · dy, dW is dy · colᵀ, with
 * K = C/G·kh·kw and P = rows·Ho·Wo: the direct convolution's FLOPs, which
 * yf__node_flops counts (a Winograd kernel does fewer multiplications for
 * the same work, so yaflow may pass BLIS here). */
static shape conv_shape(const yf__graph *g, const yf__gnode *nd, int rows)
{
    const yf__gnode *x, *y;
    switch (nd->op) {
    case YF_OP_CONV2D:
        x = &g->node[nd->in[0]], y = nd;
        break;
    case YF_OP_CONV2D_DX:
    case YF_OP_CONV2D_T:
        x = nd, y = &g->node[nd->in[0]];
        break;
    default: /* YF_OP_CONV2D_DW */
        x = &g->node[nd->in[0]], y = &g->node[nd->in[1]];
        break;
    }
    yf__geom c = yf__conv_geom(x, y, &nd->win);
    int Cg = c.Co / c.G, P = rows * c.Ho * c.Wo;
    switch (nd->op) {
    case YF_OP_CONV2D:
        return (shape){false, false, Cg, P, c.K, 0.0f, c.G};
    case YF_OP_CONV2D_DX:
    case YF_OP_CONV2D_T:
        return (shape){true, false, c.K, P, Cg, 0.0f, c.G};
    default:
        return (shape){false, true, Cg, c.K, P, 0.0f, c.G};
    }
}

static bool dense_gemm(const yf__gnode *nd)
{
    return nd->op == YF_OP_DENSE || nd->op == YF_OP_DENSE_DX || nd->op == YF_OP_DENSE_DW;
}

/* Seconds per step of the step's dense GEMMs, in its order on its own
 * buffers, with nothing in between (steps of them). */
static double replay(const yf__graph *g, const yf__exec *ex, int steps)
{
    double t0 = now();
    for (int st = 0; st < steps; st++)
        for (int i = 0; i < g->n; i++) {
            const yf__gnode *nd = &g->node[g->order[i]];
            if (dense_gemm(nd))
                yf__dense_sgemm(nd, ex);
        }
    return (now() - t0) / steps;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int threads = 1, steps = 200, rounds = 5, batch = 0;
    bool per_gemm = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gemms"))
            per_gemm = true;
        else
            path = argv[i];
    }
    if (!path || threads < 1 || steps < 1 || rounds < 1 || batch < 0) {
        fprintf(stderr, "usage: roofline SPEC [--threads T] [--batch B] [--steps N] [--rounds R] "
                        "[--gemms]\n");
        return 2;
    }
    yf_error err = {0};
    if (yf_runtime_choose_kernels(&err)) {
        fprintf(stderr, "roofline: %s\n", yf_error_format(&err));
        return 1;
    }
    char over[64];
    snprintf(over, sizeof over, "train.batch_size=%d", batch);
    const char *overs[1] = {over};
    yf_spec *s = yf_spec_load(path, overs, batch ? 1 : 0, &err);
    yf_model *m = s ? yf_model_new(s, threads, &err) : NULL;
    yf_dataset *d = m ? yf_dataset_load(s, &err) : NULL;
    if (!d) {
        fprintf(stderr, "roofline: %s\n", yf_error_format(&err));
        return 2;
    }
    int rows = s->batch_size;
    /* the GEMMs of one training step, as dense.c calls them */
    const yf__graph *g = &m->train;
    shape sh[256];
    int n_sh = 0, gemms = 0;
    bool convs = false; /* the step's own BLIS calls are replayed for dense nodes only */
    double flops = 0;
    for (int i = 0; i < g->n && n_sh < 256; i++) {
        const yf__gnode *nd = &g->node[i];
        int K, N;
        switch (nd->op) {
        case YF_OP_DENSE:
            K = (int)g->node[nd->in[0]].size, N = (int)nd->size;
            sh[n_sh++] = (shape){false, nd->trans, rows, N, K, 1.0f, 1};
            break;
        case YF_OP_DENSE_DX:
            N = (int)g->node[nd->in[0]].size, K = (int)nd->size;
            sh[n_sh++] = (shape){false, !nd->trans, rows, K, N, 0.0f, 1};
            break;
        case YF_OP_DENSE_DW:
            K = (int)g->node[nd->in[0]].size, N = (int)g->node[nd->in[1]].size;
            sh[n_sh++] = nd->trans ? (shape){true, false, N, K, rows, 0.0f, 1}
                                   : (shape){true, false, K, N, rows, 0.0f, 1};
            break;
        case YF_OP_CONV2D:
        case YF_OP_CONV2D_DX:
        case YF_OP_CONV2D_T:
        case YF_OP_CONV2D_DW:
            sh[n_sh++] = conv_shape(g, nd, rows);
            convs = true;
            break;
        default:
            continue;
        }
        gemms += sh[n_sh - 1].reps;
        flops += yf__node_flops(g, nd, rows);
    }
    size_t big = 0;
    for (int i = 0; i < n_sh; i++) {
        size_t a = (size_t)sh[i].m * sh[i].k, b = (size_t)sh[i].k * sh[i].n,
               c = (size_t)sh[i].m * sh[i].n;
        big = a > big ? a : big, big = b > big ? b : big, big = c > big ? c : big;
    }
    float *A = calloc(big + 64, 4), *B = calloc(big + 64, 4), *C = calloc(big + 64, 4);
    for (size_t i = 0; i < big; i++)
        A[i] = (float)(i % 7) * 0.01f, B[i] = (float)(i % 5) * 0.01f;
    size_t n = yf_dataset_count(d, YF_SPLIT_TRAIN), *idx = malloc(rows * sizeof *idx);
    double *yf = malloc(rounds * sizeof *yf), *bl = malloc(rounds * sizeof *bl),
           *own = malloc(rounds * sizeof *own), *drv = malloc(rounds * sizeof *drv);
    yf__exec ex = {.rows = rows, .threads = threads, .team = threads, .g = &m->train};
    float *saved = malloc(3 * m->param_floats * sizeof *saved);
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (int st = 0; st < steps; st++) {
            for (int i = 0; i < rows; i++)
                idx[i] = ((size_t)st * rows + i) % n;
            double loss;
            if (yf_train_step(m, d, idx, rows, &loss, &err)) {
                fprintf(stderr, "roofline: %s\n", yf_error_format(&err));
                return 1;
            }
        }
        yf[r] = flops * steps / (now() - t0) * 1e-9;
        yf__gemm_mode step_mode = yf__gemm_set_mode(YF__GEMM_BLIS); /* BLIS alone */
        t0 = now();
        for (int st = 0; st < steps; st++)
            for (int i = 0; i < n_sh; i++) {
                const shape *q = &sh[i];
                int lda = q->ta ? q->m : q->k, ldb = q->tb ? q->k : q->n;
                for (int rep = 0; rep < q->reps; rep++)
                    yf__sgemm(q->ta, q->tb, q->m, q->n, q->k, 1.0f, A, lda, B, ldb, q->beta, C,
                              q->n, threads);
            }
        bl[r] = flops * steps / (now() - t0) * 1e-9;
        own[r] = convs ? NAN : flops / replay(g, &ex, steps) * 1e-9;
        /* and the step's GEMMs as the step makes them (src/gemm.c), alone on
         * its own buffers */
        yf__gemm_set_mode(step_mode);
        drv[r] = convs ? NAN : flops / replay(g, &ex, steps) * 1e-9;
        /* and what the optimizer update alone costs (the model's state is
         * put back afterwards, so the next round trains on) */
        size_t bytes = m->param_floats * sizeof(float);
        memcpy(saved, m->param_block, bytes);
        if (m->m_block)
            memcpy(saved + m->param_floats, m->m_block, bytes);
        if (m->v_block)
            memcpy(saved + 2 * m->param_floats, m->v_block, bytes);
        uint64_t step_was = m->step;
        t0 = now();
        for (int st = 0; st < steps; st++)
            yf__optim_step(m);
        double opt_s = now() - t0;
        memcpy(m->param_block, saved, bytes);
        if (m->m_block)
            memcpy(m->m_block, saved + m->param_floats, bytes);
        if (m->v_block)
            memcpy(m->v_block, saved + 2 * m->param_floats, bytes);
        m->step = step_was;
        double opt = opt_s / steps, step = flops / (yf[r] * 1e9);
        printf("round %d: yaflow step %.1f GFLOP/s; BLIS sgemm alone %.1f GFLOP/s on shared "
               "buffers (ratio %.3f)", r + 1, yf[r], bl[r], yf[r] / bl[r]);
        if (!convs)
            printf(", %.1f on the step's own (ratio %.3f); the step's GEMMs alone %.1f "
                   "(the step keeps %.3f of it)", own[r], yf[r] / own[r], drv[r],
                   yf[r] / drv[r]);
        printf("; optimizer %.3f ms of a %.3f ms step (%.1f%%)\n", opt * 1e3, step * 1e3,
               100 * opt / step);
    }
    qsort(yf, rounds, sizeof *yf, cmp);
    qsort(bl, rounds, sizeof *bl, cmp);
    qsort(own, rounds, sizeof *own, cmp);
    qsort(drv, rounds, sizeof *drv, cmp);
    printf("%s, batch %d, %d thread(s), %d GEMMs per step (%.1f MFLOP%s): median yaflow %.1f "
           "GFLOP/s; BLIS %.1f GFLOP/s on shared buffers, ratio %.3f; ", path, rows, threads,
           gemms, flops * 1e-6, convs ? ", convolutions as their im2col GEMMs" : "",
           yf[rounds / 2], bl[rounds / 2], yf[rounds / 2] / bl[rounds / 2]);
    if (convs)
        printf("the step's own buffers: not measured (its convolutions are not single BLIS "
               "calls)\n");
    else
        printf("BLIS %.1f GFLOP/s on the step's own buffers, ratio %.3f; the step's GEMMs "
               "alone %.1f GFLOP/s, the step keeping %.3f of it\n", own[rounds / 2],
               yf[rounds / 2] / own[rounds / 2], drv[rounds / 2], yf[rounds / 2] / drv[rounds / 2]);
    for (int i = 0; per_gemm && i < g->n; i++) {
        const yf__gnode *nd = &g->node[g->order[i]];
        if (!dense_gemm(nd))
            continue;
        double best[2] = {INFINITY, INFINITY};
        yf__gemm_mode step_mode = yf__gemm_set_mode(YF__GEMM_BLIS);
        for (int rep = 0; rep < 200; rep++)
            for (int w = 0; w < 2; w++) {
                yf__gemm_set_mode(w ? step_mode : YF__GEMM_BLIS);
                double t0 = now();
                yf__dense_sgemm(nd, &ex);
                double t = now() - t0;
                best[w] = t < best[w] ? t : best[w];
            }
        yf__gemm_set_mode(step_mode);
        double f = yf__node_flops(g, nd, rows) * 1e-9;
        printf("  %-12s %-9s %7.3f MFLOP: BLIS %6.1f GFLOP/s, the step's %6.1f (%.3fx)\n",
               nd->name, yf__op_names[nd->op], f * 1e3, f / best[0], f / best[1],
               best[0] / best[1]);
    }
    free(A), free(B), free(C), free(idx), free(yf), free(bl), free(own), free(drv), free(saved);
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(s);
    return 0;
}
