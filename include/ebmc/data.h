/* defines: ebmc_dataset_t (CIFAR-10, MNIST, image folders/tars with a cache, procedural shapes,
 * 2-D toy points) and ebmc_loader_t (seeded, resumable batches in [-1, 1]).
 *
 * A data set lives in host memory: images as uint8 (N,C,H,W), points as float (N,C) with H=W=1.
 * Every fallible call returns an ebmc_status and writes one message "PATH: problem" into err
 * (err may be NULL; it is always NUL-terminated when errlen > 0): EBMC_E_IO for a missing,
 * unreadable, truncated or malformed file, EBMC_E_INVALID for a bad argument, EBMC_E_NOMEM when
 * memory runs out. Nothing crashes on bad input and *out is NULL after a failure.
 *
 * Randomness (shapes, toy points, shuffles, flips) is Philox4x32-10 keyed by the seed (see
 * ebmc/philox.h), so results depend only on the seed and the indices, never on call order. */
#ifndef EBMC_DATA_H
#define EBMC_DATA_H

#include "ebmc/common.h"
#include "ebmc/npy.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { EBMC_DATA_U8_IMAGES = 0, EBMC_DATA_F32_POINTS = 1 } ebmc_data_kind;

typedef struct ebmc_dataset ebmc_dataset_t;

/* CIFAR-10 binary version. dir holds data_batch_1..5.bin (train) or test_batch.bin (test), or is
 * the parent of cifar-10-batches-bin/ holding them (both are accepted; the subfolder wins when
 * it exists). Each file must be exactly 10000 records of 3073 bytes (label 0..9, 1024 R, 1024 G,
 * 1024 B, rows top to bottom): a missing file, a size other than 30,730,000 bytes ("found F
 * bytes, expected E") or a label > 9 is EBMC_E_IO naming the file. Result: (N,3,32,32) uint8,
 * N = 50000 or 10000, in file order; labels in ebmc_data_labels. Name "cifar10-train"/"-test". */
ebmc_status ebmc_data_cifar10(const char *dir, bool train, ebmc_dataset_t **out, char *err,
                              size_t errlen);
/* The same with records_per_file records expected in each file instead of 10000 (addition: for
 * tests and hand-made subsets; records_per_file >= 1). */
ebmc_status ebmc_data_cifar10_ex(const char *dir, bool train, int records_per_file,
                                 ebmc_dataset_t **out, char *err, size_t errlen);

/* MNIST idx files. dir holds train-images-idx3-ubyte (train) or t10k-images-idx3-ubyte (test),
 * plain or gzip'd (NAME or NAME.gz; the plain one is used when both exist). Checked: magic
 * 0x00000803, 28x28 images, count >= 1, exactly count*784 data bytes (no more, no less), a
 * readable gzip stream. The matching labels file (train-labels-idx1-ubyte / t10k-labels-idx1-ubyte,
 * [.gz]) is optional: when present it is validated the same way (magic 0x00000801, same count,
 * labels 0..9) and exposed by ebmc_data_labels. pad_to: 0 (or 28) keeps (N,1,28,28); a larger
 * size (up to 1024) pads with zeros, centred (extra row/column right/bottom when odd), e.g. 32 ->
 * (N,1,32,32). Name "mnist-train"/"mnist-test". */
ebmc_status ebmc_data_mnist(const char *dir, bool train, int pad_to, ebmc_dataset_t **out,
                            char *err, size_t errlen);

