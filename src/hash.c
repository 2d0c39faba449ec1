/* Semantic hashing: binary codes from a model's coding layer, an index
 * file, retrieval (a popcount linear scan and Hamming-ball lookups in a
 * hash table of buckets) and the retrieval metrics of exercise 9, defined
 * as ../shared/reference/hash_metrics.py defines them. Codes are 1 to 64
 * bits, one uint64_t each, bit b = unit b of the layer. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- codes ---------------------------------------------------------------------- */

void yf_hash_pack(const float *acts, size_t n, int bits, float threshold, uint64_t *codes)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t c = 0;
        for (int b = 0; b < bits; b++)
            c |= (uint64_t)(acts[i * bits + b] > threshold) << b;
        codes[i] = c;
    }
}

/* d[i] = popcount(db[i] ^ q): the Hamming distances of one query to every
 * code, the inner loop of every search. The same loop is compiled for
 * AVX-512 with VPOPCNTQ (8 codes per instruction) and chosen at run time
 * when the CPU has it. */
#define DISTANCES(name, attr)                                                        \
    attr static void name(const uint64_t *restrict db, size_t n, uint64_t q,          \
                          uint8_t *restrict d)                                         \
    {                                                                                  \
        for (size_t i = 0; i < n; i++)                                                 \
            d[i] = (uint8_t)__builtin_popcountll(db[i] ^ q);                           \
    }
#define COUNT_WITHIN(name, attr)                                                     \
    attr static size_t name(const uint64_t *restrict db, size_t n, uint64_t q, int r) \
    {                                                                                  \
        size_t c = 0;                                                                  \
        for (size_t i = 0; i < n; i++)                                                 \
            c += __builtin_popcountll(db[i] ^ q) <= r;                                 \
        return c;                                                                      \
    }
#define VPOPCNT __attribute__((target("avx512f,avx512vl,avx512bw,avx512vpopcntdq")))
DISTANCES(distances_vpopcnt, VPOPCNT)
DISTANCES(distances_popcnt, __attribute__((target("popcnt"))))
DISTANCES(distances_plain, )
COUNT_WITHIN(count_vpopcnt, VPOPCNT)
COUNT_WITHIN(count_popcnt, __attribute__((target("popcnt"))))
COUNT_WITHIN(count_plain, )

/* Many queries against one pass over the database: blocks of 32,768 codes
 * (256 KB, in L2) meet every query in turn, so a database far larger than
 * the caches is read from memory once per batch, not once per query. */
#define COUNT_MANY(name, attr, one)                                                       \
    attr static void name(const uint64_t *restrict db, size_t n, const uint64_t *q,         \
                          size_t nq, int r, size_t *restrict count)                        \
    {                                                                                       \
        for (size_t j = 0; j < nq; j++)                                                     \
            count[j] = 0;                                                                   \
        for (size_t b = 0; b < n; b += 32768) {                                             \
            size_t m = n - b < 32768 ? n - b : 32768;                                       \
            for (size_t j = 0; j < nq; j++)                                                 \
                count[j] += one(db + b, m, q[j], r);                                        \
        }                                                                                   \
    }
COUNT_MANY(many_vpopcnt, VPOPCNT, count_vpopcnt)
COUNT_MANY(many_popcnt, __attribute__((target("popcnt"))), count_popcnt)
COUNT_MANY(many_plain, , count_plain)

/* 2: VPOPCNTQ, 1: POPCNT, 0: neither (decided once; every thread computes
 * the same answer) */
static int popcount_level(void)
{
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512bw")
                    ? 2 : __builtin_cpu_supports("popcnt") ? 1 : 0;
    }
    return level;
}

void yf_hash_distances(const uint64_t *db, size_t n, uint64_t q, uint8_t *d)
{
    static void (*const fn[3])(const uint64_t *, size_t, uint64_t, uint8_t *) = {
        distances_plain, distances_popcnt, distances_vpopcnt};
    fn[popcount_level()](db, n, q, d);
}

