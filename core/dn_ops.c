#include "dn_ops.h"

#include "dn_simd.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

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
                int ix0 = ox * g->sw - g->pad_left;
                const float *src = in + ((size_t)iy * g->iw + ix0) * g->cin;
                if (ix0 >= 0 && ix0 + g->kw <= g->iw) { /* the window row is one run */
                    memcpy(dst, src, row_len * sizeof *dst);
                    continue;
                }
                for (int kx = 0; kx < g->kw; kx++) {
                    float *d = dst + (size_t)kx * g->cin;
                    if (ix0 + kx < 0 || ix0 + kx >= g->iw)
                        memset(d, 0, g->cin * sizeof *d);
                    else
                        memcpy(d, src + (size_t)kx * g->cin, g->cin * sizeof *d);
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
            for (int j = 0; j < c; j++) /* a loop: memcpy per pixel costs a call each */
                out[j] = bias[j];
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
DN_INLINE void dw_border_pixel(const dn_conv_geom *g, const float *restrict in,
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

/* Interior output pixels of a 3x3 depthwise conv, channels [j0, c): the nine taps are
 * summed in registers and stored once. r0..r2 point at the top-left tap of each input
 * row. Used for the columns and channels the blocked kernel below leaves over. */
DN_INLINE void dw3x3_pixel(const float *restrict r0, const float *restrict r1,
                               const float *restrict r2, const float *restrict w,
                               const float *restrict bias, float *restrict out, int c, int j0,
                               float lo, float hi)
{
    const float *w0 = w, *w1 = w + 3 * c, *w2 = w + 6 * c;
    for (int j = j0; j < c; j++) {
        float a = bias[j] + r0[j] * w0[j] + r0[c + j] * w0[c + j] + r0[2 * c + j] * w0[2 * c + j];
        a += r1[j] * w1[j] + r1[c + j] * w1[c + j] + r1[2 * c + j] * w1[2 * c + j];
        a += r2[j] * w2[j] + r2[c + j] * w2[c + j] + r2[2 * c + j] * w2[2 * c + j];
        out[j] = a < lo ? lo : a > hi ? hi : a;
    }
}

DN_INLINE dn_v16 v16_clamp(dn_v16 a, dn_v16 lo, dn_v16 hi)
{
    a = v16_select(a < lo, a, lo);
    return v16_select(a > hi, a, hi);
}

/* Four horizontally adjacent interior outputs, 16 channels, stride s: the nine weights
 * stay in registers and, at stride 1, the four outputs share their input loads. */
DN_INLINE void dw3x3_quad(const float *restrict r, size_t row, int c, int s, const dn_v16 *w,
                              dn_v16 b, dn_v16 lo, dn_v16 hi, float *restrict out)
{
    dn_v16 a0 = b, a1 = b, a2 = b, a3 = b;
    for (int ky = 0; ky < 3; ky++, r += row)
        for (int kx = 0; kx < 3; kx++) {
            dn_v16 wk = w[ky * 3 + kx];
            a0 += v16_load(r + (size_t)(kx)*c) * wk;
            a1 += v16_load(r + (size_t)(s + kx) * c) * wk;
            a2 += v16_load(r + (size_t)(2 * s + kx) * c) * wk;
            a3 += v16_load(r + (size_t)(3 * s + kx) * c) * wk;
        }
    a0 = v16_clamp(a0, lo, hi), a1 = v16_clamp(a1, lo, hi);
    a2 = v16_clamp(a2, lo, hi), a3 = v16_clamp(a3, lo, hi);
    memcpy(out, &a0, sizeof a0);
    memcpy(out + c, &a1, sizeof a1);
    memcpy(out + 2 * c, &a2, sizeof a2);
    memcpy(out + 3 * c, &a3, sizeof a3);
}

/* Output columns [*x0, *x1) whose kernel window lies inside the input. */
static void interior_cols(const dn_conv_geom *g, int *x0, int *x1)
{
    *x0 = (g->pad_left + g->sw - 1) / g->sw;
    *x1 = (g->iw - g->kw + g->pad_left) / g->sw + 1;
    *x1 = *x1 > g->ow ? g->ow : *x1 < *x0 ? *x0 : *x1;
}

/* One output row whose 3x3 windows lie inside the input vertically: columns [x0, xq) in
 * blocks of four outputs x 16 channels, the rest pixel by pixel. */
DN_INLINE void dw3x3_row(const dn_conv_geom *g, const float *in, const float *weight,
                      const float *bias, float lo, float hi, int iy0, int x0, int x1, float *orow)
{
    int c = g->cin, cq = c - c % V16, xq = x0 + (x1 - x0) / 4 * 4;
    size_t row = (size_t)g->iw * c;
    const float *r0 = in + (size_t)iy0 * row;
    dn_v16 vlo = {0}, vhi = {0}, w[9];
    vlo += lo, vhi += hi;
    for (int j = 0; j < cq; j += V16) {
        for (int k = 0; k < 9; k++)
            w[k] = v16_load(weight + (size_t)k * c + j);
        dn_v16 b = v16_load(bias + j);
        for (int ox = x0; ox < xq; ox += 4) {
            const float *r = r0 + (size_t)(ox * g->sw - g->pad_left) * c + j;
            float *o = orow + (size_t)ox * c + j;
            if (g->sw == 1) /* a constant stride lets the compiler share the loads */
                dw3x3_quad(r, row, c, 1, w, b, vlo, vhi, o);
            else
                dw3x3_quad(r, row, c, g->sw, w, b, vlo, vhi, o);
        }
    }
    for (int ox = x0; ox < x1; ox++) {
        const float *r = r0 + (size_t)(ox * g->sw - g->pad_left) * c;
        dw3x3_pixel(r, r + row, r + 2 * row, weight, bias, orow + (size_t)ox * c, c,
                    ox < xq ? cq : 0, lo, hi);
    }
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
        int iy0 = oy * g->sh - g->pad_top, rx0 = x0, rx1 = x1;
        float *orow = out + (size_t)oy * g->ow * c;
        if (!fast || iy0 < 0 || iy0 + g->kh > g->ih)
            rx0 = rx1 = g->ow; /* the whole row takes the border path */
        else
            dw3x3_row(g, in, weight, bias, lo, hi, iy0, rx0, rx1, orow);
        for (int ox = 0; ox < g->ow; ox++)
            if (ox < rx0 || ox >= rx1)
                dw_border_pixel(g, in, weight, bias, orow + (size_t)ox * c, iy0,
                                ox * g->sw - g->pad_left, lo, hi);
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
