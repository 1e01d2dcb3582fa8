/* The forward context: buffer planning and taps on a small synthetic graph (compared with
 * running each node into its own buffer), determinism, no allocation when warm, threads,
 * and the real backbone's golden top-1 on ../shared/images. */
#include "test_util.h"

#include "dn_forward.h"
#include "dn_image.h"
#include "dn_ops.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>

/* A miniature inverted-residual network with random weights. */
typedef struct toy {
    dn_backbone bb;
    float *weights;
} toy;

static void add_node(dn_graph *g, const char *name, dn_op op, int in0, int in1, int k, int s,
                     int cin, int cout, dn_act act)
{
    dn_node *n = &g->nodes[g->n_nodes++];
    *n = (dn_node){.op = op, .in = {in0, in1}, .kh = k, .kw = k, .stride_h = s, .stride_w = s,
                   .pad = DN_PAD_SAME, .act = act, .cin = cin, .cout = cout};
    snprintf(n->name, sizeof n->name, "%s", name);
}

static void toy_init(toy *t, uint64_t seed)
{
    dn_backbone_init(&t->bb);
    dn_graph *g = &t->bb.graph;
    g->in_channels = 3;
    g->native_size = 32;
    add_node(g, "stem", DN_OP_CONV, DN_INPUT, 0, 3, 2, 3, 8, DN_ACT_RELU6);
    add_node(g, "b1/dw", DN_OP_DWCONV, 0, 0, 3, 1, 8, 8, DN_ACT_RELU6);
    add_node(g, "b1/project", DN_OP_CONV, 1, 0, 1, 1, 8, 8, DN_ACT_NONE);
    add_node(g, "b1/add", DN_OP_ADD, 0, 2, 0, 0, 8, 8, DN_ACT_NONE);
    add_node(g, "b2/expand", DN_OP_CONV, 3, 0, 1, 1, 8, 16, DN_ACT_RELU6);
    add_node(g, "b2/dw", DN_OP_DWCONV, 4, 0, 3, 2, 16, 16, DN_ACT_RELU6);
    add_node(g, "b2/project", DN_OP_CONV, 5, 0, 1, 1, 16, 12, DN_ACT_NONE);
    add_node(g, "pool", DN_OP_MEAN, 6, 0, 0, 0, 12, 12, DN_ACT_NONE);
    add_node(g, "logits", DN_OP_CONV, 7, 0, 1, 1, 12, 5, DN_ACT_NONE);
    add_node(g, "prob", DN_OP_SOFTMAX, 8, 0, 0, 0, 5, 5, DN_ACT_NONE);
    g->n_classes = 5;
    size_t total = 0;
    for (int i = 0; i < g->n_nodes; i++)
        total += dn_node_weight_count(&g->nodes[i]) + dn_node_bias_count(&g->nodes[i]);
    t->weights = malloc(total * sizeof(float));
    for (size_t i = 0; i < total; i++)
        t->weights[i] = dn_test_uniform(&seed, -0.5f, 0.5f);
    float *p = t->weights;
    for (int i = 0; i < g->n_nodes; i++) {
        g->nodes[i].weight = p;
        p += dn_node_weight_count(&g->nodes[i]);
        g->nodes[i].bias = p;
        p += dn_node_bias_count(&g->nodes[i]);
    }
    dn_error err;
    cr_assert_eq(dn_graph_validate(g, &err), DN_OK, "%s", err.msg);
}

/* Runs every node into its own buffer with the same kernels, unfused: the plumbing
 * reference. Fused residual adds round differently, hence a tolerance, not memcmp. */
static float **toy_reference(const toy *t, const float *input, int h, int w)
{
    const dn_graph *g = &t->bb.graph;
    int oh[DN_MAX_NODES], ow[DN_MAX_NODES];
    cr_assert_eq(dn_graph_shapes(g, h, w, oh, ow, NULL), DN_OK);
    float **out = calloc((size_t)g->n_nodes, sizeof *out);
    for (int i = 0; i < g->n_nodes; i++) {
        const dn_node *n = &g->nodes[i];
        out[i] = malloc((size_t)oh[i] * ow[i] * n->cout * sizeof(float));
        const float *in = n->in[0] == DN_INPUT ? input : out[n->in[0]];
        int ih = n->in[0] == DN_INPUT ? h : oh[n->in[0]], iw = n->in[0] == DN_INPUT ? w : ow[n->in[0]];
        dn_conv_geom geo = {0};
        if (n->op == DN_OP_CONV || n->op == DN_OP_DWCONV)
            dn_conv_geom_of(n, ih, iw, &geo);
        float *scratch = malloc((dn_conv2d_scratch(&geo) + 1) * sizeof(float));
        if (n->op == DN_OP_CONV)
            dn_conv2d(&geo, in, n->weight, n->bias, NULL, n->act, out[i], scratch);
        else if (n->op == DN_OP_DWCONV)
            dn_dwconv(&geo, in, n->weight, n->bias, n->act, out[i]);
        else if (n->op == DN_OP_ADD)
            dn_add(in, out[n->in[1]], out[i], (size_t)oh[i] * ow[i] * n->cout, n->act);
        else if (n->op == DN_OP_MEAN)
            dn_mean(in, (size_t)ih * iw, n->cin, out[i]);
        else
            dn_softmax(in, n->cin, out[i]);
        free(scratch);
    }
    return out;
}

