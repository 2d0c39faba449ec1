/* yaflow hash RUN [--layer NAME] [-o FILE] [-n QUERIES] [--json] [--threads N]
 * yaflow query RUN --image N [--radius R | --top K] [-o FILE.png] */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char hash_usage[] =
    "usage: yaflow hash RUN [--layer NAME] [-o FILE] [-n QUERIES] [--json] [--threads N]\n"
    "                 [--data DIR]\n"
    "Runs every training and test image through the trained model of RUN, rounds the\n"
    "coding layer (--layer, default the spec's hash: {layer}) into binary codes (at 0.5\n"
    "after a logistic activation, else at 0), writes the index FILE (default\n"
    "RUN/hash.index; format: docs/hashing.md) and prints, with the test images as\n"
    "queries against the 60,000 training images and \"same label\" as relevant:\n"
    "  bits, items, distinct codes, largest bucket, saturation, the size-weighted Gini\n"
    "  impurity and purity of the buckets of identical codes and of the Hamming balls\n"
    "  of radius 1 and 2 around each query, precision within radius 2, and mAP.\n"
    "-n evaluates the first N queries only.\n";

static void print_stats(const yf_hash_stats *st, const char *path, int json)
{
    const char *fmt = json ? "%s\"%s\": %.6g" : "%s%s=%.6g";
    const char *sep = json ? ", " : "\n";
    struct {
        const char *name;
        double v;
    } f[] = {
        {"bits", st->bits}, {"items", (double)st->items}, {"queries", (double)st->queries},
        {"distinct", (double)st->distinct}, {"largest_bucket", (double)st->largest},
        {"saturation", st->saturation}, {"gini", st->gini}, {"purity", st->purity},
        {"gini_r1", st->gini_r1}, {"purity_r1", st->purity_r1}, {"gini_r2", st->gini_r2},
        {"purity_r2", st->purity_r2}, {"precision_r2", st->precision_r2}, {"map", st->map},
    };
    if (json)
        printf("{\"index\": \"%s\"", path);
    else
        printf("index=%s", path);
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (json && isnan(f[i].v))
            printf("%s\"%s\": null", sep, f[i].name);
        else
            printf(fmt, sep, f[i].name, f[i].v);
    }
    printf(json ? "}\n" : "\n");
}

int cmd_hash(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, hash_usage,
                       CLI_ARG | CLI_LAYER | CLI_OUTPUT | CLI_JSON | CLI_THREADS | CLI_COUNT | CLI_DATA, &a);
    if (rc || a.help)
        return rc;
    yf_run r;
    if ((rc = cli_open_run(a.positional, &a, YF_RUN_DATA, &r)))
        return rc;
    char path[1100];
    snprintf(path, sizeof path, "%s", a.output ? a.output : "");
    if (!a.output)
        snprintf(path, sizeof path, "%s/hash.index", a.positional);
    yf_error err = {0};
    yf_hash_index ix;
    yf_hash_stats st;
    if (yf_hash_build(r.model, r.data, a.layer, &ix, &err) ||
        yf_hash_index_save(&ix, path, &err) ||
        yf_hash_evaluate(&ix, (size_t)a.count, a.threads ? a.threads : 1, &st, &err))
        rc = cli_fail(&err);
    else
        print_stats(&st, path, a.json);
    yf_hash_index_free(&ix);
    yf_run_close(&r);
    return rc;
}

static const char query_usage[] =
    "usage: yaflow query RUN --image N [--radius R | --top K] [-o FILE.png] [--threads N]\n"
    "                  [--data DIR]\n"
    "The training images nearest to test image N in RUN's hash index (RUN/hash.index,\n"
    "written by yaflow hash): every one within Hamming distance R (a lookup of the\n"
    "codes within R in a hash table of buckets), or the K nearest (a linear scan;\n"
    "ties by index). Default --top 10. Prints one line per neighbour (index, label,\n"
    "distance) and draws the query and its neighbours (FILE.png, default\n"
    "RUN/pictures/query-N.png).\n";

typedef struct {
    uint32_t item;
    int dist;
} hit;

static int by_distance(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    return x->dist != y->dist ? x->dist - y->dist : (x->item > y->item) - (x->item < y->item);
}

