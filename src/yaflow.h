/* yaflow — a dataflow graph engine whose models are YAML files.
 *
 * A worked example: train the stacked autoencoder of models/stacked-ae.yaml
 * and read its test error, the way `yaflow train` and `yaflow eval` do.
 *
 *     yf_error err = {0};
 *     yf_spec *spec = yf_spec_load("models/stacked-ae.yaml", NULL, 0, &err);
 *     yf_model *m = spec ? yf_model_new(spec, 1, &err) : NULL;   // 1 thread
 *     yf_dataset *d = m ? yf_dataset_load(spec, &err) : NULL;
 *     if (!d || yf_train(m, d, &(yf_train_opts){.out_dir = "runs/ae"}, &err))
 *         fprintf(stderr, "%s\n", yf_error_format(&err));   // file:line:col: ...
 *
 * Every call that can fail returns NULL or a negative yf_status and fills
 * the caller's yf_error (which must not be NULL) with a message and, where
 * the fault is in a spec, the file, line, column and key path. The library
 * never prints or exits.
 */
#ifndef YAFLOW_H
#define YAFLOW_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: XX(name, value, exit code of the CLI, description). */
#define YF_STATUS_MAP(XX)                                                   \
    XX(OK, 0, 0, "ok")                                                      \
    XX(ESPEC, -1, 2, "invalid model spec")                                  \
    XX(EDATA, -2, 2, "invalid data file")                                   \
    XX(ECKPT, -3, 2, "invalid checkpoint")                                  \
    XX(EUSAGE, -4, 2, "invalid argument")                                   \
    XX(EIO, -5, 1, "input/output error")                                    \
    XX(ENOMEM, -6, 1, "out of memory")                                      \
    XX(ERUN, -7, 1, "runtime failure")                                      \
    XX(EINTERRUPTED, -8, 130, "interrupted")

typedef enum {
#define XX(name, value, exitcode, text) YF_##name = value,
    YF_STATUS_MAP(XX)
#undef XX
} yf_status;

typedef struct yf_error {
    yf_status code;
    char msg[768];
    char file[512]; /* empty when the error has no place in a file */
    int line, col;  /* 1-based; 0 when unknown */
    char key[256];  /* dotted key path, e.g. "model.layers[2].units" */
    char text[1600]; /* yf_error_format's buffer */
} yf_error;

const char *yf_status_name(yf_status s);
int yf_status_exit_code(yf_status s);
/* "file:line:col: message" (or just the message); points into err. */
const char *yf_error_format(yf_error *err);

/* ---- specs ------------------------------------------------------------ */

typedef struct yf_spec yf_spec;

/* Parses and validates a model spec. overrides are "dotted.key=value"
 * strings applied before validation, as on the command line. The spec must
 * be freed with yf_spec_free. */
yf_spec *yf_spec_load(const char *path, const char *const *overrides,
                      int n_overrides, yf_error *err);
yf_spec *yf_spec_parse(const char *text, size_t len, const char *name,
                       const char *const *overrides, int n_overrides,
                       yf_error *err);
void yf_spec_free(yf_spec *spec);
const char *yf_spec_name(const yf_spec *spec);
/* train.epochs */
int yf_spec_epochs(const yf_spec *spec);
/* Calls visit with every dotted key of the resolved spec that an override
 * can set ("train.epochs", "model.layers.coding.units", ...), in order. */
void yf_spec_keys(const yf_spec *spec, void (*visit)(const char *key, void *ctx), void *ctx);
/* The candidate nearest to word (a typo, a swap of neighbours), or NULL
 * when none is near: for "did you mean" messages. */
const char *yf_closest(const char *word, const char *const *candidates, int n);
/* Makes every sample_normal layer give its mean, not a sample, when the
 * model is evaluated (as `eval: mean` in the layer would); call it before
 * yf_model_new. */
void yf_spec_sample_means(yf_spec *spec);
/* Writes the fully resolved spec (every default explicit) as YAML. A
 * relative data.dir is written absolute: relative to the spec file's
 * folder when the file says it, to the current directory when an override
 * does. */
int yf_spec_write(const yf_spec *spec, FILE *out);
/* Sets data.dir (relative to the current directory), as `--data DIR`
 * does: it wins over the spec's data.dir and $YAFLOW_DATA. Call it before
 * yf_model_new. */
int yf_spec_set_data_dir(yf_spec *spec, const char *dir, yf_error *err);

/* ---- models ----------------------------------------------------------- */

typedef struct yf_model yf_model;

