/* Specs that are valid YAML and compile, but would train nothing useful: a
 * model with nothing to train, losses that weigh nothing, layers no loss
 * depends on, weight decay on frozen weights, two sigmoids in a row, a
 * batch larger than the data. The first kinds are refused; the others
 * become warnings kept on the model (the command line prints them, and
 * --strict makes them errors). Each names the YAML line and says what to
 * write instead. */
#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int yf__warn(yf_model *m, const yf__node *at, const char *fmt, ...)
{
    yf__warning *w = yf__realloc(m->warn, (m->n_warn + 1) * sizeof *w);
    if (!w) /* a lost warning would let --strict pass a spec it refuses */
        return YF_ENOMEM;
    m->warn = w;
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    yf_error e = {0};
    yf__fail_at(&e, at, YF_ESPEC, "warning: %s", msg);
    snprintf(m->warn[m->n_warn++].text, sizeof w->text, "%s", yf_error_format(&e));
    return 0;
}

int yf_model_warning_count(const yf_model *m) { return m->n_warn; }

const char *yf_model_warning(const yf_model *m, int i)
{
    return i >= 0 && i < m->n_warn ? m->warn[i].text : NULL;
}

static const yf__node *key_at(const yf__node *map, const char *key)
{
    const yf__node *n = map ? yf__map_get(map, key) : NULL;
    return n ? n : map;
}

/* Training examples the data section leaves (MNIST and Fashion-MNIST have
 * 60000 in their training files). */
static long train_examples(const yf_spec *s)
{
    long n = 60000 - s->valid;
    if (s->train_count)
        return s->train_count < n ? s->train_count : n;
    long k = (long)(n * s->train_fraction + 0.5);
    return k ? k : 1;
}

