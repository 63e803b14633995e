/* Batches from a data set: a Philox-driven Fisher-Yates permutation per epoch, keyed by (seed,
 * epoch); optional horizontal flips decided by Philox(seed, epoch, position); images scaled to
 * [-1, 1]. The state is (epoch, position), nothing else. */
#include "data/data_internal.h"
#include "ebmc/philox.h"

#include <stdlib.h>
#include <string.h>

#define STREAM_PERM 0x5045524du /* "PERM" */
#define STREAM_FLIP 0x464c4950u /* "FLIP" */

struct ebmc_loader {
    const ebmc_dataset_t *ds;
    int batch;
    uint64_t seed;
    ebmc_loader_opts o;
    int64_t n;          /* items in the data set */
    int64_t nb;         /* batches per epoch */
    int64_t used;       /* items served per epoch: nb*batch with drop_last, else n */
    int64_t epoch, pos; /* where the next batch starts */
    int64_t perm_epoch; /* the epoch perm belongs to, -1 = none yet */
    int32_t *perm;      /* (N) item order of perm_epoch */
    size_t item;        /* floats per item: C*H*W */
    float lut[256];     /* byte -> x/127.5 - 1 */
    char err[512];
};

static ebmc_u32x4 philox(uint64_t seed, uint32_t a, int64_t epoch, uint32_t stream) {
    ebmc_u32x4 c = {{a, (uint32_t)epoch, (uint32_t)((uint64_t)epoch >> 32), stream}};
    return ebmc_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

static void make_perm(ebmc_loader_t *l, int64_t epoch) {
    if (l->perm_epoch == epoch) return;
    for (int64_t i = 0; i < l->n; i++) l->perm[i] = (int32_t)i;
    if (l->o.shuffle)
        for (int64_t i = l->n - 1; i > 0; i--) { /* Fisher-Yates, j uniform in 0..i */
            ebmc_u32x4 r = philox(l->seed, (uint32_t)i, epoch, STREAM_PERM);
            uint64_t v = ((uint64_t)r.v[1] << 32) | r.v[0];
            int64_t j = (int64_t)(v % (uint64_t)(i + 1)); /* bias <= N / 2^64 */
            int32_t t = l->perm[i];
            l->perm[i] = l->perm[j];
            l->perm[j] = t;
        }
    l->perm_epoch = epoch;
}

static bool flip_at(const ebmc_loader_t *l, int64_t epoch, int64_t pos) {
    return (philox(l->seed, (uint32_t)pos, epoch, STREAM_FLIP).v[0] >> 31) != 0;
}

ebmc_status ebmc_loader_create(const ebmc_dataset_t *ds, int batch, uint64_t seed,
                               ebmc_loader_opts o, ebmc_loader_t **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    const char *name = ds ? ds->name : "(no data set)";
    if (!out || !ds) return ebmc_data_err(EBMC_E_INVALID, err, errlen, name, "loader: NULL argument");
    if (ds->n < 1 || (!ds->u8 && !ds->f32))
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, name, "loader: the data set is empty");
    if (batch < 1)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, name, "loader: batch %d, need >= 1", batch);
    if (o.drop_last && ds->n < batch)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, name,
                             "loader: %d items make no full batch of %d (drop_last)", ds->n, batch);
    if (o.hflip && ds->kind != EBMC_DATA_U8_IMAGES)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, name,
                             "loader: hflip applies to images, this data set holds points");
    ebmc_loader_t *l = calloc(1, sizeof *l);
    if (!l) return ebmc_data_err(EBMC_E_NOMEM, err, errlen, name, "loader: out of memory");
    l->perm = ebmc_data_malloc((size_t)ds->n * sizeof(int32_t), name, "the loader's permutation",
                               err, errlen);
    if (!l->perm) {
        free(l);
        return EBMC_E_NOMEM;
    }
    l->ds = ds;
    l->batch = batch;
    l->seed = seed;
    l->o = o;
    l->n = ds->n;
    l->nb = o.drop_last ? l->n / batch : (l->n + batch - 1) / batch;
    l->used = o.drop_last ? l->nb * batch : l->n;
    l->perm_epoch = -1;
    l->item = (size_t)ds->c * ds->h * ds->w;
    for (int v = 0; v < 256; v++) l->lut[v] = (float)v / 127.5f - 1.0f;
    *out = l;
    return EBMC_OK;
}

ebmc_status ebmc_loader_next(ebmc_loader_t *l, float *out, int *n, int64_t *epoch) {
    if (!l) return EBMC_E_INVALID;
    if (!out) {
        snprintf(l->err, sizeof l->err, "%s: loader_next: out is NULL", l->ds->name);
        return EBMC_E_INVALID;
    }
    if (l->pos >= l->used) {
        l->epoch++;
        l->pos = 0;
    }
    make_perm(l, l->epoch);
    int64_t cnt = l->used - l->pos;
    if (cnt > l->batch) cnt = l->batch;
    const ebmc_dataset_t *ds = l->ds;
    const size_t item = l->item;
    for (int64_t b = 0; b < cnt; b++) {
        const size_t idx = (size_t)l->perm[l->pos + b];
        float *dst = out + (size_t)b * item;
        if (ds->kind == EBMC_DATA_F32_POINTS) {
            memcpy(dst, ds->f32 + idx * item, item * sizeof(float));
            continue;
        }
        const uint8_t *src = ds->u8 + idx * item;
        if (l->o.hflip && flip_at(l, l->epoch, l->pos + b)) {
            const int w = ds->w;
            for (size_t row = 0; row < item / (size_t)w; row++)
                for (int x = 0; x < w; x++)
                    dst[row * w + (size_t)x] = l->lut[src[row * w + (size_t)(w - 1 - x)]];
        } else {
            for (size_t k = 0; k < item; k++) dst[k] = l->lut[src[k]];
        }
    }
    if (cnt < l->batch)
        memset(out + (size_t)cnt * item, 0, (size_t)(l->batch - cnt) * item * sizeof(float));
    if (n) *n = (int)cnt;
    if (epoch) *epoch = l->epoch;
    l->pos += cnt;
    if (l->pos >= l->used) {
        l->epoch++;
        l->pos = 0;
    }
    return EBMC_OK;
}

int64_t ebmc_loader_batches_per_epoch(const ebmc_loader_t *l) { return l ? l->nb : 0; }

void ebmc_loader_get_state(const ebmc_loader_t *l, int64_t *epoch, int64_t *pos) {
    if (epoch) *epoch = l ? l->epoch : 0;
    if (pos) *pos = l ? l->pos : 0;
}

ebmc_status ebmc_loader_set_state(ebmc_loader_t *l, int64_t epoch, int64_t pos) {
    if (!l) return EBMC_E_INVALID;
    if (epoch < 0 || pos < 0 || pos > l->used || (pos % l->batch != 0 && pos != l->used)) {
        snprintf(l->err, sizeof l->err,
                 "%s: loader state (epoch %lld, position %lld) is invalid: need epoch >= 0 and a "
                 "position in 0..%lld that is a multiple of the batch %d",
                 l->ds->name, (long long)epoch, (long long)pos, (long long)l->used, l->batch);
        return EBMC_E_INVALID;
    }
    if (pos == l->used) {
        epoch++;
        pos = 0;
    }
    l->epoch = epoch;
    l->pos = pos;
    return EBMC_OK;
}

const char *ebmc_loader_error(const ebmc_loader_t *l) { return l ? l->err : ""; }

void ebmc_loader_free(ebmc_loader_t *l) {
    if (!l) return;
    free(l->perm);
    free(l);
}
