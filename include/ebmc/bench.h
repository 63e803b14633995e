/* defines: ebmc_bench_main, the `ebmc bench` command (bench/bench.c, compiled into the ebmc executable, not the library): throughput of ebmc's
 * Langevin samplers and of one Dual-MCMC training iteration on the context's backend, with the
 * timing protocol, FLOP counts and FLOP-limit fractions of specs/performance.md 4; also the
 * weight export, correctness-gate dumps and the line protocol (--serve) that bench/run.py uses to
 * time ebmc interleaved with the PyTorch peer (bench/peer_torch.py). */
#ifndef EBMC_BENCH_H
#define EBMC_BENCH_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ebmc bench [options]; returns the process exit status (0 ok, 1 run-time failure, 2 usage). */
int ebmc_bench_main(int argc, char **argv);
/* its usage text (ebmc bench --help) */
void ebmc_bench_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
