/* End to end on generated images: normal textures against textures with drawn defects,
 * through the real backbone, the feature cache, training and scoring; and the model file
 * round trip with refusal of damaged or mismatched files. */
#include "test_util.h"

#include "dn_limits.h"

#include "dn_metrics.h"
#include "dn_train.h"

#include <cblas.h>
#include <math.h>
#include <unistd.h>

#define SIDE 96
#define SIZE 128

/* A woven texture with noise; a defect is a dark scratch at a random place, whose pixels
 * mask (may be NULL; RGB, zeroed by the caller) marks white. */
static void texture(uint8_t *rgb, int defect, uint64_t *seed, uint8_t *mask)
{
    float phase = dn_test_uniform(seed, 0, 6.28f);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            float v = 128 + 40 * sinf(0.6f * x + phase) * cosf(0.6f * y) + dn_test_uniform(seed, -12, 12);
            for (int c = 0; c < 3; c++)
                rgb[(y * SIDE + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    if (!defect)
        return;
    int x0 = 10 + (int)(dn_test_rand(seed) % 60), y0 = 10 + (int)(dn_test_rand(seed) % 60);
    for (int t = 0; t < 24; t++)
        for (int w = -2; w <= 2; w++) {
            int x = x0 + t, y = y0 + t / 2 + w;
            if (x < SIDE && y >= 0 && y < SIDE)
                for (int c = 0; c < 3; c++) {
                    rgb[(y * SIDE + x) * 3 + c] = c == 0 ? 220 : 15;
                    if (mask)
                        mask[(y * SIDE + x) * 3 + c] = 255;
                }
        }
}

/* n generated images in a new folder root/sub; their paths (malloc'd) into paths, and
 * with masks (may be NULL) their defect masks' (root/sub/NNN_mask.png). */
static void write_images_masks(const char *root, const char *sub, int n, int defect, uint64_t *seed,
                               char **paths, char **masks)
{
    uint8_t rgb[SIDE * SIDE * 3], mask[SIDE * SIDE * 3];
    dn_error err;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    cr_assert(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%03d.png", dir, i);
        memset(mask, 0, sizeof mask);
        texture(rgb, defect, seed, mask);
        cr_assert_eq(dn_png_write(path, SIDE, SIDE, 3, rgb, &err), DN_OK, "%s", err.msg);
        paths[i] = strdup(path);
        if (!masks)
            continue;
        snprintf(path, sizeof path, "%s/%03d_mask.png", dir, i);
        cr_assert_eq(dn_png_write(path, SIDE, SIDE, 3, mask, &err), DN_OK, "%s", err.msg);
        masks[i] = strdup(path);
    }
}

static void write_images(const char *root, const char *sub, int n, int defect, uint64_t *seed,
                         char **paths)
{
    write_images_masks(root, sub, n, defect, seed, paths, NULL);
}

typedef struct fixture {
    char root[64];
    dn_backbone bb;
    dn_extractor x;
} fixture;

static void feats_of(dn_extractor *x, char **paths, int n, int n_aug, dn_feats *out)
{
    for (int i = 0; i < n; i++)
        for (int a = 0; a < n_aug; a++) {
            dn_feats_init(&out[i * n_aug + a]);
            cr_assert_eq(dn_extractor_file(x, paths[i], a, &out[i * n_aug + a], NULL), DN_OK, "%s",
                         x->err.msg);
        }
}

/* How a test model's head is trained, beyond its type. */
typedef struct head_variant {
    int tail, scales;
    dn_head_input input;
} head_variant;

static void train_model_opts(fixture *fx, dn_head_type type, head_variant v, dn_model *m, double *auroc,
                             dn_feats *keep_test);

static void train_model(fixture *fx, dn_head_type type, dn_model *m, double *auroc)
{
    train_model_opts(fx, type, (head_variant){0, 1, DN_HEAD_INPUT_FINAL}, m, auroc, NULL);
}

/* Trains on generated images; keep_test (may be NULL) receives the first test image's
 * features (anomalous) for later comparisons. */
static void train_model_opts(fixture *fx, dn_head_type type, head_variant v, dn_model *m, double *auroc,
                             dn_feats *keep_test)
{
    fx->x.scales = v.scales;
    enum { NN = 24, NA = 3, NT = 10 };
    char *normal[NN], *anom[NA], *tn[NT], *ta[NT];
    uint64_t seed = 21;
    write_images(fx->root, "n", NN, 0, &seed, normal);
    write_images(fx->root, "a", NA, 1, &seed, anom);
    write_images(fx->root, "tn", NT, 0, &seed, tn);
    write_images(fx->root, "ta", NT, 1, &seed, ta);
    static dn_feats fn[NN], fa[NA * DN_AUGMENTATIONS], ft[2 * NT];
    feats_of(&fx->x, normal, NN, 1, fn);
    feats_of(&fx->x, anom, NA, DN_AUGMENTATIONS, fa);
    feats_of(&fx->x, tn, NT, 1, ft);
    feats_of(&fx->x, ta, NT, 1, ft + NT);
    const dn_feats *np[NN], *ap[NA * DN_AUGMENTATIONS];
    for (int i = 0; i < NN; i++)
        np[i] = &fn[i];
    for (int i = 0; i < NA * DN_AUGMENTATIONS; i++)
        ap[i] = &fa[i];
    dn_train_set set = {np, NN, ap, NA, DN_AUGMENTATIONS, "test", NULL};
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.type = type;
    o.size = SIZE;
    o.head.steps = 150;
    o.tail = v.tail;
    o.scales = v.scales;
    o.head_input = v.input;
    o.tail_opts.steps = 60;
    dn_error err;
    cr_assert_eq(dn_train(m, &set, &o, &fx->bb, &err), DN_OK, "%s", err.msg);
    float scores[2 * NT];
    uint8_t labels[2 * NT];
    for (int i = 0; i < 2 * NT; i++) {
        dn_score s;
        cr_assert_eq(dn_model_score(m, &ft[i], &s, &err), DN_OK, "%s", err.msg);
        scores[i] = s.score;
        labels[i] = i >= NT;
        cr_assert(s.p_value > 0 && s.p_value <= 1);
        dn_score_free(&s);
    }
    *auroc = dn_auroc(scores, labels, 2 * NT);
    if (keep_test) {
        *keep_test = ft[NT];
        dn_feats_init(&ft[NT]);
    }
    for (int i = 0; i < NN; i++)
        dn_feats_free(&fn[i]), free(normal[i]);
    for (int i = 0; i < NA * DN_AUGMENTATIONS; i++)
        dn_feats_free(&fa[i]);
    for (int i = 0; i < NA; i++)
        free(anom[i]);
    for (int i = 0; i < NT; i++)
        dn_feats_free(&ft[i]), dn_feats_free(&ft[NT + i]), free(tn[i]), free(ta[i]);
}

static int setup(fixture *fx)
{
    const char *path = dn_test_backbone();
    if (!path)
        return 0;
    openblas_set_num_threads(1);
    dn_test_mkdtemp(fx->root, "dn_train_");
    dn_backbone_init(&fx->bb);
    cr_assert_eq(dn_backbone_load(&fx->bb, path), DN_OK, "%s", fx->bb.err.msg);
    char cache[128];
    snprintf(cache, sizeof cache, "%s/cache", fx->root);
    cr_assert_eq(dn_extractor_init(&fx->x, &fx->bb, SIZE, cache), DN_OK, "%s", fx->x.err.msg);
    return 1;
}

static void teardown(fixture *fx)
{
    dn_extractor_free(&fx->x);
    dn_backbone_free(&fx->bb);
    dn_test_rmtree(fx->root);
}

Test(train, fusion_separates_generated_defects)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    dn_model m;
    dn_model_init(&m);
    double auroc;
    train_model(&fx, DN_HEAD_FUSION, &m, &auroc);
    cr_assert_eq(m.type, DN_HEAD_FUSION);
    cr_assert_gt(auroc, 0.95, "image AUROC %g on generated defects", auroc);
    cr_assert(isfinite(m.threshold) && m.map_hi > m.map_lo);
    /* data-driven fusion weights: a convex combination; both branches separate these
     * defects, so neither may be dropped */
    cr_assert_float_eq(m.w_head + m.w_bank, 1.0, 1e-5);
    cr_assert(m.w_head > 0 && m.w_bank > 0, "weights %g, %g", m.w_head, m.w_bank);
    /* zero anomalies: the normality branch alone, and the model says so */
    dn_model_free(&m);
    teardown(&fx);
}

typedef struct fold_count {
    int calls, total;
} fold_count;

static void count_folds(void *ctx, const char *stage, int done, int total)
{
    fold_count *c = ctx;
    (void)done;
    if (!strcmp(stage, "fusion weights")) {
        c->calls++;
        c->total = total;
    }
}

/* Choosing the fusion weights fits the head once per labelled anomaly (leave-one-out) up
 * to DN_FUSION_MAX_FOLDS anomalies and that many times beyond: a service with hundreds of
 * confirmed anomalies must still retrain within its budget. */
Test(train, fusion_weights_fit_at_most_max_folds_heads)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    enum { NN = 16, NA = DN_FUSION_MAX_FOLDS + 3 };
    char *normal[NN], *anom[NA];
    uint64_t seed = 5;
    write_images(fx.root, "n", NN, 0, &seed, normal);
    write_images(fx.root, "a", NA, 1, &seed, anom);
    static dn_feats fn[NN], fa[NA];
    feats_of(&fx.x, normal, NN, 1, fn);
    feats_of(&fx.x, anom, NA, 1, fa);
    const dn_feats *np[NN], *ap[NA];
    for (int i = 0; i < NN; i++)
        np[i] = &fn[i];
    for (int i = 0; i < NA; i++)
        ap[i] = &fa[i];
    int counts[] = {3, NA};
    for (int t = 0; t < 2; t++) {
        dn_train_set set = {np, NN, ap, counts[t], 1, "test", NULL};
        dn_train_opts o;
        dn_train_opts_default(&o);
        o.type = DN_HEAD_FUSION;
        o.size = SIZE;
        o.head.steps = 20;
        fold_count c = {0, 0};
        o.progress = count_folds;
        o.ctx = &c;
        dn_model m;
        dn_model_init(&m);
        dn_error err;
        cr_assert_eq(dn_train(&m, &set, &o, &fx.bb, &err), DN_OK, "%s", err.msg);
        int want = counts[t] < DN_FUSION_MAX_FOLDS ? counts[t] : DN_FUSION_MAX_FOLDS;
        cr_expect_eq(c.total, want, "%d anomalies: %d head fits (wanted %d)", counts[t], c.total, want);
        cr_expect_eq(c.calls, want, "%d anomalies: %d progress calls", counts[t], c.calls);
        cr_expect_float_eq(m.w_head + m.w_bank, 1.0, 1e-5);
        dn_model_free(&m);
    }
    for (int i = 0; i < NN; i++)
        dn_feats_free(&fn[i]), free(normal[i]);
    for (int i = 0; i < NA; i++)
        dn_feats_free(&fa[i]), free(anom[i]);
    teardown(&fx);
}

