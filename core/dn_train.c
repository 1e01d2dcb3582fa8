#include "dn_train.h"

#include "dn_clock.h"
#include "dn_image.h"
#include "dn_limits.h"
#include "dn_metrics.h"
#include "dn_rng.h"
#include "dn_sha256.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void dn_train_opts_default(dn_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->type = DN_HEAD_FUSION;
    o->size = 224;
    o->seed = 1;
    o->holdout = 0.2f;
    o->scales = 1;
    o->bank_max = 16384;
    o->proj_dim = 64;
    dn_head_opts_default(&o->head);
    dn_tail_opts_default(&o->tail_opts);
    o->rule = DN_THRESHOLD_QUANTILE;
    o->quantile = 0.99f;
}

/* Stages are checked against the time budget as they start; the optimisers check it at
 * every step. */
static int within_budget(const dn_train_opts *o, const char *stage, dn_error *err)
{
    if (dn_clock_past(o->deadline))
        return dn_error_set(err, DN_ETIMEDOUT, "time budget ran out before %s", stage);
    if (o->cancel && *o->cancel)
        return dn_error_set(err, DN_ETIMEDOUT, "cancelled before %s", stage);
    return DN_OK;
}

static void progress(const dn_train_opts *o, const char *stage, int done, int total)
{
    if (o->progress)
        o->progress(o->ctx, stage, done, total);
}

/* Seeded split of the normals: the first n_fit of `order` fit, the rest calibrate. With
 * fewer than 2 normals both roles use the same images (and the model says so). */
static int split_normals(int n, float holdout, uint64_t seed, int *order, int *n_fit)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    dn_rng r;
    dn_rng_seed(&r, seed ^ 0x5EEDu);
    dn_rng_shuffle(&r, order, n);
    int hold = (int)lroundf(holdout * (float)n);
    hold = n < 2 ? 0 : hold < 1 ? 1 : hold >= n ? n - 1 : hold;
    *n_fit = n - hold;
    return hold;
}

static int build_bank(dn_model *m, const dn_train_set *set, const int *fit, int n_fit,
                      const dn_train_opts *o, dn_error *err)
{
    const dn_feats *f0 = set->normal[fit[0]];
    int per = f0->s16.h * f0->s16.w, dim = f0->s8.c + f0->s16.c;
    float *desc = malloc((size_t)n_fit * per * dim * sizeof *desc);
    if (!desc)
        return dn_error_set(err, DN_ENOMEM, "out of memory for %d x %d descriptors", n_fit, per);
    int rc = DN_OK;
    for (int i = 0; i < n_fit && !rc; i++) {
        const dn_feats *f = set->normal[fit[i]];
        rc = f->s16.h * f->s16.w == per
                 ? dn_patch_descriptors(&f->s8, &f->s16, desc + (size_t)i * per * dim, err)
                 : dn_error_set(err, DN_EINVAL, "features of different sizes in one training set");
    }
    progress(o, "memory bank", 0, 1);
    if (!rc)
        rc = dn_bank_build(&m->bank, desc, (size_t)n_fit * per, dim, o->bank_max, o->proj_dim,
                           o->seed, err);
    free(desc);
    progress(o, "memory bank", 1, 1);
    return rc;
}

/* What the head trains on, per fit normal (in fit order) and per anomaly copy: the final
 * map (or the tail's input) of the features, or, for a head on the patches, their patch
 * inputs, computed once for every fit of the training (the fusion weights' folds too) and
 * for the defect classifier's rows. */
typedef struct head_inputs {
    const float **normal, **anomaly;
    float *buf; /* the patch inputs (head on the patches) */
    int per, dim; /* patches per image, inputs per patch */
} head_inputs;

static void head_inputs_free(head_inputs *hi)
{
    free(hi->normal);
    free(hi->buf);
    memset(hi, 0, sizeof *hi);
}

/* The patch inputs of one image into row `row` of hi->buf; *out points at them. */
static int patch_input_row(head_inputs *hi, const dn_feats *f, size_t row, const float **out, dn_error *err)
{
    size_t floats = (size_t)hi->per * hi->dim;
    *out = hi->buf + row * floats;
    return dn_patch_input_floats(f) != floats
               ? dn_error_set(err, DN_EINVAL, "features of different sizes in one training set")
               : dn_patch_inputs(f, hi->buf + row * floats, err);
}

