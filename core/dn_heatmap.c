#include "dn_heatmap.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dn_limits.h"

/* ---- Render -------------------------------------------------------------------------- */

/* Bilinear upsampling and the Gaussian blur are both separable linear maps, so along each
 * axis they compose into one matrix from grid samples to output samples: blur(upsample(g))
 * = Ay * g * Ax^T. A row of A is nonzero only on a short band of grid cells (two cells,
 * widened by the blur's radius), so a 4000x3000 map from a 14x14 grid costs 2 to 4
 * multiply-adds per pixel, instead of 2*(2*ceil(4*sigma)+1) for blurring the full-size
 * map. Output sample i of an axis is the sum over k < maxn of w[i*maxn + k] * g[first[i] + k];
 * bands shorter than maxn are padded with zero weights so the inner loop has a fixed count. */
typedef struct dn_hm_axis {
    int maxn;
    int *first;
    float *w;
} dn_hm_axis;

/* Everything one render needs, built once per call; rows are then independent. */
typedef struct dn_hm_plan {
    const float *grid;
    int rows, cols, out_w, out_h;
    dn_hm_axis ax, ay;
} dn_hm_plan;

/* Index of position i on an axis of n samples, mirrored at both ends without repeating the
 * edge sample (reflect-101: -1 -> 1, n -> n-2), folded as often as a kernel wider than the
 * axis needs. */
static int dn_reflect101(int i, int n)
{
    if (i >= 0 && i < n) /* nearly every tap: spares the division */
        return i;
    if (n == 1)
        return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - i;
}

/* Normalised Gaussian of radius r (2r+1 taps) in k; r = 0 (sigma <= 0) is the identity. */
static void dn_gaussian(double *k, int r, float sigma)
{
    if (r == 0) {
        k[0] = 1;
        return;
    }
    double sum = 0;
    for (int t = -r; t <= r; t++) {
        k[t + r] = exp(-(double)t * t / (2.0 * sigma * sigma));
        sum += k[t + r];
    }
    for (int t = 0; t <= 2 * r; t++)
        k[t] /= sum;
}

/* Bilinear taps of output sample s upsampled from in samples: weight 1-frac[s] on j0[s]
 * and frac[s] on the next sample, which at the last sample is j0 itself (PyTorch's clamp). */
static void dn_bilinear_taps(int in, int out, int *j0, double *frac)
{
    for (int s = 0; s < out; s++) {
        double src = fmax(((double)s + 0.5) * in / out - 0.5, 0.0);
        j0[s] = (int)src;
        frac[s] = src - j0[s];
    }
}

static int dn_next_tap(int j, int in)
{
    return j + 1 < in ? j + 1 : j;
}

/* Grid cells [first[i], first[i] + count[i]) that map sample i reaches through the
 * kernel's 2r+1 taps, for every i; returns the longest count. */
static int dn_band_measure(int in, int out, int r, const int *j0, int *first, int *count)
{
    int maxn = 1;
    for (int i = 0; i < out; i++) {
        int lo = INT_MAX, hi = 0;
        for (int t = -r; t <= r; t++) {
            int s = dn_reflect101(i + t, out), next = dn_next_tap(j0[s], in);
            lo = j0[s] < lo ? j0[s] : lo;
            hi = next > hi ? next : hi;
        }
        first[i] = lo;
        count[i] = hi - lo + 1;
        maxn = count[i] > maxn ? count[i] : maxn;
    }
    return maxn;
}

/* Adds the weight of every grid cell in map sample i into acc (in doubles). */
static void dn_band_weights(int i, int in, int out, const double *k, int r, const int *j0,
                            const double *frac, double *acc)
{
    for (int t = -r; t <= r; t++) {
        int s = dn_reflect101(i + t, out);
        acc[j0[s]] += k[t + r] * (1.0 - frac[s]);
        acc[dn_next_tap(j0[s], in)] += k[t + r] * frac[s];
    }
}

