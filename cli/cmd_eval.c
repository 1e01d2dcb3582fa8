/* devnet eval: the evaluation protocol of the DevNet paper (../shared/README.md) on an
 * MVTec-layout folder: per seed, K labelled anomalies are drawn from the test anomalies,
 * removed from the test set and used for training with all of train/good; the rest of
 * the test set is scored. Image AUROC and AUC-PR; where masks exist, the pooled pixel
 * AUROC (PatchCore) and the DevNet paper's per-anomalous-image AUROC. */
#include "cli.h"

#include "dn_clock.h"
#include "dn_dataset.h"
#include "dn_heatmap.h"
#include "dn_metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_MAX_SEEDS 32
#define EVAL_TIMED_IMAGES 20
#define EVAL_PIXEL_SIGMA 4.0f

typedef struct eval_args {
    cli_model_args m;
    const char *json;
    uint64_t seeds[EVAL_MAX_SEEDS];
    int n_seeds;
} eval_args;

typedef struct seed_result {
    double auroc, aupr, pixel, seg, train_s;
} seed_result;

typedef struct eval_ctx {
    const eval_args *a;
    const dn_backbone *bb;
    dn_extractor *x;
    dn_dataset d;
    dn_feats *train, *test;
} eval_ctx;

static int parse_seeds(const char *s, eval_args *a)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    a->n_seeds = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        long v;
        if (a->n_seeds == EVAL_MAX_SEEDS || cli_int(tok, 0, 1L << 40, &v))
            return -1;
        a->seeds[a->n_seeds++] = (uint64_t)v;
    }
    return a->n_seeds ? 0 : -1;
}

static int parse_eval(int argc, char **argv, eval_args *a)
{
    for (int i = 1; i < argc; i++) {
        int used = cli_model_option(argc, argv, &i, &a->m);
        if (used < 0)
            return CLI_USAGE;
        if (used)
            continue;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--json") && v)
            a->json = argv[++i];
        else if (!strcmp(argv[i], "--seeds") && v && !parse_seeds(v, a))
            i++;
        else
            return cli_usage("eval: unexpected or bad argument '%s'", argv[i]);
    }
    return a->m.data ? CLI_OK : cli_usage("eval needs --data DIR");
}

/* Pixel scores of one test image at its mask's (or photo's) size; mask 0/1 alongside. */
static int pixel_maps(const dn_sample *smp, const dn_feats *f, const dn_score *s, float **map,
                      uint8_t **mask, size_t *n, dn_error *err)
{
    dn_image m;
    dn_image_init(&m);
    int rc = smp->mask_path ? dn_image_load(&m, smp->mask_path, NULL, err) : DN_OK;
    int w = smp->mask_path ? m.width : f->photo_w, h = smp->mask_path ? m.height : f->photo_h;
    *n = (size_t)w * h;
    *map = rc ? NULL : malloc(*n * sizeof **map);
    *mask = rc ? NULL : calloc(*n, 1);
    if (!rc && (!*map || !*mask))
        rc = dn_error_set(err, DN_ENOMEM, "out of memory for a %dx%d mask", w, h);
    if (!rc)
        rc = dn_heatmap_render(s->patches, s->rows, s->cols, w, h, EVAL_PIXEL_SIGMA, *map, err);
    for (size_t i = 0; !rc && smp->mask_path && i < *n; i++)
        (*mask)[i] = m.rgb[3 * i] > 127;
    dn_image_free(&m);
    return rc;
}

static int score_pixels(const eval_ctx *c, int idx, const dn_score *s, dn_auroc_acc *acc,
                        double *seg_sum, int *seg_n, dn_error *err)
{
    const dn_sample *smp = &c->d.test[idx];
    float *map = NULL;
    uint8_t *mask = NULL;
    size_t n = 0;
    int rc = pixel_maps(smp, &c->test[idx], s, &map, &mask, &n, err);
    if (!rc)
        rc = dn_auroc_acc_add(acc, map, mask, n, err);
    if (!rc && smp->anomalous && smp->mask_path) {
        double a = dn_auroc(map, mask, n);
        if (!isnan(a)) {
            *seg_sum += a;
            (*seg_n)++;
        }
    }
    free(map);
    free(mask);
    return rc;
}

