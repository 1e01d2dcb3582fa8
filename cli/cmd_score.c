/* devnet score: scores images with a trained model; text lines or JSON lines, and an
 * optional heatmap overlay PNG. */
#include "cli.h"

#include "dn_api.h"
#include "dn_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_TOP_PATCHES 5

typedef struct score_args {
    const char *model, *backbone, *heatmap;
    int json, first_image;
} score_args;

static int parse_score(int argc, char **argv, score_args *a)
{
    for (int i = 1; i < argc; i++) {
        int has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--model") && has_value)
            a->model = argv[++i];
        else if (!strcmp(argv[i], "--backbone") && has_value)
            a->backbone = argv[++i];
        else if (!strcmp(argv[i], "--heatmap") && has_value)
            a->heatmap = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            a->json = 1;
        else if (argv[i][0] == '-')
            return cli_usage("score: unknown option '%s'", argv[i]);
        else if (!a->first_image)
            a->first_image = i;
    }
    if (!a->model || !a->first_image)
        return cli_usage("score needs --model MODEL and at least one IMAGE");
    return CLI_OK;
}

/* OUT.png for one image; OUT-<n>.png for the n-th of several. */
static void heatmap_path(const char *base, int index, int several, char *out, size_t len)
{
    const char *dot = strrchr(base, '.');
    if (!several)
        snprintf(out, len, "%s", base);
    else if (dot)
        snprintf(out, len, "%.*s-%d%s", (int)(dot - base), base, index, dot);
    else
        snprintf(out, len, "%s-%d", base, index);
}

static void print_result(const score_args *a, const dn_model *m, const char *path, const dn_image *img,
                         const dn_score *s, double ms)
{
    if (!a->json) {
        printf("%s\t%.3f\t%s\t%.4f\n", path, s->score, s->is_anomaly ? "anomaly" : "normal", s->p_value);
        return;
    }
    cJSON *o = dn_api_score_json(m, s, img->width, img->height, SCORE_TOP_PATCHES);
    cJSON_AddStringToObject(o, "image", path);
    cJSON_AddNumberToObject(o, "timing_ms", dn_api_round(ms));
    char *text = cJSON_PrintUnformatted(o);
    if (text)
        puts(text);
    free(text);
    cJSON_Delete(o);
}

static int score_one(const score_args *a, const dn_model *m, dn_extractor *x, const char *path,
                     int index, int several)
{
    double t0 = dn_clock_now() * 1e3;
    dn_image img;
    dn_score s;
    dn_image_init(&img);
    dn_score_init(&s);
    dn_error err;
    dn_error_clear(&err);
    int rc = cli_score_file(m, x, path, &img, &s, &err);
    if (!rc)
        print_result(a, m, path, &img, &s, dn_clock_now() * 1e3 - t0);
    char out[4200];
    heatmap_path(a->heatmap ? a->heatmap : "", index, several, out, sizeof out);
    if (!rc && a->heatmap)
        rc = dn_api_heatmap_write(m, &img, &s, out, &err);
    dn_score_free(&s);
    dn_image_free(&img);
    return rc ? cli_fail(path, &err) : CLI_OK;
}

int cmd_score(int argc, char **argv)
{
    score_args a = {.backbone = "build/backbone.safetensors"};
    int rc = parse_score(argc, argv, &a);
    if (rc)
        return rc;
    dn_backbone bb;
    dn_model m;
    dn_extractor x;
    dn_backbone_init(&bb);
    dn_model_init(&m);
    memset(&x, 0, sizeof x);
    if (dn_backbone_load(&bb, a.backbone))
        rc = cli_fail(a.backbone, &bb.err);
    else if (dn_model_load(&m, a.model, &bb))
        rc = cli_fail(a.model, &m.err);
    else if (dn_extractor_init(&x, &bb, m.size, NULL))
        rc = cli_fail("features", &x.err);
    x.scales = m.scales;
    x.mid_only = dn_model_mid_only(&m);
    int several = argc - a.first_image > 1, setup_failed = rc;
    for (int i = a.first_image, n = 0; !setup_failed && i < argc; i++) {
        if (argv[i][0] == '-') {
            i += strcmp(argv[i], "--json") != 0; /* skip an option's value */
            continue;
        }
        rc |= score_one(&a, &m, &x, argv[i], n++, several);
    }
    dn_extractor_free(&x);
    dn_model_free(&m);
    dn_backbone_free(&bb);
    return rc;
}
