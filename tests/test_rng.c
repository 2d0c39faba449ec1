/* rng.c: Philox4x32-10 against Random123's known-answer vectors, the
 * samplers' moments, and determinism: element i depends only on
 * (seed, stream, step, i). */
#include "testutil.h"

/* yf__philox's counter is (index, stream, step low, step high) and its key
 * (seed low, seed high); Random123's kat_vectors give counter and key. */
static void kat(const uint32_t ctr[4], const uint32_t key[2], const uint32_t want[4])
{
    uint32_t out[4];
    uint64_t step = (uint64_t)ctr[3] << 32 | ctr[2], seed = (uint64_t)key[1] << 32 | key[0];
    yf__philox(seed, ctr[1], step, ctr[0], out);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(out[i] == want[i],
                      "philox4x32-10(ctr %08x %08x %08x %08x, key %08x %08x) word %d: "
                      "got %08x, want %08x", ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], i,
                      out[i], want[i]);
}

START_TEST(test_philox_kat_zero)
{
    kat((const uint32_t[]){0, 0, 0, 0}, (const uint32_t[]){0, 0},
        (const uint32_t[]){0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
}
END_TEST

START_TEST(test_philox_kat_ones)
{
    kat((const uint32_t[]){0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
        (const uint32_t[]){0xffffffff, 0xffffffff},
        (const uint32_t[]){0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
}
END_TEST

START_TEST(test_philox_kat_pi)
{
    /* the digits of pi, Random123's third vector */
    kat((const uint32_t[]){0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
        (const uint32_t[]){0xa4093822, 0x299f31d0},
        (const uint32_t[]){0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}
END_TEST

/* Every part of the counter and key changes the output. */
START_TEST(test_philox_inputs_matter)
{
    uint32_t base[4], o[4];
    yf__philox(42, 7, 3, 5, base);
    yf__philox(43, 7, 3, 5, o);
    ck_assert(memcmp(base, o, sizeof o) != 0);
    yf__philox(42 | (1ull << 40), 7, 3, 5, o);
    ck_assert(memcmp(base, o, sizeof o) != 0);
    yf__philox(42, 8, 3, 5, o);
    ck_assert(memcmp(base, o, sizeof o) != 0);
    yf__philox(42, 7, 4, 5, o);
    ck_assert(memcmp(base, o, sizeof o) != 0);
    yf__philox(42, 7, 3 | (1ull << 33), 5, o);
    ck_assert(memcmp(base, o, sizeof o) != 0);
    yf__philox(42, 7, 3, 6, o);
    ck_assert(memcmp(base, o, sizeof o) != 0);
    yf__philox(42, 7, 3, 5, o);
    ck_assert(memcmp(base, o, sizeof o) == 0);
}
END_TEST

static void moments(const float *x, size_t n, double *mean, double *sd)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    *mean = s / n;
    for (size_t i = 0; i < n; i++)
        s2 += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(s2 / (n - 1));
}

START_TEST(test_normal_moments)
{
    enum { N = 100000 };
    float *x = malloc(N * sizeof *x);
    yf__rand_normal(1234, 5, 0, x, N, 0.0f, 1.0f);
    double mean, sd;
    moments(x, N, &mean, &sd);
    printf("normal(0, 1), %d samples: mean %+.5f, sd %.5f\n", N, mean, sd);
    /* standard errors: 1/sqrt(N) = 0.0032 for the mean, 0.0022 for the sd */
    ck_assert_msg(fabs(mean) < 0.015, "mean %g", mean);
    ck_assert_msg(fabs(sd - 1.0) < 0.01, "sd %g", sd);
    size_t beyond2 = 0, beyond4 = 0;
    for (size_t i = 0; i < N; i++) {
        ck_assert_msg(isfinite(x[i]), "sample %zu is %g", i, x[i]);
        beyond2 += fabsf(x[i]) > 2.0f;
        beyond4 += fabsf(x[i]) > 4.0f;
    }
    /* P(|z| > 2) = 4.55%, P(|z| > 4) = 0.0063% */
    ck_assert_msg(beyond2 > 4200 && beyond2 < 4900, "%zu samples beyond 2 sd", beyond2);
    ck_assert_msg(beyond4 < 30, "%zu samples beyond 4 sd", beyond4);

    yf__rand_normal(99, 1, 17, x, N, 3.0f, 0.5f);
    moments(x, N, &mean, &sd);
    printf("normal(3, 0.5): mean %.5f, sd %.5f\n", mean, sd);
    ck_assert_msg(fabs(mean - 3.0) < 0.0075, "mean %g", mean);
    ck_assert_msg(fabs(sd - 0.5) < 0.005, "sd %g", sd);
    free(x);
}
END_TEST

START_TEST(test_uniform_range_and_moments)
{
    enum { N = 100000 };
    float *x = malloc(N * sizeof *x);
    yf__rand_uniform(7, 2, 9, x, N, -2.0f, 3.0f);
    double mean, sd;
    moments(x, N, &mean, &sd);
    for (size_t i = 0; i < N; i++)
        ck_assert_msg(x[i] >= -2.0f && x[i] < 3.0f, "sample %zu is %g", i, x[i]);
    printf("uniform[-2, 3): mean %.5f, sd %.5f\n", mean, sd);
    ck_assert_msg(fabs(mean - 0.5) < 0.03, "mean %g", mean);
    ck_assert_msg(fabs(sd - 5.0 / sqrt(12.0)) < 0.02, "sd %g", sd);
    int bins[10] = {0};
    for (size_t i = 0; i < N; i++)
        bins[(int)((x[i] + 2.0f) * 2.0f)]++;
    for (int b = 0; b < 10; b++)
        ck_assert_msg(bins[b] > 9500 && bins[b] < 10500, "bin %d holds %d", b, bins[b]);
    free(x);
}
END_TEST

/* The same (seed, stream, step) gives the same numbers; element i does not
 * depend on how many are drawn, so any thread may draw any part. */
START_TEST(test_determinism)
{
    enum { N = 1003 };
    float a[N], b[N], c[7];
    yf__rand_normal(42, 100, 5, a, N, 0.0f, 1.0f);
    yf__rand_normal(42, 100, 5, b, N, 0.0f, 1.0f);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    yf__rand_normal(42, 100, 5, c, 7, 0.0f, 1.0f);
    ck_assert(memcmp(a, c, sizeof c) == 0);
    yf__rand_normal(42, 100, 6, b, N, 0.0f, 1.0f);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    yf__rand_normal(42, 101, 5, b, N, 0.0f, 1.0f);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    yf__rand_normal(43, 100, 5, b, N, 0.0f, 1.0f);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    yf__rand_uniform(42, 100, 5, a, N, 0.0f, 1.0f);
    yf__rand_uniform(42, 100, 5, c, 7, 0.0f, 1.0f);
    ck_assert(memcmp(a, c, sizeof c) == 0);
}
END_TEST

/* Parameters are initialised from the seed alone: two models of one spec
 * are equal, and a different seed changes them. */
/* Any stretch of a sequence drawn alone equals that stretch of the whole
 * draw (a rank draws its rows' share of a batch: docs/distributed.md),
 * whatever its start and length, across the 256-value blocks. */
START_TEST(test_draw_at_offsets)
{
    enum { N = 3000 };
    static float whole_n[N], whole_u[N], part[N];
    yf__rand_normal(9, 4, 17, whole_n, N, 0.5f, 2.0f);
    yf__rand_uniform(9, 4, 17, whole_u, N, -1.0f, 3.0f);
    const size_t firsts[] = {0, 1, 255, 256, 257, 700, 1023, 2999};
    const size_t lens[] = {1, 5, 255, 256, 300, 1000};
    for (size_t f = 0; f < sizeof firsts / sizeof *firsts; f++)
        for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
            size_t first = firsts[f], n = lens[l] < N - first ? lens[l] : N - first;
            yf__rand_normal_at(9, 4, 17, first, part, n, 0.5f, 2.0f);
            ck_assert_msg(!memcmp(part, whole_n + first, n * sizeof *part),
                          "normal: %zu values from %zu differ from the whole draw's", n, first);
            yf__rand_uniform_at(9, 4, 17, first, part, n, -1.0f, 3.0f);
            ck_assert_msg(!memcmp(part, whole_u + first, n * sizeof *part),
                          "uniform: %zu values from %zu differ from the whole draw's", n, first);
        }
}
END_TEST

START_TEST(test_init_from_seed)
{
    const char *fmt = "name: r\nseed: %d\ndata: {source: mnist}\nmodel:\n"
                      "  input: {shape: [6]}\n  layers:\n"
                      "    - {name: a, type: dense, units: 5, init: he_normal}\n"
                      "    - {name: b, type: dense, units: 6}\n"
                      "  loss: [{type: mse, target: x}]\n";
    char y1[512], y2[512];
    snprintf(y1, sizeof y1, fmt, 5);
    snprintf(y2, sizeof y2, fmt, 6);
    yf_spec *s1, *s2, *s3;
    yf_model *m1 = tu_model(y1, &s1), *m2 = tu_model(y1, &s2), *m3 = tu_model(y2, &s3);
    size_t n = m1->param_floats * sizeof(float);
    ck_assert(memcmp(m1->param_block, m2->param_block, n) == 0);
    ck_assert(memcmp(m1->param_block, m3->param_block, n) != 0);
    /* glorot_uniform stays within its limit, biases start at zero */
    const yf__param *b = &m1->params[tu_param(m1, "b.W")];
    float lim = sqrtf(6.0f / (5 + 6));
    for (size_t i = 0; i < b->size; i++)
        ck_assert(fabsf(m1->param_block[b->offset + i]) <= lim);
    const yf__param *bb = &m1->params[tu_param(m1, "b.b")];
    for (size_t i = 0; i < bb->size; i++)
        ck_assert(m1->param_block[bb->offset + i] == 0.0f);
    tu_free(m1, s1);
    tu_free(m2, s2);
    tu_free(m3, s3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("philox");
    tcase_add_test(tc, test_philox_kat_zero);
    tcase_add_test(tc, test_philox_kat_ones);
    tcase_add_test(tc, test_philox_kat_pi);
    tcase_add_test(tc, test_philox_inputs_matter);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("samplers");
    tcase_add_test(tc2, test_normal_moments);
    tcase_add_test(tc2, test_uniform_range_and_moments);
    tcase_add_test(tc2, test_determinism);
    tcase_add_test(tc2, test_init_from_seed);
    tcase_add_test(tc2, test_draw_at_offsets);
    suite_add_tcase(s, tc2);
    return tu_run(s);
}
