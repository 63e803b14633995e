/* defines: EBMC_RANGE_PUSH(name), EBMC_RANGE_POP() — NVTX ranges around host-side phases (chain
 * runs, network passes, optimiser steps, the phases of a training iteration), so Nsight Systems
 * timelines read in ebmc's own names (specs/conventions.md 2.8).
 *
 * With the CUDA backend built (EBMC_WITH_CUDA) they are NVTX3's nvtxRangePushA/nvtxRangePop:
 * header-only (nvtx3/nvToolsExt.h from the CUDA toolkit's include folder; links only -ldl), and
 * nearly free when no profiler is attached, so they stay in release builds. Without CUDA they
 * compile to nothing and no CUDA header is needed. Every PUSH must meet its POP on every path
 * (C has no RAII): wrap a function body rather than returning from inside a range. The kernel
 * launchers of src/kernels/ use cuda_check.h's EBMC_NVTX_PUSH/POP, the same calls. */
#ifndef EBMC_NVTX_H
#define EBMC_NVTX_H

#if defined(EBMC_WITH_CUDA) && !defined(EBMC_NO_NVTX)
#include <nvtx3/nvToolsExt.h>
#define EBMC_RANGE_PUSH(name) ((void)nvtxRangePushA(name))
#define EBMC_RANGE_POP() ((void)nvtxRangePop())
#else
#define EBMC_RANGE_PUSH(name) ((void)(name))
#define EBMC_RANGE_POP() ((void)0)
#endif

#endif
