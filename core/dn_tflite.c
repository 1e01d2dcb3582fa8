#include "dn_tflite.h"

#include "dn_sha256.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bounds-checked flatbuffer reading -------------------------------------------
 * Every read goes through fb_* helpers that check the offset against the buffer and
 * set `bad` instead of reading out of bounds: the file is untrusted input. */

typedef struct fb {
    const uint8_t *p;
    size_t n;
    int bad;
} fb;

static uint64_t fb_uint(fb *b, size_t off, int size)
{
    if (off > b->n || b->n - off < (size_t)size) {
        b->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; i--)
        v = (v << 8) | b->p[off + i];
    return v;
}

/* Follows the uoffset stored at `at`; 0 (never a valid target) on error. */
static size_t fb_deref(fb *b, size_t at)
{
    uint64_t target = at + fb_uint(b, at, 4);
    if (b->bad || target >= b->n) {
        b->bad = 1;
        return 0;
    }
    return (size_t)target;
}

/* Absolute position of field idx of the table at t, or 0 when absent. */
static size_t fb_field(fb *b, size_t t, int idx)
{
    int64_t vt = (int64_t)t - (int32_t)fb_uint(b, t, 4);
    if (b->bad || vt < 0 || (uint64_t)vt >= b->n) {
        b->bad = 1;
        return 0;
    }
    uint64_t vlen = fb_uint(b, (size_t)vt, 2);
    if ((uint64_t)(4 + 2 * idx) + 2 > vlen)
        return 0;
    uint64_t fo = fb_uint(b, (size_t)vt + 4 + 2 * idx, 2);
    return fo ? t + (size_t)fo : 0;
}

static int64_t fb_scalar(fb *b, size_t t, int idx, int size, int64_t dflt)
{
    size_t f = fb_field(b, t, idx);
    if (!f)
        return dflt;
    uint64_t v = fb_uint(b, f, size);
    int shift = 64 - 8 * size; /* sign-extend */
    return (int64_t)(v << shift) >> shift;
}

/* Vector field: position of the first element and its length; 0 elements when absent. */
static size_t fb_vector(fb *b, size_t t, int idx, size_t elem_size, uint32_t *len)
{
    *len = 0;
    size_t f = fb_field(b, t, idx);
    if (!f)
        return 0;
    size_t v = fb_deref(b, f);
    uint64_t n = fb_uint(b, v, 4);
    if (b->bad || n * elem_size > b->n - v - 4) {
        b->bad = 1;
        return 0;
    }
    *len = (uint32_t)n;
    return v + 4;
}

static size_t fb_table_elem(fb *b, size_t vec, uint32_t i)
{
    return fb_deref(b, vec + 4 * (size_t)i);
}

/* ---- TFLite model view ------------------------------------------------------------ */

enum { TFL_F32 = 0, TFL_I32 = 2, TFL_U8 = 3, TFL_I8 = 9 };
enum {
    OP_ADD = 0, OP_CONV = 3, OP_DWCONV = 4, OP_DEQUANTIZE = 6, OP_RESHAPE = 22, OP_SOFTMAX = 25,
    OP_MEAN = 40, OP_QUANTIZE = 114
};

typedef struct tfl_tensor {
    int ndim;
    int64_t shape[4];
    int type;
    const uint8_t *data; /* NULL when the tensor has no constant buffer */
    size_t data_len;
    const uint8_t *scales; /* little-endian float32[n_scales] */
    uint32_t n_scales;
    const uint8_t *zero_points; /* little-endian int64[n_zp] */
    uint32_t n_zp;
    int qdim;
    char name[DN_MAX_NAME];
} tfl_tensor;

typedef struct importer {
    fb b;
    dn_tflite_model *m;
    size_t buffers;
    uint32_t n_buffers;
    size_t opcodes;
    uint32_t n_opcodes;
    tfl_tensor *tensors;
    uint32_t n_tensors;
    int *producer; /* tensor index -> node index, DN_INPUT, or -2 (not produced) */
    int input_h, input_w;
} importer;

