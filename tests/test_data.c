/* data/: IDX files (plain and gzip) and data sets. Every file is written by
 * the tests below test_data.tmp/; bad files must be refused with YF_EDATA
 * and the file's name in the error. */
#include "testutil.h"

#define DIR "test_data.tmp"

static uint8_t pixels[6 * 3 * 2];

static void fill_pixels(void)
{
    for (size_t i = 0; i < sizeof pixels; i++)
        pixels[i] = (uint8_t)(i * 37 + 11);
}

/* Asserts that msg is want, or begins with it when want ends with "..."
 * (the rest depends on the zlib version or the installation); an '@' in
 * want stands for the current folder. */
static void says(const char *msg, const char *want)
{
    char cwd[1024], w[4096] = "";
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    for (const char *c = want; *c; c++)
        snprintf(w + strlen(w), sizeof w - strlen(w), *c == '@' ? "%s" : "%.1s",
                 *c == '@' ? cwd : c);
    size_t n = strlen(w);
    if (n > 3 && !strcmp(w + n - 3, "..."))
        ck_assert_msg(!strncmp(msg, w, n - 3), "got: %s\nwant: %s", msg, w);
    else
        ck_assert_str_eq(msg, w);
}

/* Reads path and asserts it is refused with YF_EDATA, and the message
 * "path: words" (see says). */
static void refused(const char *path, int ndim, const char *words)
{
    yf_error err = {0};
    yf__idx idx;
    int rc = yf__idx_read(path, ndim, &idx, &err);
    ck_assert_msg(rc == YF_EDATA, "%s: accepted (rc %d)", path, rc);
    ck_assert_int_eq(err.code, YF_EDATA);
    char want[2048];
    snprintf(want, sizeof want, "%s: %s", path, words);
    says(yf_error_format(&err), want);
    ck_assert(idx.data == NULL);
    ck_assert_int_eq(yf_status_exit_code(err.code), 2);
}

static void good_file(bool gz)
{
    fill_pixels();
    tu_workdir(DIR);
    const char *path = gz ? DIR "/good.gz" : DIR "/good";
    tu_write_idx(path, 3, (const uint32_t[]){6, 3, 2}, pixels, sizeof pixels, gz);
    yf_error err = {0};
    yf__idx idx;
    ck_assert_msg(yf__idx_read(path, 3, &idx, &err) == 0, "%s", yf_error_format(&err));
    ck_assert_int_eq(idx.ndim, 3);
    ck_assert_int_eq(idx.count, 6);
    ck_assert_int_eq(idx.item, 6);
    ck_assert_int_eq(idx.dims[1], 3);
    ck_assert_int_eq(idx.dims[2], 2);
    ck_assert(memcmp(idx.data, pixels, sizeof pixels) == 0);
    yf__idx_free(&idx);
    ck_assert(idx.data == NULL);

    const uint8_t labels[5] = {0, 9, 3, 3, 7};
    const char *lpath = gz ? DIR "/labels.gz" : DIR "/labels";
    tu_write_idx(lpath, 1, (const uint32_t[]){5}, labels, 5, gz);
    ck_assert_msg(yf__idx_read(lpath, 1, &idx, &err) == 0, "%s", yf_error_format(&err));
    ck_assert_int_eq(idx.count, 5);
    ck_assert_int_eq(idx.item, 1);
    ck_assert(memcmp(idx.data, labels, 5) == 0);
    yf__idx_free(&idx);
    tu_rmtree(DIR);
}

START_TEST(test_good_plain) { good_file(false); }
END_TEST

START_TEST(test_good_gzip) { good_file(true); }
END_TEST

