/* Writes the seed corpora of the fuzz targets (make fuzz-seeds): tests/fuzz/corpus/<target>/.
 * Everything is generated here, nothing is copied from ../shared: tiny PNG and JPEG images
 * of every kind the decoder handles, model and safetensors files trained on made-up
 * features, a TFLite flatbuffer with one operator of each supported kind, JSON and
 * multipart bodies, and service requests in the framing of fuzz_targets.h.
 *
 * Usage: fuzz_seeds OUT_DIR (every seed is rewritten; a seed the code under test refuses
 * where it should not is an error). */
#include "dn_base64.h"
#include "dn_image.h"
#include "dn_safetensors.h"
#include "dn_tflite.h"
#include "dn_train.h"

#include <errno.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

static const char *out_dir;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_seeds: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* ---- a growing byte buffer ---- */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void add(bytes *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        if (!(b->p = realloc(b->p, b->cap)))
            die("out of memory");
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void add_str(bytes *b, const char *s)
{
    add(b, s, strlen(s));
}

static void add_b64(bytes *b, const bytes *data)
{
    char *s = malloc(dn_base64_encoded_len(data->n) + 1);
    if (!s)
        die("out of memory");
    dn_base64_encode(data->p, data->n, s);
    add_str(b, s);
    free(s);
}

static char *target_dir(const char *target, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/%s", out_dir, target);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die("mkdir %s: %s", dir, strerror(errno));
    return dir;
}

static void seed(const char *target, const char *name, const void *data, size_t n)
{
    char dir[4096], path[4400];
    snprintf(path, sizeof path, "%s/%s", target_dir(target, dir, sizeof dir), name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
        die("cannot write %s", path);
}

static void seed_bytes(const char *target, const char *name, bytes *b)
{
    seed(target, name, b->p, b->n);
    free(b->p);
    *b = (bytes){0};
}

/* ---- images ---- */

/* A w x h texture with `channels` 8-bit channels (the alpha channel a gradient). */
static uint8_t *texture(int w, int h, int channels, unsigned salt)
{
    uint8_t *px = malloc((size_t)w * h * channels);
    if (!px)
        die("out of memory");
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                px[(y * w + x) * channels + c] =
                    (uint8_t)(c == 3 ? 255 * x / w : 60 + 40 * ((x / 3 + y / 2 + c + (int)salt) % 4));
    return px;
}

static bytes png(int w, int h, int channels, unsigned salt)
{
    uint8_t *px = texture(w, h, channels, salt);
    bytes b = {0};
    dn_error err;
    if (dn_png_encode_memory(w, h, channels, px, &b.p, &b.n, &err) != DN_OK)
        die("png: %s", err.msg);
    free(px);
    return b;
}

/* PNGs the project's writer does not make: 16-bit samples and a palette, through libpng. */
static bytes png_simplified(int w, int h, png_uint_32 format)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = format;
    int colormap = (format & PNG_FORMAT_FLAG_COLORMAP) != 0;
    uint8_t cmap[4 * 3] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255};
    size_t n = PNG_IMAGE_SIZE(im);
    uint8_t *px = malloc(n);
    if (!px)
        die("out of memory");
    for (size_t i = 0; i < n; i++)
        px[i] = colormap ? (uint8_t)(i % 4) : (uint8_t)(i * 37);
    if (colormap)
        im.colormap_entries = 4;
    png_alloc_size_t size = 0;
    bytes b = {0};
    if (!png_image_write_to_memory(&im, NULL, &size, 0, px, 0, colormap ? cmap : NULL) ||
        !(b.p = malloc(size)) || !png_image_write_to_memory(&im, b.p, &size, 0, px, 0, colormap ? cmap : NULL))
        die("png: %s", im.message);
    b.n = size;
    free(px);
    return b;
}

static bytes jpeg(int w, int h, int grey, int subsamp, int flags, unsigned salt)
{
    int pf = grey ? TJPF_GRAY : TJPF_RGB, channels = tjPixelSize[pf];
    uint8_t *px = texture(w, h, channels, salt);
    tjhandle tj = tjInitCompress();
    unsigned char *out = NULL;
    unsigned long len = 0;
    if (!tj || tjCompress2(tj, px, w, 0, h, pf, &out, &len, grey ? TJSAMP_GRAY : subsamp, 80, flags) != 0)
        die("jpeg: %s", tjGetErrorStr2(tj));
    bytes b = {0};
    add(&b, out, len);
    tjFree(out);
    tjDestroy(tj);
    free(px);
    return b;
}

