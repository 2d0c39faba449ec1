/* paramdiff RUN_A RUN_B TOLERANCE -- how far apart the parameters of two
 * run folders are (tests/test_mpi.sh: data parallel against one process).
 * Each value's difference is taken relative to the larger magnitude of
 * the two, but not below 1e-2 (values near zero are compared absolutely
 * at that scale: there a relative measure means nothing). Prints the
 * largest and where it is; exits 0 when it is within TOLERANCE, 1 when not,
 * 2 when a run cannot be opened or the two models differ in shape. */
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
    double worst = 0, worst_abs = 0;
    int wp = 0;
    size_t wi = 0, differ = 0;
    for (int p = 0; p < ma->n_params; p++) {
        const yf__param *q = &ma->params[p];
        for (size_t i = 0; i < q->size; i++) {
            double x = ma->param_block[q->offset + i], y = mb->param_block[q->offset + i];
            double d = fabs(x - y), scale = fmax(fmax(fabs(x), fabs(y)), 1e-2);
            differ += x != y;
            worst_abs = fmax(worst_abs, d);
            if (d / scale > worst || isnan(d))
                worst = isnan(d) ? INFINITY : d / scale, wp = p, wi = i;
        }
    }
    const yf__param *q = &ma->params[wp];
    printf("paramdiff: %zu of %zu values differ; largest relative difference %.3g (%s[%zu]: "
           "%.9g vs %.9g), largest absolute %.3g; tolerance %g\n", differ, ma->param_floats,
           worst, q->name, wi, ma->param_block[q->offset + wi], mb->param_block[q->offset + wi],
           worst_abs, tol);
    yf_run_close(&a);
    yf_run_close(&b);
    return worst <= tol ? 0 : 1;
}
