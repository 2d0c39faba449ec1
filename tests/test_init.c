/* Initialisers (model.c's init_param) by their statistics on large layers:
 * the bounds and spread each promises (Glorot & Bengio 2010, He et al.
 * 2015, LeCun et al. 1998), orthogonality (Saxe et al. 2014), constants
 * exactly; and the spec's refusals of a constant without its value. */
#include "testutil.h"

/* A 512 -> 256 dense layer with weight initialiser `init` (and `extra`
 * keys); its weight's values. */
static yf_model *layer(const char *init, const char *extra, yf_spec **s, const float **w,
                       size_t *n)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "name: init\nseed: 11\ndata: {source: mnist}\nmodel:\n"
             "  input: {name: x, shape: [512]}\n"
             "  layers:\n"
             "    - {name: a, type: dense, units: 256, init: %s%s}\n"
             "    - {name: out, type: dense, units: 512}\n"
             "  loss:\n    - {type: mse, input: out, target: x}\n",
             init, extra);
    yf_model *m = tu_model(yaml, s);
    int p = tu_param(m, "a.W");
    *w = m->param_block + m->params[p].offset;
    *n = m->params[p].size;
    return m;
}

static void stats(const float *w, size_t n, double *mean, double *sd, double *lo, double *hi)
{
    double s = 0, ss = 0;
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        s += w[i];
        ss += (double)w[i] * w[i];
        *lo = fmin(*lo, w[i]);
        *hi = fmax(*hi, w[i]);
    }
    *mean = s / n;
    *sd = sqrt(ss / n - *mean * *mean);
}

/* Each random initialiser: mean 0, the standard deviation it promises
 * (within 2% on 131072 values), and the bound of the uniform ones. */
START_TEST(test_random_initialisers)
{
    const double fan_in = 512, fan_out = 256;
    struct {
        const char *name;
        double sd, bound; /* bound 0: normal */
    } cases[] = {
        {"glorot_uniform", sqrt(2 / (fan_in + fan_out)), sqrt(6 / (fan_in + fan_out))},
        {"glorot_normal", sqrt(2 / (fan_in + fan_out)), 0},
        {"he_normal", sqrt(2 / fan_in), 0},
        {"he_uniform", sqrt(2 / fan_in), sqrt(6 / fan_in)},
        {"lecun_normal", sqrt(1 / fan_in), 0},
        {"lecun_uniform", sqrt(1 / fan_in), sqrt(3 / fan_in)},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        yf_spec *s;
        const float *w;
        size_t n;
        yf_model *m = layer(cases[c].name, "", &s, &w, &n);
        double mean, sd, lo, hi;
        stats(w, n, &mean, &sd, &lo, &hi);
        printf("%-15s mean %+.5f sd %.5f (want %.5f) range [%.4f, %.4f]\n", cases[c].name, mean,
               sd, cases[c].sd, lo, hi);
        ck_assert_msg(fabs(mean) < 0.02 * cases[c].sd, "%s: mean %g", cases[c].name, mean);
        ck_assert_msg(fabs(sd / cases[c].sd - 1) < 0.02, "%s: sd %g, want %g", cases[c].name, sd,
                      cases[c].sd);
        if (cases[c].bound) {
            ck_assert_msg(lo >= -cases[c].bound && hi <= cases[c].bound, "%s: [%g, %g] beyond %g",
                          cases[c].name, lo, hi, cases[c].bound);
            ck_assert_msg(hi > 0.99 * cases[c].bound && lo < -0.99 * cases[c].bound,
                          "%s: [%g, %g] does not reach %g", cases[c].name, lo, hi,
                          cases[c].bound);
        } else {
            /* a normal: some values beyond 3.5 sd, none beyond 6 */
            ck_assert_msg(hi > 3.5 * cases[c].sd && hi < 6 * cases[c].sd, "%s: max %g",
                          cases[c].name, hi);
        }
        tu_free(m, s);
    }
}
END_TEST

/* The largest |GᵀG − I| over the vectors of the rows × cols matrix w:
 * its columns when by_cols, else its rows. */
