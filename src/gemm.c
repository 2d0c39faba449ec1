/* GEMMs on BLIS's own microkernel, with yaflow's packing and loop nest.
 *
 * BLIS's sgemm is three parts: the microkernel (an MR × NR block of C from
 * a panel of A and one of B, in assembly), the packing of A and B into
 * those panels, and the five loops around them. In a training step (a
 * batch of 128 against layers of 150 to 784 units) BLIS spends about a
 * sixth of its time around the microkernel, Debian's BLIS 0.9 packing
 * skx's panels through a generic path. Here the same microkernel gets the
 * same panels, packed by copies and by 16 × 16 blocks turned in
 * registers, in the same blocks: K cut as BLIS cuts it
 * (bli_determine_blocksize_f: KC, or everything left when that is at most
 * KC's maximum), C's first K block taking beta and the rest adding to it,
 * the problem transposed when the microkernel prefers the other storage
 * of C, as bli_gemm_front does. Each element of C is therefore summed in
 * the same order as by bli_sgemm, and comes out with the same bits
 * (tests/test_gemm.c compares them over many shapes); only the time spent
 * around the microkernel changes (docs/performance.md). Several threads
 * share the packing and split C's blocks, never K. */
#include "internal.h"

#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sgemm_ukr_ft ukr;
    cntx_t *cntx;
    int mr, nr, kc, kc_max, mc, mc_max, nc, nc_max;
    bool prefers_rows;
    bool usable; /* a native microkernel and no small-matrix path */
    bool fast;   /* panel widths packed faster than BLIS packs them */
} kernel;

static kernel K_;
static yf__gemm_mode mode = YF__GEMM_AUTO;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* A buffer per thread for each packed operand, grown when needed, kept
 * for the thread's life and freed when it ends (a thread-specific value
 * with a destructor: the caller's own threads come and go). Not through
 * yf__aligned_alloc, whose failures a test makes every caller report:
 * these are scratch, and without them the GEMM goes to BLIS, which
 * allocates its own the same way. */
typedef struct {
    float *buf[2];
    size_t cap[2]; /* floats */
} scratch;

static pthread_key_t scratch_key;
static bool have_key;

static void scratch_free(void *p)
{
    scratch *s = p;
    free(s->buf[0]);
    free(s->buf[1]);
    free(s);
}

static void query(void)
{
    cntx_t *c = bli_gks_query_cntx();
    kernel k = {
        .ukr = (sgemm_ukr_ft)bli_cntx_get_l3_nat_ukr_dt(BLIS_FLOAT, BLIS_GEMM_UKR, c),
        .cntx = c,
        .mr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, c),
        .nr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, c),
        .kc = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_KC, c),
        .kc_max = (int)bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_KC, c),
        .mc = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MC, c),
        .mc_max = (int)bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_MC, c),
        .nc = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NC, c),
        .nc_max = (int)bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_NC, c),
        .prefers_rows = bli_cntx_l3_nat_ukr_prefers_rows_dt(BLIS_FLOAT, BLIS_GEMM_UKR, c),
    };
    /* BLIS's small-matrix path (sup) would not pack at all: where it has
     * one for floats, its sums would not be ours; leave those to it */
    bool sup = bli_cntx_get_l3_sup_thresh_dt(BLIS_FLOAT, BLIS_MT, c) > 0 ||
               bli_cntx_get_l3_sup_thresh_dt(BLIS_FLOAT, BLIS_NT, c) > 0 ||
               bli_cntx_get_l3_sup_thresh_dt(BLIS_FLOAT, BLIS_KT, c) > 0;
    k.usable = k.ukr && k.mr > 0 && k.mr <= 64 && k.nr > 0 && k.nr <= 64 && k.kc > 0 &&
               k.kc_max >= k.kc && k.mc >= k.mr && k.mc_max >= k.mc && k.nc >= k.nr &&
               k.nc_max >= k.nc && !sup;
    /* the panel widths whose packing turns 16 × 16 blocks in registers
     * (skx's 32 × 12); with others the scalar packing here loses to
     * BLIS's (0.85-0.97 of its speed, measured for sandybridge, penryn,
     * excavator, steamroller and generic) */
    k.fast = (k.mr % 16 == 0 || k.mr == 12) && (k.nr % 16 == 0 || k.nr == 12);
    K_ = k;
    have_key = !pthread_key_create(&scratch_key, scratch_free);
    const char *env = getenv("YAFLOW_OWN_GEMM"); /* 0: every GEMM to BLIS, to compare */
    if (mode == YF__GEMM_AUTO && env && !strcmp(env, "0"))
        mode = YF__GEMM_BLIS;
}

