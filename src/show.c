/* The pictures of a trained model (yf_show), samples from a generative
 * model (yf_sample) and class probabilities (yf_classify). What each
 * picture needs is found in the spec, not in names: the reconstruction is
 * the layer a loss compares with the model input, a denoising model's
 * corruption is a noise or dropout layer reading the input, a VAE's code
 * is its sample_normal layer, a classifier's logits feed its
 * softmax_cross_entropy. */
#include "internal.h"
#include "picture.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


/* ---- what the spec says ------------------------------------------------------- */

/* The loss term comparing a layer with the model input: its layer, and
 * whether that layer holds logits (sigmoid_cross_entropy). */
static const yf__loss_spec *reconstruction_term(const yf_spec *s)
{
    for (int t = 0; t < s->n_losses; t++)
        if ((s->losses[t].type == YF_LOSS_MSE || s->losses[t].type == YF_LOSS_SIGMOID_CE) &&
            !strcmp(s->losses[t].target, s->input_name))
            return &s->losses[t];
    return NULL;
}

static const char *input_of(const yf_spec *s, int i)
{
    if (s->layers[i].n_inputs)
        return s->layers[i].inputs[0];
    return i == 0 ? s->input_name : s->layers[i - 1].name;
}

static const yf__layer_spec *layer_named(const yf_spec *s, const char *name)
{
    for (int i = 0; i < s->n_layers; i++)
        if (!strcmp(s->layers[i].name, name))
            return &s->layers[i];
    return NULL;
}

/* The corruption layer of a denoising model: noise or dropout on the input. */
static const yf__layer_spec *noise_layer(const yf_spec *s)
{
    for (int i = 0; i < s->n_layers; i++)
        if ((s->layers[i].type == YF_LAYER_GAUSSIAN_NOISE || s->layers[i].type == YF_LAYER_DROPOUT) &&
            !strcmp(input_of(s, i), s->input_name))
            return &s->layers[i];
    return NULL;
}

static const yf__layer_spec *sampler(const yf_spec *s)
{
    for (int i = 0; i < s->n_layers; i++)
        if (s->layers[i].type == YF_LAYER_SAMPLE_NORMAL)
            return &s->layers[i];
    return NULL;
}

static const char *logits_layer(const yf_spec *s)
{
    for (int t = 0; t < s->n_losses; t++)
        if (s->losses[t].type == YF_LOSS_SOFTMAX_CE)
            return s->losses[t].input;
    return NULL;
}

/* The coding layer: the one asked for, a VAE's mean, a layer named
 * "coding", else the narrowest dense layer that is not the output. */
static const char *coding_layer(const yf_spec *s, const char *asked)
{
    if (asked)
        return asked;
    const yf__layer_spec *z = sampler(s);
    if (z)
        return z->inputs[0];
    if (layer_named(s, "coding"))
        return "coding";
    const char *best = NULL;
    int units = 0;
    const yf__loss_spec *rt = reconstruction_term(s);
    for (int i = 0; i < s->n_layers; i++) {
        const yf__layer_spec *l = &s->layers[i];
        if (l->type == YF_LAYER_DENSE && (!rt || strcmp(l->name, rt->input)) &&
            (!best || l->units < units))
            best = l->name, units = l->units;
    }
    return best;
}

static float sigmoid(float x) { return 1 / (1 + expf(-x)); }

/* ---- helpers ------------------------------------------------------------------ */

typedef struct {
    float *x;
    int *y;
    size_t n;
    int h, w;
    size_t dim;
} images;

static int load_images(const yf_dataset *d, yf_split split, size_t n, images *im,
                       yf_error *err)
{
    size_t count = yf_dataset_count(d, split);
    im->n = n && n < count ? n : count;
    im->dim = d->dim;
    im->h = (int)d->test_x.dims[1], im->w = (int)d->test_x.dims[2];
    im->x = yf__malloc(im->n * d->dim * sizeof *im->x + 1);
    im->y = yf__malloc(im->n * sizeof *im->y + 1);
    if (!im->x || !im->y) {
        free(im->x), free(im->y);
        return yf__fail(err, YF_ENOMEM, "out of memory for %zu images", im->n);
    }
    yf__split_rows(d, split, 0, im->n, im->x, im->y);
    return 0;
}

static void free_images(images *im) { free(im->x), free(im->y); }

/* The first test image of each class c, in class order: idx[c], or -1. */
static void first_of_each_class(const images *im, int classes, long *idx)
{
    for (int c = 0; c < classes; c++)
        idx[c] = -1;
    for (size_t i = 0; i < im->n; i++)
        if (im->y[i] >= 0 && im->y[i] < classes && idx[im->y[i]] < 0)
            idx[im->y[i]] = (long)i;
}

/* Layer `to` for rows inputs, in evaluation mode, into a new array. */
static float *run(yf_model *m, const char *from, const float *in, size_t rows, const char *to,
                  size_t *size, int training, yf_error *err)
{
    size_t sz = yf_model_layer_size(m, to, NULL, NULL);
    float *out = sz ? yf__malloc(rows * sz * sizeof *out + 1) : NULL;
    if (sz && !out) {
        yf__fail(err, YF_ENOMEM, "out of memory");
        return NULL;
    }
    /* evaluation noise draws from steps of its own, as yf_evaluate's */
    if (yf_model_forward(m, from, in, rows, to, out, training,
                         training ? UINT64_C(3) << 61 : UINT64_C(1) << 62, err)) {
        free(out);
        return NULL;
    }
    if (size)
        *size = sz;
    return out;
}

/* ---- pictures ------------------------------------------------------------------ */

