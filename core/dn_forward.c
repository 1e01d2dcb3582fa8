#include "dn_forward.h"

#include "dn_ops.h"

#include <string.h>

void dn_forward_init(dn_forward *f, const dn_backbone *bb)
{
    memset(f, 0, sizeof *f);
    f->bb = bb;
    f->band_bytes = DN_FORWARD_BAND_BYTES;
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

/* Floats the slot of node i must hold: a whole map, or one band inside a chain. */
static size_t slot_floats(const dn_forward *f, int i)
{
    const dn_node *n = &f->bb->graph.nodes[i];
    if (f->chain_end[i] >= 0) { /* expansion: the input rows of one depthwise band */
        int d = f->chain_end[i] - 1;
        const dn_node *dw = &f->bb->graph.nodes[d];
        size_t rows = (size_t)(f->band_rows[d] - 1) * dw->stride_h + dw->kh;
        return rows * f->out_w[i] * n->cout;
    }
    if (n->op == DN_OP_DWCONV && i > 0 && f->chain_end[i - 1] == i + 1)
        return (size_t)f->band_rows[i] * f->out_w[i] * n->cout;
    return node_floats(f, i);
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

static int is_pointwise(const dn_node *n)
{
    return n->op == DN_OP_CONV && n->kh == 1 && n->kw == 1 && n->stride_h == 1 &&
           n->stride_w == 1;
}

/* The single reader of node i, or -1 (several readers, a tap, or beyond the plan). */
static int sole_reader(const dn_forward *f, const int *readers, int i, int last, const int *taps,
                       int n_taps)
{
    if (readers[i] != 1 || is_tapped(taps, n_taps, i))
        return -1;
    for (int j = i + 1; j <= last; j++)
        if (f->bb->graph.nodes[j].in[0] == i || f->bb->graph.nodes[j].in[1] == i)
            return j;
    return -1;
}

/* Output rows of depthwise node d per band: its input band (band-1)*stride + k rows of
 * the expanded map should fill about band_bytes. */
static int choose_band_rows(const dn_forward *f, int d, int iw)
{
    const dn_node *n = &f->bb->graph.nodes[d];
    size_t row_bytes = (size_t)iw * n->cin * sizeof(float);
    long in_rows = (long)(f->band_bytes / row_bytes);
    long rows = in_rows > n->kh ? (in_rows - n->kh) / n->stride_h + 1 : 1;
    return rows < f->out_h[d] ? (int)rows : f->out_h[d];
}

/* Finds expansion -> depthwise -> projection chains to run in bands (see header). */
static void plan_chains(dn_forward *f, int last, const int *readers, const int *taps, int n_taps)
{
    const dn_graph *g = &f->bb->graph;
    for (int e = 0; e <= last; e++) {
        f->chain_end[e] = -1;
        int d = is_pointwise(&g->nodes[e]) ? sole_reader(f, readers, e, last, taps, n_taps) : -1;
        int p = d >= 0 && g->nodes[d].op == DN_OP_DWCONV
                    ? sole_reader(f, readers, d, last, taps, n_taps)
                    : -1;
        if (d != e + 1 || p != d + 1 || !is_pointwise(&g->nodes[p]))
            continue; /* the executor runs a chain as three consecutive nodes */
        f->chain_end[e] = p;
        f->band_rows[d] = choose_band_rows(f, d, f->out_w[e]);
    }
}

/* Marks the convolutions that can perform the residual ADD reading them, and the chains
 * to run in bands (see header). */
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
    plan_chains(f, last, readers, taps, n_taps);
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
    for (int e = 0; e <= last; e++) /* a chain reads its input and bands until its end */
        if (f->chain_end[e] >= 0) {
            int p = f->chain_end[e], x = g->nodes[e].in[0];
            f->last_use[e] = f->last_use[e + 1] = p;
            if (x != DN_INPUT && f->last_use[x] < p)
                f->last_use[x] = p;
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
        size_t need = slot_floats(f, i);
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

/* Pointwise convolution of `rows` full rows of a w-wide map (one sgemm). */
static void pointwise_rows(const dn_node *n, const float *in, int rows, int w,
                           const float *residual, dn_act act, float *out)
{
    dn_conv_geom g;
    dn_conv_geom_of(n, rows, w, &g);
    dn_conv2d(&g, in, n->weight, n->bias, residual, act, out, NULL);
}

/* Runs expansion e, depthwise e+1 and projection e+2 band by band. The expansion band
 * buffer holds input rows [lo, hi) of the depthwise; rows the next band shares are moved
 * to its top instead of being recomputed. */
static void run_chain(dn_forward *f, int e, const float *input)
{
    const dn_graph *g = &f->bb->graph;
    const dn_node *ex = &g->nodes[e], *dw = &g->nodes[e + 1], *pj = &g->nodes[e + 2];
    const float *x = ex->in[0] == DN_INPUT ? input : f->slots[f->slot_of[ex->in[0]]];
    float *band_in = f->slots[f->slot_of[e]], *band_out = f->slots[f->slot_of[e + 1]];
    float *out = f->slots[f->slot_of[e + 2]];
    int add = f->fused_add[e + 2];
    const float *res = add >= 0 ? f->slots[f->slot_of[f->residual[e + 2]]] : NULL;
    dn_act act = add >= 0 ? g->nodes[add].act : pj->act;
    int ih = f->out_h[e], iw = f->out_w[e], ow = f->out_w[e + 1], ce = ex->cout;
    size_t in_row = (size_t)iw * ce, in_x_row = (size_t)iw * ex->cin;
    dn_conv_geom full;
    dn_conv_geom_of(dw, ih, iw, &full);
    int lo = 0, hi = 0;
    for (int y0 = 0; y0 < full.oh; y0 += f->band_rows[e + 1]) {
        int y1 = y0 + f->band_rows[e + 1] < full.oh ? y0 + f->band_rows[e + 1] : full.oh;
        int need_lo = y0 * full.sh - full.pad_top, need_hi = (y1 - 1) * full.sh - full.pad_top + full.kh;
        need_lo = need_lo < 0 ? 0 : need_lo;
        need_hi = need_hi > ih ? ih : need_hi;
        int keep = hi > need_lo ? hi - need_lo : 0;
        memmove(band_in, band_in + (size_t)(hi - keep - lo) * in_row, keep * in_row * sizeof(float));
        lo = need_lo;
        if (need_hi > lo + keep)
            pointwise_rows(ex, x + (size_t)(lo + keep) * in_x_row, need_hi - lo - keep, iw, NULL,
                           ex->act, band_in + keep * in_row);
        hi = need_hi;
        dn_conv_geom band = full;
        band.ih = hi - lo;
        band.oh = y1 - y0;
        band.pad_top = lo - (y0 * full.sh - full.pad_top);
        dn_dwconv(&band, band_in, dw->weight, dw->bias, dw->act, band_out);
        size_t at = (size_t)y0 * ow * pj->cout;
        pointwise_rows(pj, band_out, y1 - y0, ow, res ? res + at : NULL, act, out + at);
    }
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
        if (f->chain_end[i] >= 0) {
            run_chain(f, i, input);
            i += 2; /* the depthwise and the projection ran inside the chain */
        } else {
            run_node(f, i, input);
        }
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
