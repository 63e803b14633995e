/* Data sets: the common part (messages, allocation, accessors). The readers live in
 * data_cifar_mnist.c (CIFAR-10, MNIST), data_images.c (folders/tars of JPEG/PNG with a cache),
 * data_synth.c (shapes, 2-D toys); batches in data_loader.c. */
#include "data/data_internal.h"

#include <stdlib.h>
#include <string.h>

ebmc_status ebmc_data_err(ebmc_status st, char *err, size_t errlen, const char *what,
                          const char *fmt, ...) {
    if (!err || errlen == 0) return st;
    int k = what ? snprintf(err, errlen, "%s: ", what) : 0;
    if (k < 0) k = 0;
    if ((size_t)k < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    err[errlen - 1] = '\0';
    return st;
}

ebmc_dataset_t *ebmc_data_alloc(const char *name) {
    ebmc_dataset_t *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    snprintf(ds->name, sizeof ds->name, "%s", name);
    return ds;
}

void *ebmc_data_malloc(size_t bytes, const char *what, const char *for_what, char *err,
                       size_t errlen) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        ebmc_data_err(EBMC_E_NOMEM, err, errlen, what, "out of memory (%zu bytes for %s)", bytes,
                      for_what);
    return p;
}

void ebmc_data_free(ebmc_dataset_t *ds) {
    if (!ds) return;
    free(ds->u8);
    free(ds->f32);
    free(ds->labels);
    free(ds->component);
    free(ds->centres);
    free(ds);
}

ebmc_data_kind ebmc_data_kind_of(const ebmc_dataset_t *ds) {
    return ds ? ds->kind : EBMC_DATA_U8_IMAGES;
}

int ebmc_data_count(const ebmc_dataset_t *ds) { return ds ? ds->n : 0; }

void ebmc_data_shape(const ebmc_dataset_t *ds, int *c, int *h, int *w) {
    if (c) *c = ds ? ds->c : 0;
    if (h) *h = ds ? ds->h : 0;
    if (w) *w = ds ? ds->w : 0;
}

const uint8_t *ebmc_data_u8(const ebmc_dataset_t *ds) { return ds ? ds->u8 : NULL; }
const float *ebmc_data_f32(const ebmc_dataset_t *ds) { return ds ? ds->f32 : NULL; }
const char *ebmc_data_name(const ebmc_dataset_t *ds) { return ds ? ds->name : ""; }
const uint8_t *ebmc_data_labels(const ebmc_dataset_t *ds) { return ds ? ds->labels : NULL; }
int ebmc_data_images_skipped(const ebmc_dataset_t *ds) { return ds ? ds->skipped : 0; }

int ebmc_toy2d_modes(const ebmc_dataset_t *ds, const float **centres, float *std) {
    int m = (ds && ds->centres) ? ds->n_modes : 0;
    if (centres) *centres = m ? ds->centres : NULL;
    if (std) *std = m ? ds->mode_std : 0.0f;
    return m;
}

const int32_t *ebmc_toy2d_components(const ebmc_dataset_t *ds) {
    return ds ? ds->component : NULL;
}
