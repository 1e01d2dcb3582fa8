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
 * refused. Allocates one row of scratch per call; thread-safe. */
int dn_patch_descriptors(const dn_fmap *s8, const dn_fmap *s16, float *out, dn_error *err);

/* A memory bank: x, n and dim are the model; the search structure is derived from x
 * by dn_bank_from / dn_bank_build (tens of ms for 16384 x 128) and only read after
 * that, so one bank serves any number of threads calling dn_bank_nearest at once. */
typedef struct dn_bank {
    float *x;      /* n x dim, owned */
    float *sqnorm; /* n: ||x_j||^2 */
    int n, dim;
    struct dn_bank_index *ix; /* search structure (dn_normality.c), owned */
} dn_bank;

/* dn_bank_nearest searches blocks of DN_BANK_QUERY_BLOCK queries, and brute-forces the
 * few its bounds cannot prune DN_BANK_DENSE_ROWS at a time against blocks of
 * DN_BANK_BLOCK bank entries. */
#define DN_BANK_QUERY_BLOCK 1024
#define DN_BANK_DENSE_ROWS 64
#define DN_BANK_BLOCK 1024

void dn_bank_init(dn_bank *b);

/* Builds a bank from n candidate patches (n x dim, row-major, finite values).
 * n <= max_size keeps them all (a copy). Otherwise it keeps a greedy k-centre coreset
 * of max_size rows (PatchCore): the first is a candidate drawn with seed, each next one
 * the candidate farthest from those chosen so far. Distances for the selection are
 * measured on a Gaussian random projection to proj_dim dimensions when
 * 0 < proj_dim < dim, on the candidates themselves otherwise, in both cases rounded to
 * bfloat16 (halves the memory traffic that bounds the selection; far below the
 * projection's own distortion). The selection is exact greedy for those distances.
 * Measured on 250k real 128-d patch descriptors -> 16384 (one core): proj_dim 32 ~6 s,
 * 64 ~15 s, 0 ~34 s; covering radius in the full space 16.5 / 16.1 / 13.7 (a random
 * subset: 29.9). Selection stops early if the remaining candidates all duplicate chosen
 * ones, so the bank can be smaller than max_size. Rows are in selection order.
 * Deterministic for a seed on one machine (the projection goes through sgemm, whose
 * rounding may differ between CPU kernels). Memory: about n * (2 * proj_dim + 44)
 * bytes (proj_dim rounded up to 16, or dim without projection). */
int dn_bank_build(dn_bank *b, const float *patches, size_t n, int dim, int max_size,
                  int proj_dim, uint64_t seed, dn_error *err);

/* Makes a bank of an existing n x dim matrix of finite values (e.g. loaded from a model
 * file): copies x and derives norms and the search structure. b must be initialised;
 * its old content is freed. */
int dn_bank_from(dn_bank *b, const float *x, int n, int dim, dn_error *err);

/* Bytes of scratch dn_bank_nearest_scratch needs for up to nq queries against b.
 * Bounded whatever nq: about min(nq, 1024) * (4 * dim + 4 * leaves + 200) + 300k bytes,
 * with n/128 to n/64 leaves (1.3 MB for 16384 x 128 and 784 queries). */
size_t dn_bank_scratch_bytes(const dn_bank *b, int nq);

/* For nq query rows (nq x dim): dist[i] = min_j ||q_i - x_j||, and index[i] = that j
 * when index is not NULL. Exact (ties aside): lower bounds skip most entries, and the
 * distance is computed as sum (q - x)^2, free of the cancellation of the expanded
 * ||q||^2 - 2 q.x + ||x||^2 form. A query with a NaN or infinity gets +inf.
 * Measured (one core, 16384 x 128 bank, 784 queries): 3-4 ms for normal images of a
 * structured object, 5-9 ms with defects, 11-20 ms on textures; brute force is ~35 ms,
 * and uniform random data (no pruning possible) ~1.5x that. Allocates its scratch once
 * per call. Thread-safe: the bank is only read. */
int dn_bank_nearest(const dn_bank *b, const float *q, int nq, float *dist, int *index,
                    dn_error *err);

/* The same with caller-owned scratch of at least dn_bank_scratch_bytes(b, nq) bytes,
 * from malloc (one per worker thread, reused across calls, so scoring allocates
 * nothing). */
int dn_bank_nearest_scratch(const dn_bank *b, const float *q, int nq, float *dist, int *index,
                            void *scratch, dn_error *err);

void dn_bank_free(dn_bank *b);

#endif