static int head_inputs_init(head_inputs *hi, const dn_train_set *set, const int *fit, int n_fit,
                            const dn_train_opts *o, dn_error *err)
{
    int n_copies = set->n_anomaly * set->n_aug;
    const dn_feats *f0 = set->normal[fit[0]];
    memset(hi, 0, sizeof *hi);
    if (!(hi->normal = malloc(((size_t)n_fit + n_copies + 1) * sizeof *hi->normal)))
        return dn_error_set(err, DN_ENOMEM, "out of memory training the head");
    hi->anomaly = hi->normal + n_fit;
    if (o->head_input == DN_HEAD_INPUT_FINAL) {
        hi->per = f0->final.h * f0->final.w;
        hi->dim = f0->final.c;
        for (int i = 0; i < n_fit; i++)
            hi->normal[i] = o->tail ? set->normal[fit[i]]->tail_in.data : set->normal[fit[i]]->final.data;
        for (int i = 0; i < n_copies; i++)
            hi->anomaly[i] = o->tail ? set->anomaly[i]->tail_in.data : set->anomaly[i]->final.data;
        return DN_OK;
    }
    if (o->tail || o->scales != 1)
        return dn_error_set(err, DN_EINVAL, "a head on the patches goes with neither the tail fine-tuning "
                                            "nor the second scale");
    hi->per = f0->s16.h * f0->s16.w;
    hi->dim = 2 * (f0->s8.c + f0->s16.c);
    hi->buf = malloc(((size_t)n_fit + n_copies) * hi->per * hi->dim * sizeof *hi->buf);
    int rc = hi->buf ? DN_OK : dn_error_set(err, DN_ENOMEM, "out of memory for the head's patch inputs");
    for (int i = 0; !rc && i < n_fit; i++)
        rc = patch_input_row(hi, set->normal[fit[i]], (size_t)i, &hi->normal[i], err);
    for (int i = 0; !rc && i < n_copies; i++)
        rc = patch_input_row(hi, set->anomaly[i], (size_t)n_fit + i, &hi->anomaly[i], err);
    return rc;
}

/* Trains a head on the fit normals and the labelled anomalies, leaving out those of fold
 * `fold` (anomaly a is in fold a % n_folds; n_folds 0 leaves none out). */
static int fit_head(dn_model *hm, const dn_backbone *bb, const dn_train_set *set, const head_inputs *hi,
                    const int *fit, int n_fit, int fold, int n_folds, const dn_train_opts *o, uint64_t seed,
                    dn_error *err)
{
    int n_copies = set->n_anomaly * set->n_aug, n_a = 0;
    int two = o->scales == 2;
    const float **normal_half = malloc(((size_t)n_fit + 1) * sizeof *normal_half);
    const float **anomaly = malloc(2 * ((size_t)n_copies + 1) * sizeof *anomaly);
    const float **anomaly_half = anomaly ? anomaly + n_copies + 1 : NULL;
    int rc = normal_half && anomaly ? dn_head_init(&hm->head, hi->dim, seed, err)
                               : dn_error_set(err, DN_ENOMEM, "out of memory training the head");
    hm->has_head = 1;
    hm->has_tail = o->tail;
    hm->scales = o->scales;
    hm->head_input = o->head_input;
    if (!rc && two && o->tail)
        rc = dn_error_set(err, DN_EINVAL, "the head's second scale and the tail fine-tuning do not go together");
    if (!rc && o->tail)
        rc = dn_tail_init(&hm->tail, bb, err);
    for (int i = 0; !rc && i < n_fit; i++) {
        normal_half[i] = set->normal[fit[i]]->final_half.data;
        if (two && !normal_half[i])
            rc = dn_error_set(err, DN_EINVAL, "features lack the half-scale map (extract with scales 2)");
    }
    for (int i = 0; !rc && i < n_copies; i++)
        if (n_folds <= 0 || (i / set->n_aug) % n_folds != fold) {
            anomaly_half[n_a] = set->anomaly[i]->final_half.data;
            if (two && !anomaly_half[n_a])
                rc = dn_error_set(err, DN_EINVAL, "features lack the half-scale map (extract with scales 2)");
            anomaly[n_a++] = hi->anomaly[i];
        }
    const dn_feats *f0 = set->normal[fit[0]];
    if (!rc && o->tail && !f0->tail_in.data)
        rc = dn_error_set(err, DN_EINVAL, "features lack the tail input (backbone without a tail)");
    if (!rc && o->tail) {
        dn_tail_data d = {hi->normal, n_fit, anomaly, n_a, f0->tail_in.h, f0->tail_in.w};
        dn_tail_opts to = o->tail_opts;
        to.seed = seed;
        to.deadline = o->deadline;
        to.cancel = o->cancel;
        rc = dn_tail_train(&hm->tail, &hm->head, &d, &to, err);
    } else if (!rc) {
        dn_head_data d = {hi->normal, n_fit, anomaly, n_a, hi->per,
                          two ? normal_half : NULL, two ? anomaly_half : NULL,
                          f0->final_half.h * f0->final_half.w};
        dn_head_opts ho = o->head;
        ho.seed = seed;
        ho.deadline = o->deadline;
        ho.cancel = o->cancel;
        rc = dn_head_train(&hm->head, &d, &ho, err);
    }
    free(normal_half);
    free(anomaly);
    return rc;
}

