/* picture.c, show.c, forward.c and experiment.c: the picture writers give
 * PNG files of the documented size with the documented pixels, and the
 * experiment runner chains runs through ${name}, skips what finished,
 * reruns what changed (and what depends on it), stops at a failed step
 * with nothing finished lost, and continues after it. */
#include "testutil.h"
#include "picture.h"

#include <cairo.h>

#define DIR "test_experiment.tmp"

/* A PNG read back with cairo: its size and the grey value at (x, y). */
typedef struct {
    cairo_surface_t *s;
    int w, h, stride;
    const unsigned char *px;
} png;

static png png_read(const char *path)
{
    png p = {.s = cairo_image_surface_create_from_png(path)};
    ck_assert_msg(cairo_surface_status(p.s) == CAIRO_STATUS_SUCCESS, "%s: %s", path,
                  cairo_status_to_string(cairo_surface_status(p.s)));
    p.w = cairo_image_surface_get_width(p.s);
    p.h = cairo_image_surface_get_height(p.s);
    p.stride = cairo_image_surface_get_stride(p.s);
    p.px = cairo_image_surface_get_data(p.s);
    return p;
}

static uint32_t rgb(const png *p, int x, int y)
{
    return ((const uint32_t *)(p->px + (size_t)y * p->stride))[x] & 0xffffff;
}

static uint32_t grey(int g) { return (uint32_t)(g << 16 | g << 8 | g); }

START_TEST(test_grid_pixels)
{
    tu_workdir(DIR "/grid");
    /* 2 rows × 3 columns of 2 × 2 tiles; tile t holds t/8 + i/40; tile 4
     * is empty (NaN) */
    float tiles[6 * 4];
    for (int t = 0; t < 6; t++)
        for (int i = 0; i < 4; i++)
            tiles[t * 4 + i] = t / 8.0f + i / 40.0f;
    tiles[4 * 4] = NAN;
    tiles[5 * 4 + 3] = 7; /* clamped to white */
    tiles[5 * 4 + 2] = -1; /* clamped to black */
    yf__grid g = {.rows = 2, .cols = 3, .th = 2, .tw = 2, .tiles = tiles, .scale = 2, .gap = 1};
    yf_error err = {0};
    ck_assert_msg(yf__grid_png(&g, DIR "/grid/g.png", &err) == 0, "%s", yf_error_format(&err));
    png p = png_read(DIR "/grid/g.png");
    /* gap + cols · (tw · scale + gap) */
    ck_assert_int_eq(p.w, 1 + 3 * (2 * 2 + 1));
    ck_assert_int_eq(p.h, 1 + 2 * (2 * 2 + 1));
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            int t = r * 3 + c, x = 1 + c * 5 + j * 2 + dx, y = 1 + r * 5 + i * 2 + dy;
                            float v = tiles[t * 4 + i * 2 + j];
                            uint32_t want = t == 4 ? grey(255)
                                            : grey((int)lrintf(fminf(fmaxf(v, 0), 1) * 255));
                            ck_assert_msg(rgb(&p, x, y) == want, "tile %d pixel (%d, %d) at (%d, %d): "
                                          "%06x, want %06x", t, i, j, x, y, rgb(&p, x, y), want);
                        }
    /* the gaps and the border are white */
    for (int y = 0; y < p.h; y++) {
        ck_assert_uint_eq(rgb(&p, 0, y), grey(255));
        ck_assert_uint_eq(rgb(&p, 5, y), grey(255));
    }
    for (int x = 0; x < p.w; x++)
        ck_assert_uint_eq(rgb(&p, x, 5), grey(255));
    cairo_surface_destroy(p.s);

    /* labels move the grid right and down by the room they take */
    const char *rows[2] = {"original", "reconstruction"};
    g.row_labels = rows;
    g.title = "a title";
    ck_assert(yf__grid_png(&g, DIR "/grid/labelled.png", &err) == 0);
    p = png_read(DIR "/grid/labelled.png");
    ck_assert_int_gt(p.w, 1 + 3 * 5);
    ck_assert_int_gt(p.h, 1 + 2 * 5);
    /* the last tile's last pixel keeps its value at the bottom right */
    ck_assert_uint_eq(rgb(&p, p.w - 2, p.h - 2), grey(255)); /* clamped 7 */
    cairo_surface_destroy(p.s);
}
END_TEST

