/* Gradient checks (autodiff.c and every op in ops/ops.def): for each case,
 * a tiny model built from YAML, its analytic parameter gradients (one run of
 * the training graph) against central differences of the loss, element by
 * element, with the largest difference printed as llm.c's check_tensor does.
 *
 * The cases are generated from the lists that generate the library's code
 * (YF_ACTIVATIONS, YF_LOSS_TYPES), and one test asserts that the training
 * graphs of all cases use every op of ops/ops.def except input and param:
 * a new activation, loss or op without a gradient case fails here.
 *
 * The forward values themselves are checked against references computed
 * elsewhere (PyTorch and NumPy in float64, pasted as literals): every
 * activation at ±30, 0 and points between, every loss term on batches
 * with logits at ±30; a new activation or loss without them fails too. */
#include "testutil.h"

#include "../src/ops/conv.h"

#include <omp.h>

#define ROWS 4 /* train.batch_size of every case */

typedef struct {
    char name[64];
    char yaml[4096];
    char missing[64]; /* a loss type with no case written for it */
} gcase;

static gcase cases[128];
static int n_cases;
static const char *case_shape = "5"; /* the input shape of the cases being added */

static const char *const act_names[] = {
#define XX(e, s) #s,
    YF_ACTIVATIONS(XX)
#undef XX
};
static const char *const loss_names[] = {
#define XX(e, s) #s,
    YF_LOSS_TYPES(XX)
#undef XX
};

static const char spec_fmt[] = "name: grad\n"
                               "seed: 7\n"
                               "data: {source: mnist}\n"
                               "model:\n"
                               "  input: {name: x, shape: [%s]}\n"
                               "  labels: {name: y, classes: 3}\n"
                               "  layers:\n%s"
                               "  loss:\n%s"
                               "train: {batch_size: %d}\n";