static int train_head(dn_model *m, const dn_backbone *bb, const dn_train_set *set, const head_inputs *hi,
                      const int *fit, int n_fit, const dn_train_opts *o, dn_error *err)
{
    progress(o, o->tail ? "head + tail" : "head", 0, 1);
    int rc = fit_head(m, bb, set, hi, fit, n_fit, 0, 0, o, o->seed, err);
    progress(o, o->tail ? "head + tail" : "head", 1, 1);
    return rc;
}

/* The defect classifier's training rows: every stride-16 patch of every masked anomaly
 * copy, labelled with the share of it inside the mask (soft labels: a patch on a defect's
 * edge counts for what it holds; hard labels at 0.5 gave the same pooled pixel AUROC on
 * magnetic_tile but per-image localisation 0.905 instead of 0.921), then patches of the
 * fit normals (label 0), every stride-th, so at most DN_SEG_MAX_NEGATIVES. */
typedef struct seg_rows {
    float *x, *y;
    size_t n;    /* rows */
    size_t stride; /* between the normal patches taken */
    int dim, per;  /* inputs per row; patches per image */
} seg_rows;

/* Sizes the rows from the masks alone; returns the defect area (sum of the labels). */
static double size_seg_rows(const dn_train_set *set, int n_fit, seg_rows *r)
{
    size_t normal_patches = (size_t)n_fit * r->per;
    double defect = 0;
    r->stride = (normal_patches + DN_SEG_MAX_NEGATIVES - 1) / DN_SEG_MAX_NEGATIVES;
    r->n = (normal_patches + r->stride - 1) / r->stride;
    for (int a = 0; a < set->n_anomaly; a++) {
        const float *cells = set->anomaly_cells[a];
        for (size_t p = 0; cells && p < (size_t)set->n_aug * r->per; p++)
            defect += cells[p];
        r->n += cells ? (size_t)set->n_aug * r->per : 0;
    }
    return defect;
}

static void seg_row(seg_rows *r, size_t *row, const float *desc, float defect)
{
    memcpy(r->x + *row * r->dim, desc, (size_t)r->dim * sizeof *r->x);
    r->y[(*row)++] = defect;
}

/* The classifier's inputs for one image's features: those a head on the patches already
 * has (ready, may be NULL), else computed into desc (per x dim floats). NULL on error. */
static const float *seg_inputs_of(const dn_feats *f, const float *ready, const seg_rows *r, float *desc,
                                  dn_error *err)
{
    if (ready)
        return ready;
    if (dn_patch_input_floats(f) != (size_t)r->per * r->dim) {
        dn_error_set(err, DN_EINVAL, "features of different sizes in one training set");
        return NULL;
    }
    return dn_patch_inputs(f, desc, err) ? NULL : desc;
}

/* hi: the head's inputs; when they are patch inputs (hi->buf), the rows come from them. */
static int fill_seg_rows(const dn_train_set *set, const head_inputs *hi, const int *fit, int n_fit,
                         seg_rows *r, dn_error *err)
{
    float *desc = malloc((size_t)r->per * r->dim * sizeof *desc);
    int rc = desc ? DN_OK : dn_error_set(err, DN_ENOMEM, "out of memory for the defect classifier");
    size_t row = 0;
    for (int a = 0; a < set->n_anomaly * set->n_aug && !rc; a++) {
        const float *cells = set->anomaly_cells[a / set->n_aug], *in = NULL;
        if (!cells)
            continue;
        if (!(in = seg_inputs_of(set->anomaly[a], hi->buf ? hi->anomaly[a] : NULL, r, desc, err))) {
            rc = err->code;
            break;
        }
        cells += (size_t)(a % set->n_aug) * r->per;
        for (int p = 0; p < r->per; p++)
            seg_row(r, &row, in + (size_t)p * r->dim, cells[p]);
    }
    int described = -1; /* the fit normal whose inputs `in` holds */
    const float *in = NULL;
    for (size_t g = 0; !rc && g < (size_t)n_fit * r->per; g += r->stride) {
        int img = (int)(g / r->per);
        if (img != described &&
            !(in = seg_inputs_of(set->normal[fit[img]], hi->buf ? hi->normal[img] : NULL, r, desc, err))) {
            rc = err->code;
            break;
        }
        described = img;
        seg_row(r, &row, in + (g % r->per) * r->dim, 0);
    }
    free(desc);
    return rc;
}

/* The defect classifier of a fusion model whose labelled anomalies have masks with
 * enough defect patches; without them the model has none. */