/* Each bad file, plain and gzipped. */
START_TEST(test_bad_files)
{
    fill_pixels();
    tu_workdir(DIR);
    for (int gz = 0; gz < 2; gz++) {
        char path[256];
#define PATH(name) (snprintf(path, sizeof path, DIR "/%s%s", name, gz ? ".gz" : ""), path)
        /* 6 images promised, 5 present */
        tu_write_idx(PATH("truncated"), 3, (const uint32_t[]){6, 3, 2}, pixels,
                     sizeof pixels - 6, gz);
        refused(path, 3, gz ? "truncated or corrupt: the IDX header promises 52 bytes but the "
                              "gzip trailer records 46 uncompressed bytes"
                            : "truncated: the IDX header promises 6 examples of 6 bytes (36 "
                              "bytes) but only 30 bytes follow it");
        /* one byte more than promised */
        uint8_t more[sizeof pixels + 1];
        memcpy(more, pixels, sizeof pixels);
        more[sizeof pixels] = 1;
        tu_write_idx(PATH("trailing"), 3, (const uint32_t[]){6, 3, 2}, more, sizeof more, gz);
        refused(path, 3, "longer than its header says (6 items of 6 bytes)");
        /* a header promising all of MNIST over a few bytes: refused from the
         * file's length (the gzip trailer) before 47 MB are allocated */
        tu_write_idx(PATH("promise"), 3, (const uint32_t[]){60000, 28, 28}, pixels, 8, gz);
        refused(path, 3, gz ? "truncated: a gzip file of ..."
                            : "truncated: the IDX header promises 60000 examples of 784 bytes "
                              "(47040000 bytes) but only 8 bytes follow it");
        /* float data (type 0x0d) */
        uint8_t f32[] = {0, 0, 0x0d, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0};
        (gz ? tu_write_gz : tu_write)(PATH("float"), f32, sizeof f32);
        refused(path, 3, "not an unsigned-byte IDX file: magic number 00 00 0d 03, expected 00 00 "
                         "08 03");
        /* not IDX at all */
        const char *text = "P5\n28 28\n255\n....................";
        (gz ? tu_write_gz : tu_write)(PATH("pgm"), text, strlen(text));
        refused(path, 3, "not an unsigned-byte IDX file: magic number 50 35 0a 32, expected 00 00 "
                         "08 03");
        /* a label file where images are expected */
        tu_write_idx(PATH("labels"), 1, (const uint32_t[]){3}, pixels, 3, gz);
        refused(path, 3, "IDX file has 1 dimensions, expected 3 (images)");
        /* shorter than the magic number, header cut short, empty */
        (gz ? tu_write_gz : tu_write)(PATH("short"), "\0\0", 2);
        refused(path, 3, "not an IDX file: shorter than its 4-byte magic number");
        (gz ? tu_write_gz : tu_write)(PATH("header"), "\0\0\x08\x03\0\0\0\x06\0\0", 10);
        refused(path, 3, "truncated IDX header");
        (gz ? tu_write_gz : tu_write)(PATH("empty"), "", 0);
        refused(path, 3, "not an IDX file: shorter than its 4-byte magic number");
        /* a zero dimension, and sizes whose product wraps around size_t */
        tu_write_idx(PATH("zero"), 3, (const uint32_t[]){6, 0, 2}, NULL, 0, gz);
        refused(path, 3, "IDX dimension 2 has a nonsense size 0");
        tu_write_idx(PATH("huge"), 3, (const uint32_t[]){1u << 26, 1u << 26, 1u << 26}, NULL,
                     0, gz);
        refused(path, 3, "IDX header promises 302231454903657293676544 bytes, more than 1 TB");
#undef PATH
    }
    /* a gzip stream cut in the middle */
    uint8_t big[4096];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    tu_write_idx(DIR "/cut.gz", 3, (const uint32_t[]){16, 16, 16}, big, sizeof big, true);
    size_t len = 0;
    char *bytes = tu_read(DIR "/cut.gz", &len);
    ck_assert(bytes && len > 100);
    tu_write(DIR "/cut.gz", bytes, len / 2);
    free(bytes);
    refused(DIR "/cut.gz", 3, "truncated: the header promises 16 items of 256 bytes (4096 bytes) "
                              "but only ...");
    /* missing */
    refused(DIR "/no-such-file", 3, "cannot open: No such file or directory");
    tu_rmtree(DIR);
}
END_TEST