int yf__lint(yf_model *m, yf_error *err)
{
    const yf_spec *s = m->spec;
    const yf__graph *g = &m->train;
    const yf__node *model_at = yf__map_get(s->tree->root, "model");

    /* nothing to train (with epochs: 0 nothing is meant to: the run keeps
     * its initial parameters, as a random projection does) */
    size_t trainable = 0;
    for (int p = 0; p < m->n_params; p++)
        trainable += m->params[p].trainable ? m->params[p].size : 0;
    if (!trainable && s->epochs > 0)
        return yf__fail_at(err, key_at(model_at, "layers"), YF_ESPEC,
                           m->n_params ? "model: every layer is frozen (trainable: false), so "
                                         "training changes nothing; make at least one layer "
                                         "trainable"
                                       : "model: no layer has parameters, so there is nothing "
                                         "to train; add a dense layer");
    double total_weight = 0;
    for (int t = 0; t < s->n_losses; t++)
        total_weight += s->losses[t].weight;
    if (total_weight == 0)
        return yf__fail_at(err, key_at(s->losses[0].at, "weight"), YF_ESPEC,
                           "loss: every loss term has weight 0, so nothing is minimised; give "
                           "a term a positive weight");
    bool gradient = false;
    for (int i = g->n_fwd; i < g->n && !gradient; i++)
        gradient = g->node[i].grad_of >= 0;
    if (!gradient && s->epochs > 0)
        return yf__fail_at(err, key_at(model_at, "loss"), YF_ESPEC,
                           "model: no loss depends on a trainable parameter, so training "
                           "changes nothing; put a loss on a layer above a trainable one");

    int lost = 0; /* a warning that could not be kept */

    /* layers no loss depends on */
    bool *used = yf__calloc(g->n, sizeof *used);
    if (!used)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    for (int i = 0; i < g->n_loss; i++) {
        used[g->loss_node[i]] = true;
        if (g->node[g->loss_node[i]].fused >= 0) /* the loss reads its logits */
            used[g->node[g->loss_node[i]].fused] = true;
    }
    for (int i = g->n_fwd - 1; i >= 0; i--)
        if (used[i])
            for (int k = 0; k < g->node[i].n_in; k++)
                used[g->node[i].in[k]] = true;
    for (int i = 0; i < s->n_layers; i++) {
        int id = g->layer_node[i];
        if (id >= 0 && !used[id])
            lost |= yf__warn(m, s->layers[i].at,
                             "layer '%s': no loss depends on it, so it does not train; use it "
                             "as a loss's input (or below one) or remove it", s->layers[i].name);
    }
    free(used);

    /* two sigmoids in a row */
    for (int i = 0; i < g->n_fwd; i++) {
        const yf__gnode *n = &g->node[i];
        if (n->op == YF_OP_ACT && n->act == YF_ACT_SIGMOID &&
            g->node[n->in[0]].op == YF_OP_ACT && g->node[n->in[0]].act == YF_ACT_SIGMOID)
            lost |= yf__warn(m, n->at,
                             "layer '%s': a sigmoid of '%s', which is already a sigmoid, "
                             "squashes everything into (0.5, 0.73); remove one of them", n->name,
                             g->node[n->in[0]].name);
    }

    /* l2 on frozen parameters */
    for (int t = 0; t < s->n_losses; t++) {
        const yf__loss_spec *l = &s->losses[t];
        if (l->type != YF_LOSS_L2)
            continue;
        for (int k = 0; k < l->n_params; k++)
            for (int p = 0; p < m->n_params; p++)
                if (!strcmp(m->params[p].name, l->params[k]) && !m->params[p].trainable)
                    lost |= yf__warn(m, l->params_at->kid[k],
                                     "loss 'l2': '%s' is not trained (a frozen layer's, or "
                                     "batch statistics), so its penalty only adds a constant; "
                                     "remove it from 'params'", l->params[k]);
    }

    /* batch norm's momentum is the new batch's weight (PyTorch's way) */
    for (int i = 0; i < s->n_layers; i++) {
        const yf__layer_spec *l = &s->layers[i];
        const yf__node *at = yf__map_get(l->at, "momentum") ? yf__map_get(l->at, "momentum")
                                                            : l->at;
        if (l->type == YF_LAYER_BATCH_NORM && (l->momentum == 0 || l->momentum >= 0.5f))
            lost |= yf__warn(m, at,
                             "layer '%s': momentum %g is the weight of each new batch in the "
                             "running statistics (PyTorch's convention), so they %s; Keras's "
                             "momentum 0.99 is 0.01 here", l->name, l->momentum,
                             l->momentum == 0 ? "never move" : "follow the last batches only");
    }

    /* a batch larger than the data */
    long n_train = train_examples(s);
    if (s->batch_size > n_train)
        lost |= yf__warn(m, s->batch_at,
                         "train: batch_size %d is larger than the %ld training examples, so "
                         "every step sees the whole data; use a batch_size of at most %ld",
                         s->batch_size, n_train, n_train);

    /* early stopping watches a column of metrics.csv */
    if (s->stop.on) {
        char names[3 * YF__MAX_TERMS + 1][128];
        int n = 0;
        snprintf(names[n++], 128, "valid_loss");
        for (int t = 0; t < s->n_losses; t++) {
            char term[64];
            yf__term_name(s, t, term);
            snprintf(names[n++], 128, "valid_%s", term);
        }
        for (int i = 0; i < m->eval.n_metric && n < (int)YF__ARRAY_LEN(names); i++)
            snprintf(names[n++], 128, "valid_%s", m->eval.metric[i].name);
        bool ok = false;
        const char *cands[YF__ARRAY_LEN(names)];
        for (int i = 0; i < n; i++) {
            ok |= !strcmp(names[i], s->stop.metric);
            cands[i] = names[i];
        }
        if (!ok) {
            char list[600] = "";
            for (int i = 0; i < n && strlen(list) < 500; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%.80s",
                         i ? ", " : "", names[i]);
            const char *near = yf__closest(s->stop.metric, cands, n);
            return yf__fail_at(err, key_at(s->stop.at, "metric"), YF_ESPEC,
                               "train early_stopping: no validation metric '%s'%s%s%s (this "
                               "model reports: %.500s)", s->stop.metric,
                               near ? " (did you mean '" : "", near ? near : "",
                               near ? "'?)" : "", list);
        }
        if (s->valid == 0 && s->folds == 0) /* with folds, the held-out fold validates */
            return yf__fail_at(err, key_at(s->stop.at, "metric"), YF_ESPEC,
                               "train early_stopping: needs a validation split, but data.valid "
                               "is 0");
    }
    return lost ? yf__fail(err, YF_ENOMEM, "out of memory keeping the spec's warnings") : 0;
}

void yf__term_name(const yf_spec *s, int t, char out[64])
{
    static const char *const names[] = {
#define XX(e, s) #s,
        YF_LOSS_TYPES(XX)
#undef XX
    };
    int same = 0;
    for (int u = 0; u < t; u++)
        same += s->losses[u].type == s->losses[t].type;
    if (same)
        snprintf(out, 64, "%s_%d", names[s->losses[t].type], same + 1);
    else
        snprintf(out, 64, "%s", names[s->losses[t].type]);
}
