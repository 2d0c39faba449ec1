#define _GNU_SOURCE /* open_memstream */
/* Checkpoints in the safetensors format: an 8-byte little-endian header
 * length, a JSON header naming each tensor's dtype, shape and byte range,
 * then the raw little-endian data. Parameters keep their names
 * ("hidden1.W"); optimizer moments are "optim.m.<name>" and
 * "optim.v.<name>"; the step counter is in __metadata__. Files are written
 * to a temporary name and renamed, so an old checkpoint survives a failure. */
#include "internal.h"

#include <zlib.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One tensor of a checkpoint: a parameter (kind 0) or its first or second
 * optimizer moment (kinds 1, 2), in the block of that kind. */
typedef struct {
    char name[160];
    int kind;
    const yf__param *p;
} entry;

static float *block_of(yf_model *m, int kind)
{
    return kind == 0 ? m->param_block : kind == 1 ? m->m_block : m->v_block;
}

static int collect(yf_model *m, entry *e)
{
    int n = 0;
    bool moments = m->spec->optim.type != YF_OPTIM_SGD;
    for (int p = 0; p < m->n_params; p++) {
        const yf__param *pp = &m->params[p];
        snprintf(e[n].name, sizeof e[n].name, "%s", pp->name);
        e[n].kind = 0, e[n++].p = pp;
        if (moments && pp->trainable) {
            snprintf(e[n].name, sizeof e[n].name, "optim.m.%s", pp->name);
            e[n].kind = 1, e[n++].p = pp;
        }
        if (m->spec->optim.type == YF_OPTIM_ADAM && pp->trainable) {
            snprintf(e[n].name, sizeof e[n].name, "optim.v.%s", pp->name);
            e[n].kind = 2, e[n++].p = pp;
        }
    }
    return n;
}

/* FNV-1a of the resolved config (as config.yaml holds it, without its
 * first line, which names the file it came from, and without data.dir,
 * which says where the data are, not what they are): which config a
 * checkpoint's parameters belong to. 0 when memory ran out writing it out
 * (a hash of part of it would pass for another config's). */
uint64_t yf__config_hash(const yf_spec *spec)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return 0;
    const yf__node *data = yf__map_get(spec->tree->root, "data");
    yf__tree_emit_except(spec->tree->root, data ? yf__map_get(data, "dir") : NULL, f);
    int bad = ferror(f);
    if (fclose(f) || bad || !text) {
        free(text);
        return 0;
    }
    uint64_t h = yf__fnv1a(0, text, len);
    free(text);
    return h;
}

uint64_t yf__fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    if (!h)
        h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * UINT64_C(1099511628211);
    return h;
}

/* Appends s to hdr as the body of a JSON string. */
static size_t json_escaped(char *hdr, size_t len, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            hdr[len++] = '\\', hdr[len++] = (char)c;
        else if (c == '\n')
            hdr[len++] = '\\', hdr[len++] = 'n';
        else if (c >= 0x20)
            hdr[len++] = (char)c;
    }
    return len;
}

void (*yf__save_hook)(int stage);

static void save_point(int stage)
{
    if (yf__save_hook)
        yf__save_hook(stage);
}

int yf_checkpoint_save(yf_model *m, const char *path, yf_error *err)
{
    return yf__checkpoint_save(m, path, NULL, err);
}

