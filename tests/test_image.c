/* Tests of dn_image: fixtures are encoded here (libpng, TurboJPEG), never read from disk,
 * except the photos of ../shared/images when present. */
#include "test_util.h"

#include <math.h>
#include <png.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "dn_image.h"
#include "dn_limits.h"

typedef struct {
    uint8_t *p;
    size_t n;
} buf_t;

static uint8_t *random_bytes(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n);
    cr_assert(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)dn_test_rand(&seed);
    return p;
}

/* Smooth ramps (one per channel), which JPEG at quality 100 keeps within a few levels. */
static uint8_t *gradient(int w, int h, int ch)
{
    uint8_t *p = malloc((size_t)w * h * ch), *q = p;
    cr_assert(p);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++)
                *q++ = (uint8_t)(c == 0 ? x * 255 / (w - 1)
                                 : c == 1 ? y * 255 / (h - 1)
                                          : 255 - (x + y) * 255 / (w + h - 2));
    return p;
}

static const uint8_t *pixel(const dn_image *img, int x, int y)
{
    return img->rgb + ((size_t)y * img->width + x) * 3;
}

static void assert_rgb(const dn_image *img, int x, int y, int r, int g, int b, int tol)
{
    const uint8_t *p = pixel(img, x, y);
    cr_assert(abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol,
              "pixel (%d,%d) is %d,%d,%d, want %d,%d,%d (+-%d)", x, y, p[0], p[1], p[2], r, g, b,
              tol);
}

static int decode(buf_t b, dn_image *img, const dn_decode_opts *opts, dn_error *err)
{
    dn_image_init(img);
    dn_error_clear(err);
    return dn_image_decode(img, b.p, b.n, opts, err);
}

static void assert_decoded(int rc, const dn_error *err, const dn_image *img, int w, int h)
{
    cr_assert_eq(rc, DN_OK, "decode failed: %s", err->msg);
    cr_assert(img->width == w && img->height == h, "decoded %dx%d, want %dx%d", img->width,
              img->height, w, h);
}

/* A rejected input: the right code, a message naming the problem, and no image left. */
static void assert_rejected(int rc, const dn_error *err, const dn_image *img, int code,
                            const char *text)
{
    cr_assert_eq(rc, code, "rc %d (%s), want %d", rc, err->msg, code);
    cr_assert_eq(err->code, code);
    cr_assert(strstr(err->msg, text), "message \"%s\" lacks \"%s\"", err->msg, text);
    cr_assert(!img->rgb && img->width == 0 && img->height == 0, "a rejected decode left an image");
}

/* ---- Fixture encoders ---------------------------------------------------------------- */

static buf_t jpeg_encode(const uint8_t *px, int w, int h, int pf, int subsamp, int flags)
{
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    cr_assert_eq(tjCompress2(tj, px, w, 0, h, pf, &jpg, &n, subsamp, 100, flags), 0, "%s",
                 tjGetErrorStr2(tj));
    buf_t b = {malloc(n), n};
    cr_assert(b.p);
    memcpy(b.p, jpg, n);
    tjFree(jpg);
    tjDestroy(tj);
    return b;
}

/* The marker segment m (its 0xFF byte) among those before the first scan. */
static uint8_t *jpeg_segment(buf_t b, uint8_t m)
{
    for (size_t i = 2; i + 4 <= b.n && b.p[i] == 0xFF && b.p[i + 1] != 0xDA;
         i += 2 + ((size_t)b.p[i + 2] << 8 | b.p[i + 3]))
        if (b.p[i + 1] == m)
            return b.p + i;
    cr_assert_fail("no JPEG marker 0x%02X", m);
    return NULL;
}

static void png_mem_write(png_structp png, png_bytep data, size_t n)
{
    buf_t *b = png_get_io_ptr(png);
    b->p = realloc(b->p, b->n + n);
    cr_assert(b->p);
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void png_mem_flush(png_structp png)
{
    (void)png;
}

/* Through libpng's full API, which writes exactly the colour type and depth asked for
 * and no gAMA chunk (the simplified writer picks them, and tags 16-bit data as linear).
 * rows are packed PNG rows, 16-bit samples big-endian. */
static buf_t png_encode_raw(int w, int h, int color_type, int depth, const uint8_t *rows,
                            const png_color *palette, int npalette)
{
    buf_t b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png && info);
    png_set_write_fn(png, &b, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, npalette);
    png_write_info(png, info);
    size_t stride = png_get_rowbytes(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, rows + (size_t)y * stride);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return b;
}

