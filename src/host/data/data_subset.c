/* defines: ebmc_data_take_classes -- a labelled data set cut down to given counts of given
 * classes, the first ones in file order (the authors' MNIST set of Carbone et al.: the first
 * 5600 "2", 2800 "3" and 1400 "6", weights 4:2:1; specs/particles.md 1(b)). */
#include "data/data_internal.h"

#include <stdlib.h>
#include <string.h>

/* "2:5600,3:2800,6:1400" -> want[class] = count (classes 0..255); false on a malformed spec */
static bool parse_spec(const char *spec, int *want) {
    memset(want, 0, 256 * sizeof(int));
    const char *p = spec;
    while (*p) {
        char *end;
        long c = strtol(p, &end, 10);
        if (end == p || *end != ':' || c < 0 || c > 255) return false;
        p = end + 1;
        long n = strtol(p, &end, 10);
        if (end == p || n < 1 || n > 100000000 || want[c]) return false;
        want[c] = (int)n;
        p = end;
        if (*p == ',') p++;
        else if (*p) return false;
    }
    return true;
}

ebmc_status ebmc_data_take_classes(const ebmc_dataset_t *ds, const char *spec, ebmc_dataset_t **out, char *err,
                                   size_t errlen) {
    *out = NULL;
    int want[256], got[256] = {0}, total = 0;
    if (!parse_spec(spec, want))
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "data.classes",
                             "'%s' is not a list CLASS:COUNT[,CLASS:COUNT...] (e.g. 2:5600,3:2800,6:1400)", spec);
    if (!ds->labels || !ds->u8)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "data.classes", "%s has no class labels", ds->name);
    for (int c = 0; c < 256; c++) total += want[c];
    for (int i = 0; i < ds->n; i++) got[ds->labels[i]]++;
    for (int c = 0; c < 256; c++)
        if (got[c] < want[c])
            return ebmc_data_err(EBMC_E_IO, err, errlen, ds->name, "data.classes asks for %d images of class %d, "
                                 "the data set has %d", want[c], c, got[c]);
    char name[64];
    snprintf(name, sizeof name, "%.40s-classes", ds->name);
    ebmc_dataset_t *s = ebmc_data_alloc(name);
    if (!s) return ebmc_data_err(EBMC_E_NOMEM, err, errlen, name, "out of memory");
    const size_t item = (size_t)ds->c * ds->h * ds->w;
    *s = (struct ebmc_dataset){.kind = ds->kind, .n = total, .c = ds->c, .h = ds->h, .w = ds->w};
    snprintf(s->name, sizeof s->name, "%s", name);
    s->u8 = ebmc_data_malloc((size_t)total * item, name, "the images", err, errlen);
    s->labels = ebmc_data_malloc((size_t)total, name, "the labels", err, errlen);
    if (!s->u8 || !s->labels) {
        ebmc_data_free(s);
        return EBMC_E_NOMEM;
    }
    int k = 0;
    for (int i = 0; i < ds->n && k < total; i++) {
        int c = ds->labels[i];
        if (want[c] == 0) continue;
        want[c]--;
        memcpy(s->u8 + (size_t)k * item, ds->u8 + (size_t)i * item, item);
        s->labels[k++] = (uint8_t)c;
    }
    *out = s;
    return EBMC_OK;
}
