/* dn_train: turns cached features of a training set into a calibrated dn_model.
 *
 * Normal images are split (seeded) into a training part (memory bank, head) and a
 * held-out part that calibrates every score to sigma units, sets the decision
 * threshold and gives the p-values. Labelled anomalies come with their augmented copies
 * and train the head only; the threshold rule may also read their (aug 0) scores. */
#ifndef DN_TRAIN_H
#define DN_TRAIN_H

#include "dn_model.h"

/* The default is the normal quantile: the labelled anomalies trained the head, so their
 * scores are optimistic and a max-F1 cut between them and the normals sits too high for
 * anomalies the model has not seen (on mvtec_bottle it put the threshold near 20 sigma). */
typedef enum dn_threshold_rule {
    DN_THRESHOLD_QUANTILE = 0, /* the given quantile of held-out normal scores */
    DN_THRESHOLD_MAXF1,        /* max F1 over held-out normals and labelled anomalies */
} dn_threshold_rule;

typedef struct dn_train_set {
    const dn_feats *const *normal; /* train/good, augmentation 0 */
    int n_normal;
    const dn_feats *const *anomaly; /* labelled anomalies: n_aug consecutive copies each, aug 0 first */
    int n_anomaly;                  /* images, not copies */
    int n_aug;
    char hash[65]; /* identifies the training images (sha256 over their content hashes) */
    /* may be NULL: per labelled anomaly, NULL when it has no pixel mask, else n_aug grids
     * of its defect share per stride-16 cell (dn_train_mask_cells), one per copy. A fusion
     * model trains its defect classifier (dn_seg.h) on them. */
    const float *const *anomaly_cells;
} dn_train_set;

typedef struct dn_train_opts {
    dn_head_type type;
    int size;            /* input size the features were taken at (224: see README) */
    uint64_t seed;
    float holdout;       /* share of normals held out for calibration (0.2) */
    int bank_max;        /* coreset size (16384) */
    int proj_dim;        /* random projection for the coreset selection (0 = none) */
    dn_head_opts head;
    int scales;          /* 2: the DevNet head also scores the input downscaled 2x (the
                          * features need final_half: extract with scales 2); 1 (default) */
    dn_head_input head_input; /* what the head reads (dn_model.h): final (default) or
                               * patches; patches go with neither scales 2 nor tail */
    int tail;            /* fine-tune the backbone's tail under the head (dn_tail.h) */
    dn_tail_opts tail_opts;
    dn_threshold_rule rule;
    float quantile;      /* normal quantile for DN_THRESHOLD_QUANTILE (0.99) */
    double budget_s;     /* training time budget in seconds, 0 = none: past it, training
                          * stops with DN_ETIMEDOUT (checked between stages and at every
                          * optimiser step). Reading features is not counted: a cache
                          * makes it a one-time cost. */
    double deadline;     /* the same as a dn_clock_now() deadline; dn_train sets it from
                          * budget_s (0 = none) */
    const volatile int *cancel; /* may be NULL: set by another thread, training stops the
                                 * same way (a service shutting down) */
    /* progress, may be NULL: stage name, steps done and total */
    void (*progress)(void *ctx, const char *stage, int done, int total);
    void *ctx;
} dn_train_opts;

void dn_train_opts_default(dn_train_opts *o);

/* The identity of a training set: sha256 over its images' sha256 hex strings. */
void dn_train_set_hash(char (*sha)[65], int n, char out[65]);

/* dn_train on arrays of features: normal[n_normal], and anomaly[n_anomaly *
 * DN_AUGMENTATIONS] (each labelled anomaly's rotations/flips, aug 0 first); hash names the
 * training set. */
int dn_train_feats(dn_model *m, const dn_feats *normal, int n_normal, const dn_feats *anomaly,
                   int n_anomaly, const float *const *cells, const char *hash,
                   const dn_train_opts *o, const dn_backbone *bb, dn_error *err);

/* The defect share of each cell of the grid x grid patch grid of a square input, for a
 * pixel mask file (not black = defect, as dn_seg_mask_cells) under each of the
 * DN_AUGMENTATIONS rotations/flips: out[aug * grid * grid + cell]. */
int dn_train_mask_cells(const char *mask_path, int grid, float *out, dn_error *err);

/* Image files to train on. */
typedef struct dn_train_files {
    char *const *normal;
    int n_normal;
    char *const *anomaly; /* labelled anomalies; their 8 rotations/flips are added */
    int n_anomaly;
    /* an unreadable image is left out and reported here (may be NULL) */
    void (*skipped)(void *ctx, const char *path, const char *why);
    int kept_normal, kept_anomaly; /* out: images actually used */
    char *const *anomaly_mask; /* may be NULL: each anomaly's pixel mask file or NULL */
} dn_train_files;

/* Reads the files' features through x (and its cache), then dn_train. Progress goes
 * through o->progress; o->budget_s counts from the end of the feature extraction. */
int dn_train_from_files(dn_model *m, dn_extractor *x, dn_train_files *files, const dn_train_opts *o,
                        dn_error *err);

/* Trains m from set. A fusion or devnet model without labelled anomalies falls back to
 * the normality branch alone (the model's head type says so); devnet alone refuses. */
int dn_train(dn_model *m, const dn_train_set *set, const dn_train_opts *o, const dn_backbone *bb,
             dn_error *err);

#endif
