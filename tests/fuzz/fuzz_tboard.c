/* libFuzzer target: the TensorBoard event-file scan (ebmc_tb_scan), which a resume and the
 * divergence guard run over RUN/tb/events.out.tfevents.* before cutting the file back to its
 * checkpoint's length. Whatever the bytes: no read past a record, the valid prefix ends on a record
 * boundary inside the file, and a file that is not valid to its end says why. */
#include "fuzz_util.h"

#include "ebmc/tboard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char why[512] = "", path[512];
    fz_write("events.out.tfevents.fuzz", data, size, path, sizeof path);
    int64_t valid = -1, records = -1, last = -2;
    ebmc_status st = ebmc_tb_scan(path, &valid, &records, &last, why, sizeof why);
    fz_report("tb scan", st, why);
    if (st != EBMC_OK) {
        if (!why[0]) abort(); /* a failure names its cause */
        return 0;
    }
    if (valid < 0 || (uint64_t)valid > size || records < 0 || last < -1) abort();
    if (records == 0 && valid != 0) abort();
    if (records > 0 && (uint64_t)valid < 16 * (uint64_t)records) abort(); /* 16 bytes of framing each */
    if ((uint64_t)valid < size && !why[0]) abort(); /* a dropped tail is explained */
    return 0;
}
