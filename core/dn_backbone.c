#include "dn_backbone.h"

#include "dn_file.h"
#include "dn_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void dn_backbone_init(dn_backbone *bb)
{
    memset(bb, 0, sizeof *bb);
    dn_st_init(&bb->st);
}

void dn_backbone_free(dn_backbone *bb)
{
    dn_st_free(&bb->st);
    dn_backbone_init(bb);
}

static void tensor_name(char *out, const dn_node *n, const char *suffix)
{
    snprintf(out, DN_ST_MAX_NAME, "%s.%s", n->name, suffix);
}

/* Points a node at its weight or bias tensor, checking the element count. */
static int bind_tensor(dn_backbone *bb, const dn_node *n, const char *suffix, size_t want,
                       const float **dst)
{
    char name[DN_ST_MAX_NAME];
    tensor_name(name, n, suffix);
    const dn_st_tensor *t = dn_st_find(&bb->st, name);
    if (!t)
        return dn_error_set(&bb->err, DN_EFORMAT, "backbone lacks tensor '%s'", name);
    if (t->count != want)
        return dn_error_set(&bb->err, DN_EFORMAT, "backbone tensor '%s' has %zu values, the graph needs %zu",
                            name, t->count, want);
    *dst = t->data;
    return DN_OK;
}

static int parse_graph(dn_backbone *bb)
{
    const char *fmt = dn_st_meta(&bb->st, "format");
    const char *ver = dn_st_meta(&bb->st, "format_version");
    const char *graph = dn_st_meta(&bb->st, "graph");
    const char *src = dn_st_meta(&bb->st, "source_sha256");
    if (!fmt || strcmp(fmt, DN_BACKBONE_FORMAT) != 0 || !graph)
        return dn_error_set(&bb->err, DN_EFORMAT, "not a devnet backbone file (no format/graph metadata)");
    if (!ver || strcmp(ver, DN_BACKBONE_VERSION) != 0)
        return dn_error_set(&bb->err, DN_EMISMATCH, "backbone format version %s, this build reads %s",
                            ver ? ver : "(none)", DN_BACKBONE_VERSION);
    snprintf(bb->source_sha256, sizeof bb->source_sha256, "%s", src ? src : "");
    cJSON *json = cJSON_ParseWithLengthOpts(graph, strlen(graph), NULL, 0);
    if (!json)
        return dn_error_set(&bb->err, DN_EFORMAT, "backbone graph metadata is not JSON");
    int rc = dn_graph_from_json(&bb->graph, json, &bb->err);
    cJSON_Delete(json);
    return rc;
}

/* PATH.sha256 ("HEX  NAME", as sha256sum writes it), when present, must match the file:
 * a truncated copy or a flipped bit is refused instead of silently changing every score. */
static int check_sidecar(dn_backbone *bb, const char *path)
{
    size_t cap = strlen(path) + 8, len = 0;
    char *side = malloc(cap);
    unsigned char *text = NULL;
    if (!side)
        return dn_error_set(&bb->err, DN_ENOMEM, "out of memory");
    snprintf(side, cap, "%s.sha256", path);
    dn_error e;
    int rc = DN_OK;
    if (access(side, F_OK) == 0) {
        if ((rc = dn_file_read(side, 4096, &text, &len, &e)))
            dn_error_set(&bb->err, rc, "%s", e.msg);
        else if (len < 64 || strspn((char *)text, "0123456789abcdefABCDEF") != 64)
            rc = dn_error_set(&bb->err, DN_EFORMAT, "%s does not start with a sha256", side);
        else if (strncasecmp((char *)text, bb->sha256, 64))
            rc = dn_error_set(&bb->err, DN_EMISMATCH,
                              "%s has sha256 %s, but %s says %.64s: a damaged or different file "
                              "(bring it again: make backbone)", path, bb->sha256, side, (char *)text);
    }
    free(text);
    free(side);
    return rc;
}

/* Writes PATH.sha256 for check_sidecar. */
static int write_sidecar(const char *path, dn_error *err)
{
    char hex[65], line[4200];
    int rc = dn_sha256_file(path, hex, err);
    if (rc)
        return rc;
    const char *base = strrchr(path, '/');
    int n = snprintf(line, sizeof line, "%s  %s\n", hex, base ? base + 1 : path);
    size_t cap = strlen(path) + 8;
    char *side = malloc(cap);
    if (!side)
        return dn_error_set(err, DN_ENOMEM, "out of memory");
    snprintf(side, cap, "%s.sha256", path);
    rc = dn_file_write_atomic(side, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1), err);
    free(side);
    return rc;
}

