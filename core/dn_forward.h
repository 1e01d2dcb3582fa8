/* dn_forward: runs a backbone on one input. One context per thread: it owns the
 * activation buffers (an arena planned per input size, reused across calls) while the
 * backbone's weights stay shared and read-only.
 *
 * Buffers are assigned by liveness: a node's output takes a free slot and gives it back
 * after its last reader ran, so MobileNetV2 needs a handful of slots, not one per layer.
 * An inverted-residual chain (1x1 expansion -> depthwise -> 1x1 projection, each read
 * only by the next) runs in bands of output rows, so the wide expanded maps live in a
 * band buffer that stays in cache instead of making a round trip through memory; rows
 * shared by consecutive bands are kept, not recomputed.
 * A residual ADD whose one input is a linear convolution read by nothing else is fused
 * into that convolution (the sum is its accumulator's start value), unless a tap wants
 * the convolution alone. Requested taps are copied out as they are produced; execution
 * stops at the last tap, so the classifier runs only when one of its nodes is asked for. */
#ifndef DN_FORWARD_H
#define DN_FORWARD_H

#include "dn_arena.h"
#include "dn_backbone.h"

typedef struct dn_fmap {
    int h, w, c;
    const float *data; /* HWC; valid until the next run on the same context */
} dn_fmap;

typedef struct dn_forward {
    const dn_backbone *bb;
    int h, w; /* input size the plan is for (0: none yet) */
    int out_h[DN_MAX_NODES], out_w[DN_MAX_NODES];
    int slot_of[DN_MAX_NODES];
    int last_use[DN_MAX_NODES];
    int fused_add[DN_MAX_NODES]; /* for a conv: the ADD it performs, else -1 */
    int residual[DN_MAX_NODES];  /* for such a conv: the ADD's other input */
    int chain_end[DN_MAX_NODES]; /* for an expansion heading a banded chain: its projection */
    int band_rows[DN_MAX_NODES]; /* for a chain's depthwise node: output rows per band */
    size_t band_bytes;           /* target size of a band of the expanded map */
    int n_slots;
    float *slots[DN_MAX_NODES];
    float *scratch;
    float *taps[DN_MAX_TAPS];
    int tap_nodes[DN_MAX_TAPS];
    int n_taps;
    dn_arena arena;
    dn_error err;
} dn_forward;

/* Band buffers aim at this size: a good share of a core's L2 cache. */
#define DN_FORWARD_BAND_BYTES (384u << 10)

void dn_forward_init(dn_forward *f, const dn_backbone *bb);
void dn_forward_free(dn_forward *f);

/* Runs the backbone on a normalised HWC input of h x w x in_channels and fills out[i]
 * with the map of node taps[i]. The same taps and size as the previous call allocate
 * nothing. */
int dn_forward_run(dn_forward *f, const float *input, int h, int w, const int *taps, int n_taps,
                   dn_fmap *out);

/* Bytes of activation memory the plan for h x w with these taps needs. */
size_t dn_forward_plan_bytes(const dn_forward *f);

#endif
