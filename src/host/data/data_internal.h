/* defines: struct ebmc_dataset and the helpers shared by the data_*.c files (error messages,
 * allocation of a data set). Private to src/host. */
#ifndef EBMC_DATA_INTERNAL_H
#define EBMC_DATA_INTERNAL_H

#include "ebmc/data.h"

#include <stdarg.h>
#include <stdio.h>

struct ebmc_dataset {
    ebmc_data_kind kind;
    char name[64];
    int n, c, h, w;
    uint8_t *u8;         /* (N,C,H,W) images, or NULL */
    float *f32;          /* (N,C) points, or NULL */
    uint8_t *labels;     /* (N) class labels, or NULL */
    int32_t *component;  /* (N) toy mixture component, or NULL */
    float *centres;      /* (M,2) toy mode centres, or NULL */
    int n_modes;         /* M */
    float mode_std;
    int skipped;         /* images left out as bad (ebmc_data_images) */
};

/* err := "WHAT: fmt..." (WHAT may be NULL: no prefix). Always returns st. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
ebmc_status ebmc_data_err(ebmc_status st, char *err, size_t errlen, const char *what,
                          const char *fmt, ...);

/* A zeroed data set with its name (no pixel/point storage yet); NULL when out of memory. */
ebmc_dataset_t *ebmc_data_alloc(const char *name);

/* malloc that reports "WHAT: out of memory (B bytes for ...)" in err; NULL on failure. */
void *ebmc_data_malloc(size_t bytes, const char *what, const char *for_what, char *err,
                       size_t errlen);

/* data_toy_pd.c: particle dynamics' 2-D sets (8gaussians, swissroll, pinwheel, checkerboard,
 * pd_rings, 2spirals): the kind's index or -1; the data set of kind index kid. */
int ebmc_toy_pd_kind(const char *kind);
ebmc_status ebmc_data_toy_pd(int kid, int n, uint64_t seed, ebmc_dataset_t **out, char *err, size_t errlen);
/* data_celeba.c: Pillow's antialiased bilinear resize of an RGB region (w x h pixels, rows
 * `stride` bytes apart) to size x size, bit for bit as Image.resize(BILINEAR); false when out of
 * memory. The CelebA train partition: the official split by file number (part NULL) or the rows
 * marked 0 of list_eval_partition.txt (loaded into part, indexed by number, n the largest). */
bool ebmc_pil_resize_bilinear(const uint8_t *px, int w, int h, int stride, int size, uint8_t *hwc);
int ebmc_celeba_partition_load(const char *file, uint8_t **part, long *n, char *err, size_t errlen);
bool ebmc_celeba_in_train(const char *rel, const uint8_t *part, long n);

#endif