/* A CMYK JPEG, which the decoder refuses. */
static bytes jpeg_cmyk(void)
{
    uint8_t *px = texture(8, 8, 4, 1);
    tjhandle tj = tjInitCompress();
    unsigned char *out = NULL;
    unsigned long len = 0;
    if (!tj || tjCompress2(tj, px, 8, 0, 8, TJPF_CMYK, &out, &len, TJSAMP_444, 80, 0) != 0)
        die("jpeg: %s", tjGetErrorStr2(tj));
    bytes b = {0};
    add(&b, out, len);
    tjFree(out);
    tjDestroy(tj);
    free(px);
    return b;
}

/* The JPEG with an APP1 Exif segment after its SOI: little-endian TIFF, IFD0 holding the
 * orientation tag. */
static bytes with_exif(bytes j, int orientation)
{
    static const uint8_t app1[] = {0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0,
                                   'I', 'I', 42, 0, 8, 0, 0, 0, /* TIFF header, IFD0 at 8 */
                                   1, 0,                       /* one entry */
                                   0x12, 0x01, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, /* 0x0112 SHORT x1 */
                                   0, 0, 0, 0};                /* no next IFD */
    bytes b = {0};
    uint8_t seg[sizeof app1];
    memcpy(seg, app1, sizeof seg);
    seg[28] = (uint8_t)orientation;
    add(&b, j.p, 2);
    add(&b, seg, sizeof seg);
    add(&b, j.p + 2, j.n - 2);
    free(j.p);
    if (dn_jpeg_exif_orientation(b.p, b.n) != orientation)
        die("the Exif seed does not read as orientation %d", orientation);
    return b;
}

static void check_decodes(const bytes *b, const char *name, int expect)
{
    dn_image img;
    dn_image_init(&img);
    dn_error err;
    int rc = dn_image_decode(&img, b->p, b->n, NULL, &err);
    if (rc != expect)
        die("%s decodes with %d (%s), expected %d", name, rc, rc ? err.msg : "ok", expect);
    dn_image_free(&img);
}

static void image_seed(const char *name, bytes b, int expect)
{
    check_decodes(&b, name, expect);
    seed_bytes("image", name, &b);
}

static void image_seeds(void)
{
    image_seed("rgb.png", png(12, 10, 3, 0), DN_OK);
    image_seed("grey.png", png(9, 7, 1, 1), DN_OK);
    image_seed("rgba.png", png(8, 8, 4, 2), DN_OK);
    image_seed("rgb16.png", png_simplified(6, 5, PNG_FORMAT_LINEAR_RGB), DN_OK);
    image_seed("grey_alpha16.png", png_simplified(5, 4, PNG_FORMAT_LINEAR_Y_ALPHA), DN_OK);
    image_seed("palette.png", png_simplified(7, 6, PNG_FORMAT_RGB_COLORMAP), DN_OK);
    image_seed("yuv420.jpg", jpeg(16, 16, 0, TJSAMP_420, 0, 3), DN_OK);
    image_seed("grey.jpg", jpeg(9, 11, 1, 0, 0, 4), DN_OK);
    image_seed("progressive444.jpg", jpeg(16, 8, 0, TJSAMP_444, TJFLAG_PROGRESSIVE, 5), DN_OK);
    image_seed("exif_orientation6.jpg", with_exif(jpeg(12, 6, 0, TJSAMP_422, 0, 6), 6), DN_OK);
    image_seed("cmyk.jpg", jpeg_cmyk(), DN_EUNSUPPORTED);
}

/* ---- models and safetensors ---- */

enum { MC = 8 }; /* channels of every made-up map */

/* Made-up features: final map 2x2, stride 8 4x4, stride 16 2x2, values around shift. */
static void made_up(dn_feats *f, float *d, unsigned *s, float shift)
{
    for (int i = 0; i < (4 + 16 + 4) * MC; i++) {
        *s = *s * 1103515245u + 12345u;
        d[i] = shift + (float)(*s >> 16 & 1023) / 1024.0f;
    }
    dn_feats_init(f);
    f->final = (dn_fmap){2, 2, MC, d};
    f->s8 = (dn_fmap){4, 4, MC, d + 4 * MC};
    f->s16 = (dn_fmap){2, 2, MC, d + 20 * MC};
}

