/* src/gemm.c's GEMM against bli_sgemm: the same bits, for every transpose,
 * beta 0 and 1, one to three threads, and shapes on both sides of each
 * block size (MR, NR, KC and its maximum, MC), with several BLIS kernel
 * sets. BLIS
 * reads BLIS_ARCH_TYPE once, when it starts (testutil.h's constructor
 * starts it), so each kernel set is tried in a fresh run of this program
 * (`test_gemm --sweep`) with the variable set. */
#include "testutil.h"

#include <blis.h>
#include <sys/wait.h>
#include <unistd.h>

static uint32_t lcg = 12345;

static float rnd(void)
{
    lcg = lcg * 1664525u + 1013904223u;
    return (float)(lcg >> 8) / (1 << 24) - 0.5f;
}

/* Every shape of a list against BLIS in this process; the number of
 * calls that differed in a bit or that the driver left to BLIS (it must
 * take them all here), with the first described in why. */
static int sweep(char *why, size_t why_len)
{
    static const int ms[] = {2, 3, 11, 12, 13, 31, 32, 33, 97, 128, 300, 481, 785};
    static const int ks[] = {1, 2, 15, 16, 17, 128, 255, 256, 257, 383, 384, 385, 479,
                             480, 481, 784, 865, 1000};
    int bad = 0, tried = 0;
    for (int c = 0; c < 160; c++) {
        int m = ms[(c * 7) % 13], n = ms[(c * 5 + 3) % 13], k = ks[(c * 11 + c / 13) % 18];
        if (c % 40 == 39) /* a convolution's GEMM: long rows of output */
            n = 3136;
        bool ta = c & 1, tb = c & 2;
        int threads = 1 + (c >> 3) % 3; /* its threads split C; BLIS's on one */
        float beta = c & 4 ? 1.0f : 0.0f;
        int lda = ta ? m : k, ldb = tb ? k : n;
        size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
        float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
        float *c0 = malloc(nc * sizeof *c0), *c1 = malloc(nc * sizeof *c1);
        for (size_t i = 0; i < na; i++)
            a[i] = rnd();
        for (size_t i = 0; i < nb; i++)
            b[i] = rnd();
        for (size_t i = 0; i < nc; i++)
            c0[i] = c1[i] = rnd();
        yf__gemm_set_mode(YF__GEMM_BLIS);
        yf__sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c0, n, 1);
        yf__gemm_set_mode(YF__GEMM_ALL);
        bool took = yf__gemm_own(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c1, n, threads);
        size_t first = 0;
        while (first < nc && !memcmp(&c0[first], &c1[first], sizeof *c0))
            first++;
        if (!took || first < nc) {
            if (!bad)
                snprintf(why, why_len, "m %d n %d k %d ta %d tb %d beta %g, %d threads: %s", m,
                         n, k, ta, tb, beta, threads, !took ? "left to BLIS" : "differs");
            if (!bad && took)
                snprintf(why + strlen(why), why_len - strlen(why),
                         " at %zu: %.9g against BLIS's %.9g", first, c1[first], c0[first]);
            bad++;
        }
        tried++;
        free(a), free(b), free(c0), free(c1);
    }
    return tried ? bad : -1;
}

/* This program run again with BLIS_ARCH_TYPE=arch (and YAFLOW_OWN_GEMM=0
 * if off) and the arguments args: its exit code, its output in out. */
static int run_self(int arch, bool off, const char *args, char *out, size_t out_len)
{
    int fd[2];
    ck_assert(pipe(fd) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        char id[16];
        snprintf(id, sizeof id, "%d", arch);
        setenv("BLIS_ARCH_TYPE", id, 1);
        if (off)
            setenv("YAFLOW_OWN_GEMM", "0", 1);
        else
            unsetenv("YAFLOW_OWN_GEMM");
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl("/proc/self/exe", "test_gemm", args, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t have = 0;
    ssize_t got;
    while (have + 1 < out_len && (got = read(fd[0], out + have, out_len - 1 - have)) > 0)
        have += (size_t)got;
    out[have] = 0;
    close(fd[0]);
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(WIFEXITED(status), "test_gemm %s with BLIS_ARCH_TYPE=%d died (signal %d)",
                  args, arch, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return WEXITSTATUS(status);
}

/* The sweep with BLIS's kernel set arch (its arch_t id). */
static void sweep_with(int arch, const char *name)
{
    char out[600];
    int code = run_self(arch, false, "--sweep", out, sizeof out);
    ck_assert_msg(code == 0, "%s kernels: %s", name, out);
    ck_assert_msg(strstr(out, name) != NULL, "asked for %s, ran: %s", name, out);
}

static bool avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

START_TEST(test_same_bits_as_blis)
{
    /* arch_t ids of BLIS 0.9: generic's reference kernel (4 × 16, which
     * prefers C by rows: no transposition) runs everywhere */
    sweep_with(BLIS_ARCH_GENERIC, "generic");
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx"))
        sweep_with(BLIS_ARCH_SANDYBRIDGE, "sandybridge");
    if (avx512())
        sweep_with(BLIS_ARCH_SKX, "skx"); /* 32 × 12, by columns: yaflow's default here */
}
END_TEST

/* The default takes the kernel sets it packs faster than BLIS (skx) and
 * leaves the others to BLIS; YAFLOW_OWN_GEMM=0 leaves all to BLIS. */
START_TEST(test_default_choice)
{
    char out[200];
    ck_assert_int_eq(run_self(BLIS_ARCH_GENERIC, false, "--takes", out, sizeof out), 0);
    ck_assert_msg(!strcmp(out, "generic: left to BLIS\n"), "%s", out);
    if (!avx512())
        return;
    ck_assert_int_eq(run_self(BLIS_ARCH_SKX, false, "--takes", out, sizeof out), 0);
    ck_assert_msg(!strcmp(out, "skx: taken\n"), "%s", out);
    ck_assert_int_eq(run_self(BLIS_ARCH_SKX, true, "--takes", out, sizeof out), 0);
    ck_assert_msg(!strcmp(out, "skx: left to BLIS\n"), "YAFLOW_OWN_GEMM=0: %s", out);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--sweep")) {
        char why[512] = "";
        int bad = sweep(why, sizeof why);
        printf("%s: %s%s\n", bli_arch_string(bli_arch_query_id()),
               bad ? why : "160 GEMMs, the same bits as BLIS", bad > 1 ? ", and more" : "");
        return bad != 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--takes")) { /* by default */
        float a[64] = {0}, b[64] = {0}, c[64] = {0};
        bool took = yf__gemm_own(false, false, 8, 8, 8, 1.0f, a, 8, b, 8, 0.0f, c, 8, 1);
        printf("%s: %s\n", bli_arch_string(bli_arch_query_id()), took ? "taken" : "left to BLIS");
        return 0;
    }
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_same_bits_as_blis);
    tcase_add_test(tc, test_default_choice);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
