/* spec → forward graph: one node per op, shapes inferred and checked, every
 * node pointing back at the YAML line it came from. Parameters are
 * registered on the model the first time a graph names them. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int yf__graph_add(yf__graph *g, yf__op op, const char *name, const yf__node *at,
                  yf_error *err)
{
    /* name may be another node's (a gradient is named after its source),
     * which growing the array would free: copy it first */
    char copy[sizeof g->node[0].name];
    snprintf(copy, sizeof copy, "%s", name);
    name = copy;
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        yf__gnode *nn = yf__realloc(g->node, cap * sizeof *nn);
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
    n->grad_of = -1;
    n->state = -1;
    n->owner = -1;
    n->term = -1;
    n->metric = -1;
    n->fused = -1;
    n->epi = -1;
    n->colsum = -1;
    n->sum_into = -1;
    n->at = at;
    snprintf(n->name, sizeof n->name, "%s", name);
    return g->n++;
}

int yf__graph_add_rows(yf__graph *g, yf__op op, const char *name, const yf__node *at,
                       const int *in, int n_in, size_t size, yf_error *err)
{
    int id = yf__graph_add(g, op, name, at, err);
    if (id < 0)
        return id;
    yf__gnode *n = &g->node[id];
    n->n_in = n_in;
    memcpy(n->in, in, n_in * sizeof *in);
    n->per_row = true;
    n->ndim = 1, n->dims[0] = (int)size, n->size = size;
    return id;
}

int yf__grad_node(yf__graph *g, yf__op op, int src, int slot, const int *in, int n_in,
                  yf_error *err)
{
    int id = yf__graph_add(g, op, g->node[src].name, g->node[src].at, err);
    if (id < 0)
        return id;
    yf__gnode *n = &g->node[id], *s = &g->node[src], *x = &g->node[s->in[slot]];
    /* the source's attributes (activation, weight, rates, streams ...) */
    n->act = s->act, n->alpha = s->alpha, n->stddev = s->stddev, n->rate = s->rate;
    n->weight = s->weight, n->factor = s->factor, n->rho = s->rho;
    n->trans = s->trans, n->reduce_sum = s->reduce_sum, n->stream = s->stream;
    n->win = s->win;
    n->momentum = s->momentum, n->epsilon = s->epsilon;
    n->state = s->state;
    n->slot = slot;
    n->n_in = n_in;
    memcpy(n->in, in, n_in * sizeof *in);
    n->per_row = x->per_row;
    n->ndim = x->ndim;
    memcpy(n->dims, x->dims, sizeof n->dims);
    n->size = x->size;
    return id;
}

int yf__input_grad(yf__graph *g, int id, yf__op op, const int *in, int n_in, yf_error *err)
{
    int x = g->node[id].in[0];
    if (!g->node[x].needs_grad)
        return 0;
    int d = yf__grad_node(g, op, id, 0, in, n_in, err);
    return d < 0 ? d : yf__grad_accum(g, x, d, err);
}

int yf__state_node(yf__graph *g, int owner, size_t size, bool per_row, yf_error *err)
{
    int id = yf__graph_add(g, YF_OP_STATE, g->node[owner].name, g->node[owner].at, err);
    if (id < 0)
        return id;
    yf__gnode *n = &g->node[id];
    n->owner = owner;
    n->per_row = per_row;
    n->ndim = 1, n->dims[0] = (int)size, n->size = size;
    g->node[owner].state = id;
    return id;
}

int yf__grad_accum(yf__graph *g, int id, int contrib, yf_error *err)
{
    if (g->node[id].grad < 0) {
        g->node[id].grad = contrib;
        return 0;
    }
    int in[2] = {g->node[id].grad, contrib};
    int a = yf__graph_add_rows(g, YF_OP_ADD, g->node[id].name, g->node[id].at, in, 2,
                               g->node[id].size, err);
    if (a < 0)
        return a;
    g->node[a].per_row = g->node[id].per_row;
    g->node[a].ndim = g->node[id].ndim;
    memcpy(g->node[a].dims, g->node[id].dims, sizeof g->node[a].dims);
    g->node[id].grad = a;
    return 0;
}

void yf__param_grad_writer(yf__graph *g, int id, int p)
{
    g->node[id].grad_of = p;
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
    case YF_OP_CONV2D: /* 2 · Co·Ho·Wo · C/G·kh·kw per example, and so its gradients */
        return 2.0 * rows * n->size * (g->node[n->in[0]].dims[0] / n->win.groups) *
               n->win.kh * n->win.kw;
    case YF_OP_CONV2D_DX:
    case YF_OP_CONV2D_T:
        return 2.0 * rows * g->node[n->in[0]].size * (n->dims[0] / n->win.groups) *
               n->win.kh * n->win.kw;
    case YF_OP_CONV2D_DW:
        return 2.0 * rows * g->node[n->in[1]].size * n->size / g->node[n->in[1]].dims[0];
    case YF_OP_INPUT:
    case YF_OP_PARAM:
    case YF_OP_STATE:
        return 0;
    case YF_OP_ACCURACY:
    case YF_OP_MEAN_ACTIVATION:
    case YF_OP_MSE:
    case YF_OP_SIGMOID_CE:
    case YF_OP_SOFTMAX_CE:
    case YF_OP_KL_NORMAL:
    case YF_OP_KL_SPARSITY:
    case YF_OP_L1:
        return (double)rows * g->node[n->in[0]].size;
    default:
        return n->per_row ? (double)rows * n->size : (double)n->size;
    }
}