/* Builds one axis: in grid samples to out map samples, blurred with kernel k of radius r.
 * The bands are measured first, so that the weights take one allocation of out*maxn.
 * On error the caller frees a. */
static int dn_hm_axis_build(dn_hm_axis *a, int in, int out, const double *k, int r,
                            dn_error *err)
{
    size_t n_out = (size_t)out, n_in = (size_t)in;
    double *frac = malloc(sizeof(double) * n_out), *acc = calloc(n_in, sizeof(double));
    int *j0 = malloc(sizeof(int) * n_out), *count = malloc(sizeof(int) * n_out);
    int rc = DN_OK;
    if (!frac || !acc || !j0 || !count || !(a->first = malloc(sizeof(int) * n_out))) {
        rc = dn_error_set(err, DN_ENOMEM, "out of memory for a heatmap of side %d", out);
    } else {
        dn_bilinear_taps(in, out, j0, frac);
        a->maxn = dn_band_measure(in, out, r, j0, a->first, count);
        if (!(a->w = calloc(n_out * (size_t)a->maxn, sizeof(float))))
            rc = dn_error_set(err, DN_ENOMEM, "out of memory for a heatmap of side %d", out);
    }
    for (int i = 0; rc == DN_OK && i < out; i++) {
        /* A band near the end starts earlier, so that first + maxn stays in the grid;
         * calloc left the padding at zero. */
        int lo = a->first[i], start = lo < in - a->maxn ? lo : in - a->maxn;
        float *w = a->w + (size_t)i * a->maxn + (lo - start);
        dn_band_weights(i, in, out, k, r, j0, frac, acc);
        for (int j = lo; j < lo + count[i]; j++) {
            *w++ = (float)acc[j];
            acc[j] = 0;
        }
        a->first[i] = start;
    }
    free(frac);
    free(acc);
    free(j0);
    free(count);
    return rc;
}

static void dn_hm_plan_free(dn_hm_plan *p)
{
    free(p->ax.first);
    free(p->ax.w);
    free(p->ay.first);
    free(p->ay.w);
    memset(p, 0, sizeof *p);
}

static int dn_hm_check(const float *grid, int rows, int cols, int out_w, int out_h, float sigma,
                       dn_error *err)
{
    if (!grid || rows < 1 || cols < 1 || out_w < 1 || out_h < 1 || isnan(sigma))
        return dn_error_set(err, DN_EINVAL, "bad heatmap: grid %dx%d (%s) to %dx%d, sigma %g",
                            rows, cols, grid ? "given" : "NULL", out_w, out_h, (double)sigma);
    if (rows > DN_MAX_INPUT_SIDE || cols > DN_MAX_INPUT_SIDE)
        return dn_error_set(err, DN_ETOOBIG, "heatmap grid %dx%d has a side over the limit of %d",
                            rows, cols, DN_MAX_INPUT_SIDE);
    if (out_w > DN_MAX_IMAGE_SIDE || out_h > DN_MAX_IMAGE_SIDE)
        return dn_error_set(err, DN_ETOOBIG, "heatmap %dx%d has a side over the limit of %d",
                            out_w, out_h, DN_MAX_IMAGE_SIDE);
    if ((uint64_t)out_w * (uint64_t)out_h > DN_DEFAULT_MAX_PIXELS)
        return dn_error_set(err, DN_ETOOBIG, "heatmap %dx%d is over the limit of %u pixels",
                            out_w, out_h, DN_DEFAULT_MAX_PIXELS);
    if (sigma > DN_HEATMAP_MAX_SIGMA)
        return dn_error_set(err, DN_ETOOBIG, "heatmap blur sigma %g is over the limit of %g",
                            (double)sigma, (double)DN_HEATMAP_MAX_SIGMA);
    return DN_OK;
}

