/* libFuzzer target: the validating safetensors reader (ebmc_st_open) and its accessors. */
#include "fuzz_util.h"

#include "ebmc/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512], err[1024];
    ebmc_st_file *f = NULL;
    fz_write("in.safetensors", data, size, path, sizeof path);
    ebmc_status st_ = ebmc_st_open(path, &f, err, sizeof err);
    fz_report("open", st_, err);
    if (st_ != EBMC_OK) {
        if (f || !err[0]) abort(); /* a failure leaves nothing and says why */
        return 0;
    }
    volatile uint64_t sink = 0;
    for (int i = 0; i < ebmc_st_count(f); i++) {
        const ebmc_st_tensor *t = ebmc_st_at(f, i);
        if (!t || ebmc_st_find(f, t->name) == NULL) abort();
        int64_t n = ebmc_st_numel(t);
        if (n < 0) abort();
        size_t bytes = (size_t)n * ebmc_dtype_size(t->dtype);
        const uint8_t *b = t->data;
        if (bytes && !b) abort();
        if (bytes) sink += b[0] + b[bytes - 1]; /* both lie in the file's buffer (ASan) */
    }
    for (int i = 0; i < ebmc_st_meta_count(f); i++) {
        const char *k = ebmc_st_meta_key(f, i);
        if (!k || !ebmc_st_meta(f, k)) abort();
    }
    ebmc_st_close(f);
    return 0;
}
