#include "dn_model.h"

#include "dn_heatmap.h"
#include "dn_metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"devnet", "normality", "fusion"};
static const char *const input_names[] = {"final", "patches"};

/* The index of s in names[n], or -1. */
static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

const char *dn_head_type_name(dn_head_type t)
{
    return (unsigned)t < 3 ? type_names[t] : "?";
}

int dn_head_type_parse(const char *s, dn_head_type *t)
{
    int i = name_index(type_names, 3, s);
    if (i >= 0)
        *t = (dn_head_type)i;
    return i < 0 ? -1 : 0;
}

const char *dn_head_input_name(dn_head_input in)
{
    return (unsigned)in < 2 ? input_names[in] : "?";
}

int dn_head_input_parse(const char *s, dn_head_input *in)
{
    int i = name_index(input_names, 2, s);
    if (i >= 0)
        *in = (dn_head_input)i;
    return i < 0 ? -1 : 0;
}

void dn_model_init(dn_model *m)
{
    memset(m, 0, sizeof *m);
    m->scales = 1;
    dn_bank_init(&m->bank);
}

void dn_model_free(dn_model *m)
{
    dn_head_free(&m->head);
    dn_tail_free(&m->tail);
    dn_bank_free(&m->bank);
    dn_seg_free(&m->seg);
    free(m->cal_scores);
    dn_error saved = m->err;
    dn_model_init(m);
    m->err = saved;
}

void dn_score_init(dn_score *s)
{
    memset(s, 0, sizeof *s);
}

void dn_score_free(dn_score *s)
{
    free(s->patches);
    dn_score_init(s);
}

void dn_raw_free(dn_raw *r)
{
    free(r->head_patches);
    free(r->bank_patches);
    free(r->seg_patches);
    memset(r, 0, sizeof *r);
}

/* Mean of the top 10 % patch values (at least one): the MIL pooling of both branches. */
static float topk_mean(const float *v, int n)
{
    return dn_topk_abs_mean(v, n, dn_topk_count(n), NULL);
}

/* The final map the head reads: the backbone's, or the fine-tuned tail's on the cached
 * tail input (acts then holds the tail's activations; the caller frees it). */
static const float *head_input(const dn_model *m, const dn_feats *f, float **acts, dn_error *err)
{
    *acts = NULL;
    if (!m->has_tail)
        return f->final.data;
    if (f->tail_in.c != m->tail.layer[0].cin || f->tail_in.h != f->final.h || f->tail_in.w != f->final.w) {
        dn_error_set(err, DN_EMISMATCH, "features lack the tail input this model needs");
        return NULL;
    }
    if (!(*acts = malloc(dn_tail_act_floats(&m->tail, f->tail_in.h, f->tail_in.w) * sizeof(float)))) {
        dn_error_set(err, DN_ENOMEM, "out of memory running the tail");
        return NULL;
    }
    return dn_tail_forward(&m->tail, f->tail_in.data, f->tail_in.h, f->tail_in.w, *acts);
}

/* The head's second scale: the image score becomes the mean of both scales' pooled scores
 * (the patch map stays the first scale's). */
static int add_half_scale(const dn_model *m, const dn_feats *f, dn_raw *r, dn_error *err)
{
    const dn_fmap *h = &f->final_half;
    if (!h->data || h->c != m->head.dim)
        return dn_error_set(err, DN_EMISMATCH, "features lack the half-scale map this two-scale model needs");
    int n = h->h * h->w;
    float *s = malloc((size_t)n * sizeof *s);
    if (!s)
        return dn_error_set(err, DN_ENOMEM, "out of memory scoring");
    r->head = 0.5f * (r->head + dn_head_score(&m->head, h->data, n, s));
    free(s);
    return DN_OK;
}

/* The head's patch scores |s_p| on an hw-patch grid of inputs, and their pooled score. */
static int head_patches(const dn_model *m, const float *in, int h, int w, dn_raw *r, dn_error *err)
{
    int n = h * w;
    r->hf = h;
    r->wf = w;
    if (!(r->head_patches = malloc((size_t)n * sizeof(float))))
        return dn_error_set(err, DN_ENOMEM, "out of memory scoring");
    dn_head_patch_scores(&m->head, in, n, r->head_patches);
    for (int i = 0; i < n; i++)
        r->head_patches[i] = fabsf(r->head_patches[i]);
    r->head = topk_mean(r->head_patches, n);
    return DN_OK;
}

