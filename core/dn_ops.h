/* dn_ops: the float32 kernels of the forward pass, on HWC maps (batch 1).
 * Naive reference versions live in tests/test_ops.c; these are the fast ones. */
#ifndef DN_OPS_H
#define DN_OPS_H

#include "dn_graph.h"

#include <stddef.h>

/* Geometry of one convolution-like op. */
typedef struct dn_conv_geom {
    int ih, iw, cin;     /* input map */
    int oh, ow, cout;    /* output map */
    int kh, kw, sh, sw;  /* kernel, stride */
    int pad_top, pad_left; /* TF SAME: the extra row/column goes bottom/right */
} dn_conv_geom;

/* Fills g from a node and its input size (output size as dn_graph_shapes computes it). */
void dn_conv_geom_of(const dn_node *n, int ih, int iw, dn_conv_geom *g);

/* Floats of scratch dn_conv2d needs (0 for a 1x1 stride-1 convolution). */
size_t dn_conv2d_scratch(const dn_conv_geom *g);

/* Dense convolution, weight OHWI: 1x1 stride 1 as one sgemm, otherwise im2col + sgemm.
 * out starts as bias (+ residual when not NULL: a fused residual add) and sgemm adds to
 * it, which spares both OpenBLAS's zeroing pass and a separate bias/add pass; the
 * activation is applied last. */
void dn_conv2d(const dn_conv_geom *g, const float *in, const float *weight, const float *bias,
               const float *residual, dn_act act, float *out, float *scratch);

/* x = clamp to the activation's range, n floats. */
void dn_act_inplace(float *x, size_t n, dn_act act);

/* Depthwise convolution, weight [KH][KW][C], direct loop vectorised over channels. */
void dn_dwconv(const dn_conv_geom *g, const float *in, const float *weight, const float *bias,
               dn_act act, float *out);

/* out = act(a + b), n floats (out may alias a or b). */
void dn_add(const float *a, const float *b, float *out, size_t n, dn_act act);

/* Global average over n_pix pixels of c channels. */
void dn_mean(const float *in, size_t n_pix, int c, float *out);

/* Numerically stable softmax over n values. */
void dn_softmax(const float *in, int n, float *out);

#endif