static int train_seg(dn_model *m, const dn_train_set *set, const head_inputs *hi, const int *fit,
                     int n_fit, const dn_train_opts *o, dn_error *err)
{
    m->has_seg = 0;
    if (m->type != DN_HEAD_FUSION || !m->has_bank || !set->anomaly_cells)
        return DN_OK;
    const dn_feats *f0 = set->normal[fit[0]];
    seg_rows r = {NULL, NULL, 0, 1, 2 * m->bank.dim, f0->s16.h * f0->s16.w};
    if (size_seg_rows(set, n_fit, &r) < DN_SEG_MIN_DEFECT)
        return DN_OK;
    r.x = malloc(r.n * r.dim * sizeof *r.x);
    r.y = malloc(r.n * sizeof *r.y);
    int rc = r.x && r.y ? fill_seg_rows(set, hi, fit, n_fit, &r, err)
                        : dn_error_set(err, DN_ENOMEM, "out of memory for the defect classifier");
    dn_seg_opts so;
    dn_seg_opts_default(&so);
    so.deadline = o->deadline;
    so.cancel = o->cancel;
    progress(o, "defect classifier", 0, 1);
    if (!rc)
        rc = dn_seg_train(&m->seg, r.x, r.y, r.n, r.dim, &so, err);
    progress(o, "defect classifier", 1, 1);
    m->has_seg = !rc;
    free(r.x);
    free(r.y);
    return rc;
}

static dn_stat stat_of(const float *v, size_t n)
{
    double mu = dn_average(v, n), sd = dn_std(v, n);
    /* a floor keeps identical held-out scores from dividing by zero */
    double floor = 1e-6 * (fabs(mu) + 1.0);
    return (dn_stat){(float)mu, (float)(sd > floor ? sd : floor)};
}

/* Raw branch outputs of the held-out normals: image and patch statistics. */
typedef struct calib {
    dn_raw *raw;
    int n;
} calib;

static int calibrate_branches(dn_model *m, const dn_train_set *set, const int *hold, int n_hold,
                              calib *c, dn_error *err)
{
    c->raw = calloc((size_t)n_hold, sizeof *c->raw);
    c->n = n_hold;
    float *img_h = malloc((size_t)n_hold * sizeof(float)), *img_b = malloc((size_t)n_hold * sizeof(float));
    int rc = c->raw && img_h && img_b ? DN_OK : dn_error_set(err, DN_ENOMEM, "out of memory calibrating");
    for (int i = 0; !rc && i < n_hold; i++) {
        rc = dn_model_raw(m, set->normal[hold[i]], &c->raw[i], err);
        img_h[i] = c->raw[i].head;
        img_b[i] = c->raw[i].bank;
    }
    if (!rc) {
        m->img_head = stat_of(img_h, (size_t)n_hold);
        m->img_bank = stat_of(img_b, (size_t)n_hold);
    }
    free(img_h);
    free(img_b);
    return rc;
}

/* Head-branch image score of hm on one image. */
static int head_score(const dn_model *hm, const dn_feats *f, float *out, dn_error *err)
{
    dn_raw r;
    int rc = dn_model_raw(hm, f, &r, err);
    if (!rc)
        *out = r.head;
    dn_raw_free(&r);
    return rc;
}

/* The head's score of fa, standardised by its scores of the held-out normals (st). */
static int head_z(const dn_model *hm, const dn_stat *st, const dn_feats *fa, float *z, dn_error *err)
{
    float s = 0;
    int rc = head_score(hm, fa, &s, err);
    *z = (s - st->mu) / st->sigma;
    return rc;
}

static int held_out_stat(const dn_model *hm, const dn_train_set *set, const int *hold, int n_hold,
                         float *buf, dn_stat *st, dn_error *err)
{
    int rc = DN_OK;
    for (int i = 0; !rc && i < n_hold; i++)
        rc = head_score(hm, set->normal[hold[i]], &buf[i], err);
    *st = stat_of(buf, (size_t)n_hold);
    return rc;
}

/* Median standardised score of the labelled anomalies when they were NOT used for
 * training: the head is retrained without each one (leave-one-out), or without each of
 * DN_FUSION_MAX_FOLDS folds when there are more anomalies, so that the cost stays at most
 * that many head fits however many anomalies the inspectors have sent; the bank never
 * sees anomalies. The median, not the mean: a few anomalies far out would otherwise make
 * a branch look better than it ranks (the head on magnetic_tile). */
