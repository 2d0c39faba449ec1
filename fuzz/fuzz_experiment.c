/* Experiment files (experiment.c): yf__experiment_check, the checks `yaflow
 * run` makes before it runs anything (the file read, every step parsed,
 * every train step's spec with its overrides compiled, every tune trial,
 * every ${step} reference). The input is written as exp.yaml in a folder
 * holding two small models it can name: ae.yaml and cls.yaml. */
#include "fuzz.h"

#include <sys/stat.h>

static char dir[512], exp_path[600];

static void put(const char *name, const char *text)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        perror(path);
        abort();
    }
}

static void cleanup(void)
{
    static const char *const names[] = {"exp.yaml", "ae.yaml", "cls.yaml"};
    for (int i = 0; i < 3; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(dir, sizeof dir, "%s/yf-fuzz-exp-XXXXXX", fz_tmpdir());
    if (!mkdtemp(dir)) {
        perror(dir);
        abort();
    }
    atexit(cleanup);
    put("ae.yaml", FZ_EXP_AE);
    put("cls.yaml", FZ_EXP_CLS);
    snprintf(exp_path, sizeof exp_path, "%s/exp.yaml", dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(exp_path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f))
        abort();
    yf_error err = {0};
    fz_check(yf__experiment_check(exp_path, &err), &err, "yf__experiment_check");
    return 0;
}
