/* Optimisers: one loop over each trainable parameter's view of the
 * contiguous parameter, gradient and moment blocks. Semantics follow
 * PyTorch's SGD (momentum, nesterov) and Adam, with weight decay added to
 * the gradient. */
#include "internal.h"

#include <math.h>


/* p, g, m, v are (n) */
YF__CLONES static void adam(float *p, const float *g, float *m, float *v, size_t n,
                            float lr_t, float b1, float b2, float eps, float wd,
                            float c2)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] -= lr_t * m[i] / (sqrtf(v[i] * c2) + eps);
    }
}

/* p, g, buf are (n) */
YF__CLONES static void momentum(float *p, const float *g, float *buf, size_t n,
                                float lr, float mu, float wd, bool nesterov,
                                bool first)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        buf[i] = first ? gi : mu * buf[i] + gi;
        p[i] -= lr * (nesterov ? gi + mu * buf[i] : buf[i]);
    }
}

YF__CLONES static void sgd(float *p, const float *g, size_t n, float lr, float wd)
{
    for (size_t i = 0; i < n; i++)
        p[i] -= lr * (g[i] + wd * p[i]);
}

/* The update of elements [a, b) of parameter i, for the step m->step
 * (already counted). */
static void optim_part(yf_model *m, int i, size_t a, size_t b)
{
    const yf__optim_spec *o = &m->spec->optim;
    const yf__param *p = &m->params[i];
    if (!p->trainable)
        return;
    double t = (double)m->step;
    float lr = m->lr;
    size_t off = p->offset + a, size = b - a;
    float *w = m->param_block + off, *g = m->grad_block + off;
    switch (o->type) {
    case YF_OPTIM_SGD:
        sgd(w, g, size, lr, o->weight_decay);
        break;
    case YF_OPTIM_MOMENTUM:
        momentum(w, g, m->m_block + off, size, lr, o->momentum, o->weight_decay,
                 o->nesterov, m->step == 1);
        break;
    case YF_OPTIM_ADAM: {
        float lr_t = (float)(lr / (1.0 - pow(o->beta1, t)));
        float c2 = (float)(1.0 / (1.0 - pow(o->beta2, t)));
        adam(w, g, m->m_block + off, m->v_block + off, size, lr_t, o->beta1,
             o->beta2, o->epsilon, o->weight_decay, c2);
        break;
    }
    }
}

/* The update of parameter i alone, for the step m->step (already counted). */
void yf__optim_param(yf_model *m, int i) { optim_part(m, i, 0, m->params[i].size); }

/* The update of the block's floats [lo, hi) (a rank's shard), parameter by
 * parameter, for the step m->step (already counted). */
void yf__optim_range(yf_model *m, size_t lo, size_t hi)
{
    for (int i = 0; i < m->n_params; i++) {
        const yf__param *p = &m->params[i];
        size_t a = p->offset > lo ? p->offset : lo;
        size_t b = p->offset + p->size < hi ? p->offset + p->size : hi;
        if (a < b)
            optim_part(m, i, a - p->offset, b - p->offset);
    }
}

void yf__optim_step(yf_model *m)
{
    m->step++;
    size_t lo, hi;
    if (yf__exchange_shard(m, &lo, &hi)) { /* this rank's shard of the shared state */
        int nt = m->active; /* cut at whole vectors; each float's update is its own */
#pragma omp parallel for num_threads(nt) if (nt > 1)
        for (int t = 0; t < nt; t++)
            yf__optim_range(m, t ? (lo + (hi - lo) * t / nt) & ~(size_t)15 : lo,
                            t + 1 < nt ? (lo + (hi - lo) * (t + 1) / nt) & ~(size_t)15 : hi);
        yf__exchange_sync(m);
        return;
    }
    int np = m->n_params;
#pragma omp parallel for schedule(dynamic, 1) num_threads(m->active) if (m->active > 1)
    for (int i = 0; i < np; i++)
        yf__optim_param(m, m->optim_order[i]);
}

float yf__schedule_lr(const yf_spec *s, double e)
{
    const yf__schedule_spec *sc = &s->schedule;
    double lr = s->optim.lr;
    if (sc->warmup_epochs > 0 && e < sc->warmup_epochs)
        return (float)(lr * (e + 1e-3) / (sc->warmup_epochs + 1e-3)); /* linear warm-up */
    double after = e - sc->warmup_epochs;
    switch (sc->type) {
    case YF_SCHED_CONSTANT:
        break;
    case YF_SCHED_STEP:
        lr *= pow(sc->gamma, floor(after / sc->step_epochs));
        break;
    case YF_SCHED_EXPONENTIAL:
        lr *= pow(sc->gamma, after);
        break;
    case YF_SCHED_COSINE: {
        double span = s->epochs - sc->warmup_epochs;
        double f = span > 0 ? fmin(after / span, 1.0) : 1.0;
        lr = sc->min_lr + (lr - sc->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * f));
        break;
    }
    }
    return (float)lr;
}
