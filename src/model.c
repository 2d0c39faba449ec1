#define _GNU_SOURCE /* qsort_r */
/* Models: one parameter block shared by a training graph (forward and
 * backward) and an evaluation graph (forward only, no noise or dropout). */
#include "internal.h"

#include <unistd.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define YF__EVAL_ROWS 1000

static float *block(size_t n)
{
    float *p = yf__aligned_alloc(64, (n + YF__SLACK) * sizeof(float));
    if (p)
        memset(p, 0, (n + YF__SLACK) * sizeof(float));
    return p;
}

/* Saxe et al.'s orthogonal initialisation: the rows × cols matrix a
 * (row-major, Gaussian) made to have orthonormal columns (rows ≥ cols) or
 * rows, by modified Gram–Schmidt in double precision; a vector that comes
 * out (nearly) dependent on the others is left as drawn. */
static void orthonormalise(float *a, size_t rows, size_t cols)
{
    bool by_cols = rows >= cols;
    size_t n = by_cols ? cols : rows, len = by_cols ? rows : cols;
    size_t step = by_cols ? cols : 1, stride = by_cols ? 1 : cols; /* element i of vector v */
    for (size_t v = 0; v < n; v++) {
        float *x = a + v * stride;
        for (size_t u = 0; u < v; u++) {
            const float *y = a + u * stride;
            double dot = 0;
            for (size_t i = 0; i < len; i++)
                dot += (double)x[i * step] * y[i * step];
            for (size_t i = 0; i < len; i++)
                x[i * step] = (float)(x[i * step] - dot * y[i * step]);
        }
        double norm = 0;
        for (size_t i = 0; i < len; i++)
            norm += (double)x[i * step] * x[i * step];
        if (norm > 1e-20)
            for (size_t i = 0; i < len; i++)
                x[i * step] = (float)(x[i * step] / sqrt(norm));
    }
}

/* Parameter p's values from the seed alone: stream INIT, step p. */
static void init_param(const yf_model *m, int p)
{
    const yf__param *pp = &m->params[p];
    float *w = m->param_block + pp->offset;
    switch (pp->init) {
    case YF_INIT_ZEROS:
        memset(w, 0, pp->size * sizeof(float));
        break;
    case YF_INIT_ONES:
        for (size_t i = 0; i < pp->size; i++)
            w[i] = 1.0f;
        break;
    case YF_INIT_HE_NORMAL:
        yf__rand_normal(m->spec->seed, YF__STREAM_INIT, (uint64_t)p, w, pp->size, 0.0f,
                        sqrtf(2.0f / pp->fan_in));
        break;
    case YF_INIT_LECUN_NORMAL:
        yf__rand_normal(m->spec->seed, YF__STREAM_INIT, (uint64_t)p, w, pp->size, 0.0f,
                        sqrtf(1.0f / pp->fan_in));
        break;
    case YF_INIT_LECUN_UNIFORM:
    case YF_INIT_FAN_IN_UNIFORM: { /* ±√(3 / fan_in); ±1/√fan_in, PyTorch's Linear */
        float lim = sqrtf((pp->init == YF_INIT_LECUN_UNIFORM ? 3.0f : 1.0f) / pp->fan_in);
        yf__rand_uniform(m->spec->seed, YF__STREAM_INIT, (uint64_t)p, w, pp->size, -lim, lim);
        break;
    }
    case YF_INIT_GLOROT_UNIFORM: {
        float lim = sqrtf(6.0f / (pp->fan_in + pp->fan_out));
        yf__rand_uniform(m->spec->seed, YF__STREAM_INIT, (uint64_t)p, w, pp->size, -lim, lim);
        break;
    }
    case YF_INIT_HE_UNIFORM: { /* ±√(6 / fan_in): variance 2 / fan_in */
        float lim = sqrtf(6.0f / pp->fan_in);
        yf__rand_uniform(m->spec->seed, YF__STREAM_INIT, (uint64_t)p, w, pp->size, -lim, lim);
        break;
    }
    case YF_INIT_GLOROT_NORMAL:
        yf__rand_normal(m->spec->seed, YF__STREAM_INIT, (uint64_t)p, w, pp->size, 0.0f,
                        sqrtf(2.0f / (pp->fan_in + pp->fan_out)));
        break;
    case YF_INIT_CONSTANT:
        for (size_t i = 0; i < pp->size; i++)
            w[i] = pp->init_value;
        break;
    case YF_INIT_ORTHOGONAL:
        yf__rand_normal(m->spec->seed, YF__STREAM_INIT, (uint64_t)p, w, pp->size, 0.0f, 1.0f);
        orthonormalise(w, (size_t)pp->dims[0], pp->size / (size_t)pp->dims[0]);
        break;
    }
}

