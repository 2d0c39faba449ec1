/* corelat [A B] -- the round trip of one cache line between two cores (by
 * default 0 and 1), in nanoseconds: two threads pinned to them hand a
 * counter back and forth 200,000 times. On this machine's virtual CPUs it
 * is either about 70 ns (the two on one core complex, sharing its L3) or
 * about 400 ns (the host has put them apart); which one changes by itself
 * from minute to minute, and a two-thread training step, whose threads
 * share BLIS's packed blocks, runs at 1.8 or at 1.05 times one thread
 * accordingly. bench-scaling.sh prints it beside every round. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { TRIPS = 200000 };
static _Alignas(64) atomic_int flag;
static int core_b;

static int pin(int core)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *pong(void *arg)
{
    (void)arg;
    int bad = pin(core_b) != 0; /* plays anyway, or main would wait for ever */
    for (int i = 0; i < TRIPS; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&flag, 2 * i + 2, memory_order_release);
    }
    return bad ? (void *)1 : NULL;
}

int main(int argc, char **argv)
{
    int a = argc == 3 ? atoi(argv[1]) : 0;
    core_b = argc == 3 ? atoi(argv[2]) : 1;
    if ((argc != 1 && argc != 3) || a < 0 || core_b < 0 || a == core_b) {
        fprintf(stderr, "usage: corelat [CORE_A CORE_B]\n");
        return 2;
    }
    if (pin(a)) {
        fprintf(stderr, "corelat: cannot run on core %d\n", a);
        return 2;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, pong, NULL)) {
        fprintf(stderr, "corelat: no second thread\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < TRIPS; i++) {
        atomic_store_explicit(&flag, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 2)
            ;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    void *rc;
    pthread_join(t, &rc);
    if (rc) {
        fprintf(stderr, "corelat: cannot run on core %d\n", core_b);
        return 2;
    }
    printf("%.0f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / TRIPS);
    return 0;
}
