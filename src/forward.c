/* Running part of a compiled graph on values the caller gives: from any
 * layer (the model input, or a VAE's code) to any later one. Used by the
 * pictures (reconstructions, samples from the prior, interpolations), by
 * the scoring of generated images and by anyone embedding the library. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* The node holding layer `name`'s output in g, or -1. */
int yf__layer_node(const yf_model *m, const yf__graph *g, const char *name)
{
    const yf_spec *s = m->spec;
    if (!strcmp(name, s->input_name))
        return g->input_node;
    for (int i = 0; i < s->n_layers; i++)
        if (!strcmp(s->layers[i].name, name))
            return g->layer_node[i];
    return -1;
}

static int no_layer(const yf_model *m, const char *name, yf_error *err)
{
    const yf_spec *s = m->spec;
    const char *cands[1025];
    int n = 0;
    cands[n++] = s->input_name;
    for (int i = 0; i < s->n_layers && n < 1025; i++)
        cands[n++] = s->layers[i].name;
    const char *near = yf__closest(name, cands, n);
    return yf__fail(err, YF_EUSAGE, "model '%s' has no layer '%s'%s%s%s", s->name, name,
                    near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
}

size_t yf_model_layer_size(const yf_model *m, const char *layer, int *ndim, int *dims)
{
    int id = yf__layer_node(m, &m->eval, layer ? layer : m->spec->input_name);
    if (id < 0)
        return 0;
    const yf__gnode *n = &m->eval.node[id];
    if (ndim)
        *ndim = n->ndim;
    if (dims)
        memcpy(dims, n->dims, n->ndim * sizeof *dims);
    return n->size;
}

int yf__forward(yf_model *m, yf__graph *g, int from, const float *in, size_t rows, int to,
                float *out, uint64_t step, yf_error *err)
{
    const yf__gnode *src = &g->node[from], *dst = &g->node[to];
    if (!src->per_row || !dst->per_row || src->dtype != YF__F32)
        return yf__fail(err, YF_EUSAGE, "'%s' and '%s' must both hold one value per example",
                        src->name, dst->name);
    /* the nodes to run: computed from `from` (descendants) and needed by
     * `to` (ancestors); the graph lists every node after its inputs */
    unsigned char *mark = yf__calloc(g->n_fwd, 1);
    if (!mark)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    enum { DESC = 1, ANC = 2 };
    mark[from] |= DESC;
    for (int i = from + 1; i < g->n_fwd; i++)
        for (int k = 0; k < g->node[i].n_in; k++)
            if (mark[g->node[i].in[k]] & DESC)
                mark[i] |= DESC;
    mark[to] |= ANC;
    for (int i = to; i >= 0; i--)
        if (mark[i] & ANC)
            for (int k = 0; k < g->node[i].n_in; k++)
                mark[g->node[i].in[k]] |= ANC;
    int rc = 0;
    if (!(mark[to] & DESC) && to != from)
        rc = yf__fail(err, YF_EUSAGE, "'%s' is not computed from '%s'", dst->name, src->name);
    /* everything the run reads must be computed in it, given, or a
     * parameter */
    for (int i = 0; i < g->n_fwd && !rc; i++) {
        if (mark[i] != (DESC | ANC) || i == from)
            continue;
        for (int k = 0; k < g->node[i].n_in && !rc; k++) {
            const yf__gnode *x = &g->node[g->node[i].in[k]];
            int xi = g->node[i].in[k];
            if (xi != from && mark[xi] != (DESC | ANC) && x->op != YF_OP_PARAM &&
                x->op != YF_OP_STATE)
                rc = yf__fail(err, YF_EUSAGE, "'%s' also depends on '%s', which is not computed "
                              "from '%s'", dst->name, x->name, src->name);
        }
    }
    if (!rc && to != from) /* the output's buffer must not be reused before it is copied */
        rc = yf__plan_keep(m, g, to, err);
    yf__exec ex = {.threads = m->active, .team = m->active, .seed = m->spec->seed, .g = g,
                   .shared_terms = true};
    for (size_t b = 0; b < rows && !rc; b += g->max_rows) {
        int n = (int)(rows - b < (size_t)g->max_rows ? rows - b : (size_t)g->max_rows);
        memcpy(g->node[from].buf, in + b * src->size, (size_t)n * src->size * sizeof(float));
        ex.rows = ex.batch_rows = n;
        ex.step = step + b / g->max_rows;
        for (int l = 1; l < g->n_levels; l++)
            for (int k = g->level_start[l]; k < g->level_start[l + 1]; k++) {
                int id = g->order[k];
                if (id < g->n_fwd && mark[id] == (DESC | ANC) && id != from)
                    yf__op_fwd[g->node[id].op](&g->node[id], &ex);
            }
        memcpy(out + b * dst->size, g->node[to].buf, (size_t)n * dst->size * sizeof(float));
    }
    free(mark);
    return rc;
}

int yf_model_forward(yf_model *m, const char *from, const float *in, size_t rows, const char *to,
                     float *out, int training, uint64_t step, yf_error *err)
{
    YF__FTZ_SCOPE;
    yf__graph *g = training ? &m->train : &m->eval;
    const char *fname = from ? from : m->spec->input_name;
    int a = yf__layer_node(m, g, fname), b = yf__layer_node(m, g, to);
    if (a < 0)
        return no_layer(m, fname, err);
    if (b < 0)
        return no_layer(m, to, err);
    return yf__forward(m, g, a, in, rows, b, out, step, err);
}

int yf_dataset_images(const yf_dataset *d, yf_split split, size_t first, size_t n, float *x,
                      int *labels, yf_error *err)
{
    size_t count = yf_dataset_count(d, split);
    if (first > count || n > count - first)
        return yf__fail(err, YF_EUSAGE, "examples %zu to %zu asked of a split of %zu", first,
                        first + n, count);
    yf__split_rows(d, split, first, n, x, labels);
    return 0;
}

int yf_npy_save(const char *path, const float *data, const int64_t *shape, int ndim,
                yf_error *err)
{
    return yf__npy_write(path, "<f4", shape, ndim, data, sizeof(float), err);
}