START_TEST(test_plot_scatter_heatmap)
{
    tu_workdir(DIR "/plots");
    double x[5] = {1, 2, 3, 4, 5}, y1[5] = {1, 0.5, 0.3, 0.2, 0.15}, y2[5] = {1.1, 0.7, NAN, 0.4, 0.35};
    yf__series s[2] = {{"train_loss", x, y1, 5}, {"valid_loss", x, y2, 5}};
    yf__panel pn[2] = {{"loss", "epoch", "loss", s, 2, false}, {"log", "epoch", "loss", s, 1, true}};
    yf_error err = {0};
    ck_assert_msg(yf__plot_png(pn, 2, DIR "/plots/p.png", &err) == 0, "%s", yf_error_format(&err));
    png p = png_read(DIR "/plots/p.png");
    ck_assert_int_eq(p.w, 2 * 520);
    ck_assert_int_eq(p.h, 380);
    /* both series are drawn: pixels of the first two palette colours */
    int blue = 0, orange = 0;
    for (int yy = 0; yy < p.h; yy++)
        for (int xx = 0; xx < p.w; xx++) {
            uint32_t c = rgb(&p, xx, yy);
            blue += c == 0x1f77b4;
            orange += c == 0xff7f0e;
        }
    ck_assert_int_gt(blue, 100);
    ck_assert_int_gt(orange, 100);
    cairo_surface_destroy(p.s);

    float xy[8] = {0, 0, 1, 1, 2, 0.5f, NAN, 1};
    int cls[4] = {0, 1, 2, 3};
    ck_assert(yf__scatter_png(xy, cls, 4, 4, "t", "x", "y", DIR "/plots/s.png", &err) == 0);
    p = png_read(DIR "/plots/s.png");
    ck_assert_int_eq(p.w, 640);
    ck_assert_int_eq(p.h, 560);
    cairo_surface_destroy(p.s);

    double counts[4] = {9, 1, 2, 8};
    ck_assert(yf__heatmap_png(counts, 2, 2, "c", "true", "predicted", DIR "/plots/h.png", &err) == 0);
    p = png_read(DIR "/plots/h.png");
    ck_assert_int_eq(p.w, 80 + 2 * 44 + 20);
    ck_assert_int_eq(p.h, 70 + 2 * 44 + 20);
    cairo_surface_destroy(p.s);

    /* an unwritable path is an error, not a crash, and leaves nothing */
    ck_assert(yf__grid_png(&(yf__grid){.rows = 1, .cols = 1, .th = 1, .tw = 1,
                                       .tiles = (float[]){0.5f}, .scale = 1},
                           DIR "/plots/no/such/dir/x.png", &err) == YF_EIO);
    /* (cairo's reason, "error while writing to output stream", does not say
     * that the folder is missing) */
    static const char want[] = "cannot write " DIR "/plots/no/such/dir/x.png: ";
    ck_assert_msg(!strncmp(yf_error_format(&err), want, sizeof want - 1), "%s",
                  yf_error_format(&err));
}
END_TEST

/* ---- the experiment runner ------------------------------------------------------- */

/* The specs are written to DIR/exp/: a relative data.dir is relative to
 * the spec file's folder. */
static const char ae_spec[] =
    "name: tiny-ae\n"
    "seed: 42\n"
    "data: {source: mnist, dir: ../data, valid: 32}\n"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  layers:\n"
    "    - {name: noisy, type: gaussian_noise, stddev: 0.1}\n"
    "    - {name: hidden, type: dense, units: 16, activation: elu}\n"
    "    - {name: coding, type: dense, units: 4, activation: sigmoid}\n"
    "    - {name: h2, type: dense, units: 16, activation: elu}\n"
    "    - {name: out, type: dense, units: 64, activation: sigmoid}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: 1}\n";

