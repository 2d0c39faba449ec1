/* BLIS set-up and the one GEMM entry point.
 *
 * Debian's BLIS 0.9.0 does not know recent CPUs and falls back to its slow
 * `generic` kernels (43 GFLOP/s here, where `skx` gives 240). When the
 * program asks for it, first thing, with yf_runtime_choose_kernels (the
 * command line does), we ask BLIS, in a throw-away child process, which
 * kernel set it would pick; when that is `generic` and the CPU has AVX-512
 * or AVX2 we select skx or zen3/haswell through BLIS_ARCH_TYPE (its numeric
 * arch_t id). A BLIS_ARCH_TYPE the user set always wins. The child is
 * needed because BLIS caches its choice on first query, and querying with
 * the variable set before bli_init() aborts. Without that call the library
 * neither forks nor touches the environment: BLIS chooses by itself. */
#include "internal.h"

#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __SSE__
#include <xmmintrin.h>
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static yf_runtime_info info;
static bool may_choose, initialised; /* yf_runtime_choose_kernels was called; BLIS is up */

/* BLIS's own choice, from a child process; -1 if it cannot be learnt. */
static int blis_own_choice(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        bli_init();
        _exit((int)bli_arch_query_id());
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void choose(void)
{
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    snprintf(info.cpu_features, sizeof info.cpu_features, "%s%s%s%s",
             __builtin_cpu_supports("sse4.2") ? "sse4.2 " : "",
             __builtin_cpu_supports("avx") ? "avx " : "", avx2 ? "avx2 fma " : "",
             avx512 ? "avx512f/dq/bw/vl" : "");
    const char *user = getenv("BLIS_ARCH_TYPE");
    if (!may_choose && !(user && *user)) {
        snprintf(info.arch_source, sizeof info.arch_source,
                 "chosen by BLIS (yf_runtime_choose_kernels was not called)");
        snprintf(info.blis_arch_detected, sizeof info.blis_arch_detected, "not asked");
    } else if (user && *user) {
        snprintf(info.arch_source, sizeof info.arch_source,
                 "BLIS_ARCH_TYPE=%s from the environment", user);
        snprintf(info.blis_arch_detected, sizeof info.blis_arch_detected, "not asked");
    } else {
        int own = blis_own_choice();
        int pick = own;
        if (own < 0 || own == BLIS_ARCH_GENERIC) {
#ifdef BLIS_KERNELS_SKX
            if (avx512)
                pick = BLIS_ARCH_SKX;
            else
#endif
#ifdef BLIS_KERNELS_ZEN3
            if (avx2)
                pick = BLIS_ARCH_ZEN3;
            else
#endif
#ifdef BLIS_KERNELS_HASWELL
            if (avx2)
                pick = BLIS_ARCH_HASWELL;
            else
#endif
                pick = own;
        }
        snprintf(info.blis_arch_detected, sizeof info.blis_arch_detected, "%s",
                 own >= 0 && own < BLIS_NUM_ARCHS ? bli_arch_string((arch_t)own) : "unknown");
        if (pick != own && pick >= 0) {
            char num[16];
            snprintf(num, sizeof num, "%d", pick);
            setenv("BLIS_ARCH_TYPE", num, 1);
            snprintf(info.arch_source, sizeof info.arch_source, "chosen by yaflow (%s CPU)",
                     avx512 ? "AVX-512" : "AVX2");
        } else {
            snprintf(info.arch_source, sizeof info.arch_source, "detected by BLIS");
        }
    }
    bli_init();
    snprintf(info.blis_arch, sizeof info.blis_arch, "%s", bli_arch_string(bli_arch_query_id()));
    snprintf(info.blis_version, sizeof info.blis_version, "%s", bli_info_get_version_str());
    info.cores = omp_get_num_procs();
    info.omp_threads = omp_get_max_threads();
    initialised = true;
}

int yf_runtime_choose_kernels(yf_error *err)
{
    if (initialised)
        return yf__fail(err, YF_EUSAGE, "yf_runtime_choose_kernels must come before the first "
                        "model: BLIS has already chosen its kernels");
    may_choose = true;
    pthread_once(&once, choose);
    return 0;
}

int yf_runtime_init(yf_error *err)
{
    pthread_once(&once, choose);
    return 0;
}

/* Denormal floats (below 1.2e-38) are 10-100 times slower on x86, and early
 * in training tiny gradients and Adam moments are full of them: training ran
 * 15% slower for its first epoch. Flush them to zero (FTZ and DAZ), as
 * programs built with -ffast-math do, in this thread and in every OpenMP
 * worker that may run a kernel. */
void yf__flush_denormals(int threads)
{
#ifdef __SSE__
#pragma omp parallel num_threads(threads)
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

unsigned yf__ftz_enter(void)
{
#ifdef __SSE__
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);
    return saved;
#else
    return 0;
#endif
}

void yf__ftz_leave(unsigned *saved)
{
#ifdef __SSE__
    _mm_setcsr(*saved);
#else
    (void)saved;
#endif
}

void yf_runtime_info_get(yf_runtime_info *out)
{
    pthread_once(&once, choose);
    *out = info;
}

void yf__sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc,
               int threads)
{
    if (yf__gemm_own(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads))
        return;
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(threads, &rntm);
    bli_sgemm_ex(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k, &alpha,
                 (float *)a, lda, 1, (float *)b, ldb, 1, &beta, c, ldc, 1, NULL, &rntm);
}
