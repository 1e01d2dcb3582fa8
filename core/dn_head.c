#include "dn_head.h"

#include "dn_clock.h"
#include "dn_rng.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void dn_head_opts_default(dn_head_opts *o)
{
    /* The reference implementation's schedule (REFERENCE-RESULTS.md): with a frozen
     * backbone, longer training or lr 1e-2 overfits the few labelled anomalies. */
    *o = (dn_head_opts){.steps = 500, .batch = 24, .lr = 1e-3f, .weight_decay = 1e-5f,
                        .lr_decay_at = 0.8f, .clip_norm = 10.0f, .seed = 1};
}

int dn_head_init(dn_head *h, int dim, uint64_t seed, dn_error *err)
{
    h->dim = dim;
    h->w = malloc(((size_t)dim + 1) * sizeof *h->w);
    if (!h->w)
        return dn_error_set(err, DN_ENOMEM, "out of memory for a %d-wide head", dim);
    /* PyTorch's default for a conv layer: uniform in +-1/sqrt(fan_in), bias included */
    dn_rng r;
    dn_rng_seed(&r, seed);
    float bound = 1.0f / sqrtf((float)dim);
    for (int i = 0; i <= dim; i++)
        h->w[i] = (float)((2.0 * dn_rng_uniform(&r) - 1.0) * bound);
    return DN_OK;
}

void dn_head_free(dn_head *h)
{
    free(h->w);
    h->w = NULL;
    h->dim = 0;
}

int dn_topk_count(int n_patch)
{
    int k = (int)(DN_DEVNET_TOPK_FRACTION * (float)n_patch);
    return k < 1 ? 1 : k;
}

void dn_head_patch_scores(const dn_head *h, const float *feat, int n_patch, float *scores)
{
    for (int p = 0; p < n_patch; p++)
        scores[p] = h->w[h->dim];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n_patch, h->dim, 1.0f, feat, h->dim, h->w, 1, 1.0f,
                scores, 1);
}

/* Partial selection: the k largest |s| by insertion into a small sorted list (k is ~10 %
 * of a few hundred patches). Ties keep the lower index, so results are deterministic. */
float dn_topk_abs_mean(const float *s, int n, int k, int *idx)
{
    int local[256], *top = idx ? idx : (k <= 256 ? local : NULL);
    int *owned = top ? NULL : malloc((size_t)k * sizeof *owned);
    if (!top)
        top = owned;
    if (!top)
        return NAN;
    int filled = 0;
    for (int i = 0; i < n; i++) {
        float v = fabsf(s[i]);
        if (filled == k && v <= fabsf(s[top[k - 1]]))
            continue;
        int j = filled < k ? filled++ : k - 1;
        while (j > 0 && fabsf(s[top[j - 1]]) < v) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = i;
    }
    double sum = 0;
    for (int j = 0; j < filled; j++)
        sum += fabsf(s[top[j]]);
    free(owned);
    return (float)(sum / (filled ? filled : 1));
}

/* Top-K pooled score of one map; the patch scores go to scores and, with topk (may be
 * NULL), the indices of the K patches. */
static float pooled(const dn_head *h, const float *feat, int n_patch, float *scores, int *topk)
{
    dn_head_patch_scores(h, feat, n_patch, scores);
    return dn_topk_abs_mean(scores, n_patch, dn_topk_count(n_patch), topk);
}

float dn_head_score(const dn_head *h, const float *feat, int n_patch, float *scratch)
{
    return pooled(h, feat, n_patch, scratch, NULL);
}

float dn_deviation_loss(float score, int y, float mu, float sigma, float *grad)
{
    float dev = (score - mu) / sigma;
    if (!y) {
        *grad = (dev > 0 ? 1.0f : dev < 0 ? -1.0f : 0.0f) / sigma;
        return fabsf(dev);
    }
    *grad = dev < DN_DEVNET_MARGIN ? -1.0f / sigma : 0.0f;
    return dev < DN_DEVNET_MARGIN ? DN_DEVNET_MARGIN - dev : 0.0f;
}

void dn_head_backward(const dn_head *h, const float *feat, const float *patch_scores,
                      const int *topk, int k, float scale, float *grad)
{
    for (int j = 0; j < k; j++) {
        int p = topk[j];
        float g = scale * (patch_scores[p] > 0 ? 1.0f : patch_scores[p] < 0 ? -1.0f : 0.0f) / k;
        cblas_saxpy(h->dim, g, feat + (size_t)p * h->dim, 1, grad, 1);
        grad[h->dim] += g;
    }
}

void dn_deviation_reference(dn_rng *r, float *mu, float *sigma)
{
    double s = 0, s2 = 0;
    for (int i = 0; i < DN_DEVNET_REF_SAMPLES; i++) {
        double v = dn_rng_normal(r);
        s += v;
        s2 += v * v;
    }
    double m = s / DN_DEVNET_REF_SAMPLES;
    *mu = (float)m;
    /* unbiased, as torch.std */
    *sigma = (float)sqrt((s2 - DN_DEVNET_REF_SAMPLES * m * m) / (DN_DEVNET_REF_SAMPLES - 1));
}

