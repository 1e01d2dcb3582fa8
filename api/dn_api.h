/* dn_api: the JSON shape of devnet's answers, shared by the CLI (`devnet score --json`)
 * and the service. Knows cJSON and the core types; nothing of HTTP. */
#ifndef DN_API_H
#define DN_API_H

#include "dn_model.h"

#include <cJSON.h>

/* A scored image as the API reports it: score (sigma units), is_anomaly, threshold,
 * p_value, explanation {reference {mean, std}, deviation_sigma, top_patches [{box
 * {x0, y0, x1, y1} in photo pixels, score}], text}, patch_scores {rows, cols, values}.
 * photo_w/photo_h: size of the original image, for the boxes. n_top: patches listed. */
cJSON *dn_api_score_json(const dn_model *m, const dn_score *s, int photo_w, int photo_h, int n_top);

/* The heatmap overlay of a scored image, as the CLI (`devnet score --heatmap`) and the
 * service draw it: the patch map blurred (Gaussian, DN_API_HEATMAP_SIGMA px) over the
 * photo in the model's normal range, with boxes around up to DN_API_HEATMAP_BOXES top
 * patches that lie above that range. Into a PNG in memory (*png malloc'd) or a file. */
#define DN_API_HEATMAP_SIGMA 4.0f
#define DN_API_HEATMAP_BOXES 3
int dn_api_heatmap_png(const dn_model *m, const dn_image *img, const dn_score *s, uint8_t **png,
                       size_t *png_len, dn_error *err);
int dn_api_heatmap_write(const dn_model *m, const dn_image *img, const dn_score *s, const char *path,
                         dn_error *err);

/* The model's description: head type, input size, threshold, backbone, training info. */
cJSON *dn_api_model_json(const dn_model *m);

/* {"error": {"code": code, "message": message}} */
cJSON *dn_api_error_json(const char *code, const char *message);

/* Rounds to 4 decimals for output (cJSON prints 17 significant digits otherwise). */
double dn_api_round(double v);

#endif
