/* Experiments (yf_experiment_run): a YAML file listing steps (trainings,
 * pictures, samples, codes) run in order, where a step may refer to an
 * earlier training's folder as ${name}. Every step records a hash of what
 * it was computed from (the resolved config, its own text, the hashes of
 * the runs it refers to); a step whose record matches is skipped, so an
 * interrupted or failed experiment continues where it stopped and a
 * changed step reruns, with the steps that depend on it. At the end,
 * report.md holds the results table (mean ± standard deviation over seeds)
 * and the pictures. See docs/experiments.md. */
#define _GNU_SOURCE /* open_memstream */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { MAX_STEPS = 64, MAX_REPEAT = 100, MAX_METRICS = 32, MAX_PICTURES = 8 };

typedef enum { STEP_TRAIN, STEP_SHOW, STEP_SAMPLE, STEP_ENCODE, STEP_HASH, STEP_TUNE } step_kind;
static const char *const kind_names[] = {"train", "show", "sample", "encode", "hash", "tune"};
enum { N_KINDS = 6 };

/* A named value a run finished with: test metrics, seconds, scores. */
typedef struct result {
    char name[96];
    double value;
} result;

typedef struct run {
    char dir[1024];
    uint64_t hash;
    bool done;
    result res[MAX_METRICS];
    int n_res;
} run;

typedef struct step {
    const yf__node *at;
    step_kind kind;
    char name[YF__NAME_MAX];
    const yf__node *target; /* train: the model file; others: the run */
    char model[1024];       /* train: the model file, relative to the cwd */
    const yf__node *set;    /* train: overrides, a mapping */
    int repeat;
    const yf__node *pictures; /* show: a list, or one name */
    int n, k;
    uint64_t seed;
    char layer[YF__NAME_MAX], split[8];
    bool mean;
    const yf__node *score; /* sample: the classifier's run */
    /* tune */
    const yf__node *params; /* grid: or random: mapping of dotted keys to choices */
    bool random_search;
    int trials, folds, rungs, eta;
    uint64_t search_seed;
    char metric[96];
    bool maximize;
    char best_label[512];
    run *runs;             /* repeat of them (1 for steps other than train) */
} step;

typedef struct experiment {
    yf__tree *tree;
    const char *path;
    char name[YF__NAME_MAX];
    const char *description;
    char dir[1024];
    step steps[MAX_STEPS];
    int n_steps;
    char metrics[MAX_METRICS][96];
    int n_metrics;
    const yf_experiment_opts *o;
} experiment;

static int parse_tune(step *st, const yf__node *sn, const char *ctx, yf_error *err);
static bool lookup(const run *r, const char *name, double *v);
static int run_tune(experiment *e, int si, yf_error *err);

/* ---- hashing: FNV-1a, 64 bits (yf__fnv1a) -------------------------------------- */


/* The text of a YAML node (flow style) or, when n is NULL, of a resolved
 * spec, NUL-terminated, its length in *len; NULL when memory runs out (the
 * stream could not be opened or grown). Free it. */
static char *emitted(const yf__node *n, const yf_spec *spec, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    if (n) {
        yf__tree_emit_flow(n, f);
    } else { /* the resolved spec, but for where its data are */
        const yf__node *data = yf__map_get(spec->tree->root, "data");
        fputs("# resolved\n", f);
        yf__tree_emit_except(spec->tree->root, data ? yf__map_get(data, "dir") : NULL, f);
    }
    int bad = ferror(f);
    if (fclose(f) || bad || !text) {
        free(text);
        return NULL;
    }
    return text;
}

/* Folds into *h the text of a YAML node or, when n is NULL, of a resolved
 * spec without its first line (which names the file, and may name it by
 * another path). A hash of less than the whole text would take a changed
 * step for a finished one, so a failure to write it is an error. */
static int fnv_emitted(uint64_t *h, const yf__node *n, const yf_spec *spec, yf_error *err)
{
    size_t len = 0;
    char *text = emitted(n, spec, &len);
    if (!text)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    const char *body = text;
    if (!n && (body = memchr(text, '\n', len)) != NULL)
        body++;
    else
        body = text;
    *h = yf__fnv1a(*h, body, len - (size_t)(body - text));
    free(text);
    return 0;
}

/* ---- parsing --------------------------------------------------------------------- */

static const char *scalar(const yf__node *map, const char *key)
{
    const yf__node *v = yf__map_get(map, key);
    return v && v->kind == YF__SCALAR ? v->str : NULL;
}

static int check_keys(const yf__node *map, const char *const *allowed, int n, const char *ctx,
                      yf_error *err)
{
    for (int i = 0; i < map->n; i++) {
        bool ok = false;
        for (int k = 0; k < n; k++)
            ok |= !strcmp(map->key[i], allowed[k]);
        if (!ok) {
            const char *near = yf__closest(map->key[i], allowed, n);
            return yf__fail_at(err, map->kid[i], YF_ESPEC, "%sunknown key '%s'%s%s%s", ctx,
                               map->key[i], near ? " (did you mean '" : "", near ? near : "",
                               near ? "'?)" : "");
        }
    }
    return 0;
}