/* BLIS's forward block size: b, or all that is left when that is at most
 * b_max */
static int block(int i, int dim, int b, int b_max)
{
    int left = dim - i;
    return left <= b_max ? left : b;
}

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef float v4u __attribute__((vector_size(16), aligned(4), may_alias));

/* r[0..15] transposed in place: at each scale h (1, 2, 4, 8) the
 * off-diagonal h × h blocks of each 2h × 2h block change places (rows i
 * and i + h swap their odd and even h-blocks respectively). */
#define YF__TURN(h, lo, hi)                                                                 \
    for (int i = 0; i < 16; i++)                                                            \
        if (!(i & (h))) {                                                                   \
            v16 a = r[i], b = r[i + (h)];                                                   \
            r[i] = __builtin_shufflevector(a, b, lo);                                       \
            r[i + (h)] = __builtin_shufflevector(a, b, hi);                                 \
        }
#define YF__L(...) __VA_ARGS__

static inline __attribute__((always_inline)) void transpose16(v16 r[16])
{
    YF__TURN(1, YF__L(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
             YF__L(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
    YF__TURN(2, YF__L(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
             YF__L(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
    YF__TURN(4, YF__L(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
             YF__L(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
    YF__TURN(8, YF__L(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
             YF__L(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
}
#undef YF__TURN
#undef YF__L

/* Panels of w rows of X (rows × kc, element (i, p) at x[i·rs + p·cs]),
 * each kc × w with the w contiguous, zero-padded past the last row: the
 * packed A (w = MR) or Bᵀ (w = NR) the microkernel reads. */
YF__CLONES static void pack(int rows, int kc, const float *x, ptrdiff_t rs, ptrdiff_t cs, int w,
                            float *out)
{
    for (int i0 = 0; i0 < rows; i0 += w) {
        int n = rows - i0 < w ? rows - i0 : w;
        float *d = out + (size_t)i0 * kc;
        const float *s = x + i0 * rs;
        if (rs == 1 && n == w && w % 16 == 0) { /* a whole panel, in vectors */
            for (int p = 0; p < kc; p++)
                for (int i = 0; i < w; i += 16)
                    *(v16u *)(d + (size_t)p * w + i) = *(const v16u *)(s + p * cs + i);
            continue;
        }
        if (rs == 1 && n == w && w == 12) {
            for (int p = 0; p < kc; p++) {
                *(v8u *)(d + (size_t)p * w) = *(const v8u *)(s + p * cs);
                *(v4u *)(d + (size_t)p * w + 8) = *(const v4u *)(s + p * cs + 8);
            }
            continue;
        }
        if (rs == 1) { /* a panel's rows side by side: copies */
            for (int p = 0; p < kc; p++) {
                const float *sp = s + p * cs;
                float *dp = d + (size_t)p * w;
                for (int i = 0; i < n; i++)
                    dp[i] = sp[i];
                for (int i = n; i < w; i++)
                    dp[i] = 0.0f;
            }
            continue;
        }
        int p = 0;
        if (cs == 1) { /* each row along p: 16 × 16 blocks turned in registers */
            static const float zero[16];
            for (int ib = 0; ib < w; ib += 16) {
                const float *row[16]; /* rows past the panel's end read zeros */
                ptrdiff_t step[16];
                for (int i = 0; i < 16; i++) {
                    bool real = ib + i < n;
                    row[i] = real ? s + (ib + i) * rs : zero;
                    step[i] = real;
                }
                int width = w - ib < 16 ? w - ib : 16;
                for (p = 0; p + 16 <= kc; p += 16) {
                    v16 r[16];
                    for (int i = 0; i < 16; i++)
                        r[i] = *(const v16u *)(row[i] + p * step[i]);
                    transpose16(r);
                    float *dp = d + (size_t)p * w + ib;
                    if (width == 16)
                        for (int q = 0; q < 16; q++)
                            *(v16u *)(dp + (size_t)q * w) = r[q];
                    else if (width == 12) /* skx's NR */
                        for (int q = 0; q < 16; q++) {
                            *(v8u *)(dp + (size_t)q * w) =
                                __builtin_shufflevector(r[q], r[q], 0, 1, 2, 3, 4, 5, 6, 7);
                            *(v4u *)(dp + (size_t)q * w + 8) =
                                __builtin_shufflevector(r[q], r[q], 8, 9, 10, 11);
                        }
                    else
                        for (int q = 0; q < 16; q++)
                            for (int i = 0; i < width; i++)
                                dp[(size_t)q * w + i] = r[q][i];
                }
            }
        }
        for (; p < kc; p++) {
            float *dp = d + (size_t)p * w;
            for (int i = 0; i < n; i++)
                dp[i] = s[i * rs + p * cs];
            for (int i = n; i < w; i++)
                dp[i] = 0.0f;
        }
    }
}

/* This thread's buffer for operand which (0: A, 1: B), of at least floats */
static float *buffer(int which, size_t floats)
{
    if (!have_key)
        return NULL;
    scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return NULL;
        if (pthread_setspecific(scratch_key, s)) {
            free(s);
            return NULL;
        }
    }
    if (s->cap[which] < floats) {
        free(s->buf[which]);
        size_t bytes = (floats * sizeof(float) + 4095) & ~(size_t)4095;
        s->buf[which] = aligned_alloc(4096, bytes);
        s->cap[which] = s->buf[which] ? bytes / sizeof(float) : 0;
    }
    return s->buf[which];
}

yf__gemm_mode yf__gemm_set_mode(yf__gemm_mode m)
{
    pthread_once(&once, query);
    yf__gemm_mode was = mode;
    mode = m;
    return was;
}

/* A product C = op(A) op(B) (+ C), as the microkernel sees it: element
 * (i, p) of A at a[i·rsa + p·csa] and so on; pa and pb the packed panels,
 * shared by the threads. */
typedef struct {
    int m, n, k;
    const float *a, *b;
    float *c, beta;
    ptrdiff_t rsa, csa, rsb, csb, rsc, csc;
    float *pa, *pb;
} product;

/* Thread t of nt's part of the product: in each block, it packs its share
 * of the panels of A and B, and once all are packed computes its share of
 * the MR × NR blocks of C (in the order one thread takes them: along A's
 * panels, then B's). The blocks of C are the threads' own, and each is
 * summed over K as with one thread, so the bits do not depend on nt. */
static void part(const kernel *K, const product *P, int t, int nt)
{
    int MR = K->mr, NR = K->nr;
    float one = 1.0f;
    auxinfo_t aux;
    memset(&aux, 0, sizeof aux);
    bli_auxinfo_set_schema_a(BLIS_PACKED_ROW_PANELS, &aux);
    bli_auxinfo_set_schema_b(BLIS_PACKED_COL_PANELS, &aux);
    bool first = true;
    for (int jc = 0, nc; jc < P->n; jc += nc) {
        nc = block(jc, P->n, K->nc, K->nc_max);
        int nbp = (nc + NR - 1) / NR; /* B's panels */
        for (int pc = 0, kc; pc < P->k; pc += kc) {
            kc = block(pc, P->k, K->kc, K->kc_max);
            float *beta_now = pc ? &one : (float *)&P->beta;
            for (int ic = 0, mc; ic < P->m; ic += mc) {
                mc = block(ic, P->m, K->mc, K->mc_max);
                int nap = (mc + MR - 1) / MR; /* A's panels */
                if (nt > 1 && !first) { /* the last blocks read the panels */
#pragma omp barrier
                }
                first = false;
                if (ic == 0) { /* B's panels: NR columns of op(B), rows of Bᵀ */
                    int p0 = nbp * t / nt, p1 = nbp * (t + 1) / nt;
                    int rows = (p1 * NR < nc ? p1 * NR : nc) - p0 * NR;
                    if (rows > 0)
                        pack(rows, kc, P->b + pc * P->rsb + (jc + p0 * NR) * P->csb, P->csb,
                             P->rsb, NR, P->pb + (size_t)p0 * NR * kc);
                }
                int a0 = nap * t / nt, a1 = nap * (t + 1) / nt;
                int rows = (a1 * MR < mc ? a1 * MR : mc) - a0 * MR;
                if (rows > 0)
                    pack(rows, kc, P->a + (ic + a0 * MR) * P->rsa + pc * P->csa, P->rsa, P->csa,
                         MR, P->pa + (size_t)a0 * MR * kc);
                if (nt > 1) {
#pragma omp barrier
                }
                int tiles = nap * nbp, q0 = tiles * t / nt, q1 = tiles * (t + 1) / nt;
                for (int q = q0; q < q1; q++) {
                    int jr = q / nap * NR, ir = q % nap * MR;
                    int nr = nc - jr < NR ? nc - jr : NR, mr = mc - ir < MR ? mc - ir : MR;
                    float *ap = P->pa + (size_t)ir * kc, *bp = P->pb + (size_t)jr * kc;
                    bool last_i = ir + MR >= mc;
                    bli_auxinfo_set_next_a(last_i ? P->pa : ap + (size_t)MR * kc, &aux);
                    bli_auxinfo_set_next_b(last_i && jr + NR < nc ? bp + (size_t)NR * kc : bp,
                                           &aux);
                    float alpha = 1.0f;
                    K->ukr(mr, nr, kc, &alpha, ap, bp, beta_now,
                           P->c + (ic + ir) * P->rsc + (jc + jr) * P->csc, P->rsc, P->csc, &aux,
                           K->cntx);
                }
            }
        }
    }
}

bool yf__gemm_own(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc, int threads)
{
    pthread_once(&once, query);
    const kernel *K = &K_;
    if (mode == YF__GEMM_BLIS || (mode == YF__GEMM_AUTO && !K->fast))
        return false;
    /* vectors, empty sums and scaled products go to BLIS, which treats them
     * apart */
    if (!K->usable || m < 2 || n < 2 || k < 1 || alpha != 1.0f)
        return false;
    /* row-major: element (i, p) of op(A) at a[i·rsa + p·csa] */
    product P = {.m = m, .n = n, .k = k, .a = a, .b = b, .c = c, .beta = beta,
                 .rsa = ta ? 1 : lda, .csa = ta ? lda : 1,
                 .rsb = tb ? 1 : ldb, .csb = tb ? ldb : 1,
                 .rsc = ldc, .csc = 1};
    if (!K->prefers_rows) /* Cᵀ = Bᵀ Aᵀ, C then stored by columns */
        P = (product){.m = n, .n = m, .k = k, .a = b, .b = a, .c = c, .beta = beta,
                      .rsa = P.csb, .csa = P.rsb, .rsb = P.csa, .csb = P.rsa,
                      .rsc = 1, .csc = ldc};
    P.pa = buffer(0, (size_t)(K->mc_max + K->mr) * K->kc_max);
    P.pb = buffer(1, (size_t)(K->nc_max + K->nr) * K->kc_max);
    if (!P.pa || !P.pb)
        return false;
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        part(K, &P, omp_get_thread_num(), omp_get_num_threads());
    } else {
        part(K, &P, 0, 1);
    }
    return true;
}
