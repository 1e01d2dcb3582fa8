#include "dn_image.h"

#include "dn_file.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "dn_limits.h"

void dn_image_init(dn_image *img)
{
    memset(img, 0, sizeof *img);
}

void dn_image_free(dn_image *img)
{
    free(img->rgb);
    dn_image_init(img);
}

static int dn_image_alloc(dn_image *img, int w, int h, dn_error *err)
{
    img->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!img->rgb)
        return dn_error_set(err, DN_ENOMEM, "out of memory for a %dx%d image", w, h);
    img->width = w;
    img->height = h;
    return DN_OK;
}

/* Called with the header's claimed size, before the pixel buffer exists: a 100-byte file
 * may claim billions of pixels. Zero sizes never get here: libpng refuses them, and
 * dn_decode_jpeg checks. */
static int dn_check_dims(uint64_t w, uint64_t h, uint64_t max_pixels, dn_error *err)
{
    if (w > DN_MAX_IMAGE_SIDE || h > DN_MAX_IMAGE_SIDE)
        return dn_error_set(err, DN_ETOOBIG, "image %" PRIu64 "x%" PRIu64
                            " has a side over the limit of %d", w, h, DN_MAX_IMAGE_SIDE);
    if (w * h > max_pixels)
        return dn_error_set(err, DN_ETOOBIG, "image %" PRIu64 "x%" PRIu64 " has %" PRIu64
                            " pixels, over the limit of %" PRIu64, w, h, w * h, max_pixels);
    return DN_OK;
}

/* ---- EXIF orientation ---------------------------------------------------------------- */

static uint32_t dn_rd16(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : (uint32_t)p[0] << 8 | p[1];
}

static uint32_t dn_rd32(const uint8_t *p, int le)
{
    return le ? dn_rd16(p, 1) | dn_rd16(p + 2, 1) << 16 : dn_rd16(p, 0) << 16 | dn_rd16(p + 2, 0);
}

/* Orientation tag (0x0112, one SHORT in 1..8) of IFD0 in a TIFF block of n bytes; 1 when
 * absent or malformed. Offsets come from the file, so every one is checked in 64 bits. */
static int dn_tiff_orientation(const uint8_t *t, size_t n)
{
    if (n < 8 || (memcmp(t, "II", 2) != 0 && memcmp(t, "MM", 2) != 0))
        return 1;
    int le = t[0] == 'I';
    uint64_t ifd = dn_rd32(t + 4, le);
    if (dn_rd16(t + 2, le) != 42 || ifd + 2 > n)
        return 1;
    uint32_t count = dn_rd16(t + ifd, le);
    for (uint64_t e = ifd + 2; count-- > 0 && e + 12 <= n; e += 12) {
        if (dn_rd16(t + e, le) != 0x0112)
            continue;
        uint32_t v = dn_rd16(t + e + 8, le);
        int ok = dn_rd16(t + e + 2, le) == 3 && dn_rd32(t + e + 4, le) == 1 && v >= 1 && v <= 8;
        return ok ? (int)v : 1;
    }
    return 1;
}

/* Walks the marker segments before the first scan for an APP1 "Exif\0\0" segment. */
int dn_jpeg_exif_orientation(const uint8_t *p, size_t n)
{
    size_t i = 2; /* after SOI */
    while (i + 4 <= n && p[i] == 0xFF) {
        uint8_t m = p[i + 1];
        if (m == 0xFF) { /* fill byte before a marker */
            i++;
            continue;
        }
        if (m == 0xDA || m == 0xD9) /* SOS, EOI: no metadata after this */
            break;
        size_t seg = dn_rd16(p + i + 2, 0); /* counts its own 2 length bytes */
        if (seg < 2 || seg > n - i - 2)
            break;
        if (m == 0xE1 && seg >= 8 && memcmp(p + i + 4, "Exif\0\0", 6) == 0)
            return dn_tiff_orientation(p + i + 10, seg - 8);
        i += 2 + seg;
    }
    return 1;
}

/* EXIF orientation o as a lookup into the decoded (stored) image: output pixel (x,y)
 * reads stored (u,v) = swap ? (y,x) : (x,y), then u mirrored if flip_u, v if flip_v.
 * 1 is the identity; 6 is "rotate 90 degrees clockwise to display". */
