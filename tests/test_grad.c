/* Every backward kernel against central finite differences of the loss sum(out * r), whose
 * d_out is r. Single kernels are differenced through a double-precision reference forward
 * (checked against the dn_ops kernel first); the fine-tuned tail of MobileNetV2 is
 * differenced through the float dn_ops kernels themselves. */
#include "test_util.h"

#include "dn_grad.h"

#include <math.h>

/* Loss at the current parameters; NAN when the perturbation moved a unit across an
 * activation kink, where the difference measures the kink rather than the gradient. */
typedef double (*loss_fn)(void *ctx);

static void fill(float *x, size_t n, uint64_t *seed, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = dn_test_uniform(seed, -scale, scale);
}

/* Slices of one calloc'd block, so a test frees once. */
static float *take(float **pool, size_t n)
{
    float *p = *pool;
    *pool += n;
    return p;
}

static double dot(const float *a, const float *r, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * r[i];
    return s;
}

/* Compares grad with central differences of f in each of p's n floats, the step being
 * what float rounding leaves of +-h. A step that crosses a kink is retried twice, each time
 * eight times smaller; returns how many coordinates still crossed one and were skipped. */
static size_t fd_check(loss_fn f, void *ctx, float *p, size_t n, const float *grad, float h,
                       double tol, const char *what)
{
    size_t skipped = 0;
    for (size_t i = 0; i < n; i++) {
        float old = p[i], step = h;
        double lp = NAN, lm = NAN, num = 0.0;
        for (int try = 0; try < 3 && (isnan(lp) || isnan(lm)); try++, step /= 8) {
            float up = old + step, down = old - step;
            p[i] = up;
            lp = f(ctx);
            p[i] = down;
            lm = f(ctx);
            p[i] = old;
            num = (lp - lm) / ((double)up - (double)down);
        }
        if (isnan(num)) {
            skipped++;
            continue;
        }
        if (!(fabs(grad[i] - num) <= tol * (1.0 + fabs(num)))) /* a NaN gradient fails too */
            cr_assert_fail("%s: gradient %zu is %.7g, finite difference %.7g", what, i,
                           grad[i], num);
    }
    return skipped;
}

/* Undoes the "+= onto 0.5" the accumulating gradients were given below. */
static void unbias(float *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] -= 0.5f;
}

static void set_all(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

static void expect_forward(const float *lib, const float *ref, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(lib[i] - ref[i]) <= 1e-4f * (1.0f + fabsf(ref[i])),
                  "%s: reference forward differs from dn_ops at %zu: %g vs %g", what, i, ref[i],
                  lib[i]);
}

/* One convolution under test: dense 1x1 or depthwise, with the loss weights r. */
typedef struct conv_case {
    dn_conv_geom g;
    int dw;
    float *in, *w, *b, *r;
} conv_case;

/* Reference forward in double from the definition; out (may be NULL) gets the map. */
static double conv_ref(const conv_case *c, float *out)
{
    const dn_conv_geom *g = &c->g;
    double loss = 0.0;
    for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++)
            for (int o = 0; o < g->cout; o++) {
                size_t at = ((size_t)oy * g->ow + ox) * g->cout + o;
                double acc = c->b[o];
                for (int ky = 0; ky < g->kh; ky++)
                    for (int kx = 0; kx < g->kw; kx++) {
                        int y = oy * g->sh - g->pad_top + ky, x = ox * g->sw - g->pad_left + kx;
                        if (y < 0 || y >= g->ih || x < 0 || x >= g->iw)
                            continue;
                        const float *px = c->in + ((size_t)y * g->iw + x) * g->cin;
                        if (c->dw)
                            acc += (double)px[o] * c->w[(ky * g->kw + kx) * g->cout + o];
                        else
                            for (int i = 0; i < g->cin; i++)
                                acc += (double)px[i] * c->w[(size_t)o * g->cin + i];
                    }
                if (out)
                    out[at] = (float)acc;
                loss += acc * c->r[at];
            }
    return loss;
}

static double conv_loss(void *ctx)
{
    return conv_ref(ctx, NULL);
}

/* Builds a random case, checks the reference against dn_ops, runs the backward onto
 * gradients pre-filled with 0.5 (accumulated) and 1e6 (overwritten), and differences
 * the input (when with_din), the weights and the bias. */
