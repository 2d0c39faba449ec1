/* Counter-based random numbers: Philox4x32-10 (Salmon et al., 2011) keyed by
 * the seed, with (index, stream, step) as the counter. Any element of any
 * stream at any step can be drawn independently, so results do not depend
 * on thread count or on the order in which nodes run. */
#include "internal.h"

#include <math.h>
#include <string.h>

/* The ten Philox4x32 rounds on counter c under key (k0, k1). */
static inline void philox_rounds(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        c[1] = (uint32_t)p1, c[3] = (uint32_t)p0;
        c[0] = n0, c[2] = n2;
        k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    }
}

void yf__philox(uint64_t seed, uint32_t stream, uint64_t step, uint32_t index,
                uint32_t out[4])
{
    out[0] = index, out[1] = stream, out[2] = (uint32_t)step, out[3] = (uint32_t)(step >> 32);
    philox_rounds(out, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* The generators below draw chunks of 64 Philox counters (256 values) at a
 * time in structure-of-arrays form, so that GCC vectorises the rounds (16
 * counters per AVX-512 instruction) and the float transforms, which are
 * branch-free polynomials instead of libm calls. Element i of an output is
 * word j of counter 64c + b, where c = i / 256, j = (i % 256) / 64 and
 * b = i % 64: it depends on i alone, not on n or on how work is split. */
#define CHUNK 64

YF__CLONES static void philox_block(uint64_t seed, uint32_t stream, uint64_t step,
                                    uint32_t first, int n, uint32_t w[4][CHUNK])
{
    for (int b = 0; b < n; b++) {
        uint32_t c[4] = {first + (uint32_t)b, stream, (uint32_t)step, (uint32_t)(step >> 32)};
        philox_rounds(c, (uint32_t)seed, (uint32_t)(seed >> 32));
        w[0][b] = c[0], w[1][b] = c[1], w[2][b] = c[2], w[3][b] = c[3];
    }
}

/* (0, 1], never 0 so that log() is finite */
static inline float unit(uint32_t w) { return ((w >> 8) + 1) * (1.0f / 16777216.0f); }

/* ln x for x in (0, 1], relative error below 3e-7: x = m·2^e with m in
 * [0.75, 1.5), ln m = 2 atanh((m − 1)/(m + 1)) as an odd series. */
static inline float fast_logf(float x)
{
    union { float f; int32_t i; } u = {.f = x};
    int32_t e = ((u.i >> 23) & 0xff) - 127;
    u.i = (u.i & 0x007fffff) | 0x3f800000; /* m in [1, 2) */
    float m = u.f;
    bool big = m >= 1.5f;
    m = big ? 0.5f * m : m;
    float ef = (float)e + (big ? 1.0f : 0.0f);
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float p = s * (2.0f + s2 * (0.666666667f + s2 * (0.4f + s2 * (0.285714286f +
                                                                  s2 * 0.222222222f))));
    return ef * 0.693147181f + p;
}

/* sin and cos of 2πt for t in [−0.5, 0.5], absolute error below 3e-7:
 * folded into [−0.25, 0.25] (a quarter turn) and Taylor series. */
static inline void sincos_turn(float t, float *sn, float *cs)
{
    float h = t > 0.25f ? 0.5f - t : (t < -0.25f ? -0.5f - t : t);
    float sign_c = (t > 0.25f || t < -0.25f) ? -1.0f : 1.0f;
    float x = 6.28318530717958648f * h, x2 = x * x;
    *sn = x * (1.0f - x2 / 6.0f * (1.0f - x2 / 20.0f * (1.0f - x2 / 42.0f *
                                   (1.0f - x2 / 72.0f * (1.0f - x2 / 110.0f)))));
    *cs = sign_c * (1.0f - x2 / 2.0f * (1.0f - x2 / 12.0f * (1.0f - x2 / 30.0f *
                    (1.0f - x2 / 56.0f * (1.0f - x2 / 90.0f * (1.0f - x2 / 132.0f))))));
}

/* Box–Muller: words (2h, 2h+1) of a counter give normals 2h and 2h+1 */
YF__CLONES static void box_muller(const uint32_t w[4][CHUNK], int n, float mean,
                                  float stddev, float z[4][CHUNK])
{
    for (int h = 0; h < 2; h++)
        for (int b = 0; b < n; b++) {
            float r = stddev * sqrtf(-2.0f * fast_logf(unit(w[2 * h][b])));
            float sn, cs;
            sincos_turn(unit(w[2 * h + 1][b]) - 0.5f, &sn, &cs);
            /* θ = 2π(u − ½) = 2πu − π: cos θ = −cos 2πu, sin θ = −sin 2πu */
            z[2 * h][b] = mean - r * cs;
            z[2 * h + 1][b] = mean - r * sn;
        }
}

void yf__rand_normal(uint64_t seed, uint32_t stream, uint64_t step, float *out,
                     size_t n, float mean, float stddev)
{
    yf__rand_normal_at(seed, stream, step, 0, out, n, mean, stddev);
}

YF__CLONES static void to_uniform(const uint32_t w[4][CHUNK], float lo, float hi,
                                  float z[4][CHUNK])
{
    for (int j = 0; j < 4; j++)
        for (int b = 0; b < CHUNK; b++)
            z[j][b] = lo + (hi - lo) * ((w[j][b] >> 8) * (1.0f / 16777216.0f));
}

/* Values first .. first + n of a sequence (normal with mean a and standard
 * deviation b, or uniform in [a, b)): a block of 4 CHUNK values at a time,
 * each from its own counters, so any stretch of the sequence can be drawn
 * alone (a rank draws its rows' share of a batch, the same numbers one
 * process would draw for them). */
static void draw_at(bool normal, uint64_t seed, uint32_t stream, uint64_t step, size_t first,
                    float *out, size_t n, float a, float b)
{
    uint32_t w[4][CHUNK];
    float z[4][CHUNK];
    for (size_t i = first / (4 * CHUNK) * (4 * CHUNK); i < first + n; i += 4 * CHUNK) {
        philox_block(seed, stream, step, (uint32_t)(i / 4), CHUNK, w);
        if (normal)
            box_muller(w, CHUNK, a, b, z);
        else
            to_uniform(w, a, b, z);
        size_t lo = i < first ? first - i : 0;
        size_t hi = first + n - i < 4 * CHUNK ? first + n - i : 4 * CHUNK;
        memcpy(out + (i + lo - first), &z[0][0] + lo, (hi - lo) * sizeof(float));
    }
}

void yf__rand_normal_at(uint64_t seed, uint32_t stream, uint64_t step, size_t first,
                        float *out, size_t n, float mean, float stddev)
{
    draw_at(true, seed, stream, step, first, out, n, mean, stddev);
}

void yf__rand_uniform_at(uint64_t seed, uint32_t stream, uint64_t step, size_t first,
                         float *out, size_t n, float lo, float hi)
{
    draw_at(false, seed, stream, step, first, out, n, lo, hi);
}

void yf__rand_uniform(uint64_t seed, uint32_t stream, uint64_t step, float *out,
                      size_t n, float lo, float hi)
{
    yf__rand_uniform_at(seed, stream, step, 0, out, n, lo, hi);
}