static int raw_head_final(const dn_model *m, const dn_feats *f, dn_raw *r, dn_error *err)
{
    if (f->final.c != m->head.dim)
        return dn_error_set(err, DN_EMISMATCH, "features have %d channels, the head %d",
                            f->final.c, m->head.dim);
    float *acts;
    const float *final = head_input(m, f, &acts, err);
    if (!final)
        return err->code;
    int rc = head_patches(m, final, f->final.h, f->final.w, r, err);
    free(acts);
    return !rc && m->scales == 2 ? add_half_scale(m, f, r, err) : rc;
}

/* The normality branch on the image's descriptors, and the defect classifier on their
 * inputs in (dn_seg_inputs; it is used as scratch after that). */
static int raw_bank(const dn_model *m, const float *desc, float *in, dn_raw *r, dn_error *err)
{
    int n = r->h16 * r->w16;
    r->bank_patches = malloc((size_t)n * sizeof(float));
    r->seg_patches = m->has_seg ? malloc((size_t)n * sizeof(float)) : NULL;
    if (!r->bank_patches || (m->has_seg && !r->seg_patches))
        return dn_error_set(err, DN_ENOMEM, "out of memory scoring");
    int rc = dn_bank_nearest(&m->bank, desc, n, r->bank_patches, NULL, err);
    if (!rc && m->has_seg) {
        dn_seg_scores(&m->seg, in, n, r->seg_patches);
        dn_seg_smooth(r->seg_patches, r->h16, r->w16, in);
    }
    if (!rc)
        r->bank = topk_mean(r->bank_patches, n);
    return rc;
}

/* The image's patch descriptors into desc and, when in is not NULL, the patch inputs
 * (dn_patch_inputs) into in. */
static int describe_patches(const dn_feats *f, float *desc, float *in, dn_error *err)
{
    int rc = dn_patch_descriptors(&f->s8, &f->s16, desc, err);
    if (!rc && in)
        dn_seg_inputs(desc, f->s16.h * f->s16.w, f->s8.c + f->s16.c, in);
    return rc;
}

static int uses_patches(const dn_model *m)
{
    return m->has_head && m->head_input == DN_HEAD_INPUT_PATCHES;
}

/* The stride-16 patch descriptors (desc) and, for the defect classifier and a head on
 * the patches, each with its difference from the image mean (in). */
static int patch_inputs(const dn_model *m, const dn_feats *f, float **desc, float **in, dn_error *err)
{
    int n = f->s16.h * f->s16.w, dim = f->s8.c + f->s16.c;
    if (m->has_bank && dim != m->bank.dim)
        return dn_error_set(err, DN_EMISMATCH, "descriptors have %d dimensions, the bank %d", dim,
                            m->bank.dim);
    if (uses_patches(m) && 2 * dim != m->head.dim)
        return dn_error_set(err, DN_EMISMATCH, "patch inputs have %d dimensions, the head %d", 2 * dim,
                            m->head.dim);
    *desc = malloc((size_t)n * dim * sizeof **desc);
    *in = m->has_seg || uses_patches(m) ? malloc((size_t)n * 2 * dim * sizeof **in) : NULL;
    if (!*desc || (!*in && (m->has_seg || uses_patches(m))))
        return dn_error_set(err, DN_ENOMEM, "out of memory scoring");
    return describe_patches(f, *desc, *in, err);
}

size_t dn_patch_input_floats(const dn_feats *f)
{
    return (size_t)f->s16.h * f->s16.w * 2 * (f->s8.c + f->s16.c);
}

int dn_patch_inputs(const dn_feats *f, float *out, dn_error *err)
{
    float *desc = malloc((size_t)f->s16.h * f->s16.w * (f->s8.c + f->s16.c) * sizeof *desc);
    int rc = desc ? describe_patches(f, desc, out, err)
                  : dn_error_set(err, DN_ENOMEM, "out of memory for the patch inputs");
    free(desc);
    return rc;
}