static int loo_anomaly_medians(const dn_model *m, const dn_backbone *bb, const dn_train_set *set,
                               const head_inputs *hi, const int *fit, int n_fit, const int *hold,
                               int n_hold, const dn_train_opts *o, double *mu, dn_error *err)
{
    int k = set->n_anomaly, folds = k < DN_FUSION_MAX_FOLDS ? k : DN_FUSION_MAX_FOLDS;
    float *buf = malloc((size_t)n_hold * sizeof *buf), *zh = malloc((size_t)k * sizeof *zh);
    float *zb = malloc((size_t)k * sizeof *zb);
    int rc = buf && zh && zb ? DN_OK : dn_error_set(err, DN_ENOMEM, "out of memory");
    for (int f = 0; !rc && f < folds; f++) {
        dn_model hm;
        dn_model_init(&hm);
        dn_stat st;
        rc = fit_head(&hm, bb, set, hi, fit, n_fit, f, folds, o, o->seed + 1 + (uint64_t)f, err);
        if (!rc)
            rc = held_out_stat(&hm, set, hold, n_hold, buf, &st, err);
        for (int a = f; !rc && a < k; a += folds)
            rc = head_z(&hm, &st, set->anomaly[(size_t)a * set->n_aug], &zh[a], err);
        dn_model_free(&hm);
        progress(o, "fusion weights", f + 1, folds);
    }
    for (int a = 0; !rc && a < k; a++) {
        dn_raw r;
        if (!(rc = dn_model_raw(m, set->anomaly[(size_t)a * set->n_aug], &r, err))) {
            zb[a] = (r.bank - m->img_bank.mu) / m->img_bank.sigma;
            dn_raw_free(&r);
        }
    }
    if (!rc) {
        mu[0] = dn_quantile(zh, (size_t)k, 0.5);
        mu[1] = dn_quantile(zb, (size_t)k, 0.5);
    }
    free(buf), free(zh), free(zb);
    return rc;
}

/* Fusion weights from the data: the linear discriminant w = S^-1 mu, where S is the
 * covariance of the two standardised branch scores over held-out normals and mu the median
 * leave-one-out scores of the labelled anomalies; negative parts are dropped, and the
 * weights normalised to sum 1. A branch that does not separate unseen anomalies from
 * normals gets little or no weight, so the fusion does not lose to its better part. With
 * fewer than two labelled anomalies nothing can validate the head: weight 0. */
static int fusion_weights(dn_model *m, const dn_backbone *bb, const dn_train_set *set,
                          const head_inputs *hi, const int *fit, int n_fit, const int *hold,
                          const calib *c, const dn_train_opts *o, dn_error *err)
{
    if (!m->has_head || !m->has_bank)
        return DN_OK;
    if (set->n_anomaly < 2) {
        m->w_head = 0.0f;
        m->w_bank = 1.0f;
        return DN_OK;
    }
    double mu[2], s00 = 0, s01 = 0, s11 = 0;
    int rc = loo_anomaly_medians(m, bb, set, hi, fit, n_fit, hold, c->n, o, mu, err);
    if (rc)
        return rc;
    for (int i = 0; i < c->n; i++) {
        double zh = (c->raw[i].head - m->img_head.mu) / m->img_head.sigma;
        double zb = (c->raw[i].bank - m->img_bank.mu) / m->img_bank.sigma;
        s00 += zh * zh, s01 += zh * zb, s11 += zb * zb;
    }
    /* shrinkage towards the identity: a few dozen held-out normals estimate S poorly */
    s00 = 0.5 * s00 / c->n + 0.5, s11 = 0.5 * s11 / c->n + 0.5, s01 = 0.5 * s01 / c->n;
    double det = s00 * s11 - s01 * s01;
    double wh = (s11 * mu[0] - s01 * mu[1]) / det, wb = (s00 * mu[1] - s01 * mu[0]) / det;
    wh = wh > 0 ? wh : 0, wb = wb > 0 ? wb : 0;
    if (wh + wb <= 0)
        wh = wb = 1;
    m->w_head = (float)(wh / (wh + wb));
    m->w_bank = (float)(wb / (wh + wb));
    return DN_OK;
}

/* Patch statistics of each branch over every held-out patch. */
static int patch_stats(dn_model *m, const calib *c, dn_error *err)
{
    size_t nh = (size_t)c->n * c->raw[0].hf * c->raw[0].wf, nb = (size_t)c->n * c->raw[0].h16 * c->raw[0].w16;
    float *ph = malloc((nh + 1) * sizeof *ph), *pb = malloc((nb + 1) * sizeof *pb);
    if (!ph || !pb) {
        free(ph), free(pb);
        return dn_error_set(err, DN_ENOMEM, "out of memory calibrating patches");
    }
    size_t per_h = nh / c->n, per_b = nb / c->n;
    for (int i = 0; i < c->n; i++) {
        if (m->has_head)
            memcpy(ph + i * per_h, c->raw[i].head_patches, per_h * sizeof *ph);
        if (m->has_bank)
            memcpy(pb + i * per_b, c->raw[i].bank_patches, per_b * sizeof *pb);
    }
    m->patch_head = m->has_head ? stat_of(ph, nh) : (dn_stat){0, 1};
    m->patch_bank = m->has_bank ? stat_of(pb, nb) : (dn_stat){0, 1};
    if (m->has_seg) {
        for (int i = 0; i < c->n; i++)
            memcpy(pb + i * per_b, c->raw[i].seg_patches, per_b * sizeof *pb);
        m->patch_seg = stat_of(pb, nb);
        for (int i = 0; i < c->n; i++)
            for (size_t p = 0; p < per_b; p++)
                pb[i * per_b + p] = dn_model_patch_sum(m, c->raw[i].bank_patches[p], c->raw[i].seg_patches[p]);
        m->patch_sum = stat_of(pb, nb);
    }
    free(ph);
    free(pb);
    return DN_OK;
}

