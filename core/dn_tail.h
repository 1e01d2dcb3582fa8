/* dn_tail: a trainable copy of the backbone's tail — the last inverted-residual block
 * (1x1 expansion + ReLU6, depthwise + ReLU6, linear 1x1 projection) and the final 1x1
 * convolution — fine-tuned together with the DevNet head from cached tail inputs, so a
 * retrain never runs the frozen trunk again. REFERENCE-RESULTS.md measured this at
 * +0.02..0.06 image AUROC over the head alone on every real dataset tried. */
#ifndef DN_TAIL_H
#define DN_TAIL_H

#include "dn_backbone.h"
#include "dn_head.h"

#define DN_TAIL_LAYERS 4

typedef struct dn_tail {
    dn_node layer[DN_TAIL_LAYERS]; /* expand, depthwise, project, final; weights point into params */
    float *params;                 /* every weight and bias, one block (owned) */
    size_t n_params;
    int input_node;                /* the backbone node whose map feeds the tail */
} dn_tail;

typedef struct dn_tail_opts {
    int steps;       /* 300 */
    int batch;       /* per class: 8 normal + 8 anomalous */
    float lr_head;   /* 1e-3 */
    float lr_tail;   /* 1e-4: the tail starts from ImageNet weights and should stay near them */
    float weight_decay, clip_norm;
    uint64_t seed;
    double deadline; /* dn_clock_now() seconds, 0 = none: past it, DN_ETIMEDOUT */
    const volatile int *cancel; /* may be NULL; set by another thread: DN_ETIMEDOUT */
} dn_tail_opts;

void dn_tail_opts_default(dn_tail_opts *o);

/* The tail of bb: its final map must be a 1x1 convolution reading a 1x1 projection of a
 * depthwise convolution of a 1x1 expansion (MobileNetV2's shape); DN_EUNSUPPORTED if not.
 * Copies the weights. t is overwritten (free it first if it held a tail); on error it is
 * left empty. */
int dn_tail_init(dn_tail *t, const dn_backbone *bb, dn_error *err);
/* The same structure with parameters from elsewhere (a model file): n must match. */
int dn_tail_with_params(dn_tail *t, const dn_backbone *bb, const float *params, size_t n,
                        dn_error *err);
void dn_tail_free(dn_tail *t);
/* The node whose map feeds bb's tail, or -1 when bb has no such tail. */
int dn_tail_input_node(const dn_backbone *bb);

/* Floats of the activations dn_tail_forward keeps for an h x w input map. */
size_t dn_tail_act_floats(const dn_tail *t, int h, int w);
/* Runs the tail on x (h x w x cin); acts receives the four layers' outputs in order, the
 * last being the final map (returned). */
float *dn_tail_forward(const dn_tail *t, const float *x, int h, int w, float *acts);

/* Fine-tunes t and head h together on tail inputs (each h x w x cin). */
typedef struct dn_tail_data {
    const float *const *normal;
    int n_normal;
    const float *const *anomaly;
    int n_anomaly;
    int h, w;
} dn_tail_data;
int dn_tail_train(dn_tail *t, dn_head *h, const dn_tail_data *d, const dn_tail_opts *o, dn_error *err);

#endif
