#include "dn_graph.h"

#include <stdio.h>
#include <string.h>

static const char *const op_names[DN_OP_COUNT] = {"conv", "dwconv", "add", "mean", "softmax"};

const char *dn_op_name(dn_op op)
{
    return (unsigned)op < DN_OP_COUNT ? op_names[op] : "?";
}

const char *dn_act_name(dn_act act)
{
    switch (act) {
    case DN_ACT_NONE: return "none";
    case DN_ACT_RELU: return "relu";
    case DN_ACT_RELU6: return "relu6";
    }
    return "?";
}

static int op_from_name(const char *s)
{
    for (int i = 0; i < DN_OP_COUNT; i++)
        if (strcmp(s, op_names[i]) == 0)
            return i;
    return -1;
}

static int act_from_name(const char *s)
{
    if (strcmp(s, "none") == 0)
        return DN_ACT_NONE;
    if (strcmp(s, "relu") == 0)
        return DN_ACT_RELU;
    if (strcmp(s, "relu6") == 0)
        return DN_ACT_RELU6;
    return -1;
}

size_t dn_node_weight_count(const dn_node *n)
{
    if (n->op == DN_OP_CONV)
        return (size_t)n->cout * n->kh * n->kw * n->cin;
    if (n->op == DN_OP_DWCONV)
        return (size_t)n->kh * n->kw * n->cout;
    return 0;
}

size_t dn_node_bias_count(const dn_node *n)
{
    return (n->op == DN_OP_CONV || n->op == DN_OP_DWCONV) ? (size_t)n->cout : 0;
}

int dn_graph_find(const dn_graph *g, const char *name)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return i;
    return -1;
}

static int input_channels(const dn_graph *g, int src)
{
    return src == DN_INPUT ? g->in_channels : g->nodes[src].cout;
}

static int validate_node(const dn_graph *g, int i, dn_error *err)
{
    const dn_node *n = &g->nodes[i];
    int n_in = n->op == DN_OP_ADD ? 2 : 1;
    if ((unsigned)n->op >= DN_OP_COUNT)
        return dn_error_set(err, DN_EFORMAT, "node %d (%s): unknown op", i, n->name);
    for (int k = 0; k < n_in; k++) {
        if (n->in[k] < DN_INPUT || n->in[k] >= i)
            return dn_error_set(err, DN_EFORMAT, "node %d (%s): input %d is not an earlier node",
                                i, n->name, n->in[k]);
        /* the forward pass adds two node outputs (residuals); no CNN adds its own input */
        if (n_in == 2 && n->in[k] == DN_INPUT)
            return dn_error_set(err, DN_EFORMAT, "node %d (%s): adds the graph input itself, not supported",
                                i, n->name);
        if (input_channels(g, n->in[k]) != n->cin)
            return dn_error_set(err, DN_EFORMAT, "node %d (%s): expects %d channels, input has %d",
                                i, n->name, n->cin, input_channels(g, n->in[k]));
    }
    if (n->cin < 1 || n->cout < 1 || n->cin > 65536 || n->cout > 65536)
        return dn_error_set(err, DN_EFORMAT, "node %d (%s): bad channel counts", i, n->name);
    if (n->op == DN_OP_CONV || n->op == DN_OP_DWCONV) {
        if (n->kh < 1 || n->kw < 1 || n->kh > 15 || n->kw > 15 || n->stride_h < 1 ||
            n->stride_w < 1 || n->stride_h > 8 || n->stride_w > 8)
            return dn_error_set(err, DN_EFORMAT, "node %d (%s): bad kernel or stride", i, n->name);
        if (n->op == DN_OP_DWCONV && n->cin != n->cout)
            return dn_error_set(err, DN_EFORMAT, "node %d (%s): depthwise needs cin == cout", i,
                                n->name);
    } else if (n->cin != n->cout) {
        return dn_error_set(err, DN_EFORMAT, "node %d (%s): %s keeps channels", i, n->name,
                            dn_op_name(n->op));
    }
    if (n->act != DN_ACT_NONE && n->act != DN_ACT_RELU && n->act != DN_ACT_RELU6)
        return dn_error_set(err, DN_EFORMAT, "node %d (%s): unknown activation", i, n->name);
    return DN_OK;
}

