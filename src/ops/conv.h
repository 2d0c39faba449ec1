/* What the two convolution algorithms share: im2col + GEMM (conv.c) and
 * Winograd F(2x2, 3x3) (winograd.c), which conv.c picks for 3x3 stride 1
 * filters. */
#ifndef YF_OPS_CONV_H
#define YF_OPS_CONV_H

#include "../internal.h"

#include <omp.h>

/* The geometry of a convolution: input (C, H, W), output (Co, Ho, Wo),
 * K = C/groups · kh · kw, G groups. */
typedef struct {
    int C, H, W, Co, Ho, Wo, K, G;
} yf__geom;

/* The geometry of the convolution from x to y (a transposed convolution's
 * or an input gradient's is the one from its output back to its input). */
yf__geom yf__conv_geom(const yf__gnode *x, const yf__gnode *y, const yf__window *w);

/* Runs the body (the last arguments) for blocks of at most nb examples, the
 * blocks split among the threads a node may use (t: the thread's number). */
#define YF__FOR_BLOCKS(ex, nb, first, count, t, ...)                         \
    do {                                                                     \
        int nblk_ = ((ex)->rows + (nb) - 1) / (nb);                          \
        int team_ = (ex)->threads < nblk_ ? (ex)->threads : nblk_;           \
        _Pragma("omp parallel for schedule(static) num_threads(team_) if (team_ > 1)") \
        for (int b_ = 0; b_ < nblk_; b_++) {                                 \
            int t = omp_get_thread_num();                                    \
            int first = b_ * (nb);                                           \
            int count = (ex)->rows - first < (nb) ? (ex)->rows - first : (nb); \
            __VA_ARGS__;                                                     \
        }                                                                    \
    } while (0)

/* Whether the Winograd kernels take this convolution (3x3, stride 1, no
 * dilation, one group, enough channels for the GEMMs to pay). Tests turn
 * them off to compare the two algorithms. */
extern bool yf__winograd_enabled;
bool yf__winograd_fits(const yf__geom *g, const yf__window *w); /* the shape alone */
bool yf__winograd_ok(const yf__geom *g, const yf__window *w);
/* Scratch floats per thread that the Winograd kernels need (the filter
 * transform included, which the forward and input gradient share). */
size_t yf__winograd_scratch(const yf__geom *g);

/* y = conv(x, W) + b over ex->rows examples; x (R, C, H, W), y (R, Co, Ho,
 * Wo), x_size and y_size floats apart */
void yf__winograd_fwd(const float *x, size_t x_size, const float *W, const float *b, float *y,
                      size_t y_size, const yf__geom *g, const yf__window *w, float *scratch,
                      const yf__exec *ex);
/* dx = the input gradient given dy (bias b: a transposed convolution's
 * output starts from it) */
void yf__winograd_dx(const float *dy, size_t dy_size, const float *W, const float *b, float *dx,
                     size_t dx_size, const yf__geom *g, const yf__window *w, float *scratch,
                     const yf__exec *ex);
/* dW (Co, C, 3, 3) (+)= the weight gradient (accumulate: add to dW) */
void yf__winograd_dw(const float *x, size_t x_size, const float *dy, size_t dy_size, float *dW,
                     bool accumulate, const yf__geom *g, const yf__window *w, float *scratch,
                     const yf__exec *ex);

#endif
