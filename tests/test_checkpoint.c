/* checkpoint.c (and json.c, which reads its header): safetensors round
 * trips are bit-exact for parameters, optimizer moments and the step; a
 * checkpoint that does not fit the model, or is not one, is refused with
 * YF_ECKPT and leaves the model as it was. */
#include "testutil.h"

#define DIR "test_checkpoint.tmp"

static const char spec_fmt[] = "name: ck\n"
                               "seed: 3\n"
                               "data: {source: mnist}\n"
                               "model:\n"
                               "  input: {name: x, shape: [6]}\n"
                               "  layers:\n"
                               "    - {name: enc, type: dense, units: %d, activation: elu}\n"
                               "    - {name: dec, type: dense, units: 6, activation: sigmoid}\n"
                               "    - {name: frozen, type: dense, units: 6, trainable: false}\n"
                               "  loss:\n"
                               "    - {type: mse, input: dec, target: x}\n"
                               "    - {type: mse, input: frozen, target: x}\n"
                               "train: {optimizer: {type: %s}, batch_size: 8}\n";

static yf_model *model(int units, const char *optim, yf_spec **s)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, spec_fmt, units, optim);
    return tu_model(yaml, s);
}

/* A few optimiser steps, so that parameters, moments and step all move. */
static void train_a_little(yf_model *m, int steps)
{
    size_t in = m->train.node[m->train.input_node].size;
    for (int i = 0; i < steps; i++) {
        tu_fill(tu_input(m), 8 * in, (unsigned)i);
        tu_step(m, 8);
        yf__optim_step(m);
    }
}

static float *copy_block(const float *b, size_t n)
{
    float *c = malloc(n * sizeof *c);
    memcpy(c, b, n * sizeof *c);
    return c;
}

static void assert_same_block(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a)) /* bits, not values */
            ck_abort_msg("%s differs at %zu: %a vs %a", what, i, a[i], b[i]);
}

START_TEST(test_round_trip)
{
    tu_workdir(DIR);
    yf_spec *s1, *s2;
    yf_model *a = model(4, "adam", &s1);
    train_a_little(a, 5);
    ck_assert_int_eq(a->step, 5);
    yf_error err = {0};
    ck_assert_msg(yf_checkpoint_save(a, DIR "/a.safetensors", &err) == 0, "%s",
                  yf_error_format(&err));
    ck_assert(!tu_exists(DIR "/a.safetensors.tmp"));

    yf_model *b = model(4, "adam", &s2);
    ck_assert(memcmp(a->param_block, b->param_block, a->param_floats * 4) != 0);
    ck_assert_msg(yf_checkpoint_load(b, DIR "/a.safetensors", 1, &err) == 0, "%s",
                  yf_error_format(&err));
    assert_same_block(a->param_block, b->param_block, a->param_floats, "parameters");
    assert_same_block(a->m_block, b->m_block, a->param_floats, "first moments");
    assert_same_block(a->v_block, b->v_block, a->param_floats, "second moments");
    ck_assert_int_eq(b->step, 5);

    /* the two models now train identically */
    train_a_little(a, 2);
    train_a_little(b, 2);
    assert_same_block(a->param_block, b->param_block, a->param_floats, "parameters after steps");

    /* saving what was loaded gives the same bytes */
    ck_assert(yf_checkpoint_save(a, DIR "/a2.safetensors", &err) == 0);
    ck_assert(yf_checkpoint_save(b, DIR "/b2.safetensors", &err) == 0);
    size_t la = 0, lb = 0;
    char *fa = tu_read(DIR "/a2.safetensors", &la), *fb = tu_read(DIR "/b2.safetensors", &lb);
    ck_assert(fa && fb && la == lb && memcmp(fa, fb, la) == 0);
    /* safetensors layout: 8-byte length, JSON header, then the data */
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)(uint8_t)fa[i] << (8 * i);
    ck_assert(hlen % 8 == 0 && 8 + hlen < la && fa[8] == '{');
    ck_assert(strstr(fa + 8, "\"enc.W\":{\"dtype\":\"F32\",\"shape\":[6,4]") != NULL);
    ck_assert(strstr(fa + 8, "\"optim.v.dec.b\"") != NULL);
    ck_assert(strstr(fa + 8, "\"step\":\"7\"") != NULL);
    ck_assert(strstr(fa + 8, "optim.m.frozen") == NULL); /* no moments for frozen layers */
    free(fa);
    free(fb);
    tu_free(a, s1);
    tu_free(b, s2);
    tu_rmtree(DIR);
}
END_TEST

