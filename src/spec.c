/* YAML tree → validated yf_spec. Every key is checked against the list of
 * keys its section allows ("did you mean" for the others), every default is
 * written back into the tree so that the resolved config shows it. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- key checks and typed getters --------------------------------------- */

static int fail_key(yf_error *err, const yf__node *map, int i, const char *ctx,
                    const char *fmt, const char *a, const char *b)
{
    /* placed at the value for its file (a key added by an override is not
     * in map's file) and key path, then moved to the key itself */
    yf__fail_at(err, map->kid[i], YF_ESPEC, "x");
    err->line = map->kpos[2 * i];
    err->col = map->kpos[2 * i + 1];
    char msg[600];
    snprintf(msg, sizeof msg, fmt, a, b);
    snprintf(err->msg, sizeof err->msg, "%s%s", ctx, msg);
    return YF_ESPEC;
}

static int check_keys(const yf__node *map, const char *const *allowed, int n,
                      const char *ctx, yf_error *err)
{
    for (int i = 0; i < map->n; i++) {
        bool ok = false;
        for (int j = 0; j < n && !ok; j++)
            ok = strcmp(map->key[i], allowed[j]) == 0;
        if (ok)
            continue;
        const char *near = yf__closest(map->key[i], allowed, n);
        if (near)
            return fail_key(err, map, i, ctx, "unknown key '%s' (did you mean '%s'?)",
                            map->key[i], near);
        char list[400] = "";
        for (int j = 0; j < n; j++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                     j ? ", " : "", allowed[j]);
        return fail_key(err, map, i, ctx, "unknown key '%s' (expected one of: %s)",
                        map->key[i], list);
    }
    return 0;
}

static int expect_map(const yf__node *n, const char *what, const char *ctx,
                      yf_error *err)
{
    if (n->kind != YF__MAP)
        return yf__fail_at(err, n, YF_ESPEC, "%s'%s' must be a mapping of keys", ctx,
                           what);
    return 0;
}

/* The scalar at map[key]; inserts def when missing (def NULL: required). */
static const yf__node *scalar(yf__node *map, const char *key, const char *def,
                              const char *ctx, yf_error *err)
{
    const yf__node *n = yf__map_get(map, key);
    if (!n) {
        if (!def) {
            yf__fail_at(err, map, YF_ESPEC, "%smissing required key '%s'", ctx, key);
            return NULL;
        }
        const yf__node *d = yf__map_set_scalar(map, key, def);
        if (!d)
            yf__fail(err, YF_ENOMEM, "out of memory");
        return d;
    }
    if (n->kind != YF__SCALAR) {
        yf__fail_at(err, n, YF_ESPEC, "%s'%s' must be a single value, not a %s", ctx,
                    key, n->kind == YF__MAP ? "mapping" : "list");
        return NULL;
    }
    return n;
}

static int get_str(yf__node *map, const char *key, const char *def, char *out,
                   size_t cap, const char *ctx, yf_error *err)
{
    const yf__node *n = scalar(map, key, def, ctx, err);
    if (!n)
        return YF_ESPEC;
    if (strlen(n->str) >= cap)
        return yf__fail_at(err, n, YF_ESPEC, "%s'%s' is too long (at most %zu characters)",
                           ctx, key, cap - 1);
    strcpy(out, n->str);
    return 0;
}

static int get_num(yf__node *map, const char *key, const char *def, double lo,
                   double hi, bool integer, double *out, const char *ctx,
                   yf_error *err)
{
    const yf__node *n = scalar(map, key, def, ctx, err);
    if (!n)
        return YF_ESPEC;
    char *end;
    errno = 0;
    double v = strtod(n->str, &end);
    /* decimal only: strtod would also take hex ("0x10"), "inf" and "nan" */
    bool decimal = strspn(n->str, "+-.0123456789eE") == strlen(n->str);
    bool bad = n->quoted || !decimal || end == n->str || *end || errno || !isfinite(v) ||
               (integer && v != floor(v));
    if (!bad && integer && fabs(v) >= 9007199254740992.0) {
        /* beyond 2^53 a double rounds: the integer must be exactly what was
         * written, or it is refused below as out of range */
        char *e2;
        errno = 0;
        long long exact = strtoll(n->str, &e2, 10);
        if (errno || *e2 || (double)exact != v || (long long)v != exact)
            v = v > 0 ? INFINITY : -INFINITY;
    }
    if (bad && n->quoted)
        return yf__fail_at(err, n, YF_ESPEC, "%s'%s' must be %s, not the quoted string \"%s\"",
                           ctx, key, integer ? "an integer" : "a number", n->str);
    if (bad)
        return yf__fail_at(err, n, YF_ESPEC, "%s'%s' must be %s, not '%s'", ctx, key,
                           integer ? "an integer" : "a number", n->str);
    if (v < lo || v > hi) {
        if (integer)
            return yf__fail_at(err, n, YF_ESPEC, "%s'%s' must be between %.0f and %.0f, not %s",
                               ctx, key, lo, hi, n->str);
        return yf__fail_at(err, n, YF_ESPEC, "%s'%s' must be between %g and %g, not %s", ctx,
                           key, lo, hi, n->str);
    }
    *out = v;
    return 0;
}

static int get_int(yf__node *map, const char *key, const char *def, double lo,
                   double hi, int *out, const char *ctx, yf_error *err)
{
    double v;
    int rc = get_num(map, key, def, lo, hi, true, &v, ctx, err);
    if (!rc)
        *out = (int)v;
    return rc;
}

static int get_float(yf__node *map, const char *key, const char *def, double lo,
                     double hi, float *out, const char *ctx, yf_error *err)
{
    double v;
    int rc = get_num(map, key, def, lo, hi, false, &v, ctx, err);
    if (!rc)
        *out = (float)v;
    return rc;
}

static int get_bool(yf__node *map, const char *key, const char *def, bool *out,
                    const char *ctx, yf_error *err)
{
    const yf__node *n = scalar(map, key, def, ctx, err);
    if (!n)
        return YF_ESPEC;
    if (!n->quoted && strcmp(n->str, "true") == 0)
        *out = true;
    else if (!n->quoted && strcmp(n->str, "false") == 0)
        *out = false;
    else
        return yf__fail_at(err, n, YF_ESPEC, "%s'%s' must be true or false, not '%s'",
                           ctx, key, n->str);
    return 0;
}

static int get_enum(yf__node *map, const char *key, const char *def,
                    const char *const *names, int n_names, int *out,
                    const char *ctx, yf_error *err)
{
    const yf__node *n = scalar(map, key, def, ctx, err);
    if (!n)
        return YF_ESPEC;
    for (int i = 0; i < n_names; i++)
        if (strcmp(n->str, names[i]) == 0) {
            *out = i;
            return 0;
        }
    const char *near = yf__closest(n->str, names, n_names);
    if (near)
        return yf__fail_at(err, n, YF_ESPEC, "%sunknown %s '%s' (did you mean '%s'?)", ctx,
                           key, n->str, near);
    char list[400] = "";
    for (int i = 0; i < n_names; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 i ? ", " : "", names[i]);
    return yf__fail_at(err, n, YF_ESPEC, "%sunknown %s '%s' (expected one of: %s)", ctx,
                       key, n->str, list);
}