/* Scores the remaining test images; fills the image metrics and, with masks, the pixel ones. */
static int score_rest(const eval_ctx *c, const dn_model *m, const int *rest, int n_rest, seed_result *r)
{
    float *scores = malloc((size_t)n_rest * sizeof *scores);
    uint8_t *labels = malloc((size_t)n_rest);
    dn_auroc_acc acc;
    dn_auroc_acc_init(&acc);
    dn_error err;
    dn_error_clear(&err);
    double seg_sum = 0;
    int seg_n = 0, rc = scores && labels ? DN_OK : dn_error_set(&err, DN_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n_rest; i++) {
        dn_score s;
        rc = dn_model_score(m, &c->test[rest[i]], &s, &err);
        if (!rc) {
            scores[i] = s.score;
            labels[i] = (uint8_t)c->d.test[rest[i]].anomalous;
        }
        if (!rc && c->d.has_masks)
            rc = score_pixels(c, rest[i], &s, &acc, &seg_sum, &seg_n, &err);
        dn_score_free(&s);
        cli_progress(NULL, "scoring", i + 1, n_rest);
    }
    if (!rc) {
        r->auroc = dn_auroc(scores, labels, (size_t)n_rest);
        r->aupr = dn_aupr(scores, labels, (size_t)n_rest);
        r->pixel = c->d.has_masks ? dn_auroc_acc_result(&acc) : NAN;
        r->seg = seg_n ? seg_sum / seg_n : NAN;
    }
    dn_auroc_acc_free(&acc);
    free(scores);
    free(labels);
    return rc ? cli_fail("eval", &err) : CLI_OK;
}

/* Mask cells of the drawn anomalies that have masks (unless --no-masks); NULL without any. */
static int drawn_mask_cells(const eval_ctx *c, const int *drawn, int k, int grid, float ***out)
{
    *out = NULL;
    if (!c->d.has_masks || c->a->m.no_masks)
        return CLI_OK;
    float **cells = calloc((size_t)k, sizeof *cells);
    int rc = cells ? CLI_OK : CLI_FAIL;
    for (int i = 0; !rc && i < k; i++) {
        const char *path = c->d.test[drawn[i]].mask_path;
        dn_error err;
        dn_error_clear(&err);
        if (!path)
            continue;
        cells[i] = malloc((size_t)DN_AUGMENTATIONS * grid * grid * sizeof **cells);
        if (!cells[i])
            rc = CLI_FAIL;
        else if (dn_train_mask_cells(path, grid, cells[i], &err))
            rc = cli_fail(path, &err);
    }
    *out = cells;
    return rc;
}

static int run_seed(const eval_ctx *c, uint64_t seed, seed_result *r, dn_model *m)
{
    int k = (int)c->a->m.shots, *drawn = malloc(((size_t)k + 1) * sizeof *drawn);
    int *rest = malloc(((size_t)c->d.n_test + 1) * sizeof *rest), n_rest = 0;
    char **paths = calloc((size_t)k + 1, sizeof *paths);
    dn_error err;
    dn_error_clear(&err);
    int rc = drawn && rest && paths ? DN_OK : dn_error_set(&err, DN_ENOMEM, "out of memory");
    if (!rc && dn_protocol_draw(&c->d, k, seed, drawn, rest, &n_rest, &err))
        rc = cli_fail(c->a->m.data, &err);
    for (int i = 0; !rc && i < k; i++)
        paths[i] = c->d.test[drawn[i]].path;
    dn_feats *anomaly = NULL;
    if (!rc && k)
        rc = cli_features(c->x, paths, k, DN_AUGMENTATIONS, "anomalies x8", &anomaly, NULL);
    float **cells = NULL;
    if (!rc && k)
        rc = drawn_mask_cells(c, drawn, k, anomaly[0].s16.h, &cells);
    dn_train_opts o = c->a->m.opts;
    o.seed = seed;
    double t0 = dn_clock_now();
    if (!rc)
        rc = dn_train_feats(m, c->train, c->d.n_train, anomaly, k, (const float *const *)cells, "eval",
                            &o, c->bb, &err)
                 ? cli_fail("train", &err)
                 : CLI_OK;
    r->train_s = dn_clock_now() - t0;
    if (!rc)
        rc = score_rest(c, m, rest, n_rest, r);
    dn_feats_free_all(anomaly, k * DN_AUGMENTATIONS);
    for (int i = 0; cells && i < k; i++)
        free(cells[i]);
    free(cells);
    free(drawn);
    free(rest);
    free(paths);
    return rc;
}