/* ---- data sets ------------------------------------------------------------- */

static const char spec_fmt[] = "name: d\n"
                               "data: {source: %s, dir: %s, valid: %s}\n"
                               "model:\n"
                               "  input: {name: x, shape: [%s]}\n"
                               "  layers: [{name: h, type: dense, units: 3}]\n"
                               "  loss: [{type: l2, params: [h.W]}]\n";

static yf_spec *data_spec(const char *source, const char *dir, const char *valid,
                          const char *shape, const char *const *ov, int n_ov)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, spec_fmt, source, dir, valid, shape);
    return tu_spec(yaml, ov, n_ov);
}

/* yf__gather into a two-node graph: images, and labels when y is given */
static void gather(const yf_dataset *d, yf_split split, const size_t *idx, int n, float *x,
                   int32_t *y)
{
    yf__gnode nodes[2];
    memset(nodes, 0, sizeof nodes);
    nodes[0].buf = x;
    nodes[1].buf = (float *)y;
    yf__graph g = {.node = nodes, .n = 2, .input_node = 0, .label_node = y ? 1 : -1};
    yf__gather(d, split, idx, n, &g);
}

START_TEST(test_dataset_load)
{
    tu_workdir(DIR);
    tu_write_dataset(DIR "/mnist", 40, 12, 4, false);
    yf_spec *s = data_spec("mnist", DIR "/mnist", "8", "16", NULL, 0);
    yf_error err = {0};
    yf_dataset *d = yf_dataset_load(s, &err);
    ck_assert_msg(d != NULL, "%s", yf_error_format(&err));
    ck_assert_int_eq(yf_dataset_count(d, YF_SPLIT_TRAIN), 32);
    ck_assert_int_eq(yf_dataset_count(d, YF_SPLIT_VALID), 8);
    ck_assert_int_eq(yf_dataset_count(d, YF_SPLIT_TEST), 12);
    ck_assert_int_eq(d->dim, 16);
    /* gathered as bytes / 255; validation rows are the training file's last */
    float out[2 * 16];
    size_t idx[2] = {3, 0};
    int32_t lab[2];
    gather(d, YF_SPLIT_VALID, idx, 2, out, lab);
    ck_assert_int_eq(lab[0], d->train_y.data[32 + 3]);
    ck_assert_int_eq(lab[1], d->train_y.data[32]);
    for (int j = 0; j < 16; j++) {
        ck_assert(out[j] == d->train_x.data[(32 + 3) * 16 + j] * (1.0f / 255.0f));
        ck_assert(out[16 + j] == d->train_x.data[32 * 16 + j] * (1.0f / 255.0f));
    }
    gather(d, YF_SPLIT_TEST, idx, 1, out, NULL);
    for (int j = 0; j < 16; j++)
        ck_assert(out[j] == d->test_x.data[3 * 16 + j] * (1.0f / 255.0f));
    yf_dataset_free(d);
    yf_spec_free(s);

    /* train_fraction keeps a part of the training split */
    const char *ov[] = {"data.train_fraction=0.25"};
    s = data_spec("mnist", DIR "/mnist", "8", "16", ov, 1);
    d = yf_dataset_load(s, &err);
    ck_assert_msg(d != NULL, "%s", yf_error_format(&err));
    ck_assert_int_eq(yf_dataset_count(d, YF_SPLIT_TRAIN), 8);
    ck_assert_int_eq(yf_dataset_count(d, YF_SPLIT_VALID), 8);
    yf_dataset_free(d);
    yf_spec_free(s);
    tu_rmtree(DIR);
}
END_TEST

/* data.train_fraction and train_count take a seeded, class-stratified
 * subset: the same for a seed, another for another seed, not the first rows
 * in file order, every class in proportion */
