/* Runs that are killed, interrupted, resumed, replaced or starved of disk:
 * train.c and checkpoint.c must lose nothing and a resumed run must end
 * bit for bit as a run never interrupted. Training runs in forked children
 * (one thread, so no OpenMP team exists at a fork) that the tests kill
 * with SIGKILL at random moments and inside checkpoint saves. */
#include "testutil.h"

#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#define DIR "test_resume.tmp"

/* 16x16 images; noise, dropout and a cosine schedule, so that the random
 * streams and the step count are part of what a resume must restore. */
static const char spec_text[] =
    "name: resume-ae\n"
    "seed: 7\n"
    "data: {source: mnist, dir: " DIR "/data, valid: 64}\n"
    "model:\n"
    "  input: {name: x, shape: [256]}\n"
    "  layers:\n"
    "    - {name: noisy, type: gaussian_noise, stddev: 0.1}\n"
    "    - {name: hidden, type: dense, units: 192, activation: elu, init: he_normal}\n"
    "    - {name: drop, type: dropout, rate: 0.1}\n"
    "    - {name: coding, type: dense, units: 32, activation: tanh}\n"
    "    - {name: decode, type: dense, units: 192, activation: elu, weights: coding.W^T}\n"
    "    - {name: out, type: dense, units: 256, activation: sigmoid, weights: hidden.W^T}\n"
    "  loss:\n"
    "    - {type: mse, input: out, target: x}\n"
    "train:\n"
    "  optimizer: {type: adam, learning_rate: 0.003}\n"
    "  schedule: {type: cosine}\n"
    "  batch_size: 16\n"
    "  epochs: 8\n"
    "  log_every: 37\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* In a child: the save at which the hook kills the process (0: never). */
static int kill_save, kill_stage, saves_seen;

static void kill_hook(int stage)
{
    if (stage == 1)
        saves_seen++;
    if (saves_seen == kill_save && stage == kill_stage)
        raise(SIGKILL);
}

static volatile sig_atomic_t stop_flag;

static void on_usr1(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* The child's whole life: train (resuming what `out` holds) and exit with
 * 0, 3 when interrupted, 4 on another error. */
static void child_train(const char *out, const char *const *ov, int n_ov, bool overwrite,
                        bool resume)
{
    yf_error err = {0};
    yf_spec *s = yf_spec_parse(spec_text, sizeof spec_text - 1, "resume.yaml", ov, n_ov, &err);
    yf_model *m = s ? yf_model_new(s, 1, &err) : NULL;
    yf_dataset *d = m ? yf_dataset_load(s, &err) : NULL;
    if (!d) {
        fprintf(stderr, "child: %s\n", yf_error_format(&err));
        _exit(4);
    }
    signal(SIGUSR1, on_usr1);
    yf_train_opts o = {.out_dir = out, .resume = resume, .overwrite = overwrite,
                       .stop = &stop_flag};
    int rc = yf_train(m, d, &o, &err);
    if (rc && rc != YF_EINTERRUPTED)
        fprintf(stderr, "child: %s\n", yf_error_format(&err));
    _exit(rc == 0 ? 0 : rc == YF_EINTERRUPTED ? 3 : 4);
}

typedef struct {
    int save, stage;     /* kill inside this save (0: no) */
    double after;        /* or SIGKILL after this many seconds (< 0: no) */
    bool after_first;    /* counted from the first checkpoint's appearance */
    double usr1;         /* or ask to stop (SIGUSR1) after this many seconds */
    bool overwrite, resume;
} fate;

/* Forks a training child with its fate; returns its wait status. */
static int spawn(const char *out, fate f)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        kill_save = f.save, kill_stage = f.stage;
        yf__save_hook = f.save ? kill_hook : NULL;
        child_train(out, NULL, 0, f.overwrite, f.resume);
    }
    int status;
    bool reaped = false;
    if (f.after_first) { /* the run is in its second epoch or later */
        char ck[600];
        snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", out);
        for (int i = 0; i < 600000 && !tu_exists(ck) && !reaped; i++) {
            reaped = waitpid(pid, &status, WNOHANG) == pid;
            usleep(100);
        }
    }
    if (!reaped && (f.after >= 0 || f.usr1 > 0)) {
        struct timespec ts = {0};
        double t = f.after >= 0 ? f.after : f.usr1;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
        kill(pid, f.after >= 0 ? SIGKILL : SIGUSR1);
    }
    if (!reaped)
        ck_assert(waitpid(pid, &status, 0) == pid);
    return status;
}