static int larger_first(const void *a, const void *b, void *ctx)
{
    const yf__param *p = ctx;
    size_t x = p[*(const int *)a].size, y = p[*(const int *)b].size;
    return x > y ? -1 : x < y ? 1 : *(const int *)a - *(const int *)b;
}

yf_model *yf_model_new(const yf_spec *spec, int threads, yf_error *err)
{
    if (yf_runtime_init(err))
        return NULL;
    yf_model *m = yf__calloc(1, sizeof *m);
    if (!m) {
        yf__fail(err, YF_ENOMEM, "out of memory");
        return NULL;
    }
    m->spec = spec;
    yf_runtime_info info;
    yf_runtime_info_get(&info);
    m->threads = threads > 0 ? threads : info.cores;
    m->active = m->threads;
    /* FTZ stays set in the OpenMP workers that run the kernels; the
     * calling thread gets its own mode back (entry points set it anew) */
    unsigned saved = yf__ftz_enter();
    yf__flush_denormals(m->threads);
    yf__ftz_leave(&saved);
    m->train.max_rows = spec->batch_size;
    m->eval.max_rows = YF__EVAL_ROWS;
    if (yf__compile(m, &m->train, true, err))
        goto fail;
    /* refused, not allocated, when the machine cannot hold it: values,
     * gradients and two optimizer moments */
    double need = 4.0 * (double)m->param_floats * sizeof(float), have = yf__physical_memory();
    if (have > 0 && need > 0.75 * have) { /* the activations, the data and the rest need room */
        yf__fail_at(err, yf__map_get(yf__map_get(spec->tree->root, "model"), "layers"), YF_ESPEC,
                    "model: %zu parameters need %.1f GB (values, gradients and two optimizer "
                    "moments), more than 3/4 of this machine's memory", m->param_floats,
                    need / 1e9);
        goto fail;
    }
    m->param_block = block(m->param_floats);
    m->grad_block = block(m->param_floats);
    m->m_block = block(m->param_floats);
    m->v_block = block(m->param_floats);
    if (!m->param_block || !m->grad_block || !m->m_block || !m->v_block) {
        yf__fail(err, YF_ENOMEM, "out of memory for %zu parameters", m->param_floats);
        goto fail;
    }
    for (int p = 0; p < m->n_params; p++)
        init_param(m, p);
    /* the optimizer's threads take the parameters largest first, so that
     * their shares come out even */
    m->optim_order = yf__malloc((m->n_params + 1) * sizeof *m->optim_order);
    if (!m->optim_order) {
        yf__fail(err, YF_ENOMEM, "out of memory");
        goto fail;
    }
    for (int p = 0; p < m->n_params; p++)
        m->optim_order[p] = p;
    qsort_r(m->optim_order, m->n_params, sizeof *m->optim_order, larger_first, m->params);
    if (yf__compile(m, &m->eval, false, err) || yf__autodiff(m, &m->train, err) ||
        yf__plan(m, &m->train, err))
        goto fail;
    m->eval.n_fwd = m->eval.n;
    if (yf__plan(m, &m->eval, err) || yf__lint(m, err))
        goto fail;
    m->lr = yf__schedule_lr(spec, 0.0);
    return m;
fail:
    yf_model_free(m);
    return NULL;
}

void yf_model_free(yf_model *m)
{
    if (!m)
        return;
    yf__exchange_free(m); /* gives the model back its own blocks (shared by ranks) */
    yf__graph_free(&m->train);
    yf__graph_free(&m->eval);
    free(m->params);
    free(m->param_block);
    free(m->grad_block);
    free(m->m_block);
    free(m->v_block);
    free(m->optim_order);
    free(m->warn);
    free(m);
}

size_t yf_model_param_count(const yf_model *m)
{
    size_t n = 0;
    for (int p = 0; p < m->n_params; p++)
        n += m->params[p].size;
    return n;
}

float *yf_model_params(yf_model *m) { return m->param_block; }