/* A model of the given type; with_seg gives the anomalies masks (one defect cell in each
 * copy), so a fusion model also has a defect classifier; input is what its head reads. */
static void model_seed(const char *name, dn_head_type type, int with_seg, dn_head_input input)
{
    enum { NN = 10, NA = 2, NF = NN + NA * DN_AUGMENTATIONS };
    static float data[NF][24 * MC];
    dn_feats f[NF];
    const dn_feats *fp[NF];
    unsigned s = 7;
    for (int i = 0; i < NF; i++) {
        made_up(&f[i], data[i], &s, i < NN ? 0.0f : 2.0f);
        fp[i] = &f[i];
    }
    dn_backbone bb; /* only its sha256: no tail, so no weights are read */
    dn_backbone_init(&bb);
    memset(bb.sha256, 'a', 64);
    bb.sha256[64] = '\0';
    static float cells[NA][DN_AUGMENTATIONS * 4]; /* the 2x2 stride-16 grid of each copy */
    const float *cp[NA];
    for (int a = 0; a < NA; a++) {
        for (int c = 0; c < DN_AUGMENTATIONS * 4; c++)
            cells[a][c] = c % 4 == 0 ? 1.0f : 0.0f;
        cp[a] = cells[a];
    }
    dn_train_set set = {fp, NN, fp + NN, type == DN_HEAD_NORMALITY ? 0 : NA, DN_AUGMENTATIONS, "seed",
                        with_seg ? cp : NULL};
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.type = type;
    o.size = 64;
    o.bank_max = 8;
    o.proj_dim = 0;
    o.head.steps = 20;
    o.head_input = input;
    dn_model m;
    dn_model_init(&m);
    dn_error err;
    char dir[4096], path[4400];
    snprintf(path, sizeof path, "%s/%s", target_dir("model", dir, sizeof dir), name);
    if (dn_train(&m, &set, &o, &bb, &err) != DN_OK || dn_model_save(&m, path, &err) != DN_OK)
        die("model %s: %s", name, err.msg);
    dn_model_free(&m);
    if (dn_model_load(&m, path, NULL) != DN_OK)
        die("model %s does not load: %s", name, m.err.msg);
    if (m.has_seg != with_seg)
        die("model %s: defect classifier %d, expected %d", name, m.has_seg, with_seg);
    dn_model_free(&m);
}

static void model_seeds(void)
{
    model_seed("normality.safetensors", DN_HEAD_NORMALITY, 0, DN_HEAD_INPUT_FINAL);
    model_seed("fusion.safetensors", DN_HEAD_FUSION, 0, DN_HEAD_INPUT_FINAL);
    model_seed("fusion-seg.safetensors", DN_HEAD_FUSION, 1, DN_HEAD_INPUT_FINAL);
    model_seed("fusion-patches.safetensors", DN_HEAD_FUSION, 1, DN_HEAD_INPUT_PATCHES);
    model_seed("devnet.safetensors", DN_HEAD_DEVNET, 0, DN_HEAD_INPUT_FINAL);
    /* a safetensors file that is not a model: a scalar, a matrix, an empty tensor */
    static const float v[7] = {1, 2, 3, 4, 5, 6, 7};
    int64_t shape[2] = {2, 3}, empty[1] = {0};
    dn_st_writer w;
    dn_st_writer_init(&w);
    char dir[4096], path[4400];
    snprintf(path, sizeof path, "%s/plain.safetensors", target_dir("model", dir, sizeof dir));
    if (dn_st_writer_meta(&w, "format", "other") || dn_st_writer_add(&w, "scalar", 0, NULL, v) ||
        dn_st_writer_add(&w, "matrix", 2, shape, v + 1) || dn_st_writer_add(&w, "empty", 1, empty, v) ||
        dn_st_writer_save(&w, path))
        die("safetensors: %s", w.err.msg);
    dn_st_writer_free(&w);
}

/* ---- TFLite: a minimal flatbuffer writer ----
 * Parents are written before their children, so every uoffset points forward; a table's
 * vtable is written just before it. */

typedef struct fbw {
    uint8_t p[16384];
    size_t n;
} fbw;

enum { FB_OFF = 255 }; /* a field that holds an offset, linked later */

typedef struct fb_field {
    int size; /* 0: absent; 1, 2, 4 or 8 bytes; FB_OFF */
    uint64_t v;
} fb_field;

