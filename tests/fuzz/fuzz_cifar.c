/* libFuzzer target: the CIFAR-10 binary reader (ebmc_data_cifar10_ex) on the input as
 * test_batch.bin, with as many records per file as the size holds (at least 1). */
#include "fuzz_util.h"

#include "ebmc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512], err[1024];
    fz_write("test_batch.bin", data, size, path, sizeof path);
    int rec = (int)(size / 3073);
    if (rec < 1) rec = 1;
    ebmc_dataset_t *ds = NULL;
    ebmc_status st_ = ebmc_data_cifar10_ex(fz_dir(), false, rec, &ds, err, sizeof err);
    fz_report("cifar", st_, err);
    if (st_ == EBMC_OK) {
        if (ebmc_data_count(ds) != rec) abort();
        const uint8_t *lab = ebmc_data_labels(ds);
        for (int i = 0; i < rec; i++)
            if (lab[i] > 9) abort();
        ebmc_data_free(ds);
    } else if (ds || !err[0]) {
        abort();
    }
    return 0;
}