static void check_conv(int dw, int ih, int iw, int cin, int cout, int k, int s, dn_pad pad,
                       int with_din, uint64_t seed)
{
    if (dw)
        cout = cin;
    dn_node n = {.op = dw ? DN_OP_DWCONV : DN_OP_CONV, .kh = k, .kw = k, .stride_h = s,
                 .stride_w = s, .pad = pad, .cin = cin, .cout = cout};
    conv_case c = {.dw = dw};
    dn_conv_geom_of(&n, ih, iw, &c.g);
    size_t n_in = (size_t)ih * iw * cin, n_out = (size_t)c.g.oh * c.g.ow * cout;
    size_t n_w = dw ? (size_t)k * k * cin : (size_t)cout * cin;
    float *pool = calloc(2 * n_in + 2 * n_w + 2 * (size_t)cout + 3 * n_out, sizeof *pool), *p = pool;
    c.in = take(&p, n_in), c.w = take(&p, n_w), c.b = take(&p, cout), c.r = take(&p, n_out);
    float *d_in = take(&p, n_in), *d_w = take(&p, n_w), *d_b = take(&p, cout);
    float *lib = take(&p, n_out), *ref = take(&p, n_out);
    fill(c.in, n_in, &seed, 2.0f), fill(c.w, n_w, &seed, 1.0f);
    fill(c.b, cout, &seed, 1.0f), fill(c.r, n_out, &seed, 1.0f);

    char what[128];
    snprintf(what, sizeof what, "%s %dx%dx%d->%d k%d s%d %s", dw ? "dwconv" : "conv1x1", ih, iw,
             cin, cout, k, s, pad == DN_PAD_SAME ? "same" : "valid");
    conv_ref(&c, ref);
    if (dw)
        dn_dwconv(&c.g, c.in, c.w, c.b, DN_ACT_NONE, lib);
    else
        dn_conv2d(&c.g, c.in, c.w, c.b, NULL, DN_ACT_NONE, lib, NULL);
    expect_forward(lib, ref, n_out, what);

    set_all(d_in, n_in, 1e6f), set_all(d_w, n_w, 0.5f), set_all(d_b, cout, 0.5f);
    float *din_arg = with_din ? d_in : NULL;
    if (dw)
        dn_dwconv_backward(&c.g, c.in, c.w, c.r, din_arg, d_w, d_b);
    else
        dn_conv1x1_backward(&c.g, c.in, c.w, c.r, din_arg, d_w, d_b);
    unbias(d_w, n_w), unbias(d_b, cout);
    /* the loss is linear in each parameter: central differences are exact but for rounding */
    if (with_din)
        fd_check(conv_loss, &c, c.in, n_in, d_in, 1e-2f, 1e-4, what);
    else
        cr_assert_eq(d_in[0], 1e6f, "%s: d_in written though NULL was passed", what);
    fd_check(conv_loss, &c, c.w, n_w, d_w, 1e-2f, 1e-4, what);
    fd_check(conv_loss, &c, c.b, cout, d_b, 1e-2f, 1e-4, what);
    free(pool);
}

Test(grad, conv1x1_matches_finite_differences)
{
    check_conv(0, 3, 4, 5, 7, 1, 1, DN_PAD_SAME, 1, 1);
    check_conv(0, 1, 1, 16, 8, 1, 1, DN_PAD_SAME, 1, 2);
    check_conv(0, 5, 5, 13, 24, 1, 1, DN_PAD_SAME, 1, 3);
    check_conv(0, 7, 7, 20, 33, 1, 1, DN_PAD_VALID, 0, 4); /* frozen input */
}

Test(grad, dwconv_3x3_same_matches_finite_differences)
{
    int sizes[][2] = {{8, 8}, {7, 7}, {6, 5}, {2, 3}, {1, 1}};
    int channels[] = {1, 5, 17};
    for (int i = 0; i < 5; i++)
        for (int s = 1; s <= 2; s++)
            check_conv(1, sizes[i][0], sizes[i][1], channels[(i + s) % 3], 0, 3, s, DN_PAD_SAME,
                       1, 10 + i * 2 + s);
    check_conv(1, 7, 6, 9, 0, 3, 1, DN_PAD_SAME, 0, 30); /* no d_in */
}

Test(grad, dwconv_valid_and_5x5_match_finite_differences)
{
    check_conv(1, 9, 8, 6, 0, 3, 1, DN_PAD_VALID, 1, 41);
    check_conv(1, 9, 8, 6, 0, 3, 2, DN_PAD_VALID, 1, 42);
    check_conv(1, 9, 9, 5, 0, 5, 1, DN_PAD_SAME, 1, 43);
    check_conv(1, 8, 7, 4, 0, 5, 2, DN_PAD_SAME, 1, 44);
    check_conv(1, 7, 8, 3, 0, 5, 1, DN_PAD_VALID, 1, 45);
}