static char *ref_ckpt, *ref_metrics, *ref_steps;
static size_t ref_len;
static double ref_seconds;

/* metrics.csv without the last two columns (the timings) of each row. */
static char *no_timings(const char *path)
{
    char *csv = tu_read(path, NULL);
    ck_assert_msg(csv != NULL, "no %s", path);
    char *w = csv;
    for (char *line = csv; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line), keep = n;
        for (int cut = 0; cut < 2 && keep > 0; cut++)
            while (keep > 0 && line[--keep] != ',')
                ;
        memmove(w, line, keep);
        w += keep;
        *w++ = '\n';
        line += n + (end != NULL);
    }
    *w = 0;
    return csv;
}

/* The data, and a run never interrupted to compare with. */
static void reference(void)
{
    tu_workdir(DIR);
    tu_write_dataset(DIR "/data", 4096 + 64, 64, 16, false);
    double t0 = now();
    int st = spawn(DIR "/ref", (fate){.after = -1});
    ref_seconds = now() - t0;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reference run: status %d", st);
    ref_ckpt = tu_read(DIR "/ref/checkpoint.safetensors", &ref_len);
    ref_metrics = no_timings(DIR "/ref/metrics.csv");
    ref_steps = tu_read(DIR "/ref/steps.csv", NULL);
    ck_assert(ref_steps && strlen(ref_steps) > 1000);
    ck_assert(ref_ckpt && ref_len > 1000);
}

/* The folder's checkpoint, when there is one, loads (parameters and
 * optimizer state) into a model of the run's config. */
static void check_loadable(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    if (!tu_exists(path))
        return;
    yf_error err = {0};
    yf_run r;
    ck_assert_msg(yf_run_open(&r, dir, 1, 0, &err) == 0, "after a kill: %s",
                  yf_error_format(&err));
    ck_assert_msg(yf_checkpoint_load(r.model, path, 1, &err) == 0, "%s", yf_error_format(&err));
    yf_run_close(&r);
}

/* Resumes until the run finishes; returns how many resumes it took. */
static int finish(const char *dir)
{
    for (int tries = 1; tries < 20; tries++) {
        int st = spawn(dir, (fate){.after = -1, .resume = true});
        ck_assert_msg(WIFEXITED(st), "resume of %s: status %d", dir, st);
        if (WEXITSTATUS(st) == 0)
            return tries;
        ck_assert_msg(false, "resume of %s exited %d", dir, WEXITSTATUS(st));
    }
    return -1;
}

static void same_as_reference(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    size_t len = 0;
    char *ck = tu_read(path, &len);
    if (!ck || len != ref_len || memcmp(ck, ref_ckpt, len)) {
        /* where: the first differing byte, and both headers */
        size_t at = 0;
        while (ck && at < len && at < ref_len && ck[at] == ref_ckpt[at])
            at++;
        uint64_t h = 0, rh = 0;
        for (int i = 0; ck && len >= 8 && i < 8; i++)
            h |= (uint64_t)(uint8_t)ck[i] << (8 * i), rh |= (uint64_t)(uint8_t)ref_ckpt[i] << (8 * i);
        size_t from = at > 60 ? at - 60 : 0;
        int shown = at < h + 8 ? 120 : 0; /* text only inside the header */
        ck_assert_msg(false, "%s: the resumed run's checkpoint differs from the uninterrupted "
                      "run's: %zu bytes against %zu, first difference at byte %zu (header "
                      "%llu bytes); around it, resumed: %.*s / reference: %.*s", dir, len,
                      ref_len, at, (unsigned long long)h,
                      ck && from + shown <= len ? shown : 0, ck ? ck + from : "",
                      from + shown <= ref_len ? shown : 0, ref_ckpt + from);
        (void)rh;
    }
    free(ck);
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    char *m = no_timings(path);
    ck_assert_msg(!strcmp(m, ref_metrics), "%s: metrics\n%s\nwant\n%s", dir, m, ref_metrics);
    free(m);
    snprintf(path, sizeof path, "%s/steps.csv", dir);
    char *steps = tu_read(path, NULL);
    ck_assert_msg(steps && !strcmp(steps, ref_steps), "%s: steps.csv differs", dir);
    free(steps);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors.tmp", dir);
    ck_assert_msg(!tu_exists(path), "%s left behind", path);
    snprintf(path, sizeof path, "%s/interrupted.safetensors", dir);
    ck_assert_msg(!tu_exists(path), "%s left behind", path);
}