static void fb_set(fbw *w, size_t at, uint64_t v, int size)
{
    for (int i = 0; i < size; i++)
        w->p[at + i] = (uint8_t)(v >> 8 * i);
}

static size_t fb_put(fbw *w, uint64_t v, int size)
{
    while (w->n % (size_t)size)
        w->p[w->n++] = 0;
    if (w->n + (size_t)size > sizeof w->p)
        die("flatbuffer too big");
    size_t at = w->n;
    fb_set(w, at, v, size);
    w->n += (size_t)size;
    return at;
}

static void fb_link(fbw *w, size_t at, size_t target)
{
    fb_set(w, at, target - at, 4);
}

/* A table of n fields; slot[i] receives the position of offset field i. */
static size_t fb_table(fbw *w, int n, const fb_field *f, size_t *slot)
{
    size_t vt = fb_put(w, 4 + 2 * (uint64_t)n, 2);
    for (int i = 0; i < n + 1; i++)
        fb_put(w, 0, 2);
    size_t t = fb_put(w, 0, 4);
    fb_set(w, t, t - vt, 4);
    for (int i = 0; i < n; i++) {
        if (!f[i].size)
            continue;
        size_t at = fb_put(w, f[i].size == FB_OFF ? 0 : f[i].v, f[i].size == FB_OFF ? 4 : f[i].size);
        fb_set(w, vt + 4 + 2 * (size_t)i, at - t, 2);
        if (slot)
            slot[i] = at;
    }
    fb_set(w, vt + 2, w->n - t, 2);
    return t;
}

/* A vector of n scalars of elem bytes, linked from the offset at `from`. */
static void fb_vec(fbw *w, size_t from, size_t n, int elem, const void *data)
{
    size_t v = fb_put(w, n, 4);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = 0;
        memcpy(&x, (const uint8_t *)data + i * (size_t)elem, (size_t)elem);
        size_t at = w->n;
        w->n += (size_t)elem;
        fb_set(w, at, x, elem);
    }
    fb_link(w, from, v);
}

static void fb_string(fbw *w, size_t from, const char *s)
{
    size_t v = fb_put(w, strlen(s), 4);
    memcpy(w->p + w->n, s, strlen(s) + 1);
    w->n += strlen(s) + 1;
    fb_link(w, from, v);
}

/* A vector of n offsets linked from `from`; returns the position of its first slot. */
static size_t fb_offsets(fbw *w, size_t from, size_t n)
{
    size_t v = fb_put(w, n, 4);
    for (size_t i = 0; i < n; i++)
        fb_put(w, 0, 4);
    fb_link(w, from, v);
    return v + 4;
}

enum { T_F32 = 0, T_I32 = 2, T_I8 = 9 };

typedef struct seed_tensor {
    const char *name;
    int type, ndim, shape[4];
    int buffer; /* 0: no data */
    int n_scales, qdim;
} seed_tensor;

typedef struct seed_op {
    int code;
    int in[3], n_in, out;
    int opt_kind; /* 0 none, 1 conv, 2 depthwise, 3 add, 4 softmax */
    int pad, stride, act;
} seed_op;

/* input -> QUANTIZE -> CONV 3x3/2 (int8 per channel) -> DEPTHWISE 3x3 -> ADD (residual) ->
 * CONV 1x1 (float) -> MEAN -> RESHAPE -> SOFTMAX -> DEQUANTIZE */
static const seed_tensor TENSORS[] = {
    {"input", T_F32, 4, {1, 8, 8, 3}, 0, 0, 0},
    {"input_int8", T_I8, 4, {1, 8, 8, 3}, 0, 1, 0},
    {"m/stem/weights", T_I8, 4, {4, 3, 3, 3}, 1, 4, 0},
    {"m/stem/bias", T_I32, 1, {4}, 2, 4, 0},
    {"m/stem/Relu6", T_I8, 4, {1, 4, 4, 4}, 0, 1, 0},
    {"m/block/dw_weights", T_I8, 4, {1, 3, 3, 4}, 3, 4, 3},
    {"m/block/dw_bias", T_I32, 1, {4}, 4, 4, 0},
    {"m/block/depthwise/Relu6", T_I8, 4, {1, 4, 4, 4}, 0, 1, 0},
    {"m/block/add", T_I8, 4, {1, 4, 4, 4}, 0, 1, 0},
    {"m/proj/weights", T_F32, 4, {6, 1, 1, 4}, 5, 0, 0},
    {"m/proj/bias", T_F32, 1, {6}, 6, 0, 0},
    {"m/proj/Conv2D", T_F32, 4, {1, 4, 4, 6}, 0, 0, 0},
    {"m/pool/axes", T_I32, 1, {2}, 7, 0, 0},
    {"m/pool/Mean", T_F32, 4, {1, 1, 1, 6}, 0, 0, 0},
    {"m/flat/Reshape", T_F32, 2, {1, 6}, 0, 0, 0},
    {"m/Softmax", T_F32, 2, {1, 6}, 0, 0, 0},
    {"output", T_F32, 2, {1, 6}, 0, 0, 0},
};

