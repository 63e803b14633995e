/* libFuzzer target: the .npz reader (ebmc_npz_read_f64: the zip's end record, central directory,
 * zip64 extra fields, local headers, stored or deflated members, CRC, then the member's .npy
 * header), for the members 'mu' and 'sigma' of pytorch-fid statistics. On success every value is
 * read (ASan: no read past the buffer) and the count matches the shape. */
#include "fuzz_util.h"

#include "ebmc/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024], path[512];
    fz_write("s.npz", data, size, path, sizeof path);
    static const char *const names[] = {"mu", "sigma"};
    for (int k = 0; k < 2; k++) {
        ebmc_npy_info info;
        double *d = NULL;
        err[0] = 0;
        ebmc_status s = ebmc_npz_read_f64(path, names[k], &info, &d, err, sizeof err);
        fz_report(names[k], s, err);
        if (s == EBMC_OK) {
            size_t count = 1;
            for (int i = 0; i < info.ndim; i++) count *= (size_t)info.shape[i];
            if (count != info.count) abort();
            volatile double sink = 0;
            for (size_t i = 0; i < info.count; i++) sink += d[i];
            (void)sink;
        } else if (d || !err[0]) {
            abort();
        }
        free(d);
    }
    return 0;
}
