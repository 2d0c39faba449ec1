/* The fuzzers' inputs in the normal build (make fuzz runs them with
 * sanitizers; see docs/reliability.md):
 *  - every seed of fuzz/corpus/ still reads as it should, so that the
 *    fuzzers start from inputs that reach deep into the readers (a format
 *    change that makes the seeds stale fails here: make fuzz-seeds);
 *  - every input of fuzz/regressions/ (the crashes the fuzzers found) gives
 *    exactly the error listed below, and every one is listed. */
#include "testutil.h"
#include "fuzz.h"

#include <dirent.h>

#define WORK "test_fuzz.tmp"

/* Names of the files of folder fuzz/<sub>, sorted; returns how many. */
static int list(const char *sub, char names[][256], int cap)
{
    char path[1024];
    snprintf(path, sizeof path, "%.700s/fuzz/%.250s", tu_srcdir(), sub);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            ck_assert_int_lt(n, cap);
            snprintf(names[n++], 256, "%s", e->d_name);
        }
    closedir(d);
    qsort(names, n, 256, (int (*)(const void *, const void *))strcmp);
    return n;
}

static char *seed(const char *target, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%.600s/fuzz/corpus/%.60s/%.250s", tu_srcdir(), target, name);
    char *data = tu_read(path, len);
    ck_assert_msg(data, "cannot read %s", path);
    return data;
}

/* ---- how each target reads an input (fuzz/fuzz_<target>.c) ------------------------ */

static int read_spec(const char *data, size_t len, yf_error *err)
{
    yf_spec *s = yf_spec_parse(data, len, "fuzz.yaml", NULL, 0, err);
    yf_model *m = s ? yf_model_new(s, 1, err) : NULL;
    int rc = m ? 0 : err->code;
    yf_model_free(m);
    yf_spec_free(s);
    return rc;
}

static int read_experiment(const char *data, size_t len, yf_error *err)
{
    tu_mkdirs(WORK "/exp");
    tu_write(WORK "/exp/ae.yaml", FZ_EXP_AE, strlen(FZ_EXP_AE));
    tu_write(WORK "/exp/cls.yaml", FZ_EXP_CLS, strlen(FZ_EXP_CLS));
    tu_write(WORK "/exp/exp.yaml", data, len);
    return yf__experiment_check(WORK "/exp/exp.yaml", err);
}

static int read_idx(const char *data, size_t len, int ndim, yf_error *err)
{
    tu_mkdirs(WORK);
    tu_write(WORK "/input.idx", data, len);
    yf__idx idx;
    int rc = yf__idx_read(WORK "/input.idx", ndim, &idx, err);
    yf__idx_free(&idx);
    return rc;
}

static int read_hash_index(const char *data, size_t len, yf_error *err)
{
    tu_mkdirs(WORK);
    tu_write(WORK "/input.index", data, len); /* (the target fixes the CRC; seeds have it right) */
    yf_hash_index ix;
    int rc = yf_hash_index_load(&ix, WORK "/input.index", err);
    yf_hash_index_free(&ix);
    return rc;
}

static yf_model *ckpt_model(yf_spec **s)
{
    const char *yaml = FZ_CKPT_SPEC("");
    yf_error err = {0};
    *s = yf_spec_parse(yaml, strlen(yaml), "fuzz-ckpt.yaml", NULL, 0, &err);
    yf_model *m = *s ? yf_model_new(*s, 1, &err) : NULL;
    ck_assert_msg(m, "%s", yf_error_format(&err));
    return m;
}

static int read_checkpoint(const char *data, size_t len, int with_optim, bool same_config,
                           yf_error *err)
{
    tu_mkdirs(WORK);
    tu_write(WORK "/input.safetensors", data, len);
    yf_spec *s;
    yf_model *m = ckpt_model(&s);
    int rc = yf__checkpoint_load(m, WORK "/input.safetensors", with_optim, same_config, err);
    yf_model_free(m);
    yf_spec_free(s);
    return rc;
}

/* ---- the seeds ---------------------------------------------------------------------- */

START_TEST(test_seeds_spec)
{
    char names[64][256];
    int n = list("corpus/spec", names, 64);
    ck_assert_int_ge(n, 10);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        char *text = seed("spec", names[i], &len);
        yf_error err = {0};
        ck_assert_msg(read_spec(text, len, &err) == 0, "%s: %s", names[i], yf_error_format(&err));
        free(text);
    }
}
END_TEST

START_TEST(test_seeds_experiment)
{
    char names[64][256];
    int n = list("corpus/experiment", names, 64);
    ck_assert_int_ge(n, 3);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        char *text = seed("experiment", names[i], &len);
        yf_error err = {0};
        ck_assert_msg(read_experiment(text, len, &err) == 0, "%s: %s", names[i],
                      yf_error_format(&err));
        free(text);
    }
}
END_TEST

START_TEST(test_seeds_idx)
{
    char names[64][256];
    int n = list("corpus/idx", names, 64);
    ck_assert_int_ge(n, 4);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        char *data = seed("idx", names[i], &len);
        int ndim = !strncmp(names[i], "labels", 6) ? 1 : 3;
        yf_error err = {0};
        ck_assert_msg(read_idx(data, len, ndim, &err) == 0, "%s: %s", names[i],
                      yf_error_format(&err));
        /* and as the other kind, refused by its dimensions */
        yf_error err2 = {0};
        ck_assert_int_eq(read_idx(data, len, 4 - ndim, &err2), YF_EDATA);
        char want[64];
        snprintf(want, sizeof want, "IDX file has %d dimensions, expected %d", ndim, 4 - ndim);
        ck_assert_msg(strstr(err2.msg, want), "%s: %s", names[i], err2.msg);
        free(data);
    }
}
END_TEST

