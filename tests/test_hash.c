/* hash.c: bit packing, Hamming distances, Hamming-ball enumeration, the
 * retrieval metrics on cases small enough to compute by hand, and the
 * index file's round trip and its refusal of damaged files. */
#include "testutil.h"

#define DIR "test_hash.tmp"

START_TEST(test_pack)
{
    /* 0.5 is not above the threshold: bits 1 and 3 are set */
    float acts[2 * 4] = {0.2f, 0.7f, 0.5f, 0.9f, 1, 1, 1, 1};
    uint64_t c[2];
    yf_hash_pack(acts, 2, 4, 0.5f, c);
    ck_assert_uint_eq(c[0], 0xA);
    ck_assert_uint_eq(c[1], 0xF);
    /* 64 bits: the top bit too */
    float wide[64] = {0};
    wide[63] = 1;
    wide[0] = 1;
    yf_hash_pack(wide, 1, 64, 0.0f, c);
    ck_assert_uint_eq(c[0], (UINT64_C(1) << 63) | 1);
}
END_TEST

START_TEST(test_distances_and_balls)
{
    /* random 12-bit codes: the scan agrees with a bit-by-bit count, and a
     * ball lookup finds exactly the items a brute-force pass finds */
    enum { N = 3000, BITS = 12 };
    uint64_t *db = malloc(N * sizeof *db);
    uint32_t h = 12345;
    for (int i = 0; i < N; i++) {
        h = h * 1103515245u + 12345u;
        db[i] = (h >> 8) & ((1u << BITS) - 1);
    }
    uint8_t *d = malloc(N);
    uint64_t q = 0x5A3;
    yf_hash_distances(db, N, q, d);
    for (int i = 0; i < N; i++) {
        int want = 0;
        for (int b = 0; b < BITS; b++)
            want += ((db[i] ^ q) >> b) & 1;
        ck_assert_int_eq(d[i], want);
    }
    yf_error err = {0};
    yf_hash_table *t = yf_hash_table_new(db, N, &err);
    ck_assert_ptr_nonnull(t);
    for (int r = 0; r <= 3; r++) {
        size_t want = 0;
        for (int i = 0; i < N; i++)
            want += d[i] <= r;
        ck_assert_uint_eq(yf_hash_count_within(db, N, q, r), want);
        uint32_t *items = malloc((want + 1) * sizeof *items);
        size_t got = yf_hash_ball_items(t, q, BITS, r, items, want + 1);
        ck_assert_uint_eq(got, want);
        for (size_t k = 0; k < got; k++)
            ck_assert_int_le(d[items[k]], r);
        /* no item twice */
        for (size_t k = 1; k < got; k++)
            for (size_t j = 0; j < k; j++)
                ck_assert_uint_ne(items[k], items[j]);
        free(items);
    }
    /* a bucket lists its items in index order */
    size_t n;
    const uint32_t *b = yf_hash_bucket(t, db[17], &n);
    ck_assert_uint_ge(n, 1);
    for (size_t k = 1; k < n; k++)
        ck_assert_uint_lt(b[k - 1], b[k]);
    yf_hash_bucket(t, UINT64_C(1) << 40, &n); /* a code nobody has */
    ck_assert_uint_eq(n, 0);
    yf_hash_table_free(t);
    free(db), free(d);
}
END_TEST

/* Five 3-bit codes, two queries: every figure computed by hand (see the
 * comments). */
static yf_hash_index small_index(uint64_t *db, uint8_t *yl, uint64_t *q, uint8_t *ql)
{
    static const uint64_t dbv[5] = {0x0, 0x1, 0x3, 0x7, 0x0};
    static const uint8_t ylv[5] = {0, 0, 1, 1, 1};
    memcpy(db, dbv, sizeof dbv), memcpy(yl, ylv, sizeof ylv);
    q[0] = 0x0, ql[0] = 0;
    q[1] = 0x7, ql[1] = 1;
    return (yf_hash_index){.bits = 3, .classes = 2, .n_db = 5, .n_query = 2, .db = db,
                           .query = q, .db_labels = yl, .query_labels = ql,
                           .saturation = NAN, .layer = "code", .model = "m"};
}

