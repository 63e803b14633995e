/* ebmc_comm_t over MPI (builds with EBMC_MPI): the world of an MPI launch. Collectives are the
 * non-blocking MPI ones polled against a deadline, so a rank that died or hangs ends the job
 * with a message naming the collective, instead of a hang (blocking MPI calls cannot time out). */
#include "ebmc/comm.h"
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ebmc_comm {
    bool mpi;          /* MPI was initialised for this world */
    int rank, size, local_rank;
    double timeout;    /* seconds */
};

static ebmc_comm_t g_world = {false, 0, 1, 0, 600.0};
static bool g_tried = false;

/* Started by an MPI launcher: Open MPI, MPICH/Hydra and Slurm's PMI2, or any PMIx launcher. */
static bool launched_by_mpi(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

ebmc_comm_t *ebmc_comm_world(void) {
    if (g_tried) return &g_world;
    g_tried = true;
    if (!launched_by_mpi()) return &g_world;
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "ebmc: MPI_Init_thread failed: running as a single process\n");
        return &g_world;
    }
    g_world.mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world.size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_world.rank, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(node, &g_world.local_rank);
        MPI_Comm_free(&node);
    }
    return &g_world;
}

bool ebmc_comm_built(void) { return true; }
int ebmc_comm_rank(const ebmc_comm_t *c) { return c->rank; }
int ebmc_comm_size(const ebmc_comm_t *c) { return c->size; }
int ebmc_comm_local_rank(const ebmc_comm_t *c) { return c->local_rank; }
void ebmc_comm_set_timeout(ebmc_comm_t *c, double s) { c->timeout = s > 0 ? s : c->timeout; }
double ebmc_comm_timeout(const ebmc_comm_t *c) { return c->timeout; }

_Noreturn void ebmc_comm_abort(ebmc_comm_t *c, int code) {
    fflush(stdout);
    fflush(stderr);
    if (c->mpi && c->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

void ebmc_comm_finalize(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (g_world.mpi && init && !fin) MPI_Finalize();
}

/* Waits for req until the timeout. (A signal changes nothing here: under mpirun every rank gets
 * it and they stop together after the same iteration, and rank 0 may be writing a checkpoint
 * while the others wait; a launcher that tears the job down kills the ranks itself.) */
static ebmc_status wait_req(ebmc_comm_t *c, MPI_Request *req, const char *what) {
    double t0 = ebmc_now_s();
    struct timespec nap = {0, 100000};
    for (long polls = 0;; polls++) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
            fprintf(stderr, "ebmc: rank %d of %d: %s: MPI failed\n", c->rank, c->size, what);
            ebmc_comm_abort(c, 1);
        }
        if (done) return EBMC_OK;
        double waited = ebmc_now_s() - t0;
        if (waited > c->timeout) {
            fprintf(stderr, "\nebmc: rank %d of %d: %s: no answer from the other ranks for %.0f s (a rank died or "
                    "hangs); aborting the job (HINT: run.comm_timeout sets the limit)\n", c->rank, c->size, what,
                    waited);
            ebmc_comm_abort(c, 1);
        }
        if (polls > 100) nanosleep(&nap, NULL); /* spin briefly, then poll at ~10 kHz */
    }
}

ebmc_status ebmc_comm_host_sum_f32(ebmc_comm_t *c, float *buf, size_t n, const char *what) {
    if (c->size < 2) return EBMC_OK;
    for (size_t off = 0; off < n; off += INT_MAX / 2) {
        int k = (int)(n - off < (size_t)INT_MAX / 2 ? n - off : (size_t)INT_MAX / 2);
        MPI_Request r;
        MPI_Iallreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r);
        EBMC_TRY(wait_req(c, &r, what));
    }
    return EBMC_OK;
}

ebmc_status ebmc_comm_sum_f64(ebmc_comm_t *c, double *buf, int n, const char *what) {
    if (c->size < 2) return EBMC_OK;
    MPI_Request r;
    if (c->rank == 0) MPI_Ireduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD, &r);
    else MPI_Ireduce(buf, NULL, n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD, &r);
    EBMC_TRY(wait_req(c, &r, what));
    MPI_Ibcast(buf, n, MPI_DOUBLE, 0, MPI_COMM_WORLD, &r);
    return wait_req(c, &r, what);
}

ebmc_status ebmc_comm_bcast(ebmc_comm_t *c, void *buf, size_t bytes, const char *what) {
    if (c->size < 2) return EBMC_OK;
    MPI_Request r;
    MPI_Ibcast(buf, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD, &r);
    return wait_req(c, &r, what);
}

void ebmc_comm_print_build_info(FILE *f) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    char *nl = strchr(v, '\n');
    if (nl) *nl = 0;
    int maj, min;
    MPI_Get_version(&maj, &min);
    fprintf(f, "MPI: built (MPI %d.%d: %s)\n", maj, min, v);
}