int dn_model_raw(const dn_model *m, const dn_feats *f, dn_raw *r, dn_error *err)
{
    memset(r, 0, sizeof *r);
    r->h16 = f->s16.h;
    r->w16 = f->s16.w;
    int rc = DN_OK;
    float *desc = NULL, *in = NULL;
    if (m->has_bank || uses_patches(m))
        rc = patch_inputs(m, f, &desc, &in, err);
    /* the head first: the defect classifier reuses in as scratch */
    if (!rc && m->has_head)
        rc = uses_patches(m) ? head_patches(m, in, r->h16, r->w16, r, err) : raw_head_final(m, f, r, err);
    if (!rc && m->has_bank)
        rc = raw_bank(m, desc, in, r, err);
    free(desc);
    free(in);
    if (rc)
        dn_raw_free(r);
    return rc;
}

static float standardise(float v, dn_stat s)
{
    return (v - s.mu) / s.sigma;
}

float dn_model_fuse(const dn_model *m, const dn_raw *r, float *head_z, float *bank_z)
{
    float zh = m->has_head ? standardise(r->head, m->img_head) : 0.0f;
    float zb = m->has_bank ? standardise(r->bank, m->img_bank) : 0.0f;
    if (head_z)
        *head_z = zh;
    if (bank_z)
        *bank_z = zb;
    return standardise(m->w_head * zh + m->w_bank * zb, m->img_fused);
}

float dn_model_patch_sum(const dn_model *m, float bank, float seg)
{
    return standardise(bank, m->patch_bank) + standardise(seg, m->patch_seg);
}

/* The patch map on the stride-16 grid, standardised by held-out normal patch statistics:
 * the normality branch's where the model has one (it localises far better than the
 * DevNet head: pooled pixel AUROC 0.979 against 0.940 and 0.953 fused on mvtec_bottle,
 * docs/ACCURACY.md), plus the defect classifier's where the model has one, else the
 * head's, upsampled from its coarser grid. */
static int patch_map(const dn_model *m, const dn_raw *r, dn_score *s, dn_error *err)
{
    int n = r->h16 * r->w16;
    s->rows = r->h16;
    s->cols = r->w16;
    if (!(s->patches = calloc((size_t)n, sizeof(float))))
        return dn_error_set(err, DN_ENOMEM, "out of memory for the patch map");
    if (m->has_head && !m->has_bank) {
        float *up = malloc((size_t)n * sizeof *up);
        int rc = up ? dn_heatmap_render(r->head_patches, r->hf, r->wf, r->w16, r->h16, 0.0f, up, err)
                    : dn_error_set(err, DN_ENOMEM, "out of memory for the patch map");
        for (int i = 0; !rc && i < n; i++)
            s->patches[i] = standardise(up[i], m->patch_head);
        free(up);
        if (rc)
            return rc;
    }
    for (int i = 0; m->has_bank && i < n; i++)
        s->patches[i] = m->has_seg ? standardise(dn_model_patch_sum(m, r->bank_patches[i], r->seg_patches[i]),
                                                 m->patch_sum)
                                   : standardise(r->bank_patches[i], m->patch_bank);
    return DN_OK;
}

/* The highest patches, descending (insertion into a short sorted list). */
static void top_patches(dn_score *s)
{
    s->n_top = 0;
    for (int i = 0; i < s->rows * s->cols; i++) {
        if (s->n_top == DN_MAX_TOP_PATCHES && s->patches[i] <= s->patches[s->top[s->n_top - 1]])
            continue;
        int j = s->n_top < DN_MAX_TOP_PATCHES ? s->n_top++ : DN_MAX_TOP_PATCHES - 1;
        for (; j > 0 && s->patches[s->top[j - 1]] < s->patches[i]; j--)
            s->top[j] = s->top[j - 1];
        s->top[j] = i;
    }
}

int dn_model_mid_only(const dn_model *m)
{
    return !m->has_head || m->head_input == DN_HEAD_INPUT_PATCHES;
}