static int get_int(const yf__node *map, const char *key, long lo, long hi, long *out,
                   const char *ctx, yf_error *err)
{
    const yf__node *v = yf__map_get(map, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long x = v->kind == YF__SCALAR ? strtol(v->str, &end, 10) : 0;
    if (v->kind != YF__SCALAR || !*v->str || *end || errno || x < lo || x > hi)
        return yf__fail_at(err, v, YF_ESPEC, "%s'%s' must be an integer from %ld to %ld", ctx,
                           key, lo, hi);
    *out = x;
    return 0;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= YF__NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || s[i] == '-' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return true;
}

static const char *show_known(const char *what)
{
    for (int k = 0; yf_show_pictures[k]; k++)
        if (!strcmp(what, yf_show_pictures[k]))
            return what;
    return NULL;
}

static int parse_step(experiment *e, const yf__node *sn, int index, yf_error *err)
{
    step *st = &e->steps[e->n_steps];
    memset(st, 0, sizeof *st);
    st->at = sn;
    st->repeat = 1;
    char ctx[160];
    snprintf(ctx, sizeof ctx, "step %d: ", index + 1);
    if (sn->kind != YF__MAP)
        return yf__fail_at(err, sn, YF_ESPEC, "%sa step is a mapping with one of train, show, "
                           "sample, encode", ctx);
    int kinds = 0;
    for (int k = 0; k < N_KINDS; k++)
        if (yf__map_get(sn, kind_names[k])) {
            st->kind = (step_kind)k;
            st->target = yf__map_get(sn, kind_names[k]);
            kinds++;
        }
    if (kinds != 1)
        return yf__fail_at(err, sn, YF_ESPEC, "%sgive exactly one of train (a model file), show, "
                           "sample, encode or hash (a run, ${name})", ctx);
    if (st->target->kind != YF__SCALAR || !*st->target->str)
        return yf__fail_at(err, st->target, YF_ESPEC, "%s'%s' must be a %s", ctx,
                           kind_names[st->kind], st->kind == STEP_TRAIN ? "model file" :
                           "run folder or ${step}");
    const char *name = scalar(sn, "name");
    if (name && !valid_name(name))
        return yf__fail_at(err, yf__map_get(sn, "name"), YF_ESPEC, "%s'name' must be 1 to %d "
                           "characters from A-Z a-z 0-9 _ -", ctx, YF__NAME_MAX - 1);
    if (!name && (st->kind == STEP_TRAIN || st->kind == STEP_TUNE))
        return yf__fail_at(err, sn, YF_ESPEC, "%sa %s step needs a 'name' (its folder, and "
                           "how later steps refer to it: ${name})", ctx, kind_names[st->kind]);
    if (name)
        snprintf(st->name, sizeof st->name, "%s", name);
    else
        snprintf(st->name, sizeof st->name, "%s-%d", kind_names[st->kind], index + 1);
    snprintf(ctx, sizeof ctx, "step '%s': ", st->name);
    for (int i = 0; i < e->n_steps; i++)
        if (!strcmp(e->steps[i].name, st->name))
            return yf__fail_at(err, yf__map_get(sn, "name") ? yf__map_get(sn, "name") : sn,
                               YF_ESPEC, "%sthe name is already step %d's", ctx, i + 1);
    static const char *const train_keys[] = {"name", "train", "set", "repeat"};
    static const char *const show_keys[] = {"name", "show", "pictures", "n", "k", "layer",
                                            "seed"};
    static const char *const sample_keys[] = {"name", "sample", "n", "seed", "score"};
    static const char *const encode_keys[] = {"name", "encode", "layer", "split", "mean"};
    static const char *const hash_keys[] = {"name", "hash", "layer", "n"};
    static const char *const tune_keys[] = {"name", "tune", "set", "grid", "random", "folds",
                                            "metric", "maximize", "halving", "layer", "n"};
    const char *const *keys[] = {train_keys, show_keys, sample_keys, encode_keys, hash_keys,
                                 tune_keys};
    const int n_keys[] = {4, 7, 5, 5, 4, 11};
    if (check_keys(sn, keys[st->kind], n_keys[st->kind], ctx, err))
        return err->code;
    long v = 0;
    if (get_int(sn, "repeat", 1, MAX_REPEAT, &v, ctx, err))
        return err->code;
    st->repeat = v ? (int)v : 1;
    v = 0;
    if (get_int(sn, "n", 1, st->kind == STEP_SAMPLE ? 100000 : st->kind == STEP_HASH ? 100000000 : 10000,
                &v, ctx, err))
        return err->code;
    st->n = (int)v;
    v = 0;
    if (get_int(sn, "k", 1, 100, &v, ctx, err))
        return err->code;
    st->k = (int)v;
    v = 0;
    if (get_int(sn, "seed", 1, 2147483647, &v, ctx, err))
        return err->code;
    st->seed = (uint64_t)v;
    st->set = yf__map_get(sn, "set");
    if (st->set && st->set->kind != YF__MAP)
        return yf__fail_at(err, st->set, YF_ESPEC, "%s'set' must map dotted keys to values, as "
                           "{train.epochs: 3, data.train_fraction: 0.1}", ctx);
    const char *layer = scalar(sn, "layer");
    if (layer)
        snprintf(st->layer, sizeof st->layer, "%s", layer);
    if (st->kind == STEP_ENCODE && !layer)
        return yf__fail_at(err, sn, YF_ESPEC, "%san encode step needs 'layer'", ctx);
    const char *split = scalar(sn, "split");
    snprintf(st->split, sizeof st->split, "%s", split ? split : "test");
    if (strcmp(st->split, "test") && strcmp(st->split, "valid") && strcmp(st->split, "train"))
        return yf__fail_at(err, yf__map_get(sn, "split"), YF_ESPEC, "%s'split' must be train, "
                           "valid or test", ctx);
    const char *mean = scalar(sn, "mean");
    if (mean && strcmp(mean, "true") && strcmp(mean, "false"))
        return yf__fail_at(err, yf__map_get(sn, "mean"), YF_ESPEC, "%s'mean' must be true or "
                           "false", ctx);
    st->mean = mean && !strcmp(mean, "true");
    st->score = yf__map_get(sn, "score");
    if (st->score && (st->score->kind != YF__SCALAR || !*st->score->str))
        return yf__fail_at(err, st->score, YF_ESPEC, "%s'score' must be a classifier's run", ctx);
    st->pictures = yf__map_get(sn, "pictures");
    if (st->kind == STEP_SHOW) {
        const yf__node *p = st->pictures;
        if (!p)
            return yf__fail_at(err, sn, YF_ESPEC, "%sa show step needs 'pictures', a list of: "
                               "%s", ctx, yf__picture_names());
        int np = p->kind == YF__SCALAR ? 1 : p->kind == YF__SEQ ? p->n : 0;
        if (np < 1 || np > MAX_PICTURES)
            return yf__fail_at(err, p, YF_ESPEC, "%s'pictures' must list 1 to %d pictures", ctx,
                               MAX_PICTURES);
        for (int i = 0; i < np; i++) {
            const yf__node *w = p->kind == YF__SCALAR ? p : p->kid[i];
            if (w->kind != YF__SCALAR || !show_known(w->str)) {
                int all = 0;
                while (yf_show_pictures[all])
                    all++;
                const char *near = w->kind == YF__SCALAR
                                       ? yf__closest(w->str, yf_show_pictures, all) : NULL;
                return yf__fail_at(err, w, YF_ESPEC, "%sno picture '%s'%s%s%s (there are: %s)", ctx,
                                   w->kind == YF__SCALAR ? w->str : "?",
                                   near ? "; did you mean '" : "", near ? near : "",
                                   near ? "'?" : "", yf__picture_names());
            }
        }
    }
    if (st->kind == STEP_TUNE && parse_tune(st, sn, ctx, err))
        return err->code;
    if (st->kind == STEP_TRAIN || st->kind == STEP_TUNE) {
        /* the model file is relative to the experiment file's folder */
        const char *t = st->target->str;
        const char *slash = strrchr(e->path, '/');
        if (t[0] == '/' || !slash)
            snprintf(st->model, sizeof st->model, "%s", t);
        else
            snprintf(st->model, sizeof st->model, "%.*s/%s", (int)(slash - e->path), e->path, t);
    }
    st->runs = yf__calloc(st->repeat, sizeof *st->runs);
    if (!st->runs)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    e->n_steps++;
    return 0;
}

static int parse(experiment *e, yf_error *err)
{
    const yf__node *root = e->tree->root;
    if (root->kind != YF__MAP)
        return yf__fail_at(err, root, YF_ESPEC, "an experiment is a mapping with 'name' and "
                           "'steps'");
    static const char *const top[] = {"name", "description", "metrics", "steps"};
    if (check_keys(root, top, 4, "", err))
        return err->code;
    const char *name = scalar(root, "name");
    if (!name || !valid_name(name))
        return yf__fail_at(err, yf__map_get(root, "name") ? yf__map_get(root, "name") : root,
                           YF_ESPEC, "'name' must be 1 to %d characters from A-Z a-z 0-9 _ - "
                           "(the experiment's folder is runs/<name>)", YF__NAME_MAX - 1);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->description = scalar(root, "description");
    const yf__node *metrics = yf__map_get(root, "metrics");
    if (metrics) {
        if (metrics->kind != YF__SEQ || metrics->n > MAX_METRICS)
            return yf__fail_at(err, metrics, YF_ESPEC, "'metrics' must list up to %d names, as "
                               "[test_accuracy, test_loss]", MAX_METRICS);
        for (int i = 0; i < metrics->n; i++) {
            if (metrics->kid[i]->kind != YF__SCALAR || strlen(metrics->kid[i]->str) >= 96)
                return yf__fail_at(err, metrics->kid[i], YF_ESPEC, "'metrics' entries must be "
                                   "names");
            snprintf(e->metrics[e->n_metrics++], 96, "%s", metrics->kid[i]->str);
        }
    }
    const yf__node *steps = yf__map_get(root, "steps");
    if (!steps || steps->kind != YF__SEQ || steps->n < 1 || steps->n > MAX_STEPS)
        return yf__fail_at(err, steps ? steps : root, YF_ESPEC, "'steps' must list 1 to %d steps",
                           MAX_STEPS);
    for (int i = 0; i < steps->n; i++)
        if (parse_step(e, steps->kid[i], i, err))
            return err->code;
    return 0;
}

/* ---- references: ${name} -------------------------------------------------------- */

/* Replaces each ${name} in `in` by the folder of run `rep` of the earlier
 * train step `name` (its first run when the two steps repeat differently)
 * and folds that run's hash into *h. */
static int expand(experiment *e, int self, int rep, const yf__node *at, const char *in,
                  char *out, size_t cap, uint64_t *h, yf_error *err)
{
    size_t l = 0;
    const step *me = &e->steps[self];
    for (const char *p = in; *p;) {
        if (p[0] != '$' || p[1] != '{') {
            if (l + 1 >= cap)
                return yf__fail_at(err, at, YF_ESPEC, "step '%s': value too long", me->name);
            out[l++] = *p++;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end)
            return yf__fail_at(err, at, YF_ESPEC, "step '%s': '${' without '}'", me->name);
        char ref[YF__NAME_MAX + 1];
        snprintf(ref, sizeof ref, "%.*s", (int)(end - p - 2 < YF__NAME_MAX ? end - p - 2 : YF__NAME_MAX),
                 p + 2);
        int found = -1;
        for (int i = 0; i < self; i++)
            if (!strcmp(e->steps[i].name, ref))
                found = i;
        if (found < 0 || (e->steps[found].kind != STEP_TRAIN && e->steps[found].kind != STEP_TUNE)) {
            const char *cands[MAX_STEPS];
            int n = 0;
            for (int i = 0; i < self; i++)
                if (e->steps[i].kind == STEP_TRAIN || e->steps[i].kind == STEP_TUNE)
                    cands[n++] = e->steps[i].name;
            const char *near = yf__closest(ref, cands, n);
            bool later = false;
            for (int i = self; i < e->n_steps; i++)
                later |= !strcmp(e->steps[i].name, ref);
            return yf__fail_at(err, at, YF_ESPEC, "step '%s': ${%s} %s%s%s%s", me->name, ref,
                               later ? "is not an earlier step: a step may refer only to the "
                                       "train steps before it"
                                     : "names no earlier train step",
                               near ? " (did you mean ${" : "", near ? near : "",
                               near ? "}?)" : "");
        }
        const step *t = &e->steps[found];
        const run *r = &t->runs[t->repeat == me->repeat ? rep : 0];
        size_t dl = strlen(r->dir);
        if (l + dl >= cap)
            return yf__fail_at(err, at, YF_ESPEC, "step '%s': value too long", me->name);
        memcpy(out + l, r->dir, dl);
        l += dl;
        if (h)
            *h = yf__fnv1a(*h, &r->hash, sizeof r->hash);
        p = end + 1;
    }
    out[l] = 0;
    return 0;
}

/* ---- records of finished steps ------------------------------------------------------ */

static int read_record(const char *path, run *r)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long h = 0;
    bool have_hash = false;
    r->n_res = 0;
    while (fgets(line, sizeof line, f)) {
        char key[96];
        double v;
        if (sscanf(line, "config_hash: %llx", &h) == 1)
            have_hash = true;
        else if (sscanf(line, "%95[a-z0-9_]: %lf", key, &v) == 2 && r->n_res < MAX_METRICS &&
                 strcmp(key, "finished")) {
            snprintf(r->res[r->n_res].name, sizeof r->res[0].name, "%s", key);
            r->res[r->n_res++].value = v;
        }
    }
    fclose(f);
    return have_hash && h == r->hash;
}

