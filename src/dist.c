/* Data-parallel training across processes with MPI (Open MPI, from the
 * distribution; never home-made networking).
 *
 * Every rank holds the whole model and the whole data set, and takes its
 * share of each global batch: rows lo .. hi of it, in the order a single
 * process would use (the same seeded shuffle). Its losses are divided by
 * the global batch's rows, so the sum of the ranks' gradients is the
 * gradient of the global batch. The gradient block is cut into buckets of
 * whole parameters, from its end (the layers the backward pass finishes
 * first); a bucket is summed over the ranks (MPI_Iallreduce) as soon as
 * the last node writing its parameters has run, and the scheduler lets MPI
 * progress between levels, so the sums of the upper layers travel while
 * the lower layers compute. Every rank then takes the same optimizer step.
 *
 * Only the thread that initialised MPI calls it (MPI_THREAD_FUNNELED): the
 * scheduler's bookkeeping runs between levels, on the calling thread.
 * Without MPI (./configure --without-mpi, or no Open MPI found) the same
 * functions exist and describe one process. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#if defined(HAVE_MPI) && !defined(YF_NO_MPI) /* the fuzz build has none */
#define YF_MPI 1
#include <mpi.h>
#endif

static int world_rank, world_size = 1;
#ifdef YF_MPI
static bool started; /* by yf_dist_init */
#endif

/* Launchers put these in the environment of the processes they start. */
static bool launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE",
                                       "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i]))
            return true;
    return false;
}

int yf_dist_init(int *argc, char ***argv, yf_error *err)
{
#ifdef YF_MPI
    if (started || !launched_by_mpi())
        return 0;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return yf__fail(err, YF_ERUN, "MPI_Init_thread failed");
    started = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (provided < MPI_THREAD_FUNNELED && world_size > 1)
        return yf__fail(err, YF_ERUN, "this MPI gives no thread support (MPI_THREAD_FUNNELED), "
                        "which yaflow's OpenMP threads need");
    return 0;
#else
    (void)argc, (void)argv;
    /* started as one of several processes, this build would train alone in
     * each, all into one folder */
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (!size)
        size = getenv("PMI_SIZE");
    if (launched_by_mpi() && size && atoi(size) > 1)
        return yf__fail(err, YF_EUSAGE, "this yaflow was built without MPI, so under mpirun "
                        "each of the %d processes would train alone: configure it --with-mpi "
                        "(Open MPI: apt-get install libopenmpi-dev openmpi-bin)", atoi(size));
    return 0;
#endif
}

void yf_dist_finalize(void)
{
#ifdef YF_MPI
    if (started)
        MPI_Finalize();
    started = false;
#endif
}

void yf_dist_abort(int code)
{
#ifdef YF_MPI
    if (started && world_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)code;
}

static bool shared_error;

void yf__dist_error_shared(bool shared) { shared_error = shared; }
int yf_dist_error_shared(void) { return shared_error; }

int yf_dist_rank(void) { return world_rank; }
int yf_dist_size(void) { return world_size; }

const char *yf_dist_library(void)
{
#ifdef YF_MPI
    static char version[MPI_MAX_LIBRARY_VERSION_STRING + 1];
    if (!version[0]) {
        int len = 0;
        MPI_Get_library_version(version, &len);
        char *nl = strpbrk(version, ",\n"); /* "Open MPI v4.1.4, package: ..." */
        if (nl)
            *nl = 0;
    }
    return version;
#else
    return NULL;
#endif
}

/* ---- the gradient exchange ------------------------------------------------------ */

#ifdef YF_MPI
typedef struct {
    size_t off, len;  /* floats of the gradient block */
    int waiting;      /* parameters whose last gradient writer has not run */
    int params;       /* with a gradient writer */
    MPI_Request req;  /* of buckets before x->next, which are sent */
} bucket;

struct yf__exchange {
    int n;
    bucket *b;
    int *bucket_of; /* per parameter */
    bool overlap;   /* buckets go as they are finished (else all at the end) */
    int next;       /* the next bucket to send: they go in their order on
                       every rank, as MPI requires of collectives (a rank
                       with no rows in a step sends them all at the end) */
    /* every rank on one node: one shared copy of the parameters and
     * moments, each rank's gradient readable by all (shared_state) */
    bool shm, ended;
    bool no_shm;      /* one machine, but MPI could not give the shared memory */
    MPI_Comm node;
    MPI_Win win;
    float **G;        /* per rank: its gradient block */
    size_t *lo, *hi;  /* per rank: its shard of the blocks */
    float *own[4];    /* the model's own blocks (parameters, gradient, moments) */
};

