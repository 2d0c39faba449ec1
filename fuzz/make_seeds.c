/* make_seeds: writes the binary seeds of the fuzz corpus (fuzz/corpus/):
 * checkpoints of fuzz_checkpoint's model, hash indexes and IDX files, plain
 * and gzip. The YAML seeds (specs, experiments) are written by hand.
 *
 *     make fuzz-seeds        (runs ./fuzz/make_seeds $(srcdir)/fuzz/corpus)
 */
#include "fuzz.h"

#include <sys/stat.h>
#include <zlib.h>

static const char *root;

static void path_of(char *buf, size_t cap, const char *target, const char *name)
{
    snprintf(buf, cap, "%s/%s", root, target);
    mkdir(buf, 0777);
    snprintf(buf, cap, "%s/%s/%s", root, target, name);
}

static void die(yf_error *err)
{
    fprintf(stderr, "make_seeds: %s\n", yf_error_format(err));
    exit(1);
}

static void write_idx(const char *name, const unsigned char *hdr, size_t hlen, size_t body,
                      int gz)
{
    char path[1024];
    path_of(path, sizeof path, "idx", name);
    unsigned char *buf = malloc(hlen + body);
    memcpy(buf, hdr, hlen);
    for (size_t i = 0; i < body; i++)
        buf[hlen + i] = (unsigned char)(i * 37 % 256);
    if (gz) {
        gzFile f = gzopen(path, "wb9");
        if (!f || gzwrite(f, buf, (unsigned)(hlen + body)) != (int)(hlen + body) ||
            gzclose(f) != Z_OK)
            exit(1);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, hlen + body, f) != hlen + body || fclose(f))
            exit(1);
    }
    free(buf);
}

static void checkpoints(void)
{
    yf_error err = {0};
    const char *yaml = FZ_CKPT_SPEC("");
    yf_spec *s = yf_spec_parse(yaml, strlen(yaml), "fuzz-ckpt.yaml", NULL, 0, &err);
    yf_model *m = s ? yf_model_new(s, 1, &err) : NULL;
    if (!m)
        die(&err);
    /* moments and a step that are not all zero */
    for (size_t i = 0; i < m->param_floats; i++)
        m->m_block[i] = 0.001f * (float)i, m->v_block[i] = 1e-6f * (float)i;
    m->step = 12;
    char path[1024];
    path_of(path, sizeof path, "checkpoint", "adam.seed");
    if (yf_checkpoint_save(m, path, &err))
        die(&err);
    /* as yaflow train writes them: where training stood, for --resume */
    yf__progress pr = {.epoch = 2, .position = 96, .loss_sum = 1.5, .best = 0.25,
                       .best_epoch = 1, .finished = false,
                       .metrics = "epoch,train_loss,valid_loss\n1,0.5,0.25\n2,0.4,0.3\n"};
    path_of(path, sizeof path, "checkpoint", "progress.seed");
    if (yf__checkpoint_save(m, path, &pr, &err))
        die(&err);
    yf_model_free(m);
    yf_spec_free(s);
    /* the same layers trained with SGD: no moments */
    const char *sgd_yaml = FZ_CKPT_SPEC("");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", sgd_yaml);
    char *adam = strstr(buf, "{type: adam}");
    memcpy(adam, "{type: sgd} ", 12);
    s = yf_spec_parse(buf, strlen(buf), "fuzz-ckpt.yaml", NULL, 0, &err);
    m = s ? yf_model_new(s, 1, &err) : NULL;
    if (!m)
        die(&err);
    path_of(path, sizeof path, "checkpoint", "sgd.seed");
    if (yf_checkpoint_save(m, path, &err))
        die(&err);
    yf_model_free(m);
    yf_spec_free(s);
}

static void hash_index(const char *name, int bits, int classes, size_t n_db, size_t n_q)
{
    yf_hash_index ix = {.bits = bits, .classes = classes, .n_db = n_db, .n_query = n_q,
                        .saturation = 0.25};
    snprintf(ix.layer, sizeof ix.layer, "code");
    snprintf(ix.model, sizeof ix.model, "hashing-ae");
    ix.db = calloc(n_db + 1, 8), ix.query = calloc(n_q + 1, 8);
    ix.db_labels = calloc(n_db + 1, 1), ix.query_labels = calloc(n_q + 1, 1);
    uint64_t mask = bits == 64 ? ~UINT64_C(0) : (UINT64_C(1) << bits) - 1;
    for (size_t i = 0; i < n_db; i++)
        ix.db[i] = (i * UINT64_C(0x9E3779B97F4A7C15)) & mask, ix.db_labels[i] = i % classes;
    for (size_t i = 0; i < n_q; i++)
        ix.query[i] = ix.db[i % n_db] ^ (i & 1), ix.query_labels[i] = (i + 1) % classes;
    char path[1024];
    path_of(path, sizeof path, "hash_index", name);
    yf_error err = {0};
    if (yf_hash_index_save(&ix, path, &err))
        die(&err);
    yf_hash_index_free(&ix);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS-DIR\n");
        return 2;
    }
    root = argv[1];
    mkdir(root, 0777);
    checkpoints();
    hash_index("small.index", 8, 3, 12, 3);
    hash_index("bits64.index", 64, 10, 20, 5);
    hash_index("bits1.index", 1, 2, 5, 2);
    /* images: 3 of 4 × 5; labels: 3 */
    static const unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5};
    static const unsigned char lab[] = {0, 0, 8, 1, 0, 0, 0, 3};
    write_idx("images.idx", img, sizeof img, 3 * 4 * 5, 0);
    write_idx("labels.idx", lab, sizeof lab, 3, 0);
    write_idx("images.idx.gz", img, sizeof img, 3 * 4 * 5, 1);
    write_idx("labels.idx.gz", lab, sizeof lab, 3, 1);
    return 0;
}
