/* libFuzzer target: the INI config parser (ebmc_config_load) and the command-line form
 * (ebmc_config_set_arg) on a schema with every value type. A file that loads must write back
 * (ebmc_config_to_ini) to text that loads to the same text: anything else aborts. */
#include "fuzz_util.h"

#include "ebmc/config.h"

static const ebmc_cfg_key SCHEMA[] = {
    {"data", "path", EBMC_CFG_STRING, "", "a folder", 0, -1, NULL},
    {"data", "batch", EBMC_CFG_INT, "64", "images per batch", 1, 4096, NULL},
    {"train", "lr", EBMC_CFG_FLOAT, "1e-4", "learning rate", 0, 1, NULL},
    {"train", "steps", EBMC_CFG_INT, "1000", "iterations", 1, 1e9, NULL},
    {"train", "seed", EBMC_CFG_INT, "-1", "seed", 0, -1, NULL},
    {"train", "ema", EBMC_CFG_BOOL, "yes", "keep an EMA copy", 0, -1, NULL},
    {"sampler", "kind", EBMC_CFG_CHOICE, "langevin", "the sampler", 0, -1, "langevin|hmc|mala"},
    {"sampler", "step_size", EBMC_CFG_FLOAT, "10", "step size", 0, -1, NULL},
    {"log", "tag", EBMC_CFG_STRING, "", "free text", 0, -1, NULL},
    {"log", "need", EBMC_CFG_STRING, NULL, "a required key", 0, -1, NULL},
};
#define NSCHEMA ((int)(sizeof SCHEMA / sizeof SCHEMA[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512], err[1024];
    ebmc_config_t *c = ebmc_config_create(SCHEMA, NSCHEMA);
    fz_write("in.ini", data, size, path, sizeof path);
    ebmc_status st_ = ebmc_config_load(c, path, err, sizeof err);
    fz_report("load", st_, err);
    if (st_ == EBMC_OK) {
        (void)ebmc_config_check_required(c, err, sizeof err);
        char *ini = ebmc_config_to_ini(c);
        ebmc_config_t *d = ebmc_config_create(SCHEMA, NSCHEMA);
        fz_write("back.ini", (const uint8_t *)ini, strlen(ini), path, sizeof path);
        if (ebmc_config_load(d, path, err, sizeof err) != EBMC_OK) {
            fprintf(stderr, "written config does not load back: %s\n%s", err, ini);
            abort();
        }
        char *ini2 = ebmc_config_to_ini(d);
        if (strcmp(ini, ini2) != 0) {
            fprintf(stderr, "round trip changed the config:\n%s\n---\n%s", ini, ini2);
            abort();
        }
        free(ini2);
        free(ini);
        ebmc_config_free(d);
    } else if (!err[0]) {
        fprintf(stderr, "a failed load left no message\n");
        abort();
    }
    /* the same bytes as one command-line argument (up to the first NUL) */
    char *arg = malloc(size + 1);
    memcpy(arg, data, size);
    arg[size] = '\0';
    if (ebmc_config_set_arg(c, arg, err, sizeof err) != EBMC_OK && !err[0]) abort();
    free(arg);
    ebmc_config_free(c);
    return 0;
}