static const seed_op OPS[] = {
    {114, {0}, 1, 1, 0, 0, 0, 0},            /* QUANTIZE */
    {3, {1, 2, 3}, 3, 4, 1, 0, 2, 3},        /* CONV_2D, SAME, stride 2, RELU6 */
    {4, {4, 5, 6}, 3, 7, 2, 0, 1, 3},        /* DEPTHWISE_CONV_2D */
    {0, {4, 7}, 2, 8, 3, 0, 0, 0},           /* ADD */
    {3, {8, 9, 10}, 3, 11, 1, 1, 1, 0},      /* CONV_2D 1x1, VALID */
    {40, {11, 12}, 2, 13, 0, 0, 0, 0},       /* MEAN over [1, 2] */
    {22, {13}, 1, 14, 0, 0, 0, 0},           /* RESHAPE [1,1,1,6] -> [1,6] */
    {25, {14}, 1, 15, 4, 0, 0, 0},           /* SOFTMAX */
    {6, {15}, 1, 16, 0, 0, 0, 0},            /* DEQUANTIZE */
};

static const int OP_CODES[] = {114, 3, 4, 0, 40, 22, 25, 6};

static int opcode_index(int code)
{
    for (int i = 0; i < (int)(sizeof OP_CODES / sizeof *OP_CODES); i++)
        if (OP_CODES[i] == code)
            return i;
    die("no opcode %d", code);
    return -1;
}

static void tfl_tensor(fbw *w, size_t slot, const seed_tensor *t)
{
    size_t s[5] = {0};
    fb_field f[5] = {{FB_OFF, 0}, {1, (uint64_t)t->type}, {4, (uint64_t)t->buffer}, {FB_OFF, 0},
                     {t->n_scales ? FB_OFF : 0, 0}};
    fb_link(w, slot, fb_table(w, 5, f, s));
    fb_vec(w, s[0], (size_t)t->ndim, 4, t->shape);
    fb_string(w, s[3], t->name);
    if (!t->n_scales)
        return;
    size_t q[7] = {0};
    fb_field qf[7] = {{0, 0}, {0, 0}, {FB_OFF, 0}, {FB_OFF, 0}, {0, 0}, {0, 0}, {4, (uint64_t)t->qdim}};
    fb_link(w, s[4], fb_table(w, 7, qf, q));
    float scales[4] = {0.02f, 0.03f, 0.05f, 0.04f};
    int64_t zps[4] = {0, 0, 0, 0};
    fb_vec(w, q[2], (size_t)t->n_scales, 4, scales);
    fb_vec(w, q[3], (size_t)t->n_scales, 8, zps);
}

static void tfl_op(fbw *w, size_t slot, const seed_op *op)
{
    size_t s[5] = {0};
    fb_field f[5] = {{4, (uint64_t)opcode_index(op->code)}, {FB_OFF, 0}, {FB_OFF, 0},
                     {1, (uint64_t)op->opt_kind}, {op->opt_kind ? FB_OFF : 0, 0}};
    fb_link(w, slot, fb_table(w, 5, f, s));
    fb_vec(w, s[1], (size_t)op->n_in, 4, op->in);
    fb_vec(w, s[2], 1, 4, &op->out);
    uint32_t beta;
    float one = 1.0f;
    memcpy(&beta, &one, 4);
    fb_field conv[4] = {{1, (uint64_t)op->pad}, {4, (uint64_t)op->stride}, {4, (uint64_t)op->stride},
                        {1, (uint64_t)op->act}};
    fb_field dw[5] = {{1, (uint64_t)op->pad}, {4, (uint64_t)op->stride}, {4, (uint64_t)op->stride}, {4, 1},
                      {1, (uint64_t)op->act}};
    fb_field add_opt[1] = {{1, (uint64_t)op->act}}, softmax[1] = {{4, beta}};
    if (op->opt_kind == 1)
        fb_link(w, s[4], fb_table(w, 4, conv, NULL));
    else if (op->opt_kind == 2)
        fb_link(w, s[4], fb_table(w, 5, dw, NULL));
    else if (op->opt_kind == 3)
        fb_link(w, s[4], fb_table(w, 1, add_opt, NULL));
    else if (op->opt_kind == 4)
        fb_link(w, s[4], fb_table(w, 1, softmax, NULL));
}