int yf__stream_of(const char *name)
{
    /* FNV-1a of the layer's name, so that adding a layer does not change
     * the noise of the others */
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return YF__STREAM_NODE0 + (int)(h % 0x7fffff00u);
}

static const char *const layer_type_names[] = {
#define XX(e, s) #s,
    YF_LAYER_TYPES(XX)
#undef XX
};

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
                               "the model's inputs and layers above it", ctx, name,
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

/* Registers parameter `name` of shape dims[0..ndim) (fan_in, fan_out for
 * the initialiser) unless it exists; returns its index. */
static int add_param(yf_model *m, const char *name, int ndim, const int *dims, int fan_in,
                     int fan_out, yf__init init, bool trainable, const yf__node *at,
                     yf_error *err)
{
    int p = find_param(m, name);
    if (p >= 0)
        return p;
    if (m->param_block) /* the block is allocated after the first graph */
        return yf__fail_at(err, at, YF_ERUN, "internal error: parameter %s appears late",
                           name);
    yf__param *np = yf__realloc(m->params, (m->n_params + 1) * sizeof *m->params);
    if (!np)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    m->params = np;
    yf__param *pp = &m->params[m->n_params];
    memset(pp, 0, sizeof *pp);
    snprintf(pp->name, sizeof pp->name, "%s", name);
    pp->ndim = ndim;
    pp->size = 1;
    for (int i = 0; i < ndim; i++)
        pp->size *= (size_t)(pp->dims[i] = dims[i]);
    pp->offset = m->param_floats;
    m->param_floats += (pp->size + 15) & ~(size_t)15; /* 64-byte aligned views */
    pp->init = init;
    pp->fan_in = fan_in;
    pp->fan_out = fan_out;
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
    memcpy(n->dims, m->params[p].dims, sizeof n->dims);
    n->size = m->params[p].size;
    return id;
}

static void shape_str(const yf__gnode *n, char *buf, size_t cap)
{
    yf__dims_str(n->dims, n->ndim, buf, cap);
}

/* A per-row node shaped like node x, reading in[0..n_in). */
static int like(yf__graph *g, yf__op op, const yf__layer_spec *l, int x, const int *in,
                int n_in, yf_error *err)
{
    int id = yf__graph_add_rows(g, op, l->name, l->at, in, n_in, g->node[x].size, err);
    if (id < 0)
        return id;
    g->node[id].ndim = g->node[x].ndim;
    memcpy(g->node[id].dims, g->node[x].dims, sizeof g->node[id].dims);
    return id;
}

/* Node id followed by layer l's activation (id itself when linear). */
static int activated(yf__graph *g, const yf__layer_spec *l, int id, yf_error *err)
{
    if (l->activation == YF_ACT_LINEAR)
        return id;
    int a = like(g, YF_OP_ACT, l, id, &id, 1, err);
    if (a >= 0)
        g->node[a].act = l->activation, g->node[a].alpha = l->alpha;
    return a;
}

static int compile_dense(yf_model *m, yf__graph *g, const yf__layer_spec *l, int x,
                         const char *xname, yf_error *err)
{
    char ctx[128];
    snprintf(ctx, sizeof ctx, "layer '%s': ", l->name);
    if (g->node[x].ndim != 1 || g->node[x].dtype != YF__F32) {
        char s[64];
        shape_str(&g->node[x], s, sizeof s);
        return yf__fail_at(err, l->at, YF_ESPEC,
                           g->node[x].dtype != YF__F32
                               ? "%sdense needs float features, but '%s' holds integer labels"
                               : "%sdense needs a flat input, but '%s' has shape %s (put a "
                                 "flatten layer before it)",
                           ctx, xname, s);
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
        if (pw->ndim != 2 || pw->dims[0] != want0 || pw->dims[1] != want1)
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
        w = add_param(m, pname, 2, (int[]){K, N}, K, N, l->init, l->trainable, l->at, err);
        if (w < 0)
            return w;
        m->params[w].init_value = l->init_value;
    }
    int wn = param_node(g, m, w, err);
    if (wn < 0)
        return wn;
    int in[3] = {x, wn, -1}, n_in = 2;
    if (l->use_bias) {
        snprintf(pname, sizeof pname, "%s.b", l->name);
        int b = add_param(m, pname, 1, (int[]){N}, K, N, l->bias_init, l->trainable, l->at,
                          err);
        if (b < 0)
            return b;
        m->params[b].init_value = l->bias_value;
        if ((in[n_in++] = param_node(g, m, b, err)) < 0)
            return in[2];
    }
    int id = yf__graph_add_rows(g, YF_OP_DENSE, l->name, l->at, in, n_in, N, err);
    if (id < 0)
        return id;
    g->node[id].trans = l->weights_transposed;
    return activated(g, l, id, err);
}

/* The input of a layer that needs images, (C, H, W). */
static int image_input(const yf__graph *g, const yf__layer_spec *l, int x, const char *xname,
                       yf_error *err)
{
    const yf__gnode *n = &g->node[x];
    if (n->ndim == 3 && n->dtype == YF__F32)
        return 0;
    char s[64];
    shape_str(n, s, sizeof s);
    return yf__fail_at(err, l->at, YF_ESPEC,
                       "layer '%s': %s needs images shaped [channels, height, width], but '%s' "
                       "is %s%s", l->name, layer_type_names[l->type], xname, s,
                       n->ndim == 1 ? " (give the model input a shape such as [1, 28, 28], or "
                                      "reshape)" : "");
}

