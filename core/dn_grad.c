#include "dn_grad.h"

#include "dn_simd.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* sum[j] += x[r][j] over rows: row by row, so the inner loop is contiguous. */
DN_VECTOR_CLONES
static void add_column_sums(const float *restrict x, size_t rows, int cols,
                            float *restrict sum)
{
    for (size_t r = 0; r < rows; r++, x += cols)
        for (int j = 0; j < cols; j++)
            sum[j] += x[j];
}

void dn_conv1x1_backward(const dn_conv_geom *g, const float *in, const float *weight,
                         const float *d_out, float *d_in, float *d_weight, float *d_bias)
{
    int m = g->oh * g->ow, cin = g->cin, cout = g->cout;
    /* [cout x m] * [m x cin], added to what earlier images left there (beta 1) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cout, cin, m, 1.0f, d_out, cout, in,
                cin, 1.0f, d_weight, cin);
    add_column_sums(d_out, (size_t)m, cout, d_bias);
    if (d_in)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, cin, cout, 1.0f, d_out, cout,
                    weight, cin, 0.0f, d_in, cin);
}

/* One output pixel's share of the depthwise gradients, go being its d_out. Only the taps
 * inside the input (rows ky0..ky1-1, columns kx0..kx1-1) were used by the forward pass. */
DN_INLINE void dw_pixel_backward(const dn_conv_geom *g, const float *restrict in,
                                 const float *restrict w, const float *restrict go,
                                 float *restrict d_in, float *restrict d_w, int iy0, int ix0)
{
    int c = g->cin;
    int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = g->ih - iy0 < g->kh ? g->ih - iy0 : g->kh;
    int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = g->iw - ix0 < g->kw ? g->iw - ix0 : g->kw;
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++) {
            size_t at = ((size_t)(iy0 + ky) * g->iw + (ix0 + kx)) * c;
            size_t tap = ((size_t)ky * g->kw + kx) * c;
            const float *x = in + at;
            float *dw = d_w + tap;
            for (int j = 0; j < c; j++)
                dw[j] += x[j] * go[j];
            if (!d_in)
                continue;
            const float *wk = w + tap;
            float *dx = d_in + at;
            for (int j = 0; j < c; j++)
                dx[j] += wk[j] * go[j];
        }
}

/* Scatter form: each output pixel adds to the inputs and weights it read, which handles
 * every stride, kernel size and border with the forward's own index arithmetic. */
DN_VECTOR_CLONES
void dn_dwconv_backward(const dn_conv_geom *g, const float *in, const float *weight,
                        const float *d_out, float *d_in, float *d_weight, float *d_bias)
{
    int c = g->cin;
    if (d_in)
        memset(d_in, 0, (size_t)g->ih * g->iw * c * sizeof *d_in);
    add_column_sums(d_out, (size_t)g->oh * g->ow, c, d_bias);
    for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++)
            dw_pixel_backward(g, in, weight, d_out + ((size_t)oy * g->ow + ox) * c, d_in,
                              d_weight, oy * g->sh - g->pad_top, ox * g->sw - g->pad_left);
}

DN_VECTOR_CLONES
void dn_act_backward(const float *y, float *d, size_t n, dn_act act)
{
    if (act == DN_ACT_NONE)
        return; /* the identity passes every gradient */
    float hi = act == DN_ACT_RELU6 ? 6.0f : INFINITY;
    for (size_t i = 0; i < n; i++)
        d[i] = y[i] > 0.0f && y[i] < hi ? d[i] : 0.0f;
}