size_t yf_hash_count_within(const uint64_t *db, size_t n, uint64_t q, int r)
{
    static size_t (*const fn[3])(const uint64_t *, size_t, uint64_t, int) = {
        count_plain, count_popcnt, count_vpopcnt};
    return fn[popcount_level()](db, n, q, r);
}

/* ---- buckets: a hash table of the distinct codes -------------------------------- */

struct yf_hash_table {
    size_t cap;            /* a power of two, at least twice the distinct codes */
    uint64_t *key;
    uint32_t *start, *count; /* into item[] */
    uint8_t *used;
    uint32_t *item;        /* item numbers grouped by code, ascending within a code */
    size_t distinct, largest;
};

static size_t slot_of(uint64_t c, size_t cap)
{
    c ^= c >> 33; /* a 64-bit mixer (MurmurHash3's finaliser) */
    c *= UINT64_C(0xff51afd7ed558ccd);
    c ^= c >> 33;
    c *= UINT64_C(0xc4ceb9fe1a85ec53);
    c ^= c >> 33;
    return (size_t)c & (cap - 1);
}

static size_t find(const yf_hash_table *t, uint64_t c)
{
    size_t s = slot_of(c, t->cap);
    while (t->used[s] && t->key[s] != c)
        s = (s + 1) & (t->cap - 1);
    return s;
}

void yf_hash_table_free(yf_hash_table *t)
{
    if (!t)
        return;
    free(t->key), free(t->start), free(t->count), free(t->used), free(t->item);
    free(t);
}

yf_hash_table *yf_hash_table_new(const uint64_t *codes, size_t n, yf_error *err)
{
    if (n > UINT32_MAX) {
        yf__fail(err, YF_EUSAGE, "an index holds at most %u codes", UINT32_MAX);
        return NULL;
    }
    yf_hash_table *t = yf__calloc(1, sizeof *t);
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    if (t) {
        t->cap = cap;
        t->key = yf__malloc(cap * sizeof *t->key);
        t->start = yf__calloc(cap, sizeof *t->start);
        t->count = yf__calloc(cap, sizeof *t->count);
        t->used = yf__calloc(cap, 1);
        t->item = yf__malloc(n * sizeof *t->item + 1);
    }
    if (!t || !t->key || !t->start || !t->count || !t->used || !t->item) {
        yf_hash_table_free(t);
        yf__fail(err, YF_ENOMEM, "out of memory for a table of %zu codes", n);
        return NULL;
    }
    /* count, then place (a counting sort by slot keeps item order) */
    for (size_t i = 0; i < n; i++) {
        size_t s = find(t, codes[i]);
        if (!t->used[s])
            t->used[s] = 1, t->key[s] = codes[i], t->distinct++;
        t->count[s]++;
    }
    uint32_t at = 0;
    for (size_t s = 0; s < cap; s++)
        if (t->used[s]) {
            t->start[s] = at;
            at += t->count[s];
            if (t->count[s] > t->largest)
                t->largest = t->count[s];
            t->count[s] = 0;
        }
    for (size_t i = 0; i < n; i++) {
        size_t s = find(t, codes[i]);
        t->item[t->start[s] + t->count[s]++] = (uint32_t)i;
    }
    return t;
}

size_t yf_hash_table_distinct(const yf_hash_table *t) { return t->distinct; }
size_t yf_hash_table_largest(const yf_hash_table *t) { return t->largest; }

/* The items of code c: *n of them at the returned pointer. */
const uint32_t *yf_hash_bucket(const yf_hash_table *t, uint64_t c, size_t *n)
{
    size_t s = find(t, c);
    *n = t->used[s] ? t->count[s] : 0;
    return t->item + (t->used[s] ? t->start[s] : 0);
}

typedef struct {
    const yf_hash_table *t;
    void (*visit)(const uint32_t *items, size_t n, int dist, void *ctx);
    void *ctx;
    int bits;
} ball;