/* Output size along one axis, with `same` padding resolved into w's
 * top/left padding; < 1 when the window does not fit. */
static int out_size(int in, int k, int s, int d, bool same, int *pad)
{
    int span = d * (k - 1) + 1;
    if (same) {
        int out = (in + s - 1) / s;
        int total = (out - 1) * s + span - in;
        *pad = total > 0 ? total / 2 : 0;
        return out;
    }
    if (in + 2 * *pad < span) /* the window does not fit, whatever the stride */
        return 0;
    return (in + 2 * *pad - span) / s + 1;
}

/* Output size of a transposed convolution along one axis: the input size
 * of the convolution it transposes; `same` gives in · s, with the padding
 * (and an extra row or column at the end) it needs. */
static int out_size_t(int in, int k, int s, int d, bool same, int *pad)
{
    int span = d * (k - 1) + 1;
    if (same) {
        int total = span - s;
        *pad = total > 0 ? (total + 1) / 2 : 0;
        return in * s;
    }
    return (in - 1) * s - 2 * *pad + span;
}

/* conv2d: W is (filters, C/groups, kh, kw), as PyTorch's Conv2d */
static int compile_conv(yf_model *m, yf__graph *g, const yf__layer_spec *l, int x,
                        const char *xname, yf_error *err)
{
    if (image_input(g, l, x, xname, err))
        return err->code;
    const yf__gnode *xi = &g->node[x];
    yf__window w = l->win;
    int C = xi->dims[0], H = xi->dims[1], W = xi->dims[2], Co = l->units;
    if (C % w.groups || Co % w.groups)
        return yf__fail_at(err, yf__map_get(l->at, "groups"), YF_ESPEC,
                           "layer '%s': groups %d must divide the %d input channels of '%s' "
                           "and the %d filters", l->name, w.groups, C, xname, Co);
    bool tr = l->type == YF_LAYER_CONV2D_TRANSPOSE;
    int Ho = tr ? out_size_t(H, w.kh, w.sh, w.dh, w.same, &w.ph)
                : out_size(H, w.kh, w.sh, w.dh, w.same, &w.ph);
    int Wo = tr ? out_size_t(W, w.kw, w.sw, w.dw, w.same, &w.pw)
                : out_size(W, w.kw, w.sw, w.dw, w.same, &w.pw);
    if (Ho < 1 || Wo < 1)
        return yf__fail_at(err, l->at, YF_ESPEC,
                           "layer '%s': a %dx%d kernel (dilation %dx%d) does not fit the %dx%d "
                           "images of '%s' with padding %dx%d", l->name, w.kh, w.kw, w.dh, w.dw,
                           H, W, xname, w.ph, w.pw);
    char pname[2 * YF__NAME_MAX];
    snprintf(pname, sizeof pname, "%s.W", l->name);
    /* W is (Co, C/G, kh, kw); transposed: (C, Co/G, kh, kw), as PyTorch's */
    int K = (tr ? Co : C) / w.groups * w.kh * w.kw;
    int wdims[4] = {tr ? C : Co, (tr ? Co : C) / w.groups, w.kh, w.kw};
    int wp = add_param(m, pname, 4, wdims, K, (tr ? C : Co) / w.groups * w.kh * w.kw, l->init,
                       l->trainable, l->at, err);
    if (wp < 0)
        return wp;
    m->params[wp].init_value = l->init_value;
    int in[3] = {x, param_node(g, m, wp, err), -1}, n_in = 2;
    if (in[1] < 0)
        return in[1];
    if (l->use_bias) {
        snprintf(pname, sizeof pname, "%s.b", l->name);
        int b = add_param(m, pname, 1, (int[]){Co}, K, Co, l->bias_init, l->trainable, l->at,
                          err);
        if (b >= 0)
            m->params[b].init_value = l->bias_value;
        if (b < 0 || (in[n_in++] = param_node(g, m, b, err)) < 0)
            return err->code;
    }
    int id = yf__graph_add_rows(g, tr ? YF_OP_CONV2D_T : YF_OP_CONV2D, l->name, l->at, in, n_in,
                                (size_t)Co * Ho * Wo, err);
    if (id < 0)
        return id;
    yf__gnode *n = &g->node[id];
    n->win = w;
    n->ndim = 3, n->dims[0] = Co, n->dims[1] = Ho, n->dims[2] = Wo;
    if (yf__conv2d_scratch(g, id, g->threads, err))
        return err->code;
    return activated(g, l, id, err);
}

