/* safetensors checkpoints (checkpoint.c, json.c): yf__checkpoint_load into
 * a small model, with and without the optimizer state and the config
 * check (chosen by the input's length); yf_model_init_from, which reads
 * the same file as the init source of a second model; and
 * yf__checkpoint_progress, the record of where training stood that
 * `train --resume` reads. A load that fails must leave the model exactly as
 * it was; one that succeeds is undone before the next input. */
#include "fuzz.h"

typedef struct {
    yf_spec *spec;
    yf_model *m;
    float *saved; /* params, m and v blocks */
    uint64_t step;
} held;

static held a, b;

static void hold(held *h, const char *yaml)
{
    yf_error err = {0};
    h->spec = yf_spec_parse(yaml, strlen(yaml), "fuzz-ckpt.yaml", NULL, 0, &err);
    h->m = h->spec ? yf_model_new(h->spec, 1, &err) : NULL;
    if (!h->m) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", yf_error_format(&err));
        abort();
    }
    size_t n = h->m->param_floats;
    h->saved = malloc(3 * n * sizeof(float));
    memcpy(h->saved, h->m->param_block, n * sizeof(float));
    memcpy(h->saved + n, h->m->m_block, n * sizeof(float));
    memcpy(h->saved + 2 * n, h->m->v_block, n * sizeof(float));
    h->step = h->m->step;
}

/* Whether the model is as held; puts it back either way. */
static int unchanged(held *h)
{
    size_t n = h->m->param_floats, bytes = n * sizeof(float);
    int same = !memcmp(h->saved, h->m->param_block, bytes) &&
               !memcmp(h->saved + n, h->m->m_block, bytes) &&
               !memcmp(h->saved + 2 * n, h->m->v_block, bytes) && h->step == h->m->step;
    memcpy(h->m->param_block, h->saved, bytes);
    memcpy(h->m->m_block, h->saved + n, bytes);
    memcpy(h->m->v_block, h->saved + 2 * n, bytes);
    h->m->step = h->step;
    return same;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *path = fz_file(NULL, 0, ".safetensors");
    hold(&a, FZ_CKPT_SPEC(""));
    char yaml[4096], init[1024];
    snprintf(init, sizeof init, "init: {from: '%s', layers: [enc, conv, bn]}\n", path);
    snprintf(yaml, sizeof yaml, FZ_CKPT_SPEC("%s"), init);
    hold(&b, yaml);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file(data, size, ".safetensors");
    yf_error err = {0};
    int rc = yf__checkpoint_load(a.m, path, (size & 1) == 0, (size & 2) != 0, &err);
    fz_check(rc, &err, "yf__checkpoint_load");
    if (!unchanged(&a) && rc) {
        fprintf(stderr, "a failed load changed the model: %s\n", err.msg);
        abort();
    }
    yf_error err2 = {0};
    rc = yf_model_init_from(b.m, &err2);
    fz_check(rc, &err2, "yf_model_init_from");
    if (!unchanged(&b) && rc) {
        fprintf(stderr, "a failed init changed the model: %s\n", err2.msg);
        abort();
    }
    yf_error err3 = {0};
    yf__progress pr;
    rc = yf__checkpoint_progress(path, &pr, &err3);
    fz_check(rc, &err3, "yf__checkpoint_progress");
    if (rc == 0) {
        if (!pr.metrics || pr.epoch < 0 || pr.best_epoch < 0 || pr.best_epoch > pr.epoch)
            abort();
        free(pr.metrics);
    } else if (pr.metrics) {
        abort(); /* nothing to free after a failure */
    }
    return 0;
}