int dn_model_score(const dn_model *m, const dn_feats *f, dn_score *s, dn_error *err)
{
    dn_raw r;
    dn_score_init(s);
    int rc = dn_model_raw(m, f, &r, err);
    if (rc)
        return rc;
    s->score = dn_model_fuse(m, &r, &s->head_z, &s->bank_z);
    s->is_anomaly = s->score >= m->threshold;
    s->p_value = (float)dn_conformal_p(m->cal_scores, (size_t)m->n_cal, s->score);
    rc = patch_map(m, &r, s, err);
    dn_raw_free(&r);
    if (rc)
        dn_score_free(s);
    else
        top_patches(s);
    return rc;
}

/* ---- file ------------------------------------------------------------------------ */

static cJSON *stat_json(dn_stat s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mu", s.mu);
    cJSON_AddNumberToObject(o, "sigma", s.sigma);
    return o;
}

static char *model_json(const dn_model *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "head_type", dn_head_type_name(m->type));
    cJSON_AddNumberToObject(o, "input_size", m->size);
    cJSON_AddBoolToObject(o, "tail", m->has_tail);
    cJSON_AddNumberToObject(o, "scales", m->scales);
    cJSON_AddStringToObject(o, "head_input", dn_head_input_name(m->head_input));
    cJSON_AddNumberToObject(o, "topk_fraction", DN_DEVNET_TOPK_FRACTION);
    cJSON_AddNumberToObject(o, "threshold", m->threshold);
    cJSON_AddNumberToObject(o, "w_head", m->w_head);
    cJSON_AddNumberToObject(o, "w_bank", m->w_bank);
    cJSON_AddNumberToObject(o, "map_lo", m->map_lo);
    cJSON_AddNumberToObject(o, "map_hi", m->map_hi);
    cJSON_AddItemToObject(o, "img_head", stat_json(m->img_head));
    cJSON_AddItemToObject(o, "img_bank", stat_json(m->img_bank));
    cJSON_AddItemToObject(o, "img_fused", stat_json(m->img_fused));
    cJSON_AddItemToObject(o, "patch_head", stat_json(m->patch_head));
    cJSON_AddItemToObject(o, "patch_bank", stat_json(m->patch_bank));
    cJSON_AddBoolToObject(o, "defect_classifier", m->has_seg);
    if (m->has_seg) {
        cJSON_AddItemToObject(o, "patch_seg", stat_json(m->patch_seg));
        cJSON_AddItemToObject(o, "patch_sum", stat_json(m->patch_sum));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int dn_model_save(const dn_model *m, const char *path, dn_error *err)
{
    dn_st_writer w;
    dn_st_writer_init(&w);
    char *json = model_json(m);
    int rc = json ? DN_OK : DN_ENOMEM;
    const char *meta[][2] = {{"format", DN_MODEL_FORMAT}, {"format_version", DN_MODEL_VERSION},
                             {"backbone_sha256", m->backbone_sha256},
                             {"head_type", dn_head_type_name(m->type)}, {"model", json},
                             {"info", m->info[0] ? m->info : "{}"}};
    for (size_t i = 0; !rc && i < sizeof meta / sizeof meta[0]; i++)
        rc = dn_st_writer_meta(&w, meta[i][0], meta[i][1]);
    int64_t hshape[1] = {m->head.dim + 1}, bshape[2] = {m->bank.n, m->bank.dim}, cshape[1] = {m->n_cal};
    if (!rc && m->has_head)
        rc = dn_st_writer_add(&w, "head", 1, hshape, m->head.w);
    if (!rc && m->has_bank)
        rc = dn_st_writer_add(&w, "bank", 2, bshape, m->bank.x);
    int64_t sshape[1] = {m->seg.dim + 1};
    if (!rc && m->has_seg)
        rc = dn_st_writer_add(&w, "seg", 1, sshape, m->seg.w);
    int64_t tshape[1] = {(int64_t)m->tail.n_params};
    if (!rc && m->has_tail)
        rc = dn_st_writer_add(&w, "tail", 1, tshape, m->tail.params);
    if (!rc)
        rc = dn_st_writer_add(&w, "calibration", 1, cshape, m->cal_scores);
    if (!rc)
        rc = dn_st_writer_save(&w, path);
    if (rc)
        dn_error_set(err, rc, "cannot write model %s: %s", path, w.err.msg[0] ? w.err.msg : "out of memory");
    free(json);
    dn_st_writer_free(&w);
    return rc;
}

static int read_number(const cJSON *o, const char *key, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return -1;
    *out = (float)v->valuedouble;
    return 0;
}

static int read_stat(const cJSON *o, const char *key, dn_stat *s)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return read_number(v, "mu", &s->mu) || read_number(v, "sigma", &s->sigma) || !(s->sigma > 0) ? -1 : 0;
}