/* Decode + features + score of up to EVAL_TIMED_IMAGES test images, uncached: ms each. */
static double time_pipeline(const eval_ctx *c, const dn_model *m)
{
    int n = c->d.n_test < EVAL_TIMED_IMAGES ? c->d.n_test : EVAL_TIMED_IMAGES;
    double t0 = dn_clock_now();
    for (int i = 0; i < n; i++) {
        dn_image img;
        dn_score s;
        dn_image_init(&img);
        dn_score_init(&s);
        dn_error err;
        cli_score_file(m, c->x, c->d.test[i].path, &img, &s, &err);
        dn_score_free(&s);
        dn_image_free(&img);
    }
    return n ? (dn_clock_now() - t0) * 1e3 / n : 0;
}

static void mean_std(const seed_result *r, int n, size_t field, double *mean, double *std)
{
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&r[i] + field);
        s += v;
        s2 += v * v;
    }
    *mean = s / n;
    *std = n > 1 ? sqrt(fmax(0.0, s2 / n - *mean * *mean)) : 0.0;
}

static cJSON *stat_json(const seed_result *r, int n, size_t field)
{
    double mean, std;
    mean_std(r, n, field, &mean, &std);
    if (isnan(mean))
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mean", round(mean * 1e4) / 1e4);
    cJSON_AddNumberToObject(o, "std", round(std * 1e4) / 1e4);
    return o;
}

static int write_json(const eval_ctx *c, const dn_model *m, const seed_result *r, double ms)
{
    const eval_args *a = c->a;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dataset", c->d.name);
    cJSON_AddStringToObject(o, "head", dn_head_type_name(a->m.opts.type));
    cJSON_AddStringToObject(o, "trained_as", dn_head_type_name(m->type));
    cJSON_AddStringToObject(o, "head_input", dn_head_input_name(a->m.opts.head_input));
    cJSON_AddNumberToObject(o, "size", a->m.opts.size);
    cJSON_AddNumberToObject(o, "shots", (double)a->m.shots);
    cJSON *seeds = cJSON_AddArrayToObject(o, "seeds");
    for (int i = 0; i < a->n_seeds; i++)
        cJSON_AddItemToArray(seeds, cJSON_CreateNumber((double)a->seeds[i]));
    cJSON_AddItemToObject(o, "image_auroc", stat_json(r, a->n_seeds, offsetof(seed_result, auroc)));
    cJSON_AddItemToObject(o, "image_aupr", stat_json(r, a->n_seeds, offsetof(seed_result, aupr)));
    cJSON_AddItemToObject(o, "pixel_auroc", stat_json(r, a->n_seeds, offsetof(seed_result, pixel)));
    cJSON_AddItemToObject(o, "seg_auroc_per_image", stat_json(r, a->n_seeds, offsetof(seed_result, seg)));
    cJSON_AddItemToObject(o, "train_seconds", stat_json(r, a->n_seeds, offsetof(seed_result, train_s)));
    cJSON_AddNumberToObject(o, "ms_per_image", round(ms * 100) / 100);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = CLI_OK;
    FILE *f = strcmp(a->json, "-") ? fopen(a->json, "w") : stdout;
    if (!f || !text || fprintf(f, "%s\n", text) < 0)
        rc = CLI_FAIL;
    if (f && f != stdout && fclose(f))
        rc = CLI_FAIL;
    if (rc)
        fprintf(stderr, "devnet: cannot write %s\n", a->json);
    free(text);
    return rc;
}

/* A tab and the value (with +-std when std >= 0), or "-" where the metric does not apply. */
static void print_metric(double v, double std)
{
    if (isnan(v))
        fputs("\t-", stdout);
    else if (std < 0)
        printf("\t%.4f", v);
    else
        printf("\t%.4f+-%.4f", v, std);
}

