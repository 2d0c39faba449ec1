/* Error objects, status names and "did you mean" suggestions. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *yf_status_name(yf_status s)
{
    switch (s) {
#define XX(name, value, exitcode, text) case YF_##name: return text;
        YF_STATUS_MAP(XX)
#undef XX
    }
    return "unknown error";
}

int yf_status_exit_code(yf_status s)
{
    switch (s) {
#define XX(name, value, exitcode, text) case YF_##name: return exitcode;
        YF_STATUS_MAP(XX)
#undef XX
    }
    return 1;
}

const char *yf_error_format(yf_error *err)
{
    if (err->file[0] && err->line > 0)
        snprintf(err->text, sizeof err->text, "%s:%d:%d: %s", err->file,
                 err->line, err->col, err->msg);
    else if (err->file[0])
        snprintf(err->text, sizeof err->text, "%s: %s", err->file, err->msg);
    else
        snprintf(err->text, sizeof err->text, "%s", err->msg);
    return err->text;
}

static int vfail(yf_error *err, const yf__node *at, yf_status code,
                 const char *fmt, va_list ap)
{
    if (!err)
        return code;
    memset(err, 0, offsetof(yf_error, text));
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    if (at) {
        snprintf(err->file, sizeof err->file, "%s", at->file ? at->file : "");
        err->line = at->line;
        err->col = at->col;
        yf__node_path(at, err->key, sizeof err->key);
    }
    return code;
}

int yf__fail(yf_error *err, yf_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, NULL, code, fmt, ap);
    va_end(ap);
    return code;
}

int yf__fail_at(yf_error *err, const yf__node *at, yf_status code,
                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, at, code, fmt, ap);
    va_end(ap);
    return code;
}

int yf__fail_file(yf_error *err, yf_status code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, NULL, code, fmt, ap);
    va_end(ap);
    if (err)
        snprintf(err->file, sizeof err->file, "%s", path);
    return code;
}

int yf__edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            /* two neighbours swapped, the commonest typo, is one edit
             * (optimal string alignment) */
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    return d[la][lb];
}

const char *yf__closest(const char *word, const char *const *cands, int n)
{
    const char *best = NULL;
    int best_d = 99;
    int limit = strlen(word) <= 4 ? 2 : 3;
    for (int i = 0; i < n; i++) {
        int d = yf__edit_distance(word, cands[i]);
        /* a prefix ("log_var" in "log_variance") is a likely meaning too */
        size_t lc = strlen(cands[i]);
        if (lc >= 3 && strncmp(word, cands[i], lc) == 0 && d > 1)
            d = limit;
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best_d <= limit ? best : NULL;
}

void yf__dims_str(const int *dims, int ndim, char *buf, size_t cap)
{
    size_t l = snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && l < cap; i++)
        l += snprintf(buf + l, cap - l, "%s%d", i ? ", " : "", dims[i]);
    if (l < cap)
        snprintf(buf + l, cap - l, "]");
}