#define NOT_PRODUCED (-2)

static int corrupt(importer *im, const char *what)
{
    return dn_error_set(&im->m->err, DN_EFORMAT, "TFLite file is corrupt: %s", what);
}

static void read_name(importer *im, size_t t, char *out)
{
    uint32_t len;
    size_t s = fb_vector(&im->b, t, 3, 1, &len);
    size_t n = len < DN_MAX_NAME - 1 ? len : DN_MAX_NAME - 1;
    memcpy(out, im->b.p + s, s ? n : 0);
    out[s ? n : 0] = '\0';
}

static int read_tensor(importer *im, uint32_t i, size_t vec)
{
    fb *b = &im->b;
    tfl_tensor *t = &im->tensors[i];
    size_t tt = fb_table_elem(b, vec, i);
    uint32_t nd;
    size_t shape = fb_vector(b, tt, 0, 4, &nd);
    if (nd > 4)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "tensor %u has %u dimensions", i, nd);
    t->ndim = (int)nd;
    for (uint32_t d = 0; d < nd; d++)
        t->shape[d] = (int32_t)fb_uint(b, shape + 4 * d, 4);
    t->type = (int)fb_scalar(b, tt, 1, 1, 0);
    uint32_t buf_idx = (uint32_t)fb_scalar(b, tt, 2, 4, 0);
    read_name(im, tt, t->name);
    if (buf_idx >= im->n_buffers)
        return corrupt(im, "tensor buffer index out of range");
    uint32_t len;
    size_t data = fb_vector(b, fb_table_elem(b, im->buffers, buf_idx), 0, 1, &len);
    t->data = len ? b->p + data : NULL;
    t->data_len = len;
    size_t q = fb_field(b, tt, 4);
    if (q) {
        q = fb_deref(b, q);
        size_t sc = fb_vector(b, q, 2, 4, &t->n_scales);
        size_t zp = fb_vector(b, q, 3, 8, &t->n_zp);
        t->scales = b->p + sc;
        t->zero_points = b->p + zp;
        t->qdim = (int)fb_scalar(b, q, 6, 4, 0);
    }
    return b->bad ? corrupt(im, "tensor table out of bounds") : DN_OK;
}

static float le_f32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int64_t le_i64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = (u << 8) | p[i];
    return (int64_t)u;
}

/* Elements of a tensor's shape; -1 when a dimension is not positive or the count passes
 * INT32_MAX (more than any constant the file size allows), which also keeps the product
 * from overflowing. */
static int64_t tensor_count(const tfl_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 1 || t->shape[d] > (1 << 24))
            return -1;
        n *= t->shape[d];
        if (n > INT32_MAX)
            return -1;
    }
    return n;
}

static int elem_size(int type)
{
    switch (type) {
    case TFL_F32: case TFL_I32: return 4;
    case TFL_I8: case TFL_U8: return 1;
    default: return 0;
    }
}