static const char clf_spec[] =
    "name: tiny-clf\n"
    "seed: 7\n"
    "data: {source: mnist, dir: ../data, valid: 32}\n"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  labels: {name: y, classes: 4}\n"
    "  layers:\n"
    "    - {name: hidden, type: dense, units: 16, activation: elu}\n"
    "    - {name: logits, type: dense, units: 4}\n"
    "  loss:\n"
    "    - {type: softmax_cross_entropy, input: logits, target: y}\n"
    "  metrics: [accuracy]\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: 2}\n";

static const char vae_spec[] =
    "name: tiny-vae\n"
    "seed: 3\n"
    "data: {source: mnist, dir: ../data, valid: 0}\n"
    "model:\n"
    "  input: {name: x, shape: [64]}\n"
    "  layers:\n"
    "    - {name: enc, type: dense, units: 16, activation: elu}\n"
    "    - {name: mean, type: dense, units: 2}\n"
    "    - {name: log_var, type: dense, units: 2, input: enc}\n"
    "    - {name: z, type: sample_normal, mean: mean, log_var: log_var}\n"
    "    - {name: dec, type: dense, units: 16, activation: elu}\n"
    "    - {name: logits, type: dense, units: 64}\n"
    "  loss:\n"
    "    - {type: sigmoid_cross_entropy, input: logits, target: x, reduce: sum}\n"
    "    - {type: kl_normal, mean: mean, log_var: log_var}\n"
    "train: {optimizer: {type: adam, learning_rate: 0.01}, batch_size: 32, epochs: 2}\n";

/* The experiment: an autoencoder, a classifier reusing its lower layer
 * over two seeds, a VAE, and a step of each other kind. clf_epochs and
 * extra (a further override of the classifier) vary between runs. */
static void write_experiment(int ae_epochs, int clf_epochs, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof text,
             "name: tiny\n"
             "description: the runner's test\n"
             "metrics: [test_accuracy, test_loss]\n"
             "steps:\n"
             "  - name: ae\n"
             "    train: ae.yaml\n"
             "    set: {train.epochs: %d}\n"
             "  - show: ${ae}\n"
             "    pictures: [reconstructions, filters, top-activations, curves, latent]\n"
             "  - name: clf\n"
             "    train: clf.yaml\n"
             "    repeat: 2\n"
             "    set: {train.epochs: %d, init.from: \"${ae}\", init.layers: [hidden]%s}\n"
             "  - name: clf-pictures\n"
             "    show: ${clf}\n"
             "    pictures: confusion\n"
             "  - name: vae\n"
             "    train: vae.yaml\n"
             "  - {name: vae-pictures, show: \"${vae}\", pictures: [samples, interpolation, latent]}\n"
             "  - {name: gen, sample: \"${vae}\", n: 40, score: \"${clf}\"}\n"
             "  - {name: codes, encode: \"${vae}\", layer: mean, mean: true}\n",
             ae_epochs, clf_epochs, extra);
    tu_write(DIR "/exp/tiny.yaml", text, strlen(text));
}

static void setup_experiment(void)
{
    tu_workdir(DIR "/exp");
    tu_rmtree(DIR "/out");
    tu_write_dataset(DIR "/data", 224, 40, 8, false);
    tu_write(DIR "/exp/ae.yaml", ae_spec, strlen(ae_spec));
    tu_write(DIR "/exp/clf.yaml", clf_spec, strlen(clf_spec));
    tu_write(DIR "/exp/vae.yaml", vae_spec, strlen(vae_spec));
}

static int run_experiment(yf_error *err)
{
    yf_experiment_opts o = {.out_dir = DIR "/out", .threads = 1};
    memset(err, 0, sizeof *err);
    return yf_experiment_run(DIR "/exp/tiny.yaml", &o, err);
}