int yf__checkpoint_save(yf_model *m, const char *path, const yf__progress *pr, yf_error *err)
{
    entry *e = yf__calloc(3 * m->n_params + 1, sizeof *e);
    size_t cap = 1024 + (size_t)(3 * m->n_params + 1) * 256 +
                 (pr && pr->metrics ? 2 * strlen(pr->metrics) : 0), len = 0;
    char *hdr = yf__malloc(cap);
    if (!e || !hdr) {
        free(e);
        free(hdr);
        return yf__fail(err, YF_ENOMEM, "out of memory writing checkpoint %s", path);
    }
    uint64_t config = yf__config_hash(m->spec);
    if (!config) {
        free(e);
        free(hdr);
        return yf__fail(err, YF_ENOMEM, "out of memory writing checkpoint %s", path);
    }
    int n = collect(m, e);
    /* the data's CRC-32 and the optimizer go in the metadata: a damaged
     * file or another optimizer's state is refused when read */
    uLong crc = crc32(0, NULL, 0);
    for (int i = 0; i < n; i++)
        crc = crc32(crc, (const Bytef *)(block_of(m, e[i].kind) + e[i].p->offset),
                    (uInt)(e[i].p->size * sizeof(float)));
    static const char *const optim_names[] = {
#define XX(e, s) #s,
        YF_OPTIMIZERS(XX)
#undef XX
    };
    len += snprintf(hdr + len, cap - len,
                    "{\"__metadata__\":{\"format\":\"yaflow\",\"model\":\"%s\",\"step\":\"%llu\","
                    "\"optimizer\":\"%s\",\"crc32\":\"%08lx\",\"config\":\"%016llx\"}",
                    m->spec->name, (unsigned long long)m->step, optim_names[m->spec->optim.type],
                    (unsigned long)crc, (unsigned long long)config);
    if (pr) { /* where training stands, so that --resume continues exactly */
        len--; /* reopen __metadata__ */
        len += snprintf(hdr + len, cap - len,
                        ",\"epoch\":\"%d\",\"position\":\"%zu\",\"loss_sum\":\"%.17g\","
                        "\"best\":\"%.17g\",\"best_epoch\":\"%d\",\"finished\":\"%s\","
                        "\"metrics\":\"", pr->epoch, pr->position, pr->loss_sum, pr->best,
                        pr->best_epoch, pr->finished ? "true" : "false");
        len = json_escaped(hdr, len, pr->metrics ? pr->metrics : "");
        len += snprintf(hdr + len, cap - len, "\"}");
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const yf__param *p = e[i].p;
        len += snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%d", e[i].name,
                        p->dims[0]);
        for (int d = 1; d < p->ndim; d++)
            len += snprintf(hdr + len, cap - len, ",%d", p->dims[d]);
        len += snprintf(hdr + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off,
                        off + p->size * 4);
        off += p->size * 4;
    }
    len += snprintf(hdr + len, cap - len, "}");
    while (len % 8)
        hdr[len++] = ' ';
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) {
        rc = yf__fail(err, YF_EIO, "cannot write checkpoint %s: %s", tmp, strerror(errno));
        goto done;
    }
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)((uint64_t)len >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(hdr, 1, len, f);
    save_point(1);
    for (int i = 0; i < n; i++) {
        fwrite(block_of(m, e[i].kind) + e[i].p->offset, sizeof(float), e[i].p->size, f);
        if (i == n / 2) {
            fflush(f);
            save_point(2);
        }
    }
    /* on the disk before it replaces the previous checkpoint */
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int e = errno;
        fclose(f);
        remove(tmp);
        rc = yf__fail(err, YF_EIO, "cannot write checkpoint %s: %s", tmp, strerror(e));
        goto done;
    }
    if (ferror(f) | fclose(f)) {
        int e = errno;
        remove(tmp);
        rc = yf__fail(err, YF_EIO, "cannot write checkpoint %s: %s", tmp, strerror(e));
        goto done;
    }
    save_point(3);
    if (rename(tmp, path)) {
        remove(tmp);
        rc = yf__fail(err, YF_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto done;
    }
    save_point(4);
    /* and the rename itself on the disk: the folder's entry */
    char folder[1100];
    snprintf(folder, sizeof folder, "%s", path);
    char *slash = strrchr(folder, '/');
    if (slash)
        *slash = 0;
    int fd = open(slash ? (folder[0] ? folder : "/") : ".", O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
done:
    free(hdr);
    free(e);
    return rc;
}

/* A safetensors file read whole: its parsed header and its data. */
typedef struct {
    yf__json j;
    char *data;
    size_t dlen;
} stfile;

static void st_free(stfile *st)
{
    yf__json_free(&st->j);
    free(st->data);
}

/* The tensors' byte ranges, as the safetensors format requires: whole
 * numbers, within the data, not overlapping, and together the whole data
 * section (no gaps, no trailing bytes). */
typedef struct {
    double begin, end;
    const char *name;
} range;

static int by_begin(const void *a, const void *b)
{
    double x = ((const range *)a)->begin, y = ((const range *)b)->begin;
    return x < y ? -1 : x > y;
}

static int check_layout(const stfile *st, const char *path, yf_error *err)
{
    const yf__json *j = &st->j;
    range *r = yf__malloc((j->n + 1) * sizeof *r);
    if (!r)
        return yf__fail(err, YF_ENOMEM, "out of memory reading %s", path);
    int n = 0, rc = 0;
    for (int i = 0; i < j->n && !rc; i++) {
        if (!strcmp(j->keys[i], "__metadata__"))
            continue;
        const yf__json *off = yf__json_get(&j->items[i], "data_offsets");
        if (!off || off->t != YF__J_ARR || off->n != 2 || off->items[0].t != YF__J_NUM ||
            off->items[1].t != YF__J_NUM) {
            rc = yf__fail_file(err, YF_ECKPT, path, "tensor '%s' has no data_offsets [begin, end]",
                               j->keys[i]);
            break;
        }
        double b = off->items[0].num, e = off->items[1].num;
        if (b != floor(b) || e != floor(e) || b < 0 || e < b || e > (double)st->dlen)
            rc = yf__fail_file(err, YF_ECKPT, path, "tensor '%s' has data_offsets [%g, %g]: not "
                               "whole bytes within the %zu bytes of data", j->keys[i], b, e,
                               st->dlen);
        r[n].begin = b, r[n].end = e, r[n++].name = j->keys[i];
    }
    if (!rc)
        qsort(r, n, sizeof *r, by_begin);
    double at = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (r[i].begin < at)
            rc = yf__fail_file(err, YF_ECKPT, path, "tensors '%s' and '%s' overlap",
                               r[i - 1].name, r[i].name);
        else if (r[i].begin > at)
            rc = yf__fail_file(err, YF_ECKPT, path, "%g bytes before tensor '%s' belong to no "
                               "tensor", r[i].begin - at, r[i].name);
        at = r[i].end;
    }
    if (!rc && at != (double)st->dlen)
        rc = yf__fail_file(err, YF_ECKPT, path, "%g bytes after the last tensor belong to no "
                           "tensor (trailing bytes)", (double)st->dlen - at);
    free(r);
    return rc;
}

