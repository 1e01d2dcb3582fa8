/* The JSON answers of api/: field names and types, rounding, boxes in photo pixels. */
#include "test_util.h"

#include "dn_api.h"

#include <math.h>

static void fake_model(dn_model *m)
{
    dn_model_init(m);
    m->type = DN_HEAD_FUSION;
    m->has_head = m->has_bank = 1;
    m->threshold = 2.5f;
    m->img_fused = (dn_stat){0.25f, 1.5f};
    m->n_cal = 40;
    m->size = 224;
    snprintf(m->info, sizeof m->info, "{\"normal_images\":12}");
}

Test(api, score_json_has_the_documented_shape)
{
    dn_model m;
    fake_model(&m);
    float patches[6] = {0.1f, 7.25f, -1.0f, 3.333333f, 0.0f, 2.0f};
    dn_score s = {.score = 7.123456f, .p_value = 0.0243902f, .is_anomaly = 1, .head_z = 5.0f,
                  .bank_z = 6.0f, .rows = 2, .cols = 3, .patches = patches, .top = {1, 3, 5}, .n_top = 3};
    cJSON *o = dn_api_score_json(&m, &s, 300, 200, 2);
    cr_assert_float_eq(cJSON_GetObjectItem(o, "score")->valuedouble, 7.1235, 1e-9);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "is_anomaly")));
    cr_assert_float_eq(cJSON_GetObjectItem(o, "threshold")->valuedouble, 2.5, 1e-9);
    cr_assert_float_eq(cJSON_GetObjectItem(o, "p_value")->valuedouble, 0.0244, 1e-9);
    cJSON *ex = cJSON_GetObjectItem(o, "explanation");
    cr_assert_float_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(ex, "reference"), "std")->valuedouble, 1.5, 1e-9);
    cr_assert_float_eq(cJSON_GetObjectItem(ex, "deviation_sigma")->valuedouble, 7.1235, 1e-9);
    cJSON *top = cJSON_GetObjectItem(ex, "top_patches");
    cr_assert_eq(cJSON_GetArraySize(top), 2, "n_top limits the list");
    /* patch 1 = row 0, col 1 of a 2x3 grid over 300x200: x 100..200, y 0..100 */
    cJSON *box = cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "box");
    cr_assert_eq(cJSON_GetObjectItem(box, "x0")->valueint, 100);
    cr_assert_eq(cJSON_GetObjectItem(box, "x1")->valueint, 200);
    cr_assert_eq(cJSON_GetObjectItem(box, "y0")->valueint, 0);
    cr_assert_eq(cJSON_GetObjectItem(box, "y1")->valueint, 100);
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(ex, "text"));
    cr_assert(text && strstr(text, "7.1 sigma above normal") && strstr(text, "anomalous"), "%s", text);
    cJSON *ps = cJSON_GetObjectItem(o, "patch_scores");
    cr_assert_eq(cJSON_GetObjectItem(ps, "rows")->valueint, 2);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ps, "values")), 6);
    cr_assert_float_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(ps, "values"), 3)->valuedouble, 3.3333, 1e-9);
    cJSON_Delete(o);
}

Test(api, model_and_error_json)
{
    dn_model m;
    fake_model(&m);
    cJSON *o = dn_api_model_json(&m);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "head_type")), "fusion");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "training"), "normal_images")->valueint, 12);
    cJSON_Delete(o);
    cJSON *e = dn_api_error_json("bad_format", "not a JPEG or PNG image");
    cJSON *inner = cJSON_GetObjectItem(e, "error");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(inner, "code")), "bad_format");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(inner, "message")), "not a JPEG or PNG image");
    cJSON_Delete(e);
    cr_assert_eq(dn_api_round(NAN), 0.0, "non-finite numbers must not reach JSON as null");
    cr_assert_float_eq(dn_api_round(-1.23456), -1.2346, 1e-12);
}