START_TEST(test_seeds_hash_index)
{
    char names[64][256];
    int n = list("corpus/hash_index", names, 64);
    ck_assert_int_ge(n, 2);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        char *data = seed("hash_index", names[i], &len);
        yf_error err = {0};
        ck_assert_msg(read_hash_index(data, len, &err) == 0, "%s: %s", names[i],
                      yf_error_format(&err));
        free(data);
    }
}
END_TEST

START_TEST(test_seeds_checkpoint)
{
    char names[64][256];
    int n = list("corpus/checkpoint", names, 64);
    ck_assert_int_ge(n, 3);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        char *data = seed("checkpoint", names[i], &len);
        yf_error err = {0};
        int rc = read_checkpoint(data, len, 1, false, &err);
        if (!strcmp(names[i], "sgd.seed")) {
            /* another optimizer's state: its parameters alone load */
            ck_assert_int_eq(rc, YF_ECKPT);
            ck_assert_msg(strstr(err.msg, "it holds the state of optimizer 'sgd', but the model "
                                          "trains with 'adam'"), "%s", err.msg);
            yf_error err2 = {0};
            rc = read_checkpoint(data, len, 0, false, &err2);
            ck_assert_msg(rc == 0, "%s: %s", names[i], yf_error_format(&err2));
        } else {
            ck_assert_msg(rc == 0, "%s: %s", names[i], yf_error_format(&err));
        }
        yf__progress pr;
        yf_error err3 = {0};
        rc = yf__checkpoint_progress(WORK "/input.safetensors", &pr, &err3);
        if (!strcmp(names[i], "progress.seed")) {
            ck_assert_msg(rc == 0, "%s", yf_error_format(&err3));
            ck_assert_int_eq(pr.epoch, 2);
            ck_assert_uint_eq(pr.position, 96);
            free(pr.metrics);
        } else {
            ck_assert_int_eq(rc, YF_ECKPT);
        }
        free(data);
    }
}
END_TEST

/* ---- the crashes found -------------------------------------------------------------- */

/* fuzz/regressions/<target>/<file>: the error its reader must give now
 * (code, and a part of the message). */
static const struct {
    const char *target, *file;
    yf_status code;
    const char *msg;
} regressions[] = {
    {NULL, NULL, YF_OK, NULL}, /* (none found yet) */
};

static int read_any(const char *target, const char *data, size_t len, yf_error *err)
{
    if (!strcmp(target, "spec"))
        return read_spec(data, len, err);
    if (!strcmp(target, "experiment"))
        return read_experiment(data, len, err);
    if (!strcmp(target, "idx")) {
        int rc = read_idx(data, len, 3, err);
        return rc == 0 ? 0 : rc == YF_EDATA && strstr(err->msg, "expected 3") ?
                                  read_idx(data, len, 1, err) : rc;
    }
    if (!strcmp(target, "hash_index"))
        return read_hash_index(data, len, err);
    if (!strcmp(target, "checkpoint"))
        return read_checkpoint(data, len, (len & 1) == 0, (len & 2) != 0, err);
    ck_abort_msg("no target '%s'", target);
    return 0;
}

START_TEST(test_regressions)
{
    static const char *const targets[] = {"spec", "experiment", "idx", "hash_index",
                                          "checkpoint"};
    int checked = 0;
    for (size_t t = 0; t < YF__ARRAY_LEN(targets); t++) {
        char sub[64], names[256][256];
        snprintf(sub, sizeof sub, "regressions/%s", targets[t]);
        int n = list(sub, names, 256);
        for (int i = 0; i < n; i++) {
            int k = -1;
            for (size_t j = 0; j < YF__ARRAY_LEN(regressions); j++)
                if (regressions[j].target && !strcmp(regressions[j].target, targets[t]) &&
                    !strcmp(regressions[j].file, names[i]))
                    k = (int)j;
            ck_assert_msg(k >= 0, "fuzz/%s/%s: not listed in tests/test_fuzz.c", sub, names[i]);
            char path[1024];
            snprintf(path, sizeof path, "%.600s/fuzz/%.60s/%.250s", tu_srcdir(), sub, names[i]);
            size_t len = 0;
            char *data = tu_read(path, &len);
            ck_assert_msg(data, "cannot read %s", path);
            yf_error err = {0};
            int rc = read_any(targets[t], data, len, &err);
            ck_assert_msg(rc == (int)regressions[k].code, "%s: code %d, expected %d: %s", path,
                          rc, (int)regressions[k].code, err.msg);
            ck_assert_msg(!regressions[k].msg || strstr(err.msg, regressions[k].msg),
                          "%s: '%s' does not say '%s'", path, err.msg, regressions[k].msg);
            free(data);
            checked++;
        }
    }
    /* every listed one exists */
    for (size_t j = 0; j < YF__ARRAY_LEN(regressions); j++)
        if (regressions[j].target) {
            char path[1024];
            snprintf(path, sizeof path, "%.600s/fuzz/regressions/%.60s/%.250s", tu_srcdir(),
                     regressions[j].target, regressions[j].file);
            ck_assert_msg(tu_exists(path), "%s is listed but missing", path);
        }
    (void)checked;
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuzz");
    TCase *tc = tcase_create("fuzz");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_seeds_spec);
    tcase_add_test(tc, test_seeds_experiment);
    tcase_add_test(tc, test_seeds_idx);
    tcase_add_test(tc, test_seeds_hash_index);
    tcase_add_test(tc, test_seeds_checkpoint);
    tcase_add_test(tc, test_regressions);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    int rc = failed ? 1 : 0;
    if (!failed)
        tu_rmtree(WORK);
    return rc;
}
