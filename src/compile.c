/* spec → forward graph: one node per op, shapes inferred and checked, every
 * node pointing back at the YAML line it came from. Parameters are
 * registered on the model the first time a graph names them. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int yf__graph_add(yf__graph *g, yf__op op, const char *name, const yf__node *at,
                  yf_error *err)
{
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        yf__gnode *nn = realloc(g->node, cap * sizeof *nn);
        if (!nn)
            return yf__fail(err, YF_ENOMEM, "out of memory building the graph");
        g->node = nn;
        g->cap = cap;
    }
    yf__gnode *n = &g->node[g->n];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->after = -1;
    n->grad = -1;
    n->param = -1;
    n->term = -1;
    n->at = at;
    snprintf(n->name, sizeof n->name, "%s", name);
    return g->n++;
}

int yf__grad_accum(yf__graph *g, int id, int contrib, yf_error *err)
{
    if (g->node[id].grad < 0) {
        g->node[id].grad = contrib;
        return 0;
    }
    int a = yf__graph_add(g, YF_OP_ADD, g->node[id].name, g->node[id].at, err);
    if (a < 0)
        return a;
    yf__gnode *n = &g->node[a];
    n->n_in = 2, n->in[0] = g->node[id].grad, n->in[1] = contrib;
    n->size = g->node[id].size, n->per_row = g->node[id].per_row;
    g->node[id].grad = a;
    return 0;
}

void yf__param_grad_writer(yf__graph *g, int id, int p)
{
    g->node[id].param = p;
    if (g->param_writer[p] >= 0) {
        g->node[id].after = g->param_writer[p];
        g->node[id].accumulate = true;
    }
    g->param_writer[p] = id;
}

double yf__node_flops(const yf__graph *g, const yf__gnode *n, int rows)
{
    switch (n->op) {
    case YF_OP_DENSE:
    case YF_OP_DENSE_DX:
        return 2.0 * rows * g->node[n->in[0]].size * n->size;
    case YF_OP_DENSE_DW:
        return 2.0 * rows * g->node[n->in[0]].size * g->node[n->in[1]].size;
    case YF_OP_INPUT:
    case YF_OP_PARAM:
        return 0;
    default:
        return n->per_row ? (double)rows * n->size : (double)n->size;
    }
}

/* ---- names in scope ----------------------------------------------------- */

typedef struct {
    int n;
    const char *name[1024];
    int node[1024];
} scope;

static int lookup(const scope *s, const char *name)
{
    for (int i = s->n - 1; i >= 0; i--)
        if (strcmp(s->name[i], name) == 0)
            return s->node[i];
    return -1;
}

/* "no layer 'codng' before this one (did you mean 'coding'?)" */
static int unknown_name(yf_error *err, const yf__node *at, const char *ctx,
                        const scope *s, const yf_spec *spec, const char *name)
{
    const char *cands[1100];
    int n = 0;
    for (int i = 0; i < s->n; i++)
        cands[n++] = s->name[i];
    const char *near = yf__closest(name, cands, n);
    for (int i = 0; i < spec->n_layers; i++)
        if (strcmp(spec->layers[i].name, name) == 0)
            return yf__fail_at(err, at, YF_ESPEC,
                               "%s'%s' is defined later (line %d); a layer can only use "
                               "the model input and layers above it", ctx, name,
                               spec->layers[i].at->line);
    if (near)
        return yf__fail_at(err, at, YF_ESPEC,
                           "%sno layer or input named '%s' (did you mean '%s'?)", ctx,
                           name, near);
    return yf__fail_at(err, at, YF_ESPEC, "%sno layer or input named '%s'", ctx, name);
}

static int find_param(const yf_model *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return i;
    return -1;
}