Test(train, model_file_round_trip_and_refusals)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    dn_model m, back;
    dn_model_init(&m);
    dn_model_init(&back);
    double auroc;
    train_model(&fx, DN_HEAD_FUSION, &m, &auroc);
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", fx.root);
    dn_error err;
    cr_assert_eq(dn_model_save(&m, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_model_load(&back, path, &fx.bb), DN_OK, "%s", back.err.msg);
    cr_assert_eq(back.type, m.type);
    cr_assert_eq(back.size, SIZE);
    cr_assert_float_eq(back.threshold, m.threshold, 1e-6);
    cr_assert_eq(back.bank.n, m.bank.n);
    cr_assert(memcmp(back.head.w, m.head.w, (size_t)(m.head.dim + 1) * 4) == 0);
    cr_assert(memcmp(back.cal_scores, m.cal_scores, (size_t)m.n_cal * 4) == 0);
    /* another backbone */
    dn_backbone other = fx.bb; /* a shallow copy that claims another hash */
    memset(other.sha256, '0', 64);
    cr_assert_eq(dn_model_load(&back, path, &other), DN_EMISMATCH);
    cr_assert(strstr(back.err.msg, "backbone") != NULL, "%s", back.err.msg);
    /* damaged bytes: a refusal with a message, never a crash */
    size_t len = 0;
    uint8_t *bytes = dn_test_read_file(path, &len);
    cr_assert_not_null(bytes);
    for (size_t cut = 0; cut < len; cut += len / 7 + 1) {
        FILE *f = fopen(path, "wb");
        fwrite(bytes, 1, cut, f);
        fclose(f);
        cr_assert_neq(dn_model_load(&back, path, &fx.bb), DN_OK, "cut at %zu accepted", cut);
        cr_assert(back.err.msg[0]);
    }
    free(bytes);
    /* a backbone file is not a model */
    cr_assert_eq(dn_model_load(&back, dn_test_backbone(), NULL), DN_EFORMAT);
    dn_model_free(&m);
    dn_model_free(&back);
    teardown(&fx);
}