int dn_backbone_load(dn_backbone *bb, const char *path)
{
    dn_backbone_free(bb);
    int rc = dn_st_load(&bb->st, path);
    if (rc) {
        bb->err = bb->st.err;
        return rc;
    }
    rc = parse_graph(bb);
    for (int i = 0; !rc && i < bb->graph.n_nodes; i++) {
        dn_node *n = &bb->graph.nodes[i];
        if (dn_node_weight_count(n) == 0)
            continue;
        rc = bind_tensor(bb, n, "weight", dn_node_weight_count(n), &n->weight);
        if (!rc)
            rc = bind_tensor(bb, n, "bias", dn_node_bias_count(n), &n->bias);
    }
    if (!rc)
        rc = dn_sha256_file(path, bb->sha256, &bb->err);
    if (!rc)
        rc = check_sidecar(bb, path);
    if (rc) {
        dn_error saved = bb->err;
        dn_backbone_free(bb);
        bb->err = saved;
    }
    return rc;
}

static int add_weights(dn_st_writer *w, const dn_node *n)
{
    char name[DN_ST_MAX_NAME];
    int64_t wshape[4] = {n->cout, n->kh, n->kw, n->cin}, dwshape[3] = {n->kh, n->kw, n->cout};
    int64_t bshape[1] = {n->cout};
    tensor_name(name, n, "weight");
    int rc = n->op == DN_OP_CONV ? dn_st_writer_add(w, name, 4, wshape, n->weight)
                                 : dn_st_writer_add(w, name, 3, dwshape, n->weight);
    tensor_name(name, n, "bias");
    return rc ? rc : dn_st_writer_add(w, name, 1, bshape, n->bias);
}

int dn_backbone_save(const dn_graph *g, const char *source_sha256, const char *path, dn_error *err)
{
    dn_st_writer w;
    dn_st_writer_init(&w);
    cJSON *json = dn_graph_to_json(g);
    char *graph = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    int rc = graph ? DN_OK : DN_ENOMEM;
    if (!rc)
        rc = dn_st_writer_meta(&w, "format", DN_BACKBONE_FORMAT);
    if (!rc)
        rc = dn_st_writer_meta(&w, "format_version", DN_BACKBONE_VERSION);
    if (!rc)
        rc = dn_st_writer_meta(&w, "graph", graph);
    if (!rc)
        rc = dn_st_writer_meta(&w, "source_sha256", source_sha256);
    for (int i = 0; !rc && i < g->n_nodes; i++)
        if (dn_node_weight_count(&g->nodes[i]))
            rc = add_weights(&w, &g->nodes[i]);
    if (!rc)
        rc = dn_st_writer_save(&w, path);
    if (rc)
        dn_error_set(err, rc, "cannot write backbone %s: %s", path,
                     w.err.msg[0] ? w.err.msg : "out of memory");
    else
        rc = write_sidecar(path, err);
    free(graph);
    dn_st_writer_free(&w);
    return rc;
}

/* Output stride of every node, from the strides along the path from the input. */
static void node_strides(const dn_graph *g, int *stride)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const dn_node *n = &g->nodes[i];
        int base = n->in[0] == DN_INPUT ? 1 : stride[n->in[0]];
        stride[i] = (n->op == DN_OP_CONV || n->op == DN_OP_DWCONV) ? base * n->stride_h : base;
    }
}

static int first_pool(const dn_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == DN_OP_MEAN)
            return i;
    return g->n_nodes;
}

int dn_backbone_tap_at_stride(const dn_backbone *bb, int stride)
{
    int s[DN_MAX_NODES], last = -1, last_linear = -1;
    node_strides(&bb->graph, s);
    for (int i = 0; i < first_pool(&bb->graph); i++)
        if (s[i] == stride) {
            last = i;
            if (bb->graph.nodes[i].act == DN_ACT_NONE)
                last_linear = i;
        }
    return last_linear >= 0 ? last_linear : last;
}

int dn_backbone_final_map(const dn_backbone *bb)
{
    return first_pool(&bb->graph) - 1;
}

int dn_backbone_resolve_tap(const dn_backbone *bb, const char *name)
{
    int stride;
    char tail;
    if (strcmp(name, "final") == 0)
        return dn_backbone_final_map(bb);
    if (sscanf(name, "stride%d%c", &stride, &tail) == 1)
        return dn_backbone_tap_at_stride(bb, stride);
    return dn_graph_find(&bb->graph, name);
}

int dn_backbone_input(const dn_backbone *bb, const dn_image *img, int h, int w, float *out,
                      dn_error *err)
{
    int rc = dn_image_resize(img, w, h, out, err);
    for (size_t i = 0; !rc && i < (size_t)h * w * 3; i++)
        out[i] = out[i] * bb->graph.in_scale + bb->graph.in_offset;
    return rc;
}