/* JPEG/PNG images from a folder (searched recursively; files named *.jpg, *.jpeg, *.png in any
 * letter case; names starting with '.' ignored; other files ignored) or from an uncompressed
 * .tar (ustar/GNU/pax, same name rules), taken in bytewise order of their relative path. Each is
 * decoded to RGB (grey expanded, alpha dropped without compositing), cropped to box = {x0, y0,
 * x1, y1} in pixels of the source (pixel i spans [i, i+1); fractional values allowed; the box
 * must lie inside the image; NULL = the largest centred square) and resized to size x size
 * (1..1024; a non-square box is stretched) with stb_image_resize's Catmull-Rom filter (scaled
 * for antialiasing when shrinking, edge clamp) on the byte values as linear floats (not
 * sRGB-aware), rounded to uint8. Result (N,3,size,size).
 *
 * cache_path (NULL = no cache): the prepared data are written there atomically (header below,
 * then uint8 NCHW) and read back on later calls whose hash matches; a missing, stale or damaged
 * cache is rebuilt with a notice on stderr. The hash covers the sorted list of (relative path,
 * file size, a 64-bit hash of the file's bytes), the box, size, skip_bad and the cache version:
 * an image replaced by another of the same size is noticed (each image is read once more to
 * hash it, only when there is a cache). A folder is walked following symbolic links, each
 * folder and each file (by device and inode) once: a link loop does not multiply the images,
 * a second name of a file does not count it twice.
 *
 * An unreadable or undecodable image, or one the box does not fit, is EBMC_E_IO naming it
 * ("DIR/a/b.jpg: ..." or "ARCHIVE.tar:member.jpg: ..."), unless skip_bad: then it is left out,
 * counted, and the count reported once on stderr (also when the cache is reused). No image at
 * all is EBMC_E_IO. Name "images". */
ebmc_status ebmc_data_images(const char *path, int size, const float *box, const char *cache_path,
                             bool skip_bad, ebmc_dataset_t **out, char *err, size_t errlen);
/* ebmc_data_images with the CelebA protocol of the Dual-MCMC authors (addition):
 *   resize   EBMC_RESIZE_CATMULL_ROM: as ebmc_data_images; EBMC_RESIZE_PIL_BILINEAR: the box
 *            (integer pixels) cropped, then Pillow's antialiased bilinear Image.resize, bit for
 *            bit (what torchvision's Resize does to a PIL image)
 *   split    EBMC_SPLIT_ALL, or EBMC_SPLIT_CELEBA_TRAIN: only files numbered 1..162770
 *            (000001.jpg ...), or, with partition_file (list_eval_partition.txt), those marked 0
 * Both enter the cache's hash. Name "images". */
typedef enum { EBMC_RESIZE_CATMULL_ROM = 0, EBMC_RESIZE_PIL_BILINEAR = 1 } ebmc_resize_filter;
typedef enum { EBMC_SPLIT_ALL = 0, EBMC_SPLIT_CELEBA_TRAIN = 1 } ebmc_image_split;
typedef struct {
    ebmc_resize_filter resize;
    ebmc_image_split split;
    const char *partition_file; /* NULL or "": the official numbering */
} ebmc_images_opts;
ebmc_status ebmc_data_images_ex(const char *path, int size, const float *box, const char *cache_path,
                                bool skip_bad, const ebmc_images_opts *o, ebmc_dataset_t **out, char *err,
                                size_t errlen);
/* Cache file layout (little-endian):
 *   0  char[8]  "EBMCIMGC"
 *   8  u32      version (EBMC_IMAGE_CACHE_VERSION)
 *  12  u32      count N
 *  16  u32      channels (3)
 *  20  u32      size (H = W)
 *  24  u64      hash (FNV-1a 64 of the inputs named above)
 *  32  u32      images skipped as bad
 *  36  u32      0 (reserved)
 *  40  u8[N*3*size*size]  (N,3,size,size)  */
#define EBMC_IMAGE_CACHE_VERSION 2u /* 2: the hash covers the images' bytes */
/* Images left out as bad by the last ebmc_data_images that made or reused ds (0 otherwise). */
int ebmc_data_images_skipped(const ebmc_dataset_t *ds);

/* Procedural image set needing no download (the quick-start default): n images (N,3,size,size),
 * size 8..1024. Each: a background, plain (half of them) or two-tone (two colours split by a
 * horizontal, vertical or diagonal line), in dark, muted colours; then 1-3 shapes (filled
 * circle, axis-aligned square, upright triangle) in bright, saturated colours, of random hue,
 * position and scale (radius 0.12..0.28 of size, wholly inside the image), later ones drawn over
 * earlier ones, edges anti-aliased (coverage from the signed distance at the pixel centre).
 * Image i depends only on (seed, i). Name "shapes". */
ebmc_status ebmc_data_shapes(int n, int size, uint64_t seed, ebmc_dataset_t **out, char *err,
                             size_t errlen);
