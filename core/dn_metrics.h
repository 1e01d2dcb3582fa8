/* dn_metrics: ranking metrics, thresholds and calibration for anomaly scores.
 *
 * Labels and masks: nonzero = anomaly (the positive class), 0 = normal. Higher scores mean
 * more anomalous. Every metric is exact: scores are compared as floats, ties are grouped,
 * nothing is binned.
 *
 * NaN scores: the ranking functions (dn_auroc, dn_aupr, dn_max_f1_threshold) rank a NaN
 * score as -inf, tied with -inf and below every number, so a broken score never looks
 * anomalous by accident and the result does not depend on input order. The pixel
 * accumulator refuses NaN with DN_EINVAL instead (a NaN in a score map is a bug upstream
 * that a pooled number would hide). -0.0 and +0.0 are the same score. */
#ifndef DN_METRICS_H
#define DN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dn_error.h"

/* Most scores one AUROC may rank (dn_auroc or an accumulator): it keeps twice the
 * Mann-Whitney U, at most n^2/2, exact in a uint64_t. 2^32 pixels is 16 GB of keys. */
#define DN_AUROC_MAX_VALUES (UINT64_C(1) << 32)

/* ---- image-level ranking metrics; NAN when a class is empty ---- */

/* Area under the ROC curve, exact: the Mann-Whitney U with ties counted 1/2, over
 * n_pos * n_neg. Also NAN when memory for 8 bytes per score is not available. */
double dn_auroc(const float *scores, const uint8_t *labels, size_t n);

/* Average precision as sklearn.metrics.average_precision_score: sum over the distinct
 * thresholds t, from the highest, of (R_k - R_{k-1}) * P_k where the cut is score >= t.
 * Also NAN when memory for 8 bytes per score is not available. */
double dn_aupr(const float *scores, const uint8_t *labels, size_t n);

/* ---- pooled pixel AUROC over many images (PatchCore convention) ----
 *
 * Every pixel of every image is one sample of one big ranking. The accumulator keeps one
 * order-preserving 32-bit key per pixel, split by class (4 bytes a pixel; the result
 * briefly needs 4 more per pixel of the larger class) and sorts them by radix. */
typedef struct dn_auroc_acc {
    uint32_t *pos, *neg;   /* keys of the anomalous and of the normal pixels */
    size_t n_pos, n_neg;
    size_t cap_pos, cap_neg;
} dn_auroc_acc;

void dn_auroc_acc_init(dn_auroc_acc *a);
/* Appends one image: n scores and their mask. All or nothing: on error (a NaN score is
 * DN_EINVAL, past DN_AUROC_MAX_VALUES is DN_ETOOBIG, DN_ENOMEM) nothing is appended. */
int dn_auroc_acc_add(dn_auroc_acc *a, const float *scores, const uint8_t *mask, size_t n,
                     dn_error *err);
/* The AUROC of everything added so far; may be called again after more adds. NAN when a
 * class is empty or the sort's scratch cannot be allocated. */
double dn_auroc_acc_result(dn_auroc_acc *a);
void dn_auroc_acc_free(dn_auroc_acc *a); /* safe twice; a is empty and reusable after */

/* ---- thresholds and calibration ---- */

/* Mean and population standard deviation (divide by n), summed in double; NAN when n is
 * 0; a NaN in x gives NaN. Not "dn_mean": dn_ops.h has that name for the MEAN op. */
double dn_average(const float *x, size_t n);
double dn_std(const float *x, size_t n);

/* The q-quantile, q in [0, 1], by linear interpolation between order statistics (numpy's
 * default "linear" method). Leaves x alone (sorts a copy). NAN when n is 0, q is outside
 * [0, 1], x holds a NaN (as numpy), or the copy cannot be allocated. */
float dn_quantile(const float *x, size_t n, double q);

/* The threshold t maximising the F1 score of "score >= t is anomalous", over every cut
 * between distinct scores: t is the midpoint between the lowest score the best cut keeps
 * and the next lower distinct score (that lowest score itself when nothing is lower, or
 * when no float lies strictly between). Among equal F1s the highest threshold wins.
 * *best_f1 (may be NULL) gets that F1. Returns NAN (and *best_f1 = NAN) when there is no
 * anomalous label or no memory; with no normal label the F1 is 1 at the lowest score. */
float dn_max_f1_threshold(const float *scores, const uint8_t *labels, size_t n,
                          double *best_f1);

/* Conformal p-value of score s against the scores of n normal calibration images, sorted
 * ascending without NaN: (1 + #{cal >= s}) / (n + 1). 1 when s is at or below them all,
 * 1/(n+1) above them all; NAN when s is NaN. */
double dn_conformal_p(const float *cal_sorted, size_t n, float s);

#endif