static const struct {
    uint8_t swap, flip_u, flip_v;
} dn_orientations[9] = {
    [2] = {0, 1, 0}, [3] = {0, 1, 1}, [4] = {0, 0, 1}, [5] = {1, 0, 0},
    [6] = {1, 0, 1}, [7] = {1, 1, 1}, [8] = {1, 1, 0},
};

/* Rotating/mirroring keeps width*height and the set of sides, so the limits checked on
 * the header still hold for the result. */
static int dn_image_orient(dn_image *img, int o, dn_error *err)
{
    if (o == 1)
        return DN_OK;
    int w = img->width, h = img->height;
    int swap = dn_orientations[o].swap, fu = dn_orientations[o].flip_u;
    int fv = dn_orientations[o].flip_v;
    dn_image out = {0};
    int rc = dn_image_alloc(&out, swap ? h : w, swap ? w : h, err);
    if (rc != DN_OK) {
        dn_image_free(img);
        return rc;
    }
    uint8_t *d = out.rgb;
    for (int y = 0; y < out.height; y++)
        for (int x = 0; x < out.width; x++, d += 3) {
            int u = swap ? y : x, v = swap ? x : y;
            u = fu ? w - 1 - u : u;
            v = fv ? h - 1 - v : v;
            memcpy(d, img->rgb + ((size_t)v * (size_t)w + (size_t)u) * 3, 3);
        }
    dn_image_free(img);
    *img = out;
    return DN_OK;
}

/* ---- Decoders ------------------------------------------------------------------------ */

static int dn_decode_jpeg(dn_image *img, const uint8_t *data, size_t len, uint64_t max_pixels,
                          dn_error *err)
{
    /* One handle per call: handles must not be shared between threads, and creating one
     * is cheap next to decoding. */
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return dn_error_set(err, DN_ENOMEM, "cannot create a JPEG decoder: %s",
                            tjGetErrorStr2(NULL));
    int w = 0, h = 0, subsamp, colorspace, rc;
    if (tjDecompressHeader3(tj, data, len, &w, &h, &subsamp, &colorspace) != 0) {
        rc = dn_error_set(err, DN_EFORMAT, "bad JPEG: %s", tjGetErrorStr2(tj));
    } else if (w < 1 || h < 1) {
        /* A stream cut before its frame header reads as tables-only: success, and
         * nothing filled in. */
        rc = dn_error_set(err, DN_EFORMAT, "bad JPEG: no image in the header (%s)",
                          tjGetErrorStr2(tj));
    } else if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        /* TurboJPEG decodes these only to CMYK, and converting without the embedded
         * ICC profile gives wrong colours. */
        rc = dn_error_set(err, DN_EUNSUPPORTED, "CMYK JPEGs are not supported");
    } else if ((rc = dn_check_dims((uint64_t)w, (uint64_t)h, max_pixels, err)) == DN_OK &&
               (rc = dn_image_alloc(img, w, h, err)) == DN_OK) {
        /* -1 also covers warnings such as a truncated file, which libjpeg would otherwise
         * pad with grey: a half image is never returned. LIMITSCANS bounds the work a
         * hostile progressive file can cause. */
        if (tjDecompress2(tj, data, len, img->rgb, w, 0, h, TJPF_RGB,
                          TJFLAG_LIMITSCANS | TJFLAG_ACCURATEDCT) != 0) {
            rc = dn_error_set(err, DN_EFORMAT, "bad JPEG: %s", tjGetErrorStr2(tj));
            dn_image_free(img);
        }
    }
    tjDestroy(tj);
    return rc == DN_OK ? dn_image_orient(img, dn_jpeg_exif_orientation(data, len), err) : rc;
}

/* 16-bit PNGs are scaled to 8 bits (v * 255 / 65535), as PIL and OpenCV read them: the
 * simplified API's own RGB8 path would take 16-bit samples as linear light and
 * gamma-encode them (0x7FFF -> 186), brightening every 16-bit camera image. Reading the
 * linear 16-bit format gives the stored samples (alpha premultiplied, i.e. over black). */
