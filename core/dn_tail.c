#include "dn_tail.h"

#include "dn_clock.h"
#include "dn_grad.h"
#include "dn_ops.h"

#include <stdlib.h>
#include <string.h>

void dn_tail_opts_default(dn_tail_opts *o)
{
    /* REFERENCE-RESULTS.md: 300 steps, batch 16, Adam head 1e-3, tail 1e-4 */
    *o = (dn_tail_opts){.steps = 300, .batch = 8, .lr_head = 1e-3f, .lr_tail = 1e-4f,
                        .weight_decay = 1e-5f, .clip_norm = 10.0f, .seed = 1};
}

static int is_pointwise(const dn_node *n)
{
    return n->op == DN_OP_CONV && n->kh == 1 && n->kw == 1 && n->stride_h == 1 && n->stride_w == 1;
}

/* Finds final <- project <- depthwise <- expand <- input, or fails. */
static int find_layers(const dn_backbone *bb, int *idx, int *input, dn_error *err)
{
    const dn_graph *g = &bb->graph;
    int f = dn_backbone_final_map(bb);
    int p = f >= 0 ? g->nodes[f].in[0] : -1, d = p >= 0 ? g->nodes[p].in[0] : -1;
    int e = d >= 0 ? g->nodes[d].in[0] : -1;
    if (f < 0 || p < 0 || d < 0 || e < 0 || !is_pointwise(&g->nodes[f]) || !is_pointwise(&g->nodes[p]) ||
        g->nodes[d].op != DN_OP_DWCONV || g->nodes[d].stride_h != 1 || !is_pointwise(&g->nodes[e]) ||
        g->nodes[p].act != DN_ACT_NONE || g->nodes[e].in[0] == DN_INPUT)
        return dn_error_set(err, DN_EUNSUPPORTED,
                            "the backbone does not end in expand -> depthwise -> project -> 1x1 conv");
    idx[0] = e, idx[1] = d, idx[2] = p, idx[3] = f;
    *input = g->nodes[e].in[0];
    return DN_OK;
}

int dn_tail_input_node(const dn_backbone *bb)
{
    int idx[DN_TAIL_LAYERS], input = -1;
    return find_layers(bb, idx, &input, NULL) ? -1 : input;
}

static size_t layer_params(const dn_node *n)
{
    return dn_node_weight_count(n) + dn_node_bias_count(n);
}

/* Points each layer's weight and bias into the parameter block. */
static void bind(dn_tail *t)
{
    float *p = t->params;
    for (int l = 0; l < DN_TAIL_LAYERS; l++) {
        t->layer[l].weight = p;
        t->layer[l].bias = p + dn_node_weight_count(&t->layer[l]);
        p += layer_params(&t->layer[l]);
    }
}

static int layout(dn_tail *t, const dn_backbone *bb, int *idx, dn_error *err)
{
    memset(t, 0, sizeof *t);
    int rc = find_layers(bb, idx, &t->input_node, err);
    for (int l = 0; !rc && l < DN_TAIL_LAYERS; l++) {
        t->layer[l] = bb->graph.nodes[idx[l]];
        t->n_params += layer_params(&t->layer[l]);
    }
    if (!rc && !(t->params = malloc(t->n_params * sizeof(float))))
        rc = dn_error_set(err, DN_ENOMEM, "out of memory for the tail");
    return rc;
}

int dn_tail_init(dn_tail *t, const dn_backbone *bb, dn_error *err)
{
    int idx[DN_TAIL_LAYERS], rc = layout(t, bb, idx, err);
    float *p = t->params;
    for (int l = 0; !rc && l < DN_TAIL_LAYERS; l++) {
        const dn_node *src = &bb->graph.nodes[idx[l]];
        memcpy(p, src->weight, dn_node_weight_count(src) * sizeof *p);
        memcpy(p + dn_node_weight_count(src), src->bias, dn_node_bias_count(src) * sizeof *p);
        p += layer_params(src);
    }
    if (!rc)
        bind(t);
    else
        dn_tail_free(t);
    return rc;
}