static int dn_hm_plan_init(dn_hm_plan *p, const float *grid, int rows, int cols, int out_w,
                           int out_h, float sigma, dn_error *err)
{
    *p = (dn_hm_plan){.grid = grid, .rows = rows, .cols = cols, .out_w = out_w, .out_h = out_h};
    int rc = dn_hm_check(grid, rows, cols, out_w, out_h, sigma, err);
    if (rc != DN_OK)
        return rc;
    int r = sigma > 0 ? (int)ceil(4.0 * sigma) : 0;
    double *k = malloc(sizeof(double) * (2 * (size_t)r + 1));
    if (!k)
        return dn_error_set(err, DN_ENOMEM, "out of memory for a blur of sigma %g", (double)sigma);
    dn_gaussian(k, r, sigma);
    rc = dn_hm_axis_build(&p->ax, cols, out_w, k, r, err);
    if (rc == DN_OK)
        rc = dn_hm_axis_build(&p->ay, rows, out_h, k, r, err);
    free(k);
    if (rc != DN_OK)
        dn_hm_plan_free(p);
    return rc;
}

/* Map row y into dst (out_w floats). v (cols floats) is scratch: the grid rows blended by
 * the vertical band first, so the per-pixel work is the horizontal band only. */
static void dn_hm_row(const dn_hm_plan *p, int y, float *v, float *dst)
{
    const dn_hm_axis *ax = &p->ax, *ay = &p->ay;
    const float *wy = ay->w + (size_t)y * ay->maxn;
    const float *g = p->grid + (size_t)ay->first[y] * p->cols;
    memset(v, 0, sizeof(float) * (size_t)p->cols);
    for (int k = 0; k < ay->maxn; k++, g += p->cols)
        for (int c = 0; c < p->cols; c++)
            v[c] += wy[k] * g[c];
    for (int x = 0; x < p->out_w; x++) {
        const float *wx = ax->w + (size_t)x * ax->maxn, *s = v + ax->first[x];
        float sum = 0;
        for (int k = 0; k < ax->maxn; k++)
            sum += wx[k] * s[k];
        dst[x] = sum;
    }
}

int dn_heatmap_render(const float *grid, int rows, int cols, int out_w, int out_h, float sigma,
                      float *out, dn_error *err)
{
    if (!out)
        return dn_error_set(err, DN_EINVAL, "heatmap render needs an output buffer");
    dn_hm_plan p;
    int rc = dn_hm_plan_init(&p, grid, rows, cols, out_w, out_h, sigma, err);
    if (rc != DN_OK)
        return rc;
    float *v = malloc(sizeof(float) * (size_t)cols);
    if (!v) {
        dn_hm_plan_free(&p);
        return dn_error_set(err, DN_ENOMEM, "out of memory for a %dx%d heatmap", out_w, out_h);
    }
    for (int y = 0; y < out_h; y++)
        dn_hm_row(&p, y, v, out + (size_t)y * out_w);
    free(v);
    dn_hm_plan_free(&p);
    return DN_OK;
}

/* ---- Overlay ------------------------------------------------------------------------- */

/* matplotlib's "inferno" at every 15th of its 256 entries (t = i/17), in 8-bit sRGB levels
 * (floats: the pixel loop then converts nothing). Its lightness rises strictly from black
 * to pale yellow, so the heat reads without a legend. */
#define DN_INFERNO_SEGMENTS 17
static const float dn_inferno[DN_INFERNO_SEGMENTS + 1][3] = {
    {0, 0, 4},       {10, 7, 34},     {30, 12, 69},   {56, 9, 98},     {81, 14, 108},
    {105, 22, 110},  {128, 31, 108},  {152, 39, 102}, {176, 49, 91},   {198, 61, 77},
    {217, 77, 61},   {233, 97, 43},   {244, 121, 24}, {250, 148, 7},   {252, 176, 20},
    {248, 205, 55},  {242, 234, 105}, {252, 255, 164},
};

/* Outlines are cyan: the one hue inferno never takes, and bright on a dark photo. */
static const uint8_t dn_box_rgb[3] = {0, 255, 255};
#define DN_BOX_THICKNESS 2