static struct timespec mtime(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "%s is missing", path);
    return st.st_mtim;
}

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

#define AE DIR "/out/ae/checkpoint.safetensors"
#define CLF1 DIR "/out/clf/seed-7/checkpoint.safetensors"
#define CLF2 DIR "/out/clf/seed-8/checkpoint.safetensors"
#define VAE DIR "/out/vae/checkpoint.safetensors"

START_TEST(test_chain_and_report)
{
    setup_experiment();
    write_experiment(1, 2, "");
    yf_error err;
    ck_assert_msg(run_experiment(&err) == 0, "%s", yf_error_format(&err));
    /* repeat: 2 trains seeds 7 and 8 (the model's seed and the next) */
    ck_assert(tu_exists(AE) && tu_exists(CLF1) && tu_exists(CLF2) && tu_exists(VAE));
    ck_assert(tu_exists(DIR "/out/clf/seed-8/done.yaml"));
    /* ${ae} became the autoencoder's folder in the classifier's config */
    size_t len;
    char *cfg = tu_read(DIR "/out/clf/seed-8/config.yaml", &len);
    ck_assert_msg(strstr(cfg, "from: \"" DIR "/out/ae\""), "%s", cfg);
    ck_assert_msg(strstr(cfg, "seed: 8"), "%s", cfg);
    free(cfg);
    /* every picture, and the samples and codes */
    static const char *const files[] = {
        "pictures/show-2-reconstructions.png", "pictures/show-2-filters.png",
        "pictures/show-2-top-activations.png", "pictures/show-2-curves.png",
        "pictures/show-2-latent.png", "pictures/clf-pictures-confusion.png",
        "pictures/vae-pictures-samples.png", "pictures/vae-pictures-interpolation.png",
        "pictures/vae-pictures-latent.png", "pictures/gen.png", "gen.npy", "codes.npy",
        "codes.labels.npy", "report.md"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, DIR "/out/%s", files[i]);
        ck_assert_msg(tu_exists(p), "%s is missing", p);
        if (strstr(p, ".png"))
            cairo_surface_destroy(png_read(p).s);
    }
    /* the reconstructions: original, noisy, reconstruction rows of 10 8×8
     * tiles at scale 2 */
    png p = png_read(DIR "/out/pictures/show-2-reconstructions.png");
    ck_assert_int_ge(p.w, 10 * (16 + 2));
    ck_assert_int_eq(p.h, 2 + 22 + 3 * (16 + 2));
    cairo_surface_destroy(p.s);
    /* the report: a row per train step, the mean ± sd of two seeds, the
     * samples' scores beside the test images', the pictures linked */
    char *rep = tu_read(DIR "/out/report.md", &len);
    ck_assert_msg(strstr(rep, "| run | seeds | test_accuracy | test_loss | train_seconds |"), "%s", rep);
    ck_assert_msg(strstr(rep, "| [clf](clf) | 7, 8 |"), "%s", rep);
    ck_assert_msg(strstr(rep, "| [ae](ae) | 42 | – |"), "%s", rep);
    char *row = strstr(rep, "| [clf](clf)");
    ck_assert_msg(row && strstr(row, " ± ") && strstr(row, "%"), "%s", rep);
    ck_assert_msg(strstr(rep, "| generated (step gen) | 40 |"), "%s", rep);
    ck_assert_msg(strstr(rep, "| real test images | 40 |"), "%s", rep);
    ck_assert_msg(strstr(rep, "](pictures/vae-pictures-samples.png)"), "%s", rep);
    ck_assert_msg(!strstr(rep, "Incomplete"), "%s", rep);
    free(rep);
}
END_TEST

