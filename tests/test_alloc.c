/* Fault injection, as SQLite does it: the Nth allocation of the library
 * fails, for every N its work reaches, through parsing a spec, compiling
 * the model, loading data, a training step, a checkpoint save and load,
 * an evaluation, a whole training run and opening the run again. Each
 * time the library must report YF_ENOMEM ("out of memory ...") and not
 * crash; a model that was built must still train once allocations work
 * again; and everything is freed (LeakSanitizer checks that under make
 * check in an ASan build). */
#include "testutil.h"

#define DIR "test_alloc.tmp"

static const char spec_text[] =
    "name: alloc-ae\n"
    "seed: 3\n"
    "data: {source: mnist, dir: " DIR "/data, valid: 32}\n"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  layers:\n"
    "    - {name: noisy, type: gaussian_noise, stddev: 0.1}\n"
    "    - {name: hidden, type: dense, units: 16, activation: elu}\n"
    "    - {name: drop, type: dropout, rate: 0.1}\n"
    "    - {name: coding, type: dense, units: 8, activation: sigmoid}\n"
    "    - {name: decode, type: dense, units: 16, activation: elu, weights: coding.W^T}\n"
    "    - {name: out, type: dense, units: 64, activation: sigmoid, weights: hidden.W^T}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n"
    "    - {type: kl_sparsity, input: coding, target: 0.1, weight: 0.01}\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: 1}\n";

/* The library's work from a spec's text to a reopened run. Returns 0, or
 * the error code with err filled. *usable: a model existed when it failed
 * and trained a step afterwards, with allocations working again; *made:
 * the allocations asked for. */
static int scenario(yf_error *err, bool *usable, long *made)
{
    *usable = true;
    const char *ov[] = {"train.optimizer.learning_rate=0.02"};
    yf_spec *s = yf_spec_parse(spec_text, sizeof spec_text - 1, "alloc.yaml", ov, 1, err);
    yf_model *m = s ? yf_model_new(s, 1, err) : NULL;
    yf_dataset *d = m ? yf_dataset_load(s, err) : NULL;
    int rc = d ? 0 : err->code;
    size_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = (size_t)i * 5;
    double loss;
    if (!rc)
        rc = yf_train_step(m, d, idx, 32, &loss, err);
    if (!rc)
        rc = yf_checkpoint_save(m, DIR "/ck.safetensors", err);
    if (!rc)
        rc = yf_checkpoint_load(m, DIR "/ck.safetensors", 1, err);
    yf_metric met[8];
    if (!rc && yf_evaluate(m, d, YF_SPLIT_VALID, met, 8, err) < 0)
        rc = err->code;
    if (!rc)
        rc = yf_train(m, d, &(yf_train_opts){.out_dir = DIR "/run", .overwrite = 1}, err);
    yf_run r;
    if (!rc && !(rc = yf_run_open(&r, DIR "/run", 1, YF_RUN_DATA, err)))
        yf_run_close(&r);
    *made = yf__alloc_count();
    yf__alloc_fail(0, false);
    if (rc && m && d) { /* what failed left the model usable */
        yf_error again = {0};
        *usable = yf_train_step(m, d, idx, 32, &loss, &again) == 0 && isfinite(loss);
    }
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(s);
    return rc;
}

/* Fails allocation N (persist: N and all later ones) for N = 1, 2, ...
 * until the scenario makes fewer than N allocations. */
static void fail_each(bool persist)
{
    tu_workdir(DIR);
    tu_write_dataset(DIR "/data", 192 + 32, 32, 8, false);
    long n = 1, failures = 0;
    for (;; n++) {
        yf_error err = {0};
        bool usable;
        yf__alloc_fail(n, persist);
        long made;
        int rc = scenario(&err, &usable, &made);
        if (made < n) { /* allocation n was never asked for: all went well */
            ck_assert_msg(rc == 0, "no allocation failed, yet: %s", yf_error_format(&err));
            break;
        }
        ck_assert_msg(rc == YF_ENOMEM && strstr(err.msg, "out of memory"),
                      "allocation %ld failed%s: got %s (%d): %s", n, persist ? " (and later)" : "",
                      yf_status_name(err.code), rc, yf_error_format(&err));
        ck_assert_msg(usable, "allocation %ld failed: the model no longer trains", n);
        failures++;
    }
    printf("%s: %ld allocations, each failed in turn: every failure reported as YF_ENOMEM\n",
           persist ? "failing from the Nth on" : "failing the Nth only", n - 1);
    ck_assert_int_eq(failures, n - 1);
    ck_assert_msg(n > 200, "only %ld allocations: the hook is not reached", n - 1);
}

START_TEST(test_fail_nth) { fail_each(false); }
END_TEST

START_TEST(test_fail_from_nth) { fail_each(true); }
END_TEST

int main(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, test_fail_nth);
    tcase_add_test(tc, test_fail_from_nth);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    if (rc == EXIT_SUCCESS)
        tu_rmtree(DIR);
    return rc;
}