static buf_t png_encode(int w, int h, int channels, const uint8_t *px)
{
    buf_t b;
    dn_error err;
    cr_assert_eq(dn_png_encode_memory(w, h, channels, px, &b.p, &b.n, &err), DN_OK, "%s",
                 err.msg);
    return b;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static uint32_t png_crc(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = c >> 1 ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

/* ---- PNG colour types ---------------------------------------------------------------- */

Test(image, png_grey)
{
    static const uint8_t grey[6] = {0, 1, 77, 128, 254, 255};
    buf_t b = png_encode_raw(3, 2, PNG_COLOR_TYPE_GRAY, 8, grey, NULL, 0);
    dn_image img;
    dn_error err;
    assert_decoded(decode(b, &img, NULL, &err), &err, &img, 3, 2);
    for (int i = 0; i < 6; i++)
        assert_rgb(&img, i % 3, i / 3, grey[i], grey[i], grey[i], 0);
    dn_image_free(&img);
    free(b.p);
}

/* Alpha is composited onto black in linear light (libpng's gamma 2.2): 255 at alpha 128
 * gives 186, not 128. Under ASan (malloc filled with 0xBE) this also catches compositing
 * onto the uninitialised buffer, which is what libpng does without a background. */
Test(image, png_grey_alpha)
{
    static const uint8_t ga[8] = {200, 255, 13, 255, 255, 0, 255, 128};
    buf_t b = png_encode_raw(4, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, NULL, 0);
    dn_image img;
    dn_error err;
    assert_decoded(decode(b, &img, NULL, &err), &err, &img, 4, 1);
    assert_rgb(&img, 0, 0, 200, 200, 200, 0);
    assert_rgb(&img, 1, 0, 13, 13, 13, 0);
    assert_rgb(&img, 2, 0, 0, 0, 0, 0);
    assert_rgb(&img, 3, 0, 186, 186, 186, 1);
    dn_image_free(&img);
    free(b.p);
}

Test(image, png_palette)
{
    static const png_color pal[4] = {{255, 0, 0}, {0, 200, 0}, {1, 2, 3}, {250, 128, 7}};
    static const uint8_t idx[6] = {0, 1, 2, 3, 3, 0};
    buf_t b = png_encode_raw(3, 2, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 4);
    dn_image img;
    dn_error err;
    assert_decoded(decode(b, &img, NULL, &err), &err, &img, 3, 2);
    for (int i = 0; i < 6; i++)
        assert_rgb(&img, i % 3, i / 3, pal[idx[i]].red, pal[idx[i]].green, pal[idx[i]].blue, 0);
    dn_image_free(&img);
    free(b.p);
}

Test(image, png_rgb_exact)
{
    uint8_t *px = random_bytes(17 * 9 * 3, 1);
    buf_t b = png_encode_raw(17, 9, PNG_COLOR_TYPE_RGB, 8, px, NULL, 0);
    dn_image img;
    dn_error err;
    assert_decoded(decode(b, &img, NULL, &err), &err, &img, 17, 9);
    cr_assert(memcmp(img.rgb, px, 17 * 9 * 3) == 0);
    dn_image_free(&img);
    free(b.p);
    free(px);
}

Test(image, png_rgba)
{
    static const uint8_t rgba[12] = {10, 20, 30, 255, 200, 100, 50, 255, 9, 99, 199, 0};
    buf_t b = png_encode_raw(3, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, NULL, 0);
    dn_image img;
    dn_error err;
    assert_decoded(decode(b, &img, NULL, &err), &err, &img, 3, 1);
    assert_rgb(&img, 0, 0, 10, 20, 30, 0);
    assert_rgb(&img, 1, 0, 200, 100, 50, 0);
    assert_rgb(&img, 2, 0, 0, 0, 0, 0);
    dn_image_free(&img);
    free(b.p);
}

/* 16-bit samples are scaled to 8 bits, not gamma-encoded as libpng's simplified RGB8
 * path would (0x7FFF must give 127 or 128, not 186). */
Test(image, png_16bit)
{
    static const uint16_t v[6] = {0, 65535, 0x8080, 0x12FF, 0xAB00, 0x7FFF};
    uint8_t rows[2 * 3 * 6];
    for (int i = 0; i < 6; i++)
        for (int c = 0; c < 3; c++) {
            uint16_t s = c == 1 ? v[5 - i] : v[i];
            rows[(i * 3 + c) * 2] = (uint8_t)(s >> 8);
            rows[(i * 3 + c) * 2 + 1] = (uint8_t)s;
        }
    buf_t b = png_encode_raw(3, 2, PNG_COLOR_TYPE_RGB, 16, rows, NULL, 0);
    dn_image img;
    dn_error err;
    assert_decoded(decode(b, &img, NULL, &err), &err, &img, 3, 2);
    int want[6];
    for (int i = 0; i < 6; i++)
        want[i] = (int)((v[i] * 255u + 32767u) / 65535u);
    cr_assert(want[0] == 0 && want[1] == 255 && want[5] == 127 && want[2] == 128);
    for (int i = 0; i < 6; i++)
        assert_rgb(&img, i % 3, i / 3, want[i], want[5 - i], want[i], 0);
    dn_image_free(&img);
    free(b.p);
}

/* ---- JPEG ---------------------------------------------------------------------------- */

/* Decodes a JPEG of px and checks every pixel is within tol of px (grey replicated). */
static void check_jpeg_roundtrip(const uint8_t *px, int w, int h, int pf, int subsamp,
                                 int flags, int tol)
{
    buf_t b = jpeg_encode(px, w, h, pf, subsamp, flags);
    int ch = pf == TJPF_GRAY ? 1 : 3;
    dn_image img;
    dn_error err;
    assert_decoded(decode(b, &img, NULL, &err), &err, &img, w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *s = px + ((size_t)y * w + x) * ch;
            assert_rgb(&img, x, y, s[0], s[ch / 2], s[ch - 1], tol);
        }
    dn_image_free(&img);
    free(b.p);
}

Test(image, jpeg_grey)
{
    uint8_t *px = gradient(40, 24, 1);
    check_jpeg_roundtrip(px, 40, 24, TJPF_GRAY, TJSAMP_GRAY, 0, 2);
    free(px);
}

Test(image, jpeg_rgb_444)
{
    uint8_t *px = gradient(40, 24, 3);
    check_jpeg_roundtrip(px, 40, 24, TJPF_RGB, TJSAMP_444, 0, 3);
    free(px);
}

Test(image, jpeg_progressive)
{
    uint8_t *px = gradient(40, 24, 3);
    buf_t b = jpeg_encode(px, 40, 24, TJPF_RGB, TJSAMP_444, TJFLAG_PROGRESSIVE);
    jpeg_segment(b, 0xC2); /* the fixture really is progressive (SOF2) */
    free(b.p);
    check_jpeg_roundtrip(px, 40, 24, TJPF_RGB, TJSAMP_444, TJFLAG_PROGRESSIVE, 3);
    free(px);
}

/* TurboJPEG writes CMYK as YCCK (Adobe transform 2); transform 0 makes it plain CMYK. */
Test(image, jpeg_cmyk_refused)
{
    uint8_t *px = random_bytes(16 * 16 * 4, 2);
    buf_t b = jpeg_encode(px, 16, 16, TJPF_CMYK, TJSAMP_444, 0);
    uint8_t *adobe = jpeg_segment(b, 0xEE) + 4; /* APP14 payload: "Adobe", ..., transform */
    cr_assert(memcmp(adobe, "Adobe", 5) == 0 && adobe[11] == 2, "expected Adobe YCCK");
    for (int transform = 2; transform >= 0; transform -= 2) {
        adobe[11] = (uint8_t)transform;
        dn_image img;
        dn_error err;
        assert_rejected(decode(b, &img, NULL, &err), &err, &img, DN_EUNSUPPORTED,
                        "CMYK JPEGs are not supported");
    }
    free(b.p);
    free(px);
}

/* ---- EXIF orientation ---------------------------------------------------------------- */

/* A stored image of 3x2 flat 8x8 blocks, A B C over D E F, each its own colour. */
#define BLK 8
static const uint8_t block_rgb[6][3] = {{255, 0, 0},   {0, 255, 0},   {0, 0, 255},
                                        {255, 255, 0}, {0, 255, 255}, {255, 0, 255}};

static buf_t blocks_jpeg(void)
{
    uint8_t px[3 * BLK * 2 * BLK * 3];
    for (int y = 0; y < 2 * BLK; y++)
        for (int x = 0; x < 3 * BLK; x++)
            memcpy(px + ((size_t)y * 3 * BLK + x) * 3, block_rgb[(y / BLK) * 3 + x / BLK], 3);
    return jpeg_encode(px, 3 * BLK, 2 * BLK, TJPF_RGB, TJSAMP_444, 0);
}

/* Checks every pixel of img against a layout of blocks, e.g. "DA/EB/FC" (rows by '/'). */
static void assert_blocks(const dn_image *img, const char *layout)
{
    int cols = (int)strcspn(layout, "/"), rows = ((int)strlen(layout) + 1) / (cols + 1);
    cr_assert(img->width == cols * BLK && img->height == rows * BLK,
              "image is %dx%d, layout %s wants %dx%d", img->width, img->height, layout,
              cols * BLK, rows * BLK);
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            const uint8_t *c = block_rgb[layout[(y / BLK) * (cols + 1) + x / BLK] - 'A'];
            assert_rgb(img, x, y, c[0], c[1], c[2], 4);
        }
}

/* A TIFF block holding IFD0 with a Make entry then an Orientation entry (SHORT, 1). */
static size_t exif_tiff(uint8_t *t, int le, uint16_t orientation)
{
    uint8_t be[] = {'M', 'M', 0, 42, 0, 0, 0, 8, /* header, IFD0 at 8 */
                    0, 2,                         /* two entries */
                    0x01, 0x0F, 0, 2, 0, 0, 0, 4, 'a', 'b', 'c', 0, /* Make, ASCII "abc" */
                    0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0,       /* Orientation */
                    0, 0, 0, 0};                  /* no next IFD */
    be[30] = (uint8_t)(orientation >> 8);
    be[31] = (uint8_t)orientation;
    memcpy(t, be, sizeof be);
    if (le) { /* same block little-endian: swap every multi-byte field */
        static const uint8_t fields[][2] = {{2, 2},  {4, 4},  {8, 2},  {10, 2}, {12, 2},
                                            {14, 4}, {22, 2}, {24, 2}, {26, 4}, {30, 2},
                                            {34, 4}};
        t[0] = t[1] = 'I';
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            for (int k = 0; k < fields[f][1]; k++)
                t[fields[f][0] + k] = be[fields[f][0] + fields[f][1] - 1 - k];
    }
    return sizeof be;
}

/* SOI then an APP1 "Exif\0\0" + tiff segment, in a buffer of exactly that size: a read
 * past the segment is an ASan report. */
static buf_t exif_only(const uint8_t *tiff, size_t n)
{
    size_t seg = 2 + 6 + n;
    buf_t b = {malloc(4 + seg), 4 + seg};
    cr_assert(b.p);
    memcpy(b.p, (uint8_t[]){0xFF, 0xD8, 0xFF, 0xE1, (uint8_t)(seg >> 8), (uint8_t)seg}, 6);
    memcpy(b.p + 6, "Exif\0\0", 6);
    memcpy(b.p + 12, tiff, n);
    return b;
}

/* jpeg with that APP1 segment inserted after its JFIF APP0. */
static buf_t with_exif(buf_t jpeg, const uint8_t *tiff, size_t n)
{
    const uint8_t *app0 = jpeg_segment(jpeg, 0xE0);
    size_t at = (size_t)(app0 - jpeg.p) + 2 + ((size_t)app0[2] << 8 | app0[3]);
    buf_t app1 = exif_only(tiff, n), b = {malloc(jpeg.n + app1.n - 2), jpeg.n + app1.n - 2};
    cr_assert(b.p);
    memcpy(b.p, jpeg.p, at);
    memcpy(b.p + at, app1.p + 2, app1.n - 2);
    memcpy(b.p + at + app1.n - 2, jpeg.p + at, jpeg.n - at);
    free(app1.p);
    return b;
}

Test(image, exif_orientation_all)
{
    /* Index = orientation: how ABC/DEF is displayed (EXIF 2.32, tag 0x0112). */
    static const char *const shown[9] = {
        NULL,      "ABC/DEF", "CBA/FED",  /* 2: mirrored left-right */
        "FED/CBA",                        /* 3: rotated 180 */
        "DEF/ABC",                        /* 4: mirrored top-bottom */
        "AD/BE/CF",                       /* 5: transposed */
        "DA/EB/FC",                       /* 6: rotated 90 clockwise */
        "FC/EB/DA",                       /* 7: transverse */
        "CF/BE/AD",                       /* 8: rotated 90 counter-clockwise */
    };
    buf_t jpeg = blocks_jpeg();
    for (int le = 0; le <= 1; le++)
        for (int o = 1; o <= 8; o++) {
            uint8_t tiff[64];
            buf_t b = with_exif(jpeg, tiff, exif_tiff(tiff, le, (uint16_t)o));
            dn_image img;
            dn_error err;
            cr_assert_eq(decode(b, &img, NULL, &err), DN_OK, "%s", err.msg);
            assert_blocks(&img, shown[o]);
            dn_image_free(&img);
            free(b.p);
        }
    free(jpeg.p);
}

/* Malformed EXIF reads as orientation 1, never out of bounds (ASan run); variant 0 is
 * the well-formed control. */
Test(image, exif_hostile)
{
    for (int variant = 0; variant < 11; variant++) {
        uint8_t t[64];
        size_t n = exif_tiff(t, variant & 1, 6);
        switch (variant) {
        case 1: n = 7; break;                                /* header cut short */
        case 2: t[2] = t[3] = 43; break;                     /* bad TIFF magic */
        case 3: memcpy(t + 4, "\xFF\xFF\xFF\xF0", 4); break; /* IFD0 far outside */
        case 4: t[8] = t[9] = t[22] = t[23] = 0xFF; break;   /* 65535 entries, no 0x0112 */
        case 5: n = 28; break;                               /* Orientation entry cut */
        case 6: t[30] = t[31] = 9; break;                    /* value out of 1..8 */
        case 7: t[24] = t[25] = 4; break;                    /* type not SHORT */
        case 8: t[0] = t[1] = 'X'; break;                    /* unknown byte order */
        case 9: memcpy(t + 4, "\x25\x00\x00\x00", 4); break; /* IFD0 at n-1 (II) */
        }
        buf_t b = exif_only(t, n);
        if (variant == 10)
            b.p[4] = 0x10; /* segment length beyond the data */
        int o = dn_jpeg_exif_orientation(b.p, b.n);
        cr_assert_eq(o, variant == 0 ? 6 : 1, "variant %d: orientation %d", variant, o);
        free(b.p);
    }
    buf_t jpeg = blocks_jpeg(), b = with_exif(jpeg, (const uint8_t *)"MM\0\x2A\xFF\xFF\xFF\xF0", 8);
    dn_image img;
    dn_error err;
    cr_assert_eq(decode(b, &img, NULL, &err), DN_OK, "%s", err.msg);
    assert_blocks(&img, "ABC/DEF");
    dn_image_free(&img);
    free(b.p);
    free(jpeg.p);
}

/* ---- Rejects ------------------------------------------------------------------------- */

Test(image, empty_and_garbage)
{
    dn_image img;
    dn_error err;
    static const uint8_t one = 0xFF;
    assert_rejected(decode((buf_t){NULL, 0}, &img, NULL, &err), &err, &img, DN_EFORMAT, "empty");
    assert_rejected(decode((buf_t){(uint8_t *)&one, 0}, &img, NULL, &err), &err, &img,
                    DN_EFORMAT, "empty");
    uint8_t *junk = random_bytes(300, 3);
    junk[0] = 'G';
    assert_rejected(decode((buf_t){junk, 300}, &img, NULL, &err), &err, &img, DN_EFORMAT,
                    "not a JPEG or PNG image");
    memcpy(junk, "\xFF\xD8\xFF", 3); /* JPEG magic, then noise */
    assert_rejected(decode((buf_t){junk, 300}, &img, NULL, &err), &err, &img, DN_EFORMAT,
                    "bad JPEG");
    memcpy(junk, "\x89PNG\r\n\x1A\n", 8);
    assert_rejected(decode((buf_t){junk, 300}, &img, NULL, &err), &err, &img, DN_EFORMAT,
                    "bad PNG");
    free(junk);
}

Test(image, jpeg_truncated_and_corrupt)
{
    uint8_t *px = random_bytes(64 * 64 * 3, 4);
    buf_t b = jpeg_encode(px, 64, 64, TJPF_RGB, TJSAMP_420, 0);
    dn_image img;
    dn_error err;
    assert_rejected(decode((buf_t){b.p, b.n / 2}, &img, NULL, &err), &err, &img, DN_EFORMAT,
                    "Premature end of JPEG file");
    assert_rejected(decode((buf_t){b.p, 40}, &img, NULL, &err), &err, &img, DN_EFORMAT,
                    "bad JPEG");
    uint8_t *sof = jpeg_segment(b, 0xC0);
    sof[4] = 12; /* sample precision */
    assert_rejected(decode(b, &img, NULL, &err), &err, &img, DN_EFORMAT, "precision");
    free(b.p);
    free(px);
}

Test(image, png_truncated_and_corrupt)
{
    uint8_t *px = random_bytes(64 * 64 * 3, 5);
    buf_t b = png_encode(64, 64, 3, px);
    dn_image img;
    dn_error err;
    assert_rejected(decode((buf_t){b.p, b.n / 2}, &img, NULL, &err), &err, &img, DN_EFORMAT,
                    "bad PNG");
    assert_rejected(decode((buf_t){b.p, 30}, &img, NULL, &err), &err, &img, DN_EFORMAT,
                    "bad PNG");
    uint8_t *idat = memmem(b.p, b.n, "IDAT", 4);
    cr_assert(idat);
    idat[100] ^= 0x55;
    assert_rejected(decode(b, &img, NULL, &err), &err, &img, DN_EFORMAT, "CRC");
    free(b.p);
    free(px);
}

/* IHDR claims 100000x100000 (valid CRC): refused from the header, before any allocation. */
Test(image, png_oversized_header)
{
    uint8_t px[3] = {1, 2, 3};
    buf_t b = png_encode(1, 1, 3, px);
    cr_assert(memcmp(b.p + 12, "IHDR", 4) == 0);
    put_be32(b.p + 16, 100000);
    put_be32(b.p + 20, 100000);
    put_be32(b.p + 29, png_crc(b.p + 12, 17));
    dn_image img;
    dn_error err;
    assert_rejected(decode(b, &img, NULL, &err), &err, &img, DN_ETOOBIG, "100000x100000");
    cr_assert(strstr(err.msg, "65535"), "%s", err.msg);
    free(b.p);
}

Test(image, jpeg_oversized_header)
{
    uint8_t *px = gradient(16, 16, 3);
    buf_t b = jpeg_encode(px, 16, 16, TJPF_RGB, TJSAMP_444, 0);
    uint8_t *sof = jpeg_segment(b, 0xC0);
    memcpy(sof + 5, "\xEA\x60\xEA\x60", 4); /* height, width = 60000 */
    dn_image img;
    dn_error err;
    assert_rejected(decode(b, &img, NULL, &err), &err, &img, DN_ETOOBIG, "60000x60000");
    cr_assert(strstr(err.msg, "40000000"), "%s", err.msg);
    free(b.p);
    free(px);
}

/* The limit is exact, and holds for an EXIF-rotated JPEG (24x16 shown as 16x24). */
Test(image, max_pixels_option)
{
    uint8_t *px = gradient(10, 10, 3), tiff[64];
    buf_t jpeg = blocks_jpeg();
    buf_t fixtures[3] = {png_encode(10, 10, 3, px),
                         jpeg_encode(px, 10, 10, TJPF_RGB, TJSAMP_444, 0),
                         with_exif(jpeg, tiff, exif_tiff(tiff, 1, 6))};
    const uint64_t pixels[3] = {100, 100, 384};
    for (int f = 0; f < 3; f++) {
        dn_image img;
        dn_error err;
        dn_decode_opts opts = {pixels[f]};
        cr_assert_eq(decode(fixtures[f], &img, &opts, &err), DN_OK, "%s", err.msg);
        cr_assert_eq((uint64_t)img.width * img.height, pixels[f]);
        dn_image_free(&img);
        opts.max_pixels = pixels[f] - 1;
        char want[32];
        snprintf(want, sizeof want, "over the limit of %u", (unsigned)pixels[f] - 1);
        assert_rejected(decode(fixtures[f], &img, &opts, &err), &err, &img, DN_ETOOBIG, want);
        free(fixtures[f].p);
    }
    free(jpeg.p);
    free(px);
}

/* ---- Files and the PNG encoder ------------------------------------------------------- */

static void temp_path(char *path, size_t n)
{
    snprintf(path, n, "/tmp/dn_test_image_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
}

Test(image, png_write_and_load)
{
    char path[64];
    temp_path(path, sizeof path);
    uint8_t *px = random_bytes(13 * 7 * 3, 6);
    dn_error err;
    cr_assert_eq(dn_png_write(path, 13, 7, 3, px, &err), DN_OK, "%s", err.msg);
    dn_image img;
    dn_image_init(&img);
    cr_assert_eq(dn_image_load(&img, path, NULL, &err), DN_OK, "%s", err.msg);
    cr_assert(img.width == 13 && img.height == 7 && memcmp(img.rgb, px, 13 * 7 * 3) == 0);
    dn_image_free(&img);
    dn_image_free(&img); /* safe twice */
    cr_assert(!img.rgb && img.width == 0 && img.height == 0);
    unlink(path);
    free(px);
}

Test(image, load_errors)
{
    char path[64];
    temp_path(path, sizeof path);
    dn_image img;
    dn_image_init(&img);
    dn_error err;
    cr_assert_eq(truncate(path, (off_t)DN_MAX_ENCODED_IMAGE_BYTES + 1), 0); /* sparse */
    assert_rejected(dn_image_load(&img, path, NULL, &err), &err, &img, DN_ETOOBIG, path);
    cr_assert_eq(truncate(path, 0), 0);
    assert_rejected(dn_image_load(&img, path, NULL, &err), &err, &img, DN_EFORMAT, "empty");
    unlink(path);
    assert_rejected(dn_image_load(&img, path, NULL, &err), &err, &img, DN_EIO, path);
    assert_rejected(dn_image_load(&img, "/tmp", NULL, &err), &err, &img, DN_EIO,
                    "not a regular file");
    uint8_t px[3] = {0};
    cr_assert_eq(dn_png_write("/nonexistent-dir/x.png", 1, 1, 3, px, &err), DN_EIO);
    cr_assert(strstr(err.msg, "/nonexistent-dir/x.png"), "%s", err.msg);
}

/* Grey and RGBA (opaque) come back as RGB exactly; bad parameters are refused. */
Test(image, png_encode_channels)
{
    uint8_t *px = random_bytes(11 * 5 * 4, 7);
    for (int ch = 1; ch <= 4; ch++) {
        if (ch == 2)
            continue;
        for (int i = 0; ch == 4 && i < 11 * 5; i++)
            px[i * 4 + 3] = 255;
        buf_t b = png_encode(11, 5, ch, px);
        cr_assert(b.n > 8 && be32(b.p + 8) == 13, "no IHDR");
        dn_image img;
        dn_error err;
        assert_decoded(decode(b, &img, NULL, &err), &err, &img, 11, 5);
        for (int i = 0; i < 11 * 5; i++) {
            const uint8_t *s = px + i * ch;
            assert_rgb(&img, i % 11, i / 11, s[0], s[ch > 1], s[ch > 1 ? 2 : 0], 0);
        }
        dn_image_free(&img);
        free(b.p);
    }
    uint8_t *out = NULL;
    size_t n;
    dn_error err;
    cr_assert_eq(dn_png_encode_memory(11, 5, 2, px, &out, &n, &err), DN_EINVAL);
    cr_assert_eq(dn_png_encode_memory(0, 5, 3, px, &out, &n, &err), DN_EINVAL);
    cr_assert_eq(dn_png_encode_memory(11, 5, 3, NULL, &out, &n, &err), DN_EINVAL);
    cr_assert(!out);
    free(px);
}

/* ---- Resize and normalisation -------------------------------------------------------- */

static dn_image image_of(int w, int h, const uint8_t *rgb)
{
    dn_image img = {w, h, malloc((size_t)w * h * 3)};
    cr_assert(img.rgb);
    memcpy(img.rgb, rgb, (size_t)w * h * 3);
    return img;
}

static float *resized(const dn_image *img, int w, int h)
{
    float *out = malloc(sizeof(float) * w * h * 3);
    dn_error err;
    cr_assert(out);
    cr_assert_eq(dn_image_resize(img, w, h, out, &err), DN_OK, "%s", err.msg);
    return out;
}

/* Weight of source sample j in output sample i along one axis, from the definitions:
 * area coverage when shrinking by more than 2x, else PyTorch bilinear, align_corners=False. */
static double ref_weight(int in, int out, int i, int j)
{
    double s = (double)in / out;
    if (s > 2) {
        double overlap = fmin(j + 1, (i + 1) * s) - fmax(j, i * s);
        return overlap > 0 ? overlap / s : 0;
    }
    double src = fmax((i + 0.5) * s - 0.5, 0);
    int i0 = (int)floor(src), i1 = i0 + 1 < in ? i0 + 1 : in - 1;
    return (j == i0) * (1 - (src - i0)) + (j == i1) * (src - i0);
}

Test(image, resize_matches_reference)
{
    static const int sizes[][2] = {{50, 61}, {20, 13}, {18, 12}, {5, 3}, {74, 11}, {1, 1}, {37, 2}};
    uint8_t *px = random_bytes(37 * 23 * 3, 8);
    dn_image img = image_of(37, 23, px);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int ow = sizes[s][0], oh = sizes[s][1];
        float *out = resized(&img, ow, oh);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                for (int c = 0; c < 3; c++) {
                    double want = 0;
                    for (int v = 0; v < img.height; v++)
                        for (int u = 0; u < img.width; u++)
                            want += ref_weight(img.height, oh, y, v) *
                                    ref_weight(img.width, ow, x, u) * pixel(&img, u, v)[c];
                    float got = out[((size_t)y * ow + x) * 3 + c];
                    cr_assert(fabs(got - want) < 1e-3, "%dx%d at (%d,%d,%d): %f, want %f", ow,
                              oh, x, y, c, got, want);
                }
        free(out);
    }
    dn_image_free(&img);
    free(px);
}

/* Known values of F.interpolate(mode="bilinear", align_corners=False): [0,100] to 4 is
 * [0,25,75,100]; a 2x shrink averages pairs. */
Test(image, resize_bilinear_known_values)
{
    dn_image two = image_of(2, 1, (const uint8_t[]){0, 0, 0, 100, 100, 100});
    float *up = resized(&two, 4, 1);
    static const float want_up[4] = {0, 25, 75, 100};
    for (int x = 0; x < 4; x++)
        cr_assert_float_eq(up[x * 3], want_up[x], 1e-4, "x=%d: %f", x, up[x * 3]);
    dn_image four = image_of(4, 1, (const uint8_t[]){10, 0, 0, 20, 0, 0, 100, 0, 0, 51, 0, 0});
    float *down = resized(&four, 2, 1);
    cr_assert_float_eq(down[0], 15.0f, 1e-4);
    cr_assert_float_eq(down[3], 75.5f, 1e-4);
    free(up);
    free(down);
    dn_image_free(&two);
    dn_image_free(&four);
}

Test(image, resize_identity_and_area_blocks)
{
    uint8_t *px = random_bytes(32 * 16 * 3, 9);
    dn_image img = image_of(32, 16, px);
    float *same = resized(&img, 32, 16);
    for (int i = 0; i < 32 * 16 * 3; i++)
        cr_assert_eq(same[i], (float)px[i], "sample %d", i);
    float *quarter = resized(&img, 8, 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++)
            for (int c = 0; c < 3; c++) {
                int sum = 0;
                for (int v = 0; v < 4; v++)
                    for (int u = 0; u < 4; u++)
                        sum += pixel(&img, x * 4 + u, y * 4 + v)[c];
                cr_assert_float_eq(quarter[(y * 8 + x) * 3 + c], sum / 16.0f, 1e-3,
                                   "block (%d,%d,%d)", x, y, c);
            }
    free(same);
    free(quarter);
    dn_image_free(&img);
    free(px);
}

Test(image, resize_constant_stays_constant)
{
    static const int sizes[][2] = {{1, 1}, {7, 3}, {19, 40}, {100, 64}, {33, 17}, {224, 224}};
    uint8_t *px = malloc(33 * 17 * 3);
    cr_assert(px);
    for (int i = 0; i < 33 * 17; i++)
        memcpy(px + i * 3, (uint8_t[]){200, 7, 255}, 3);
    dn_image img = image_of(33, 17, px);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s][0] * sizes[s][1];
        float *out = resized(&img, sizes[s][0], sizes[s][1]);
        for (int i = 0; i < n; i++)
            cr_assert(fabsf(out[i * 3] - 200) < 1e-3f && fabsf(out[i * 3 + 1] - 7) < 1e-3f &&
                          fabsf(out[i * 3 + 2] - 255) < 1e-3f,
                      "%dx%d pixel %d: %f %f %f", sizes[s][0], sizes[s][1], i, out[i * 3],
                      out[i * 3 + 1], out[i * 3 + 2]);
        free(out);
    }
    dn_image_free(&img);
    free(px);
}