START_TEST(test_skip_rerun_fail_continue)
{
    setup_experiment();
    write_experiment(1, 2, "");
    yf_error err;
    ck_assert_msg(run_experiment(&err) == 0, "%s", yf_error_format(&err));
    struct timespec ae = mtime(AE), c1 = mtime(CLF1), c2 = mtime(CLF2), vae = mtime(VAE);
    struct timespec pic = mtime(DIR "/out/pictures/show-2-filters.png");

    /* the same experiment again: everything skipped, nothing rewritten */
    ck_assert_msg(run_experiment(&err) == 0, "%s", yf_error_format(&err));
    ck_assert(same_time(ae, mtime(AE)) && same_time(c1, mtime(CLF1)) &&
              same_time(c2, mtime(CLF2)) && same_time(vae, mtime(VAE)));
    ck_assert(same_time(pic, mtime(DIR "/out/pictures/show-2-filters.png")));

    /* the classifier changed: it reruns, the others do not */
    write_experiment(1, 3, "");
    ck_assert_msg(run_experiment(&err) == 0, "%s", yf_error_format(&err));
    ck_assert(same_time(ae, mtime(AE)) && same_time(vae, mtime(VAE)));
    ck_assert(!same_time(c1, mtime(CLF1)) && !same_time(c2, mtime(CLF2)));
    c1 = mtime(CLF1), c2 = mtime(CLF2);
    size_t len;
    char *csv = tu_read(DIR "/out/clf/seed-7/metrics.csv", &len);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += csv[i] == '\n';
    ck_assert_int_eq(lines, 1 + 3); /* header and 3 epochs */
    free(csv);

    /* a step that fails when it runs (its data folder is missing): the
     * experiment stops naming it; the finished runs stay as they were */
    write_experiment(2, 3, ", data.dir: " DIR "/nowhere");
    int rc = run_experiment(&err);
    ck_assert_int_eq(rc, YF_EDATA);
    char cwd[1024], want[2600];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want,
             "%s/" DIR "/nowhere/train-images-idx3-ubyte: step 'clf' failed: missing mnist data "
             "file: data.dir is %s/" DIR "/nowhere (override 'data.dir=" DIR "/nowhere':1). ",
             cwd, cwd);
    ck_assert_msg(!strncmp(yf_error_format(&err), want, strlen(want)), "got: %s\nwant: %s...",
                  yf_error_format(&err), want);
    ck_assert(!same_time(ae, mtime(AE))); /* the autoencoder changed: rerun */
    ae = mtime(AE);
    ck_assert(tu_exists(DIR "/out/ae/done.yaml"));
    ck_assert(same_time(vae, mtime(VAE)));
    ck_assert(!tu_exists(DIR "/out/clf/seed-7/done.yaml"));
    char *rep = tu_read(DIR "/out/report.md", &len);
    ck_assert_msg(strstr(rep, "**Incomplete:** step 'clf' failed"), "%s", rep);
    free(rep);

    /* fixed and run again: it continues at the failed step; the
     * autoencoder that finished is not trained again */
    write_experiment(2, 3, "");
    ck_assert_msg(run_experiment(&err) == 0, "%s", yf_error_format(&err));
    ck_assert(same_time(ae, mtime(AE)) && same_time(vae, mtime(VAE)));
    ck_assert(tu_exists(DIR "/out/clf/seed-7/done.yaml"));
    /* the classifiers depend on the autoencoder, which changed: retrained */
    ck_assert(!same_time(c1, mtime(CLF1)));
    rep = tu_read(DIR "/out/report.md", &len);
    ck_assert_msg(!strstr(rep, "Incomplete"), "%s", rep);
    free(rep);
}
END_TEST

/* set: shared overrides through an anchor and a merge key; a key after
 * the merge wins */
START_TEST(test_merge_key)
{
    setup_experiment();
    const char *text = "name: tiny\n"
                       "steps:\n"
                       "  - name: a\n"
                       "    train: clf.yaml\n"
                       "    set: &shared {train.epochs: 1, model.layers.hidden.units: 12}\n"
                       "  - name: b\n"
                       "    train: clf.yaml\n"
                       "    set: {<<: *shared, model.layers.hidden.units: 9}\n";
    tu_write(DIR "/exp/tiny.yaml", text, strlen(text));
    yf_error err;
    ck_assert_msg(run_experiment(&err) == 0, "%s", yf_error_format(&err));
    size_t len;
    char *cfg = tu_read(DIR "/out/b/config.yaml", &len);
    ck_assert_msg(strstr(cfg, "epochs: 1") && strstr(cfg, "units: 9,"), "%s", cfg);
    free(cfg);
    cfg = tu_read(DIR "/out/a/config.yaml", &len);
    ck_assert_msg(strstr(cfg, "units: 12,"), "%s", cfg);
    free(cfg);
}
END_TEST

