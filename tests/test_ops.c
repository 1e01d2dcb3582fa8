/* Every forward kernel against a naive reference on random data: odd and even sizes,
 * stride 1 and 2, TensorFlow SAME and VALID padding. */
#include "test_util.h"

#include "dn_ops.h"

#include <cblas.h>
#include <math.h>

/* Naive TF convolution (dense or depthwise), written from the definition. */
static void ref_conv(int dw, int ih, int iw, int cin, int cout, int k, int s, dn_pad pad,
                     const float *in, const float *w, const float *b, dn_act act, float *out,
                     int *poh, int *pow_)
{
    int oh = pad == DN_PAD_SAME ? (ih + s - 1) / s : (ih - k) / s + 1;
    int ow = pad == DN_PAD_SAME ? (iw + s - 1) / s : (iw - k) / s + 1;
    int pt = 0, pl = 0;
    if (pad == DN_PAD_SAME) {
        int th = (oh - 1) * s + k - ih, tw = (ow - 1) * s + k - iw;
        pt = th > 0 ? th / 2 : 0;
        pl = tw > 0 ? tw / 2 : 0;
    }
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int co = 0; co < cout; co++) {
                double acc = b[co];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int y = oy * s - pt + ky, x = ox * s - pl + kx;
                        if (y < 0 || y >= ih || x < 0 || x >= iw)
                            continue;
                        if (dw)
                            acc += (double)in[(y * iw + x) * cin + co] * w[(ky * k + kx) * cout + co];
                        else
                            for (int ci = 0; ci < cin; ci++)
                                acc += (double)in[(y * iw + x) * cin + ci] *
                                       w[((co * k + ky) * k + kx) * cin + ci];
                    }
                if (act != DN_ACT_NONE)
                    acc = acc < 0 ? 0 : acc;
                if (act == DN_ACT_RELU6)
                    acc = acc > 6 ? 6 : acc;
                out[(oy * ow + ox) * cout + co] = (float)acc;
            }
    *poh = oh;
    *pow_ = ow;
}

static float *rand_buf(size_t n, uint64_t *seed, float scale)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = dn_test_uniform(seed, -scale, scale);
    return x;
}

static void expect_close(const float *a, const float *b, size_t n, float tol, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > tol * (1.0f + fabsf(b[i])))
            cr_assert_fail("%s: element %zu differs: %g vs reference %g", what, i, a[i], b[i]);
}

/* Runs dn_conv2d or dn_dwconv on one configuration and compares with ref_conv. */
static void check_conv(int dw, int ih, int iw, int cin, int cout, int k, int s, dn_pad pad,
                       dn_act act, uint64_t seed)
{
    if (dw)
        cout = cin;
    size_t wn = dw ? (size_t)k * k * cout : (size_t)cout * k * k * cin;
    float *in = rand_buf((size_t)ih * iw * cin, &seed, 3.0f), *w = rand_buf(wn, &seed, 1.0f);
    float *b = rand_buf((size_t)cout, &seed, 1.0f);
    dn_node n = {.op = dw ? DN_OP_DWCONV : DN_OP_CONV, .kh = k, .kw = k, .stride_h = s,
                 .stride_w = s, .pad = pad, .act = act, .cin = cin, .cout = cout};
    dn_conv_geom g;
    dn_conv_geom_of(&n, ih, iw, &g);
    int oh, ow;
    float *ref = malloc((size_t)(ih + 2) * (iw + 2) * cout * sizeof *ref);
    ref_conv(dw, ih, iw, cin, cout, k, s, pad, in, w, b, act, ref, &oh, &ow);
    cr_assert_eq(g.oh, oh, "output height %d, reference %d", g.oh, oh);
    cr_assert_eq(g.ow, ow, "output width %d, reference %d", g.ow, ow);
    float *out = malloc((size_t)oh * ow * cout * sizeof *out);
    float *scratch = malloc((dn_conv2d_scratch(&g) + 1) * sizeof *scratch);
    if (dw)
        dn_dwconv(&g, in, w, b, act, out);
    else
        dn_conv2d(&g, in, w, b, NULL, act, out, scratch);
    char what[128];
    snprintf(what, sizeof what, "%s %dx%dx%d k%d s%d %s", dw ? "dwconv" : "conv", ih, iw, cin, k,
             s, pad == DN_PAD_SAME ? "same" : "valid");
    expect_close(out, ref, (size_t)oh * ow * cout, 1e-4f, what);
    free(in), free(w), free(b), free(ref), free(out), free(scratch);
}

Test(ops, pointwise_conv_matches_reference)
{
    openblas_set_num_threads(1);
    check_conv(0, 7, 9, 13, 17, 1, 1, DN_PAD_SAME, DN_ACT_NONE, 1);
    check_conv(0, 8, 8, 16, 24, 1, 1, DN_PAD_SAME, DN_ACT_RELU6, 2);
    check_conv(0, 5, 6, 3, 5, 1, 2, DN_PAD_SAME, DN_ACT_RELU, 3);
}

