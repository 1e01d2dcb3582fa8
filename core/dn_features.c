#include "dn_features.h"

#include "dn_file.h"
#include "dn_limits.h"
#include "dn_sha256.h"
#include "dn_tail.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void dn_feats_init(dn_feats *f)
{
    memset(f, 0, sizeof *f);
}

void dn_feats_free(dn_feats *f)
{
    free(f->buf);
    dn_feats_init(f);
}

static size_t map_floats(const dn_fmap *m)
{
    return (size_t)m->h * m->w * m->c;
}

size_t dn_feats_floats(const dn_feats *f)
{
    return map_floats(&f->final) + map_floats(&f->s8) + map_floats(&f->s16) + map_floats(&f->tail_in) +
           map_floats(&f->final_half);
}

/* mkdir -p for the cache directory. */
static int make_dirs(const char *path, dn_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return dn_error_set(err, DN_EINVAL, "cache path too long");
    for (char *p = buf + 1;; p++) {
        char saved = *p;
        if (saved != '/' && saved != '\0')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return dn_error_set(err, DN_EIO, "cannot create %s: %s", buf, strerror(errno));
        *p = saved;
        if (!saved)
            return DN_OK;
    }
}

int dn_extractor_init(dn_extractor *x, const dn_backbone *bb, int size, const char *cache_dir)
{
    memset(x, 0, sizeof *x);
    x->bb = bb;
    x->size = size;
    x->scales = 1;
    dn_forward_init(&x->fw, bb);
    dn_forward_init(&x->fw_half, bb);
    x->taps[0] = dn_backbone_final_map(bb);
    x->taps[1] = dn_backbone_tap_at_stride(bb, 8);
    x->taps[2] = dn_backbone_tap_at_stride(bb, 16);
    x->taps[3] = dn_tail_input_node(bb);
    x->n_taps = x->taps[3] >= 0 ? 4 : 3;
    if (x->taps[0] < 0 || x->taps[1] < 0 || x->taps[2] < 0)
        return dn_error_set(&x->err, DN_EUNSUPPORTED,
                            "backbone has no stride-8/stride-16/final maps to tap");
    if (size < 32 || size > DN_MAX_INPUT_SIDE)
        return dn_error_set(&x->err, DN_EINVAL, "input size %d outside 32..%d", size,
                            DN_MAX_INPUT_SIDE);
    size_t n = (size_t)size * size * bb->graph.in_channels;
    x->input = malloc(n * sizeof(float));
    x->turned = malloc(n * sizeof(float));
    if (!x->input || !x->turned)
        return dn_error_set(&x->err, DN_ENOMEM, "out of memory for a %dx%d input", size, size);
    if (cache_dir && *cache_dir) {
        int len = snprintf(x->cache_dir, sizeof x->cache_dir, "%s/%.16s-%d", cache_dir,
                           bb->sha256, size);
        if (len >= (int)sizeof x->cache_dir)
            return dn_error_set(&x->err, DN_EINVAL, "cache path too long");
        int rc = make_dirs(x->cache_dir, &x->err);
        /* temporary files of writers killed mid-write (live ones finish within seconds) */
        if (!rc)
            dn_file_remove_stale(x->cache_dir, ".tmp.", DN_CACHE_STALE_SECONDS);
        return rc;
    }
    return DN_OK;
}

void dn_extractor_free(dn_extractor *x)
{
    dn_forward_free(&x->fw);
    dn_forward_free(&x->fw_half);
    free(x->half);
    free(x->input);
    free(x->turned);
    memset(x, 0, sizeof *x);
}

void dn_dihedral(const float *in, int s, int c, int aug, float *out)
{
    for (int y = 0; y < s; y++)
        for (int xx = 0; xx < s; xx++) {
            int sy = y, sx = xx, t;
            for (int r = 0; r < (aug & 3); r++) { /* undo one CCW quarter turn per step */
                t = sy;
                sy = sx;
                sx = s - 1 - t;
            }
            if (aug & 4)
                sx = s - 1 - sx;
            memcpy(out + ((size_t)y * s + xx) * c, in + ((size_t)sy * s + sx) * c,
                   (size_t)c * sizeof *out);
        }
}

/* Copies the forward's taps into one owned buffer: maps[i] is the map of tap first + i
 * (0 final, 1 stride 8, 2 stride 16, 3 tail input), and half (may be NULL) the final map
 * of the half-size input. */
static int keep_maps(const dn_fmap *maps, int first, int n_maps, const dn_fmap *half, dn_feats *out,
                     dn_error *err)
{
    size_t n = half ? map_floats(half) : 0;
    for (int i = 0; i < n_maps; i++)
        n += map_floats(&maps[i]);
    dn_feats_free(out);
    out->buf = malloc(n * sizeof(float));
    if (!out->buf)
        return dn_error_set(err, DN_ENOMEM, "out of memory for features");
    dn_fmap *dst[4] = {&out->final, &out->s8, &out->s16, &out->tail_in};
    float *p = out->buf;
    for (int i = 0; i < n_maps; i++) {
        *dst[first + i] = maps[i];
        memcpy(p, maps[i].data, map_floats(&maps[i]) * sizeof(float));
        dst[first + i]->data = p;
        p += map_floats(&maps[i]);
    }
    if (half) {
        out->final_half = *half;
        memcpy(p, half->data, map_floats(half) * sizeof(float));
        out->final_half.data = p;
    }
    return DN_OK;
}

