/* defines: what the safetensors writer (safetensors.c) and the validating reader
 * (safetensors_read.c) share: the little-endian host check, the largest exact JSON integer,
 * error messages naming the file and tensor, strict UTF-8 checking, tensor byte counts and the
 * sort comparators for names. Not installed: the public API is include/ebmc/safetensors.h. */
#ifndef EBMC_SAFETENSORS_INTERNAL_H
#define EBMC_SAFETENSORS_INTERNAL_H

#include "ebmc/safetensors.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ebmc's safetensors layer writes host memory as-is and needs a little-endian host"
#endif

#define MAX_JSON_INT 9007199254740991.0 /* 2^53 - 1: the largest integer a double holds exactly */

/* hidden: the split made these extern; they stay out of libebmc.so's exported symbols */
#pragma GCC visibility push(hidden)

/* "PATH: [tensor 'NAME': ]message" into err */
void st_err(char *err, size_t errlen, const char *path, const char *tensor, const char *fmt, ...);
/* Length of the valid UTF-8 prefix of s[0..n): n when all of it is valid. Strict: no overlong
 * forms, no surrogates, nothing above U+10FFFF. */
size_t st_utf8_valid_prefix(const unsigned char *s, size_t n);
/* bytes of a tensor; false on overflow. A zero dimension makes it 0 whatever the others are. */
bool st_tensor_bytes(const int64_t *shape, int ndim, size_t dsize, uint64_t *out);
/* qsort comparators: (const ebmc_st_tensor *) by name, (const char *) bytewise */
int st_cmp_name_ptr(const void *a, const void *b);
int st_cmp_str_ptr(const void *a, const void *b);

#pragma GCC visibility pop

#endif
