#include "dn_api.h"

#include "dn_heatmap.h"

#include <math.h>
#include <stdio.h>

double dn_api_round(double v)
{
    return isfinite(v) ? round(v * 1e4) / 1e4 + 0.0 : 0.0; /* + 0.0: no "-0" */
}

static cJSON *box_json(dn_box b)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "x0", b.x0);
    cJSON_AddNumberToObject(o, "y0", b.y0);
    cJSON_AddNumberToObject(o, "x1", b.x1);
    cJSON_AddNumberToObject(o, "y1", b.y1);
    return o;
}

static cJSON *top_patches_json(const dn_score *s, int photo_w, int photo_h, int n_top)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < s->n_top && i < n_top; i++) {
        int idx = s->top[i];
        cJSON *p = cJSON_CreateObject();
        cJSON_AddItemToObject(p, "box", box_json(dn_heatmap_cell_box(idx / s->cols, idx % s->cols,
                                                                     s->rows, s->cols, photo_w, photo_h)));
        cJSON_AddNumberToObject(p, "score", dn_api_round(s->patches[idx]));
        cJSON_AddItemToArray(arr, p);
    }
    return arr;
}

static void explanation_text(const dn_model *m, const dn_score *s, int photo_w, int photo_h,
                             char *out, size_t len)
{
    int n = snprintf(out, len, "%.1f sigma %s normal (threshold %.1f sigma): %s", fabs(s->score),
                     s->score >= 0 ? "above" : "below", m->threshold,
                     s->is_anomaly ? "anomalous" : "normal");
    if (s->is_anomaly && s->n_top > 0 && n > 0 && (size_t)n < len) {
        dn_box b = dn_heatmap_cell_box(s->top[0] / s->cols, s->top[0] % s->cols, s->rows, s->cols,
                                       photo_w, photo_h);
        snprintf(out + n, len - (size_t)n, "; strongest evidence around x %d-%d, y %d-%d", b.x0,
                 b.x1, b.y0, b.y1);
    }
}

cJSON *dn_api_score_json(const dn_model *m, const dn_score *s, int photo_w, int photo_h, int n_top)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "score", dn_api_round(s->score));
    cJSON_AddBoolToObject(o, "is_anomaly", s->is_anomaly);
    cJSON_AddNumberToObject(o, "threshold", dn_api_round(m->threshold));
    cJSON_AddNumberToObject(o, "p_value", dn_api_round(s->p_value));
    cJSON *ex = cJSON_AddObjectToObject(o, "explanation");
    cJSON *ref = cJSON_AddObjectToObject(ex, "reference");
    cJSON_AddNumberToObject(ref, "mean", dn_api_round(m->img_fused.mu));
    cJSON_AddNumberToObject(ref, "std", dn_api_round(m->img_fused.sigma));
    cJSON_AddNumberToObject(ref, "calibration_images", m->n_cal);
    cJSON_AddNumberToObject(ex, "deviation_sigma", dn_api_round(s->score));
    if (m->has_head)
        cJSON_AddNumberToObject(ex, "devnet_sigma", dn_api_round(s->head_z));
    if (m->has_bank)
        cJSON_AddNumberToObject(ex, "normality_sigma", dn_api_round(s->bank_z));
    cJSON_AddItemToObject(ex, "top_patches", top_patches_json(s, photo_w, photo_h, n_top));
    char text[256];
    explanation_text(m, s, photo_w, photo_h, text, sizeof text);
    cJSON_AddStringToObject(ex, "text", text);
    cJSON *ps = cJSON_AddObjectToObject(o, "patch_scores");
    cJSON_AddNumberToObject(ps, "rows", s->rows);
    cJSON_AddNumberToObject(ps, "cols", s->cols);
    cJSON *vals = cJSON_AddArrayToObject(ps, "values");
    for (int i = 0; i < s->rows * s->cols; i++)
        cJSON_AddItemToArray(vals, cJSON_CreateNumber(dn_api_round(s->patches[i])));
    return o;
}

/* The top patches worth a box: hotter than the normal range's top. */
static int heatmap_boxes(const dn_model *m, const dn_image *img, const dn_score *s, dn_box *boxes)
{
    int n = 0;
    for (; n < DN_API_HEATMAP_BOXES && n < s->n_top && s->patches[s->top[n]] > m->map_lo; n++)
        boxes[n] = dn_heatmap_cell_box(s->top[n] / s->cols, s->top[n] % s->cols, s->rows, s->cols,
                                       img->width, img->height);
    return n;
}

int dn_api_heatmap_png(const dn_model *m, const dn_image *img, const dn_score *s, uint8_t **png,
                       size_t *png_len, dn_error *err)
{
    dn_box boxes[DN_API_HEATMAP_BOXES];
    int n = heatmap_boxes(m, img, s, boxes);
    return dn_heatmap_png(img, s->patches, s->rows, s->cols, DN_API_HEATMAP_SIGMA, m->map_lo, m->map_hi,
                          boxes, n, png, png_len, err);
}

int dn_api_heatmap_write(const dn_model *m, const dn_image *img, const dn_score *s, const char *path,
                         dn_error *err)
{
    dn_box boxes[DN_API_HEATMAP_BOXES];
    int n = heatmap_boxes(m, img, s, boxes);
    return dn_heatmap_write(path, img, s->patches, s->rows, s->cols, DN_API_HEATMAP_SIGMA, m->map_lo,
                            m->map_hi, boxes, n, err);
}

cJSON *dn_api_model_json(const dn_model *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "head_type", dn_head_type_name(m->type));
    cJSON_AddStringToObject(o, "mode", m->has_head ? (m->has_bank ? "devnet+normality" : "devnet")
                                                   : "normality-only (no labelled anomalies)");
    cJSON_AddBoolToObject(o, "defect_classifier", m->has_seg);
    cJSON_AddNumberToObject(o, "input_size", m->size);
    cJSON_AddNumberToObject(o, "threshold", dn_api_round(m->threshold));
    cJSON_AddStringToObject(o, "backbone_sha256", m->backbone_sha256);
    cJSON_AddNumberToObject(o, "calibration_images", m->n_cal);
    if (m->has_head)
        cJSON_AddStringToObject(o, "head_input", dn_head_input_name(m->head_input));
    if (m->has_bank)
        cJSON_AddNumberToObject(o, "memory_bank_patches", m->bank.n);
    cJSON *info = cJSON_Parse(m->info);
    cJSON_AddItemToObject(o, "training", info ? info : cJSON_CreateObject());
    return o;
}

cJSON *dn_api_error_json(const char *code, const char *message)
{
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    return o;
}