static int parse_model_json(dn_model *m, const char *text)
{
    cJSON *o = text ? cJSON_ParseWithLengthOpts(text, strlen(text), NULL, 0) : NULL;
    const char *type = o ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "head_type")) : NULL;
    float size = 0;
    int bad = !o || !type || dn_head_type_parse(type, &m->type) || read_number(o, "input_size", &size) ||
              size < 32 || size > DN_MAX_INPUT_SIDE || read_number(o, "threshold", &m->threshold) ||
              read_number(o, "w_head", &m->w_head) || read_number(o, "w_bank", &m->w_bank) ||
              read_number(o, "map_lo", &m->map_lo) || read_number(o, "map_hi", &m->map_hi) ||
              read_stat(o, "img_fused", &m->img_fused) || read_stat(o, "img_head", &m->img_head) ||
              read_stat(o, "img_bank", &m->img_bank) || read_stat(o, "patch_head", &m->patch_head) ||
              read_stat(o, "patch_bank", &m->patch_bank);
    m->size = bad ? 0 : (int)size; /* converting a float beyond int's range is undefined */
    m->has_tail = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "tail"));
    m->has_seg = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "defect_classifier"));
    float scales = 1; /* files from before the second scale have none */
    if (cJSON_GetObjectItemCaseSensitive(o, "scales") && read_number(o, "scales", &scales))
        bad = 1;
    bad = bad || (scales != 1 && scales != 2);
    m->scales = bad ? 1 : (int)scales;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(o, "head_input"); /* none: final */
    if (input && (!cJSON_IsString(input) || dn_head_input_parse(input->valuestring, &m->head_input)))
        bad = 1;
    bad = bad || (m->head_input == DN_HEAD_INPUT_PATCHES && (m->has_tail || m->scales != 1));
    bad = bad || (m->has_seg && (read_stat(o, "patch_seg", &m->patch_seg) ||
                                 read_stat(o, "patch_sum", &m->patch_sum)));
    cJSON_Delete(o);
    return bad ? dn_error_set(&m->err, DN_EFORMAT, "model metadata is incomplete, inconsistent or not finite") : DN_OK;
}

/* The defect classifier reads the bank's descriptors: its weights must match them. */
static int load_seg(dn_model *m, const dn_st_tensor *seg)
{
    if (!m->has_bank || !seg || seg->ndim != 1 || seg->count != 2 * (size_t)m->bank.dim + 1)
        return dn_error_set(&m->err, DN_EFORMAT, "model has a defect classifier but %s",
                            m->has_bank ? "no seg tensor of twice the bank's dimension + 1"
                                        : "no memory bank to read descriptors for it");
    for (size_t i = 0; i < seg->count; i++)
        if (!isfinite(seg->data[i]))
            return dn_error_set(&m->err, DN_EFORMAT, "model's defect classifier has non-finite weights");
    m->seg.dim = 2 * m->bank.dim;
    if (!(m->seg.w = malloc(seg->count * sizeof(float))))
        return dn_error_set(&m->err, DN_ENOMEM, "out of memory loading the model");
    memcpy(m->seg.w, seg->data, seg->count * sizeof(float));
    return DN_OK;
}

