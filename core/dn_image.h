/* dn_image: decoding JPEG/PNG into RGB8, resizing and normalising network input,
 * and writing PNG (heatmaps, overlays).
 *
 * Decoders treat every byte as hostile: sizes are checked against dn_limits.h before
 * the pixel buffer is allocated, and a failed decode leaves no partial image behind.
 * Nothing is global, so separate dn_image values can be used from separate threads. */
#ifndef DN_IMAGE_H
#define DN_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "dn_error.h"

typedef struct dn_image {
    int width, height;
    uint8_t *rgb; /* width*height*3 bytes, row-major RGB8, malloc'd */
} dn_image;

typedef struct dn_decode_opts {
    uint64_t max_pixels; /* decoded width*height; 0 = DN_DEFAULT_MAX_PIXELS */
} dn_decode_opts;

void dn_image_init(dn_image *img);
void dn_image_free(dn_image *img); /* frees and zeroes; safe to call twice */

/* Decodes a JPEG or PNG held in memory, recognised by its magic bytes. img must be
 * initialised; whatever it held is released first, and on error it is left empty.
 * JPEG: grey, YCbCr/RGB, progressive; the EXIF orientation (APP1, tag 0x0112) is applied.
 * CMYK/YCCK JPEGs are DN_EUNSUPPORTED.
 * PNG: every colour type and bit depth becomes RGB8, as libpng's simplified API does it:
 * 8-bit alpha is composited onto black in linear light (255 at alpha 128 gives 186);
 * 16-bit samples are scaled to 8 bits (v * 255 / 65535, as PIL and OpenCV do), alpha
 * premultiplied.
 * opts may be NULL. Errors: DN_EFORMAT, DN_EUNSUPPORTED, DN_ETOOBIG, DN_ENOMEM. */
int dn_image_decode(dn_image *img, const uint8_t *data, size_t len,
                    const dn_decode_opts *opts, dn_error *err);

/* EXIF orientation (1..8) of a JPEG held in memory; 1 when absent or malformed.
 * dn_image_decode applies it already. */
int dn_jpeg_exif_orientation(const uint8_t *data, size_t len);

/* Reads a file (refused over DN_MAX_ENCODED_IMAGE_BYTES) and decodes it. Adds DN_EIO. */
int dn_image_load(dn_image *img, const char *path, const dn_decode_opts *opts, dn_error *err);
/* Reads an encoded image file (a regular file of at most DN_MAX_ENCODED_IMAGE_BYTES)
 * into a malloc'd buffer. */
int dn_image_read_file(const char *path, uint8_t **out, size_t *out_len, dn_error *err);

/* Resizes to out_w x out_h into out_hwc (out_w*out_h*3 floats, HWC, values in [0,255]).
 * Per axis: bilinear with half-pixel centres (TF half_pixel_centers, PyTorch
 * align_corners=False, no antialias) when that axis shrinks by at most 2x or grows;
 * area averaging (box filter with exact fractional coverage) when it shrinks by more. */
int dn_image_resize(const dn_image *img, int out_w, int out_h, float *out_hwc, dn_error *err);

/* x = x/127.5 - 1 for n floats: [0,255] -> [-1,1] (MobileNetV2 input). */
void dn_normalize_pm1(float *x, size_t n);

/* dn_image_resize followed by dn_normalize_pm1. */
int dn_image_to_input(const dn_image *img, int out_w, int out_h, float *out_hwc, dn_error *err);

/* Encodes w x h 8-bit pixels with channels 1 (grey), 3 (RGB) or 4 (RGBA), rows packed.
 * dn_png_write writes a file (DN_EIO, DN_ENOSPC); dn_png_encode_memory returns a
 * malloc'd buffer in *out (the caller frees it) of *out_len bytes. */
int dn_png_write(const char *path, int w, int h, int channels, const uint8_t *pixels,
                 dn_error *err);
int dn_png_encode_memory(int w, int h, int channels, const uint8_t *pixels, uint8_t **out,
                         size_t *out_len, dn_error *err);

#endif