/* with_optim = 0 takes the parameters only */
/* Layer names that look like the optimizer state's ("optim.m.<param>")
 * are still parameters: a layer called optim, and one called m. */
START_TEST(test_layer_named_optim)
{
    tu_workdir(DIR);
    static const char yaml[] = "name: ck\n"
                               "data: {source: mnist}\n"
                               "model:\n"
                               "  input: {name: x, shape: [6]}\n"
                               "  layers:\n"
                               "    - {name: optim, type: dense, units: 3, activation: elu}\n"
                               "    - {name: m, type: dense, units: 6}\n"
                               "  loss:\n"
                               "    - {type: mse, input: m, target: x}\n"
                               "train: {optimizer: {type: adam}, batch_size: 8}\n";
    yf_spec *s1, *s2, *s3;
    yf_model *a = tu_model(yaml, &s1);
    train_a_little(a, 3);
    yf_error err = {0};
    ck_assert_msg(yf_checkpoint_save(a, DIR "/optim.safetensors", &err) == 0, "%s",
                  yf_error_format(&err));
    for (int with_optim = 0; with_optim < 2; with_optim++) {
        yf_model *b = tu_model(yaml, with_optim ? &s3 : &s2);
        ck_assert_msg(yf_checkpoint_load(b, DIR "/optim.safetensors", with_optim, &err) == 0,
                      "%s", yf_error_format(&err));
        assert_same_block(a->param_block, b->param_block, a->param_floats, "parameters");
        if (with_optim)
            assert_same_block(a->v_block, b->v_block, a->param_floats, "second moments");
        tu_free(b, with_optim ? s3 : s2);
    }
    tu_free(a, s1);
}
END_TEST

START_TEST(test_params_only)
{
    tu_workdir(DIR);
    yf_spec *s1, *s2;
    yf_model *a = model(4, "momentum", &s1), *b = model(4, "momentum", &s2);
    train_a_little(a, 3);
    yf_error err = {0};
    ck_assert(yf_checkpoint_save(a, DIR "/a.safetensors", &err) == 0);
    ck_assert_msg(yf_checkpoint_load(b, DIR "/a.safetensors", 0, &err) == 0, "%s",
                  yf_error_format(&err));
    assert_same_block(a->param_block, b->param_block, a->param_floats, "parameters");
    for (size_t i = 0; i < b->param_floats; i++)
        ck_assert(b->m_block[i] == 0.0f);
    ck_assert_int_eq(b->step, 0);
    tu_free(a, s1);
    tu_free(b, s2);

    /* an sgd checkpoint has no moments: fine for parameters, not for adam's
     * state (refused by its recorded optimizer, before any tensor) */
    a = model(4, "sgd", &s1);
    b = model(4, "adam", &s2);
    ck_assert(yf_checkpoint_save(a, DIR "/sgd.safetensors", &err) == 0);
    ck_assert(yf_checkpoint_load(b, DIR "/sgd.safetensors", 0, &err) == 0);
    float *before = copy_block(b->param_block, b->param_floats);
    ck_assert_int_eq(yf_checkpoint_load(b, DIR "/sgd.safetensors", 1, &err), YF_ECKPT);
    ck_assert_str_eq(yf_error_format(&err), DIR "/sgd.safetensors: it holds the state of "
                                            "optimizer 'sgd', but the model trains with 'adam'");
    assert_same_block(before, b->param_block, b->param_floats, "parameters after a refusal");
    free(before);
    tu_free(a, s1);
    tu_free(b, s2);
    tu_rmtree(DIR);
}
END_TEST

