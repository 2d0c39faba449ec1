/* Winograd F(2x2, 3x3) convolutions (Lavin & Gray, 2016): each 2x2 tile
 * of output comes from a 4x4 tile of input d and the 3x3 filter g as
 *
 *     Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A,
 *
 * 16 products instead of 36. Over all tiles and channels the products are
 * 16 GEMMs (one per position of the 4x4 transformed tile) through BLIS:
 * M[k] (Co × T) = U[k] (Co × C) · V[k] (C × T) for T tiles. The gradients
 * are the same bilinear form read backwards: the input gradient is
 * B [(G g Gᵀ) ⊙ (A dY Aᵀ)] Bᵀ added into overlapping 4x4 tiles, the
 * filter gradient Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G, again 16 GEMMs.
 *
 * Inputs are copied into zero-padded planes covering every tile, so that
 * the transforms need no bounds checks. Blocks of examples are split among
 * the threads, each with its slice of the node's scratch; the filter
 * transform U is shared, at the start of the scratch. */
#include "conv.h"
#include "vec.h"

#include <string.h>

bool yf__winograd_enabled = true;

/* Tiles per GEMM: about this many (whole examples; 10 of MNIST's 14x14
 * planes). Measured on the CNN classifier's second layer, one thread:
 * 128 tiles 25% slower than 512, 256 10% slower, 1024 the same, 2048 and
 * more slower again. */
#define WINO_TILES 512

/* The transforms work on 16 tiles of a tile row at once, as vectors (GCC
 * vector extensions: one AVX-512 register, two AVX2 ones). Lanes past the
 * row's end compute garbage that lands in slots written later or in the
 * padding of each row of V and M (rows T + LANES long). */
typedef struct {
    int Th, Tw, P;  /* tile rows, columns, tiles per example */
    int L;          /* tile columns rounded up to whole vectors */
    int Hp, Wx;     /* padded input plane: 2·Th + 2 rows of 2·L + 2 */
    int Wy;         /* padded output gradient plane: 2·Th rows of 2·L */
    int nb;         /* examples per block */
    size_t V, M;    /* floats of the transformed inputs and outputs of a block */
    size_t pad;     /* floats of one example's padded planes and a row */
    size_t U;       /* floats of the transformed filters */
} plan;

static plan plan_of(const yf__geom *g)
{
    plan p;
    p.Th = (g->Ho + 1) / 2, p.Tw = (g->Wo + 1) / 2, p.P = p.Th * p.Tw;
    p.L = (p.Tw + LANES - 1) / LANES * LANES;
    p.Hp = 2 * p.Th + 2, p.Wx = 2 * p.L + 2, p.Wy = 2 * p.L;
    p.nb = WINO_TILES / p.P;
    p.nb = p.nb < 1 ? 1 : p.nb > 128 ? 128 : p.nb;
    size_t ld = (size_t)p.nb * p.P + LANES;
    p.V = (size_t)16 * g->C * ld;
    p.M = (size_t)16 * g->Co * ld;
    p.pad = (size_t)g->C * p.Hp * p.Wx + (size_t)g->Co * 2 * p.Th * p.Wy + 2 * LANES;
    p.U = (size_t)16 * g->Co * g->C;
    return p;
}

bool yf__winograd_fits(const yf__geom *g, const yf__window *w)
{
    return w->kh == 3 && w->kw == 3 && w->sh == 1 && w->sw == 1 && w->dh == 1 && w->dw == 1 &&
           g->G == 1 && w->ph <= 2 && w->pw <= 2 && g->C >= 8 && g->Co >= 8;
}

bool yf__winograd_ok(const yf__geom *g, const yf__window *w)
{
    return yf__winograd_enabled && yf__winograd_fits(g, w);
}

size_t yf__winograd_scratch(const yf__geom *g)
{
    plan p = plan_of(g);
    return p.V + p.M + p.pad + p.U;
}

/* U[k][co][c] = G g Gᵀ for each filter g = W[co][c] (3x3) */
static void filter_transform(const float *W, float *U, int Co, int C)
{
    size_t stride = (size_t)Co * C;
    for (int co = 0; co < Co; co++)
        for (int c = 0; c < C; c++) {
            const float *f = W + ((size_t)co * C + c) * 9;
            float a[4][3], u[4][4];
            for (int j = 0; j < 3; j++) { /* G g */
                a[0][j] = f[j];
                a[1][j] = 0.5f * (f[j] + f[3 + j] + f[6 + j]);
                a[2][j] = 0.5f * (f[j] - f[3 + j] + f[6 + j]);
                a[3][j] = f[6 + j];
            }
            for (int i = 0; i < 4; i++) { /* (G g) Gᵀ */
                u[i][0] = a[i][0];
                u[i][1] = 0.5f * (a[i][0] + a[i][1] + a[i][2]);
                u[i][2] = 0.5f * (a[i][0] - a[i][1] + a[i][2]);
                u[i][3] = a[i][2];
            }
            for (int k = 0; k < 16; k++)
                U[k * stride + (size_t)co * C + c] = u[k / 4][k % 4];
        }
}