/* The constant data of buffer b, little-endian (buffer 0 is the empty one). */
static size_t buffer_data(int b, uint8_t *out)
{
    static const int32_t axes[2] = {1, 2};
    size_t n = 0;
    for (size_t t = 0; t < sizeof TENSORS / sizeof *TENSORS; t++) {
        const seed_tensor *st = &TENSORS[t];
        if (!b || st->buffer != b)
            continue;
        size_t count = 1;
        for (int d = 0; d < st->ndim; d++)
            count *= (size_t)st->shape[d];
        for (size_t i = 0; i < count; i++) {
            if (b == 7) {
                memcpy(out + n, &axes[i], 4), n += 4;
            } else if (st->type == T_I8) {
                out[n++] = (uint8_t)(int8_t)((int)(i * 29 % 41) - 20);
            } else if (st->type == T_I32) {
                int32_t v = (int32_t)(i * 7) - 10;
                memcpy(out + n, &v, 4), n += 4;
            } else {
                float v = (float)(i % 5) * 0.1f - 0.2f;
                memcpy(out + n, &v, 4), n += 4;
            }
        }
    }
    return n;
}

static bytes tflite(void)
{
    static fbw w;
    enum { N_T = sizeof TENSORS / sizeof *TENSORS, N_OPS = sizeof OPS / sizeof *OPS,
           N_CODES = sizeof OP_CODES / sizeof *OP_CODES, N_BUF = 8 };
    memset(&w, 0, sizeof w);
    w.n = 8;
    memcpy(w.p + 4, "TFL3", 4);
    size_t m[5] = {0};
    fb_field mf[5] = {{4, 3}, {FB_OFF, 0}, {FB_OFF, 0}, {0, 0}, {FB_OFF, 0}};
    fb_link(&w, 0, fb_table(&w, 5, mf, m));
    size_t codes = fb_offsets(&w, m[1], N_CODES);
    for (int i = 0; i < N_CODES; i++) {
        fb_field f[4] = {{1, (uint64_t)OP_CODES[i]}, {0, 0}, {4, 1}, {4, (uint64_t)OP_CODES[i]}};
        fb_link(&w, codes + 4 * (size_t)i, fb_table(&w, 4, f, NULL));
    }
    size_t sg = fb_offsets(&w, m[2], 1), s[4] = {0};
    fb_field sf[4] = {{FB_OFF, 0}, {FB_OFF, 0}, {FB_OFF, 0}, {FB_OFF, 0}};
    fb_link(&w, sg, fb_table(&w, 4, sf, s));
    size_t tensors = fb_offsets(&w, s[0], N_T);
    for (int i = 0; i < N_T; i++)
        tfl_tensor(&w, tensors + 4 * (size_t)i, &TENSORS[i]);
    int32_t in = 0, out = N_T - 1;
    fb_vec(&w, s[1], 1, 4, &in);
    fb_vec(&w, s[2], 1, 4, &out);
    size_t ops = fb_offsets(&w, s[3], N_OPS);
    for (int i = 0; i < N_OPS; i++)
        tfl_op(&w, ops + 4 * (size_t)i, &OPS[i]);
    size_t bufs = fb_offsets(&w, m[4], N_BUF);
    for (int b = 0; b < N_BUF; b++) {
        uint8_t data[512];
        size_t n = buffer_data(b, data), d = 0;
        fb_field f[1] = {{n ? FB_OFF : 0, 0}};
        fb_link(&w, bufs + 4 * (size_t)b, fb_table(&w, 1, f, &d));
        if (n)
            fb_vec(&w, d, n, 1, data);
    }
    bytes b = {0};
    add(&b, w.p, w.n);
    return b;
}

