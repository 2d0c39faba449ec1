/* The compiled graph as Graphviz DOT: what autodiff built, node by node. */
#include "internal.h"

#include <string.h>

static void shape_of(const yf__gnode *n, char *buf, size_t cap)
{
    size_t l = snprintf(buf, cap, "%s", n->per_row ? "[B" : "[");
    for (int k = 0; k < n->ndim && l < cap; k++)
        l += snprintf(buf + l, cap - l, "%s%d", k || n->per_row ? ", " : "", n->dims[k]);
    if (l < cap)
        snprintf(buf + l, cap - l, "]");
}

int yf_model_write_dot(const yf_model *m, FILE *out, int training)
{
    const yf__graph *g = training ? &m->train : &m->eval;
    fprintf(out, "// %s graph of model '%s': %d nodes (%d forward); B = examples per batch\n",
            training ? "training" : "evaluation", m->spec->name, g->n, g->n_fwd);
    fprintf(out, "digraph \"%s\" {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", "
                 "fontname=\"DejaVu Sans\", fontsize=10];\n  edge [color=\"#555555\"];\n",
            m->spec->name);
    fprintf(out, "  subgraph cluster_legend { label=\"legend\"; fontname=\"DejaVu Sans\"; "
                 "fontsize=10;\n    l_in [label=\"input\", fillcolor=\"#d9f0d3\"]; l_f "
                 "[label=\"forward\", fillcolor=\"#cfe2f3\"]; l_b [label=\"backward "
                 "(autodiff)\", fillcolor=\"#f4cccc\"];\n    l_p [label=\"parameter\", "
                 "shape=ellipse, fillcolor=\"#fff2cc\"]; l_l [label=\"loss / metric\", "
                 "fillcolor=\"#d9d2e9\"]; }\n");
    for (int i = 0; i < g->n; i++) {
        const yf__gnode *n = &g->node[i];
        char shape[160];
        shape_of(n, shape, sizeof shape);
        if (n->grad_of >= 0 && n->ndim == 0) { /* writes a parameter's gradient */
            const yf__param *p = &m->params[n->grad_of];
            char dims[96];
            yf__dims_str(p->dims, p->ndim, dims, sizeof dims);
            snprintf(shape, sizeof shape, "-> d %s %s", p->name, dims);
        }
        const char *fill = "#cfe2f3", *form = "box";
        if (n->op == YF_OP_INPUT)
            fill = "#d9f0d3";
        else if (n->op == YF_OP_PARAM)
            fill = "#fff2cc", form = "ellipse";
        else if (n->op == YF_OP_STATE)
            fill = "#eeeeee";
        else if (i >= g->n_fwd)
            fill = "#f4cccc";
        else if (n->term >= 0 || n->metric >= 0)
            fill = "#d9d2e9";
        fprintf(out, "  n%d [shape=%s, fillcolor=\"%s\", label=\"%s\\n%s %s\"];\n", i, form, fill,
                n->name, yf__op_names[n->op], shape);
        for (int k = 0; k < n->n_in; k++)
            fprintf(out, "  n%d -> n%d;\n", n->in[k], i);
    }
    fprintf(out, "}\n");
    return ferror(out) ? -1 : 0;
}