static double gram_error(const float *w, int rows, int cols, bool by_cols)
{
    int n = by_cols ? cols : rows, len = by_cols ? rows : cols;
    double worst = 0;
    for (int a = 0; a < n; a++)
        for (int b = a; b < n; b++) {
            double dot = 0;
            for (int i = 0; i < len; i++)
                dot += by_cols ? (double)w[i * cols + a] * w[i * cols + b]
                               : (double)w[a * cols + i] * w[b * cols + i];
            worst = fmax(worst, fabs(dot - (a == b)));
        }
    return worst;
}

/* orthogonal: the 512 x 256 weight has orthonormal columns (WᵀW = I);
 * for a 256 x 512 one (units 512 on 256 inputs), orthonormal rows. */
START_TEST(test_orthogonal)
{
    yf_spec *s;
    const float *w;
    size_t n;
    yf_model *m = layer("orthogonal", "", &s, &w, &n);
    double worst = gram_error(w, 512, 256, true);
    printf("orthogonal 512x256: max |WᵀW - I| = %.2e\n", worst);
    ck_assert_msg(worst < 1e-5, "WᵀW differs from I by %g", worst);
    tu_free(m, s);

    const char *wide =
        "name: init\nseed: 11\ndata: {source: mnist}\nmodel:\n"
        "  input: {name: x, shape: [256]}\n"
        "  layers:\n    - {name: a, type: dense, units: 512, init: orthogonal}\n"
        "    - {name: out, type: dense, units: 256}\n"
        "  loss:\n    - {type: mse, input: out, target: x}\n";
    m = tu_model(wide, &s);
    w = m->param_block + m->params[tu_param(m, "a.W")].offset;
    worst = gram_error(w, 256, 512, false);
    printf("orthogonal 256x512: max |WWᵀ - I| = %.2e\n", worst);
    ck_assert_msg(worst < 1e-5, "WWᵀ differs from I by %g", worst);
    tu_free(m, s);
}
END_TEST

/* constant and ones: every value exactly; the bias too. */
START_TEST(test_constant)
{
    yf_spec *s;
    const float *w;
    size_t n;
    yf_model *m = layer("constant", ", init_value: -0.25, bias_init: constant, bias_value: 0.5",
                        &s, &w, &n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(w[i] == -0.25f, "W[%zu] = %g", i, w[i]);
    const yf__param *b = &m->params[tu_param(m, "a.b")];
    for (size_t i = 0; i < b->size; i++)
        ck_assert_msg(m->param_block[b->offset + i] == 0.5f, "b[%zu]", i);
    tu_free(m, s);
    m = layer("ones", "", &s, &w, &n);
    for (size_t i = 0; i < n; i++)
        ck_assert(w[i] == 1.0f);
    tu_free(m, s);
}
END_TEST

/* init: constant without its value, a value for another initialiser. */
START_TEST(test_constant_refused)
{
    static const struct {
        const char *keys, *message;
    } bad[] = {
        {"init: constant", "t.yaml:7:48: layer 'a': init: constant needs its value: add "
                           "init_value: <number>"},
        {"init: he_uniform, init_value: 2", "t.yaml:7:72: layer 'a': 'init_value' is the value "
                                            "of init: constant, but init is he_uniform"},
        {"bias_init: constant", "t.yaml:7:53: layer 'a': bias_init: constant needs its value: "
                                "add bias_value: <number>"},
        {"init: constant, init_value: .nan", "t.yaml:7:70: layer 'a': 'init_value' must be a "
                                             "number, not '.nan'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 "name: init\nseed: 11\ndata: {source: mnist}\nmodel:\n"
                 "  input: {name: x, shape: [512]}\n"
                 "  layers:\n"
                 "    - {name: a, type: dense, units: 256, %s}\n"
                 "    - {name: out, type: dense, units: 512}\n"
                 "  loss:\n    - {type: mse, input: out, target: x}\n", bad[i].keys);
        yf_error err = {0};
        yf_spec *s = yf_spec_parse(yaml, strlen(yaml), "t.yaml", NULL, 0, &err);
        ck_assert_msg(s == NULL, "'%s' accepted", bad[i].keys);
        ck_assert_int_eq(err.code, YF_ESPEC);
        ck_assert_msg(!strcmp(yf_error_format(&err), bad[i].message), "%s\nwant %s",
                      yf_error_format(&err), bad[i].message);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("init");
    TCase *tc = tcase_create("init");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_random_initialisers);
    tcase_add_test(tc, test_orthogonal);
    tcase_add_test(tc, test_constant);
    tcase_add_test(tc, test_constant_refused);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
