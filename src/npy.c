/* NumPy .npy files, format 1.0: the magic "\x93NUMPY", version 1.0, a
 * little-endian 16-bit header length, then a Python dict literal giving the
 * dtype, C order and shape, padded with spaces and a newline so the data
 * starts at a multiple of 64 bytes, then the raw data. Files are written to
 * a temporary name and renamed, so an earlier file survives a failure. */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define NPY_PREFIX 10 /* magic (6), version (2), header length (2) */

/* The header dict, padded so that NPY_PREFIX + its length is a multiple of
 * 64 and ending in '\n'. Returns its length, or 0 if it does not fit. */
static size_t npy_header(char *hdr, size_t cap, const char *descr, const int64_t *shape,
                         int ndim)
{
    size_t len = (size_t)snprintf(hdr, cap, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                                  descr);
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(hdr + len, cap - len, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (len < cap)
        len += (size_t)snprintf(hdr + len, cap - len, "%s), }", ndim == 1 ? "," : "");
    size_t total = (NPY_PREFIX + len + 1 + 63) / 64 * 64; /* +1: the '\n' */
    if (len >= cap || total - NPY_PREFIX > cap || total - NPY_PREFIX > UINT16_MAX)
        return 0;
    while (NPY_PREFIX + len + 1 < total)
        hdr[len++] = ' ';
    hdr[len++] = '\n';
    return len;
}

/* shape is (shape[0], ..., shape[ndim-1]); data holds their product items
 * of `item` bytes, already little-endian. */
int yf__npy_write(const char *path, const char *descr, const int64_t *shape, int ndim,
                  const void *data, size_t item, yf_error *err)
{
    char hdr[1024];
    size_t hlen = ndim >= 0 && ndim <= 32 ? npy_header(hdr, sizeof hdr, descr, shape, ndim) : 0;
    if (!hlen)
        return yf__fail(err, YF_EIO, "cannot write %s: array header too long", path);
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)shape[i];
    unsigned char prefix[NPY_PREFIX] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                        (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    size_t plen = strlen(path);
    char *tmp = yf__malloc(plen + 5);
    if (!tmp)
        return yf__fail(err, YF_ENOMEM, "out of memory writing %s", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = yf__fail(err, YF_EIO, "cannot write %s: %s", path, strerror(errno));
        goto done;
    }
    errno = 0;
    bool ok = fwrite(prefix, 1, NPY_PREFIX, f) == NPY_PREFIX && fwrite(hdr, 1, hlen, f) == hlen &&
              (count == 0 || fwrite(data, item, count, f) == count);
    int saved = errno;
    if (fclose(f) && ok)
        ok = false, saved = errno;
    if (ok && rename(tmp, path))
        ok = false, saved = errno;
    if (!ok) {
        remove(tmp);
        rc = yf__fail(err, YF_EIO, "cannot write %s: %s", path,
                      saved ? strerror(saved) : "write failed");
    }
done:
    free(tmp);
    return rc;
}
