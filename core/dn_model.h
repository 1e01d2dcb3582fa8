/* dn_model: a trained anomaly model, how it scores an image's features, and its file.
 *
 * Branches (the "head type"):
 *   devnet     the DevNet head on the final map (needs labelled anomalies);
 *   normality  distance of each patch to its nearest normal patch in a coreset memory
 *              bank of [stride-8, stride-16] descriptors (works with zero anomalies);
 *   fusion     both: each branch's image score is standardised on held-out normals, the
 *              weighted sum is standardised again, so the output stays in sigma units.
 * A fusion model trained on anomalies with pixel masks also has a defect classifier
 * (dn_seg.h) whose patch map is added to the normality branch's: it sharpens the heatmap
 * and the top patches, not the image score.
 * Every score the model gives is in sigma units of held-out normal images: a normal
 * image scores around 0, "7.3" means 7.3 standard deviations above normal. */
#ifndef DN_MODEL_H
#define DN_MODEL_H

#include "dn_features.h"
#include "dn_head.h"
#include "dn_normality.h"
#include "dn_seg.h"
#include "dn_tail.h"

#define DN_MODEL_FORMAT "devnet-model"
#define DN_MODEL_VERSION "1"
#define DN_MAX_TOP_PATCHES 16

typedef enum dn_head_type { DN_HEAD_DEVNET = 0, DN_HEAD_NORMALITY, DN_HEAD_FUSION } dn_head_type;

/* What the DevNet head reads:
 *   final    the backbone's final map (stride 32, 1280 channels): the paper's head, and
 *            the most accurate fusion on the dev sets (docs/ACCURACY.md);
 *   patches  each stride-16 patch descriptor of the normality branch and its difference
 *            from the image's mean descriptor (the defect classifier's input): the forward
 *            pass then stops at stride 16, which costs about 30 % less per image. */
typedef enum dn_head_input { DN_HEAD_INPUT_FINAL = 0, DN_HEAD_INPUT_PATCHES } dn_head_input;

/* Mean and standard deviation of a score over held-out normals. */
typedef struct dn_stat {
    float mu, sigma;
} dn_stat;

typedef struct dn_model {
    dn_head_type type;
    int size;            /* backbone input size */
    int has_head, has_bank, has_tail, has_seg;
    int scales;          /* the head's scales: 1, or 2 with the input downscaled 2x */
    dn_head_input head_input;
    dn_head head;
    dn_tail tail;        /* fine-tuned backbone tail under the head (has_tail) */
    dn_bank bank;
    dn_seg seg;          /* defect classifier on the bank's descriptors (has_seg) */
    dn_stat img_head, img_bank, img_fused;   /* image scores of held-out normals */
    dn_stat patch_head, patch_bank, patch_seg; /* patch scores of held-out normals */
    dn_stat patch_sum;   /* of standardised bank + seg patch scores (has_seg) */
    float w_head, w_bank;                    /* fusion weights on the standardised scores */
    float threshold;                         /* decision threshold, sigma units */
    float map_lo, map_hi;                    /* heatmap range, fused patch units */
    float *cal_scores;                       /* held-out normal scores, ascending (p-values) */
    int n_cal;
    char backbone_sha256[65];
    char info[2048]; /* JSON: training set, counts, time, threshold rule (kept as text) */
    dn_error err;
} dn_model;

/* One scored image. Patch values are on the stride-16 grid in sigma-like units. */
typedef struct dn_score {
    float score;       /* sigma units */
    float p_value;     /* conformal, against the held-out normals */
    int is_anomaly;    /* score >= threshold */
    float head_z, bank_z; /* standardised branch scores (0 when absent) */
    int rows, cols;    /* patch grid */
    float *patches;    /* rows * cols, owned */
    int top[DN_MAX_TOP_PATCHES]; /* indices of the highest patches, descending */
    int n_top;
} dn_score;

const char *dn_head_type_name(dn_head_type t);
int dn_head_type_parse(const char *s, dn_head_type *t);
const char *dn_head_input_name(dn_head_input in);
int dn_head_input_parse(const char *s, dn_head_input *in);

void dn_model_init(dn_model *m);
void dn_model_free(dn_model *m);
void dn_score_init(dn_score *s);
void dn_score_free(dn_score *s);

/* Raw branch outputs of one image, before standardisation. */
typedef struct dn_raw {
    float head, bank;          /* image scores */
    float *head_patches;       /* the head's grid (final, or stride 16), |s_p| */
    float *bank_patches;       /* stride-16 grid, nearest-neighbour distances */
    float *seg_patches;        /* stride-16 grid, defect classifier logits (has_seg) */
    int hf, wf, h16, w16;
} dn_raw;

void dn_raw_free(dn_raw *r);
/* The branches of m on one image's features. */
int dn_model_raw(const dn_model *m, const dn_feats *f, dn_raw *r, dn_error *err);
/* The inputs of a head on the patches and of the defect classifier for one image: on the
 * stride-16 grid, each patch descriptor (dn_patch_descriptors, dim floats) followed by
 * its difference from the image's mean descriptor; out holds dn_patch_input_floats(f). */
size_t dn_patch_input_floats(const dn_feats *f);
int dn_patch_inputs(const dn_feats *f, float *out, dn_error *err);
/* Standardised fused score of raw outputs (sigma units). */
float dn_model_fuse(const dn_model *m, const dn_raw *r, float *head_z, float *bank_z);
/* A patch's standardised normality distance plus its standardised defect logit (has_seg),
 * before the final standardisation by patch_sum. */
float dn_model_patch_sum(const dn_model *m, float bank, float seg);
/* Scores one image's features: score, p-value, verdict, patch map, top patches. */
int dn_model_score(const dn_model *m, const dn_feats *f, dn_score *s, dn_error *err);
/* Whether scoring reads only the mid-level maps (a model without a head, or whose head
 * reads the patch descriptors): the forward pass can stop there (dn_extractor.mid_only). */
int dn_model_mid_only(const dn_model *m);

/* safetensors file: head weights, memory bank, calibration scores; __metadata__ holds
 * the format and version, backbone sha256, head type, input size, K, threshold and
 * calibration statistics, and the training information. */
int dn_model_save(const dn_model *m, const char *path, dn_error *err);
/* Loads and checks a model against the backbone it will run on (bb may be NULL to read a
 * model without a tail for inspection: no backbone check then). */
int dn_model_load(dn_model *m, const char *path, const dn_backbone *bb);

#endif