static int reconstructions(yf_model *m, yf_dataset *d, const char *run_dir, const char *path,
                           const yf_show_opts *o, yf_error *err)
{
    (void)run_dir;
    const yf_spec *s = m->spec;
    const yf__loss_spec *rt = reconstruction_term(s);
    if (!rt)
        return yf__fail(err, YF_EUSAGE, "model '%s' has no loss comparing a layer with its input "
                        "'%s': it reconstructs nothing", s->name, s->input_name);
    images im;
    int n = o->n > 0 ? o->n : 10;
    if (load_images(d, YF_SPLIT_TEST, (size_t)n, &im, err))
        return err->code;
    n = (int)im.n;
    const yf__layer_spec *nl = noise_layer(s);
    size_t sz = 0;
    float *rec = run(m, NULL, im.x, im.n, rt->input, &sz, 0, err);
    float *noisy = rec && nl ? run(m, NULL, im.x, im.n, nl->name, NULL, 1, err) : NULL;
    int rc = 0;
    if (!rec || (nl && !noisy))
        rc = err->code;
    else if (sz != im.dim)
        rc = yf__fail(err, YF_EUSAGE, "layer '%s' has %zu values, not the %zu of an image",
                      rt->input, sz, im.dim);
    if (!rc) {
        if (rt->type == YF_LOSS_SIGMOID_CE)
            for (size_t i = 0; i < im.n * sz; i++)
                rec[i] = sigmoid(rec[i]);
        int rows = nl ? 3 : 2;
        float *tiles = yf__malloc((size_t)rows * n * im.dim * sizeof *tiles);
        if (!tiles)
            rc = yf__fail(err, YF_ENOMEM, "out of memory");
        if (!rc) {
            memcpy(tiles, im.x, n * im.dim * sizeof *tiles);
            if (nl)
                memcpy(tiles + n * im.dim, noisy, n * im.dim * sizeof *tiles);
            memcpy(tiles + (rows - 1) * n * im.dim, rec, n * im.dim * sizeof *tiles);
            char noisy_label[96], title[160];
            snprintf(noisy_label, sizeof noisy_label, "noisy (%s)",
                     nl && nl->type == YF_LAYER_DROPOUT ? "dropout" : "gaussian noise");
            const char *labels[3] = {"original", nl ? noisy_label : "reconstruction",
                                     "reconstruction"};
            snprintf(title, sizeof title, "%s: test images and their reconstructions ('%s')",
                     s->name, rt->input);
            yf__grid g = {.rows = rows, .cols = n, .th = im.h, .tw = im.w, .tiles = tiles,
                          .scale = 2, .gap = 2, .title = title, .row_labels = labels};
            rc = yf__grid_png(&g, path, err);
            free(tiles);
        }
    }
    free(rec), free(noisy);
    free_images(&im);
    return rc;
}

static int filters(yf_model *m, yf_dataset *d, const char *run_dir, const char *path,
                   const yf_show_opts *o, yf_error *err)
{
    (void)run_dir;
    const yf_spec *s = m->spec;
    const yf__layer_spec *first = NULL;
    for (int i = 0; i < s->n_layers && !first; i++)
        if (s->layers[i].type == YF_LAYER_DENSE || s->layers[i].type == YF_LAYER_CONV2D)
            first = &s->layers[i];
    if (o->layer && !(first = layer_named(s, o->layer)))
        return yf__fail(err, YF_EUSAGE, "model '%s' has no layer '%s'", s->name, o->layer);
    if (!first || (first->type != YF_LAYER_DENSE && first->type != YF_LAYER_CONV2D))
        return yf__fail(err, YF_EUSAGE, "model '%s' has no dense or conv2d layer%s%s%s", s->name,
                        o->layer ? " named '" : "", o->layer ? o->layer : "", o->layer ? "'" : "");
    char pname[2 * YF__NAME_MAX];
    if (first->weights[0])
        snprintf(pname, sizeof pname, "%s.W", first->weights);
    else
        snprintf(pname, sizeof pname, "%s.W", first->name);
    const yf__param *p = NULL;
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, pname))
            p = &m->params[i];
    if (!p)
        return yf__fail(err, YF_EUSAGE, "layer '%s' has no weights", first->name);
    const float *W = m->param_block + p->offset;
    int h = (int)d->test_x.dims[1], w = (int)d->test_x.dims[2];
    int rows, cols, th, tw, scale, n_tiles;
    float *tiles;
    char title[200];
    if (first->type == YF_LAYER_DENSE) {
        /* W is [in, out]; a tied layer (W^T) reads it the other way */
        int K = first->weights_transposed ? p->dims[1] : p->dims[0];
        int N = first->weights_transposed ? p->dims[0] : p->dims[1];
        if ((size_t)K != d->dim)
            return yf__fail(err, YF_EUSAGE, "layer '%s' reads %d values, not an image's %zu: "
                            "its weights are not image-shaped", first->name, K, d->dim);
        n_tiles = o->n > 0 && o->n < N ? o->n : N < 100 ? N : 100;
        cols = n_tiles < 10 ? n_tiles : 10, rows = (n_tiles + cols - 1) / cols;
        th = h, tw = w, scale = 2;
        tiles = yf__malloc((size_t)rows * cols * K * sizeof *tiles);
        if (!tiles)
            return yf__fail(err, YF_ENOMEM, "out of memory");
        for (int t = 0; t < rows * cols; t++) {
            float *out = tiles + (size_t)t * K;
            if (t >= n_tiles) {
                out[0] = NAN;
                continue;
            }
            float big = 0;
            for (int i = 0; i < K; i++) {
                float v = first->weights_transposed ? W[(size_t)t * p->dims[1] + i]
                                                    : W[(size_t)i * p->dims[1] + t];
                out[i] = v;
                big = fmaxf(big, fabsf(v));
            }
            for (int i = 0; i < K; i++)
                out[i] = big > 0 ? 0.5f + 0.5f * out[i] / big : 0.5f;
        }
        snprintf(title, sizeof title, "%s: weights of %d of its %d units (grey 0, white +, "
                 "black -)", pname, n_tiles, N);
    } else {
        /* [out, in / groups, kh, kw]: with one input channel, every
         * kernel in a grid of 8 columns; else a row per output channel (at
         * most n, 16) and a column per input channel (at most 16) */
        int Co = p->dims[0], Ci = p->dims[1];
        th = p->dims[2], tw = p->dims[3];
        int show_co = o->n > 0 && o->n < Co ? o->n : Ci == 1 ? Co : Co < 16 ? Co : 16;
        int show_ci = Ci < 16 ? Ci : 16;
        n_tiles = show_co * show_ci;
        if (Ci == 1)
            cols = n_tiles < 8 ? n_tiles : 8, rows = (n_tiles + cols - 1) / cols;
        else
            rows = show_co, cols = show_ci;
        scale = th * 10 < 40 ? 40 / th : 4;
        tiles = yf__malloc((size_t)rows * cols * th * tw * sizeof *tiles);
        if (!tiles)
            return yf__fail(err, YF_ENOMEM, "out of memory");
        float big = 0; /* one scale for all kernels: their sizes compare */
        for (int r = 0; r < show_co; r++)
            for (int c = 0; c < show_ci; c++)
                for (int i = 0; i < th * tw; i++)
                    big = fmaxf(big, fabsf(W[((size_t)r * Ci + c) * th * tw + i]));
        for (int t = 0; t < rows * cols; t++) {
            float *out = tiles + (size_t)t * th * tw;
            int r = Ci == 1 ? t : t / cols, c = Ci == 1 ? 0 : t % cols;
            if (r >= show_co) {
                out[0] = NAN;
                continue;
            }
            for (int i = 0; i < th * tw; i++)
                out[i] = big > 0 ? 0.5f + 0.5f * W[((size_t)r * Ci + c) * th * tw + i] / big
                                 : 0.5f;
        }
        if (Ci == 1)
            snprintf(title, sizeof title, "%s: its %d kernels of %d × %d (grey 0, white +, black -)",
                     pname, show_co, th, tw);
        else
            snprintf(title, sizeof title, "%s: %d × %d kernels; rows: output channels, "
                     "columns: input channels", pname, th, tw);
    }
    yf__grid g = {.rows = rows, .cols = cols, .th = th, .tw = tw, .tiles = tiles,
                  .scale = scale, .gap = 2, .title = title};
    int rc = yf__grid_png(&g, path, err);
    free(tiles);
    return rc;
}