/* The head's second scale: the final map of the (augmented) input downscaled 2x by
 * nearest neighbour, pixel (2y, 2x), as the official DevNet code's F.interpolate does. */
static int half_scale(dn_extractor *x, const float *in, dn_fmap *out)
{
    int s = x->size, h = s / 2, c = x->bb->graph.in_channels;
    if (!x->half && !(x->half = malloc((size_t)h * h * c * sizeof(float))))
        return dn_error_set(&x->err, DN_ENOMEM, "out of memory for the half-size input");
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < h; xx++)
            memcpy(x->half + ((size_t)y * h + xx) * c, in + ((size_t)(2 * y) * s + 2 * xx) * c,
                   (size_t)c * sizeof(float));
    int rc = dn_forward_run(&x->fw_half, x->half, h, h, x->taps, 1, out);
    return rc ? dn_error_set(&x->err, rc, "%s", x->fw_half.err.msg) : DN_OK;
}

static int extract(dn_extractor *x, const dn_image *img, int aug, int mid_only, dn_feats *out)
{
    int s = x->size;
    dn_error_clear(&x->err);
    if (aug < 0 || aug >= DN_AUGMENTATIONS)
        return dn_error_set(&x->err, DN_EINVAL, "augmentation %d outside 0..7", aug);
    int rc = dn_backbone_input(x->bb, img, s, s, x->input, &x->err);
    if (rc)
        return rc;
    const float *in = x->input;
    if (aug) {
        dn_dihedral(x->input, s, x->bb->graph.in_channels, aug, x->turned);
        in = x->turned;
    }
    dn_fmap maps[4];
    int first = mid_only ? 1 : 0, n = mid_only ? 2 : x->n_taps;
    rc = dn_forward_run(&x->fw, in, s, s, x->taps + first, n, maps);
    if (rc)
        return dn_error_set(&x->err, rc, "%s", x->fw.err.msg);
    dn_fmap half;
    int with_half = x->scales == 2 && !mid_only;
    if (with_half && (rc = half_scale(x, in, &half)))
        return rc;
    rc = keep_maps(maps, first, n, with_half ? &half : NULL, out, &x->err);
    out->photo_w = img->width;
    out->photo_h = img->height;
    return rc;
}

int dn_extractor_image(dn_extractor *x, const dn_image *img, int aug, dn_feats *out)
{
    return extract(x, img, aug, x->mid_only, out);
}

/* ---- disk cache ------------------------------------------------------------------ */

static void cache_path(const dn_extractor *x, const char *sha, int aug, char *out, size_t len)
{
    snprintf(out, len, "%s/%s-a%d.safetensors", x->cache_dir, sha, aug);
}

static const char *const tap_names[4] = {"final", "stride8", "stride16", "tail_in"};
#define HALF_NAME "final_half"

static int fmap_from_tensor(const dn_safetensors *st, const char *name, dn_fmap *m)
{
    const dn_st_tensor *t = dn_st_find(st, name);
    if (!t || t->ndim != 3)
        return -1;
    *m = (dn_fmap){(int)t->shape[0], (int)t->shape[1], (int)t->shape[2], t->data};
    return 0;
}

/* Loads cached maps, checking they are what this extractor would compute. */
static int cache_load(dn_extractor *x, const char *path, dn_feats *out)
{
    dn_safetensors st;
    dn_st_init(&st);
    dn_fmap maps[4];
    const char *fmt;
    int ok = dn_st_load(&st, path) == DN_OK && (fmt = dn_st_meta(&st, "format")) &&
             !strcmp(fmt, DN_FEATURES_FORMAT "/" DN_FEATURES_VERSION);
    for (int i = 0; ok && i < x->n_taps; i++)
        ok = !fmap_from_tensor(&st, tap_names[i], &maps[i]) &&
             maps[i].c == x->bb->graph.nodes[x->taps[i]].cout;
    dn_fmap half;
    int has_half = ok && !fmap_from_tensor(&st, HALF_NAME, &half) && half.c == maps[0].c;
    ok = ok && (x->scales != 2 || has_half); /* without it: recomputed, and stored with it */
    const char *w = ok ? dn_st_meta(&st, "photo_width") : NULL;
    const char *h = ok ? dn_st_meta(&st, "photo_height") : NULL;
    int rc = w && h && atoi(w) > 0 && atoi(h) > 0
                 ? keep_maps(maps, 0, x->n_taps, has_half ? &half : NULL, out, &x->err)
                 : DN_EFORMAT;
    if (!rc) {
        out->photo_w = atoi(w);
        out->photo_h = atoi(h);
    }
    dn_st_free(&st);
    return rc;
}