static const char *dir_ckpt(const char *dir)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    return path;
}

/* SIGKILL at 24 points: 12 random moments of the run (6 of them timed
 * from the first checkpoint's appearance, so that they fall in a later
 * epoch even on a loaded machine) and 12 inside checkpoint saves (after the header, half-way through the data, before
 * and after the rename); each time the last checkpoint loads, and resuming
 * (again and again if need be) ends bit for bit as the reference. */
START_TEST(test_kill_and_resume)
{
    reference();
    srand48(20261130);
    int killed = 0, in_save = 0, at_random = 0, in_training = 0;
    for (int trial = 0; trial < 24; trial++) {
        char dir[256];
        snprintf(dir, sizeof dir, DIR "/kill-%02d", trial);
        fate f = {.after = -1, .resume = true};
        if (trial % 2) {
            f.save = 1 + (int)(drand48() * 8); /* one save per epoch */
            f.stage = 1 + trial / 2 % 4;
        } else if (trial % 4 == 0) {
            f.after = drand48() * ref_seconds;
        } else { /* inside a later epoch, whatever the machine's load */
            f.after_first = true;
            f.after = drand48() * 0.6 * ref_seconds;
        }
        int st = spawn(dir, f);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
            killed++;
            in_save += f.save > 0;
            at_random += f.save == 0;
            /* after the first epoch's checkpoint: a kill in training */
            in_training += f.save == 0 && tu_exists(dir_ckpt(dir));
        } else {
            ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "trial %d: status %d", trial,
                          st);
        }
        check_loadable(dir);
        /* a second kill, during the resume, for every third trial */
        if (trial % 3 == 0) {
            st = spawn(dir, (fate){.after = drand48() * ref_seconds, .resume = true});
            if (WIFSIGNALED(st))
                killed++, at_random++;
            check_loadable(dir);
        }
        finish(dir);
        same_as_reference(dir);
    }
    printf("kill and resume: %d kills (%d inside saves, %d at random moments of a %.2f s run, "
           "%d of those after the first epoch), every run resumed to the reference checkpoint\n",
           killed, in_save, at_random, ref_seconds, in_training);
    ck_assert_msg(in_save == 12, "only %d kills inside saves", in_save);
    ck_assert_msg(killed >= 20, "only %d kills landed", killed);
    ck_assert_msg(in_training >= 5, "only %d random kills landed after the first epoch",
                  in_training);
}
END_TEST

/* SIGUSR1 standing in for Ctrl-C: the step finishes, a checkpoint is
 * saved inside the epoch, the child reports YF_EINTERRUPTED, and resuming
 * ends as the reference. */
START_TEST(test_interrupt_and_resume)
{
    reference();
    int interrupted = 0;
    for (int trial = 0; trial < 4; trial++) {
        char dir[256];
        snprintf(dir, sizeof dir, DIR "/int-%d", trial);
        int st = spawn(dir, (fate){.after = -1, .usr1 = (0.15 + 0.2 * trial) * ref_seconds,
                                   .resume = true});
        ck_assert_msg(WIFEXITED(st) && (WEXITSTATUS(st) == 3 || WEXITSTATUS(st) == 0),
                      "status %d", st);
        if (WEXITSTATUS(st) == 3) {
            interrupted++;
            char path[512];
            snprintf(path, sizeof path, "%s/log.txt", dir);
            char *log = tu_read(path, NULL);
            ck_assert_msg(log && strstr(log, "stopped: interrupted at step ") &&
                          strstr(log, "continue with `yaflow train --resume " DIR "/int-"),
                          "log.txt: %s", log);
            free(log);
            yf__progress pr;
            yf_error err = {0};
            snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
            ck_assert_msg(yf__checkpoint_progress(path, &pr, &err) == 0, "%s",
                          yf_error_format(&err));
            ck_assert(!pr.finished);
            free(pr.metrics);
        }
        finish(dir);
        same_as_reference(dir);
    }
    ck_assert_msg(interrupted >= 3, "only %d of 4 runs were interrupted", interrupted);
}
END_TEST