typedef struct {
    float v;
    int i;
} ranked;

static int by_value_desc(const void *a, const void *b)
{
    float x = ((const ranked *)a)->v, y = ((const ranked *)b)->v;
    return x < y ? 1 : x > y ? -1 : ((const ranked *)a)->i - ((const ranked *)b)->i;
}

/* The coding layer's values for the first n test images (0: all): the
 * images in *im, the layer's name and width; NULL (err set) on failure. */
static float *test_codes(yf_model *m, yf_dataset *d, const yf_show_opts *o, size_t n,
                         images *im, const char **layer, size_t *units, yf_error *err)
{
    *layer = coding_layer(m->spec, o->layer);
    if (!*layer) {
        yf__fail(err, YF_EUSAGE, "model '%s' has no coding layer: give --layer", m->spec->name);
        return NULL;
    }
    if (load_images(d, YF_SPLIT_TEST, n, im, err))
        return NULL;
    float *codes = run(m, NULL, im->x, im->n, *layer, units, 0, err);
    if (!codes)
        free_images(im);
    return codes;
}

static int top_activations(yf_model *m, yf_dataset *d, const char *run_dir, const char *path,
                           const yf_show_opts *o, yf_error *err)
{
    (void)run_dir;
    const yf_spec *s = m->spec;
    images im;
    const char *layer;
    size_t units;
    float *codes = test_codes(m, d, o, 0, &im, &layer, &units, err);
    if (!codes)
        return err->code;
    int k = o->k > 0 ? o->k : 8;
    int shown = o->n > 0 && (size_t)o->n < units ? o->n : (int)(units < 1000 ? units : 1000);
    float *tiles = yf__malloc((size_t)shown * k * im.dim * sizeof *tiles);
    ranked *r = yf__malloc(im.n * sizeof *r);
    char (*labels)[32] = yf__malloc((size_t)shown * sizeof *labels);
    const char **lp = yf__malloc((size_t)shown * sizeof *lp);
    int rc = 0;
    if (!tiles || !r || !labels || !lp)
        rc = yf__fail(err, YF_ENOMEM, "out of memory");
    for (int u = 0; u < shown && !rc; u++) {
        for (size_t i = 0; i < im.n; i++)
            r[i].v = codes[i * units + u], r[i].i = (int)i;
        qsort(r, im.n, sizeof *r, by_value_desc);
        for (int j = 0; j < k; j++)
            memcpy(tiles + ((size_t)u * k + j) * im.dim, im.x + (size_t)r[j].i * im.dim,
                   im.dim * sizeof *tiles);
        snprintf(labels[u], sizeof labels[u], "unit %d", u);
        lp[u] = labels[u];
    }
    if (!rc) {
        char title[200];
        snprintf(title, sizeof title, "%s: the %d test images that activate each of %d of %zu "
                 "units of '%s' most", s->name, k, shown, units, layer);
        yf__grid g = {.rows = shown, .cols = k, .th = im.h, .tw = im.w, .tiles = tiles,
                      .scale = 1, .gap = 1, .row_labels = lp, .title = title,
                      .blocks = (shown + 24) / 25};
        rc = yf__grid_png(&g, path, err);
    }
    free(tiles), free(r), free(labels), free(lp), free(codes);
    free_images(&im);
    return rc;
}