static int load_tensors(dn_model *m, const dn_safetensors *st, const dn_backbone *bb)
{
    const dn_st_tensor *head = dn_st_find(st, "head"), *bank = dn_st_find(st, "bank");
    const dn_st_tensor *cal = dn_st_find(st, "calibration");
    m->has_head = m->type != DN_HEAD_NORMALITY;
    m->has_bank = m->type != DN_HEAD_DEVNET;
    if ((m->has_head && (!head || head->ndim != 1 || head->count < 2)) ||
        (m->has_bank && (!bank || bank->ndim != 2)) || !cal || cal->ndim != 1 || cal->count < 1)
        return dn_error_set(&m->err, DN_EFORMAT, "model lacks the tensors its head type '%s' needs",
                            dn_head_type_name(m->type));
    for (size_t i = 0; i < cal->count; i++)
        if (!isfinite(cal->data[i]) || (i && cal->data[i] < cal->data[i - 1]))
            return dn_error_set(&m->err, DN_EFORMAT, "model calibration scores are not sorted");
    if (!(m->cal_scores = malloc(cal->count * sizeof(float))))
        return dn_error_set(&m->err, DN_ENOMEM, "out of memory loading the model");
    memcpy(m->cal_scores, cal->data, cal->count * sizeof(float));
    m->n_cal = (int)cal->count;
    int rc = DN_OK;
    if (m->has_head) {
        m->head.dim = (int)head->count - 1;
        if (!(m->head.w = malloc(head->count * sizeof(float))))
            return dn_error_set(&m->err, DN_ENOMEM, "out of memory loading the model");
        memcpy(m->head.w, head->data, head->count * sizeof(float));
    }
    if (m->has_bank)
        rc = dn_bank_from(&m->bank, bank->data, (int)bank->shape[0], (int)bank->shape[1], &m->err);
    if (!rc && m->has_head && m->has_bank && m->head_input == DN_HEAD_INPUT_PATCHES &&
        m->head.dim != 2 * m->bank.dim)
        rc = dn_error_set(&m->err, DN_EFORMAT, "model's head on the patches has %d inputs, not twice the bank's %d",
                          m->head.dim, m->bank.dim);
    if (!rc && m->has_seg)
        rc = load_seg(m, dn_st_find(st, "seg"));
    const dn_st_tensor *tail = dn_st_find(st, "tail");
    if (!rc && m->has_tail && (!bb || !tail || tail->ndim != 1))
        rc = dn_error_set(&m->err, DN_EFORMAT, "model has a fine-tuned tail but %s",
                          bb ? "no tail tensor" : "no backbone was given to run it on");
    if (!rc && m->has_tail)
        rc = dn_tail_with_params(&m->tail, bb, tail->data, tail->count, &m->err);
    return rc;
}

int dn_model_load(dn_model *m, const char *path, const dn_backbone *bb)
{
    const char *backbone_sha256 = bb ? bb->sha256 : NULL;
    dn_model_free(m);
    dn_safetensors st;
    dn_st_init(&st);
    int rc = dn_st_load(&st, path);
    if (rc) {
        m->err = st.err;
        return rc;
    }
    const char *fmt = dn_st_meta(&st, "format"), *ver = dn_st_meta(&st, "format_version");
    const char *file_bb = dn_st_meta(&st, "backbone_sha256"), *info = dn_st_meta(&st, "info");
    if (!fmt || strcmp(fmt, DN_MODEL_FORMAT))
        rc = dn_error_set(&m->err, DN_EFORMAT, "%s is not a devnet model", path);
    else if (!ver || strcmp(ver, DN_MODEL_VERSION))
        rc = dn_error_set(&m->err, DN_EMISMATCH, "%s: model format version %s, this build reads %s",
                          path, ver ? ver : "(none)", DN_MODEL_VERSION);
    else if (!file_bb || strlen(file_bb) != 64 || (backbone_sha256 && strcmp(file_bb, backbone_sha256)))
        rc = dn_error_set(&m->err, DN_EMISMATCH,
                          "%s was trained on another backbone (sha256 %.12s..., loaded %.12s...)", path,
                          file_bb ? file_bb : "?", backbone_sha256 ? backbone_sha256 : "?");
    if (!rc)
        rc = parse_model_json(m, dn_st_meta(&st, "model"));
    if (!rc)
        rc = load_tensors(m, &st, bb);
    if (!rc) {
        snprintf(m->backbone_sha256, sizeof m->backbone_sha256, "%s", file_bb);
        snprintf(m->info, sizeof m->info, "%s", info ? info : "{}");
    }
    dn_st_free(&st);
    if (rc)
        dn_model_free(m);
    return rc;
}