Test(image, resize_bad_arguments)
{
    uint8_t px[3] = {0};
    dn_image img = image_of(1, 1, px), empty;
    dn_image_init(&empty);
    float out[3];
    dn_error err;
    cr_assert_eq(dn_image_resize(&img, 0, 1, out, &err), DN_EINVAL);
    cr_assert_eq(dn_image_resize(&img, 1, DN_MAX_IMAGE_SIDE + 1, out, &err), DN_EINVAL);
    cr_assert_eq(dn_image_resize(&empty, 1, 1, out, &err), DN_EINVAL);
    cr_assert_eq(dn_image_resize(&img, 1, 1, NULL, &err), DN_EINVAL);
    dn_image_free(&img);
}

Test(image, normalize_pm1)
{
    float x[4] = {0, 127.5f, 255, 51};
    dn_normalize_pm1(x, 4);
    cr_assert(x[0] == -1.0f && x[1] == 0.0f && x[2] == 1.0f, "%f %f %f", x[0], x[1], x[2]);
    cr_assert_float_eq(x[3], -0.6f, 1e-6);
    float levels[256];
    for (int i = 0; i < 256; i++)
        levels[i] = (float)i;
    dn_normalize_pm1(levels, 256);
    for (int i = 0; i < 256; i++) /* bit-exact with the float32 reference formula */
        cr_assert(levels[i] == (float)i / 127.5f - 1.0f, "level %d: %.9g", i, levels[i]);
}