static int st_read(const char *path, stfile *st, yf_error *err)
{
    memset(st, 0, sizeof *st);
    FILE *f = fopen(path, "rb");
    if (!f)
        return yf__fail_file(err, YF_ECKPT, path, "cannot open checkpoint: %s", strerror(errno));
    fseek(f, 0, SEEK_END);
    long fsize = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char le[8];
    if (fsize < 8 || fread(le, 1, 8, f) != 8) {
        fclose(f);
        return yf__fail_file(err, YF_ECKPT, path, "not a safetensors file: shorter than 8 bytes");
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)le[i] << (8 * i);
    if (hlen < 2 || hlen > (uint64_t)fsize - 8 || hlen > (100u << 20)) {
        fclose(f);
        return yf__fail_file(err, YF_ECKPT, path, "not a safetensors file: header length %llu does not fit "
                                   "a file of %ld bytes", (unsigned long long)hlen, fsize);
    }
    st->dlen = (size_t)fsize - 8 - hlen;
    char *hdr = yf__malloc(hlen);
    st->data = yf__malloc(st->dlen ? st->dlen : 1);
    int rc = 0;
    if (!hdr || !st->data) {
        rc = yf__fail(err, YF_ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, f) != hlen || fread(st->data, 1, st->dlen, f) != st->dlen) {
        rc = yf__fail_file(err, YF_ECKPT, path, "cannot read checkpoint");
        goto done;
    }
    char msg[200];
    int jr = yf__json_parse(hdr, hlen, &st->j, msg, sizeof msg);
    bool parsed = jr == 0;
    if (jr == -2)
        rc = yf__fail(err, YF_ENOMEM, "out of memory reading %s", path);
    else if (!parsed || st->j.t != YF__J_OBJ)
        rc = yf__fail_file(err, YF_ECKPT, path, "corrupt safetensors header: %s",
                           parsed ? "not a JSON object" : msg);
    if (!rc)
        rc = check_layout(st, path, err);
done:
    fclose(f);
    free(hdr);
    if (rc)
        st_free(st);
    return rc;
}

static void json_shape(const yf__json *sh, char *got, size_t cap)
{
    snprintf(got, cap, "?");
    if (!sh || sh->t != YF__J_ARR)
        return;
    size_t l = snprintf(got, cap, "[");
    for (int d = 0; d < sh->n && l < cap; d++)
        l += snprintf(got + l, cap - l, "%s%.10g", d ? ", " : "", sh->items[d].num);
    if (l < cap)
        snprintf(got + l, cap - l, "]");
}

