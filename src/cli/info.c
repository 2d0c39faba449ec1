/* yaflow info */
#include "cli.h"

#include <stdio.h>

static const char usage[] =
    "usage: yaflow info [--threads N]\n"
    "Shows the BLIS version and kernel set in use (and how it was chosen), the\n"
    "thread counts and the CPU features; with --threads, the count a command\n"
    "given the same --threads would use.\n";

int cmd_info(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, usage, CLI_THREADS, &a);
    if (rc || a.help)
        return rc;
    yf_runtime_info info;
    yf_runtime_info_get(&info);
    printf("yaflow %s\n", PACKAGE_VERSION);
    printf("blis_version=%s\n", info.blis_version);
    printf("blis_kernels=%s\n", info.blis_arch);
    printf("blis_kernels_source=%s\n", info.arch_source);
    printf("blis_own_detection=%s\n", info.blis_arch_detected);
    printf("cpu_features=%s\n", info.cpu_features);
    printf("cores=%d\n", info.cores);
    printf("omp_max_threads=%d\n", info.omp_threads);
    const char *mpi = yf_dist_library();
    if (mpi)
        printf("mpi=%s (built with MPI: `mpirun -np N yaflow train SPEC` trains in data "
               "parallel; this process is rank %d of %d)\n", mpi, yf_dist_rank(), yf_dist_size());
    else
        printf("mpi=no (built without MPI: ./configure --with-mpi, with Open MPI installed)\n");
    printf("threads_default=%d (yaflow runs BLIS and its OpenMP workers within this count)\n",
           info.cores);
    if (a.threads)
        printf("threads=%d (--threads)\n", a.threads);
    return 0;
}
