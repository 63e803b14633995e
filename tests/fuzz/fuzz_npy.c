/* libFuzzer target: the .npy reader (ebmc_npy_parse on the bytes in memory, and ebmc_npy_read
 * through a file, as the data sets and `ebmc eval` read them). On success the header's shape must
 * describe exactly the bytes after it, and every one of them is touched (ASan: no read past the
 * buffer). */
#include "fuzz_util.h"

#include "ebmc/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024] = "", path[512];
    ebmc_npy_info a, b;
    ebmc_status s1 = ebmc_npy_parse(data, size, size, "mem.npy", &a, err, sizeof err);
    fz_report("npy parse", s1, err);
    if (s1 != EBMC_OK && !err[0]) abort();
    if (s1 == EBMC_OK && a.data_offset + (uint64_t)a.count * a.itemsize != size) abort();
    fz_write("a.npy", data, size, path, sizeof path);
    void *buf = NULL;
    err[0] = 0;
    ebmc_status s2 = ebmc_npy_read(path, &b, &buf, err, sizeof err);
    fz_report("npy read", s2, err);
    if ((s1 == EBMC_OK) != (s2 == EBMC_OK)) abort(); /* the memory and file readers agree */
    if (s2 == EBMC_OK) {
        size_t bytes = b.count * b.itemsize;
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < bytes; i++) sink ^= ((const uint8_t *)buf)[i];
        (void)sink;
        if (b.count != a.count || b.dtype != a.dtype || b.ndim != a.ndim) abort();
    } else if (buf || !err[0]) {
        abort();
    }
    free(buf);
    return 0;
}
