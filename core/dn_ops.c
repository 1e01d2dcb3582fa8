#include "dn_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Elementwise kernels are compiled for AVX-512, AVX2 and baseline x86-64 and picked at
 * load time, so one binary is fast here and still runs on any x86-64 (Docker images). */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define DN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DN_VECTOR_CLONES
#endif

static int same_pad(int in, int out, int k, int s)
{
    int total = (out - 1) * s + k - in;
    return total > 0 ? total / 2 : 0; /* floor: the odd extra goes bottom/right */
}

void dn_conv_geom_of(const dn_node *n, int ih, int iw, dn_conv_geom *g)
{
    g->ih = ih;
    g->iw = iw;
    g->cin = n->cin;
    g->cout = n->cout;
    g->kh = n->kh;
    g->kw = n->kw;
    g->sh = n->stride_h;
    g->sw = n->stride_w;
    if (n->pad == DN_PAD_SAME) {
        g->oh = (ih + g->sh - 1) / g->sh;
        g->ow = (iw + g->sw - 1) / g->sw;
        g->pad_top = same_pad(ih, g->oh, g->kh, g->sh);
        g->pad_left = same_pad(iw, g->ow, g->kw, g->sw);
    } else {
        g->oh = (ih - g->kh) / g->sh + 1;
        g->ow = (iw - g->kw) / g->sw + 1;
        g->pad_top = g->pad_left = 0;
    }
}

static int is_pointwise(const dn_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1;
}

size_t dn_conv2d_scratch(const dn_conv_geom *g)
{
    return is_pointwise(g) ? 0 : (size_t)g->oh * g->ow * g->kh * g->kw * g->cin;
}

/* Rows of the im2col matrix: one per output pixel, (ky, kx, c) columns; zeros in the pad. */
static void im2col(const dn_conv_geom *g, const float *in, float *col)
{
    size_t row_len = (size_t)g->kw * g->cin;
    for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++) {
            float *dst = col + ((size_t)oy * g->ow + ox) * g->kh * row_len;
            for (int ky = 0; ky < g->kh; ky++, dst += row_len) {
                int iy = oy * g->sh - g->pad_top + ky;
                if (iy < 0 || iy >= g->ih) {
                    memset(dst, 0, row_len * sizeof *dst);
                    continue;
                }
                for (int kx = 0; kx < g->kw; kx++) {
                    int ix = ox * g->sw - g->pad_left + kx;
                    float *d = dst + (size_t)kx * g->cin;
                    if (ix < 0 || ix >= g->iw)
                        memset(d, 0, g->cin * sizeof *d);
                    else
                        memcpy(d, in + ((size_t)iy * g->iw + ix) * g->cin, g->cin * sizeof *d);
                }
            }
        }
}

void dn_conv2d(const dn_conv_geom *g, const float *in, const float *weight, const float *bias,
               dn_act act, float *out, float *scratch)
{
    int m = g->oh * g->ow, k = g->kh * g->kw * g->cin;
    const float *a = in;
    if (!is_pointwise(g)) {
        im2col(g, in, scratch);
        a = scratch;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, g->cout, k, 1.0f, a, k, weight, k,
                0.0f, out, g->cout);
    dn_bias_act(out, (size_t)m, g->cout, bias, act);
}

static inline float act_apply(float v, dn_act act)
{
    if (act == DN_ACT_NONE)
        return v;
    v = v > 0.0f ? v : 0.0f;
    return act == DN_ACT_RELU6 && v > 6.0f ? 6.0f : v;
}

DN_VECTOR_CLONES
void dn_bias_act(float *restrict x, size_t n_pix, int c, const float *restrict bias, dn_act act)
{
    float hi = act == DN_ACT_RELU6 ? 6.0f : INFINITY, lo = act == DN_ACT_NONE ? -INFINITY : 0.0f;
    for (size_t p = 0; p < n_pix; p++, x += c)
        for (int j = 0; j < c; j++) {
            float v = x[j] + bias[j];
            v = v < lo ? lo : v;
            x[j] = v > hi ? hi : v;
        }
}

/* One output pixel of a depthwise conv: acc[c] = bias[c] + sum of the taps that fall
 * inside the input (rows ky0..ky1, cols kx0..kx1 of the kernel). */
static inline void dw_pixel(const dn_conv_geom *g, const float *restrict in, const float *restrict w,
                            const float *restrict bias, float *restrict acc, int iy0, int ix0,
                            int ky0, int ky1, int kx0, int kx1)
{
    int c = g->cin;
    memcpy(acc, bias, c * sizeof *acc);
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++) {
            const float *src = in + ((size_t)(iy0 + ky) * g->iw + (ix0 + kx)) * c;
            const float *wk = w + ((size_t)ky * g->kw + kx) * c;
            for (int j = 0; j < c; j++)
                acc[j] += src[j] * wk[j];
        }
}

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

DN_VECTOR_CLONES
void dn_dwconv(const dn_conv_geom *g, const float *in, const float *weight, const float *bias,
               dn_act act, float *out)
{
    int c = g->cin;
    for (int oy = 0; oy < g->oh; oy++) {
        int iy0 = oy * g->sh - g->pad_top;
        int ky0 = clampi(-iy0, 0, g->kh), ky1 = clampi(g->ih - iy0, 0, g->kh);
        for (int ox = 0; ox < g->ow; ox++) {
            int ix0 = ox * g->sw - g->pad_left;
            int kx0 = clampi(-ix0, 0, g->kw), kx1 = clampi(g->iw - ix0, 0, g->kw);
            float *acc = out + ((size_t)oy * g->ow + ox) * c;
            dw_pixel(g, in, weight, bias, acc, iy0, ix0, ky0, ky1, kx0, kx1);
            if (act != DN_ACT_NONE)
                for (int j = 0; j < c; j++)
                    acc[j] = act_apply(acc[j], act);
        }
    }
}

DN_VECTOR_CLONES
void dn_add(const float *a, const float *b, float *out, size_t n, dn_act act)
{
    for (size_t i = 0; i < n; i++)
        out[i] = act_apply(a[i] + b[i], act);
}

void dn_mean(const float *in, size_t n_pix, int c, float *out)
{
    /* double accumulation: a 4096x4096 map has 16M terms */
    for (int j = 0; j < c; j++) {
        double s = 0.0;
        for (size_t p = 0; p < n_pix; p++)
            s += in[p * c + j];
        out[j] = (float)(s / (double)n_pix);
    }
}

void dn_softmax(const float *in, int n, float *out)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = in[i] > mx ? in[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        out[i] = expf(in[i] - mx);
        sum += out[i];
    }
    for (int i = 0; i < n; i++)
        out[i] = (float)(out[i] / sum);
}
