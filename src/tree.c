/* YAML text → tree of yf__node with file:line:col on every node (libyaml),
 * dotted overrides, and an emitter for resolved configs. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

yf__node *yf__node_new(yf__kind kind, const char *file, int line, int col)
{
    yf__node *n = yf__calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->file = file;
    n->line = line;
    n->col = col;
    return n;
}

void yf__node_free(yf__node *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->n; i++) {
        yf__node_free(n->kid[i]);
        if (n->key)
            free(n->key[i]);
    }
    free(n->kid);
    free(n->key);
    free(n->kpos);
    free(n->str);
    free(n);
}

/* Room for one more child: 0, or -1 (out of memory; n unchanged). */
static int grow(yf__node *n)
{
    if (n->n < n->cap)
        return 0;
    int cap = n->cap ? 2 * n->cap : 4;
    yf__node **kid = yf__realloc(n->kid, cap * sizeof *kid);
    if (!kid)
        return -1;
    n->kid = kid;
    if (n->kind == YF__MAP) {
        char **key = yf__realloc(n->key, cap * sizeof *key);
        if (!key)
            return -1;
        n->key = key;
        int *kpos = yf__realloc(n->kpos, 2 * cap * sizeof *kpos);
        if (!kpos)
            return -1;
        n->kpos = kpos;
    }
    n->cap = cap;
    return 0;
}

int yf__seq_push(yf__node *seq, yf__node *kid)
{
    if (!kid || grow(seq)) {
        yf__node_free(kid);
        return -1;
    }
    kid->parent = seq;
    seq->kid[seq->n++] = kid;
    return 0;
}

yf__node *yf__map_get(const yf__node *map, const char *key)
{
    if (!map || map->kind != YF__MAP)
        return NULL;
    for (int i = 0; i < map->n; i++)
        if (strcmp(map->key[i], key) == 0)
            return map->kid[i];
    return NULL;
}

yf__node *yf__map_set_node(yf__node *map, const char *key, yf__node *val)
{
    if (!val)
        return NULL;
    val->parent = map;
    for (int i = 0; i < map->n; i++)
        if (strcmp(map->key[i], key) == 0) {
            yf__node_free(map->kid[i]);
            map->kid[i] = val;
            /* the key now comes from where the value does (an override) */
            map->kpos[2 * i] = val->line;
            map->kpos[2 * i + 1] = val->col;
            return val;
        }
    char *k = yf__strdup(key);
    if (!k || grow(map)) { /* the value is the map's or freed: never leaked */
        free(k);
        yf__node_free(val);
        return NULL;
    }
    map->kpos[2 * map->n] = val->line;
    map->kpos[2 * map->n + 1] = val->col;
    map->key[map->n] = k;
    map->kid[map->n++] = val;
    return val;
}

yf__node *yf__map_set_scalar(yf__node *map, const char *key, const char *val)
{
    yf__node *s = yf__node_new(YF__SCALAR, map->file, map->line, map->col);
    if (s && !(s->str = yf__strdup(val))) {
        yf__node_free(s);
        return NULL;
    }
    return yf__map_set_node(map, key, s);
}

void yf__node_path(const yf__node *n, char *buf, size_t cap)
{
    const yf__node *chain[64];
    int depth = 0;
    for (const yf__node *p = n; p && p->parent && depth < 64; p = p->parent)
        chain[depth++] = p;
    size_t len = 0;
    buf[0] = 0;
    for (int i = depth - 1; i >= 0; i--) {
        const yf__node *p = chain[i]->parent;
        int idx = 0;
        while (idx < p->n && p->kid[idx] != chain[i])
            idx++;
        if (p->kind == YF__MAP)
            len += snprintf(buf + len, len < cap ? cap - len : 0, "%s%s",
                            len ? "." : "", p->key[idx]);
        else
            len += snprintf(buf + len, len < cap ? cap - len : 0, "[%d]", idx);
        if (len >= cap)
            break;
    }
}

/* ---- parsing ------------------------------------------------------------ */

/* At most this many nodes in a tree: YAML aliases (*a) copy the nodes they
 * name, so a few lines of nested aliases could otherwise expand to 10^9. */
#define YF__MAX_NODES 100000
#define YF__MAX_SPEC_BYTES (4 << 20)