int dn_tail_with_params(dn_tail *t, const dn_backbone *bb, const float *params, size_t n, dn_error *err)
{
    int idx[DN_TAIL_LAYERS], rc = layout(t, bb, idx, err);
    if (!rc && n != t->n_params)
        rc = dn_error_set(err, DN_EMISMATCH, "tail has %zu parameters, this backbone's tail %zu", n,
                          t->n_params);
    if (!rc) {
        memcpy(t->params, params, n * sizeof(float));
        bind(t);
    } else {
        dn_tail_free(t);
    }
    return rc;
}

void dn_tail_free(dn_tail *t)
{
    free(t->params);
    memset(t, 0, sizeof *t);
}

size_t dn_tail_act_floats(const dn_tail *t, int h, int w)
{
    size_t n = 0;
    for (int l = 0; l < DN_TAIL_LAYERS; l++)
        n += (size_t)h * w * t->layer[l].cout;
    return n;
}

float *dn_tail_forward(const dn_tail *t, const float *x, int h, int w, float *acts)
{
    const float *in = x;
    float *out = acts;
    for (int l = 0; l < DN_TAIL_LAYERS; l++) {
        const dn_node *n = &t->layer[l];
        dn_conv_geom g;
        dn_conv_geom_of(n, h, w, &g);
        if (n->op == DN_OP_DWCONV)
            dn_dwconv(&g, in, n->weight, n->bias, n->act, out);
        else
            dn_conv2d(&g, in, n->weight, n->bias, NULL, n->act, out, NULL);
        in = out;
        out += (size_t)h * w * n->cout;
    }
    return (float *)in;
}

/* d_final (overwritten along the way) -> parameter gradients accumulated into grad.
 * scratch holds two maps of the widest layer. */
static void tail_backward(const dn_tail *t, const float *x, int h, int w, const float *acts,
                          float *d_final, float *grad, float *scratch)
{
    const float *outs[DN_TAIL_LAYERS];
    float *gw[DN_TAIL_LAYERS];
    size_t widest = 0;
    const float *a = acts;
    float *gp = grad;
    for (int l = 0; l < DN_TAIL_LAYERS; l++) {
        outs[l] = a;
        a += (size_t)h * w * t->layer[l].cout;
        gw[l] = gp;
        gp += layer_params(&t->layer[l]);
        widest = (size_t)t->layer[l].cout > widest ? (size_t)t->layer[l].cout : widest;
    }
    float *d_out = d_final, *bufs[2] = {scratch, scratch + (size_t)h * w * widest};
    for (int l = DN_TAIL_LAYERS - 1; l >= 0; l--) {
        const dn_node *n = &t->layer[l];
        const float *in = l ? outs[l - 1] : x;
        float *d_in = l ? bufs[l % 2] : NULL;
        dn_conv_geom g;
        dn_conv_geom_of(n, h, w, &g);
        dn_act_backward(outs[l], d_out, (size_t)h * w * n->cout, n->act);
        if (n->op == DN_OP_DWCONV)
            dn_dwconv_backward(&g, in, n->weight, d_out, d_in, gw[l], gw[l] + dn_node_weight_count(n));
        else
            dn_conv1x1_backward(&g, in, n->weight, d_out, d_in, gw[l], gw[l] + dn_node_weight_count(n));
        d_out = d_in;
    }
}

typedef struct tail_step {
    float *acts, *scores, *d_final, *scratch, *grad_tail, *grad_head;
    int *topk;
} tail_step;