Test(image, to_input)
{
    dn_image img = image_of(2, 1, (const uint8_t[]){0, 255, 51, 255, 0, 102});
    float out[6];
    dn_error err;
    cr_assert_eq(dn_image_to_input(&img, 2, 1, out, &err), DN_OK, "%s", err.msg);
    static const float want[6] = {-1, 1, -0.6f, 1, -1, -0.2f};
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(out[i], want[i], 1e-6, "%d: %f", i, out[i]);
    float half[3];
    cr_assert_eq(dn_image_to_input(&img, 1, 1, half, &err), DN_OK, "%s", err.msg);
    cr_assert_float_eq(half[0], 0.0f, 1e-6); /* (0+255)/2 -> 127.5 -> 0 */
    dn_image_free(&img);
}

/* ---- The photos of ../shared --------------------------------------------------------- */

Test(image, shared_photos)
{
    DN_REQUIRE_SHARED(dir);
    static const struct {
        const char *name;
        int w, h;
    } photos[] = {{"parrot.jpg", 512, 929}, {"hot_dog.jpg", 512, 384}, {"eagle.jpg", 773, 512},
                  {"cat.png", 512, 341},    {"bird.png", 512, 343}};
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/images/%s", dir, photos[i].name);
        dn_image img;
        dn_image_init(&img);
        dn_error err;
        cr_assert_eq(dn_image_load(&img, path, NULL, &err), DN_OK, "%s: %s", path, err.msg);
        cr_assert(img.width == photos[i].w && img.height == photos[i].h, "%s is %dx%d",
                  photos[i].name, img.width, img.height);
        dn_image_free(&img);
    }
}