/* max_pool, avg_pool, global_avg_pool */
static int compile_pool(yf_model *m, yf__graph *g, const yf__layer_spec *l, int x,
                        const char *xname, yf_error *err)
{
    if (image_input(g, l, x, xname, err))
        return err->code;
    const yf__gnode *xi = &g->node[x];
    yf__window w = l->win;
    int C = xi->dims[0], H = xi->dims[1], W = xi->dims[2];
    bool global = l->type == YF_LAYER_GLOBAL_AVG_POOL;
    if (global)
        w = (yf__window){.kh = H, .kw = W, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1};
    int Ho = out_size(H, w.kh, w.sh, 1, w.same, &w.ph);
    int Wo = out_size(W, w.kw, w.sw, 1, w.same, &w.pw);
    if (Ho < 1 || Wo < 1 || 2 * w.ph > w.kh || 2 * w.pw > w.kw)
        return yf__fail_at(err, l->at, YF_ESPEC,
                           "layer '%s': a %dx%d window with padding %dx%d does not fit the %dx%d "
                           "images of '%s' (padding may be at most half the window)", l->name,
                           w.kh, w.kw, w.ph, w.pw, H, W, xname);
    int id = yf__graph_add_rows(g, l->type == YF_LAYER_MAX_POOL ? YF_OP_MAX_POOL : YF_OP_AVG_POOL,
                                l->name, l->at, &x, 1, (size_t)C * Ho * Wo, err);
    if (id < 0)
        return id;
    yf__gnode *n = &g->node[id];
    n->win = w;
    if (global)
        n->ndim = 1, n->dims[0] = C;
    else
        n->ndim = 3, n->dims[0] = C, n->dims[1] = Ho, n->dims[2] = Wo;
    /* max_pool keeps its argmax for the backward (int32, per example) */
    if (l->type == YF_LAYER_MAX_POOL && g->training) {
        int st = yf__state_node(g, id, (size_t)C * Ho * Wo, true, err);
        if (st < 0)
            return st;
        g->node[st].dtype = YF__I32;
    }
    (void)m;
    return id;
}

/* batch_norm over the channels of (C, H, W) or the features of (F):
 * scale gamma and shift beta (trained), running mean and variance
 * (parameters no optimizer touches, updated by the training graph's
 * forward and used by the evaluation graph) */
static int compile_batch_norm(yf_model *m, yf__graph *g, const yf__layer_spec *l, int x,
                              const char *xname, yf_error *err)
{
    const yf__gnode *xi = &g->node[x];
    if (xi->dtype != YF__F32 || (xi->ndim != 1 && xi->ndim != 3)) {
        char s[64];
        shape_str(xi, s, sizeof s);
        return yf__fail_at(err, l->at, YF_ESPEC,
                           "layer '%s': batch_norm takes features [F] or images [C, H, W], "
                           "but '%s' is %s", l->name, xname, s);
    }
    int C = xi->dims[0];
    static const struct {
        const char *suffix;
        yf__init init;
        bool trained;
    } ps[4] = {{"gamma", YF_INIT_ONES, true}, {"beta", YF_INIT_ZEROS, true},
               {"running_mean", YF_INIT_ZEROS, false}, {"running_var", YF_INIT_ONES, false}};
    int in[5] = {x};
    for (int k = 0; k < 4; k++) {
        char pname[2 * YF__NAME_MAX];
        snprintf(pname, sizeof pname, "%s.%s", l->name, ps[k].suffix);
        int p = add_param(m, pname, 1, (int[]){C}, C, C, ps[k].init,
                          ps[k].trained && l->trainable, l->at, err);
        if (p < 0 || (in[k + 1] = param_node(g, m, p, err)) < 0)
            return err->code;
    }
    int id = like(g, YF_OP_BATCH_NORM, l, x, in, 5, err);
    if (id < 0)
        return id;
    g->node[id].momentum = l->momentum, g->node[id].epsilon = l->epsilon;
    g->node[id].use_mean = !g->training; /* evaluation: the running statistics */
    if (g->training && yf__state_node(g, id, 2 * (size_t)C, false, err) < 0)
        return err->code;
    return id;
}

/* A layer with several inputs of one shape (add, multiply, sample_normal). */
static int same_shapes(const yf__graph *g, const yf__layer_spec *l, const int *src, int n,
                       yf_error *err)
{
    for (int k = 0; k < n; k++) {
        if (g->node[src[k]].dtype != YF__F32)
            return yf__fail_at(err, l->inputs_at, YF_ESPEC,
                               "layer '%s': '%s' holds integer labels, not features", l->name,
                               l->inputs[k]);
        if (k && g->node[src[k]].size != g->node[src[0]].size) {
            char a[64], b[64];
            shape_str(&g->node[src[0]], a, sizeof a);
            shape_str(&g->node[src[k]], b, sizeof b);
            return yf__fail_at(err, l->inputs_at, YF_ESPEC,
                               "layer '%s': its inputs must have one shape, but '%s' is %s "
                               "and '%s' is %s", l->name, l->inputs[0], a, l->inputs[k], b);
        }
    }
    return 0;
}