/* Files written whole: to PATH.tmp, then renamed over PATH, so that a
 * failure never leaves a half-written record or report. */
static FILE *open_tmp(const char *path, char *tmp, size_t cap, yf_error *err)
{
    snprintf(tmp, cap, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        yf__fail(err, YF_EIO, "cannot write %s: %s", tmp, strerror(errno));
    return f;
}

static int commit_tmp(FILE *f, const char *tmp, const char *path, yf_error *err)
{
    int bad = ferror(f);
    if (fclose(f) || bad || rename(tmp, path)) {
        int e = errno;
        remove(tmp);
        return yf__fail(err, YF_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

static int write_record(const char *path, const run *r, yf_error *err)
{
    char tmp[1200];
    FILE *f = open_tmp(path, tmp, sizeof tmp, err);
    if (!f)
        return err->code;
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f, "# written by yaflow run when this step finished; a rerun with the same "
               "config_hash skips it\nconfig_hash: %016llx\nfinished: %s\n",
            (unsigned long long)r->hash, when);
    for (int i = 0; i < r->n_res; i++)
        fprintf(f, "%s: %.9g\n", r->res[i].name, r->res[i].value);
    return commit_tmp(f, tmp, path, err);
}

static void add_result(run *r, const char *name, double v)
{
    if (r->n_res < MAX_METRICS) {
        snprintf(r->res[r->n_res].name, sizeof r->res[0].name, "%s", name);
        r->res[r->n_res++].value = v;
    }
}

static void say(const experiment *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const experiment *e, const char *fmt, ...)
{
    if (!e->o->echo)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(e->o->echo, fmt, ap);
    va_end(ap);
    fflush(e->o->echo);
}

static int mkdir_p(const char *dir, yf_error *err)
{
    char buf[1100];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST)
                return yf__fail(err, YF_EIO, "cannot create %s: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST)
        return yf__fail(err, YF_EIO, "cannot create %s: %s", buf, strerror(errno));
    return 0;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- train steps ---------------------------------------------------------------------- */

/* The spec of run `rep` of a train step: the model file, the step's
 * overrides (refs expanded) and, for repeats, seed = the model's + rep.
 * Adds the referenced runs' hashes to *h. */
static yf_spec *train_spec(experiment *e, int si, int rep, const char *const *extra, int n_extra,
                           uint64_t *h, yf_error *err)
{
    step *st = &e->steps[si];
    /* the overrides in order; a merge key (<<: *shared) brings in a shared
     * mapping's entries where it stands, so the keys after it win */
    enum { MAX_SET = 256 };
    const char *keys[MAX_SET];
    const yf__node *vals[MAX_SET];
    int n = 0, rc = 0;
    for (int i = 0; st->set && i < st->set->n && !rc; i++) {
        const yf__node *v = st->set->kid[i];
        bool merge = !strcmp(st->set->key[i], "<<");
        if (merge && v->kind != YF__MAP) {
            rc = yf__fail_at(err, v, YF_ESPEC, "step '%s': '<<' merges a mapping of overrides "
                             "(<<: *name)", st->name);
            break;
        }
        for (int k = 0; k < (merge ? v->n : 1) && !rc; k++) {
            if (n == MAX_SET) {
                rc = yf__fail_at(err, v, YF_ESPEC, "step '%s': more than %d overrides",
                                 st->name, MAX_SET);
                break;
            }
            keys[n] = merge ? v->key[k] : st->set->key[i];
            vals[n++] = merge ? v->kid[k] : v;
        }
    }
    char **ov = rc ? NULL : yf__calloc(n + n_extra + 1, sizeof *ov);
    if (!rc && !ov)
        rc = yf__fail(err, YF_ENOMEM, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        size_t len = 0;
        char *text = emitted(vals[i], NULL, &len);
        if (!text) {
            rc = yf__fail(err, YF_ENOMEM, "out of memory");
            break;
        }
        size_t cap = strlen(keys[i]) + 2 + 4096;
        ov[i] = yf__malloc(cap);
        if (!ov[i]) {
            free(text);
            rc = yf__fail(err, YF_ENOMEM, "out of memory");
            break;
        }
        int k = snprintf(ov[i], cap, "%s=", keys[i]);
        rc = expand(e, si, rep, vals[i], text, ov[i] + k, cap - k, h, err);
        free(text);
    }
    for (int i = 0; i < n_extra && !rc; i++)
        if (!(ov[n + i] = yf__strdup(extra[i])))
            rc = yf__fail(err, YF_ENOMEM, "out of memory");
    if (!rc)
        n += n_extra;
    yf_spec *spec = NULL;
    yf_error inner = {0};
    if (!rc) {
        spec = yf_spec_load(st->model, (const char *const *)ov, n, &inner);
        if (spec && st->repeat > 1) {
            char seed[64];
            snprintf(seed, sizeof seed, "seed=%llu", (unsigned long long)spec->seed + rep);
            ov[n] = seed;
            yf_spec_free(spec);
            spec = yf_spec_load(st->model, (const char *const *)ov, n + 1, &inner);
            ov[n] = NULL;
        }
        if (spec && e->o->data_dir && yf_spec_set_data_dir(spec, e->o->data_dir, &inner)) {
            yf_spec_free(spec);
            spec = NULL;
        }
        if (!spec) {
            /* the model's own message, placed at the step */
            yf__fail_at(err, st->target, inner.code, "step '%s': %s", st->name,
                        yf_error_format(&inner));
        }
    }
    for (int i = 0; ov && ov[i]; i++)
        free(ov[i]);
    free(ov);
    return spec;
}

static int run_train(experiment *e, int si, int rep, const char *const *extra, int n_extra,
                     yf_error *err)
{
    step *st = &e->steps[si];
    run *r = &st->runs[rep];
    uint64_t h = yf__fnv1a(0, "train", 5);
    yf_spec *spec = train_spec(e, si, rep, extra, n_extra, &h, err);
    if (!spec)
        return err->code;
    if (fnv_emitted(&h, NULL, spec, err)) {
        yf_spec_free(spec);
        return err->code;
    }
    r->hash = h;
    char record[1100], label[160];
    snprintf(record, sizeof record, "%s/done.yaml", r->dir);
    if (st->repeat > 1)
        snprintf(label, sizeof label, "'%s' (seed %llu)", st->name,
                 (unsigned long long)spec->seed);
    else
        snprintf(label, sizeof label, "'%s'", st->name);
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", r->dir);
    if (read_record(record, r) && exists(ckpt)) {
        say(e, "== %s: finished earlier with the same config, skipped (%s)\n", label, r->dir);
        r->done = true;
        yf_spec_free(spec);
        return 0;
    }
    say(e, "== %s: training %s -> %s\n", label, st->model, r->dir);
    /* the record goes first: a rerun that fails is never taken as done */
    if (remove(record) && errno != ENOENT) {
        yf_spec_free(spec);
        return yf__fail(err, YF_EIO, "cannot replace %s: %s", record, strerror(errno));
    }
    yf_model *m = yf_model_new(spec, e->o->threads, err);
    yf_dataset *d = m ? yf_dataset_load(spec, err) : NULL;
    int rc = d ? 0 : err->code;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rc) {
        yf_train_opts to = {.out_dir = r->dir, .echo = e->o->echo, .bar = e->o->bar,
                            .adapt_threads = e->o->threads == 0};
        rc = yf_train(m, d, &to, err);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    yf_metric mt[1 + 3 * YF__MAX_TERMS];
    int nm = rc ? 0 : yf_evaluate(m, d, YF_SPLIT_TEST, mt, (int)YF__ARRAY_LEN(mt), err);
    if (nm < 0)
        rc = nm;
    if (!rc) {
        r->n_res = 0;
        for (int i = 0; i < nm; i++) {
            char name[110];
            snprintf(name, sizeof name, "test_%s", mt[i].name);
            add_result(r, name, mt[i].value);
        }
        add_result(r, "train_seconds", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
        add_result(r, "seed", (double)spec->seed);
        rc = write_record(record, r, err);
    }
    if (!rc) {
        r->done = true;
        for (int i = 0; i < nm && e->o->echo; i++)
            say(e, "%stest_%s=%.6g", i ? " " : "   ", mt[i].name, mt[i].value);
        say(e, "\n");
    }
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(spec);
    return rc;
}


/* ---- tuning: a search over dotted keys, k-fold cross-validation, successive halving ---- */

static bool hash_metric(const char *m)
{
    static const char *const names[] = {"map", "precision_r2", "purity", "purity_r1",
                                        "purity_r2", "gini", "gini_r1", "gini_r2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(m, names[i]))
            return true;
    return false;
}

static int parse_tune(step *st, const yf__node *sn, const char *ctx, yf_error *err)
{
    const yf__node *grid = yf__map_get(sn, "grid"), *rnd = yf__map_get(sn, "random");
    if (!!grid == !!rnd)
        return yf__fail_at(err, sn, YF_ESPEC, "%sgive 'grid' (every combination) or 'random' "
                           "(trials drawn at random), a mapping of dotted keys to their choices",
                           ctx);
    st->random_search = rnd != NULL;
    st->params = grid ? grid : rnd;
    if (st->params->kind != YF__MAP || st->params->n < 1 || st->params->n > 16)
        return yf__fail_at(err, st->params, YF_ESPEC, "%s'%s' must map 1 to 16 dotted keys to "
                           "their choices", ctx, grid ? "grid" : "random");
    st->trials = 0;
    if (grid) {
        long total = 1;
        for (int i = 0; i < grid->n; i++) {
            const yf__node *v = grid->kid[i];
            if (v->kind != YF__SEQ || v->n < 1)
                return yf__fail_at(err, v, YF_ESPEC, "%sgrid: '%s' must list its values",
                                   ctx, grid->key[i]);
            total *= v->n;
            if (total > 200)
                return yf__fail_at(err, v, YF_ESPEC, "%sgrid: more than 200 combinations",
                                   ctx);
        }
        st->trials = (int)total;
    } else {
        for (int i = 0; i < rnd->n; i++) {
            const yf__node *v = rnd->kid[i];
            if (!strcmp(rnd->key[i], "trials") || !strcmp(rnd->key[i], "seed"))
                continue;
            bool ok = v->kind == YF__SEQ && v->n >= 1;
            if (v->kind == YF__MAP && v->n == 1 && (!strcmp(v->key[0], "uniform") ||
                                                    !strcmp(v->key[0], "log_uniform"))) {
                const yf__node *r = v->kid[0];
                char *e1, *e2;
                double lo = r->kind == YF__SEQ && r->n == 2 && r->kid[0]->kind == YF__SCALAR
                                ? strtod(r->kid[0]->str, &e1) : NAN;
                double hi = r->kind == YF__SEQ && r->n == 2 && r->kid[1]->kind == YF__SCALAR
                                ? strtod(r->kid[1]->str, &e2) : NAN;
                ok = isfinite(lo) && isfinite(hi) && lo < hi &&
                     (strcmp(v->key[0], "log_uniform") || lo > 0);
            }
            if (!ok)
                return yf__fail_at(err, v, YF_ESPEC, "%srandom: '%s' must list its values or "
                                   "be {uniform: [lo, hi]} or {log_uniform: [lo, hi]} (lo > 0)",
                                   ctx, rnd->key[i]);
        }
        long v = 8, sd = 1;
        if (get_int(rnd, "trials", 1, 200, &v, ctx, err) || get_int(rnd, "seed", 1, 1L << 30, &sd, ctx, err))
            return err->code;
        st->trials = (int)v;
        st->search_seed = (uint64_t)sd;
    }
    long v = 3;
    if (get_int(sn, "folds", 2, 20, &v, ctx, err))
        return err->code;
    st->folds = (int)v;
    const char *metric = scalar(sn, "metric");
    if (!metric || strlen(metric) >= sizeof st->metric)
        return yf__fail_at(err, sn, YF_ESPEC, "%sa tune step needs 'metric': a figure of the "
                           "held-out fold (valid_loss, valid_accuracy, ...) or of hash codes "
                           "(map, precision_r2, purity, ...)", ctx);
    snprintf(st->metric, sizeof st->metric, "%s", metric);
    st->maximize = !(strstr(metric, "loss") || strstr(metric, "gini") || strstr(metric, "mse") ||
                     strstr(metric, "entropy"));
    const char *mx = scalar(sn, "maximize");
    if (mx && strcmp(mx, "true") && strcmp(mx, "false"))
        return yf__fail_at(err, yf__map_get(sn, "maximize"), YF_ESPEC, "%s'maximize' must be "
                           "true or false", ctx);
    if (mx)
        st->maximize = !strcmp(mx, "true");
    st->rungs = 1, st->eta = 3;
    const yf__node *h = yf__map_get(sn, "halving");
    if (h) {
        if (h->kind != YF__MAP)
            return yf__fail_at(err, h, YF_ESPEC, "%s'halving' is {rungs: R, eta: E}", ctx);
        static const char *const hk[] = {"rungs", "eta"};
        long r = 2, et = 3;
        if (check_keys(h, hk, 2, ctx, err) || get_int(h, "rungs", 1, 6, &r, ctx, err) ||
            get_int(h, "eta", 2, 10, &et, ctx, err))
            return err->code;
        st->rungs = (int)r, st->eta = (int)et;
    }
    return 0;
}

typedef struct trial {
    char **ov; /* "key=value" overrides */
    int n_ov;
    char label[512];
    double mean[6], sd[6];
    int epochs[6];
    int last_rung; /* the last rung it ran */
    int full_epochs;
} trial;

static void free_trials(trial *t, int n)
{
    for (int i = 0; t && i < n; i++) {
        for (int k = 0; k < t[i].n_ov; k++)
            free(t[i].ov[k]);
        free(t[i].ov);
    }
    free(t);
}

static char *flow_text(const yf__node *n)
{
    size_t len;
    return emitted(n, NULL, &len);
}

/* Appends key=value (a value that is a mapping: each of its entries). */
static int add_choice(trial *t, const char *key, const yf__node *v)
{
    int more = v->kind == YF__MAP ? v->n : 1;
    char **ov = yf__realloc(t->ov, (t->n_ov + more) * sizeof *ov);
    if (!ov)
        return -1;
    t->ov = ov;
    for (int k = 0; k < more; k++) {
        const char *kk = v->kind == YF__MAP ? v->key[k] : key;
        char *text = flow_text(v->kind == YF__MAP ? v->kid[k] : v);
        if (!text || asprintf(&t->ov[t->n_ov], "%s=%s", kk, text) < 0) {
            free(text);
            return -1;
        }
        t->n_ov++;
        free(text);
    }
    size_t l = strlen(t->label);
    char *text = flow_text(v);
    if (!text)
        return -1;
    const char *last = strrchr(key, '.');
    snprintf(t->label + l, sizeof t->label - l, "%s%s=%s", l ? ", " : "", last ? last + 1 : key,
             text);
    free(text);
    return 0;
}

static trial *make_trials(const step *st, yf_error *err)
{
    trial *t = yf__calloc(st->trials, sizeof *t);
    if (!t) {
        yf__fail(err, YF_ENOMEM, "out of memory");
        return NULL;
    }
    const yf__node *p = st->params;
    for (int i = 0; i < st->trials; i++) {
        long idx = i;
        for (int k = 0; k < p->n; k++) {
            const yf__node *v = p->kid[k];
            if (st->random_search && (!strcmp(p->key[k], "trials") || !strcmp(p->key[k], "seed")))
                continue;
            int rc;
            if (!st->random_search) { /* the last key varies fastest */
                long stride = 1;
                for (int j = k + 1; j < p->n; j++)
                    stride *= p->kid[j]->n;
                rc = add_choice(&t[i], p->key[k], v->kid[(idx / stride) % v->n]);
            } else {
                uint32_t w[4];
                yf__philox(st->search_seed, 7, (uint64_t)i, (uint32_t)k, w);
                double u = (w[0] + 0.5) / 4294967296.0;
                if (v->kind == YF__SEQ) {
                    rc = add_choice(&t[i], p->key[k], v->kid[w[1] % (uint32_t)v->n]);
                } else {
                    double lo = strtod(v->kid[0]->kid[0]->str, NULL);
                    double hi = strtod(v->kid[0]->kid[1]->str, NULL);
                    double x = !strcmp(v->key[0], "log_uniform")
                                   ? exp(log(lo) + u * (log(hi) - log(lo))) : lo + u * (hi - lo);
                    char num[64];
                    snprintf(num, sizeof num, "%.3g", x);
                    yf__node tmp = {.kind = YF__SCALAR, .str = num};
                    rc = add_choice(&t[i], p->key[k], &tmp);
                }
            }
            if (rc) {
                free_trials(t, st->trials);
                yf__fail(err, YF_ENOMEM, "out of memory");
                return NULL;
            }
        }
    }
    return t;
}

static int by_mean(const void *a, const void *b, void *ctx)
{
    const int *rung = ctx;
    const trial *x = *(trial *const *)a, *y = *(trial *const *)b;
    double u = x->mean[*rung], v = y->mean[*rung];
    return u < v ? 1 : u > v ? -1 : 0; /* descending; the caller flips for minimising */
}

/* The final standing: the trials that reached the last rung first, each
 * rung by its mean, the better first. */
static int by_standing(const void *a, const void *b, void *ctx)
{
    const step *st = ctx;
    const trial *x = *(trial *const *)a, *y = *(trial *const *)b;
    if (x->last_rung != y->last_rung)
        return y->last_rung - x->last_rung;
    double u = x->mean[x->last_rung], w = y->mean[y->last_rung];
    if (!st->maximize)
        u = -u, w = -w;
    return u < w ? 1 : u > w ? -1 : 0;
}

/* One training of trial t on fold f for `epochs`, and its metric on the
 * held-out fold. Recorded in dir/done.yaml; a matching record is reused. */
static int run_fold(experiment *e, int si, const trial *t, int fold, int epochs, const char *dir,
                    double *value, yf_error *err)
{
    step *st = &e->steps[si];
    char **ov = yf__malloc((t->n_ov + 4) * sizeof *ov);
    if (!ov)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    char f1[64], f2[64], f3[64];
    snprintf(f1, sizeof f1, "data.folds=%d", st->folds);
    snprintf(f2, sizeof f2, "data.fold=%d", fold);
    snprintf(f3, sizeof f3, "train.epochs=%d", epochs);
    for (int k = 0; k < t->n_ov; k++)
        ov[k] = t->ov[k];
    ov[t->n_ov] = "data.valid=0", ov[t->n_ov + 1] = f1, ov[t->n_ov + 2] = f2;
    ov[t->n_ov + 3] = f3;
    uint64_t h = yf__fnv1a(yf__fnv1a(0, "tune", 4), st->metric, strlen(st->metric));
    yf_spec *spec = train_spec(e, si, 0, (const char *const *)ov, t->n_ov + 4, &h, err);
    free(ov);
    if (!spec)
        return err->code;
    if (fnv_emitted(&h, NULL, spec, err)) {
        yf_spec_free(spec);
        return err->code;
    }
    run r = {.hash = h};
    snprintf(r.dir, sizeof r.dir, "%s", dir);
    char record[1100];
    snprintf(record, sizeof record, "%s/done.yaml", dir);
    if (read_record(record, &r) && lookup(&r, "metric", value)) {
        yf_spec_free(spec);
        return 0;
    }
    remove(record);
    yf_model *m = yf_model_new(spec, e->o->threads, err);
    yf_dataset *d = m ? yf_dataset_load(spec, err) : NULL;
    int rc = d ? 0 : err->code;
    if (!rc) {
        yf_train_opts to = {.out_dir = dir, .echo = NULL, .adapt_threads = e->o->threads == 0};
        rc = yf_train(m, d, &to, err);
    }
    if (!rc && hash_metric(st->metric)) {
        yf_hash_index ix;
        yf_hash_stats hs;
        rc = yf_hash_build_splits(m, d, st->layer[0] ? st->layer : NULL, YF_SPLIT_TRAIN,
                                  YF_SPLIT_VALID, &ix, err);
        if (!rc)
            rc = yf_hash_evaluate(&ix, (size_t)st->n, e->o->threads > 0 ? e->o->threads : 1, &hs,
                                  err);
        yf_hash_index_free(&ix);
        const struct {
            const char *n;
            double v;
        } f[] = {{"map", hs.map}, {"precision_r2", hs.precision_r2}, {"purity", hs.purity},
                 {"purity_r1", hs.purity_r1}, {"purity_r2", hs.purity_r2}, {"gini", hs.gini},
                 {"gini_r1", hs.gini_r1}, {"gini_r2", hs.gini_r2}};
        for (size_t k = 0; !rc && k < sizeof f / sizeof f[0]; k++)
            if (!strcmp(f[k].n, st->metric))
                *value = f[k].v;
    } else if (!rc) {
        yf_metric mt[1 + 3 * YF__MAX_TERMS];
        int nm = yf_evaluate(m, d, YF_SPLIT_VALID, mt, (int)YF__ARRAY_LEN(mt), err);
        rc = nm < 0 ? nm : 0;
        const char *want = strncmp(st->metric, "valid_", 6) ? st->metric : st->metric + 6;
        bool found = false;
        for (int k = 0; k < nm; k++)
            if (!strcmp(mt[k].name, want))
                *value = mt[k].value, found = true;
        if (!rc && !found) {
            char names[512] = "";
            for (int k = 0; k < nm; k++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%svalid_%s",
                         k ? ", " : "", mt[k].name);
            rc = yf__fail_at(err, st->at, YF_ESPEC, "step '%s': the metric '%s' is neither a "
                             "figure of the held-out fold (%s) nor of hash codes (map, "
                             "precision_r2, purity, purity_r1, purity_r2, gini, ...)", st->name,
                             st->metric, names);
        }
    }
    if (!rc) {
        add_result(&r, "metric", *value);
        rc = write_record(record, &r, err);
        /* the folds' checkpoints are not needed again: their record is */
        char ckpt[1100];
        snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
        remove(ckpt);
    }
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(spec);
    return rc;
}

static int run_tune(experiment *e, int si, yf_error *err)
{
    step *st = &e->steps[si];
    trial *t = make_trials(st, err);
    if (!t)
        return err->code;
    trial **alive = yf__malloc(st->trials * sizeof *alive);
    int n_alive = st->trials, rc = alive ? 0 : yf__fail(err, YF_ENOMEM, "out of memory");
    for (int i = 0; i < st->trials && alive; i++)
        alive[i] = &t[i], t[i].last_rung = -1;
    /* each trial's full budget: its epochs (after `set` and its choices) */
    for (int i = 0; i < st->trials && !rc; i++) {
        uint64_t unused = 0;
        yf_spec *sp = train_spec(e, si, 0, (const char *const *)t[i].ov, t[i].n_ov, &unused, err);
        if (!sp)
            rc = err->code;
        else
            t[i].full_epochs = sp->epochs > 0 ? sp->epochs : 1;
        yf_spec_free(sp);
    }
    char tdir[1100];
    snprintf(tdir, sizeof tdir, "%s/%s", e->dir, st->name);
    for (int rung = 0; rung < st->rungs && !rc; rung++) {
        /* rung r trains each trial for its epochs / eta^(rungs − 1 − r) (at
         * least 1) */
        double div = pow(st->eta, st->rungs - 1 - rung);
        say(e, "== '%s': rung %d of %d, %d trials x %d folds, 1/%.0f of their epochs\n",
            st->name, rung + 1, st->rungs, n_alive, st->folds, div);
        for (int a = 0; a < n_alive && !rc; a++) {
            trial *tr = alive[a];
            int epochs = (int)fmax(1, floor(tr->full_epochs / div + 0.5));
            double v[20], sum = 0, sq = 0;
            for (int f = 0; f < st->folds && !rc; f++) {
                char dir[1200];
                snprintf(dir, sizeof dir, "%s/trial-%d/rung-%d/fold-%d", tdir, (int)(tr - t), rung,
                         f);
                rc = mkdir_p(dir, err);
                if (!rc)
                    rc = run_fold(e, si, tr, f, epochs, dir, &v[f], err);
                if (!rc)
                    sum += v[f], sq += v[f] * v[f];
            }
            if (rc)
                break;
            int n = st->folds;
            tr->mean[rung] = sum / n;
            tr->sd[rung] = sqrt(fmax(0, (sq - n * tr->mean[rung] * tr->mean[rung]) / (n - 1)));
            tr->epochs[rung] = epochs;
            tr->last_rung = rung;
            say(e, "   trial %d (%s): %s %.4f ± %.4f\n", (int)(tr - t), tr->label, st->metric,
                tr->mean[rung], tr->sd[rung]);
        }
        if (rc)
            break;
        int r = rung;
        qsort_r(alive, n_alive, sizeof *alive, by_mean, &r);
        if (!st->maximize) /* ascending */
            for (int i = 0; i < n_alive / 2; i++) {
                trial *x = alive[i];
                alive[i] = alive[n_alive - 1 - i], alive[n_alive - 1 - i] = x;
            }
        if (rung + 1 < st->rungs)
            n_alive = (n_alive + st->eta - 1) / st->eta;
    }
    if (!rc) {
        /* tune.md: every trial, the best first, with its last rung */
        trial **all = yf__malloc(st->trials * sizeof *all);
        for (int i = 0; all && i < st->trials; i++)
            all[i] = &t[i];
        if (all)
            qsort_r(all, st->trials, sizeof *all, by_standing, st);
        char path[1200];
        snprintf(path, sizeof path, "%s/tune.md", tdir);
        FILE *f = all ? fopen(path, "w") : NULL;
        if (!all)
            rc = yf__fail(err, YF_ENOMEM, "out of memory");
        else if (!f)
            rc = yf__fail(err, YF_EIO, "cannot write %s: %s", path, strerror(errno));
        else {
            fprintf(f, "# Tuning '%s'\n\n%s search over %d trials of `%s`, %d-fold "
                       "cross-validation on the training images (the test images are never "
                       "used), %s %s; successive halving over %d rung%s (eta %d): each rung "
                       "retrains the best 1/%d of the previous one from scratch with %d times "
                       "the epochs (the last rung: each trial's own epochs).\n\n| rank | trial | settings |",
                    st->name, st->random_search ? "Random" : "Grid", st->trials, st->model,
                    st->folds, st->maximize ? "maximising" : "minimising", st->metric, st->rungs,
                    st->rungs > 1 ? "s" : "", st->eta, st->eta, st->eta);
            for (int r = 0; r < st->rungs; r++)
                fprintf(f, " rung %d: %s (epochs) |", r + 1, st->metric);
            fprintf(f, "\n| ---: | ---: | --- |");
            for (int r = 0; r < st->rungs; r++)
                fprintf(f, " ---: |");
            fprintf(f, "\n");
            for (int i = 0; i < st->trials; i++) {
                const trial *tr = all[i];
                fprintf(f, "| %d | %d | %s |", i + 1, (int)(tr - t), tr->label);
                for (int r = 0; r < st->rungs; r++)
                    if (r <= tr->last_rung)
                        fprintf(f, " %.4f ± %.4f (%d) |", tr->mean[r], tr->sd[r], tr->epochs[r]);
                    else
                        fprintf(f, " stopped |");
                fprintf(f, "\n");
            }
            int bad = ferror(f);
            if (fclose(f) || bad)
                rc = yf__fail(err, YF_EIO, "cannot write %s: %s", path, strerror(errno));
        }
        if (!rc) {
            say(e, "   %s\n   best: %s (%s %.4f ± %.4f)\n", path, all[0]->label, st->metric,
                all[0]->mean[all[0]->last_rung], all[0]->sd[all[0]->last_rung]);
            /* the best config as a spec, and trained on all the training data */
            const trial *best = all[0];
            uint64_t h0 = 0;
            yf_spec *bs = train_spec(e, si, 0, (const char *const *)best->ov, best->n_ov, &h0,
                                     err);
            snprintf(path, sizeof path, "%s/best.yaml", tdir);
            FILE *bf = bs ? fopen(path, "w") : NULL;
            if (!bs)
                rc = err->code;
            else if (!bf)
                rc = yf__fail(err, YF_EIO, "cannot write %s: %s", path, strerror(errno));
            else {
                fprintf(bf, "# the best of %d trials (%s), %s %.4f ± %.4f in %d-fold cross-validation, with %s\n",
                        st->trials, st->name, st->metric, best->mean[best->last_rung],
                        best->sd[best->last_rung], st->folds, best->label);
                int bad = yf_spec_write(bs, bf) || ferror(bf);
                if (fclose(bf) || bad)
                    rc = yf__fail(err, YF_EIO, "cannot write %s: %s", path, strerror(errno));
            }
            yf_spec_free(bs);
            run *r0 = &st->runs[0];
            if (!rc)
                rc = run_train(e, si, 0, (const char *const *)best->ov, best->n_ov, err);
            if (!rc) {
                add_result(r0, "cv_metric", best->mean[best->last_rung]);
                add_result(r0, "cv_sd", best->sd[best->last_rung]);
                snprintf(st->best_label, sizeof st->best_label, "%s", best->label);
            }
        }
        free(all);
    }
    free(alive);
    free_trials(t, st->trials);
    return rc;
}

/* ---- steps on a trained run ---------------------------------------------------------- */

static int picture_count(const step *st)
{
    return st->pictures->kind == YF__SCALAR ? 1 : st->pictures->n;
}

static const char *picture(const step *st, int i)
{
    return st->pictures->kind == YF__SCALAR ? st->pictures->str : st->pictures->kid[i]->str;
}

static void outputs(const experiment *e, const step *st, int i, char *path, size_t cap)
{
    switch (st->kind) {
    case STEP_SHOW: snprintf(path, cap, "%s/pictures/%s-%s.png", e->dir, st->name, picture(st, i)); break;
    case STEP_SAMPLE: snprintf(path, cap, i ? "%s/%s.npy" : "%s/pictures/%s.png", e->dir, st->name); break;
    case STEP_ENCODE: snprintf(path, cap, i ? "%s/%s.labels.npy" : "%s/%s.npy", e->dir, st->name); break;
    case STEP_HASH: snprintf(path, cap, "%s/%s.index", e->dir, st->name); break;
    default: path[0] = 0;
    }
}

static int n_outputs(const step *st)
{
    return st->kind == STEP_SHOW ? picture_count(st) : st->kind == STEP_HASH ? 1 : 2;
}

static int run_other(experiment *e, int si, yf_error *err)
{
    step *st = &e->steps[si];
    run *r = &st->runs[0];
    uint64_t h = yf__fnv1a(0, kind_names[st->kind], strlen(kind_names[st->kind]));
    if (fnv_emitted(&h, st->at, NULL, err))
        return err->code;
    char src[1024], clf[1024] = "";
    if (expand(e, si, 0, st->target, st->target->str, src, sizeof src, &h, err))
        return err->code;
    if (st->score && expand(e, si, 0, st->score, st->score->str, clf, sizeof clf, &h, err))
        return err->code;
    r->hash = h;
    char record[1100];
    snprintf(record, sizeof record, "%s/.%s.done", e->dir, st->name);
    snprintf(r->dir, sizeof r->dir, "%s", src);
    bool all = true;
    for (int i = 0; i < n_outputs(st); i++) {
        char path[1200];
        outputs(e, st, i, path, sizeof path);
        all &= exists(path);
    }
    if (all && read_record(record, r)) {
        say(e, "== '%s': done earlier from the same runs, skipped\n", st->name);
        r->done = true;
        return 0;
    }
    say(e, "== '%s': %s %s\n", st->name, kind_names[st->kind], src);
    remove(record);
    yf_run o, c = {0};
    if (yf_run_open_data(&o, src, e->o->threads, YF_RUN_DATA | (st->mean ? YF_RUN_MEANS : 0),
                         e->o->data_dir, err))
        return err->code;
    int rc = 0;
    if (clf[0])
        rc = yf_run_open(&c, clf, e->o->threads, 0, err);
    r->n_res = 0;
    yf_show_opts so = {.n = st->n, .k = st->k, .layer = st->layer[0] ? st->layer : NULL,
                       .seed = st->seed};
    for (int i = 0; st->kind == STEP_SHOW && i < picture_count(st) && !rc; i++) {
        char path[1200];
        outputs(e, st, i, path, sizeof path);
        rc = yf_show(o.model, o.data, src, picture(st, i), path, &so, err);
        if (!rc)
            say(e, "   %s\n", path);
    }
    if (st->kind == STEP_ENCODE && !rc) {
        char npy[1200], labels[1200];
        outputs(e, st, 0, npy, sizeof npy);
        outputs(e, st, 1, labels, sizeof labels);
        yf_split sp = !strcmp(st->split, "train") ? YF_SPLIT_TRAIN
                      : !strcmp(st->split, "valid") ? YF_SPLIT_VALID : YF_SPLIT_TEST;
        if (!rc)
            rc = yf_encode(o.model, o.data, sp, st->layer, npy, labels, err);
        if (!rc)
            say(e, "   %s\n", npy);
    }
    if (st->kind == STEP_HASH && !rc) {
        char path[1200];
        outputs(e, st, 0, path, sizeof path);
        yf_hash_index ix;
        yf_hash_stats hs;
        rc = yf_hash_build(o.model, o.data, st->layer[0] ? st->layer : NULL, &ix, err);
        if (!rc)
            rc = yf_hash_index_save(&ix, path, err);
        if (!rc)
            rc = yf_hash_evaluate(&ix, (size_t)st->n, e->o->threads > 0 ? e->o->threads : 1, &hs,
                                  err);
        if (!rc) {
            const struct {
                const char *name;
                double v;
            } f[] = {{"bits", hs.bits}, {"distinct", (double)hs.distinct},
                     {"largest_bucket", (double)hs.largest}, {"saturation", hs.saturation},
                     {"gini", hs.gini}, {"purity", hs.purity}, {"purity_r1", hs.purity_r1},
                     {"purity_r2", hs.purity_r2}, {"precision_r2", hs.precision_r2},
                     {"map", hs.map}, {"queries", (double)hs.queries}};
            for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
                add_result(r, f[k].name, f[k].v);
            say(e, "   %s: %d bits, %zu distinct codes, purity %.4f, precision r<=2 %.4f, "
                   "mAP %.4f\n", path, hs.bits, hs.distinct, hs.purity, hs.precision_r2, hs.map);
        }
        yf_hash_index_free(&ix);
    }
    if (st->kind == STEP_SAMPLE && !rc) {
        size_t n = st->n ? (size_t)st->n : 100, dim = yf_model_input_size(o.model);
        uint64_t seed = st->seed ? st->seed : 1;
        float *x = yf__malloc(n * dim * sizeof *x);
        char png[1200], npy[1200];
        outputs(e, st, 0, png, sizeof png);
        outputs(e, st, 1, npy, sizeof npy);
        int ndim, dims[8];
        yf_model_layer_size(o.model, NULL, &ndim, dims);
        int64_t shape[9] = {(int64_t)n};
        for (int k = 0; k < ndim; k++)
            shape[k + 1] = dims[k];
        rc = x ? yf_sample(o.model, n, seed, x, err) : yf__fail(err, YF_ENOMEM, "out of memory");
        if (!rc)
            rc = yf_npy_save(npy, x, shape, ndim + 1, err);
        yf_show_opts po = {.n = n < 100 ? (int)n : 100, .seed = seed};
        if (!rc)
            rc = yf_show(o.model, o.data, src, "samples", png, &po, err);
        if (!rc && c.model) {
            size_t nt = yf_dataset_count(o.data, YF_SPLIT_TEST);
            nt = nt < n ? nt : n;
            float *t = yf__malloc(nt * dim * sizeof *t + 1);
            yf_score gen, real;
            rc = t ? yf_dataset_images(o.data, YF_SPLIT_TEST, 0, nt, t, NULL, err)
                   : yf__fail(err, YF_ENOMEM, "out of memory");
            if (!rc)
                rc = yf_score_images(c.model, x, n, &gen, err);
            if (!rc)
                rc = yf_score_images(c.model, t, nt, &real, err);
            if (!rc) {
                add_result(r, "samples", (double)n);
                add_result(r, "samples_top_prob", gen.top_prob);
                add_result(r, "samples_class_entropy", gen.entropy);
                add_result(r, "test_images", (double)nt);
                add_result(r, "test_top_prob", real.top_prob);
                add_result(r, "test_class_entropy", real.entropy);
                for (int k = 0; k < 10; k++) {
                    char nm[32];
                    snprintf(nm, sizeof nm, "samples_share_%d", k);
                    add_result(r, nm, gen.share[k]);
                }
                say(e, "   samples: top-class probability %.4f, class-mix entropy %.4f nats; "
                       "test images: %.4f, %.4f\n", gen.top_prob, gen.entropy, real.top_prob,
                    real.entropy);
            }
            free(t);
        }
        free(x);
        if (!rc)
            say(e, "   %s\n   %s\n", png, npy);
    }
    yf_run_close(&c);
    yf_run_close(&o);
    if (!rc)
        rc = write_record(record, r, err);
    r->done = !rc;
    return rc;
}

/* ---- the report ------------------------------------------------------------------------ */

static bool lookup(const run *r, const char *name, double *v)
{
    for (int i = 0; i < r->n_res; i++)
        if (!strcmp(r->res[i].name, name)) {
            *v = r->res[i].value;
            return true;
        }
    return false;
}

static void cell(FILE *f, const step *st, const char *metric)
{
    double sum = 0, sq = 0, v;
    int n = 0;
    for (int k = 0; k < st->repeat; k++)
        if (st->runs[k].done && lookup(&st->runs[k], metric, &v))
            sum += v, sq += v * v, n++;
    if (!n) {
        fprintf(f, " – |");
        return;
    }
    bool pct = strstr(metric, "accuracy") != NULL;
    double mean = sum / n, sd = n > 1 ? sqrt(fmax(0, (sq - n * mean * mean) / (n - 1))) : 0;
    double s = pct ? 100 : 1;
    if (n > 1)
        fprintf(f, pct ? " %.2f ± %.2f %% |" : " %.6g ± %.2g |", mean * s, sd * s);
    else
        fprintf(f, pct ? " %.2f %% |" : " %.6g |", mean * s);
}

static int write_report(const experiment *e, int failed, const char *why, yf_error *err)
{
    char path[1100], tmp[1200];
    snprintf(path, sizeof path, "%s/report.md", e->dir);
    FILE *f = open_tmp(path, tmp, sizeof tmp, err);
    if (!f)
        return err->code;
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(f, "# %s\n\n", e->name);
    if (e->description)
        fprintf(f, "%s\n\n", e->description);
    fprintf(f, "Written by `yaflow run %s` (yaflow %s) on %s. Each run's folder holds its "
               "resolved `config.yaml`, `metrics.csv`, `log.txt` and checkpoint.\n\n",
            e->path, PACKAGE_VERSION, when);
    if (failed >= 0)
        fprintf(f, "**Incomplete:** step '%s' failed (%s); the rows below are the steps that "
                   "finished. Run the same command again to continue.\n\n",
                e->steps[failed].name, why);
    /* the results table: one row per train step, the mean ± standard
     * deviation over its seeds */
    fprintf(f, "## Results\n\nTest-set figures; with several seeds, mean ± sample standard "
               "deviation over them.\n\n| run | seeds |");
    char cols[MAX_METRICS + 1][96];
    int nc = 0;
    for (int i = 0; i < e->n_metrics; i++)
        snprintf(cols[nc++], 96, "%s", e->metrics[i]);
    if (!nc) /* every test figure of the first run */
        for (int si = 0; si < e->n_steps && !nc; si++)
            if (e->steps[si].kind == STEP_TRAIN && e->steps[si].runs[0].done)
                for (int k = 0; k < e->steps[si].runs[0].n_res && nc < MAX_METRICS; k++)
                    if (!strncmp(e->steps[si].runs[0].res[k].name, "test_", 5))
                        snprintf(cols[nc++], 96, "%s", e->steps[si].runs[0].res[k].name);
    snprintf(cols[nc++], 96, "train_seconds");
    for (int c = 0; c < nc; c++)
        fprintf(f, " %s |", cols[c]);
    fprintf(f, "\n| --- | --- |");
    for (int c = 0; c < nc; c++)
        fprintf(f, " ---: |");
    fprintf(f, "\n");
    for (int si = 0; si < e->n_steps; si++) {
        const step *st = &e->steps[si];
        if (st->kind != STEP_TRAIN && st->kind != STEP_TUNE)
            continue;
        if (st->kind == STEP_TUNE)
            fprintf(f, "| [%s](%s/best) (tuned) |", st->name, st->name);
        else
            fprintf(f, "| [%s](%s) |", st->name, st->name);
        int done = 0;
        double v;
        for (int k = 0; k < st->repeat; k++)
            if (st->runs[k].done && lookup(&st->runs[k], "seed", &v))
                fprintf(f, "%s%.0f", done++ ? ", " : " ", v);
        fprintf(f, "%s |", done ? "" : " –");
        for (int c = 0; c < nc; c++)
            cell(f, st, cols[c]);
        fprintf(f, "\n");
    }
    /* tuning */
    bool tuned = false;
    for (int si = 0; si < e->n_steps; si++) {
        const step *st = &e->steps[si];
        double cv, sd = 0;
        if (st->kind != STEP_TUNE || !st->runs[0].done || !lookup(&st->runs[0], "cv_metric", &cv))
            continue;
        lookup(&st->runs[0], "cv_sd", &sd);
        if (!tuned)
            fprintf(f, "\n## Tuning\n");
        tuned = true;
        fprintf(f, "\n**%s**: %d trials, %d-fold cross-validation on the training images; the "
                   "best, %s, scored %s %.4f ± %.4f. Every trial: [tune.md](%s/tune.md); the best "
                   "config as a spec: [best.yaml](%s/best.yaml), trained on all the training "
                   "images as [%s/best](%s/best).\n", st->name, st->trials, st->folds,
                st->best_label[0] ? st->best_label : "(see tune.md)", st->metric, cv, sd,
                st->name, st->name, st->name, st->name);
    }
    /* sample quality, scored by a classifier */
    bool header = false;
    for (int si = 0; si < e->n_steps; si++) {
        const step *st = &e->steps[si];
        double v[6] = {0};
        const run *r = &st->runs[0];
        if (st->kind != STEP_SAMPLE || !r->done || !lookup(r, "samples", &v[0]))
            continue;
        lookup(r, "samples_top_prob", &v[1]);
        lookup(r, "samples_class_entropy", &v[2]);
        lookup(r, "test_images", &v[3]);
        lookup(r, "test_top_prob", &v[4]);
        lookup(r, "test_class_entropy", &v[5]);
        if (!header)
            fprintf(f, "\n## Sample quality\n\nImages scored by the classifier named in the "
                       "step: the mean probability of its predicted class (higher: more "
                       "recognisable), and the entropy of the mix of predicted classes in nats "
                       "(log 10 = 2.303 when all ten digits are equally common).\n\n| images | "
                       "count | mean top-class probability | class-mix entropy (nats) |\n| --- "
                       "| ---: | ---: | ---: |\n");
        header = true;
        fprintf(f, "| generated (step %s) | %.0f | %.4f | %.4f |\n", st->name, v[0], v[1], v[2]);
        fprintf(f, "| real test images | %.0f | %.4f | %.4f |\n", v[3], v[4], v[5]);
    }
    /* hash codes as a retrieval index */
    header = false;
    for (int si = 0; si < e->n_steps; si++) {
        const step *st = &e->steps[si];
        const run *r = &st->runs[0];
        double v[11];
        static const char *const names[11] = {"bits", "distinct", "largest_bucket", "saturation",
                                              "gini", "purity", "purity_r1", "purity_r2",
                                              "precision_r2", "map", "queries"};
        if (st->kind != STEP_HASH || !r->done)
            continue;
        for (int k = 0; k < 11; k++)
            if (!lookup(r, names[k], &v[k]))
                v[k] = NAN;
        if (!header)
            fprintf(f, "\n## Hashing\n\nThe test images as queries against the 60,000 "
                       "training images, \"same label\" as relevant. Purity is 1 − the "
                       "size-weighted Gini impurity of the labels: of the buckets of identical "
                       "codes, and of the Hamming balls of radius 1 and 2 around each query. "
                       "Saturation: the share of the queries' code activations within 0.1 of 0 "
                       "or 1 (logistic layers only).\n\n| codes | bits | distinct codes | "
                       "largest bucket | saturation | bucket purity (Gini) | purity r≤1 | "
                       "purity r≤2 | precision r≤2 | mAP |\n| --- | ---: | ---: | ---: | ---: | "
                       "---: | ---: | ---: | ---: | ---: |\n");
        header = true;
        char sat[32];
        snprintf(sat, sizeof sat, isnan(v[3]) ? "–" : "%.3f", v[3]);
        fprintf(f, "| %s (%s) | %.0f | %.0f | %.0f | %s | %.4f (%.4f) | %.4f | %.4f | %.4f | "
                   "**%.4f** |\n", st->name, r->dir, v[0], v[1], v[2], sat, v[5], v[4], v[6],
                v[7], v[8], v[9]);
    }
    /* the pictures */
    header = false;
    for (int si = 0; si < e->n_steps; si++) {
        const step *st = &e->steps[si];
        if ((st->kind != STEP_SHOW && st->kind != STEP_SAMPLE) || !st->runs[0].done)
            continue;
        if (!header)
            fprintf(f, "\n## Pictures\n");
        header = true;
        for (int i = 0; i < (st->kind == STEP_SHOW ? picture_count(st) : 1); i++) {
            char p[1200];
            outputs(e, st, i, p, sizeof p);
            const char *rel = p + strlen(e->dir) + 1;
            const char *what = st->kind == STEP_SHOW ? picture(st, i) : "samples";
            fprintf(f, "\n### %s: %s (%s)\n\n![%s %s](%s)\n", st->name, what,
                    st->runs[0].dir, st->name, what, rel);
        }
    }
    if (commit_tmp(f, tmp, path, err))
        return err->code;
    say(e, "report: %s\n", path);
    return 0;
}

/* ---- running ----------------------------------------------------------------------------- */

static void free_experiment(experiment *e)
{
    for (int i = 0; i < e->n_steps; i++)
        free(e->steps[i].runs);
    yf__tree_free(e->tree);
}

/* Reads the experiment file and checks it whole before anything runs:
 * every train step's spec compiled, every trial of a tune step, every
 * reference resolved. Writes nothing. */
static int prepare(experiment *e, const char *path, yf_error *err)
{
    e->path = path;
    e->tree = yf__tree_load(path, err);
    int rc = e->tree ? parse(e, err) : err->code;
    if (!rc) {
        if (e->o->out_dir)
            snprintf(e->dir, sizeof e->dir, "%s", e->o->out_dir);
        else
            snprintf(e->dir, sizeof e->dir, "runs/%s", e->name);
    }
    /* the folders, and every train step's spec checked before anything
     * runs: a typo in the last step costs nothing */
    for (int si = 0; si < e->n_steps && !rc; si++) {
        step *st = &e->steps[si];
        for (int k = 0; k < st->repeat && st->kind == STEP_TRAIN && !rc; k++) {
            if (st->repeat > 1) {
                uint64_t unused = 0;
                yf_spec *s0 = train_spec(e, si, 0, NULL, 0, &unused, err);
                if (!s0) {
                    rc = err->code;
                    break;
                }
                snprintf(st->runs[k].dir, sizeof st->runs[k].dir, "%s/%s/seed-%llu", e->dir,
                         st->name, (unsigned long long)s0->seed + k);
                yf_spec_free(s0);
            } else {
                snprintf(st->runs[k].dir, sizeof st->runs[k].dir, "%s/%s", e->dir, st->name);
            }
        }
        if (rc)
            break;
        if (st->kind == STEP_TUNE) {
            /* the best trial's run; every trial's spec is checked now */
            snprintf(st->runs[0].dir, sizeof st->runs[0].dir, "%s/%s/best", e->dir, st->name);
            trial *t = make_trials(st, err);
            rc = t ? 0 : err->code;
            for (int i = 0; t && i < st->trials && !rc; i++) {
                uint64_t unused = 0;
                yf_spec *sp = train_spec(e, si, 0, (const char *const *)t[i].ov, t[i].n_ov,
                                         &unused, err);
                yf_model *m = sp ? yf_model_new(sp, 1, err) : NULL;
                if (!m)
                    rc = err->code;
                else if (hash_metric(st->metric) && !st->layer[0] && !sp->hash_layer[0])
                    rc = yf__fail_at(err, st->at, YF_ESPEC, "step '%s': the metric '%s' needs "
                                     "hash codes: give 'layer', or hash: {layer} in the model",
                                     st->name, st->metric);
                yf_model_free(m);
                yf_spec_free(sp);
            }
            free_trials(t, st->trials);
            continue;
        }
        for (int k = 0; k < st->repeat && !rc; k++) {
            uint64_t unused = 0;
            if (st->kind == STEP_TRAIN) {
                yf_spec *s = train_spec(e, si, k, NULL, 0, &unused, err);
                yf_model *m = s ? yf_model_new(s, 1, err) : NULL;
                if (!m)
                    rc = err->code;
                yf_model_free(m);
                yf_spec_free(s);
            } else {
                char buf[1024];
                rc = expand(e, si, 0, st->target, st->target->str, buf, sizeof buf, &unused, err);
                if (!rc && st->score)
                    rc = expand(e, si, 0, st->score, st->score->str, buf, sizeof buf, &unused,
                                err);
            }
        }
    }
    return rc;
}

int yf__experiment_check(const char *path, yf_error *err)
{
    static const yf_experiment_opts none = {0};
    experiment *e = yf__calloc(1, sizeof *e);
    if (!e)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    e->o = &none;
    int rc = prepare(e, path, err);
    free_experiment(e);
    free(e);
    return rc;
}

int yf_experiment_run(const char *path, const yf_experiment_opts *o, yf_error *err)
{
    static const yf_experiment_opts none = {0};
    experiment *e = yf__calloc(1, sizeof *e);
    if (!e)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    e->o = o ? o : &none;
    int rc = prepare(e, path, err);
    if (!rc) {
        char pics[1100];
        snprintf(pics, sizeof pics, "%s/pictures", e->dir);
        rc = mkdir_p(pics, err);
    }
    int total = 0, at = 0;
    for (int si = 0; si < e->n_steps; si++)
        total += e->steps[si].repeat;
    int failed = -1;
    for (int si = 0; si < e->n_steps && !rc; si++) {
        step *st = &e->steps[si];
        for (int k = 0; k < st->repeat && !rc; k++) {
            say(e, "[%d/%d] ", ++at, total);
            rc = st->kind == STEP_TRAIN ? run_train(e, si, k, NULL, 0, err)
                 : st->kind == STEP_TUNE ? run_tune(e, si, err) : run_other(e, si, err);
        }
        if (rc) {
            failed = si;
            /* the step's message, with its name in front */
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            if (strncmp(msg, "step '", 6))
                snprintf(err->msg, sizeof err->msg, "step '%s' failed: %s", st->name, msg);
        }
    }
    if (e->n_steps && e->dir[0] && (failed >= 0 || !rc)) {
        yf_error werr = {0};
        char why[256];
        snprintf(why, sizeof why, "%s", rc ? err->msg : "");
        for (char *p = why; *p; p++)
            if (*p == '\n' || *p == '|')
                *p = ' ';
        int wrc = write_report(e, failed, why, rc ? &werr : err);
        if (!rc)
            rc = wrc;
    }
    free_experiment(e);
    free(e);
    return rc;
}
