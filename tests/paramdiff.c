/* paramdiff RUN_A RUN_B TOLERANCE -- how far apart the parameters of two
 * run folders are (tests/test_mpi.sh: data parallel against one process),
 * relative to their scale: the largest difference over the largest
 * magnitude, max|a - b| / max|a|, which must be within TOLERANCE (exit 0;
 * 1 when not; 2 when a run cannot be opened or the models differ in shape).
 * The optimizer's moments in the checkpoints are held to the same measure
 * (ranks that share them update a shard each: the checkpoint must hold
 * every shard).
 * It also prints the largest difference relative to each value itself
 * (not below 1e-2): that one is not a fair gate, since a gradient that is
 * a small difference of large sums changes in its leading digits when the
 * sums are split across ranks, and Adam's normalised step carries it. */
#include "../src/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: paramdiff RUN_A RUN_B TOLERANCE\n");
        return 2;
    }
    double tol = atof(argv[3]);
    yf_run a, b;
    yf_error err = {0};
    if (yf_run_open(&a, argv[1], 1, 0, &err) || yf_run_open(&b, argv[2], 1, 0, &err)) {
        fprintf(stderr, "paramdiff: %s\n", yf_error_format(&err));
        return 2;
    }
    const yf_model *ma = a.model, *mb = b.model;
    if (ma->param_floats != mb->param_floats || ma->n_params != mb->n_params) {
        fprintf(stderr, "paramdiff: the two models have different parameters\n");
        return 2;
    }
    double worst = 0, worst_abs = 0, largest = 0;
    int wp = 0;
    size_t wi = 0, differ = 0;
    for (int p = 0; p < ma->n_params; p++) {
        const yf__param *q = &ma->params[p];
        for (size_t i = 0; i < q->size; i++) {
            double x = ma->param_block[q->offset + i], y = mb->param_block[q->offset + i];
            double d = fabs(x - y), scale = fmax(fmax(fabs(x), fabs(y)), 1e-2);
            differ += x != y;
            worst_abs = isnan(d) ? INFINITY : fmax(worst_abs, d);
            largest = fmax(largest, fabs(x));
            if (d / scale > worst || isnan(d))
                worst = isnan(d) ? INFINITY : d / scale, wp = p, wi = i;
        }
    }
    const yf__param *q = &ma->params[wp];
    double rel = largest > 0 ? worst_abs / largest : worst_abs;
    printf("paramdiff: %zu of %zu values differ; max|a - b| / max|a| = %.3g / %.3g = %.3g "
           "(tolerance %g); per value, relative to itself (not below 1e-2), at most %.3g "
           "(%s[%zu]: %.9g vs %.9g)\n", differ, ma->param_floats, worst_abs, largest, rel, tol,
           worst, q->name, wi, ma->param_block[q->offset + wi], mb->param_block[q->offset + wi]);
    bool ok = rel <= tol;
    /* the moments, when the checkpoints have them */
    char pa[1100], pb[1100];
    snprintf(pa, sizeof pa, "%s/checkpoint.safetensors", argv[1]);
    snprintf(pb, sizeof pb, "%s/checkpoint.safetensors", argv[2]);
    if (ma->m_block && mb->m_block && !yf_checkpoint_load(a.model, pa, 1, &err) &&
        !yf_checkpoint_load(b.model, pb, 1, &err)) {
        const float *blocks[2][2] = {{ma->m_block, mb->m_block}, {ma->v_block, mb->v_block}};
        for (int k = 0; k < 2; k++) {
            double dmax = 0, xmax = 0;
            for (size_t i = 0; i < ma->param_floats; i++) {
                double d = fabs((double)blocks[k][0][i] - blocks[k][1][i]);
                dmax = isnan(d) ? INFINITY : fmax(dmax, d);
                xmax = fmax(xmax, fabs((double)blocks[k][0][i]));
            }
            double r = xmax > 0 ? dmax / xmax : dmax;
            printf("paramdiff: %s moment: max|a - b| / max|a| = %.3g / %.3g = %.3g\n",
                   k ? "second" : "first", dmax, xmax, r);
            ok = ok && r <= tol;
        }
    } else if (err.code) {
        fprintf(stderr, "paramdiff: %s\n", yf_error_format(&err));
        return 2;
    }
    yf_run_close(&a);
    yf_run_close(&b);
    return ok ? 0 : 1;
}