/* The same with 1..max_shapes shapes per image, the count uniform (max_shapes 1..3; 3 is
 * ebmc_data_shapes). Only the count differs: image i's background and its k-th shape (type,
 * place, size, colour) are those of ebmc_data_shapes's image i for the same seed, so with
 * max_shapes = 1 each image is ebmc_data_shapes's image i with its first shape alone. */
ebmc_status ebmc_data_shapes_ex(int n, int size, int max_shapes, uint64_t seed, ebmc_dataset_t **out,
                                char *err, size_t errlen);
/* The same with the shapes' radii drawn uniform in [r_min, r_max) x size instead of 0.12..0.28
 * (0 < r_min <= r_max <= 0.5; r_min 0.12, r_max 0.28 is ebmc_data_shapes_ex, bit for bit). */
ebmc_status ebmc_data_shapes_sized(int n, int size, int max_shapes, double r_min, double r_max,
                                   uint64_t seed, ebmc_dataset_t **out, char *err, size_t errlen);
/* The same with simpler colours (each choice draws the same random numbers, so the shapes' kinds,
 * places and sizes are ebmc_data_shapes_sized's for the same seed):
 *   black_bg       the background black (0) instead of dark muted colours, half of them two-tone
 *   white_shapes   every shape white (1) instead of a bright saturated random hue
 * Both false is ebmc_data_shapes_sized, bit for bit. */
ebmc_status ebmc_data_shapes_styled(int n, int size, int max_shapes, double r_min, double r_max, bool black_bg,
                                    bool white_shapes, uint64_t seed, ebmc_dataset_t **out, char *err,
                                    size_t errlen);

/* 2-D toy points (N,2) from seed (point i depends only on (seed, kind, i)):
 *   "gmm8"   8 Gaussians, centres on the circle of radius 2 at angles 2*pi*k/8, std 0.05,
 *            equal weights
 *   "gmm25"  25 Gaussians, centres on the grid {-4,-2,0,2,4}^2 (row-major, x fastest),
 *            std 0.05, equal weights
 *   "rings"  4 concentric circles of radii 0.5, 1, 1.5, 2 (a ring is chosen with probability
 *            proportional to its radius, so the density along the rings is uniform), radial
 *            noise std 0.04; component = ring index
 *   "spiral" 2 interleaved spiral arms (arm 1 is arm 0 turned by pi): angle t = 3*pi*(0.1 +
 *            0.9*sqrt(u)), point = (2t/(3pi)) (cos(t + pi*arm), sin(t + pi*arm)) + N(0, 0.05^2 I),
 *            within about [-2, 2]^2; component = arm
 * n >= 1. Name "toy2d-KIND". */
ebmc_status ebmc_data_toy2d(const char *kind, int n, uint64_t seed, ebmc_dataset_t **out,
                            char *err, size_t errlen);
/* The Gaussian-mixture teacher of the Jarzynski experiment (specs/particles.md 1(b)): n points
 * (N,dim) of rho_* = 1/4 N(-10 e_1, I) + 3/4 N(6 e_1, I), the first floor(n/4) from the mode at
 * -10 (component 0), the rest from +6 (component 1). Point i depends only on (seed, i). Name
 * "gmm<dim>". */
ebmc_status ebmc_data_gmm(int dim, int n, uint64_t seed, ebmc_dataset_t **out, char *err, size_t errlen);
/* A labelled data set (MNIST, CIFAR-10) cut down to the first COUNT images of each CLASS, in
 * file order: spec "CLASS:COUNT[,CLASS:COUNT...]" (e.g. "2:5600,3:2800,6:1400", the MNIST set of
 * the Jarzynski paper). A malformed spec or a set without labels is EBMC_E_INVALID; too few
 * images of a class EBMC_E_IO. ds is not changed. Name "<ds name>-classes". */
ebmc_status ebmc_data_take_classes(const ebmc_dataset_t *ds, const char *spec, ebmc_dataset_t **out, char *err,
                                   size_t errlen);
/* For "gmm8"/"gmm25": the number M of modes, *centres = (M,2) and *std = the component std.
 * Other data sets: 0 (centres NULL, std 0). Either output pointer may be NULL. */