/* metrics.csv: a header and rows of numbers ("nan" for none). */
typedef struct {
    int cols, rows;
    char (*name)[96];
    double *v; /* rows × cols */
} table;

static int read_csv(const char *path, table *t, yf_error *err)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f)
        return yf__fail(err, YF_EUSAGE, "cannot read %s: %s", path, strerror(errno));
    char line[8192];
    int rc = 0;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return yf__fail(err, YF_EDATA, "%s: empty", path);
    }
    line[strcspn(line, "\r\n")] = 0;
    t->cols = 1;
    for (char *p = line; *p; p++)
        t->cols += *p == ',';
    t->name = yf__calloc(t->cols, sizeof *t->name);
    if (!t->name) {
        fclose(f);
        return yf__fail(err, YF_ENOMEM, "out of memory");
    }
    int c = 0;
    for (char *tok = strtok(line, ","); tok && c < t->cols; tok = strtok(NULL, ","))
        snprintf(t->name[c++], sizeof t->name[0], "%s", tok);
    while (fgets(line, sizeof line, f) && !rc) {
        double *nv = yf__realloc(t->v, (size_t)(t->rows + 1) * t->cols * sizeof *nv);
        if (!nv) {
            rc = yf__fail(err, YF_ENOMEM, "out of memory");
            break;
        }
        t->v = nv;
        char *p = line;
        for (c = 0; c < t->cols; c++) {
            char *end;
            double x = strtod(p, &end);
            if (end == p) {
                rc = yf__fail(err, YF_EDATA, "%s:%d: column %d is not a number", path,
                              t->rows + 2, c + 1);
                break;
            }
            t->v[t->rows * t->cols + c] = x;
            p = *end == ',' ? end + 1 : end;
        }
        t->rows++;
    }
    fclose(f);
    if (!rc && t->rows == 0)
        rc = yf__fail(err, YF_EDATA, "%s has no epochs yet", path);
    return rc;
}

static int curves(yf_model *m, yf_dataset *d, const char *run_dir, const char *path,
                  const yf_show_opts *o, yf_error *err)
{
    (void)d, (void)o;
    const yf_spec *s = m->spec;
    char csv[1100];
    snprintf(csv, sizeof csv, "%s/metrics.csv", run_dir);
    table t;
    int rc = read_csv(csv, &t, err);
    double *cols = rc ? NULL : yf__malloc((size_t)t.cols * t.rows * sizeof *cols);
    if (!rc && !cols)
        rc = yf__fail(err, YF_ENOMEM, "out of memory");
    if (rc) {
        free(t.name), free(t.v);
        return rc;
    }
    for (int c = 0; c < t.cols; c++)
        for (int r = 0; r < t.rows; r++)
            cols[c * t.rows + r] = t.v[r * t.cols + c];
    /* losses on the left; the metrics (accuracy, mean activation) on the
     * right; per-term losses only when there are several terms */
    yf__series loss[8], metric[8];
    int nl = 0, nm = 0;
    for (int c = 1; c < t.cols; c++) {
        const char *n = t.name[c];
        bool all_nan = true;
        for (int r = 0; r < t.rows; r++)
            all_nan &= isnan(cols[c * t.rows + r]);
        if (all_nan || !strcmp(n, "learning_rate") || !strcmp(n, "seconds") ||
            !strcmp(n, "examples_per_s"))
            continue;
        bool is_loss = !strcmp(n, "train_loss") || !strcmp(n, "valid_loss");
        bool is_term = false;
        for (int k = 0; k < s->n_losses; k++) {
            char term[64];
            yf__term_name(s, k, term);
            is_term |= !strncmp(n, "valid_", 6) && !strcmp(n + 6, term);
        }
        yf__series sr = {.label = n, .x = cols, .y = cols + c * t.rows, .n = t.rows};
        if (is_loss && nl < 8)
            loss[nl++] = sr;
        else if (is_term && s->n_losses > 1 && nl < 8)
            loss[nl++] = sr;
        else if (!is_loss && !is_term && nm < 8)
            metric[nm++] = sr;
    }
    char title[160];
    snprintf(title, sizeof title, "%s: loss per epoch", s->name);
    yf__panel p[2] = {
        {.title = title, .xlabel = "epoch", .ylabel = "loss", .series = loss, .n_series = nl},
        {.title = "validation metrics", .xlabel = "epoch", .ylabel = "value", .series = metric,
         .n_series = nm},
    };
    rc = yf__plot_png(p, nm ? 2 : 1, path, err);
    free(cols), free(t.name), free(t.v);
    return rc;
}

/* The first two principal components of n rows of d values (power
 * iteration on the covariance, the second after deflation). */