static void param_shape(const yf__param *p, char *buf, size_t cap)
{
    yf__dims_str(p->dims, p->ndim, buf, cap);
}

/* The data of tensor `name` in st, checked to be F32 of p's shape; NULL
 * with a message (placed at `at` when given, else in the file) if not. */
static const char *st_tensor(const stfile *st, const char *path, const char *name,
                             const yf__param *p, const yf__node *at, const char *ctx,
                             yf_error *err)
{
    const yf__json *t = yf__json_get(&st->j, name);
    if (!t) {
        if (at)
            yf__fail_at(err, at, YF_ECKPT, "%s%s has no tensor '%s'", ctx, path, name);
        else
            yf__fail_file(err, YF_ECKPT, path,
                          "no tensor '%s' in the checkpoint (is it from another model?)", name);
        return NULL;
    }
    const yf__json *dt = yf__json_get(t, "dtype"), *sh = yf__json_get(t, "shape"),
                   *off = yf__json_get(t, "data_offsets");
    if (!dt || dt->t != YF__J_STR || strcmp(dt->str, "F32")) {
        yf__fail_file(err, YF_ECKPT, path, "tensor '%s' is not F32", name);
        return NULL;
    }
    bool shape_ok = sh && sh->t == YF__J_ARR && sh->n == p->ndim;
    for (int d = 0; shape_ok && d < p->ndim; d++)
        shape_ok = sh->items[d].t == YF__J_NUM && sh->items[d].num == p->dims[d];
    if (!shape_ok) {
        char got[64], want[64];
        json_shape(sh, got, sizeof got);
        param_shape(p, want, sizeof want);
        if (at)
            yf__fail_at(err, at, YF_ECKPT, "%s'%s' is %s in %s, but this model's '%s' is %s",
                        ctx, name, got, path, p->name, want);
        else
            yf__fail_file(err, YF_ECKPT, path, "tensor '%s' has shape %s; the model needs %s",
                          name, got, want);
        return NULL;
    }
    if (!off || off->t != YF__J_ARR || off->n != 2 || off->items[0].t != YF__J_NUM ||
        off->items[1].t != YF__J_NUM || off->items[0].num < 0 ||
        off->items[1].num > (double)st->dlen ||
        off->items[1].num - off->items[0].num != (double)(p->size * 4)) {
        yf__fail_file(err, YF_ECKPT, path, "tensor '%s' has bad data_offsets (data is %zu bytes; "
                                 "the file may be truncated)", name, st->dlen);
        return NULL;
    }
    return st->data + (size_t)off->items[0].num;
}

int yf_checkpoint_load(yf_model *m, const char *path, int with_optim, yf_error *err)
{
    return yf__checkpoint_load(m, path, with_optim, false, err);
}

