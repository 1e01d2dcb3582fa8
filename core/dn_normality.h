/* dn_normality: the normality branch of the detector (PatchCore-like).
 *
 * A patch descriptor on the stride-16 grid concatenates the stride-8 map, smoothed by a
 * 3x3 average and pooled 2x2, with the stride-16 map smoothed by a 3x3 average: each
 * patch sees its neighbourhood at two scales. A memory bank keeps the descriptors of
 * normal training patches (a greedy k-centre coreset of them when there are too many);
 * a patch scores its Euclidean distance to the nearest bank entry. */
#ifndef DN_NORMALITY_H
#define DN_NORMALITY_H

#include "dn_error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dn_fmap dn_fmap; /* dn_forward.h */

/* Descriptors of one image: out holds s16->h * s16->w * (s8->c + s16->c) floats,
 * row-major HWC on the stride-16 grid, the stride-8 part first.
 * The 3x3 averages have stride 1 and divide by the window cells inside the map
 * (count_include_pad=False). Stride-16 cell (r, c) pools the stride-8 rows 2r..2r+1 and
 * columns 2c..2c+1 that exist, so an odd stride-8 side (SAME padding: h16 = (h8+1)/2)
 * or a longer one works; a stride-8 map too short for the grid (h8 < 2*h16 - 1) is
 * refused. Allocates a few rows of scratch; thread-safe. */
int dn_patch_descriptors(const dn_fmap *s8, const dn_fmap *s16, float *out, dn_error *err);

/* A memory bank. x and n/dim are the model; the rest is derived from x by
 * dn_bank_from / dn_bank_build, read-only afterwards, so one bank can serve any number
 * of threads calling dn_bank_nearest at once. */
typedef struct dn_bank {
    float *x;      /* n x dim, owned */
    float *sqnorm; /* n: ||x_j||^2 */
    int n, dim;
    struct dn_bank_index *ix; /* search structure derived from x (dn_normality.c), owned */
} dn_bank;

/* dn_bank_nearest searches blocks of DN_BANK_QUERY_BLOCK queries, and brute-forces the
 * few its bounds cannot prune DN_BANK_DENSE_ROWS at a time against blocks of
 * DN_BANK_BLOCK bank entries. */
#define DN_BANK_QUERY_BLOCK 1024
#define DN_BANK_DENSE_ROWS 64
#define DN_BANK_BLOCK 1024

void dn_bank_init(dn_bank *b);

/* Builds a bank from n candidate patches (n x dim, row-major).
 * n <= max_size keeps them all (a copy). Otherwise it keeps a greedy k-centre coreset
 * of max_size rows (PatchCore): the first is a random patch drawn with seed, each next
 * one the patch farthest from those chosen so far. The selection measures distances on
 * a Gaussian random projection to proj_dim dimensions when 0 < proj_dim < dim (32 or 64
 * are good: the covering radius in the full space stays within a few % of the
 * unprojected selection, see tests and docs), on the patches themselves otherwise.
 * Selection stops early when the remaining patches all duplicate chosen ones, so the
 * bank can end up smaller than max_size. Rows are stored in selection order.
 * Deterministic for a seed on one machine (the projection goes through sgemm, whose
 * rounding may differ between CPU kernels). Memory: the projected copy (n x proj_dim
 * floats rounded up to 16) plus about 16 bytes per candidate. */
int dn_bank_build(dn_bank *b, const float *patches, size_t n, int dim, int max_size,
                  int proj_dim, uint64_t seed, dn_error *err);

/* Makes a bank of an existing n x dim matrix (e.g. loaded from a model file): copies x
 * and derives norms and the embedding. b must be initialised; its old content is freed. */
int dn_bank_from(dn_bank *b, const float *x, int n, int dim, dn_error *err);

/* Bytes of scratch dn_bank_nearest_scratch needs for nq queries against b: bounded by
 * the blocking (DN_BANK_QUERY_BLOCK queries x DN_BANK_BLOCK entries), whatever n and nq. */
size_t dn_bank_scratch_bytes(const dn_bank *b, int nq);

/* For nq query rows (nq x dim): dist[i] = min_j ||q_i - x_j||, and index[i] = that j
 * when index is not NULL. Allocates its scratch once per call. Thread-safe: the bank is
 * only read. */
int dn_bank_nearest(const dn_bank *b, const float *q, int nq, float *dist, int *index,
                    dn_error *err);

/* The same with caller-owned scratch of dn_bank_scratch_bytes(b, nq) bytes (one per
 * worker thread, reused across calls, so scoring allocates nothing). */
int dn_bank_nearest_scratch(const dn_bank *b, const float *q, int nq, float *dist, int *index,
                            void *scratch, dn_error *err);

void dn_bank_free(dn_bank *b);

#endif