/* Asked to stop at the last step of an epoch (step 256 of 256) and of the
 * run: the resumed run has no step left in that epoch, and its row still
 * reports that step's learning rate. */
static uint64_t stop_at;

static void stop_hook(const yf_model *m)
{
    if (m->step == stop_at)
        stop_flag = 1;
}

START_TEST(test_interrupt_at_epoch_end)
{
    reference();
    const uint64_t at[] = {256, 257, 8 * 256};
    for (int k = 0; k < 3; k++) {
        char dir[256];
        snprintf(dir, sizeof dir, DIR "/end-%d", k);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            stop_at = at[k];
            yf__step_hook = stop_hook;
            child_train(dir, NULL, 0, false, true);
        }
        int st;
        ck_assert(waitpid(pid, &st, 0) == pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 3, "stop at step %llu: status %d",
                      (unsigned long long)at[k], st);
        finish(dir);
        same_as_reference(dir);
    }
}
END_TEST

/* --resume of a finished run changes nothing; of a folder with a config
 * but no checkpoint, it trains from the beginning. */
START_TEST(test_resume_finished_and_fresh)
{
    reference();
    struct stat a, b;
    ck_assert(stat(DIR "/ref/checkpoint.safetensors", &a) == 0);
    int st = spawn(DIR "/ref", (fate){.after = -1, .resume = true});
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert(stat(DIR "/ref/checkpoint.safetensors", &b) == 0);
    ck_assert_msg(a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec,
                  "a finished run's checkpoint was rewritten");
    /* killed before its first checkpoint: a config and no checkpoint */
    st = spawn(DIR "/early", (fate){.save = 1, .stage = 1, .after = -1});
    ck_assert(WIFSIGNALED(st));
    ck_assert(tu_exists(DIR "/early/config.yaml"));
    ck_assert(!tu_exists(DIR "/early/checkpoint.safetensors"));
    ck_assert_int_eq(finish(DIR "/early"), 1);
    same_as_reference(DIR "/early");
    /* killed after the last checkpoint's rename, before its metrics row:
     * the resume finds the run finished and restores the row */
    st = spawn(DIR "/last", (fate){.save = 8, .stage = 4, .after = -1});
    ck_assert(WIFSIGNALED(st));
    ck_assert_int_eq(finish(DIR "/last"), 1);
    same_as_reference(DIR "/last");

    /* a record this run cannot have written (epoch 9 of 8; the header's
     * bytes are not in the CRC) is refused, not replayed */
    tu_mkdirs(DIR "/odd");
    char *cfg = tu_read(DIR "/ref/config.yaml", NULL);
    tu_write(DIR "/odd/config.yaml", cfg, strlen(cfg));
    free(cfg);
    char *odd = malloc(ref_len);
    memcpy(odd, ref_ckpt, ref_len);
    char *e = memmem(odd, ref_len, "\"epoch\":\"8\"", 11);
    ck_assert(e != NULL);
    e[9] = '9';
    tu_write(DIR "/odd/checkpoint.safetensors", odd, ref_len);
    free(odd);
    yf_error err = {0};
    yf_spec *s = yf_spec_parse(spec_text, sizeof spec_text - 1, "resume.yaml", NULL, 0, &err);
    yf_model *m = s ? yf_model_new(s, 1, &err) : NULL;
    yf_dataset *d = m ? yf_dataset_load(s, &err) : NULL;
    ck_assert(d != NULL);
    int rc = yf_train(m, d, &(yf_train_opts){.out_dir = DIR "/odd", .resume = 1}, &err);
    ck_assert_int_eq(rc, YF_ECKPT);
    ck_assert_msg(!strcmp(yf_error_format(&err), DIR "/odd/checkpoint.safetensors: its record "
                          "of where training stood (epoch 9, 0 examples into the next) does "
                          "not fit this run (8 epochs of 4096 examples)"), "%s",
                  yf_error_format(&err));
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(s);
}
END_TEST

/* --overwrite: a new run killed before its first checkpoint leaves the
 * earlier run whole; finishing replaces it. */
