/* Helpers shared by the Check suites (one suite per module).
 *
 * The suites find their inputs through $top_srcdir (read-only under
 * make distcheck) and write only below the current directory, each into a
 * folder named after itself ("test_data.tmp/..."), so suites may run in
 * parallel. Every helper asserts on failure, so a test reads as a list of
 * steps:
 *
 *     yf_spec *s;
 *     yf_model *m = tu_model(TU_SPEC("...layers..."), &s);   // 1 thread
 *     tu_fill(tu_input(m), 4 * 5, 1);
 *     yf__run(m, &m->train, 4);
 */
#ifndef YAFLOW_TESTUTIL_H
#define YAFLOW_TESTUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, open_memstream */
#endif

#include "internal.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* The suites run with the kernels the command line would choose. */
__attribute__((constructor)) static void tu_choose_kernels(void)
{
    yf_error err = {0};
    yf_runtime_choose_kernels(&err);
}

/* $top_srcdir / $top_builddir from make check, "." when run by hand. */
static inline const char *tu_srcdir(void)
{
    const char *s = getenv("top_srcdir");
    return s && *s ? s : ".";
}

static inline const char *tu_builddir(void)
{
    const char *s = getenv("top_builddir");
    return s && *s ? s : ".";
}

/* ---- files ------------------------------------------------------------------ */

