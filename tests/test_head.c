/* The DevNet head: top-K pooling, the deviation loss and every gradient against finite
 * differences, and training that separates two synthetic classes. */
#include "test_util.h"

#include "dn_head.h"

#include <cblas.h>
#include <math.h>

Test(head, topk_count_is_ten_percent_at_least_one)
{
    cr_assert_eq(dn_topk_count(196), 19);
    cr_assert_eq(dn_topk_count(49), 4);
    cr_assert_eq(dn_topk_count(9), 1);
    cr_assert_eq(dn_topk_count(1), 1);
}

Test(head, topk_abs_mean_picks_largest_magnitudes)
{
    float s[6] = {0.5f, -4.0f, 3.0f, 1.0f, -0.1f, 2.0f};
    int idx[3];
    float v = dn_topk_abs_mean(s, 6, 3, idx);
    cr_assert_float_eq(v, (4.0 + 3.0 + 2.0) / 3.0, 1e-6);
    cr_assert_eq(idx[0], 1);
    cr_assert_eq(idx[1], 2);
    cr_assert_eq(idx[2], 5);
    cr_assert_float_eq(dn_topk_abs_mean(s, 6, 6, NULL), 10.6 / 6.0, 1e-6);
}

Test(head, deviation_loss_values_and_gradient)
{
    float g;
    /* normal: |dev| with dev = (s - mu) / sigma */
    cr_assert_float_eq(dn_deviation_loss(3.0f, 0, 1.0f, 2.0f, &g), 1.0, 1e-6);
    cr_assert_float_eq(g, 0.5, 1e-6);
    cr_assert_float_eq(dn_deviation_loss(-1.0f, 0, 1.0f, 2.0f, &g), 1.0, 1e-6);
    cr_assert_float_eq(g, -0.5, 1e-6);
    /* anomaly: max(0, 5 - dev) */
    cr_assert_float_eq(dn_deviation_loss(3.0f, 1, 1.0f, 2.0f, &g), 4.0, 1e-6);
    cr_assert_float_eq(g, -0.5, 1e-6);
    cr_assert_float_eq(dn_deviation_loss(20.0f, 1, 0.0f, 1.0f, &g), 0.0, 1e-6);
    cr_assert_float_eq(g, 0.0, 1e-6);
    /* finite differences away from the kinks */
    float xs[3] = {0.7f, 2.9f, -1.3f};
    for (int y = 0; y <= 1; y++)
        for (int i = 0; i < 3; i++) {
            float h = 1e-3f, ga;
            dn_deviation_loss(xs[i], y, 0.1f, 1.3f, &ga);
            float fd = (dn_deviation_loss(xs[i] + h, y, 0.1f, 1.3f, &g) -
                        dn_deviation_loss(xs[i] - h, y, 0.1f, 1.3f, &g)) / (2 * h);
            cr_assert_float_eq(ga, fd, 1e-3, "y=%d s=%g: analytic %g, numeric %g", y, xs[i], ga, fd);
        }
}

/* d(image score)/d(w, b) against central differences, for features whose top-K set does
 * not change under a small step. */
Test(head, score_gradient_matches_finite_differences)
{
    openblas_set_num_threads(1);
    int dim = 7, n = 30;
    dn_head h;
    dn_error err;
    cr_assert_eq(dn_head_init(&h, dim, 3, &err), DN_OK);
    uint64_t seed = 11;
    float feat[30 * 7], scores[30], grad[8] = {0};
    for (int i = 0; i < n * dim; i++)
        feat[i] = dn_test_uniform(&seed, -2, 2);
    int k = dn_topk_count(n), topk[3];
    dn_head_patch_scores(&h, feat, n, scores);
    dn_topk_abs_mean(scores, n, k, topk);
    dn_head_backward(&h, feat, scores, topk, k, 1.0f, grad);
    for (int j = 0; j <= dim; j++) {
        double step = 1e-3, saved = h.w[j];
        h.w[j] = (float)(saved + step);
        double up = dn_head_score(&h, feat, n, scores);
        h.w[j] = (float)(saved - step);
        double down = dn_head_score(&h, feat, n, scores);
        h.w[j] = (float)saved;
        double fd = (up - down) / (2 * step);
        cr_assert(fabs(fd - grad[j]) < 2e-3 * (1 + fabs(fd)), "param %d: analytic %g, numeric %g", j,
                  grad[j], fd);
    }
    dn_head_free(&h);
}

/* The loss of an image scored at two scales (the mean of both top-K pooled scores), for a
 * normal and an anomalous label, against finite differences. */