/* Compiles the spec into a training graph (with its backward nodes) and an
 * evaluation graph sharing one parameter block, and initialises the
 * parameters from the spec's seed. threads <= 0 means all cores. */
yf_model *yf_model_new(const yf_spec *spec, int threads, yf_error *err);
void yf_model_free(yf_model *m);
/* Prints layers, output shapes, parameter counts, FLOPs per example and the
 * memory plan. */
void yf_model_summary(const yf_model *m, FILE *out);
size_t yf_model_param_count(const yf_model *m);
/* Parameters in one contiguous block, in the order of yf_model_summary. */
float *yf_model_params(yf_model *m);
/* Uses as many of the model's threads as the processes running now leave
 * cores for (a glance at /proc/loadavg), for work that follows (an
 * evaluation, encoding, pictures); results do not depend on it. Training
 * with adapt_threads follows the load by itself. */
void yf_model_fit_threads(yf_model *m);
/* Remarks about specs that are valid but probably not what was meant (a
 * layer no loss depends on, l2 on frozen weights ...), each
 * "file:line:col: message". */
int yf_model_warning_count(const yf_model *m);
const char *yf_model_warning(const yf_model *m, int i);
/* Copies the parameters the spec's init section names (init: {from,
 * layers}) from a run folder or .safetensors file. Fails, leaving the
 * model unchanged, on a missing file or layer or a shape that differs. */
int yf_model_init_from(yf_model *m, yf_error *err);
/* How many checkpoints the init section names, and the i-th of them in
 * path: returns 1 when it exists, 0 when it does not (yet). */
int yf_model_init_sources(const yf_model *m);
int yf_model_init_source(const yf_model *m, int i, char *path, size_t cap);

/* ---- data ------------------------------------------------------------- */

typedef struct yf_dataset yf_dataset;

/* Loads the data the spec names (data.source) from data.dir, or from
 * $YAFLOW_DATA, or ./data. Free with yf_dataset_free. */
yf_dataset *yf_dataset_load(const yf_spec *spec, yf_error *err);
void yf_dataset_free(yf_dataset *d);
typedef enum { YF_SPLIT_TRAIN, YF_SPLIT_VALID, YF_SPLIT_TEST } yf_split;
size_t yf_dataset_count(const yf_dataset *d, yf_split split);

/* ---- training and evaluation ------------------------------------------- */

typedef struct yf_train_opts {
    const char *out_dir; /* run folder; created if missing */
    FILE *echo;          /* progress is also shown here (NULL: silent) */
    int bar;             /* 1: a live progress bar on echo (a terminal) */
    int profile;         /* 1: time every node; write profile.txt */
    int overwrite;       /* 1: out_dir may hold a run: the new one is staged
                            beside it and replaces it once its first
                            checkpoint is saved */
    int adapt_threads;   /* 1: use 1 to the model's threads, whichever count
                            trains fastest now (measured as it goes: other
                            processes may hold cores); the results do not
                            depend on it */
    int resume;          /* 1: continue the run in out_dir from its last
                            checkpoint (from the start when it has none; a
                            finished run is left as it is) */
    /* When *stop becomes non-zero (a signal handler sets it), training
     * finishes the step, saves a checkpoint and fails with
     * YF_EINTERRUPTED; `resume` continues it exactly. NULL: never. */
    const volatile sig_atomic_t *stop;
} yf_train_opts;

/* One training step, the unit everything else is built on: gathers
 * examples idx[0..rows) of the training split (rows <= train.batch_size)
 * into the graph's inputs, runs forward and backward, and updates the
 * parameters with the learning rate of the schedule at the current step.
 * *loss receives the weighted loss of the batch. Fails (YF_ERUN, nothing
 * updated) when the loss is not finite. */
int yf_train_step(yf_model *m, yf_dataset *d, const size_t *idx, int rows,
                  double *loss, yf_error *err);

/* Trains for spec's train.epochs, writing config.yaml, metrics.csv, log.txt
 * and checkpoint.safetensors (written to a temporary file, synced and
 * renamed after each epoch, before the metrics row that describes it).
 * The checkpoint records where training stands (epoch, position, random
 * numbers' step, optimizer state, metrics so far), so that a resumed run
 * ends bit-identical to one never interrupted. */
int yf_train(yf_model *m, yf_dataset *d, const yf_train_opts *opts,
             yf_error *err);

typedef struct yf_metric {
    char name[96];
    double value;
    /* a loss term: its weight in the loss (0 for a term reported only);
     * the loss itself and metrics: NAN */
    double weight;
} yf_metric;