START_TEST(test_metrics_by_hand)
{
    uint64_t db[5], q[2];
    uint8_t yl[5], ql[2];
    yf_hash_index ix = small_index(db, yl, q, ql);
    yf_hash_stats st;
    yf_error err = {0};
    ck_assert_int_eq(yf_hash_evaluate(&ix, 0, 1, &st, &err), 0);
    ck_assert_uint_eq(st.distinct, 4);
    ck_assert_uint_eq(st.largest, 2);
    /* bucket 000 holds labels {0, 1}: Gini 0.5, weight 2 of 5 */
    ck_assert_double_eq_tol(st.gini, 0.2, 1e-12);
    ck_assert_double_eq_tol(st.purity, 0.8, 1e-12);
    /* query 000 (label 0): distances 0 1 2 3 0, ranking 0 4 1 2 3,
     * relevant 0 and 1: AP = (1/1 + 2/3) / 2; query 111 (label 1):
     * distances 3 2 1 0 3, ranking 3 2 1 0 4, relevant 2 3 4:
     * AP = (1 + 1 + 3/5) / 3 */
    ck_assert_double_eq_tol(st.map, ((1 + 2.0 / 3) / 2 + (1 + 1 + 0.6) / 3) / 2, 1e-12);
    /* within radius 2: {0, 4, 1, 2} has 2 of label 0; {1, 2, 3} has 2 of
     * label 1 */
    ck_assert_double_eq_tol(st.precision_r2, (0.5 + 2.0 / 3) / 2, 1e-12);
    /* balls: radius 1, {0, 4, 1} labels 0 1 0 (Gini 4/9, 3 items) and
     * {2, 3} labels 1 1 (0, 2 items); radius 2, {0, 4, 1, 2} (0.5, 4) and
     * {1, 2, 3} (4/9, 3) */
    ck_assert_double_eq_tol(st.gini_r1, (3 * 4.0 / 9) / 5, 1e-12);
    ck_assert_double_eq_tol(st.gini_r2, (4 * 0.5 + 3 * 4.0 / 9) / 7, 1e-12);
    ck_assert_double_eq_tol(st.purity_r2, 1 - (4 * 0.5 + 3 * 4.0 / 9) / 7, 1e-12);
    /* the first query only */
    ck_assert_int_eq(yf_hash_evaluate(&ix, 1, 2, &st, &err), 0);
    ck_assert_uint_eq(st.queries, 1);
    ck_assert_double_eq_tol(st.map, (1 + 2.0 / 3) / 2, 1e-12);
    ck_assert_double_eq_tol(st.precision_r2, 0.5, 1e-12);
}
END_TEST

static void damage(const char *from, const char *to, long at, int byte, long truncate_to)
{
    size_t len;
    char *buf = tu_read(from, &len);
    if (at >= 0)
        buf[at] = (char)byte;
    tu_write(to, buf, truncate_to >= 0 ? (size_t)truncate_to : len);
    free(buf);
}

static void expect_refused(const char *path, const char *want)
{
    yf_hash_index ix;
    yf_error err = {0};
    ck_assert_int_eq(yf_hash_index_load(&ix, path, &err), YF_EDATA);
    char full[1024];
    snprintf(full, sizeof full, "%s: %s", path, want);
    ck_assert_str_eq(yf_error_format(&err), full);
    ck_assert_ptr_null(ix.db);
}

START_TEST(test_index_file)
{
    tu_workdir(DIR);
    uint64_t db[5], q[2];
    uint8_t yl[5], ql[2];
    yf_hash_index ix = small_index(db, yl, q, ql);
    ix.saturation = 0.75;
    yf_error err = {0};
    ck_assert_int_eq(yf_hash_index_save(&ix, DIR "/a.index", &err), 0);
    yf_hash_index back;
    ck_assert_msg(yf_hash_index_load(&back, DIR "/a.index", &err) == 0, "%s", yf_error_format(&err));
    ck_assert_int_eq(back.bits, 3);
    ck_assert_int_eq(back.classes, 2);
    ck_assert_uint_eq(back.n_db, 5);
    ck_assert_uint_eq(back.n_query, 2);
    ck_assert(memcmp(back.db, db, sizeof db) == 0 && memcmp(back.query, q, sizeof q) == 0);
    ck_assert(memcmp(back.db_labels, yl, 5) == 0 && memcmp(back.query_labels, ql, 2) == 0);
    ck_assert_double_eq(back.saturation, 0.75);
    ck_assert_str_eq(back.layer, "code");
    yf_hash_index_free(&back);
    /* 168-byte header, 7 labels padded to 8, 7 codes, CRC: 236 bytes */
    size_t len;
    free(tu_read(DIR "/a.index", &len));
    ck_assert_uint_eq(len, 168 + 8 + 7 * 8 + 4);
    damage(DIR "/a.index", DIR "/code.index", 168 + 8 + 3, 0x40, -1);
    expect_refused(DIR "/code.index", "checksum mismatch: the file is corrupt");
    damage(DIR "/a.index", DIR "/short.index", -1, 0, (long)len - 9);
    expect_refused(DIR "/short.index",
                   "227 bytes, but 5 items and 2 queries need 236: truncated or corrupt");
    damage(DIR "/a.index", DIR "/tiny.index", -1, 0, 24);
    expect_refused(DIR "/tiny.index", "truncated: 24 bytes, shorter than the 172-byte header");
    damage(DIR "/a.index", DIR "/magic.index", 0, 'Z', -1);
    expect_refused(DIR "/magic.index", "not a yaflow hash index (no YFHASH1 magic)");
    damage(DIR "/a.index", DIR "/bits.index", 8, 99, -1);
    expect_refused(DIR "/bits.index", "99 bits: an index holds 1 to 64");
    /* a huge item count is refused from the header, before any allocation */
    damage(DIR "/a.index", DIR "/huge.index", 16 + 4, 0x7f, -1);
    /* ("need 0": the size is not computed for more than 2^32 items) */
    expect_refused(DIR "/huge.index",
                   "236 bytes, but 545460846597 items and 2 queries need 0: truncated or corrupt");
    yf_hash_index none;
    ck_assert_int_eq(yf_hash_index_load(&none, DIR "/missing.index", &err), YF_EUSAGE);
    ck_assert_str_eq(yf_error_format(&err), DIR "/missing.index: cannot open the hash index: No "
                                            "such file or directory (make one with yaflow hash)");
}
END_TEST