/* Flips bits from `from` upwards, `left` more of them. */
static void enumerate(const ball *b, uint64_t c, int from, int left, int dist)
{
    size_t n;
    const uint32_t *items = yf_hash_bucket(b->t, c, &n);
    if (n)
        b->visit(items, n, dist, b->ctx);
    if (left == 0)
        return;
    for (int i = from; i < b->bits; i++)
        enumerate(b, c ^ (UINT64_C(1) << i), i + 1, left - 1, dist + 1);
}

void yf_hash_ball(const yf_hash_table *t, uint64_t q, int bits, int radius,
                  void (*visit)(const uint32_t *items, size_t n, int dist, void *ctx), void *ctx)
{
    ball b = {t, visit, ctx, bits};
    enumerate(&b, q, 0, radius < bits ? radius : bits, 0);
}

typedef struct {
    uint32_t *out;
    size_t n, cap;
} gather;

static void collect(const uint32_t *items, size_t n, int dist, void *ctx)
{
    (void)dist;
    gather *g = ctx;
    for (size_t i = 0; i < n; i++, g->n++)
        if (g->n < g->cap)
            g->out[g->n] = items[i];
}

size_t yf_hash_ball_items(const yf_hash_table *t, uint64_t q, int bits, int radius, uint32_t *out,
                          size_t cap)
{
    gather g = {out, 0, cap};
    yf_hash_ball(t, q, bits, radius, collect, &g);
    return g.n;
}

/* ---- metrics --------------------------------------------------------------------- */

static double gini_of(const size_t *count, int classes, size_t total)
{
    double s = 0;
    for (int c = 0; c < classes; c++)
        s += ((double)count[c] / total) * ((double)count[c] / total);
    return 1 - s;
}

typedef struct {
    const uint8_t *labels;
    size_t count[2][256]; /* radius 1, radius 2 */
} ball_labels;

static void count_labels(const uint32_t *items, size_t n, int dist, void *ctx)
{
    ball_labels *b = ctx;
    for (size_t i = 0; i < n; i++) {
        uint8_t y = b->labels[items[i]];
        if (dist <= 1)
            b->count[0][y]++;
        b->count[1][y]++;
    }
}