int dn_adam_init(dn_adam *a, size_t n)
{
    a->m = calloc(n ? n : 1, sizeof(float));
    a->v = calloc(n ? n : 1, sizeof(float));
    a->t = 0;
    return a->m && a->v ? 0 : -1;
}

void dn_adam_free(dn_adam *a)
{
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}

void dn_adam_step(dn_adam *a, float *w, const float *g, size_t n, float lr)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    a->t++;
    float c1 = 1.0f - powf(b1, (float)a->t), c2 = 1.0f - powf(b2, (float)a->t);
    for (size_t i = 0; i < n; i++) {
        a->m[i] = b1 * a->m[i] + (1 - b1) * g[i];
        a->v[i] = b2 * a->v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr * (a->m[i] / c1) / (sqrtf(a->v[i] / c2) + eps);
    }
}

void dn_clip_by_norm(float *g, size_t n, float max_norm)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    double norm = sqrt(s);
    if (max_norm > 0 && norm > max_norm)
        for (size_t i = 0; i < n; i++)
            g[i] *= (float)(max_norm / norm);
}

float dn_head_image_loss(const dn_head *h, const float *feat, int n_patch, const float *feat_half,
                         int n_half, int y, float mu, float sigma, float scale, float *scores, int *topk,
                         float *grad)
{
    float *scores_half = scores + n_patch;
    int *topk_half = topk + n_patch;
    float s = pooled(h, feat, n_patch, scores, topk), dl;
    if (feat_half)
        s = 0.5f * (s + pooled(h, feat_half, n_half, scores_half, topk_half));
    float loss = dn_deviation_loss(s, y, mu, sigma, &dl);
    float share = feat_half ? 0.5f : 1.0f; /* d score / d (each scale's pooled score) */
    if (grad && dl != 0.0f) {
        dn_head_backward(h, feat, scores, topk, dn_topk_count(n_patch), share * dl * scale, grad);
        if (feat_half)
            dn_head_backward(h, feat_half, scores_half, topk_half, dn_topk_count(n_half),
                             share * dl * scale, grad);
    }
    return loss;
}

int dn_head_train(dn_head *h, const dn_head_data *d, const dn_head_opts *o, dn_error *err)
{
    if (d->n_normal < 1 || d->n_anomaly < 1 || d->n_patch < 1)
        return dn_error_set(err, DN_EINVAL, "the head needs normal and anomalous images (%d, %d)",
                            d->n_normal, d->n_anomaly);
    int n = h->dim + 1, n_all = d->n_patch + (d->normal_half ? d->n_patch_half : 0);
    float *grad = malloc((size_t)n * sizeof *grad), *scores = malloc((size_t)n_all * sizeof *scores);
    int *topk = malloc((size_t)n_all * sizeof *topk);
    dn_adam a;
    if (dn_adam_init(&a, (size_t)n) || !grad || !scores || !topk) {
        free(grad), free(scores), free(topk), dn_adam_free(&a);
        return dn_error_set(err, DN_ENOMEM, "out of memory training the head");
    }
    dn_rng r;
    dn_rng_seed(&r, o->seed);
    float inv_batch = 1.0f / (2.0f * o->batch);
    for (int step = 0; step < o->steps; step++) {
        if (dn_clock_past(o->deadline) || (o->cancel && *o->cancel)) {
            free(grad), free(scores), free(topk), dn_adam_free(&a);
            return dn_error_set(err, DN_ETIMEDOUT, "time budget ran out training the head (step %d of %d)",
                                step, o->steps);
        }
        float mu, sigma;
        dn_deviation_reference(&r, &mu, &sigma);
        memset(grad, 0, (size_t)n * sizeof *grad);
        for (int b = 0; b < o->batch; b++) { /* balanced: half normal, half anomalous */
            uint64_t i = dn_rng_below(&r, (uint64_t)d->n_normal), j = dn_rng_below(&r, (uint64_t)d->n_anomaly);
            dn_head_image_loss(h, d->normal[i], d->n_patch, d->normal_half ? d->normal_half[i] : NULL,
                               d->n_patch_half, 0, mu, sigma, inv_batch, scores, topk, grad);
            dn_head_image_loss(h, d->anomaly[j], d->n_patch, d->anomaly_half ? d->anomaly_half[j] : NULL,
                               d->n_patch_half, 1, mu, sigma, inv_batch, scores, topk, grad);
        }
        for (int i = 0; i < h->dim; i++)
            grad[i] += o->weight_decay * h->w[i];
        dn_clip_by_norm(grad, (size_t)n, o->clip_norm);
        float lr = step >= (int)(o->lr_decay_at * o->steps) ? 0.1f * o->lr : o->lr;
        dn_adam_step(&a, h->w, grad, (size_t)n, lr);
    }
    free(grad), free(scores), free(topk), dn_adam_free(&a);
    return DN_OK;
}
