/* defines: ebmc_data_gmm -- the teacher of the Gaussian-mixture experiment of Carbone et al.
 * (specs/particles.md 1(b)): n points in R^dim from rho_* = 1/4 N(-10 e_1, I) + 3/4 N(6 e_1, I),
 * split exactly floor(n/4) / the rest (as the authors' GMM.py), noise from Philox. */
#include "data/data_internal.h"
#include "ebmc/philox.h"

#include <stdlib.h>
#include <string.h>

#define STREAM_GMM 0x474d4d35u /* "GMM5" */

ebmc_status ebmc_data_gmm(int dim, int n, uint64_t seed, ebmc_dataset_t **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!out) return ebmc_data_err(EBMC_E_INVALID, err, errlen, "gmm", "out is NULL");
    if (n < 1 || dim < 1 || (double)n * dim > 2e9)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "gmm", "n = %d points of dim = %d: need n, dim >= 1", n, dim);
    char name[64];
    snprintf(name, sizeof name, "gmm%d", dim);
    ebmc_dataset_t *ds = ebmc_data_alloc(name);
    if (!ds) return ebmc_data_err(EBMC_E_NOMEM, err, errlen, name, "out of memory");
    ds->kind = EBMC_DATA_F32_POINTS;
    ds->n = n, ds->c = dim, ds->h = ds->w = 1;
    ds->f32 = ebmc_data_malloc((size_t)n * dim * sizeof(float), name, "the points", err, errlen);
    ds->component = ebmc_data_malloc((size_t)n * sizeof(int32_t), name, "the components", err, errlen);
    if (!ds->f32 || !ds->component) {
        ebmc_data_free(ds);
        return EBMC_E_NOMEM;
    }
    const int n0 = n / 4; /* mass 1/4 at -10 e_1 */
    for (int i = 0; i < n; i++) {
        float *x = ds->f32 + (size_t)i * dim;
        for (int g = 0; g < dim; g += 4) {
            float z[4];
            ebmc_philox_normal4(seed, (uint32_t)(g / 4), (uint32_t)i, 0, STREAM_GMM, z);
            for (int l = 0; l < 4 && g + l < dim; l++) x[g + l] = z[l];
        }
        ds->component[i] = i < n0 ? 0 : 1;
        x[0] += i < n0 ? -10.0f : 6.0f;
    }
    *out = ds;
    return EBMC_OK;
}
