/* IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed: zlib's gzread
 * reads both. The header is checked against the file's real length, so a
 * truncated or mislabelled file is named and refused. */
#include "../internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* zlib's error after a failed read: its own allocations failing is running
 * out of memory, not a corrupt file. */
static int zfail(gzFile f, const char *path, yf_error *err)
{
    int zerr;
    const char *zmsg = gzerror(f, &zerr);
    if (zerr == Z_MEM_ERROR)
        return yf__fail(err, YF_ENOMEM, "out of memory reading %s", path);
    return yf__fail_file(err, YF_EDATA, path, "corrupt compressed data: %s", zmsg);
}

int yf__idx_read(const char *path, int expect_ndim, yf__idx *out, yf_error *err)
{
    memset(out, 0, sizeof *out);
    errno = 0; /* gzopen sets it when open fails, not when its allocation does */
    gzFile f = gzopen(path, "rb");
    if (!f && (!errno || errno == ENOMEM))
        return yf__fail(err, YF_ENOMEM, "out of memory opening %s", path);
    if (!f)
        return yf__fail_file(err, YF_EDATA, path, "cannot open: %s", strerror(errno));
    gzbuffer(f, 1 << 17);
    unsigned char hdr[4 + 4 * 4];
    int rc = 0;
    int got = gzread(f, hdr, 4);
    if (got != 4) {
        int zerr;
        gzerror(f, &zerr);
        if (zerr != Z_OK && zerr != Z_BUF_ERROR)
            rc = zfail(f, path, err);
        else
            rc = yf__fail_file(err, YF_EDATA, path,
                               "not an IDX file: shorter than its 4-byte magic number");
        goto done;
    }
    if (hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08) {
        rc = yf__fail_file(err, YF_EDATA, path,
                       "not an unsigned-byte IDX file: magic number %02x %02x %02x %02x, "
                       "expected 00 00 08 0%d", hdr[0], hdr[1], hdr[2], hdr[3], expect_ndim);
        goto done;
    }
    if (hdr[3] != expect_ndim) {
        rc = yf__fail_file(err, YF_EDATA, path, "IDX file has %d dimensions, expected %d (%s)", hdr[3],
                       expect_ndim, expect_ndim == 1 ? "labels" : "images");
        goto done;
    }
    out->ndim = hdr[3];
    if (gzread(f, hdr + 4, 4 * out->ndim) != 4 * out->ndim) {
        rc = yf__fail_file(err, YF_EDATA, path, "truncated IDX header");
        goto done;
    }
    out->count = 0;
    out->item = 1;
    for (int d = 0; d < out->ndim; d++) {
        const unsigned char *b = hdr + 4 + 4 * d;
        out->dims[d] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (out->dims[d] == 0 || out->dims[d] > (1u << 26)) {
            rc = yf__fail_file(err, YF_EDATA, path, "IDX dimension %d has a nonsense size %u", d + 1,
                           out->dims[d]);
            goto done;
        }
        if (d > 0)
            out->item *= out->dims[d];
    }
    out->count = out->dims[0];
    /* each size is below 2^26, but their product could wrap around */
    if ((double)out->count * (double)out->item > (double)((size_t)1 << 40)) {
        rc = yf__fail_file(err, YF_EDATA, path, "IDX header promises %.0f bytes, more than 1 TB",
                       (double)out->count * (double)out->item);
        goto done;
    }
    size_t total = out->count * out->item;
    if (total > ((size_t)1 << 34)) { /* 16 GB: no image set, a broken header */
        rc = yf__fail_file(err, YF_EDATA, path, "IDX header promises %zu bytes: not a real "
                           "data set", total);
        goto done;
    }
    /* the file must hold what the header promises before anything is
     * allocated: a plain file by its length, a gzip one by its trailer's
     * uncompressed size (ISIZE, the size modulo 2^32) */
    size_t header = 4 + 4 * (size_t)out->ndim;
    {
        FILE *raw = fopen(path, "rb");
        long len = -1;
        unsigned char tail[4];
        if (raw && fseek(raw, 0, SEEK_END) == 0)
            len = ftell(raw);
        if (!raw) {
            rc = errno == ENOMEM ? yf__fail(err, YF_ENOMEM, "out of memory reading %s", path)
                                 : yf__fail_file(err, YF_EDATA, path, "cannot open: %s",
                                                 strerror(errno));
        } else if (gzdirect(f)) {
            if (len >= 0 && (size_t)len < header + total) {
                rc = yf__fail_file(err, YF_EDATA, path, "truncated: the IDX header promises %zu "
                                   "examples of %zu bytes (%zu bytes) but only %ld bytes follow "
                                   "it", out->count, out->item, total,
                                   len > (long)header ? len - (long)header : 0L);
            }
        } else if (len < 18 || fseek(raw, len - 4, SEEK_SET) != 0 || fread(tail, 1, 4, raw) != 4) {
            rc = yf__fail_file(err, YF_EDATA, path, "truncated: %ld bytes is too short for a "
                               "gzip file holding %zu bytes of data", len, total);
        } else {
            uint32_t isize = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 |
                             (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
            /* deflate expands at most about 1032:1 */
            if ((double)(header + total) > (double)len * 1100)
                rc = yf__fail_file(err, YF_EDATA, path, "truncated: a gzip file of %ld bytes "
                                   "cannot hold the %zu bytes the IDX header promises", len,
                                   header + total);
            else if (header + total < ((size_t)1 << 32) && isize < header + total)
                rc = yf__fail_file(err, YF_EDATA, path, "truncated or corrupt: the IDX header "
                                   "promises %zu bytes but the gzip trailer records %u "
                                   "uncompressed bytes", header + total, isize);
        }
        if (raw)
            fclose(raw);
        if (rc)
            goto done;
    }
    out->data = yf__malloc(total ? total : 1);
    if (!out->data) {
        rc = yf__fail(err, YF_ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    size_t have = 0;
    while (have < total) {
        unsigned chunk = total - have > (1u << 30) ? (1u << 30) : (unsigned)(total - have);
        int r = gzread(f, out->data + have, chunk);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    int zerr;
    gzerror(f, &zerr);
    if (zerr != Z_OK && zerr != Z_BUF_ERROR) {
        rc = zfail(f, path, err);
        goto done;
    }
    if (have < total) {
        rc = yf__fail_file(err, YF_EDATA, path,
                       "truncated: the header promises %zu items of %zu bytes (%zu bytes) but "
                       "only %zu bytes follow", out->count, out->item, total, have);
        goto done;
    }
    unsigned char extra;
    if (gzread(f, &extra, 1) == 1) {
        rc = yf__fail_file(err, YF_EDATA, path, "longer than its header says (%zu items of %zu bytes)",
                       out->count, out->item);
        goto done;
    }
done:
    gzclose(f);
    if (rc)
        yf__idx_free(out);
    return rc;
}

void yf__idx_free(yf__idx *idx)
{
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