typedef struct dn_heat_scale {
    float lo, hi, inv, alpha_max;
} dn_heat_scale;

static dn_heat_scale dn_heat_scale_make(float lo, float hi, float alpha_max)
{
    /* 1/(hi-lo) in double: hi-lo can overflow a float. Unused when hi <= lo. */
    dn_heat_scale s = {lo, hi, (float)(1.0 / ((double)hi - lo)), 0};
    s.alpha_max = alpha_max > 1 ? 1 : alpha_max > 0 ? alpha_max : 0; /* NaN: 0 */
    return s;
}

/* Paints n pixels: photo and out are RGB8, v their map values. restrict: otherwise each
 * byte stored to out forces the next photo byte to be reloaded after it. */
static void dn_overlay_span(const dn_heat_scale *s, const uint8_t *restrict photo,
                            const float *restrict v, size_t n, uint8_t *restrict out)
{
    for (size_t i = 0; i < n; i++, photo += 3, out += 3) {
        /* Written so that NaN, and everything with hi <= lo, takes one of the first two. */
        if (!(v[i] > s->lo) || s->alpha_max == 0) {
            memcpy(out, photo, 3);
            continue;
        }
        float t = v[i] >= s->hi ? 1.0f : (v[i] - s->lo) * s->inv;
        t = t < 1 ? t : 1; /* not fminf: a libm call per pixel */
        float pos = t * DN_INFERNO_SEGMENTS;
        int j = pos < DN_INFERNO_SEGMENTS ? (int)pos : DN_INFERNO_SEGMENTS - 1;
        float f = pos - j, alpha = s->alpha_max * t;
        for (int ch = 0; ch < 3; ch++) {
            float a = dn_inferno[j][ch], b = dn_inferno[j + 1][ch];
            float colour = a + f * (b - a), p = photo[ch];
            out[ch] = (uint8_t)(p + alpha * (colour - p) + 0.5f);
        }
    }
}

void dn_heatmap_overlay(const dn_image *photo, const float *map, float lo, float hi,
                        float alpha_max, uint8_t *out_rgb)
{
    dn_heat_scale s = dn_heat_scale_make(lo, hi, alpha_max);
    dn_overlay_span(&s, photo->rgb, map, (size_t)photo->width * (size_t)photo->height, out_rgb);
}

/* ---- Boxes --------------------------------------------------------------------------- */

static void dn_fill_rect(dn_image *img, int x0, int y0, int x1, int y1)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            memcpy(img->rgb + ((size_t)y * img->width + x) * 3, dn_box_rgb, 3);
}

/* The outline lies inside the box, so a box on the photo's edge stays visible. */
static void dn_draw_box(dn_image *img, dn_box b)
{
    int x0 = b.x0 > 0 ? b.x0 : 0, y0 = b.y0 > 0 ? b.y0 : 0;
    int x1 = b.x1 < img->width ? b.x1 : img->width, y1 = b.y1 < img->height ? b.y1 : img->height;
    if (x0 >= x1 || y0 >= y1)
        return;
    int t = DN_BOX_THICKNESS;
    dn_fill_rect(img, x0, y0, x1, y1 - y0 > t ? y0 + t : y1);
    dn_fill_rect(img, x0, y1 - y0 > t ? y1 - t : y0, x1, y1);
    dn_fill_rect(img, x0, y0, x1 - x0 > t ? x0 + t : x1, y1);
    dn_fill_rect(img, x1 - x0 > t ? x1 - t : x0, y0, x1, y1);
}

/* ---- Convenience --------------------------------------------------------------------- */