int dn_graph_validate(const dn_graph *g, dn_error *err)
{
    if (g->n_nodes < 1 || g->n_nodes > DN_MAX_NODES)
        return dn_error_set(err, DN_EFORMAT, "graph has %d nodes (1..%d allowed)", g->n_nodes,
                            DN_MAX_NODES);
    if (g->in_channels < 1 || g->in_channels > 4)
        return dn_error_set(err, DN_EFORMAT, "graph input has %d channels", g->in_channels);
    for (int i = 0; i < g->n_nodes; i++) {
        int rc = validate_node(g, i, err);
        if (rc)
            return rc;
        if (dn_graph_find(g, g->nodes[i].name) != i)
            return dn_error_set(err, DN_EFORMAT, "node name '%s' is not unique", g->nodes[i].name);
        /* the graph JSON names the graph's own input "input": a node of that name would
         * read back as the input itself */
        if (!strcmp(g->nodes[i].name, DN_GRAPH_INPUT_NAME))
            return dn_error_set(err, DN_EFORMAT, "node %d is named '%s', which names the graph input", i,
                                DN_GRAPH_INPUT_NAME);
    }
    return DN_OK;
}

static int conv_out(int in, int k, int stride, dn_pad pad)
{
    if (pad == DN_PAD_SAME)
        return (in + stride - 1) / stride;
    return in >= k ? (in - k) / stride + 1 : 0;
}

int dn_graph_shapes(const dn_graph *g, int h, int w, int *out_h, int *out_w, dn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const dn_node *n = &g->nodes[i];
        int ih = n->in[0] == DN_INPUT ? h : out_h[n->in[0]];
        int iw = n->in[0] == DN_INPUT ? w : out_w[n->in[0]];
        switch (n->op) {
        case DN_OP_CONV:
        case DN_OP_DWCONV:
            out_h[i] = conv_out(ih, n->kh, n->stride_h, n->pad);
            out_w[i] = conv_out(iw, n->kw, n->stride_w, n->pad);
            break;
        case DN_OP_ADD:
            if (out_h[n->in[1]] != ih || out_w[n->in[1]] != iw)
                return dn_error_set(err, DN_EFORMAT, "node %s adds maps of different sizes",
                                    n->name);
            out_h[i] = ih;
            out_w[i] = iw;
            break;
        case DN_OP_MEAN:
            out_h[i] = out_w[i] = 1;
            break;
        default:
            if (ih != 1 || iw != 1)
                return dn_error_set(err, DN_EFORMAT, "node %s: softmax needs a 1x1 map", n->name);
            out_h[i] = out_w[i] = 1;
        }
        if (out_h[i] < 1 || out_w[i] < 1)
            return dn_error_set(err, DN_EINVAL, "input %dx%d is too small for node %s", w, h,
                                n->name);
    }
    return DN_OK;
}

static cJSON *node_to_json(const dn_graph *g, const dn_node *n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", n->name);
    cJSON_AddStringToObject(o, "op", dn_op_name(n->op));
    cJSON *ins = cJSON_AddArrayToObject(o, "inputs");
    for (int k = 0; k < (n->op == DN_OP_ADD ? 2 : 1); k++)
        cJSON_AddItemToArray(ins, cJSON_CreateString(n->in[k] == DN_INPUT
                                                         ? DN_GRAPH_INPUT_NAME
                                                         : g->nodes[n->in[k]].name));
    cJSON_AddNumberToObject(o, "cin", n->cin);
    cJSON_AddNumberToObject(o, "cout", n->cout);
    if (n->op == DN_OP_CONV || n->op == DN_OP_DWCONV) {
        int k[2] = {n->kh, n->kw}, s[2] = {n->stride_h, n->stride_w};
        cJSON_AddItemToObject(o, "kernel", cJSON_CreateIntArray(k, 2));
        cJSON_AddItemToObject(o, "stride", cJSON_CreateIntArray(s, 2));
        cJSON_AddStringToObject(o, "padding", n->pad == DN_PAD_SAME ? "same" : "valid");
    }
    cJSON_AddStringToObject(o, "activation", dn_act_name(n->act));
    return o;
}

cJSON *dn_graph_to_json(const dn_graph *g)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *in = cJSON_AddObjectToObject(o, "input");
    cJSON_AddNumberToObject(in, "channels", g->in_channels);
    cJSON_AddNumberToObject(in, "native_size", g->native_size);
    cJSON_AddNumberToObject(in, "scale", g->in_scale);
    cJSON_AddNumberToObject(in, "offset", g->in_offset);
    cJSON_AddStringToObject(in, "layout", "HWC, RGB, float32");
    cJSON_AddNumberToObject(o, "classes", g->n_classes);
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    for (int i = 0; i < g->n_nodes; i++)
        cJSON_AddItemToArray(nodes, node_to_json(g, &g->nodes[i]));
    return o;
}

/* Reads an integer field within [lo, hi]. */
static int json_int(const cJSON *o, const char *key, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
        v->valuedouble != (double)(int)v->valuedouble)
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

