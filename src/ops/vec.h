/* Vectors of 16 floats through GCC's vector extensions: one AVX-512
 * register in the avx512f clones of YF__CLONES kernels, two AVX2 ones in
 * the avx2 clones. For loops the compiler does not vectorise by itself:
 * rows shorter than a vector, strided tiles. */
#ifndef YF_OPS_VEC_H
#define YF_OPS_VEC_H

#include <stdint.h>

#define LANES 16
typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));
typedef float vf_u __attribute__((vector_size(4 * LANES), aligned(4), may_alias));

#ifdef __clang__
/* clang (the fuzz/ build) refuses to pass a 64-byte vector by value to or
 * from a function where AVX-512 is off, even one it will inline, and names
 * GCC's __builtin_shuffle __builtin_shufflevector: there the helpers are
 * macros doing the same. */
#define load(p) (*(const vf_u *)(p))
#define store(p, v) ((void)(*(vf_u *)(p) = (v)))
#define even(a, b) __builtin_shufflevector((vf)(a), (vf)(b), 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, \
                                           20, 22, 24, 26, 28, 30)
#define odd(a, b) __builtin_shufflevector((vf)(a), (vf)(b), 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, \
                                          21, 23, 25, 27, 29, 31)
#define zip_lo(a, b) __builtin_shufflevector((vf)(a), (vf)(b), 0, 16, 1, 17, 2, 18, 3, 19, 4, \
                                             20, 5, 21, 6, 22, 7, 23)
#define zip_hi(a, b) __builtin_shufflevector((vf)(a), (vf)(b), 8, 24, 9, 25, 10, 26, 11, 27, 12, \
                                             28, 13, 29, 14, 30, 15, 31)
#define shift_in(a, c) __builtin_shufflevector((vf)(a), (vf)(c), 31, 0, 1, 2, 3, 4, 5, 6, 7, 8, \
                                               9, 10, 11, 12, 13, 14)
#define first(a, n)                                                                         \
    ({                                                                                      \
        vi yf__lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};               \
        (vf)((vi)(vf)(a) & (yf__lane < (n)));                                              \
    })
#else
/* The helpers take and return vectors; they are inlined into the
 * target_clones kernels, so the vector ABI GCC warns about never shows. */
#pragma GCC diagnostic ignored "-Wpsabi"

static inline vf load(const float *p) { return *(const vf_u *)p; }
static inline void store(float *p, vf v) { *(vf_u *)p = v; }
static inline vf even(vf a, vf b)
{
    return __builtin_shuffle(a, b, (vi){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30});
}
static inline vf odd(vf a, vf b)
{
    return __builtin_shuffle(a, b, (vi){1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31});
}
/* the first and second halves of the interleaving a0 b0 a1 b1 ... */
static inline vf zip_lo(vf a, vf b)
{
    return __builtin_shuffle(a, b, (vi){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23});
}
static inline vf zip_hi(vf a, vf b)
{
    return __builtin_shuffle(a, b,
                             (vi){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31});
}
/* lanes shifted up by one, lane 0 from lane 15 of c */
static inline vf shift_in(vf a, vf c)
{
    return __builtin_shuffle(a, c, (vi){31, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14});
}
/* a with the lanes from n on zeroed */
static inline vf first(vf a, int n)
{
    vi lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    return (vf)((vi)a & (lane < n));
}

#endif

#endif
