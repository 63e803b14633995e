#include "ebmc/checkpoint.h"
#include "ebmc/safetensors.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ebmc_status ebmc_net_save(ebmc_net_t *net, const char *path, const char *const (*extra)[2],
                          int n_extra, char *err, size_t errlen) {
    ebmc_ctx_t *ctx = ebmc_net_ctx(net);
    int nt = ebmc_net_tensor_count(net);
    size_t total = 0;
    for (int i = 0; i < nt; i++) total += ebmc_net_tensor_at(net, i)->count;
    float *host = malloc((total ? total : 1) * sizeof(float));
    ebmc_st_tensor *st = calloc((size_t)nt, sizeof *st);
    int nm = ebmc_net_meta_count(net);
    const char *(*meta)[2] = calloc((size_t)(nm + n_extra + 4), sizeof *meta);
    if (!host || !st || !meta) {
        free(host); free(st); free(meta);
        snprintf(err, errlen, "%s: out of host memory", path);
        return EBMC_E_NOMEM;
    }
    int64_t counter = ebmc_net_bn_batches(net);
    size_t off = 0;
    ebmc_status s = EBMC_OK;
    for (int i = 0; i < nt && !s; i++) {
        const ebmc_net_tensor *t = ebmc_net_tensor_at(net, i);
        st[i].name = t->name;
        st[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) st[i].shape[d] = t->shape[d];
        if (t->is_counter) {
            st[i].dtype = EBMC_DT_I64;
            st[i].data = &counter;
            continue;
        }
        st[i].dtype = EBMC_DT_F32;
        s = ebmc_copy(ctx, host + off, t->data, t->count * sizeof(float), EBMC_COPY_D2H);
        if (s) snprintf(err, errlen, "%s: reading %s from the device: %s", path, t->name, ebmc_ctx_error(ctx));
        st[i].data = host + off;
        off += t->count;
    }
    if (!s) {
        int k = 0;
        meta[k][0] = "format"; meta[k++][1] = "pt";
        meta[k][0] = "ebmc_version"; meta[k++][1] = EBMC_VERSION_STRING;
        meta[k][0] = "net"; meta[k++][1] = ebmc_net_name(net);
        meta[k][0] = "precision";
        meta[k++][1] = ebmc_ctx_precision_name(ctx); /* the CPU: fp32 whatever the option says */
        for (int i = 0; i < nm; i++) {
            ebmc_net_meta_at(net, i, &meta[k][0], &meta[k][1]);
            k++;
        }
        for (int i = 0; i < n_extra; i++) {
            meta[k][0] = extra[i][0];
            meta[k++][1] = extra[i][1];
        }
        s = ebmc_st_write(path, st, nt, (const char *const (*)[2])meta, k, err, errlen);
    }
    free(host);
    free(st);
    free(meta);
    return s;
}

static bool shape_eq(const ebmc_st_tensor *a, const ebmc_net_tensor *t) {
    if (a->ndim != t->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (a->shape[d] != t->shape[d]) return false;
    return true;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    int k = snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < (int)n; d++)
        k += snprintf(buf + k, n - k, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (k < (int)n) snprintf(buf + k, n - k, "]");
}

ebmc_status ebmc_net_load(ebmc_net_t *net, const char *path, char *err, size_t errlen) {
    ebmc_st_file *f = NULL;
    ebmc_status s = ebmc_st_open(path, &f, err, errlen);
    if (s) return s;
    /* architecture and role: a checkpoint of another model is refused by name first */
    int nm = ebmc_net_meta_count(net);
    for (int i = 0; i < nm; i++) {
        const char *k, *v;
        ebmc_net_meta_at(net, i, &k, &v);
        if (strcmp(k, "arch") && strcmp(k, "role") && strcmp(k, "widths")) continue;
        const char *fv = ebmc_st_meta(f, k);
        if (fv && strcmp(fv, v)) {
            snprintf(err, errlen, "%s: checkpoint %s is '%s' but the model's is '%s'%s", path, k,
                     fv, v, !strcmp(k, "widths") ? " (the configured widths differ)" : "");
            ebmc_st_close(f);
            return EBMC_E_IO;
        }
    }
    int nt = ebmc_net_tensor_count(net);
    for (int i = 0; i < nt; i++) {
        const ebmc_net_tensor *t = ebmc_net_tensor_at(net, i);
        const ebmc_st_tensor *a = ebmc_st_find(f, t->name);
        char want[96], got[96];
        if (!a) {
            snprintf(err, errlen, "%s: tensor '%s' is missing (a checkpoint of a different "
                     "architecture?)", path, t->name);
            s = EBMC_E_IO;
            break;
        }
        ebmc_dtype dt = t->is_counter ? EBMC_DT_I64 : EBMC_DT_F32;
        if (a->dtype != dt) {
            snprintf(err, errlen, "%s: tensor '%s' has dtype %s, expected %s%s", path, t->name,
                     ebmc_dtype_str(a->dtype), ebmc_dtype_str(dt),
                     a->dtype == EBMC_DT_BF16 ? " (HINT: a bf16 checkpoint; convert it to F32)" : "");
            s = EBMC_E_IO;
            break;
        }
        if (!shape_eq(a, t)) {
            shape_str(want, sizeof want, t->ndim, t->shape);
            shape_str(got, sizeof got, a->ndim, a->shape);
            snprintf(err, errlen, "%s: tensor '%s' has shape %s, the model needs %s (different "
                     "widths or architecture)", path, t->name, got, want);
            s = EBMC_E_IO;
            break;
        }
        int64_t bad = ebmc_st_nonfinite(a);
        if (bad >= 0) {
            snprintf(err, errlen, "%s: tensor '%s' is not finite (NaN or Inf at element %lld)", path, t->name,
                     (long long)bad);
            s = EBMC_E_IO;
            break;
        }
    }
    for (int i = 0; !s && i < ebmc_st_count(f); i++) {
        const ebmc_st_tensor *a = ebmc_st_at(f, i);
        if (!ebmc_net_tensor_find(net, a->name)) {
            snprintf(err, errlen, "%s: tensor '%s' is not part of the model %s (a checkpoint of a "
                     "different architecture?)", path, a->name, ebmc_net_name(net));
            s = EBMC_E_IO;
        }
    }
    ebmc_ctx_t *ctx = ebmc_net_ctx(net);
    for (int i = 0; !s && i < nt; i++) {
        const ebmc_net_tensor *t = ebmc_net_tensor_at(net, i);
        const ebmc_st_tensor *a = ebmc_st_find(f, t->name);
        if (t->is_counter) {
            int64_t v;
            memcpy(&v, a->data, sizeof v);
            ebmc_net_set_bn_batches(net, v);
            continue;
        }
        s = ebmc_copy(ctx, t->data, a->data, t->count * sizeof(float), EBMC_COPY_H2D);
        if (s) snprintf(err, errlen, "%s: copying '%s' to the device: %s", path, t->name, ebmc_ctx_error(ctx));
    }
    ebmc_st_close(f);
    return s;
}