/* Raw element i of a constant tensor as a double, before dequantisation. */
static double raw_elem(const tfl_tensor *t, int64_t i)
{
    const uint8_t *p = t->data;
    switch (t->type) {
    case TFL_F32: return le_f32(p + 4 * i);
    case TFL_I32: return (int32_t)((uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                                   (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24);
    case TFL_I8: return (int8_t)p[i];
    default: return p[i];
    }
}

/* Dequantises a constant tensor into out[count]: per-tensor or per-channel along qdim. */
static int dequantize(importer *im, const tfl_tensor *t, int64_t count, float *out)
{
    int es = elem_size(t->type);
    if (!t->data)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "tensor '%s' is not a constant",
                            t->name);
    if (!es)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "tensor '%s' has unsupported type %d",
                            t->name, t->type);
    if (tensor_count(t) != count || (uint64_t)count * es != t->data_len)
        return corrupt(im, "constant tensor size does not match its shape");
    int quantised = t->type != TFL_F32;
    /* qdim comes from the file: an axis outside the shape means one channel (then only a
     * per-tensor scale fits), and must not index the shape. */
    int axis = t->qdim >= 0 && t->qdim < t->ndim ? t->qdim : t->ndim;
    int64_t channels = axis < t->ndim ? t->shape[axis] : 1;
    int64_t inner = 1;
    for (int d = axis + 1; d < t->ndim; d++)
        inner *= t->shape[d];
    if (quantised && t->n_scales != 1 && t->n_scales != channels)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "tensor '%s': %u scales for %lld channels",
                            t->name, t->n_scales, (long long)channels);
    if (quantised && t->n_zp && t->n_zp != t->n_scales)
        return corrupt(im, "zero point count differs from scale count");
    for (int64_t i = 0; i < count; i++) {
        double v = raw_elem(t, i);
        if (quantised) {
            uint32_t c = t->n_scales == 1 ? 0 : (uint32_t)((i / inner) % channels);
            double zp = t->n_zp ? (double)le_i64(t->zero_points + 8 * c) : 0.0;
            v = (v - zp) * le_f32(t->scales + 4 * c);
        }
        if (!isfinite(v))
            return corrupt(im, "non-finite weight");
        out[i] = (float)v;
    }
    return DN_OK;
}

/* ---- operators -------------------------------------------------------------------- */

typedef struct tfl_op {
    int code;
    int32_t in[3], out;
    int n_in;
    size_t options; /* builtin options table, 0 if absent */
} tfl_op;

static const char *op_code_name(int code)
{
    static const struct { int code; const char *name; } known[] = {
        {0, "ADD"}, {1, "AVERAGE_POOL_2D"}, {2, "CONCATENATION"}, {3, "CONV_2D"},
        {4, "DEPTHWISE_CONV_2D"}, {6, "DEQUANTIZE"}, {9, "FULLY_CONNECTED"}, {14, "LOGISTIC"},
        {17, "MAX_POOL_2D"}, {18, "MUL"}, {22, "RESHAPE"}, {23, "RESIZE_BILINEAR"},
        {25, "SOFTMAX"}, {28, "TANH"}, {34, "PAD"}, {40, "MEAN"}, {41, "SUB"},
        {114, "QUANTIZE"}, {117, "HARD_SWISH"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].code == code)
            return known[i].name;
    return "unknown";
}

static int read_op(importer *im, size_t t, tfl_op *op)
{
    fb *b = &im->b;
    uint32_t idx = (uint32_t)fb_scalar(b, t, 0, 4, 0);
    if (idx >= im->n_opcodes)
        return corrupt(im, "operator code index out of range");
    size_t oc = fb_table_elem(b, im->opcodes, idx);
    int64_t dep = fb_scalar(b, oc, 0, 1, 0), code = fb_scalar(b, oc, 3, 4, 0);
    op->code = (int)(code > dep ? code : dep);
    uint32_t n_in, n_out;
    size_t ins = fb_vector(b, t, 1, 4, &n_in), outs = fb_vector(b, t, 2, 4, &n_out);
    if (n_in < 1 || n_in > 3 || n_out != 1)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "operator %s has %u inputs, %u outputs",
                            op_code_name(op->code), n_in, n_out);
    op->n_in = (int)n_in;
    for (uint32_t k = 0; k < n_in; k++)
        op->in[k] = (int32_t)fb_uint(b, ins + 4 * k, 4);
    op->out = (int32_t)fb_uint(b, outs, 4);
    size_t opt = fb_field(b, t, 4);
    op->options = opt ? fb_deref(b, opt) : 0;
    for (int k = 0; k < op->n_in; k++)
        if (op->in[k] < 0 || (uint32_t)op->in[k] >= im->n_tensors)
            return corrupt(im, "operator input tensor index out of range");
    if (op->out < 0 || (uint32_t)op->out >= im->n_tensors)
        return corrupt(im, "operator output tensor index out of range");
    return b->bad ? corrupt(im, "operator table out of bounds") : DN_OK;
}

