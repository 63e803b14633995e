/* The spec's N3 (specs/particles.md, "How to test it without a GPU"), reduced to fit the test
 * budget: 8 Gaussians, the recipe's pd_mlp (hidden 32), 200 particles and data points per
 * iteration, Adam 1e-3, 600 iterations; particle dynamics (Alpha transport + 10 Langevin steps)
 * against PCD with the same 10 Langevin steps (the transport and the start are the differences:
 * each method starts as its authors' script does, alpha_toy.py with 1000 Langevin steps of 1e-4
 * from the base, zero_toy.py with steps of 1e-2). The grid log-likelihood (200 x 200 over
 * [-5, 5]^2) of 5000 data points must be higher for particle dynamics. Measured with these
 * settings over seeds 1-3: Alpha -3.34/-3.31/-3.31, PCD -3.82/-3.50/-3.46 (this test runs seed
 * 2). At this size the comparison is sensitive: with alpha's start PCD reaches -3.29 on seed 2.
 * The full-size comparison (10^4 iterations, the authors' settings, PCD with 20 steps, the
 * replay baseline) is scripts/particles_toy.sh. */
#include "testutil.h"
#include "recipes/particles.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double train_and_eval(const char *method) {
    const ebmc_recipe *rc = ebmc_recipe_find("particles");
    ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
    char m[64], err[1024];
    snprintf(m, sizeof m, "particles.method=%s", method);
    const char *args[] = {"run.recipe=particles", "run.backend=cpu", "run.seed=2", m, "data.dataset=toy2d",
                          "data.toy=8gaussians", "data.count=100000", "model.hidden=32", "particles.count=200",
                          "train.batch_size=200", "train.lr=1e-3", "particles.steps=10"};
    for (int i = 0; i < 12; i++)
        if (ebmc_config_set_arg(cfg, args[i], err, sizeof err)) fail_msg("%s: %s", args[i], err);
    if (strcmp(method, "alpha")) { /* zero_toy.py's start: 1000 steps of 1e-2 (alpha_toy.py: 1e-4) */
        ebmc_config_set_arg(cfg, "particles.init_step_size=1e-2", err, sizeof err);
        ebmc_config_set_arg(cfg, "particles.init_noise=0.1", err, sizeof err);
    }
    ebmc_run_t *run;
    if (ebmc_run_open(rc, cfg, true, &run, err, sizeof err)) fail_msg("%s", err);
    int64_t ep;
    for (int64_t it = 1; it <= 600; it++) {
        if (ebmc_run_next_batch(run, &ep, err, sizeof err)) fail_msg("%s", err);
        if (ebmc_run_iteration(run, it, ep, false)) fail_msg("%s", ebmc_ctx_error(ebmc_run_ctx(run)));
    }
    float *x = tu_malloc(5000 * 2);
    for (int i = 0; i < 5000; i += 200) {
        if (ebmc_run_next_batch(run, &ep, err, sizeof err)) fail_msg("%s", err);
        for (int k = 0; k < 400; k++) x[2 * i + k] = ebmc_run_batch(run)[k];
    }
    double logl, logz;
    if (pd_grid_loglik(ebmc_run_state(run), 200, x, 5000, &logl, &logz)) fail_msg("grid log-likelihood");
    printf("N3 (reduced): %s grid log-likelihood %.4f (log Z %.4f)\n", method, logl, logz);
    free(x);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return logl;
}

static void test_alpha_beats_pcd(void **state) {
    (void)state;
    double a = train_and_eval("alpha"), p = train_and_eval("pcd");
    assert_true(a > p);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_alpha_beats_pcd)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