static const char *const act_names[] = {
#define XX(e, s) #s,
    YF_ACTIVATIONS(XX)
#undef XX
};
static const char *const init_names[] = {
#define XX(e, s) #s,
    YF_INITS(XX)
#undef XX
};
static const char *const layer_names[] = {
#define XX(e, s) #s,
    YF_LAYER_TYPES(XX)
#undef XX
};
static const char *const loss_names[] = {
#define XX(e, s) #s,
    YF_LOSS_TYPES(XX)
#undef XX
};
static const char *const optim_names[] = {
#define XX(e, s) #s,
    YF_OPTIMIZERS(XX)
#undef XX
};

#define CHECK(call)                                                         \
    do {                                                                    \
        int rc_ = (call);                                                   \
        if (rc_)                                                            \
            return rc_;                                                     \
    } while (0)

static bool valid_name(const char *s)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++)
        if (!(*p == '_' || *p == '-' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

static int get_name(yf__node *map, const char *key, const char *def, char *out,
                    const char *ctx, yf_error *err)
{
    CHECK(get_str(map, key, def, out, YF__NAME_MAX, ctx, err));
    if (!valid_name(out))
        return yf__fail_at(err, yf__map_get(map, key), YF_ESPEC,
                           "%s'%s' must be a name of letters, digits, '_' or '-', not '%s'",
                           ctx, key, out);
    return 0;
}

/* ---- sections -------------------------------------------------------------- */

/* A relative data.dir is relative to the folder of the file that says it
 * (an override or a spec given as text: the current directory), and
 * written back absolute, so that config.yaml works from anywhere. */
static int absolute_data_dir(yf_spec *s, yf__node *n, yf_error *err)
{
    if (s->data_dir[0] == '/')
        return 0;
    char base[PATH_MAX], joined[2 * PATH_MAX + 2], real[PATH_MAX];
    bool in_file = s->file_dir[0] && n->file && s->tree->file && !strcmp(n->file, s->tree->file);
    if (in_file)
        snprintf(base, sizeof base, "%s", s->file_dir);
    else if (!getcwd(base, sizeof base))
        return yf__fail_at(err, n, YF_EIO, "data: cannot resolve the relative 'dir' %s: the "
                           "current directory is unknown (%s)", s->data_dir, strerror(errno));
    const char *rel = s->data_dir;
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    if (!strcmp(rel, "."))
        rel = "";
    snprintf(joined, sizeof joined, "%s%s%s", base, rel[0] ? "/" : "", rel);
    const char *abs = realpath(joined, real) ? real : joined;
    if (strlen(abs) >= sizeof s->data_dir)
        return yf__fail_at(err, n, YF_ESPEC, "data: 'dir' resolves to a path of %zu characters "
                           "(at most %zu)", strlen(abs), sizeof s->data_dir - 1);
    char *copy = yf__strdup(abs);
    if (!copy)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    free(n->str);
    n->str = copy;
    n->quoted = false;
    snprintf(s->data_dir, sizeof s->data_dir, "%s", abs);
    return 0;
}

static int parse_data(yf_spec *s, yf__node *root, yf_error *err)
{
    yf__node *d = yf__map_get(root, "data");
    if (!d && !(d = yf__map_set_node(root, "data",
                                     yf__node_new(YF__MAP, root->file, root->line, root->col))))
        return yf__fail(err, YF_ENOMEM, "out of memory");
    static const char *const keys[] = {"source", "dir", "valid", "train_fraction",
                                       "train_count", "folds", "fold"};
    const char *ctx = "data: ";
    CHECK(expect_map(d, "data", "", err));
    CHECK(check_keys(d, keys, YF__ARRAY_LEN(keys), ctx, err));
    s->data_at = d;
    static const char *const sources[] = {"mnist", "fashion_mnist"};
    int src;
    CHECK(get_enum(d, "source", NULL, sources, 2, &src, ctx, err));
    strcpy(s->source, sources[src]);
    if (yf__map_get(d, "dir")) {
        CHECK(get_str(d, "dir", NULL, s->data_dir, sizeof s->data_dir, ctx, err));
        if (!s->data_dir[0])
            return yf__fail_at(err, yf__map_get(d, "dir"), YF_ESPEC,
                               "data: 'dir' is empty; remove it to read $YAFLOW_DATA or ./data");
        CHECK(absolute_data_dir(s, yf__map_get(d, "dir"), err));
    }
    double v;
    CHECK(get_num(d, "valid", "5000", 0, 59000, true, &v, ctx, err));
    s->valid = (long)v;
    if (yf__map_get(d, "train_count")) {
        if (yf__map_get(d, "train_fraction"))
            return yf__fail_at(err, yf__map_get(d, "train_count"), YF_ESPEC,
                               "data: give 'train_fraction' or 'train_count', not both");
        CHECK(get_num(d, "train_count", NULL, 1, 60000, true, &v, ctx, err));
        s->train_count = (long)v;
        s->train_fraction = 1.0;
    } else {
        CHECK(get_num(d, "train_fraction", "1.0", 1e-6, 1.0, false, &s->train_fraction, ctx,
                      err));
    }
    /* k-fold cross-validation: fold `fold` of `folds` is the validation
     * split, the others the training split */
    if (yf__map_get(d, "folds") || yf__map_get(d, "fold")) {
        CHECK(get_num(d, "folds", NULL, 2, 20, true, &v, ctx, err));
        s->folds = (int)v;
        CHECK(get_num(d, "fold", NULL, 0, s->folds - 1, true, &v, ctx, err));
        s->fold = (int)v;
        if (s->valid)
            return yf__fail_at(err, yf__map_get(d, "folds"), YF_ESPEC,
                               "data: with 'folds' the validation split is a fold: set valid: 0");
        if (s->train_count || s->train_fraction < 1.0)
            return yf__fail_at(err, yf__map_get(d, "folds"), YF_ESPEC,
                               "data: 'folds' trains on every other fold: it does not combine "
                               "with 'train_fraction' or 'train_count'");
    }
    return 0;
}

static int parse_inputs(yf__layer_spec *l, yf__node *map, const char *ctx,
                        yf_error *err)
{
    yf__node *in = yf__map_get(map, "input");
    l->inputs_at = in ? in : map;
    if (!in)
        return 0;
    if (in->kind == YF__SCALAR) {
        l->n_inputs = 1;
        return get_name(map, "input", NULL, l->inputs[0], ctx, err);
    }
    if (in->kind != YF__SEQ || in->n == 0 || in->n > YF__MAX_INPUTS)
        return yf__fail_at(err, in, YF_ESPEC,
                           "%s'input' must name a layer or list 1 to %d layers", ctx,
                           YF__MAX_INPUTS);
    for (int i = 0; i < in->n; i++) {
        if (in->kid[i]->kind != YF__SCALAR || !valid_name(in->kid[i]->str) ||
            strlen(in->kid[i]->str) >= YF__NAME_MAX)
            return yf__fail_at(err, in->kid[i], YF_ESPEC, "%s'input' entries must be layer names",
                               ctx);
        strcpy(l->inputs[i], in->kid[i]->str);
    }
    l->n_inputs = in->n;
    return 0;
}

/* `key` (activation or function) and alpha, which only elu and leaky_relu
 * take. */
static int parse_act(yf__layer_spec *l, yf__node *map, const char *key, const char *def,
                     const char *ctx, yf_error *err)
{
    int e = 0;
    CHECK(get_enum(map, key, def, act_names, YF_ACT_COUNT, &e, ctx, err));
    l->activation = (yf__act)e;
    if (l->activation == YF_ACT_ELU || l->activation == YF_ACT_LEAKY_RELU)
        return get_float(map, "alpha", l->activation == YF_ACT_ELU ? "1.0" : "0.01", 0, 100,
                         &l->alpha, ctx, err);
    if (yf__map_get(map, "alpha"))
        return yf__fail_at(err, yf__map_get(map, "alpha"), YF_ESPEC,
                           "%s'alpha' applies only to elu and leaky_relu", ctx);
    return 0;
}

/* `init: constant` takes its value from value_key (init_value,
 * bias_value), which no other initialiser takes. */
static int constant_value(yf__node *map, const char *init_key, const char *value_key,
                          yf__init init, float *out, const char *ctx, yf_error *err)
{
    yf__node *v = yf__map_get(map, value_key);
    if (init != YF_INIT_CONSTANT) {
        if (v)
            return yf__fail_at(err, v, YF_ESPEC, "%s'%s' is the value of %s: constant, but %s "
                               "is %s", ctx, value_key, init_key, init_key,
                               init_names[init]);
        return 0;
    }
    if (!v)
        return yf__fail_at(err, yf__map_get(map, init_key), YF_ESPEC, "%s%s: constant needs "
                           "its value: add %s: <number>", ctx, init_key, value_key);
    double d;
    CHECK(get_num(map, value_key, NULL, -1e6, 1e6, false, &d, ctx, err));
    *out = (float)d;
    return 0;
}

/* The keys of a layer with weights (dense, conv2d): activation, alpha,
 * init (when it owns its weight), use_bias, bias_init, trainable. */
static int parse_weighted(yf__layer_spec *l, yf__node *map, const char *act_key, bool owns_w,
                          const char *ctx, yf_error *err)
{
    CHECK(parse_act(l, map, act_key, "linear", ctx, err));
    int e = 0;
    if (owns_w) {
        CHECK(get_enum(map, "init", "glorot_uniform", init_names, YF__ARRAY_LEN(init_names), &e,
                       ctx, err));
        l->init = (yf__init)e;
        CHECK(constant_value(map, "init", "init_value", l->init, &l->init_value, ctx, err));
    } else if (yf__map_get(map, "init")) {
        return yf__fail_at(err, yf__map_get(map, "init"), YF_ESPEC,
                           "%s'init' does not apply: the layer uses another layer's "
                           "weights ('weights: %s')", ctx,
                           yf__map_get(map, "weights")->kind == YF__SCALAR
                               ? yf__map_get(map, "weights")->str : "?");
    }
    CHECK(get_bool(map, "use_bias", "true", &l->use_bias, ctx, err));
    if (!l->use_bias && yf__map_get(map, "bias_init"))
        return yf__fail_at(err, yf__map_get(map, "bias_init"), YF_ESPEC,
                           "%s'bias_init' does nothing with use_bias: false; remove one "
                           "of them", ctx);
    if (l->use_bias) {
        CHECK(get_enum(map, "bias_init", "zeros", init_names, YF__ARRAY_LEN(init_names), &e,
                       ctx, err));
        l->bias_init = (yf__init)e;
        CHECK(constant_value(map, "bias_init", "bias_value", l->bias_init, &l->bias_value, ctx,
                             err));
    } else if (yf__map_get(map, "bias_value")) {
        return yf__fail_at(err, yf__map_get(map, "bias_value"), YF_ESPEC,
                           "%s'bias_value' does nothing with use_bias: false", ctx);
    }
    return get_bool(map, "trainable", "true", &l->trainable, ctx, err);
}

/* `key`: one positive integer for both axes, or [height, width]. */
static int get_pair(yf__node *map, const char *key, const char *def, int lo, int hi, int *a,
                    int *b, const char *ctx, yf_error *err)
{
    yf__node *n = yf__map_get(map, key);
    if (n && n->kind == YF__SEQ) {
        bool ok = n->n == 2;
        int v[2] = {0, 0};
        for (int i = 0; ok && i < 2; i++) {
            char *end;
            const yf__node *k = n->kid[i];
            ok = k->kind == YF__SCALAR && !k->quoted && k->str[0] >= '0' && k->str[0] <= '9';
            long x = ok ? strtol(k->str, &end, 10) : 0;
            ok = ok && !*end && x >= lo && x <= hi;
            v[i] = (int)x;
        }
        if (!ok)
            return yf__fail_at(err, n, YF_ESPEC,
                               "%s'%s' must be an integer from %d to %d, or [height, width] of "
                               "them", ctx, key, lo, hi);
        *a = v[0], *b = v[1];
        return 0;
    }
    CHECK(get_int(map, key, def, lo, hi, a, ctx, err));
    *b = *a;
    return 0;
}

/* padding: same, valid (0), a number, or [height, width] */
static int get_padding(yf__layer_spec *l, yf__node *map, const char *ctx, yf_error *err)
{
    yf__node *n = yf__map_get(map, "padding");
    if (!n && !(n = yf__map_set_scalar(map, "padding", "valid")))
        return yf__fail(err, YF_ENOMEM, "out of memory");
    if (n->kind == YF__SCALAR && (!strcmp(n->str, "same") || !strcmp(n->str, "valid"))) {
        l->win.same = !strcmp(n->str, "same");
        return 0;
    }
    if (n->kind == YF__SCALAR && (n->str[0] < '0' || n->str[0] > '9'))
        return yf__fail_at(err, n, YF_ESPEC,
                           "%s'padding' must be same, valid, a number of pixels or [height, "
                           "width] of them, not '%s'", ctx, n->str);
    return get_pair(map, "padding", NULL, 0, 1 << 12, &l->win.ph, &l->win.pw, ctx, err);
}

static int parse_layer(yf_spec *s, int idx, yf__node *map, yf_error *err)
{
    yf__layer_spec *l = &s->layers[idx];
    l->at = map;
    char ctx[128];
    snprintf(ctx, sizeof ctx, "layer %d: ", idx + 1);
    CHECK(expect_map(map, "layers entry", ctx, err));
    const yf__node *given = yf__map_get(map, "name");
    if (given && given->kind == YF__SCALAR && valid_name(given->str) &&
        strlen(given->str) < YF__NAME_MAX)
        snprintf(ctx, sizeof ctx, "layer '%s': ", given->str);
    int type = 0;
    CHECK(get_enum(map, "type", NULL, layer_names, YF__ARRAY_LEN(layer_names), &type, ctx, err));
    l->type = (yf__layer_type)type;
    char defname[YF__NAME_MAX];
    snprintf(defname, sizeof defname, "%s_%d", layer_names[type], idx + 1);
    CHECK(get_name(map, "name", defname, l->name, ctx, err));
    snprintf(ctx, sizeof ctx, "layer '%s': ", l->name);
    for (int i = 0; i < idx; i++)
        if (strcmp(s->layers[i].name, l->name) == 0)
            return yf__fail_at(err, yf__map_get(map, "name"), YF_ESPEC,
                               "%sthe name is already used (line %d)", ctx,
                               s->layers[i].at->line);
    if (strcmp(s->input_name, l->name) == 0 || strcmp(s->labels_name, l->name) == 0)
        return yf__fail_at(err, yf__map_get(map, "name"), YF_ESPEC,
                           "%sthe name is already used by the model's %s", ctx,
                           strcmp(s->input_name, l->name) == 0 ? "input" : "labels");
    l->trainable = true;
    l->use_bias = true;
    switch (l->type) {
    case YF_LAYER_DENSE: {
        static const char *const keys[] = {"name", "type", "input", "units", "activation",
                                           "alpha", "init", "bias_init", "weights",
                                           "use_bias", "trainable", "init_value",
                                           "bias_value"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_int(map, "units", NULL, 1, 1 << 20, &l->units, ctx, err));
        CHECK(parse_weighted(l, map, "activation", !yf__map_get(map, "weights"), ctx, err));
        if (yf__map_get(map, "weights")) {
            char w[2 * YF__NAME_MAX];
            CHECK(get_str(map, "weights", NULL, w, sizeof w, ctx, err));
            l->weights_at = yf__map_get(map, "weights");
            size_t n = strlen(w);
            if (n > 2 && strcmp(w + n - 2, "^T") == 0) {
                l->weights_transposed = true;
                w[n -= 2] = 0;
            }
            if (n < 3 || strcmp(w + n - 2, ".W") != 0)
                return yf__fail_at(err, l->weights_at, YF_ESPEC,
                                   "%s'weights' must name another dense layer's weight, "
                                   "as 'layer.W' or 'layer.W^T', not '%s'", ctx,
                                   l->weights_at->str);
            w[n - 2] = 0;
            if (!valid_name(w) || strlen(w) >= YF__NAME_MAX)
                return yf__fail_at(err, l->weights_at, YF_ESPEC,
                                   "%s'weights' names no possible layer: '%s' is not a "
                                   "layer name", ctx, w);
            strcpy(l->weights, w);
        }
        break;
    }
    case YF_LAYER_ACTIVATION: {
        static const char *const keys[] = {"name", "type", "input", "function", "alpha"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(parse_act(l, map, "function", NULL, ctx, err));
        break;
    }
    case YF_LAYER_GAUSSIAN_NOISE: {
        static const char *const keys[] = {"name", "type", "input", "stddev"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_float(map, "stddev", NULL, 0, 1e6, &l->stddev, ctx, err));
        break;
    }
    case YF_LAYER_DROPOUT: {
        static const char *const keys[] = {"name", "type", "input", "rate"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_float(map, "rate", NULL, 0, 0.999, &l->rate, ctx, err));
        break;
    }
    case YF_LAYER_SAMPLE_NORMAL: {
        static const char *const keys[] = {"name", "type", "mean", "log_var", "eval"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_name(map, "mean", NULL, l->inputs[0], ctx, err));
        CHECK(get_name(map, "log_var", NULL, l->inputs[1], ctx, err));
        l->n_inputs = 2;
        l->inputs_at = map;
        static const char *const modes[] = {"sample", "mean"};
        int e = 0;
        CHECK(get_enum(map, "eval", "sample", modes, 2, &e, ctx, err));
        l->eval_mean = e == 1;
        return 0;
    }
    case YF_LAYER_CONCAT:
    case YF_LAYER_ADD:
    case YF_LAYER_MULTIPLY: {
        static const char *const keys[] = {"name", "type", "input"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(parse_inputs(l, map, ctx, err));
        int most = l->type == YF_LAYER_MULTIPLY ? 2 : YF__MAX_INPUTS;
        if (l->n_inputs < 2 || l->n_inputs > most)
            return yf__fail_at(err, l->inputs_at, YF_ESPEC,
                               "%s%s needs 'input' listing %s layers, such as [a, b]", ctx,
                               layer_names[l->type],
                               l->type == YF_LAYER_MULTIPLY ? "two" : "2 to 8");
        return 0;
    }
    case YF_LAYER_CONV2D:
    case YF_LAYER_CONV2D_TRANSPOSE: {
        static const char *const keys[] = {"name", "type", "input", "filters", "kernel",
                                           "stride", "padding", "dilation", "groups",
                                           "activation", "alpha", "init", "bias_init",
                                           "use_bias", "trainable", "init_value",
                                           "bias_value"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        yf__window *w = &l->win;
        CHECK(get_int(map, "filters", NULL, 1, 1 << 16, &l->units, ctx, err));
        CHECK(get_pair(map, "kernel", NULL, 1, 1 << 10, &w->kh, &w->kw, ctx, err));
        CHECK(get_pair(map, "stride", "1", 1, 1 << 10, &w->sh, &w->sw, ctx, err));
        CHECK(get_padding(l, map, ctx, err));
        CHECK(get_pair(map, "dilation", "1", 1, 1 << 10, &w->dh, &w->dw, ctx, err));
        CHECK(get_int(map, "groups", "1", 1, 1 << 16, &w->groups, ctx, err));
        CHECK(parse_weighted(l, map, "activation", true, ctx, err));
        break;
    }
    case YF_LAYER_MAX_POOL:
    case YF_LAYER_AVG_POOL: {
        static const char *const keys[] = {"name", "type", "input", "size", "stride",
                                           "padding"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        yf__window *w = &l->win;
        CHECK(get_pair(map, "size", "2", 1, 1 << 10, &w->kh, &w->kw, ctx, err));
        char def[32];
        snprintf(def, sizeof def, "%d", w->kh); /* the stride defaults to the size */
        if (w->kh != w->kw && !yf__map_get(map, "stride")) {
            char list[64];
            snprintf(list, sizeof list, "[%d, %d]", w->kh, w->kw);
            yf__node *st = yf__node_new(YF__SEQ, map->file, map->line, map->col);
            for (int k = 0; k < 2 && st; k++) {
                yf__node *v = yf__node_new(YF__SCALAR, map->file, map->line, map->col);
                char num[16];
                snprintf(num, sizeof num, "%d", k ? w->kw : w->kh);
                if (v && !(v->str = yf__strdup(num))) {
                    yf__node_free(v);
                    v = NULL;
                }
                if (yf__seq_push(st, v)) {
                    yf__node_free(st);
                    st = NULL;
                }
            }
            if (!yf__map_set_node(map, "stride", st))
                return yf__fail(err, YF_ENOMEM, "out of memory");
        }
        CHECK(get_pair(map, "stride", def, 1, 1 << 10, &w->sh, &w->sw, ctx, err));
        CHECK(get_padding(l, map, ctx, err));
        w->dh = w->dw = w->groups = 1;
        break;
    }
    case YF_LAYER_GLOBAL_AVG_POOL:
    case YF_LAYER_FLATTEN: {
        static const char *const keys[] = {"name", "type", "input"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        break;
    }
    case YF_LAYER_RESHAPE: {
        static const char *const keys[] = {"name", "type", "input", "shape"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        yf__node *sh = yf__map_get(map, "shape");
        if (!sh || sh->kind != YF__SEQ || sh->n < 1 || sh->n > YF__MAX_DIMS)
            return yf__fail_at(err, sh ? sh : map, YF_ESPEC,
                               "%s'shape' must list 1 to %d sizes, such as [64, 7, 7]", ctx,
                               YF__MAX_DIMS);
        for (int i = 0; i < sh->n; i++) {
            const yf__node *k = sh->kid[i];
            char *end;
            bool plain = k->kind == YF__SCALAR && !k->quoted && k->str[0] >= '0' && k->str[0] <= '9';
            long v = plain ? strtol(k->str, &end, 10) : 0;
            if (!plain || *end || v < 1 || v > (1 << 24))
                return yf__fail_at(err, k, YF_ESPEC, "%s'shape' sizes must be positive integers",
                                   ctx);
            l->shape[i] = (int)v;
        }
        l->shape_ndim = sh->n;
        break;
    }
    case YF_LAYER_RANDOM_SHIFT: {
        static const char *const keys[] = {"name", "type", "input", "max"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_pair(map, "max", "2", 0, 64, &l->win.ph, &l->win.pw, ctx, err));
        break;
    }
    case YF_LAYER_UPSAMPLE: {
        static const char *const keys[] = {"name", "type", "input", "factor"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_pair(map, "factor", "2", 1, 64, &l->win.sh, &l->win.sw, ctx, err));
        break;
    }
    case YF_LAYER_BATCH_NORM: {
        static const char *const keys[] = {"name", "type", "input", "momentum", "epsilon",
                                           "trainable"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_float(map, "momentum", "0.1", 0, 1, &l->momentum, ctx, err));
        CHECK(get_float(map, "epsilon", "1.0e-5", 1e-12, 1, &l->epsilon, ctx, err));
        CHECK(get_bool(map, "trainable", "true", &l->trainable, ctx, err));
        break;
    }
    case YF_LAYER_SCALE: {
        static const char *const keys[] = {"name", "type", "input", "factor"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_float(map, "factor", NULL, -1e9, 1e9, &l->factor, ctx, err));
        break;
    }
    }
    CHECK(parse_inputs(l, map, ctx, err));
    if (l->n_inputs > 1)
        return yf__fail_at(err, l->inputs_at, YF_ESPEC, "%sa %s layer takes one input, not %d",
                           ctx, layer_names[l->type], l->n_inputs);
    return 0;
}

static const char *last_layer(const yf_spec *s)
{
    return s->n_layers ? s->layers[s->n_layers - 1].name : s->input_name;
}

static int parse_loss(yf_spec *s, int idx, yf__node *map, yf_error *err)
{
    yf__loss_spec *l = &s->losses[idx];
    l->at = map;
    char ctx[128];
    snprintf(ctx, sizeof ctx, "loss %d: ", idx + 1);
    CHECK(expect_map(map, "loss entry", ctx, err));
    int type = 0;
    CHECK(get_enum(map, "type", NULL, loss_names, YF__ARRAY_LEN(loss_names), &type, ctx, err));
    l->type = (yf__loss_type)type;
    snprintf(ctx, sizeof ctx, "loss '%s': ", loss_names[type]);
    CHECK(get_float(map, "weight", "1.0", 0, 1e9, &l->weight, ctx, err));
    static const char *const reduces[] = {"mean", "sum"};
    int r = 0;
    switch (l->type) {
    case YF_LOSS_L2: {
        static const char *const keys[] = {"type", "weight", "params"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        yf__node *p = yf__map_get(map, "params");
        if (!p)
            return yf__fail_at(err, map, YF_ESPEC, "%smissing required key 'params'", ctx);
        l->params_at = p;
        if (p->kind != YF__SEQ || p->n == 0)
            return yf__fail_at(err, p, YF_ESPEC,
                               "%s'params' must list parameters such as [hidden1.W]", ctx);
        l->n_params = p->n;
        l->params = yf__calloc(p->n, sizeof *l->params);
        if (!l->params)
            return yf__fail(err, YF_ENOMEM, "out of memory");
        for (int i = 0; i < p->n; i++) {
            if (p->kid[i]->kind != YF__SCALAR || strlen(p->kid[i]->str) >= YF__NAME_MAX)
                return yf__fail_at(err, p->kid[i], YF_ESPEC,
                                   "%s'params' entries must be names such as hidden1.W", ctx);
            strcpy(l->params[i], p->kid[i]->str);
        }
        return 0;
    }
    case YF_LOSS_MSE:
    case YF_LOSS_SIGMOID_CE: {
        static const char *const keys[] = {"type", "weight", "input", "target", "reduce"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_name(map, "input", last_layer(s), l->input, ctx, err));
        CHECK(get_name(map, "target", NULL, l->target, ctx, err));
        CHECK(get_enum(map, "reduce", "mean", reduces, 2, &r, ctx, err));
        break;
    }
    case YF_LOSS_SOFTMAX_CE: {
        static const char *const keys[] = {"type", "weight", "input", "target"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        if (!s->labels_name[0])
            return yf__fail_at(err, map, YF_ESPEC,
                               "%sthe model has no labels: add model.labels: {name: y, "
                               "classes: 10}", ctx);
        CHECK(get_name(map, "input", last_layer(s), l->input, ctx, err));
        CHECK(get_name(map, "target", s->labels_name, l->target, ctx, err));
        break;
    }
    case YF_LOSS_KL_NORMAL: {
        static const char *const keys[] = {"type", "weight", "mean", "log_var", "reduce"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_name(map, "mean", NULL, l->input, ctx, err));
        CHECK(get_name(map, "log_var", NULL, l->target, ctx, err));
        CHECK(get_enum(map, "reduce", "sum", reduces, 2, &r, ctx, err));
        break;
    }
    case YF_LOSS_KL_SPARSITY: {
        static const char *const keys[] = {"type", "weight", "input", "target"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_name(map, "input", NULL, l->input, ctx, err));
        CHECK(get_float(map, "target", NULL, 1e-4, 0.9999, &l->rho, ctx, err));
        break;
    }
    case YF_LOSS_L1: {
        static const char *const keys[] = {"type", "weight", "input", "reduce"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_name(map, "input", NULL, l->input, ctx, err));
        CHECK(get_enum(map, "reduce", "sum", reduces, 2, &r, ctx, err));
        break;
    }
    }
    l->reduce_sum = r == 1;
    return 0;
}

static const char *const metric_names[] = {
#define XX(e, s) #s,
    YF_METRIC_TYPES(XX)
#undef XX
};

/* metrics: [accuracy, {type: mean_activation, input: coding}] */
static int parse_metric(yf_spec *s, yf__node *seq, int idx, yf_error *err)
{
    yf__metric_spec *ms = &s->metrics[idx];
    yf__node *map = seq->kid[idx];
    if (map->kind == YF__SCALAR) { /* "accuracy": the short form, made a map */
        yf__node *m = yf__node_new(YF__MAP, map->file, map->line, map->col);
        if (!m)
            return yf__fail(err, YF_ENOMEM, "out of memory");
        if (!yf__map_set_scalar(m, "type", map->str)) {
            yf__node_free(m);
            return yf__fail(err, YF_ENOMEM, "out of memory");
        }
        m->parent = seq;
        yf__node_free(map);
        seq->kid[idx] = map = m;
    }
    char ctx[128];
    snprintf(ctx, sizeof ctx, "metric %d: ", idx + 1);
    CHECK(expect_map(map, "metrics entry", ctx, err));
    ms->at = map;
    int type = 0;
    CHECK(get_enum(map, "type", NULL, metric_names, YF__ARRAY_LEN(metric_names), &type, ctx,
                   err));
    ms->type = (yf__metric_type)type;
    snprintf(ctx, sizeof ctx, "metric '%s': ", metric_names[type]);
    if (ms->type == YF_METRIC_ACCURACY) {
        static const char *const keys[] = {"type", "input", "target"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        if (!s->labels_name[0])
            return yf__fail_at(err, map, YF_ESPEC,
                               "%sthe model has no labels: add model.labels: {name: y, "
                               "classes: 10}", ctx);
        const char *def = last_layer(s);
        for (int t = 0; t < s->n_losses; t++)
            if (s->losses[t].type == YF_LOSS_SOFTMAX_CE) {
                def = s->losses[t].input;
                break;
            }
        CHECK(get_name(map, "input", def, ms->input, ctx, err));
        CHECK(get_name(map, "target", s->labels_name, ms->target, ctx, err));
    } else {
        static const char *const keys[] = {"type", "input"};
        CHECK(check_keys(map, keys, YF__ARRAY_LEN(keys), ctx, err));
        CHECK(get_name(map, "input", NULL, ms->input, ctx, err));
    }
    return 0;
}

static int parse_model(yf_spec *s, yf__node *root, yf_error *err)
{
    yf__node *m = yf__map_get(root, "model");
    if (!m)
        return yf__fail_at(err, root, YF_ESPEC, "missing required key 'model'");
    CHECK(expect_map(m, "model", "", err));
    static const char *const keys[] = {"input", "labels", "layers", "loss", "metrics"};
    CHECK(check_keys(m, keys, YF__ARRAY_LEN(keys), "model: ", err));
    yf__node *in = yf__map_get(m, "input");
    if (!in)
        return yf__fail_at(err, m, YF_ESPEC, "model: missing required key 'input'");
    CHECK(expect_map(in, "input", "model: ", err));
    static const char *const in_keys[] = {"name", "shape"};
    CHECK(check_keys(in, in_keys, 2, "model input: ", err));
    CHECK(get_name(in, "name", "x", s->input_name, "model input: ", err));
    yf__node *shape = yf__map_get(in, "shape");
    s->input_at = in;
    if (!shape)
        return yf__fail_at(err, in, YF_ESPEC, "model input: missing required key 'shape'");
    if (shape->kind != YF__SEQ || shape->n < 1 || shape->n > YF__MAX_DIMS)
        return yf__fail_at(err, shape, YF_ESPEC,
                           "model input: 'shape' must be a list of 1 to %d sizes, such as [784]",
                           YF__MAX_DIMS);
    s->input_ndim = shape->n;
    double total = 1;
    for (int i = 0; i < shape->n; i++) {
        char *end;
        const yf__node *k = shape->kid[i];
        bool plain = k->kind == YF__SCALAR && !k->quoted && k->str[0] >= '0' && k->str[0] <= '9';
        long v = plain ? strtol(k->str, &end, 10) : 0;
        if (!plain || *end || v < 1 || v > (1 << 24))
            return yf__fail_at(err, k, YF_ESPEC,
                               "model input: shape sizes must be positive integers");
        s->input_shape[i] = (int)v;
        total *= (double)v;
    }
    if (total > (double)(1 << 26))
        return yf__fail_at(err, shape, YF_ESPEC,
                           "model input: %.0f values per example is more than %d", total,
                           1 << 26);
    yf__node *lab = yf__map_get(m, "labels");
    if (lab) {
        CHECK(expect_map(lab, "labels", "model: ", err));
        static const char *const lab_keys[] = {"name", "classes"};
        CHECK(check_keys(lab, lab_keys, 2, "model labels: ", err));
        CHECK(get_name(lab, "name", "y", s->labels_name, "model labels: ", err));
        CHECK(get_int(lab, "classes", NULL, 2, 1 << 20, &s->classes, "model labels: ", err));
        s->labels_at = lab;
        if (strcmp(s->labels_name, s->input_name) == 0)
            return yf__fail_at(err, yf__map_get(lab, "name"), YF_ESPEC,
                               "model labels: the name '%s' is already the model input's",
                               s->labels_name);
    }
    yf__node *layers = yf__map_get(m, "layers");
    if (!layers || layers->kind != YF__SEQ || layers->n == 0)
        return yf__fail_at(err, layers ? layers : m, YF_ESPEC,
                           "model: 'layers' must be a non-empty list of layers");
    s->layers = yf__calloc(layers->n, sizeof *s->layers);
    if (!s->layers)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    s->n_layers = layers->n;
    for (int i = 0; i < layers->n; i++)
        CHECK(parse_layer(s, i, layers->kid[i], err));
    yf__node *loss = yf__map_get(m, "loss");
    if (!loss || loss->kind != YF__SEQ || loss->n == 0 || loss->n > YF__MAX_TERMS)
        return yf__fail_at(err, loss ? loss : m, YF_ESPEC,
                           "model: 'loss' must be a list of 1 to 16 loss terms");
    s->losses = yf__calloc(loss->n, sizeof *s->losses);
    if (!s->losses)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    s->n_losses = loss->n;
    for (int i = 0; i < loss->n; i++)
        CHECK(parse_loss(s, i, loss->kid[i], err));
    yf__node *met = yf__map_get(m, "metrics");
    if (met) {
        if (met->kind != YF__SEQ || met->n > YF__MAX_TERMS)
            return yf__fail_at(err, met, YF_ESPEC,
                               "model: 'metrics' must be a list of at most %d metrics, such "
                               "as [accuracy]", YF__MAX_TERMS);
        s->metrics = yf__calloc(met->n + 1, sizeof *s->metrics);
        if (!s->metrics)
            return yf__fail(err, YF_ENOMEM, "out of memory");
        s->n_metrics = met->n;
        for (int i = 0; i < met->n; i++)
            CHECK(parse_metric(s, met, i, err));
    }
    return 0;
}

static const char *const sched_names[] = {
#define XX(e, s) #s,
    YF_SCHEDULES(XX)
#undef XX
};

/* train.schedule: {type: cosine, warmup_epochs: 1, min_lr: 0} */
static int parse_schedule(yf_spec *s, yf__node *t, yf_error *err)
{
    yf__schedule_spec *sc = &s->schedule;
    yf__node *n = yf__map_get(t, "schedule");
    if (!n) {
        sc->type = YF_SCHED_CONSTANT;
        return 0;
    }
    const char *ctx = "train schedule: ";
    CHECK(expect_map(n, "schedule", "train: ", err));
    int type = 0;
    CHECK(get_enum(n, "type", NULL, sched_names, YF__ARRAY_LEN(sched_names), &type, ctx, err));
    sc->type = (yf__sched_type)type;
    static const char *const k_const[] = {"type", "warmup_epochs"};
    static const char *const k_step[] = {"type", "warmup_epochs", "step_epochs", "gamma"};
    static const char *const k_exp[] = {"type", "warmup_epochs", "gamma"};
    static const char *const k_cos[] = {"type", "warmup_epochs", "min_lr"};
    switch (sc->type) {
    case YF_SCHED_CONSTANT:
        CHECK(check_keys(n, k_const, YF__ARRAY_LEN(k_const), ctx, err));
        break;
    case YF_SCHED_STEP:
        CHECK(check_keys(n, k_step, YF__ARRAY_LEN(k_step), ctx, err));
        CHECK(get_num(n, "step_epochs", NULL, 1e-3, 1e6, false, &sc->step_epochs, ctx, err));
        CHECK(get_num(n, "gamma", "0.1", 1e-9, 1, false, &sc->gamma, ctx, err));
        break;
    case YF_SCHED_EXPONENTIAL:
        CHECK(check_keys(n, k_exp, YF__ARRAY_LEN(k_exp), ctx, err));
        CHECK(get_num(n, "gamma", NULL, 1e-9, 1, false, &sc->gamma, ctx, err));
        break;
    case YF_SCHED_COSINE:
        CHECK(check_keys(n, k_cos, YF__ARRAY_LEN(k_cos), ctx, err));
        CHECK(get_num(n, "min_lr", "0.0", 0, 1e3, false, &sc->min_lr, ctx, err));
        break;
    }
    CHECK(get_num(n, "warmup_epochs", "0", 0, 1e6, false, &sc->warmup_epochs, ctx, err));
    return 0;
}

/* train.early_stopping: {metric: valid_loss, patience: 5} */
static int parse_stop(yf_spec *s, yf__node *t, yf_error *err)
{
    yf__stop_spec *st = &s->stop;
    yf__node *n = yf__map_get(t, "early_stopping");
    if (!n)
        return 0;
    const char *ctx = "train early_stopping: ";
    CHECK(expect_map(n, "early_stopping", "train: ", err));
    static const char *const keys[] = {"metric", "patience", "mode", "min_delta"};
    CHECK(check_keys(n, keys, YF__ARRAY_LEN(keys), ctx, err));
    st->on = true;
    st->at = n;
    CHECK(get_str(n, "metric", "valid_loss", st->metric, sizeof st->metric, ctx, err));
    CHECK(get_int(n, "patience", "5", 1, 100000, &st->patience, ctx, err));
    static const char *const modes[] = {"min", "max"};
    int mode = 0;
    CHECK(get_enum(n, "mode", strstr(st->metric, "accuracy") ? "max" : "min", modes, 2, &mode,
                   ctx, err));
    st->maximize = mode == 1;
    CHECK(get_num(n, "min_delta", "0", 0, 1e9, false, &st->min_delta, ctx, err));
    return 0;
}

/* One source of init: {from: runs/dae, layers: [hidden1, {coding: code}]} */
static int parse_init_src(yf_spec *s, yf__node *n, int src, yf_error *err)
{
    const char *ctx = "init: ";
    CHECK(expect_map(n, "init", "", err));
    static const char *const keys[] = {"from", "layers"};
    CHECK(check_keys(n, keys, 2, ctx, err));
    yf__init_src *is = &s->init_src[src];
    is->at = n;
    CHECK(get_str(n, "from", NULL, is->from, sizeof is->from, ctx, err));
    if (!is->from[0])
        return yf__fail_at(err, yf__map_get(n, "from"), YF_ESPEC,
                           "init: 'from' must name a run folder or a .safetensors file");
    yf__node *ls = yf__map_get(n, "layers");
    if (!ls || ls->kind != YF__SEQ || ls->n == 0)
        return yf__fail_at(err, ls ? ls : n, YF_ESPEC,
                           "init: 'layers' must list the layers to copy, such as [hidden1, "
                           "coding] or [{new_name: old_name}]");
    yf__init_pair *np = yf__realloc(s->init, (s->n_init + ls->n) * sizeof *np);
    if (!np)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    s->init = np;
    for (int i = 0; i < ls->n; i++) {
        yf__node *k = ls->kid[i];
        yf__init_pair *ip = &s->init[s->n_init];
        memset(ip, 0, sizeof *ip);
        ip->at = k;
        ip->src = src;
        const char *to = NULL, *from = NULL;
        if (k->kind == YF__SCALAR)
            to = from = k->str;
        else if (k->kind == YF__MAP && k->n == 1 && k->kid[0]->kind == YF__SCALAR)
            to = k->key[0], from = k->kid[0]->str;
        if (!to || !valid_name(to) || !valid_name(from) || strlen(to) >= YF__NAME_MAX ||
            strlen(from) >= YF__NAME_MAX)
            return yf__fail_at(err, k, YF_ESPEC,
                               "init: 'layers' entries must be layer names, or {new: old} to "
                               "copy layer old of the source into layer new");
        strcpy(ip->to, to);
        strcpy(ip->from, from);
        bool known = false;
        for (int j = 0; j < s->n_layers; j++)
            known |= strcmp(s->layers[j].name, to) == 0;
        if (!known) {
            const char *cands[1024];
            int nc = 0;
            for (int j = 0; j < s->n_layers && nc < 1024; j++)
                cands[nc++] = s->layers[j].name;
            const char *near = yf__closest(to, cands, nc);
            return yf__fail_at(err, k, YF_ESPEC, "init: this model has no layer '%s'%s%s%s",
                               to, near ? " (did you mean '" : "", near ? near : "",
                               near ? "'?)" : "");
        }
        for (int j = 0; j < s->n_init; j++)
            if (!strcmp(s->init[j].to, to))
                return yf__fail_at(err, k, YF_ESPEC,
                                   "init: layer '%s' is already copied (line %d)", to,
                                   s->init[j].at->line);
        s->n_init++;
    }
    return 0;
}

/* init: one source, or a list of them */
static int parse_init(yf_spec *s, yf__node *root, yf_error *err)
{
    yf__node *n = yf__map_get(root, "init");
    if (!n)
        return 0;
    int count = n->kind == YF__SEQ ? n->n : 1;
    if (count < 1 || count > 16)
        return yf__fail_at(err, n, YF_ESPEC,
                           "init: give {from, layers}, or a list of 1 to 16 of them");
    s->init_src = yf__calloc(count, sizeof *s->init_src);
    if (!s->init_src)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    s->n_init_src = count;
    for (int i = 0; i < count; i++)
        CHECK(parse_init_src(s, n->kind == YF__SEQ ? n->kid[i] : n, i, err));
    return 0;
}

static int parse_train(yf_spec *s, yf__node *root, yf_error *err)
{
    yf__node *t = yf__map_get(root, "train");
    if (!t && !(t = yf__map_set_node(root, "train",
                                     yf__node_new(YF__MAP, root->file, root->line, root->col))))
        return yf__fail(err, YF_ENOMEM, "out of memory");
    CHECK(expect_map(t, "train", "", err));
    static const char *const keys[] = {"optimizer", "batch_size", "epochs", "schedule",
                                       "early_stopping", "log_every"};
    CHECK(check_keys(t, keys, YF__ARRAY_LEN(keys), "train: ", err));
    /* no default written: configs without it keep their hash */
    if (yf__map_get(t, "log_every"))
        CHECK(get_int(t, "log_every", NULL, 1, 100000000, &s->log_every, "train: ", err));
    CHECK(get_int(t, "batch_size", "32", 1, 65536, &s->batch_size, "train: ", err));
    s->batch_at = yf__map_get(t, "batch_size");
    CHECK(get_int(t, "epochs", "1", 0, 100000, &s->epochs, "train: ", err));
    CHECK(parse_schedule(s, t, err));
    CHECK(parse_stop(s, t, err));
    yf__node *o = yf__map_get(t, "optimizer");
    if (!o && !(o = yf__map_set_node(t, "optimizer",
                                     yf__node_new(YF__MAP, t->file, t->line, t->col))))
        return yf__fail(err, YF_ENOMEM, "out of memory");
    CHECK(expect_map(o, "optimizer", "train: ", err));
    const char *ctx = "optimizer: ";
    int type = 0;
    CHECK(get_enum(o, "type", "adam", optim_names, YF__ARRAY_LEN(optim_names), &type, ctx, err));
    yf__optim_spec *op = &s->optim;
    op->type = (yf__optim_type)type;
    static const char *const k_sgd[] = {"type", "learning_rate", "weight_decay"};
    static const char *const k_mom[] = {"type", "learning_rate", "weight_decay", "momentum",
                                        "nesterov"};
    static const char *const k_adam[] = {"type", "learning_rate", "weight_decay", "beta1",
                                         "beta2", "epsilon"};
    switch (op->type) {
    case YF_OPTIM_SGD:
        CHECK(check_keys(o, k_sgd, YF__ARRAY_LEN(k_sgd), "optimizer 'sgd': ", err));
        CHECK(get_float(o, "learning_rate", "0.01", 1e-12, 1e3, &op->lr, ctx, err));
        break;
    case YF_OPTIM_MOMENTUM:
        CHECK(check_keys(o, k_mom, YF__ARRAY_LEN(k_mom), "optimizer 'momentum': ", err));
        CHECK(get_float(o, "learning_rate", "0.01", 1e-12, 1e3, &op->lr, ctx, err));
        CHECK(get_float(o, "momentum", "0.9", 0, 0.99999, &op->momentum, ctx, err));
        CHECK(get_bool(o, "nesterov", "false", &op->nesterov, ctx, err));
        break;
    case YF_OPTIM_ADAM:
        CHECK(check_keys(o, k_adam, YF__ARRAY_LEN(k_adam), "optimizer 'adam': ", err));
        CHECK(get_float(o, "learning_rate", "0.001", 1e-12, 1e3, &op->lr, ctx, err));
        CHECK(get_float(o, "beta1", "0.9", 0, 0.99999, &op->beta1, ctx, err));
        CHECK(get_float(o, "beta2", "0.999", 0, 0.9999999, &op->beta2, ctx, err));
        CHECK(get_float(o, "epsilon", "1.0e-8", 1e-30, 1, &op->epsilon, ctx, err));
        break;
    }
    CHECK(get_float(o, "weight_decay", "0.0", 0, 1e3, &op->weight_decay, ctx, err));
    return 0;
}

/* hash: {layer: NAME}: the layer yaflow hash rounds into binary codes */
static int parse_hash(yf_spec *s, yf__node *root, yf_error *err)
{
    yf__node *n = yf__map_get(root, "hash");
    if (!n)
        return 0;
    CHECK(expect_map(n, "hash", "", err));
    static const char *const keys[] = {"layer"};
    CHECK(check_keys(n, keys, YF__ARRAY_LEN(keys), "hash: ", err));
    CHECK(get_name(n, "layer", NULL, s->hash_layer, "hash: ", err));
    const char *cands[1024];
    int nc = 0;
    for (int i = 0; i < s->n_layers; i++) {
        if (!strcmp(s->layers[i].name, s->hash_layer))
            return 0;
        if (nc < 1024)
            cands[nc++] = s->layers[i].name;
    }
    const char *near = yf__closest(s->hash_layer, cands, nc);
    return yf__fail_at(err, yf__map_get(n, "layer"), YF_ESPEC, "hash: no layer '%s'%s%s%s",
                       s->hash_layer, near ? " (did you mean '" : "", near ? near : "",
                       near ? "'?)" : "");
}

static int parse_root(yf_spec *s, yf_error *err)
{
    yf__node *root = s->tree->root;
    if (root->kind != YF__MAP)
        return yf__fail_at(err, root, YF_ESPEC,
                           "a model spec must be a mapping with name, data, model and train");
    static const char *const keys[] = {"name", "seed", "data", "init", "model", "train", "hash"};
    CHECK(check_keys(root, keys, YF__ARRAY_LEN(keys), "", err));
    CHECK(get_name(root, "name", NULL, s->name, "", err));
    double seed;
    CHECK(get_num(root, "seed", "42", 0, 9007199254740992.0, true, &seed, "", err));
    s->seed = (uint64_t)seed;
    CHECK(parse_data(s, root, err));
    CHECK(parse_model(s, root, err));
    CHECK(parse_init(s, root, err));
    CHECK(parse_train(s, root, err));
    CHECK(parse_hash(s, root, err));
    return 0;
}

static yf_spec *finish(yf__tree *t, const char *path, const char *const *ov, int n_ov,
                       yf_error *err)
{
    if (!t)
        return NULL;
    for (int i = 0; i < n_ov; i++)
        if (yf__tree_override(t, ov[i], err)) {
            yf__tree_free(t);
            return NULL;
        }
    yf_spec *s = yf__calloc(1, sizeof *s);
    if (!s) {
        yf__tree_free(t);
        yf__fail(err, YF_ENOMEM, "out of memory");
        return NULL;
    }
    s->tree = t;
    char real[PATH_MAX];
    if (path && realpath(path, real)) {
        char *slash = strrchr(real, '/');
        if (slash == real)
            slash[1] = 0;
        else if (slash)
            *slash = 0;
        if (strlen(real) < sizeof s->file_dir)
            strcpy(s->file_dir, real);
    }
    if (parse_root(s, err)) {
        yf_spec_free(s);
        return NULL;
    }
    return s;
}

yf_spec *yf_spec_load(const char *path, const char *const *ov, int n_ov,
                      yf_error *err)
{
    return finish(yf__tree_load(path, err), path, ov, n_ov, err);
}

yf_spec *yf_spec_parse(const char *text, size_t len, const char *name,
                       const char *const *ov, int n_ov, yf_error *err)
{
    return finish(yf__tree_parse(text, len, name, err), NULL, ov, n_ov, err);
}

void yf_spec_free(yf_spec *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_losses; i++)
        free(s->losses[i].params);
    free(s->losses);
    free(s->layers);
    free(s->metrics);
    free(s->init);
    free(s->init_src);
    yf__tree_free(s->tree);
    free(s);
}

const char *yf_spec_name(const yf_spec *s) { return s->name; }
int yf_spec_epochs(const yf_spec *s) { return s->epochs; }

/* Every leaf of the tree below n, as the dotted path an override takes: a
 * list element by its name when it has one, else by its index; a list of
 * scalars (a shape) is a leaf. */
static void keys_below(const yf__node *n, char *path, size_t len, size_t cap,
                       void (*visit)(const char *, void *), void *ctx)
{
    bool leaf = n->kind == YF__SCALAR;
    if (n->kind == YF__SEQ) {
        leaf = true;
        for (int i = 0; i < n->n && leaf; i++)
            leaf = n->kid[i]->kind == YF__SCALAR;
    }
    if (leaf) {
        if (len)
            visit(path, ctx);
        return;
    }
    for (int i = 0; i < n->n; i++) {
        const yf__node *k = n->kid[i], *name = NULL;
        char step[160];
        if (n->kind == YF__MAP)
            snprintf(step, sizeof step, "%s", n->key[i]);
        else if (k->kind == YF__MAP && (name = yf__map_get(k, "name")) &&
                 name->kind == YF__SCALAR && name->str)
            snprintf(step, sizeof step, "%s", name->str);
        else
            snprintf(step, sizeof step, "%d", i);
        size_t l = len + (size_t)snprintf(path + len, cap - len, "%s%s", len ? "." : "", step);
        if (l < cap)
            keys_below(k, path, l, cap, visit, ctx);
        path[len] = 0;
    }
}

void yf_spec_keys(const yf_spec *s, void (*visit)(const char *key, void *ctx), void *ctx)
{
    char path[1024] = "";
    keys_below(s->tree->root, path, 0, sizeof path, visit, ctx);
}

const char *yf_closest(const char *word, const char *const *candidates, int n)
{
    return yf__closest(word, candidates, n);
}

int yf_spec_set_data_dir(yf_spec *s, const char *dir, yf_error *err)
{
    if (!dir || !dir[0] || strlen(dir) >= sizeof s->data_dir)
        return yf__fail(err, YF_EUSAGE, "--data must name a folder of 1 to %zu characters",
                        sizeof s->data_dir - 1);
    yf__node *n = yf__node_new(YF__SCALAR, "--data", 1, 1);
    if (n && !(n->str = yf__strdup(dir))) {
        yf__node_free(n);
        n = NULL;
    }
    if (!n || !yf__map_set_node((yf__node *)s->data_at, "dir", n))
        return yf__fail(err, YF_ENOMEM, "out of memory");
    snprintf(s->data_dir, sizeof s->data_dir, "%s", dir);
    return absolute_data_dir(s, n, err);
}

int yf_spec_write(const yf_spec *s, FILE *out)
{
    fprintf(out, "# resolved by yaflow from %s: every default is explicit\n",
            s->tree->file);
    yf__tree_emit(s->tree->root, out);
    return ferror(out) ? YF_EIO : 0;
}

void yf_spec_sample_means(yf_spec *s)
{
    for (int i = 0; i < s->n_layers; i++)
        if (s->layers[i].type == YF_LAYER_SAMPLE_NORMAL)
            s->layers[i].eval_mean = true;
}