int ebmc_toy2d_modes(const ebmc_dataset_t *ds, const float **centres, float *std);
/* The true mixture component of each toy point, (N) (addition), or NULL for other data sets. */
const int32_t *ebmc_toy2d_components(const ebmc_dataset_t *ds);

/* One .npy file (addition): uint8 images (N,H,W,C), C = 1 or 3, or (N,H,W) grey -> (N,C,H,W);
 * float32 points (N,D), any D, finite -> points (N,D). The file is validated as ebmc_npy_read
 * does (dtype, byte order, C order, truncation, trailing bytes); any other dtype or shape is
 * EBMC_E_IO naming the file and what it holds. Name "npy". */
ebmc_status ebmc_data_npy(const char *path, ebmc_dataset_t **out, char *err, size_t errlen);
/* The example shape (C,H,W) of a .npy from its header (ebmc_npy_read_header); EBMC_E_IO when it
 * holds neither images nor points. */
ebmc_status ebmc_data_npy_shape(const ebmc_npy_info *info, const char *path, int *c, int *h, int *w,
                                char *err, size_t errlen);

void ebmc_data_free(ebmc_dataset_t *ds); /* NULL is fine */
ebmc_data_kind ebmc_data_kind_of(const ebmc_dataset_t *ds);
int ebmc_data_count(const ebmc_dataset_t *ds);
void ebmc_data_shape(const ebmc_dataset_t *ds, int *c, int *h, int *w); /* any may be NULL */
const uint8_t *ebmc_data_u8(const ebmc_dataset_t *ds); /* (N,C,H,W) or NULL */
const float *ebmc_data_f32(const ebmc_dataset_t *ds);  /* (N,C) points or NULL */
const char *ebmc_data_name(const ebmc_dataset_t *ds);  /* e.g. "cifar10-train" */
/* Class labels 0..9, (N) (addition): CIFAR-10, and MNIST when its labels file is present; else
 * NULL. */
const uint8_t *ebmc_data_labels(const ebmc_dataset_t *ds);

/* Batches. Each epoch visits a permutation of the items that depends only on (seed, epoch)
 * (Fisher-Yates driven by Philox; the identity when !shuffle). hflip mirrors an image left-right
 * when Philox(seed, epoch, position in the epoch) says so (probability 1/2); images only.
 * Images go out as float x/127.5 - 1 in [-1, 1], (batch,C,H,W); points as they are, (batch,C).
 * drop_last: an epoch has floor(N/batch) full batches (an error at create when N < batch);
 * otherwise ceil(N/batch) and the last has N % batch items, reported in *n, the rest of out
 * zeroed. The data set must outlive the loader. */
typedef struct ebmc_loader ebmc_loader_t;
typedef struct {
    bool shuffle, hflip, drop_last;
} ebmc_loader_opts;

ebmc_status ebmc_loader_create(const ebmc_dataset_t *ds, int batch, uint64_t seed,
                               ebmc_loader_opts o, ebmc_loader_t **out, char *err, size_t errlen);
/* Fills out (batch,C,H,W) host floats; *n = the number of items (batch, except a short last
 * batch without drop_last). Crosses epochs by itself; *epoch = the epoch the batch belongs to
 * (n and epoch may be NULL). */
ebmc_status ebmc_loader_next(ebmc_loader_t *l, float *out, int *n, int64_t *epoch);
int64_t ebmc_loader_batches_per_epoch(const ebmc_loader_t *l);
/* Resume: (epoch, item position within the epoch) is the whole state; get_state gives where the
 * next batch starts (pos is a multiple of batch). set_state accepts epoch >= 0 and
 * 0 <= pos <= items used per epoch, pos a multiple of batch (pos at the end = the next epoch's
 * start); else EBMC_E_INVALID and the state is unchanged. */
void ebmc_loader_get_state(const ebmc_loader_t *l, int64_t *epoch, int64_t *pos);
ebmc_status ebmc_loader_set_state(ebmc_loader_t *l, int64_t epoch, int64_t pos);
/* The message of the loader's last failure ("" if none). */
const char *ebmc_loader_error(const ebmc_loader_t *l);
void ebmc_loader_free(ebmc_loader_t *l); /* NULL is fine */

#ifdef __cplusplus
}
#endif
#endif
