/* dn_seg: where defects are, learnt from the masks of the labelled anomalies.
 *
 * The normality branch says how unusual a patch is; it cannot know that an unusual but
 * harmless texture is fine, nor that a large, low-contrast region (magnetic_tile's
 * "uneven": most of that set's defect pixels) is a defect, because such patches sit
 * close to some normal patch. When the labelled anomalies come with pixel masks, a
 * logistic classifier learns what defect patches look like. Its inputs are each patch's
 * descriptor and that descriptor's difference from the image's mean (a region unlike the
 * rest of its image); its soft labels the share of each patch inside a mask (0 for every
 * patch of a normal image), the two classes weighted to balance. Its patch logits,
 * smoothed over neighbouring patches and standardised on held-out normal patches, are
 * added to the normality map.
 *
 * Measured (docs/ACCURACY.md, 10 anomalies, seeds 1-3): pooled pixel AUROC on
 * magnetic_tile 0.835 -> 0.903, mvtec_bottle 0.977 -> 0.979. The inputs are standardised
 * for training and the standardisation folded into the weights: scoring is one dot
 * product per patch. */
#ifndef DN_SEG_H
#define DN_SEG_H

#include "dn_error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dn_image dn_image; /* dn_image.h */

#define DN_SEG_MIN_DEFECT 8.0        /* less defect area, in patches over all copies: no classifier */
#define DN_SEG_MAX_NEGATIVES 32768   /* patches of normal images drawn for training */

typedef struct dn_seg {
    int dim;
    float *w; /* dim weights, then the bias at w[dim] */
} dn_seg;

typedef struct dn_seg_opts {
    int steps;          /* full-batch Adam steps, 300 */
    float lr;           /* 1e-2 */
    float weight_decay; /* L2 on the weights (not the bias), 1e-2 (1e-3 to 1e-1 measured within 0.005) */
    double deadline;    /* dn_clock_now() seconds, 0 = none: past it, DN_ETIMEDOUT */
    const volatile int *cancel; /* may be NULL; set by another thread: DN_ETIMEDOUT */
} dn_seg_opts;

void dn_seg_opts_default(dn_seg_opts *o);

void dn_seg_init(dn_seg *s);
void dn_seg_free(dn_seg *s);

/* Share of each cell of a rows x cols grid over the mask that is defect (a pixel that is
 * not black, as POST /feedback documents masks). The grid covers the whole mask, as the whole image is
 * resized to the backbone's square input; out has rows * cols floats. */
int dn_seg_mask_cells(const dn_image *mask, int rows, int cols, float *out, dn_error *err);

/* The training loss of (w, with the bias at w[dim]) on n >= 1 rows x (n x dim) with soft
 * labels y in [0, 1]: the mean of pos_weight * y * softplus(-z) + (1 - y) * softplus(z),
 * z = w . x + b, plus weight_decay / 2 * |w|^2 (not the bias). grad (may be NULL)
 * receives its dim + 1 partial derivatives. */
double dn_seg_loss(const float *w, const float *x, const float *y, size_t n, int dim,
                   float pos_weight, float weight_decay, float *grad);

/* Trains s on n input rows (n x dim) with soft labels y in [0, 1] (their sum strictly
 * between 0 and n), weighting the defect side by (n - sum y) / sum y. Starts from zero
 * weights: deterministic. */
int dn_seg_train(dn_seg *s, const float *x, const float *y, size_t n, int dim,
                 const dn_seg_opts *o, dn_error *err);

/* The classifier's inputs for the n patch descriptors of one image (n x dim): each
 * descriptor, then its difference from the image's mean descriptor (n x 2 dim). */
void dn_seg_inputs(const float *desc, int n, int dim, float *out);

/* Patch logits of n descriptors (n x dim). */
void dn_seg_scores(const dn_seg *s, const float *x, int n, float *out);

/* Smooths a rows x cols map of patch logits with the 3x3 binomial kernel (1 2 1) x (1 2 1),
 * renormalised at the borders; scratch holds rows * cols floats. Defects are regions, and
 * one patch's logit is noisy: measured on the masked dev sets (docs/ACCURACY.md, 10
 * anomalies), pooled pixel AUROC magnetic_tile 0.899 -> 0.903, mvtec_bottle 0.980 -> 0.979
 * (a flat 3x3 box: 0.905 and 0.978). */
void dn_seg_smooth(float *map, int rows, int cols, float *scratch);

#endif
