/* libFuzzer target: image folders and tars (ebmc_data_images): the tar parser (ustar, GNU long
 * names, pax paths, base-256 sizes), stb_image's JPEG/PNG decoders, the crop box and the resize.
 * Byte 0 chooses: bit 0, the rest is one image in a folder (else a tar); bit 1, a crop box;
 * bit 2, skip_bad. Images are prepared at 8x8. */
#include "fuzz_util.h"

#include "ebmc/data.h"

#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t flags = data[0];
    char path[512], err[1024];
    const char *src;
    static char folder[512];
    if (flags & 1) {
        if (!folder[0]) {
            snprintf(folder, sizeof folder, "%s/folder", fz_dir());
            if (mkdir(folder, 0700) != 0) abort();
        }
        snprintf(path, sizeof path, "%s/img.png", folder); /* the name only picks it up */
        FILE *f = fopen(path, "wb");
        if (!f || (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1) || fclose(f)) abort();
        src = folder;
    } else {
        src = fz_write("in.tar", data + 1, size - 1, path, sizeof path);
    }
    const float box[4] = {1.0f, 2.0f, 9.5f, 7.0f};
    ebmc_dataset_t *ds = NULL;
    ebmc_status st = ebmc_data_images(src, 8, (flags & 2) ? box : NULL, NULL, (flags & 4) != 0,
                                      &ds, err, sizeof err);
    fz_report("images", st, err);
    if (st == EBMC_OK) {
        const uint8_t *u = ebmc_data_u8(ds);
        volatile uint8_t sink = u[0] + u[(size_t)ebmc_data_count(ds) * 3 * 64 - 1];
        (void)sink;
        ebmc_data_free(ds);
    } else if (ds || !err[0]) {
        abort();
    }
    if (flags & 1) unlink(path);
    return 0;
}