static int64_t opt_scalar(importer *im, const tfl_op *op, int idx, int size, int64_t dflt)
{
    return op->options ? fb_scalar(&im->b, op->options, idx, size, dflt) : dflt;
}

static int map_activation(importer *im, int64_t fused, dn_act *act)
{
    if (fused == 0 || fused == 1 || fused == 3) {
        *act = (dn_act)fused;
        return DN_OK;
    }
    return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "fused activation %lld is not supported",
                        (long long)fused);
}

/* Readable node name from a TFLite tensor name such as
 * "MobileNetV2/expanded_conv_5/project/batch_norm/FusedBatchNormV3;StatefulPartitioned..."
 * -> "expanded_conv_5/project": the first scope (the model name) is dropped, then at most
 * two path components are kept, stopping at TensorFlow's own op names. */
static void node_name(const char *tensor_name, int index, char *out)
{
    char path[DN_MAX_NAME];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(tensor_name, ";"), tensor_name);
    char *rest = strchr(path, '/') ? strchr(path, '/') + 1 : path;
    static const char *const stop[] = {"batch_norm", "relu6", "Relu6", "Conv2D", "BiasAdd",
                                       "FusedBatchNormV3", "Mean", "Softmax"};
    out[0] = '\0';
    int kept = 0;
    for (char *tok = strtok(rest, "/"); tok && kept < 2; tok = strtok(NULL, "/"), kept++) {
        int is_stop = 0;
        for (size_t s = 0; s < sizeof stop / sizeof stop[0]; s++)
            is_stop |= strcmp(tok, stop[s]) == 0;
        if (is_stop && kept > 0)
            break;
        size_t used = strlen(out);
        snprintf(out + used, DN_MAX_NAME - used, "%s%s", kept ? "/" : "", tok);
    }
    if (!out[0])
        snprintf(out, DN_MAX_NAME, "node_%d", index);
}

static int producer_of(importer *im, int32_t tensor, int *node)
{
    *node = im->producer[tensor];
    if (*node == NOT_PRODUCED)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED,
                            "tensor '%s' is used before any operator produces it",
                            im->tensors[tensor].name);
    return DN_OK;
}

static int channels_of(importer *im, int node)
{
    return node == DN_INPUT ? im->m->graph.in_channels : im->m->graph.nodes[node].cout;
}

/* Dequantises weight and bias of a conv-like op into the weight block at *cursor. */
static int take_weights(importer *im, const tfl_op *op, dn_node *n, size_t *cursor)
{
    size_t wn = dn_node_weight_count(n), bn = dn_node_bias_count(n);
    size_t room = im->m->n_weights - *cursor;
    /* The counts come from the file's shapes (a negative one is huge as a size_t), so they
     * are compared one by one: a sum could wrap around and pass. */
    if (wn > room || bn > room - wn)
        return corrupt(im, "weights larger than the file");
    float *w = im->m->weights + *cursor;
    int rc = dequantize(im, &im->tensors[op->in[1]], (int64_t)wn, w);
    if (!rc && op->n_in == 3 && op->in[2] >= 0)
        rc = dequantize(im, &im->tensors[op->in[2]], (int64_t)bn, w + wn);
    else if (!rc)
        memset(w + wn, 0, bn * sizeof *w);
    n->weight = w;
    n->bias = w + wn;
    *cursor += wn + bn;
    return rc;
}