Test(train, zero_anomalies_train_the_normality_branch)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    char *normal[12];
    uint64_t seed = 3;
    write_images(fx.root, "z", 12, 0, &seed, normal);
    dn_feats f[12];
    feats_of(&fx.x, normal, 12, 1, f);
    const dn_feats *np[12];
    for (int i = 0; i < 12; i++)
        np[i] = &f[i];
    dn_train_set set = {np, 12, NULL, 0, DN_AUGMENTATIONS, "zero", NULL};
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.size = SIZE;
    dn_model m;
    dn_model_init(&m);
    dn_error err;
    cr_assert_eq(dn_train(&m, &set, &o, &fx.bb, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(m.type, DN_HEAD_NORMALITY);
    cr_assert(!m.has_head && m.has_bank);
    o.type = DN_HEAD_DEVNET;
    cr_assert_eq(dn_train(&m, &set, &o, &fx.bb, &err), DN_EINVAL);
    for (int i = 0; i < 12; i++)
        dn_feats_free(&f[i]), free(normal[i]);
    dn_model_free(&m);
    teardown(&fx);
}

/* Saves m as root/name, loads it back into back and checks it scores probe the same. */
static void reload_scores_the_same(fixture *fx, const char *name, const dn_model *m, dn_model *back,
                                   const dn_feats *probe, char path[128])
{
    snprintf(path, 128, "%s/%s", fx->root, name);
    dn_error err;
    cr_assert_eq(dn_model_save(m, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_model_load(back, path, &fx->bb), DN_OK, "%s", back->err.msg);
    dn_score a, b;
    cr_assert_eq(dn_model_score(m, probe, &a, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_model_score(back, probe, &b, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(a.score, b.score, "the reloaded model scores %g, the trained one %g", b.score, a.score);
    dn_score_free(&a);
    dn_score_free(&b);
}

Test(train, tail_fine_tuning_trains_scores_and_round_trips)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    dn_model m, back;
    dn_model_init(&m);
    dn_model_init(&back);
    dn_feats probe;
    double auroc;
    train_model_opts(&fx, DN_HEAD_DEVNET, (head_variant){1, 1, DN_HEAD_INPUT_FINAL}, &m, &auroc, &probe);
    cr_assert(m.has_tail && m.has_head && !m.has_bank);
    cr_assert_gt(auroc, 0.9, "image AUROC %g with the tail fine-tuned", auroc);
    char path[128];
    reload_scores_the_same(&fx, "tail.safetensors", &m, &back, &probe, path);
    cr_assert(back.has_tail);
    cr_assert_eq(dn_model_load(&back, path, NULL), DN_EFORMAT, "a tail needs the backbone");
    dn_feats_free(&probe);
    dn_model_free(&m);
    dn_model_free(&back);
    teardown(&fx);
}

/* The DevNet head's optional second scale: the features carry the final map of the input
 * downscaled 2x, through the cache too; the model separates, says so in its file, and
 * refuses features without that map; the tail fine-tuning does not combine with it. */
Test(train, second_scale_trains_scores_and_round_trips)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    dn_model m, back;
    dn_model_init(&m);
    dn_model_init(&back);
    dn_feats probe;
    double auroc;
    train_model_opts(&fx, DN_HEAD_DEVNET, (head_variant){0, 2, DN_HEAD_INPUT_FINAL}, &m, &auroc, &probe);
    cr_assert_eq(m.scales, 2);
    cr_assert_gt(auroc, 0.95, "image AUROC %g with two scales", auroc);
    /* SIZE 128: the half-size input is 64x64, its final map 2x2 */
    cr_assert(probe.final_half.data && probe.final_half.h == 2 && probe.final_half.w == 2 &&
              probe.final_half.c == probe.final.c);
    char path[128];
    reload_scores_the_same(&fx, "two.safetensors", &m, &back, &probe, path);
    cr_assert_eq(back.scales, 2);
    dn_error err;
    dn_score a;
    /* the same image through the cache, with and without the second scale */
    char img[160];
    snprintf(img, sizeof img, "%s/ta/000.png", fx.root);
    dn_feats cached;
    dn_feats_init(&cached);
    fx.x.scales = 2;
    cr_assert_eq(dn_extractor_file(&fx.x, img, 0, &cached, NULL), DN_OK, "%s", fx.x.err.msg);
    cr_assert(memcmp(cached.final_half.data, probe.final_half.data,
                     (size_t)probe.final_half.h * probe.final_half.w * probe.final_half.c * sizeof(float)) == 0);
    fx.x.scales = 1;
    cr_assert_eq(dn_extractor_file(&fx.x, img, 0, &cached, NULL), DN_OK, "%s", fx.x.err.msg);
    dn_fmap keep = cached.final_half;
    cached.final_half = (dn_fmap){0, 0, 0, NULL}; /* features without it */
    cr_assert_eq(dn_model_score(&m, &cached, &a, &err), DN_EMISMATCH);
    cr_assert(strstr(err.msg, "half-scale") != NULL, "%s", err.msg);
    cached.final_half = keep;
    dn_feats_free(&cached);
    const dn_feats *np[2] = {&probe, &probe}, *ap[DN_AUGMENTATIONS];
    for (int i = 0; i < DN_AUGMENTATIONS; i++)
        ap[i] = &probe;
    dn_train_set set = {np, 2, ap, 1, DN_AUGMENTATIONS, "two", NULL};
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.type = DN_HEAD_DEVNET;
    o.size = SIZE;
    o.scales = 2;
    o.tail = 1;
    cr_assert_eq(dn_train(&back, &set, &o, &fx.bb, &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "second scale") != NULL, "%s", err.msg);
    dn_feats_free(&probe);
    dn_model_free(&m);
    dn_model_free(&back);
    teardown(&fx);
}

/* Features of one image file taken by x with the forward pass stopped at stride 16. */
static void mid_only_feats(dn_extractor *x, const char *path, dn_feats *out)
{
    dn_image img;
    dn_image_init(&img);
    dn_error err;
    cr_assert_eq(dn_image_load(&img, path, NULL, &err), DN_OK, "%s", err.msg);
    x->mid_only = 1;
    dn_feats_init(out);
    cr_assert_eq(dn_extractor_image(x, &img, 0, out), DN_OK, "%s", x->err.msg);
    x->mid_only = 0;
    dn_image_free(&img);
    cr_assert_null(out->final.data, "the forward pass went past stride 16");
}

/* A DevNet head on the patch inputs instead of the final map: the fusion separates, its
 * scores need no final map (the forward pass stops at stride 16 and scores the same), the
 * file says so, and what does not go with it is refused. */
Test(train, head_on_patches_needs_no_final_map)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    dn_model m, back;
    dn_model_init(&m);
    dn_model_init(&back);
    dn_feats probe, mid;
    double auroc;
    train_model_opts(&fx, DN_HEAD_FUSION, (head_variant){0, 1, DN_HEAD_INPUT_PATCHES}, &m, &auroc, &probe);
    cr_assert_eq(m.head_input, DN_HEAD_INPUT_PATCHES);
    cr_assert_eq(m.head.dim, 2 * m.bank.dim);
    cr_assert(m.w_head > 0, "the head on the patches got no fusion weight");
    cr_assert_gt(auroc, 0.95, "image AUROC %g with the head on the patches", auroc);
    cr_assert(dn_model_mid_only(&m));
    char path[128], img[160];
    reload_scores_the_same(&fx, "patches.safetensors", &m, &back, &probe, path);
    cr_assert_eq(back.head_input, DN_HEAD_INPUT_PATCHES);
    snprintf(img, sizeof img, "%s/ta/000.png", fx.root);
    mid_only_feats(&fx.x, img, &mid);
    dn_score a, b;
    dn_error err;
    cr_assert_eq(dn_model_score(&m, &probe, &a, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_model_score(&m, &mid, &b, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(a.score, b.score, "stopped at stride 16: %g, whole pass: %g", b.score, a.score);
    cr_assert_gt(a.head_z, 2.0, "the head's own z on an anomaly: %g", a.head_z);
    dn_score_free(&a);
    dn_score_free(&b);
    /* a head of the wrong size for the bank, and a name this build does not know */
    m.head_input = DN_HEAD_INPUT_FINAL;
    cr_assert_eq(dn_model_save(&m, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_model_load(&back, path, &fx.bb), DN_OK, "%s", back.err.msg);
    cr_assert_eq(dn_model_score(&back, &probe, &a, &err), DN_EMISMATCH, "a 256-input head read the final map");
    back.head_input = DN_HEAD_INPUT_PATCHES;
    back.head.dim = 2 * m.bank.dim + 2;
    float *w = realloc(back.head.w, (size_t)(back.head.dim + 1) * sizeof *w);
    cr_assert_not_null(w);
    back.head.w = w;
    w[back.head.dim - 1] = w[back.head.dim] = 0;
    cr_assert_eq(dn_model_save(&back, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_model_load(&back, path, &fx.bb), DN_EFORMAT);
    cr_assert(strstr(back.err.msg, "twice the bank") != NULL, "%s", back.err.msg);
    m.head_input = (dn_head_input)7;
    cr_assert_eq(dn_model_save(&m, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_model_load(&back, path, &fx.bb), DN_EFORMAT);
    /* neither the tail fine-tuning nor the second scale goes with it */
    const dn_feats *np[2] = {&probe, &probe}, *ap[DN_AUGMENTATIONS];
    for (int i = 0; i < DN_AUGMENTATIONS; i++)
        ap[i] = &probe;
    dn_train_set set = {np, 2, ap, 1, DN_AUGMENTATIONS, "patches", NULL};
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.type = DN_HEAD_DEVNET;
    o.size = SIZE;
    o.head_input = DN_HEAD_INPUT_PATCHES;
    for (int k = 0; k < 2; k++) {
        o.tail = k == 0;
        o.scales = k == 0 ? 1 : 2;
        cr_assert_eq(dn_train(&back, &set, &o, &fx.bb, &err), DN_EINVAL);
        cr_assert(strstr(err.msg, "patches") != NULL, "%s", err.msg);
    }
    dn_feats_free(&probe);
    dn_feats_free(&mid);
    dn_model_free(&m);
    dn_model_free(&back);
    teardown(&fx);
}

Test(train, unreadable_image_error_names_the_file_once)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    char path[128], want[256];
    snprintf(path, sizeof path, "%s/junk.png", fx.root);
    FILE *f = fopen(path, "w");
    fputs("not an image", f);
    fclose(f);
    dn_feats feats;
    dn_feats_init(&feats);
    cr_assert_eq(dn_extractor_file(&fx.x, path, 0, &feats, NULL), DN_EFORMAT);
    snprintf(want, sizeof want, "%s: not a JPEG or PNG image", path);
    cr_assert_str_eq(fx.x.err.msg, want);
    teardown(&fx);
}

/* Training from files: unreadable images are skipped and counted out; the time budget and
 * the cancel flag stop training with DN_ETIMEDOUT and leave no model. */
Test(train, from_files_skips_budgets_and_cancels)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    enum { NN = 12, NA = 2 };
    char *normal[NN + 1], *anom[NA];
    uint64_t seed = 5;
    write_images(fx.root, "n", NN, 0, &seed, normal);
    write_images(fx.root, "a", NA, 1, &seed, anom);
    char bad[128];
    snprintf(bad, sizeof bad, "%s/broken.png", fx.root);
    FILE *f = fopen(bad, "wb");
    fputs("not a png", f);
    fclose(f);
    normal[NN] = bad;
    dn_train_files files = {normal, NN + 1, anom, NA, NULL, 0, 0, NULL};
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.size = SIZE;
    o.head.steps = 50;
    dn_model m;
    dn_model_init(&m);
    dn_error err;
    cr_assert_eq(dn_train_from_files(&m, &fx.x, &files, &o, &err), DN_OK, "%s", err.msg);
    cr_expect_eq(files.kept_normal, NN, "the broken file is left out");
    cr_expect_eq(files.kept_anomaly, NA);
    cr_expect_eq(m.type, DN_HEAD_FUSION);
    o.budget_s = 1e-9;
    cr_expect_eq(dn_train_from_files(&m, &fx.x, &files, &o, &err), DN_ETIMEDOUT);
    cr_expect(strstr(err.msg, "budget") != NULL, "%s", err.msg);
    cr_expect_eq(m.has_head + m.has_bank, 0, "a failed training leaves no model");
    volatile int cancel = 1;
    o.budget_s = 0;
    o.cancel = &cancel;
    cr_expect_eq(dn_train_from_files(&m, &fx.x, &files, &o, &err), DN_ETIMEDOUT);
    dn_model_free(&m);
    for (int i = 0; i < NN; i++)
        free(normal[i]);
    for (int i = 0; i < NA; i++)
        free(anom[i]);
    teardown(&fx);
}

/* A model without a head reads only the mid-level maps: features taken with mid_only stop
 * the forward pass early, match the full ones, and score exactly the same. */
Test(train, mid_only_features_score_a_normality_model_the_same)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    dn_model m;
    dn_model_init(&m);
    double auroc;
    train_model(&fx, DN_HEAD_NORMALITY, &m, &auroc);
    cr_assert_eq(m.has_head, 0);
    char *paths[1];
    uint64_t seed = 77;
    write_images(fx.root, "probe", 1, 1, &seed, paths);
    dn_image img;
    dn_image_init(&img);
    dn_error err;
    cr_assert_eq(dn_image_load(&img, paths[0], NULL, &err), DN_OK, "%s", err.msg);
    dn_feats full, mid;
    dn_feats_init(&full);
    dn_feats_init(&mid);
    cr_assert_eq(dn_extractor_image(&fx.x, &img, 0, &full), DN_OK);
    fx.x.mid_only = 1;
    cr_assert_eq(dn_extractor_image(&fx.x, &img, 0, &mid), DN_OK);
    cr_expect_null(mid.final.data, "no final map");
    cr_assert_eq(mid.s16.h * mid.s16.w * mid.s16.c, full.s16.h * full.s16.w * full.s16.c);
    cr_expect_eq(memcmp(mid.s8.data, full.s8.data, sizeof(float) * mid.s8.h * mid.s8.w * mid.s8.c), 0);
    cr_expect_eq(memcmp(mid.s16.data, full.s16.data, sizeof(float) * mid.s16.h * mid.s16.w * mid.s16.c), 0);
    dn_score a, b;
    cr_assert_eq(dn_model_score(&m, &full, &a, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_model_score(&m, &mid, &b, &err), DN_OK, "%s", err.msg);
    cr_expect_eq(a.score, b.score);
    dn_score_free(&a);
    dn_score_free(&b);
    dn_feats_free(&full);
    dn_feats_free(&mid);
    dn_image_free(&img);
    free(paths[0]);
    dn_model_free(&m);
    teardown(&fx);
}

typedef struct skip_log {
    int images, masks;
} skip_log;

static void log_skip(void *ctx, const char *path, const char *why)
{
    skip_log *l = ctx;
    (void)why;
    if (strstr(path, "mask"))
        l->masks++;
    else
        l->images++;
}

/* AUROC of a model's patch maps (or with seg_only, of its defect classifier's logits) on n
 * images against their masks (a patch is defect when a quarter of it is). */
static double patch_auroc(const dn_model *m, dn_extractor *x, char **paths, char **masks, int n,
                          int seg_only)
{
    float *v = NULL;
    uint8_t *lab = NULL;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        dn_feats f;
        dn_score s;
        dn_image mask;
        dn_error err;
        dn_feats_init(&f);
        dn_image_init(&mask);
        cr_assert_eq(dn_extractor_file(x, paths[i], 0, &f, NULL), DN_OK, "%s", x->err.msg);
        cr_assert_eq(dn_model_score(m, &f, &s, &err), DN_OK, "%s", err.msg);
        cr_assert_eq(dn_image_load(&mask, masks[i], NULL, &err), DN_OK, "%s", err.msg);
        dn_raw r;
        cr_assert_eq(dn_model_raw(m, &f, &r, &err), DN_OK, "%s", err.msg);
        size_t per = (size_t)s.rows * s.cols;
        float cells[256];
        cr_assert(per <= 256);
        cr_assert_eq(dn_seg_mask_cells(&mask, s.rows, s.cols, cells, &err), DN_OK, "%s", err.msg);
        v = realloc(v, (total + per) * sizeof *v);
        lab = realloc(lab, total + per);
        for (size_t p = 0; p < per; p++) {
            v[total + p] = seg_only ? r.seg_patches[p] : s.patches[p];
            lab[total + p] = cells[p] >= 0.25f;
        }
        total += per;
        dn_raw_free(&r);
        dn_score_free(&s);
        dn_image_free(&mask);
        dn_feats_free(&f);
    }
    double a = dn_auroc(v, lab, total);
    free(v);
    free(lab);
    return a;
}

/* Labelled anomalies with pixel masks give a fusion model a defect classifier: it finds
 * the generated scratches on unseen images by itself, the heatmap with it still localises
 * them (the normality branch alone already does it almost perfectly here), it survives
 * the model file, and a mask that cannot be read or an image that is left out costs only
 * that item (the remaining masks stay with their images). */
Test(train, masks_train_a_defect_classifier_that_localises)
{
    fixture fx;
    if (!setup(&fx))
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped");
    enum { NN = 24, NA = 4, NT = 8 };
    char *normal[NN], *anom[NA + 1], *amask[NA + 1], *test[NT], *tmask[NT];
    uint64_t seed = 33;
    write_images(fx.root, "n", NN, 0, &seed, normal);
    write_images_masks(fx.root, "a", NA, 1, &seed, anom + 1, amask + 1);
    write_images_masks(fx.root, "t", NT, 1, &seed, test, tmask);
    char broken[128], missing[128];
    snprintf(broken, sizeof broken, "%s/broken.png", fx.root);
    snprintf(missing, sizeof missing, "%s/no_mask.png", fx.root);
    FILE *f = fopen(broken, "wb");
    fputs("not a png", f);
    fclose(f);
    anom[0] = broken;       /* left out: its mask must not shift onto the next image */
    amask[0] = amask[1];
    char *last_mask = amask[NA];
    amask[NA] = missing;    /* the last anomaly trains without a mask */
    skip_log log = {0, 0};
    dn_train_files files = {normal, NN, anom, NA + 1, log_skip, 0, 0, amask};
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.size = SIZE;
    o.head.steps = 80;
    o.ctx = &log;
    dn_model m, plain, back;
    dn_model_init(&m);
    dn_model_init(&plain);
    dn_model_init(&back);
    dn_error err;
    cr_assert_eq(dn_train_from_files(&m, &fx.x, &files, &o, &err), DN_OK, "%s", err.msg);
    cr_expect_eq(log.images, 1, "the broken image is reported");
    cr_expect_eq(log.masks, 1, "the missing mask is reported");
    cr_expect_eq(files.kept_anomaly, NA);
    cr_assert(m.has_seg, "a fusion model with masks has a defect classifier");
    files.anomaly_mask = NULL;
    cr_assert_eq(dn_train_from_files(&plain, &fx.x, &files, &o, &err), DN_OK, "%s", err.msg);
    cr_assert(!plain.has_seg);
    double seg = patch_auroc(&m, &fx.x, test, tmask, NT, 1), with = patch_auroc(&m, &fx.x, test, tmask, NT, 0);
    double without = patch_auroc(&plain, &fx.x, test, tmask, NT, 0);
    cr_expect_gt(seg, 0.95, "patch AUROC of the defect classifier alone %g", seg);
    cr_expect_gt(with, without - 0.005, "patch AUROC with masks %g, without %g", with, without);
    /* the file keeps it */
    char path[128];
    snprintf(path, sizeof path, "%s/seg.safetensors", fx.root);
    cr_assert_eq(dn_model_save(&m, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_model_load(&back, path, &fx.bb), DN_OK, "%s", back.err.msg);
    cr_assert(back.has_seg && back.seg.dim == m.seg.dim);
    cr_assert(memcmp(back.seg.w, m.seg.w, (size_t)(m.seg.dim + 1) * sizeof(float)) == 0);
    cr_assert_float_eq(patch_auroc(&back, &fx.x, test, tmask, NT, 0), with, 1e-9);
    /* a classifier that does not fit the bank's descriptors is refused */
    m.seg.dim--;
    cr_assert_eq(dn_model_save(&m, path, &err), DN_OK, "%s", err.msg);
    m.seg.dim++;
    cr_assert_eq(dn_model_load(&back, path, &fx.bb), DN_EFORMAT);
    cr_assert(strstr(back.err.msg, "defect classifier") != NULL, "%s", back.err.msg);
    dn_model_free(&m);
    dn_model_free(&plain);
    dn_model_free(&back);
    for (int i = 0; i < NN; i++)
        free(normal[i]);
    for (int i = 1; i <= NA; i++)
        free(anom[i]), free(i < NA ? amask[i] : last_mask);
    for (int i = 0; i < NT; i++)
        free(test[i]), free(tmask[i]);
    teardown(&fx);
}