static void subset(const char *ov0, const char *seed, size_t want, size_t *rows)
{
    char seed_ov[64];
    snprintf(seed_ov, sizeof seed_ov, "seed=%s", seed);
    const char *ov[] = {ov0, seed_ov};
    yf_spec *s = data_spec("mnist", DIR "/mnist", "8", "16", ov, 2);
    yf_error err = {0};
    yf_dataset *d = yf_dataset_load(s, &err);
    ck_assert_msg(d != NULL, "%s", yf_error_format(&err));
    ck_assert_int_eq(yf_dataset_count(d, YF_SPLIT_TRAIN), want);
    size_t per_class[4] = {0};
    for (size_t i = 0; i < want; i++) {
        rows[i] = yf__row_of(d, YF_SPLIT_TRAIN, i);
        ck_assert_uint_lt(rows[i], 400); /* never a validation row */
        if (i)
            ck_assert_uint_gt(rows[i], rows[i - 1]);
        per_class[d->train_y.data[rows[i]]]++;
    }
    for (int c = 0; c < 4; c++) /* 100 of each class: floor or ceil of the share */
        ck_assert_msg(per_class[c] * 4 >= want - 3 && per_class[c] * 4 <= want + 3,
                      "%s: class %d has %zu of %zu", ov0, c, per_class[c], want);
    yf_dataset_free(d);
    yf_spec_free(s);
}

START_TEST(test_stratified_subset)
{
    tu_workdir(DIR);
    tu_write_dataset(DIR "/mnist", 408, 12, 4, false);
    size_t a[40], b[40], c[40], e[13];
    subset("data.train_fraction=0.1", "5", 40, a);
    subset("data.train_fraction=0.1", "5", 40, b);
    subset("data.train_fraction=0.1", "6", 40, c);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    ck_assert_uint_gt(a[39], 39); /* not the first rows in file order */
    subset("data.train_count=13", "5", 13, e);
    /* more than there is: an error at the key */
    const char *ov[] = {"data.train_count=401"};
    yf_spec *s = data_spec("mnist", DIR "/mnist", "8", "16", ov, 1);
    yf_error err = {0};
    ck_assert(yf_dataset_load(s, &err) == NULL);
    ck_assert_int_eq(err.code, YF_ESPEC);
    ck_assert_str_eq(yf_error_format(&err),
                     "override 'data.train_count=401':1:18: data: 'train_count' is 401 but only "
                     "400 training examples remain after the 8 validation examples");
    yf_spec_free(s);
    tu_rmtree(DIR);
}
END_TEST

/* fashion_mnist's files are gzipped */
START_TEST(test_dataset_gzip)
{
    tu_workdir(DIR);
    tu_write_dataset(DIR "/fashion", 20, 10, 3, true);
    yf_spec *s = data_spec("fashion_mnist", DIR "/fashion", "5", "3, 3", NULL, 0);
    yf_error err = {0};
    yf_dataset *d = yf_dataset_load(s, &err);
    ck_assert_msg(d != NULL, "%s", yf_error_format(&err));
    ck_assert_int_eq(yf_dataset_count(d, YF_SPLIT_TRAIN), 15);
    ck_assert_int_eq(yf_dataset_count(d, YF_SPLIT_TEST), 10);
    ck_assert_int_eq(d->test_y.data[6], 6 % 4);
    yf_dataset_free(d);
    yf_spec_free(s);
    tu_rmtree(DIR);
}
END_TEST

/* Loads dir and asserts failure with code and the message "file: words"
 * ("words" when file is NULL; see says). */
static void dataset_refused(const char *dir, const char *valid, const char *shape,
                            yf_status code, const char *file, const char *words)
{
    yf_spec *s = data_spec("mnist", dir, valid, shape, NULL, 0);
    yf_error err = {0};
    yf_dataset *d = yf_dataset_load(s, &err);
    ck_assert_msg(d == NULL, "%s: accepted", dir);
    ck_assert_msg(err.code == code, "%s: code %d, want %d: %s", dir, err.code, code,
                  yf_error_format(&err));
    char want[2048];
    snprintf(want, sizeof want, "%s%s%s", file ? file : "", file ? ": " : "", words);
    says(yf_error_format(&err), want);
    yf_spec_free(s);
}