/* data.folds: every training-file row in exactly one validation fold,
 * the training split its complement, each class spread evenly, the same
 * folds for the same seed */
START_TEST(test_folds)
{
    tu_workdir(DIR "/folds");
    tu_write_dataset(DIR "/folds/data", 203, 8, 4, false); /* 4 classes, 51/51/51/50 */
    enum { K = 3, N = 203 };
    int seen[N] = {0}, per_class[K][4] = {{0}};
    size_t first_valid[N];
    size_t n_first = 0;
    for (int f = 0; f < K; f++) {
        char fold[32];
        snprintf(fold, sizeof fold, "data.fold=%d", f);
        const char *ov[] = {fold};
        yf_spec *s = tu_spec("name: folds\n"
                             "seed: 5\n"
                             "data: {source: mnist, dir: " DIR "/folds/data, valid: 0, folds: 3, fold: 0}\n"
                             "model:\n"
                             "  input: {name: x, shape: [16]}\n"
                             "  layers:\n"
                             "    - {name: out, type: dense, units: 16}\n"
                             "  loss:\n"
                             "    - {type: mse, input: out, target: x}\n"
                             "train: {optimizer: {type: sgd, learning_rate: 0.1}, batch_size: 8, epochs: 1}\n",
                             ov, 1);
        yf_error err = {0};
        yf_dataset *d = yf_dataset_load(s, &err);
        ck_assert_msg(d != NULL, "%s", yf_error_format(&err));
        size_t nv = yf_dataset_count(d, YF_SPLIT_VALID), nt = yf_dataset_count(d, YF_SPLIT_TRAIN);
        ck_assert_uint_eq(nv + nt, N);
        bool in_valid[N] = {false};
        for (size_t i = 0; i < nv; i++) {
            size_t row = yf__row_of(d, YF_SPLIT_VALID, i);
            in_valid[row] = true;
            seen[row]++;
            per_class[f][d->train_y.data[row]]++;
            if (f == 0)
                first_valid[n_first++] = row;
        }
        for (size_t i = 0; i < nt; i++) /* the training split: the other folds */
            ck_assert(!in_valid[yf__row_of(d, YF_SPLIT_TRAIN, i)]);
        yf_dataset_free(d);
        yf_spec_free(s);
    }
    for (int i = 0; i < N; i++) /* disjoint and covering */
        ck_assert_msg(seen[i] == 1, "row %d is in %d validation folds", i, seen[i]);
    for (int c = 0; c < 4; c++) /* stratified: each class's share within one */
        for (int f = 0; f < K; f++) {
            int total = c < 3 ? 51 : 50;
            ck_assert_int_ge(per_class[f][c], total / K);
            ck_assert_int_le(per_class[f][c], (total + K - 1) / K);
        }
    /* seeded: the same seed gives the same fold 0, another seed another */
    for (int seed = 5; seed <= 6; seed++) {
        char sd[32];
        snprintf(sd, sizeof sd, "seed=%d", seed);
        const char *ov[] = {sd};
        yf_spec *s = tu_spec("name: folds\n"
                             "data: {source: mnist, dir: " DIR "/folds/data, valid: 0, folds: 3, fold: 0}\n"
                             "model:\n"
                             "  input: {name: x, shape: [16]}\n"
                             "  layers:\n"
                             "    - {name: out, type: dense, units: 16}\n"
                             "  loss:\n"
                             "    - {type: mse, input: out, target: x}\n"
                             "train: {optimizer: {type: sgd, learning_rate: 0.1}, batch_size: 8, epochs: 1}\n",
                             ov, 1);
        yf_error err = {0};
        yf_dataset *d = yf_dataset_load(s, &err);
        ck_assert_ptr_nonnull(d);
        bool same = yf_dataset_count(d, YF_SPLIT_VALID) == n_first;
        for (size_t i = 0; same && i < n_first; i++)
            same = yf__row_of(d, YF_SPLIT_VALID, i) == first_valid[i];
        ck_assert_msg(same == (seed == 5), "seed %d: fold 0 %s", seed, same ? "unchanged" : "changed");
        yf_dataset_free(d);
        yf_spec_free(s);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hash");
    TCase *tc = tcase_create("hash");
    tcase_add_test(tc, test_pack);
    tcase_add_test(tc, test_distances_and_balls);
    tcase_add_test(tc, test_metrics_by_hand);
    tcase_add_test(tc, test_index_file);
    tcase_add_test(tc, test_folds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