static int build_conv(importer *im, const tfl_op *op, dn_node *n, size_t *cursor)
{
    const tfl_tensor *w = &im->tensors[op->in[1]];
    int dw = op->code == OP_DWCONV;
    if (op->n_in < 2 || w->ndim != 4)
        return corrupt(im, "convolution without a 4-D weight");
    n->op = dw ? DN_OP_DWCONV : DN_OP_CONV;
    n->kh = (int)w->shape[1];
    n->kw = (int)w->shape[2];
    n->cout = (int)(dw ? w->shape[3] : w->shape[0]);
    int64_t pad = opt_scalar(im, op, 0, 1, 0);
    n->stride_w = (int)opt_scalar(im, op, 1, 4, 1);
    n->stride_h = (int)opt_scalar(im, op, 2, 4, 1);
    int act_field = dw ? 4 : 3, dil_field = dw ? 5 : 4;
    int64_t mult = dw ? opt_scalar(im, op, 3, 4, 1) : 1;
    if (opt_scalar(im, op, dil_field, 4, 1) != 1 || opt_scalar(im, op, dil_field + 1, 4, 1) != 1)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "%s: dilated convolution", n->name);
    if (dw && (mult != 1 || w->shape[0] != 1 || n->cout != n->cin))
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "%s: depth multiplier other than 1",
                            n->name);
    if (!dw && w->shape[3] != n->cin)
        return corrupt(im, "convolution weight does not match its input channels");
    n->pad = pad == 0 ? DN_PAD_SAME : DN_PAD_VALID;
    int rc = map_activation(im, opt_scalar(im, op, act_field, 1, 0), &n->act);
    return rc ? rc : take_weights(im, op, n, cursor);
}

static int check_mean_axes(importer *im, const tfl_op *op)
{
    const tfl_tensor *axes = &im->tensors[op->in[1]];
    int64_t count = tensor_count(axes);
    if (op->n_in != 2 || axes->type != TFL_I32 || count != 2 || !axes->data || axes->data_len != 8 ||
        raw_elem(axes, 0) != 1 || raw_elem(axes, 1) != 2)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED,
                            "MEAN is supported only over the spatial axes [1, 2]");
    return DN_OK;
}

/* A RESHAPE between [1,1,1,C] and [1,C] changes nothing in HWC memory. */
static int is_flat_reshape(importer *im, const tfl_op *op, int src)
{
    int64_t c = channels_of(im, src);
    return op->code == OP_RESHAPE && src != DN_INPUT && tensor_count(&im->tensors[op->in[0]]) == c &&
           tensor_count(&im->tensors[op->out]) == c;
}

/* Handles one operator: either a new node, or an alias of an existing one. */
static int import_op(importer *im, const tfl_op *op, size_t *cursor)
{
    dn_graph *g = &im->m->graph;
    int src;
    int rc = producer_of(im, op->in[0], &src);
    if (rc)
        return rc;
    if (op->code == OP_QUANTIZE || op->code == OP_DEQUANTIZE || is_flat_reshape(im, op, src)) {
        im->producer[op->out] = src; /* a float HWC runtime has nothing to do here */
        return DN_OK;
    }
    if (g->n_nodes == DN_MAX_NODES)
        return dn_error_set(&im->m->err, DN_ETOOBIG, "more than %d operators", DN_MAX_NODES);
    dn_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    node_name(im->tensors[op->out].name, g->n_nodes, n->name);
    for (int k = 2; dn_graph_find(g, n->name) >= 0; k++) {
        size_t len = strcspn(n->name, "#");
        snprintf(n->name + len, DN_MAX_NAME - len, "#%d", k);
    }
    n->in[0] = src;
    n->in[1] = DN_INPUT;
    n->cin = n->cout = channels_of(im, src);
    switch (op->code) {
    case OP_CONV:
    case OP_DWCONV:
        rc = build_conv(im, op, n, cursor);
        break;
    case OP_ADD:
        n->op = DN_OP_ADD;
        rc = op->n_in == 2 ? producer_of(im, op->in[1], &n->in[1]) : corrupt(im, "ADD arity");
        if (!rc)
            rc = map_activation(im, opt_scalar(im, op, 0, 1, 0), &n->act);
        break;
    case OP_MEAN:
        n->op = DN_OP_MEAN;
        rc = check_mean_axes(im, op);
        break;
    case OP_SOFTMAX: {
        /* beta's bits are read like any scalar, bounds-checked (an options table may lie
         * at the end of the file); a field beyond it is reported as corrupt below. */
        uint32_t bits = (uint32_t)opt_scalar(im, op, 0, 4, 0x3F800000 /* 1.0f */);
        float beta;
        memcpy(&beta, &bits, sizeof beta);
        n->op = DN_OP_SOFTMAX;
        rc = beta == 1.0f || im->b.bad
                 ? DN_OK
                 : dn_error_set(&im->m->err, DN_EUNSUPPORTED, "SOFTMAX with beta %g", beta);
        break;
    }
    default:
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED,
                            "operator %s (builtin code %d) is not supported", op_code_name(op->code),
                            op->code);
    }
    if (rc)
        return rc;
    if (im->b.bad)
        return corrupt(im, "operator options out of bounds");
    im->producer[op->out] = g->n_nodes++;
    return DN_OK;
}