static yf__node *convert(yaml_document_t *doc, yaml_node_t *yn, const char *file,
                         int depth, long *budget, yf_error *err)
{
    int line = (int)yn->start_mark.line + 1, col = (int)yn->start_mark.column + 1;
    if (depth > 64 || --*budget < 0) {
        yf__fail(err, YF_ESPEC, depth > 64 ? "nesting deeper than 64 levels"
                                           : "the spec expands to more than %d values "
                                             "(through YAML aliases?)", YF__MAX_NODES);
        snprintf(err->file, sizeof err->file, "%s", file);
        err->line = line, err->col = col;
        return NULL;
    }
    /* YAML's own tags (!!str, !!int, ... and the implicit ones) only: an
     * application tag such as !secret means nothing here */
    const char *tag = (const char *)yn->tag;
    if (tag && strncmp(tag, "tag:yaml.org,2002:", 18)) {
        yf__fail(err, YF_ESPEC, "unknown YAML tag '%s': a spec uses plain values", tag);
        snprintf(err->file, sizeof err->file, "%s", file);
        err->line = line, err->col = col;
        return NULL;
    }
    yf__node *n;
    switch (yn->type) {
    case YAML_SCALAR_NODE:
        n = yf__node_new(YF__SCALAR, file, line, col);
        if (n && !(n->str = yf__strndup((const char *)yn->data.scalar.value,
                                    yn->data.scalar.length))) {
            yf__node_free(n);
            n = NULL;
        }
        if (!n) {
            yf__fail(err, YF_ENOMEM, "out of memory reading %s", file);
            return NULL;
        }
        n->quoted = yn->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        return n;
    case YAML_SEQUENCE_NODE:
        n = yf__node_new(YF__SEQ, file, line, col);
        if (!n) {
            yf__fail(err, YF_ENOMEM, "out of memory reading %s", file);
            return NULL;
        }
        for (yaml_node_item_t *it = yn->data.sequence.items.start;
             it < yn->data.sequence.items.top; it++) {
            yf__node *k = convert(doc, yaml_document_get_node(doc, *it), file,
                                  depth + 1, budget, err);
            if (!k || yf__seq_push(n, k)) {
                if (k)
                    yf__fail(err, YF_ENOMEM, "out of memory reading %s", file);
                yf__node_free(n);
                return NULL;
            }
        }
        return n;
    case YAML_MAPPING_NODE:
        n = yf__node_new(YF__MAP, file, line, col);
        if (!n) {
            yf__fail(err, YF_ENOMEM, "out of memory reading %s", file);
            return NULL;
        }
        for (yaml_node_pair_t *p = yn->data.mapping.pairs.start;
             p < yn->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key);
            yf__node tmp = {.file = file, .line = (int)kn->start_mark.line + 1,
                            .col = (int)kn->start_mark.column + 1};
            if (kn->type != YAML_SCALAR_NODE) {
                yf__fail_at(err, &tmp, YF_ESPEC, "mapping keys must be plain words");
                yf__node_free(n);
                return NULL;
            }
            const char *key = (const char *)kn->data.scalar.value;
            if (yf__map_get(n, key)) {
                yf__fail_at(err, &tmp, YF_ESPEC, "duplicate key '%s'", key);
                yf__node_free(n);
                return NULL;
            }
            yf__node *v = convert(doc, yaml_document_get_node(doc, p->value),
                                  file, depth + 1, budget, err);
            if (!v) {
                yf__node_free(n);
                return NULL;
            }
            if (!yf__map_set_node(n, key, v)) {
                yf__fail(err, YF_ENOMEM, "out of memory reading %s", file);
                yf__node_free(n);
                return NULL;
            }
            n->kpos[2 * (n->n - 1)] = tmp.line;
            n->kpos[2 * (n->n - 1) + 1] = tmp.col;
        }
        return n;
    default:
        yf__fail(err, YF_ESPEC, "empty YAML node");
        return NULL;
    }
}

/* "YAML syntax error: did not find expected ',' or '}' (in a flow mapping
 * that starts at line 5, column 10)" at the problem's place. */