START_TEST(test_overwrite_staged)
{
    reference();
    /* the earlier run: one epoch with another seed */
    const char *ov[] = {"train.epochs=1", "seed=8"};
    pid_t pid = fork();
    if (pid == 0)
        child_train(DIR "/place", ov, 2, false, false);
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    size_t old_len = 0;
    char *old = tu_read(DIR "/place/checkpoint.safetensors", &old_len);
    char *old_cfg = tu_read(DIR "/place/config.yaml", NULL);
    for (int stage = 1; stage <= 3; stage++) { /* killed inside its first save */
        st = spawn(DIR "/place", (fate){.save = 1, .stage = stage, .after = -1,
                                        .overwrite = true});
        ck_assert(WIFSIGNALED(st));
        size_t len;
        char *now_ck = tu_read(DIR "/place/checkpoint.safetensors", &len);
        char *cfg = tu_read(DIR "/place/config.yaml", NULL);
        ck_assert_msg(now_ck && len == old_len && !memcmp(now_ck, old, len),
                      "stage %d: the earlier run's checkpoint changed", stage);
        ck_assert_msg(cfg && !strcmp(cfg, old_cfg), "stage %d: config.yaml changed", stage);
        free(now_ck);
        free(cfg);
        check_loadable(DIR "/place");
    }
    st = spawn(DIR "/place", (fate){.after = -1, .overwrite = true});
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    same_as_reference(DIR "/place");
    ck_assert_msg(!tu_exists(DIR "/place.yaflow-new"), "the staging folder is left behind");
    free(old);
    free(old_cfg);
}
END_TEST

/* A full disk: a tmpfs with room for one checkpoint and a half. The second
 * epoch's save fails with the system's reason; the first checkpoint stays
 * loadable and no temporary file is left. Needs a mount namespace: as
 * root, or through a user namespace otherwise. */
/* In a fresh mount namespace (as root, or as root of a new user
 * namespace), a tmpfs of `size` bytes on `dir`; false when the system
 * allows neither (a container without the capability). */
static bool small_tmpfs(const char *dir, long size)
{
    if (unshare(CLONE_NEWNS) != 0) {
        uid_t uid = getuid();
        gid_t gid = getgid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            return false;
        char uids[64], gids[64];
        snprintf(uids, sizeof uids, "0 %u 1", (unsigned)uid);
        snprintf(gids, sizeof gids, "0 %u 1", (unsigned)gid);
        const char *files[3] = {"/proc/self/setgroups", "/proc/self/uid_map",
                                "/proc/self/gid_map"},
                   *text[3] = {"deny", uids, gids};
        for (int i = 0; i < 3; i++) { /* without the maps no file could be made */
            FILE *f = fopen(files[i], "w");
            bool ok = f && fputs(text[i], f) >= 0;
            if (f)
                ok = fclose(f) == 0 && ok;
            if (!ok)
                return false;
        }
    }
    char opt[64];
    snprintf(opt, sizeof opt, "size=%ld", size);
    return mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
           mount("tmpfs", dir, "tmpfs", 0, opt) == 0;
}

/* After the first checkpoint is saved, files may not grow past 100 KB. */
static void limit_after_first(int stage)
{
    static int saves;
    if (stage == 4 && ++saves == 1) {
        struct rlimit rl = {100 * 1024, 100 * 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
    }
}

/* A full disk: a tmpfs with room for one checkpoint and a half, so that
 * the second epoch's save fails with the system's reason, the first
 * checkpoint stays loadable and no temporary file is left. Where the
 * system allows no mount namespace (a container), a file-size limit set
 * after the first save stands in for the full disk (EFBIG, "File too
 * large"); the test says which it used. */
START_TEST(test_disk_full)
{
    reference();
    tu_mkdirs(DIR "/small");
    long page = 4096, size = (long)(ref_len + ref_len / 2 + 64 * 1024 + page - 1) / page * page;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        bool tmpfs = !getenv("YF_TEST_NO_MOUNT") && small_tmpfs(DIR "/small", size);
        const char *reason = tmpfs ? "No space left on device" : "File too large";
        if (!tmpfs) {
            signal(SIGXFSZ, SIG_IGN);
            yf__save_hook = limit_after_first;
        }
        yf_error err = {0};
        yf_spec *s = yf_spec_parse(spec_text, sizeof spec_text - 1, "resume.yaml", NULL, 0, &err);
        yf_model *m = s ? yf_model_new(s, 1, &err) : NULL;
        yf_dataset *d = m ? yf_dataset_load(s, &err) : NULL;
        if (!d)
            _exit(12);
        int rc = yf_train(m, d, &(yf_train_opts){.out_dir = DIR "/small/run"}, &err);
        if (rc != YF_EIO || !strstr(err.msg, reason) ||
            !strstr(err.msg, DIR "/small/run/checkpoint.safetensors.tmp")) {
            fprintf(stderr, "rc %d: %s\n", rc, err.msg);
            _exit(13);
        }
        if (tu_exists(DIR "/small/run/checkpoint.safetensors.tmp"))
            _exit(14);
        /* the first epoch's checkpoint is whole */
        yf__progress pr;
        if (yf__checkpoint_progress(DIR "/small/run/checkpoint.safetensors", &pr, &err) ||
            pr.epoch != 1)
            _exit(15);
        free(pr.metrics);
        if (yf_checkpoint_load(m, DIR "/small/run/checkpoint.safetensors", 1, &err))
            _exit(16);
        char *log = tu_read(DIR "/small/run/log.txt", NULL);
        if (!log || !strstr(log, "error: cannot write checkpoint") || !strstr(log, reason))
            _exit(17);
        _exit(tmpfs ? 0 : 20);
    }
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_msg(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 20),
                  "disk-full child: status %d (12 setup, 13 wrong error, 14 temporary file "
                  "left, 15/16 first checkpoint damaged, 17 log)",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
    printf("full disk: %s\n", WEXITSTATUS(st) == 0
                                  ? "a tmpfs of 1.5 checkpoints (ENOSPC)"
                                  : "no mount namespace here: a file-size limit (EFBIG)");
}
END_TEST