/* Loads path into m and asserts YF_ECKPT with the message "path: words",
 * and m unchanged. */
static void refused(yf_model *m, const char *path, const char *words)
{
    float *p = copy_block(m->param_block, m->param_floats);
    float *mm = copy_block(m->m_block, m->param_floats);
    float *v = copy_block(m->v_block, m->param_floats);
    uint64_t step = m->step;
    yf_error err = {0};
    int rc = yf_checkpoint_load(m, path, 1, &err);
    ck_assert_msg(rc == YF_ECKPT, "%s: rc %d, want YF_ECKPT (%s)", path, rc,
                  yf_error_format(&err));
    ck_assert_int_eq(yf_status_exit_code(err.code), 2);
    char want[1400];
    snprintf(want, sizeof want, "%s: %s", path, words);
    ck_assert_str_eq(yf_error_format(&err), want);
    assert_same_block(p, m->param_block, m->param_floats, "parameters");
    assert_same_block(mm, m->m_block, m->param_floats, "first moments");
    assert_same_block(v, m->v_block, m->param_floats, "second moments");
    ck_assert_int_eq(m->step, step);
    free(p);
    free(mm);
    free(v);
}

/* DIR/NAME.safetensors = an 8-byte little-endian header length, then body;
 * loading it must be refused with words in the message. */
static void with_header(yf_model *m, const char *name, uint64_t hlen, const char *body,
                        const char *words)
{
    char path[256];
    size_t n = strlen(body);
    char *buf = malloc(8 + n);
    for (int i = 0; i < 8; i++)
        buf[i] = (char)(hlen >> (8 * i));
    memcpy(buf + 8, body, n);
    snprintf(path, sizeof path, DIR "/%s.safetensors", name);
    tu_write(path, buf, 8 + n);
    free(buf);
    refused(m, path, words);
}

START_TEST(test_other_shapes)
{
    tu_workdir(DIR);
    yf_spec *s1, *s2;
    yf_model *a = model(4, "adam", &s1), *b = model(5, "adam", &s2);
    train_a_little(a, 2);
    train_a_little(b, 1);
    yf_error err = {0};
    ck_assert(yf_checkpoint_save(a, DIR "/a.safetensors", &err) == 0);
    refused(b, DIR "/a.safetensors", "tensor 'enc.W' has shape [6, 4]; the model needs [6, 5]");
    tu_free(a, s1);
    tu_free(b, s2);

    /* other layer names */
    char yaml[1024];
    snprintf(yaml, sizeof yaml, spec_fmt, 4, "adam");
    char *enc;
    while ((enc = strstr(yaml, "enc")))
        memcpy(enc, "abc", 3);
    b = tu_model(yaml, &s2);
    refused(b, DIR "/a.safetensors", "no tensor 'abc.W' in the checkpoint (is it from another model?)");
    tu_free(b, s2);
    tu_rmtree(DIR);
}
END_TEST

