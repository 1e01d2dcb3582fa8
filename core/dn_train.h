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
} dn_train_set;

typedef struct dn_train_opts {
    dn_head_type type;
    int size;            /* input size the features were taken at (224: see README) */
    uint64_t seed;
    float holdout;       /* share of normals held out for calibration (0.2) */
    int bank_max;        /* coreset size (16384) */
    int proj_dim;        /* random projection for the coreset selection (0 = none) */
    dn_head_opts head;
    int tail;            /* fine-tune the backbone's tail under the head (dn_tail.h) */
    dn_tail_opts tail_opts;
    dn_threshold_rule rule;
    float quantile;      /* normal quantile for DN_THRESHOLD_QUANTILE (0.99) */
    /* progress, may be NULL: stage name, steps done and total */
    void (*progress)(void *ctx, const char *stage, int done, int total);
    void *ctx;
} dn_train_opts;

void dn_train_opts_default(dn_train_opts *o);

/* Trains m from set. A fusion or devnet model without labelled anomalies falls back to
 * the normality branch alone (the model's head type says so); devnet alone refuses. */
int dn_train(dn_model *m, const dn_train_set *set, const dn_train_opts *o, const dn_backbone *bb,
             dn_error *err);

#endif