static int dn_png_read_16bit(png_image *png, dn_image *img, dn_error *err)
{
    size_t n = (size_t)png->width * png->height * 3;
    uint16_t *wide = malloc(n * sizeof *wide);
    if (!wide)
        return dn_error_set(err, DN_ENOMEM, "out of memory for a %ux%u 16-bit PNG", png->width,
                            png->height);
    png->format = PNG_FORMAT_LINEAR_RGB;
    int rc = DN_OK;
    if (!png_image_finish_read(png, NULL, wide, 0, NULL))
        rc = dn_error_set(err, DN_EFORMAT, "bad PNG: %s", png->message);
    for (size_t i = 0; rc == DN_OK && i < n; i++)
        img->rgb[i] = (uint8_t)((wide[i] * 255u + 32767u) / 65535u);
    free(wide);
    return rc;
}

static int dn_png_read_8bit(png_image *png, dn_image *img, dn_error *err)
{
    /* The background must be given: with NULL, libpng composites alpha onto whatever
     * the new buffer holds. */
    static const png_color black = {0, 0, 0};
    png->format = PNG_FORMAT_RGB;
    if (!png_image_finish_read(png, &black, img->rgb, 0, NULL))
        return dn_error_set(err, DN_EFORMAT, "bad PNG: %s", png->message);
    return DN_OK;
}

static int dn_decode_png(dn_image *img, const uint8_t *data, size_t len, uint64_t max_pixels,
                         dn_error *err)
{
    png_image png;
    memset(&png, 0, sizeof png);
    png.version = PNG_IMAGE_VERSION;
    int rc;
    if (!png_image_begin_read_from_memory(&png, data, len)) {
        rc = dn_error_set(err, DN_EFORMAT, "bad PNG: %s", png.message);
    } else if ((rc = dn_check_dims(png.width, png.height, max_pixels, err)) == DN_OK &&
               (rc = dn_image_alloc(img, (int)png.width, (int)png.height, err)) == DN_OK) {
        /* Any colour type and depth comes out as RGB8. */
        rc = (png.format & PNG_FORMAT_FLAG_LINEAR) ? dn_png_read_16bit(&png, img, err)
                                                   : dn_png_read_8bit(&png, img, err);
        if (rc != DN_OK)
            dn_image_free(img);
    }
    png_image_free(&png); /* a no-op once finish_read has cleaned up */
    return rc;
}

static int dn_has_magic(const uint8_t *data, size_t len, const char *magic, size_t n)
{
    return len >= n && memcmp(data, magic, n) == 0;
}

int dn_image_decode(dn_image *img, const uint8_t *data, size_t len,
                    const dn_decode_opts *opts, dn_error *err)
{
    dn_image_free(img);
    uint64_t max_pixels = opts && opts->max_pixels ? opts->max_pixels : DN_DEFAULT_MAX_PIXELS;
    if (!data || len == 0)
        return dn_error_set(err, DN_EFORMAT, "empty input: not a JPEG or PNG image");
    if (dn_has_magic(data, len, "\xFF\xD8\xFF", 3))
        return dn_decode_jpeg(img, data, len, max_pixels, err);
    if (dn_has_magic(data, len, "\x89PNG\r\n\x1A\n", 8))
        return dn_decode_png(img, data, len, max_pixels, err);
    return dn_error_set(err, DN_EFORMAT, "not a JPEG or PNG image");
}

int dn_image_read_file(const char *path, uint8_t **out, size_t *out_len, dn_error *err)
{
    return dn_file_read(path, DN_MAX_ENCODED_IMAGE_BYTES, (unsigned char **)out, out_len, err);
}

int dn_image_load(dn_image *img, const char *path, const dn_decode_opts *opts, dn_error *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    dn_image_free(img);
    int rc = dn_image_read_file(path, &buf, &len, err);
    if (rc != DN_OK)
        return rc;
    rc = dn_image_decode(img, buf, len, opts, err);
    free(buf);
    return rc;
}

/* ---- Resize -------------------------------------------------------------------------- */

/* One axis of a separable resize: output sample i is the sum over k < count[i] of
 * w[i*maxn + k] * source[first[i] + k]. Built once per call, so the pixel loops do no
 * index or weight arithmetic. */
typedef struct dn_axis {
    int maxn;
    int *first, *count; /* one allocation holding first, count and w */
    float *w;
} dn_axis;

