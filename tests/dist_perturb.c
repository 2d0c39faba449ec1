/* dist_perturb SPEC OUT -- run by tests/test_mpi.sh under `mpirun -np 2`:
 * trains SPEC in data parallel as `yaflow train` does, but rank 1 nudges
 * one parameter after its third step, as a rank whose hardware or library
 * went astray would. The epoch's checksum must catch it: every rank must
 * stop with the mismatch message, and rank 0 must keep no checkpoint of
 * that epoch. Exits 0 when that happened, 1 otherwise. */
#include "../src/internal.h"

#include <stdio.h>
#include <string.h>

static void nudge(const yf_model *m)
{
    if (yf_dist_rank() == 1 && m->step == 3)
        m->param_block[0] += 1e-3f;
}

int main(int argc, char **argv)
{
    yf_error err = {0};
    if (argc != 3 || yf_runtime_choose_kernels(&err) || yf_dist_init(&argc, &argv, &err))
        return 1;
    yf_spec *s = yf_spec_load(argv[1], NULL, 0, &err);
    yf_model *m = s ? yf_model_new(s, 1, &err) : NULL;
    yf_dataset *d = m ? yf_dataset_load(s, &err) : NULL;
    if (!d) {
        fprintf(stderr, "dist_perturb: %s\n", yf_error_format(&err));
        return 1;
    }
    yf__step_hook = nudge;
    int rc = yf_train(m, d, &(yf_train_opts){.out_dir = argv[2]}, &err);
    bool caught = rc == YF_ERUN && strstr(err.msg, "parameters differ between the 2 ranks") &&
                  yf_dist_error_shared();
    printf("rank %d: %s\n", yf_dist_rank(), rc ? yf_error_format(&err) : "no error");
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(s);
    yf_dist_finalize();
    return caught ? 0 : 1;
}
