#include "dn_forward.h"

#include "dn_ops.h"

#include <string.h>

void dn_forward_init(dn_forward *f, const dn_backbone *bb)
{
    memset(f, 0, sizeof *f);
    f->bb = bb;
    dn_arena_init(&f->arena);
}

void dn_forward_free(dn_forward *f)
{
    dn_arena_free(&f->arena);
    memset(f, 0, sizeof *f);
}

static size_t node_floats(const dn_forward *f, int i)
{
    return (size_t)f->out_h[i] * f->out_w[i] * f->bb->graph.nodes[i].cout;
}

static void input_size(const dn_forward *f, int src, int *h, int *w)
{
    *h = src == DN_INPUT ? f->h : f->out_h[src];
    *w = src == DN_INPUT ? f->w : f->out_w[src];
}

static size_t conv_scratch(const dn_forward *f, int last)
{
    size_t most = 0;
    for (int i = 0; i <= last; i++) {
        const dn_node *n = &f->bb->graph.nodes[i];
        if (n->op != DN_OP_CONV)
            continue;
        dn_conv_geom g;
        int ih, iw;
        input_size(f, n->in[0], &ih, &iw);
        dn_conv_geom_of(n, ih, iw, &g);
        size_t s = dn_conv2d_scratch(&g);
        most = s > most ? s : most;
    }
    return most;
}

static int is_tapped(const int *taps, int n_taps, int node)
{
    for (int t = 0; t < n_taps; t++)
        if (taps[t] == node)
            return 1;
    return 0;
}

/* Marks the convolutions that can perform the residual ADD reading them (see header). */
static void plan_fusion(dn_forward *f, int last, const int *taps, int n_taps)
{
    const dn_graph *g = &f->bb->graph;
    int readers[DN_MAX_NODES] = {0};
    for (int i = 0; i <= last; i++) {
        f->fused_add[i] = -1;
        for (int k = 0; k < (g->nodes[i].op == DN_OP_ADD ? 2 : 1); k++)
            if (g->nodes[i].in[k] != DN_INPUT)
                readers[g->nodes[i].in[k]]++;
    }
    for (int i = 0; i <= last; i++) {
        const dn_node *add = &g->nodes[i];
        for (int k = 1; add->op == DN_OP_ADD && k >= 0; k--) {
            int j = add->in[k], other = add->in[1 - k];
            if (j == DN_INPUT || j == other || g->nodes[j].op != DN_OP_CONV ||
                g->nodes[j].act != DN_ACT_NONE || readers[j] != 1 || is_tapped(taps, n_taps, j))
                continue;
            f->fused_add[j] = i;
            f->residual[j] = other;
            break;
        }
    }
}

static int is_fused_add(const dn_forward *f, int i)
{
    const dn_node *n = &f->bb->graph.nodes[i];
    return n->op == DN_OP_ADD && ((n->in[0] != DN_INPUT && f->fused_add[n->in[0]] == i) ||
                                  (n->in[1] != DN_INPUT && f->fused_add[n->in[1]] == i));
}

/* Liveness-based slot assignment; slot_size[k] is the largest map slot k ever holds.
 * A fused ADD takes over the slot its convolution wrote. */
static void assign_slots(dn_forward *f, int last, size_t *slot_size)
{
    const dn_graph *g = &f->bb->graph;
    int holder[DN_MAX_NODES]; /* node currently in slot k, -1 if free */
    for (int i = 0; i <= last; i++) {
        f->last_use[i] = i;
        for (int k = 0; k < (g->nodes[i].op == DN_OP_ADD ? 2 : 1); k++)
            if (g->nodes[i].in[k] != DN_INPUT)
                f->last_use[g->nodes[i].in[k]] = i;
    }
    f->n_slots = 0;
    for (int i = 0; i <= last; i++) {
        int k = 0;
        if (is_fused_add(f, i)) {
            const dn_node *n = &g->nodes[i];
            k = f->slot_of[f->fused_add[n->in[0]] == i ? n->in[0] : n->in[1]];
        } else {
            while (k < f->n_slots && holder[k] >= 0)
                k++;
            if (k == f->n_slots)
                slot_size[f->n_slots++] = 0;
        }
        holder[k] = i;
        f->slot_of[i] = k;
        size_t need = node_floats(f, i);
        slot_size[k] = need > slot_size[k] ? need : slot_size[k];
        for (int s = 0; s < f->n_slots; s++) /* free what no later node reads */
            if (holder[s] >= 0 && f->last_use[holder[s]] <= i)
                holder[s] = -1;
    }
}