/* Half-pixel centres, source position clamped at 0 as in PyTorch (TF clamps the two
 * neighbours instead: same values). At the right border both neighbours are the last
 * sample, so a single tap. */
static void dn_axis_linear(dn_axis *a, int i, int in, int out)
{
    double src = fmax(((double)i + 0.5) * in / out - 0.5, 0.0);
    int j = (int)src;
    float frac = (float)(src - j), *w = a->w + (size_t)i * a->maxn;
    a->first[i] = j;
    a->count[i] = j + 1 < in ? 2 : 1;
    w[0] = j + 1 < in ? 1.0f - frac : 1.0f;
    w[1] = frac;
}

/* Output i covers source [i*in/out, (i+1)*in/out); each source sample weighs its overlap.
 * The bounds come from exact integer products and one division, so a bound that is a
 * whole number is exact and never adds a sliver tap: at most ceil(in/out)+1 taps. */
static void dn_axis_area(dn_axis *a, int i, int in, int out)
{
    double scale = (double)in / out;
    double lo = (double)i * in / out, hi = (double)(i + 1) * in / out;
    float *w = a->w + (size_t)i * a->maxn;
    int n = 0;
    a->first[i] = (int)lo;
    for (int j = (int)lo; j < hi; j++, n++)
        w[n] = (float)((fmin(j + 1.0, hi) - fmax(j, lo)) / scale);
    a->count[i] = n;
}

static int dn_axis_build(dn_axis *a, int in, int out, dn_error *err)
{
    int area = in > 2 * out;
    a->maxn = area ? (in + out - 1) / out + 1 : 2;
    a->first = malloc(sizeof(int) * 2 * (size_t)out + sizeof(float) * (size_t)out * a->maxn);
    if (!a->first)
        return dn_error_set(err, DN_ENOMEM, "out of memory for a resize to %d", out);
    a->count = a->first + out;
    a->w = (float *)(a->count + out);
    for (int i = 0; i < out; i++)
        (area ? dn_axis_area : dn_axis_linear)(a, i, in, out);
    return DN_OK;
}

/* Vertical pass first, whole rows at a time so the inner loop is contiguous and
 * vectorises: out_h rows of row_len floats from the rows of src (row_len bytes each). */
static void dn_resize_cols(const uint8_t *src, size_t row_len, const dn_axis *ay, int out_h,
                           float *dst)
{
    for (int y = 0; y < out_h; y++, dst += row_len) {
        const float *w = ay->w + (size_t)y * ay->maxn;
        memset(dst, 0, row_len * sizeof *dst);
        for (int k = 0; k < ay->count[y]; k++) {
            const uint8_t *s = src + (size_t)(ay->first[y] + k) * row_len;
            for (size_t x = 0; x < row_len; x++)
                dst[x] += w[k] * s[x];
        }
    }
}

/* Horizontal pass second, so that its gather runs over out_h rows only: each of the rows
 * of src (in_w RGB float pixels) becomes out_w pixels. */
static void dn_resize_rows(const float *src, int in_w, int rows, const dn_axis *ax, int out_w,
                           float *dst)
{
    for (int y = 0; y < rows; y++) {
        const float *row = src + (size_t)y * in_w * 3;
        for (int x = 0; x < out_w; x++, dst += 3) {
            const float *p = row + (size_t)ax->first[x] * 3;
            const float *w = ax->w + (size_t)x * ax->maxn;
            float r = 0, g = 0, b = 0;
            for (int k = 0; k < ax->count[x]; k++, p += 3) {
                r += w[k] * p[0];
                g += w[k] * p[1];
                b += w[k] * p[2];
            }
            dst[0] = r;
            dst[1] = g;
            dst[2] = b;
        }
    }
}