static int compile_layer(yf_model *m, yf__graph *g, const yf__layer_spec *l, const int *src,
                         int n_src, const char *src_name, yf_error *err)
{
    bool training = g->training;
    int x = src[0];
    switch (l->type) {
    case YF_LAYER_DENSE:
        return compile_dense(m, g, l, x, src_name, err);
    case YF_LAYER_ACTIVATION: {
        if (same_shapes(g, l, src, 1, err))
            return err->code;
        int out = like(g, YF_OP_ACT, l, x, &x, 1, err);
        if (out >= 0)
            g->node[out].act = l->activation, g->node[out].alpha = l->alpha;
        return out;
    }
    case YF_LAYER_GAUSSIAN_NOISE:
    case YF_LAYER_DROPOUT: {
        if (same_shapes(g, l, src, 1, err))
            return err->code;
        bool drop = l->type == YF_LAYER_DROPOUT;
        if (!training || (drop ? l->rate : l->stddev) == 0.0f)
            return x; /* identity outside training */
        int out = like(g, drop ? YF_OP_DROPOUT : YF_OP_GAUSSIAN_NOISE, l, x, &x, 1, err);
        if (out >= 0) {
            g->node[out].stddev = l->stddev, g->node[out].rate = l->rate;
            g->node[out].stream = yf__stream_of(l->name);
        }
        return out;
    }
    case YF_LAYER_SAMPLE_NORMAL: {
        if (same_shapes(g, l, src, 2, err))
            return err->code;
        if (!training && l->eval_mean)
            return src[0];
        int out = like(g, YF_OP_SAMPLE_NORMAL, l, x, src, 2, err);
        if (out >= 0)
            g->node[out].stream = yf__stream_of(l->name);
        return out;
    }
    case YF_LAYER_ADD:
    case YF_LAYER_MULTIPLY:
        if (same_shapes(g, l, src, n_src, err))
            return err->code;
        return like(g, l->type == YF_LAYER_ADD ? YF_OP_ADD : YF_OP_MULTIPLY, l, x, src, n_src,
                    err);
    case YF_LAYER_SCALE: {
        if (same_shapes(g, l, src, 1, err))
            return err->code;
        int out = like(g, YF_OP_SCALE, l, x, &x, 1, err);
        if (out >= 0)
            g->node[out].factor = l->factor;
        return out;
    }
    case YF_LAYER_CONV2D:
    case YF_LAYER_CONV2D_TRANSPOSE:
        return compile_conv(m, g, l, x, src_name, err);
    case YF_LAYER_MAX_POOL:
    case YF_LAYER_AVG_POOL:
    case YF_LAYER_GLOBAL_AVG_POOL:
        return compile_pool(m, g, l, x, src_name, err);
    case YF_LAYER_FLATTEN:
    case YF_LAYER_RESHAPE: {
        if (same_shapes(g, l, src, 1, err))
            return err->code;
        int out = like(g, YF_OP_RESHAPE, l, x, &x, 1, err);
        if (out < 0)
            return out;
        yf__gnode *n = &g->node[out];
        if (l->type == YF_LAYER_FLATTEN) {
            n->ndim = 1, n->dims[0] = (int)n->size;
            return out;
        }
        size_t size = 1;
        for (int k = 0; k < l->shape_ndim; k++)
            size *= (size_t)l->shape[k];
        if (size != n->size) {
            char a[64], b[64];
            shape_str(&g->node[x], a, sizeof a);
            yf__dims_str(l->shape, l->shape_ndim, b, sizeof b);
            return yf__fail_at(err, yf__map_get(l->at, "shape"), YF_ESPEC,
                               "layer '%s': '%s' is %s (%zu values), which cannot be shaped %s "
                               "(%zu values)", l->name, src_name, a, n->size, b, size);
        }
        n->ndim = l->shape_ndim;
        memcpy(n->dims, l->shape, sizeof l->shape);
        return out;
    }
    case YF_LAYER_RANDOM_SHIFT: {
        if (image_input(g, l, x, src_name, err))
            return err->code;
        if (!training || (l->win.ph == 0 && l->win.pw == 0))
            return x; /* identity outside training */
        int out = like(g, YF_OP_RANDOM_SHIFT, l, x, &x, 1, err);
        if (out >= 0) {
            g->node[out].win = l->win;
            g->node[out].stream = yf__stream_of(l->name);
        }
        return out;
    }
    case YF_LAYER_UPSAMPLE: {
        if (image_input(g, l, x, src_name, err))
            return err->code;
        const yf__gnode *xi = &g->node[x];
        size_t size = xi->size * l->win.sh * l->win.sw;
        int out = yf__graph_add_rows(g, YF_OP_UPSAMPLE, l->name, l->at, &x, 1, size, err);
        if (out < 0)
            return out;
        yf__gnode *n = &g->node[out];
        n->win = l->win;
        n->ndim = 3;
        n->dims[0] = g->node[x].dims[0];
        n->dims[1] = g->node[x].dims[1] * l->win.sh;
        n->dims[2] = g->node[x].dims[2] * l->win.sw;
        return out;
    }
    case YF_LAYER_BATCH_NORM:
        return compile_batch_norm(m, g, l, x, src_name, err);
    case YF_LAYER_CONCAT: {
        size_t total = 0;
        for (int k = 0; k < n_src; k++) {
            if (g->node[src[k]].ndim != 1 || g->node[src[k]].dtype != YF__F32) {
                char s[64];
                shape_str(&g->node[src[k]], s, sizeof s);
                return yf__fail_at(err, l->inputs_at, YF_ESPEC,
                                   "layer '%s': concat joins flat float features, but '%s' "
                                   "is %s%s", l->name, l->inputs[k], s,
                                   g->node[src[k]].dtype != YF__F32 ? " (labels)" : "");
            }
            total += g->node[src[k]].size;
        }
        return yf__graph_add_rows(g, YF_OP_CONCAT, l->name, l->at, src, n_src, total, err);
    }
    }
    return yf__fail_at(err, l->at, YF_ERUN, "internal error: layer type %d", (int)l->type);
}

/* ---- losses and metrics ---------------------------------------------------- */

static int resolve(const yf_spec *spec, const scope *s, const char *name, const yf__node *at,
                   const char *ctx, yf_error *err)
{
    int id = lookup(s, name);
    if (id < 0)
        unknown_name(err, at, ctx, s, spec, name);
    return id;
}

static const yf__node *key_at(const yf__node *map, const char *key)
{
    const yf__node *n = yf__map_get(map, key);
    return n ? n : map;
}

static const char *const act_names[] = {
#define XX(e, s) #s,
    YF_ACTIVATIONS(XX)
#undef XX
};