START_TEST(test_bad_files)
{
    tu_workdir(DIR);
    yf_spec *s;
    yf_model *m = model(4, "adam", &s);
    train_a_little(m, 1);
    yf_error err = {0};
    ck_assert(yf_checkpoint_save(m, DIR "/good.safetensors", &err) == 0);
    size_t len = 0;
    char *good = tu_read(DIR "/good.safetensors", &len);
    ck_assert(good && len > 200);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)(uint8_t)good[i] << (8 * i);

    /* truncated: in the data, in the header, in the length */
    tu_write(DIR "/t1.safetensors", good, len - 4);
    char want[200];
    snprintf(want, sizeof want, "tensor 'frozen.b' has data_offsets [%zu, %zu]: not whole bytes "
             "within the %zu "
             "bytes of data", len - 8 - hlen - 4 * 6, len - 8 - hlen, len - 8 - hlen - 4);
    refused(m, DIR "/t1.safetensors", want); /* the last tensor, 6 floats, is cut */
    tu_write(DIR "/t2.safetensors", good, 8 + hlen / 2);
    snprintf(want, sizeof want, "not a safetensors file: header length %llu does not fit a file "
             "of %llu bytes", (unsigned long long)hlen, (unsigned long long)(8 + hlen / 2));
    refused(m, DIR "/t2.safetensors", want);
    tu_write(DIR "/t3.safetensors", good, 5);
    refused(m, DIR "/t3.safetensors", "not a safetensors file: shorter than 8 bytes");
    tu_write(DIR "/t4.safetensors", "", 0);
    refused(m, DIR "/t4.safetensors", "not a safetensors file: shorter than 8 bytes");

    /* garbage: a text file, a length that is not JSON, a huge length */
    const char *text = "this is not a checkpoint, just some text that is long enough";
    tu_write(DIR "/g1.safetensors", text, strlen(text));
    refused(m, DIR "/g1.safetensors", "not a safetensors file: header length 2338328219631577204 "
                                      "does not fit a file of 60 bytes"); /* "this is " */
    with_header(m, "g2", 24, "not json at all, sorry!!",
                "corrupt safetensors header: bad value at byte 0 of the JSON header");
    with_header(m, "g3", 8, "[1,2,3] ", "corrupt safetensors header: not a JSON object");
    with_header(m, "g4", UINT64_MAX, "{}      ",
                "not a safetensors file: header length 18446744073709551615 does not fit a file "
                "of 16 bytes");
    /* an unterminated string, and deep nesting */
    with_header(m, "g5", 15, "{\"enc.W\":\"F32 }",
                "corrupt safetensors header: unterminated string at byte 15 of the JSON header");
    char deep[81];
    memset(deep, '[', 80);
    deep[80] = 0;
    with_header(m, "g6", 80, deep,
                "corrupt safetensors header: nesting too deep at byte 33 of the JSON header");

    /* a tensor that is not F32, and offsets pointing outside the data */
    char *bad = malloc(len);
    memcpy(bad, good, len);
    char *dt = strstr(bad + 8, "\"F32\"");
    ck_assert(dt != NULL);
    memcpy(dt, "\"F16\"", 5);
    tu_write(DIR "/dtype.safetensors", bad, len);
    refused(m, DIR "/dtype.safetensors", "tensor 'enc.W' is not F32");
    memcpy(bad, good, len);
    char *off = strstr(bad + 8, "\"data_offsets\":[0,");
    ck_assert(off != NULL);
    memcpy(off + 16, "9", 1); /* [0,96] becomes [9,96]: the wrong length */
    tu_write(DIR "/offsets.safetensors", bad, len);
    refused(m, DIR "/offsets.safetensors", "9 bytes before tensor 'enc.W' belong to no tensor");
    /* bytes after the last tensor */
    char *longer = malloc(len + 4);
    memcpy(longer, good, len);
    memcpy(longer + len, "junk", 4);
    tu_write(DIR "/trailing.safetensors", longer, len + 4);
    refused(m, DIR "/trailing.safetensors", "4 bytes after the last tensor belong to no tensor "
                                            "(trailing bytes)");
    free(longer);
    /* a tensor starting inside the one before it */
    memcpy(bad, good, len);
    off = strstr(bad + 8, "\"data_offsets\":[96,");
    ck_assert(off != NULL);
    memcpy(off + 16, "92", 2); /* [96, ...] becomes [92, ...] */
    tu_write(DIR "/overlap.safetensors", bad, len);
    refused(m, DIR "/overlap.safetensors", "tensors 'enc.W' and 'optim.m.enc.W' overlap");
    free(bad);

    /* a header made to cost memory: a megabyte of "0," would take 24 MB
     * of parsed values; the reader stops at 16 bytes per header byte */
    size_t hl = 1 << 20, at = 6;
    char *hostile = malloc(hl + 4);
    memcpy(hostile, "{\"a\":[", 6);
    while (at + 3 < hl)
        memcpy(hostile + at, "0,", 2), at += 2;
    memcpy(hostile + at, "0]}", 3);
    hl = at + 3;
    hostile[hl] = 0;
    with_header(m, "memory", hl, hostile, "corrupt safetensors header: the JSON header would need more memory "
                "than 1048577 bytes of header justify");
    free(hostile);

    /* a missing file, a folder */
    refused(m, DIR "/missing.safetensors", "cannot open checkpoint: No such file or directory");
    tu_mkdirs(DIR "/folder.safetensors");
    /* (a folder named like a checkpoint: the message could say so) */
    refused(m, DIR "/folder.safetensors", "not a safetensors file: shorter than 8 bytes");

    /* saving into a folder that does not exist fails with YF_EIO */
    ck_assert_int_eq(yf_checkpoint_save(m, DIR "/no/such/dir/c.safetensors", &err), YF_EIO);
    ck_assert_str_eq(yf_error_format(&err), "cannot write checkpoint " DIR "/no/such/dir/"
                                            "c.safetensors.tmp: No such file or directory");
    free(good);
    tu_free(m, s);
    tu_rmtree(DIR);
}
END_TEST