/* dW[co][c] (+)= Gᵀ dU G for the 4x4 dU[k][co][c] */
static void filter_untransform(const float *dU, float *dW, bool accumulate, int Co, int C)
{
    size_t stride = (size_t)Co * C;
    for (int co = 0; co < Co; co++)
        for (int c = 0; c < C; c++) {
            float u[4][4], a[3][4];
            for (int k = 0; k < 16; k++)
                u[k / 4][k % 4] = dU[k * stride + (size_t)co * C + c];
            for (int j = 0; j < 4; j++) { /* Gᵀ dU */
                a[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                a[1][j] = 0.5f * (u[1][j] - u[2][j]);
                a[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            float *f = dW + ((size_t)co * C + c) * 9;
            for (int i = 0; i < 3; i++) { /* (Gᵀ dU) G */
                float g0 = a[i][0] + 0.5f * (a[i][1] + a[i][2]);
                float g1 = 0.5f * (a[i][1] - a[i][2]);
                float g2 = 0.5f * (a[i][1] + a[i][2]) + a[i][3];
                f[3 * i] = (accumulate ? f[3 * i] : 0.0f) + g0;
                f[3 * i + 1] = (accumulate ? f[3 * i + 1] : 0.0f) + g1;
                f[3 * i + 2] = (accumulate ? f[3 * i + 2] : 0.0f) + g2;
            }
        }
}

/* xp (C, Hp, Wx) = x (C, H, W) shifted by the padding, zero around */
static void pad_input(const float *x, const yf__geom *g, const yf__window *w, const plan *p,
                      float *xp)
{
    int rows = g->H < p->Hp - w->ph ? g->H : p->Hp - w->ph;
    int cols = g->W < p->Wx - w->pw ? g->W : p->Wx - w->pw;
    memset(xp, 0, (size_t)g->C * p->Hp * p->Wx * sizeof(float));
    for (int c = 0; c < g->C; c++)
        for (int h = 0; h < rows; h++)
            memcpy(xp + ((size_t)c * p->Hp + h + w->ph) * p->Wx + w->pw,
                   x + ((size_t)c * g->H + h) * g->W, cols * sizeof(float));
}

/* dyp (Co, 2·Th, Wy) = dy (Co, Ho, Wo), zero around */
static void pad_grad(const float *dy, const yf__geom *g, const plan *p, float *dyp)
{
    memset(dyp, 0, (size_t)g->Co * 2 * p->Th * p->Wy * sizeof(float));
    for (int co = 0; co < g->Co; co++)
        for (int h = 0; h < g->Ho; h++)
            memcpy(dyp + ((size_t)co * 2 * p->Th + h) * p->Wy, dy + ((size_t)co * g->Ho + h) * g->Wo,
                   g->Wo * sizeof(float));
}

/* V[k][c][t0 + tile] = Bᵀ d B for each 4x4 tile d of the padded planes xp
 * of one example; V's rows are ld long */
YF__CLONES static void input_transform(const float *xp, const plan *p, int C, float *V,
                                       size_t ld, size_t t0)
{
    size_t ks = (size_t)C * ld;
    for (int c = 0; c < C; c++)
        for (int th = 0; th < p->Th; th++)
            for (int tw = 0; tw < p->Tw; tw += LANES) {
                vf d[4][4];
                for (int i = 0; i < 4; i++) { /* columns 2·tw + j of the tiles' row i */
                    const float *r = xp + ((size_t)c * p->Hp + 2 * th + i) * p->Wx + 2 * tw;
                    vf a = load(r), b = load(r + LANES), a2 = load(r + 2), b2 = load(r + 2 + LANES);
                    d[i][0] = even(a, b), d[i][1] = odd(a, b);
                    d[i][2] = even(a2, b2), d[i][3] = odd(a2, b2);
                }
                float *v = V + (size_t)c * ld + t0 + (size_t)th * p->Tw + tw;
                for (int j = 0; j < 4; j++) { /* Bᵀ d, column j */
                    vf t0_ = d[0][j] - d[2][j], t1 = d[1][j] + d[2][j];
                    vf t2 = d[2][j] - d[1][j], t3 = d[1][j] - d[3][j];
                    d[0][j] = t0_, d[1][j] = t1, d[2][j] = t2, d[3][j] = t3;
                }
                for (int i = 0; i < 4; i++) { /* (Bᵀ d) B */
                    store(v + (4 * i + 0) * ks, d[i][0] - d[i][2]);
                    store(v + (4 * i + 1) * ks, d[i][1] + d[i][2]);
                    store(v + (4 * i + 2) * ks, d[i][2] - d[i][1]);
                    store(v + (4 * i + 3) * ks, d[i][1] - d[i][3]);
                }
            }
}

/* Z[k][co][t0 + tile] = A dY Aᵀ for each 2x2 tile of dyp, one example's
 * padded output gradient */
YF__CLONES static void grad_transform(const float *dyp, const yf__geom *g, const plan *p,
                                      float *Z, size_t ld, size_t t0)
{
    size_t ks = (size_t)g->Co * ld;
    for (int co = 0; co < g->Co; co++)
        for (int th = 0; th < p->Th; th++)
            for (int tw = 0; tw < p->Tw; tw += LANES) {
                const float *r0 = dyp + ((size_t)co * 2 * p->Th + 2 * th) * p->Wy + 2 * tw;
                const float *r1 = r0 + p->Wy;
                vf a0 = load(r0), a1 = load(r0 + LANES), b0 = load(r1), b1 = load(r1 + LANES);
                vf a = even(a0, a1), b = odd(a0, a1), c = even(b0, b1), d = odd(b0, b1);
                vf q[4][2] = {{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}}; /* A dY */
                float *z = Z + (size_t)co * ld + t0 + (size_t)th * p->Tw + tw;
                for (int i = 0; i < 4; i++) { /* (A dY) Aᵀ */
                    store(z + (4 * i + 0) * ks, q[i][0]);
                    store(z + (4 * i + 1) * ks, q[i][0] + q[i][1]);
                    store(z + (4 * i + 2) * ks, q[i][0] - q[i][1]);
                    store(z + (4 * i + 3) * ks, -q[i][1]);
                }
            }
}

/* y (Co, Ho, Wo) of one example = Aᵀ m A + b for each tile m of M; row
 * (2·LANES floats) holds a vector's two output rows' worth */
YF__CLONES static void output_transform(const float *M, const yf__geom *g, const plan *p,
                                        const float *b, float *y, size_t ld, size_t t0,
                                        float *row)
{
    size_t ks = (size_t)g->Co * ld;
    for (int co = 0; co < g->Co; co++) {
        float bc = b ? b[co] : 0.0f;
        for (int th = 0; th < p->Th; th++)
            for (int tw = 0; tw < p->Tw; tw += LANES) {
                const float *m = M + (size_t)co * ld + t0 + (size_t)th * p->Tw + tw;
                vf s[2][4];
                for (int j = 0; j < 4; j++) { /* Aᵀ m */
                    vf m0 = load(m + (0 + j) * ks), m1 = load(m + (4 + j) * ks);
                    vf m2 = load(m + (8 + j) * ks), m3 = load(m + (12 + j) * ks);
                    s[0][j] = m0 + m1 + m2, s[1][j] = m1 - m2 - m3;
                }
                int n = 2 * (p->Tw - tw) < 2 * LANES ? 2 * (p->Tw - tw) : 2 * LANES;
                n = n < g->Wo - 2 * tw ? n : g->Wo - 2 * tw;
                for (int i = 0; i < 2 && 2 * th + i < g->Ho; i++) { /* (Aᵀ m) A */
                    vf e = s[i][0] + s[i][1] + s[i][2], o = s[i][1] - s[i][2] - s[i][3];
                    store(row, zip_lo(e, o));
                    store(row + LANES, zip_hi(e, o));
                    float *out = y + ((size_t)co * g->Ho + 2 * th + i) * g->Wo + 2 * tw;
                    for (int k = 0; k < n; k++)
                        out[k] = row[k] + bc;
                }
            }
    }
}

/* dxp (C, Hp, Wx) of one example = Σ over tiles of B n Bᵀ for each tile n
 * of N, the tiles overlapping by two rows and columns */
YF__CLONES static void input_untransform(const float *N, const plan *p, int C, float *dxp,
                                         size_t ld, size_t t0)
{
    size_t ks = (size_t)C * ld;
    memset(dxp, 0, (size_t)C * p->Hp * p->Wx * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int th = 0; th < p->Th; th++) {
            vf carry[4][2];
            memset(carry, 0, sizeof carry); /* the last tile's columns 2 and 3, for the next vector */
            for (int tw = 0; tw < p->Tw; tw += LANES) {
                const float *n = N + (size_t)c * ld + t0 + (size_t)th * p->Tw + tw;
                int valid = p->Tw - tw;
                vf q[4][4];
                for (int j = 0; j < 4; j++) { /* B n */
                    vf n0 = first(load(n + (0 + j) * ks), valid);
                    vf n1 = first(load(n + (4 + j) * ks), valid);
                    vf n2 = first(load(n + (8 + j) * ks), valid);
                    vf n3 = first(load(n + (12 + j) * ks), valid);
                    q[0][j] = n0, q[1][j] = n1 - n2 + n3, q[2][j] = n2 + n1 - n0, q[3][j] = -n3;
                }
                for (int i = 0; i < 4; i++) { /* (B n) Bᵀ, tile columns 0..3 */
                    vf c0 = q[i][0], c1 = q[i][1] - q[i][2] + q[i][3];
                    vf c2 = q[i][2] + q[i][1] - q[i][0], c3 = -q[i][3];
                    /* column 2m: tile m's column 0 and tile m−1's column 2 */
                    vf e = c0 + shift_in(c2, carry[i][0]), o = c1 + shift_in(c3, carry[i][1]);
                    carry[i][0] = c2, carry[i][1] = c3;
                    float *r = dxp + ((size_t)c * p->Hp + 2 * th + i) * p->Wx + 2 * tw;
                    store(r, load(r) + zip_lo(e, o));
                    store(r + LANES, load(r + LANES) + zip_hi(e, o));
                }
            }
            if (p->Tw % LANES == 0) /* the last tile's spill past a full vector */
                for (int i = 0; i < 4; i++) {
                    float *r = dxp + ((size_t)c * p->Hp + 2 * th + i) * p->Wx + 2 * p->Tw;
                    r[0] += carry[i][0][LANES - 1], r[1] += carry[i][1][LANES - 1];
                }
        }
}

/* dx (C, H, W) = the padded gradient dxp cut back to the input (+ b);
 * input pixels no tile reaches get 0 */
static void unpad_input(const float *dxp, const yf__geom *g, const yf__window *w,
                        const plan *p, const float *b, float *dx)
{
    for (int c = 0; c < g->C; c++) {
        float bc = b ? b[c] : 0.0f;
        for (int h = 0; h < g->H; h++) {
            float *o = dx + ((size_t)c * g->H + h) * g->W;
            int hp = h + w->ph;
            for (int v = 0; v < g->W; v++) {
                int vp = v + w->pw;
                o[v] = (hp < p->Hp && vp < p->Wx ? dxp[((size_t)c * p->Hp + hp) * p->Wx + vp]
                                                 : 0.0f) + bc;
            }
        }
    }
}

/* the 16 GEMMs: out[k] (m × n) = op(a[k]) · op(b[k]) (+ out[k] when beta
 * is 1), a[k], b[k] and out[k] as_/bs_/os_ floats apart */
static void gemm16(bool ta, bool tb, int m, int n, int k, const float *a, size_t as_, int lda,
                   const float *b, size_t bs_, int ldb, float beta, float *out, size_t os_,
                   int ldo)
{
    for (int i = 0; i < 16; i++)
        yf__sgemm(ta, tb, m, n, k, 1.0f, a + i * as_, lda, b + i * bs_, ldb, beta, out + i * os_,
                  ldo, 1);
}

/* The start of the forward and input-gradient kernels: the plan, and the
 * filter transform U, shared by the threads, at the start of the scratch */
static plan start(const yf__geom *g, const float *W, float *scratch)
{
    plan p = plan_of(g);
    filter_transform(W, scratch, g->Co, g->C);
    return p;
}

/* thread t's slice of the scratch after U: V (or N), M (or Z), the padded
 * planes */
static float *slice(const plan *p, float *scratch, int t)
{
    return scratch + p->U + (size_t)t * (p->V + p->M + p->pad);
}

void yf__winograd_fwd(const float *x, size_t x_size, const float *W, const float *b, float *y,
                      size_t y_size, const yf__geom *g, const yf__window *w, float *scratch,
                      const yf__exec *ex)
{
    plan p = start(g, W, scratch);
    const float *U = scratch;
    YF__FOR_BLOCKS(ex, p.nb, r0, cnt, t, {
        float *V = slice(&p, scratch, t), *M = V + p.V, *xp = M + p.M;
        float *row = xp + p.pad - 2 * LANES;
        size_t T = (size_t)cnt * p.P, ld = T + LANES;
        for (int e = 0; e < cnt; e++) {
            pad_input(x + (size_t)(r0 + e) * x_size, g, w, &p, xp);
            input_transform(xp, &p, g->C, V, ld, (size_t)e * p.P);
        }
        gemm16(false, false, g->Co, (int)T, g->C, U, (size_t)g->Co * g->C, g->C, V,
               (size_t)g->C * ld, (int)ld, 0.0f, M, (size_t)g->Co * ld, (int)ld);
        for (int e = 0; e < cnt; e++)
            output_transform(M, g, &p, b, y + (size_t)(r0 + e) * y_size, ld, (size_t)e * p.P, row);
    });
}

void yf__winograd_dx(const float *dy, size_t dy_size, const float *W, const float *b, float *dx,
                     size_t dx_size, const yf__geom *g, const yf__window *w, float *scratch,
                     const yf__exec *ex)
{
    plan p = start(g, W, scratch);
    const float *U = scratch;
    YF__FOR_BLOCKS(ex, p.nb, r0, cnt, t, {
        float *N = slice(&p, scratch, t), *Z = N + p.V, *dxp = Z + p.M;
        float *dyp = dxp + (size_t)g->C * p.Hp * p.Wx;
        size_t T = (size_t)cnt * p.P, ld = T + LANES;
        for (int e = 0; e < cnt; e++) {
            pad_grad(dy + (size_t)(r0 + e) * dy_size, g, &p, dyp);
            grad_transform(dyp, g, &p, Z, ld, (size_t)e * p.P);
        }
        gemm16(true, false, g->C, (int)T, g->Co, U, (size_t)g->Co * g->C, g->C, Z,
               (size_t)g->Co * ld, (int)ld, 0.0f, N, (size_t)g->C * ld, (int)ld);
        for (int e = 0; e < cnt; e++) {
            input_untransform(N, &p, g->C, dxp, ld, (size_t)e * p.P);
            unpad_input(dxp, g, w, &p, b, dx + (size_t)(r0 + e) * dx_size);
        }
    });
}

void yf__winograd_dw(const float *x, size_t x_size, const float *dy, size_t dy_size, float *dW,
                     bool accumulate, const yf__geom *g, const yf__window *w, float *scratch,
                     const yf__exec *ex)
{
    plan p = plan_of(g);
    size_t per = p.V + p.M + p.pad + p.U;
    /* P chunks, P the model's thread count, partials added in chunk order:
     * the result does not depend on how many threads ran (conv.c) */
    int nblk = (ex->rows + p.nb - 1) / p.nb, P = ex->g->threads < nblk ? ex->g->threads : nblk;
    int T_ = ex->threads < P ? ex->threads : P;
#pragma omp parallel num_threads(T_) if (T_ > 1)
    for (int c = omp_get_thread_num(); c < P; c += omp_get_num_threads()) {
        float *V = scratch + (size_t)c * per, *Z = V + p.V, *xp = Z + p.M, *dU = xp + p.pad;
        float *dyp = xp + (size_t)g->C * p.Hp * p.Wx;
        memset(dU, 0, p.U * sizeof(float));
        for (int blk = (int)((long)nblk * c / P); blk < (int)((long)nblk * (c + 1) / P); blk++) {
            int r0 = blk * p.nb, cnt = ex->rows - r0 < p.nb ? ex->rows - r0 : p.nb;
            size_t T = (size_t)cnt * p.P, ld = T + LANES;
            for (int e = 0; e < cnt; e++) {
                pad_input(x + (size_t)(r0 + e) * x_size, g, w, &p, xp);
                input_transform(xp, &p, g->C, V, ld, (size_t)e * p.P);
                pad_grad(dy + (size_t)(r0 + e) * dy_size, g, &p, dyp);
                grad_transform(dyp, g, &p, Z, ld, (size_t)e * p.P);
            }
            gemm16(false, true, g->Co, g->C, (int)T, Z, (size_t)g->Co * ld, (int)ld, V,
                   (size_t)g->C * ld, (int)ld, 1.0f, dU, (size_t)g->Co * g->C, g->C);
        }
    }
    float *sum = scratch + p.V + p.M + p.pad; /* thread 0's partial */
    for (int t = 1; t < P; t++) {
        const float *part = scratch + (size_t)t * per + p.V + p.M + p.pad;
        for (size_t i = 0; i < p.U; i++)
            sum[i] += part[i];
    }
    filter_untransform(sum, dW, accumulate, g->Co, g->C);
}
