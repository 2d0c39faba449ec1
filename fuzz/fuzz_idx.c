/* IDX files, plain or gzip-compressed (data/idx.c): yf__idx_read as images
 * (3 dimensions) and as labels (1). A file it accepts holds exactly
 * count × item bytes, all of which are read here so that the sanitizers
 * see any that were not allocated. */
#include "fuzz.h"

static void read_as(const char *path, int ndim)
{
    yf_error err = {0};
    yf__idx idx;
    int rc = yf__idx_read(path, ndim, &idx, &err);
    fz_check(rc, &err, "yf__idx_read");
    if (rc == 0) {
        if (idx.ndim != ndim || idx.count != idx.dims[0] || !idx.data)
            abort();
        size_t item = 1;
        for (int d = 1; d < ndim; d++)
            item *= idx.dims[d];
        if (item != idx.item)
            abort();
        unsigned sum = 0;
        for (size_t i = 0; i < idx.count * idx.item; i++)
            sum += idx.data[i];
        (void)*(volatile unsigned *)&sum;
    }
    yf__idx_free(&idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file(data, size, ".idx");
    read_as(path, 3);
    read_as(path, 1);
    return 0;
}