static void tflite_seeds(void)
{
    bytes b = tflite();
    dn_tflite_model m;
    dn_tflite_init(&m);
    if (dn_tflite_import(&m, b.p, b.n, NULL) != DN_OK)
        die("the TFLite seed does not import: %s", m.err.msg);
    if (m.graph.n_nodes != 6 || m.graph.n_classes != 6)
        die("the TFLite seed imports as %d nodes, %d classes", m.graph.n_nodes, m.graph.n_classes);
    dn_tflite_free(&m);
    seed_bytes("tflite", "tiny.tflite", &b);
}

/* ---- request bodies ---- */

static void json_seeds(void)
{
    bytes img = png(6, 5, 3, 7), jpg = jpeg(8, 8, 0, TJSAMP_420, 0, 8), mask = png(6, 5, 1, 9), b = {0};
    add_str(&b, "{\"image\": \"");
    add_b64(&b, &img);
    add_str(&b, "\"}");
    seed_bytes("request_json", "single.json", &b);
    add_str(&b, "{\"images\": [\"");
    add_b64(&b, &jpg);
    add_str(&b, "\", \"");
    add_b64(&b, &img);
    add_str(&b, "\"], \"label\": null, \"mask\": null}\n");
    seed_bytes("request_json", "batch.json", &b);
    add_str(&b, "{\"image\": \"data:image/png;base64,");
    add_b64(&b, &img);
    add_str(&b, "\", \"label\": \"anomaly\", \"mask\": \"");
    add_b64(&b, &mask);
    add_str(&b, "\"}");
    seed_bytes("request_json", "data_url_label_mask.json", &b);
    /* URL-safe alphabet, no padding, a line break inside */
    add_str(&b, "{\"image\": \"_-8A\\nAB-_\", \"label\": \"normal\"}");
    seed_bytes("request_json", "urlsafe_unpadded.json", &b);
    static const char *const bad[] = {"{\"image\": \"QQ=\"}", "{\"images\": []}", "[1, 2]",
                                      "{\"image\": 1, \"images\": [\"QQ==\"]}", "{\"image\": \"QQ==\"} x",
                                      "{\"images\": [\"QQ==\", null], \"label\": \"0123456789abcdefg\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char name[32];
        snprintf(name, sizeof name, "refused_%zu.json", i);
        seed("request_json", name, bad[i], strlen(bad[i]));
    }
    free(img.p), free(jpg.p), free(mask.p);
}

static void add_part(bytes *b, const char *boundary, const char *headers, const bytes *payload)
{
    add_str(b, "--");
    add_str(b, boundary);
    add_str(b, "\r\n");
    add_str(b, headers);
    add_str(b, "\r\n");
    if (payload)
        add(b, payload->p, payload->n);
    add_str(b, "\r\n");
}

static void add_close(bytes *b, const char *boundary)
{
    add_str(b, "--");
    add_str(b, boundary);
    add_str(b, "--\r\n");
}

static const char IMAGE_PNG[] = "Content-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                                "Content-Type: image/png\r\n";

/* A body with an image part, a label part and a mask part. */
static void feedback_form(bytes *b, const char *boundary, const bytes *img, const char *label, const bytes *mask)
{
    bytes l = {0};
    add_str(&l, label);
    add_part(b, boundary, IMAGE_PNG, img);
    add_part(b, boundary, "Content-Disposition: form-data; name=\"label\"\r\n", &l);
    add_part(b, boundary, "content-disposition: form-data; name=mask\r\n", mask);
    add_close(b, boundary);
    free(l.p);
}

static void multipart_seeds(void)
{
    bytes img = png(6, 5, 3, 10), jpg = jpeg(8, 8, 0, TJSAMP_444, 0, 11), mask = png(6, 5, 1, 12);
    bytes b = {0}, text = {0};
    add_str(&b, "multipart/form-data; boundary=XyZ\n");
    add_part(&b, "XyZ", IMAGE_PNG, &img);
    add_close(&b, "XyZ");
    seed_bytes("multipart", "single.txt", &b);

    add_str(&b, "multipart/form-data; charset=utf-8; boundary=\"a'()+_,-./:=? b\"\n");
    add_str(&b, "preamble to ignore\r\n");
    add_part(&b, "a'()+_,-./:=? b", IMAGE_PNG, &img);
    add_part(&b, "a'()+_,-./:=? b", "Content-Disposition: form-data;\r\n\tname=\"image\"\r\n", &jpg);
    add_str(&text, "--a'()+_,-./:=? bc is content, not a delimiter");
    add_part(&b, "a'()+_,-./:=? b", "Content-Disposition: form-data; name=\"note\"\r\n", &text);
    add_close(&b, "a'()+_,-./:=? b");
    add_str(&b, "epilogue to ignore");
    seed_bytes("multipart", "batch_quoted_boundary.txt", &b);

    add_str(&b, "Multipart/Form-Data; BOUNDARY=q\n");
    feedback_form(&b, "q", &img, "anomaly", &mask);
    seed_bytes("multipart", "feedback_label_mask.txt", &b);

    /* transport padding after a delimiter, a part without headers, no close: truncated */
    add_str(&b, "multipart/form-data; boundary=pad\n--pad \t\r\n\r\nheaderless\r\n--pad\r\n");
    add_str(&b, "Content-Disposition: form-data; name=\"image\"\r\n\r\nxx");
    seed_bytes("multipart", "padding_truncated.txt", &b);
    free(img.p), free(jpg.p), free(mask.p), free(text.p);
}

