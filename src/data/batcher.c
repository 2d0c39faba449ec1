/* Datasets: the training file split into train and validation (the last
 * `valid` examples), the test files kept apart for evaluation, and batches
 * gathered as floats in [0, 1]. */
#include "../internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Where each source is looked for when data.dir is not set: a folder under
 * $YAFLOW_DATA (or ./data), then a system folder (Debian's packages). */
static const struct {
    const char *source, *subdir, *system_dir, *files[4];
} sources[] = {
    {"mnist", "", NULL,
     {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
      "t10k-labels-idx1-ubyte"}},
    {"fashion_mnist", "fashion-mnist", "/usr/share/datasets/fashion-mnist",
     {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
      "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}},
};

/* The file in dir, or its .gz twin. */
static void find_file(const char *dir, const char *name, char *out, size_t cap)
{
    struct stat st;
    snprintf(out, cap, "%.900s/%.100s", dir, name);
    if (stat(out, &st) == 0)
        return;
    size_t n = strlen(name);
    if (n > 3 && strcmp(name + n - 3, ".gz") == 0)
        snprintf(out, cap, "%.900s/%.*s", dir, (int)(n - 3), name);
    else
        snprintf(out, cap, "%.900s/%.100s.gz", dir, name);
    if (stat(out, &st) != 0)
        snprintf(out, cap, "%.900s/%.100s", dir, name);
}

static int check_pair(const yf__idx *x, const yf__idx *y, const char *xpath,
                      const char *ypath, yf_error *err)
{
    if (x->count != y->count) {
        yf__fail_file(err, YF_EDATA, ypath, "%zu labels for %zu images in %s", y->count, x->count, xpath);
        return YF_EDATA;
    }
    for (size_t i = 0; i < y->count; i++)
        if (y->data[i] > 9) {
            yf__fail_file(err, YF_EDATA, ypath, "label %zu is %d; labels must be 0 to 9", i, y->data[i]);
            return YF_EDATA;
        }
    return 0;
}

yf_dataset *yf_dataset_load(const yf_spec *spec, yf_error *err)
{
    int s = -1;
    for (size_t i = 0; i < YF__ARRAY_LEN(sources); i++)
        if (strcmp(sources[i].source, spec->source) == 0)
            s = (int)i;
    if (s < 0) {
        yf__fail(err, YF_ESPEC, "unknown data source '%s'", spec->source);
        return NULL;
    }
    char dir[1024];
    const char *root = getenv("YAFLOW_DATA");
    struct stat st;
    if (spec->data_dir[0])
        snprintf(dir, sizeof dir, "%s", spec->data_dir);
    else {
        snprintf(dir, sizeof dir, "%s%s%s", root && *root ? root : "data",
                 sources[s].subdir[0] ? "/" : "", sources[s].subdir);
        if (stat(dir, &st) != 0 && sources[s].system_dir)
            snprintf(dir, sizeof dir, "%s", sources[s].system_dir);
    }
    yf_dataset *d = calloc(1, sizeof *d);
    yf__idx *parts[4] = {&d->train_x, &d->train_y, &d->test_x, &d->test_y};
    char paths[4][1100];
    for (int k = 0; k < 4; k++) {
        find_file(dir, sources[s].files[k], paths[k], sizeof paths[k]);
        if (stat(paths[k], &st) != 0) {
            yf__fail_file(err, YF_EDATA, paths[k], "missing %s data file (set data.dir or YAFLOW_DATA; for MNIST run "
                     "scripts/fetch-mnist.sh %s)", spec->source, dir);
            goto fail;
        }
        if (yf__idx_read(paths[k], k % 2 ? 1 : 3, parts[k], err))
            goto fail;
    }
    if (check_pair(&d->train_x, &d->train_y, paths[0], paths[1], err) ||
        check_pair(&d->test_x, &d->test_y, paths[2], paths[3], err))
        goto fail;
    d->dim = d->train_x.item;
    size_t want = 1;
    for (int i = 0; i < spec->input_ndim; i++)
        want *= (size_t)spec->input_shape[i];
    if (d->test_x.item != d->dim) {
        yf__fail_file(err, YF_EDATA, paths[2], "test images have %zu values each but the "
                      "training images (%s) have %zu", d->test_x.item, paths[0], d->dim);
        goto fail;
    }
    if (d->dim != want) {
        yf__fail_at(err, spec->input_at, YF_ESPEC,
                    "model input: shape has %zu values but the %s images have %zu", want,
                    spec->source, d->dim);
        goto fail;
    }
    if ((size_t)spec->valid >= d->train_x.count) {
        yf__fail_at(err, yf__map_get(yf__map_get(spec->tree->root, "data"), "valid"),
                    YF_ESPEC, "data: 'valid' is %ld but the training file has only %zu examples",
                    spec->valid, d->train_x.count);
        goto fail;
    }
    d->n_valid = (size_t)spec->valid;
    d->n_train = d->train_x.count - d->n_valid;
    if (spec->train_fraction < 1.0) {
        size_t keep = (size_t)(d->n_train * spec->train_fraction + 0.5);
        d->n_train = keep ? keep : 1;
    }
    return d;
fail:
    yf_dataset_free(d);
    return NULL;
}

void yf_dataset_free(yf_dataset *d)
{
    if (!d)
        return;
    yf__idx_free(&d->train_x);
    yf__idx_free(&d->train_y);
    yf__idx_free(&d->test_x);
    yf__idx_free(&d->test_y);
    free(d);
}

size_t yf_dataset_count(const yf_dataset *d, yf_split split)
{
    switch (split) {
    case YF_SPLIT_TRAIN: return d->n_train;
    case YF_SPLIT_VALID: return d->n_valid;
    case YF_SPLIT_TEST: return d->test_x.count;
    }
    return 0;
}

YF__CLONES static void bytes_to_unit(const uint8_t *restrict in, float *restrict out,
                                    size_t n)
{
    for (size_t j = 0; j < n; j++)
        out[j] = in[j] * (1.0f / 255.0f);
}

/* out is (n, dim) */
void yf__gather(const yf_dataset *d, yf_split split, const size_t *idx, int n, float *out)
{
    const yf__idx *src = split == YF_SPLIT_TEST ? &d->test_x : &d->train_x;
    size_t base = split == YF_SPLIT_VALID ? d->train_x.count - d->n_valid : 0;
    for (int r = 0; r < n; r++)
        bytes_to_unit(src->data + (base + idx[r]) * d->dim, out + (size_t)r * d->dim, d->dim);
}

/* Asks the cache for the rows the next batch will gather. */
void yf__prefetch(const yf_dataset *d, yf_split split, const size_t *idx, int n)
{
    const yf__idx *src = split == YF_SPLIT_TEST ? &d->test_x : &d->train_x;
    size_t base = split == YF_SPLIT_VALID ? d->train_x.count - d->n_valid : 0;
    for (int r = 0; r < n; r++) {
        const uint8_t *row = src->data + (base + idx[r]) * d->dim;
        for (size_t j = 0; j < d->dim; j += 64)
            __builtin_prefetch(row + j);
    }
}