static int add_param(yf_model *m, const char *name, int d0, int d1, yf__init init,
                     bool trainable, const yf__node *at)
{
    int p = find_param(m, name);
    if (p >= 0)
        return p;
    if (m->param_block) /* the block is allocated after the first graph */
        return -1;
    m->params = realloc(m->params, (m->n_params + 1) * sizeof *m->params);
    yf__param *pp = &m->params[m->n_params];
    memset(pp, 0, sizeof *pp);
    snprintf(pp->name, sizeof pp->name, "%s", name);
    pp->ndim = d1 ? 2 : 1;
    pp->dims[0] = d0, pp->dims[1] = d1;
    pp->size = (size_t)d0 * (d1 ? d1 : 1);
    pp->offset = m->param_floats;
    m->param_floats += (pp->size + 15) & ~(size_t)15; /* 64-byte aligned views */
    pp->init = init;
    pp->fan_in = d1 ? d0 : 1;
    pp->fan_out = d1 ? d1 : d0;
    pp->trainable = trainable;
    pp->at = at;
    return m->n_params++;
}

static int param_node(yf__graph *g, const yf_model *m, int p, yf_error *err)
{
    for (int i = 0; i < g->n; i++)
        if (g->node[i].op == YF_OP_PARAM && g->node[i].param == p)
            return i;
    int id = yf__graph_add(g, YF_OP_PARAM, m->params[p].name, m->params[p].at, err);
    if (id < 0)
        return id;
    yf__gnode *n = &g->node[id];
    n->param = p;
    n->ndim = m->params[p].ndim;
    n->dims[0] = m->params[p].dims[0], n->dims[1] = m->params[p].dims[1];
    n->size = m->params[p].size;
    return id;
}

static void shape_str(const yf__gnode *n, char *buf, size_t cap)
{
    size_t l = snprintf(buf, cap, "[");
    for (int i = 0; i < n->ndim && l < cap; i++)
        l += snprintf(buf + l, cap - l, "%s%d", i ? ", " : "", n->dims[i]);
    if (l < cap)
        snprintf(buf + l, cap - l, "]");
}

static int per_row_node(yf__graph *g, yf__op op, const char *name, const yf__node *at,
                        int x, yf_error *err)
{
    int id = yf__graph_add(g, op, name, at, err);
    if (id < 0)
        return id;
    yf__gnode *n = &g->node[id];
    n->n_in = 1, n->in[0] = x;
    n->per_row = true;
    n->ndim = g->node[x].ndim;
    memcpy(n->dims, g->node[x].dims, sizeof n->dims);
    n->size = g->node[x].size;
    return id;
}

static int compile_dense(yf_model *m, yf__graph *g, const yf__layer_spec *l, int x,
                         const char *xname, yf_error *err)
{
    char ctx[128];
    snprintf(ctx, sizeof ctx, "layer '%s': ", l->name);
    if (g->node[x].ndim != 1) {
        char s[64];
        shape_str(&g->node[x], s, sizeof s);
        return yf__fail_at(err, l->at, YF_ESPEC,
                           "%sdense needs a flat input, but '%s' has shape %s", ctx,
                           xname, s);
    }
    int K = (int)g->node[x].size, N = l->units;
    char pname[2 * YF__NAME_MAX];
    int w;
    if (l->weights[0]) {
        snprintf(pname, sizeof pname, "%s.W", l->weights);
        w = find_param(m, pname);
        if (w < 0) {
            const char *cands[256];
            int n = 0;
            for (int i = 0; i < m->n_params && n < 256; i++)
                if (m->params[i].ndim == 2)
                    cands[n++] = m->params[i].name;
            const char *near = yf__closest(pname, cands, n);
            return yf__fail_at(err, l->weights_at, YF_ESPEC,
                               "%s'weights' names '%s', but no dense layer above owns it%s%s%s",
                               ctx, pname, near ? " (did you mean '" : "",
                               near ? near : "", near ? "'?)" : "");
        }
        const yf__param *pw = &m->params[w];
        int want0 = l->weights_transposed ? N : K, want1 = l->weights_transposed ? K : N;
        if (pw->dims[0] != want0 || pw->dims[1] != want1)
            return yf__fail_at(err, l->weights_at, YF_ESPEC,
                               "%sinput '%s' has %d features and the layer has %d units, so it "
                               "needs a [%d, %d] weight, but %s%s is [%d, %d] (layer '%s', line %d)",
                               ctx, xname, K, N, K, N, pname,
                               l->weights_transposed ? "^T" : "",
                               l->weights_transposed ? pw->dims[1] : pw->dims[0],
                               l->weights_transposed ? pw->dims[0] : pw->dims[1],
                               l->weights, pw->at->line);
    } else {
        snprintf(pname, sizeof pname, "%s.W", l->name);
        w = add_param(m, pname, K, N, l->init, l->trainable, l->at);
    }
    int wn = param_node(g, m, w, err);
    if (wn < 0)
        return wn;
    int id = yf__graph_add(g, YF_OP_DENSE, l->name, l->at, err);
    if (id < 0)
        return id;
    g->node[id].n_in = 2;
    g->node[id].in[0] = x, g->node[id].in[1] = wn;
    if (l->use_bias) {
        snprintf(pname, sizeof pname, "%s.b", l->name);
        int b = add_param(m, pname, N, 0, l->bias_init, l->trainable, l->at);
        int bn = param_node(g, m, b, err);
        if (bn < 0)
            return bn;
        g->node[id].in[g->node[id].n_in++] = bn;
    }
    yf__gnode *n = &g->node[id];
    n->trans = l->weights_transposed;
    n->per_row = true;
    n->ndim = 1, n->dims[0] = N, n->size = N;
    if (l->activation == YF_ACT_LINEAR)
        return id;
    int a = per_row_node(g, YF_OP_ACT, l->name, l->at, id, err);
    if (a >= 0)
        g->node[a].act = l->activation, g->node[a].alpha = l->alpha;
    return a;
}

