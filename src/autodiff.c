/* Reverse-mode differentiation at compile time: walks the forward nodes in
 * reverse and lets each op's backward builder append its gradient nodes
 * (one list in ops/ops.def, one builder per op). Gradients reaching a node
 * from several consumers are summed by yf__grad_accum; parameter gradients
 * are written straight into the model's gradient block. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int yf__no_bwd(yf__graph *g, int id, int dy, yf_error *err)
{
    return yf__fail_at(err, g->node[id].at, YF_ESPEC,
                       "layer '%s': op '%s' has no gradient, but a trainable parameter "
                       "lies below it", g->node[id].name, yf__op_names[g->node[id].op]);
}

void yf__no_fwd(yf__gnode *n, const yf__exec *ex) {}

int yf__autodiff(yf_model *m, yf__graph *g, yf_error *err)
{
    int n_fwd = g->n_fwd = g->n;
    for (int i = 0; i < n_fwd; i++) {
        yf__gnode *n = &g->node[i];
        if (n->op == YF_OP_PARAM)
            n->needs_grad = m->params[n->param].trainable;
        else
            for (int k = 0; k < n->n_in; k++)
                n->needs_grad |= g->node[n->in[k]].needs_grad;
    }
    g->param_writer = yf__malloc((m->n_params + 1) * sizeof *g->param_writer);
    if (!g->param_writer)
        return yf__fail(err, YF_ENOMEM, "out of memory differentiating the graph");
    for (int p = 0; p < m->n_params; p++)
        g->param_writer[p] = -1;
    for (int id = n_fwd - 1; id >= 0; id--) {
        const yf__gnode *n = &g->node[id];
        if (!n->needs_grad)
            continue;
        int dy = n->grad;
        if (n->term < 0 && dy < 0)
            continue; /* nothing below the losses depends on it */
        int rc = yf__op_bwd[n->op](g, id, n->term >= 0 ? -1 : dy, err);
        if (rc)
            return rc;
    }
    /* invariant: every gradient has its source's shape (kernels read it) */
    for (int i = 0; i < n_fwd; i++)
        if (g->node[i].grad >= 0 &&
            (g->node[g->node[i].grad].size != g->node[i].size ||
             g->node[g->node[i].grad].ndim != g->node[i].ndim ||
             memcmp(g->node[g->node[i].grad].dims, g->node[i].dims,
                    g->node[i].ndim * sizeof(int))))
            return yf__fail_at(err, g->node[i].at, YF_ERUN,
                               "internal error: gradient of '%s' (op %s) has %zu values in "
                               "%d dimensions, not %zu in %d", g->node[i].name,
                               yf__op_names[g->node[g->node[i].grad].op],
                               g->node[g->node[i].grad].size, g->node[g->node[i].grad].ndim,
                               g->node[i].size, g->node[i].ndim);
    return 0;
}