int yf_hash_evaluate(const yf_hash_index *ix, size_t max_queries, int threads,
                     yf_hash_stats *st, yf_error *err)
{
    memset(st, 0, sizeof *st);
    size_t n = ix->n_db, nq = ix->n_query;
    if (max_queries && max_queries < nq)
        nq = max_queries;
    if (n == 0 || nq == 0)
        return yf__fail(err, YF_EUSAGE, "an index needs database items and queries");
    int classes = ix->classes;
    yf_hash_table *t = yf_hash_table_new(ix->db, n, err);
    if (!t)
        return err->code;
    st->bits = ix->bits;
    st->items = n;
    st->queries = nq;
    st->distinct = t->distinct;
    st->largest = t->largest;
    st->saturation = ix->saturation;
    /* Gini impurity of the buckets of identical codes, weighted by size */
    double g = 0;
    for (size_t s = 0; s < t->cap; s++) {
        if (!t->used[s])
            continue;
        size_t count[256] = {0};
        for (uint32_t k = 0; k < t->count[s]; k++)
            count[ix->db_labels[t->item[t->start[s] + k]]]++;
        g += t->count[s] * gini_of(count, classes, t->count[s]);
    }
    st->gini = g / n;
    st->purity = 1 - st->gini;
    size_t relevant_total[256] = {0};
    for (size_t i = 0; i < n; i++)
        relevant_total[ix->db_labels[i]]++;
    /* per query: mAP over the ranking by (distance, database index),
     * precision within radius 2, the label mix of the radius-1 and -2
     * balls */
    double ap_sum = 0, p2_sum = 0, ball_g[2] = {0, 0}, ball_n[2] = {0, 0};
    size_t ap_n = 0;
    int rc = 0;
#pragma omp parallel num_threads(threads > 0 ? threads : 1) reduction(+ : ap_sum, p2_sum, ap_n)
    {
        uint8_t *d = yf__malloc(n);
        uint32_t *order = yf__malloc(n * sizeof *order);
        double bg[2] = {0, 0}, bn[2] = {0, 0};
        if (!d || !order) {
#pragma omp atomic write
            rc = YF_ENOMEM;
        }
#pragma omp for schedule(dynamic, 16)
        for (size_t qi = 0; qi < nq; qi++) {
            if (!d || !order)
                continue;
            uint64_t q = ix->query[qi];
            uint8_t y = ix->query_labels[qi];
            yf_hash_distances(ix->db, n, q, d);
            size_t hist[66] = {0};
            for (size_t i = 0; i < n; i++)
                hist[d[i] + 1]++;
            for (int k = 1; k < 66; k++)
                hist[k] += hist[k - 1];
            for (size_t i = 0; i < n; i++)
                order[hist[d[i]]++] = (uint32_t)i;
            size_t R = relevant_total[y];
            if (R) {
                double s = 0;
                size_t hits = 0;
                for (size_t r = 0; r < n && hits < R; r++)
                    if (ix->db_labels[order[r]] == y)
                        s += (double)++hits / (double)(r + 1);
                ap_sum += s / R;
                ap_n++;
            }
            ball_labels bl = {.labels = ix->db_labels};
            yf_hash_ball(t, q, ix->bits, 2, count_labels, &bl);
            for (int k = 0; k < 2; k++) {
                size_t tot = 0;
                for (int c = 0; c < classes; c++)
                    tot += bl.count[k][c];
                if (tot) {
                    bg[k] += tot * gini_of(bl.count[k], classes, tot);
                    bn[k] += tot;
                }
                if (k == 1)
                    p2_sum += tot ? (double)bl.count[1][y] / tot : 0;
            }
        }
#pragma omp critical
        for (int k = 0; k < 2; k++)
            ball_g[k] += bg[k], ball_n[k] += bn[k];
        free(d);
        free(order);
    }
    yf_hash_table_free(t);
    if (rc)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    st->map = ap_n ? ap_sum / ap_n : 0;
    st->precision_r2 = p2_sum / nq;
    st->gini_r1 = ball_n[0] ? ball_g[0] / ball_n[0] : NAN;
    st->gini_r2 = ball_n[1] ? ball_g[1] / ball_n[1] : NAN;
    st->purity_r1 = 1 - st->gini_r1;
    st->purity_r2 = 1 - st->gini_r2;
    return 0;
}

/* ---- the index file ---------------------------------------------------------------- */

/* Layout (little-endian), documented in docs/hashing.md:
 *   0  magic "YFHASH1\n"            8 bytes
 *   8  bits, classes                 2 × uint32
 *  16  n_db, n_query                 2 × uint64
 *  32  saturation                    float64 (NaN: not a logistic layer)
 *  40  layer, model                  2 × 64 bytes, NUL-padded
 * 168  db labels, query labels       n_db + n_query bytes
 *      zero padding to a multiple of 8
 *      db codes, query codes         (n_db + n_query) × uint64
 *      crc32 of everything above     uint32 */
enum { HEADER = 168 };
static const char magic[8] = {'Y', 'F', 'H', 'A', 'S', 'H', '1', '\n'};

static size_t body_size(size_t n_db, size_t n_query)
{
    size_t labels = n_db + n_query;
    return HEADER + ((labels + 7) & ~(size_t)7) + 8 * (n_db + n_query);
}

void yf_hash_index_free(yf_hash_index *ix)
{
    free(ix->db), free(ix->query), free(ix->db_labels), free(ix->query_labels);
    memset(ix, 0, sizeof *ix);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}
static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << 8 * i;
    return v;
}
static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << 8 * i;
    return v;
}

