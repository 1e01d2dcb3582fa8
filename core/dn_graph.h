/* dn_graph: the backbone as a list of nodes in execution order, independent of any
 * file format. The TFLite importer builds one, the backbone loader rebuilds one from a
 * safetensors file's __metadata__, and the forward pass executes it.
 *
 * Layout convention: feature maps are float32 HWC (batch 1, channels fastest), which
 * makes a 1x1 convolution one sgemm [H*W x Cin] x [Cin x Cout] and lets the depthwise
 * loop vectorise over channels. Weights: conv [Cout][KH][KW][Cin] (OHWI), depthwise
 * [KH][KW][C], bias [Cout]. */
#ifndef DN_GRAPH_H
#define DN_GRAPH_H

#include "dn_error.h"
#include "dn_limits.h"

#include <cJSON.h>

typedef enum dn_op {
    DN_OP_CONV = 0, /* dense KxK convolution (1x1 is the pointwise case) */
    DN_OP_DWCONV,   /* depthwise KxK convolution, depth multiplier 1 */
    DN_OP_ADD,      /* element-wise sum of two maps (residual) */
    DN_OP_MEAN,     /* global average over H and W -> 1x1xC */
    DN_OP_SOFTMAX,  /* softmax over channels of a 1x1xC map */
    DN_OP_COUNT
} dn_op;

typedef enum dn_act { DN_ACT_NONE = 0, DN_ACT_RELU = 1, DN_ACT_RELU6 = 3 } dn_act;
typedef enum dn_pad { DN_PAD_SAME = 0, DN_PAD_VALID = 1 } dn_pad;

#define DN_INPUT (-1) /* node input index meaning "the graph input" */
#define DN_GRAPH_INPUT_NAME "input" /* how the graph JSON names it (no node may) */

typedef struct dn_node {
    char name[DN_MAX_NAME];
    dn_op op;
    int in[2];          /* producer node indices (DN_INPUT for the image); in[1] only for ADD */
    int kh, kw;         /* kernel size (CONV, DWCONV) */
    int stride_h, stride_w;
    dn_pad pad;
    dn_act act;         /* fused activation after bias */
    int cin, cout;      /* channels in/out */
    const float *weight; /* not owned: points into the backbone's weight storage */
    const float *bias;
} dn_node;

typedef struct dn_graph {
    int n_nodes;
    dn_node nodes[DN_MAX_NODES];
    int in_channels;     /* 3 (RGB) */
    int native_size;     /* the size the classifier was trained at (224) */
    float in_scale, in_offset; /* x = pixel * in_scale + in_offset */
    int n_classes;       /* classifier width, 0 if none */
} dn_graph;

const char *dn_op_name(dn_op op);
const char *dn_act_name(dn_act act);

/* Number of float weights/biases a node carries (0 for ADD/MEAN/SOFTMAX). */
size_t dn_node_weight_count(const dn_node *n);
size_t dn_node_bias_count(const dn_node *n);

/* Index of the node called name, or -1. */
int dn_graph_find(const dn_graph *g, const char *name);

/* Checks structural sanity: inputs precede their users, channel counts chain,
 * kernel/stride within range, ops known. A graph from a file must pass this. */
int dn_graph_validate(const dn_graph *g, dn_error *err);

/* Output height/width of every node for an input of h x w (arrays of g->n_nodes).
 * Fails if any size reaches zero. */
int dn_graph_shapes(const dn_graph *g, int h, int w, int *out_h, int *out_w, dn_error *err);

/* Serialises the structure (not the weights) to a cJSON object / parses it back.
 * Weight pointers are left NULL by the parser. */
cJSON *dn_graph_to_json(const dn_graph *g);
int dn_graph_from_json(dn_graph *g, const cJSON *json, dn_error *err);

#endif