/* A bucket closes once it holds this many floats (1 MB): large enough for
 * the network's bandwidth, small enough that the first is sent early. */
enum { BUCKET_FLOATS = 256 * 1024 };

/* Ranks on one machine share one copy of the parameters and of the
 * optimizer's moments, in an MPI shared-memory window (rank 0's part), and
 * each rank's gradient block lives in its own part, where the others can
 * read it. A step then sums no gradient through MPI's buffers: after a
 * barrier each rank adds the others' blocks, in rank order, to its shard
 * of its own (a contiguous 1/N; the same sums on every run), the
 * ranks agree that no shard holds a NaN or an infinity (with the losses),
 * each updates its shard of the shared parameters and moments, and a
 * barrier makes the new parameters every rank's. Two ranks of one thread
 * went from 1.42-1.45 times one process (MPI_Allreduce of the block, then
 * the whole update on every rank) to 1.63-1.77 at the stacked
 * autoencoder's batch of 128 (docs/distributed.md). Used when every rank is on this
 * node and the buckets are not wanted; YAFLOW_MPI_SHM=0 (rank 0's
 * environment) keeps the sums in MPI_Allreduce. */
static int shared_state(yf_model *m, struct yf__exchange *x, yf_error *err)
{
    const char *env = getenv("YAFLOW_MPI_SHM");
    int want = !x->overlap && !(env && *env == '0');
    MPI_Bcast(&want, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!want)
        return 0;
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node);
    int nsize;
    MPI_Comm_size(node, &nsize);
    int all = nsize == world_size;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (!all) {
        MPI_Comm_free(&node);
        return 0;
    }
    size_t n = m->param_floats, stride = (n + YF__SLACK + 15) & ~(size_t)15;
    size_t *lo = yf__calloc(world_size, sizeof *lo), *hi = yf__calloc(world_size, sizeof *hi);
    float **G = yf__calloc(world_size, sizeof *G);
    int ok = lo && hi && G, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (!all_ok) {
        free(lo), free(hi), free(G);
        MPI_Comm_free(&node);
        yf__dist_error_shared(true); /* every rank knows it */
        return yf__fail(err, YF_ENOMEM, "out of memory");
    }
    /* rank 0's part: parameters, moments and its gradient; the others':
     * their gradient. Where MPI cannot give the shared memory (a small
     * /dev/shm, or Open MPI's osc/sm left out), the sums go through
     * MPI_Allreduce, as between machines, and the log says why. */
    MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN);
    float *base;
    MPI_Aint bytes = (MPI_Aint)((world_rank == 0 ? 4 : 1) * stride * sizeof(float));
    ok = MPI_Win_allocate_shared(bytes, sizeof(float), MPI_INFO_NULL, node, &base, &x->win) ==
         MPI_SUCCESS;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (!all_ok) { /* (a rank whose part was made keeps it until it ends:
                        freeing it would wait for the others) */
        free(lo), free(hi), free(G);
        MPI_Comm_free(&node);
        x->no_shm = true;
        return 0;
    }
    float *state = NULL;
    for (int r = 0; r < world_size; r++) {
        MPI_Aint size;
        int unit;
        float *p;
        MPI_Win_shared_query(x->win, r, &size, &unit, &p);
        if (r == 0)
            state = p, p += 3 * stride;
        G[r] = p;
        lo[r] = (n * r / world_size) & ~(size_t)15; /* whole vectors */
        hi[r] = r == world_size - 1 ? n : (n * (r + 1) / world_size) & ~(size_t)15;
    }
    MPI_Win_lock_all(MPI_MODE_NOCHECK, x->win);
    float *blocks[4] = {state, G[world_rank], state + stride, state + 2 * stride};
    float **mine[4] = {&m->param_block, &m->grad_block, &m->m_block, &m->v_block};
    for (int k = 0; k < 4; k++) {
        if (k != 1 && world_rank != 0)
            continue;
        memcpy(blocks[k], *mine[k], n * sizeof(float));
        memset(blocks[k] + n, 0, (stride - n) * sizeof(float));
    }
    for (int k = 0; k < 4; k++)
        x->own[k] = *mine[k], *mine[k] = blocks[k];
    x->G = G, x->lo = lo, x->hi = hi, x->node = node, x->shm = true;
    yf__exchange_sync(m);
    /* the graphs' buffers point into the blocks: plan them again */
    int rc = yf__plan(m, &m->train, err);
    if (!rc && m->eval.n > 0)
        rc = yf__plan(m, &m->eval, err);
    return rc;
}