int dn_image_resize(const dn_image *img, int out_w, int out_h, float *out_hwc, dn_error *err)
{
    if (!img || !img->rgb || !out_hwc)
        return dn_error_set(err, DN_EINVAL, "resize needs a decoded image and an output buffer");
    if (out_w < 1 || out_h < 1 || out_w > DN_MAX_IMAGE_SIDE || out_h > DN_MAX_IMAGE_SIDE)
        return dn_error_set(err, DN_EINVAL, "bad resize target %dx%d", out_w, out_h);
    dn_axis ax = {0}, ay = {0};
    float *tmp = NULL;
    int rc = dn_axis_build(&ax, img->width, out_w, err);
    if (rc == DN_OK)
        rc = dn_axis_build(&ay, img->height, out_h, err);
    if (rc == DN_OK && !(tmp = malloc(sizeof(float) * out_h * (size_t)img->width * 3)))
        rc = dn_error_set(err, DN_ENOMEM, "out of memory for a resize to %dx%d", out_w, out_h);
    if (rc == DN_OK) {
        dn_resize_cols(img->rgb, (size_t)img->width * 3, &ay, out_h, tmp);
        dn_resize_rows(tmp, img->width, out_h, &ax, out_w, out_hwc);
    }
    free(tmp);
    free(ax.first);
    free(ay.first);
    return rc;
}

void dn_normalize_pm1(float *x, size_t n)
{
    /* A division, as in the reference preprocessing (x / 127.5 - 1): multiplying by
     * 1/127.5, which float cannot hold exactly, is off by an ulp for 111 of the 256 levels. */
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] / 127.5f - 1.0f;
}

int dn_image_to_input(const dn_image *img, int out_w, int out_h, float *out_hwc, dn_error *err)
{
    int rc = dn_image_resize(img, out_w, out_h, out_hwc, err);
    if (rc == DN_OK)
        dn_normalize_pm1(out_hwc, (size_t)out_w * out_h * 3);
    return rc;
}

/* ---- PNG encoding -------------------------------------------------------------------- */

static int dn_png_setup(png_image *png, int w, int h, int channels, const uint8_t *pixels,
                        dn_error *err)
{
    if (w < 1 || h < 1 || w > DN_MAX_IMAGE_SIDE || h > DN_MAX_IMAGE_SIDE || !pixels ||
        (channels != 1 && channels != 3 && channels != 4))
        return dn_error_set(err, DN_EINVAL, "cannot encode a %dx%d PNG with %d channels", w, h,
                            channels);
    memset(png, 0, sizeof *png);
    png->version = PNG_IMAGE_VERSION;
    png->width = (png_uint_32)w;
    png->height = (png_uint_32)h;
    png->format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB
                                                                  : PNG_FORMAT_RGBA;
    return DN_OK;
}

int dn_png_write(const char *path, int w, int h, int channels, const uint8_t *pixels,
                 dn_error *err)
{
    png_image png;
    int rc = dn_png_setup(&png, w, h, channels, pixels, err);
    if (rc != DN_OK)
        return rc;
    /* libpng reports failures as text only (and removes the partial file); errno still
     * holds the cause, which tells a full disk apart. */
    errno = 0;
    if (!png_image_write_to_file(&png, path, 0, pixels, 0, NULL))
        return dn_error_set(err, errno == ENOSPC ? DN_ENOSPC : DN_EIO, "cannot write %s: %s",
                            path, png.message);
    return DN_OK;
}

int dn_png_encode_memory(int w, int h, int channels, const uint8_t *pixels, uint8_t **out,
                         size_t *out_len, dn_error *err)
{
    png_image png;
    int rc = dn_png_setup(&png, w, h, channels, pixels, err);
    if (rc != DN_OK)
        return rc;
    /* One compression pass into a worst-case buffer, then shrunk. png.h's own
     * PNG_IMAGE_DATA_SIZE multiplies in 32 bits: the raw size (a filter byte per row)
     * is computed here in 64. */
    png_alloc_size_t raw = (png_alloc_size_t)h * ((png_alloc_size_t)w * channels + 1);
    png_alloc_size_t cap = PNG_IMAGE_PNG_SIZE_MAX_(png, PNG_ZLIB_MAX_SIZE(raw)), n = cap;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return dn_error_set(err, DN_ENOMEM, "out of memory encoding a %dx%d PNG", w, h);
    if (!png_image_write_to_memory(&png, buf, &n, 0, pixels, 0, NULL)) {
        /* Valid parameters and a worst-case buffer: only libpng's allocations can fail. */
        free(buf);
        return dn_error_set(err, DN_ENOMEM, "cannot encode a %dx%d PNG: %s", w, h, png.message);
    }
    uint8_t *fit = realloc(buf, n);
    *out = fit ? fit : buf;
    *out_len = n;
    return DN_OK;
}