int cmd_query(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, query_usage,
                       CLI_ARG | CLI_QUERY | CLI_OUTPUT | CLI_THREADS | CLI_DATA, &a);
    if (rc || a.help)
        return rc;
    if (a.image < 0) {
        fprintf(stderr, "yaflow query: --image N (a test image) is required\n%s", query_usage);
        return 2;
    }
    if (a.radius >= 0 && a.top >= 0) {
        fprintf(stderr, "yaflow query: give --radius or --top, not both\n");
        return 2;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/hash.index", a.positional);
    yf_error err = {0};
    yf_hash_index ix;
    if (yf_hash_index_load(&ix, path, &err))
        return cli_fail(&err);
    if ((size_t)a.image >= ix.n_query) {
        fprintf(stderr, "yaflow query: --image must be below %zu (the test images), not %ld\n",
                ix.n_query, a.image);
        yf_hash_index_free(&ix);
        return 2;
    }
    uint64_t q = ix.query[a.image];
    hit *hits = NULL;
    size_t n = 0;
    if (a.radius >= 0) {
        yf_hash_table *t = yf_hash_table_new(ix.db, ix.n_db, &err);
        if (!t) {
            yf_hash_index_free(&ix);
            return cli_fail(&err);
        }
        n = yf_hash_ball_items(t, q, ix.bits, (int)a.radius, NULL, 0);
        uint32_t *items = malloc(n * sizeof *items + 1);
        hits = malloc(n * sizeof *hits + 1);
        if (items && hits) {
            yf_hash_ball_items(t, q, ix.bits, (int)a.radius, items, n);
            for (size_t i = 0; i < n; i++)
                hits[i].item = items[i], hits[i].dist = __builtin_popcountll(ix.db[items[i]] ^ q);
        }
        if (!items)
            free(hits), hits = NULL;
        free(items);
        yf_hash_table_free(t);
    } else {
        uint8_t *d = malloc(ix.n_db + 1);
        hits = malloc(ix.n_db * sizeof *hits + 1);
        if (d && hits) {
            yf_hash_distances(ix.db, ix.n_db, q, d);
            for (size_t i = 0; i < ix.n_db; i++)
                hits[i].item = (uint32_t)i, hits[i].dist = d[i];
        }
        if (!d)
            free(hits), hits = NULL;
        free(d);
        n = ix.n_db;
    }
    if (!hits) {
        fprintf(stderr, "yaflow query: out of memory for %zu neighbours\n", n);
        yf_hash_index_free(&ix);
        return 1;
    }
    qsort(hits, n, sizeof *hits, by_distance);
    size_t shown = a.radius >= 0 ? n : (size_t)(a.top > 0 ? a.top : 10);
    if (shown > n)
        shown = n;
    size_t same = 0;
    for (size_t i = 0; i < shown; i++)
        same += ix.db_labels[hits[i].item] == ix.query_labels[a.image];
    printf("query=%ld label=%d code=0x%0*llx neighbours=%zu same_label=%zu\n", a.image,
           ix.query_labels[a.image], (ix.bits + 3) / 4, (unsigned long long)q, shown, same);
    for (size_t i = 0; i < shown; i++)
        printf("%u label=%d distance=%d\n", hits[i].item, ix.db_labels[hits[i].item],
               hits[i].dist);
    /* the picture: the query, then its neighbours (at most 40) */
    yf_run r;
    if ((rc = cli_open_run(a.positional, &a, YF_RUN_DATA, &r)) == 0) {
        char png[1200];
        if (a.output)
            snprintf(png, sizeof png, "%s", a.output);
        else {
            snprintf(png, sizeof png, "%s/pictures", a.positional);
            mkdir(png, 0777); /* an error shows when the file is written */
            snprintf(png, sizeof png, "%s/pictures/query-%ld.png", a.positional, a.image);
        }
        size_t k = shown < 40 ? shown : 40;
        uint32_t *items = malloc((k + 1) * sizeof *items);
        for (size_t i = 0; items && i < k; i++)
            items[i] = hits[i].item;
        yf_show_strip_opts so = {.query = (size_t)a.image, .items = items, .n = k};
        if (!items) {
            fprintf(stderr, "yaflow query: out of memory\n");
            rc = 1;
        } else if (yf_show_strip(r.data, &so, png, &err))
            rc = cli_fail(&err);
        else
            printf("%s\n", png);
        free(items);
        yf_run_close(&r);
    }
    free(hits);
    yf_hash_index_free(&ix);
    return rc;
}