/* ---- service requests ---- */

static void request(const char *name, const char *head, const bytes *body)
{
    bytes b = {0};
    add_str(&b, head);
    if (body)
        add(&b, body->p, body->n);
    seed_bytes("service", name, &b);
}

static void service_seeds(void)
{
    bytes img = png(24, 24, 3, 13), other = png(24, 24, 3, 14), jpg = jpeg(24, 24, 0, TJSAMP_420, 0, 15);
    bytes mask = png(24, 24, 1, 16), b = {0};
    request("score_png", "POST\n/score\nimage/png\n\n", &img);
    request("score_jpeg_heatmap", "POST\n/score\nimage/jpeg\nheatmap=png\n", &jpg);
    request("score_bad_heatmap", "POST\n/score\nimage/png\nheatmap=gif\n", &img);
    request("score_no_content_type", "POST\n/score\n\n\n", &img);
    add_str(&b, "{\"images\": [\"");
    add_b64(&b, &img);
    add_str(&b, "\", \"");
    add_b64(&b, &jpg);
    add_str(&b, "\"]}");
    request("score_json_batch", "POST\n/score\napplication/json\nheatmap=none\n", &b);
    free(b.p), b = (bytes){0};
    add_part(&b, "s", IMAGE_PNG, &img);
    add_close(&b, "s");
    request("score_multipart", "POST\n/score\nmultipart/form-data; boundary=s\n\n", &b);
    free(b.p), b = (bytes){0};
    request("feedback_query_label", "POST\n/feedback\nimage/png\nlabel=anomaly\n", &other);
    feedback_form(&b, "f", &img, "normal", &mask);
    request("feedback_multipart_mask", "POST\n/feedback\nmultipart/form-data; boundary=f\n\n", &b);
    free(b.p), b = (bytes){0};
    add_str(&b, "{\"image\": \"");
    add_b64(&b, &jpg);
    add_str(&b, "\", \"label\": \"normal\"}");
    request("feedback_json", "POST\n/feedback\napplication/json\n\n", &b);
    free(b.p), b = (bytes){0};
    request("feedback_no_label", "POST\n/feedback\nimage/png\n\n", &img);
    static const char *const light[][2] = {
        {"healthz", "GET\n/healthz\n\n\n"}, {"head_healthz", "HEAD\n/healthz\n\n\n"},
        {"readyz", "GET\n/readyz\n\n\n"}, {"v2_live", "GET\n/v2/health/live\n\n\n"},
        {"v2_ready", "GET\n/v2/health/ready\n\n\n"}, {"metrics", "GET\n/metrics\n\n\n"},
        {"model", "GET\n/model\n\n\n"}, {"job", "GET\n/jobs/job-000001\n\n\n"},
        {"rollback", "POST\n/model/rollback\n\n\n"}, {"console", "GET\n/\n\n\n"},
        {"wrong_method", "DELETE\n/score\n\n\n"}, {"not_found", "GET\n/jobs/a/b\n\n\n"},
    };
    for (size_t i = 0; i < sizeof light / sizeof *light; i++)
        request(light[i][0], light[i][1], NULL);
    free(img.p), free(other.p), free(jpg.p), free(mask.p);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: fuzz_seeds OUT_DIR");
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        die("mkdir %s: %s", out_dir, strerror(errno));
    image_seeds();
    model_seeds();
    tflite_seeds();
    json_seeds();
    multipart_seeds();
    service_seeds();
    return 0;
}
