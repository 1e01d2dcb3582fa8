/* dn_grad: backward passes of the forward kernels of dn_ops, enough to fine-tune the tail
 * of MobileNetV2 (the last inverted-residual block and the final 1x1 convolution) with the
 * scoring head, from cached block inputs.
 *
 * Maps are HWC float32, batch 1, geometry and weight layouts as in dn_ops. Weight and bias
 * gradients are accumulated (+=) so the caller can loop over a batch of images; input
 * gradients are overwritten.
 *
 * A fused activation is undone first: dn_act_backward on the op's output, then the op's
 * backward. The residual add (out = a + b, as dn_conv2d's residual or dn_add without an
 * activation) passes its gradient unchanged to both inputs, so it has no function: the
 * gradient of a block's input is d_out plus what flows back through the block's branch. */
#ifndef DN_GRAD_H
#define DN_GRAD_H

#include "dn_ops.h"

#include <stddef.h>

/* 1x1 stride-1 convolution, out[p][o] = sum_i in[p][i] * w[o][i] + b[o], over the
 * oh * ow pixels of g: d_weight += d_out^T * in, d_bias += column sums of d_out and
 * d_in = d_out * w (skipped when d_in is NULL: a frozen input needs none). */
void dn_conv1x1_backward(const dn_conv_geom *g, const float *in, const float *weight,
                         const float *d_out, float *d_in, float *d_weight, float *d_bias);

/* Depthwise convolution of any kernel size and stride, SAME or VALID padding as dn_dwconv
 * computes it (pad_top/pad_left of g; taps in the padding contribute nothing).
 * d_in (may be NULL) is overwritten, d_weight [KH][KW][C] and d_bias [C] accumulated. */
void dn_dwconv_backward(const dn_conv_geom *g, const float *in, const float *weight,
                        const float *d_out, float *d_in, float *d_weight, float *d_bias);

/* In place on d, n floats: d_x = d_y where the activation passed its input, else 0. Decided
 * on the forward output y: 0 < y < 6 for ReLU6, y > 0 for ReLU, everywhere for none. A
 * value sitting exactly on a clamp (y == 0 or 6) gets 0, TensorFlow's choice at the kink. */
void dn_act_backward(const float *y, float *d, size_t n, dn_act act);

#endif