/* A loss that takes logits: a layer ending in the loss's own squashing
 * function (sigmoid for sigmoid_cross_entropy, softmax for
 * softmax_cross_entropy) gives the loss its pre-activation instead, which is
 * both what the user meant and numerically stable; any other non-linear
 * ending is refused. Returns the node to use. */
static int logits_of(const yf__graph *g, int id, yf__act squash, const char *loss,
                     const char *name, const yf__node *at, yf_error *err)
{
    const yf__gnode *n = &g->node[id];
    if (n->op == YF_OP_ACT && n->act == (int)squash)
        return n->in[0];
    /* below dropout, noise or a scale: the squashing cannot be fused in
     * training (the evaluation graph, without the noise, would fuse it) */
    int below = id;
    while ((g->node[below].op == YF_OP_DROPOUT || g->node[below].op == YF_OP_GAUSSIAN_NOISE ||
            g->node[below].op == YF_OP_SCALE ||
            (g->node[below].op == YF_OP_ACT && g->node[below].act == YF_ACT_LINEAR)))
        below = g->node[below].in[0];
    const yf__gnode *b = &g->node[below];
    if (below != id && b->op == YF_OP_ACT && b->act != YF_ACT_LINEAR)
        return yf__fail_at(err, at, YF_ESPEC,
                           "loss '%s': it takes logits, but '%s' is '%s' (%s) passed through "
                           "%s, which the loss cannot undo; put the %s after the logits "
                           "(activation: linear) or the loss on the logits", loss, name,
                           b->name, act_names[b->act], yf__op_names[n->op],
                           yf__op_names[n->op]);
    if (n->op != YF_OP_ACT || n->act == YF_ACT_LINEAR)
        return id;
    return yf__fail_at(err, at, YF_ESPEC,
                       "loss '%s': it takes logits, but '%s' ends with %s, so the loss would "
                       "see %s outputs and train to nonsense; write activation: linear (the "
                       "loss applies the %s itself)",
                       loss, name, act_names[n->act], act_names[n->act],
                       act_names[squash]);
}

static int loss_node(yf__graph *g, yf__op op, const yf__loss_spec *l, int term,
                     const char *name, const int *in, int n_in, yf_error *err)
{
    int id = yf__graph_add(g, op, name, l->at, err);
    if (id < 0)
        return id;
    if (g->n_loss % 64 == 0) {
        int *nl = yf__realloc(g->loss_node, (g->n_loss + 64) * sizeof *nl);
        if (!nl)
            return yf__fail(err, YF_ENOMEM, "out of memory building the graph");
        g->loss_node = nl;
    }
    g->loss_node[g->n_loss++] = id;
    yf__gnode *n = &g->node[id];
    n->n_in = n_in;
    memcpy(n->in, in, n_in * sizeof *in);
    n->weight = l->weight;
    n->reduce_sum = l->reduce_sum;
    n->rho = l->rho;
    n->term = term;
    n->size = 1, n->ndim = 1, n->dims[0] = 1;
    n->keep = true;
    return id;
}