/* Evaluates the loss (its total, then each term) and the metrics
 * (accuracy, mean activations) on a split, without noise or dropout.
 * Fills up to cap metrics; returns how many, or a negative code. */
int yf_evaluate(yf_model *m, yf_dataset *d, yf_split split, yf_metric *out,
                int cap, yf_error *err);

/* Writes layer `layer`'s outputs for every example of a split to `path`
 * as a float32 .npy file of shape (examples, ...), and the labels to
 * `labels_path` (int64 .npy) when it is not NULL. */
int yf_encode(yf_model *m, yf_dataset *d, yf_split split, const char *layer,
              const char *path, const char *labels_path, yf_error *err);

/* ---- trained runs ---------------------------------------------------------------- */

/* A run folder written by yf_train, opened again: its resolved config, the
 * model with the checkpoint's parameters, and its data set. */
typedef struct yf_run {
    yf_spec *spec;
    yf_model *model;
    yf_dataset *data; /* NULL unless YF_RUN_DATA */
    /* what the checkpoint records of where training stood (epoch -1: it
     * does not say, written before these records): epochs finished,
     * examples into the next one (a run interrupted inside an epoch), the
     * optimizer step, and whether training finished (its epochs, or early
     * stopping); with early stopping best_epoch is the epoch it holds */
    int epoch, best_epoch, finished;
    size_t position;
    unsigned long long step;
} yf_run;
enum { YF_RUN_DATA = 1, /* load the data set too */
       YF_RUN_MEANS = 2 /* sample_normal layers give their mean (yf_spec_sample_means) */ };
/* Fills r (zeroed on failure) from dir/config.yaml and
 * dir/checkpoint.safetensors; a folder without config.yaml is refused as
 * not a run (YF_EUSAGE). */
int yf_run_open(yf_run *r, const char *dir, int threads, int flags, yf_error *err);
/* yf_run_open reading the data from data_dir (when not NULL) instead of
 * where the run's config says: the run's data moved, or `--data DIR`. */
int yf_run_open_data(yf_run *r, const char *dir, int threads, int flags, const char *data_dir,
                     yf_error *err);
void yf_run_close(yf_run *r);

/* ---- running the model on given values, pictures, samples ------------------ */

/* Floats per example of layer `layer` (or of the input: its name or NULL), and
 * its shape in ndim, dims (up to 8) when not NULL; 0 when there is none. */
size_t yf_model_layer_size(const yf_model *m, const char *layer, int *ndim, int *dims);
size_t yf_model_input_size(const yf_model *m);

/* Examples first .. first + n of a split as floats in [0, 1] (n × the
 * image size) and their labels (either output may be NULL). */
int yf_dataset_images(const yf_dataset *d, yf_split split, size_t first, size_t n, float *x,
                      int *labels, yf_error *err);
/* Writes a float32 .npy file of the given shape (C order), atomically. */
int yf_npy_save(const char *path, const float *data, const int64_t *shape, int ndim,
                yf_error *err);

/* Runs the model on rows examples whose layer `from` (NULL: the input)
 * holds in[rows × size], and writes layer `to`'s values to
 * out[rows × size(to)]. Only the nodes computed from `from` and needed by
 * `to` run, so a VAE's decoder runs from its code alone. training = 1 uses
 * the training graph (noise and dropout on); random layers draw from steps
 * step, step + 1, ... (one per batch). */
int yf_model_forward(yf_model *m, const char *from, const float *in, size_t rows,
                     const char *to, float *out, int training, uint64_t step, yf_error *err);

/* n images from a generative model (a sample_normal layer and a loss that
 * reconstructs the input): codes drawn from N(0, I) with the seed, decoded,
 * through a sigmoid when the loss takes logits. out: n × input size. */
int yf_sample(yf_model *m, size_t n, uint64_t seed, float *out, yf_error *err);

/* Class probabilities (softmax of the logits that feed the model's
 * softmax_cross_entropy) of n inputs: probs is n × classes. */
int yf_classify(yf_model *m, const float *x, size_t n, float *probs, yf_error *err);

/* How a classifier sees n images: the mean probability of its predicted
 * class, and the entropy (nats) and shares of the mix of classes it
 * predicts (log 10 = 2.303 when the ten classes are equally common). */
typedef struct yf_score {
    double top_prob, entropy, share[10];
    size_t n;
} yf_score;
int yf_score_images(yf_model *classifier, const float *x, size_t n, yf_score *out,
                    yf_error *err);

typedef struct yf_show_opts {
    int n;             /* images, units or rows (0: each picture's default) */
    int k;             /* top-activations: images per unit (0: 8) */
    const char *layer; /* the coding layer (NULL: the model's) */
    uint64_t seed;     /* samples: the draw (0: 1) */
} yf_show_opts;

