/* Model specs: the YAML reader (tree.c on libyaml), command-line overrides
 * (each line "#= key=value" of the input, a YAML comment, is one), the
 * spec's checks (spec.c) and the compiler (model.c, compile.c, autodiff.c,
 * plan.c, lint.c): yf_spec_parse, yf_model_new, and the resolved spec
 * written back (yf_spec_write) and read again, which must succeed. The fuzz build
 * pretends the machine has YF_FUZZ_MEMORY_MB of memory, so a valid but
 * large model is refused before it reaches libFuzzer's limit. */
#include "fuzz.h"

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    devnull = fopen("/dev/null", "w");
    return devnull ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { MAX_OV = 8 };
    char *ov[MAX_OV];
    int n_ov = 0;
    const char *text = (const char *)data, *end = text + size;
    for (const char *p = text; p < end && n_ov < MAX_OV;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if (eol - p >= 3 && !memcmp(p, "#= ", 3))
            ov[n_ov++] = strndup(p + 3, (size_t)(eol - p - 3));
        p = eol + 1;
    }
    yf_error err = {0};
    yf_spec *s = yf_spec_parse(text, size, "fuzz.yaml", (const char *const *)ov, n_ov, &err);
    for (int i = 0; i < n_ov; i++)
        free(ov[i]);
    if (!s) {
        fz_check(err.code ? err.code : -1, &err, "yf_spec_parse");
        return 0;
    }
    yf_model *m = yf_model_new(s, 1, &err);
    if (!m) {
        fz_check(err.code ? err.code : -1, &err, "yf_model_new");
    } else {
        yf_model_summary(m, devnull);
        /* the resolved spec, every default explicit, is a valid spec */
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f || yf_spec_write(s, f) != 0 || fclose(f) != 0)
            abort();
        yf_error err2 = {0};
        yf_spec *again = yf_spec_parse(text, len, "resolved.yaml", NULL, 0, &err2);
        if (!again) {
            fprintf(stderr, "the resolved spec does not read back: %s\n--\n%.*s\n",
                    yf_error_format(&err2), (int)len, text);
            abort();
        }
        yf_spec_free(again);
        free(text);
        yf_model_free(m);
    }
    yf_spec_free(s);
    return 0;
}