void yf__exchange_sync(yf_model *m)
{
    struct yf__exchange *x = m->xchg;
    if (!x || !x->shm)
        return;
    MPI_Win_sync(x->win);
    MPI_Barrier(x->node);
    MPI_Win_sync(x->win);
}

bool yf__exchange_shared(const yf_model *m) { return m->xchg && m->xchg->shm; }

bool yf__exchange_shm_refused(const yf_model *m) { return m->xchg && m->xchg->no_shm; }

void yf__exchange_end(yf_model *m)
{
    if (m->xchg)
        m->xchg->ended = true;
}

int yf__exchange_new(yf_model *m, yf_error *err)
{
    if (world_size < 2 || m->xchg)
        return 0;
    struct yf__exchange *x = yf__calloc(1, sizeof *x);
    bucket *b = yf__calloc(m->n_params + 1, sizeof *b);
    int *of = yf__calloc(m->n_params + 1, sizeof *of);
    if (!x || !b || !of) {
        free(x), free(b), free(of);
        return yf__fail(err, YF_ENOMEM, "out of memory");
    }
    const yf__graph *g = &m->train;
    int n = 0;
    for (int p = m->n_params - 1; p >= 0; p--) { /* from the end of the block */
        const yf__param *q = &m->params[p];
        if (n == 0 || b[n - 1].len >= BUCKET_FLOATS)
            b[n++] = (bucket){.off = q->offset + q->size};
        bucket *c = &b[n - 1];
        c->len = c->off + c->len - q->offset; /* the same end, with any padding */
        c->off = q->offset;
        of[p] = n - 1;
        if (g->param_writer && g->param_writer[p] >= 0)
            c->params++;
    }
    x->n = n, x->b = b, x->bucket_of = of;
    /* Sending the buckets while the backward pass runs (MPI_Iallreduce,
     * progressed between levels) was measured slower than one blocking sum
     * after it, on this machine through shared memory (46k against 81k
     * examples/s, two ranks) and over TCP between two network namespaces
     * (30k against 40k at batch 128, 69k against 81k at 512): MPI's
     * nonblocking collectives progress only inside MPI calls, and the
     * copying is the same processors' work. So the blocking sum is the
     * default; YAFLOW_MPI_OVERLAP=1 sends the buckets as they are finished
     * (docs/distributed.md). Rank 0's choice holds for all. */
    const char *env = getenv("YAFLOW_MPI_OVERLAP");
    int overlap = env && *env && atoi(env) != 0;
    MPI_Bcast(&overlap, 1, MPI_INT, 0, MPI_COMM_WORLD);
    x->overlap = overlap;
    m->xchg = x;
    return shared_state(m, x, err);
}

bool yf__exchange_shard(const yf_model *m, size_t *lo, size_t *hi)
{
    const struct yf__exchange *x = m->xchg;
    if (!x || !x->shm)
        return false;
    *lo = x->lo[world_rank], *hi = x->hi[world_rank];
    return true;
}

void yf__exchange_free(yf_model *m)
{
    if (!m->xchg)
        return;
    struct yf__exchange *x = m->xchg;
    if (x->shm) {
        /* the model gets its own blocks back, with what they hold now */
        float **mine[4] = {&m->param_block, &m->grad_block, &m->m_block, &m->v_block};
        for (int k = 0; k < 4; k++) {
            memcpy(x->own[k], *mine[k], m->param_floats * sizeof(float));
            *mine[k] = x->own[k];
        }
        /* freeing the window is collective: only when every rank is here
         * (an error one rank met alone ends them all through MPI_Abort) */
        if (x->ended || yf_dist_error_shared()) {
            MPI_Win_unlock_all(x->win);
            MPI_Win_free(&x->win);
            MPI_Comm_free(&x->node);
        }
        free(x->G), free(x->lo), free(x->hi);
    }
    free(m->xchg->b);
    free(m->xchg->bucket_of);
    free(m->xchg);
    m->xchg = NULL;
}

