/* The library's allocations, all through these, so that a test can make
 * the Nth of them fail (SQLite's approach) and check that every failure is
 * reported as YF_ENOMEM and nothing leaks (save src/gemm.c's packing
 * scratch, whose failure only sends a GEMM to BLIS). In normal use they
 * are malloc, calloc, realloc and strdup plus one relaxed atomic counter. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static long fail_at;       /* the allocation number that fails; 0: none */
static bool fail_persist; /* and every one after it */
static long count;         /* allocations so far */

void yf__alloc_fail(long nth, bool persist)
{
    __atomic_store_n(&count, 0, __ATOMIC_RELAXED);
    fail_persist = persist;
    __atomic_store_n(&fail_at, nth, __ATOMIC_RELAXED);
}

long yf__alloc_count(void) { return __atomic_load_n(&count, __ATOMIC_RELAXED); }

static bool refuse(void)
{
    long at = __atomic_load_n(&fail_at, __ATOMIC_RELAXED);
    long k = __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return at > 0 && (k == at || (fail_persist && k > at));
}

void *yf__malloc(size_t n) { return refuse() ? NULL : malloc(n); }

void *yf__calloc(size_t n, size_t size) { return refuse() ? NULL : calloc(n, size); }

void *yf__realloc(void *p, size_t n) { return refuse() ? NULL : realloc(p, n); }

char *yf__strdup(const char *s) { return refuse() ? NULL : strdup(s); }

char *yf__strndup(const char *s, size_t n) { return refuse() ? NULL : strndup(s, n); }

void *yf__aligned_alloc(size_t align, size_t n)
{
    return refuse() ? NULL : aligned_alloc(align, n);
}