/* tune: a grid searched by 2-fold cross-validation on a hash metric, with
 * successive halving; the best config written as a spec and trained as the
 * step's run, which a hash step then indexes */
START_TEST(test_tune)
{
    setup_experiment();
    const char *text = "name: tiny\n"
                       "steps:\n"
                       "  - name: tuned\n"
                       "    tune: ae.yaml\n"
                       "    set: {train.epochs: 2}\n"
                       "    grid: {model.layers.hidden.units: [8, 16], model.layers.noisy.stddev: [0.1]}\n"
                       "    folds: 2\n"
                       "    metric: map\n"
                       "    layer: coding\n"
                       "    halving: {rungs: 2, eta: 2}\n"
                       "  - {name: codes, hash: \"${tuned}\", layer: coding}\n";
    tu_write(DIR "/exp/tiny.yaml", text, strlen(text));
    yf_error err;
    ck_assert_msg(run_experiment(&err) == 0, "%s", yf_error_format(&err));
    size_t len;
    char *md = tu_read(DIR "/out/tuned/tune.md", &len);
    ck_assert_msg(strstr(md, "2-fold cross-validation") && strstr(md, "| 1 |") &&
                  strstr(md, "| 2 |") && strstr(md, "stopped"), "%s", md);
    free(md);
    /* rung 1 trains each fold for 1 epoch (2 / 2), rung 2 for 2 */
    ck_assert(tu_exists(DIR "/out/tuned/trial-0/rung-0/fold-1/done.yaml"));
    ck_assert(tu_exists(DIR "/out/tuned/trial-1/rung-0/fold-0/done.yaml"));
    char *cfg = tu_read(DIR "/out/tuned/trial-0/rung-0/fold-1/config.yaml", &len);
    ck_assert_msg(strstr(cfg, "folds: 3") == NULL && strstr(cfg, "fold: 1") &&
                  strstr(cfg, "epochs: 1"), "%s", cfg);
    free(cfg);
    /* the best config loads as a spec, without the folds */
    yf_spec *best = yf_spec_load(DIR "/out/tuned/best.yaml", NULL, 0, &err);
    ck_assert_msg(best != NULL, "%s", yf_error_format(&err));
    yf_spec_free(best);
    cfg = tu_read(DIR "/out/tuned/best.yaml", &len);
    ck_assert_msg(!strstr(cfg, "folds:") && !strstr(cfg, "fold:"), "%s", cfg);
    free(cfg);
    ck_assert(tu_exists(DIR "/out/tuned/best/checkpoint.safetensors"));
    ck_assert(tu_exists(DIR "/out/codes.index"));
    char *rep = tu_read(DIR "/out/report.md", &len);
    ck_assert_msg(strstr(rep, "## Tuning") && strstr(rep, "## Hashing") &&
                  strstr(rep, "[tuned](tuned/best) (tuned)"), "%s", rep);
    free(rep);
    /* again: every fold's record is reused, nothing retrained */
    struct timespec t = mtime(DIR "/out/tuned/best/checkpoint.safetensors");
    ck_assert_msg(run_experiment(&err) == 0, "%s", yf_error_format(&err));
    ck_assert(same_time(t, mtime(DIR "/out/tuned/best/checkpoint.safetensors")));
}
END_TEST