/* One image: forward, deviation loss, backward into both gradients. */
static void image_step(const dn_tail *t, const dn_head *h, const float *x, int hh, int ww, int y,
                       float mu, float sigma, float scale, tail_step *s)
{
    int n = hh * ww, k = dn_topk_count(n);
    float *final = dn_tail_forward(t, x, hh, ww, s->acts), dl;
    dn_head_patch_scores(h, final, n, s->scores);
    float score = dn_topk_abs_mean(s->scores, n, k, s->topk);
    dn_deviation_loss(score, y, mu, sigma, &dl);
    if (dl == 0.0f)
        return;
    dn_head_backward(h, final, s->scores, s->topk, k, dl * scale, s->grad_head);
    memset(s->d_final, 0, (size_t)n * h->dim * sizeof(float));
    for (int j = 0; j < k; j++) { /* d score / d final map: the head's weights on top-K patches */
        int p = s->topk[j];
        float g = dl * scale * (s->scores[p] > 0 ? 1.0f : s->scores[p] < 0 ? -1.0f : 0.0f) / k;
        for (int c = 0; c < h->dim; c++)
            s->d_final[(size_t)p * h->dim + c] += g * h->w[c];
    }
    tail_backward(t, x, hh, ww, s->acts, s->d_final, s->grad_tail, s->scratch);
}

static void apply(float *w, float *g, size_t n, dn_adam *a, float lr, float wd, float clip)
{
    for (size_t i = 0; i < n; i++)
        g[i] += wd * w[i];
    dn_clip_by_norm(g, n, clip);
    dn_adam_step(a, w, g, n, lr);
}

int dn_tail_train(dn_tail *t, dn_head *h, const dn_tail_data *d, const dn_tail_opts *o, dn_error *err)
{
    if (d->n_normal < 1 || d->n_anomaly < 1)
        return dn_error_set(err, DN_EINVAL, "the tail needs normal and anomalous images");
    size_t map = (size_t)d->h * d->w, widest = 0, nh = (size_t)h->dim + 1;
    for (int l = 0; l < DN_TAIL_LAYERS; l++)
        widest = (size_t)t->layer[l].cout > widest ? (size_t)t->layer[l].cout : widest;
    tail_step s = {malloc(dn_tail_act_floats(t, d->h, d->w) * sizeof(float)), malloc(map * sizeof(float)),
                   malloc(map * h->dim * sizeof(float)), malloc(2 * map * widest * sizeof(float)),
                   malloc(t->n_params * sizeof(float)), malloc(nh * sizeof(float)),
                   malloc((size_t)dn_topk_count((int)map) * sizeof(int))};
    dn_adam at, ah;
    int rc = dn_adam_init(&at, t->n_params) | dn_adam_init(&ah, nh);
    if (rc || !s.acts || !s.scores || !s.d_final || !s.scratch || !s.grad_tail || !s.grad_head || !s.topk)
        rc = dn_error_set(err, DN_ENOMEM, "out of memory fine-tuning the tail");
    dn_rng r;
    dn_rng_seed(&r, o->seed);
    for (int step = 0; !rc && step < o->steps; step++) {
        if (dn_clock_past(o->deadline) || (o->cancel && *o->cancel)) {
            rc = dn_error_set(err, DN_ETIMEDOUT, "time budget ran out fine-tuning the tail (step %d of %d)",
                              step, o->steps);
            break;
        }
        float mu, sigma, decay = step >= (int)(0.8f * o->steps) ? 0.1f : 1.0f;
        dn_deviation_reference(&r, &mu, &sigma);
        memset(s.grad_tail, 0, t->n_params * sizeof(float));
        memset(s.grad_head, 0, nh * sizeof(float));
        for (int b = 0; b < o->batch; b++) {
            const float *xn = d->normal[dn_rng_below(&r, (uint64_t)d->n_normal)];
            const float *xa = d->anomaly[dn_rng_below(&r, (uint64_t)d->n_anomaly)];
            image_step(t, h, xn, d->h, d->w, 0, mu, sigma, 0.5f / o->batch, &s);
            image_step(t, h, xa, d->h, d->w, 1, mu, sigma, 0.5f / o->batch, &s);
        }
        apply(t->params, s.grad_tail, t->n_params, &at, o->lr_tail * decay, o->weight_decay, o->clip_norm);
        apply(h->w, s.grad_head, nh, &ah, o->lr_head * decay, o->weight_decay, o->clip_norm);
    }
    free(s.acts), free(s.scores), free(s.d_final), free(s.scratch), free(s.grad_tail);
    free(s.grad_head), free(s.topk);
    dn_adam_free(&at);
    dn_adam_free(&ah);
    return rc;
}