int yf__checkpoint_load(yf_model *m, const char *path, int with_optim, bool same_config,
                        yf_error *err)
{
    stfile st;
    if (st_read(path, &st, err))
        return err->code;
    /* stage everything, so that a bad tensor leaves the model unchanged */
    float *stage = yf__malloc(3 * m->param_floats * sizeof(float) + 64);
    entry *e = yf__calloc(3 * m->n_params + 1, sizeof *e);
    int rc = 0;
    if (!stage || !e) {
        rc = yf__fail(err, YF_ENOMEM, "out of memory loading %s", path);
        goto done;
    }
    int n = collect(m, e);
    const yf__json *meta = yf__json_get(&st.j, "__metadata__");
    const yf__json *crc_s = meta ? yf__json_get(meta, "crc32") : NULL;
    const yf__json *opt = meta ? yf__json_get(meta, "optimizer") : NULL;
    const yf__json *cfg = meta ? yf__json_get(meta, "config") : NULL;
    const yf__json *name = meta ? yf__json_get(meta, "model") : NULL;
    if (same_config && cfg && cfg->t == YF__J_STR) {
        char want[32];
        uint64_t config = yf__config_hash(m->spec);
        if (!config) {
            rc = yf__fail(err, YF_ENOMEM, "out of memory loading %s", path);
            goto done;
        }
        snprintf(want, sizeof want, "%016llx", (unsigned long long)config);
        if (strcmp(cfg->str, want)) {
            rc = yf__fail_file(err, YF_ECKPT, path, "it was written for another config (model "
                               "'%s', config hash %s) than this one ('%s', %s): the folder's "
                               "config.yaml and checkpoint do not belong together",
                               name && name->t == YF__J_STR ? name->str : "?", cfg->str,
                               m->spec->name, want);
            goto done;
        }
    }
    if (crc_s && crc_s->t == YF__J_STR) { /* files written before it have none */
        unsigned long want = strtoul(crc_s->str, NULL, 16);
        if (crc32(crc32(0, NULL, 0), (const Bytef *)st.data, (uInt)st.dlen) != want) {
            rc = yf__fail_file(err, YF_ECKPT, path, "checksum mismatch: the tensors' CRC-32 is not "
                               "the %s the file records; the checkpoint is corrupt", crc_s->str);
            goto done;
        }
    }
    static const char *const optim_names[] = {
#define XX(e, s) #s,
        YF_OPTIMIZERS(XX)
#undef XX
    };
    if (with_optim && opt && opt->t == YF__J_STR &&
        strcmp(opt->str, optim_names[m->spec->optim.type])) {
        rc = yf__fail_file(err, YF_ECKPT, path, "it holds the state of optimizer '%s', but the "
                           "model trains with '%s'", opt->str, optim_names[m->spec->optim.type]);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (e[i].kind && !with_optim)
            continue;
        const char *src = st_tensor(&st, path, e[i].name, e[i].p, NULL, "", err);
        if (!src) {
            rc = err->code;
            goto done;
        }
        memcpy(stage + e[i].kind * m->param_floats + e[i].p->offset, src, e[i].p->size * 4);
    }
    const yf__json *step = meta ? yf__json_get(meta, "step") : NULL;
    for (int i = 0; i < n; i++)
        if (!e[i].kind || with_optim)
            memcpy(block_of(m, e[i].kind) + e[i].p->offset,
                   stage + e[i].kind * m->param_floats + e[i].p->offset, e[i].p->size * 4);
    if (with_optim && step && step->t == YF__J_STR)
        m->step = strtoull(step->str, NULL, 10);
done:
    st_free(&st);
    free(stage);
    free(e);
    return rc;
}

int yf__checkpoint_progress(const char *path, yf__progress *pr, yf_error *err)
{
    memset(pr, 0, sizeof *pr);
    stfile st;
    if (st_read(path, &st, err))
        return err->code;
    const yf__json *meta = yf__json_get(&st.j, "__metadata__");
    static const char *const keys[] = {"epoch", "position", "loss_sum", "best", "best_epoch",
                                       "finished", "metrics"};
    const yf__json *v[7];
    int rc = 0;
    for (int i = 0; i < 7 && !rc; i++) {
        v[i] = meta ? yf__json_get(meta, keys[i]) : NULL;
        if (!v[i] || v[i]->t != YF__J_STR)
            rc = yf__fail_file(err, YF_ECKPT, path, "it does not record where training stood "
                               "(no '%s' in its metadata): it was not written by yaflow train, "
                               "so it cannot be resumed", keys[i]);
    }
    if (!rc) {
        char *end1, *end2, *end3;
        long ep = strtol(v[0]->str, &end1, 10);
        pr->position = strtoull(v[1]->str, &end2, 10);
        long be = strtol(v[4]->str, &end3, 10);
        pr->loss_sum = strtod(v[2]->str, NULL);
        pr->best = strtod(v[3]->str, NULL);
        pr->finished = !strcmp(v[5]->str, "true");
        pr->metrics = yf__strdup(v[6]->str);
        const yf__json *step = yf__json_get(meta, "step");
        char *end4 = NULL;
        if (step && step->t == YF__J_STR)
            pr->step = strtoull(step->str, &end4, 10);
        if (!step || step->t != YF__J_STR || !step->str[0] || *end4)
            rc = yf__fail_file(err, YF_ECKPT, path, "its step '%s' is not a whole number",
                               step && step->t == YF__J_STR ? step->str : "?");
        if (*end1 || *end2 || *end3 || ep < 0 || ep > 1000000 || be < 0 || be > ep)
            rc = yf__fail_file(err, YF_ECKPT, path, "its record of where training stood is "
                               "corrupt (epoch '%s', position '%s')", v[0]->str, v[1]->str);
        else if (!pr->metrics)
            rc = yf__fail(err, YF_ENOMEM, "out of memory reading %s", path);
        pr->epoch = (int)ep, pr->best_epoch = (int)be;
    }
    if (rc) {
        free(pr->metrics);
        pr->metrics = NULL;
    }
    st_free(&st);
    return rc;
}

