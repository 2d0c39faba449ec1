/* Hash index files (hash.c, format in docs/hashing.md): yf_hash_index_load,
 * then what `yaflow hash` does with a loaded index: the retrieval
 * statistics (yf_hash_evaluate on a few queries) and a bucket table.
 *
 * The file ends with the CRC-32 of the rest; the target writes the right
 * one over the input's last 4 bytes, so that mutations reach the checks
 * behind it (the checksum test itself is in tests/test_hash.c). */
#include "fuzz.h"

#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    if (size >= 4) {
        uint32_t c = (uint32_t)crc32(0, buf, (uInt)(size - 4));
        for (int i = 0; i < 4; i++)
            buf[size - 4 + i] = (uint8_t)(c >> 8 * i);
    }
    const char *path = fz_file(buf, size, ".index");
    free(buf);
    yf_error err = {0};
    yf_hash_index ix;
    int rc = yf_hash_index_load(&ix, path, &err);
    fz_check(rc, &err, "yf_hash_index_load");
    if (rc == 0) {
        if (ix.bits < 1 || ix.bits > 64 || ix.classes < 1 || ix.classes > 256)
            abort();
        yf_hash_stats st;
        yf_error e2 = {0};
        fz_check(yf_hash_evaluate(&ix, 8, 1, &st, &e2), &e2, "yf_hash_evaluate");
        yf_hash_table *t = yf_hash_table_new(ix.db, ix.n_db, &e2);
        if (t) {
            uint32_t items[64];
            for (size_t q = 0; q < ix.n_query && q < 4; q++)
                yf_hash_ball_items(t, ix.query[q], ix.bits, 2, items, 64);
            yf_hash_table_free(t);
        }
    }
    yf_hash_index_free(&ix);
    return 0;
}
