/* defines: ebmc_gmm_t -- the Gaussian-mixture model family of the Jarzynski experiment
 * (specs/particles.md 1(b)): U(x) = -log sum_k exp(-|x - a_k|^2/2 - z_k) with unit covariances,
 * means a (k,dim) and log-weights z (k) on the device; analytic energy, input gradient,
 * parameter gradients (the ops gmm_eval / gmm_pgrad), exact log Z = (dim/2) log 2 pi +
 * log sum_k e^-z_k, mode masses softmax(-z), exact draws from rho_theta, and plain gradient
 * descent with z_0 held fixed (the authors' gauge: "avoid global blow up").
 * A potential with parameters but no ebmc_net: the jarzynski recipe trains it directly. */
#ifndef EBMC_GMM_H
#define EBMC_GMM_H

#include "ebmc/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ebmc_gmm ebmc_gmm_t;

/* k components in R^dim, initialised as the authors': a ~ N(0, 0.01^2), first coordinates
 * spread over [-0.1, 0.1] (k = 2: -0.1 and +0.1), z = 0. max_n: the most points per call. */
ebmc_status ebmc_gmm_create(ebmc_ctx_t *ctx, int k, int dim, int max_n, uint64_t seed, ebmc_gmm_t **out);
void ebmc_gmm_free(ebmc_gmm_t *m);
int ebmc_gmm_k(const ebmc_gmm_t *m);
int ebmc_gmm_dim(const ebmc_gmm_t *m);
float *ebmc_gmm_means(ebmc_gmm_t *m); /* (k,dim) device */
float *ebmc_gmm_z(ebmc_gmm_t *m);     /* (k) device */

/* u (n), grad (n,dim), resp (n,k) at the current parameters (each nullable). */
ebmc_status ebmc_gmm_eval(ebmc_gmm_t *m, int n, const float *x, float *u, float *grad, float *resp);
/* The parameter gradient buffers: g = beta g + scale sum_i w_i dU/dtheta(x_i), resp from eval. */
ebmc_status ebmc_gmm_accumulate(ebmc_gmm_t *m, int n, const float *x, const float *resp, const float *w,
                                float scale, float beta);
/* theta <- theta - lr * g (means with lr_means, z_1.. with lr_z; z_0 fixed). */
ebmc_status ebmc_gmm_descend(ebmc_gmm_t *m, double lr_means, double lr_z);

/* Host copies of the parameters (for metrics); then the exact quantities. */
ebmc_status ebmc_gmm_fetch(ebmc_gmm_t *m, float *means, float *z);
double ebmc_gmm_log_z(const float *z, int k, int dim);
/* p_k = softmax(-z)_k into p (k) */
void ebmc_gmm_masses(const float *z, int k, double *p);

/* x (n,dim) device: n exact draws from rho_theta, the components split in proportion to their
 * masses (floor, the rest to the last), as the authors' half-and-half start. Host work + one
 * upload: for set-up, not for the loop. */
ebmc_status ebmc_gmm_sample(ebmc_gmm_t *m, int n, float *x, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