static int project2(const float *x, size_t n, size_t dim, float *xy, double *explained,
                    yf_error *err)
{
    double *mean = yf__calloc(dim, sizeof *mean), *cov = yf__calloc(dim * dim, sizeof *cov);
    double *v = yf__malloc(2 * dim * sizeof *v), *tmp = yf__malloc(dim * sizeof *tmp);
    if (!mean || !cov || !v || !tmp) {
        free(mean), free(cov), free(v), free(tmp);
        return yf__fail(err, YF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            mean[j] += x[i * dim + j] / (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < dim; a++) {
            double da = x[i * dim + a] - mean[a];
            for (size_t b = a; b < dim; b++)
                cov[a * dim + b] += da * (x[i * dim + b] - mean[b]);
        }
    double trace = 0;
    for (size_t a = 0; a < dim; a++) {
        for (size_t b = a; b < dim; b++)
            cov[b * dim + a] = cov[a * dim + b] /= (double)n;
        trace += cov[a * dim + a];
    }
    for (int k = 0; k < 2; k++) {
        double *e = v + k * dim, lambda = 0;
        for (size_t j = 0; j < dim; j++)
            e[j] = 1.0 / sqrt((double)dim) * (1 + 0.01 * (double)j);
        for (int it = 0; it < 500; it++) {
            double norm = 0;
            for (size_t a = 0; a < dim; a++) {
                double sum = 0;
                for (size_t b = 0; b < dim; b++)
                    sum += cov[a * dim + b] * e[b];
                tmp[a] = sum;
                norm += sum * sum;
            }
            norm = sqrt(norm);
            if (norm == 0)
                break;
            lambda = norm;
            for (size_t a = 0; a < dim; a++)
                e[a] = tmp[a] / norm;
        }
        explained[k] = trace > 0 ? lambda / trace : 0;
        for (size_t a = 0; a < dim; a++) /* deflate */
            for (size_t b = 0; b < dim; b++)
                cov[a * dim + b] -= lambda * e[a] * e[b];
    }
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            double sum = 0;
            for (size_t j = 0; j < dim; j++)
                sum += (x[i * dim + j] - mean[j]) * v[k * dim + j];
            xy[2 * i + k] = (float)sum;
        }
    free(mean), free(cov), free(v), free(tmp);
    return 0;
}

static int latent(yf_model *m, yf_dataset *d, const char *run_dir, const char *path,
                  const yf_show_opts *o, yf_error *err)
{
    (void)run_dir;
    const yf_spec *s = m->spec;
    images im;
    const char *layer;
    size_t units;
    float *codes = test_codes(m, d, o, o->n > 0 ? (size_t)o->n : 0, &im, &layer, &units, err);
    if (!codes)
        return err->code;
    float *xy = yf__malloc(im.n * 2 * sizeof *xy);
    int rc = xy ? 0 : yf__fail(err, YF_ENOMEM, "out of memory");
    char title[200], xl[64], yl[64];
    if (!rc && units == 2) {
        memcpy(xy, codes, im.n * 2 * sizeof *xy);
        snprintf(xl, sizeof xl, "%s[0]", layer);
        snprintf(yl, sizeof yl, "%s[1]", layer);
        snprintf(title, sizeof title, "%s: '%s' of %zu test images, by class", s->name, layer,
                 im.n);
    } else if (!rc && units > 2 && units <= 4096) {
        double ex[2];
        rc = project2(codes, im.n, units, xy, ex, err);
        snprintf(xl, sizeof xl, "PC 1 (%.0f%% of the variance)", 100 * ex[0]);
        snprintf(yl, sizeof yl, "PC 2 (%.0f%%)", 100 * ex[1]);
        snprintf(title, sizeof title, "%s: '%s' (%zu units) of %zu test images, first two "
                 "principal components", s->name, layer, units, im.n);
    } else if (!rc) {
        rc = yf__fail(err, YF_EUSAGE, "layer '%s' has %zu units: a latent picture needs 2 to "
                      "4096", layer, units);
    }
    if (!rc)
        rc = yf__scatter_png(xy, im.y, im.n, 10, title, xl, yl, path, err);
    free(codes), free(xy);
    free_images(&im);
    return rc;
}

static int need_vae(const yf_spec *s, const yf__layer_spec **z, const yf__loss_spec **rt,
                    yf_error *err)
{
    *z = sampler(s);
    *rt = reconstruction_term(s);
    if (!*z || !*rt)
        return yf__fail(err, YF_EUSAGE, "model '%s' is not generative: it needs a sample_normal "
                        "layer and a loss reconstructing its input", s->name);
    return 0;
}

int yf_sample(yf_model *m, size_t n, uint64_t seed, float *out, yf_error *err)
{
    const yf_spec *s = m->spec;
    const yf__layer_spec *z;
    const yf__loss_spec *rt;
    if (need_vae(s, &z, &rt, err))
        return err->code;
    size_t zs = yf_model_layer_size(m, z->name, NULL, NULL);
    float *codes = yf__malloc(n * zs * sizeof *codes + 1);
    if (!codes)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    yf__rand_normal(seed, YF__STREAM_SAMPLE, 0, codes, n * zs, 0, 1);
    int rc = yf_model_forward(m, z->name, codes, n, rt->input, out, 0, 0, err);
    size_t sz = yf_model_layer_size(m, rt->input, NULL, NULL);
    if (!rc && rt->type == YF_LOSS_SIGMOID_CE)
        for (size_t i = 0; i < n * sz; i++)
            out[i] = sigmoid(out[i]);
    free(codes);
    return rc;
}

size_t yf_model_input_size(const yf_model *m)
{
    return m->eval.node[m->eval.input_node].size;
}

static int samples(yf_model *m, yf_dataset *d, const char *run_dir, const char *path,
                   const yf_show_opts *o, yf_error *err)
{
    (void)run_dir;
    int n = o->n > 0 ? o->n : 100, cols = n < 10 ? n : 10;
    int rows = (n + cols - 1) / cols;
    size_t dim = yf_model_input_size(m);
    float *x = yf__malloc((size_t)rows * cols * dim * sizeof *x);
    if (!x)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    int rc = yf_sample(m, (size_t)n, o->seed ? o->seed : 1, x, err);
    for (int i = n; i < rows * cols; i++)
        x[(size_t)i * dim] = NAN;
    if (!rc) {
        char title[160];
        snprintf(title, sizeof title, "%s: %d images generated from codes drawn from N(0, I)",
                 m->spec->name, n);
        yf__grid g = {.rows = rows, .cols = cols, .th = (int)d->test_x.dims[1],
                      .tw = (int)d->test_x.dims[2], .tiles = x, .scale = 2, .gap = 2,
                      .title = title};
        rc = yf__grid_png(&g, path, err);
    }
    free(x);
    return rc;
}

static int interpolation(yf_model *m, yf_dataset *d, const char *run_dir, const char *path,
                         const yf_show_opts *o, yf_error *err)
{
    (void)run_dir;
    const yf_spec *s = m->spec;
    const yf__layer_spec *z;
    const yf__loss_spec *rt;
    if (need_vae(s, &z, &rt, err))
        return err->code;
    images im;
    if (load_images(d, YF_SPLIT_TEST, 0, &im, err))
        return err->code;
    int classes = 1;
    for (size_t i = 0; i < im.n; i++)
        if (im.y[i] >= classes && im.y[i] < 10)
            classes = im.y[i] + 1;
    long first[10];
    first_of_each_class(&im, classes, first);
    int pairs = o->n > 0 && o->n <= 10 ? o->n : classes > 2 ? classes - 1 : 1;
    int steps = 9, cols = steps + 2;
    /* row r walks from the first test image of class r to that of r + 1 */
    float *ends = yf__malloc(2 * (size_t)pairs * im.dim * sizeof *ends);
    float *tiles = yf__malloc((size_t)pairs * cols * im.dim * sizeof *tiles);
    float *mean = NULL, *walk = NULL, *dec = NULL;
    size_t zs = 0;
    int rc = ends && tiles ? 0 : yf__fail(err, YF_ENOMEM, "out of memory");
    char labels[10][32];
    const char *lp[10];
    for (int r = 0; r < pairs && !rc; r++) {
        long a = first[r % classes], b = first[(r + 1) % classes];
        if (a < 0 || b < 0)
            rc = yf__fail(err, YF_EDATA, "the test set lacks a class");
        else {
            memcpy(ends + (2 * r) * im.dim, im.x + a * im.dim, im.dim * sizeof *ends);
            memcpy(ends + (2 * r + 1) * im.dim, im.x + b * im.dim, im.dim * sizeof *ends);
            snprintf(labels[r], sizeof labels[r], "%d to %d", r % classes, (r + 1) % classes);
            lp[r] = labels[r];
        }
    }
    /* the walk is between the codes' means, as is usual for a VAE */
    if (!rc)
        mean = run(m, NULL, ends, 2 * (size_t)pairs, z->inputs[0], &zs, 0, err);
    if (!rc && !mean)
        rc = err->code;
    if (!rc) {
        walk = yf__malloc((size_t)pairs * steps * zs * sizeof *walk);
        dec = yf__malloc((size_t)pairs * steps * im.dim * sizeof *dec);
        if (!walk || !dec)
            rc = yf__fail(err, YF_ENOMEM, "out of memory");
    }
    for (int r = 0; r < pairs && !rc; r++)
        for (int k = 0; k < steps; k++) {
            float t = (float)k / (steps - 1);
            for (size_t j = 0; j < zs; j++)
                walk[((size_t)r * steps + k) * zs + j] =
                    (1 - t) * mean[2 * r * zs + j] + t * mean[(2 * r + 1) * zs + j];
        }
    if (!rc)
        rc = yf_model_forward(m, z->name, walk, (size_t)pairs * steps, rt->input, dec, 0, 0, err);
    if (!rc) {
        for (int r = 0; r < pairs; r++) {
            float *row = tiles + (size_t)r * cols * im.dim;
            memcpy(row, ends + 2 * r * im.dim, im.dim * sizeof *row);
            for (int k = 0; k < steps; k++)
                for (size_t j = 0; j < im.dim; j++) {
                    float v = dec[((size_t)r * steps + k) * im.dim + j];
                    row[(1 + k) * im.dim + j] = rt->type == YF_LOSS_SIGMOID_CE ? sigmoid(v) : v;
                }
            memcpy(row + (cols - 1) * im.dim, ends + (2 * r + 1) * im.dim, im.dim * sizeof *row);
        }
        const char *cl[11] = {"image", "0", "1/8", "1/4", "3/8", "1/2", "5/8", "3/4", "7/8",
                              "1", "image"};
        char title[200];
        snprintf(title, sizeof title, "%s: decoded walks between the means of '%s' of two test "
                 "images", s->name, z->name);
        yf__grid g = {.rows = pairs, .cols = cols, .th = im.h, .tw = im.w, .tiles = tiles,
                      .scale = 2, .gap = 2, .title = title, .row_labels = lp, .col_labels = cl};
        rc = yf__grid_png(&g, path, err);
    }
    free(ends), free(tiles), free(mean), free(walk), free(dec);
    free_images(&im);
    return rc;
}

int yf_classify(yf_model *m, const float *x, size_t n, float *probs, yf_error *err)
{
    const char *logits = logits_layer(m->spec);
    if (!logits)
        return yf__fail(err, YF_EUSAGE, "model '%s' is not a classifier: it has no "
                        "softmax_cross_entropy loss", m->spec->name);
    if (yf_model_forward(m, NULL, x, n, logits, probs, 0, UINT64_C(1) << 62, err))
        return err->code;
    int k = m->spec->classes;
    for (size_t i = 0; i < n; i++) {
        float *p = probs + i * k, top = p[0], sum = 0;
        for (int c = 1; c < k; c++)
            top = fmaxf(top, p[c]);
        for (int c = 0; c < k; c++)
            sum += p[c] = expf(p[c] - top);
        for (int c = 0; c < k; c++)
            p[c] /= sum;
    }
    return 0;
}

int yf_score_images(yf_model *clf, const float *x, size_t n, yf_score *out, yf_error *err)
{
    memset(out, 0, sizeof *out);
    int k = clf->spec->classes;
    if (k < 1 || k > 10)
        return yf__fail(err, YF_EUSAGE, "model '%s' must classify into 1 to 10 classes to score "
                        "images", clf->spec->name);
    float *p = yf__malloc(n * k * sizeof *p + 1);
    if (!p)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    int rc = yf_classify(clf, x, n, p, err);
    if (!rc && n) {
        size_t count[10] = {0};
        for (size_t i = 0; i < n; i++) {
            int best = 0;
            for (int c = 1; c < k; c++)
                if (p[i * k + c] > p[i * k + best])
                    best = c;
            count[best]++;
            out->top_prob += p[i * k + best] / (double)n;
        }
        for (int c = 0; c < k; c++) {
            double q = (double)count[c] / (double)n;
            out->share[c] = q;
            if (q > 0)
                out->entropy -= q * log(q);
        }
        out->n = n;
    }
    free(p);
    return rc;
}

static int confusion(yf_model *m, yf_dataset *d, const char *run_dir, const char *path,
                     const yf_show_opts *o, yf_error *err)
{
    (void)run_dir, (void)o;
    const yf_spec *s = m->spec;
    if (!logits_layer(s) || s->classes < 2)
        return yf__fail(err, YF_EUSAGE, "model '%s' is not a classifier: it has no "
                        "softmax_cross_entropy loss", s->name);
    images im;
    if (load_images(d, YF_SPLIT_TEST, 0, &im, err))
        return err->code;
    int k = s->classes;
    float *p = yf__malloc(im.n * k * sizeof *p);
    double *counts = yf__calloc((size_t)k * k, sizeof *counts);
    int rc = p && counts ? yf_classify(m, im.x, im.n, p, err)
                         : yf__fail(err, YF_ENOMEM, "out of memory");
    if (!rc) {
        size_t right = 0;
        for (size_t i = 0; i < im.n; i++) {
            int best = 0;
            for (int c = 1; c < k; c++)
                if (p[i * k + c] > p[i * k + best])
                    best = c;
            counts[im.y[i] * k + best] += 1;
            right += best == im.y[i];
        }
        char title[160];
        snprintf(title, sizeof title, "%s: test accuracy %.2f%% (%zu images)", s->name,
                 100.0 * right / im.n, im.n);
        rc = yf__heatmap_png(counts, k, k, title, "true class", "predicted class", path, err);
    }
    free(p), free(counts);
    free_images(&im);
    return rc;
}

/* ---- hashing pictures -------------------------------------------------------------- */

int yf_show_strip(yf_dataset *d, const yf_show_strip_opts *o, const char *path, yf_error *err)
{
    size_t dim = d->dim;
    if (o->query >= d->test_x.count)
        return yf__fail(err, YF_EUSAGE, "no test image %zu", o->query);
    int cols = o->n < 10 ? (int)o->n + 1 : 11;
    int rows = (int)((o->n + 1 + cols - 1) / cols);
    float *tiles = yf__malloc((size_t)rows * cols * dim * sizeof *tiles);
    char (*labels)[32] = yf__malloc((size_t)rows * sizeof *labels);
    const char **lp = yf__malloc((size_t)rows * sizeof *lp);
    int rc = tiles && labels && lp ? 0 : yf__fail(err, YF_ENOMEM, "out of memory");
    int qlabel = 0;
    for (int t = 0; t < rows * cols && !rc; t++) {
        float *tile = tiles + (size_t)t * dim;
        if (t == 0)
            yf__file_rows(d, true, o->query, 1, tile, &qlabel);
        else if ((size_t)t <= o->n) {
            if (o->items[t - 1] >= d->train_x.count) {
                rc = yf__fail(err, YF_EUSAGE, "no training image %u", o->items[t - 1]);
                break;
            }
            yf__file_rows(d, false, o->items[t - 1], 1, tile, NULL);
        } else
            tile[0] = NAN;
    }
    for (int r = 0; r < rows && !rc; r++) {
        size_t last = (size_t)(r + 1) * cols - 1 < o->n ? (size_t)(r + 1) * cols - 1 : o->n;
        if (r)
            snprintf(labels[r], sizeof labels[r], "%zu to %zu", (size_t)r * cols, last);
        else
            snprintf(labels[r], sizeof labels[r], "query, 1 to %zu", last);
        lp[r] = labels[r];
    }
    if (!rc) {
        char title[160];
        snprintf(title, sizeof title, "test image %zu (a %d) and its %zu nearest training images "
                 "by Hamming distance", o->query, qlabel, o->n);
        yf__grid g = {.rows = rows, .cols = cols, .th = (int)d->test_x.dims[1],
                      .tw = (int)d->test_x.dims[2], .tiles = tiles, .scale = 2, .gap = 2,
                      .title = title, .row_labels = lp};
        rc = yf__grid_png(&g, path, err);
    }
    free(tiles), free(labels), free(lp);
    return rc;
}

typedef struct {
    uint64_t code;
    size_t n;
} bucket_size;

static int by_size_desc(const void *a, const void *b)
{
    const bucket_size *x = a, *y = b;
    return x->n != y->n ? (x->n < y->n) - (x->n > y->n) : (x->code > y->code) - (x->code < y->code);
}

static int by_code(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The largest buckets of identical training-image codes, a row each. */
static int buckets(yf_model *m, yf_dataset *d, const char *run_dir, const char *path,
                   const yf_show_opts *o, yf_error *err)
{
    (void)run_dir;
    yf_hash_index ix;
    if (yf_hash_build(m, d, o->layer, &ix, err))
        return err->code;
    yf_hash_table *t = yf_hash_table_new(ix.db, ix.n_db, err);
    int rows = o->n > 0 ? o->n : 12, cols = o->k > 0 ? o->k : 12;
    size_t nd = t ? yf_hash_table_distinct(t) : 0;
    bucket_size *bs = t ? yf__malloc(nd * sizeof *bs + 1) : NULL;
    float *tiles = yf__malloc((size_t)rows * cols * d->dim * sizeof *tiles);
    char (*labels)[96] = yf__malloc((size_t)rows * sizeof *labels);
    const char **lp = yf__malloc((size_t)rows * sizeof *lp);
    int rc = !t ? err->code
             : bs && tiles && labels && lp ? 0 : yf__fail(err, YF_ENOMEM, "out of memory");
    if (!rc) {
        /* the distinct codes with their sizes, from a sorted copy */
        uint64_t *sorted = yf__malloc(ix.n_db * sizeof *sorted);
        if (!sorted)
            rc = yf__fail(err, YF_ENOMEM, "out of memory");
        size_t k = 0;
        for (size_t i = 0; !rc && i < ix.n_db; i++)
            sorted[i] = ix.db[i];
        if (!rc) {
            qsort(sorted, ix.n_db, sizeof *sorted, by_code);
            for (size_t i = 0; i < ix.n_db; i++)
                if (i == 0 || sorted[i] != sorted[i - 1])
                    bs[k].code = sorted[i], bs[k++].n = 1;
                else
                    bs[k - 1].n++;
            qsort(bs, k, sizeof *bs, by_size_desc);
        }
        free(sorted);
        /* the largest bucket of each majority class in turn (the largest
         * buckets overall are all ones), then the next largest of each */
        bool *taken = rc ? NULL : yf__calloc(k + 1, 1);
        int *pick = rc ? NULL : yf__malloc((size_t)rows * sizeof *pick), np = 0;
        if (!rc && (!taken || !pick))
            rc = yf__fail(err, YF_ENOMEM, "out of memory");
        for (int round = 0; !rc && np < rows && round < rows; round++) {
            bool seen[256] = {false};
            for (size_t b = 0; b < k && np < rows; b++) {
                if (taken[b])
                    continue;
                size_t n, count[256] = {0};
                const uint32_t *items = yf_hash_bucket(t, bs[b].code, &n);
                for (size_t i = 0; i < n; i++)
                    count[ix.db_labels[items[i]]]++;
                int top = 0;
                for (int c = 1; c < 256; c++)
                    if (count[c] > count[top])
                        top = c;
                if (!seen[top])
                    seen[top] = true, taken[b] = true, pick[np++] = (int)b;
            }
        }
        rows = np;
        for (int r = 0; r < rows && !rc; r++) {
            size_t n;
            const uint32_t *items = yf_hash_bucket(t, bs[pick[r]].code, &n);
            size_t count[256] = {0};
            for (size_t i = 0; i < n; i++)
                count[ix.db_labels[items[i]]]++;
            int top = 0;
            for (int c = 1; c < 256; c++)
                if (count[c] > count[top])
                    top = c;
            for (int c = 0; c < cols; c++) {
                float *tile = tiles + ((size_t)r * cols + c) * d->dim;
                if ((size_t)c < n)
                    yf__file_rows(d, false, items[c], 1, tile, NULL);
                else
                    tile[0] = NAN;
            }
            snprintf(labels[r], sizeof labels[r], "%0*llx: %zu images, %.0f%% %d",
                     (ix.bits + 3) / 4, (unsigned long long)bs[pick[r]].code, n,
                     100.0 * count[top] / n, top);
            lp[r] = labels[r];
        }
        free(taken), free(pick);
    }
    if (!rc) {
        char title[200];
        snprintf(title, sizeof title, "%s: the largest bucket of each digit among %zu buckets of "
                 "identical %d-bit codes of '%s' (training images)", m->spec->name, nd, ix.bits,
                 ix.layer);
        yf__grid g = {.rows = rows, .cols = cols, .th = (int)d->test_x.dims[1],
                      .tw = (int)d->test_x.dims[2], .tiles = tiles, .scale = 1, .gap = 1,
                      .title = title, .row_labels = lp};
        rc = yf__grid_png(&g, path, err);
    }
    yf_hash_table_free(t);
    yf_hash_index_free(&ix);
    free(bs), free(tiles), free(labels), free(lp);
    return rc;
}

/* The pictures: their names (yf_show_pictures) and their drawers, one list. */
#define PICTURES(XX)                                                                   \
    XX("reconstructions", reconstructions) XX("filters", filters)                      \
    XX("top-activations", top_activations) XX("curves", curves) XX("latent", latent)  \
    XX("samples", samples) XX("interpolation", interpolation)                          \
    XX("confusion", confusion) XX("buckets", buckets)

const char *const yf_show_pictures[] = {
#define XX(name, fn) name,
    PICTURES(XX)
#undef XX
    NULL,
};

const char *yf__picture_names(void)
{
    static char list[256];
    if (!list[0])
        for (int k = 0; yf_show_pictures[k]; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "",
                     yf_show_pictures[k]);
    return list;
}

int yf_show(yf_model *m, yf_dataset *d, const char *run_dir, const char *what, const char *path,
            const yf_show_opts *o, yf_error *err)
{
    static const yf_show_opts none = {0};
    static int (*const draw[])(yf_model *, yf_dataset *, const char *, const char *,
                               const yf_show_opts *, yf_error *) = {
#define XX(name, fn) fn,
        PICTURES(XX)
#undef XX
    };
    for (int k = 0; yf_show_pictures[k]; k++)
        if (!strcmp(what, yf_show_pictures[k]))
            return draw[k](m, d, run_dir, path, o ? o : &none, err);
    int n = 0;
    while (yf_show_pictures[n])
        n++;
    const char *near = yf__closest(what, yf_show_pictures, n);
    return yf__fail(err, YF_EUSAGE, "no picture '%s'%s%s%s (there are: %s)", what,
                    near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "",
                    yf__picture_names());
}
