/* Counter-based random numbers: Philox4x32-10 (Salmon et al., 2011) keyed by
 * the seed, with (index, stream, step) as the counter. Any element of any
 * stream at any step can be drawn independently, so results do not depend
 * on thread count or on the order in which nodes run. */
#include "internal.h"

#include <math.h>

void yf__philox(uint64_t seed, uint32_t stream, uint64_t step, uint32_t index,
                uint32_t out[4])
{
    uint32_t c0 = index, c1 = stream, c2 = (uint32_t)step, c3 = (uint32_t)(step >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1, c3 = (uint32_t)p0;
        c0 = n0, c2 = n2;
        k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* (0, 1], never 0 so that log() is finite */
static inline float unit(uint32_t w) { return ((w >> 8) + 1) * (1.0f / 16777216.0f); }

void yf__rand_normal(uint64_t seed, uint32_t stream, uint64_t step, float *out,
                     size_t n, float mean, float stddev)
{
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w[4];
        yf__philox(seed, stream, step, (uint32_t)(i / 4), w);
        float z[4];
        for (int h = 0; h < 2; h++) {
            float r = sqrtf(-2.0f * logf(unit(w[2 * h])));
            float t = 6.28318530717958648f * unit(w[2 * h + 1]);
            z[2 * h] = r * cosf(t);
            z[2 * h + 1] = r * sinf(t);
        }
        for (size_t j = 0; j < 4 && i + j < n; j++)
            out[i + j] = mean + stddev * z[j];
    }
}

void yf__rand_uniform(uint64_t seed, uint32_t stream, uint64_t step, float *out,
                      size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w[4];
        yf__philox(seed, stream, step, (uint32_t)(i / 4), w);
        for (size_t j = 0; j < 4 && i + j < n; j++)
            out[i + j] = lo + (hi - lo) * ((w[j] >> 8) * (1.0f / 16777216.0f));
    }
}
