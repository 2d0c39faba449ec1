/* What the fuzz targets (fuzz/fuzz_*.c, libFuzzer) share: the inputs of the
 * readers that take a path go through one file per process, rewritten for
 * each input; and the contract every reader keeps, checked on each input:
 * it returns 0, or a negative yf_status with a message in the yf_error,
 * and never crashes, leaks or reads out of bounds (the sanitizers check
 * those). A broken contract aborts, which libFuzzer reports as a crash. */
#ifndef YF_FUZZ_H
#define YF_FUZZ_H

#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A folder for scratch files: /dev/shm (memory) when it can be written,
 * else $TMPDIR, else /tmp. */
static inline const char *fz_tmpdir(void)
{
    if (access("/dev/shm", W_OK) == 0)
        return "/dev/shm";
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

static char fz_path_buf[512];

static inline void fz_remove_file(void)
{
    if (fz_path_buf[0])
        unlink(fz_path_buf);
}

/* Writes data[0..size) to this process's input file (named with `ext`, the
 * first call chooses it) and returns its path. */
static inline const char *fz_file(const uint8_t *data, size_t size, const char *ext)
{
    if (!fz_path_buf[0]) {
        snprintf(fz_path_buf, sizeof fz_path_buf, "%s/yf-fuzz-%ld%s", fz_tmpdir(),
                 (long)getpid(), ext);
        atexit(fz_remove_file);
    }
    FILE *f = fopen(fz_path_buf, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        perror(fz_path_buf);
        abort();
    }
    return fz_path_buf;
}

/* The model fuzz_checkpoint loads checkpoints into, and make_seeds saves
 * its seeds from: every kind of tensor (dense weights and biases, a
 * convolution's, a frozen layer without moments, batch norm's running
 * statistics) and Adam's two moments. init: an init section, or "". */
#define FZ_CKPT_SPEC(init)                                                                  \
    "name: fuzz-ckpt\n"                                                                     \
    "seed: 3\n"                                                                             \
    "data: {source: mnist}\n" init                                                          \
    "model:\n"                                                                              \
    "  input: {name: x, shape: [1, 4, 4]}\n"                                                \
    "  layers:\n"                                                                           \
    "    - {name: conv, type: conv2d, filters: 2, kernel: 3, padding: same}\n"              \
    "    - {name: bn, type: batch_norm}\n"                                                  \
    "    - {name: flat, type: flatten}\n"                                                   \
    "    - {name: enc, type: dense, units: 3, activation: elu}\n"                           \
    "    - {name: dec, type: dense, units: 32, activation: sigmoid}\n"                      \
    "    - {name: frozen, type: dense, units: 32, trainable: false, input: flat}\n"         \
    "  loss:\n"                                                                             \
    "    - {type: mse, input: dec, target: flat}\n"                                         \
    "    - {type: mse, input: frozen, target: flat}\n"                                      \
    "train: {optimizer: {type: adam}, batch_size: 4}\n"

/* The two models the experiment seeds train (as ae.yaml and cls.yaml,
 * beside the experiment file): an autoencoder with a hash layer and a
 * classifier. */
#define FZ_EXP_AE                                                                           \
    "name: ae\n"                                                                            \
    "seed: 42\n"                                                                            \
    "data: {source: mnist, valid: 100}\n"                                                   \
    "model:\n"                                                                              \
    "  input: {name: x, shape: [784]}\n"                                                    \
    "  layers:\n"                                                                           \
    "    - {name: h, type: dense, units: 8, activation: elu}\n"                             \
    "    - {name: code, type: dense, units: 4, activation: sigmoid}\n"                      \
    "    - {name: out, type: dense, units: 784, activation: sigmoid}\n"                     \
    "  loss:\n"                                                                             \
    "    - {type: mse, input: out, target: x}\n"                                            \
    "hash: {layer: code}\n"                                                                 \
    "train: {optimizer: {type: adam}, batch_size: 16, epochs: 1}\n"
#define FZ_EXP_CLS                                                                          \
    "name: cls\n"                                                                           \
    "seed: 1\n"                                                                             \
    "data: {source: mnist, valid: 100}\n"                                                   \
    "model:\n"                                                                              \
    "  input: {name: x, shape: [784]}\n"                                                    \
    "  labels: {name: y, classes: 10}\n"                                                    \
    "  layers:\n"                                                                           \
    "    - {name: h, type: dense, units: 8, activation: relu}\n"                            \
    "    - {name: logits, type: dense, units: 10}\n"                                        \
    "  loss:\n"                                                                             \
    "    - {type: softmax_cross_entropy, input: logits, target: y}\n"                       \
    "  metrics: [accuracy]\n"                                                               \
    "train: {optimizer: {type: sgd}, batch_size: 16, epochs: 2}\n"

/* The error contract: rc is 0, or a negative code that err holds with a
 * message (and yf_error_format can print it). */
static inline void fz_check(int rc, yf_error *err, const char *what)
{
    if (getenv("YF_FUZZ_VERBOSE")) /* to see what an input gives: YF_FUZZ_VERBOSE=1 ./fuzz_x FILE */
        fprintf(stderr, "%s: %d %s\n", what, rc, rc ? yf_error_format(err) : "ok");
    if (rc == 0)
        return;
    if (rc > 0 || err->code != rc || !err->msg[0] || !yf_error_format(err)[0]) {
        fprintf(stderr, "%s: returned %d but the error says code %d, message '%s'\n", what, rc,
                (int)err->code, err->msg);
        abort();
    }
}

#endif