/* A NaN that appears in epoch 2 (a weight poisoned right after epoch 1's
 * checkpoint is saved) stops training at the step it appears, naming the
 * first node whose output is not finite; epoch 1's checkpoint stays. */
static yf_model *poison_model;

static void poison(int stage)
{
    if (stage == 4 && poison_model) {
        yf_model_params(poison_model)[0] = NAN;
        poison_model = NULL;
    }
}

START_TEST(test_nan_keeps_checkpoint)
{
    reference();
    yf_error err = {0};
    yf_spec *s = yf_spec_parse(spec_text, sizeof spec_text - 1, "resume.yaml", NULL, 0, &err);
    yf_model *m = s ? yf_model_new(s, 1, &err) : NULL;
    yf_dataset *d = m ? yf_dataset_load(s, &err) : NULL;
    ck_assert_msg(d != NULL, "%s", yf_error_format(&err));
    poison_model = m;
    yf__save_hook = poison;
    int rc = yf_train(m, d, &(yf_train_opts){.out_dir = DIR "/nan"}, &err);
    yf__save_hook = NULL;
    printf("poisoned weight: %s\n", yf_error_format(&err));
    ck_assert_int_eq(rc, YF_ERUN);
    /* 4096 examples in batches of 16: epoch 2 starts at step 257 */
    ck_assert_msg(strstr(err.msg, "training diverged at step 257: node 'hidden' (dense) "),
                  "%s", yf_error_format(&err));
    ck_assert_msg(strstr(err.msg, "produced the first non-finite value"), "%s", err.msg);
    ck_assert_int_eq(err.line, 8); /* the layer 'hidden' in the spec */
    yf__progress pr;
    ck_assert(yf__checkpoint_progress(DIR "/nan/checkpoint.safetensors", &pr, &err) == 0);
    ck_assert_int_eq(pr.epoch, 1);
    free(pr.metrics);
    yf_run r;
    ck_assert_msg(yf_run_open(&r, DIR "/nan", 1, 0, &err) == 0, "%s", yf_error_format(&err));
    ck_assert_msg(isfinite(yf_model_params(r.model)[0]), "the checkpoint holds the NaN");
    yf_run_close(&r);
    yf_dataset_free(d);
    yf_model_free(m);
    yf_spec_free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resume");
    TCase *tc = tcase_create("resume");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_kill_and_resume);
    tcase_add_test(tc, test_interrupt_and_resume);
    tcase_add_test(tc, test_interrupt_at_epoch_end);
    tcase_add_test(tc, test_resume_finished_and_fresh);
    tcase_add_test(tc, test_overwrite_staged);
    tcase_add_test(tc, test_disk_full);
    tcase_add_test(tc, test_nan_keeps_checkpoint);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    if (rc == EXIT_SUCCESS)
        tu_rmtree(DIR);
    return rc;
}