/* Fused scores of the held-out normals define the final standardisation, the p-values
 * and the heatmap range (from their patch maps). */
static int calibrate_fused(dn_model *m, const calib *c, dn_error *err)
{
    float *fused = malloc((size_t)c->n * sizeof *fused);
    if (!fused)
        return dn_error_set(err, DN_ENOMEM, "out of memory calibrating");
    m->img_fused = (dn_stat){0, 1};
    for (int i = 0; i < c->n; i++)
        fused[i] = dn_model_fuse(m, &c->raw[i], NULL, NULL);
    m->img_fused = stat_of(fused, (size_t)c->n);
    for (int i = 0; i < c->n; i++)
        fused[i] = (fused[i] - m->img_fused.mu) / m->img_fused.sigma;
    free(m->cal_scores);
    m->cal_scores = fused;
    m->n_cal = c->n;
    for (int i = 1; i < c->n; i++) /* ascending, for the p-values (insertion: n is small) */
        for (int j = i; j > 0 && fused[j] < fused[j - 1]; j--) {
            float t = fused[j];
            fused[j] = fused[j - 1];
            fused[j - 1] = t;
        }
    return DN_OK;
}

static int map_range(dn_model *m, const dn_train_set *set, const int *hold, int n_hold, dn_error *err)
{
    const dn_feats *f0 = set->normal[hold[0]];
    size_t per = (size_t)f0->s16.h * f0->s16.w, n = per * n_hold;
    float *all = malloc(n * sizeof *all);
    if (!all)
        return dn_error_set(err, DN_ENOMEM, "out of memory calibrating the heatmap");
    int rc = DN_OK;
    for (int i = 0; i < n_hold && !rc; i++) {
        dn_score s;
        rc = dn_model_score(m, set->normal[hold[i]], &s, err);
        if (!rc)
            memcpy(all + i * per, s.patches, per * sizeof *all);
        dn_score_free(&s);
    }
    if (!rc) {
        /* a normal image stays below lo almost everywhere: not painted red */
        m->map_lo = dn_quantile(all, n, 0.99);
        float spread = m->map_lo - dn_quantile(all, n, 0.5);
        m->map_hi = m->map_lo + 3.0f * (spread > 0.5f ? spread : 0.5f);
    }
    free(all);
    return rc;
}

static int set_threshold(dn_model *m, const dn_train_set *set, const dn_train_opts *o, dn_error *err)
{
    if (o->rule == DN_THRESHOLD_QUANTILE || set->n_anomaly == 0) {
        m->threshold = dn_quantile(m->cal_scores, (size_t)m->n_cal, o->quantile);
        return DN_OK;
    }
    int n = m->n_cal + set->n_anomaly;
    float *scores = malloc((size_t)n * sizeof *scores);
    uint8_t *labels = malloc((size_t)n);
    int rc = scores && labels ? DN_OK : dn_error_set(err, DN_ENOMEM, "out of memory for the threshold");
    for (int i = 0; !rc && i < n; i++) {
        labels[i] = i >= m->n_cal;
        if (!labels[i]) {
            scores[i] = m->cal_scores[i];
            continue;
        }
        dn_raw r;
        rc = dn_model_raw(m, set->anomaly[(size_t)(i - m->n_cal) * set->n_aug], &r, err);
        if (!rc)
            scores[i] = dn_model_fuse(m, &r, NULL, NULL);
        dn_raw_free(&r);
    }
    double f1;
    if (!rc)
        m->threshold = dn_max_f1_threshold(scores, labels, (size_t)n, &f1);
    free(scores);
    free(labels);
    return rc;
}

static void describe(dn_model *m, const dn_train_set *set, int n_fit, int n_hold,
                     const dn_train_opts *o, double seconds)
{
    snprintf(m->info, sizeof m->info,
             "{\"training_set_sha256\":\"%s\",\"normal_images\":%d,\"fit_normals\":%d,"
             "\"calibration_normals\":%d,\"labelled_anomalies\":%d,\"augmentations\":%d,"
             "\"seed\":%llu,\"threshold_rule\":\"%s\",\"fusion_weights\":{\"devnet\":%.4f,"
             "\"normality\":%.4f},\"training_seconds\":%.3f,\"created\":%lld}",
             set->hash, set->n_normal, n_fit, n_hold, set->n_anomaly, set->n_aug,
             (unsigned long long)o->seed,
             o->rule == DN_THRESHOLD_QUANTILE || !set->n_anomaly ? "normal_quantile" : "max_f1",
             m->w_head, m->w_bank, seconds, (long long)time(NULL));
}