static void print_table(const eval_ctx *c, const seed_result *r, double ms)
{
    const eval_args *a = c->a;
    int has_head = a->m.opts.type != DN_HEAD_NORMALITY;
    printf("dataset %s, head %s%s%s, size %d, shots %ld, %d seeds\n", c->d.name,
           dn_head_type_name(a->m.opts.type), has_head ? " on the " : "",
           has_head ? dn_head_input_name(a->m.opts.head_input) : "", a->m.opts.size, a->m.shots, a->n_seeds);
    printf("seed\timage_auroc\timage_aupr\tpixel_auroc\tseg_auroc\ttrain_s\n");
    for (int i = 0; i < a->n_seeds; i++) {
        printf("%llu", (unsigned long long)a->seeds[i]);
        double v[4] = {r[i].auroc, r[i].aupr, r[i].pixel, r[i].seg};
        for (int f = 0; f < 4; f++)
            print_metric(v[f], -1);
        printf("\t%.2f\n", r[i].train_s);
    }
    size_t fields[] = {offsetof(seed_result, auroc), offsetof(seed_result, aupr),
                       offsetof(seed_result, pixel), offsetof(seed_result, seg)};
    printf("mean+-std");
    for (int f = 0; f < 4; f++) {
        double mean, std;
        mean_std(r, a->n_seeds, fields[f], &mean, &std);
        print_metric(mean, std);
    }
    printf("\nms_per_image %.2f (decode + features + score)\n", ms);
}

static int load_all(eval_ctx *c)
{
    char **tp = malloc(((size_t)c->d.n_train + 1) * sizeof *tp), **sp = malloc(((size_t)c->d.n_test + 1) * sizeof *sp);
    int rc = tp && sp ? CLI_OK : CLI_FAIL;
    for (int i = 0; !rc && i < c->d.n_train; i++)
        tp[i] = c->d.train[i].path;
    for (int i = 0; !rc && i < c->d.n_test; i++)
        sp[i] = c->d.test[i].path;
    if (!rc)
        rc = cli_features(c->x, tp, c->d.n_train, 1, "train images", &c->train, NULL);
    if (!rc)
        rc = cli_features(c->x, sp, c->d.n_test, 1, "test images", &c->test, NULL);
    free(tp);
    free(sp);
    return rc;
}

static int evaluate(eval_ctx *c)
{
    seed_result r[EVAL_MAX_SEEDS];
    dn_model m;
    dn_model_init(&m);
    int rc = load_all(c);
    for (int i = 0; !rc && i < c->a->n_seeds; i++)
        rc = run_seed(c, c->a->seeds[i], &r[i], &m);
    if (!rc) {
        double ms = time_pipeline(c, &m);
        print_table(c, r, ms);
        if (c->a->json)
            rc = write_json(c, &m, r, ms);
    }
    dn_model_free(&m);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    char cache_buf[4096];
    eval_args a = {.m = {.backbone = "build/backbone.safetensors", .shots = 10}, .seeds = {1, 2, 3},
                   .n_seeds = 3};
    dn_train_opts_default(&a.m.opts);
    a.m.cache = cli_default_cache(cache_buf, sizeof cache_buf);
    int rc = parse_eval(argc, argv, &a);
    if (rc)
        return rc;
    dn_backbone bb;
    if (cli_backbone(&bb, a.m.backbone))
        return CLI_FAIL;
    dn_extractor x;
    eval_ctx c = {.a = &a, .bb = &bb, .x = &x};
    dn_dataset_init(&c.d);
    rc = dn_extractor_init(&x, &bb, a.m.opts.size, a.m.cache) ? cli_fail("features", &x.err) : CLI_OK;
    x.scales = a.m.opts.scales;
    if (!rc && dn_dataset_open(&c.d, a.m.data))
        rc = cli_fail(a.m.data, &c.d.err);
    if (!rc)
        rc = evaluate(&c);
    dn_feats_free_all(c.train, c.d.n_train);
    dn_feats_free_all(c.test, c.d.n_test);
    dn_dataset_free(&c.d);
    dn_extractor_free(&x);
    dn_backbone_free(&bb);
    return rc;
}