typedef struct act_case {
    float *x, *r;
    size_t n;
    dn_act act;
} act_case;

static double act_loss(void *ctx)
{
    const act_case *a = ctx;
    double hi = a->act == DN_ACT_RELU6 ? 6.0 : INFINITY, loss = 0.0;
    for (size_t i = 0; i < a->n; i++) {
        double y = a->x[i];
        if (a->act != DN_ACT_NONE)
            y = y < 0.0 ? 0.0 : y > hi ? hi : y;
        loss += y * a->r[i];
    }
    return loss;
}

Test(grad, activation_backward_matches_finite_differences)
{
    enum { N = 200 };
    dn_act acts[] = {DN_ACT_NONE, DN_ACT_RELU, DN_ACT_RELU6};
    const char *names[] = {"none", "relu", "relu6"};
    float x[N], y[N], r[N], d[N];
    uint64_t seed = 50;
    for (int k = 0; k < 3; k++) {
        act_case a = {x, r, N, acts[k]};
        for (int i = 0; i < N; i++) {
            do /* off the kinks by more than the step */
                x[i] = dn_test_uniform(&seed, -4.0f, 10.0f);
            while (fabsf(x[i]) < 0.05f || fabsf(x[i] - 6.0f) < 0.05f);
            r[i] = dn_test_uniform(&seed, -1.0f, 1.0f);
        }
        memcpy(y, x, sizeof y);
        dn_act_inplace(y, N, acts[k]);
        memcpy(d, r, sizeof d);
        dn_act_backward(y, d, N, acts[k]);
        fd_check(act_loss, &a, x, N, d, 1e-2f, 1e-6, names[k]);
    }
    /* at the clamps themselves the gradient is cut */
    float yk[3] = {0.0f, 6.0f, 3.0f}, dk[3] = {1.0f, 1.0f, 1.0f};
    dn_act_backward(yk, dk, 3, DN_ACT_RELU6);
    cr_assert(dk[0] == 0.0f && dk[1] == 0.0f && dk[2] == 1.0f, "relu6 kinks: %g %g %g", dk[0],
              dk[1], dk[2]);
}

/* The fine-tuned tail on a small map: block input x -> 1x1 expand + ReLU6 -> 3x3 depthwise
 * + ReLU6 -> 1x1 project + x -> final 1x1 + ReLU6, loss sum(final * r). */
typedef struct tail {
    dn_conv_geom ge, gd, gp, gf;
    size_t nx, ne, nf;
    float *x, *we, *be, *wd, *bd, *wp, *bp, *wf, *bf, *r;
    float *ye, *yd, *yp, *yf;
    unsigned char *base, *now; /* which side of each ReLU6 kink every unit is on */
} tail;

static void tail_forward(tail *t)
{
    dn_conv2d(&t->ge, t->x, t->we, t->be, NULL, DN_ACT_RELU6, t->ye, NULL);
    dn_dwconv(&t->gd, t->ye, t->wd, t->bd, DN_ACT_RELU6, t->yd);
    dn_conv2d(&t->gp, t->yd, t->wp, t->bp, t->x, DN_ACT_NONE, t->yp, NULL);
    dn_conv2d(&t->gf, t->yp, t->wf, t->bf, NULL, DN_ACT_RELU6, t->yf, NULL);
}

static void tail_pattern(const tail *t, unsigned char *pat)
{
    const float *ys[3] = {t->ye, t->yd, t->yf};
    size_t ns[3] = {t->ne, t->ne, t->nf};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < ns[k]; i++)
            *pat++ = ys[k][i] <= 0.0f ? 0 : ys[k][i] >= 6.0f ? 2 : 1;
}

static double tail_loss(void *ctx)
{
    tail *t = ctx;
    tail_forward(t);
    tail_pattern(t, t->now);
    if (memcmp(t->now, t->base, 2 * t->ne + t->nf))
        return NAN;
    return dot(t->yf, t->r, t->nf);
}

static void geom(dn_op op, int k, int cin, int cout, int h, int w, dn_conv_geom *g)
{
    dn_node n = {.op = op, .kh = k, .kw = k, .stride_h = 1, .stride_w = 1, .pad = DN_PAD_SAME,
                 .cin = cin, .cout = cout};
    dn_conv_geom_of(&n, h, w, g);
}