START_TEST(test_dataset_bad)
{
    tu_workdir(DIR);
    /* 40 images, 39 labels */
    tu_write_dataset(DIR "/count", 40, 12, 4, false);
    uint8_t lab[39] = {0};
    tu_write_idx(DIR "/count/train-labels-idx1-ubyte", 1, (const uint32_t[]){39}, lab, 39,
                 false);
    dataset_refused(DIR "/count", "8", "16", YF_EDATA, "@/" DIR "/count/train-labels-idx1-ubyte",
                    "39 labels for 40 images in @/" DIR "/count/train-images-idx3-ubyte");

    /* a label of 12 in the test labels */
    tu_write_dataset(DIR "/label", 40, 12, 4, false);
    uint8_t tl[12] = {0, 1, 2, 3, 4, 5, 6, 12, 8, 9, 0, 1};
    tu_write_idx(DIR "/label/t10k-labels-idx1-ubyte", 1, (const uint32_t[]){12}, tl, 12,
                 false);
    dataset_refused(DIR "/label", "8", "16", YF_EDATA, "@/" DIR "/label/t10k-labels-idx1-ubyte",
                    "label 7 is 12; labels must be 0 to 9");

    /* a truncated test image file and trailing bytes in the training images */
    tu_write_dataset(DIR "/trunc", 40, 12, 4, false);
    size_t len = 0;
    char *bytes = tu_read(DIR "/trunc/t10k-images-idx3-ubyte", &len);
    ck_assert(bytes != NULL && len > 5);
    tu_write(DIR "/trunc/t10k-images-idx3-ubyte", bytes, len - 5);
    free(bytes);
    dataset_refused(DIR "/trunc", "8", "16", YF_EDATA, "@/" DIR "/trunc/t10k-images-idx3-ubyte",
                    "truncated: the IDX header promises 12 examples of 16 bytes (192 bytes) but "
                    "only 187 bytes follow it");
    tu_write_dataset(DIR "/long", 40, 12, 4, false);
    FILE *f = fopen(DIR "/long/train-images-idx3-ubyte", "ab");
    fputs("junk", f);
    fclose(f);
    dataset_refused(DIR "/long", "8", "16", YF_EDATA, "@/" DIR "/long/train-images-idx3-ubyte",
                    "longer than its header says (40 items of 16 bytes)");

    /* a missing file */
    tu_write_dataset(DIR "/missing", 40, 12, 4, false);
    remove(DIR "/missing/t10k-images-idx3-ubyte");
    dataset_refused(DIR "/missing", "8", "16", YF_EDATA,
                    "@/" DIR "/missing/t10k-images-idx3-ubyte",
                    "missing mnist data file: data.dir is @/" DIR "/missing (test.yaml:2). Give "
                    "--data DIR to read them from elsewhere, or change data.dir; ...");

    /* images of 16 pixels for a model input of 784; valid ≥ the file */
    tu_write_dataset(DIR "/ok", 40, 12, 4, false);
    dataset_refused(DIR "/ok", "8", "784", YF_ESPEC, NULL,
                    "test.yaml:4:10: model input: shape has 784 values but the mnist images have "
                    "16");
    dataset_refused(DIR "/ok", "40", "16", YF_ESPEC, NULL,
                    "test.yaml:2:53: data: 'valid' is 40 but the training file has only 40 "
                    "examples");
    tu_rmtree(DIR);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("idx");
    tcase_add_test(tc, test_good_plain);
    tcase_add_test(tc, test_good_gzip);
    tcase_add_test(tc, test_bad_files);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("datasets");
    tcase_set_timeout(tc2, 30);
    tcase_add_test(tc2, test_dataset_load);
    tcase_add_test(tc2, test_stratified_subset);
    tcase_add_test(tc2, test_dataset_gzip);
    tcase_add_test(tc2, test_dataset_bad);
    suite_add_tcase(s, tc2);
    return tu_run(s);
}