static void fmt_shape(const yf__gnode *n, char *buf, size_t cap)
{
    size_t l = snprintf(buf, cap, "[batch");
    for (int i = 0; i < n->ndim && l < cap; i++)
        l += snprintf(buf + l, cap - l, ", %d", n->dims[i]);
    if (l < cap)
        snprintf(buf + l, cap - l, "]");
}

static const char *layer_type_name(yf__layer_type t)
{
    static const char *const names[] = {
#define XX(e, s) #s,
        YF_LAYER_TYPES(XX)
#undef XX
    };
    return names[t];
}

void yf_model_summary(const yf_model *m, FILE *out)
{
    const yf_spec *s = m->spec;
    const yf__graph *g = &m->train;
    char shape[96];
    fprintf(out, "model '%s' (seed %llu)\n\n", s->name, (unsigned long long)s->seed);
    fprintf(out, "%-16s %-17s %-18s %12s %14s\n", "layer", "type", "output", "params",
            "FLOPs/example");
    fmt_shape(&g->node[g->input_node], shape, sizeof shape);
    fprintf(out, "%-16s %-17s %-18s %12s %14s\n", s->input_name, "input", shape, "0", "0");
    if (g->label_node >= 0)
        fprintf(out, "%-16s %-17s %-18s %12s %14s\n", s->labels_name, "labels",
                "[batch] int32", "0", "0");
    double fwd_flops = 0;
    for (int i = 0; i < s->n_layers; i++) {
        const yf__layer_spec *l = &s->layers[i];
        double flops = 0;
        int last = -1;
        for (int k = 0; k < g->n_fwd; k++)
            if (g->node[k].at == l->at && g->node[k].op != YF_OP_PARAM) {
                flops += yf__node_flops(g, &g->node[k], 1);
                last = k;
            }
        size_t params = 0;
        for (int p = 0; p < m->n_params; p++)
            if (m->params[p].at == l->at)
                params += m->params[p].size;
        int o = g->layer_node[i];
        if (last >= 0 && o >= 0)
            fmt_shape(&g->node[o], shape, sizeof shape);
        else
            snprintf(shape, sizeof shape, "(identity)");
        char type[40];
        snprintf(type, sizeof type, "%s%s", layer_type_name(l->type),
                 l->weights[0] ? " (tied)" : "");
        fprintf(out, "%-16s %-17s %-18s %12zu %14.0f%s\n", l->name, type, shape, params,
                flops, l->trainable ? "" : "  frozen");
        fwd_flops += flops;
    }
    double train_flops = 0;
    for (int k = 0; k < g->n; k++)
        train_flops += yf__node_flops(g, &g->node[k], 1);
    size_t trainable = 0;
    for (int p = 0; p < m->n_params; p++)
        trainable += m->params[p].trainable ? m->params[p].size : 0;
    fprintf(out, "\nparameters: %zu (%zu trainable) in %d tensors\n",
            yf_model_param_count(m), trainable, m->n_params);
    fprintf(out, "FLOPs per example: %.0f forward, %.0f training step\n", fwd_flops,
            train_flops);
    fprintf(out, "training graph: %d nodes (%d backward) in %d levels; activations %.2f MB "
                 "for batch %d (%.2f MB without buffer reuse)\n",
            g->n, g->n - g->n_fwd, g->n_levels - 1, g->arena_floats * 4.0 / 1048576.0,
            g->max_rows, g->naive_floats * 4.0 / 1048576.0);
    fprintf(out, "loss: ");
    for (int t = 0; t < s->n_losses; t++) {
        static const char *const names[] = {
#define XX(e, s) #s,
            YF_LOSS_TYPES(XX)
#undef XX
        };
        fprintf(out, "%s%g × %s", t ? " + " : "", s->losses[t].weight,
                names[s->losses[t].type]);
    }
    fprintf(out, "\n");
    if (m->eval.n_metric) {
        fprintf(out, "metrics:");
        for (int i = 0; i < m->eval.n_metric; i++)
            fprintf(out, " %s", m->eval.metric[i].name);
        fprintf(out, "\n");
    }
}

double yf__physical_memory(void)
{
#ifdef YF_FUZZ_MEMORY_MB
    /* the fuzz build (fuzz/): a small machine, so that a valid but large
     * spec is refused before it reaches libFuzzer's memory limit */
    return YF_FUZZ_MEMORY_MB * 1048576.0;
#endif
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}
