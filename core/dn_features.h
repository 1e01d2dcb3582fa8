/* dn_features: what the anomaly models read from the backbone for one image, and a disk
 * cache of it so that retraining never runs the backbone again.
 *
 * Per image, at input size S x S (the whole image resized, no crop): the final map
 * (stride 32, 1280 channels for MobileNetV2), the block outputs at stride 8 and 16, and
 * the input of the backbone's trainable tail (160 channels at stride 32).
 * Labelled anomalies are also seen in the 8 rotations/flips of the square input
 * (augmentation 0 is the image itself). */
#ifndef DN_FEATURES_H
#define DN_FEATURES_H

#include "dn_forward.h"

#define DN_AUGMENTATIONS 8
#define DN_FEATURES_FORMAT "devnet-features"
#define DN_FEATURES_VERSION "2"

typedef struct dn_feats {
    dn_fmap final, s8, s16;
    dn_fmap tail_in; /* input of the backbone's trainable tail (dn_tail.h); empty without one */
    dn_fmap final_half; /* the final map of the input downscaled 2x by nearest neighbour (the
                         * DevNet head's second scale); empty unless extracted with scales 2 */
    int photo_w, photo_h; /* size of the original image (after EXIF orientation) */
    float *buf;           /* owns the three maps */
} dn_feats;

typedef struct dn_extractor {
    const dn_backbone *bb;
    dn_forward fw;
    int size;
    int taps[4];  /* final, stride 8, stride 16, tail input */
    int n_taps;
    float *input; /* size * size * 3 */
    float *turned;
    char cache_dir[4096]; /* empty: no cache */
    int scales;   /* 2: also the final map of the input downscaled 2x (final_half), by a
                   * second forward pass at half the size; 1 (default): not. Set by the
                   * caller; the cache keeps final_half once it has been computed. */
    dn_forward fw_half;
    float *half;  /* (size / 2)^2 * 3, allocated on first use */
    int mid_only; /* dn_extractor_image takes only the stride-8 and stride-16 maps and the
                   * forward pass stops there: all a model without a head reads (the final
                   * map and the tail input stay empty). Set by the caller; the cache
                   * (dn_extractor_file) always keeps every map. */
    dn_error err;
} dn_extractor;

void dn_feats_init(dn_feats *f);
void dn_feats_free(dn_feats *f);
/* Floats of all the maps together. */
size_t dn_feats_floats(const dn_feats *f);

/* cache_dir may be NULL or "" (no cache); it is created when missing. */
int dn_extractor_init(dn_extractor *x, const dn_backbone *bb, int size, const char *cache_dir);
void dn_extractor_free(dn_extractor *x);

/* Features of a decoded image under augmentation aug (0..7): rotation by 90 * (aug & 3)
 * degrees counter-clockwise, after a horizontal flip when aug & 4. out is replaced. */
int dn_extractor_image(dn_extractor *x, const dn_image *img, int aug, dn_feats *out);

/* The same for an encoded image file, through the cache: the key is the sha256 of the
 * file's bytes, the backbone's sha256, the size and aug. A cache file that cannot be read
 * is recomputed and rewritten; a cache that cannot be written is only slower. sha_hex
 * (may be NULL) receives the file's sha256. */
int dn_extractor_file(dn_extractor *x, const char *path, int aug, dn_feats *out, char sha_hex[65]);

/* How dn_extractor_files goes through a list of images. */
typedef struct dn_files_opts {
    int n_aug;           /* augmentations per image (1, or DN_AUGMENTATIONS) */
    int skip_unreadable; /* leave unreadable images out instead of failing */
    const char *stage;   /* progress label */
    void (*progress)(void *ctx, const char *stage, int done, int total); /* may be NULL */
    void (*skipped)(void *ctx, const char *path, const char *why);      /* may be NULL */
    void *ctx;
} dn_files_opts;

/* Features of n image files, n_aug augmentations each (out[i * n_aug + a], malloc'd;
 * free with dn_feats_free_all), through the cache. Unreadable images fail the call
 * (x->err) unless o->skip_unreadable: then they are reported, the rest packed at the
 * front, and none readable out of n > 0 is still a failure. *n_kept (may be NULL) says
 * how many images were kept; sha (may be NULL) receives each kept file's sha256. */
int dn_extractor_files(dn_extractor *x, char *const *paths, int n, const dn_files_opts *o,
                       dn_feats **out, char (*sha)[65], int *n_kept);
void dn_feats_free_all(dn_feats *f, int n);

/* Applies augmentation aug to a square s x s x c HWC array (out must not alias in). */
void dn_dihedral(const float *in, int s, int c, int aug, float *out);

#endif