static int compile_loss(yf_model *m, yf__graph *g, const scope *s, int term,
                        yf_error *err)
{
    const yf_spec *spec = m->spec;
    const yf__loss_spec *l = &spec->losses[term];
    static const yf__op ops[] = {
#define XX(e, name) [YF_LOSS_##e] = YF_OP_##e,
        YF_LOSS_TYPES(XX)
#undef XX
    };
    char ctx[128];
    snprintf(ctx, sizeof ctx, "loss '%s': ", yf__op_names[ops[l->type]]);
    int n_in = l->type == YF_LOSS_L2 ? l->n_params : 1;
    for (int k = 0; k < n_in; k++) {
        int in[2] = {-1, -1};
        if (l->type == YF_LOSS_L2) {
            int p = find_param(m, l->params[k]);
            if (p < 0) {
                const char *cands[256];
                int n = 0;
                for (int i = 0; i < m->n_params && n < 256; i++)
                    cands[n++] = m->params[i].name;
                const char *near = yf__closest(l->params[k], cands, n);
                return yf__fail_at(err, l->params_at->kid[k], YF_ESPEC,
                                   "%sno parameter named '%s'%s%s%s", ctx, l->params[k],
                                   near ? " (did you mean '" : "", near ? near : "",
                                   near ? "'?)" : "");
            }
            in[0] = param_node(g, m, p, err);
            if (in[0] < 0)
                return in[0];
        } else {
            const yf__node *at_in = yf__map_get(l->at, "input");
            const yf__node *at_t = yf__map_get(l->at, "target");
            in[0] = lookup(s, l->input);
            if (in[0] < 0)
                return unknown_name(err, at_in, ctx, s, spec, l->input);
            in[1] = lookup(s, l->target);
            if (in[1] < 0)
                return unknown_name(err, at_t, ctx, s, spec, l->target);
            if (g->node[in[0]].size != g->node[in[1]].size)
                return yf__fail_at(err, at_t, YF_ESPEC,
                                   "%sinput '%s' has %zu features but target '%s' has %zu",
                                   ctx, l->input, g->node[in[0]].size, l->target,
                                   g->node[in[1]].size);
        }
        int id = yf__graph_add(g, ops[l->type], l->type == YF_LOSS_L2 ? l->params[k] : l->input,
                               l->at, err);
        if (id < 0)
            return id;
        if (g->n_loss == (int)YF__ARRAY_LEN(g->loss_node))
            return yf__fail_at(err, l->at, YF_ESPEC, "%stoo many loss nodes (at most %zu; an l2 term makes one per parameter)",
                               ctx, YF__ARRAY_LEN(g->loss_node));
        g->loss_node[g->n_loss++] = id;
        yf__gnode *n = &g->node[id];
        n->n_in = l->type == YF_LOSS_L2 ? 1 : 2;
        n->in[0] = in[0], n->in[1] = in[1];
        n->weight = l->weight;
        n->reduce_sum = l->reduce_sum;
        n->term = term;
        n->size = 1, n->ndim = 1, n->dims[0] = 1;
        n->keep = true;
    }
    return 0;
}

