/* A small JSON reader, enough for safetensors headers: objects, arrays,
 * strings (with escapes), numbers, true/false/null. Depth is bounded. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end, *start;
    char *msg;
    size_t cap;
    size_t budget; /* bytes the parse may still allocate */
    bool oom;      /* an allocation failed */
} reader;

/* Allocates (or grows p to) n bytes, charged to the budget. */
static void *take(reader *r, void *p, size_t old, size_t n)
{
    if (n - old > r->budget) {
        snprintf(r->msg, r->cap, "the JSON header would need more memory than %zu bytes of "
                 "header justify", (size_t)(r->end - r->start));
        return NULL;
    }
    void *q = yf__realloc(p, n);
    if (!q) {
        r->oom = true;
        snprintf(r->msg, r->cap, "out of memory");
        return NULL;
    }
    r->budget -= n - old;
    return q;
}

static int bad(reader *r, const char *what)
{
    snprintf(r->msg, r->cap, "%s at byte %ld of the JSON header", what,
             (long)(r->p - r->start));
    return -1;
}

static void ws(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static int value(reader *r, yf__json *out, int depth);

static int string(reader *r, char **out)
{
    if (r->p >= r->end || *r->p != '"')
        return bad(r, "expected a string");
    r->p++;
    size_t cap = 16, n = 0;
    char *s = take(r, NULL, 0, cap);
    if (!s)
        return -1;
    while (r->p < r->end && *r->p != '"') {
        char c = *r->p++;
        if (c == '\\') {
            if (r->p >= r->end)
                break;
            c = *r->p++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                if (r->end - r->p < 4) {
                    free(s);
                    return bad(r, "bad \\u escape");
                }
                r->p += 4;
                c = '?';
                break;
            default: break;
            }
        } else if ((unsigned char)c < 32) {
            free(s);
            return bad(r, "control character in a string");
        }
        if (n + 2 > cap) {
            char *more = take(r, s, cap, 2 * cap);
            if (!more) {
                free(s);
                return -1;
            }
            s = more, cap *= 2;
        }
        s[n++] = c;
    }
    if (r->p >= r->end) {
        free(s);
        return bad(r, "unterminated string");
    }
    r->p++;
    s[n] = 0;
    *out = s;
    return 0;
}

/* Appends item (and its key, in an object); on failure the caller still
 * owns both. */
static int push(reader *r, yf__json *out, char *key, yf__json *item)
{
    if (out->n == out->cap) {
        int cap = out->cap ? 2 * out->cap : 4;
        yf__json *items = take(r, out->items, out->cap * sizeof *items, cap * sizeof *items);
        if (!items)
            return -1;
        out->items = items;
        if (out->t == YF__J_OBJ) {
            char **keys = take(r, out->keys, out->cap * sizeof *keys, cap * sizeof *keys);
            if (!keys) {
                out->cap = cap; /* items grew already */
                return -1;
            }
            out->keys = keys;
        }
        out->cap = cap;
    }
    if (out->t == YF__J_OBJ)
        out->keys[out->n] = key;
    out->items[out->n++] = *item;
    return 0;
}

static int value(reader *r, yf__json *out, int depth)
{
    memset(out, 0, sizeof *out);
    ws(r);
    if (depth > 32)
        return bad(r, "nesting too deep");
    if (r->p >= r->end)
        return bad(r, "unexpected end");
    char c = *r->p;
    if (c == '{' || c == '[') {
        out->t = c == '{' ? YF__J_OBJ : YF__J_ARR;
        char close = c == '{' ? '}' : ']';
        r->p++;
        ws(r);
        if (r->p < r->end && *r->p == close) {
            r->p++;
            return 0;
        }
        for (;;) {
            char *key = NULL;
            ws(r);
            if (out->t == YF__J_OBJ) {
                if (string(r, &key))
                    return -1;
                ws(r);
                if (r->p >= r->end || *r->p != ':') {
                    free(key);
                    return bad(r, "expected ':'");
                }
                r->p++;
            }
            yf__json item;
            if (value(r, &item, depth + 1)) {
                free(key);
                yf__json_free(&item);
                return -1;
            }
            if (push(r, out, key, &item)) {
                free(key);
                yf__json_free(&item);
                return -1;
            }
            ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            if (r->p < r->end && *r->p == close) {
                r->p++;
                return 0;
            }
            return bad(r, "expected ',' or a closing bracket");
        }
    }
    if (c == '"') {
        out->t = YF__J_STR;
        return string(r, &out->str);
    }
    if (r->end - r->p >= 4 && !strncmp(r->p, "true", 4))
        return out->t = YF__J_BOOL, out->num = 1, r->p += 4, 0;
    if (r->end - r->p >= 5 && !strncmp(r->p, "false", 5))
        return out->t = YF__J_BOOL, r->p += 5, 0;
    if (r->end - r->p >= 4 && !strncmp(r->p, "null", 4))
        return out->t = YF__J_NULL, r->p += 4, 0;
    char buf[64];
    size_t n = 0;
    while (r->p < r->end && n < 63 && *r->p && strchr("+-0123456789.eE", *r->p))
        buf[n++] = *r->p++;
    buf[n] = 0;
    char *e;
    out->num = strtod(buf, &e);
    if (n == 0 || *e)
        return bad(r, "bad value");
    out->t = YF__J_NUM;
    return 0;
}

int yf__json_parse(const char *text, size_t len, yf__json *out, char *msg, size_t cap)
{
    reader r = {text, text + len, text, msg, cap, 16 * len + 4096, false};
    if (value(&r, out, 0)) {
        yf__json_free(out);
        return r.oom ? -2 : -1;
    }
    ws(&r);
    if (r.p != r.end) {
        yf__json_free(out);
        snprintf(msg, cap, "trailing bytes after the JSON header");
        return -1;
    }
    return 0;
}

void yf__json_free(yf__json *j)
{
    for (int i = 0; i < j->n; i++) {
        yf__json_free(&j->items[i]);
        if (j->keys)
            free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->str);
    memset(j, 0, sizeof *j);
}

const yf__json *yf__json_get(const yf__json *obj, const char *key)
{
    if (obj->t != YF__J_OBJ)
        return NULL;
    for (int i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key))
            return &obj->items[i];
    return NULL;
}
