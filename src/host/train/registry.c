/* The keys `ebmc train` accepts. Defaults are the paper's CIFAR-10 values
 * (specs/teaching.md 1(f)); configs/ override per data set. */
#include "ebmc/train.h"

#define U 1, 0 /* range unchecked */

static const ebmc_cfg_key SCHEMA[] = {
    {"run", "out_dir", EBMC_CFG_STRING, "runs", "parent folder of run directories", U, NULL},
    {"run", "name", EBMC_CFG_STRING, "", "run directory name (empty: <config name>-<date>-<time>)", U, NULL},
    {"run", "seed", EBMC_CFG_INT, "1234", "seed of every random number: weights, data order, chains", 0, 4294967295.0, NULL},
    {"run", "backend", EBMC_CFG_CHOICE, "auto", "auto: CUDA when a GPU is found, else the CPU", U, "auto|cpu|cuda"},
    {"run", "device", EBMC_CFG_INT, "0", "CUDA device ordinal", 0, 64, NULL},
    {"run", "precision", EBMC_CFG_CHOICE, "tf32", "convolution precision on the GPU (fp32: no TF32 tensor cores)", U, "tf32|fp32"},
    {"run", "graphs", EBMC_CFG_BOOL, "true", "capture each Langevin chain once as a CUDA graph and replay it", U, NULL},
    {"run", "profile_iters", EBMC_CFG_STRING, "", "W:N: after W iterations of this run, N inside cudaProfilerStart/Stop (nsys --capture-range=cudaProfilerApi); empty: off", U, NULL},

    {"data", "dataset", EBMC_CFG_CHOICE, "shapes", "training data", U, "shapes|cifar10|mnist|images|toy2d"},
    {"data", "path", EBMC_CFG_STRING, "", "cifar10: folder of data_batch_*.bin; mnist: folder of idx files; images: folder or .tar", U, NULL},
    {"data", "size", EBMC_CFG_INT, "32", "shapes/images: image size in pixels", 4, 1024, NULL},
    {"data", "count", EBMC_CFG_INT, "10000", "shapes/toy2d: number of examples generated", 1, 1e8, NULL},
    {"data", "toy", EBMC_CFG_CHOICE, "gmm8", "toy2d: the 2-D distribution", U, "gmm8|gmm25|rings|spiral"},
    {"data", "hflip", EBMC_CFG_BOOL, "false", "random horizontal flips", U, NULL},
    {"data", "crop", EBMC_CFG_STRING, "", "images: crop box x0,y0,x1,y1 in source pixels (empty: the centred square)", U, NULL},
    {"data", "cache", EBMC_CFG_STRING, "", "images: prepared uint8 cache (empty: <path>.ebmc-<size>.cache)", U, NULL},
    {"data", "mnist_pad", EBMC_CFG_INT, "0", "mnist: pad 28x28 images to this size (0: keep)", 0, 64, NULL},

    {"model", "arch", EBMC_CFG_CHOICE, "dualmcmc_cifar10", "architecture of E, G and I", U,
     "dualmcmc_cifar10|dualmcmc_celeba64|mnist|toy2d"},
    {"model", "nz", EBMC_CFG_INT, "0", "latent size (0: the architecture's default)", 0, 65536, NULL},
    {"model", "ngf", EBMC_CFG_INT, "0", "generator width (0: default)", 0, 65536, NULL},
    {"model", "ndf", EBMC_CFG_INT, "0", "EBM width (0: default)", 0, 65536, NULL},
    {"model", "nif", EBMC_CFG_INT, "0", "inference-model width (0: default)", 0, 65536, NULL},
    {"model", "hidden", EBMC_CFG_INT, "0", "toy2d: MLP width (0: default)", 0, 65536, NULL},

    {"train", "epochs", EBMC_CFG_INT, "301", "epochs (the learning rates decay once per epoch)", 0, 1e9, NULL},
    {"train", "iterations", EBMC_CFG_INT, "0", "stop after this many iterations (0: epochs x batches per epoch)", 0, 1e12, NULL},
    {"train", "batch_size", EBMC_CFG_INT, "100", "batch size (also the chains per Langevin run)", 1, 65536, NULL},
    {"train", "lr_e", EBMC_CFG_FLOAT, "1e-4", "Adam learning rate of E", 0, 1, NULL},
    {"train", "lr_g", EBMC_CFG_FLOAT, "3e-4", "Adam learning rate of G", 0, 1, NULL},
    {"train", "lr_i", EBMC_CFG_FLOAT, "1e-4", "Adam learning rate of I", 0, 1, NULL},
    {"train", "beta1_e", EBMC_CFG_FLOAT, "0", "Adam beta1 of E", 0, 0.999999, NULL},
    {"train", "beta1_g", EBMC_CFG_FLOAT, "0", "Adam beta1 of G", 0, 0.999999, NULL},
    {"train", "beta1_i", EBMC_CFG_FLOAT, "0", "Adam beta1 of I", 0, 0.999999, NULL},
    {"train", "beta2", EBMC_CFG_FLOAT, "0.9", "Adam beta2 of all three", 0, 0.999999, NULL},
    {"train", "wd_e", EBMC_CFG_FLOAT, "0", "Adam L2 weight decay of E", 0, 1, NULL},
    {"train", "wd_g", EBMC_CFG_FLOAT, "5e-4", "Adam L2 weight decay of G", 0, 1, NULL},
    {"train", "wd_i", EBMC_CFG_FLOAT, "5e-4", "Adam L2 weight decay of I", 0, 1, NULL},
    {"train", "gamma_e", EBMC_CFG_FLOAT, "0.998", "ExponentialLR factor per epoch of E", 0, 1, NULL},
    {"train", "gamma_g", EBMC_CFG_FLOAT, "0.998", "ExponentialLR factor per epoch of G", 0, 1, NULL},
    {"train", "gamma_i", EBMC_CFG_FLOAT, "0.998", "ExponentialLR factor per epoch of I", 0, 1, NULL},
    {"train", "lambda_s", EBMC_CFG_FLOAT, "50", "weight of |G(z) - x~|^2 in G's loss (Sfactor; CelebA: 70)", 0, 1e6, NULL},
    {"train", "lambda_i", EBMC_CFG_FLOAT, "0.1", "weight of the NLL of z given x~ in I's loss (Ifactor)", 0, 1e6, NULL},
    {"train", "g_factor", EBMC_CFG_FLOAT, "1", "weight of the data terms of G's and I's losses (Gfactor)", 0, 1e6, NULL},
    {"train", "use_temp", EBMC_CFG_BOOL, "true", "divide E's loss by T = (noise/step_size)^2 of langevin_x", U, NULL},
    {"train", "fine_tune", EBMC_CFG_BOOL, "true", "revise samples of the updated G for E's update (the code's fine_tune)", U, NULL},

    {"langevin_x", "steps", EBMC_CFG_INT, "30", "data-space Langevin steps per chain", 1, 100000, NULL},
    {"langevin_x", "step_size", EBMC_CFG_FLOAT, "0.5", "s: x <- x - (s^2/2) grad E + noise xi (CelebA: 0.3)", 0, 100, NULL},
    {"langevin_x", "noise", EBMC_CFG_FLOAT, "0.001", "tau, the noise scale", 0, 100, NULL},

    {"langevin_z", "steps", EBMC_CFG_INT, "10", "latent Langevin steps", 1, 100000, NULL},
    {"langevin_z", "step_size", EBMC_CFG_FLOAT, "0.1", "s_z: z <- z - (s_z^2/2)(grad |x - G(z)|^2/sigma^2 + z/sp^2) + noise xi", 0, 100, NULL},
    {"langevin_z", "noise", EBMC_CFG_FLOAT, "0.1", "noise scale of the latent chain (the code's n_step_size)", 0, 100, NULL},
    {"langevin_z", "sigma", EBMC_CFG_FLOAT, "0.3", "sigma of the generator's likelihood", 1e-6, 1e6, NULL},
    {"langevin_z", "prior_sigma", EBMC_CFG_FLOAT, "1", "prior std of z", 1e-6, 1e6, NULL},

    {"guard", "max_gap", EBMC_CFG_FLOAT, "1e4", "|mean E(data) - mean E(samples)| beyond this is a divergence", 0, 1e30, NULL},
    {"guard", "max_recoveries", EBMC_CFG_INT, "3", "reloads of the last good checkpoint before giving up (exit 4)", 0, 1000, NULL},

    {"log", "grid_every", EBMC_CFG_INT, "500", "write sample grids every N iterations (0: only at the end)", 0, 1e12, NULL},
    {"log", "ckpt_every", EBMC_CFG_INT, "1000", "write a checkpoint every N iterations (0: only at the end)", 0, 1e12, NULL},
    {"log", "keep", EBMC_CFG_INT, "10", "checkpoints kept (the oldest are deleted)", 1, 100000, NULL},
    {"log", "grid_nrow", EBMC_CFG_INT, "10", "images per grid row", 1, 1000, NULL},
    {"log", "progress_every", EBMC_CFG_INT, "50", "a plain progress line every N iterations when stderr is not a terminal", 1, 1e9, NULL},
    {"log", "quiet", EBMC_CFG_BOOL, "false", "no progress output", U, NULL},

    {"sample", "n", EBMC_CFG_INT, "100", "samples written by ebmc sample", 1, 1e8, NULL},
    {"sample", "steps", EBMC_CFG_INT, "70", "test-time Langevin steps (the paper's FID runs: 70)", 0, 100000, NULL},
    {"sample", "step_size", EBMC_CFG_FLOAT, "0.4", "test-time step size s", 0, 100, NULL},
    {"sample", "noise", EBMC_CFG_FLOAT, "0.001", "test-time noise tau", 0, 100, NULL},
};

const ebmc_cfg_key *ebmc_dualmcmc_schema(int *n) {
    *n = (int)(sizeof SCHEMA / sizeof SCHEMA[0]);
    return SCHEMA;
}