int yf_hash_index_save(const yf_hash_index *ix, const char *path, yf_error *err)
{
    size_t size = body_size(ix->n_db, ix->n_query);
    unsigned char *buf = yf__calloc(1, size + 4);
    if (!buf)
        return yf__fail(err, YF_ENOMEM, "out of memory");
    memcpy(buf, magic, 8);
    put32(buf + 8, (uint32_t)ix->bits);
    put32(buf + 12, (uint32_t)ix->classes);
    put64(buf + 16, ix->n_db);
    put64(buf + 24, ix->n_query);
    uint64_t sat;
    memcpy(&sat, &ix->saturation, 8);
    put64(buf + 32, sat);
    snprintf((char *)buf + 40, 64, "%s", ix->layer);
    snprintf((char *)buf + 104, 64, "%s", ix->model);
    memcpy(buf + HEADER, ix->db_labels, ix->n_db);
    memcpy(buf + HEADER + ix->n_db, ix->query_labels, ix->n_query);
    unsigned char *c = buf + HEADER + ((ix->n_db + ix->n_query + 7) & ~(size_t)7);
    for (size_t i = 0; i < ix->n_db; i++)
        put64(c + 8 * i, ix->db[i]);
    for (size_t i = 0; i < ix->n_query; i++)
        put64(c + 8 * (ix->n_db + i), ix->query[i]);
    put32(buf + size, (uint32_t)crc32(0, buf, (uInt)size));
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f)
        rc = yf__fail(err, YF_EIO, "cannot write %s: %s", tmp, strerror(errno));
    else {
        errno = 0;
        bool ok = fwrite(buf, 1, size + 4, f) == size + 4;
        int e = errno;
        if (fclose(f) != 0 && ok) /* closed either way: a failed write leaks no FILE */
            ok = false, e = errno;
        if (ok && rename(tmp, path))
            ok = false, e = errno;
        if (!ok) {
            rc = yf__fail(err, YF_EIO, "cannot write %s: %s", path,
                          e ? strerror(e) : "write failed");
            remove(tmp);
        }
    }
    free(buf);
    return rc;
}