/* Writes the compiled graph as Graphviz DOT: the training graph (forward
 * and the backward nodes autodiff appended) or, with training = 0, the
 * evaluation graph; each node with its op and shape. */
int yf_model_write_dot(const yf_model *m, FILE *out, int training);

/* A strip of test image `query` and training-file images items[0..n). */
typedef struct yf_show_strip_opts {
    size_t query;
    const uint32_t *items;
    size_t n;
} yf_show_strip_opts;
int yf_show_strip(yf_dataset *d, const yf_show_strip_opts *o, const char *path, yf_error *err);

/* The picture names yf_show knows, NULL-terminated. */
extern const char *const yf_show_pictures[];

/* Draws picture `what` of a trained model as a PNG file: reconstructions,
 * filters, top-activations, curves (from run_dir/metrics.csv), latent,
 * samples, interpolation, confusion, buckets (the largest buckets of
 * identical hash codes). o may be NULL. */
int yf_show(yf_model *m, yf_dataset *d, const char *run_dir, const char *what,
            const char *path, const yf_show_opts *o, yf_error *err);

/* ---- semantic hashing ------------------------------------------------------- */

/* Binary codes of 1 to 64 bits (bit b = unit b of the coding layer) for a
 * database (the training file's images) and queries (the test images). */
typedef struct yf_hash_index {
    int bits, classes;
    size_t n_db, n_query;
    uint64_t *db, *query;
    uint8_t *db_labels, *query_labels;
    double saturation; /* share of the queries' activations within 0.1 of 0 or 1;
                          NaN when the layer is not logistic */
    char layer[64], model[64];
} yf_hash_index;

/* Runs every training-file and test image through the model and rounds
 * layer `layer` (NULL: the spec's hash: {layer}) into codes: at 0.5 after a
 * logistic activation, else at 0. */
int yf_hash_build(yf_model *m, yf_dataset *d, const char *layer, yf_hash_index *ix,
                  yf_error *err);
/* The same with the database and queries from two splits of the spec's
 * data (cross-validation: the training folds against the held-out fold). */
int yf_hash_build_splits(yf_model *m, yf_dataset *d, const char *layer, yf_split db,
                         yf_split queries, yf_hash_index *ix, yf_error *err);
/* The index file (docs/hashing.md): written atomically; a truncated,
 * corrupt (CRC-32) or inconsistent file is refused (YF_EDATA). */
int yf_hash_index_save(const yf_hash_index *ix, const char *path, yf_error *err);
int yf_hash_index_load(yf_hash_index *ix, const char *path, yf_error *err);
void yf_hash_index_free(yf_hash_index *ix);
/* codes[i] from acts[i × bits ...]: bit b set when acts > threshold. */
void yf_hash_pack(const float *acts, size_t n, int bits, float threshold, uint64_t *codes);

/* What the codes are worth as a retrieval index, queries against the
 * database, "same label" relevant (as ../shared/reference/hash_metrics.py). */
typedef struct yf_hash_stats {
    int bits;
    size_t items, queries, distinct, largest;
    double saturation;
    double gini, purity;       /* buckets of identical codes, size-weighted */
    double gini_r1, purity_r1; /* Hamming balls of radius 1 around each query */
    double gini_r2, purity_r2; /* ... of radius 2 */
    double precision_r2;       /* share of same-label items within radius 2 (0 if none) */
    double map;                /* mean average precision, ranking by (distance, index) */
} yf_hash_stats;
int yf_hash_evaluate(const yf_hash_index *ix, size_t max_queries, int threads,
                     yf_hash_stats *st, yf_error *err);

/* Retrieval: distances of one query to n codes (a popcount scan), the
 * count within a radius, and a hash table of buckets for Hamming-ball
 * lookups (every code within the radius probed). */
void yf_hash_distances(const uint64_t *db, size_t n, uint64_t q, uint8_t *d);
size_t yf_hash_count_within(const uint64_t *db, size_t n, uint64_t q, int r);
/* count[j] = codes within r of q[j], for nq queries in one blocked pass. */
void yf_hash_count_within_many(const uint64_t *db, size_t n, const uint64_t *q, size_t nq, int r,
                               size_t *count);