static int choose_type(dn_model *m, const dn_train_set *set, const dn_train_opts *o, dn_error *err)
{
    m->type = o->type;
    if (set->n_anomaly == 0 && o->type == DN_HEAD_DEVNET)
        return dn_error_set(err, DN_EINVAL, "the devnet head needs labelled anomalies (none given)");
    if (set->n_anomaly == 0)
        m->type = DN_HEAD_NORMALITY; /* zero-shot: the normality branch alone */
    m->has_head = m->type != DN_HEAD_NORMALITY;
    m->has_bank = m->type != DN_HEAD_DEVNET;
    m->w_head = m->has_head ? 1.0f : 0.0f;
    m->w_bank = m->has_bank ? 1.0f : 0.0f;
    return DN_OK;
}

int dn_train(dn_model *m, const dn_train_set *set, const dn_train_opts *opts, const dn_backbone *bb,
             dn_error *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dn_train_opts budgeted = *opts;
    budgeted.deadline = opts->budget_s > 0 ? dn_clock_now() + opts->budget_s : 0;
    const dn_train_opts *o = &budgeted;
    dn_model_free(m);
    if (set->n_normal < 1)
        return dn_error_set(err, DN_EINVAL, "no normal training images");
    int *order = malloc((size_t)set->n_normal * sizeof *order), n_fit;
    if (!order)
        return dn_error_set(err, DN_ENOMEM, "out of memory");
    int n_hold = split_normals(set->n_normal, o->holdout, o->seed, order, &n_fit);
    const int *fit = order, *hold = n_hold ? order + n_fit : order;
    n_hold = n_hold ? n_hold : n_fit;
    calib c = {0};
    head_inputs hi = {0};
    m->size = o->size;
    snprintf(m->backbone_sha256, sizeof m->backbone_sha256, "%s", bb->sha256);
    int rc = choose_type(m, set, o, err);
    if (!rc && m->has_bank && !(rc = within_budget(o, "the memory bank", err)))
        rc = build_bank(m, set, fit, n_fit, o, err);
    if (!rc && m->has_head && !(rc = within_budget(o, "the head", err)) &&
        !(rc = head_inputs_init(&hi, set, fit, n_fit, o, err)))
        rc = train_head(m, bb, set, &hi, fit, n_fit, o, err);
    if (!rc && !(rc = within_budget(o, "the defect classifier", err)))
        rc = train_seg(m, set, &hi, fit, n_fit, o, err);
    if (!rc)
        rc = calibrate_branches(m, set, hold, n_hold, &c, err);
    if (!rc)
        rc = fusion_weights(m, bb, set, &hi, fit, n_fit, hold, &c, o, err);
    head_inputs_free(&hi);
    if (!rc)
        rc = patch_stats(m, &c, err);
    if (!rc)
        rc = calibrate_fused(m, &c, err);
    if (!rc)
        rc = map_range(m, set, hold, n_hold, err);
    if (!rc)
        rc = set_threshold(m, set, o, err);
    for (int i = 0; c.raw && i < c.n; i++)
        dn_raw_free(&c.raw[i]);
    free(c.raw);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!rc)
        describe(m, set, n_fit, n_hold, o, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(order);
    if (rc)
        dn_model_free(m);
    return rc;
}

void dn_train_set_hash(char (*sha)[65], int n, char out[65])
{
    dn_sha256 h;
    uint8_t d[32];
    dn_sha256_init(&h);
    for (int i = 0; i < n; i++)
        dn_sha256_update(&h, sha[i], 64);
    dn_sha256_final(&h, d);
    dn_sha256_hex(d, out);
}

static const dn_feats **pointers(const dn_feats *f, int n)
{
    const dn_feats **p = malloc(((size_t)n + 1) * sizeof *p);
    for (int i = 0; p && i < n; i++)
        p[i] = &f[i];
    return p;
}

int dn_train_feats(dn_model *m, const dn_feats *normal, int n_normal, const dn_feats *anomaly,
                   int n_anomaly, const float *const *cells, const char *hash,
                   const dn_train_opts *o, const dn_backbone *bb, dn_error *err)
{
    const dn_feats **np = pointers(normal, n_normal);
    const dn_feats **ap = pointers(anomaly, n_anomaly * DN_AUGMENTATIONS);
    int rc = np && ap ? DN_OK : dn_error_set(err, DN_ENOMEM, "out of memory");
    if (!rc) {
        dn_train_set set = {np, n_normal, ap, n_anomaly, DN_AUGMENTATIONS, "", cells};
        snprintf(set.hash, sizeof set.hash, "%s", hash);
        rc = dn_train(m, &set, o, bb, err);
    }
    free(np);
    free(ap);
    return rc;
}

int dn_train_mask_cells(const char *mask_path, int grid, float *out, dn_error *err)
{
    dn_image mask;
    dn_image_init(&mask);
    int rc = dn_image_load(&mask, mask_path, NULL, err);
    if (!rc)
        rc = dn_seg_mask_cells(&mask, grid, grid, out, err);
    dn_image_free(&mask);
    for (int aug = 1; !rc && aug < DN_AUGMENTATIONS; aug++)
        dn_dihedral(out, grid, 1, aug, out + (size_t)aug * grid * grid);
    return rc;
}