static void expect_bad(const char *text, const char *want, int line)
{
    tu_write(DIR "/exp/tiny.yaml", text, strlen(text));
    yf_error err;
    ck_assert_int_eq(run_experiment(&err), YF_ESPEC);
    const char *msg = yf_error_format(&err);
    ck_assert_msg(strstr(msg, want), "got: %s\nwant: %s", msg, want);
    ck_assert_int_eq(err.line, line);
}

START_TEST(test_bad_experiments)
{
    setup_experiment();
    expect_bad("name: x\nsteps:\n  - {name: a, train: ae.yaml, repaet: 2}\n",
               "unknown key 'repaet' (did you mean 'repeat'?)", 3);
    expect_bad("name: x\nsteps:\n  - {name: a, train: ae.yaml}\n  - {show: \"${b}\", pictures: [curves]}\n",
               "${b} names no earlier train step", 4);
    expect_bad("name: x\nsteps:\n  - {show: \"${a}\", pictures: [curves]}\n  - {name: a, train: ae.yaml}\n",
               "is not an earlier step", 3);
    expect_bad("name: x\nsteps:\n  - {name: a, train: ae.yaml, set: {train.epochs: abc}}\n",
               "'epochs' must be an integer", 3);
    expect_bad("name: x\nsteps:\n  - {name: a, train: ae.yaml}\n  - {show: \"${a}\", pictures: [filtres]}\n",
               "did you mean 'filters'", 4);
    expect_bad("name: x\nsteps:\n  - {name: a, train: ae.yaml, repeat: 0}\n",
               "'repeat' must be an integer from 1 to 100", 3);
    expect_bad("name: x\nsteps:\n  - {train: ae.yaml}\n", "a train step needs a 'name'", 3);
    expect_bad("name: x\nsteps:\n  - {name: a, tune: ae.yaml, metric: map, grid: {train.epochs: [1]}}\n",
               "the metric 'map' needs hash codes", 3);
    expect_bad("name: x\nsteps:\n  - {name: a, tune: ae.yaml, metric: map}\n",
               "give 'grid' (every combination) or 'random'", 3);
    expect_bad("name: x\nsteps:\n  - {name: a, train: ae.yaml, set: {<<: 3}}\n",
               "'<<' merges a mapping of overrides", 3);
    expect_bad("name: x\nsteps:\n  - {name: a, train: missing.yaml}\n", "missing.yaml", 3);
    /* nothing ran: no folder for the experiment's runs */
    ck_assert(!tu_exists(DIR "/out/a"));
}
END_TEST

/* yf_model_forward from a VAE's code to its output equals the full
 * evaluation graph's output when the code is the mean. */
START_TEST(test_forward_from_code)
{
    tu_workdir(DIR "/fwd");
    tu_write_dataset(DIR "/data", 224, 40, 8, false);
    yf_spec *s = tu_spec(vae_spec, NULL, 0);
    yf_spec_sample_means(s);
    yf_error err = {0};
    yf_model *m = yf_model_new(s, 1, &err);
    ck_assert_msg(m != NULL, "%s", yf_error_format(&err));
    float x[3 * 64], mean[3 * 2], via_code[3 * 64], direct[3 * 64];
    for (int i = 0; i < 3 * 64; i++)
        x[i] = (float)((i * 37) % 101) / 100;
    ck_assert(yf_model_forward(m, NULL, x, 3, "mean", mean, 0, 0, &err) == 0);
    ck_assert(yf_model_forward(m, "z", mean, 3, "logits", via_code, 0, 0, &err) == 0);
    ck_assert(yf_model_forward(m, NULL, x, 3, "logits", direct, 0, 0, &err) == 0);
    for (int i = 0; i < 3 * 64; i++)
        ck_assert_float_eq_tol(via_code[i], direct[i], 1e-5);
    /* the decoder does not depend on the encoder: from "enc" to "mean" is
     * fine, from "dec" back to "mean" is not */
    ck_assert_int_eq(yf_model_forward(m, "dec", via_code, 3, "mean", mean, 0, 0, &err), YF_EUSAGE);
    ck_assert_str_eq(yf_error_format(&err), "'mean' is not computed from 'dec'");
    ck_assert_int_eq(yf_model_forward(m, NULL, x, 3, "mena", mean, 0, 0, &err), YF_EUSAGE);
    ck_assert_msg(strstr(err.msg, "no layer 'mena' (did you mean 'mean'?)"), "%s", err.msg);
    yf_model_free(m);
    yf_spec_free(s);
}
END_TEST