/* The metadata's CRC-32 catches a flipped byte in the tensors, and
 * another optimizer's state is refused when optimizer state is loaded. */
START_TEST(test_checksum_and_optimizer)
{
    tu_workdir(DIR "/crc");
    yf_spec *s;
    yf_model *m = model(4, "adam", &s);
    train_a_little(m, 3);
    yf_error err = {0};
    ck_assert_int_eq(yf_checkpoint_save(m, DIR "/crc/a.safetensors", &err), 0);
    size_t len = 0;
    char *buf = tu_read(DIR "/crc/a.safetensors", &len);
    ck_assert_ptr_nonnull(memmem(buf, len, "\"optimizer\":\"adam\"", 18));
    ck_assert_ptr_nonnull(memmem(buf, len, "\"crc32\":\"", 9));
    buf[len - 5] ^= 0x10; /* a bit of the last tensor */
    tu_write(DIR "/crc/b.safetensors", buf, len);
    free(buf);
    float before = m->param_block[0];
    ck_assert_int_eq(yf_checkpoint_load(m, DIR "/crc/b.safetensors", 1, &err), YF_ECKPT);
    ck_assert_msg(strstr(yf_error_format(&err), "checksum mismatch"), "%s", yf_error_format(&err));
    ck_assert(m->param_block[0] == before);
    /* momentum's model reading adam's state: refused with optimizer state,
     * fine for the parameters alone */
    yf_spec *s2;
    yf_model *m2 = model(4, "momentum", &s2);
    ck_assert_int_eq(yf_checkpoint_load(m2, DIR "/crc/a.safetensors", 1, &err), YF_ECKPT);
    ck_assert_msg(strstr(yf_error_format(&err), "optimizer 'adam'") &&
                  strstr(yf_error_format(&err), "'momentum'"), "%s", yf_error_format(&err));
    ck_assert_int_eq(yf_checkpoint_load(m2, DIR "/crc/a.safetensors", 0, &err), 0);
    ck_assert(m2->param_block[0] == m->param_block[0]);
    tu_free(m2, s2);
    tu_free(m, s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("safetensors");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_params_only);
    tcase_add_test(tc, test_layer_named_optim);
    tcase_add_test(tc, test_other_shapes);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_checksum_and_optimizer);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