static void syntax_error(const yaml_parser_t *p, const char *text, size_t len,
                         const char *file, yf_error *err)
{
    if (p->error == YAML_MEMORY_ERROR) { /* libyaml's own allocation failed */
        yf__fail(err, YF_ENOMEM, "out of memory reading %s", file);
        return;
    }
    yf__node at = {.file = file, .line = (int)p->problem_mark.line + 1,
                   .col = (int)p->problem_mark.column + 1};
    if (p->error == YAML_READER_ERROR && p->problem_offset <= len) {
        /* the reader (bad UTF-8, control bytes) gives only a byte offset:
         * place it at its line and column (columns counted in bytes) */
        at.line = 1, at.col = 1;
        for (size_t i = 0; i < p->problem_offset; i++)
            if (text[i] == '\n')
                at.line++, at.col = 1;
            else
                at.col++;
    }
    char where[160] = "";
    int cl = (int)p->context_mark.line + 1, cc = (int)p->context_mark.column + 1;
    if (p->problem_mark.index < len && text[p->problem_mark.index] == '\t')
        snprintf(where, sizeof where, " (a tab: YAML indents with spaces only)");
    else if (p->context && !strncmp(p->context, "while parsing a ", 16))
        snprintf(where, sizeof where, " (in %s that starts at line %d, column %d)",
                 p->context + 14, cl, cc);
    else if (p->context && !strncmp(p->context, "while scanning a ", 17))
        snprintf(where, sizeof where, " (in %s that starts at line %d, column %d)",
                 p->context + 15, cl, cc);
    else if (p->context)
        snprintf(where, sizeof where, " (%s, from line %d, column %d)", p->context, cl, cc);
    yf__fail_at(err, &at, YF_ESPEC, "YAML syntax error: %s%s",
                p->problem ? p->problem : "unknown problem", where);
}

/* libyaml takes time quadratic in the nesting of flow collections ([ and
 * {): 100,000 open brackets take half a minute. Brackets outside quotes and
 * comments are counted first, so that such a file is refused at once. */
