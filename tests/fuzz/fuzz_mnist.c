/* libFuzzer target: the MNIST idx reader (ebmc_data_mnist), plain or gzip'd (zlib reads both).
 * Byte 0 chooses: bit 0, a labels file too; bit 1, the .gz names; bit 2, padding to 32. Bytes 1
 * and 2 (little-endian) are the length of the images file, the rest of the input after it is the
 * labels file. */
#include "fuzz_util.h"

#include "ebmc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    const uint8_t flags = data[0];
    const size_t n = size - 3;
    const uint8_t *p = data + 3;
    size_t split = (flags & 1) ? (size_t)data[1] | (size_t)data[2] << 8 : n;
    if (split > n) split = n;
    const bool gz = flags & 2;
    const char *img = gz ? "t10k-images-idx3-ubyte.gz" : "t10k-images-idx3-ubyte";
    const char *lab = gz ? "t10k-labels-idx1-ubyte.gz" : "t10k-labels-idx1-ubyte";
    char path[512], err[1024];
    fz_remove("t10k-images-idx3-ubyte");
    fz_remove("t10k-images-idx3-ubyte.gz");
    fz_remove("t10k-labels-idx1-ubyte");
    fz_remove("t10k-labels-idx1-ubyte.gz");
    fz_write(img, p, split, path, sizeof path);
    if (flags & 1) fz_write(lab, p + split, n - split, path, sizeof path);
    ebmc_dataset_t *ds = NULL;
    ebmc_status st_ =
        ebmc_data_mnist(fz_dir(), false, (flags & 4) ? 32 : 0, &ds, err, sizeof err);
    fz_report("mnist", st_, err);
    if (st_ == EBMC_OK) {
        int c, h, w;
        ebmc_data_shape(ds, &c, &h, &w);
        const uint8_t *u = ebmc_data_u8(ds);
        size_t last = (size_t)ebmc_data_count(ds) * c * h * w - 1;
        volatile uint8_t sink = u[0] + u[last]; /* ASan: the whole array is there */
        (void)sink;
        ebmc_data_free(ds);
    } else if (ds || !err[0]) {
        abort();
    }
    return 0;
}
