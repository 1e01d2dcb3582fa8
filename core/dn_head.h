/* dn_head: the DevNet scoring head (Pang et al. 2021, official code) on frozen features.
 *
 * A 1x1 convolution scores every patch of the final feature map, s_p = w . f_p + b; the
 * image score is the mean of the top-K |s_p| (multiple-instance learning, K = 10 % of the
 * patches, at least 1). Trained with the deviation loss: with mu, sigma of 5000 draws
 * from the prior N(0, 1), dev = (s - mu) / sigma and
 *     loss = (1 - y) |dev| + y max(0, a - dev),   a = 5,
 * so normal images are pulled to the prior and labelled anomalies pushed a sigmas above. */
#ifndef DN_HEAD_H
#define DN_HEAD_H

#include "dn_error.h"
#include "dn_rng.h"

#include <stddef.h>
#include <stdint.h>

#define DN_DEVNET_MARGIN 5.0f
#define DN_DEVNET_REF_SAMPLES 5000
#define DN_DEVNET_TOPK_FRACTION 0.1f

typedef struct dn_head {
    int dim;  /* feature channels */
    float *w; /* dim weights, then the bias at w[dim] */
} dn_head;

/* Training set: patch features of each image, n_patch x dim floats (HWC map). */
typedef struct dn_head_data {
    const float *const *normal;
    int n_normal;
    const float *const *anomaly; /* every augmented copy of every labelled anomaly */
    int n_anomaly;
    int n_patch;
    /* the second scale, or NULL: each image's map of its input downscaled 2x (n_patch_half
     * patches, same order as normal and anomaly); the image score is then the mean of the
     * two scales' top-K pooled scores, as in the official DevNet code with n_scales 2 */
    const float *const *normal_half;
    const float *const *anomaly_half;
    int n_patch_half;
} dn_head_data;

typedef struct dn_head_opts {
    int steps;          /* 500 */
    int batch;          /* per class: 24 normals + 24 anomalies */
    float lr;           /* Adam, 1e-3 */
    float weight_decay; /* L2 on the weights (not the bias), 1e-5 */
    float lr_decay_at;  /* fraction of the steps after which lr is multiplied by 0.1 */
    float clip_norm;    /* gradient clipping by global norm */
    uint64_t seed;
    double deadline;    /* dn_clock_now() seconds, 0 = none: past it, DN_ETIMEDOUT */
    const volatile int *cancel; /* may be NULL; set by another thread: DN_ETIMEDOUT */
} dn_head_opts;

void dn_head_opts_default(dn_head_opts *o);

int dn_head_init(dn_head *h, int dim, uint64_t seed, dn_error *err);
void dn_head_free(dn_head *h);

/* K of the top-K pooling for n patches. */
int dn_topk_count(int n_patch);

/* Patch scores of one image (n_patch x dim features). */
void dn_head_patch_scores(const dn_head *h, const float *feat, int n_patch, float *scores);

/* Mean of the k largest |s|; idx (may be NULL) receives their indices. */
float dn_topk_abs_mean(const float *s, int n, int k, int *idx);

/* Image score: top-K pooled patch scores. scratch holds n_patch floats. */
float dn_head_score(const dn_head *h, const float *feat, int n_patch, float *scratch);

/* Deviation loss of one image score with label y (0/1); *grad = d loss / d score. */
float dn_deviation_loss(float score, int y, float mu, float sigma, float *grad);

/* Adds d(image score)/d(w, b) * scale to grad (dim + 1 floats): the gradient through the
 * top-K pooling (sign(s_p) / K on the selected patches) and the 1x1 convolution. */
void dn_head_backward(const dn_head *h, const float *feat, const float *patch_scores,
                      const int *topk, int k, float scale, float *grad);

/* The deviation loss of one image with label y: its score is the top-K pooled |patch
 * score| of feat (n_patch patches), or with feat_half (may be NULL) the mean of that and
 * the same on feat_half (n_half patches). Adds d loss / d (w, b) * scale to grad (may be
 * NULL). scores and topk are scratch of n_patch (+ n_half with feat_half) each. */
float dn_head_image_loss(const dn_head *h, const float *feat, int n_patch, const float *feat_half,
                         int n_half, int y, float mu, float sigma, float scale, float *scores, int *topk,
                         float *grad);

/* Trains h on d. Returns DN_OK, or DN_EINVAL when there is nothing to train on. */
int dn_head_train(dn_head *h, const dn_head_data *d, const dn_head_opts *o, dn_error *err);

/* Training pieces shared with the tail fine-tuning (dn_tail.c). */

/* mu and sigma of this step's draw of DN_DEVNET_REF_SAMPLES from the prior N(0, 1). */
void dn_deviation_reference(dn_rng *r, float *mu, float *sigma);

/* Adam (beta 0.9, 0.999, eps 1e-8) over n parameters. */
typedef struct dn_adam {
    float *m, *v;
    int t;
} dn_adam;
int dn_adam_init(dn_adam *a, size_t n); /* 0, or -1 when out of memory */
void dn_adam_step(dn_adam *a, float *w, const float *g, size_t n, float lr);
void dn_adam_free(dn_adam *a);

/* Scales g so that its global L2 norm is at most max_norm (<= 0: no clipping). */
void dn_clip_by_norm(float *g, size_t n, float max_norm);

#endif