static int flow_too_deep(const char *text, size_t len, const char *file, yf_error *err)
{
    int depth = 0, line = 1, col = 0;
    char quote = 0;
    bool comment = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        col++;
        if (c == '\n') {
            line++, col = 0, comment = false;
            continue;
        }
        if (comment)
            continue;
        if (quote) {
            if (c == '\\' && quote == '"')
                i++, col++;
            else if (c == quote)
                quote = 0;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t')) {
            comment = true;
        } else if (c == '[' || c == '{') {
            if (++depth > 64) {
                yf__node at = {.file = file, .line = line, .col = col};
                return yf__fail_at(err, &at, YF_ESPEC, "nesting deeper than 64 levels");
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

yf__tree *yf__tree_parse(const char *text, size_t len, const char *file,
                         yf_error *err)
{
    if (flow_too_deep(text, len, file, err))
        return NULL;
    yaml_parser_t parser;
    yaml_document_t doc;
    yf__tree *t = yf__calloc(1, sizeof *t);
    if (t && !(t->file = yf__strdup(file))) {
        free(t);
        t = NULL;
    }
    if (!t || !yaml_parser_initialize(&parser)) {
        if (t)
            free(t->file);
        free(t);
        yf__fail(err, YF_ENOMEM, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&parser, text, len, t->file, err);
        yaml_parser_delete(&parser);
        yf__tree_free(t);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    long budget = YF__MAX_NODES;
    if (!root) {
        yf__node at = {.file = t->file, .line = 1, .col = 1};
        yf__fail_at(err, &at, YF_ESPEC, "the spec is empty");
    } else {
        t->root = convert(&doc, root, t->file, 0, &budget, err);
    }
    yaml_document_delete(&doc);
    /* one document per spec: a second one would be silently ignored */
    if (t->root) {
        if (!yaml_parser_load(&parser, &doc)) {
            syntax_error(&parser, text, len, t->file, err);
            yf__node_free(t->root);
            t->root = NULL;
        } else {
            yaml_node_t *extra = yaml_document_get_root_node(&doc);
            if (extra) {
                yf__node at = {.file = t->file, .line = (int)extra->start_mark.line + 1,
                               .col = (int)extra->start_mark.column + 1};
                yf__fail_at(err, &at, YF_ESPEC,
                            "a second YAML document: a spec file holds one ('---' "
                            "starts another)");
                yf__node_free(t->root);
                t->root = NULL;
            }
            yaml_document_delete(&doc);
        }
    }
    yaml_parser_delete(&parser);
    if (!t->root) {
        yf__tree_free(t);
        return NULL;
    }
    return t;
}

yf__tree *yf__tree_load(const char *path, yf_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        yf__fail(err, YF_ESPEC, "cannot open spec: %s", strerror(errno));
        snprintf(err->file, sizeof err->file, "%s", path);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? 2 * cap : 8192;
            char *nb = yf__realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                yf__fail(err, YF_ENOMEM, "out of memory reading %s", path);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
        if (len > YF__MAX_SPEC_BYTES) {
            free(buf);
            fclose(f);
            yf__fail_file(err, YF_ESPEC, path, "larger than %d MB: not a model spec",
                          YF__MAX_SPEC_BYTES >> 20);
            return NULL;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        yf__fail(err, YF_ESPEC, "cannot read spec");
        snprintf(err->file, sizeof err->file, "%s", path);
        return NULL;
    }
    yf__tree *t = yf__tree_parse(buf, len, path, err);
    free(buf);
    return t;
}

void yf__tree_free(yf__tree *t)
{
    if (!t)
        return;
    yf__node_free(t->root);
    for (int i = 0; i < t->n_extra; i++)
        free(t->extra[i]);
    free(t->extra);
    free(t->file);
    free(t);
}

/* ---- overrides ------------------------------------------------------------ */

/* Every node of n (at most 65 deep, as parsed) now comes from `file`, its
 * column shifted by `shift`. */
static void repoint(yf__node *n, const char *file, int shift)
{
    n->file = file;
    n->col += shift;
    for (int i = 0; i < n->n; i++)
        repoint(n->kid[i], file, shift);
    if (n->kind == YF__MAP)
        for (int i = 0; i < n->n; i++)
            n->kpos[2 * i + 1] += shift;
}

int yf__tree_override(yf__tree *t, const char *assignment, yf_error *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return yf__fail(err, YF_EUSAGE,
                        "override '%s' is not of the form dotted.key=value",
                        assignment);
    char *src = yf__malloc(strlen(assignment) + 32);
    char **extra = src ? yf__realloc(t->extra, (t->n_extra + 1) * sizeof *t->extra) : NULL;
    if (!extra) {
        free(src);
        return yf__fail(err, YF_ENOMEM, "out of memory");
    }
    sprintf(src, "override '%s'", assignment);
    t->extra = extra;
    t->extra[t->n_extra++] = src;

    const char *value = eq + 1;
    yf__tree *vt = NULL;
    yf__node *val;
    if (*value) {
        vt = yf__tree_parse(value, strlen(value), src, err);
        if (!vt)
            return err->code;
        val = vt->root;
        vt->root = NULL;
        yf__tree_free(vt);
    } else {
        val = yf__node_new(YF__SCALAR, src, 1, 1);
        if (val && !(val->str = yf__strdup(""))) {
            yf__node_free(val);
            val = NULL;
        }
        if (!val)
            return yf__fail(err, YF_ENOMEM, "out of memory");
    }
    /* the value's nodes point at vt's file name: re-point them at src */
    repoint(val, src, (int)(value - assignment));

    char path[512];
    size_t plen = (size_t)(eq - assignment);
    if (plen >= sizeof path) {
        yf__node_free(val);
        return yf__fail(err, YF_EUSAGE, "override key too long");
    }
    memcpy(path, assignment, plen);
    path[plen] = 0;
    /* every step names something: no empty step ("a..b", ".a", "a."), no
     * blanks around one */
    for (size_t i = 0; i <= plen; i++) {
        bool edge = i == 0 || i == plen || path[i] == '.' || path[i - 1] == '.';
        bool empty = (i == 0 && (plen == 0 || path[0] == '.')) ||
                     (i > 0 && path[i - 1] == '.' && (i == plen || path[i] == '.'));
        bool blank = edge && ((i < plen && isspace((unsigned char)path[i])) ||
                              (i > 0 && isspace((unsigned char)path[i - 1]) &&
                               (i == plen || path[i] == '.')));
        if (empty || blank) {
            yf__node_free(val);
            return yf__fail(err, YF_EUSAGE, "override '%s': the key '%s' has %s step", assignment,
                            path, empty ? "an empty" : "a padded");
        }
    }
    yf__node *cur = t->root;
    char *save = NULL;
    char *seg = strtok_r(path, ".", &save);
    while (seg) {
        char *next = strtok_r(NULL, ".", &save);
        if (cur->kind == YF__SEQ) {
            char *end;
            long idx = strtol(seg, &end, 10);
            yf__node *hit = NULL;
            if (*end == 0 && idx >= 0 && idx < cur->n)
                hit = cur->kid[idx];
            for (int i = 0; !hit && i < cur->n; i++) {
                yf__node *nm = yf__map_get(cur->kid[i], "name");
                if (nm && nm->kind == YF__SCALAR && strcmp(nm->str, seg) == 0)
                    hit = cur->kid[i];
            }
            if (!hit) {
                yf__node_free(val);
                return yf__fail(err, YF_EUSAGE,
                                "override '%s': no element '%s' in the list",
                                assignment, seg);
            }
            if (!next) {
                /* replace the list element */
                for (int i = 0; i < cur->n; i++)
                    if (cur->kid[i] == hit) {
                        yf__node_free(hit);
                        val->parent = cur;
                        cur->kid[i] = val;
                    }
                return 0;
            }
            cur = hit;
        } else if (cur->kind == YF__MAP) {
            if (!next) /* the map owns val, or it was freed */
                return yf__map_set_node(cur, seg, val) ? 0 : yf__fail(err, YF_ENOMEM,
                                                                       "out of memory");
            yf__node *kid = yf__map_get(cur, seg);
            if (!kid && !(kid = yf__map_set_node(cur, seg, yf__node_new(YF__MAP, src, 1, 1)))) {
                yf__node_free(val);
                return yf__fail(err, YF_ENOMEM, "out of memory");
            }
            cur = kid;
        } else {
            yf__node_free(val);
            return yf__fail(err, YF_EUSAGE,
                            "override '%s': '%s' is inside a scalar value",
                            assignment, seg);
        }
        seg = next;
    }
    yf__node_free(val);
    return yf__fail(err, YF_EUSAGE, "override '%s' names no key", assignment);
}

/* ---- emitting ------------------------------------------------------------- */

static bool plain_ok(const char *s)
{
    if (!*s || isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1]))
        return false;
    if (strchr("-?:,[]{}#&*!|>'\"%@`~", s[0]) && !(s[0] == '-' && (isdigit((unsigned char)s[1]) || s[1] == '.')))
        return false;
    for (const char *p = s; *p; p++)
        if (strchr(",[]{}#\"'", *p) || (*p == ':' && (p[1] == ' ' || !p[1])) ||
            (unsigned char)*p < 32)
            return false;
    return true;
}

static void emit_scalar(const yf__node *n, FILE *out)
{
    if (!n->quoted && plain_ok(n->str)) {
        fputs(n->str, out);
        return;
    }
    fputc('"', out);
    for (const char *p = n->str; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if ((unsigned char)*p < 32)
            fprintf(out, "\\x%02x", (unsigned char)*p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* Written on one line in flow style: a list of scalars, or a mapping whose
 * values are scalars or such lists (a layer, an optimizer). A list of
 * mappings is written one element per line. */
static bool scalars_only(const yf__node *n)
{
    for (int i = 0; i < n->n; i++)
        if (n->kid[i]->kind != YF__SCALAR)
            return false;
    return true;
}

static bool flat(const yf__node *n, int depth)
{
    if (n->kind == YF__SCALAR || scalars_only(n))
        return true;
    if (n->kind == YF__SEQ || depth > 0)
        return false;
    for (int i = 0; i < n->n; i++)
        if (!flat(n->kid[i], depth + 1))
            return false;
    return true;
}

/* Writes n in flow style, leaving out the map entry whose value is skip. */
static void emit_flow(const yf__node *n, const yf__node *skip, FILE *out)
{
    if (n->kind == YF__SCALAR) {
        emit_scalar(n, out);
        return;
    }
    fputc(n->kind == YF__MAP ? '{' : '[', out);
    bool first = true;
    for (int i = 0; i < n->n; i++) {
        if (n->kid[i] == skip)
            continue;
        if (!first)
            fputs(", ", out);
        first = false;
        if (n->kind == YF__MAP)
            fprintf(out, "%s: ", n->key[i]);
        emit_flow(n->kid[i], skip, out);
    }
    fputc(n->kind == YF__MAP ? '}' : ']', out);
}

static void emit_block(const yf__node *n, int indent, const yf__node *skip, FILE *out)
{
    for (int i = 0; i < n->n; i++) {
        const yf__node *k = n->kid[i];
        if (k == skip)
            continue;
        fprintf(out, "%*s", indent, "");
        if (n->kind == YF__MAP)
            fprintf(out, "%s:", n->key[i]);
        else
            fputs("-", out);
        if (flat(k, 0) || k->n == 0) {
            fputc(' ', out);
            emit_flow(k, skip, out);
            fputc('\n', out);
        } else {
            fputc('\n', out);
            emit_block(k, indent + 2, skip, out);
        }
    }
}

void yf__tree_emit_flow(const yf__node *n, FILE *out) { emit_flow(n, NULL, out); }

void yf__tree_emit_except(const yf__node *n, const yf__node *skip, FILE *out)
{
    if (n->kind == YF__SCALAR || n->n == 0) {
        emit_flow(n, skip, out);
        fputc('\n', out);
    } else {
        emit_block(n, 0, skip, out);
    }
}

void yf__tree_emit(const yf__node *n, FILE *out) { yf__tree_emit_except(n, NULL, out); }