Test(head, two_scale_image_loss_gradient_matches_finite_differences)
{
    openblas_set_num_threads(1);
    enum { DIM = 6, N = 40, NH = 12 };
    dn_head h;
    dn_error err;
    cr_assert_eq(dn_head_init(&h, DIM, 5, &err), DN_OK);
    uint64_t seed = 17;
    float feat[N * DIM], half[NH * DIM], scores[N + NH];
    int topk[N + NH];
    for (int i = 0; i < N * DIM; i++)
        feat[i] = dn_test_uniform(&seed, -2, 2);
    for (int i = 0; i < NH * DIM; i++)
        half[i] = dn_test_uniform(&seed, -2, 2);
    for (int y = 0; y <= 1; y++) {
        float grad[DIM + 1] = {0};
        float loss = dn_head_image_loss(&h, feat, N, half, NH, y, 0.1f, 0.9f, 1.0f, scores, topk, grad);
        cr_assert(loss >= 0);
        double g2 = 0;
        for (int j = 0; j <= DIM; j++)
            g2 += (double)grad[j] * grad[j];
        cr_assert_gt(g2, 0, "label %d: the loss must move (margin 5 for anomalies)", y);
        for (int j = 0; j <= DIM; j++) {
            double step = 1e-3, saved = h.w[j];
            h.w[j] = (float)(saved + step);
            double up = dn_head_image_loss(&h, feat, N, half, NH, y, 0.1f, 0.9f, 1.0f, scores, topk, NULL);
            h.w[j] = (float)(saved - step);
            double down = dn_head_image_loss(&h, feat, N, half, NH, y, 0.1f, 0.9f, 1.0f, scores, topk, NULL);
            h.w[j] = (float)saved;
            double fd = (up - down) / (2 * step);
            cr_assert(fabs(fd - grad[j]) < 2e-3 * (1 + fabs(fd)), "label %d, param %d: analytic %g, numeric %g",
                      y, j, grad[j], fd);
        }
        /* one scale is the plain pooled score */
        float one = dn_head_image_loss(&h, feat, N, NULL, 0, y, 0.1f, 0.9f, 1.0f, scores, topk, NULL), scratch[N], dl;
        float want = dn_deviation_loss(dn_head_score(&h, feat, N, scratch), y, 0.1f, 0.9f, &dl);
        cr_assert_float_eq(one, want, 1e-6);
    }
    dn_head_free(&h);
}

Test(head, patch_scores_are_a_1x1_convolution)
{
    dn_head h;
    dn_error err;
    cr_assert_eq(dn_head_init(&h, 3, 1, &err), DN_OK);
    h.w[0] = 1, h.w[1] = -2, h.w[2] = 0.5f, h.w[3] = 0.25f;
    float f[6] = {1, 1, 1, 2, 0, 4}, s[2];
    dn_head_patch_scores(&h, f, 2, s);
    cr_assert_float_eq(s[0], 1 - 2 + 0.5 + 0.25, 1e-6);
    cr_assert_float_eq(s[1], 2 + 2 + 0.25, 1e-6);
    dn_head_free(&h);
}

/* Normal images: noise features. Anomalies: a few patches carry a shifted direction.
 * After training, every anomaly must score above every normal (held-out draws). */
static void synth(float *f, int n, int dim, int anomalous, uint64_t *seed)
{
    for (int i = 0; i < n * dim; i++)
        f[i] = dn_test_uniform(seed, 0, 1);
    for (int p = 0; anomalous && p < 3; p++)
        for (int c = 0; c < 4; c++)
            f[(size_t)(p * 7 % n) * dim + c] += 3.0f;
}

Test(head, training_separates_synthetic_anomalies)
{
    openblas_set_num_threads(1);
    enum { DIM = 16, N = 49, NN = 40, NA = 8, NT = 30 };
    static float normal[NN][N * DIM], anomaly[NA][N * DIM], test_n[NT][N * DIM], test_a[NT][N * DIM];
    const float *np[NN], *ap[NA];
    uint64_t seed = 5;
    for (int i = 0; i < NN; i++)
        synth(normal[i], N, DIM, 0, &seed), np[i] = normal[i];
    for (int i = 0; i < NA; i++)
        synth(anomaly[i], N, DIM, 1, &seed), ap[i] = anomaly[i];
    for (int i = 0; i < NT; i++)
        synth(test_n[i], N, DIM, 0, &seed), synth(test_a[i], N, DIM, 1, &seed);
    dn_head h;
    dn_error err;
    cr_assert_eq(dn_head_init(&h, DIM, 2, &err), DN_OK);
    dn_head_opts o;
    dn_head_opts_default(&o);
    o.steps = 500;
    dn_head_data d = {np, NN, ap, NA, N, NULL, NULL, 0};
    cr_assert_eq(dn_head_train(&h, &d, &o, &err), DN_OK, "%s", err.msg);
    float scratch[N], max_normal = -1e30f, min_anomaly = 1e30f;
    for (int i = 0; i < NT; i++) {
        float sn = dn_head_score(&h, test_n[i], N, scratch), sa = dn_head_score(&h, test_a[i], N, scratch);
        max_normal = sn > max_normal ? sn : max_normal;
        min_anomaly = sa < min_anomaly ? sa : min_anomaly;
    }
    cr_assert_gt(min_anomaly, max_normal, "anomalies %g vs normals %g", min_anomaly, max_normal);
    cr_assert_gt(min_anomaly, 3.0f, "anomalies should be pushed towards the margin");
    dn_head_data none = {np, NN, ap, 0, N, NULL, NULL, 0};
    cr_assert_eq(dn_head_train(&h, &none, &o, &err), DN_EINVAL);
    dn_head_free(&h);
}