int yf_hash_index_load(yf_hash_index *ix, const char *path, yf_error *err)
{
    memset(ix, 0, sizeof *ix);
    FILE *f = fopen(path, "rb");
    if (!f)
        return yf__fail_file(err, YF_EUSAGE, path, "cannot open the hash index: %s (make one "
                             "with yaflow hash)", strerror(errno));
    unsigned char head[HEADER];
    int rc = 0;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        len = ftell(f);
    rewind(f);
    if (len < HEADER + 4 || fread(head, 1, HEADER, f) != HEADER)
        rc = yf__fail_file(err, YF_EDATA, path, "truncated: %ld bytes, shorter than the "
                           "%d-byte header", len, HEADER + 4);
    else if (memcmp(head, magic, 8))
        rc = yf__fail_file(err, YF_EDATA, path, "not a yaflow hash index (no YFHASH1 magic)");
    uint32_t bits = rc ? 0 : get32(head + 8), classes = rc ? 0 : get32(head + 12);
    uint64_t n_db = rc ? 0 : get64(head + 16), n_q = rc ? 0 : get64(head + 24);
    if (!rc && (bits < 1 || bits > 64))
        rc = yf__fail_file(err, YF_EDATA, path, "%u bits: an index holds 1 to 64", bits);
    else if (!rc && (classes < 1 || classes > 256))
        rc = yf__fail_file(err, YF_EDATA, path, "%u classes: expected 1 to 256", classes);
    else if (!rc && (n_db > UINT32_MAX || n_q > UINT32_MAX ||
                     body_size(n_db, n_q) + 4 != (uint64_t)len))
        rc = yf__fail_file(err, YF_EDATA, path, "%ld bytes, but %llu items and %llu queries "
                           "need %llu: truncated or corrupt", len, (unsigned long long)n_db,
                           (unsigned long long)n_q,
                           n_db > UINT32_MAX || n_q > UINT32_MAX
                               ? 0ULL : (unsigned long long)body_size(n_db, n_q) + 4);
    unsigned char *buf = rc ? NULL : yf__malloc((size_t)len);
    if (!rc && !buf)
        rc = yf__fail(err, YF_ENOMEM, "out of memory for %s", path);
    if (!rc) {
        rewind(f);
        if (fread(buf, 1, (size_t)len, f) != (size_t)len)
            rc = yf__fail_file(err, YF_EIO, path, "read error");
    }
    fclose(f);
    size_t size = (size_t)len - 4;
    if (!rc && crc32(0, buf, (uInt)size) != get32(buf + size))
        rc = yf__fail_file(err, YF_EDATA, path, "checksum mismatch: the file is corrupt");
    if (!rc) {
        ix->bits = (int)bits, ix->classes = (int)classes;
        ix->n_db = n_db, ix->n_query = n_q;
        uint64_t sat = get64(buf + 32);
        memcpy(&ix->saturation, &sat, 8);
        memcpy(ix->layer, buf + 40, 63);
        memcpy(ix->model, buf + 104, 63);
        ix->db = yf__malloc(n_db * 8 + 8), ix->query = yf__malloc(n_q * 8 + 8);
        ix->db_labels = yf__malloc(n_db + 1), ix->query_labels = yf__malloc(n_q + 1);
        if (!ix->db || !ix->query || !ix->db_labels || !ix->query_labels)
            rc = yf__fail(err, YF_ENOMEM, "out of memory for %s", path);
    }
    if (!rc) {
        memcpy(ix->db_labels, buf + HEADER, n_db);
        memcpy(ix->query_labels, buf + HEADER + n_db, n_q);
        const unsigned char *c = buf + HEADER + ((n_db + n_q + 7) & ~(size_t)7);
        uint64_t mask = bits == 64 ? ~UINT64_C(0) : (UINT64_C(1) << bits) - 1;
        for (size_t i = 0; i < n_db + n_q && !rc; i++) {
            uint64_t v = get64(c + 8 * i);
            if (v & ~mask)
                rc = yf__fail_file(err, YF_EDATA, path, "code %zu has bits above bit %u set",
                                   i, bits - 1);
            else if (i < n_db)
                ix->db[i] = v;
            else
                ix->query[i - n_db] = v;
        }
        for (size_t i = 0; i < n_db + n_q && !rc; i++) {
            uint8_t y = i < n_db ? ix->db_labels[i] : ix->query_labels[i - n_db];
            if (y >= classes)
                rc = yf__fail_file(err, YF_EDATA, path, "label %u of item %zu is not below the "
                                   "%u classes", y, i, classes);
        }
    }
    free(buf);
    if (rc)
        yf_hash_index_free(ix);
    return rc;
}

/* ---- codes from a model --------------------------------------------------------------- */

/* The threshold of layer `layer`: 0.5 after a logistic activation, else 0. */
static float threshold_of(const yf_spec *s, const char *layer, bool *logistic)
{
    *logistic = false;
    for (int i = 0; i < s->n_layers; i++) {
        const yf__layer_spec *l = &s->layers[i];
        if (strcmp(l->name, layer))
            continue;
        *logistic = l->activation == YF_ACT_SIGMOID &&
                    (l->type == YF_LAYER_DENSE || l->type == YF_LAYER_ACTIVATION ||
                     l->type == YF_LAYER_CONV2D);
    }
    return *logistic ? 0.5f : 0.0f;
}

/* db_split, q_split: a yf_split, or FILE_TRAIN / FILE_TEST for every row
 * of the training or test file */
enum { FILE_TRAIN = 100, FILE_TEST = 101 };

static size_t rows_in(const yf_dataset *d, int split)
{
    return split == FILE_TRAIN ? d->train_x.count
           : split == FILE_TEST ? d->test_x.count : yf_dataset_count(d, (yf_split)split);
}