int yf__init_path(const yf_spec *s, int i, char *path, size_t cap)
{
    struct stat st;
    const char *from = s->init_src[i].from;
    if (stat(from, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(path, cap, "%s/checkpoint.safetensors", from);
    else
        snprintf(path, cap, "%s", from);
    return stat(path, &st) == 0;
}

/* Stages the layers copied from source `src` into stage. */
static int init_one(yf_model *m, int src, float *stage, yf_error *err)
{
    const yf_spec *s = m->spec;
    char path[1100];
    const yf__node *from_at = yf__map_get(s->init_src[src].at, "from");
    if (!yf__init_path(s, src, path, sizeof path))
        return yf__fail_at(err, from_at ? from_at : s->init_src[src].at, YF_ECKPT,
                           "init: '%s' does not exist (a run folder or a .safetensors file; "
                           "train the source model first)", s->init_src[src].from);
    stfile st;
    yf_error why = {0};
    if (st_read(path, &st, &why))
        return yf__fail_at(err, from_at ? from_at : s->init_src[src].at, why.code,
                           "init: %s: %s", path, why.msg);
    int rc = 0;
    for (int k = 0; k < s->n_init && !rc; k++) {
        const yf__init_pair *ip = &s->init[k];
        if (ip->src != src)
            continue;
        bool renamed = strcmp(ip->to, ip->from) != 0;
        char ctx[200];
        snprintf(ctx, sizeof ctx, "init: layer '%s'%s%s%s: ", ip->to, renamed ? " (from '" : "",
                 renamed ? ip->from : "", renamed ? "')" : "");
        size_t tl = strlen(ip->to);
        int found = 0;
        for (int p = 0; p < m->n_params && !rc; p++) {
            const yf__param *pp = &m->params[p];
            if (strncmp(pp->name, ip->to, tl) || pp->name[tl] != '.')
                continue;
            found++;
            char src_name[200];
            snprintf(src_name, sizeof src_name, "%s%s", ip->from, pp->name + tl);
            if (!yf__json_get(&st.j, src_name)) { /* a layer the source does not have */
                char have[400] = "";
                for (int i = 0; i < st.j.n && strlen(have) < 300; i++)
                    if (strncmp(st.j.keys[i], "optim.", 6) && strcmp(st.j.keys[i], "__metadata__"))
                        snprintf(have + strlen(have), sizeof have - strlen(have), "%s%.60s",
                                 have[0] ? ", " : "", st.j.keys[i]);
                rc = yf__fail_at(err, ip->at, YF_ECKPT, "%s%s has no tensor '%s' (it has: %s)",
                                 ctx, path, src_name, have[0] ? have : "nothing");
                break;
            }
            const char *data = st_tensor(&st, path, src_name, pp, ip->at, ctx, err);
            if (!data) {
                rc = err->code;
                break;
            }
            memcpy(stage + pp->offset, data, pp->size * 4);
        }
        if (!rc && !found)
            rc = yf__fail_at(err, ip->at, YF_ESPEC,
                             "%sthis model has no layer '%s' with parameters", ctx, ip->to);
    }
    st_free(&st);
    return rc;
}

int yf_model_init_from(yf_model *m, yf_error *err)
{
    const yf_spec *s = m->spec;
    if (!s->n_init)
        return 0;
    float *stage = yf__malloc(m->param_floats * sizeof(float) + 64);
    if (!stage)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < s->n_init_src && !rc; i++)
        rc = init_one(m, i, stage, err);
    if (!rc) /* every source read and checked: now copy */
        for (int k = 0; k < s->n_init; k++)
            for (int p = 0; p < m->n_params; p++) {
                const yf__param *pp = &m->params[p];
                size_t tl = strlen(s->init[k].to);
                if (!strncmp(pp->name, s->init[k].to, tl) && pp->name[tl] == '.')
                    memcpy(m->param_block + pp->offset, stage + pp->offset, pp->size * 4);
            }
    free(stage);
    return rc;
}

int yf_model_init_sources(const yf_model *m) { return m->spec->n_init_src; }

int yf_model_init_source(const yf_model *m, int i, char *path, size_t cap)
{
    return yf__init_path(m->spec, i, path, cap);
}
