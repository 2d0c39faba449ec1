/* Internal interfaces of libyaflow: yf__* names are not part of the API. */
#ifndef YAFLOW_INTERNAL_H
#define YAFLOW_INTERNAL_H

#include "yaflow.h"

#include <stdarg.h>
#include <stdbool.h>

#define YF__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Floats of slack after every block BLIS may read: its small-matrix
 * kernels load whole vectors past the end of the last row (seen with
 * valgrind: up to 48 floats), which must stay inside our allocation. */
#define YF__SLACK 256

/* Element-wise loops are compiled three times (AVX-512, AVX2, baseline)
 * and the best for the CPU is picked at load time. */
#define YF__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* ---- errors (error.c) ------------------------------------------------------ */

typedef struct yf__node yf__node;

/* Sets err (if not NULL) and returns code. */
int yf__fail(yf_error *err, yf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As yf__fail, placing the error at a spec node (file:line:col, key path). */
int yf__fail_at(yf_error *err, const yf__node *at, yf_status code,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* As yf__fail, placing the error in a file without a line (data,
 * checkpoints). */
int yf__fail_file(yf_error *err, yf_status code, const char *path,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* "[784, 300]": dims[0..ndim) in buf. */
void yf__dims_str(const int *dims, int ndim, char *buf, size_t cap);
/* Edit distance (Levenshtein, a swap of neighbours counting as one edit),
 * for "did you mean" suggestions. */
int yf__edit_distance(const char *a, const char *b);
/* The closest candidate within a small distance, or NULL. */
const char *yf__closest(const char *word, const char *const *cands, int n);

/* ---- YAML trees with source positions (tree.c) ---------------------------- */

typedef enum { YF__SCALAR, YF__SEQ, YF__MAP } yf__kind;

/* A YAML node. Maps keep their keys in order: key[i] names kid[i]. Each
 * node knows its parent and its key path for error messages. The whole tree
 * is owned by its root; yf__tree_free frees it. */
struct yf__node {
    yf__kind kind;
    char *str;   /* scalar text */
    bool quoted; /* scalar was quoted in the source: always a string */
    const char *file; /* owned by the root's yf__tree */
    int line, col;
    int n, cap;
    yf__node **kid;
    char **key; /* maps only */
    int *kpos;  /* maps only: line, col of key i at kpos[2i], kpos[2i+1] */
    yf__node *parent;
};

typedef struct yf__tree {
    yf__node *root;
    char *file; /* name used in messages */
    char **extra; /* names of override sources, owned here */
    int n_extra;
} yf__tree;

yf__tree *yf__tree_parse(const char *text, size_t len, const char *file,
                         yf_error *err);
yf__tree *yf__tree_load(const char *path, yf_error *err);
void yf__tree_free(yf__tree *t);
/* Applies "a.b.c=value"; a sequence step may be an index or the name of a
 * map element ("model.layers.coding.units=20"). */
int yf__tree_override(yf__tree *t, const char *assignment, yf_error *err);
yf__node *yf__map_get(const yf__node *map, const char *key);
/* Sets map[key] = a new scalar; returns it. */
yf__node *yf__map_set_scalar(yf__node *map, const char *key, const char *val);
yf__node *yf__map_set_node(yf__node *map, const char *key, yf__node *val);
yf__node *yf__node_new(yf__kind kind, const char *file, int line, int col);
void yf__node_free(yf__node *n);
/* 0, or -1 when out of memory (kid is then freed). */
int yf__seq_push(yf__node *seq, yf__node *kid);
/* "model.layers[2].units" */
void yf__node_path(const yf__node *n, char *buf, size_t cap);
void yf__tree_emit(const yf__node *n, FILE *out);
/* yf__tree_emit, leaving out the map entry whose value is skip. */
void yf__tree_emit_except(const yf__node *n, const yf__node *skip, FILE *out);
/* A node on one line, in YAML flow style (as an override's value). */
void yf__tree_emit_flow(const yf__node *n, FILE *out);

/* ---- specs (spec.c) -------------------------------------------------------- */

#define YF__NAME_MAX 64
#define YF__MAX_INPUTS 8
#define YF__MAX_DIMS 4
#define YF__MAX_TERMS 16   /* loss terms, and metrics, per spec */

#define YF_ACTIVATIONS(XX)                                                  \
    XX(LINEAR, linear) XX(RELU, relu) XX(ELU, elu) XX(SELU, selu)           \
    XX(LEAKY_RELU, leaky_relu) XX(SIGMOID, sigmoid) XX(TANH, tanh)          \
    XX(SOFTMAX, softmax)

typedef enum {
#define XX(e, s) YF_ACT_##e,
    YF_ACTIVATIONS(XX)
#undef XX
    YF_ACT_COUNT
} yf__act;

#define YF_INITS(XX)                                                        \
    XX(GLOROT_UNIFORM, glorot_uniform) XX(HE_NORMAL, he_normal) XX(ZEROS, zeros) \
    XX(LECUN_NORMAL, lecun_normal) XX(LECUN_UNIFORM, lecun_uniform)            \
    XX(FAN_IN_UNIFORM, fan_in_uniform) XX(ONES, ones) XX(HE_UNIFORM, he_uniform)       \
    XX(GLOROT_NORMAL, glorot_normal) XX(ORTHOGONAL, orthogonal) XX(CONSTANT, constant)

typedef enum {
#define XX(e, s) YF_INIT_##e,
    YF_INITS(XX)
#undef XX
} yf__init;

/* Layer types: XX(enum, yaml name). */
#define YF_LAYER_TYPES(XX)                                                  \
    XX(DENSE, dense) XX(ACTIVATION, activation)                             \
    XX(GAUSSIAN_NOISE, gaussian_noise) XX(DROPOUT, dropout)                 \
    XX(SAMPLE_NORMAL, sample_normal) XX(CONCAT, concat) XX(ADD, add)        \
    XX(MULTIPLY, multiply) XX(SCALE, scale) XX(CONV2D, conv2d)              \
    XX(MAX_POOL, max_pool) XX(AVG_POOL, avg_pool)                           \
    XX(GLOBAL_AVG_POOL, global_avg_pool) XX(FLATTEN, flatten)               \
    XX(RESHAPE, reshape) XX(UPSAMPLE, upsample) XX(BATCH_NORM, batch_norm)   \
    XX(CONV2D_TRANSPOSE, conv2d_transpose) XX(RANDOM_SHIFT, random_shift)

typedef enum {
#define XX(e, s) YF_LAYER_##e,
    YF_LAYER_TYPES(XX)
#undef XX
} yf__layer_type;

/* Loss types: XX(enum, yaml name, op). */
#define YF_LOSS_TYPES(XX)                                                   \
    XX(MSE, mse) XX(SIGMOID_CE, sigmoid_cross_entropy) XX(L2, l2)           \
    XX(SOFTMAX_CE, softmax_cross_entropy) XX(KL_NORMAL, kl_normal)          \
    XX(KL_SPARSITY, kl_sparsity) XX(L1, l1)

typedef enum {
#define XX(e, s) YF_LOSS_##e,
    YF_LOSS_TYPES(XX)
#undef XX
} yf__loss_type;

/* Metrics: evaluated and averaged, never differentiated. */
#define YF_METRIC_TYPES(XX) XX(ACCURACY, accuracy) XX(MEAN_ACTIVATION, mean_activation)

typedef enum {
#define XX(e, s) YF_METRIC_##e,
    YF_METRIC_TYPES(XX)
#undef XX
} yf__metric_type;

#define YF_OPTIMIZERS(XX) XX(SGD, sgd) XX(MOMENTUM, momentum) XX(ADAM, adam)

typedef enum {
#define XX(e, s) YF_OPTIM_##e,
    YF_OPTIMIZERS(XX)
#undef XX
} yf__optim_type;

#define YF_SCHEDULES(XX) XX(CONSTANT, constant) XX(STEP, step) XX(EXPONENTIAL, exponential) \
    XX(COSINE, cosine)

typedef enum {
#define XX(e, s) YF_SCHED_##e,
    YF_SCHEDULES(XX)
#undef XX
} yf__sched_type;

/* Window geometry of a convolution or pooling: kernel, stride, padding
 * (top/left; bottom/right follow from the output size), dilation, groups. */
typedef struct yf__window {
    int kh, kw, sh, sw, ph, pw, dh, dw, groups;
    bool same; /* padding: same (computed from the input at compile time) */
} yf__window;

typedef struct yf__layer_spec {
    const yf__node *at; /* the layer's map, for errors */
    char name[YF__NAME_MAX];
    yf__layer_type type;
    int n_inputs;
    char inputs[YF__MAX_INPUTS][YF__NAME_MAX];
    const yf__node *inputs_at;
    /* dense */
    int units;
    yf__act activation;
    float alpha; /* elu / leaky_relu */
    yf__init init, bias_init;
    float init_value, bias_value; /* init: constant's value, bias_init: constant's */
    char weights[YF__NAME_MAX]; /* shared weight "layer.W", or "" */
    bool weights_transposed;
    const yf__node *weights_at;
    bool use_bias, trainable;
    /* noise */
    float stddev, rate;
    /* sample_normal: inputs[0] = mean, inputs[1] = log_var */
    bool eval_mean; /* evaluation graph uses the mean, not a sample */
    /* scale */
    float factor;
    /* conv2d (filters in units), pooling, upsample (factor in win.sh, sw),
     * random_shift (the largest shift in win.ph, pw) */
    yf__window win;
    /* reshape */
    int shape[YF__MAX_DIMS], shape_ndim;
    /* batch_norm: running = (1 − momentum)·running + momentum·batch */
    float momentum, epsilon;
} yf__layer_spec;

typedef struct yf__loss_spec {
    const yf__node *at;
    yf__loss_type type;
    char input[YF__NAME_MAX], target[YF__NAME_MAX]; /* kl_normal: mean, log_var */
    float weight;
    float rho; /* kl_sparsity's target mean activation */
    bool reduce_sum; /* sum over features, mean over examples */
    int n_params;
    char (*params)[YF__NAME_MAX];
    const yf__node *params_at;
} yf__loss_spec;

typedef struct yf__metric_spec {
    const yf__node *at;
    yf__metric_type type;
    char input[YF__NAME_MAX], target[YF__NAME_MAX];
} yf__metric_spec;

typedef struct yf__optim_spec {
    yf__optim_type type;
    float lr, momentum, beta1, beta2, epsilon, weight_decay;
    bool nesterov;
} yf__optim_spec;

typedef struct yf__schedule_spec {
    yf__sched_type type;
    double warmup_epochs;
    double step_epochs, gamma; /* step: ×gamma every step_epochs; exponential: ×gamma per epoch */
    double min_lr;             /* cosine: the floor reached at the last epoch */
} yf__schedule_spec;

typedef struct yf__stop_spec {
    bool on;
    char metric[YF__NAME_MAX]; /* a metrics.csv column: valid_loss, valid_accuracy, ... */
    bool maximize;
    int patience;
    double min_delta;
    const yf__node *at;
} yf__stop_spec;

/* init: {from, layers} (or a list of them): layer `to` takes the
 * parameters of layer `from` of source `src`. */
typedef struct yf__init_pair {
    char to[YF__NAME_MAX], from[YF__NAME_MAX];
    int src;
    const yf__node *at;
} yf__init_pair;

typedef struct yf__init_src {
    char from[1024]; /* a run folder or a .safetensors file */
    const yf__node *at;
} yf__init_src;

struct yf_spec {
    yf__tree *tree;
    char name[YF__NAME_MAX];
    uint64_t seed;
    /* data */
    char source[32];
    char data_dir[512];   /* absolute once parsed (relative ones resolved) */
    int log_every;        /* train.log_every: steps between steps.csv rows (0: none) */
    char file_dir[512];   /* the spec file's folder ("" for a spec given as text) */
    long valid;
    double train_fraction;
    long train_count; /* 0: not set */
    int folds, fold;  /* k-fold cross-validation (folds 0: none) */
    const yf__node *data_at;
    /* init */
    int n_init_src;
    yf__init_src *init_src;
    int n_init;
    yf__init_pair *init;
    char hash_layer[YF__NAME_MAX]; /* hash: {layer}, or "" */
    /* model */
    char input_name[YF__NAME_MAX];
    int input_shape[YF__MAX_DIMS], input_ndim;
    const yf__node *input_at;
    char labels_name[YF__NAME_MAX]; /* "" when the model has no labels */
    int classes;
    const yf__node *labels_at;
    int n_layers;
    yf__layer_spec *layers;
    int n_losses;
    yf__loss_spec *losses;
    int n_metrics;
    yf__metric_spec *metrics;
    /* train */
    yf__optim_spec optim;
    yf__schedule_spec schedule;
    yf__stop_spec stop;
    int batch_size, epochs;
    const yf__node *batch_at;
};

/* ---- graphs (compile.c, autodiff.c, plan.c, sched.c) ---------------------- */

typedef enum {
#define YF_OP(e, name, fwd, bwd) YF_OP_##e,
#include "ops/ops.def"
#undef YF_OP
    YF_OP_COUNT
} yf__op;

extern const char *const yf__op_names[YF_OP_COUNT];

/* What a graph input is fed from. */
typedef enum { YF__FEED_IMAGES, YF__FEED_LABELS } yf__feed;

typedef enum { YF__F32, YF__I32 } yf__dtype;

/* One node of a graph. Shapes are per example ([C, H, W] or [features]);
 * per_row nodes hold max_rows examples, batch first; the others (parameters,
 * loss values, metrics) hold `size` values. */
typedef struct yf__gnode {
    yf__op op;
    int n_in;
    int in[YF__MAX_INPUTS];
    int after; /* an extra ordering dependency (-1: none) */
    char name[2 * YF__NAME_MAX];
    const yf__node *at; /* where the user wrote it */
    int ndim, dims[YF__MAX_DIMS];
    size_t size;
    yf__dtype dtype; /* I32 for labels; 4 bytes either way */
    bool per_row;
    bool needs_grad;
    bool keep; /* output read after the run: never reused */
    int grad;  /* node holding d(loss)/d(this), -1 if none */
    /* attributes */
    int act;
    float alpha, stddev, rate, weight, factor, rho;
    yf__window win;  /* conv2d, pooling, upsample */
    float momentum, epsilon; /* batch_norm */
    bool trans;      /* dense: y = x·Wᵀ */
    bool accumulate; /* writes into a parameter gradient: beta = 1 */
    bool reduce_sum;
    bool use_mean;   /* sample_normal: output the mean (evaluation) */
    int slot;        /* gradient ops: which input of the source this is for;
                        concat: the first feature of this input */
    int param;       /* param nodes: index in the model's param table */
    int grad_of;     /* parameter whose gradient block this node writes, or -1 */
    int state;       /* node saved by this one for its backward (-1: none) */
    int owner;       /* state nodes: the node that writes them */
    int stream;      /* random stream */
    int term;        /* loss nodes: index of the spec's loss term */
    int metric;      /* metric nodes: index in the graph's metric list */
    int fused;       /* loss nodes: the activation whose logits they take, or -1 */
    /* set by the plan (yf__plan): an element-wise node folded into its
     * producer's kernel, which applies it row by row while the rows are
     * still in cache; the folded node shares the producer's buffer and
     * its own kernel does nothing */
    int epi;         /* the node this one's kernel also computes (-1: none) */
    /* and two folds made only when the run has one thread (exec.team),
     * where they keep the order of a sum, so the bits are the same: */
    int colsum;      /* a dense_db node whose column sums of this node's
                        output this kernel adds, row by row (-1: none) */
    int sum_into;    /* mse_grad: the mse loss node it also computes (-1) */
    bool folded;     /* computed by another node's kernel (on one thread
                        only, for colsum and sum_into targets) */
    yf__feed feed;   /* input nodes */
    /* placement */
    int level;
    size_t offset; /* in the arena, for per_row nodes */
    float *buf;
} yf__gnode;

typedef struct yf__param {
    char name[2 * YF__NAME_MAX]; /* "hidden1.W" */
    int ndim, dims[YF__MAX_DIMS];
    size_t size, offset; /* in the parameter block */
    yf__init init;
    float init_value; /* init: constant */
    int fan_in, fan_out;
    bool trainable;
    const yf__node *at;
} yf__param;

/* A metric of a graph: its node and the name it is reported under. */
typedef struct yf__gmetric {
    int node;
    char name[YF__NAME_MAX + 32];
} yf__gmetric;

typedef struct yf__graph {
    int n, cap;
    yf__gnode *node;
    bool training;
    int max_rows;
    int threads; /* the model's: scratch is sized per thread */
    /* plan */
    int n_levels;
    int *level_start; /* nodes sorted by level: order[level_start[l]..] */
    int *order;
    bool *side_by_side; /* per level: run its nodes one per worker */
    float *arena;
    size_t arena_floats, naive_floats;
    float *scalars; /* `size` floats for every non-per_row, non-param node */
    int *loss_node; /* loss nodes (an l2 term has one per parameter) */
    int n_loss;
    yf__gmetric metric[2 * YF__MAX_TERMS];
    int n_metric;
    int input_node, label_node; /* label_node -1 without labels */
    int *layer_node; /* the output node of spec layer i (-1: identity here) */
    int n_fwd; /* nodes below n_fwd are the forward graph */
    int *param_writer; /* autodiff: last node writing each parameter's gradient */
    double *prof_seconds; /* per node, when profiling */
    double prof_rows;     /* examples run while profiling */
    bool grads_bad; /* the last run wrote a non-finite parameter gradient */
} yf__graph;

/* A compile-time remark about the spec: kept on the model, printed by the
 * command line; --strict makes them errors. */
typedef struct yf__warning {
    char text[900]; /* "file:line:col: message" */
} yf__warning;

struct yf_model {
    const yf_spec *spec;
    int threads; /* at most this many; scratch and reductions are sized for it */
    int active;  /* the threads kernels use now, 1 to threads (train.c adapts it) */
    int n_params;
    yf__param *params;
    size_t param_floats;
    float *param_block, *grad_block;
    yf__graph train, eval;
    /* optimizer state: one block per moment */
    float *m_block, *v_block;
    int *optim_order; /* parameters, largest first (the optimizer's threads) */
    /* data parallel (dist.c): the gradient exchange, and the place of this
     * rank's rows in the global batch of the step being run */
    struct yf__exchange *xchg;
    int row0, batch_rows; /* batch_rows 0: the rows run are the whole batch */
    bool follower;        /* a rank other than the last: terms on parameters
                             alone (l2) count once, on the last rank, which
                             has rows in every step (rank 0 may have none) */
    uint64_t step;
    float lr; /* the learning rate of the next step (schedules change it) */
    int n_warn;
    yf__warning *warn;
};

typedef struct yf__exec {
    int rows;
    int threads; /* threads this node may use */
    int team;    /* threads of the whole run (m->active): folds that change
                    the order of a sum are only made when it is 1 */
    int row0;       /* the first row's place in the global batch (random
                       numbers are drawn by it, whichever rank runs it) */
    int batch_rows; /* rows of the global batch: losses are means over it */
    bool shared_terms; /* this process counts the terms on parameters alone */
    uint64_t seed, step;
    yf__graph *g;
} yf__exec;

typedef void (*yf__fwd_fn)(yf__gnode *n, const yf__exec *ex);

/* Runs body for rows [r0, r0 + nr) in each of ex->threads chunks of the R
 * rows (one chunk under 16 rows). Row-wise kernels split this way give the
 * same bits on any number of threads. */
#define YF__FOR_ROW_CHUNKS(ex, R, r0, nr, body)                             \
    do {                                                                    \
        int nt_ = (ex)->threads > 1 && (R) >= 16 ? (ex)->threads : 1;       \
        _Pragma("omp parallel for num_threads(nt_) if(nt_ > 1)")            \
        for (int t_ = 0; t_ < nt_; t_++) {                                  \
            size_t r0 = (size_t)(R) * t_ / nt_;                             \
            size_t nr = (size_t)(R) * (t_ + 1) / nt_ - r0;                  \
            body;                                                           \
        }                                                                   \
    } while (0)
/* Appends the backward nodes of node `id` given the gradient node `dy`
 * (dy < 0 for a loss term: d(total)/d(term) = 1). */
typedef int (*yf__bwd_fn)(yf__graph *g, int id, int dy, yf_error *err);

/* Prototypes of every op's kernel and backward builder, from the list. */
#define YF_OP(e, name, fwd, bwd)                                            \
    void fwd(yf__gnode *n, const yf__exec *ex);                             \
    int bwd(yf__graph *g, int id, int dy, yf_error *err);
#include "ops/ops.def"
#undef YF_OP

extern const yf__fwd_fn yf__op_fwd[YF_OP_COUNT];
/* The BLIS call alone of a dense, dense_dx or dense_dw node (bench/roofline
 * times them on a training step's own buffers). */
void yf__dense_sgemm(const yf__gnode *n, const yf__exec *ex);
extern const yf__bwd_fn yf__op_bwd[YF_OP_COUNT];

int yf__graph_add(yf__graph *g, yf__op op, const char *name, const yf__node *at,
                  yf_error *err);
/* Appends a per-row node of `size` floats per example reading in[0..n_in). */
int yf__graph_add_rows(yf__graph *g, yf__op op, const char *name, const yf__node *at,
                       const int *in, int n_in, size_t size, yf_error *err);
/* A gradient node for input `slot` of node `src`: per-row, shaped as that
 * input, reading in[0..n_in), with the source's attributes. */
int yf__grad_node(yf__graph *g, yf__op op, int src, int slot, const int *in, int n_in,
                  yf_error *err);
/* The gradient of node id's single input, if it needs one: a node of op
 * reading in[0..n_in), added to that input's gradient. Returns 0 or an
 * error code. */
int yf__input_grad(yf__graph *g, int id, yf__op op, const int *in, int n_in, yf_error *err);
/* A state node of `size` floats (per example when per_row) written by
 * `owner`'s kernel and read by backward nodes; the plan keeps it live from
 * the owner's level. */
int yf__state_node(yf__graph *g, int owner, size_t size, bool per_row, yf_error *err);
/* Records that `contrib` is a part of d(loss)/d(id): sets grad or sums. */
int yf__grad_accum(yf__graph *g, int id, int contrib, yf_error *err);
/* Builds the forward graph from the spec (training adds noise/dropout). */
int yf__compile(yf_model *m, yf__graph *g, bool training, yf_error *err);
int yf__autodiff(yf_model *m, yf__graph *g, yf_error *err);
int yf__plan(yf_model *m, yf__graph *g, yf_error *err);
/* Keeps node id's buffer to the end of the graph (its values outlive the
 * run), planning g again when it was not kept; on failure g, its plan and
 * the node are as they were. */
int yf__plan_keep(yf_model *m, yf__graph *g, int id, yf_error *err);
/* yf_checkpoint_load; with same_config, a checkpoint that records the hash
 * of another resolved config is refused (a run folder's config.yaml and
 * checkpoint must belong together). */
int yf__checkpoint_load(yf_model *m, const char *path, int with_optim, bool same_config,
                        yf_error *err);
/* Where training stands, recorded in a checkpoint's metadata so that
 * `train --resume` continues exactly: epochs finished, examples of the next
 * epoch done and the sum of their losses (a checkpoint taken on an
 * interrupt falls inside an epoch), early stopping's best so far, whether
 * the run finished, and metrics.csv's rows up to this point. */
typedef struct {
    int epoch;
    uint64_t step; /* read only: the step the checkpoint records */
    size_t position;
    double loss_sum, best;
    int best_epoch;
    bool finished;
    char *metrics;
} yf__progress;
/* yf_checkpoint_save, recording pr (when not NULL) too. */
int yf__checkpoint_save(yf_model *m, const char *path, const yf__progress *pr, yf_error *err);
/* Reads the progress a checkpoint records; free pr->metrics. */
int yf__checkpoint_progress(const char *path, yf__progress *pr, yf_error *err);
/* Tests only: called at points of a checkpoint save (1 header written,
 * 2 half the data, 3 before the rename, 4 after it), e.g. to kill the
 * process there. NULL in normal use. */
extern void (*yf__save_hook)(int stage);
/* Tests only: called by yf_train after each step (e.g. to ask it to stop
 * at an exact step). NULL in normal use. */
extern void (*yf__step_hook)(const yf_model *m);
/* The plural ending of a count: "%d thread%s", n, YF__S(n). */
#define YF__S(n) ((n) == 1 ? "" : "s")

/* Every allocation of the library goes through these (alloc.c). */
void *yf__malloc(size_t n);
void *yf__calloc(size_t n, size_t size);
void *yf__realloc(void *p, size_t n);
char *yf__strdup(const char *s);
char *yf__strndup(const char *s, size_t n);
void *yf__aligned_alloc(size_t align, size_t n);
/* Tests only: from now, allocation number nth fails (and every later one
 * too with persist); 0 turns failures off. yf__alloc_count: allocations
 * since then. */
void yf__alloc_fail(long nth, bool persist);
long yf__alloc_count(void);
/* This machine's memory in bytes (0 when unknown). */
double yf__physical_memory(void);
void yf__graph_free(yf__graph *g);
/* Runs every node; rows ≤ g->max_rows; step keys the random numbers. */
void yf__run_at(yf_model *m, yf__graph *g, int rows, uint64_t step);
/* Work beside a graph: it reads and writes nothing the graph does. */
typedef struct {
    void (*fn)(void *arg);
    void *arg;
} yf__aside;
/* yf__run with aside->fn run once (aside may be NULL): by the first worker
 * to finish its nodes of the last level when that level runs side by side
 * (the gap before the slowest one ends, where a worker would wait), else
 * after the graph. */
void yf__run_beside(yf_model *m, yf__graph *g, int rows, const yf__aside *aside);
/* Runs g again one node at a time and returns the first node (in the
 * order they run) whose output holds a NaN or an infinity, or -1. */
int yf__find_nonfinite(yf_model *m, yf__graph *g, int rows, uint64_t step);
/* FNV-1a of the resolved config without data.dir (checkpoint.c); 0 when
 * memory ran out. */
uint64_t yf__config_hash(const yf_spec *spec);
/* FNV-1a (64 bits) of n bytes, continuing hash h (0 to start). */
uint64_t yf__fnv1a(uint64_t h, const void *p, size_t n);
/* dist.c */
int yf__exchange_new(yf_model *m, yf_error *err);
void yf__exchange_free(yf_model *m);
void yf__exchange_start(yf_model *m);
void yf__exchange_done(yf_model *m, int param);
void yf__exchange_progress(yf_model *m);
void yf__exchange_finish(yf_model *m);
/* With the state shared by the ranks of one node (dist.c): this rank's
 * shard of the blocks (false when not shared), a barrier that also makes
 * the shared memory's writes seen, whether shared, and the end of training
 * reached by every rank. */
bool yf__exchange_shard(const yf_model *m, size_t *lo, size_t *hi);
void yf__exchange_sync(yf_model *m);
bool yf__exchange_shared(const yf_model *m);
bool yf__exchange_shm_refused(const yf_model *m); /* one machine, no shared memory to be had */
void yf__exchange_end(yf_model *m);
void yf__optim_range(yf_model *m, size_t lo, size_t hi);
void yf__dist_sum(double *v, int n);     /* over the ranks, in place */
bool yf__dist_same(uint64_t h);          /* every rank has this value */
void yf__dist_bcast(void *buf, size_t bytes); /* rank 0's to all */
void yf__dist_error_shared(bool shared);
/* Tests: plans made while this is set fold nothing and pair nothing
 * (yf__plan): every node at its earliest level, on its own. */
extern bool yf__plain_plan;
/* Whether x[0..n) are all finite. */
bool yf__finite(const float *x, size_t n);
/* yf__run_at with the model's optimizer step. */
void yf__run(yf_model *m, yf__graph *g, int rows);
/* A node writing into parameter p's gradient: chains it after the previous
 * writer and makes it accumulate. */
void yf__param_grad_writer(yf__graph *g, int id, int p);
double yf__node_flops(const yf__graph *g, const yf__gnode *n, int rows);
static inline float *yf__out(const yf__graph *g, int id) { return g->node[id].buf; }
/* Places the per-thread column scratch of conv node id. */
int yf__conv2d_scratch(yf__graph *g, int id, int threads, yf_error *err);
/* Adds a warning placed at `at` to the model: 0, or YF_ENOMEM. */
int yf__warn(yf_model *m, const yf__node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The spec's own checks that need the graph (lint.c): refusals and warnings
 * for specs that would train nothing useful. */
int yf__lint(yf_model *m, yf_error *err);
/* A loss term's name in metrics: its type, "_2", "_3" for repeats. */
void yf__term_name(const yf_spec *s, int t, char out[64]);
/* Random stream of a layer, from its name. */
int yf__stream_of(const char *name);

/* ---- kernels ---------------------------------------------------------------- */

/* exp(x) within 2 ulp for x in [-87, 88]; smaller inputs give e^-87.
 * Cephes' polynomial; n = round(x·log2 e) with the 1.5·2²³ trick so that
 * the loop needs no library call and vectorises. */
static inline float yf__expf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    union { float f; int32_t i; } t = {.f = x * 1.44269504088896341f + 12582912.0f};
    float n = t.f - 12582912.0f;
    int32_t ni = t.i - 0x4B400000;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } u = {.f = p};
    u.i += (int32_t)((uint32_t)ni << 23);
    return x != x ? x : u.f; /* NaN stays NaN */
}

/* log(1 + u) for u in [0, 1], within a few ulp: 2 atanh(u / (2 + u)) as an
 * odd series in s = u / (2 + u) ≤ 1/3, so that loops over it vectorise. */
static inline float yf__log1p_unit(float u)
{
    float s = u / (2.0f + u), s2 = s * s;
    float p = 1.0f / 15;
    p = p * s2 + 1.0f / 13;
    p = p * s2 + 1.0f / 11;
    p = p * s2 + 1.0f / 9;
    p = p * s2 + 1.0f / 7;
    p = p * s2 + 1.0f / 5;
    p = p * s2 + 1.0f / 3;
    return 2.0f * s * (p * s2 + 1.0f);
}


/* C[m,n] = alpha·op(A)·op(B) + beta·C, row-major, lda etc. are row strides. */
void yf__sgemm(bool ta, bool tb, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc, int threads);
/* The same through BLIS's microkernel with yaflow's packing and loops
 * (src/gemm.c): the same bits as bli_sgemm, or false when it leaves the
 * call to BLIS. */
bool yf__gemm_own(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc, int threads);
/* Which GEMMs go through it: those whose panel widths it packs faster
 * than BLIS (the default; YAFLOW_OWN_GEMM=0 in the environment sends every
 * GEMM to BLIS), none, or all it can do (tests/test_gemm.c) */
typedef enum { YF__GEMM_AUTO, YF__GEMM_BLIS, YF__GEMM_ALL } yf__gemm_mode;
yf__gemm_mode yf__gemm_set_mode(yf__gemm_mode m); /* the mode it was */
/* FTZ/DAZ in the calling thread and `threads` OpenMP workers. */
void yf__flush_denormals(int threads);
/* Flush-to-zero for the duration of a library call, in the calling thread:
 * YF__FTZ_SCOPE at the top of an entry point sets FTZ and DAZ and puts the
 * caller's floating-point mode back when the function returns. */
unsigned yf__ftz_enter(void);
void yf__ftz_leave(unsigned *saved);
#define YF__FTZ_SCOPE                                                                    \
    unsigned yf__saved_csr __attribute__((cleanup(yf__ftz_leave), unused)) = yf__ftz_enter()
/* db[0..C) += the R rows of dy, one after the other (dense_db's sum) */
void yf__colsum(float *db, const float *dy, size_t R, size_t C);
void yf__act_forward(int act, float alpha, const float *x, float *y,
                     size_t rows, size_t cols);
void yf__act_backward(int act, float alpha, const float *y, const float *dy,
                      float *dx, size_t rows, size_t cols);

/* ---- random numbers (rng.c) ------------------------------------------------- */

/* Philox4x32-10: 4 random words for (seed, stream, step, index). */
void yf__philox(uint64_t seed, uint32_t stream, uint64_t step, uint32_t index,
                uint32_t out[4]);
/* Fills n floats; element i depends only on (seed, stream, step, i)
 * (word (i % 256) / 64 of counter 64·(i / 256) + i % 64). */
void yf__rand_normal(uint64_t seed, uint32_t stream, uint64_t step,
                     float *out, size_t n, float mean, float stddev);
void yf__rand_uniform(uint64_t seed, uint32_t stream, uint64_t step,
                      float *out, size_t n, float lo, float hi);
/* values first .. first + n of the same sequences */
void yf__rand_normal_at(uint64_t seed, uint32_t stream, uint64_t step, size_t first,
                        float *out, size_t n, float mean, float stddev);
void yf__rand_uniform_at(uint64_t seed, uint32_t stream, uint64_t step, size_t first,
                         float *out, size_t n, float lo, float hi);
/* Random streams used outside graphs. */
enum { YF__STREAM_INIT = 1, YF__STREAM_SHUFFLE = 2, YF__STREAM_SUBSET = 3, YF__STREAM_SAMPLE = 4,
       YF__STREAM_FOLDS = 5,
       YF__STREAM_NODE0 = 100 };

/* ---- optimisers (optim.c) ------------------------------------------------------ */

/* One update with learning rate m->lr. */
void yf__optim_param(yf_model *m, int i);
void yf__optim_step(yf_model *m);
/* The schedule's learning rate at fractional epoch e (0 at the start). */
float yf__schedule_lr(const yf_spec *s, double e);
/* init source i as a checkpoint path; returns whether that file exists. */
int yf__init_path(const yf_spec *s, int i, char *path, size_t cap);

/* ---- data (data/) --------------------------------------------------------- */

typedef struct yf__idx {
    int ndim;
    uint32_t dims[4];
    size_t count, item; /* items and bytes per item */
    uint8_t *data;
} yf__idx;

/* Reads an IDX file (plain or gzip). expect_ndim: 3 for images, 1 labels. */
int yf__idx_read(const char *path, int expect_ndim, yf__idx *out,
                 yf_error *err);
void yf__idx_free(yf__idx *idx);

struct yf_dataset {
    yf__idx train_x, train_y, test_x, test_y;
    size_t n_train, n_valid; /* valid = last n_valid of the training file */
    size_t *valid_rows; /* with data.folds: the validation fold's rows; else
                           NULL (the last n_valid rows of the file) */
    size_t *train_rows; /* the training examples used: rows of the training
                           file, a seeded class-stratified subset when
                           data.train_fraction or data.train_count is set */
    size_t dim;
};

/* The row of the IDX files behind example i of a split. */
size_t yf__row_of(const yf_dataset *d, yf_split split, size_t i);
/* Fills a graph's inputs with examples idx[0..n) of a split: the images as
 * floats in [0, 1] (n, dim), and the labels as int32 when the graph has a
 * label input. */
/* yf__gather with the rows split among threads */
void yf__gather_threads(const yf_dataset *d, yf_split split, const size_t *idx, int n,
                        yf__graph *g, int threads);
void yf__gather(const yf_dataset *d, yf_split split, const size_t *idx, int n,
                yf__graph *g);
void yf__prefetch(const yf_dataset *d, yf_split split, const size_t *idx, int n);
/* The fold (0 .. spec->folds − 1) of every row of the training file, as
 * data.folds assigns them: stratified by class, seeded, disjoint. */
int yf__fold_of_rows(const yf_dataset *d, const yf_spec *spec, int *fold, yf_error *err);
/* Copies examples first .. first + n of a split: images as floats in
 * [0, 1] (n, dim) into x, labels into y (either may be NULL). */
void yf__split_rows(const yf_dataset *d, yf_split split, size_t first, size_t n, float *x,
                    int *y);
/* The same for rows first .. first + n of the training file (all of it,
 * validation and unused rows too) or of the test file. */
void yf__file_rows(const yf_dataset *d, bool test, size_t first, size_t n, float *x, int *y);

/* "reconstructions, filters, ...": the pictures yf_show draws (show.c). */
const char *yf__picture_names(void);

/* ---- running part of a graph (forward.c) ----------------------------------- */

/* The node of g holding layer `name`'s output (or the input's), or -1. */
int yf__layer_node(const yf_model *m, const yf__graph *g, const char *name);
/* Runs the nodes of g computed from node `from` and needed by node `to`,
 * on rows examples whose `from` values are in[], in batches of g's
 * max_rows; copies `to`'s values to out[]. Random nodes draw from steps
 * step, step + 1, ... (one per batch). */
int yf__forward(yf_model *m, yf__graph *g, int from, const float *in, size_t rows, int to,
                float *out, uint64_t step, yf_error *err);

/* ---- experiments (experiment.c) ----------------------------------------------- */

/* The checks yf_experiment_run makes before it runs anything (the file,
 * every step, every train step's spec compiled, every tune trial, every
 * ${step} reference), without running or writing anything. */
int yf__experiment_check(const char *path, yf_error *err);

/* ---- NumPy files (npy.c) ---------------------------------------------------- */

/* Writes a .npy file (format 1.0, C order) atomically: descr is "<f4",
 * "<i8" ...; data holds prod(shape) items of that type. */
int yf__npy_write(const char *path, const char *descr, const int64_t *shape, int ndim,
                  const void *data, size_t item, yf_error *err);

/* ---- small JSON reader for safetensors headers (json.c) ------------------- */

typedef struct yf__json yf__json;
struct yf__json {
    enum { YF__J_NULL, YF__J_NUM, YF__J_STR, YF__J_ARR, YF__J_OBJ, YF__J_BOOL } t;
    double num;
    char *str;
    int n, cap;
    char **keys;
    yf__json *items;
};
/* Parses text[0..len); returns 0, or -1 with a message in msg, or -2 when
 * memory runs out. It never uses more than 16 bytes of memory per byte of
 * text (plus 4 KB): a hostile header is refused, not obeyed. */
int yf__json_parse(const char *text, size_t len, yf__json *out, char *msg,
                   size_t msgcap);
void yf__json_free(yf__json *j);
const yf__json *yf__json_get(const yf__json *obj, const char *key);

#endif