int dn_heatmap_image(const dn_image *photo, const float *grid, int rows, int cols, float sigma,
                     float lo, float hi, const dn_box *boxes, int n_boxes, dn_image *out,
                     dn_error *err)
{
    dn_image_free(out);
    if (!photo || !photo->rgb || photo->width < 1 || photo->height < 1)
        return dn_error_set(err, DN_EINVAL, "heatmap needs a decoded photo");
    if (!isfinite(lo) || !isfinite(hi))
        return dn_error_set(err, DN_EINVAL, "heatmap range [%g, %g] is not finite", (double)lo,
                            (double)hi);
    if (n_boxes < 0 || (n_boxes > 0 && !boxes))
        return dn_error_set(err, DN_EINVAL, "bad heatmap box list (%d boxes)", n_boxes);
    int w = photo->width, h = photo->height;
    dn_hm_plan p;
    int rc = dn_hm_plan_init(&p, grid, rows, cols, w, h, sigma, err);
    if (rc != DN_OK)
        return rc;
    /* The map row and the grid scratch in one block: cols <= DN_MAX_INPUT_SIDE. */
    float *row = malloc(sizeof(float) * ((size_t)w + (size_t)cols));
    uint8_t *rgb = malloc((size_t)w * (size_t)h * 3);
    if (!row || !rgb) {
        free(row);
        free(rgb);
        dn_hm_plan_free(&p);
        return dn_error_set(err, DN_ENOMEM, "out of memory for a %dx%d heatmap", w, h);
    }
    dn_heat_scale s = dn_heat_scale_make(lo, hi, DN_HEATMAP_ALPHA);
    for (int y = 0; y < h; y++) {
        size_t at = (size_t)y * w * 3;
        dn_hm_row(&p, y, row + w, row);
        dn_overlay_span(&s, photo->rgb + at, row, (size_t)w, rgb + at);
    }
    free(row);
    dn_hm_plan_free(&p);
    *out = (dn_image){.width = w, .height = h, .rgb = rgb};
    for (int i = 0; i < n_boxes; i++)
        dn_draw_box(out, boxes[i]);
    return DN_OK;
}

int dn_heatmap_png(const dn_image *photo, const float *grid, int rows, int cols, float sigma,
                   float lo, float hi, const dn_box *boxes, int n_boxes, uint8_t **png,
                   size_t *png_len, dn_error *err)
{
    dn_image img = {0};
    int rc = dn_heatmap_image(photo, grid, rows, cols, sigma, lo, hi, boxes, n_boxes, &img, err);
    if (rc == DN_OK)
        rc = dn_png_encode_memory(img.width, img.height, 3, img.rgb, png, png_len, err);
    dn_image_free(&img);
    return rc;
}

int dn_heatmap_write(const char *path, const dn_image *photo, const float *grid, int rows,
                     int cols, float sigma, float lo, float hi, const dn_box *boxes,
                     int n_boxes, dn_error *err)
{
    dn_image img = {0};
    int rc = dn_heatmap_image(photo, grid, rows, cols, sigma, lo, hi, boxes, n_boxes, &img, err);
    if (rc == DN_OK)
        rc = dn_png_write(path, img.width, img.height, 3, img.rgb, err);
    dn_image_free(&img);
    return rc;
}

/* ---- Cells --------------------------------------------------------------------------- */

/* First pixel whose centre lies at or after the boundary of cell c: the smallest x with
 * (x + 0.5) * cells >= c * size, i.e. ceil((2*c*size - cells) / (2*cells)), in 64 bits. */
static int dn_cell_edge(int c, int cells, int size)
{
    return (int)((2 * (int64_t)c * size + cells - 1) / (2 * (int64_t)cells));
}

dn_box dn_heatmap_cell_box(int r, int c, int rows, int cols, int photo_w, int photo_h)
{
    dn_box b = {0, 0, 0, 0};
    if (rows < 1 || cols < 1 || photo_w < 1 || photo_h < 1 || r < 0 || r >= rows || c < 0 ||
        c >= cols)
        return b;
    b.x0 = dn_cell_edge(c, cols, photo_w);
    b.x1 = dn_cell_edge(c + 1, cols, photo_w);
    b.y0 = dn_cell_edge(r, rows, photo_h);
    b.y1 = dn_cell_edge(r + 1, rows, photo_h);
    return b;
}