static gcase *add_case(const char *layers, const char *loss, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static gcase *add_case(const char *layers, const char *loss, const char *fmt, ...)
{
    if (n_cases == (int)YF__ARRAY_LEN(cases))
        abort(); /* called from main too: no ck_assert here */
    gcase *c = &cases[n_cases++];
    memset(c, 0, sizeof *c);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    snprintf(c->yaml, sizeof c->yaml, spec_fmt, case_shape, layers, loss, ROWS);
    return c;
}

/* ", alpha: 0.7" for the activations that take one */
static const char *alpha_of(int act)
{
    return act == YF_ACT_ELU ? ", alpha: 0.7" : act == YF_ACT_LEAKY_RELU ? ", alpha: 0.2" : "";
}

static void build_cases(void)
{
    if (n_cases)
        return;
    char layers[2048];
    const char *mse = "    - {type: mse, input: out, target: x}\n";

    /* every activation, as a dense layer's activation and as a layer */
    for (int a = 0; a < YF_ACT_COUNT; a++) {
        snprintf(layers, sizeof layers,
                 "    - {name: h, type: dense, units: 4, activation: %s%s}\n"
                 "    - {name: out, type: dense, units: 5}\n",
                 act_names[a], alpha_of(a));
        add_case(layers, mse, "dense-%s", act_names[a]);
        snprintf(layers, sizeof layers,
                 "    - {name: h, type: dense, units: 4}\n"
                 "    - {name: act, type: activation, function: %s%s}\n"
                 "    - {name: out, type: dense, units: 5}\n",
                 act_names[a], alpha_of(a));
        add_case(layers, mse, "activation-%s", act_names[a]);
    }

    /* every loss, with both reductions and a weight */
    const char *plain = "    - {name: h, type: dense, units: 4, activation: tanh}\n"
                        "    - {name: out, type: dense, units: 5}\n";
    for (int t = 0; t < (int)YF__ARRAY_LEN(loss_names); t++) {
        switch ((yf__loss_type)t) {
        case YF_LOSS_MSE:
            add_case(plain, "    - {type: mse, input: out, target: x}\n", "mse-mean");
            add_case(plain, "    - {type: mse, input: out, target: x, reduce: sum, weight: 0.7}\n",
                     "mse-sum-weighted");
            break;
        case YF_LOSS_SIGMOID_CE:
            add_case(plain, "    - {type: sigmoid_cross_entropy, input: out, target: x}\n",
                     "sigmoid_cross_entropy-mean");
            add_case(plain,
                     "    - {type: sigmoid_cross_entropy, input: out, target: x, reduce: sum,"
                     " weight: 0.3}\n",
                     "sigmoid_cross_entropy-sum-weighted");
            break;
        case YF_LOSS_L2:
            add_case(plain,
                     "    - {type: mse, input: out, target: x}\n"
                     "    - {type: l2, weight: 0.05, params: [h.W, h.b, out.W]}\n",
                     "l2-weighted");
            break;
        case YF_LOSS_SOFTMAX_CE:
            add_case("    - {name: h, type: dense, units: 4, activation: tanh}\n"
                     "    - {name: out, type: dense, units: 3}\n",
                     "    - {type: softmax_cross_entropy, input: out, target: y, weight: 0.7}\n",
                     "softmax_cross_entropy");
            /* a softmax output: the loss takes the logits below it */
            add_case("    - {name: h, type: dense, units: 4, activation: elu}\n"
                     "    - {name: out, type: dense, units: 3, activation: softmax}\n",
                     "    - {type: softmax_cross_entropy, input: out}\n",
                     "softmax_cross_entropy-fused");
            break;
        case YF_LOSS_KL_NORMAL:
            add_case("    - {name: h, type: dense, units: 4, activation: tanh}\n"
                     "    - {name: mean, type: dense, units: 3}\n"
                     "    - {name: log_var, type: dense, units: 3, input: h}\n",
                     "    - {type: kl_normal, mean: mean, log_var: log_var, weight: 0.5}\n",
                     "kl_normal");
            break;
        case YF_LOSS_KL_SPARSITY:
            add_case("    - {name: h, type: dense, units: 4, activation: sigmoid}\n"
                     "    - {name: out, type: dense, units: 5}\n",
                     "    - {type: mse, input: out, target: x}\n"
                     "    - {type: kl_sparsity, input: h, target: 0.2, weight: 0.3}\n",
                     "kl_sparsity");
            break;
        case YF_LOSS_L1:
            add_case("    - {name: h, type: dense, units: 4, activation: tanh}\n"
                     "    - {name: out, type: dense, units: 5}\n",
                     "    - {type: mse, input: out, target: x}\n"
                     "    - {type: l1, input: h, weight: 0.05}\n",
                     "l1");
            break;
        }
    }

    /* convolutions and pooling on 2 x 5 x 5 images (50 values): stride,
     * padding, dilation, groups; max_pool after relu has ties (zeros) */
    case_shape = "2, 5, 5";
    const char *mse50 = "    - {type: mse, input: out, target: x}\n";
    add_case("    - {name: c, type: conv2d, filters: 3, kernel: 3, padding: same, activation: tanh}\n"
             "    - {name: p, type: max_pool, size: 2}\n"
             "    - {name: f, type: flatten}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "conv2d-same-max_pool");
    add_case("    - {name: c, type: conv2d, filters: 3, kernel: 2, activation: tanh}\n"
             "    - {name: p, type: max_pool, size: 2}\n" /* 4x4: the even 2x2 path */
             "    - {name: f, type: flatten}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "max_pool-2x2-even");
    /* K = 4 · 3 · 3 = 36 values per output pixel: the BLIS paths (the
     * others are small enough for the direct loops) */
    add_case("    - {name: c1, type: conv2d, filters: 4, kernel: 3, padding: same, activation: tanh}\n"
             "    - {name: c2, type: conv2d, filters: 3, kernel: 3, stride: 2, activation: elu}\n"
             "    - {name: t, type: conv2d_transpose, filters: 4, kernel: 3, stride: 2}\n"
             "    - {name: f, type: flatten}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "conv2d-large-k");
    add_case("    - {name: c, type: conv2d, filters: 4, kernel: 2, stride: 2, padding: 1,"
             " dilation: 2, groups: 2, activation: elu}\n"
             "    - {name: f, type: flatten}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "conv2d-stride-pad-dilation-groups");
    add_case("    - {name: c, type: conv2d, filters: 4, kernel: [3, 2], stride: [1, 2], use_bias: false}\n"
             "    - {name: r, type: activation, function: relu}\n"
             "    - {name: p, type: max_pool, size: 2, stride: 1}\n"
             "    - {name: f, type: flatten}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "conv2d-relu-max_pool-ties");
    add_case("    - {name: c, type: conv2d, filters: 3, kernel: 1, activation: sigmoid}\n"
             "    - {name: a, type: avg_pool, size: 3, stride: 2, padding: 1}\n"
             "    - {name: u, type: upsample, factor: 2}\n"
             "    - {name: g, type: global_avg_pool}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "avg_pool-upsample-global_avg_pool");
    /* the image input is [2, 5, 5]: shifts of up to 2 rows, 1 column move
     * values out and zeros in; the gradient moves back */
    add_case("    - {name: c, type: conv2d, filters: 3, kernel: 3, padding: same, activation: tanh}\n"
             "    - {name: shift, type: random_shift, max: [2, 1]}\n"
             "    - {name: f, type: flatten}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "random_shift");
    add_case("    - {name: r, type: reshape, shape: [2, 25], input: x}\n"
             "    - {name: f, type: flatten}\n"
             "    - {name: h, type: dense, units: 18, activation: tanh}\n"
             "    - {name: r2, type: reshape, shape: [2, 3, 3]}\n"
             "    - {name: c, type: conv2d, filters: 2, kernel: 2}\n"
             "    - {name: f2, type: flatten}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "reshape-dense-conv2d");
    add_case("    - {name: c, type: conv2d, filters: 4, kernel: 3, stride: 2, padding: 1,"
             " activation: tanh}\n"
             "    - {name: t, type: conv2d_transpose, filters: 2, kernel: 3, stride: 2,"
             " padding: same, groups: 2, activation: elu}\n"
             "    - {name: t2, type: conv2d_transpose, filters: 1, kernel: 2, dilation: 2}\n"
             "    - {name: f, type: flatten}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "conv2d_transpose-stride-groups-dilation");
    add_case("    - {name: c, type: conv2d, filters: 3, kernel: 3, padding: 1}\n"
             "    - {name: bn, type: batch_norm}\n"
             "    - {name: t, type: activation, function: tanh}\n"
             "    - {name: f, type: flatten}\n"
             "    - {name: out, type: dense, units: 50}\n",
             mse50, "batch_norm-images");
    /* 3x3 stride-1 convolutions of 8 channels go through Winograd F(2x2,
     * 3x3): padding same, 0 (an odd 3 x 5 output: half-used tiles) and 2,
     * and a transposed one (its forward is the input gradient's kernel) */
    case_shape = "8, 5, 7";
    const char *mse_x = "    - {type: mse, input: out, target: x}\n";
    add_case("    - {name: c1, type: conv2d, filters: 8, kernel: 3, padding: same, activation: tanh}\n"
             "    - {name: c2, type: conv2d, filters: 8, kernel: 3, activation: elu}\n"
             "    - {name: out, type: conv2d_transpose, filters: 8, kernel: 3}\n",
             mse_x, "conv2d-winograd");
    add_case("    - {name: c, type: conv2d, filters: 9, kernel: 3, padding: 2, activation: tanh}\n"
             "    - {name: out, type: conv2d, filters: 8, kernel: 3}\n",
             mse_x, "conv2d-winograd-pad2");
    /* K = 9 (3x3 on one channel): its own loops; 3 filters (an odd one
     * out of the pairs), 4 · 35 pixels (a partial vector) */
    case_shape = "1, 5, 7";
    add_case("    - {name: c, type: conv2d, filters: 3, kernel: 3, padding: same, activation: tanh}\n"
             "    - {name: f, type: flatten}\n"
             "    - {name: out, type: dense, units: 35}\n",
             mse_x, "conv2d-k9");
    /* rows of 17 and 32 tiles: more than one vector of tiles per row */
    case_shape = "8, 3, 33";
    add_case("    - {name: c, type: conv2d, filters: 8, kernel: 3, padding: same, activation: tanh}\n"
             "    - {name: out, type: conv2d, filters: 8, kernel: 3, padding: same}\n",
             mse_x, "conv2d-winograd-17-tiles");
    case_shape = "8, 2, 64";
    add_case("    - {name: c, type: conv2d, filters: 8, kernel: 3, padding: same, activation: tanh}\n"
             "    - {name: out, type: conv2d, filters: 8, kernel: 3, padding: same}\n",
             mse_x, "conv2d-winograd-32-tiles");
    case_shape = "5";
    add_case("    - {name: h, type: dense, units: 6}\n"
             "    - {name: bn, type: batch_norm, momentum: 0.3}\n"
             "    - {name: t, type: activation, function: elu}\n"
             "    - {name: out, type: dense, units: 5}\n",
             mse, "batch_norm-features");

    /* metrics, in the evaluation graph */
    add_case("    - {name: h, type: dense, units: 4, activation: sigmoid}\n"
             "    - {name: out, type: dense, units: 3}\n",
             "    - {type: softmax_cross_entropy}\n"
             "  metrics: [accuracy, {type: mean_activation, input: h}]\n",
             "metrics");

    /* weights, biases, graph shapes */
    add_case("    - {name: enc, type: dense, units: 3, activation: elu}\n"
             "    - {name: out, type: dense, units: 5, activation: sigmoid, weights: enc.W^T}\n",
             mse, "tied-transposed");
    add_case("    - {name: h, type: dense, units: 5, activation: tanh}\n"
             "    - {name: out, type: dense, units: 5, weights: h.W}\n",
             mse, "tied-same-orientation");
    add_case("    - {name: h, type: dense, units: 4, activation: elu, use_bias: false}\n"
             "    - {name: out, type: dense, units: 5, use_bias: false}\n",
             mse, "no-bias");
    add_case("    - {name: h, type: dense, units: 4, activation: elu, trainable: false}\n"
             "    - {name: out, type: dense, units: 5}\n",
             mse, "frozen-first-layer");
    add_case("    - {name: h, type: dense, units: 4, activation: tanh}\n"
             "    - {name: noise, type: gaussian_noise, stddev: 0.3}\n"
             "    - {name: out, type: dense, units: 5}\n",
             mse, "gaussian_noise");
    add_case("    - {name: noise, type: gaussian_noise, stddev: 0.3, input: x}\n"
             "    - {name: out, type: dense, units: 5, activation: sigmoid}\n",
             mse, "gaussian_noise-on-input");
    add_case("    - {name: h, type: dense, units: 6, activation: tanh}\n"
             "    - {name: drop, type: dropout, rate: 0.5}\n"
             "    - {name: out, type: dense, units: 5}\n",
             mse, "dropout");
    /* h feeds two layers: its gradient is the sum of two (an add node) */
    add_case("    - {name: h, type: dense, units: 4, activation: elu}\n"
             "    - {name: a, type: dense, units: 5, input: h}\n"
             "    - {name: b, type: dense, units: 5, input: h}\n",
             "    - {type: mse, input: a, target: x, weight: 0.5}\n"
             "    - {type: sigmoid_cross_entropy, input: b, target: x}\n",
             "two-consumers");
    add_case("    - {name: h, type: dense, units: 5, activation: sigmoid}\n"
             "    - {name: a, type: dense, units: 5, input: h}\n"
             "    - {name: b, type: dense, units: 5, input: h, activation: tanh}\n"
             "    - {name: c, type: activation, function: elu, input: h}\n",
             "    - {type: mse, input: a, target: x}\n"
             "    - {type: mse, input: b, target: x, weight: 2.0}\n"
             "    - {type: mse, input: c, target: x, reduce: sum}\n"
             "    - {type: mse, input: h, target: x, weight: 0.1}\n",
             "four-consumers");
    /* gradients flow into a loss's target too */
    add_case("    - {name: a, type: dense, units: 5, activation: tanh}\n"
             "    - {name: b, type: dense, units: 5, input: x, activation: elu}\n",
             "    - {type: mse, input: a, target: b}\n",
             "mse-target-trainable");
    add_case("    - {name: a, type: dense, units: 5}\n"
             "    - {name: b, type: dense, units: 5, activation: sigmoid, input: x}\n",
             "    - {type: sigmoid_cross_entropy, input: a, target: b}\n",
             "sigmoid_cross_entropy-target-trainable");
    /* the VAE's reparameterised sample, with its noise held fixed (the step) */
    add_case("    - {name: h, type: dense, units: 4, activation: elu}\n"
             "    - {name: mean, type: dense, units: 3}\n"
             "    - {name: log_var, type: dense, units: 3, input: h}\n"
             "    - {name: z, type: sample_normal, mean: mean, log_var: log_var}\n"
             "    - {name: out, type: dense, units: 5, input: z}\n",
             "    - {type: sigmoid_cross_entropy, input: out, target: x, reduce: sum}\n"
             "    - {type: kl_normal, mean: mean, log_var: log_var}\n",
             "sample_normal-vae");
    /* layers with several inputs */
    add_case("    - {name: a, type: dense, units: 3, activation: tanh}\n"
             "    - {name: b, type: dense, units: 3, input: x}\n"
             "    - {name: cat, type: concat, input: [a, b, a]}\n"
             "    - {name: out, type: dense, units: 5}\n"
             "    - {name: prod, type: multiply, input: [a, b]}\n"
             "    - {name: sum, type: add, input: [a, prod, b]}\n"
             "    - {name: sc, type: scale, factor: -0.7}\n"
             "    - {name: out2, type: dense, units: 5}\n",
             "    - {type: mse, input: out, target: x}\n"
             "    - {type: mse, input: out2, target: x}\n",
             "concat-add-multiply-scale");
    /* a target computed by a frozen layer is a constant */
    add_case("    - {name: a, type: dense, units: 5}\n"
             "    - {name: b, type: dense, units: 5, activation: sigmoid, input: x,"
             " trainable: false}\n",
             "    - {type: sigmoid_cross_entropy, input: a, target: b}\n",
             "target-from-frozen-layer");
    add_case("    - {name: h1, type: dense, units: 6, activation: selu}\n"
             "    - {name: drop, type: dropout, rate: 0.25}\n"
             "    - {name: h2, type: dense, units: 4, activation: softmax}\n"
             "    - {name: noise, type: gaussian_noise, stddev: 0.1}\n"
             "    - {name: h3, type: dense, units: 6, activation: leaky_relu, weights: h2.W^T}\n"
             "    - {name: out, type: dense, units: 5, activation: sigmoid, weights: h1.W^T}\n",
             "    - {type: sigmoid_cross_entropy, input: out, target: x, reduce: sum}\n"
             "    - {type: l2, weight: 0.01, params: [h1.W, h2.W]}\n",
             "deep-mixed");
}

/* ---- the check ---------------------------------------------------------------- */

typedef struct {
    double worst_ratio; /* |analytic − numeric| / allowed, largest */
    double worst_diff, worst_a, worst_n;
    char where[160];
    size_t checked;
    int kinks;
} gstats;

/* Checks one case with `rows` rows and `threads` threads; returns stats. */
static gstats grad_check(const gcase *c, int rows, int threads)
{
    ck_assert_msg(!c->missing[0], "no gradient case for loss '%s': add one to build_cases",
                  c->missing);
    yf_spec *s;
    yf_model *m = tu_model_t(c->yaml, threads, &s);
    ck_assert_int_ge(m->train.max_rows, rows);
    size_t in = m->train.node[m->train.input_node].size;
    tu_fill(tu_input(m), (size_t)rows * in, 1);
    tu_fill_labels(&m->train, rows, 3);
    m->step = 3; /* noise and dropout are keyed by the step: keep it fixed */

    double L0 = tu_step(m, rows);
    ck_assert_msg(isfinite(L0), "%s: loss %g", c->name, L0);
    ck_assert_msg(tu_step(m, rows) == L0, "%s: two runs at one step differ", c->name);
    float *ana = malloc(m->param_floats * sizeof *ana);
    memcpy(ana, m->grad_block, m->param_floats * sizeof *ana);

    /* max pooling: a step of 1e-2 often moves a window's maximum to another
     * pixel (a switch the kink test below cannot tell from an error) */
    /* batch norm over 4 examples: the loss curves strongly within 1e-2 */
    const double eps = strstr(c->yaml, "max_pool") || strstr(c->yaml, "batch_norm") ? 1e-3 : 1e-2;
    /* float losses: a few ulp of noise in L, divided by 2·eps; eps is large
     * enough for that noise to stay small, and kinks are recognised below */
    const double atol = 3e-5 * (1.0 + fabs(L0)), rtol = 5e-3;
    gstats st = {0};
    double sum_abs = 0;
    for (int p = 0; p < m->n_params; p++) {
        const yf__param *pp = &m->params[p];
        float *w = m->param_block + pp->offset;
        const float *a = ana + pp->offset;
        for (size_t j = 0; j < pp->size; j++) {
            if (!pp->trainable) {
                ck_assert_msg(a[j] == 0.0f, "%s: frozen %s[%zu] has gradient %g", c->name,
                              pp->name, j, a[j]);
                continue;
            }
            float w0 = w[j], wp = w0 + (float)eps, wm = w0 - (float)eps;
            w[j] = wp;
            double Lp = tu_step(m, rows);
            w[j] = wm;
            double Lm = tu_step(m, rows);
            w[j] = w0;
            double num = (Lp - Lm) / ((double)wp - wm);
            double fwd = (Lp - L0) / ((double)wp - w0), bwd = (L0 - Lm) / ((double)w0 - wm);
            double diff = fabs(a[j] - num);
            double allowed = atol + rtol * fmax(fabs(a[j]), fabs(num));
            sum_abs += fabs(a[j]);
            st.checked++;
            if (diff > allowed && fabs(fwd - bwd) > allowed &&
                fmin(fabs(a[j] - fwd), fabs(a[j] - bwd)) <= allowed) {
                /* a kink (relu, leaky_relu, selu at 0) between w-eps and w+eps:
                 * the analytic gradient is one side's slope */
                st.kinks++;
                continue;
            }
            if (diff / allowed > st.worst_ratio) {
                st.worst_ratio = diff / allowed;
                st.worst_diff = diff, st.worst_a = a[j], st.worst_n = num;
                snprintf(st.where, sizeof st.where, "%s[%zu]", pp->name, j);
            }
        }
    }
    printf("grad %-36s %3zu values, max |analytic-numeric| %.2e at %-12s (%+.6f vs %+.6f), "
           "%.2f of allowed, loss %.5f, kinks skipped %d\n",
           c->name, st.checked, st.worst_diff, st.where, st.worst_a, st.worst_n,
           st.worst_ratio, L0, st.kinks);
    fflush(stdout);
    ck_assert_msg(st.worst_ratio <= 1.0,
                  "%s: gradient of %s is %.7g, finite differences say %.7g (|diff| %.3g)",
                  c->name, st.where, st.worst_a, st.worst_n, st.worst_diff);
    ck_assert_msg(sum_abs > 0, "%s: every gradient is zero", c->name);
    /* a skipped kink still had its analytic gradient equal to one side's
     * slope; more than one value in ten there would hide too much */
    ck_assert_msg(st.kinks * 10 <= (int)st.checked,
                  "%s: %d kinks skipped of %zu values: use smaller steps", c->name, st.kinks,
                  st.checked);
    free(ana);
    tu_free(m, s);
    return st;
}

START_TEST(test_case_gradient)
{
    build_cases();
    ck_assert_int_lt(_i, n_cases);
    grad_check(&cases[_i], ROWS, 1);
}
END_TEST

/* A last, short batch: losses average over the rows actually run. */
START_TEST(test_partial_batch)
{
    build_cases();
    for (int i = 0; i < n_cases; i++)
        if (!strcmp(cases[i].name, "deep-mixed") || !strcmp(cases[i].name, "mse-sum-weighted"))
            grad_check(&cases[i], ROWS - 1, 1);
}
END_TEST

/* Every op of ops/ops.def (but input and param, which have no kernel) appears
 * in the training graph of some case, forward or backward. */
START_TEST(test_every_op_covered)
{
    build_cases();
    bool seen[YF_OP_COUNT] = {false};
    bool act_dense[YF_ACT_COUNT] = {false}, act_layer[YF_ACT_COUNT] = {false};
    for (int i = 0; i < n_cases; i++) {
        if (cases[i].missing[0])
            continue;
        yf_spec *s;
        yf_model *m = tu_model(cases[i].yaml, &s);
        for (int k = 0; k < m->eval.n; k++)
            seen[m->eval.node[k].op] = true; /* metrics live in the evaluation graph */
        for (int k = 0; k < m->train.n; k++) {
            const yf__gnode *n = &m->train.node[k];
            seen[n->op] = true;
            if (n->op == YF_OP_ACT_GRAD) {
                bool layer = false;
                for (int l = 0; l < s->n_layers; l++)
                    if (s->layers[l].at == n->at)
                        layer = s->layers[l].type == YF_LAYER_ACTIVATION;
                (layer ? act_layer : act_dense)[n->act] = true;
            }
        }
        tu_free(m, s);
    }
    char missing[512] = "";
    for (int op = 0; op < YF_OP_COUNT; op++)
        if (!seen[op] && op != YF_OP_INPUT && op != YF_OP_PARAM && op != YF_OP_STATE)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s",
                     yf__op_names[op]);
    ck_assert_msg(!missing[0], "ops with no gradient case:%s", missing);
    act_dense[YF_ACT_LINEAR] = true; /* a linear dense layer has no activation node */
    for (int a = 0; a < YF_ACT_COUNT; a++)
        ck_assert_msg(act_dense[a] && act_layer[a],
                      "activation %s is not differentiated both in a dense layer and as a layer",
                      act_names[a]);
}
END_TEST

/* Case c with 64 rows (≥ 16 per thread chunk) as a model of one thread and
 * one of two, both with the same inputs at the same step. */
static void two_models(const gcase *c, yf_model **m1, yf_spec **s1, yf_model **m2,
                       yf_spec **s2)
{
    char yaml[4200];
    snprintf(yaml, sizeof yaml, "%s", c->yaml);
    char *bs = strstr(yaml, "batch_size: 4}");
    ck_assert(bs != NULL);
    strcpy(bs, "batch_size: 64}\n");
    *m1 = tu_model_t(yaml, 1, s1);
    *m2 = tu_model_t(yaml, 2, s2);
    size_t in = (*m1)->train.node[(*m1)->train.input_node].size;
    tu_fill(tu_input(*m1), 64 * in, 5);
    tu_fill(tu_input(*m2), 64 * in, 5);
    (*m1)->step = (*m2)->step = 11;
}

/* The largest relative difference between two models' gradients. */
static double grad_diff(const yf_model *m1, const yf_model *m2)
{
    double worst = 0;
    for (size_t k = 0; k < m1->param_floats; k++)
        worst = fmax(worst, fabs(m1->grad_block[k] - m2->grad_block[k]) /
                                (1e-6 + fabs(m1->grad_block[k])));
    return worst;
}

/* Two threads (rows split among them, GEMMs threaded, independent nodes side
 * by side) give the gradients of one thread. */
START_TEST(test_threads_agree)
{
    build_cases();
    for (int i = 0; i < n_cases; i++) {
        if (strcmp(cases[i].name, "deep-mixed") && strcmp(cases[i].name, "four-consumers") &&
            strcmp(cases[i].name, "conv2d-stride-pad-dilation-groups") &&
            strcmp(cases[i].name, "conv2d-same-max_pool"))
            continue;
        yf_spec *s1, *s2;
        yf_model *m1, *m2;
        two_models(&cases[i], &m1, &s1, &m2, &s2);
        double L1 = tu_step(m1, 64), L2 = tu_step(m2, 64);
        ck_assert_msg(fabs(L1 - L2) <= 1e-5 * fabs(L1), "%s: loss %.9g with 1 thread, %.9g with 2",
                      cases[i].name, L1, L2);
        double worst = grad_diff(m1, m2);
        printf("threads %-20s 1 vs 2 threads: largest relative gradient difference %.2e\n",
               cases[i].name, worst);
        ck_assert_msg(worst < 1e-4, "%s: gradients differ between 1 and 2 threads (%.3g)",
                      cases[i].name, worst);
        tu_free(m1, s1);
        tu_free(m2, s2);
    }
}
END_TEST

/* A model of two threads run where OpenMP gives it fewer (inside a
 * caller's parallel region, or under OMP_THREAD_LIMIT) computes the same
 * gradients: work is split by the team OpenMP gives, not the one asked. */
START_TEST(test_smaller_team)
{
    build_cases();
    for (int i = 0; i < n_cases; i++) {
        if (strcmp(cases[i].name, "conv2d-large-k") && strcmp(cases[i].name, "conv2d-same-max_pool"))
            continue;
        yf_spec *s1, *s2;
        yf_model *m1, *m2;
        two_models(&cases[i], &m1, &s1, &m2, &s2);
        tu_step(m1, 64);
#pragma omp parallel num_threads(2)
        if (omp_get_thread_num() == 0) /* nested: the model's regions get one thread */
            tu_step(m2, 64);
        double worst = grad_diff(m1, m2);
        printf("team %-20s asked 2 threads, given 1: largest relative difference %.2e\n",
               cases[i].name, worst);
        ck_assert_msg(worst < 1e-4, "%s: gradients differ with a smaller team (%.3g)",
                      cases[i].name, worst);
        tu_free(m1, s1);
        tu_free(m2, s2);
    }
}
END_TEST

/* The Winograd kernels compute what im2col + GEMM does: the same loss and
 * gradients (to float rounding) for each Winograd case, with 64 rows (many
 * blocks) on one and two threads. */
START_TEST(test_winograd_matches_im2col)
{
    build_cases();
    int done = 0;
    for (int i = 0; i < n_cases; i++) {
        if (!strstr(cases[i].name, "winograd"))
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            yf_spec *s1, *s2;
            yf_model *m1, *m2;
            two_models(&cases[i], &m1, &s1, &m2, &s2);
            yf_model *m = threads == 1 ? m1 : m2;
            yf__winograd_enabled = false;
            double Lref = tu_step(m, 64);
            float *ref = malloc(m->param_floats * sizeof *ref);
            memcpy(ref, m->grad_block, m->param_floats * sizeof *ref);
            yf__winograd_enabled = true;
            double L = tu_step(m, 64);
            double worst = 0;
            for (size_t k = 0; k < m->param_floats; k++)
                worst = fmax(worst, fabs(m->grad_block[k] - ref[k]) / (1e-3 + fabs(ref[k])));
            printf("winograd %-22s %d thread(s): loss %.9g vs im2col %.9g, largest gradient "
                   "difference %.2e\n",
                   cases[i].name, threads, L, Lref, worst);
            ck_assert_msg(fabs(L - Lref) <= 1e-5 * fabs(Lref), "%s: loss %.9g, im2col %.9g",
                          cases[i].name, L, Lref);
            ck_assert_msg(worst < 1e-3, "%s: Winograd gradients differ from im2col's (%.3g)",
                          cases[i].name, worst);
            /* other sums round differently: bit-identical gradients would
             * mean the Winograd kernels never ran */
            ck_assert_msg(worst > 0, "%s: Winograd was not used", cases[i].name);
            free(ref);
            tu_free(m1, s1);
            tu_free(m2, s2);
            done++;
        }
    }
    ck_assert_int_eq(done, 8);
}
END_TEST

/* Without noise or dropout, the evaluation graph computes the training
 * graph's loss. */
START_TEST(test_eval_matches_train)
{
    build_cases();
    int done = 0;
    for (int i = 0; i < n_cases; i++) {
        if (cases[i].missing[0] || strstr(cases[i].yaml, "noise") ||
            strstr(cases[i].yaml, "dropout") || strstr(cases[i].yaml, "sample_normal") ||
            strstr(cases[i].yaml, "random_shift") ||
            strstr(cases[i].yaml, "batch_norm")) /* batch statistics vs running ones */
            continue;
        yf_spec *s;
        yf_model *m = tu_model(cases[i].yaml, &s);
        size_t in = m->train.node[m->train.input_node].size;
        tu_fill(tu_input(m), ROWS * in, 2);
        tu_fill(m->eval.node[m->eval.input_node].buf, ROWS * in, 2);
        tu_fill_labels(&m->train, ROWS, 3);
        tu_fill_labels(&m->eval, ROWS, 3);
        double lt = tu_step(m, ROWS);
        yf__run(m, &m->eval, ROWS);
        double le = tu_loss(&m->eval);
        ck_assert_msg(fabs(lt - le) <= 1e-6 * (1 + fabs(lt)), "%s: train loss %.9g, eval %.9g",
                      cases[i].name, lt, le);
        tu_free(m, s);
        done++;
    }
    ck_assert_int_gt(done, 10);
}
END_TEST

/* Noise and dropout change with the step and the seed, and only then. */
START_TEST(test_noise_keyed_by_step)
{
    build_cases();
    for (int i = 0; i < n_cases; i++) {
        if (strcmp(cases[i].name, "dropout") && strcmp(cases[i].name, "gaussian_noise") &&
            strcmp(cases[i].name, "random_shift"))
            continue;
        yf_spec *s;
        yf_model *m = tu_model(cases[i].yaml, &s);
        size_t in = m->train.node[m->train.input_node].size;
        tu_fill(tu_input(m), ROWS * in, 3);
        m->step = 1;
        double a = tu_step(m, ROWS);
        m->step = 2;
        double b = tu_step(m, ROWS);
        m->step = 1;
        double c = tu_step(m, ROWS);
        ck_assert_msg(a == c && a != b, "%s: loss %.9g at step 1, %.9g at step 2, %.9g at step 1",
                      cases[i].name, a, b, c);
        tu_free(m, s);
    }
}
END_TEST

/* A sigmoid (softmax) output feeding the loss that takes logits trains as
 * the linear output would: the loss uses the logits below the activation. */
START_TEST(test_fused_logits)
{
    static const char *const pairs[][2] = {
        {"    - {name: h, type: dense, units: 4, activation: elu}\n"
         "    - {name: out, type: dense, units: 5, activation: sigmoid}\n",
         "    - {type: sigmoid_cross_entropy, input: out, target: x}\n"},
        {"    - {name: h, type: dense, units: 4, activation: elu}\n"
         "    - {name: out, type: dense, units: 3, activation: softmax}\n",
         "    - {type: softmax_cross_entropy, input: out, target: y}\n"},
    };
    for (int i = 0; i < 2; i++) {
        char linear[1024], yaml[2][4096];
        const char *act = strstr(pairs[i][0], i ? "softmax}" : "sigmoid}");
        snprintf(linear, sizeof linear, "%.*slinear%s", (int)(act - pairs[i][0]), pairs[i][0],
                 act + 7);
        snprintf(yaml[0], sizeof yaml[0], spec_fmt, "5", pairs[i][0], pairs[i][1], ROWS);
        snprintf(yaml[1], sizeof yaml[1], spec_fmt, "5", linear, pairs[i][1], ROWS);
        yf_spec *s[2];
        yf_model *m[2];
        double L[2];
        for (int k = 0; k < 2; k++) {
            m[k] = tu_model(yaml[k], &s[k]);
            tu_fill(tu_input(m[k]), ROWS * 5, 4);
            tu_fill_labels(&m[k]->train, ROWS, 3);
            L[k] = tu_step(m[k], ROWS);
        }
        ck_assert_uint_eq(m[0]->param_floats, m[1]->param_floats);
        double worst = 0;
        for (size_t j = 0; j < m[0]->param_floats; j++)
            worst = fmax(worst, fabs(m[0]->grad_block[j] - m[1]->grad_block[j]));
        printf("fused %-8s loss %.9g vs linear output %.9g, gradients differ by %.2e\n",
               i ? "softmax" : "sigmoid", L[0], L[1], worst);
        ck_assert_msg(fabs(L[0] - L[1]) <= 1e-6 * (1 + fabs(L[1])), "loss %.9g vs %.9g", L[0],
                      L[1]);
        ck_assert_msg(worst <= 1e-6, "gradients differ by %g", worst);
        for (int k = 0; k < 2; k++)
            tu_free(m[k], s[k]);
    }
}
END_TEST

/* ---- forward values against independent references --------------------------- */

/* The points every element-wise activation is evaluated at: both tails
 * (±30, where exp under- or overflows a naive formula), zero, and values
 * near it where a formula like e^x − 1 cancels. */
static const float act_x[11] = {-30, -5, -1, -0.5, -1e-3f, 0, 1e-3f, 0.5, 1, 5, 30};

/* f(act_x) in double by PyTorch 1.13 (torch.nn.functional, float64 tensors
 * of the float inputs above), printed with %.17g:
 *     x = torch.tensor(act_x, dtype=torch.float32).double()
 *     F.relu(x), F.leaky_relu(x, 0.01), F.elu(x, 1.0), F.selu(x), torch.sigmoid(x), ... */
static const struct {
    const char *function; /* function and alpha as written in the spec */
    double want[11];
} act_refs[] = {
    {"linear", {-30, -5, -1, -0.5, -0.0010000000474974513, 0, 0.0010000000474974513, 0.5, 1, 5, 30}},
    {"relu", {0, 0, 0, 0, 0, 0, 0.0010000000474974513, 0.5, 1, 5, 30}},
    {"leaky_relu", /* alpha 0.01, the default */
     {-0.29999999999999999, -0.050000000000000003, -0.01, -0.0050000000000000001,
      -1.0000000474974514e-05, 0, 0.0010000000474974513, 0.5, 1, 5, 30}},
    {"leaky_relu, alpha: 0.2",
     {-6, -1, -0.20000000000000001, -0.10000000000000001, -0.00020000000949949026, 0,
      0.0010000000474974513, 0.5, 1, 5, 30}},
    {"elu", /* alpha 1, the default */
     {-0.99999999999990641, -0.99326205300091452, -0.63212055882855767, -0.39346934028736658,
      -0.00099950021407502199, 0, 0.0010000000474974513, 0.5, 1, 5, 30}},
    {"elu, alpha: 0.7",
     {-0.69999999999993445, -0.69528343710064011, -0.44248439117999033, -0.27542853820115659,
      -0.00069965014985251539, 0, 0.0010000000474974513, 0.5, 1, 5, 30}},
    {"selu",
     {-1.7580993408472121, -1.7462533606696198, -1.1113307378125625, -0.69175818780287135,
      -0.0017572206675421081, 0, 0.0010507010372610994, 0.52535049367774023,
      1.0507009873554805, 5.2535049367774018, 31.521029620664414}},
    {"sigmoid",
     {9.3576229688392989e-14, 0.0066928509242848554, 0.2689414213699951, 0.37754066879814541,
      0.49975000000895892, 0.5, 0.50024999999104103, 0.62245933120185459, 0.7310585786300049,
      0.99330714907571527, 0.99999999999990652}},
    {"tanh",
     {-1, -0.99990920426259511, -0.76159415595576485, -0.46211715726000974,
      -0.0009999997141642038, 0, 0.0009999997141642038, 0.46211715726000974,
      0.76159415595576485, 0.99990920426259511, 1}},
};

/* A model whose layer `a` is `function` applied to the input (`width`
 * values per example); a dense layer after it gives the model something
 * to train. */
static yf_model *act_model(const char *function, int width, yf_spec **s)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "name: act\ndata: {source: mnist}\nmodel:\n  input: {name: x, shape: [%d]}\n"
             "  layers:\n    - {name: a, type: activation, function: %s}\n"
             "    - {name: d, type: dense, units: %d}\n"
             "  loss:\n    - {type: mse, input: d, target: x}\n",
             width, function, width);
    return tu_model(yaml, s);
}

/* |got − want| within 2e-6 of |want| (a few float ulp, the kernels' exp
 * being within 2 ulp); near x = 0 also within 2.5e-7 absolute (2 ulp of
 * 1), since elu, selu and tanh compute e^x − 1 or 1 − e^−2|x| in float,
 * which has that absolute, not relative, accuracy there. */
static double assert_close(const char *what, double x, double got, double want)
{
    double tol = 2e-6 * fabs(want) + (fabs(x) < 0.1 ? 2.5e-7 : 0);
    ck_assert_msg(fabs(got - want) <= tol, "%s(%.9g) = %.9g, reference %.17g (|diff| %.3g > %.3g)",
                  what, x, got, want, fabs(got - want), tol);
    return tol > 0 ? fabs(got - want) / tol : 0;
}

START_TEST(test_activation_values)
{
    bool covered[YF_ACT_COUNT] = {false};
    for (size_t i = 0; i < YF__ARRAY_LEN(act_refs); i++) {
        yf_spec *s;
        yf_model *m = act_model(act_refs[i].function, 11, &s);
        covered[s->layers[0].activation] = true;
        float out[11];
        yf_error err = {0};
        ck_assert_msg(yf_model_forward(m, NULL, act_x, 1, "a", out, 0, 0, &err) == 0, "%s",
                      yf_error_format(&err));
        double worst = 0;
        for (int k = 0; k < 11; k++)
            worst = fmax(worst, assert_close(act_refs[i].function, act_x[k], out[k],
                                             act_refs[i].want[k]));
        printf("value %-24s 11 points, largest difference %.2f of allowed\n",
               act_refs[i].function, worst);
        tu_free(m, s);
    }

    /* softmax over each example's values, by torch.softmax(x.double(), dim=1) */
    static const float sx[4][3] = {{30, 0, -30}, {1, 2, 3}, {-30, -30, -30}, {0.5, -1e-3f, 30}};
    static const double sw[4][3] = {
        {0.99999999999990652, 9.3576229688393001e-14, 8.7565107626957021e-27},
        {0.090030573170380448, 0.24472847105479761, 0.66524095577482178},
        {0.33333333333333331, 0.33333333333333331, 0.33333333333333331},
        {1.5428112031915055e-13, 9.3482700226772698e-14, 0.9999999999997522},
    };
    yf_spec *s;
    yf_model *m = act_model("softmax", 3, &s);
    covered[YF_ACT_SOFTMAX] = true;
    float out[4][3];
    yf_error err = {0};
    ck_assert_msg(yf_model_forward(m, NULL, &sx[0][0], 4, "a", &out[0][0], 0, 0, &err) == 0,
                  "%s", yf_error_format(&err));
    double worst = 0;
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 3; k++)
            worst = fmax(worst, assert_close("softmax", sx[r][k], out[r][k], sw[r][k]));
    printf("value %-24s 12 points, largest difference %.2f of allowed\n", "softmax", worst);
    tu_free(m, s);
    for (int a = 0; a < YF_ACT_COUNT; a++)
        ck_assert_msg(covered[a], "activation %s has no reference values", act_names[a]);
}
END_TEST

/* Every loss term on one model of 3 features: p = x (an identity dense
 * layer), c = (1, 0, 1) (a dense layer with zero weights: its bias), and
 * the sigmoid of p; labels y of 3 classes. */
static const char loss_yaml[] =
    "name: losses\ndata: {source: mnist}\nmodel:\n  input: {name: x, shape: [3]}\n"
    "  labels: {name: y, classes: 3}\n  layers:\n"
    "    - {name: p, type: dense, units: 3, input: x}\n"
    "    - {name: c, type: dense, units: 3, input: x}\n"
    "    - {name: s, type: activation, function: sigmoid, input: p}\n"
    "  loss:\n"
    "    - {type: mse, input: p, target: c}\n"
    "    - {type: mse, input: p, target: c, reduce: sum, weight: 0.5}\n"
    "    - {type: sigmoid_cross_entropy, input: p, target: c}\n"
    "    - {type: sigmoid_cross_entropy, input: p, target: c, reduce: sum, weight: 2}\n"
    "    - {type: softmax_cross_entropy, input: p, target: y, weight: 0.3}\n"
    "    - {type: kl_normal, mean: c, log_var: p}\n"
    "    - {type: kl_normal, mean: c, log_var: p, reduce: mean, weight: 0.1}\n"
    "    - {type: kl_sparsity, input: s, target: 0.1}\n"
    "    - {type: l1, input: p}\n"
    "    - {type: l1, input: p, reduce: mean, weight: 0.05}\n"
    "    - {type: l2, params: [c.b, p.W], weight: 0.001}\n";

static const yf__loss_type loss_order[11] = {
    YF_LOSS_MSE,         YF_LOSS_MSE,       YF_LOSS_SIGMOID_CE, YF_LOSS_SIGMOID_CE,
    YF_LOSS_SOFTMAX_CE,  YF_LOSS_KL_NORMAL, YF_LOSS_KL_NORMAL,  YF_LOSS_KL_SPARSITY,
    YF_LOSS_L1,          YF_LOSS_L1,        YF_LOSS_L2};
static const double loss_weight[11] = {1, 0.5, 1, 2, 0.3, 1, 0.1, 1, 1, 0.05, 0.001};

/* The terms' values for three batches, in the order of loss_yaml, by
 * PyTorch 1.13 in float64 on the float inputs (F.mse_loss,
 * F.cross_entropy, kl_divergence(Normal(c, exp(p / 2)), Normal(0, 1)),
 * kl_divergence(Bernoulli(0.1), Bernoulli(q)) with q = sigmoid(p).mean(0)
 * clamped to [float32(1e-6), float32(1 − 1e-6)] as documented, in float),
 * reduce: sum as the sum over the batch / R. The sigmoid cross-entropy is
 * max(z, 0) − z·t + log1p(e^−|z|) in NumPy float64: PyTorch's
 * log(1 + e^−30) keeps only 3 digits of 9.36e-14 (elsewhere the two agree
 * to 1e-15). l2 is Σ c.b² + Σ p.W² = 2 + 3. */
static const struct {
    const char *name;
    int rows;
    float x[3][3];
    int32_t y[3];
    double want[11];
} loss_refs[] = {
    {"mixed", 3, {{30, -30, 0}, {-30, 30, 2.5}, {0.5, -1, -2}}, {0, 2, 1},
     {401.72222222222223, 1205.1666666666667, 7.0762559552882411, 21.228767865864722,
      9.7554559666027885, 3562158193843.5435, 1187386064614.5146, 1.0843219245149558, 42, 14,
      5}},
    /* every logit on the right side of its target: the cross-entropies are
     * e^-30-small and must not round to 0 or lose digits; q at both clamps */
    {"tails", 1, {{30, -30, 30}}, {0},
     {860.66666666666663, 2582, 9.3576229688397381e-14, 2.8072868906519213e-13,
      0.69314718055994529, 10686474581508.963, 3562158193836.3208, 25.250477419419347, 90, 30,
      5}},
    {"zeros", 2, {{0, 0, 0}, {0, 0, 0}}, {1, 2},
     {0.66666666666666663, 2, 0.69314718055994529, 2.0794415416798357, 1.0986122886681098, 1,
      0.33333333333333331, 1.1041926215054911, 0, 0, 5}},
};

START_TEST(test_loss_values)
{
    yf_spec *s;
    yf_model *m = tu_model(loss_yaml, &s);
    float *pw = m->param_block + m->params[tu_param(m, "p.W")].offset;
    float *pb = m->param_block + m->params[tu_param(m, "p.b")].offset;
    float *cw = m->param_block + m->params[tu_param(m, "c.W")].offset;
    float *cb = m->param_block + m->params[tu_param(m, "c.b")].offset;
    for (int k = 0; k < 9; k++)
        pw[k] = k % 4 == 0 ? 1.0f : 0.0f, cw[k] = 0.0f;
    for (int j = 0; j < 3; j++)
        pb[j] = 0.0f, cb[j] = j == 1 ? 0.0f : 1.0f;
    yf__graph *g = &m->eval;
    ck_assert_int_eq(g->n_loss, 12); /* l2 has a node per parameter */
    bool covered[YF__ARRAY_LEN(loss_names)] = {false};
    for (size_t c = 0; c < YF__ARRAY_LEN(loss_refs); c++) {
        int R = loss_refs[c].rows;
        memcpy(g->node[g->input_node].buf, loss_refs[c].x, sizeof(float) * 3 * R);
        memcpy(g->node[g->label_node].buf, loss_refs[c].y, sizeof(int32_t) * R);
        yf__run(m, g, R);
        double value[11] = {0}, total = 0, worst = 0;
        for (int k = 0; k < g->n_loss; k++) {
            const yf__gnode *n = &g->node[g->loss_node[k]];
            ck_assert(n->term >= 0 && n->term < 11);
            ck_assert_str_eq(yf__op_names[n->op], loss_names[loss_order[n->term]]);
            value[n->term] += n->buf[0];
        }
        for (int i = 0; i < 11; i++) {
            covered[loss_order[i]] = true;
            double got = value[i], want = loss_refs[c].want[i], tol = 2e-6 * fabs(want);
            ck_assert_msg(fabs(got - want) <= tol,
                          "%s: term %d (%s) is %.9g, reference %.17g (|diff| %.3g > %.3g)",
                          loss_refs[c].name, i, loss_names[loss_order[i]], got, want,
                          fabs(got - want), tol);
            worst = fmax(worst, want ? fabs(got - want) / tol : 0);
            total += loss_weight[i] * want;
        }
        double got = tu_loss(g);
        ck_assert_msg(fabs(got - total) <= 2e-6 * total, "%s: total %.9g, reference %.17g",
                      loss_refs[c].name, got, total);
        printf("value losses %-12s 11 terms, largest difference %.2f of allowed\n",
               loss_refs[c].name, worst);
    }
    for (size_t t = 0; t < YF__ARRAY_LEN(loss_names); t++)
        ck_assert_msg(covered[t], "loss %s has no reference values", loss_names[t]);
    tu_free(m, s);
}
END_TEST

int main(void)
{
    build_cases();
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("finite differences");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_case_gradient, 0, n_cases);
    tcase_add_test(tc, test_partial_batch);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("graphs");
    tcase_set_timeout(tc2, 60);
    tcase_add_test(tc2, test_every_op_covered);
    tcase_add_test(tc2, test_threads_agree);
    tcase_add_test(tc2, test_smaller_team);
    tcase_add_test(tc2, test_winograd_matches_im2col);
    tcase_add_test(tc2, test_eval_matches_train);
    tcase_add_test(tc2, test_noise_keyed_by_step);
    tcase_add_test(tc2, test_fused_logits);
    suite_add_tcase(s, tc2);
    TCase *tc3 = tcase_create("reference values");
    tcase_add_test(tc3, test_activation_values);
    tcase_add_test(tc3, test_loss_values);
    suite_add_tcase(s, tc3);
    return tu_run(s);
}