/* A layer's random stream, from its name (FNV-1a), so that adding a layer
 * does not change the noise of the others. */
static int stream_of(const char *name)
{
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return YF__STREAM_NODE0 + (int)(h % 0x7fffff00u);
}

int yf__compile(yf_model *m, yf__graph *g, bool training, yf_error *err)
{
    const yf_spec *spec = m->spec;
    g->training = training;
    scope *s = calloc(1, sizeof *s);
    int rc = 0;
    int x = yf__graph_add(g, YF_OP_INPUT, spec->input_name, spec->input_at, err);
    if (x < 0) {
        free(s);
        return x;
    }
    yf__gnode *in = &g->node[x];
    in->per_row = true, in->keep = true;
    in->ndim = spec->input_ndim;
    in->size = 1;
    for (int i = 0; i < spec->input_ndim; i++)
        in->size *= (size_t)(in->dims[i] = spec->input_shape[i]);
    g->input_node = x;
    s->name[s->n] = spec->input_name, s->node[s->n++] = x;

    int prev = x;
    const char *prev_name = spec->input_name;
    for (int i = 0; i < spec->n_layers && !rc; i++) {
        const yf__layer_spec *l = &spec->layers[i];
        char ctx[128];
        snprintf(ctx, sizeof ctx, "layer '%s': ", l->name);
        int src = prev;
        const char *src_name = prev_name;
        if (l->n_inputs > 1) {
            rc = yf__fail_at(err, l->inputs_at, YF_ESPEC,
                             "%sa %s layer takes one input, not %d", ctx,
                             l->type == YF_LAYER_DENSE ? "dense" : "single-input",
                             l->n_inputs);
            break;
        }
        if (l->n_inputs == 1) {
            src = lookup(s, l->inputs[0]);
            src_name = l->inputs[0];
            if (src < 0) {
                rc = unknown_name(err, l->inputs_at, ctx, s, spec, l->inputs[0]);
                break;
            }
        }
        int out = src;
        switch (l->type) {
        case YF_LAYER_DENSE:
            out = compile_dense(m, g, l, src, src_name, err);
            break;
        case YF_LAYER_ACTIVATION:
            out = per_row_node(g, YF_OP_ACT, l->name, l->at, src, err);
            if (out >= 0)
                g->node[out].act = l->activation, g->node[out].alpha = l->alpha;
            break;
        case YF_LAYER_GAUSSIAN_NOISE:
        case YF_LAYER_DROPOUT:
            if (!training || (l->type == YF_LAYER_DROPOUT ? l->rate : l->stddev) == 0.0f)
                break; /* identity outside training */
            out = per_row_node(g, l->type == YF_LAYER_DROPOUT ? YF_OP_DROPOUT
                                                              : YF_OP_GAUSSIAN_NOISE,
                               l->name, l->at, src, err);
            if (out >= 0) {
                g->node[out].stddev = l->stddev, g->node[out].rate = l->rate;
                g->node[out].stream = stream_of(l->name);
            }
            break;
        }
        if (out < 0) {
            rc = out;
            break;
        }
        if (s->n == (int)YF__ARRAY_LEN(s->name)) {
            rc = yf__fail_at(err, l->at, YF_ESPEC, "too many layers (at most %zu)",
                             YF__ARRAY_LEN(s->name) - 1);
            break;
        }
        s->name[s->n] = l->name, s->node[s->n++] = out;
        prev = out, prev_name = l->name;
    }
    for (int t = 0; t < spec->n_losses && !rc; t++)
        rc = compile_loss(m, g, s, t, err);
    free(s);
    return rc;
}

void yf__graph_free(yf__graph *g)
{
    free(g->node);
    free(g->order);
    free(g->side_by_side);
    free(g->level_start);
    free(g->arena);
    free(g->scalars);
    free(g->param_writer);
    free(g->prof_seconds);
    memset(g, 0, sizeof *g);
}
