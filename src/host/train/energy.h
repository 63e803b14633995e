/* defines: ebmc_net_energy -- the shared body of the recipes' `energy` entries (recipe.h): E(x) of
 * host examples through a net the recipe already has, on one of its tapes and device buffers, in
 * batches no larger than that tape's, with the sign that turns the net's output into the energy
 * (+1: the net outputs E; -1: it outputs the score f = -E). Nothing is allocated. */
#ifndef EBMC_TRAIN_ENERGY_H
#define EBMC_TRAIN_ENERGY_H

#include "ebmc/nn.h"

typedef struct {
    ebmc_net_t *net;
    ebmc_tape_t *tape;  /* a tape of net for at least max examples (its pass is overwritten) */
    float *dev;         /* device (max, elems): the net's input */
    float *stage;       /* NULL, or device (max, elems): x lands here, dev = a x + b (an input map) */
    float a, b;
    int max;
    size_t elems;       /* per example */
    float sign;         /* energy = sign * output */
} ebmc_energy_pass;

/* e[i] = sign * net(a x_i + b) for n host examples x (n, elems) into host e (n). Spectral norm's
 * power iteration is frozen for the call (W / sigma of the stored u, v) and restored after; the
 * context is synchronised. err: "energy: <the context's error>". */
ebmc_status ebmc_net_energy(const ebmc_energy_pass *p, const float *x, int n, float *e, char *err,
                            size_t errlen);

#endif
