/* ebmc_comm_t of a build without MPI (EBMC_MPI=OFF or no MPI found): every process is the only
 * rank of its world, collectives are no-ops, and a process an MPI launcher started says that it
 * cannot join the other ranks (instead of N copies each training alone). */
#include "ebmc/comm.h"
#include <stdlib.h>

struct ebmc_comm {
    int rank, size;
    double timeout;
};

static ebmc_comm_t g_world = {0, 1, 600.0};

ebmc_comm_t *ebmc_comm_world(void) {
    static bool warned = false;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (n && atoi(n) > 1 && !warned) {
        warned = true;
        fprintf(stderr, "ebmc: error: started as one of %s MPI ranks, but this ebmc was built without MPI "
                "(HINT: apt-get install libopenmpi-dev openmpi-bin, then rebuild with -DEBMC_MPI=ON)\n", n);
        exit(2);
    }
    return &g_world;
}

bool ebmc_comm_built(void) { return false; }
int ebmc_comm_rank(const ebmc_comm_t *c) { return c->rank; }
int ebmc_comm_size(const ebmc_comm_t *c) { return c->size; }
int ebmc_comm_local_rank(const ebmc_comm_t *c) { return 0; }
void ebmc_comm_set_timeout(ebmc_comm_t *c, double s) { c->timeout = s > 0 ? s : c->timeout; }
double ebmc_comm_timeout(const ebmc_comm_t *c) { return c->timeout; }
ebmc_status ebmc_comm_host_sum_f32(ebmc_comm_t *c, float *b, size_t n, const char *w) { return EBMC_OK; }
ebmc_status ebmc_comm_sum_f64(ebmc_comm_t *c, double *b, int n, const char *w) { return EBMC_OK; }
ebmc_status ebmc_comm_bcast(ebmc_comm_t *c, void *b, size_t n, const char *w) { return EBMC_OK; }
_Noreturn void ebmc_comm_abort(ebmc_comm_t *c, int code) { exit(code); }
void ebmc_comm_finalize(void) {}
void ebmc_comm_print_build_info(FILE *f) { fprintf(f, "MPI: not built (EBMC_MPI=OFF or no MPI found)\n"); }