/* Upper bound of the float weights: every constant int8/uint8/int32/float tensor. */
static size_t weight_bound(const importer *im)
{
    size_t total = 0;
    for (uint32_t i = 0; i < im->n_tensors; i++) {
        int es = elem_size(im->tensors[i].type);
        if (im->tensors[i].data && es)
            total += im->tensors[i].data_len / es;
    }
    return total;
}

static int read_input(importer *im, size_t sg)
{
    uint32_t n;
    size_t ins = fb_vector(&im->b, sg, 1, 4, &n);
    if (n != 1)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "model has %u inputs (1 supported)", n);
    int32_t t = (int32_t)fb_uint(&im->b, ins, 4);
    if (t < 0 || (uint32_t)t >= im->n_tensors)
        return corrupt(im, "input tensor index out of range");
    const tfl_tensor *in = &im->tensors[t];
    /* H becomes the native size, which a backbone file keeps within the forward pass's limit */
    if (in->ndim != 4 || in->shape[0] != 1 || in->shape[3] < 1 || in->shape[3] > 4 ||
        in->shape[1] < 1 || in->shape[1] > DN_MAX_INPUT_SIDE)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED,
                            "model input must be [1, H, W, C] with C <= 4 and H <= %d",
                            DN_MAX_INPUT_SIDE);
    im->producer[t] = DN_INPUT;
    im->m->graph.in_channels = (int)in->shape[3];
    im->m->graph.native_size = (int)in->shape[1];
    return DN_OK;
}

static int read_tensors(importer *im, size_t sg)
{
    size_t vec = fb_vector(&im->b, sg, 0, 4, &im->n_tensors);
    if (im->n_tensors == 0 || im->n_tensors > 100000)
        return corrupt(im, "bad tensor count");
    im->tensors = calloc(im->n_tensors, sizeof *im->tensors);
    im->producer = malloc(im->n_tensors * sizeof *im->producer);
    if (!im->tensors || !im->producer)
        return dn_error_set(&im->m->err, DN_ENOMEM, "out of memory reading tensors");
    for (uint32_t i = 0; i < im->n_tensors; i++) {
        im->producer[i] = NOT_PRODUCED;
        int rc = read_tensor(im, i, vec);
        if (rc)
            return rc;
    }
    return DN_OK;
}

static int import_ops(importer *im, size_t sg)
{
    uint32_t n_ops;
    size_t ops = fb_vector(&im->b, sg, 3, 4, &n_ops);
    im->m->n_weights = weight_bound(im);
    im->m->weights = malloc((im->m->n_weights ? im->m->n_weights : 1) * sizeof(float));
    if (!im->m->weights)
        return dn_error_set(&im->m->err, DN_ENOMEM, "out of memory for weights");
    size_t cursor = 0;
    for (uint32_t i = 0; i < n_ops; i++) {
        tfl_op op = {0};
        int rc = read_op(im, fb_table_elem(&im->b, ops, i), &op);
        if (!rc)
            rc = import_op(im, &op, &cursor);
        if (rc)
            return rc;
    }
    im->m->n_weights = cursor;
    return DN_OK;
}

static void finish_graph(dn_graph *g, const dn_tflite_opts *opts)
{
    float mean = opts ? opts->input_mean : 127.5f, std = opts ? opts->input_std : 127.5f;
    g->in_scale = 1.0f / std;
    g->in_offset = -mean / std;
    for (int i = g->n_nodes - 1; i >= 0; i--)
        if (g->nodes[i].op == DN_OP_SOFTMAX) {
            g->n_classes = g->nodes[i].cout;
            break;
        }
}