static int compile_loss(yf_model *m, yf__graph *g, const scope *s, int term, yf_error *err)
{
    const yf_spec *spec = m->spec;
    const yf__loss_spec *l = &spec->losses[term];
    static const char *const names[] = {
#define XX(e, s) #s,
        YF_LOSS_TYPES(XX)
#undef XX
    };
    static const yf__op ops[] = {
#define XX(e, s) [YF_LOSS_##e] = YF_OP_##e,
        YF_LOSS_TYPES(XX)
#undef XX
    };
    const char *lname = names[l->type];
    char ctx[128];
    snprintf(ctx, sizeof ctx, "loss '%s': ", lname);
    if (l->type == YF_LOSS_L2) {
        for (int k = 0; k < l->n_params; k++) {
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
            int pn = param_node(g, m, p, err);
            if (pn < 0)
                return pn;
            int id = loss_node(g, YF_OP_L2, l, term, l->params[k], &pn, 1, err);
            if (id < 0)
                return id;
        }
        return 0;
    }
    bool two = l->type == YF_LOSS_MSE || l->type == YF_LOSS_SIGMOID_CE ||
               l->type == YF_LOSS_SOFTMAX_CE || l->type == YF_LOSS_KL_NORMAL;
    const char *k0 = l->type == YF_LOSS_KL_NORMAL ? "mean" : "input";
    const char *k1 = l->type == YF_LOSS_KL_NORMAL ? "log_var" : "target";
    int in[2], named;
    if ((named = in[0] = resolve(spec, s, l->input, key_at(l->at, k0), ctx, err)) < 0 ||
        (two && (in[1] = resolve(spec, s, l->target, key_at(l->at, k1), ctx, err)) < 0))
        return err->code;
    const yf__gnode *a = &g->node[in[0]];
    if (a->dtype != YF__F32)
        return yf__fail_at(err, key_at(l->at, k0), YF_ESPEC,
                           "%s'%s' holds integer labels; the %s must be a layer", ctx,
                           l->input, k0);
    switch (l->type) {
    case YF_LOSS_MSE:
    case YF_LOSS_SIGMOID_CE:
    case YF_LOSS_KL_NORMAL:
        if (g->node[in[1]].dtype != YF__F32)
            return yf__fail_at(err, key_at(l->at, k1), YF_ESPEC,
                               "%s'%s' holds integer labels; %s compares float values "
                               "(softmax_cross_entropy takes labels)", ctx, l->target, lname);
        if (g->node[in[1]].size != a->size)
            return yf__fail_at(err, key_at(l->at, k1), YF_ESPEC,
                               "%s%s '%s' has %zu features but %s '%s' has %zu", ctx, k0,
                               l->input, a->size, k1, l->target, g->node[in[1]].size);
        if (in[0] == in[1])
            return yf__fail_at(err, key_at(l->at, k1), YF_ESPEC,
                               "%s%s and %s are both '%s', so the loss is always %s: "
                               "compare a layer with the model input (%s: %s, target: %s)",
                               ctx, k0, k1, l->input,
                               l->type == YF_LOSS_MSE ? "0" : "constant",
                               k0, spec->n_layers ? spec->layers[spec->n_layers - 1].name : "out",
                               spec->input_name);
        if (l->type == YF_LOSS_SIGMOID_CE &&
            (in[0] = logits_of(g, in[0], YF_ACT_SIGMOID, lname, l->input,
                               key_at(l->at, "input"), err)) < 0)
            return err->code;
        break;
    case YF_LOSS_SOFTMAX_CE:
        if (g->node[in[1]].dtype != YF__I32)
            return yf__fail_at(err, key_at(l->at, "target"), YF_ESPEC,
                               "%sthe target must be the labels ('%s' of model.labels), not "
                               "'%s'", ctx, spec->labels_name[0] ? spec->labels_name : "y",
                               l->target);
        if ((int)a->size != spec->classes)
            return yf__fail_at(err, key_at(l->at, "input"), YF_ESPEC,
                               "%s'%s' has %zu outputs but the labels have %d classes", ctx,
                               l->input, a->size, spec->classes);
        if ((in[0] = logits_of(g, in[0], YF_ACT_SOFTMAX, lname, l->input,
                               key_at(l->at, "input"), err)) < 0)
            return err->code;
        break;
    case YF_LOSS_KL_SPARSITY:
        if (a->op != YF_OP_ACT || a->act != YF_ACT_SIGMOID)
            return yf__fail_at(err, key_at(l->at, "input"), YF_ESPEC,
                               "%s'%s' must be a sigmoid layer: the loss compares mean "
                               "activations in (0, 1) with the target %g", ctx, l->input,
                               l->rho);
        break;
    default:
        break;
    }
    int id = loss_node(g, ops[l->type], l, term, l->input, in, two ? 2 : 1, err);
    if (id < 0)
        return id;
    g->node[id].fused = named != in[0] ? named : -1;
    /* softmax_cross_entropy keeps its probabilities for the backward;
     * kl_sparsity the batch's mean activations */
    if (l->type == YF_LOSS_SOFTMAX_CE && g->training &&
        yf__state_node(g, id, g->node[in[0]].size, true, err) < 0)
        return err->code;
    if (l->type == YF_LOSS_KL_SPARSITY &&
        yf__state_node(g, id, g->node[in[0]].size, false, err) < 0)
        return err->code;
    return 0;
}

/* A metric node named `name`; one the spec lists twice is an error (given
 * by the user), or is already there (added for an activity loss). */
static int add_metric(yf__graph *g, yf__op op, const char *name, const yf__node *at,
                      const int *in, int n_in, bool listed, yf_error *err)
{
    for (int i = 0; i < g->n_metric; i++)
        if (strcmp(g->metric[i].name, name) == 0)
            return listed ? yf__fail_at(err, at, YF_ESPEC,
                                        "metric '%s' is already listed (line %d)", name,
                                        g->node[g->metric[i].node].at->line)
                          : 0;
    if (g->n_metric == (int)YF__ARRAY_LEN(g->metric))
        return yf__fail_at(err, at, YF_ESPEC, "too many metrics (at most %zu)",
                           YF__ARRAY_LEN(g->metric));
    int id = yf__graph_add_rows(g, op, name, at, in, n_in, 1, err);
    if (id < 0)
        return id;
    yf__gnode *n = &g->node[id];
    n->per_row = false; /* one value for the batch */
    n->keep = true;
    n->metric = g->n_metric;
    g->metric[g->n_metric].node = id;
    snprintf(g->metric[g->n_metric++].name, sizeof g->metric[0].name, "%s", name);
    return 0;
}