static float *random_input(int h, int w, uint64_t seed)
{
    float *x = malloc((size_t)h * w * 3 * sizeof *x);
    for (int i = 0; i < h * w * 3; i++)
        x[i] = dn_test_uniform(&seed, -1, 1);
    return x;
}

static void expect_map(const dn_fmap *m, const float *ref, const char *what)
{
    for (size_t i = 0; i < (size_t)m->h * m->w * m->c; i++)
        cr_assert(fabsf(m->data[i] - ref[i]) <= 1e-5f * (1 + fabsf(ref[i])),
                  "%s: element %zu is %g, reference %g", what, i, m->data[i], ref[i]);
}

Test(forward, taps_equal_per_node_reference_at_odd_and_even_sizes)
{
    openblas_set_num_threads(1);
    toy t;
    toy_init(&t, 3);
    int sizes[][2] = {{32, 32}, {17, 23}, {9, 8}, {32, 32}, {17, 23}};
    dn_forward f;
    dn_forward_init(&f, &t.bb);
    for (int s = 0; s < 5; s++) {
        /* the last sizes again with one-row bands: many bands, rows carried between them */
        f.band_bytes = s < 3 ? DN_FORWARD_BAND_BYTES : 1;
        f.h = 0; /* re-plan */
        int h = sizes[s][0], w = sizes[s][1];
        float *x = random_input(h, w, 10 + s);
        float **ref = toy_reference(&t, x, h, w);
        /* every node once as a tap, plus all of them together */
        for (int i = 0; i < t.bb.graph.n_nodes; i++) {
            dn_fmap m;
            cr_assert_eq(dn_forward_run(&f, x, h, w, &i, 1, &m), DN_OK, "%s", f.err.msg);
            expect_map(&m, ref[i], t.bb.graph.nodes[i].name);
        }
        int taps[3] = {6, 1, 3};
        dn_fmap m[3];
        cr_assert_eq(dn_forward_run(&f, x, h, w, taps, 3, m), DN_OK);
        for (int k = 0; k < 3; k++)
            expect_map(&m[k], ref[taps[k]], "multi-tap");
        for (int i = 0; i < t.bb.graph.n_nodes; i++)
            free(ref[i]);
        free(ref);
        free(x);
    }
    dn_forward_free(&f);
    free(t.weights);
}

Test(forward, warm_call_allocates_nothing_and_stops_at_last_tap)
{
    toy t;
    toy_init(&t, 4);
    dn_forward f;
    dn_forward_init(&f, &t.bb);
    float *x = random_input(32, 32, 5);
    int tap = 3;
    dn_fmap m;
    cr_assert_eq(dn_forward_run(&f, x, 32, 32, &tap, 1, &m), DN_OK);
    void *base = f.arena.base;
    size_t bytes = dn_forward_plan_bytes(&f);
    cr_assert_eq(dn_forward_run(&f, x, 32, 32, &tap, 1, &m), DN_OK);
    cr_assert_eq(f.arena.base, base, "a warm run must reuse the arena");
    cr_assert_eq(dn_forward_plan_bytes(&f), bytes);
    /* the plan stops at the tap: fewer slots than nodes, and no classifier buffers */
    cr_assert_lt(f.n_slots, 4);
    dn_forward_free(&f);
    free(x);
    free(t.weights);
}

Test(forward, refuses_bad_taps_and_sizes)
{
    toy t;
    toy_init(&t, 6);
    dn_forward f;
    dn_forward_init(&f, &t.bb);
    float x[3] = {0};
    int bad = 99, ok = 0;
    dn_fmap m;
    cr_assert_eq(dn_forward_run(&f, x, 1, 1, &bad, 1, &m), DN_EINVAL);
    cr_assert(strstr(f.err.msg, "tap") != NULL, "message: %s", f.err.msg);
    cr_assert_eq(dn_forward_run(&f, x, 0, 5, &ok, 1, &m), DN_EINVAL);
    cr_assert_eq(dn_forward_run(&f, x, 1, 1, &ok, 0, &m), DN_EINVAL);
    dn_forward_free(&f);
    free(t.weights);
}

static int load_backbone(dn_backbone *bb, const char *path)
{
    dn_backbone_init(bb);
    int rc = dn_backbone_load(bb, path);
    cr_assert_eq(rc, DN_OK, "%s", bb->err.msg);
    return rc;
}