Test(ops, pointwise_conv_with_fused_residual)
{
    uint64_t seed = 5;
    int hw = 6 * 5, cin = 9, cout = 7;
    float *in = rand_buf((size_t)hw * cin, &seed, 2), *w = rand_buf((size_t)cout * cin, &seed, 1);
    float *b = rand_buf((size_t)cout, &seed, 1), *res = rand_buf((size_t)hw * cout, &seed, 4);
    float *plain = malloc((size_t)hw * cout * sizeof *plain), *fused = malloc((size_t)hw * cout * 4);
    dn_node n = {.op = DN_OP_CONV, .kh = 1, .kw = 1, .stride_h = 1, .stride_w = 1, .cin = cin,
                 .cout = cout};
    dn_conv_geom g;
    dn_conv_geom_of(&n, 6, 5, &g);
    dn_conv2d(&g, in, w, b, NULL, DN_ACT_NONE, plain, NULL);
    dn_conv2d(&g, in, w, b, res, DN_ACT_RELU6, fused, NULL);
    for (int i = 0; i < hw * cout; i++) {
        float v = plain[i] + res[i];
        v = v < 0 ? 0 : v > 6 ? 6 : v;
        cr_assert(fabsf(fused[i] - v) < 1e-5f, "fused residual at %d: %g vs %g", i, fused[i], v);
    }
    free(in), free(w), free(b), free(res), free(plain), free(fused);
}

Test(ops, dense_3x3_conv_matches_reference_same_padding)
{
    int sizes[][2] = {{8, 8}, {7, 7}, {9, 6}, {1, 1}, {2, 3}};
    for (int i = 0; i < 5; i++)
        for (int s = 1; s <= 2; s++)
            check_conv(0, sizes[i][0], sizes[i][1], 3, 8, 3, s, DN_PAD_SAME, DN_ACT_RELU6,
                       10 + i * 2 + s);
}

Test(ops, dense_conv_valid_padding_and_5x5)
{
    check_conv(0, 9, 8, 4, 6, 3, 1, DN_PAD_VALID, DN_ACT_NONE, 31);
    check_conv(0, 11, 10, 2, 3, 5, 2, DN_PAD_SAME, DN_ACT_NONE, 32);
}

Test(ops, depthwise_3x3_matches_reference)
{
    int sizes[][2] = {{8, 8}, {7, 7}, {10, 5}, {1, 1}, {3, 2}, {16, 15}};
    int channels[] = {1, 7, 32, 33};
    for (int i = 0; i < 6; i++)
        for (int c = 0; c < 4; c++)
            for (int s = 1; s <= 2; s++)
                check_conv(1, sizes[i][0], sizes[i][1], channels[c], 0, 3, s, DN_PAD_SAME,
                           (dn_act)(c % 2 ? DN_ACT_RELU6 : DN_ACT_NONE), 100 + i * 8 + c * 2 + s);
}

Test(ops, depthwise_other_kernels_and_valid)
{
    check_conv(1, 9, 9, 5, 0, 5, 1, DN_PAD_SAME, DN_ACT_RELU, 201);
    check_conv(1, 9, 8, 6, 0, 3, 2, DN_PAD_VALID, DN_ACT_NONE, 202);
}

Test(ops, same_padding_puts_extra_row_bottom_right)
{
    /* 4x4 ones, 3x3 stride-2 kernel of ones. TF pads only bottom/right: output (0,0)
     * covers rows and cols 0..2 (9 ones), (1,1) covers 2..4 with 4 in the padding (4 ones).
     * Symmetric (PyTorch-style) padding would give 4 at (0,0). */
    float in[16], w[9], b[1] = {0}, out[4];
    for (int i = 0; i < 16; i++)
        in[i] = 1;
    for (int i = 0; i < 9; i++)
        w[i] = 1;
    dn_node n = {.op = DN_OP_DWCONV, .kh = 3, .kw = 3, .stride_h = 2, .stride_w = 2,
                 .pad = DN_PAD_SAME, .cin = 1, .cout = 1};
    dn_conv_geom g;
    dn_conv_geom_of(&n, 4, 4, &g);
    dn_dwconv(&g, in, w, b, DN_ACT_NONE, out);
    cr_assert_eq(out[0], 9.0f);
    cr_assert_eq(out[1], 6.0f);
    cr_assert_eq(out[2], 6.0f);
    cr_assert_eq(out[3], 4.0f);
}

Test(ops, activation_add_mean_softmax)
{
    uint64_t seed = 7;
    float x[60], ref[60];
    for (int i = 0; i < 60; i++)
        x[i] = ref[i] = dn_test_uniform(&seed, -10, 10);
    dn_act_inplace(x, 60, DN_ACT_RELU6);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(x[i], ref[i] < 0 ? 0 : ref[i] > 6 ? 6 : ref[i], "relu6 at %d", i);
    memcpy(x, ref, sizeof x);
    dn_act_inplace(x, 60, DN_ACT_RELU);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(x[i], ref[i] < 0 ? 0 : ref[i], "relu at %d", i);
    float a[37], bb[37], sum[37];
    for (int i = 0; i < 37; i++) {
        a[i] = dn_test_uniform(&seed, -5, 5);
        bb[i] = dn_test_uniform(&seed, -5, 5);
    }
    dn_add(a, bb, sum, 37, DN_ACT_NONE);
    for (int i = 0; i < 37; i++)
        cr_assert_eq(sum[i], a[i] + bb[i]);
    float mean[5];
    dn_mean(ref, 12, 5, mean);
    for (int j = 0; j < 5; j++) {
        double s = 0;
        for (int p = 0; p < 12; p++)
            s += ref[p * 5 + j];
        cr_assert_float_eq(mean[j], s / 12, 1e-5);
    }
    float logits[4] = {1000, 1001, -5, 1000}, p[4];
    dn_softmax(logits, 4, p);
    double e = exp(1.0), z = 2 + e + exp(-1005.0);
    cr_assert_float_eq(p[1], e / z, 1e-6, "softmax must not overflow on large logits");
    cr_assert_float_eq(p[0] + p[1] + p[2] + p[3], 1.0, 1e-6);
}