/* random_shift moves each training image by at most max pixels, zeros
 * coming in, the same shift for all channels; different examples and
 * steps draw different shifts; evaluation leaves images alone. */
START_TEST(test_random_shift_moves_pixels)
{
    yf_spec *s = tu_spec("name: shift\n"
                         "data: {source: mnist}\n"
                         "model:\n"
                         "  input: {name: x, shape: [2, 5, 5]}\n"
                         "  layers:\n"
                         "    - {name: shift, type: random_shift, max: 2}\n"
                         "    - {name: f, type: flatten}\n"
                         "    - {name: out, type: dense, units: 50}\n"
                         "  loss:\n"
                         "    - {type: mse, input: out, target: x}\n"
                         "train: {optimizer: {type: sgd, learning_rate: 0.1}, batch_size: 16, epochs: 1}\n",
                         NULL, 0);
    yf_error err = {0};
    yf_model *m = yf_model_new(s, 1, &err);
    ck_assert_msg(m != NULL, "%s", yf_error_format(&err));
    enum { R = 16, N = 50 };
    float x[R * N], y[R * N];
    for (int i = 0; i < R * N; i++)
        x[i] = 1 + i % N; /* 1 .. 50: every pixel distinct and non-zero */
    int seen[5][5] = {{0}};
    for (uint64_t step = 0; step < 3; step++) {
        ck_assert(yf_model_forward(m, NULL, x, R, "shift", y, 1, step, &err) == 0);
        for (int r = 0; r < R; r++) {
            /* find the shift from where pixel (2, 2) of channel 0 went */
            int found = 0;
            for (int dy = -2; dy <= 2; dy++)
                for (int dx = -2; dx <= 2; dx++) {
                    bool ok = true;
                    for (int c = 0; c < 2; c++)
                        for (int i = 0; i < 5; i++)
                            for (int j = 0; j < 5; j++) {
                                int si = i + dy, sj = j + dx;
                                float want = si < 0 || si >= 5 || sj < 0 || sj >= 5
                                                 ? 0 : x[r * N + c * 25 + si * 5 + sj];
                                ok &= y[r * N + c * 25 + i * 5 + j] == want;
                            }
                    if (ok && !found) {
                        found = 1;
                        seen[dy + 2][dx + 2]++;
                    }
                }
            ck_assert_msg(found, "example %d at step %llu is not a shifted copy", r,
                          (unsigned long long)step);
        }
    }
    int kinds = 0;
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++)
            kinds += seen[a][b] > 0;
    ck_assert_int_ge(kinds, 10); /* 48 draws of 25 shifts */
    /* evaluation: the identity */
    ck_assert(yf_model_forward(m, NULL, x, R, "shift", y, 0, 0, &err) == 0);
    ck_assert(memcmp(x, y, sizeof x) == 0);
    yf_model_free(m);
    yf_spec_free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("experiment");
    TCase *pic = tcase_create("pictures");
    tcase_add_test(pic, test_grid_pixels);
    tcase_add_test(pic, test_plot_scatter_heatmap);
    tcase_add_test(pic, test_forward_from_code);
    tcase_add_test(pic, test_random_shift_moves_pixels);
    suite_add_tcase(s, pic);
    TCase *run = tcase_create("runner");
    tcase_set_timeout(run, 120);
    tcase_add_test(run, test_chain_and_report);
    tcase_add_test(run, test_skip_rerun_fail_continue);
    tcase_add_test(run, test_bad_experiments);
    tcase_add_test(run, test_merge_key);
    tcase_add_test(run, test_tune);
    suite_add_tcase(s, run);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