/* Watches the anomaly list through dn_extractor_files, whose callbacks share one
 * context: remembers which files it left out (it reports paths[i] itself) and forwards
 * both callbacks to the caller's. */
typedef struct file_watch {
    const dn_train_files *files;
    const dn_train_opts *o;
    char *const *paths;
    int n;
    uint8_t *gone;
} file_watch;

static void watch_skip(void *ctx, const char *path, const char *why)
{
    file_watch *w = ctx;
    for (int i = 0; w->gone && i < w->n; i++)
        if (w->paths[i] == path)
            w->gone[i] = 1;
    if (w->files->skipped)
        w->files->skipped(w->o->ctx, path, why);
}

static void watch_progress(void *ctx, const char *stage, int done, int total)
{
    file_watch *w = ctx;
    if (w->o->progress)
        w->o->progress(w->o->ctx, stage, done, total);
}

/* Features of one list of files (the skipped ones reported and, with gone, marked), then
 * the budget check. */
static int files_features(dn_extractor *x, char *const *paths, int n, int n_aug, const char *stage,
                          const dn_train_files *files, const dn_train_opts *o, dn_feats **out,
                          char (*sha)[65], int *kept, uint8_t *gone, dn_error *err)
{
    *kept = 0;
    if (!n)
        return DN_OK;
    file_watch w = {files, o, paths, n, gone};
    dn_files_opts fo = {n_aug, 1, stage, watch_progress, watch_skip, &w};
    if (dn_extractor_files(x, paths, n, &fo, out, sha, kept)) {
        *err = x->err;
        return err->code;
    }
    return o->cancel && *o->cancel ? dn_error_set(err, DN_ETIMEDOUT, "cancelled reading features") : DN_OK;
}

/* The mask cells of the kept anomalies (those not gone), grid x grid per copy; an
 * unreadable mask is reported like an unreadable image and that anomaly trains without
 * one. *cells stays NULL when no anomaly has a mask. */
static int mask_cells(const dn_train_files *files, const dn_train_opts *o, const uint8_t *gone,
                      int grid, float ***cells, dn_error *err)
{
    *cells = NULL;
    if (!files->anomaly_mask)
        return DN_OK;
    size_t per = (size_t)DN_AUGMENTATIONS * grid * grid;
    float **c = calloc((size_t)files->n_anomaly + 1, sizeof *c);
    if (!c)
        return dn_error_set(err, DN_ENOMEM, "out of memory for the masks");
    for (int i = 0, k = 0; i < files->n_anomaly; i++) {
        if (gone[i])
            continue;
        const char *path = files->anomaly_mask[i];
        dn_error merr;
        dn_error_clear(&merr);
        if (path && !(c[k] = malloc(per * sizeof **c))) {
            *cells = c; /* the caller frees what was made */
            return dn_error_set(err, DN_ENOMEM, "out of memory for the masks");
        }
        if (path && dn_train_mask_cells(path, grid, c[k], &merr)) {
            free(c[k]);
            c[k] = NULL;
            if (files->skipped)
                files->skipped(o->ctx, path, merr.msg);
        }
        k++;
    }
    *cells = c;
    return DN_OK;
}

int dn_train_from_files(dn_model *m, dn_extractor *x, dn_train_files *files, const dn_train_opts *o,
                        dn_error *err)
{
    int nn = files->n_normal, na = files->n_anomaly;
    char (*sha)[65] = calloc((size_t)nn + na + 1, sizeof *sha);
    uint8_t *gone = calloc((size_t)na + 1, 1);
    dn_feats *normal = NULL, *anomaly = NULL;
    float **cells = NULL;
    int rc = sha && gone ? DN_OK : dn_error_set(err, DN_ENOMEM, "out of memory");
    if (!rc)
        rc = files_features(x, files->normal, nn, 1, "normal images", files, o, &normal, sha,
                            &files->kept_normal, NULL, err);
    if (!rc)
        rc = files_features(x, files->anomaly, na, DN_AUGMENTATIONS, "anomalies x8", files, o,
                            &anomaly, sha + files->kept_normal, &files->kept_anomaly, gone, err);
    int kn = files->kept_normal, ka = files->kept_anomaly;
    if (!rc && ka)
        rc = mask_cells(files, o, gone, anomaly[0].s16.h, &cells, err);
    if (!rc) {
        char hash[65];
        dn_train_set_hash(sha, kn + ka, hash);
        rc = dn_train_feats(m, normal, kn, anomaly, ka, (const float *const *)cells, hash, o, x->bb, err);
    }
    for (int i = 0; cells && i < ka; i++)
        free(cells[i]);
    free(cells);
    dn_feats_free_all(normal, kn);
    dn_feats_free_all(anomaly, ka * DN_AUGMENTATIONS);
    free(sha);
    free(gone);
    return rc;
}