typedef struct yf_hash_table yf_hash_table;
yf_hash_table *yf_hash_table_new(const uint64_t *codes, size_t n, yf_error *err);
void yf_hash_table_free(yf_hash_table *t);
size_t yf_hash_table_distinct(const yf_hash_table *t);
size_t yf_hash_table_largest(const yf_hash_table *t);
const uint32_t *yf_hash_bucket(const yf_hash_table *t, uint64_t code, size_t *n);
/* Calls visit for each non-empty bucket within radius of q (dist = its
 * distance); yf_hash_ball_items collects up to cap items and returns how
 * many there are. */
void yf_hash_ball(const yf_hash_table *t, uint64_t q, int bits, int radius,
                  void (*visit)(const uint32_t *items, size_t n, int dist, void *ctx), void *ctx);
size_t yf_hash_ball_items(const yf_hash_table *t, uint64_t q, int bits, int radius,
                          uint32_t *out, size_t cap);

/* ---- experiments ------------------------------------------------------------ */

typedef struct yf_experiment_opts {
    const char *out_dir; /* NULL: runs/<the experiment's name> */
    int threads;         /* for every model (0: all cores) */
    FILE *echo;          /* progress and the trainings' epochs (NULL: silent) */
    int bar;             /* live progress bars on echo */
    const char *data_dir; /* every model reads its data here (NULL: as its
                             spec says); not part of what a step's record
                             compares */
} yf_experiment_opts;

/* Runs an experiment file: its steps in order (train, show, sample,
 * encode), skipping those whose record says they finished from the same
 * inputs, then writes report.md in the experiment's folder. A failed step
 * stops the run (err names it); finished steps are kept, and running again
 * continues from the failed one. See docs/experiments.md. */
int yf_experiment_run(const char *path, const yf_experiment_opts *o, yf_error *err);

/* ---- checkpoints --------------------------------------------------------- */

/* safetensors: parameters by name ("hidden1.W"), optimizer state
 * ("optim.m.hidden1.W"...) and the step counter in the metadata. */
int yf_checkpoint_save(yf_model *m, const char *path, yf_error *err);
/* Loads parameters (and optimizer state when present and with_optim). Shapes
 * and names must match the model; on any error the model is unchanged. */
int yf_checkpoint_load(yf_model *m, const char *path, int with_optim,
                       yf_error *err);

/* ---- the runtime ----------------------------------------------------------- */

typedef struct yf_runtime_info {
    char blis_version[32];
    char blis_arch[32];      /* kernel set in use */
    char blis_arch_detected[32]; /* what BLIS would pick by itself */
    char arch_source[64];    /* "BLIS_ARCH_TYPE from the environment", ... */
    char cpu_features[128];
    int cores, omp_threads;
} yf_runtime_info;

/* Lets yaflow choose BLIS's kernel set, which matters on CPUs Debian's BLIS
 * does not know (it falls back to its generic kernels, 5x slower): asks BLIS
 * for its own choice in a short-lived child process (fork) and, when that
 * is `generic` on an AVX-512 or AVX2 CPU, sets BLIS_ARCH_TYPE in this
 * process's environment. A BLIS_ARCH_TYPE already set wins. Call it first,
 * from the main thread, before any model exists (the yaflow command does);
 * later it fails (YF_EUSAGE) and changes nothing. Without it the library
 * neither forks nor changes the environment, and BLIS chooses by itself. */
int yf_runtime_choose_kernels(yf_error *err);
/* Initialises BLIS (once per process); yf_model_new calls it. */
int yf_runtime_init(yf_error *err);
void yf_runtime_info_get(yf_runtime_info *info);

/* ---- several processes (MPI) ------------------------------------------ *
 * Started by mpirun (or another MPI launcher), `yaflow train` trains one
 * model in data parallel: every rank takes its share of each global batch
 * (train.batch_size), the gradients are summed over the ranks, and every
 * rank takes the same step. Rank 0 alone writes the run folder and
 * reports. Call yf_dist_init after yf_runtime_choose_kernels (which may
 * fork) and before anything else; outside an MPI launcher, or in a build
 * without MPI, it does nothing and the process is rank 0 of 1. */
int yf_dist_init(int *argc, char ***argv, yf_error *err);
void yf_dist_finalize(void);
int yf_dist_rank(void);
int yf_dist_size(void);
/* Ends every rank at once (MPI_Abort) with exit code `code`: for an error
 * one rank met alone, so that the others do not wait for it forever. */
void yf_dist_abort(int code);
/* Whether the last error yf_train returned was met by every rank alike (a
 * divergence, an interrupt, a checksum mismatch): then each rank returns
 * it and nothing needs to be aborted. */
int yf_dist_error_shared(void);
/* "Open MPI v4.1.4", or NULL in a build without MPI. */
const char *yf_dist_library(void);

#ifdef __cplusplus
}
#endif
#endif