static int build(yf_model *m, yf_dataset *d, const char *layer, int db_split, int q_split,
                 yf_hash_index *ix, yf_error *err)
{
    memset(ix, 0, sizeof *ix);
    const yf_spec *s = m->spec;
    if (!layer || !*layer)
        layer = s->hash_layer[0] ? s->hash_layer : NULL;
    if (!layer)
        return yf__fail(err, YF_EUSAGE, "model '%s' names no hash layer: give --layer, or "
                        "hash: {layer: NAME} in the spec", s->name);
    size_t bits = yf_model_layer_size(m, layer, NULL, NULL);
    if (bits == 0)
        return yf_model_forward(m, NULL, NULL, 0, layer, NULL, 0, 0, err); /* names it */
    if (bits > 64)
        return yf__fail(err, YF_EUSAGE, "layer '%s' has %zu units: codes are 1 to 64 bits", layer,
                        bits);
    bool logistic;
    float thr = threshold_of(s, layer, &logistic);
    size_t n_db = rows_in(d, db_split), n_q = rows_in(d, q_split), chunk = 4096;
    ix->bits = (int)bits;
    ix->classes = 10;
    ix->n_db = n_db, ix->n_query = n_q;
    snprintf(ix->layer, sizeof ix->layer, "%s", layer);
    snprintf(ix->model, sizeof ix->model, "%s", s->name);
    ix->db = yf__malloc(n_db * 8 + 8), ix->query = yf__malloc(n_q * 8 + 8);
    ix->db_labels = yf__malloc(n_db + 1), ix->query_labels = yf__malloc(n_q + 1);
    float *x = yf__malloc(chunk * d->dim * sizeof *x), *a = yf__malloc(chunk * bits * sizeof *a);
    int *y = yf__malloc(chunk * sizeof *y);
    int rc = 0;
    if (!ix->db || !ix->query || !ix->db_labels || !ix->query_labels || !x || !a || !y)
        rc = yf__fail(err, YF_ENOMEM, "out of memory");
    double near = 0;
    for (int part = 0; part < 2 && !rc; part++) {
        size_t n = part ? n_q : n_db;
        for (size_t b = 0; b < n && !rc; b += chunk) {
            size_t k = n - b < chunk ? n - b : chunk;
            int split = part ? q_split : db_split;
            if (split >= FILE_TRAIN)
                yf__file_rows(d, split == FILE_TEST, b, k, x, y);
            else
                yf__split_rows(d, (yf_split)split, b, k, x, y);
            rc = yf_model_forward(m, NULL, x, k, layer, a, 0, UINT64_C(1) << 62, err);
            if (rc)
                break;
            yf_hash_pack(a, k, (int)bits, thr, (part ? ix->query : ix->db) + b);
            for (size_t i = 0; i < k; i++)
                (part ? ix->query_labels : ix->db_labels)[b + i] = (uint8_t)y[i];
            if (part) /* saturation: of the queries' activations */
                for (size_t i = 0; i < k * bits; i++)
                    near += a[i] < 0.1f || a[i] > 0.9f;
        }
    }
    ix->saturation = logistic ? near / ((double)n_q * bits) : NAN;
    free(x), free(a), free(y);
    if (rc)
        yf_hash_index_free(ix);
    return rc;
}

void yf_hash_count_within_many(const uint64_t *db, size_t n, const uint64_t *q, size_t nq, int r,
                               size_t *count)
{
    static void (*const fn[3])(const uint64_t *, size_t, const uint64_t *, size_t, int,
                               size_t *) = {many_plain, many_popcnt, many_vpopcnt};
    fn[popcount_level()](db, n, q, nq, r, count);
}

int yf_hash_build(yf_model *m, yf_dataset *d, const char *layer, yf_hash_index *ix,
                  yf_error *err)
{
    return build(m, d, layer, FILE_TRAIN, FILE_TEST, ix, err);
}

int yf_hash_build_splits(yf_model *m, yf_dataset *d, const char *layer, yf_split db,
                         yf_split queries, yf_hash_index *ix, yf_error *err)
{
    return build(m, d, layer, db, queries, ix, err);
}
