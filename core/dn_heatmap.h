/* dn_heatmap: from a grid of patch scores to what an inspector looks at.
 *
 * An anomaly model scores each patch of a rows x cols grid that covers the whole photo
 * (resized to the network input). dn_heatmap_render turns the grid into a per-pixel map
 * at the photo's own resolution; dn_heatmap_overlay paints that map over the photo; the
 * convenience calls do both and encode a PNG. The CLI, the HTTP API and the web console
 * all go through dn_heatmap_image, so every heatmap is drawn the same way.
 * Nothing is global: separate calls may run in separate threads. */
#ifndef DN_HEATMAP_H
#define DN_HEATMAP_H

#include <stddef.h>
#include <stdint.h>

#include "dn_error.h"
#include "dn_image.h"

/* The blur's kernel is 2*ceil(4*sigma)+1 taps, and its preparation costs that many steps
 * per output row and column: a hostile sigma would otherwise buy seconds of CPU. 256
 * pixels covers PatchCore's sigma 4 (at a 224 input) scaled to a 14000-pixel photo. */
#define DN_HEATMAP_MAX_SIGMA 256.0f

/* Blend strength of the hottest colour in dn_heatmap_png / dn_heatmap_write: at 0.6 the
 * photo stays readable under the heat. */
#define DN_HEATMAP_ALPHA 0.6f

typedef struct dn_box {
    int x0, y0, x1, y1; /* pixel box, x1/y1 exclusive */
} dn_box;

/* Patch grid (rows x cols floats, row-major) -> per-pixel map of out_w x out_h floats in
 * out: bilinear upsampling with half-pixel centres (align_corners=False, as
 * torch.nn.functional.interpolate(mode="bilinear") and PatchCore: source position
 * (x+0.5)*cols/out_w-0.5, clamped to the grid at the edges), then a Gaussian blur of
 * standard deviation sigma output pixels (kernel radius ceil(4*sigma), normalised,
 * reflect-101 borders as OpenCV's default: -1 reads 1). sigma <= 0: no blur. A grid of the
 * output's size is not resampled, so render(sigma) is then a pure blur.
 * Errors: DN_EINVAL (NULL, a size < 1, sigma NaN), DN_ETOOBIG (out_w*out_h over
 * DN_DEFAULT_MAX_PIXELS, a side over DN_MAX_IMAGE_SIDE, a grid side over
 * DN_MAX_INPUT_SIDE, sigma over DN_HEATMAP_MAX_SIGMA), DN_ENOMEM. */
int dn_heatmap_render(const float *grid, int rows, int cols, int out_w, int out_h, float sigma,
                      float *out, dn_error *err);

/* Paints map (photo->width*photo->height floats) over the photo into out_rgb (RGB8, same
 * size). t = clamp((v - lo) / (hi - lo), 0, 1) picks a colour from matplotlib's "inferno"
 * (black, purple, red, orange, pale yellow: lightness rises with t, so brighter is more
 * anomalous, also in grey print), drawn from 18 anchors with linear interpolation (within
 * 6/255 of matplotlib's 256-entry table). It is blended with alpha = alpha_max * t
 * (alpha_max clamped to [0, 1]): a pixel with v <= lo, or NaN, is the photo's pixel
 * unchanged, so a normal image is not painted; v >= hi gets the top colour (252,255,164)
 * at alpha_max. With hi <= lo the map is a step: v > lo is fully hot. */
void dn_heatmap_overlay(const dn_image *photo, const float *map, float lo, float hi,
                        float alpha_max, uint8_t *out_rgb);

/* The overlay image the convenience calls encode: grid rendered at the photo's size,
 * overlaid at DN_HEATMAP_ALPHA, then the outlines of boxes (2 px, cyan, inside each box,
 * clipped to the photo; empty boxes are skipped) drawn on top. out must be initialised;
 * whatever it held is released first, and on error it is left empty. The map is rendered
 * and painted one row at a time, so no photo-sized float buffer is needed.
 * Errors: those of dn_heatmap_render, and DN_EINVAL for a photo without pixels, lo or hi
 * not finite, n_boxes < 0, or boxes NULL with n_boxes > 0. */
int dn_heatmap_image(const dn_image *photo, const float *grid, int rows, int cols, float sigma,
                     float lo, float hi, const dn_box *boxes, int n_boxes, dn_image *out,
                     dn_error *err);

/* dn_heatmap_image encoded as a PNG: into a malloc'd buffer (*png, *png_len; the caller
 * frees it), or into a file (adds DN_EIO, DN_ENOSPC). */
int dn_heatmap_png(const dn_image *photo, const float *grid, int rows, int cols, float sigma,
                   float lo, float hi, const dn_box *boxes, int n_boxes, uint8_t **png,
                   size_t *png_len, dn_error *err);
int dn_heatmap_write(const char *path, const dn_image *photo, const float *grid, int rows,
                     int cols, float sigma, float lo, float hi, const dn_box *boxes,
                     int n_boxes, dn_error *err);

/* The pixels of grid cell (r, c) when a rows x cols grid covers a photo_w x photo_h photo:
 * a pixel belongs to the cell that holds its centre, so the boxes of all cells tile the
 * photo with no gap or overlap even when the grid does not divide it (a cell may be empty
 * when the grid is finer than the photo). An empty box {0,0,0,0} for r, c outside the
 * grid or a size < 1. */
dn_box dn_heatmap_cell_box(int r, int c, int rows, int cols, int photo_w, int photo_h);

#endif