static int json_pair(const cJSON *o, const char *key, int *a, int *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
        return -1;
    const cJSON *x = cJSON_GetArrayItem(v, 0), *y = cJSON_GetArrayItem(v, 1);
    if (!cJSON_IsNumber(x) || !cJSON_IsNumber(y) || x->valuedouble < 1 || y->valuedouble < 1 ||
        x->valuedouble > 64 || y->valuedouble > 64)
        return -1;
    *a = (int)x->valuedouble;
    *b = (int)y->valuedouble;
    return 0;
}

static int node_inputs_from_json(dn_graph *g, dn_node *n, const cJSON *ins, dn_error *err)
{
    int want = n->op == DN_OP_ADD ? 2 : 1;
    if (!cJSON_IsArray(ins) || cJSON_GetArraySize(ins) != want)
        return dn_error_set(err, DN_EFORMAT, "node %s: needs %d inputs", n->name, want);
    for (int k = 0; k < want; k++) {
        const char *src = cJSON_GetStringValue(cJSON_GetArrayItem(ins, k));
        if (!src)
            return dn_error_set(err, DN_EFORMAT, "node %s: input is not a name", n->name);
        n->in[k] = strcmp(src, DN_GRAPH_INPUT_NAME) == 0 ? DN_INPUT : dn_graph_find(g, src);
        if (n->in[k] == -1 && strcmp(src, DN_GRAPH_INPUT_NAME) != 0)
            return dn_error_set(err, DN_EFORMAT, "node %s: unknown input '%s'", n->name, src);
    }
    return DN_OK;
}

static int node_from_json(dn_graph *g, dn_node *n, const cJSON *o, dn_error *err)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "name"));
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "op"));
    const char *act = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "activation"));
    if (!name || !op || !act || strlen(name) >= DN_MAX_NAME)
        return dn_error_set(err, DN_EFORMAT, "graph node %d lacks name/op/activation",
                            g->n_nodes);
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    int opi = op_from_name(op), acti = act_from_name(act);
    if (opi < 0 || acti < 0)
        return dn_error_set(err, DN_EUNSUPPORTED, "node %s: unknown op '%s' or activation '%s'",
                            name, op, act);
    n->op = (dn_op)opi;
    n->act = (dn_act)acti;
    if (json_int(o, "cin", 1, 65536, &n->cin) || json_int(o, "cout", 1, 65536, &n->cout))
        return dn_error_set(err, DN_EFORMAT, "node %s: bad cin/cout", name);
    if (n->op == DN_OP_CONV || n->op == DN_OP_DWCONV) {
        const char *pad = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "padding"));
        if (json_pair(o, "kernel", &n->kh, &n->kw) ||
            json_pair(o, "stride", &n->stride_h, &n->stride_w) || !pad ||
            (strcmp(pad, "same") && strcmp(pad, "valid")))
            return dn_error_set(err, DN_EFORMAT, "node %s: bad kernel/stride/padding", name);
        n->pad = strcmp(pad, "same") == 0 ? DN_PAD_SAME : DN_PAD_VALID;
    }
    return node_inputs_from_json(g, n, cJSON_GetObjectItemCaseSensitive(o, "inputs"), err);
}

static int input_from_json(dn_graph *g, const cJSON *in, dn_error *err)
{
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(in, "scale");
    const cJSON *offset = cJSON_GetObjectItemCaseSensitive(in, "offset");
    if (json_int(in, "channels", 1, 4, &g->in_channels) ||
        json_int(in, "native_size", 1, DN_MAX_INPUT_SIDE, &g->native_size) ||
        !cJSON_IsNumber(scale) || !cJSON_IsNumber(offset))
        return dn_error_set(err, DN_EFORMAT, "graph input description is incomplete");
    g->in_scale = (float)scale->valuedouble;
    g->in_offset = (float)offset->valuedouble;
    return DN_OK;
}

int dn_graph_from_json(dn_graph *g, const cJSON *json, dn_error *err)
{
    memset(g, 0, sizeof *g);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(json, "nodes");
    if (!cJSON_IsObject(json) || !cJSON_IsArray(nodes))
        return dn_error_set(err, DN_EFORMAT, "graph description has no node list");
    int rc = input_from_json(g, cJSON_GetObjectItemCaseSensitive(json, "input"), err);
    if (rc)
        return rc;
    if (json_int(json, "classes", 0, 1 << 20, &g->n_classes))
        return dn_error_set(err, DN_EFORMAT, "graph description: bad class count");
    const cJSON *o;
    cJSON_ArrayForEach(o, nodes)
    {
        if (g->n_nodes == DN_MAX_NODES)
            return dn_error_set(err, DN_ETOOBIG, "graph has more than %d nodes", DN_MAX_NODES);
        rc = node_from_json(g, &g->nodes[g->n_nodes], o, err);
        if (rc)
            return rc;
        g->n_nodes++;
    }
    return dn_graph_validate(g, err);
}
