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

/* out[p][c] = bias[c] (+ residual[p][c]): the accumulator sgemm adds to. */
DN_VECTOR_CLONES
static void init_accumulator(float *restrict out, size_t n_pix, int c, const float *restrict bias,
                             const float *restrict residual)
{
    for (size_t p = 0; p < n_pix; p++, out += c)
        if (residual) {
            const float *r = residual + p * c;
            for (int j = 0; j < c; j++)
                out[j] = bias[j] + r[j];
        } else {
            memcpy(out, bias, c * sizeof *out);
        }
}

void dn_conv2d(const dn_conv_geom *g, const float *in, const float *weight, const float *bias,
               const float *residual, dn_act act, float *out, float *scratch)
{
    int m = g->oh * g->ow, k = g->kh * g->kw * g->cin;
    const float *a = in;
    if (!is_pointwise(g)) {
        im2col(g, in, scratch);
        a = scratch;
    }
    init_accumulator(out, (size_t)m, g->cout, bias, residual);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, g->cout, k, 1.0f, a, k, weight, k,
                1.0f, out, g->cout);
    if (act != DN_ACT_NONE)
        dn_act_inplace(out, (size_t)m * g->cout, act);
}

/* Activations as a clamp to [lo, hi]: one branch-free form for none, ReLU and ReLU6. */
static void act_bounds(dn_act act, float *lo, float *hi)
{
    *lo = act == DN_ACT_NONE ? -INFINITY : 0.0f;
    *hi = act == DN_ACT_RELU6 ? 6.0f : INFINITY;
}

DN_VECTOR_CLONES
void dn_act_inplace(float *x, size_t n, dn_act act)
{
    float lo, hi;
    act_bounds(act, &lo, &hi);
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

/* One output pixel of a depthwise conv near the border: only the taps inside the input
 * (kernel rows ky0..ky1-1, columns kx0..kx1-1) contribute, as with zero padding. */
static void dw_border_pixel(const dn_conv_geom *g, const float *restrict in,
                            const float *restrict w, const float *restrict bias,
                            float *restrict acc, int iy0, int ix0, float lo, float hi)
{
    int c = g->cin;
    int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = g->ih - iy0 < g->kh ? g->ih - iy0 : g->kh;
    int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = g->iw - ix0 < g->kw ? g->iw - ix0 : g->kw;
    memcpy(acc, bias, c * sizeof *acc);
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++) {
            const float *src = in + ((size_t)(iy0 + ky) * g->iw + (ix0 + kx)) * c;
            const float *wk = w + ((size_t)ky * g->kw + kx) * c;
            for (int j = 0; j < c; j++)
                acc[j] += src[j] * wk[j];
        }
    for (int j = 0; j < c; j++)
        acc[j] = acc[j] < lo ? lo : acc[j] > hi ? hi : acc[j];
}

/* One interior output pixel of a 3x3 depthwise conv: the nine taps are summed in
 * registers and stored once, one pass over the channels. r0..r2 point at the top-left
 * tap of each input row. */
static inline void dw3x3_pixel(const float *restrict r0, const float *restrict r1,
                               const float *restrict r2, const float *restrict w,
                               const float *restrict bias, float *restrict out, int c, float lo,
                               float hi)
{
    const float *w0 = w, *w1 = w + 3 * c, *w2 = w + 6 * c;
    for (int j = 0; j < c; j++) {
        float a = bias[j] + r0[j] * w0[j] + r0[c + j] * w0[c + j] + r0[2 * c + j] * w0[2 * c + j];
        a += r1[j] * w1[j] + r1[c + j] * w1[c + j] + r1[2 * c + j] * w1[2 * c + j];
        a += r2[j] * w2[j] + r2[c + j] * w2[c + j] + r2[2 * c + j] * w2[2 * c + j];
        out[j] = a < lo ? lo : a > hi ? hi : a;
    }
}

/* Output columns [*x0, *x1) whose kernel window lies inside the input. */
static void interior_cols(const dn_conv_geom *g, int *x0, int *x1)
{
    *x0 = (g->pad_left + g->sw - 1) / g->sw;
    *x1 = (g->iw - g->kw + g->pad_left) / g->sw + 1;
    *x1 = *x1 > g->ow ? g->ow : *x1 < *x0 ? *x0 : *x1;
}

DN_VECTOR_CLONES
void dn_dwconv(const dn_conv_geom *g, const float *in, const float *weight, const float *bias,
               dn_act act, float *out)
{
    int c = g->cin, x0, x1;
    float lo, hi;
    act_bounds(act, &lo, &hi);
    interior_cols(g, &x0, &x1);
    int fast = g->kh == 3 && g->kw == 3;
    for (int oy = 0; oy < g->oh; oy++) {
        int iy0 = oy * g->sh - g->pad_top;
        int row_inside = iy0 >= 0 && iy0 + g->kh <= g->ih;
        float *orow = out + (size_t)oy * g->ow * c;
        for (int ox = 0; ox < g->ow; ox++) {
            int ix0 = ox * g->sw - g->pad_left;
            if (fast && row_inside && ox >= x0 && ox < x1) {
                const float *r0 = in + ((size_t)iy0 * g->iw + ix0) * c;
                const float *r1 = r0 + (size_t)g->iw * c, *r2 = r1 + (size_t)g->iw * c;
                dw3x3_pixel(r0, r1, r2, weight, bias, orow + (size_t)ox * c, c, lo, hi);
            } else {
                dw_border_pixel(g, in, weight, bias, orow + (size_t)ox * c, iy0, ix0, lo, hi);
            }
        }
    }
}

DN_VECTOR_CLONES
void dn_add(const float *a, const float *b, float *out, size_t n, dn_act act)
{
    float lo, hi;
    act_bounds(act, &lo, &hi);
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        out[i] = v < lo ? lo : v > hi ? hi : v;
    }
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
