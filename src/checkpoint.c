/* Checkpoints in the safetensors format: an 8-byte little-endian header
 * length, a JSON header naming each tensor's dtype, shape and byte range,
 * then the raw little-endian data. Parameters keep their names
 * ("hidden1.W"); optimizer moments are "optim.m.<name>" and
 * "optim.v.<name>"; the step counter is in __metadata__. Files are written
 * to a temporary name and renamed, so an old checkpoint survives a failure. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

int yf_checkpoint_save(yf_model *m, const char *path, yf_error *err)
{
    entry *e = calloc(3 * m->n_params + 1, sizeof *e);
    int n = collect(m, e);
    size_t cap = 256 + (size_t)n * 256, len = 0;
    char *hdr = malloc(cap);
    len += snprintf(hdr + len, cap - len,
                    "{\"__metadata__\":{\"format\":\"yaflow\",\"model\":\"%s\",\"step\":\"%llu\"}",
                    m->spec->name, (unsigned long long)m->step);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const yf__param *p = e[i].p;
        len += snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%d", e[i].name,
                        p->dims[0]);
        if (p->ndim == 2)
            len += snprintf(hdr + len, cap - len, ",%d", p->dims[1]);
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
    for (int i = 0; i < n; i++)
        fwrite(block_of(m, e[i].kind) + e[i].p->offset, sizeof(float), e[i].p->size, f);
    if (ferror(f) | fclose(f)) {
        remove(tmp);
        rc = yf__fail(err, YF_EIO, "cannot write checkpoint %s", tmp);
        goto done;
    }
    if (rename(tmp, path)) {
        remove(tmp);
        rc = yf__fail(err, YF_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    }
done:
    free(hdr);
    free(e);
    return rc;
}

int yf_checkpoint_load(yf_model *m, const char *path, int with_optim, yf_error *err)
{
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
    size_t dlen = (size_t)fsize - 8 - hlen;
    char *hdr = malloc(hlen);
    char *data = malloc(dlen ? dlen : 1);
    float *stage = NULL;
    entry *e = NULL;
    yf__json j = {0};
    int rc = 0;
    if (!hdr || !data || fread(hdr, 1, hlen, f) != hlen || fread(data, 1, dlen, f) != dlen) {
        rc = yf__fail_file(err, YF_ECKPT, path, "cannot read checkpoint");
        goto done;
    }
    char msg[200];
    bool parsed = yf__json_parse(hdr, hlen, &j, msg, sizeof msg) == 0;
    if (!parsed || j.t != YF__J_OBJ) {
        rc = yf__fail_file(err, YF_ECKPT, path, "corrupt safetensors header: %s",
                           parsed ? "not a JSON object" : msg);
        goto done;
    }
    /* stage everything, so that a bad tensor leaves the model unchanged */
    stage = malloc(3 * m->param_floats * sizeof(float) + 64);
    e = calloc(3 * m->n_params + 1, sizeof *e);
    if (!stage || !e) {
        rc = yf__fail(err, YF_ENOMEM, "out of memory loading %s", path);
        goto done;
    }
    int n = collect(m, e);
    for (int i = 0; i < n; i++) {
        if (e[i].kind && !with_optim)
            continue;
        const yf__json *t = yf__json_get(&j, e[i].name);
        if (!t) {
            rc = yf__fail_file(err, YF_ECKPT, path, "no tensor '%s' in the checkpoint (is it from another model?)",
                          e[i].name);
            goto done;
        }
        const yf__json *dt = yf__json_get(t, "dtype"), *sh = yf__json_get(t, "shape"),
                       *off = yf__json_get(t, "data_offsets");
        if (!dt || dt->t != YF__J_STR || strcmp(dt->str, "F32")) {
            rc = yf__fail_file(err, YF_ECKPT, path, "tensor '%s' is not F32", e[i].name);
            goto done;
        }
        const yf__param *p = e[i].p;
        bool shape_ok = sh && sh->t == YF__J_ARR && sh->n == p->ndim;
        for (int d = 0; shape_ok && d < p->ndim; d++)
            shape_ok = sh->items[d].t == YF__J_NUM && sh->items[d].num == p->dims[d];
        if (!shape_ok) {
            char got[64] = "?";
            if (sh && sh->t == YF__J_ARR) {
                size_t l = snprintf(got, sizeof got, "[");
                for (int d = 0; d < sh->n && l < sizeof got; d++)
                    l += snprintf(got + l, sizeof got - l, "%s%.10g", d ? ", " : "",
                                  sh->items[d].num);
                if (l < sizeof got)
                    snprintf(got + l, sizeof got - l, "]");
            }
            if (p->ndim == 2)
                rc = yf__fail_file(err, YF_ECKPT, path, "tensor '%s' has shape %s; the model needs [%d, %d]",
                              e[i].name, got, p->dims[0], p->dims[1]);
            else
                rc = yf__fail_file(err, YF_ECKPT, path, "tensor '%s' has shape %s; the model needs [%d]",
                              e[i].name, got, p->dims[0]);
            goto done;
        }
        if (!off || off->t != YF__J_ARR || off->n != 2 || off->items[0].t != YF__J_NUM ||
            off->items[1].t != YF__J_NUM || off->items[0].num < 0 ||
            off->items[1].num > (double)dlen ||
            off->items[1].num - off->items[0].num != (double)(p->size * 4)) {
            rc = yf__fail_file(err, YF_ECKPT, path, "tensor '%s' has bad data_offsets (data is %zu bytes; "
                                     "the file may be truncated)", e[i].name, dlen);
            goto done;
        }
        memcpy(stage + e[i].kind * m->param_floats + p->offset,
               data + (size_t)off->items[0].num, p->size * 4);
    }
    const yf__json *meta = yf__json_get(&j, "__metadata__");
    const yf__json *step = meta ? yf__json_get(meta, "step") : NULL;
    for (int i = 0; i < n; i++)
        if (!e[i].kind || with_optim)
            memcpy(block_of(m, e[i].kind) + e[i].p->offset,
                   stage + e[i].kind * m->param_floats + e[i].p->offset, e[i].p->size * 4);
    if (with_optim && step && step->t == YF__J_STR)
        m->step = strtoull(step->str, NULL, 10);
done:
    fclose(f);
    yf__json_free(&j);
    free(hdr);
    free(data);
    free(stage);
    free(e);
    return rc;
}