Test(grad, mobilenet_tail_chain_matches_finite_differences)
{
    enum { H = 5, W = 6, C = 4, E = 12, F = 6 };
    tail t = {.nx = H * W * C, .ne = H * W * E, .nf = H * W * F};
    geom(DN_OP_CONV, 1, C, E, H, W, &t.ge);
    geom(DN_OP_DWCONV, 3, E, E, H, W, &t.gd);
    geom(DN_OP_CONV, 1, E, C, H, W, &t.gp);
    geom(DN_OP_CONV, 1, C, F, H, W, &t.gf);
    size_t sizes[] = {E * C, E, 9 * E, E, C * E, C, F * C, F}; /* we be wd bd wp bp wf bf */
    size_t n_par = 0;
    for (int i = 0; i < 8; i++)
        n_par += sizes[i];
    float *pool = calloc(4 * t.nx + 4 * t.ne + 3 * t.nf + 2 * n_par, sizeof *pool), *p = pool;
    float **par[] = {&t.we, &t.be, &t.wd, &t.bd, &t.wp, &t.bp, &t.wf, &t.bf}, *grad[8];
    uint64_t seed = 1;
    /* scales that put units on both sides of both ReLU6 kinks */
    float scale[] = {1.5f, 1.5f, 0.6f, 1.0f, 0.6f, 0.5f, 1.0f, 2.0f};
    t.x = take(&p, t.nx), t.r = take(&p, t.nf);
    fill(t.x, t.nx, &seed, 3.0f), fill(t.r, t.nf, &seed, 1.0f);
    for (int i = 0; i < 8; i++) {
        *par[i] = take(&p, sizes[i]);
        grad[i] = take(&p, sizes[i]);
        fill(*par[i], sizes[i], &seed, scale[i]);
    }
    t.ye = take(&p, t.ne), t.yd = take(&p, t.ne), t.yp = take(&p, t.nx), t.yf = take(&p, t.nf);
    float *d_yf = take(&p, t.nf), *d_yp = take(&p, t.nx), *d_yd = take(&p, t.ne);
    float *d_ye = take(&p, t.ne), *d_x = take(&p, t.nx);
    t.base = malloc(2 * t.ne + t.nf), t.now = malloc(2 * t.ne + t.nf);
    tail_forward(&t);
    tail_pattern(&t, t.base);
    int seen[3] = {0};
    for (size_t i = 0; i < 2 * t.ne + t.nf; i++)
        seen[t.base[i]] = 1;
    cr_assert(seen[0] && seen[1] && seen[2], "the data leaves a ReLU6 kink unused");

    /* the backward a trainer runs, last op first */
    memcpy(d_yf, t.r, t.nf * sizeof *d_yf);
    dn_act_backward(t.yf, d_yf, t.nf, DN_ACT_RELU6);
    dn_conv1x1_backward(&t.gf, t.yp, t.wf, d_yf, d_yp, grad[6], grad[7]);
    dn_conv1x1_backward(&t.gp, t.yd, t.wp, d_yp, d_yd, grad[4], grad[5]);
    dn_act_backward(t.yd, d_yd, t.ne, DN_ACT_RELU6);
    dn_dwconv_backward(&t.gd, t.ye, t.wd, d_yd, d_ye, grad[2], grad[3]);
    dn_act_backward(t.ye, d_ye, t.ne, DN_ACT_RELU6);
    dn_conv1x1_backward(&t.ge, t.x, t.we, d_ye, d_x, grad[0], grad[1]);
    for (size_t i = 0; i < t.nx; i++)
        d_x[i] += d_yp[i]; /* the residual passes d_yp to x unchanged */

    const char *names[] = {"expand w", "expand b", "dw w", "dw b", "project w", "project b",
                           "final w", "final b"};
    /* the float forward leaves ~1e-4 of noise in the differences (3e-3 at worst over 40
     * seeds); a wrong index or a missed mask is off by far more than 1e-2 */
    size_t skipped = fd_check(tail_loss, &t, t.x, t.nx, d_x, 1e-2f, 1e-2, "block input");
    for (int i = 0; i < 8; i++)
        skipped += fd_check(tail_loss, &t, *par[i], sizes[i], grad[i], 1e-2f, 1e-2, names[i]);
    cr_assert(skipped * 10 < t.nx + n_par, "%zu differences crossed a kink", skipped);
    free(t.base), free(t.now), free(pool);
}