static int plan(dn_forward *f, int h, int w, const int *taps, int n_taps)
{
    const dn_graph *g = &f->bb->graph;
    int last = 0;
    for (int t = 0; t < n_taps; t++) {
        if (taps[t] < 0 || taps[t] >= g->n_nodes)
            return dn_error_set(&f->err, DN_EINVAL, "tap %d is not a node of the backbone", taps[t]);
        last = taps[t] > last ? taps[t] : last;
    }
    f->h = h;
    f->w = w;
    int rc = dn_graph_shapes(g, h, w, f->out_h, f->out_w, &f->err);
    if (rc)
        return rc;
    size_t slot_size[DN_MAX_NODES], scratch = conv_scratch(f, last), total;
    plan_fusion(f, last, taps, n_taps);
    assign_slots(f, last, slot_size);
    total = dn_arena_floats_size(scratch);
    for (int k = 0; k < f->n_slots; k++)
        total += dn_arena_floats_size(slot_size[k]);
    for (int t = 0; t < n_taps; t++)
        total += dn_arena_floats_size(node_floats(f, taps[t]));
    if (dn_arena_reserve(&f->arena, total))
        return dn_error_set(&f->err, DN_ENOMEM, "out of memory: %zu bytes of activations for %dx%d",
                            total, w, h);
    for (int k = 0; k < f->n_slots; k++)
        f->slots[k] = dn_arena_floats(&f->arena, slot_size[k]);
    f->scratch = dn_arena_floats(&f->arena, scratch);
    for (int t = 0; t < n_taps; t++) {
        f->taps[t] = dn_arena_floats(&f->arena, node_floats(f, taps[t]));
        f->tap_nodes[t] = taps[t];
    }
    f->n_taps = n_taps;
    return DN_OK;
}

static int plan_matches(const dn_forward *f, int h, int w, const int *taps, int n_taps)
{
    if (f->h != h || f->w != w || f->n_taps != n_taps)
        return 0;
    for (int t = 0; t < n_taps; t++)
        if (f->tap_nodes[t] != taps[t])
            return 0;
    return 1;
}

static void run_node(dn_forward *f, int i, const float *input)
{
    const dn_node *n = &f->bb->graph.nodes[i];
    const float *in = n->in[0] == DN_INPUT ? input : f->slots[f->slot_of[n->in[0]]];
    float *out = f->slots[f->slot_of[i]];
    int ih, iw;
    input_size(f, n->in[0], &ih, &iw);
    dn_conv_geom g;
    switch (n->op) {
    case DN_OP_CONV: {
        int add = f->fused_add[i];
        const float *res = add >= 0 ? f->slots[f->slot_of[f->residual[i]]] : NULL;
        dn_conv_geom_of(n, ih, iw, &g);
        dn_conv2d(&g, in, n->weight, n->bias, res, add >= 0 ? f->bb->graph.nodes[add].act : n->act,
                  out, f->scratch);
        break;
    }
    case DN_OP_DWCONV:
        dn_conv_geom_of(n, ih, iw, &g);
        dn_dwconv(&g, in, n->weight, n->bias, n->act, out);
        break;
    case DN_OP_ADD:
        if (is_fused_add(f, i))
            break; /* its convolution already wrote the sum into this slot */
        dn_add(in, f->slots[f->slot_of[n->in[1]]], out, node_floats(f, i), n->act);
        break;
    case DN_OP_MEAN:
        dn_mean(in, (size_t)ih * iw, n->cin, out);
        break;
    default:
        dn_softmax(in, n->cin, out);
    }
}

int dn_forward_run(dn_forward *f, const float *input, int h, int w, const int *taps, int n_taps,
                   dn_fmap *out)
{
    dn_error_clear(&f->err);
    if (n_taps < 1 || n_taps > DN_MAX_TAPS)
        return dn_error_set(&f->err, DN_EINVAL, "between 1 and %d taps, not %d", DN_MAX_TAPS, n_taps);
    if (h < 1 || w < 1 || h > DN_MAX_INPUT_SIDE || w > DN_MAX_INPUT_SIDE)
        return dn_error_set(&f->err, DN_EINVAL, "input %dx%d outside 1..%d", w, h, DN_MAX_INPUT_SIDE);
    if (!plan_matches(f, h, w, taps, n_taps)) {
        int rc = plan(f, h, w, taps, n_taps);
        if (rc) {
            f->h = f->w = f->n_taps = 0;
            return rc;
        }
    }
    int last = 0;
    for (int t = 0; t < n_taps; t++)
        last = taps[t] > last ? taps[t] : last;
    for (int i = 0; i <= last; i++) {
        run_node(f, i, input);
        for (int t = 0; t < n_taps; t++)
            if (taps[t] == i)
                memcpy(f->taps[t], f->slots[f->slot_of[i]], node_floats(f, i) * sizeof(float));
    }
    for (int t = 0; t < n_taps; t++)
        out[t] = (dn_fmap){f->out_h[taps[t]], f->out_w[taps[t]],
                           f->bb->graph.nodes[taps[t]].cout, f->taps[t]};
    return DN_OK;
}

size_t dn_forward_plan_bytes(const dn_forward *f)
{
    return f->arena.cap;
}