static int import_model(importer *im, const dn_tflite_opts *opts)
{
    fb *b = &im->b;
    if (b->n < 8 || memcmp(b->p + 4, "TFL3", 4) != 0)
        return dn_error_set(&im->m->err, DN_EFORMAT,
                            "not a TensorFlow Lite file (no TFL3 identifier)");
    size_t root = fb_deref(b, 0);
    uint32_t n_sub;
    size_t subs = fb_vector(b, root, 2, 4, &n_sub);
    im->opcodes = fb_vector(b, root, 1, 4, &im->n_opcodes);
    im->buffers = fb_vector(b, root, 4, 4, &im->n_buffers);
    if (b->bad)
        return corrupt(im, "model table out of bounds");
    if (n_sub != 1)
        return dn_error_set(&im->m->err, DN_EUNSUPPORTED, "model has %u subgraphs (1 supported)",
                            n_sub);
    /* Every buffer must lie inside the file, used or not: a truncated file is refused
     * even when only its trailing metadata is missing. */
    for (uint32_t i = 0; i < im->n_buffers && !b->bad; i++) {
        uint32_t len;
        fb_vector(b, fb_table_elem(b, im->buffers, i), 0, 1, &len);
    }
    if (b->bad)
        return corrupt(im, "a buffer lies beyond the end of the file (truncated?)");
    size_t sg = fb_table_elem(b, subs, 0);
    int rc = read_tensors(im, sg);
    if (!rc)
        rc = read_input(im, sg);
    if (!rc)
        rc = import_ops(im, sg);
    if (rc)
        return rc;
    finish_graph(&im->m->graph, opts);
    return dn_graph_validate(&im->m->graph, &im->m->err);
}

void dn_tflite_init(dn_tflite_model *m)
{
    memset(m, 0, sizeof *m);
}

void dn_tflite_free(dn_tflite_model *m)
{
    free(m->weights);
    memset(m, 0, sizeof *m);
}

int dn_tflite_import(dn_tflite_model *m, const uint8_t *data, size_t len, const dn_tflite_opts *opts)
{
    dn_tflite_free(m);
    importer im = {.b = {data, len, 0}, .m = m};
    uint8_t digest[32];
    dn_sha256_buf(data, len, digest);
    dn_sha256_hex(digest, m->source_sha256);
    int rc = len > DN_TFLITE_MAX_BYTES
                 ? dn_error_set(&m->err, DN_ETOOBIG, "TFLite file over %u bytes", DN_TFLITE_MAX_BYTES)
                 : import_model(&im, opts);
    free(im.tensors);
    free(im.producer);
    if (rc) {
        dn_error saved = m->err;
        dn_tflite_free(m);
        m->err = saved;
    }
    return rc;
}

int dn_tflite_import_file(dn_tflite_model *m, const char *path, const dn_tflite_opts *opts)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_error_set(&m->err, DN_EIO, "cannot open %s: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    int rc = DN_OK;
    if (len < 0 || (unsigned long)len > DN_TFLITE_MAX_BYTES)
        rc = dn_error_set(&m->err, len < 0 ? DN_EIO : DN_ETOOBIG, "%s: unreadable or over %u bytes",
                          path, DN_TFLITE_MAX_BYTES);
    else if (!(buf = malloc(len ? (size_t)len : 1)))
        rc = dn_error_set(&m->err, DN_ENOMEM, "out of memory reading %s", path);
    else if (fseek(f, 0, SEEK_SET) != 0 || fread(buf, 1, (size_t)len, f) != (size_t)len)
        rc = dn_error_set(&m->err, DN_EIO, "cannot read %s", path);
    fclose(f);
    if (!rc)
        rc = dn_tflite_import(m, buf, (size_t)len, opts);
    free(buf);
    return rc;
}