/* Sends the buckets that are complete, in their order, up to the first
 * that is not (all of them when all is set). */
static void issue(struct yf__exchange *x, yf_model *m, bool all)
{
    for (; x->next < x->n && (all || x->b[x->next].waiting == 0); x->next++) {
        bucket *c = &x->b[x->next];
        MPI_Iallreduce(MPI_IN_PLACE, m->grad_block + c->off, (int)c->len, MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &c->req);
    }
}

void yf__exchange_start(yf_model *m)
{
    struct yf__exchange *x = m->xchg;
    if (!x || !x->overlap)
        return;
    for (int i = 0; i < x->n; i++)
        x->b[i].waiting = x->b[i].params;
    x->next = 0;
    issue(x, m, false); /* leading buckets with no gradient (frozen layers): zeros */
}

void yf__exchange_done(yf_model *m, int param)
{
    struct yf__exchange *x = m->xchg;
    if (!x)
        return;
    if (!x->overlap)
        return;
    x->b[x->bucket_of[param]].waiting--;
    issue(x, m, false);
}

void yf__exchange_progress(yf_model *m)
{
    struct yf__exchange *x = m->xchg;
    for (int i = 0; x && x->overlap && i < x->next; i++)
        if (x->b[i].req != MPI_REQUEST_NULL) {
            int flag;
            MPI_Test(&x->b[i].req, &flag, MPI_STATUS_IGNORE);
        }
}

void yf__exchange_finish(yf_model *m)
{
    struct yf__exchange *x = m->xchg;
    if (x && x->shm) {
        size_t lo = x->lo[world_rank], hi = x->hi[world_rank];
        yf__exchange_sync(m);
        float *g = m->grad_block; /* G[world_rank] */
        for (int r = 0; r < world_size; r++) {
            const float *o = x->G[r];
            if (r != world_rank)
                for (size_t i = lo; i < hi; i++)
                    g[i] += o[i];
        }
        return;
    }
    if (x && !x->overlap) { /* the whole block, now */
        for (size_t off = 0; off < m->param_floats; off += 1u << 30) {
            size_t len = m->param_floats - off < 1u << 30 ? m->param_floats - off : 1u << 30;
            MPI_Allreduce(MPI_IN_PLACE, m->grad_block + off, (int)len, MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD);
        }
        return;
    }
    if (!x)
        return;
    issue(x, m, true); /* a rank with no rows this step ran nothing */
    for (int i = 0; i < x->n; i++)
        MPI_Wait(&x->b[i].req, MPI_STATUS_IGNORE);
}

void yf__dist_sum(double *v, int n)
{
    if (world_size > 1)
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

bool yf__dist_same(uint64_t h)
{
    if (world_size < 2)
        return true;
    uint64_t lo = h, hi = h;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

void yf__dist_bcast(void *buf, size_t bytes)
{
    if (world_size < 2)
        return;
    for (size_t off = 0; off < bytes; off += 1 << 30) { /* counts are int */
        size_t len = bytes - off < (size_t)1 << 30 ? bytes - off : (size_t)1 << 30;
        MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}
#else
bool yf__exchange_shard(const yf_model *m, size_t *lo, size_t *hi) { (void)m, (void)lo, (void)hi; return false; }
void yf__exchange_sync(yf_model *m) { (void)m; }
bool yf__exchange_shared(const yf_model *m) { (void)m; return false; }
bool yf__exchange_shm_refused(const yf_model *m) { (void)m; return false; }
void yf__exchange_end(yf_model *m) { (void)m; }
int yf__exchange_new(yf_model *m, yf_error *err) { (void)m, (void)err; return 0; }
void yf__exchange_free(yf_model *m) { (void)m; }
void yf__exchange_start(yf_model *m) { (void)m; }
void yf__exchange_done(yf_model *m, int param) { (void)m, (void)param; }
void yf__exchange_progress(yf_model *m) { (void)m; }
void yf__exchange_finish(yf_model *m) { (void)m; }
void yf__dist_sum(double *v, int n) { (void)v, (void)n; }
bool yf__dist_same(uint64_t h) { (void)h; return true; }
void yf__dist_bcast(void *buf, size_t bytes) { (void)buf, (void)bytes; }
#endif
