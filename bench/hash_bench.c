/* Retrieval speed of yaflow's hash index: the popcount linear scan and the
 * Hamming-ball lookup, on a real index (yaflow hash RUN writes one) and on
 * a synthetic index of random codes. Built and run by `make bench-hash`:
 *
 *   bench/hash_bench [RUN/hash.index] [--synthetic N] [--bits B] [--radius R]
 *
 * Prints name=value lines: codes checked per second by the scan (one core),
 * queries per second and microseconds per query for both methods. */
#include <yaflow.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void measure(const char *name, const uint64_t *db, size_t n, const uint64_t *q, size_t nq,
                    int bits, int radius)
{
    /* the scan: every code checked against the radius, queries in turn,
     * repeated until it has run for about a second */
    size_t found = 0, done = 0;
    double t0 = now(), t;
    do {
        for (size_t i = 0; i < nq; i++)
            found += yf_hash_count_within(db, n, q[i], radius);
        done += nq;
    } while ((t = now() - t0) < 1.0);
    printf("%s_scan_codes_per_s=%.3g\n%s_scan_queries_per_s=%.1f\n%s_scan_us_per_query=%.1f\n",
           name, (double)done * n / t, name, done / t, name, t / done * 1e6);
    /* the same, 64 queries per pass over the database */
    size_t counts[64], batch = nq < 64 ? nq : 64;
    done = 0;
    t0 = now();
    do {
        for (size_t i = 0; i + batch <= nq; i += batch)
            yf_hash_count_within_many(db, n, q + i, batch, radius, counts), done += batch;
    } while ((t = now() - t0) < 1.0);
    printf("%s_scan64_codes_per_s=%.3g\n%s_scan64_queries_per_s=%.1f\n", name,
           (double)done * n / t, name, done / t);
    yf_error err = {0};
    t0 = now();
    yf_hash_table *tab = yf_hash_table_new(db, n, &err);
    if (!tab) {
        fprintf(stderr, "hash_bench: %s\n", yf_error_format(&err));
        exit(1);
    }
    printf("%s_table_build_s=%.3f\n%s_distinct=%zu\n", name, now() - t0, name,
           yf_hash_table_distinct(tab));
    size_t got = 0;
    done = 0;
    t0 = now();
    do {
        for (size_t i = 0; i < nq; i++)
            got += yf_hash_ball_items(tab, q[i], bits, radius, NULL, 0);
        done += nq;
    } while ((t = now() - t0) < 1.0);
    printf("%s_ball_queries_per_s=%.0f\n%s_ball_us_per_query=%.2f\n", name, done / t, name,
           t / done * 1e6);
    (void)found, (void)got;
    /* both methods find the same items */
    size_t a = 0, b = 0;
    for (size_t i = 0; i < nq && i < 100; i++) {
        a += yf_hash_count_within(db, n, q[i], radius);
        b += yf_hash_ball_items(tab, q[i], bits, radius, NULL, 0);
    }
    printf("%s_found_r%d_first100=%zu (ball: %zu)%s\n", name, radius, a, b,
           a == b ? "" : "  MISMATCH");
    yf_hash_table_free(tab);
    if (a != b)
        exit(1);
}

int main(int argc, char **argv)
{
    const char *index = NULL;
    size_t synthetic = 10000000;
    int bits = 30, radius = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--synthetic") && i + 1 < argc)
            synthetic = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--bits") && i + 1 < argc)
            bits = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--radius") && i + 1 < argc)
            radius = atoi(argv[++i]);
        else
            index = argv[i];
    }
    if (index) {
        yf_hash_index ix;
        yf_error err = {0};
        if (yf_hash_index_load(&ix, index, &err)) {
            fprintf(stderr, "hash_bench: %s\n", yf_error_format(&err));
            return 2;
        }
        printf("mnist_items=%zu\nmnist_queries=%zu\nmnist_bits=%d\n", ix.n_db, ix.n_query,
               ix.bits);
        measure("mnist", ix.db, ix.n_db, ix.query, ix.n_query, ix.bits, radius);
        yf_hash_index_free(&ix);
    }
    if (synthetic) {
        uint64_t s = 42, mask = bits == 64 ? ~UINT64_C(0) : (UINT64_C(1) << bits) - 1;
        uint64_t *db = malloc(synthetic * sizeof *db), q[1000];
        if (!db)
            return 1;
        for (size_t i = 0; i < synthetic; i++)
            db[i] = next(&s) & mask;
        for (int i = 0; i < 1000; i++) /* queries near stored codes */
            q[i] = db[next(&s) % synthetic] ^ (UINT64_C(1) << (next(&s) % bits));
        printf("synthetic_items=%zu\nsynthetic_bits=%d\n", synthetic, bits);
        measure("synthetic", db, synthetic, q, 1000, bits, radius);
        free(db);
    }
    return 0;
}
