/* `ebmc train` with the test fixture recipe mle2d registered (tests/fixtures/recipe_mle2d.c): the
 * second recipe of the data-parallel tests (tests/mpi/test_mpi.py), run under mpirun like ebmc.
 * usage: mpi_train CONFIG [section.key=value ...] | --resume RUN_DIR [...] */
#include "ebmc/train.h"
#include "fixtures/recipe_mle2d.h"
#include <stdio.h>

int main(int argc, char **argv) {
    if (!ebmc_recipe_register(&test_recipe_mle2d)) {
        fprintf(stderr, "mpi_train: cannot register the mle2d recipe\n");
        return 1;
    }
    return ebmc_train_main(argc - 1, argv + 1);
}