Test(forward, real_backbone_is_bit_for_bit_deterministic)
{
    DN_REQUIRE_BACKBONE(path);
    openblas_set_num_threads(1);
    dn_backbone bb;
    load_backbone(&bb, path);
    int taps[3] = {dn_backbone_final_map(&bb), dn_backbone_tap_at_stride(&bb, 8),
                   dn_backbone_tap_at_stride(&bb, 16)};
    float *x = random_input(96, 80, 9), *y = random_input(64, 64, 1);
    dn_forward f1, f2;
    dn_forward_init(&f1, &bb);
    dn_forward_init(&f2, &bb);
    dn_fmap a[3], b[3];
    cr_assert_eq(dn_forward_run(&f1, x, 96, 80, taps, 3, a), DN_OK);
    cr_assert_eq(dn_forward_run(&f2, y, 64, 64, taps, 3, b), DN_OK); /* other size first */
    cr_assert_eq(dn_forward_run(&f2, x, 96, 80, taps, 3, b), DN_OK);
    cr_assert_eq(a[0].c, 1280);
    cr_assert_eq(a[0].h, 3);
    cr_assert_eq(a[0].w, 3);
    cr_assert_eq(a[1].c, 32);
    cr_assert_eq(a[2].c, 96);
    for (int k = 0; k < 3; k++)
        cr_assert(memcmp(a[k].data, b[k].data, (size_t)a[k].h * a[k].w * a[k].c * 4) == 0,
                  "tap %d differs between runs", k);
    dn_forward_free(&f1);
    dn_forward_free(&f2);
    dn_backbone_free(&bb);
    free(x);
    free(y);
}

typedef struct thread_job {
    const dn_backbone *bb;
    const float *x;
    float *out; /* final map */
    size_t n;
} thread_job;

static void *thread_run(void *arg)
{
    thread_job *j = arg;
    dn_forward f;
    dn_forward_init(&f, j->bb);
    int tap = dn_backbone_final_map(j->bb);
    dn_fmap m;
    for (int rep = 0; rep < 3; rep++)
        if (dn_forward_run(&f, j->x, 64, 64, &tap, 1, &m) == DN_OK)
            memcpy(j->out, m.data, j->n * sizeof(float));
    dn_forward_free(&f);
    return NULL;
}

Test(forward, threads_share_one_backbone)
{
    DN_REQUIRE_BACKBONE(path);
    openblas_set_num_threads(1);
    dn_backbone bb;
    load_backbone(&bb, path);
    float *x = random_input(64, 64, 77);
    size_t n = 2 * 2 * 1280;
    thread_job jobs[3];
    pthread_t tid[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (thread_job){&bb, x, calloc(n, sizeof(float)), n};
        pthread_create(&tid[i], NULL, thread_run, &jobs[i]);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(tid[i], NULL);
    for (int i = 1; i < 3; i++)
        cr_assert(memcmp(jobs[0].out, jobs[i].out, n * sizeof(float)) == 0,
                  "thread %d computed a different map", i);
    for (int i = 0; i < 3; i++)
        free(jobs[i].out);
    free(x);
    dn_backbone_free(&bb);
}

/* Top-1 of an image resized whole to the native size (models/README.md protocol). */
static int top1(dn_forward *f, const dn_backbone *bb, const char *path)
{
    int s = bb->graph.native_size, tap = bb->graph.n_nodes - 1;
    dn_image img;
    dn_image_init(&img);
    dn_error err;
    cr_assert_eq(dn_image_load(&img, path, NULL, &err), DN_OK, "%s: %s", path, err.msg);
    float *x = malloc((size_t)s * s * 3 * sizeof *x);
    cr_assert_eq(dn_backbone_input(bb, &img, s, s, x, &err), DN_OK);
    dn_fmap m;
    cr_assert_eq(dn_forward_run(f, x, s, s, &tap, 1, &m), DN_OK);
    int best = 0;
    for (int i = 1; i < m.c; i++)
        best = m.data[i] > m.data[best] ? i : best;
    free(x);
    dn_image_free(&img);
    return best;
}

Test(forward, golden_top1_on_shared_images)
{
    DN_REQUIRE_SHARED(shared);
    DN_REQUIRE_BACKBONE(path);
    openblas_set_num_threads(1);
    static const struct { const char *file; int index; } golden[] = {
        {"parrot.jpg", 89}, {"hot_dog.jpg", 935}, {"cat.png", 286}, {"bird.png", 20}, {"eagle.jpg", 22},
    };
    dn_backbone bb;
    load_backbone(&bb, path);
    dn_forward f;
    dn_forward_init(&f, &bb);
    for (int i = 0; i < 5; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/images/%s", shared, golden[i].file);
        int got = top1(&f, &bb, file);
        cr_expect_eq(got, golden[i].index, "%s: top-1 %d, expected %d", golden[i].file, got,
                     golden[i].index);
    }
    dn_forward_free(&f);
    dn_backbone_free(&bb);
}
