/* defines: ebmc_comm_t (the ranks of a data-parallel run: MPI for launch, control and the CPU
 * backend's collectives; NCCL for the CUDA backend's gradient all-reduce) and the context's
 * communicator (ebmc_ctx_set_comm, ebmc_ctx_grad_mean, the chain offset).
 *
 * A process started by an MPI launcher (mpirun, mpiexec, srun with PMI/PMIx) is one rank of
 * ebmc_comm_world(); any other process is the only rank of a world of size 1, and MPI is never
 * initialised. Every collective waits at most the communicator's timeout (run.comm_timeout): a
 * rank that died or hangs makes the others print which collective timed out and abort the job
 * (MPI_Abort), instead of waiting forever.
 *
 * Data parallelism is generic: the run shell gives each rank its slice of the global batch, sets
 * the context's chain rank (an op on n chains draws global chains rank x n + i) so that every
 * per-chain random draw uses the chain's global index, and every optimiser step (ebmc_adam_step) averages the gradients over the
 * ranks first (ebmc_ctx_grad_mean). A recipe needs no code of its own for it. */
#ifndef EBMC_COMM_H
#define EBMC_COMM_H

#include "ebmc/backend.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ebmc_comm ebmc_comm_t;

/* The world: initialises MPI on the first call when the process was started by an MPI launcher
 * (and ebmc was built with MPI). Never NULL. */
ebmc_comm_t *ebmc_comm_world(void);
/* true when this ebmc was built with MPI (EBMC_MPI) */
bool ebmc_comm_built(void);
int ebmc_comm_rank(const ebmc_comm_t *c);
int ebmc_comm_size(const ebmc_comm_t *c);
int ebmc_comm_local_rank(const ebmc_comm_t *c); /* rank among the ranks of this node */
/* Seconds a collective may wait for the other ranks before the job is aborted (> 0). */
void ebmc_comm_set_timeout(ebmc_comm_t *c, double seconds);
double ebmc_comm_timeout(const ebmc_comm_t *c);

/* Collectives (no-ops in a world of size 1). `what` names the collective in a timeout message.
 * host_sum_f32: in-place sum of n floats of host memory over the ranks.
 * sum_f64: the ranks' sum of n doubles, computed on rank 0 and broadcast, so every rank holds
 *   the same bits (the shell's decisions: divergence, stop).
 * bcast: bytes from rank 0 to every rank. */
ebmc_status ebmc_comm_host_sum_f32(ebmc_comm_t *c, float *buf, size_t n, const char *what);
ebmc_status ebmc_comm_sum_f64(ebmc_comm_t *c, double *buf, int n, const char *what);
ebmc_status ebmc_comm_bcast(ebmc_comm_t *c, void *buf, size_t bytes, const char *what);
/* Ends the whole job with `code` (MPI_Abort); exit(code) in a world of size 1. */
_Noreturn void ebmc_comm_abort(ebmc_comm_t *c, int code);
/* MPI_Finalize, once, when MPI was initialised (the shell calls it at exit). */
void ebmc_comm_finalize(void);
/* "MPI: Open MPI v4.1.4 ..." / "MPI: not built" lines for ebmc info */
void ebmc_comm_print_build_info(FILE *f);

/* ---- the context's communicator ---- */

/* Attaches the communicator to the context (collective: every rank calls it). On the CUDA
 * backend this creates the NCCL communicator (ncclCommInitRank, its unique id broadcast from
 * rank 0 over MPI). A world of size 1 needs none. */
ebmc_status ebmc_ctx_set_comm(ebmc_ctx_t *ctx, ebmc_comm_t *comm, char *err, size_t errlen);
ebmc_comm_t *ebmc_ctx_comm(const ebmc_ctx_t *ctx); /* NULL when none */
/* dev (count floats of the context's memory) <- its mean over the ranks: MPI_Allreduce on the
 * CPU backend, ncclAllReduce on CUDA (on the context's stream). No-op without a communicator
 * of size > 1. */
ebmc_status ebmc_ctx_grad_mean(ebmc_ctx_t *ctx, float *dev, size_t count);
/* The global index of this rank's chain 0: added to the chain index of every per-chain random
 * draw (Langevin noise, noise fills, reparameterisation, replay decisions), so that N ranks of
 * B chains draw what one process of N*B chains would. */
void ebmc_ctx_set_chain_offset(ebmc_ctx_t *ctx, uint32_t offset);
uint32_t ebmc_ctx_chain_offset(const ebmc_ctx_t *ctx);
/* The rank's index for per-chain draws (the run shell sets it; 0 by default): an op on n chains
 * of a rank draws the global chains chain_offset + rank * n + i. Every per-rank tensor of n rows
 * is then rank r's slice of the tensor of ranks * n rows one process would hold, whatever n is
 * (the data batch, train.chains split among the ranks), and sets each rank keeps whole (walkers,
 * particles) draw distinct noise on every rank. */
void ebmc_ctx_set_chain_rank(ebmc_ctx_t *ctx, uint32_t rank);
/* chain_offset + rank * n_chains: the global index of chain 0 of an op on n_chains chains; host
 * code drawing per-chain randomness itself (Philox on the CPU) adds it to its chain index. */
uint32_t ebmc_ctx_chain_base(const ebmc_ctx_t *ctx, int n_chains);

#ifdef __cplusplus
}
#endif
#endif
