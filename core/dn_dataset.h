/* dn_dataset: loader of an MVTec-AD-layout folder and the DevNet paper's evaluation
 * protocol.
 *
 * Layout (only the file names are read here; nothing is decoded):
 *
 *     NAME/train/good/IMAGE                      normal training images ("mostly normal")
 *     NAME/test/good/IMAGE                       normal test images
 *     NAME/test/<defect>/IMAGE                   anomalous test images, one folder per class
 *     NAME/ground_truth/<defect>/<stem>_mask.png pixel masks, where they exist
 *
 * An image is a regular file (symlinks followed) whose name ends in .png, .jpg or .jpeg in
 * any case. Hidden names (leading '.') and other files are ignored. Every listing is sorted
 * by strcmp, so that sample indices, and with them the protocol's draws, are the same on
 * every machine. */
#ifndef DN_DATASET_H
#define DN_DATASET_H

#include <stdint.h>

#include "dn_error.h"
#include "dn_limits.h"

#define DN_DATASET_MAX_PATH   4096      /* bytes of any path built here, incl. NUL */
#define DN_DATASET_MAX_IMAGES (1 << 24) /* in one folder, and in train or test as a whole */

typedef struct dn_sample {
    char *path;      /* malloc'd */
    char *mask_path; /* malloc'd, NULL when there is no mask */
    int anomalous;   /* 0 good, 1 defect */
    int defect;      /* index into dn_dataset.defects, -1 for good */
} dn_sample;

typedef struct dn_dataset {
    char name[DN_MAX_NAME]; /* the folder's base name (after resolving "." and links) */
    dn_sample *train;       /* train/good, all anomalous = 0 */
    int n_train;
    dn_sample *test; /* test/good first, then each defect class in the order of defects */
    int n_test;
    char **defects; /* sorted names of the test/<defect> folders ("good" excluded) */
    int n_defects;
    int has_masks; /* at least one mask was found */
    dn_error err;
} dn_dataset;

void dn_dataset_init(dn_dataset *d);
/* Releases what d held before. train/good must exist and hold at least one image; test/
 * and ground_truth/ may be absent (then n_test or has_masks is 0). On failure d is empty
 * and d->err says why: DN_EIO (missing or unreadable folder), DN_EFORMAT (no train/good,
 * no images in it), DN_ETOOBIG (a path or count over the limits above). */
int dn_dataset_open(dn_dataset *d, const char *dir);
void dn_dataset_free(dn_dataset *d); /* safe twice; keeps d->err */
int dn_dataset_count_anomalous(const dn_dataset *d); /* test samples with anomalous = 1 */

/* Every image directly in dir, as malloc'd "dir/name" paths in sorted order (for
 * `--anomalies DIR`, whose images the caller marks anomalous). *n may be 0. On failure
 * *paths is NULL and *n is 0. */
int dn_dataset_list_images(const char *dir, char ***paths, int *n, dn_error *err);
void dn_paths_free(char **paths, int n);

/* The protocol of the DevNet paper: k labelled anomalies are drawn from the test set, used
 * for training, and removed from the test set.
 *
 * The draw, exactly: let A be the indices i of d->test with anomalous = 1, in increasing
 * order, and m = |A|. Seed a dn_rng (dn_rng.h) with seed; for i = 0 .. k-1, j = i +
 * dn_rng_below(rng, m - i), swap A[i] and A[j], drawn[i] = A[i] (a partial Fisher-Yates
 * shuffle). So the draw of k is a prefix of the draw of k+1 with the same seed.
 *
 * drawn gets the k indices in draw order (may be NULL when k = 0); rest gets the other
 * n_test - k indices in increasing order and *n_rest their count. 0 <= k <= m, else
 * DN_EINVAL. */
int dn_protocol_draw(const dn_dataset *d, int k, uint64_t seed, int *drawn, int *rest,
                     int *n_rest, dn_error *err);

#endif