static inline void tu_mkdirs(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            ck_assert_msg(mkdir(buf, 0777) == 0 || errno == EEXIST, "mkdir %s: %s", buf,
                          strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
}

static inline int tu__rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

/* rm -rf path (a folder this suite made below the current directory) */
static inline void tu_rmtree(const char *path)
{
    nftw(path, tu__rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh, empty work folder below the current directory. */
static inline void tu_workdir(const char *path)
{
    tu_rmtree(path);
    tu_mkdirs(path);
}

static inline void tu_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    ck_assert_msg(fwrite(data, 1, len, f) == len, "short write to %s", path);
    ck_assert_msg(fclose(f) == 0, "cannot close %s", path);
}

static inline void tu_write_gz(const char *path, const void *data, size_t len)
{
    gzFile f = gzopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_msg(len == 0 || gzwrite(f, data, (unsigned)len) == (int)len,
                  "short write to %s", path);
    ck_assert_msg(gzclose(f) == Z_OK, "cannot close %s", path);
}

/* The whole file, NUL-terminated, or NULL if it cannot be read. Free it. */
static inline char *tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (!got)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

static inline bool tu_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* An IDX file of unsigned bytes: dims[0..ndim), data of dims' product bytes
 * (plus `extra` trailing bytes of data when it is longer), gzipped if gz. */
static inline void tu_write_idx(const char *path, int ndim, const uint32_t *dims,
                                const uint8_t *data, size_t n_data, bool gz)
{
    size_t len = 4 + 4 * (size_t)ndim + n_data;
    uint8_t *buf = malloc(len);
    buf[0] = 0, buf[1] = 0, buf[2] = 0x08, buf[3] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++)
        for (int b = 0; b < 4; b++)
            buf[4 + 4 * d + b] = (uint8_t)(dims[d] >> (24 - 8 * b));
    if (n_data)
        memcpy(buf + 4 + 4 * ndim, data, n_data);
    if (gz)
        tu_write_gz(path, buf, len);
    else
        tu_write(path, buf, len);
    free(buf);
}

/* A small MNIST-shaped data set in dir: n_train and n_test images of
 * side x side pixels showing one of 4 bar patterns (the label), with a
 * little deterministic noise. File names as data.source: mnist expects, or
 * gzipped ones (".gz") as fashion_mnist does. */
static inline void tu_write_dataset(const char *dir, uint32_t n_train, uint32_t n_test,
                                    uint32_t side, bool gz)
{
    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    tu_mkdirs(dir);
    for (int split = 0; split < 2; split++) {
        uint32_t n = split ? n_test : n_train;
        uint8_t *img = malloc((size_t)n * side * side), *lab = malloc(n);
        uint32_t h = 2166136261u ^ (uint32_t)split;
        for (uint32_t i = 0; i < n; i++) {
            lab[i] = (uint8_t)(i % 4);
            for (uint32_t r = 0; r < side; r++)
                for (uint32_t c = 0; c < side; c++) {
                    h = h * 16777619u ^ (i * 131 + r * 17 + c);
                    bool on = lab[i] == 0 ? r % 2 == 0
                            : lab[i] == 1 ? c % 2 == 0
                            : lab[i] == 2 ? r < side / 2
                                          : c < side / 2;
                    img[((size_t)i * side + r) * side + c] =
                        (uint8_t)((on ? 200 : 30) + (h >> 27));
                }
        }
        char path[1100];
        uint32_t idims[3] = {n, side, side}, ldims[1] = {n};
        snprintf(path, sizeof path, "%s/%s%s", dir, names[2 * split], gz ? ".gz" : "");
        tu_write_idx(path, 3, idims, img, (size_t)n * side * side, gz);
        snprintf(path, sizeof path, "%s/%s%s", dir, names[2 * split + 1], gz ? ".gz" : "");
        tu_write_idx(path, 1, ldims, lab, n, gz);
        free(img);
        free(lab);
    }
}

/* ---- specs and models -------------------------------------------------------- */

/* A spec parsed from text; asserts it is valid. */
static inline yf_spec *tu_spec(const char *yaml, const char *const *ov, int n_ov)
{
    yf_error err = {0};
    yf_spec *s = yf_spec_parse(yaml, strlen(yaml), "test.yaml", ov, n_ov, &err);
    ck_assert_msg(s != NULL, "spec rejected: %s\n%s", yf_error_format(&err), yaml);
    return s;
}

/* A model with `threads` threads from spec text; the spec is returned in
 * *spec and must outlive the model. */
static inline yf_model *tu_model_t(const char *yaml, int threads, yf_spec **spec)
{
    yf_error err = {0};
    *spec = tu_spec(yaml, NULL, 0);
    yf_model *m = yf_model_new(*spec, threads, &err);
    ck_assert_msg(m != NULL, "model rejected: %s\n%s", yf_error_format(&err), yaml);
    return m;
}

static inline yf_model *tu_model(const char *yaml, yf_spec **spec)
{
    return tu_model_t(yaml, 1, spec);
}

static inline void tu_free(yf_model *m, yf_spec *s)
{
    yf_model_free(m);
    yf_spec_free(s);
}

/* Labels r % classes for the first rows of a graph with labels. */
static inline void tu_fill_labels(yf__graph *g, int rows, int classes)
{
    if (g->label_node < 0)
        return;
    int32_t *y = (int32_t *)g->node[g->label_node].buf;
    for (int r = 0; r < rows; r++)
        y[r] = r % classes;
}

/* The training graph's input buffer: (max_rows, input size) floats. */
static inline float *tu_input(yf_model *m)
{
    return m->train.node[m->train.input_node].buf;
}

/* Deterministic values in (0.05, 0.95), different for each salt. */
static inline void tu_fill(float *x, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; i++) {
        double v = (double)(i + 1) * 0.6180339887498949 + salt * 0.3819660112501051;
        x[i] = (float)(0.05 + 0.9 * (v - floor(v)));
    }
}

/* Σ weight · value over the graph's loss terms, as training minimises it. */
static inline double tu_loss(const yf__graph *g)
{
    double total = 0;
    for (int i = 0; i < g->n_loss; i++) {
        const yf__gnode *n = &g->node[g->loss_node[i]];
        total += (double)n->weight * n->buf[0];
    }
    return total;
}

/* Runs `rows` rows of the training graph (forward and backward). */
static inline double tu_step(yf_model *m, int rows)
{
    yf__run(m, &m->train, rows);
    return tu_loss(&m->train);
}

/* Index of the parameter called name, or -1. */
static inline int tu_param(const yf_model *m, const char *name)
{
    for (int p = 0; p < m->n_params; p++)
        if (!strcmp(m->params[p].name, name))
            return p;
    return -1;
}

/* ---- running suites ----------------------------------------------------------- */

/* Runs the suite with Check's defaults (CK_FORK from the environment: fork
 * mode unless CK_FORK=no) and returns main's exit status. */
static inline int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