static int cache_store(const dn_extractor *x, const char *path, const dn_feats *f, dn_error *err)
{
    dn_st_writer w;
    dn_st_writer_init(&w);
    const dn_fmap *maps[4] = {&f->final, &f->s8, &f->s16, &f->tail_in};
    char pw[16], ph[16];
    snprintf(pw, sizeof pw, "%d", f->photo_w);
    snprintf(ph, sizeof ph, "%d", f->photo_h);
    int rc = dn_st_writer_meta(&w, "format", DN_FEATURES_FORMAT "/" DN_FEATURES_VERSION);
    if (!rc)
        rc = dn_st_writer_meta(&w, "backbone_sha256", x->bb->sha256);
    if (!rc)
        rc = dn_st_writer_meta(&w, "photo_width", pw);
    if (!rc)
        rc = dn_st_writer_meta(&w, "photo_height", ph);
    for (int i = 0; i < x->n_taps && !rc; i++) {
        int64_t shape[3] = {maps[i]->h, maps[i]->w, maps[i]->c};
        rc = dn_st_writer_add(&w, tap_names[i], 3, shape, maps[i]->data);
    }
    int64_t hshape[3] = {f->final_half.h, f->final_half.w, f->final_half.c};
    if (!rc && f->final_half.data)
        rc = dn_st_writer_add(&w, HALF_NAME, 3, hshape, f->final_half.data);
    if (!rc)
        rc = dn_st_writer_save(&w, path);
    if (rc)
        dn_error_set(err, rc, "%s", w.err.msg);
    dn_st_writer_free(&w);
    return rc;
}

int dn_extractor_file(dn_extractor *x, const char *path, int aug, dn_feats *out, char sha_hex[65])
{
    dn_error_clear(&x->err);
    size_t len = 0;
    uint8_t *bytes = NULL;
    int rc = dn_image_read_file(path, &bytes, &len, &x->err);
    if (rc)
        return rc;
    char sha[65], cached[4300];
    uint8_t digest[32];
    dn_sha256_buf(bytes, len, digest);
    dn_sha256_hex(digest, sha);
    if (sha_hex)
        memcpy(sha_hex, sha, sizeof sha);
    cache_path(x, sha, aug, cached, sizeof cached);
    if (x->cache_dir[0] && cache_load(x, cached, out) == DN_OK) {
        free(bytes);
        return DN_OK;
    }
    dn_image img;
    dn_image_init(&img);
    rc = dn_image_decode(&img, bytes, len, NULL, &x->err);
    free(bytes);
    if (!rc)
        rc = extract(x, &img, aug, 0, out); /* the cache keeps every map */
    dn_image_free(&img);
    if (rc) {
        char why[DN_ERROR_MSG_MAX]; /* the message is rewritten from itself: copy it first */
        snprintf(why, sizeof why, "%s", x->err.msg);
        return dn_error_set(&x->err, rc, "%s: %s", path, why);
    }
    dn_error ignored; /* a cache that cannot be written only costs time */
    if (x->cache_dir[0])
        cache_store(x, cached, out, &ignored);
    return DN_OK;
}

void dn_feats_free_all(dn_feats *f, int n)
{
    for (int i = 0; f && i < n; i++)
        dn_feats_free(&f[i]);
    free(f);
}

/* Features of one file in every augmentation; on failure nothing is kept. */
static int file_all_augs(dn_extractor *x, const char *path, int n_aug, dn_feats *f, char *sha)
{
    int rc = DN_OK;
    for (int a = 0; a < n_aug && !rc; a++)
        rc = dn_extractor_file(x, path, a, &f[a], sha);
    for (int a = 0; rc && a < n_aug; a++)
        dn_feats_free(&f[a]);
    return rc;
}

int dn_extractor_files(dn_extractor *x, char *const *paths, int n, const dn_files_opts *o,
                       dn_feats **out, char (*sha)[65], int *n_kept)
{
    int n_aug = o->n_aug > 0 ? o->n_aug : 1, kept = 0;
    dn_feats *f = calloc((size_t)n * n_aug + 1, sizeof *f);
    if (!f)
        return dn_error_set(&x->err, DN_ENOMEM, "out of memory for %d feature sets", n * n_aug);
    for (int i = 0; i < n; i++) {
        int rc = file_all_augs(x, paths[i], n_aug, &f[(size_t)kept * n_aug], sha ? sha[kept] : NULL);
        if (o->progress)
            o->progress(o->ctx, o->stage ? o->stage : "features", i + 1, n);
        if (!rc) {
            kept++;
        } else if (!o->skip_unreadable) {
            dn_feats_free_all(f, kept * n_aug); /* x->err names the file */
            return rc;
        } else if (o->skipped) {
            o->skipped(o->ctx, paths[i], x->err.msg);
        }
    }
    if (n && !kept) {
        free(f);
        return dn_error_set(&x->err, DN_EFORMAT, "none of the %d images could be read", n);
    }
    if (n_kept)
        *n_kept = kept;
    *out = f;
    return DN_OK;
}