static int compile_metrics(yf_model *m, yf__graph *g, const scope *s, yf_error *err)
{
    const yf_spec *spec = m->spec;
    for (int i = 0; i < spec->n_metrics; i++) {
        const yf__metric_spec *ms = &spec->metrics[i];
        char ctx[128];
        int in[2];
        if (ms->type == YF_METRIC_ACCURACY) {
            snprintf(ctx, sizeof ctx, "metric 'accuracy': ");
            if (!spec->labels_name[0])
                return yf__fail_at(err, ms->at, YF_ESPEC,
                                   "%sthe model has no labels: add model.labels: {name: y, "
                                   "classes: 10}", ctx);
            if ((in[0] = resolve(spec, s, ms->input, key_at(ms->at, "input"), ctx, err)) < 0 ||
                (in[1] = resolve(spec, s, ms->target, key_at(ms->at, "target"), ctx, err)) < 0)
                return err->code;
            if (g->node[in[1]].dtype != YF__I32)
                return yf__fail_at(err, key_at(ms->at, "target"), YF_ESPEC,
                                   "%sthe target must be the labels '%s'", ctx,
                                   spec->labels_name);
            if ((int)g->node[in[0]].size != spec->classes)
                return yf__fail_at(err, key_at(ms->at, "input"), YF_ESPEC,
                                   "%s'%s' has %zu outputs but the labels have %d classes",
                                   ctx, ms->input, g->node[in[0]].size, spec->classes);
            /* "accuracy", or "accuracy_<input>" when there are several */
            int n_acc = 0;
            for (int j = 0; j < spec->n_metrics; j++)
                n_acc += spec->metrics[j].type == YF_METRIC_ACCURACY;
            char name[80];
            snprintf(name, sizeof name, n_acc > 1 ? "accuracy_%s" : "accuracy", ms->input);
            if (add_metric(g, YF_OP_ACCURACY, name, ms->at, in, 2, true, err))
                return err->code;
        } else {
            snprintf(ctx, sizeof ctx, "metric 'mean_activation': ");
            if ((in[0] = resolve(spec, s, ms->input, key_at(ms->at, "input"), ctx, err)) < 0)
                return err->code;
            if (g->node[in[0]].dtype != YF__F32)
                return yf__fail_at(err, key_at(ms->at, "input"), YF_ESPEC,
                                   "%s'%s' holds integer labels; the input must be a layer",
                                   ctx, ms->input);
            char name[80];
            snprintf(name, sizeof name, "mean_activation_%s", ms->input);
            if (add_metric(g, YF_OP_MEAN_ACTIVATION, name, ms->at, in, 1, true, err))
                return err->code;
        }
    }
    /* the layers that activity losses act on report their mean activation */
    for (int t = 0; t < spec->n_losses; t++) {
        const yf__loss_spec *l = &spec->losses[t];
        if (l->type != YF_LOSS_KL_SPARSITY && l->type != YF_LOSS_L1)
            continue;
        int in = lookup(s, l->input);
        char name[80];
        snprintf(name, sizeof name, "mean_activation_%s", l->input);
        if (in >= 0 && add_metric(g, YF_OP_MEAN_ACTIVATION, name, l->at, &in, 1, false, err))
            return err->code;
    }
    return 0;
}

static int input_node(yf__graph *g, const char *name, const yf__node *at, yf__feed feed,
                      yf_error *err)
{
    int id = yf__graph_add(g, YF_OP_INPUT, name, at, err);
    if (id >= 0) {
        g->node[id].per_row = g->node[id].keep = true;
        g->node[id].feed = feed;
    }
    return id;
}

int yf__compile(yf_model *m, yf__graph *g, bool training, yf_error *err)
{
    const yf_spec *spec = m->spec;
    g->training = training;
    g->threads = m->threads;
    g->label_node = -1;
    scope *s = yf__calloc(1, sizeof *s);
    g->layer_node = yf__malloc((spec->n_layers + 1) * sizeof *g->layer_node);
    if (!s || !g->layer_node) {
        free(s);
        return yf__fail(err, YF_ENOMEM, "out of memory building the graph");
    }
    int x = input_node(g, spec->input_name, spec->input_at, YF__FEED_IMAGES, err);
    if (x < 0) {
        free(s);
        return x;
    }
    yf__gnode *in = &g->node[x];
    in->ndim = spec->input_ndim;
    in->size = 1;
    for (int i = 0; i < spec->input_ndim; i++)
        in->size *= (size_t)(in->dims[i] = spec->input_shape[i]);
    g->input_node = x;
    s->name[s->n] = spec->input_name, s->node[s->n++] = x;
    if (spec->labels_name[0]) {
        int y = input_node(g, spec->labels_name, spec->labels_at, YF__FEED_LABELS, err);
        if (y < 0) {
            free(s);
            return y;
        }
        g->node[y].dtype = YF__I32;
        g->node[y].size = 1, g->node[y].ndim = 1, g->node[y].dims[0] = 1;
        g->label_node = y;
        s->name[s->n] = spec->labels_name, s->node[s->n++] = y;
    }

    int rc = 0, prev = x;
    const char *prev_name = spec->input_name;
    for (int i = 0; i < spec->n_layers && !rc; i++) {
        const yf__layer_spec *l = &spec->layers[i];
        char ctx[128];
        snprintf(ctx, sizeof ctx, "layer '%s': ", l->name);
        int src[YF__MAX_INPUTS] = {prev}, n_src = 1;
        const char *src_name = prev_name;
        if (l->n_inputs >= 1) {
            n_src = l->n_inputs;
            src_name = l->inputs[0];
            for (int k = 0; k < n_src && !rc; k++)
                if ((src[k] = lookup(s, l->inputs[k])) < 0)
                    rc = unknown_name(err, l->inputs_at, ctx, s, spec, l->inputs[k]);
            if (rc)
                break;
        }
        int out = compile_layer(m, g, l, src, n_src, src_name, err);
        if (out < 0) {
            rc = out;
            break;
        }
        if (s->n == (int)YF__ARRAY_LEN(s->name)) {
            rc = yf__fail_at(err, l->at, YF_ESPEC, "too many layers (at most %zu)",
                             YF__ARRAY_LEN(s->name) - 2);
            break;
        }
        g->layer_node[i] = out;
        s->name[s->n] = l->name, s->node[s->n++] = out;
        prev = out, prev_name = l->name;
    }
    for (int t = 0; t < spec->n_losses && !rc; t++)
        rc = compile_loss(m, g, s, t, err);
    if (!rc && !training)
        rc = compile_metrics(m, g, s, err);
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
    free(g->loss_node);
    free(g->layer_node);
    memset(g, 0, sizeof *g);
}
