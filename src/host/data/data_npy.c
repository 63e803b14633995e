/* A data set from one .npy file (data.dataset = npy, data.path = FILE): uint8 images
 * (N,H,W,C) with C = 1 or 3, or (N,H,W) grey, stored NHWC as `ebmc data`, `ebmc sample` and the
 * FID tools write them, turned into the data sets' (N,C,H,W); or float32 points (N,D), any D.
 * The file is validated by ebmc_npy_read (dtype, byte order, order, truncation). */
#include "data/data_internal.h"
#include "ebmc/npy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The example shape (C,H,W) a .npy holds, from its header alone. */
ebmc_status ebmc_data_npy_shape(const ebmc_npy_info *in, const char *path, int *c, int *h, int *w,
                                char *err, size_t errlen) {
    const int64_t *s = in->shape;
    if (in->dtype == EBMC_NPY_F32 && in->ndim == 2 && s[0] >= 1 && s[1] >= 1 && s[1] <= 1 << 20) {
        *c = (int)s[1], *h = *w = 1;
        return EBMC_OK;
    }
    bool img4 = in->ndim == 4 && (s[3] == 1 || s[3] == 3), img3 = in->ndim == 3;
    if (in->dtype == EBMC_NPY_U8 && (img4 || img3) && s[0] >= 1 && s[1] >= 1 && s[2] >= 1 && s[1] <= 4096 &&
        s[2] <= 4096) {
        *c = img4 ? (int)s[3] : 1, *h = (int)s[1], *w = (int)s[2];
        return EBMC_OK;
    }
    char shp[160] = "(";
    for (int i = 0; i < in->ndim; i++)
        snprintf(shp + strlen(shp), sizeof shp - strlen(shp), "%s%lld", i ? ", " : "", (long long)s[i]);
    strncat(shp, ")", sizeof shp - strlen(shp) - 1);
    ebmc_data_err(EBMC_E_IO, err, errlen, path,
                  "%s array of shape %s is neither uint8 images (N, H, W, C) with C = 1 or 3 (or (N, H, W)), "
                  "H and W at most 4096, nor float32 points (N, D), D at most 1048576; N >= 1",
                  in->dtype == EBMC_NPY_U8 ? "a uint8" : in->dtype == EBMC_NPY_F32 ? "a float32" : "a float64", shp);
    return EBMC_E_IO;
}

static ebmc_status npy_points(ebmc_dataset_t *ds, const float *src, const char *path, char *err,
                              size_t errlen) {
    size_t n = (size_t)ds->n * ds->c;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return ebmc_data_err(EBMC_E_IO, err, errlen, path, "point %zu, coordinate %zu is %s", i / ds->c,
                                 i % ds->c, isnan(src[i]) ? "NaN" : "infinite");
    ds->kind = EBMC_DATA_F32_POINTS;
    ds->f32 = ebmc_data_malloc(n * sizeof(float), path, "points", err, errlen);
    if (!ds->f32) return EBMC_E_NOMEM;
    memcpy(ds->f32, src, n * sizeof(float));
    return EBMC_OK;
}

static ebmc_status npy_images(ebmc_dataset_t *ds, const uint8_t *src, const char *path, char *err,
                              size_t errlen) {
    size_t hw = (size_t)ds->h * ds->w, per = hw * ds->c;
    ds->kind = EBMC_DATA_U8_IMAGES;
    ds->u8 = ebmc_data_malloc((size_t)ds->n * per, path, "images", err, errlen);
    if (!ds->u8) return EBMC_E_NOMEM;
    for (size_t i = 0; i < (size_t)ds->n; i++) /* NHWC -> NCHW */
        for (size_t p = 0; p < hw; p++)
            for (int c = 0; c < ds->c; c++) ds->u8[i * per + c * hw + p] = src[i * per + p * ds->c + c];
    return EBMC_OK;
}

ebmc_status ebmc_data_npy(const char *path, ebmc_dataset_t **out, char *err, size_t errlen) {
    *out = NULL;
    ebmc_npy_info in;
    void *data;
    EBMC_TRY(ebmc_npy_read(path, &in, &data, err, errlen));
    int c, h, w;
    ebmc_status s = ebmc_data_npy_shape(&in, path, &c, &h, &w, err, errlen);
    if (!s && in.shape[0] > 0x7fffffff) s = ebmc_data_err(EBMC_E_IO, err, errlen, path, "more than 2^31-1 examples");
    ebmc_dataset_t *ds = s ? NULL : ebmc_data_alloc("npy");
    if (!s && !ds) s = ebmc_data_err(EBMC_E_NOMEM, err, errlen, path, "out of memory");
    if (!s) {
        ds->n = (int)in.shape[0], ds->c = c, ds->h = h, ds->w = w;
        s = in.dtype == EBMC_NPY_F32 ? npy_points(ds, data, path, err, errlen)
                                     : npy_images(ds, data, path, err, errlen);
    }
    free(data);
    if (s) {
        ebmc_data_free(ds);
        return s;
    }
    *out = ds;
    return EBMC_OK;
}
